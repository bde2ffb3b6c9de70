//! The server side of protocol v2: the handshake, and the table of sessions it creates.
//!
//! A [`Server`] is a synchronous state machine: packets and the clock go in, the packets to send
//! back and what happened come out. It never trusts a field the packet claims about identity:
//! a data packet is its session's if it comes from the session's address, names the session,
//! opens under the session's client → server key and is not a replay. The rules (what is
//! refused and why, timeouts, keepalives) are normative in `docs/protocol.md` ("Protocol v2").
//!
//! The handshake is stateless on the server until the response: the challenge token carries
//! everything the session needs, sealed with a key made at start-up that never leaves this
//! process, so a flood of requests costs one AEAD open and one seal each, and memory only in the
//! bounded cache of tokens seen (which refuses a token replayed from another address).
//!
//! Workers share one server, one per RX queue. Everything a packet does on its own takes `&self`
//! and may run on every worker at once: a data packet's open (each session's replay window,
//! sequence numbers and clocks are behind the session's own lock, taken after the AEAD check), a
//! request's token open and challenge seal (the token cache has its own lock), a response's
//! checks ([`Server::check_response`]), sealing to a session, the keepalive scan. Only changes to
//! the table take `&mut self`: [`Server::admit`], [`Server::close`], [`Server::expire`],
//! [`Server::disconnect`]. The gate holds the server accordingly, in a read lock per worker
//! ([`super::shared::ReadMostly`]), so no worker's AEAD work ever waits for another's.

use std::{
    collections::HashMap,
    hash::{BuildHasherDefault, Hasher},
    net::{IpAddr, Ipv6Addr, SocketAddr},
    sync::{
        Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

use super::{
    anti_replay::Window,
    token::{MAX_USER_DATA, PrivateToken, SealedToken, VERSION_INFO},
};
use crate::broadcast::Outbound;
use crate::wire::{
    crypto::{Cipher, Key, NONCE_LEN, TAG_LEN, Unauthentic},
    frame_packet,
    v2::{self, CHALLENGE_LEN, CHALLENGE_TOKEN_LEN, Challenge, Header, Kind, Request},
};

/// Bytes of a challenge token before sealing.
const CHALLENGE_PLAIN_LEN: usize = CHALLENGE_TOKEN_LEN - TAG_LEN;
/// How long a challenge may be answered, milliseconds.
pub const CHALLENGE_TIMEOUT_MS: u64 = 5_000;
/// Disconnect packets sent when the server ends a session (they are not acknowledged).
pub const DISCONNECT_REDUNDANCY: usize = 3;

/// How the server admits players.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The game's protocol id: tokens for another are refused.
    pub protocol_id: u64,
    /// The key the game's backend mints tokens with.
    pub private_key: Key,
    /// Most sessions at once; a full server answers `denied`.
    pub max_sessions: usize,
    /// Most tokens remembered (to refuse one replayed from another address); expired ones are
    /// forgotten first, and a full cache refuses new tokens rather than forget live ones.
    pub max_tokens: usize,
    /// A keepalive goes to a session that was sent nothing for this long.
    pub keepalive_interval_ns: u64,
}

impl ServerConfig {
    /// Defaults for `max_sessions` sessions: a token cache four times that, keepalives every
    /// second (a session's timeout comes from its token).
    pub fn new(protocol_id: u64, private_key: Key, max_sessions: usize) -> Self {
        Self {
            protocol_id,
            private_key,
            max_sessions,
            max_tokens: max_sessions.saturating_mul(4).max(64),
            keepalive_interval_ns: 1_000_000_000,
        }
    }
}

/// Why a handshake packet got no session. Each is a counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Not a request or response of this layout.
    #[error("malformed handshake packet")]
    Malformed,
    /// The token's version string is not v2's.
    #[error("token of another version")]
    TokenVersion,
    /// The token is for another game.
    #[error("token for another protocol id")]
    TokenProtocol,
    /// The token has expired.
    #[error("token expired")]
    TokenExpired,
    /// The sealed part does not open: forged, tampered, or minted with another key.
    #[error("token does not open")]
    TokenInvalid,
    /// The token does not name the address the request was sent to.
    #[error("token not valid for this server address")]
    TokenServer,
    /// The token was used from another address, or already made a session.
    #[error("token already used")]
    TokenReused,
    /// The token cache is full of live tokens.
    #[error("token cache full")]
    TokenCacheFull,
    /// The challenge token does not open: not one this run made.
    #[error("challenge token does not open")]
    ChallengeInvalid,
    /// The challenge was answered from another address than the request came from.
    #[error("challenge answered from another address")]
    ChallengeAddress,
    /// The challenge was answered too late.
    #[error("challenge expired")]
    ChallengeExpired,
    /// The response's proof does not open under the token's client → server key.
    #[error("response not made with the token's key")]
    ResponseUnauthentic,
    /// The server holds `max_sessions` sessions: the client is told with a `denied` packet.
    #[error("server full")]
    Full,
    /// The token's player id does not fit the 32 bits frames carry in this version.
    #[error("player id above 2^32 - 1")]
    PlayerIdRange,
}

