//! Lab traffic: paced synthetic clients with injected loss, duplication and reordering, a junk
//! flood, and the sender veth's own counters.
//!
//! `tickgate demo` and the bench run these in a [`crate::lab::Lab`]: the senders in the client
//! namespace, tickgate in the receiver namespace. Everything here is bounded by a deadline and a
//! stop flag, and sends only to the address it is given (the lab's receiver).

use std::{
    collections::HashMap,
    io,
    net::{SocketAddr, UdpSocket},
    os::fd::AsFd as _,
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde::Serialize;

use tickgate::{
    input::InputKind,
    session::{
        client::{Client, FrameReader, State},
        token::{self, TokenParams},
    },
    wire::{self, crypto::Key, v2::Kind},
};

use crate::client::SyntheticClient;
use crate::histogram::Histogram;

/// UDP port of the junk that is not game traffic (the discard service): XDP passes it to the
/// kernel stack untouched.
pub const OTHER_PORT: u16 = 9;
/// Size of a junk packet's UDP payload: above the tickgate header, so XDP judges it by its magic.
const JUNK_LEN: usize = 64;

/// A traffic option that cannot be run, or a socket that could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    /// A percentage outside 0..=100.
    #[error("--{flag} {value}: a percentage is between 0 and 100")]
    Percent {
        /// The flag.
        flag: &'static str,
        /// The value given.
        value: f64,
    },
    /// Loss, duplication and reordering together above 100 %.
    #[error(
        "--loss, --duplicate and --reorder add up to {total}%: each packet gets at most one of them, \
         so together they can be at most 100"
    )]
    Total {
        /// Their sum.
        total: f64,
    },
    /// A socket could not be made.
    #[error("cannot open a UDP socket for the demo's {role}: {source}")]
    Socket {
        /// Clients or junk.
        role: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// What the client sender does to packets on purpose; each packet gets at most one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Impairments {
    /// Percent of packets not sent at all.
    pub loss_pct: f64,
    /// Percent of packets sent twice, back to back.
    pub duplicate_pct: f64,
    /// Percent of packets held back and sent after the client's next packet.
    pub reorder_pct: f64,
}

impl Impairments {
    /// Checks each percentage and their sum.
    pub fn validate(&self) -> Result<(), TrafficError> {
        for (flag, value) in
            [("loss", self.loss_pct), ("duplicate", self.duplicate_pct), ("reorder", self.reorder_pct)]
        {
            if !(0.0..=100.0).contains(&value) {
                return Err(TrafficError::Percent { flag, value });
            }
        }
        let total = self.loss_pct + self.duplicate_pct + self.reorder_pct;
        if total > 100.0 {
            return Err(TrafficError::Total { total });
        }
        Ok(())
    }

