//! The XDP program's counters, summed over CPUs, and the invariant they obey.

use std::{collections::BTreeMap, fmt};

use serde::Serialize;
use tickgate_common::counter::{Counter, DROP_REASONS, SLOTS};

/// Outcome counters of the XDP program (summed over CPUs).
///
/// `rx_packets = steered + passed + no_socket + sum(dropped)` holds at every instant the
/// program is not running; a read taken while packets flow can be off by the packets in flight.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct XdpCounters {
    /// Every packet the program ran on.
    pub rx_packets: u64,
    /// Redirected into an AF_XDP socket.
    pub steered: u64,
    /// Not game traffic, handed to the kernel untouched.
    pub passed: u64,
    /// Valid game packets on a queue with no AF_XDP socket, handed to the kernel.
    pub no_socket: u64,
    /// Dropped, by reason (every reason present, zero or not).
    pub dropped: BTreeMap<&'static str, u64>,
}

/// Which clock stamped the packets that were steered or found no socket.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TimestampCounters {
    /// Stamped by the NIC hardware clock.
    pub nic: u64,
    /// Stamped by the XDP-hook TAI clock.
    pub xdp: u64,
    /// `hw` program: the kfunc failed (the driver has no RX timestamp support).
    pub kfunc_error: u64,
    /// `hw` program: the kfunc returned no timestamp (e.g. veth, or timestamping off).
    pub kfunc_no_timestamp: u64,
}

impl XdpCounters {
    /// Builds the counters from the per-slot sums (indexed by [`Counter`]).
    pub fn from_slots(slots: &[u64]) -> (Self, TimestampCounters) {
        let at = |c: Counter| slots.get(c as usize).copied().unwrap_or(0);
        let counters = Self {
            rx_packets: at(Counter::RxPackets),
            steered: at(Counter::Steered),
            passed: at(Counter::Passed),
            no_socket: at(Counter::NoSocket),
            dropped: DROP_REASONS.iter().map(|&(c, name)| (name, at(c))).collect(),
        };
        let timestamps = TimestampCounters {
            nic: at(Counter::TsNic),
            xdp: at(Counter::TsXdp),
            kfunc_error: at(Counter::KfuncError),
            kfunc_no_timestamp: at(Counter::KfuncNoTimestamp),
        };
        (counters, timestamps)
    }

    /// Sum of all drop reasons.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }

    /// Packets with no outcome counted yet: 0 when the counters balance.
    pub fn unaccounted(&self) -> i128 {
        i128::from(self.rx_packets)
            - i128::from(self.steered)
            - i128::from(self.passed)
            - i128::from(self.no_socket)
            - i128::from(self.dropped_total())
    }
}

/// Number of slots to read from the counter map.
pub const COUNTER_SLOTS: u32 = SLOTS;

impl fmt::Display for XdpCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rx_packets {}  steered {}  passed {}  no_socket {}  dropped {}",
            self.rx_packets,
            self.steered,
            self.passed,
            self.no_socket,
            self.dropped_total()
        )?;
        let nonzero: Vec<String> =
            self.dropped.iter().filter(|(_, n)| **n > 0).map(|(r, n)| format!("{r} {n}")).collect();
        if !nonzero.is_empty() {
            write!(f, " ({})", nonzero.join(", "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_map_to_named_counters_and_balance() {
        let mut slots = vec![0u64; SLOTS as usize];
        slots[Counter::RxPackets as usize] = 10;
        slots[Counter::Steered as usize] = 4;
        slots[Counter::Passed as usize] = 3;
        slots[Counter::NoSocket as usize] = 1;
        slots[Counter::DropBadMagic as usize] = 2;
        slots[Counter::TsXdp as usize] = 5;
        let (c, ts) = XdpCounters::from_slots(&slots);
        assert_eq!(c.dropped["bad_magic"], 2);
        assert_eq!(c.dropped.len(), DROP_REASONS.len());
        assert_eq!(c.unaccounted(), 0);
        assert_eq!(ts.xdp, 5);
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["dropped"]["bad_magic"], 2);
        assert_eq!(json["no_socket"], 1);
        slots[Counter::RxPackets as usize] = 11;
        assert_eq!(XdpCounters::from_slots(&slots).0.unaccounted(), 1);
    }
}
