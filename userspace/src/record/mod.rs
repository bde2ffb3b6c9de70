//! The record log: a run's configuration and every item the sequencer applied, so that
//! [`replay`] rebuilds the same frames, hashes and late decisions byte for byte.
//!
//! A [`Pipeline`] is a pure function of its configuration, its queue count and the sequence of
//! items applied to it. Thread timing decides only that sequence (which queue the sequencer
//! thread popped first, which watermarks were coalesced or dropped on the way), so the log holds
//! exactly it: every input as received (the merge redoes restamping and ordering), every
//! watermark that raised a queue's floor (the others change nothing), and every close. The epoch
//! and each frame's hash are logged as well, not to drive the replay but as checkpoints it
//! verifies.
//!
//! Format, all integers big-endian:
//!
//! ```text
//! file     = "TGRECLOG" version:u16 (1) reserved:u16 (0) config record*
//! record   = len:u32 crc32c(body):u32 body            len ≤ 1 MiB
//! config   = 1 tick_hz:u32 grace_us:u64 late:u8 (0 drop, 1 next) time_base:u8 (0 nic, 1 xdp)
//!            epoch_kind:u8 (0 first input, 1 explicit) epoch_ns:u64 queues:u32 rx_queue:u16*queues
//! input    = 2 slot:u16 rx_ts_ns:u64 ts_source:u8 queue:u16 client_id:u32 seq:u64
//!            client_frame:u32 payload (the rest of the body)
//! watermark= 3 slot:u16 watermark:u64
//! close    = 4 slot:u16
//! epoch    = 5 epoch_ns:u64
//! frame    = 6 tick:u64 hash:[u8;32]
//! ```
//!
//! A crash can tear the last record; a disk can flip a bit. The reader stops at the first record
//! that is cut short, too long, fails its checksum or does not decode, and says where (byte
//! offset, record index, reason); everything before it replays exactly.

use std::collections::VecDeque;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize, Serializer};

use crate::frame_queue::{
    Config, ConfigError, Epoch, Frame, Late, MAX_QUEUES, Pipeline, Recorder, Stats, hex,
};
use crate::input::{Clock, Input, Timestamp};
use crate::sequencer::{Item, SequencerError};

/// The first eight bytes of a record log.
pub const MAGIC: [u8; 8] = *b"TGRECLOG";
/// The format version this build writes and reads.
pub const VERSION: u16 = 1;
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
    /// The epoch became known (checkpoint).
    Epoch(u64),
    /// A frame was sealed (checkpoint).
    Frame {
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
        "record log format version {found} is not supported (this build reads {VERSION}) - replay it with the tickgate release that wrote it"
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

/// Writes a record log. Buffered: records reach the OS when the 64 KiB buffer fills, on
/// [`flush`](Self::flush), when the sequencer thread goes idle (see [`Recorder::idle`]), and on
/// [`finish`](Self::finish). Dropping the writer flushes too but cannot report an error; none of
/// these fsync, [`sync`](RecordWriter::sync) does. On SIGTERM, close the producers, join the
/// sequencer thread and `finish` the writer it hands back.
///
/// As a [`Recorder`] it cannot fail: on the first write error it stops writing (a log with a hole
/// would replay differently, a log that ends early replays a prefix exactly) and keeps the error
/// for [`finish`](Self::finish).
#[derive(Debug)]
pub struct RecordWriter<W: Write> {
    out: BufWriter<W>,
    body: Vec<u8>,
    records: u64,
    bytes: u64,
    dirty: bool,
    error: Option<io::Error>,
}

impl RecordWriter<File> {
    /// Creates the log at `path`, which must not exist, and writes the header and configuration.
    pub fn create(path: impl AsRef<Path>, run: &RunConfig) -> Result<Self, RecordError> {
        let path = path.as_ref();
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|source| RecordError::Create { path: path.to_owned(), source })?;
        Self::new(file, run)
    }

    /// Flushes and asks the OS to put the log on stable storage.
    pub fn sync(&mut self) -> Result<(), RecordError> {
        self.flush()?;
        self.out.get_ref().sync_data().map_err(RecordError::Write)
    }
}

impl<W: Write> RecordWriter<W> {
    /// Starts a log on `inner`: header and configuration record.
    pub fn new(inner: W, run: &RunConfig) -> Result<Self, RecordError> {
        run.config.validate()?;
        if run.queues.is_empty() || run.queues.len() > MAX_QUEUES {
            return Err(ConfigError::Queues { queues: run.queues.len() }.into());
        }
        let mut writer = Self {
            out: BufWriter::with_capacity(1 << 16, inner),
            body: Vec::with_capacity(256),
            records: 0,
            bytes: 0,
            dirty: true,
            error: None,
        };
        let mut header = [0u8; HEADER_LEN as usize];
        header[..8].copy_from_slice(&MAGIC);
        header[8..10].copy_from_slice(&VERSION.to_be_bytes());
        writer.out.write_all(&header).map_err(RecordError::Write)?;
        writer.bytes = HEADER_LEN;
        writer.write_record(|body| encode_config(body, run)).map_err(RecordError::Write)?;
        Ok(writer)
    }