impl Refused {
    /// Every reason, in counter order.
    pub const ALL: [Self; 14] = [
        Self::Malformed,
        Self::TokenVersion,
        Self::TokenProtocol,
        Self::TokenExpired,
        Self::TokenInvalid,
        Self::TokenServer,
        Self::TokenReused,
        Self::TokenCacheFull,
        Self::ChallengeInvalid,
        Self::ChallengeAddress,
        Self::ChallengeExpired,
        Self::ResponseUnauthentic,
        Self::Full,
        Self::PlayerIdRange,
    ];

    /// The counter's name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::TokenVersion => "token_version",
            Self::TokenProtocol => "token_protocol",
            Self::TokenExpired => "token_expired",
            Self::TokenInvalid => "token_invalid",
            Self::TokenServer => "token_server",
            Self::TokenReused => "token_reused",
            Self::TokenCacheFull => "token_cache_full",
            Self::ChallengeInvalid => "challenge_invalid",
            Self::ChallengeAddress => "challenge_address",
            Self::ChallengeExpired => "challenge_expired",
            Self::ResponseUnauthentic => "response_unauthentic",
            Self::Full => "full",
            Self::PlayerIdRange => "player_id_range",
        }
    }
}

/// Why a data packet was dropped. Each is a counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DataDrop {
    /// Not a sealed client → server packet of a valid layout.
    #[error("malformed data packet")]
    Malformed,
    /// No session has this id.
    #[error("no such session")]
    UnknownSession,
    /// The session exists, but this packet came from another address: spoofed or forged.
    #[error("session of another address")]
    WrongAddress,
    /// The tag does not open under the session's key: forged or changed.
    #[error("unauthentic")]
    Unauthentic,
    /// The sequence number was seen before, or is out of the replay window.
    #[error("replayed")]
    Replayed,
    /// A catch-up request within [`CATCH_UP_INTERVAL_NS`] of the session's previous one.
    #[error("catch-up request too soon")]
    CatchUpLimited,
}

/// The shortest time between two catch-up requests of one session that are both served.
pub const CATCH_UP_INTERVAL_NS: u64 = 100_000_000;

impl DataDrop {
    /// Every reason, in counter order.
    pub const ALL: [Self; 6] = [
        Self::Malformed,
        Self::UnknownSession,
        Self::WrongAddress,
        Self::Unauthentic,
        Self::Replayed,
        Self::CatchUpLimited,
    ];

    /// The counter's name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnknownSession => "unknown_session",
            Self::WrongAddress => "wrong_address",
            Self::Unauthentic => "unauthentic",
            Self::Replayed => "replayed",
            Self::CatchUpLimited => "catch_up_limited",
        }
    }
}

/// Why a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Nothing arrived from the client for its timeout.
    Timeout,
    /// The client said goodbye.
    Disconnect,
    /// The same player connected again: the newer session wins.
    Replaced,
    /// The server ended it.
    Server,
}

impl CloseReason {
    /// Every reason, in the order of the counters.
    pub const ALL: [Self; 4] = [Self::Timeout, Self::Disconnect, Self::Replaced, Self::Server];

    /// The name in counters and events.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Disconnect => "disconnect",
            Self::Replaced => "replaced",
            Self::Server => "server",
        }
    }
}

/// A packet to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// The client's address.
    pub to: SocketAddr,
    /// The UDP payload.
    pub bytes: Vec<u8>,
}

/// A session that was created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joined {
    /// Its id (in every packet's header from now on).
    pub session: u32,
    /// The player.
    pub player_id: u64,
    /// The match.
    pub match_id: u64,
    /// The game's bytes from the token.
    pub user_data: Vec<u8>,
    /// Where the client is.
    pub addr: SocketAddr,
}

