use std::io::{self, Write};

use crate::frame_queue::{Config, Frame, Late, Pipeline, Recorder, Stats};
use crate::input::{Clock, Input, Timestamp};
use crate::sequencer::{Item, SequencerError};

use super::*;

const MS: u64 = 1_000_000;

fn input(ts: u64, client: u32, seq: u64, queue: u16) -> Input {
    Input {
        kind: crate::input::InputKind::Command,
        rx: Timestamp { ns: ts, clock: Clock::Xdp },
        queue,
        client_id: client,
        match_id: 0,
        seq,
        client_frame: seq as u32,
        payload: vec![client as u8; (seq % 5) as usize].into(),
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
        if step == 10 || step == 30 {
            // A join and a leave: session events ride the input path and the log.
            let kind =
                if step == 10 { crate::input::InputKind::Join } else { crate::input::InputKind::Leave };
            feed(&mut p, 0, Item::Input(Input { kind, payload: (*b"event").into(), ..input(t, 42, 7, 3) }));
        }
        if step == 20 {
            feed(
                &mut p,
                0,
                Item::Input(Input {
                    kind: crate::input::InputKind::Command,
                    rx: Timestamp::nic(input(1, 4, 1, 3).rx.ns),
                    ..input(1, 4, 1, 3)
                }),
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
        Record::Epoch { match_id: 3, epoch_ns: 42 },
        Record::Frame { match_id: 3, tick: 9, hash: [7; 32] },
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
    let kinds: Vec<_> = replayed
        .iter()
        .flat_map(|f| &f.inputs)
        .map(|i| i.kind)
        .filter(|k| *k != crate::input::InputKind::Command)
        .collect();
    assert_eq!(kinds, [crate::input::InputKind::Join, crate::input::InputKind::Leave]);
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
                    StopReason::Checksum { .. } | StopReason::TooLong { .. } | StopReason::TornBody { .. }
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
    append(&mut writer, Record::Epoch { match_id: 0, epoch_ns: 5 * MS });
    append(&mut writer, Record::Item { slot: 0, item: Item::Close });
    append(&mut writer, Record::Item { slot: 1, item: Item::Close });
    append(&mut writer, Record::Frame { match_id: 0, tick: 0, hash: [1; 32] });
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
    bad[9] = 3;
    assert!(matches!(RecordReader::new(&bad[..]), Err(RecordError::Version { found: 3 })));
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

/// The same log in format version 1: no match ids in inputs and checkpoints.
fn as_version_1(v2: &[u8]) -> Vec<u8> {
    let mut out = v2[..HEADER_LEN as usize].to_vec();
    out[8..10].copy_from_slice(&1u16.to_be_bytes());
    let mut at = HEADER_LEN as usize;
    while at + 8 <= v2.len() {
        let len = u32::from_be_bytes(v2[at..at + 4].try_into().expect("4 bytes")) as usize;
        let mut body = v2[at + 8..at + 8 + len].to_vec();
        // The match id follows the client id in an input, the kind byte in a checkpoint.
        match body[0] {
            KIND_INPUT => drop(body.drain(18..26)),
            KIND_EPOCH | KIND_FRAME => drop(body.drain(1..9)),
            _ => {}
        }
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        out.extend_from_slice(&body);
        at += 8 + len;
    }
    out
}

#[test]
fn a_version_1_log_replays_as_match_0() {
    let (bytes, frames, _) = recorded_run();
    let old = as_version_1(&bytes);
    assert!(old.len() < bytes.len(), "match ids were removed");
    let mut replayed = Vec::new();
    let report = replay_with(&old[..], |f| replayed.push(f)).expect("a version 1 log opens");
    assert_eq!(report.divergence, None);
    assert_eq!(report.stop, None);
    assert_eq!(replayed, frames);
    assert_eq!(report.verified_frames, frames.len() as u64);
}
