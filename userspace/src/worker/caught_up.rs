//! A watermark the XDP program's count proves, instead of one the slack guesses.
//!
//! The program numbers the packets it steers on each RX queue and counts them in `RX_SEQ`,
//! counting each packet *before* stamping it (`xdp-prog/src/main.rs`, `count_on_queue`). A
//! worker reads the clock (`t`), then its queue's count (`n`), then its ring. Every packet
//! numbered above `n` was counted after the worker read `n`, so it was stamped after `t`; if the
//! worker has read packet `n` (or a later one), nothing stamped before `t` can still come from
//! its queue: packets up to `n` are in its hands or were dropped by the kernel on the way (and
//! counted there, as ring drops). So the watermark is `t`, less [`MARGIN_NS`], rather than
//! `t − slack`, where the slack bounds the stamp → ring delay from measurements.
//!
//! The proof holds for the XDP-hook clock in native mode only: a NIC stamp is taken before the
//! program runs (a packet still in the NIC's ring has an earlier stamp and no number yet), and in
//! skb mode two CPUs may run one queue's packets, so the program's plain increment may lose
//! counts. A queue outside those conditions keeps the slack rule, as does a queue that has not
//! read its count's packet yet (still on its way from the program to the ring).

use tickgate_common::meta::{RxMeta, flags};

/// Subtracted from the proved instant: the program's store of the count may reach memory after
/// its clock read, and the worker's clock read and count load are not ordered either; both
/// take well under a microsecond on x86 (a store buffer drains in nanoseconds, and any exit
/// to the hypervisor drains it).
pub const MARGIN_NS: u64 = 2_000;

/// One queue's state for the rule.
#[derive(Clone, Copy, Debug)]
pub struct CaughtUp {
    /// The highest packet number read from the ring.
    last_read: u64,
    /// Whether every packet read so far was stamped at the hook (a NIC stamp ends the rule).
    hook_stamps_only: bool,
}

impl Default for CaughtUp {
    fn default() -> Self {
        Self { last_read: 0, hook_stamps_only: true }
    }
}

impl CaughtUp {
    /// Notes a packet read from the ring.
    #[inline]
    pub fn read(&mut self, meta: &RxMeta) {
        self.last_read = self.last_read.max(meta.rx_seq);
        self.hook_stamps_only &= meta.flags & flags::TS_NIC == 0;
    }

    /// Whether the worker, having read its ring dry after seeing the count `count` (read after
    /// the clock), holds every packet stamped before that clock read. `None`: no count to go by.
    #[inline]
    pub fn holds_all(&self, count: Option<u64>) -> bool {
        self.hook_stamps_only && count.is_some_and(|n| self.last_read >= n)
    }

    /// Whether a packet the program counted before the read (`count`) is not read yet: it is on
    /// its way from the program to the ring, and its arrival will wake a worker that watches the
    /// ring (a paced worker does then, rather than wait for its next timed read).
    #[inline]
    pub fn awaits(&self, count: Option<u64>) -> bool {
        self.hook_stamps_only && count.is_some_and(|n| n > self.last_read)
    }

    /// The watermark for a drained ring: `before` less [`trail`]`(proved, slack_ns)`, and whether
    /// it was proved ([`holds_all`](Self::holds_all)).
    #[inline]
    pub fn watermark(&self, before: u64, count: Option<u64>, slack_ns: u64) -> (u64, bool) {
        let proved = self.holds_all(count);
        (before.saturating_sub(trail(proved, slack_ns)), proved)
    }
}

/// How far a watermark trails the instant before its read: [`MARGIN_NS`] when proved (never
/// more than a smaller slack), else the slack. The seal-instant alarm trails by the same.
#[inline]
pub fn trail(proved: bool, slack_ns: u64) -> u64 {
    if proved { MARGIN_NS.min(slack_ns) } else { slack_ns }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(rx_seq: u64, flags: u32) -> RxMeta {
        RxMeta { rx_seq, flags, ..RxMeta::default() }
    }

    #[test]
    fn the_count_proves_the_watermark_only_once_its_packet_is_read() {
        let mut q = CaughtUp::default();
        // Nothing steered yet, nothing read: the queue holds everything there is.
        assert_eq!(q.watermark(1_000_000, Some(0), 500_000), (998_000, true));
        // The program counted packet 1 before the worker looked; it is not in the ring yet.
        assert_eq!(q.watermark(2_000_000, Some(1), 500_000), (1_500_000, false));
        q.read(&meta(1, flags::TS_XDP));
        assert_eq!(q.watermark(3_000_000, Some(1), 500_000), (2_998_000, true));
        // A later packet read than the count seen (it arrived between the count and the ring).
        q.read(&meta(3, flags::TS_XDP));
        assert!(q.holds_all(Some(2)));
        assert!(!q.holds_all(Some(4)));
        // No mapping of the counts: the slack rule.
        assert_eq!(q.watermark(3_000_000, None, 500_000), (2_500_000, false));
    }

    #[test]
    fn a_dropped_packet_is_passed_by_the_next_one_read() {
        let mut q = CaughtUp::default();
        q.read(&meta(1, flags::TS_XDP));
        // Packet 2 was dropped on the way (ring full): the worker never reads it.
        assert!(!q.holds_all(Some(2)));
        assert!(q.awaits(Some(2)), "a worker cannot tell a drop from a packet on its way");
        q.read(&meta(3, flags::TS_XDP));
        assert!(q.holds_all(Some(3)));
        assert!(!q.awaits(Some(3)));
    }

    #[test]
    fn a_nic_stamp_ends_the_rule_for_the_queue() {
        let mut q = CaughtUp::default();
        q.read(&meta(1, flags::TS_NIC | flags::HW_PROGRAM));
        assert!(!q.holds_all(Some(1)));
        q.read(&meta(2, flags::TS_XDP | flags::HW_PROGRAM));
        assert!(!q.holds_all(Some(2)), "a NIC-stamped queue may stamp again before the program runs");
        assert!(!q.awaits(Some(3)), "nothing to wait for without the proof");
    }

    #[test]
    fn the_margin_never_exceeds_a_smaller_slack() {
        let q = CaughtUp::default();
        assert_eq!(q.watermark(10_000, Some(0), 1_000), (9_000, true));
        assert_eq!(q.watermark(1_000, Some(0), 500_000), (0, true));
    }
}