    /// Appends one record.
    pub fn append(&mut self, record: &Record) -> Result<(), RecordError> {
        if let Some(error) = &self.error {
            return Err(RecordError::Write(io::Error::new(error.kind(), error.to_string())));
        }
        self.write_record(|body| match record {
            Record::Item { slot, item } => encode_item(body, *slot, item),
            Record::Epoch(epoch) => encode_epoch(body, *epoch),
            Record::Frame { tick, hash } => encode_frame_check(body, *tick, hash),
        })
        .map_err(RecordError::Write)
    }

    /// Hands buffered records to the OS (no fsync).
    pub fn flush(&mut self) -> Result<(), RecordError> {
        self.out.flush().map_err(RecordError::Write)?;
        self.dirty = false;
        Ok(())
    }

    /// Flushes and returns the underlying writer, or the first error the log hit.
    pub fn finish(mut self) -> Result<W, RecordError> {
        if let Some(error) = self.error.take() {
            return Err(RecordError::Write(error));
        }
        self.out.into_inner().map_err(|e| RecordError::Write(e.into_error()))
    }

    /// Records written, the configuration included.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Bytes written (some may still be buffered), the header included.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The write error that stopped the log, if any.
    pub fn error(&self) -> Option<&io::Error> {
        self.error.as_ref()
    }

    fn write_record(&mut self, encode: impl FnOnce(&mut Vec<u8>)) -> io::Result<()> {
        self.body.clear();
        encode(&mut self.body);
        // Bodies are built here from bounded fields; only a payload near 1 MiB could exceed this.
        let len = u32::try_from(self.body.len()).unwrap_or(u32::MAX);
        let mut head = [0u8; 8];
        head[..4].copy_from_slice(&len.to_be_bytes());
        head[4..].copy_from_slice(&crc32c::crc32c(&self.body).to_be_bytes());
        self.out.write_all(&head)?;
        self.out.write_all(&self.body)?;
        self.records += 1;
        self.bytes += 8 + self.body.len() as u64;
        self.dirty = true;
        Ok(())
    }

    fn log(&mut self, encode: impl FnOnce(&mut Vec<u8>)) {
        if self.error.is_none()
            && let Err(error) = self.write_record(encode)
        {
            self.error = Some(error);
        }
    }
}

impl<W: Write> Recorder for RecordWriter<W> {
    fn item(&mut self, slot: usize, item: &Item) {
        // Slots are below MAX_QUEUES, checked when the pipeline was built.
        self.log(|body| encode_item(body, slot as u16, item));
    }

    fn epoch(&mut self, epoch_ns: u64) {
        self.log(|body| encode_epoch(body, epoch_ns));
    }

    fn frame(&mut self, frame: &Frame) {
        self.log(|body| encode_frame_check(body, frame.tick, &frame.hash));
    }

    fn idle(&mut self) {
        if self.dirty
            && self.error.is_none()
            && let Err(error) = self.flush()
        {
            self.error = Some(match error {
                RecordError::Write(error) => error,
                other => io::Error::other(other.to_string()),
            });
        }
    }
}

fn encode_config(body: &mut Vec<u8>, run: &RunConfig) {
    let config = &run.config;
    body.push(KIND_CONFIG);
    body.extend_from_slice(&config.tick_hz.to_be_bytes());
    body.extend_from_slice(&config.grace_us.to_be_bytes());
    body.push(match config.late {
        Late::Drop => 0,
        Late::Next => 1,
    });
    body.push(config.time_base.code());
    let (kind, epoch) = match config.epoch {
        Epoch::FirstInput => (0, 0),
        Epoch::At(epoch) => (1, epoch),
    };
    body.push(kind);
    body.extend_from_slice(&epoch.to_be_bytes());
    body.extend_from_slice(&(run.queues.len() as u32).to_be_bytes());
    for queue in &run.queues {
        body.extend_from_slice(&queue.to_be_bytes());
    }
}

