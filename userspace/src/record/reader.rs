//! Reading a record log back: [`RecordReader`], which stops at the first damaged record and says where.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use serde::{Serialize, Serializer};

use crate::frame_queue::Config;
use crate::sequencer::SequencerError;

use super::*;

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
    /// The log's format version.
    version: u16,
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
        if !(OLDEST_VERSION..=VERSION).contains(&found) {
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
            version: found,
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
            Some(()) => decode_record(&self.body, self.run.queues.len(), self.version)
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
