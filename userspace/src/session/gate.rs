//! The session layer as the workers share it: one [`Server`] for the run, the XDP session map it
//! keeps in step, where each client is on the link (to write reply frames), and its counters.
//!
//! Every worker handles the handshake and data packets of its own queue through [`Gate`]. The
//! server is behind a read lock per worker slot ([`ReadMostly`]): every packet's AEAD work (a data
//! packet's open, a request's token, a response's checks) and every seal run under the worker's
//! own shared lock, side by side on all workers and writing nothing they share; only a change to
//! the session table (a session made or closed) takes every slot's lock, for a few map updates. Lock order everywhere: the server, then `homes` and `endpoints`.
//! Replies are whole Ethernet frames for the worker's AF_XDP TX ring; keepalives and timeouts
//! come from [`Gate::poll`], which one worker calls.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use serde::Serialize;
pub use tickgate_common::session::HandshakeLimit;

use super::{
    server::{Accepted, CloseReason, Closed, Data, DataDrop, Outgoing, Refused, Server, ServerConfig},
    shared::ReadMostly,
};
use crate::{
    broadcast::{CatchUp, Outbound},
    input::InputKind,
    steer::SessionMap,
    wire::{
        frame_packet::{self, FLAG_CATCH_UP, FLAG_TOO_OLD},
        udp::Endpoints,
        v2::{self, Kind},
    },
};

/// What a run needs for protocol v2.
#[derive(Clone, Debug)]
pub struct SessionsConfig {
    /// Tokens, capacity, keepalives.
    pub server: ServerConfig,
    /// The handshake budget XDP enforces.
    pub handshake_limit: HandshakeLimit,
}

/// What a v2 packet led to, for the worker.
#[derive(Debug)]
pub enum Outcome<'a> {
    /// Nothing for the sequencer (a handshake step, a keepalive, or a counted drop).
    Handled,
    /// A reconnected player asks for its match's frames from `from_tick` on.
    CatchUp {
        /// The session to answer.
        session: u32,
        /// The player.
        player: u32,
        /// Its match.
        match_id: u64,
        /// The first tick wanted.
        from_tick: u64,
    },
    /// Inputs (an `InputFrame`'s plaintext) from `player`.
    Input {
        /// The player (as the frames carry it).
        player: u32,
        /// The player's match.
        match_id: u64,
        /// The decrypted `InputFrame`.
        plain: &'a [u8],
    },
}

/// A join or leave, for the frame stream (the worker turns it into an [`crate::input::Input`] of
/// that kind at the time of the packet that caused it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionEvent {
    /// [`InputKind::Join`] or [`InputKind::Leave`].
    pub kind: InputKind,
    /// The player.
    pub player: u32,
    /// The player's match.
    pub match_id: u64,
    /// The session.
    pub session: u32,
    /// Join: the token's user data. Leave: the reason's name.
    pub data: Vec<u8>,
}

/// Counters of the session layer, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SessionsReport {
    /// Sessions open now.
    pub open: u64,
    /// Sessions created.
    pub joined: u64,
    /// Sessions ended, by reason.
    pub closed: std::collections::BTreeMap<&'static str, u64>,
    /// Challenges sent.
    pub challenges: u64,
    /// Handshake packets refused, by reason.
    pub refused: std::collections::BTreeMap<&'static str, u64>,
    /// Data packets dropped, by reason.
    pub dropped: std::collections::BTreeMap<&'static str, u64>,
    /// Reply frames the gate produced (challenges, denied, keepalives, disconnects, frames).
    pub replies: u64,
    /// Frame packets sealed for players (each also counted in `replies`).
    pub frame_packets: u64,
    /// Frames not sent because one frame alone does not fit in a packet.
    pub frame_too_large: u64,
    /// Frame packets that answered catch-up requests (also in `frame_packets`).
    pub catch_up_packets: u64,
    /// Game messages sealed to one player (`Message` packets; also in `replies`).
    pub direct_messages: u64,
    /// XDP session-map updates that failed (the session still works in userspace; its data
    /// packets are dropped by XDP until the next update).
    pub map_errors: u64,
}