fn encode_item(body: &mut Vec<u8>, slot: u16, item: &Item) {
    match item {
        Item::Input(input) => {
            body.push(KIND_INPUT);
            body.extend_from_slice(&slot.to_be_bytes());
            body.extend_from_slice(&input.rx.ns.to_be_bytes());
            body.push(input.rx.clock.code());
            body.extend_from_slice(&input.queue.to_be_bytes());
            body.extend_from_slice(&input.client_id.to_be_bytes());
            body.extend_from_slice(&input.seq.to_be_bytes());
            body.extend_from_slice(&input.client_frame.to_be_bytes());
            body.extend_from_slice(&input.payload);
        }
        Item::Watermark(watermark) => {
            body.push(KIND_WATERMARK);
            body.extend_from_slice(&slot.to_be_bytes());
            body.extend_from_slice(&watermark.to_be_bytes());
        }
        Item::Close => {
            body.push(KIND_CLOSE);
            body.extend_from_slice(&slot.to_be_bytes());
        }
    }
}

fn encode_epoch(body: &mut Vec<u8>, epoch_ns: u64) {
    body.push(KIND_EPOCH);
    body.extend_from_slice(&epoch_ns.to_be_bytes());
}

fn encode_frame_check(body: &mut Vec<u8>, tick: u64, hash: &[u8; 32]) {
    body.push(KIND_FRAME);
    body.extend_from_slice(&tick.to_be_bytes());
    body.extend_from_slice(hash);
}

/// Reads fixed-width big-endian fields off a record body.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], &'static str> {
        let (head, rest) = self.0.split_first_chunk::<N>().ok_or("record body too short")?;
        self.0 = rest;
        Ok(*head)
    }
    fn u8(&mut self) -> Result<u8, &'static str> {
        self.take::<1>().map(|[byte]| byte)
    }
    fn u16(&mut self) -> Result<u16, &'static str> {
        self.take().map(u16::from_be_bytes)
    }
    fn u32(&mut self) -> Result<u32, &'static str> {
        self.take().map(u32::from_be_bytes)
    }
    fn u64(&mut self) -> Result<u64, &'static str> {
        self.take().map(u64::from_be_bytes)
    }
    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
    fn end(self) -> Result<(), &'static str> {
        if self.0.is_empty() { Ok(()) } else { Err("trailing bytes in record body") }
    }
}

fn decode_config(body: &[u8]) -> Result<RunConfig, &'static str> {
    let mut f = Fields(body);
    if f.u8()? != KIND_CONFIG {
        return Err("the first record is not the configuration");
    }
    let tick_hz = f.u32()?;
    let grace_us = f.u64()?;
    let late = match f.u8()? {
        0 => Late::Drop,
        1 => Late::Next,
        _ => return Err("unknown late policy"),
    };
    let time_base = Clock::from_code(f.u8()?).ok_or("unknown time base")?;
    let (kind, epoch_ns) = (f.u8()?, f.u64()?);
    let epoch = match kind {
        0 => Epoch::FirstInput,
        1 => Epoch::At(epoch_ns),
        _ => return Err("unknown epoch kind"),
    };
    let count = f.u32()? as usize;
    if count == 0 || count > MAX_QUEUES {
        return Err("queue count out of range");
    }
    let queues = (0..count).map(|_| f.u16()).collect::<Result<Vec<_>, _>>()?;
    f.end()?;
    Ok(RunConfig { config: Config { tick_hz, grace_us, late, time_base, epoch }, queues })
}

fn decode_record(body: &[u8], queues: usize) -> Result<Record, &'static str> {
    let mut f = Fields(body);
    let kind = f.u8()?;
    let slot = |f: &mut Fields<'_>| {
        let slot = f.u16()?;
        if usize::from(slot) < queues { Ok(slot) } else { Err("hand-off slot out of range") }
    };
    let record = match kind {
        KIND_INPUT => {
            let slot = slot(&mut f)?;
            let rx_ts_ns = f.u64()?;
            let ts_source = Clock::from_code(f.u8()?).ok_or("unknown timestamp source")?;
            let input = Input {
                rx: Timestamp { ns: rx_ts_ns, clock: ts_source },
                queue: f.u16()?,
                client_id: f.u32()?,
                seq: f.u64()?,
                client_frame: f.u32()?,
                payload: f.rest().to_vec(),
            };
            Record::Item { slot, item: Item::Input(input) }
        }
        KIND_WATERMARK => Record::Item { slot: slot(&mut f)?, item: Item::Watermark(f.u64()?) },
        KIND_CLOSE => Record::Item { slot: slot(&mut f)?, item: Item::Close },
        KIND_EPOCH => Record::Epoch(f.u64()?),
        KIND_FRAME => Record::Frame { tick: f.u64()?, hash: f.take()? },
        KIND_CONFIG => return Err("a second configuration record"),
        _ => return Err("unknown record kind"),
    };
    f.end()?;
    Ok(record)
}