    fn pick(&self, roll: f64) -> Fate {
        if roll < self.loss_pct {
            Fate::Lose
        } else if roll < self.loss_pct + self.duplicate_pct {
            Fate::Duplicate
        } else if roll < self.loss_pct + self.duplicate_pct + self.reorder_pct {
            Fate::HoldBack
        } else {
            Fate::Send
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Send,
    Lose,
    Duplicate,
    HoldBack,
}

/// A roll in [0, 100) from a seeded generator, so a run's injections are reproducible.
fn percent(rng: &mut fastrand::Rng) -> f64 {
    rng.f64() * 100.0
}

/// A group of synthetic clients one sender thread drives.
#[derive(Clone, Debug)]
pub struct ClientPlan {
    /// Id of the first client; the group is `first_id..first_id + count`.
    pub first_id: u32,
    /// Clients in this group.
    pub count: u32,
    /// Inputs per second per client.
    pub tick_hz: u32,
    /// Inputs each packet carries (the newest and the ones before it).
    pub redundancy: u32,
    /// What to do to packets on purpose.
    pub impairments: Impairments,
    /// Seed of the injection choices.
    pub seed: u64,
    /// The game server.
    pub dst: SocketAddr,
    /// Protocol v2: each client mints its own connect token with this backend key and connects
    /// before sending; `None` sends unauthenticated protocol v1.
    pub sessions: Option<SessionPlan>,
}

/// What protocol v2 clients need: what the game's backend would give them.
#[derive(Clone, Debug)]
pub struct SessionPlan {
    /// The key tokens are minted with (the server's `--key-file`).
    pub backend_key: Key,
    /// The game's protocol id.
    pub protocol_id: u64,
    /// Session timeout in the tokens, seconds.
    pub timeout_s: u32,
    /// Matches the clients are dealt into: client `id` plays in match `id % matches`.
    pub matches: u32,
}

impl SessionPlan {
    /// The match client `id` plays in.
    pub fn match_of(&self, id: u32) -> u64 {
        u64::from(id % self.matches.max(1))
    }
}

/// The round trips protocol v2 clients measure from the frames the server sends back, shared by
/// every sender thread of a run (all on one host, so one CLOCK_TAI).
#[derive(Debug)]
pub struct RoundTrips {
    /// Players per match.
    players: HashMap<u64, u32>,
    inner: Mutex<RoundTripState>,
}

#[derive(Debug, Default)]
struct RoundTripState {
    /// Input sent → the first frame holding it back at its own player.
    own: Histogram,
    /// Input sent → the frame holding it at every player of its match (the slowest one).
    every: Histogram,
    /// Inputs seen by some but not yet all players: (sender, seq) → (slowest so far, players).
    pending: HashMap<(u32, u64), (u64, u32)>,
    frame_packets: u64,
}

/// What [`RoundTrips`] measured.
#[derive(Clone, Debug, Default)]
pub struct RoundTripReport {
    /// Input sent → the first frame holding it back at its own player.
    pub own: Histogram,
    /// Input sent → the frame holding it at every player of its match.
    pub every: Histogram,
    /// Inputs not seen by every player of their match (a frame lost beyond the redundancy, or
    /// the run ended first).
    pub incomplete: u64,
    /// Frame packets the clients received.
    pub frame_packets: u64,
}

impl RoundTrips {
    /// For clients `first..first + count` dealt into matches as `plan` says.
    pub fn new(first: u32, count: u32, plan: &SessionPlan) -> Self {
        let mut players = HashMap::new();
        for id in first..first + count {
            *players.entry(plan.match_of(id)).or_default() += 1;
        }
        Self { players, inner: Mutex::new(RoundTripState::default()) }
    }

    /// Player `me` of `match_id` received a frame holding `inputs` at `now_tai_ns`.
    fn frame(&self, me: u32, match_id: u64, inputs: &[tickgate::input::Input], now_tai_ns: u64) {
        let players = self.players.get(&match_id).copied().unwrap_or(1);
        let Ok(mut state) = self.inner.lock() else { return };
        for input in inputs.iter().filter(|i| i.kind == InputKind::Command) {
            let Some(sent) = crate::client::send_time_ns(input) else { continue };
            let latency = now_tai_ns.saturating_sub(sent);
            if input.client_id == me {
                state.own.record(latency);
            }
            let key = (input.client_id, input.seq);
            let entry = state.pending.entry(key).or_insert((0, 0));
            entry.0 = entry.0.max(latency);
            entry.1 += 1;
            if entry.1 >= players {
                let slowest = entry.0;
                state.pending.remove(&key);
                state.every.record(slowest);
            }
        }
    }

    fn packet(&self) {
        if let Ok(mut state) = self.inner.lock() {
            state.frame_packets += 1;
        }
    }

    /// What was measured.
    pub fn report(&self) -> RoundTripReport {
        let Ok(state) = self.inner.lock() else { return RoundTripReport::default() };
        RoundTripReport {
            own: state.own.clone(),
            every: state.every.clone(),
            incomplete: state.pending.len() as u64,
            frame_packets: state.frame_packets,
        }
    }
}

/// How long a group of clients may take to connect before the ones left are given up on.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the client senders did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SendStats {
    /// Clients.
    pub clients: u32,
    /// Packets the clients made, one per input.
    pub packets_generated: u64,
    /// Packets handed to the kernel, duplicates counted twice.
    pub packets_sent: u64,
    /// Packets dropped on purpose (`--loss`).
    pub lost: u64,
    /// Packets sent twice (`--duplicate`).
    pub duplicated: u64,
    /// Packets sent after the client's next one (`--reorder`).
    pub reordered: u64,
    /// Sends the kernel refused.
    pub send_errors: u64,
    /// Inputs (commands) in the packets sent: each packet repeats up to `redundancy` of them.
    pub commands_sent: u64,
    /// Distinct inputs the clients made.
    pub inputs_generated: u64,
    /// Distinct inputs carried by at least one packet that was sent: what the server can get.
    pub inputs_sent: u64,
    /// Inputs carried by the second copies of duplicated packets (v2 drops those copies whole,
    /// as replays, before their inputs are looked at).
    pub duplicate_commands: u64,
    /// Protocol v2 handshake packets sent (requests and responses, retries included).
    pub handshake_packets: u64,
    /// Clients that got no session in time and sent nothing.
    pub connect_failures: u64,
}

impl SendStats {
    /// Sums two groups.
    pub fn merge(self, o: Self) -> Self {
        Self {
            clients: self.clients + o.clients,
            packets_generated: self.packets_generated + o.packets_generated,
            packets_sent: self.packets_sent + o.packets_sent,
            lost: self.lost + o.lost,
            duplicated: self.duplicated + o.duplicated,
            reordered: self.reordered + o.reordered,
            send_errors: self.send_errors + o.send_errors,
            commands_sent: self.commands_sent + o.commands_sent,
            inputs_generated: self.inputs_generated + o.inputs_generated,
            inputs_sent: self.inputs_sent + o.inputs_sent,
            duplicate_commands: self.duplicate_commands + o.duplicate_commands,
            handshake_packets: self.handshake_packets + o.handshake_packets,
            connect_failures: self.connect_failures + o.connect_failures,
        }
    }
}

struct ClientState {
    client: SyntheticClient,
    socket: UdpSocket,
    rng: fastrand::Rng,
    held: Option<(Vec<u8>, u64)>,
    covered_upto: u64,
    session: Option<Client>,
}

/// One v2 client as the frame receiver sees it.
struct Listener {
    socket: UdpSocket,
    reader: FrameReader,
    id: u32,
    match_id: u64,
    /// The newest tick whose frame it took in (records come newest first, and repeated).
    newest_tick: Option<u64>,
}

/// Waits on every listener's socket until `until` (or `stop`) and takes in each frame packet the
/// moment it arrives: each frame once, its inputs' round trips to `trips`.
fn listen(listeners: &mut [Listener], until: Instant, stop: &AtomicBool, trips: &RoundTrips) {
    let mut buf = [0u8; 2048];
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        let fds: Vec<_> = listeners.iter().map(|l| l.socket.as_fd()).collect();
        let Ok(ready) = tickgate::sys::poll_readable_many(&fds, Duration::from_millis(5)) else { break };
        drop(fds);
        for i in ready {
            let l = &mut listeners[i];
            while let Ok(n) = tickgate::sys::recv_dontwait(l.socket.as_fd(), &mut buf) {
                let Some(body) = l.reader.open(&buf[..n]) else { continue };
                let now = tickgate::sys::clock_tai_ns();
                trips.packet();
                let mut records = body.records;
                records.sort_by_key(|r| r.tick);
                for record in records {
                    if l.newest_tick.is_some_and(|newest| record.tick <= newest) {
                        continue;
                    }
                    l.newest_tick = Some(record.tick);
                    trips.frame(l.id, l.match_id, &record.inputs, now);
                }
            }
        }
    }
}

