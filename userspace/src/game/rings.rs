//! One ring per match in a directory: `match-<id>.ring`, made at the match's first frame, ended
//! with its last. What a run's `--frame-rings DIR` writes (`docs/frame-ring.md`).

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use super::{
    record::{encode_frame, encode_match_start},
    ring::{Read, RingError, RingReader, RingStats, RingWriter, kind},
};
use crate::frame_queue::{Frame, TickClock};

/// How the ring files are made.
#[derive(Clone, Debug)]
pub struct RingsConfig {
    /// The directory (created if missing).
    pub dir: PathBuf,
    /// Permissions of each file (e.g. `0o660`: tickgate and the game's group).
    pub mode: u32,
    /// Group of each file, if not tickgate's own.
    pub gid: Option<u32>,
    /// Owner of each file, if not tickgate's own (the game's user, so that it owns what it
    /// writes to).
    pub uid: Option<u32>,
    /// Bytes of each ring's data area (a power of two).
    pub capacity: u64,
}

/// What the rings of a run did, summed over matches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RingsReport {
    /// Ring files made (one per match).
    pub rings: u64,
    /// Records written.
    pub records: u64,
    /// Records overwritten before the game had read them.
    pub overwritten_unread: u64,
    /// Frames not written: a ring could not be made, or a frame larger than half a ring.
    pub not_written: u64,
    /// The game's messages taken from its `match-<id>.out` rings.
    pub messages: u64,
    /// Records in those rings that were not a valid message (unknown kind, too short), or gaps.
    pub messages_refused: u64,
}

/// A message the game wrote into a match's `.out` ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GameMessage {
    /// To every player of the match, with its next frame.
    ToMatch(Vec<u8>),
    /// To one player.
    ToPlayer {
        /// The player.
        player: u64,
        /// The bytes.
        message: Vec<u8>,
    },
}

/// The rings of every live match.
#[derive(Debug)]
pub struct Rings {
    config: RingsConfig,
    live: HashMap<u64, RingWriter>,
    outboxes: HashMap<u64, RingReader>,
    messages: u64,
    refused: u64,
    ended: RingsReport,
    not_written: u64,
    /// The first error (logged once; counted always).
    pub first_error: Option<String>,
}

impl Rings {
    /// Rings in `config.dir` (created with the same mode, searchable).
    pub fn new(config: RingsConfig) -> Result<Self, RingError> {
        std::fs::create_dir_all(&config.dir).map_err(|source| RingError::Io {
            what: "creating the ring directory",
            path: config.dir.clone(),
            source,
        })?;
        Ok(Self {
            config,
            live: HashMap::new(),
            outboxes: HashMap::new(),
            messages: 0,
            refused: 0,
            ended: RingsReport::default(),
            not_written: 0,
            first_error: None,
        })
    }

    /// The file of `match_id`'s ring.
    pub fn path_of(dir: &Path, match_id: u64) -> PathBuf {
        dir.join(format!("match-{match_id}.ring"))
    }

    /// The file the game writes `match_id`'s messages into.
    pub fn out_path_of(dir: &Path, match_id: u64) -> PathBuf {
        dir.join(format!("match-{match_id}.out"))
    }

    /// Takes at most `max` records from each live match's `.out` ring and hands each valid
    /// message to `deliver` (with its match). Everything in those files is the game's and
    /// untrusted: a record that is not a message is counted and skipped.
    pub fn poll_outbound(&mut self, max: usize, mut deliver: impl FnMut(u64, GameMessage)) {
        for (&match_id, reader) in &mut self.outboxes {
            for _ in 0..max {
                let message = match reader.read() {
                    Read::Record { kind: kind::TO_MATCH, body, .. } => GameMessage::ToMatch(body),
                    Read::Record { kind: kind::TO_PLAYER, body, .. } if body.len() >= 8 => {
                        let (player, message) = body.split_at(8);
                        let player = u64::from_le_bytes(player.try_into().unwrap_or_default());
                        GameMessage::ToPlayer { player, message: message.to_vec() }
                    }
                    Read::Record { .. } | Read::Missed(_) => {
                        self.refused += 1;
                        continue;
                    }
                    Read::Empty | Read::Ended => break,
                };
                self.messages += 1;
                deliver(match_id, message);
            }
        }
    }

    /// Writes `frame` to its match's ring (making the ring at the match's first frame; ending it
    /// at its last). Never blocks: a game that does not read loses its oldest records.
    pub fn frame(&mut self, frame: &Frame, scratch: &mut Vec<u8>) {
        if let Err(e) = self.write(frame, scratch) {
            self.not_written += 1;
            if self.first_error.is_none() {
                log::warn!("frame ring of match {}: {e} (counted as not_written)", frame.match_id);
                self.first_error = Some(e.to_string());
            }
        }
    }