/// One run's session layer.
pub struct Gate {
    server: ReadMostly<Server>,
    map: SessionMap,
    endpoints: Mutex<HashMap<SocketAddr, Endpoints>>,
    /// Session → the worker slot that receives its packets and sends its frames.
    homes: Mutex<HashMap<u32, usize>>,
    joined: AtomicU64,
    closed: [AtomicU64; CloseReason::ALL.len()],
    challenges: AtomicU64,
    refused: [AtomicU64; Refused::ALL.len()],
    dropped: [AtomicU64; DataDrop::ALL.len()],
    replies: AtomicU64,
    frame_packets: AtomicU64,
    frame_too_large: AtomicU64,
    catch_up_packets: AtomicU64,
    direct_messages: AtomicU64,
    map_errors: AtomicU64,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Gate {
    /// A gate over `server` that keeps `map` in step, for `workers` workers (each reads the
    /// server through a lock of its own: its slot's).
    pub fn new(server: Server, map: SessionMap, workers: usize) -> Self {
        Self {
            server: ReadMostly::new(server, workers),
            map,
            endpoints: Mutex::new(HashMap::new()),
            homes: Mutex::new(HashMap::new()),
            joined: AtomicU64::new(0),
            closed: std::array::from_fn(|_| AtomicU64::new(0)),
            challenges: AtomicU64::new(0),
            refused: std::array::from_fn(|_| AtomicU64::new(0)),
            dropped: std::array::from_fn(|_| AtomicU64::new(0)),
            replies: AtomicU64::new(0),
            frame_packets: AtomicU64::new(0),
            frame_too_large: AtomicU64::new(0),
            catch_up_packets: AtomicU64::new(0),
            direct_messages: AtomicU64::new(0),
            map_errors: AtomicU64::new(0),
        }
    }

    fn refuse(&self, r: Refused) {
        if let Some(i) = Refused::ALL.iter().position(|&x| x == r) {
            bump(&self.refused[i]);
        }
    }

    fn drop_data(&self, d: DataDrop) {
        if let Some(i) = DataDrop::ALL.iter().position(|&x| x == d) {
            bump(&self.dropped[i]);
        }
    }

    /// Bookkeeping for a session `server` closed; called with the server's exclusive lock still
    /// held, so that no session of the same address can be made on another worker between the
    /// close and the removal of its XDP entry. An address the server already gives to a newer
    /// session keeps its entry and endpoints.
    fn closed(&self, server: &Server, c: &Closed, events: &mut Vec<SessionEvent>) {
        events.push(SessionEvent {
            kind: InputKind::Leave,
            player: c.player_id as u32,
            match_id: c.match_id,
            session: c.session,
            data: c.reason.name().as_bytes().to_vec(),
        });
        if let Some(i) = CloseReason::ALL.iter().position(|&x| x == c.reason) {
            bump(&self.closed[i]);
        }
        if server.session_of(c.addr).is_none() {
            if self.map.remove(c.addr).is_err() {
                bump(&self.map_errors);
            }
            if let Ok(mut e) = self.endpoints.lock() {
                e.remove(&c.addr);
            }
        }
        if let Ok(mut homes) = self.homes.lock() {
            homes.remove(&c.session);
        }
    }

    fn frame_for(&self, out: &Outgoing, via: Option<&Endpoints>, frames: &mut Vec<Vec<u8>>) {
        let endpoints = match via {
            Some(e) => Some(*e),
            None => self.endpoints.lock().ok().and_then(|e| e.get(&out.to).copied()),
        };
        if let Some(e) = endpoints {
            let mut frame = Vec::with_capacity(out.bytes.len() + 70);
            e.reply(&out.bytes, &mut frame);
            frames.push(frame);
            bump(&self.replies);
        }
    }

    /// Handles one v2 packet (`payload`, the UDP payload) of `frame`, received by worker `slot`;
    /// reply frames are appended to `frames`. `plain` holds the plaintext of an input packet.
    #[expect(clippy::too_many_arguments, reason = "a packet, its worker and the worker's reusable buffers")]
    pub fn packet<'a>(
        &self,
        slot: usize,
        frame: &[u8],
        payload: &[u8],
        now_ns: u64,
        plain: &'a mut [u8],
        frames: &mut Vec<Vec<u8>>,
        events: &mut Vec<SessionEvent>,
    ) -> Outcome<'a> {
        let Some(endpoints) = Endpoints::parse(frame) else {
            self.drop_data(DataDrop::Malformed);
            return Outcome::Handled;
        };
        let kind = v2::parse_header(payload, payload.len()).map(|h| h.kind);
        match kind {
            Ok(Kind::Request) => {
                let server = self.server.read(slot);
                match server.on_request(endpoints.peer, endpoints.local, payload, now_ms()) {
                    Ok(challenge) => {
                        bump(&self.challenges);
                        self.frame_for(&challenge, Some(&endpoints), frames);
                    }
                    Err(r) => self.refuse(r),
                }
            }
            Ok(Kind::Response) => {
                let checked = self.server.read(slot).check_response(endpoints.peer, payload, now_ms());
                let response = match checked {
                    Ok(response) => response,
                    Err(r) => {
                        self.refuse(r);
                        return Outcome::Handled;
                    }
                };
                // Only a response that passed every check takes the table to itself, and keeps it
                // until the XDP entry, endpoints and home are in place (a close of this session on
                // another worker comes after them, not between).
                let mut server = self.server.write();
                match server.admit(response, now_ns) {
                    Ok(Accepted { joined, replaced, reply }) => {
                        if let Some(old) = replaced {
                            self.closed(&server, &old, events);
                        }
                        events.push(SessionEvent {
                            kind: InputKind::Join,
                            // Checked to fit 32 bits when the token was opened.
                            player: joined.player_id as u32,
                            match_id: joined.match_id,
                            session: joined.session,
                            data: joined.user_data.clone(),
                        });
                        if let Ok(mut e) = self.endpoints.lock() {
                            e.insert(joined.addr, endpoints);
                        }
                        if let Ok(mut homes) = self.homes.lock() {
                            homes.insert(joined.session, slot);
                        }
                        if self.map.insert(joined.addr, joined.session).is_err() {
                            bump(&self.map_errors);
                        }
                        bump(&self.joined);
                        self.frame_for(&reply, Some(&endpoints), frames);
                    }
                    Err((r, denied)) => {
                        self.refuse(r);
                        if let Some(denied) = denied {
                            self.frame_for(&denied, Some(&endpoints), frames);
                        }
                    }
                }
            }
            Ok(_) => {
                let opened = self.server.read(slot).open_data(endpoints.peer, payload, now_ns, plain);
                match opened {
                    // Player ids were checked to fit 32 bits when the session was made.
                    Ok(Data::Input { player_id, match_id, plain, .. }) => {
                        return Outcome::Input { player: player_id as u32, match_id, plain };
                    }
                    Ok(Data::CatchUp { session, player_id, match_id, from_tick }) => {
                        return Outcome::CatchUp { session, player: player_id as u32, match_id, from_tick };
                    }
                    Ok(Data::Sync { .. } | Data::Keepalive { .. }) => {}
                    Ok(Data::Disconnect { session }) => {
                        let mut server = self.server.write();
                        // Another copy of the goodbye may have closed it first.
                        match server.close(session, CloseReason::Disconnect) {
                            Some(closed) => self.closed(&server, &closed, events),
                            None => self.drop_data(DataDrop::UnknownSession),
                        }
                    }
                    Err(d) => self.drop_data(d),
                }
            }
            Err(_) => self.drop_data(DataDrop::Malformed),
        }
        Outcome::Handled
    }

    /// Keepalives due and sessions timed out at `now_ns`: reply frames for the caller's TX ring.
    pub fn poll(&self, now_ns: u64, frames: &mut Vec<Vec<u8>>, events: &mut Vec<SessionEvent>) {
        let (out, silent) = self.server.read(0).poll(now_ns);
        if !silent.is_empty() {
            let mut server = self.server.write();
            for c in server.expire(&silent, now_ns) {
                self.closed(&server, &c, events);
            }
        }
        for o in &out {
            self.frame_for(o, None, frames);
        }
    }

    /// Seals `outbound` (a match's newest frames) for each player of its match whose session
    /// worker `slot` serves, as `Frame` packets carrying the player's `ack`; the frames go to
    /// `frames` for that worker's TX ring.
    pub fn broadcast(
        &self,
        slot: usize,
        outbound: &Outbound,
        now_ns: u64,
        ack: impl Fn(u32) -> u64,
        frames: &mut Vec<Vec<u8>>,
    ) {
        // Lock order everywhere: server, then homes and endpoints.
        let server = self.server.read(slot);
        let Ok(homes) = self.homes.lock() else { return };
        let mut out = Vec::new();
        let too_large = server.broadcast(outbound, now_ns, |id| homes.get(&id) == Some(&slot), ack, &mut out);
        drop(homes);
        self.frame_too_large.fetch_add(too_large, Ordering::Relaxed);
        self.frame_packets.fetch_add(out.len() as u64, Ordering::Relaxed);
        for o in &out {
            self.frame_for(o, None, frames);
        }
    }

    /// Answers a catch-up request of `session`: `found` (the history from the tick asked for)
    /// packed into as few `Frame` packets as hold it, oldest first, each with the player's `ack`.
    pub fn catch_up(&self, session: u32, found: &CatchUp, ack: u64, now_ns: u64, frames: &mut Vec<Vec<u8>>) {
        let server = self.server.read(0);
        let flags = FLAG_CATCH_UP | if found.too_old { FLAG_TOO_OLD } else { 0 };
        let mut records: Vec<&[u8]> = found.records.iter().map(|r| &r[..]).collect();
        let mut body = Vec::with_capacity(frame_packet::MAX_BODY_LEN);
        loop {
            let taken = frame_packet::body(found.tick_hz, ack, flags, &records, &mut body);
            if taken == 0 && !records.is_empty() {
                bump(&self.frame_too_large);
                records.remove(0);
                continue;
            }
            if let Some(out) = server.seal_to(session, Kind::Frame, &body, now_ns) {
                bump(&self.frame_packets);
                bump(&self.catch_up_packets);
                self.frame_for(&out, None, frames);
            }
            records.drain(..taken);
            if records.is_empty() {
                break;
            }
        }
    }

    /// Where `player_id`'s session is: (session, worker slot).
    pub fn home_of(&self, player_id: u64) -> Option<(u32, usize)> {
        let server = self.server.read(0);
        let session = server.session_of_player(player_id)?;
        let slot = *self.homes.lock().ok()?.get(&session)?;
        Some((session, slot))
    }

    /// Ends every session of `match_id` from the server's side: disconnect packets to `frames`,
    /// leaves to `events`.
    pub fn end_match(&self, match_id: u64, frames: &mut Vec<Vec<u8>>, events: &mut Vec<SessionEvent>) {
        let mut server = self.server.write();
        let sessions: Vec<u32> = server.match_sessions(match_id).map(|(id, _)| id).collect();
        for id in sessions {
            if let Some((out, closed)) = server.disconnect(id) {
                for o in &out {
                    self.frame_for(o, None, frames);
                }
                self.closed(&server, &closed, events);
            }
        }
    }

    /// Seals a game message to `session` as a `Message` packet, into `frames`.
    pub fn direct(&self, session: u32, body: &[u8], now_ns: u64, frames: &mut Vec<Vec<u8>>) {
        let server = self.server.read(0);
        if let Some(out) = server.seal_to(session, Kind::Message, body, now_ns) {
            bump(&self.direct_messages);
            self.frame_for(&out, None, frames);
        }
    }

    /// The counters now.
    pub fn report(&self) -> SessionsReport {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SessionsReport {
            open: self.server.read(0).len() as u64,
            joined: load(&self.joined),
            closed: CloseReason::ALL.iter().map(|c| c.name()).zip(self.closed.iter().map(load)).collect(),
            challenges: load(&self.challenges),
            refused: Refused::ALL.iter().map(|r| r.name()).zip(self.refused.iter().map(load)).collect(),
            dropped: DataDrop::ALL.iter().map(|d| d.name()).zip(self.dropped.iter().map(load)).collect(),
            replies: load(&self.replies),
            frame_packets: load(&self.frame_packets),
            frame_too_large: load(&self.frame_too_large),
            catch_up_packets: load(&self.catch_up_packets),
            direct_messages: load(&self.direct_messages),
            map_errors: load(&self.map_errors),
        }
    }
}