/// Mints a token for each client and runs their handshakes together, retrying every 50 ms for up
/// to [`CONNECT_TIMEOUT`]; clients that do not connect are dropped from the group (counted).
fn connect(clients: &mut Vec<ClientState>, plan: &ClientPlan, sessions: &SessionPlan, stats: &mut SendStats) {
    let now_s = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    for state in clients.iter_mut() {
        let params = TokenParams {
            protocol_id: sessions.protocol_id,
            create_ts: now_s,
            expire_ts: now_s + 3600,
            timeout_s: sessions.timeout_s,
            match_id: sessions.match_of(state.client.id()),
            player_id: u64::from(state.client.id()),
            user_data: Vec::new(),
            addresses: vec![plan.dst],
            c2s_key: Key::random().unwrap_or_else(|_| Key::from_bytes([state.client.id() as u8; 32])),
            s2c_key: Key::random().unwrap_or_else(|_| Key::from_bytes([!(state.client.id() as u8); 32])),
        };
        if let Ok(bytes) = token::mint_random(&sessions.backend_key, &params)
            && let Ok(public) = token::parse(&bytes)
        {
            state.session = Some(Client::new(&public));
        }
        let _ = state.socket.set_nonblocking(true);
    }
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        let mut waiting = 0;
        for state in clients.iter_mut() {
            let Some(session) = state.session.as_mut() else { continue };
            while let Ok((n, _)) = state.socket.recv_from(&mut buf) {
                session.receive(&buf[..n]);
            }
            if let Some(packet) = session.handshake_packet() {
                waiting += 1;
                if state.socket.send_to(&packet, plan.dst).is_ok() {
                    stats.handshake_packets += 1;
                }
            }
        }
        if waiting == 0 {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let before = clients.len();
    clients.retain(|s| matches!(s.session.as_ref().map(Client::state), Some(State::Connected { .. })));
    for state in clients.iter() {
        // Paced sends block briefly on a full socket buffer rather than fail.
        let _ = state.socket.set_nonblocking(false);
    }
    stats.connect_failures += (before - clients.len()) as u64;
}

/// Sleeps until `deadline` (no-op if it has passed).
fn sleep_until(deadline: Instant) {
    let now = Instant::now();
    if deadline > now {
        thread::sleep(deadline - now);
    }
}

/// Offset of `slot` (tick × clients + client) from the start: client `i` of `n` sends at
/// `i/n` of each tick, so a group's packets are spread over the tick like real clients'.
fn slot_offset(tick: u64, client: u32, clients: u32, tick_hz: u32) -> Duration {
    let n = u128::from(clients.max(1));
    let ns = (u128::from(tick) * n + u128::from(client)) * 1_000_000_000 / (n * u128::from(tick_hz.max(1)));
    Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
}

fn send(state: &ClientState, packet: &[u8], commands: u64, dst: SocketAddr, stats: &mut SendStats) {
    match state.socket.send_to(packet, dst) {
        Ok(_) => {
            stats.packets_sent += 1;
            stats.commands_sent += commands;
        }
        Err(e) => {
            if stats.send_errors == 0 {
                log::warn!("client {}: send failed: {e} (counted as send_errors)", state.client.id());
            }
            stats.send_errors += 1;
        }
    }
}

/// Runs the group at `tick_hz` from now until `until` or `stop`, each client on its own UDP
/// socket (its own flow, so RSS spreads the clients over the RX queues), pacing every send to an
/// absolute deadline. Held-back packets still pending at the end are sent before returning.
/// Protocol v2 clients take in the frames the server sends back and measure round trips into
/// `trips`.
pub fn run_clients(
    plan: &ClientPlan,
    until: Instant,
    stop: &AtomicBool,
    trips: &RoundTrips,
) -> Result<SendStats, TrafficError> {
    let bind: SocketAddr = if plan.dst.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let mut clients = Vec::with_capacity(plan.count as usize);
    for i in 0..plan.count {
        let id = plan.first_id + i;
        let socket =
            UdpSocket::bind(bind).map_err(|source| TrafficError::Socket { role: "clients", source })?;
        clients.push(ClientState {
            client: SyntheticClient::new(id, plan.redundancy),
            socket,
            rng: fastrand::Rng::with_seed(plan.seed ^ u64::from(id).wrapping_mul(0xA24B_AED4_963E_E407)),
            held: None,
            covered_upto: 0,
            session: None,
        });
    }
    let mut stats = SendStats { clients: plan.count, ..SendStats::default() };
    if let Some(sessions) = &plan.sessions {
        connect(&mut clients, plan, sessions, &mut stats);
    }
    let mut listeners: Vec<Listener> = Vec::new();
    if let Some(sessions) = &plan.sessions {
        for state in &clients {
            let (Some(session), Ok(socket)) = (&state.session, state.socket.try_clone()) else { continue };
            let id = state.client.id();
            listeners.push(Listener {
                socket,
                reader: session.frame_reader(),
                id,
                match_id: sessions.match_of(id),
                newest_tick: None,
            });
        }
    }
    thread::scope(|scope| {
        // Frames still on their way when the senders stop are taken in for a moment longer.
        let listening = (!listeners.is_empty())
            .then(|| scope.spawn(|| listen(&mut listeners, until + LISTEN_AFTER, stop, trips)));
        send_all(plan, &mut clients, until, stop, &mut stats);
        if let Some(listening) = listening {
            let _ = listening.join();
        }
    });
    Ok(stats)
}

/// How long the frame listener goes on after the senders stop.
const LISTEN_AFTER: Duration = Duration::from_millis(300);

/// The paced send loop of [`run_clients`].
fn send_all(
    plan: &ClientPlan,
    clients: &mut [ClientState],
    until: Instant,
    stop: &AtomicBool,
    stats: &mut SendStats,
) {
    let mut body = Vec::new();
    let redundancy = u64::from(plan.redundancy.clamp(1, wire::MAX_COMMANDS as u32));
    let mut packet = Vec::new();
    let start = Instant::now();
    'run: for tick in 0u64.. {
        for (i, state) in clients.iter_mut().enumerate() {
            let due = start + slot_offset(tick, i as u32, plan.count, plan.tick_hz);
            if due >= until || stop.load(Ordering::Relaxed) {
                break 'run;
            }
            sleep_until(due);
            let now = tickgate::sys::clock_tai_ns();
            let seq = match state.session.as_mut() {
                Some(session) => {
                    let seq = state.client.next_body(now, &mut body);
                    session.seal(Kind::Input, &body, &mut packet);
                    seq
                }
                None => state.client.next_packet(now, &mut packet),
            };
            stats.packets_generated += 1;
            stats.inputs_generated += 1;
            let commands = seq.min(redundancy);
            let held_before = state.held.take();
            let fate = plan.impairments.pick(percent(&mut state.rng));
            if fate != Fate::Lose {
                // Inputs first carried by this packet: the ones not yet covered by an earlier
                // sent packet (decided in seq order, so covered_upto < seq here).
                stats.inputs_sent += seq - state.covered_upto.max(seq.saturating_sub(redundancy));
                state.covered_upto = seq;
            }
            match fate {
                Fate::Lose => stats.lost += 1,
                Fate::Send => send(state, &packet, commands, plan.dst, stats),
                Fate::Duplicate => {
                    stats.duplicated += 1;
                    stats.duplicate_commands += commands;
                    send(state, &packet, commands, plan.dst, stats);
                    send(state, &packet, commands, plan.dst, stats);
                }
                // Only one packet is held at a time, so a held packet is late by one slot.
                Fate::HoldBack if held_before.is_none() => {
                    stats.reordered += 1;
                    state.held = Some((packet.clone(), commands));
                }
                Fate::HoldBack => send(state, &packet, commands, plan.dst, stats),
            }
            if let Some((held, held_commands)) = held_before {
                send(state, &held, held_commands, plan.dst, stats);
            }
        }
    }
    for state in clients.iter_mut() {
        if let Some((held, commands)) = state.held.take() {
            send(state, &held, commands, plan.dst, stats);
        }
    }
}

