//! The record log: a run's configuration and every item the sequencer applied, so that
//! [`replay`] rebuilds the same frames, hashes and late decisions byte for byte.
//!
//! A [`Pipeline`](crate::frame_queue::Pipeline) is a pure function of its configuration, its
//! queue count and the sequence of items applied to it. Thread timing decides only that
//! sequence (which queue the sequencer thread popped first, which watermarks were coalesced or
//! dropped on the way), so the log holds exactly it: every input as received (the merge redoes
//! restamping and ordering), every watermark that raised a queue's floor (the others change
//! nothing), and every close. The epoch and each frame's hash are logged as well, not to drive
//! the replay but as checkpoints it verifies.
//!
//! Format, all integers big-endian:
//!
//! ```text
//! file     = "TGRECLOG" version:u16 (2) reserved:u16 (0) config record*
//! record   = len:u32 crc32c(body):u32 body            len ≤ 1 MiB
//! config   = 1 tick_hz:u32 grace_us:u64 late:u8 (0 drop, 1 next) time_base:u8 (0 nic, 1 xdp)
//!            epoch_kind:u8 (0 first input, 1 explicit) epoch_ns:u64 queues:u32 rx_queue:u16*queues
//! input    = 2 slot:u16 rx_ts_ns:u64 clock_kind:u8 (as in frames) queue:u16 client_id:u32
//!            match_id:u64 seq:u64 client_frame:u32 payload (the rest of the body)
//! watermark= 3 slot:u16 watermark:u64
//! close    = 4 slot:u16
//! epoch    = 5 match_id:u64 epoch_ns:u64
//! frame    = 6 match_id:u64 tick:u64 hash:[u8;32]
//! ```
//!
//! Version 1 (before matches) had no `match_id` fields; it is still read, every input and
//! checkpoint in match 0.
//!
//! A crash can tear the last record; a disk can flip a bit. The reader stops at the first record
//! that is cut short, too long, fails its checksum or does not decode, and says where (byte
//! offset, record index, reason); everything before it replays exactly.

mod format;
mod reader;
mod replay;
mod writer;
#[cfg(test)]
mod tests;

use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::frame_queue::{Config, ConfigError};
use crate::sequencer::Item;
use format::{decode_config, decode_record, encode_config, encode_epoch, encode_frame_check, encode_item};

pub use reader::{RecordReader, StopPoint, StopReason};
pub use replay::{Divergence, DivergenceKind, ReplayOutcome, ReplayReport, replay, replay_with};
pub use writer::RecordWriter;

/// The first eight bytes of a record log.
pub const MAGIC: [u8; 8] = *b"TGRECLOG";
/// The format version this build writes.
pub const VERSION: u16 = 2;
/// The oldest format version this build reads.
pub const OLDEST_VERSION: u16 = 1;
/// The longest record body accepted; anything longer is a corrupt length, not a record.
pub const MAX_RECORD_LEN: u32 = 1 << 20;

const HEADER_LEN: u64 = 12;
const KIND_CONFIG: u8 = 1;
const KIND_INPUT: u8 = 2;
const KIND_WATERMARK: u8 = 3;
const KIND_CLOSE: u8 = 4;
const KIND_EPOCH: u8 = 5;
const KIND_FRAME: u8 = 6;

/// Everything a replay needs besides the items: the frame queue's configuration and the RX
/// queue behind each hand-off slot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunConfig {
    /// Tick rate, grace, late policy, time base, epoch.
    pub config: Config,
    /// `queues[slot]` is the RX queue feeding hand-off slot `slot`; the pipeline has
    /// `queues.len()` slots.
    pub queues: Vec<u16>,
}

/// One log record after the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// An item the sequencer applied to hand-off slot `slot`.
    Item {
        /// The hand-off slot.
        slot: u16,
        /// The item.
        item: Item,
    },
    /// A match's epoch became known (checkpoint).
    Epoch {
        /// The match.
        match_id: u64,
        /// Its tick 0's start.
        epoch_ns: u64,
    },
    /// A frame was sealed (checkpoint).
    Frame {
        /// Its match.
        match_id: u64,
        /// Its tick.
        tick: u64,
        /// Its hash.
        hash: [u8; 32],
    },
}

/// Why a log cannot be written or read at all.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The log file could not be created.
    #[error("cannot create record log {}: choose a path that does not exist yet (logs are never overwritten)", path.display())]
    Create {
        /// The requested path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The log file could not be opened.
    #[error("cannot open record log {} - check the path and its permissions", path.display())]
    Open {
        /// The requested path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Writing failed; the log ends at the last complete record before the failure.
    #[error("writing the record log failed - check free disk space")]
    Write(#[source] io::Error),
    /// Reading the header or configuration failed.
    #[error("reading the record log failed")]
    Read(#[source] io::Error),
    /// The file is shorter than the log header.
    #[error(
        "the record log is only {have} bytes, shorter than its 12-byte header - the run recorded nothing"
    )]
    TooShort {
        /// Bytes present.
        have: usize,
    },
    /// The file does not start with [`MAGIC`].
    #[error("not a tickgate record log (bad magic) - pass a file written by --record")]
    NotALog,
    /// The log was written in another format version.
    #[error(
        "record log format version {found} is not supported (this build reads {OLDEST_VERSION} to {VERSION}) - replay it with the tickgate release that wrote it"
    )]
    Version {
        /// The version in the file.
        found: u16,
    },
    /// The configuration record is damaged, so nothing can be replayed.
    #[error("the record log's configuration record is damaged ({0}) - nothing can be replayed")]
    ConfigDamaged(StopPoint),
    /// The configuration is not one a pipeline accepts.
    #[error("the configuration in the record log is invalid")]
    Config(#[from] ConfigError),
}