/// A session that ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closed {
    /// Its id.
    pub session: u32,
    /// The player.
    pub player_id: u64,
    /// The match.
    pub match_id: u64,
    /// Where the client was (the key of its XDP session entry).
    pub addr: SocketAddr,
    /// Why.
    pub reason: CloseReason,
}

/// What a response led to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The new session.
    pub joined: Joined,
    /// The player's earlier session, which this one replaces.
    pub replaced: Option<Closed>,
    /// "Connected": the first keepalive, which tells the client its session id.
    pub reply: Outgoing,
}

/// An opened data packet.
#[derive(Debug, PartialEq, Eq)]
pub enum Data<'a> {
    /// An input packet's plaintext (an `InputFrame`) from `player_id` of `match_id`.
    Input {
        /// The session.
        session: u32,
        /// The player it speaks for.
        player_id: u64,
        /// The player's match.
        match_id: u64,
        /// The decrypted payload.
        plain: &'a [u8],
    },
    /// A sync packet's plaintext (a `SyncAck`).
    Sync {
        /// The session.
        session: u32,
        /// The player it speaks for.
        player_id: u64,
        /// The decrypted payload.
        plain: &'a [u8],
    },
    /// A reconnected player asks for its match's frames from `from_tick` on.
    CatchUp {
        /// The session.
        session: u32,
        /// The player.
        player_id: u64,
        /// The player's match.
        match_id: u64,
        /// The first tick wanted.
        from_tick: u64,
    },
    /// A keepalive: the session is alive.
    Keepalive {
        /// The session.
        session: u32,
    },
    /// The client ends its session: the caller closes it ([`Server::close`] with
    /// [`CloseReason::Disconnect`]), which needs the table to itself.
    Disconnect {
        /// The session.
        session: u32,
    },
}

/// A challenge response whose challenge, address, deadline and proof checked out
/// ([`Server::check_response`]), for [`Server::admit`].
pub struct Response {
    src: SocketAddr,
    challenge: ChallengeFields,
    c2s: Cipher,
    s2c: Cipher,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response").field("src", &self.src).finish_non_exhaustive()
    }
}

struct Session {
    player_id: u64,
    match_id: u64,
    addr: SocketAddr,
    c2s: Cipher,
    s2c: Cipher,
    timeout_ns: u64,
    live: Mutex<Live>,
}

/// What a session's packets change, in and out. One worker receives and sends a session's
/// packets, so its lock is uncontended but for a packet that reaches another queue.
struct Live {
    window: Window,
    next_send_seq: u64,
    last_recv_ns: u64,
    last_send_ns: u64,
    last_catch_up_ns: Option<u64>,
}

impl Session {
    /// The session's live state. A panic elsewhere while it was held leaves plain numbers, which
    /// stay usable (the next packet's checks run on them as on any).
    fn live(&self) -> MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Seals `body` as a `kind` packet with the s2c key and the next sequence number, counting it
    /// as traffic (no keepalive is due for an interval after it).
    fn seal(&self, id: u32, kind: Kind, body: &[u8], now_ns: u64) -> Outgoing {
        let mut bytes = Vec::with_capacity(v2::HEADER_LEN + body.len() + TAG_LEN);
        let mut live = self.live();
        v2::seal(&self.s2c, kind, id, live.next_send_seq, body, &mut bytes);
        live.next_send_seq += 1;
        live.last_send_ns = now_ns;
        Outgoing { to: self.addr, bytes }
    }
}

struct SeenToken {
    source: SocketAddr,
    expire_ms: u64,
    made_session: bool,
}

/// Hashes the session ids the server itself hands out (1, 2, 3, … in order, `next_session`),
/// the key of the lookup every data packet makes. A multiply by an odd constant maps distinct
/// ids to distinct slots of any power-of-two table and mixes the top bits the table tags with,
/// so consecutive ids spread as evenly as under SipHash, at a fraction of its cost per packet.
/// A peer chooses only which id to look up, never which ids are in the table, so a forged id
/// can only miss: the table's spread, and each lookup's cost, stay the server's.
#[derive(Default)]
struct SessionIds(u64);