/// What the junk flood sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct JunkStats {
    /// Packets to the game port with a wrong magic (XDP drops them as bad_magic).
    pub bad_magic: u64,
    /// Packets to a port that is not a game port (XDP passes them to the kernel).
    pub other_port: u64,
    /// Sends the kernel refused.
    pub send_errors: u64,
}

/// Floods `game` with wrong-magic packets and `other` with plain UDP, alternating, at `pps`
/// packets per second in total until `until` or `stop`. A stalled flood does not catch up by
/// more than 10 ms worth of packets at once.
pub fn flood(
    game: SocketAddr,
    other: SocketAddr,
    pps: u64,
    until: Instant,
    stop: &AtomicBool,
) -> Result<JunkStats, TrafficError> {
    let mut stats = JunkStats::default();
    if pps == 0 {
        return Ok(stats);
    }
    let bind: SocketAddr = if game.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let socket =
        UdpSocket::bind(bind).map_err(|source| TrafficError::Socket { role: "junk flood", source })?;
    let mut bad_magic = [0u8; JUNK_LEN];
    bad_magic[..4].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    let mut other_payload = [0u8; JUNK_LEN];
    other_payload[..17].copy_from_slice(b"not a game packet");
    let max_burst = (pps / 100).max(1);
    let start = Instant::now();
    let mut sent = 0u64;
    let mut next_wake = start;
    loop {
        let now = Instant::now();
        if now >= until || stop.load(Ordering::Relaxed) {
            break;
        }
        let due =
            u64::try_from(u128::from(pps) * (now - start).as_nanos() / 1_000_000_000).unwrap_or(u64::MAX);
        // Catch up by at most a burst: packets not sent in a stall are skipped, not bunched.
        sent = sent.max(due.saturating_sub(max_burst));
        while sent < due {
            let to_game = sent.is_multiple_of(2);
            let (payload, dst) = if to_game { (&bad_magic, game) } else { (&other_payload, other) };
            match socket.send_to(payload, dst) {
                Ok(_) if to_game => stats.bad_magic += 1,
                Ok(_) => stats.other_port += 1,
                Err(_) => stats.send_errors += 1,
            }
            sent += 1;
        }
        next_wake += Duration::from_millis(1);
        sleep_until(next_wake.min(until));
    }
    Ok(stats)
}

