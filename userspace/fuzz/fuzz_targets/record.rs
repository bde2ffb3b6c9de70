//! The record-log reader (`tickgate::record`), on arbitrary files.
//!
//! A log is untrusted input: a crash tears it, a disk flips bits, a user passes the wrong file.
//! The reader must never panic, only stop at the first damaged record and say where. Each
//! input is read as given and again with every record's CRC32C recomputed (the checksum would
//! otherwise stop almost every mutation at the first record), whole and in small reads; the
//! records read must write back to a log that reads the same. Then the log is replayed.
#![no_main]

use std::io;

use libfuzzer_sys::fuzz_target;
use tickgate::record::{
    MAX_RECORD_LEN, Record, RecordReader, RecordWriter, RunConfig, StopPoint, StopReason, replay_with,
};

/// Bytes of the file header in front of the first record.
const FILE_HEADER_LEN: usize = 12;

fuzz_target!(|data: &[u8]| {
    check(data);
    let fixed = with_checksums_fixed(data);
    if fixed != data {
        check(&fixed);
    }
});

fn check(log: &[u8]) {
    let Some(read) = read_all(log) else {
        assert!(replay_with(log, |_| {}).is_err(), "replay accepts a log the reader refuses");
        return;
    };
    match &read.stop {
        None => assert_eq!(read.end, log.len() as u64, "a clean end is the end of the file"),
        Some(stop) => assert!(stop.offset < log.len() as u64, "damage is reported inside the file"),
    }
    // Short reads change nothing.
    let step = log.last().map_or(1, |b| usize::from(b % 13) + 1);
    assert_eq!(read_all(Trickle { data: log, step }).as_ref(), Some(&read), "read {step} bytes at a time");

    // What was read writes back to a log that reads the same and ends cleanly.
    let mut writer = RecordWriter::new(Vec::new(), &read.run).expect("a configuration the reader accepted");
    for record in &read.records {
        writer.append(record).expect("memory");
    }
    let rewritten = writer.finish().expect("memory");
    let again = read_all(rewritten.as_slice()).expect("a log the writer wrote");
    assert_eq!((&again.run, &again.records, &again.stop), (&read.run, &read.records, &None));

    let report = replay_with(log, |_| {}).expect("replay accepts a log the reader accepts");
    assert!(report.records <= read.records.len() as u64 + 1);
    if report.stop != read.stop {
        // Replay stops earlier only where the sequencer refuses an item.
        let stop = report.stop.expect("replay stops where the reader stops, or earlier");
        assert!(matches!(stop.reason, StopReason::Rejected(_)), "{stop}");
        assert_eq!(stop.record_index, report.records);
    }
}

/// A log as far as it could be read.
#[derive(Debug, PartialEq)]
struct Log {
    run: RunConfig,
    records: Vec<Record>,
    /// Offset after the last record read.
    end: u64,
    stop: Option<StopPoint>,
}

/// Reads a log to its end or first damaged record, checking that the reader's position and stop
/// point agree. `None` when the header or configuration is refused.
fn read_all(input: impl io::Read) -> Option<Log> {
    let mut reader = RecordReader::new(input).ok()?;
    let run = reader.run_config().clone();
    let mut records = Vec::new();
    loop {
        let (offset, index) = (reader.offset(), reader.records_read());
        assert_eq!(index, records.len() as u64 + 1, "the configuration is record 0");
        let Some(record) = reader.next_record() else {
            let stop = reader.stop_point().cloned();
            if let Some(stop) = &stop {
                assert_eq!((stop.offset, stop.record_index), (offset, index), "stops where it stood");
            }
            assert_eq!(reader.offset(), offset);
            assert!(reader.next_record().is_none(), "a stopped reader stays stopped");
            return Some(Log { run, records, end: offset, stop });
        };
        assert!(reader.offset() >= offset + 8 + 3, "a record is its 8-byte head and a body");
        records.push(record);
    }
}

/// Recomputes the CRC32C of every record whose length fits in the input.
fn with_checksums_fixed(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    let mut at = FILE_HEADER_LEN;
    while let Some(head) = out.get(at..at + 8) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let end = at + 8 + len as usize;
        if len > MAX_RECORD_LEN || end > out.len() {
            break;
        }
        let crc = crc32c::crc32c(&out[at + 8..end]);
        out[at + 4..at + 8].copy_from_slice(&crc.to_be_bytes());
        at = end;
    }
    out
}

/// A reader that hands out at most `step` bytes per call.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.step).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}
