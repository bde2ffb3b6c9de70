//! Userspace half of the wire format: checksum, protobuf decode and the checks XDP cannot afford.
//!
//! The XDP program has already checked magic, version, kind and length (the same
//! [`tickgate_common::wire::check_header`] runs again here, because the worker must not trust
//! that the frame it reads is the frame XDP looked at). A worker then calls [`decode`], which
//! verifies the CRC32C, decodes the payload for the header's kind and applies the protocol's
//! semantic rules. Every rejection is a [`WireError`] variant with a stable counter name, and
//! the whole of [`decode`] allocates nothing, accepted or rejected: the protobuf is first walked
//! by a bounds-checked scanner that is at least as strict as prost, so prost (whose errors
//! allocate) only ever sees payloads it will accept, and commands are decoded into a fixed array.
//!
//! An `Input` packet carries the newest input and up to [`MAX_COMMANDS`]` - 1` older ones, so one
//! packet yields several [`Command`]s with consecutive sequence numbers; the anti-replay window
//! ([`crate::session::anti_replay`]) keeps the ones not seen before. A worker's loop:
//!
//! ```
//! use tickgate::{input::{Clock, Timestamp}, session::anti_replay::Clients, wire};
//! # use tickgate_proto::{Action, InputFrame, PlayerCommand};
//! # let cmd = |frame| PlayerCommand { action: Action::Move as i32, client_frame: frame, ..Default::default() };
//! # let mut first = Vec::new();
//! # wire::encode_input(7, 10, &InputFrame { first_seq: 0, commands: vec![cmd(10)] }, &mut first).unwrap();
//! # let mut second = Vec::new();
//! # let frame = InputFrame { first_seq: 0, commands: vec![cmd(10), cmd(11)] };
//! # wire::encode_input(7, 11, &frame, &mut second).unwrap();
//! let mut clients = Clients::new(Default::default());
//! let mut inputs = Vec::new();
//! for (now_ns, udp_payload) in [(1_000, &first), (2_000, &second)] {
//!     let Ok(wire::Packet::Input(packet)) = wire::decode(udp_payload) else { continue };
//!     for command in packet.commands() {
//!         if clients.check(command.client_id, command.seq, now_ns).is_ok() {
//!             inputs.push(command.to_input(Timestamp::xdp(now_ns), 0, 0));
//!         }
//!     }
//! }
//! // Seq 0 arrived twice (the second packet resends it) but is delivered once.
//! assert_eq!(inputs.iter().map(|i| i.seq).collect::<Vec<_>>(), [0, 1]);
//! ```

pub mod crypto;
pub mod frame_packet;
mod decode;
pub mod udp;
mod encode;
mod packet;
pub mod v2;
#[cfg(test)]
pub(crate) mod tests;

use thiserror::Error;
use tickgate_common::wire::HeaderError;

pub use decode::{checksum, decode, decode_input_v2};
pub use encode::{EncodeError, encode, encode_input, encode_raw, encode_sync};
pub use packet::{Command, InputPacket, Packet, SyncPacket};

/// Most commands one `InputFrame` may carry: the newest input and up to 31 resent ones.
///
/// Bounds the work and the output of one packet; 32 inputs is over half a second of redundancy
/// at 60 inputs per second, far more than loss recovery needs.
pub const MAX_COMMANDS: usize = 32;

/// Why a packet was rejected after XDP let it through.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum WireError {
    /// The header fails a check XDP makes: the frame changed or XDP is misconfigured.
    #[error("bad header: {0}")]
    BadHeader(HeaderError),
    /// The CRC32C of header and payload differs from the header's checksum field.
    #[error("bad checksum: header says {expected:#010x}, the bytes give {actual:#010x}")]
    BadChecksum {
        /// Checksum field of the header.
        expected: u32,
        /// Checksum computed over the packet.
        actual: u32,
    },
    /// The payload is not a well-formed protobuf message of the kind's type.
    #[error("payload is not a valid protobuf message: {0}")]
    Decode(&'static str),
    /// An `InputFrame` with no commands.
    #[error("input frame carries no commands")]
    EmptyInput,
    /// An `InputFrame` with more than [`MAX_COMMANDS`] commands.
    #[error("input frame carries {count} commands, more than {MAX_COMMANDS}")]
    TooManyCommands {
        /// Commands in the frame.
        count: usize,
    },
    /// The frame's last command is not numbered with the header's seq (or the numbers overflow).
    #[error("input frame numbers {count} commands from {first_seq}, but the header's seq is {header_seq}")]
    SeqMismatch {
        /// `first_seq` of the frame.
        first_seq: u64,
        /// Commands in the frame.
        count: usize,
        /// Seq of the header.
        header_seq: u64,
    },
    /// A command whose action is `ACTION_UNSPECIFIED` or unknown to this server.
    #[error("command has action {value}, which is unspecified or unknown")]
    BadAction {
        /// The action value as sent.
        value: i32,
    },
    /// A `SyncAck` whose client id differs from the header's.
    #[error("sync ack for client {payload} in a packet from client {header}")]
    ClientMismatch {
        /// Client id in the header.
        header: u32,
        /// Client id in the `SyncAck`.
        payload: u32,
    },
}

impl WireError {
    /// Counter names of the variants, indexed by [`WireError::counter_index`].
    pub const COUNTER_NAMES: [&'static str; 8] = [
        "bad_header",
        "bad_checksum",
        "decode_error",
        "empty_input",
        "too_many_commands",
        "seq_mismatch",
        "bad_action",
        "client_mismatch",
    ];

    /// Index of this rejection's counter in [`WireError::COUNTER_NAMES`].
    pub const fn counter_index(&self) -> usize {
        match self {
            Self::BadHeader(_) => 0,
            Self::BadChecksum { .. } => 1,
            Self::Decode(_) => 2,
            Self::EmptyInput => 3,
            Self::TooManyCommands { .. } => 4,
            Self::SeqMismatch { .. } => 5,
            Self::BadAction { .. } => 6,
            Self::ClientMismatch { .. } => 7,
        }
    }

    /// Stable name of this rejection's counter (metrics, status output, docs).
    pub const fn counter_name(&self) -> &'static str {
        Self::COUNTER_NAMES[self.counter_index()]
    }
}
