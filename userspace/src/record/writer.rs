//! Writing a record log: [`RecordWriter`], the sequencer's [`Recorder`] that logs every item it applies.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use crate::frame_queue::{ConfigError, Frame, MAX_QUEUES, Recorder};
use crate::sequencer::Item;

use super::*;

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
            Record::Epoch { match_id, epoch_ns } => encode_epoch(body, *match_id, *epoch_ns),
            Record::Frame { match_id, tick, hash } => encode_frame_check(body, *match_id, *tick, hash),
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

    fn epoch(&mut self, match_id: u64, epoch_ns: u64) {
        self.log(|body| encode_epoch(body, match_id, epoch_ns));
    }

    fn frame(&mut self, frame: &Frame) {
        self.log(|body| encode_frame_check(body, frame.match_id, frame.tick, &frame.hash));
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