/// Where and why reading stopped before the end of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StopPoint {
    /// Byte offset of the record that could not be used.
    pub offset: u64,
    /// Its index (the configuration is record 0).
    pub record_index: u64,
    /// What was wrong with it.
    pub reason: StopReason,
}

impl fmt::Display for StopPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stopped at byte {} (record {}): {}", self.offset, self.record_index, self.reason)
    }
}

impl Serialize for StopPoint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = serializer.serialize_struct("StopPoint", 3)?;
        out.serialize_field("offset", &self.offset)?;
        out.serialize_field("record_index", &self.record_index)?;
        out.serialize_field("reason", &self.reason.to_string())?;
        out.end()
    }
}

/// What was wrong with the record reading stopped at.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StopReason {
    /// The file ends inside a record's length and checksum (a torn write).
    #[error("record header cut short after {have} of 8 bytes (torn write)")]
    TornHeader {
        /// Bytes present.
        have: usize,
    },
    /// The file ends inside a record's body (a torn write).
    #[error("record body cut short after {have} of {len} bytes (torn write)")]
    TornBody {
        /// The body length the header announced.
        len: u32,
        /// Bytes present.
        have: usize,
    },
    /// The length field is beyond any real record: it is corrupt.
    #[error("record length {len} exceeds {MAX_RECORD_LEN} bytes (corrupt length)")]
    TooLong {
        /// The announced length.
        len: u32,
    },
    /// The body does not match its checksum.
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x} (corrupt record)")]
    Checksum {
        /// The checksum in the header.
        stored: u32,
        /// The checksum of the body read.
        computed: u32,
    },
    /// The checksum matches but the body does not decode.
    #[error("malformed record: {what}")]
    Malformed {
        /// What did not decode.
        what: &'static str,
    },
    /// The pipeline refused the item (a log no tickgate run could have written).
    #[error("the sequencer refused the item: {0}")]
    Rejected(SequencerError),
    /// The OS reported a read error.
    #[error("read error: {kind}")]
    Io {
        /// The error kind.
        kind: io::ErrorKind,
    },
}

/// Reads a record log record by record, stopping at the first damaged one.
#[derive(Debug)]
pub struct RecordReader<R: Read> {
    inner: BufReader<R>,
    run: RunConfig,
    /// Offset and index of the next record.
    offset: u64,
    index: u64,
    body: Vec<u8>,
    stop: Option<StopPoint>,
    done: bool,
}

impl RecordReader<File> {
    /// Opens the log at `path` and reads its configuration.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, RecordError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| RecordError::Open { path: path.to_owned(), source })?;
        Self::new(file)
    }
}

impl<R: Read> RecordReader<R> {
    /// Reads the header and the configuration record from `inner`.
    pub fn new(inner: R) -> Result<Self, RecordError> {
        let mut inner = BufReader::with_capacity(1 << 16, inner);
        let mut header = [0u8; HEADER_LEN as usize];
        let have = read_full(&mut inner, &mut header).map_err(RecordError::Read)?;
        if have < header.len() {
            return Err(RecordError::TooShort { have });
        }
        if header[..8] != MAGIC {
            return Err(RecordError::NotALog);
        }
        let found = u16::from_be_bytes([header[8], header[9]]);
        if found != VERSION {
            return Err(RecordError::Version { found });
        }
        let mut reader = Self {
            inner,
            run: RunConfig { config: Config::default(), queues: vec![] },
            offset: HEADER_LEN,
            index: 0,
            body: Vec::new(),
            stop: None,
            done: false,
        };
        let config_at = reader.offset;
        let run = match reader.next_body() {
            Ok(Some(())) => {
                decode_config(&reader.body).map_err(|what| StopReason::Malformed { what }).and_then(|run| {
                    run.config
                        .validate()
                        .map(|()| run)
                        .map_err(|_| StopReason::Malformed { what: "configuration out of range" })
                })
            }
            Ok(None) => Err(StopReason::TornHeader { have: 0 }),
            Err(reason) => Err(reason),
        };
        match run {
            Ok(run) => reader.run = run,
            Err(reason) => {
                return Err(RecordError::ConfigDamaged(StopPoint {
                    offset: config_at,
                    record_index: 0,
                    reason,
                }));
            }
        }
        reader.advance();
        Ok(reader)
    }

    /// The run's configuration.
    pub fn run_config(&self) -> &RunConfig {
        &self.run
    }

