//! The demo's traffic and bookkeeping: paced synthetic clients with injected loss, duplication and
//! reordering, a junk flood, a latency histogram, and the accounting that explains every packet.
//!
//! `tickgate demo` runs these in a [`crate::lab::Lab`]: the senders in the client namespace, an
//! [`crate::ingress::Ingress`] in the receiver namespace. Everything here is bounded by a
//! deadline and a stop flag, and sends only to the address it is given (the lab's receiver).

use std::{
    io,
    net::{SocketAddr, UdpSocket},
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::{Duration, Instant},
};

use serde::Serialize;

use crate::{client::SyntheticClient, ingress::IngressReport, wire};

/// UDP port of the junk that is not game traffic (the discard service): XDP passes it to the
/// kernel stack untouched.
pub const OTHER_PORT: u16 = 9;
/// Size of a junk packet's UDP payload: above the tickgate header, so XDP judges it by its magic.
const JUNK_LEN: usize = 64;

/// A demo option the pipeline cannot run with.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
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
    pub fn validate(&self) -> Result<(), DemoError> {
        for (flag, value) in
            [("loss", self.loss_pct), ("duplicate", self.duplicate_pct), ("reorder", self.reorder_pct)]
        {
            if !(0.0..=100.0).contains(&value) {
                return Err(DemoError::Percent { flag, value });
            }
        }
        let total = self.loss_pct + self.duplicate_pct + self.reorder_pct;
        if total > 100.0 {
            return Err(DemoError::Total { total });
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

/// splitmix64: a tiny, seedable generator, so a demo run's injections are reproducible.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 100).
    fn percent(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 100.0
    }
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
}

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
        }
    }
}

struct ClientState {
    client: SyntheticClient,
    socket: UdpSocket,
    rng: Rng,
    held: Option<(Vec<u8>, u64)>,
    covered_upto: u64,
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
pub fn run_clients(plan: &ClientPlan, until: Instant, stop: &AtomicBool) -> Result<SendStats, DemoError> {
    let bind: SocketAddr = if plan.dst.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let mut clients = Vec::with_capacity(plan.count as usize);
    for i in 0..plan.count {
        let id = plan.first_id + i;
        let socket = UdpSocket::bind(bind).map_err(|source| DemoError::Socket { role: "clients", source })?;
        clients.push(ClientState {
            client: SyntheticClient::new(id, plan.redundancy),
            socket,
            rng: Rng(plan.seed ^ u64::from(id).wrapping_mul(0xA24B_AED4_963E_E407)),
            held: None,
            covered_upto: 0,
        });
    }
    let redundancy = u64::from(plan.redundancy.clamp(1, wire::MAX_COMMANDS as u32));
    let mut stats = SendStats { clients: plan.count, ..SendStats::default() };
    let mut packet = Vec::new();
    let start = Instant::now();
    'run: for tick in 0u64.. {
        for (i, state) in clients.iter_mut().enumerate() {
            let due = start + slot_offset(tick, i as u32, plan.count, plan.tick_hz);
            if due >= until || stop.load(Ordering::Relaxed) {
                break 'run;
            }
            sleep_until(due);
            let seq = state.client.next_packet(crate::sys::clock_tai_ns(), &mut packet);
            stats.packets_generated += 1;
            stats.inputs_generated += 1;
            let commands = seq.min(redundancy);
            let held_before = state.held.take();
            let fate = plan.impairments.pick(state.rng.percent());
            if fate != Fate::Lose {
                // Inputs first carried by this packet: the ones not yet covered by an earlier
                // sent packet (decided in seq order, so covered_upto < seq here).
                stats.inputs_sent += seq - state.covered_upto.max(seq.saturating_sub(redundancy));
                state.covered_upto = seq;
            }
            match fate {
                Fate::Lose => stats.lost += 1,
                Fate::Send => send(state, &packet, commands, plan.dst, &mut stats),
                Fate::Duplicate => {
                    stats.duplicated += 1;
                    send(state, &packet, commands, plan.dst, &mut stats);
                    send(state, &packet, commands, plan.dst, &mut stats);
                }
                // Only one packet is held at a time, so a held packet is late by one slot.
                Fate::HoldBack if held_before.is_none() => {
                    stats.reordered += 1;
                    state.held = Some((packet.clone(), commands));
                }
                Fate::HoldBack => send(state, &packet, commands, plan.dst, &mut stats),
            }
            if let Some((held, held_commands)) = held_before {
                send(state, &held, held_commands, plan.dst, &mut stats);
            }
        }
    }
    for state in &mut clients {
        if let Some((held, commands)) = state.held.take() {
            send(state, &held, commands, plan.dst, &mut stats);
        }
    }
    Ok(stats)
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
) -> Result<JunkStats, DemoError> {
    let mut stats = JunkStats::default();
    if pps == 0 {
        return Ok(stats);
    }
    let bind: SocketAddr = if game.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let socket = UdpSocket::bind(bind).map_err(|source| DemoError::Socket { role: "junk flood", source })?;
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

/// Sub-buckets per power of two: values are kept to within 1/64 (1.6 %).
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
const BUCKETS: usize = (SUB as usize) * (64 - SUB_BITS as usize + 1);

/// A log-linear histogram of nanosecond values: constant memory whatever the run length, each
/// value kept to within 1.6 %, min and max exact.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    count: u64,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self { counts: Box::new([0; BUCKETS]), count: 0, min: u64::MAX, max: 0 }
    }
}

