//! What an AF_XDP socket has counted: the kernel's `XDP_STATISTICS` and userspace's own
//! counters of every descriptor and packet it refused or deferred.

use serde::Serialize;

use crate::sys::xsk::RawXdpStatistics;

/// The kernel's per-socket counters (`getsockopt(SOL_XDP, XDP_STATISTICS)`).
///
/// The last three are 0 on kernels before 5.9, which do not report them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct XdpStatistics {
    /// Packets dropped for a reason other than an invalid descriptor (mostly: RX ring full).
    pub rx_dropped: u64,
    /// Packets dropped because a fill-ring descriptor was invalid.
    pub rx_invalid_descs: u64,
    /// Packets dropped because the RX ring was full: userspace did not keep up.
    pub rx_ring_full: u64,
    /// Times the kernel found the fill ring empty: too few frames, or they came back too late.
    pub rx_fill_ring_empty_descs: u64,
    /// TX descriptors the kernel refused.
    pub tx_invalid_descs: u64,
    /// Times the kernel found the TX ring empty after a wakeup.
    pub tx_ring_empty_descs: u64,
}

impl From<RawXdpStatistics> for XdpStatistics {
    fn from(raw: RawXdpStatistics) -> Self {
        Self {
            rx_dropped: raw.rx_dropped,
            rx_invalid_descs: raw.rx_invalid_descs,
            rx_ring_full: raw.rx_ring_full,
            rx_fill_ring_empty_descs: raw.rx_fill_ring_empty_descs,
            tx_invalid_descs: raw.tx_invalid_descs,
            tx_ring_empty_descs: raw.tx_ring_empty_descs,
        }
    }
}

/// Userspace's running totals for one socket, since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct XskCounters {
    /// Packets handed to the receive callback.
    pub received: u64,
    /// RX descriptors refused: outside the UMEM, across a frame boundary, or naming a frame the
    /// kernel did not hold. Their frames were not read.
    pub invalid_descriptors: u64,
    /// Received packets without valid tickgate metadata in front of them.
    pub missing_metadata: u64,
    /// Received packets whose metadata located the payload outside the packet.
    pub payload_out_of_bounds: u64,
    /// Times frames did not all fit back into the fill ring and waited for the next call.
    pub fill_deferred: u64,
    /// `recvfrom` wakeups (fill ring needed one, or busy polling).
    pub rx_wakeups: u64,
    /// `sendto` wakeups of the TX ring.
    pub tx_wakeups: u64,
    /// Wakeups that failed with a transient error (interface down, no buffers).
    pub wakeup_errors: u64,
    /// Packets put in the TX ring.
    pub transmitted: u64,
    /// Packets not sent: longer than a frame.
    pub tx_too_long: u64,
    /// Packets not sent: every TX frame was in flight.
    pub tx_no_frame: u64,
    /// Packets not sent: the TX ring was full.
    pub tx_ring_full: u64,
    /// Completion-ring entries naming no TX frame in flight; ignored.
    pub invalid_completions: u64,
}