impl Hasher for SessionIds {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(SPREAD);
        }
    }

    fn write_u32(&mut self, id: u32) {
        self.0 = u64::from(id).wrapping_mul(SPREAD);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// 2^64 / φ, odd: Fibonacci hashing's multiplier.
const SPREAD: u64 = 0x9E37_79B9_7F4A_7C15;

/// The handshake and the session table of one tickgate run.
pub struct Server {
    config: ServerConfig,
    private: Cipher,
    run_key: Cipher,
    next_challenge: AtomicU64,
    tokens: Mutex<HashMap<[u8; TAG_LEN], SeenToken>>,
    sessions: HashMap<u32, Session, BuildHasherDefault<SessionIds>>,
    by_player: HashMap<u64, u32>,
    by_addr: HashMap<SocketAddr, u32>,
    /// The sessions of each match, for the frame broadcast.
    by_match: HashMap<u64, Vec<u32>>,
    next_session: u32,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("sessions", &self.sessions.len()).finish_non_exhaustive()
    }
}

impl Server {
    /// A server whose challenge key and sequence start are fresh random values.
    pub fn new(config: ServerConfig) -> Result<Self, getrandom::Error> {
        let mut start = [0u8; 8];
        crate::wire::crypto::random_bytes(&mut start)?;
        Ok(Self::with_run_key(config, Key::random()?, u64::from_be_bytes(start)))
    }

    /// A server with a given challenge key and first challenge sequence (tests).
    pub fn with_run_key(config: ServerConfig, run_key: Key, first_challenge: u64) -> Self {
        Self {
            private: config.private_key.cipher(),
            config,
            run_key: run_key.cipher(),
            next_challenge: AtomicU64::new(first_challenge),
            tokens: Mutex::new(HashMap::new()),
            sessions: HashMap::default(),
            by_player: HashMap::new(),
            by_addr: HashMap::new(),
            by_match: HashMap::new(),
            next_session: 1,
        }
    }

    /// Sessions open now.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// The session of `addr`, if it has one.
    pub fn session_of(&self, addr: SocketAddr) -> Option<u32> {
        self.by_addr.get(&addr).copied()
    }

    /// A connection request from `src` sent to `dst` (the address the client reached, which the
    /// token must name), at `now_ms` (Unix milliseconds). Returns the challenge to send back.
    pub fn on_request(
        &self,
        src: SocketAddr,
        dst: SocketAddr,
        packet: &[u8],
        now_ms: u64,
    ) -> Result<Outgoing, Refused> {
        let header = v2::check_inbound(packet, packet.len()).map_err(|_| Refused::Malformed)?;
        if header.kind != Kind::Request {
            return Err(Refused::Malformed);
        }
        let request = Request::decode(&packet[v2::HEADER_LEN..]).ok_or(Refused::Malformed)?;
        if request.version_info != VERSION_INFO {
            return Err(Refused::TokenVersion);
        }
        if request.protocol_id != self.config.protocol_id {
            return Err(Refused::TokenProtocol);
        }
        let expire_ms = request.expire_ts.saturating_mul(1000);
        if expire_ms <= now_ms {
            return Err(Refused::TokenExpired);
        }
        let sealed = SealedToken {
            protocol_id: request.protocol_id,
            expire_ts: request.expire_ts,
            nonce: request.nonce,
            sealed: request.sealed_token,
        };
        let token = open_token(&self.private, &sealed).ok_or(Refused::TokenInvalid)?;
        if !token.addresses.contains(&dst) {
            return Err(Refused::TokenServer);
        }
        if u32::try_from(token.player_id).is_err() {
            return Err(Refused::PlayerIdRange);
        }
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&request.sealed_token[request.sealed_token.len() - TAG_LEN..]);
        self.remember_token(tag, src, expire_ms, now_ms)?;

