//! Slots of the XDP program's per-CPU counter array.
//!
//! The outcome slots partition every packet the program sees:
//! `rx_packets = steered + no_socket + passed + sum(dropped by reason)`. The timestamp slots
//! count, among steered and no-socket packets, which clock stamped them.

use crate::classify::DropReason;

/// One slot of the counter array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Counter {
    /// Every packet the program ran on.
    RxPackets = 0,
    /// Redirected into an AF_XDP socket.
    Steered = 1,
    /// Not game traffic: handed to the kernel untouched.
    Passed = 2,
    /// A valid game packet on a queue with no AF_XDP socket: handed to the kernel.
    NoSocket = 3,
    /// Dropped: IP fragment on a game port.
    DropFragment = 4,
    /// Dropped: UDP payload shorter than the header.
    DropTooShort = 5,
    /// Dropped: UDP length beyond the end of the frame.
    DropTruncated = 6,
    /// Dropped: bad magic.
    DropBadMagic = 7,
    /// Dropped: unknown header version.
    DropBadVersion = 8,
    /// Dropped: unknown message kind.
    DropBadKind = 9,
    /// Dropped: header length disagrees with the UDP length.
    DropBadLength = 10,
    /// Dropped: the driver refused room for metadata (`bpf_xdp_adjust_meta` failed).
    DropNoMetadata = 11,
    /// Stamped by the NIC hardware clock.
    TsNic = 12,
    /// Stamped by the XDP-hook TAI clock.
    TsXdp = 13,
    /// `hw` program only: the kfunc returned an error (the driver has no RX timestamp).
    KfuncError = 14,
    /// `hw` program only: the kfunc succeeded but returned timestamp 0 (no hardware stamp).
    KfuncNoTimestamp = 15,
    /// Dropped: a valid game packet over its source's rate limit (see [`crate::rate`]).
    DropRateLimited = 16,
    /// Dropped: a data packet from a source without a session, or naming another session.
    DropNoSession = 17,
    /// Dropped: a handshake packet over its source's or the global handshake budget.
    DropHandshakeLimited = 18,
}

/// Number of slots in the counter array.
pub const SLOTS: u32 = 19;
const _: () = assert!(Counter::DropHandshakeLimited as u32 + 1 == SLOTS, "SLOTS must cover every Counter");

/// Drop reasons as they appear in counters, status output and metrics, in slot order.
pub const DROP_REASONS: [(Counter, &str); 11] = [
    (Counter::DropFragment, "fragment"),
    (Counter::DropTooShort, "too_short"),
    (Counter::DropTruncated, "truncated"),
    (Counter::DropBadMagic, "bad_magic"),
    (Counter::DropBadVersion, "bad_version"),
    (Counter::DropBadKind, "bad_kind"),
    (Counter::DropBadLength, "bad_length"),
    (Counter::DropNoMetadata, "no_metadata"),
    (Counter::DropRateLimited, "rate_limited"),
    (Counter::DropNoSession, "no_session"),
    (Counter::DropHandshakeLimited, "handshake_limited"),
];

impl From<DropReason> for Counter {
    fn from(reason: DropReason) -> Self {
        match reason {
            DropReason::Fragment => Self::DropFragment,
            DropReason::TooShort => Self::DropTooShort,
            DropReason::Truncated => Self::DropTruncated,
            DropReason::BadMagic => Self::DropBadMagic,
            DropReason::BadVersion => Self::DropBadVersion,
            DropReason::BadKind => Self::DropBadKind,
            DropReason::BadLength => Self::DropBadLength,
        }
    }
}
