//! The client side of protocol v2, as a state machine: what a game client does with its connect
//! token, in the order `docs/protocol.md` ("Protocol v2") gives. No sockets: bytes in, bytes out,
//! so the synthetic clients of the demo, the bench and the tests, and any embedding, drive it
//! over whatever transport they have.

use super::token::PublicToken;
use crate::wire::{
    crypto::Cipher,
    frame_packet,
    v2::{self, Challenge, Kind, Request},
};

/// Where the client is in its session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Sending connection requests.
    Requesting,
    /// Got a challenge; sending responses.
    Responding,
    /// The server confirmed: data packets go out under this session id.
    Connected {
        /// The session id the server gave.
        session: u32,
    },
    /// The server is full.
    Denied,
    /// The session ended (either side).
    Disconnected,
}

/// What a packet from the server meant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Nothing (a duplicate, a stray, or a packet that did not open).
    None,
    /// A challenge arrived: send [`Client::handshake_packet`] (now the response).
    Challenged,
    /// The session is up.
    Connected(u32),
    /// The server answered a keepalive.
    Keepalive,
    /// The server is full.
    Denied,
    /// The server ended the session.
    Disconnected,
    /// Frames of the match and the server's ack of this player's inputs.
    Frames(Box<frame_packet::Body>),
    /// A message from the game to this player.
    Message(Vec<u8>),
}

/// One player's connection.
#[derive(Debug)]
pub struct Client {
    request: Request,
    c2s: Cipher,
    s2c: Cipher,
    response: Option<[u8; v2::RESPONSE_LEN]>,
    state: State,
    next_seq: u64,
}

impl Client {
    /// A client that will connect with `token`.
    pub fn new(token: &PublicToken) -> Self {
        Self {
            request: Request {
                version_info: super::token::VERSION_INFO,
                protocol_id: token.sealed.protocol_id,
                expire_ts: token.sealed.expire_ts,
                nonce: token.sealed.nonce,
                sealed_token: token.sealed.sealed,
            },
            c2s: token.c2s_key.cipher(),
            s2c: token.s2c_key.cipher(),
            response: None,
            state: State::Requesting,
            next_seq: 1,
        }
    }

    /// The state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The handshake packet to (re)send now: the request, then the response; `None` once
    /// connected or refused.
    pub fn handshake_packet(&self) -> Option<Vec<u8>> {
        match self.state {
            State::Requesting => Some(self.request.encode().to_vec()),
            State::Responding => self.response.map(|r| r.to_vec()),
            _ => None,
        }
    }

    /// Handles one packet from the server.
    pub fn receive(&mut self, packet: &[u8]) -> Event {
        let Ok(header) = v2::parse_header(packet, packet.len()) else {
            return Event::None;
        };
        match (header.kind, self.state) {
            (Kind::Challenge, State::Requesting | State::Responding) => {
                match Challenge::open(packet, &self.s2c) {
                    Ok(challenge) => {
                        self.response = Some(challenge.respond(&self.c2s));
                        self.state = State::Responding;
                        Event::Challenged
                    }
                    Err(_) => Event::None,
                }
            }
            (Kind::Frame | Kind::Message, State::Connected { .. }) => {
                let mut plain = [0u8; v2::MAX_PAYLOAD_LEN];
                let Ok(header) = v2::open_into(packet, &self.s2c, &mut plain) else {
                    return Event::None;
                };
                let plain =
                    &plain[..usize::from(header.payload_len).saturating_sub(crate::wire::crypto::TAG_LEN)];
                match header.kind {
                    Kind::Message => Event::Message(plain.to_vec()),
                    _ => {
                        frame_packet::decode(plain).map_or(Event::None, |body| Event::Frames(Box::new(body)))
                    }
                }
            }
            (Kind::Keepalive | Kind::Denied | Kind::Disconnect, _) => {
                let mut plain = [0u8; v2::MAX_PAYLOAD_LEN];
                if v2::open_into(packet, &self.s2c, &mut plain).is_err() {
                    return Event::None;
                }
                match (header.kind, self.state) {
                    (Kind::Keepalive, State::Responding) => {
                        self.state = State::Connected { session: header.session };
                        Event::Connected(header.session)
                    }
                    (Kind::Keepalive, State::Connected { .. }) => Event::Keepalive,
                    (Kind::Denied, State::Requesting | State::Responding) => {
                        self.state = State::Denied;
                        Event::Denied
                    }
                    (Kind::Disconnect, State::Connected { .. }) => {
                        self.state = State::Disconnected;
                        Event::Disconnected
                    }
                    _ => Event::None,
                }
            }
            _ => Event::None,
        }
    }

    /// Seals a data packet (`Input`, `Sync`, `Keepalive` or `Disconnect`) into `out`; `false`
    /// (and nothing written) unless connected.
    pub fn seal(&mut self, kind: Kind, body: &[u8], out: &mut Vec<u8>) -> bool {
        let State::Connected { session } = self.state else {
            return false;
        };
        v2::seal(&self.c2s, kind, session, self.next_seq, body, out);
        self.next_seq += 1;
        true
    }

    /// A reader of this session's frame packets for another thread (the one that waits on the
    /// socket while this one sends).
    pub fn frame_reader(&self) -> FrameReader {
        FrameReader { s2c: self.s2c.clone() }
    }

    /// Seals a catch-up request into `out`: "send me my match's frames from `from_tick` on" (after a
    /// reconnect); `false` unless connected. The server answers at most one per 100 ms.
    pub fn catch_up(&mut self, from_tick: u64, out: &mut Vec<u8>) -> bool {
        self.seal(Kind::CatchUp, &from_tick.to_be_bytes(), out)
    }

    /// Ends the session: `copies` disconnect packets to send back to back (they are not
    /// acknowledged, so several survive loss), after which nothing more can be sealed.
    pub fn disconnect(&mut self, copies: usize) -> Vec<Vec<u8>> {
        let packets = (0..copies)
            .map(|_| {
                let mut out = Vec::new();
                self.seal(Kind::Disconnect, &[], &mut out);
                out
            })
            .filter(|p| !p.is_empty())
            .collect();
        self.state = State::Disconnected;
        packets
    }

    /// The sequence number the next sealed packet gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }
}

/// Opens the server's `Frame` packets with the session's server → client key, apart from the
/// [`Client`] that sends (which needs `&mut` for every packet).
#[derive(Clone)]
pub struct FrameReader {
    s2c: Cipher,
}

impl std::fmt::Debug for FrameReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameReader").finish_non_exhaustive()
    }
}

impl FrameReader {
    /// The body of a `Frame` packet of this session; `None` for anything else or anything that
    /// does not open or decode.
    pub fn open(&self, packet: &[u8]) -> Option<frame_packet::Body> {
        let mut plain = [0u8; v2::MAX_PAYLOAD_LEN];
        let header = v2::open_into(packet, &self.s2c, &mut plain).ok()?;
        if header.kind != Kind::Frame {
            return None;
        }
        let len = usize::from(header.payload_len).saturating_sub(crate::wire::crypto::TAG_LEN);
        frame_packet::decode(&plain[..len]).ok()
    }
}