        let seq = self.next_challenge.fetch_add(1, Ordering::Relaxed);
        let mut plain = [0u8; CHALLENGE_PLAIN_LEN];
        write_challenge(&mut plain, &token, src, request.expire_ts, now_ms + CHALLENGE_TIMEOUT_MS, &tag);
        let sealed_tag = self.run_key.seal(&run_nonce(seq), &[], &mut plain);
        let mut challenge = Challenge { seq, token: [0u8; CHALLENGE_TOKEN_LEN] };
        challenge.token[..CHALLENGE_PLAIN_LEN].copy_from_slice(&plain);
        challenge.token[CHALLENGE_PLAIN_LEN..].copy_from_slice(&sealed_tag);
        let bytes: [u8; CHALLENGE_LEN] = challenge.seal(&token.s2c_key.cipher());
        Ok(Outgoing { to: src, bytes: bytes.to_vec() })
    }

    /// Remembers a token's first source, refusing it from any other or once it made a session.
    fn remember_token(
        &self,
        tag: [u8; TAG_LEN],
        src: SocketAddr,
        expire_ms: u64,
        now_ms: u64,
    ) -> Result<(), Refused> {
        let mut tokens = self.tokens();
        if let Some(seen) = tokens.get(&tag) {
            return if seen.source == src && !seen.made_session { Ok(()) } else { Err(Refused::TokenReused) };
        }
        if tokens.len() >= self.config.max_tokens {
            tokens.retain(|_, t| t.expire_ms > now_ms);
            if tokens.len() >= self.config.max_tokens {
                return Err(Refused::TokenCacheFull);
            }
        }
        tokens.insert(tag, SeenToken { source: src, expire_ms, made_session: false });
        Ok(())
    }

    /// The cache of tokens seen (a panic while it was held leaves entries, which stay usable).
    fn tokens(&self) -> MutexGuard<'_, HashMap<[u8; TAG_LEN], SeenToken>> {
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A challenge response from `src`. On success the session exists; the caller adds `src` to
    /// the XDP session map and sends the reply. A full server's refusal comes with the `denied`
    /// packet to send. [`Server::check_response`] then [`Server::admit`], for a caller that has the
    /// server to itself.
    pub fn on_response(
        &mut self,
        src: SocketAddr,
        packet: &[u8],
        now_ms: u64,
        now_ns: u64,
    ) -> Result<Accepted, (Refused, Option<Outgoing>)> {
        let response = self.check_response(src, packet, now_ms).map_err(|r| (r, None))?;
        self.admit(response, now_ns)
    }

    /// A challenge response's checks, all its crypto: the challenge token opens under the run
    /// key, was made for `src`, is not past its deadline at `now_ms`, and the proof opens under the
    /// token's client → server key. Changes nothing; [`Server::admit`] makes the session.
    pub fn check_response(&self, src: SocketAddr, packet: &[u8], now_ms: u64) -> Result<Response, Refused> {
        let header = v2::check_inbound(packet, packet.len()).map_err(|_| Refused::Malformed)?;
        if header.kind != Kind::Response {
            return Err(Refused::Malformed);
        }
        let (challenge, proof) = Challenge::from_response(packet).ok_or(Refused::Malformed)?;
        let mut plain = [0u8; CHALLENGE_PLAIN_LEN];
        plain.copy_from_slice(&challenge.token[..CHALLENGE_PLAIN_LEN]);
        let tag: [u8; TAG_LEN] =
            challenge.token[CHALLENGE_PLAIN_LEN..].try_into().map_err(|_| Refused::Malformed)?;
        self.run_key
            .open(&run_nonce(challenge.seq), &[], &mut plain, &tag)
            .map_err(|_| Refused::ChallengeInvalid)?;
        let c = read_challenge(&plain).ok_or(Refused::ChallengeInvalid)?;
        if c.client != src {
            return Err(Refused::ChallengeAddress);
        }
        if c.deadline_ms < now_ms {
            return Err(Refused::ChallengeExpired);
        }
        let c2s = c.c2s.cipher();
        proof.verify(&c2s).map_err(|_| Refused::ResponseUnauthentic)?;
        let s2c = c.s2c.cipher();
        Ok(Response { src, challenge: c, c2s, s2c })
    }

    /// Makes the session of a checked response at `now_ns`; see [`Server::on_response`]. A
    /// response checked twice (retransmitted, or read by two workers) makes one session: the
    /// second gets "connected" again.
    pub fn admit(
        &mut self,
        response: Response,
        now_ns: u64,
    ) -> Result<Accepted, (Refused, Option<Outgoing>)> {
        let refuse = |r: Refused| (r, None);
        let Response { src, challenge: c, c2s, s2c } = response;
        // A response retransmitted after the session was made gets "connected" again.
        if let Some(&id) = self.by_addr.get(&src)
            && let Some(s) = self.sessions.get(&id)
            && s.player_id == c.player_id
        {
            let reply = s.seal(id, Kind::Keepalive, &[], now_ns);
            let joined = Joined {
                session: id,
                player_id: s.player_id,
                match_id: s.match_id,
                user_data: c.user_data,
                addr: src,
            };
            return Ok(Accepted { joined, replaced: None, reply });
        }
        let tokens = self.tokens.get_mut().unwrap_or_else(PoisonError::into_inner);
        match tokens.get_mut(&c.token_tag) {
            Some(t) if t.made_session => return Err(refuse(Refused::TokenReused)),
            Some(t) => t.made_session = true,
            // Forgotten (cache trimmed after expiry): the challenge deadline still held, so the
            // token was valid a moment ago; remember it now so that it makes no second session.
            None => {
                tokens.insert(
                    c.token_tag,
                    SeenToken {
                        source: src,
                        expire_ms: c.token_expire_ts.saturating_mul(1000),
                        made_session: true,
                    },
                );
            }
        }
        let replaced =
            self.by_player.get(&c.player_id).copied().and_then(|old| self.close(old, CloseReason::Replaced));
        if self.sessions.len() >= self.config.max_sessions {
            let mut denied = Vec::new();
            v2::seal(&s2c, Kind::Denied, 0, 0, &[], &mut denied);
            return Err((Refused::Full, Some(Outgoing { to: src, bytes: denied })));
        }
        let id = self.allocate_id();
        let session = Session {
            player_id: c.player_id,
            match_id: c.match_id,
            addr: src,
            c2s,
            s2c,
            timeout_ns: u64::from(c.timeout_s.max(1)) * 1_000_000_000,
            live: Mutex::new(Live {
                window: Window::new(),
                next_send_seq: 1,
                last_recv_ns: now_ns,
                last_send_ns: now_ns,
                last_catch_up_ns: None,
            }),
        };
        let reply = session.seal(id, Kind::Keepalive, &[], now_ns);
        self.sessions.insert(id, session);
        self.by_player.insert(c.player_id, id);
        self.by_addr.insert(src, id);
        self.by_match.entry(c.match_id).or_default().push(id);
        Ok(Accepted {
            joined: Joined {
                session: id,
                player_id: c.player_id,
                match_id: c.match_id,
                user_data: c.user_data,
                addr: src,
            },
            replaced,
            reply,
        })
    }

    fn allocate_id(&mut self) -> u32 {
        loop {
            let id = self.next_session;
            self.next_session = self.next_session.wrapping_add(1).max(1);
            if !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    /// Opens a data packet from `src` into `plain` (at least the payload's size). The AEAD check
    /// comes before the session's lock; only an authentic packet touches its replay window.
    pub fn open_data<'a>(
        &self,
        src: SocketAddr,
        packet: &[u8],
        now_ns: u64,
        plain: &'a mut [u8],
    ) -> Result<Data<'a>, DataDrop> {
        let header: Header = v2::check_inbound(packet, packet.len()).map_err(|_| DataDrop::Malformed)?;
        if header.kind.handshake() {
            return Err(DataDrop::Malformed);
        }
        let session = self.sessions.get(&header.session).ok_or(DataDrop::UnknownSession)?;
        if session.addr != src {
            return Err(DataDrop::WrongAddress);
        }
        let header = v2::open_into(packet, &session.c2s, plain).map_err(|e| match e {
            v2::OpenError::Unauthentic(Unauthentic) => DataDrop::Unauthentic,
            _ => DataDrop::Malformed,
        })?;
        let len = header.payload_len as usize - TAG_LEN;
        let (id, player_id, match_id) = (header.session, session.player_id, session.match_id);
        let data = match header.kind {
            Kind::Input => Data::Input { session: id, player_id, match_id, plain: &plain[..len] },
            Kind::Sync => Data::Sync { session: id, player_id, plain: &plain[..len] },
            Kind::CatchUp => {
                let from_tick =
                    plain[..len].try_into().map(u64::from_be_bytes).map_err(|_| DataDrop::Malformed)?;
                Data::CatchUp { session: id, player_id, match_id, from_tick }
            }
            Kind::Keepalive => Data::Keepalive { session: id },
            Kind::Disconnect => Data::Disconnect { session: id },
            Kind::Request | Kind::Response | Kind::Challenge | Kind::Denied | Kind::Frame | Kind::Message => {
                return Err(DataDrop::Malformed);
            }
        };
        let mut live = session.live();
        live.window.check(header.seq).map_err(|_| DataDrop::Replayed)?;
        live.last_recv_ns = now_ns;
        if matches!(data, Data::CatchUp { .. }) {
            if live.last_catch_up_ns.is_some_and(|at| now_ns.saturating_sub(at) < CATCH_UP_INTERVAL_NS) {
                return Err(DataDrop::CatchUpLimited);
            }
            live.last_catch_up_ns = Some(now_ns);
        }
        Ok(data)
    }

    /// Keepalives due at `now_ns` (sealed here, to sessions sent nothing for the keepalive
    /// interval), and the sessions silent past their timeout, for [`Server::expire`].
    pub fn poll(&self, now_ns: u64) -> (Vec<Outgoing>, Vec<u32>) {
        let interval = self.config.keepalive_interval_ns;
        let mut out = Vec::new();
        let mut silent = Vec::new();
        for (&id, s) in &self.sessions {
            let (last_recv_ns, last_send_ns) = {
                let live = s.live();
                (live.last_recv_ns, live.last_send_ns)
            };
            if now_ns.saturating_sub(last_recv_ns) > s.timeout_ns {
                silent.push(id);
            } else if now_ns.saturating_sub(last_send_ns) >= interval {
                out.push(s.seal(id, Kind::Keepalive, &[], now_ns));
            }
        }
        (out, silent)
    }

    /// Closes those of `sessions` still silent past their timeout at `now_ns` (a packet may have
    /// come since [`Server::poll`] named them); the caller removes their XDP entries.
    pub fn expire(&mut self, sessions: &[u32], now_ns: u64) -> Vec<Closed> {
        let silent = |s: &Session| now_ns.saturating_sub(s.live().last_recv_ns) > s.timeout_ns;
        let mut closed = Vec::new();
        for &id in sessions {
            if self.sessions.get(&id).is_some_and(silent) {
                closed.extend(self.close(id, CloseReason::Timeout));
            }
        }
        closed
    }

    /// Ends a session from the server's side; returns the disconnect packets to send (several:
    /// they are not acknowledged) and the closed session.
    pub fn disconnect(&mut self, session: u32) -> Option<(Vec<Outgoing>, Closed)> {
        let s = self.sessions.get(&session)?;
        let out = (0..DISCONNECT_REDUNDANCY).map(|_| s.seal(session, Kind::Disconnect, &[], 0)).collect();
        let closed = self.close(session, CloseReason::Server)?;
        Some((out, closed))
    }

    /// The session `player_id` holds now, if any.
    pub fn session_of_player(&self, player_id: u64) -> Option<u32> {
        self.by_player.get(&player_id).copied()
    }

    /// The sessions open in `match_id`, as (session, player).
    pub fn match_sessions(&self, match_id: u64) -> impl Iterator<Item = (u32, u64)> + '_ {
        let ids = self.by_match.get(&match_id).map_or(&[][..], Vec::as_slice);
        ids.iter().filter_map(|id| self.sessions.get(id).map(|s| (*id, s.player_id)))
    }

    /// Seals `outbound` (a match's newest frames) as one `Frame` packet for each session of its
    /// match that `mine` accepts, carrying its player's `ack`, into `out`. Returns how many
    /// sessions got nothing because not even the newest frame fits in a packet.
    pub fn broadcast(
        &self,
        outbound: &Outbound,
        now_ns: u64,
        mine: impl Fn(u32) -> bool,
        ack: impl Fn(u32) -> u64,
        out: &mut Vec<Outgoing>,
    ) -> u64 {
        let sessions: Vec<(u32, u64)> =
            self.match_sessions(outbound.match_id).filter(|(id, _)| mine(*id)).collect();
        let records: Vec<&[u8]> = outbound.records.iter().map(|r| &r[..]).collect();
        let mut body = Vec::with_capacity(frame_packet::MAX_BODY_LEN);
        let mut too_large = 0;
        for (session, player) in sessions {
            // Player ids fit 32 bits (checked when the token was opened).
            if frame_packet::body(outbound.tick_hz, ack(player as u32), 0, &records, &mut body) == 0 {
                too_large += 1;
                continue;
            }
            out.extend(self.seal_to(session, Kind::Frame, &body, now_ns));
        }
        too_large
    }

    /// Seals `body` as a `kind` packet to `session` with its s2c key and next sequence number.
    /// A packet sent counts as traffic: no keepalive is due for a second after it.
    pub fn seal_to(&self, session: u32, kind: Kind, body: &[u8], now_ns: u64) -> Option<Outgoing> {
        Some(self.sessions.get(&session)?.seal(session, kind, body, now_ns))
    }

    /// Closes `session` for `reason` (a client's [`Data::Disconnect`], or the game's); `None`
    /// when it is not open (already closed by another packet, or never). The caller removes its
    /// XDP entry.
    pub fn close(&mut self, id: u32, reason: CloseReason) -> Option<Closed> {
        let s = self.sessions.remove(&id)?;
        if self.by_player.get(&s.player_id) == Some(&id) {
            self.by_player.remove(&s.player_id);
        }
        if self.by_addr.get(&s.addr) == Some(&id) {
            self.by_addr.remove(&s.addr);
        }
        if let Some(ids) = self.by_match.get_mut(&s.match_id) {
            ids.retain(|&other| other != id);
            if ids.is_empty() {
                self.by_match.remove(&s.match_id);
            }
        }
        Some(Closed { session: id, player_id: s.player_id, match_id: s.match_id, addr: s.addr, reason })
    }
}

