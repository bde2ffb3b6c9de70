//! A decoded, validated game input, and its receive [`Timestamp`]: what a worker hands to the
//! sequencer and what a frame holds.

use serde::{Deserialize, Serialize};
use tickgate_common::meta::{RxMeta, flags};

/// Which clock a receive time was read from.
///
/// NIC (PHC) time and CLOCK_TAI differ by an arbitrary offset, so a run compares every time in
/// one of them, its time base (`docs/architecture.md`, "Time base").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Clock {
    /// The NIC's hardware clock (PHC), read through the XDP RX-timestamp kfunc.
    Nic,
    /// `bpf_ktime_get_tai_ns()` at the XDP hook: CLOCK_TAI.
    Xdp,
    /// The NIC's hardware clock, converted to CLOCK_TAI by the worker through the PHC's measured
    /// offset and rate ([`crate::phc`]): in the TAI domain, and still the NIC's moment.
    NicTai,
}

impl Clock {
    /// The name used in JSON output and docs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nic => "nic",
            Self::Xdp => "xdp",
            Self::NicTai => "nic-tai",
        }
    }

    /// The one-byte code of the clock in the frame encoding and the record log.
    pub fn code(self) -> u8 {
        match self {
            Self::Nic => 0,
            Self::Xdp => 1,
            Self::NicTai => 2,
        }
    }

    /// The clock whose time `self`'s readings are in: a converted NIC stamp is in TAI.
    pub fn domain(self) -> Self {
        match self {
            Self::Nic => Self::Nic,
            Self::Xdp | Self::NicTai => Self::Xdp,
        }
    }

    /// The clock with this code, if any.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Nic),
            1 => Some(Self::Xdp),
            2 => Some(Self::NicTai),
            _ => None,
        }
    }
}

/// A receive time: nanoseconds in one clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Timestamp {
    /// Nanoseconds in `clock`.
    pub ns: u64,
    /// The clock `ns` was read from.
    pub clock: Clock,
}

impl Timestamp {
    /// `ns` in CLOCK_TAI, as the XDP hook reads it.
    pub const fn xdp(ns: u64) -> Self {
        Self { ns, clock: Clock::Xdp }
    }

    /// `ns` in the NIC's hardware clock.
    pub const fn nic(ns: u64) -> Self {
        Self { ns, clock: Clock::Nic }
    }

    /// The time the XDP program stamped in a packet's metadata (its flags say which clock).
    pub fn of(meta: &RxMeta) -> Self {
        let clock = if meta.flags & flags::TS_NIC != 0 { Clock::Nic } else { Clock::Xdp };
        Self { ns: meta.rx_ts_ns, clock }
    }
}

/// What an [`Input`] is: a player's command, or a session event of its tick.
///
/// Joins and leaves travel the same path as commands (merge, ticks, frames, record log), so
/// every replica of a match sees them at the same tick, in the same order, under the same hash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InputKind {
    /// A player's command (its payload is a one-command `InputFrame`).
    #[default]
    Command,
    /// A player's session started; `seq` is the session id, the payload the token's user data.
    Join,
    /// A player's session ended; `seq` is the session id, the payload the reason's name.
    Leave,
    /// A player asked to catch up from a tick older than the server still holds; `seq` is that
    /// tick. The game must bring the player up to date another way (send it the state).
    Resync,
    /// The game started the match before anyone joined; the payload is the match's own tick
    /// rate, grace and late policy ([`MatchConfig::encode`](crate::frame_queue::MatchConfig)).
    Start,
    /// The game ended the match: its frame is the match's last.
    End,
}

impl InputKind {
    /// The name in JSON output and docs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Command => "command",
            Self::Join => "join",
            Self::Leave => "leave",
            Self::Resync => "resync",
            Self::Start => "start",
            Self::End => "end",
        }
    }

    /// The code in the frame encoding and the record log (the high nibble of the clock byte,
    /// so that commands encode as they always have).
    pub fn code(self) -> u8 {
        match self {
            Self::Command => 0,
            Self::Join => 1,
            Self::Leave => 2,
            Self::Resync => 3,
            Self::Start => 4,
            Self::End => 5,
        }
    }

    /// The kind with this code, if any.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Command),
            1 => Some(Self::Join),
            2 => Some(Self::Leave),
            3 => Some(Self::Resync),
            4 => Some(Self::Start),
            5 => Some(Self::End),
            _ => None,
        }
    }
}

/// One game input, after the header checksum, protobuf decode and anti-replay checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// A command or a session event.
    pub kind: InputKind,
    /// When the packet carrying it arrived.
    pub rx: Timestamp,
    /// RX queue the packet arrived on.
    pub queue: u16,
    /// Client id from the wire header (protocol v1), or the session's player id (v2).
    pub client_id: u32,
    /// The match the input belongs to: its session's token names it (protocol v2); `0` for v1.
    pub match_id: u64,
    /// Per-client input sequence number: the command's own (`first_seq + i` of its `InputFrame`).
    pub seq: u64,
    /// The client's frame id for this command.
    pub client_frame: u32,
    /// A one-command protobuf `InputFrame` with the client's original command bytes, opaque past decode.
    pub payload: Vec<u8>,
}