fn bucket_of(v: u64) -> usize {
    if v < 2 * SUB {
        return v as usize;
    }
    let shift = 63 - v.leading_zeros() - SUB_BITS;
    (SUB as usize) * (shift as usize + 1) + ((v >> shift) - SUB) as usize
}

/// The highest value that falls in bucket `b`.
fn bucket_high(b: usize) -> u64 {
    if b < 2 * SUB as usize {
        return b as u64;
    }
    let shift = (b / SUB as usize - 1) as u32;
    let low = (SUB + (b % SUB as usize) as u64) << shift;
    low + ((1u64 << shift) - 1)
}

impl Histogram {
    /// Adds one value.
    pub fn record(&mut self, v: u64) {
        self.counts[bucket_of(v)] += 1;
        self.count += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Self) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The largest value, exact (`None` if empty).
    pub fn max(&self) -> Option<u64> {
        (self.count > 0).then_some(self.max)
    }

    /// The smallest value `v` such that at least `pct` % of the values are ≤ `v` (to within
    /// 1.6 %, never above the maximum); `None` if empty.
    pub fn percentile(&self, pct: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((pct.clamp(0.0, 100.0) / 100.0 * self.count as f64).ceil() as u64).clamp(1, self.count);
        // The extremes are known exactly.
        if rank == 1 {
            return Some(self.min);
        }
        if rank == self.count {
            return Some(self.max);
        }
        let mut seen = 0;
        for (b, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(bucket_high(b).clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }

    /// Percentiles in milliseconds, for the summary.
    pub fn summary_ms(&self) -> LatencySummary {
        let ms = |v: Option<u64>| v.map(|ns| ns as f64 / 1e6);
        LatencySummary {
            inputs: self.count,
            min_ms: ms((self.count > 0).then_some(self.min)),
            p50_ms: ms(self.percentile(50.0)),
            p90_ms: ms(self.percentile(90.0)),
            p99_ms: ms(self.percentile(99.0)),
            p999_ms: ms(self.percentile(99.9)),
            max_ms: ms(self.max()),
        }
    }
}

/// Latency percentiles in ms (`None` when nothing was measured).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Inputs measured.
    pub inputs: u64,
    /// Smallest.
    pub min_ms: Option<f64>,
    /// Median.
    pub p50_ms: Option<f64>,
    /// 90th percentile.
    pub p90_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// 99.9th percentile.
    pub p999_ms: Option<f64>,
    /// Largest.
    pub max_ms: Option<f64>,
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

/// Every packet and input of a demo run, balanced. Each `*_unexplained` is what one balance
/// misses; `unexplained` is the sum of their magnitudes: 0 when everything is explained.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Accounting {
    /// Packets the demo sent: game packets and junk.
    pub sent: u64,
    /// Packets the sender veth carried to the receiver during the traffic.
    pub veth_carried: u64,
    /// Packets the sender veth dropped during the traffic (the receiver's queue was full).
    pub lost_in_veth: u64,
    /// `veth_carried + lost_in_veth - sent`: packets of the client namespace's own kernel (IPv6
    /// MLD reports after the link came up); a negative value would be unexplained.
    pub kernel_packets: i128,
    /// Packets XDP had seen before the traffic started: the client namespace's kernel too.
    pub xdp_before_traffic: u64,
    /// `xdp rx_packets during the traffic - veth_carried`: every packet the veth carried reached
    /// XDP.
    pub wire_unexplained: i128,
    /// `rx_packets - (steered + passed + no_socket + dropped)`.
    pub xdp_unexplained: i128,
    /// `steered - (received by workers + ring drops)`.
    pub steered_unexplained: i128,
    /// `received by workers - (decoded + dropped by reason)`.
    pub workers_unexplained: i128,
    /// Game packets sent that no worker decoded (shed, no socket, ring drops, lost in the veth).
    pub game_packets_not_decoded: u64,
    /// Inputs the clients sent that were not delivered (every copy lost on the way).
    pub inputs_not_delivered: i128,
    /// With every game packet decoded: `commands sent - (delivered + rejected + handoff_full)`,
    /// and `inputs sent - delivered` unless an input was dropped for a reason other than
    /// being a duplicate. Not checked otherwise (which commands were lost is unknown).
    pub inputs_unexplained: Option<i128>,
    /// `delivered - (ordered + late_dropped + dropped_no_floor)`.
    pub sequencer_unexplained: i128,
    /// `inputs taken from frames - ordered`.
    pub frames_unexplained: i128,
    /// Sum of the magnitudes of the above.
    pub unexplained: u64,
}

impl Accounting {
    /// Balances what was sent against what every stage counted. `veth` is what the sender veth
    /// counted during the traffic, `xdp_before_traffic` the XDP `rx_packets` when it started
    /// (both read together), `inputs_taken` the inputs in the frames the demo took.
    pub fn compute(
        clients: &SendStats,
        junk: &JunkStats,
        veth: &VethCounters,
        xdp_before_traffic: u64,
        report: &IngressReport,
        inputs_taken: u64,
    ) -> Self {
        let i = i128::from;
        let sent = clients.packets_sent + junk.bad_magic + junk.other_port;
        let kernel_packets = i(veth.tx_packets) + i(veth.tx_dropped) - i(sent);
        let wire_unexplained = i(report.counters.rx_packets) - i(xdp_before_traffic) - i(veth.tx_packets);
        let workers_unexplained: i128 = report.queues.iter().map(|q| q.unexplained_packets()).sum();
        let sum =
            |f: &dyn Fn(&crate::worker::QueueReport) -> u64| -> u64 { report.queues.iter().map(f).sum() };
        let decoded = sum(&|q| q.decoded.get("input_packets").copied().unwrap_or(0));
        let delivered = sum(&|q| q.delivered);
        let rejected = sum(&|q| q.dropped_inputs.values().sum());
        let rejected_not_duplicate =
            rejected - sum(&|q| q.dropped_inputs.get("duplicate").copied().unwrap_or(0));
        let game_packets_not_decoded = clients.packets_sent.saturating_sub(decoded);
        let inputs_unexplained = (game_packets_not_decoded == 0).then(|| {
            let commands = i(clients.commands_sent) - i(delivered) - i(rejected);
            let inputs = if rejected_not_duplicate == 0 { i(clients.inputs_sent) - i(delivered) } else { 0 };
            commands.abs() + inputs.abs()
        });
        let s = &report.sequencer;
        let sequencer_unexplained =
            i(delivered) - i(s.inputs_ordered) - i(s.late_dropped) - i(s.dropped_no_floor);
        let frames_unexplained = i(inputs_taken) - i(s.inputs_ordered);
        let mut out = Self {
            sent,
            veth_carried: veth.tx_packets,
            lost_in_veth: veth.tx_dropped,
            kernel_packets,
            xdp_before_traffic,
            wire_unexplained,
            xdp_unexplained: report.counters.unaccounted(),
            steered_unexplained: report.unexplained_steered,
            workers_unexplained,
            game_packets_not_decoded,
            inputs_not_delivered: i(clients.inputs_sent) - i(delivered),
            inputs_unexplained,
            sequencer_unexplained,
            frames_unexplained,
            unexplained: 0,
        };
        let total: i128 = [
            out.kernel_packets.min(0),
            out.wire_unexplained,
            out.xdp_unexplained,
            out.steered_unexplained,
            out.workers_unexplained,
            out.inputs_unexplained.unwrap_or(0),
            out.sequencer_unexplained,
            out.frames_unexplained,
        ]
        .iter()
        .map(|v| v.abs())
        .sum();
        out.unexplained = u64::try_from(total).unwrap_or(u64::MAX);
        out
    }
}

/// The drop counts the live line shows, from a report taken while running.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drops {
    /// Inputs removed as duplicates by the workers.
    pub duplicate: u64,
    /// Game-port packets with a wrong magic, dropped by XDP.
    pub bad_magic: u64,
    /// Game packets over their source's rate limit, dropped by XDP.
    pub rate_limited: u64,
    /// Everything else dropped anywhere: other XDP reasons, kernel ring drops, worker packet and
    /// input drops.
    pub other: u64,
}