fn open_token(private: &Cipher, sealed: &SealedToken) -> Option<PrivateToken> {
    sealed.open_with(private).ok()
}

/// The challenge token's nonce under the run key: 4 zero bytes, then the sequence.
fn run_nonce(seq: u64) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    n[4..].copy_from_slice(&seq.to_be_bytes());
    n
}

/// An address as 16 bytes (IPv4 v4-mapped) and a port.
fn addr_bytes(addr: SocketAddr) -> [u8; 18] {
    let ip = match addr.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    let mut out = [0u8; 18];
    out[..16].copy_from_slice(&ip.octets());
    out[16..].copy_from_slice(&addr.port().to_be_bytes());
    out
}

fn addr_from(bytes: &[u8; 18]) -> SocketAddr {
    let mut ip = [0u8; 16];
    ip.copy_from_slice(&bytes[..16]);
    let ip = Ipv6Addr::from(ip);
    let ip = ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4);
    SocketAddr::new(ip, u16::from_be_bytes([bytes[16], bytes[17]]))
}

struct ChallengeFields {
    player_id: u64,
    match_id: u64,
    client: SocketAddr,
    token_expire_ts: u64,
    deadline_ms: u64,
    timeout_s: u32,
    token_tag: [u8; TAG_LEN],
    c2s: Key,
    s2c: Key,
    user_data: Vec<u8>,
}