    /// The next record; `None` at the end of the file or at a damaged record (see
    /// [`stop_point`](Self::stop_point)).
    pub fn next_record(&mut self) -> Option<Record> {
        if self.done {
            return None;
        }
        let result = self.next_body().and_then(|more| match more {
            Some(()) => decode_record(&self.body, self.run.queues.len())
                .map(Some)
                .map_err(|what| StopReason::Malformed { what }),
            None => Ok(None),
        });
        match result {
            Ok(Some(record)) => {
                self.advance();
                Some(record)
            }
            Ok(None) => {
                self.done = true;
                None
            }
            Err(reason) => {
                self.stop_at(reason);
                None
            }
        }
    }

    /// Where reading stopped early, if it did; `None` after a clean end of file.
    pub fn stop_point(&self) -> Option<&StopPoint> {
        self.stop.as_ref()
    }

    /// Byte offset of the next record.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Complete records read so far, the configuration included.
    pub fn records_read(&self) -> u64 {
        self.index
    }

    fn stop_at(&mut self, reason: StopReason) {
        self.done = true;
        self.stop = Some(StopPoint { offset: self.offset, record_index: self.index, reason });
    }

    /// Marks the record in `body` as consumed.
    fn advance(&mut self) {
        self.offset += 8 + self.body.len() as u64;
        self.index += 1;
    }

    /// Reads the next record's body into `body`: `Ok(None)` at a clean end of file.
    fn next_body(&mut self) -> Result<Option<()>, StopReason> {
        let io_reason = |e: io::Error| StopReason::Io { kind: e.kind() };
        let mut head = [0u8; 8];
        let have = read_full(&mut self.inner, &mut head).map_err(io_reason)?;
        if have == 0 {
            return Ok(None);
        }
        if have < head.len() {
            return Err(StopReason::TornHeader { have });
        }
        let [l0, l1, l2, l3, c0, c1, c2, c3] = head;
        let len = u32::from_be_bytes([l0, l1, l2, l3]);
        let stored = u32::from_be_bytes([c0, c1, c2, c3]);
        if len > MAX_RECORD_LEN {
            return Err(StopReason::TooLong { len });
        }
        self.body.resize(len as usize, 0);
        let have = read_full(&mut self.inner, &mut self.body).map_err(io_reason)?;
        if have < self.body.len() {
            return Err(StopReason::TornBody { len, have });
        }
        let computed = crc32c::crc32c(&self.body);
        if computed != stored {
            return Err(StopReason::Checksum { stored, computed });
        }
        Ok(Some(()))
    }
}

/// Fills `buf` as far as the input goes; returns how many bytes were read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut have = 0;
    while have < buf.len() {
        match input.read(&mut buf[have..]) {
            Ok(0) => break,
            Ok(n) => have += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(have)
}

/// A frame or epoch checkpoint the replay did not reproduce.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Divergence {
    /// Index of the checkpoint record.
    pub record_index: u64,
    /// What differed.
    pub kind: DivergenceKind,
}

/// The checkpoint that differed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DivergenceKind {
    /// A frame's tick or hash.
    Frame {
        /// The recorded tick.
        tick: u64,
        /// The recorded hash.
        #[serde(serialize_with = "hex_hash")]
        recorded: [u8; 32],
        /// The frame the replay sealed in its place, if any, as (tick, hash).
        #[serde(serialize_with = "hex_frame")]
        replayed: Option<(u64, [u8; 32])>,
    },
    /// The epoch.
    Epoch {
        /// The recorded epoch.
        recorded: u64,
        /// The replay's epoch, if it had one.
        replayed: Option<u64>,
    },
}

fn hex_hash<S: Serializer>(hash: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&hex(hash))
}

fn hex_frame<S: Serializer>(frame: &Option<(u64, [u8; 32])>, serializer: S) -> Result<S::Ok, S::Error> {
    frame.map(|(tick, hash)| (tick, hex(&hash))).serialize(serializer)
}

/// What a replay found, besides the frames.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    /// The recorded configuration.
    pub run: RunConfig,
    /// The replay's counters (late inputs per client included).
    pub stats: Stats,
    /// Complete records applied, the configuration included.
    pub records: u64,
    /// Where the log was damaged, if it was; `None` means it ended cleanly.
    pub stop: Option<StopPoint>,
    /// Frames the replay sealed.
    pub frames: u64,
    /// Frames whose recorded checkpoint matched.
    pub verified_frames: u64,
    /// The first checkpoint that did not match, if any.
    pub divergence: Option<Divergence>,
    /// Whether the log closed every queue (the live run ended normally rather than crashed).
    pub finished: bool,
}

/// A replay's frames and report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayOutcome {
    /// Every frame the log reproduces, in tick order.
    pub frames: Vec<Frame>,
    /// What the replay found.
    pub report: ReplayReport,
}

