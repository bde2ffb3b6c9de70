//! Replaying a record log through a fresh pipeline and checking its frames against the log's checkpoints.

use std::collections::VecDeque;
use std::io::Read;
use std::path::Path;

use serde::{Serialize, Serializer};

use crate::frame_queue::{Frame, Pipeline, Stats, hex};

use super::*;

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
    /// A frame's match, tick or hash.
    Frame {
        /// The recorded match.
        match_id: u64,
        /// The recorded tick.
        tick: u64,
        /// The recorded hash.
        #[serde(serialize_with = "hex_hash")]
        recorded: [u8; 32],
        /// The frame the replay sealed in its place, if any, as (tick, hash).
        #[serde(serialize_with = "hex_frame")]
        replayed: Option<(u64, [u8; 32])>,
    },
    /// A match's epoch.
    Epoch {
        /// The match.
        match_id: u64,
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
    let mut unchecked: VecDeque<(u64, u64, [u8; 32])> = VecDeque::new();
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
                    unchecked.push_back((frame.match_id, frame.tick, frame.hash));
                    frames += 1;
                    on_frame(frame);
                }
            }
            Record::Epoch { match_id, epoch_ns: recorded } => {
                let replayed = pipeline.epoch_of(match_id);
                if replayed != Some(recorded) && divergence.is_none() {
                    let kind = DivergenceKind::Epoch { match_id, recorded, replayed };
                    divergence = Some(Divergence { record_index, kind });
                }
            }
            Record::Frame { match_id, tick, hash } => match unchecked.pop_front() {
                Some(replayed) if replayed == (match_id, tick, hash) => verified_frames += 1,
                replayed => {
                    if divergence.is_none() {
                        let replayed = replayed.map(|(_, tick, hash)| (tick, hash));
                        let kind = DivergenceKind::Frame { match_id, tick, recorded: hash, replayed };
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