/// Counters of the sender's veth, read in the client namespace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VethCounters {
    /// Packets the veth carried to its peer.
    pub tx_packets: u64,
    /// Packets the veth dropped instead (the peer's queue was full).
    pub tx_dropped: u64,
}

impl VethCounters {
    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            tx_packets: self.tx_packets.saturating_sub(earlier.tx_packets),
            tx_dropped: self.tx_dropped.saturating_sub(earlier.tx_dropped),
        }
    }
}

/// Reads `ifname`'s counters from `/proc/thread-self/net/dev`: the calling thread's namespace.
pub fn veth_counters(ifname: &str) -> io::Result<VethCounters> {
    parse_net_dev(&std::fs::read_to_string("/proc/thread-self/net/dev")?, ifname)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{ifname} is not in /proc/net/dev")))
}

fn parse_net_dev(text: &str, ifname: &str) -> Option<VethCounters> {
    text.lines().find_map(|line| {
        let (name, rest) = line.split_once(':')?;
        if name.trim() != ifname {
            return None;
        }
        let fields: Vec<u64> = rest.split_whitespace().map(|f| f.parse().ok()).collect::<Option<_>>()?;
        // rx: bytes packets errs drop fifo frame compressed multicast; tx: bytes packets errs drop …
        Some(VethCounters { tx_packets: *fields.get(9)?, tx_dropped: *fields.get(11)? })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impairments_are_checked_and_split_the_roll() {
        let i = Impairments { loss_pct: 10.0, duplicate_pct: 20.0, reorder_pct: 30.0 };
        assert!(i.validate().is_ok());
        assert_eq!(i.pick(9.99), Fate::Lose);
        assert_eq!(i.pick(10.0), Fate::Duplicate);
        assert_eq!(i.pick(29.9), Fate::Duplicate);
        assert_eq!(i.pick(59.9), Fate::HoldBack);
        assert_eq!(i.pick(60.0), Fate::Send);
        assert!(matches!(Impairments { loss_pct: 101.0, ..i }.validate(), Err(TrafficError::Percent { .. })));
        assert!(matches!(Impairments { loss_pct: 60.0, ..i }.validate(), Err(TrafficError::Total { .. })));
        assert!(Impairments::default().validate().is_ok());
        assert_eq!(Impairments::default().pick(0.0), Fate::Send);
    }

    #[test]
    fn the_rng_is_uniform_enough_and_reproducible() {
        let mut a = fastrand::Rng::with_seed(7);
        let mut b = fastrand::Rng::with_seed(7);
        let rolls: Vec<f64> = (0..10_000).map(|_| percent(&mut a)).collect();
        assert!(rolls.iter().all(|&r| (0.0..100.0).contains(&r)));
        assert_eq!(rolls[..5], (0..5).map(|_| percent(&mut b)).collect::<Vec<_>>()[..]);
        let below_ten = rolls.iter().filter(|&&r| r < 10.0).count();
        assert!((800..1200).contains(&below_ten), "{below_ten}");
    }

    #[test]
    fn slots_spread_clients_over_the_tick() {
        assert_eq!(slot_offset(0, 0, 4, 100), Duration::ZERO);
        assert_eq!(slot_offset(0, 1, 4, 100), Duration::from_micros(2_500));
        assert_eq!(slot_offset(3, 2, 4, 100), Duration::from_millis(35));
        assert_eq!(slot_offset(60, 0, 16, 60), Duration::from_secs(1));
    }

    #[test]
    fn net_dev_lines_give_the_tx_counters() {
        let text = "Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop fifo colls carrier compressed\n    lo: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\ntgdt10:  10 1 0 0 0 0 0 0 9000 120 0 3 0 0 0 0\n";
        assert_eq!(parse_net_dev(text, "tgdt10"), Some(VethCounters { tx_packets: 120, tx_dropped: 3 }));
        assert_eq!(parse_net_dev(text, "tgdt1"), None);
    }
}