impl Drops {
    /// The counts of `report`.
    pub fn of(report: &IngressReport) -> Self {
        let xdp = |k: &str| report.counters.dropped.get(k).copied().unwrap_or(0);
        let (bad_magic, rate_limited) = (xdp("bad_magic"), xdp("rate_limited"));
        let mut duplicate = 0;
        let mut other = report.counters.dropped_total() - bad_magic - rate_limited;
        for q in &report.queues {
            let dup = q.dropped_inputs.get("duplicate").copied().unwrap_or(0);
            duplicate += dup;
            other += q.dropped_inputs.values().sum::<u64>() - dup;
            other += q.dropped_packets.values().sum::<u64>();
            other += q.xdp_statistics.rx_dropped + q.xdp_statistics.rx_ring_full;
        }
        Self { duplicate, bad_magic, rate_limited, other }
    }
}

/// One line of the live output.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LiveLine {
    /// Whole seconds since the clients started.
    pub t_s: u64,
    /// Inputs taken from frames per second over the last interval.
    pub inputs_per_s: u64,
    /// Frames taken so far.
    pub frames: u64,
    /// Late inputs so far.
    pub late: u64,
    /// Drops so far.
    pub drops: Drops,
    /// 99th percentile latency over the last interval, ns.
    pub p99_ns: Option<u64>,
}