// Challenge token plaintext: player_id:u64 match_id:u64 client_ip:[16] client_port:u16
// token_expire_ts:u64 deadline_ms:u64 timeout_s:u32 token_tag:[16] c2s:[32] s2c:[32]
// user_data_len:u16 user_data:[256], zero-padded to 400 bytes. Only this run reads it.
fn write_challenge(
    out: &mut [u8; CHALLENGE_PLAIN_LEN],
    t: &PrivateToken,
    client: SocketAddr,
    token_expire_ts: u64,
    deadline_ms: u64,
    token_tag: &[u8; TAG_LEN],
) {
    out[0..8].copy_from_slice(&t.player_id.to_be_bytes());
    out[8..16].copy_from_slice(&t.match_id.to_be_bytes());
    out[16..34].copy_from_slice(&addr_bytes(client));
    out[34..42].copy_from_slice(&token_expire_ts.to_be_bytes());
    out[42..50].copy_from_slice(&deadline_ms.to_be_bytes());
    out[50..54].copy_from_slice(&t.timeout_s.to_be_bytes());
    out[54..70].copy_from_slice(token_tag);
    out[70..102].copy_from_slice(t.c2s_key.as_bytes());
    out[102..134].copy_from_slice(t.s2c_key.as_bytes());
    out[134..136].copy_from_slice(&(t.user_data.len() as u16).to_be_bytes());
    out[136..136 + t.user_data.len()].copy_from_slice(&t.user_data);
}

fn read_challenge(b: &[u8; CHALLENGE_PLAIN_LEN]) -> Option<ChallengeFields> {
    let u64_at = |at: usize| b.get(at..at + 8).and_then(|s| s.try_into().ok()).map(u64::from_be_bytes);
    let key_at =
        |at: usize| b.get(at..at + 32).and_then(|s| <[u8; 32]>::try_from(s).ok()).map(Key::from_bytes);
    let user_data_len = usize::from(u16::from_be_bytes([b[134], b[135]]));
    if user_data_len > MAX_USER_DATA {
        return None;
    }
    Some(ChallengeFields {
        player_id: u64_at(0)?,
        match_id: u64_at(8)?,
        client: addr_from(b[16..34].try_into().ok()?),
        token_expire_ts: u64_at(34)?,
        deadline_ms: u64_at(42)?,
        timeout_s: u32::from_be_bytes(b[50..54].try_into().ok()?),
        token_tag: b[54..70].try_into().ok()?,
        c2s: key_at(70)?,
        s2c: key_at(102)?,
        user_data: b[136..136 + user_data_len].to_vec(),
    })
}

#[cfg(test)]
mod tests;