    /// Gives `path` to `uid` (its group and mode are set when it is made).
    fn own(path: &std::path::Path, uid: Option<u32>) -> Result<(), RingError> {
        let Some(uid) = uid else { return Ok(()) };
        std::os::unix::fs::chown(path, Some(uid), None).map_err(|source| RingError::Io {
            what: "setting the owner of",
            path: path.to_path_buf(),
            source,
        })
    }

    fn write(&mut self, frame: &Frame, scratch: &mut Vec<u8>) -> Result<(), RingError> {
        let writer = match self.live.entry(frame.match_id) {
            std::collections::hash_map::Entry::Occupied(w) => w.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => {
                let c = &self.config;
                let path = Self::path_of(&c.dir, frame.match_id);
                let mut w =
                    RingWriter::create(&path, frame.match_id, frame.tick_hz, c.capacity, c.mode, c.gid)?;
                Self::own(&path, c.uid)?;
                let offset = TickClock::new(0, frame.tick_hz.max(1)).start(frame.tick);
                let start =
                    encode_match_start(frame.match_id, frame.tick_hz, frame.start_ns.saturating_sub(offset));
                w.append(kind::MATCH_START, &start)?;
                let out = Self::out_path_of(&c.dir, frame.match_id);
                let outbox = RingReader::create_for_game(
                    &out,
                    frame.match_id,
                    frame.tick_hz,
                    c.capacity,
                    c.mode,
                    c.gid,
                )?;
                Self::own(&out, c.uid)?;
                self.outboxes.insert(frame.match_id, outbox);
                self.ended.rings += 1;
                slot.insert(w)
            }
        };
        scratch.clear();
        encode_frame(frame, scratch);
        writer.append(kind::FRAME, scratch)?;
        if frame.last
            && let Some(mut w) = self.live.remove(&frame.match_id)
        {
            w.append(kind::MATCH_END, &frame.tick.to_le_bytes())?;
            w.end();
            self.retire(&w.stats());
            self.outboxes.remove(&frame.match_id);
        }
        Ok(())
    }

    fn retire(&mut self, s: &RingStats) {
        self.ended.records += s.records;
        self.ended.overwritten_unread += s.overwritten_unread;
    }

    /// The counts so far.
    pub fn report(&self) -> RingsReport {
        let mut r = self.ended;
        for w in self.live.values() {
            let s = w.stats();
            r.records += s.records;
            r.overwritten_unread += s.overwritten_unread;
        }
        r.not_written = self.not_written;
        r.messages = self.messages;
        r.messages_refused = self.refused;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::ring::{GameWriteError, GameWriter};

    #[test]
    fn the_games_messages_come_out_of_its_out_ring_a_bounded_number_per_pass() {
        let dir = std::env::temp_dir().join(format!("tickgate-rings-{}", std::process::id()));
        let config = RingsConfig { dir: dir.clone(), mode: 0o600, gid: None, uid: None, capacity: 4096 };
        let mut rings = Rings::new(config).expect("a directory");
        let frame = Frame {
            match_id: 4,
            tick: 0,
            tick_hz: 60,
            start_ns: 1,
            inputs: vec![],
            hash: [0; 32],
            absent: vec![],
            last: false,
        };
        rings.frame(&frame, &mut Vec::new());
        assert!(Rings::path_of(&dir, 4).exists());
        let mut game = GameWriter::open(&Rings::out_path_of(&dir, 4)).expect("the .out ring");
        game.send_to_match(b"checksum").expect("room");
        game.send_to_player(9, b"hi").expect("room");
        let mut got = Vec::new();
        rings.poll_outbound(16, |m, message| got.push((m, message)));
        assert_eq!(
            got,
            vec![
                (4, GameMessage::ToMatch(b"checksum".to_vec())),
                (4, GameMessage::ToPlayer { player: 9, message: b"hi".to_vec() })
            ]
        );
        // The game cannot run past what tickgate has read: 1024-byte records, 3 fit.
        let big = vec![7u8; 1000];
        let sent = (0..10).take_while(|_| game.send_to_match(&big).is_ok()).count();
        assert_eq!(sent, 3);
        assert_eq!(game.send_to_match(&big), Err(GameWriteError::Full));
        let mut got = Vec::new();
        rings.poll_outbound(2, |_, message| got.push(message));
        assert_eq!(got.len(), 2, "at most `max` records a pass");
        let report = rings.report();
        assert_eq!((report.rings, report.messages, report.messages_refused), (1, 4, 0));
        std::fs::remove_dir_all(&dir).expect("removed");
    }
}