impl std::fmt::Display for LiveLine {
    /// `t=3s inputs/s=960 frames=180 late=0 dropped: duplicate=1900 bad_magic=10000
    /// rate_limited=0 other=0 p99=17.9ms`, on one line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = &self.drops;
        write!(
            f,
            "t={}s inputs/s={} frames={} late={} dropped: duplicate={} bad_magic={} rate_limited={} other={} p99=",
            self.t_s,
            self.inputs_per_s,
            self.frames,
            self.late,
            d.duplicate,
            d.bad_magic,
            d.rate_limited,
            d.other
        )?;
        match self.p99_ns {
            Some(ns) => write!(f, "{:.1}ms", ns as f64 / 1e6),
            None => write!(f, "-"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{counters::XdpCounters, frame_queue::Stats, loader::Mode, worker::QueueReport};

    #[test]
    fn impairments_are_checked_and_split_the_roll() {
        let i = Impairments { loss_pct: 10.0, duplicate_pct: 20.0, reorder_pct: 30.0 };
        assert!(i.validate().is_ok());
        assert_eq!(i.pick(9.99), Fate::Lose);
        assert_eq!(i.pick(10.0), Fate::Duplicate);
        assert_eq!(i.pick(29.9), Fate::Duplicate);
        assert_eq!(i.pick(59.9), Fate::HoldBack);
        assert_eq!(i.pick(60.0), Fate::Send);
        assert!(matches!(Impairments { loss_pct: 101.0, ..i }.validate(), Err(DemoError::Percent { .. })));
        assert!(matches!(Impairments { loss_pct: 60.0, ..i }.validate(), Err(DemoError::Total { .. })));
        assert!(Impairments::default().validate().is_ok());
        assert_eq!(Impairments::default().pick(0.0), Fate::Send);
    }

    #[test]
    fn the_rng_is_uniform_enough_and_reproducible() {
        let mut a = Rng(7);
        let mut b = Rng(7);
        let rolls: Vec<f64> = (0..10_000).map(|_| a.percent()).collect();
        assert!(rolls.iter().all(|&r| (0.0..100.0).contains(&r)));
        assert_eq!(rolls[..5], (0..5).map(|_| b.percent()).collect::<Vec<_>>()[..]);
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
    fn histogram_percentiles_are_within_the_bucket_precision() {
        let mut h = Histogram::default();
        assert_eq!(h.percentile(99.0), None);
        for v in 1..=10_000u64 {
            h.record(v * 1_000);
        }
        assert_eq!(h.count(), 10_000);
        for (pct, want) in [(50.0, 5_000_000.0), (99.0, 9_900_000.0), (100.0, 10_000_000.0)] {
            let got = h.percentile(pct).unwrap() as f64;
            assert!((got - want).abs() / want < 1.0 / 64.0, "p{pct}: {got} vs {want}");
        }
        assert_eq!(h.percentile(0.0), Some(1_000));
        assert_eq!(h.max(), Some(10_000_000));
        let mut other = Histogram::default();
        other.record(u64::MAX);
        other.record(0);
        h.merge(&other);
        assert_eq!((h.count(), h.max(), h.percentile(0.0)), (10_002, Some(u64::MAX), Some(0)));
    }

    #[test]
    fn buckets_are_contiguous_and_cover_u64() {
        for b in 0..BUCKETS - 1 {
            assert_eq!(bucket_of(bucket_high(b)), b);
            assert_eq!(bucket_of(bucket_high(b) + 1), b + 1, "bucket {b}");
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket_high(BUCKETS - 1), u64::MAX);
    }

    #[test]
    fn net_dev_lines_give_the_tx_counters() {
        let text = "Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop fifo colls carrier compressed\n    lo: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\ntgdt10:  10 1 0 0 0 0 0 0 9000 120 0 3 0 0 0 0\n";
        assert_eq!(parse_net_dev(text, "tgdt10"), Some(VethCounters { tx_packets: 120, tx_dropped: 3 }));
        assert_eq!(parse_net_dev(text, "tgdt1"), None);
    }

    fn report(
        steered: u64,
        bad_magic: u64,
        passed: u64,
        received: u64,
        delivered: u64,
        duplicate: u64,
    ) -> IngressReport {
        let mut dropped: BTreeMap<&'static str, u64> =
            BTreeMap::from([("bad_magic", bad_magic), ("rate_limited", 0)]);
        dropped.insert("too_short", 0);
        IngressReport {
            interface: "x".into(),
            pid: 1,
            attached: false,
            program: "tickgate_tai",
            mode: Mode::Native,
            attach: "",
            timestamp_source: "",
            ports: vec![7777],
            uptime_s: 1.0,
            counters: XdpCounters {
                rx_packets: steered + bad_magic + passed,
                steered,
                passed,
                no_socket: 0,
                dropped,
            },
            timestamps: Default::default(),
            queues: vec![QueueReport {
                received,
                delivered,
                decoded: BTreeMap::from([("input_packets", received), ("sync_packets", 0)]),
                dropped_inputs: BTreeMap::from([("duplicate", duplicate), ("handoff_full", 0)]),
                ..QueueReport::default()
            }],
            sequencer: Stats { inputs_ordered: delivered, ..Stats::default() },
            unexplained_steered: i128::from(steered) - i128::from(received),
        }
    }

    #[test]
    fn a_balanced_run_has_nothing_unexplained_and_a_missing_packet_shows() {
        // 10 packets of redundancy 3 from one client: 1 + 2 + 3 × 8 = 27 commands, 10 inputs.
        let clients = SendStats {
            clients: 1,
            packets_generated: 10,
            packets_sent: 10,
            commands_sent: 27,
            inputs_generated: 10,
            inputs_sent: 10,
            ..SendStats::default()
        };
        let junk = JunkStats { bad_magic: 5, other_port: 4, send_errors: 0 };
        let veth = VethCounters { tx_packets: 19, tx_dropped: 0 };
        let compute = |veth: &VethCounters, before: u64, report: &IngressReport, taken: u64| {
            Accounting::compute(&clients, &junk, veth, before, report, taken)
        };
        let good = compute(&veth, 0, &report(10, 5, 4, 10, 10, 17), 10);
        assert_eq!(good.unexplained, 0, "{good:?}");
        assert_eq!((good.inputs_unexplained, good.sent, good.kernel_packets), (Some(0), 19, 0));
        // One duplicate delivered instead of removed: more inputs delivered than were sent.
        let doubled = compute(&veth, 0, &report(10, 5, 4, 10, 11, 16), 11);
        assert_eq!((doubled.inputs_not_delivered, doubled.inputs_unexplained), (-1, Some(1)), "{doubled:?}");
        assert_eq!(doubled.unexplained, 1);
        // One input neither delivered nor rejected: the commands balance shows it.
        let vanished = compute(&veth, 0, &report(10, 5, 4, 10, 9, 17), 9);
        assert_eq!((vanished.inputs_unexplained, vanished.unexplained), (Some(2), 2), "{vanished:?}");
        // A packet the veth carried that XDP never saw.
        let missing = compute(&veth, 0, &report(10, 4, 4, 10, 10, 17), 10);
        assert_eq!((missing.wire_unexplained, missing.unexplained), (-1, 1));
        // The veth dropped it instead: explained.
        let dropped = VethCounters { tx_packets: 18, tx_dropped: 1 };
        assert_eq!(compute(&dropped, 0, &report(10, 4, 4, 10, 10, 17), 10).unexplained, 0);
        // A kernel packet (passed by XDP) before and one during the traffic: explained.
        let kernel =
            compute(&VethCounters { tx_packets: 20, tx_dropped: 0 }, 1, &report(10, 5, 6, 10, 10, 17), 10);
        assert_eq!((kernel.kernel_packets, kernel.unexplained), (1, 0), "{kernel:?}");
        // Fewer packets on the wire than the demo sent, none dropped: unexplained.
        let short =
            compute(&VethCounters { tx_packets: 18, tx_dropped: 0 }, 0, &report(10, 4, 4, 10, 10, 17), 10);
        assert_eq!((short.kernel_packets, short.unexplained), (-1, 1));
        // A frame input the sequencer did not count.
        assert_eq!(compute(&veth, 0, &report(10, 5, 4, 10, 10, 17), 9).frames_unexplained, -1);
    }

    #[test]
    fn the_live_line_has_a_stable_format() {
        let line = LiveLine {
            t_s: 3,
            inputs_per_s: 960,
            frames: 180,
            late: 0,
            drops: Drops { duplicate: 1_900, bad_magic: 10_000, rate_limited: 0, other: 2 },
            p99_ns: Some(17_940_000),
        };
        assert_eq!(
            line.to_string(),
            "t=3s inputs/s=960 frames=180 late=0 dropped: duplicate=1900 bad_magic=10000 rate_limited=0 other=2 p99=17.9ms"
        );
        assert!(LiveLine::default().to_string().ends_with("p99=-"));
    }

    #[test]
    fn drops_sum_every_reason_outside_the_named_ones() {
        let mut r = report(10, 5, 4, 10, 10, 17);
        r.counters.dropped.insert("too_short", 2);
        r.queues[0].dropped_inputs.insert("too_old", 1);
        r.queues[0].xdp_statistics.rx_ring_full = 3;
        assert_eq!(Drops::of(&r), Drops { duplicate: 17, bad_magic: 5, rate_limited: 0, other: 6 });
    }
}