/// Replays the log at `path` through the same pipeline the live run used.
pub fn replay(path: impl AsRef<Path>) -> Result<ReplayOutcome, RecordError> {
    let mut frames = Vec::new();
    let report = replay_reader(RecordReader::open(path)?, |frame| frames.push(frame))?;
    Ok(ReplayOutcome { frames, report })
}

/// Replays a log read from `input`, handing each frame to `on_frame` instead of keeping them.
pub fn replay_with<R: Read>(input: R, on_frame: impl FnMut(Frame)) -> Result<ReplayReport, RecordError> {
    replay_reader(RecordReader::new(input)?, on_frame)
}

fn replay_reader<R: Read>(
    mut reader: RecordReader<R>,
    mut on_frame: impl FnMut(Frame),
) -> Result<ReplayReport, RecordError> {
    let run = reader.run_config().clone();
    let mut pipeline = Pipeline::new(&run.config, run.queues.len())?;
    // Sealed frames whose checkpoint has not been read yet.
    let mut unchecked: VecDeque<(u64, [u8; 32])> = VecDeque::new();
    let (mut frames, mut verified_frames, mut divergence, mut stop) = (0, 0, None, None);
    loop {
        let (offset, record_index) = (reader.offset(), reader.records_read());
        let Some(record) = reader.next_record() else { break };
        match record {
            Record::Item { slot, item } => {
                if let Err(error) = pipeline.feed(usize::from(slot), item) {
                    stop = Some(StopPoint { offset, record_index, reason: StopReason::Rejected(error) });
                    break;
                }
                for frame in pipeline.drain_frames() {
                    unchecked.push_back((frame.tick, frame.hash));
                    frames += 1;
                    on_frame(frame);
                }
            }
            Record::Epoch(recorded) => {
                if pipeline.epoch() != Some(recorded) && divergence.is_none() {
                    let kind = DivergenceKind::Epoch { recorded, replayed: pipeline.epoch() };
                    divergence = Some(Divergence { record_index, kind });
                }
            }
            Record::Frame { tick, hash } => match unchecked.pop_front() {
                Some(replayed) if replayed == (tick, hash) => verified_frames += 1,
                replayed => {
                    if divergence.is_none() {
                        let kind = DivergenceKind::Frame { tick, recorded: hash, replayed };
                        divergence = Some(Divergence { record_index, kind });
                    }
                }
            },
        }
    }
    let records = stop.as_ref().map_or(reader.records_read(), |s| s.record_index);
    Ok(ReplayReport {
        run,
        stats: pipeline.stats(),
        records,
        stop: stop.or_else(|| reader.stop_point().cloned()),
        frames,
        verified_frames,
        divergence,
        finished: pipeline.is_finished(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::{Clock, Timestamp};

    const MS: u64 = 1_000_000;

    fn input(ts: u64, client: u32, seq: u64, queue: u16) -> Input {
        Input {
            rx: Timestamp { ns: ts, clock: Clock::Xdp },
            queue,
            client_id: client,
            seq,
            client_frame: seq as u32,
            payload: vec![client as u8; (seq % 5) as usize],
        }
    }

    fn run_config() -> RunConfig {
        let config = Config { tick_hz: 1_000, grace_us: 300, late: Late::Next, ..Config::default() };
        RunConfig { config, queues: vec![3, 5] }
    }

    /// A two-queue run with stragglers, late inputs, a clock mismatch and an epoch derived from
    /// the first input, recorded to memory.
    fn recorded_run() -> (Vec<u8>, Vec<Frame>, Stats) {
        let run = run_config();
        let writer = RecordWriter::new(Vec::new(), &run).expect("header fits in memory");
        let mut p = Pipeline::with_recorder(&run.config, 2, writer).expect("valid config");
        let mut frames = vec![];
        let mut feed = |p: &mut Pipeline<RecordWriter<Vec<u8>>>, slot, item| {
            p.feed(slot, item).expect("valid item");
            frames.extend(p.drain_frames());
        };
        for step in 0..40u64 {
            let t = 7 * MS + step * 250_000;
            feed(&mut p, (step % 2) as usize, Item::Input(input(t, step as u32 % 3, step, 3)));
            feed(&mut p, ((step + 1) % 2) as usize, Item::Watermark(t + 100_000));
            if step % 9 == 4 {
                // Behind its queue's floor: some within the grace, some far beyond.
                let back = if step % 2 == 0 { 150_000 } else { 3 * MS };
                feed(&mut p, 1, Item::Input(input(t - back, 9, 100 + step, 5)));
            }
            if step == 20 {
                feed(
                    &mut p,
                    0,
                    Item::Input(Input { rx: Timestamp::nic(input(1, 4, 1, 3).rx.ns), ..input(1, 4, 1, 3) }),
                );
            }
        }
        feed(&mut p, 0, Item::Close);
        feed(&mut p, 1, Item::Close);
        let stats = p.stats();
        let bytes = p.into_recorder().finish().expect("memory never fails");
        (bytes, frames, stats)
    }

    /// Start offsets of every record after the configuration.
    fn record_offsets(bytes: &[u8]) -> Vec<u64> {
        let mut reader = RecordReader::new(bytes).expect("valid log");
        let mut offsets = vec![];
        loop {
            let offset = reader.offset();
            if reader.next_record().is_none() {
                break;
            }
            offsets.push(offset);
        }
        assert_eq!(reader.stop_point(), None);
        offsets
    }

    #[test]
    fn records_round_trip() {
        let run = run_config();
        let records = vec![
            Record::Item { slot: 1, item: Item::Input(input(5, 6, 7, 5)) },
            Record::Item { slot: 0, item: Item::Watermark(u64::MAX) },
            Record::Item { slot: 1, item: Item::Close },
            Record::Epoch(42),
            Record::Frame { tick: 9, hash: [7; 32] },
        ];
        let mut writer = RecordWriter::new(Vec::new(), &run).expect("memory");
        for record in &records {
            writer.append(record).expect("memory");
        }
        assert_eq!(writer.records(), 6);
        let bytes = writer.finish().expect("memory");
        let mut reader = RecordReader::new(&bytes[..]).expect("valid log");
        assert_eq!(reader.run_config(), &run);
        let read: Vec<_> = std::iter::from_fn(|| reader.next_record()).collect();
        assert_eq!(read, records);
        assert_eq!((reader.stop_point(), reader.offset()), (None, bytes.len() as u64));
    }

    #[test]
    fn replay_reproduces_frames_hashes_and_late_decisions() {
        let (bytes, frames, stats) = recorded_run();
        assert!(stats.late_next > 0 && stats.out_of_order > stats.late_next, "{stats:?}");
        assert_eq!(stats.restamped_clock, 1);
        let mut replayed = vec![];
        let report = replay_with(&bytes[..], |f| replayed.push(f)).expect("valid log");
        assert_eq!(replayed, frames);
        assert_eq!(report.stats, stats);
        assert_eq!((report.stop, report.divergence), (None, None));
        assert_eq!((report.frames, report.verified_frames), (frames.len() as u64, frames.len() as u64));
        assert!(report.finished);
        assert_eq!(report.records, record_offsets(&bytes).len() as u64 + 1);
    }

    #[test]
    fn a_torn_last_record_replays_everything_before_it_and_says_where() {
        let (bytes, frames, _) = recorded_run();
        let offsets = record_offsets(&bytes);
        let last = *offsets.last().expect("records") as usize;
        let last_index = offsets.len() as u64;
        for cut in last..bytes.len() {
            let mut replayed = vec![];
            let report = replay_with(&bytes[..cut], |f| replayed.push(f)).expect("config intact");
            assert!(frames.starts_with(&replayed), "cut at {cut}");
            assert_eq!(report.records, last_index, "cut at {cut}");
            if cut == last {
                assert_eq!(report.stop, None, "a cut on a record boundary is a clean end");
                continue;
            }
            let stop = report.stop.expect("torn");
            assert_eq!((stop.offset, stop.record_index), (last as u64, last_index), "cut at {cut}");
            let have = cut - last;
            let want = if have < 8 {
                StopReason::TornHeader { have }
            } else {
                StopReason::TornBody { len: (bytes.len() - last - 8) as u32, have: have - 8 }
            };
            assert_eq!(stop.reason, want);
        }
    }

    #[test]
    fn a_flipped_byte_stops_the_replay_at_that_record() {
        let (bytes, frames, _) = recorded_run();
        let offsets = record_offsets(&bytes);
        let victim = offsets.len() / 2;
        let (start, end) = (offsets[victim] as usize, offsets[victim + 1] as usize);
        for at in start..end {
            for bit in [0x01u8, 0x80] {
                let mut damaged = bytes.clone();
                damaged[at] ^= bit;
                let mut replayed = vec![];
                let report = replay_with(&damaged[..], |f| replayed.push(f)).expect("config intact");
                let stop = report.stop.expect("damage detected");
                assert_eq!((stop.offset, stop.record_index), (start as u64, victim as u64 + 1), "byte {at}");
                assert!(
                    matches!(
                        stop.reason,
                        StopReason::Checksum { .. }
                            | StopReason::TooLong { .. }
                            | StopReason::TornBody { .. }
                    ),
                    "byte {at}: {:?}",
                    stop.reason
                );
                assert!(frames.starts_with(&replayed) && replayed.len() < frames.len());
                assert!(stop.to_string().contains(&format!("byte {start}")));
            }
        }
    }

    #[test]
    fn a_checkpoint_the_replay_does_not_reproduce_is_reported() {
        let run = run_config();
        let mut writer = RecordWriter::new(Vec::new(), &run).expect("memory");
        let append = |w: &mut RecordWriter<Vec<u8>>, r| w.append(&r).expect("memory");
        append(&mut writer, Record::Item { slot: 1, item: Item::Watermark(5 * MS) });
        append(&mut writer, Record::Item { slot: 0, item: Item::Input(input(5 * MS, 1, 1, 3)) });
        append(&mut writer, Record::Epoch(5 * MS));
        append(&mut writer, Record::Item { slot: 0, item: Item::Close });
        append(&mut writer, Record::Item { slot: 1, item: Item::Close });
        append(&mut writer, Record::Frame { tick: 0, hash: [1; 32] });
        let bytes = writer.finish().expect("memory");
        let report = replay_with(&bytes[..], |_| {}).expect("valid log");
        let divergence = report.divergence.expect("wrong hash detected");
        assert_eq!(divergence.record_index, 6);
        assert!(matches!(divergence.kind, DivergenceKind::Frame { tick: 0, replayed: Some((0, _)), .. }));
        assert_eq!((report.frames, report.verified_frames), (1, 0));
        let json = serde_json::to_string(&divergence).expect("serializable");
        assert!(json.contains(&"01".repeat(32)), "{json}");
    }

    #[test]
    fn an_impossible_item_stops_the_replay() {
        let mut writer = RecordWriter::new(Vec::new(), &run_config()).expect("memory");
        writer.append(&Record::Item { slot: 1, item: Item::Close }).expect("memory");
        writer.append(&Record::Item { slot: 1, item: Item::Input(input(1, 1, 1, 5)) }).expect("memory");
        let bytes = writer.finish().expect("memory");
        let report = replay_with(&bytes[..], |_| {}).expect("valid log");
        let stop = report.stop.expect("refused");
        assert_eq!(stop.reason, StopReason::Rejected(SequencerError::Closed { slot: 1 }));
        assert_eq!(stop.record_index, 2);
    }

    #[test]
    fn unreadable_headers_are_errors() {
        let (bytes, _, _) = recorded_run();
        assert!(matches!(RecordReader::new(&bytes[..5]), Err(RecordError::TooShort { have: 5 })));
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert!(matches!(RecordReader::new(&bad[..]), Err(RecordError::NotALog)));
        let mut bad = bytes.clone();
        bad[9] = 2;
        assert!(matches!(RecordReader::new(&bad[..]), Err(RecordError::Version { found: 2 })));
        let mut bad = bytes.clone();
        bad[HEADER_LEN as usize + 10] ^= 1;
        match RecordReader::new(&bad[..]) {
            Err(RecordError::ConfigDamaged(stop)) => {
                assert_eq!((stop.offset, stop.record_index), (HEADER_LEN, 0));
                assert!(matches!(stop.reason, StopReason::Checksum { .. }));
            }
            other => panic!("expected a damaged configuration, got {other:?}"),
        }
    }

    #[test]
    fn a_failing_disk_stops_the_log_cleanly_and_finish_reports_it() {
        struct Budget(usize);
        impl Write for Budget {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                let n = buf.len().min(self.0);
                self.0 -= n;
                if n == 0 { Err(io::Error::other("disk full")) } else { Ok(n) }
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut writer = RecordWriter::new(Budget(30), &run_config()).expect("header fits");
        writer.idle();
        assert!(writer.error().is_some(), "the configuration record does not fit in 30 bytes");
        let records = writer.records();
        writer.item(0, &Item::Close);
        assert_eq!(writer.records(), records, "nothing is written after the first error");
        assert!(matches!(writer.finish(), Err(RecordError::Write(_))));
    }

    #[test]
    fn files_are_created_once_and_replayed_by_path() {
        let dir = std::env::temp_dir().join(format!("tickgate-record-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("run.tglog");
        let _ = std::fs::remove_file(&path);
        let (bytes, frames, _) = recorded_run();
        std::fs::write(&path, &bytes).expect("write log");
        let outcome = replay(&path).expect("valid log");
        assert_eq!(outcome.frames, frames);
        let err = RecordWriter::create(&path, &run_config()).expect_err("exists");
        assert!(err.to_string().contains("never overwritten"), "{err}");
        std::fs::remove_file(&path).expect("clean up");
        let mut writer = RecordWriter::create(&path, &run_config()).expect("new file");
        writer.sync().expect("fsync");
        drop(writer);
        assert_eq!(replay(&path).expect("valid log").report.records, 1);
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
