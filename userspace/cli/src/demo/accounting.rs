//! The demo's bookkeeping: the latency histogram, the accounting that balances every packet
//! against every stage's counters, and the live line.

use serde::Serialize;
use tickgate::{
    ingress::IngressReport,
    session::anti_replay::Reject,
    worker::{Counter, QueueReport},
};

pub use tickgate_testkit::histogram::{Histogram, LatencySummary};
use tickgate_testkit::traffic::{JunkStats, SendStats, VethCounters};

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
        let sent = clients.packets_sent + clients.handshake_packets + junk.bad_magic + junk.other_port;
        let kernel_packets = i(veth.tx_packets) + i(veth.tx_dropped) - i(sent);
        let wire_unexplained = i(report.counters.rx_packets) - i(xdp_before_traffic) - i(veth.tx_packets);
        let workers_unexplained: i128 = report.queues.iter().map(|q| q.unexplained_packets()).sum();
        let sum = |f: &dyn Fn(&QueueReport) -> u64| -> u64 { report.queues.iter().map(f).sum() };
        let decoded = sum(&|q| q.count(Counter::InputPackets));
        let delivered = sum(&|q| q.delivered);
        let events = sum(&|q| q.events);
        let rejected = sum(&|q| q.dropped_inputs.values().sum());
        let rejected_not_duplicate = rejected - sum(&|q| q.rejected(Reject::Duplicate));
        // Protocol v2 drops a duplicated packet whole, as a replay, before its inputs are read;
        // v1 reads them and rejects each as a duplicate.
        let replayed = report.sessions.as_ref().and_then(|v| v.dropped.get("replayed").copied()).unwrap_or(0);
        let unread_commands = if report.sessions.is_some() { clients.duplicate_commands } else { 0 };
        let game_packets_not_decoded = clients.packets_sent.saturating_sub(decoded + replayed);
        let inputs_unexplained = (game_packets_not_decoded == 0).then(|| {
            let commands = i(clients.commands_sent) - i(unread_commands) - i(delivered) - i(rejected);
            let inputs = if rejected_not_duplicate == 0 { i(clients.inputs_sent) - i(delivered) } else { 0 };
            commands.abs() + inputs.abs()
        });
        let s = &report.sequencer;
        let sequencer_unexplained =
            i(delivered) + i(events) - i(s.inputs_ordered) - i(s.late_dropped) - i(s.dropped_no_floor);
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
            let dup = q.rejected(Reject::Duplicate);
            duplicate += dup;
            other += q.dropped_inputs.values().sum::<u64>() - dup;
            other += q.dropped_packets.values().sum::<u64>();
            other += q.unread();
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

    use tickgate::{frame_queue::Stats, steer::Mode, steer::counters::XdpCounters, worker::QueueReport};

    use super::*;

    #[test]
    fn histogram_percentiles_are_within_the_precision() {
        let mut h = Histogram::default();
        assert_eq!(h.percentile(99.0), None);
        assert_eq!(h.summary_ms().p50_ms, None);
        for v in 1..=10_000u64 {
            h.record(v * 1_000);
        }
        assert_eq!(h.count(), 10_000);
        for (pct, want) in [(50.0, 5_000_000.0), (99.0, 9_900_000.0), (100.0, 10_000_000.0)] {
            let got = h.percentile(pct).unwrap() as f64;
            assert!((got - want).abs() / want < 1e-3, "p{pct}: {got} vs {want}");
        }
        assert_eq!(h.percentile(0.0), Some(1_000));
        assert_eq!(h.max(), Some(10_000_000));
        h.record(u64::MAX);
        h.record(0);
        assert_eq!((h.count(), h.max(), h.percentile(0.0)), (10_002, Some(u64::MAX), Some(0)));
        let s = h.summary_ms();
        assert_eq!((s.inputs, s.min_ms), (10_002, Some(0.0)));
        assert!((s.p50_ms.unwrap() - 5.0).abs() < 0.01, "{s:?}");
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
            sessions: None,
            broadcast: None,
            replies: "none",
            insecure_v1: true,
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
