//! The matches of a run: each has its own tick grid, hash chain and player list, and is sealed
//! when the merged watermark passes its own deadline.
//!
//! Sealing work per watermark step is proportional to the matches whose oldest open tick is due:
//! a min-heap keyed by (deadline, match id) says which, so idle matches cost one frame per tick
//! and nothing else. The heap's order is total, so the same items seal the same frames in the
//! same order on every replay. `docs/architecture.md` ("Matches") has the rules.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

use super::tick::{TickStats, Ticker};
use super::{Config, Epoch, Frame, FramePool, MatchConfig};
use crate::input::{Input, InputKind};

/// Every live match and the order their deadlines come due in.
#[derive(Debug)]
pub(super) struct Matches {
    config: Config,
    live: Live,
    /// `(seal_at, match id)` of each live match with a known epoch; an entry whose deadline is
    /// not its match's current one is stale and skipped.
    due: BinaryHeap<Reverse<(u64, u64)>>,
    /// Counters of matches that ended.
    retired: TickStats,
    started: u64,
    ended: u64,
    /// The epoch a `place` just fixed, for the recorder.
    new_epoch: Option<(u64, u64)>,
    /// The newest epoch fixed, kept after its match ends (replay checks it).
    last_epoch: Option<(u64, u64)>,
    /// Ticker advances, for the scaling benchmark: it grows with the matches due, not all.
    advances: u64,
    starts_ignored: u64,
    inputs_after_end: u64,
    /// Frame buffers the game gave back, shared by every match's ticker.
    pub(super) pool: FramePool,
}

#[derive(Debug)]
struct Match {
    ticker: Ticker,
    /// Player → session id of its join.
    members: BTreeMap<u32, u64>,
    /// Whether anyone ever joined (a v1 match never ends by leaving).
    had_members: bool,
    /// The deadline this match is queued under in the heap (`u64::MAX`: not queued).
    queued: u64,
}

/// The live matches: a slab the per-input path indexes, the ids in order beside it, and the
/// slot the last lookup found. Consecutive inputs mostly belong to one match (protocol v1's run
/// has only match 0), and remembering it spares the id search per input: with
/// [`Matches::start`] kept out of the per-input path, 0.95–0.97× the pipeline's time in `cargo
/// bench --bench sequencer` (`pipeline_recycling`, one match).
#[derive(Debug, Default)]
struct Live {
    slots: Vec<(u64, Match)>,
    /// Id → index into `slots`; iterated in id order (`finish`).
    index: BTreeMap<u64, usize>,
    /// `(id, index)` of the last match found or inserted.
    last: Option<(u64, usize)>,
}

impl Live {
    /// The slot of match `id`, if it is live.
    #[inline]
    fn find(&mut self, id: u64) -> Option<usize> {
        if let Some((last, slot)) = self.last
            && last == id
        {
            return Some(slot);
        }
        let slot = *self.index.get(&id)?;
        self.last = Some((id, slot));
        Some(slot)
    }

    /// The match in `slot` (from [`find`](Self::find) or [`insert`](Self::insert)).
    #[inline]
    fn at(&mut self, slot: usize) -> &mut Match {
        &mut self.slots[slot].1
    }

    fn get(&self, id: u64) -> Option<&Match> {
        self.index.get(&id).map(|&slot| &self.slots[slot].1)
    }

    fn get_mut(&mut self, id: u64) -> Option<&mut Match> {
        self.find(id).map(|slot| self.at(slot))
    }

    /// Adds a match that is not live; returns its slot.
    fn insert(&mut self, id: u64, m: Match) -> usize {
        let slot = self.slots.len();
        self.slots.push((id, m));
        self.index.insert(id, slot);
        self.last = Some((id, slot));
        slot
    }

    /// Takes a match out; the last slot's match moves into its place.
    fn remove(&mut self, id: u64) -> Option<Match> {
        let slot = self.index.remove(&id)?;
        let (_, m) = self.slots.swap_remove(slot);
        if let Some(&(moved, _)) = self.slots.get(slot) {
            self.index.insert(moved, slot);
        }
        self.last = None;
        Some(m)
    }

    fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.index.keys().copied()
    }

    fn values(&self) -> impl Iterator<Item = &Match> {
        self.slots.iter().map(|(_, m)| m)
    }

    fn len(&self) -> usize {
        self.slots.len()
    }
}

impl Match {
    fn new(config: &Config, pool: &FramePool) -> Self {
        Self {
            ticker: Ticker::with_pool(config, pool.clone()),
            members: BTreeMap::new(),
            had_members: false,
            queued: u64::MAX,
        }
    }
}

impl Matches {
    pub(super) fn new(config: &Config) -> Self {
        let mut matches = Self {
            config: *config,
            live: Live::default(),
            due: BinaryHeap::new(),
            retired: TickStats::default(),
            started: 0,
            ended: 0,
            new_epoch: None,
            last_epoch: None,
            advances: 0,
            starts_ignored: 0,
            inputs_after_end: 0,
            pool: FramePool::default(),
        };
        // An explicit epoch is the run's grid for match 0 (protocol v1, replays of old logs):
        // it exists from the start and seals empty ticks before any input.
        if let Epoch::At(_) = config.epoch {
            matches.live.insert(0, Match::new(config, &matches.pool));
            matches.started += 1;
            matches.schedule(0);
        }
        matches
    }

    /// Puts a released input in its match, starting the match at its first input.
    #[inline]
    pub(super) fn place(&mut self, input: Input) {
        let id = input.match_id;
        let own = (input.kind == InputKind::Start).then(|| MatchConfig::decode(&input.payload));
        let slot = match self.live.find(id) {
            Some(slot) => {
                // A start after the match began changes nothing.
                self.starts_ignored += u64::from(own.is_some());
                slot
            }
            None => self.start(id, own),
        };
        let entry = self.live.at(slot);
        entry.ticker.place(input);
        if let Some(epoch) = entry.ticker.take_new_epoch() {
            self.new_epoch = Some((id, epoch));
            self.last_epoch = Some((id, epoch));
        }
        if entry.queued == u64::MAX {
            self.schedule(id);
        }
    }

    /// Starts match `id` at its first input, with the settings of `own` if that input is a
    /// valid start (once per match: kept out of the per-input path).
    #[cold]
    fn start(&mut self, id: u64, own: Option<Option<MatchConfig>>) -> usize {
        let mut config = Config { epoch: Epoch::FirstInput, ..self.config };
        match own {
            Some(Some(m)) => {
                config = Config { tick_hz: m.tick_hz, grace_us: m.grace_us, late: m.late, ..config };
            }
            Some(None) => self.starts_ignored += 1,
            None => {}
        }
        self.started += 1;
        self.live.insert(id, Match::new(&config, &self.pool))
    }

    /// Seals, in deadline order, every tick at or below `watermark` of every match due.
    /// Called for every item the merge takes, which seals nothing for most of them: the check
    /// is inlined, the sealing is not.
    #[inline]
    pub(super) fn advance(&mut self, watermark: u64, out: &mut VecDeque<Frame>) {
        if self.next_deadline().is_some_and(|at| at <= watermark) {
            self.seal_due(watermark, out);
        }
    }

    fn seal_due(&mut self, watermark: u64, out: &mut VecDeque<Frame>) {
        while let Some(&Reverse((at, id))) = self.due.peek() {
            if at > watermark {
                break;
            }
            self.due.pop();
            let Some(m) = self.live.get_mut(id) else { continue };
            if m.queued != at {
                continue;
            }
            m.queued = u64::MAX;
            self.advances += 1;
            let (members, had) = (&mut m.members, &mut m.had_members);
            let ended = m.ticker.advance(watermark, out, &mut |frame, ticker, events| {
                settle(id, members, had, frame, ticker, events)
            });
            if ended {
                self.retire(id);
            } else {
                self.schedule(id);
            }
        }
    }

    /// The lowest watermark that seals a tick of some match (or skips a stale entry of the
    /// deadline heap, which is as good a reason to look).
    pub(super) fn next_deadline(&self) -> Option<u64> {
        self.due.peek().map(|&Reverse((at, _))| at)
    }

    /// Every queue is closed: seals every open tick of every match, in match order.
    pub(super) fn finish(&mut self, out: &mut VecDeque<Frame>) {
        let ids: Vec<u64> = self.live.ids().collect();
        for id in ids {
            let Some(m) = self.live.get_mut(id) else { continue };
            let (members, had) = (&mut m.members, &mut m.had_members);
            m.ticker
                .finish(out, &mut |frame, ticker, events| settle(id, members, had, frame, ticker, events));
        }
        self.due.clear();
    }

    /// The epoch the last `place` fixed, as `(match, epoch_ns)`.
    #[inline]
    pub(super) fn take_new_epoch(&mut self) -> Option<(u64, u64)> {
        self.new_epoch.take()
    }

    /// A live match's epoch, or the newest epoch fixed if its match has ended since.
    pub(super) fn epoch_of(&self, id: u64) -> Option<u64> {
        match self.live.get(id) {
            Some(m) => m.ticker.epoch(),
            None => self.last_epoch.filter(|&(m, _)| m == id).map(|(_, epoch)| epoch),
        }
    }

    /// Counters of every match, live and ended.
    pub(super) fn stats(&self) -> TickStats {
        let mut total = self.retired.clone();
        for m in self.live.values() {
            total.add(m.ticker.stats());
        }
        total
    }

    /// Matches now live.
    pub(super) fn live(&self) -> usize {
        self.live.len()
    }

    /// Matches started and ended so far.
    pub(super) fn started_ended(&self) -> (u64, u64) {
        (self.started, self.ended)
    }

    /// Start inputs that changed nothing (invalid, or after the match had started).
    pub(super) fn starts_ignored(&self) -> u64 {
        self.starts_ignored
    }

    /// Inputs that were in ticks after the frame the game ended their match with (dropped).
    pub(super) fn inputs_after_end(&self) -> u64 {
        self.inputs_after_end
    }

    /// Ticker advances so far (one per due match per watermark step).
    pub(super) fn advances(&self) -> u64 {
        self.advances
    }

    fn schedule(&mut self, id: u64) {
        let Some(m) = self.live.get_mut(id) else { return };
        let at = m.ticker.seal_at();
        if at != u64::MAX {
            m.queued = at;
            self.due.push(Reverse((at, id)));
        }
    }

    fn retire(&mut self, id: u64) {
        if let Some(m) = self.live.remove(id) {
            self.retired.add(m.ticker.stats());
            // Inputs already placed in later ticks of a match the game ended go with it.
            self.inputs_after_end += m.ticker.open_inputs() as u64;
            self.ended += 1;
        }
    }
}

/// Fills in a sealed frame's match, absent players and end, and applies its joins and leaves to
/// the member list; `true` if the match ended with it (no members left, nothing else open).
/// `events`: whether the frame holds any input other than a command.
fn settle(
    id: u64,
    members: &mut BTreeMap<u32, u64>,
    had: &mut bool,
    frame: &mut Frame,
    ticker: &Ticker,
    events: bool,
) -> bool {
    frame.match_id = id;
    frame.start_ns = ticker.tick_start(frame.tick);
    frame.tick_hz = ticker.tick_hz();
    if members.is_empty() && !events {
        // Nobody to mark absent and nothing that joins, leaves or ends: no pass over a frame
        // that may hold 10⁵ inputs (protocol v1's match, a match whose players all left).
        frame.absent = Vec::new();
        frame.last = *had && !ticker.holds_inputs();
        return frame.last;
    }
    // Members before this frame (ascending) and whether each spoke in it: one mark per input
    // instead of collecting and sorting every speaker of a frame that may hold 10⁵ inputs.
    let before: Vec<u32> = members.keys().copied().collect();
    let mut spoke = vec![false; before.len()];
    let mut mark = |player: u32| {
        if let Ok(i) = before.binary_search(&player) {
            spoke[i] = true;
        }
    };
    let mut ended = false;
    for input in &frame.inputs {
        match input.kind {
            InputKind::End => ended = true,
            InputKind::Command => mark(input.client_id),
            InputKind::Join => {
                members.insert(input.client_id, input.seq);
                *had = true;
            }
            // The game's business: nobody joined, left or spoke.
            InputKind::Resync | InputKind::Start => {}
            InputKind::Leave => {
                // A leave of a session the player already replaced changes nothing.
                if members.get(&input.client_id) == Some(&input.seq) {
                    members.remove(&input.client_id);
                    mark(input.client_id);
                }
            }
        }
    }
    frame.absent = before.iter().zip(&spoke).filter(|&(_, &spoke)| !spoke).map(|(&p, _)| p).collect();
    frame.last = ended || (*had && members.is_empty() && !ticker.holds_inputs());
    frame.last
}

#[cfg(test)]
mod tests {
    use super::{Live, Match};
    use crate::frame_queue::{Config, Epoch, Frame, FramePool, Late, Pipeline};
    use crate::input::{Clock, Input, InputKind, Timestamp};

    const MS: u64 = 1_000_000;

    fn item(kind: InputKind, ts: u64, match_id: u64, player: u32, seq: u64) -> Input {
        Input {
            kind,
            rx: Timestamp { ns: ts, clock: Clock::Xdp },
            queue: 0,
            client_id: player,
            match_id,
            seq,
            client_frame: 0,
            payload: [player as u8].into(),
        }
    }

    /// 1 kHz ticks, 200 µs grace, epochs at each match's first input.
    fn pipeline() -> Pipeline {
        let config = Config {
            tick_hz: 1_000,
            grace_us: 200,
            late: Late::Next,
            time_base: Clock::Xdp,
            epoch: Epoch::FirstInput,
        };
        Pipeline::new(&config, 1).expect("valid config")
    }

    /// Match, tick, players with an input, absent players, last.
    type Summary = (u64, u64, Vec<u32>, Vec<u32>, bool);

    fn summary(frames: &[Frame]) -> Vec<Summary> {
        frames
            .iter()
            .map(|f| {
                (f.match_id, f.tick, f.inputs.iter().map(|i| i.client_id).collect(), f.absent.clone(), f.last)
            })
            .collect()
    }

    #[test]
    fn each_match_has_its_own_grid_and_chain_and_seals_in_deadline_order() {
        let mut p = pipeline();
        // Match 7 starts at 10.3 ms (tick 0 = [10, 11) ms), match 3 at 10.6 ms (same grid).
        p.push_input(0, item(InputKind::Command, 10 * MS + 300_000, 7, 1, 1)).expect("feed");
        p.push_input(0, item(InputKind::Command, 10 * MS + 600_000, 3, 2, 1)).expect("feed");
        p.push_input(0, item(InputKind::Command, 11 * MS + 100_000, 7, 1, 2)).expect("feed");
        p.push_watermark(0, 12 * MS + 200_000).expect("feed");
        let frames: Vec<Frame> = p.drain_frames().collect();
        // Same deadlines: match 3 first (lower id), then 7; each tick 0 then 1.
        let want = vec![
            (3, 0, vec![2], vec![], false),
            (3, 1, vec![], vec![], false),
            (7, 0, vec![1], vec![], false),
            (7, 1, vec![1], vec![], false),
        ];
        assert_eq!(summary(&frames), want);
        assert_eq!(p.epoch_of(7), Some(10 * MS));
        assert_eq!(p.epoch_of(3), Some(10 * MS));
        assert_eq!(p.epoch_of(4), None);
        // Each chain starts at genesis: match 3's tick 0 is hashed from zero, not from match 7.
        let alone = crate::frame_queue::chain_hash(&crate::frame_queue::GENESIS_HASH, 0, &frames[0].inputs);
        assert_eq!(frames[0].hash, alone);
        assert_eq!(p.stats().matches_started, 2);
    }

    #[test]
    fn players_who_sent_nothing_are_absent_and_the_last_leave_ends_the_match() {
        let mut p = pipeline();
        let base = 10 * MS;
        for player in [1, 2, 3] {
            p.push_input(
                0,
                item(InputKind::Join, base + u64::from(player), 9, player, 100 + u64::from(player)),
            )
            .expect("feed");
        }
        // Tick 1: only player 1 sends; player 3 leaves.
        p.push_input(0, item(InputKind::Command, base + MS + 10, 9, 1, 1)).expect("feed");
        p.push_input(0, item(InputKind::Leave, base + MS + 20, 9, 3, 103)).expect("feed");
        // Tick 2: a leave of a session player 2 no longer holds changes nothing.
        p.push_input(0, item(InputKind::Leave, base + 2 * MS + 5, 9, 2, 55)).expect("feed");
        // Tick 3: players 1 and 2 leave.
        p.push_input(0, item(InputKind::Leave, base + 3 * MS + 5, 9, 1, 101)).expect("feed");
        p.push_input(0, item(InputKind::Leave, base + 3 * MS + 6, 9, 2, 102)).expect("feed");
        p.push_watermark(0, base + 6 * MS).expect("feed");
        let frames: Vec<Frame> = p.drain_frames().collect();
        let want = vec![
            (9, 0, vec![1, 2, 3], vec![], false),
            (9, 1, vec![1, 3], vec![2], false),
            (9, 2, vec![2], vec![1, 2], false),
            (9, 3, vec![1, 2], vec![], true),
        ];
        assert_eq!(summary(&frames), want, "no frames after the last one");
        let stats = p.stats();
        assert_eq!((stats.matches_started, stats.matches_ended, p.live_matches()), (1, 1, 0));
        // A join of the same id later starts it again, from tick 0 on a new epoch.
        p.push_input(0, item(InputKind::Join, base + 20 * MS + 500, 9, 4, 104)).expect("feed");
        p.push_watermark(0, base + 21 * MS + 300_000).expect("feed");
        let again: Vec<Frame> = p.drain_frames().collect();
        assert_eq!(summary(&again), vec![(9, 0, vec![4], vec![], false)]);
        assert_eq!(p.epoch_of(9), Some(base + 20 * MS));
        assert_eq!(p.stats().matches_started, 2);
    }

    #[test]
    fn a_match_the_game_starts_has_its_own_tick_rate_and_a_later_start_changes_nothing() {
        use crate::frame_queue::MatchConfig;
        let mut p = pipeline();
        let own = MatchConfig { tick_hz: 250, grace_us: 0, late: Late::Drop };
        let start = |m: u64, ts: u64, payload: Vec<u8>| Input {
            payload: payload.into(),
            ..item(InputKind::Start, ts, m, 0, 0)
        };
        p.push_input(0, start(4, 10 * MS, own.encode().to_vec())).expect("feed");
        // Invalid bytes: the match takes the run's configuration, the start is counted.
        p.push_input(0, start(5, 10 * MS, vec![0xff; 3])).expect("feed");
        p.push_input(0, item(InputKind::Join, 10 * MS + 100, 4, 1, 7)).expect("feed");
        p.push_input(0, start(4, 10 * MS + 200, MatchConfig { tick_hz: 10, ..own }.encode().to_vec()))
            .expect("feed");
        p.push_watermark(0, 30 * MS).expect("feed");
        let frames: Vec<Frame> = p.drain_frames().collect();
        let four: Vec<&Frame> = frames.iter().filter(|f| f.match_id == 4).collect();
        assert_eq!(four.len(), 5, "20 ms at 250 Hz");
        assert!(four.iter().all(|f| f.tick_hz == 250));
        assert_eq!(
            four[0].inputs.iter().map(|i| i.kind).collect::<Vec<_>>(),
            [InputKind::Start, InputKind::Join, InputKind::Start]
        );
        assert_eq!(four[1].start_ns - four[0].start_ns, 4 * MS);
        let five: Vec<&Frame> = frames.iter().filter(|f| f.match_id == 5).collect();
        assert_eq!(five.len(), 19, "20 ms at the run's 1 kHz, less the last tick's 200 µs grace");
        assert!(five.iter().all(|f| f.tick_hz == 1_000));
        assert_eq!(p.stats().starts_ignored, 2);
        assert_eq!(MatchConfig::decode(&own.encode()), Some(own));
        assert_eq!(MatchConfig::decode(&MatchConfig { tick_hz: 0, ..own }.encode()), None);
    }

    #[test]
    fn the_game_ends_a_match_even_without_players_and_later_inputs_are_counted() {
        let mut p = pipeline();
        let base = 10 * MS;
        p.push_input(0, item(InputKind::Start, base, 3, 0, 0)).expect("feed");
        p.push_input(0, item(InputKind::Join, base + 10, 6, 1, 1)).expect("feed");
        p.push_input(0, item(InputKind::End, base + 2 * MS + 5, 3, 0, 0)).expect("feed");
        p.push_input(0, item(InputKind::End, base + 2 * MS + 5, 6, 0, 0)).expect("feed");
        p.push_input(0, item(InputKind::Command, base + 3 * MS + 5, 6, 1, 1)).expect("feed");
        p.push_watermark(0, base + 3 * MS + 300_000).expect("feed");
        let frames: Vec<Frame> = p.drain_frames().collect();
        let ends: Vec<(u64, u64)> = frames.iter().filter(|f| f.last).map(|f| (f.match_id, f.tick)).collect();
        assert_eq!(ends, vec![(3, 2), (6, 2)]);
        let stats = p.stats();
        assert_eq!((stats.matches_ended, stats.inputs_after_end), (2, 1));
        p.push_watermark(0, base + 10 * MS).expect("feed");
        assert_eq!(p.drain_frames().count(), 0, "ended matches seal nothing more");
    }

    #[test]
    fn a_v1_run_is_match_0_and_never_ends() {
        let config = Config { epoch: Epoch::At(0), ..Config::default() };
        let mut p = Pipeline::new(&config, 1).expect("valid config");
        p.push_watermark(0, 100 * MS).expect("feed");
        let frames: Vec<Frame> = p.drain_frames().collect();
        assert!(frames.len() >= 5, "match 0 seals empty ticks from its explicit epoch");
        assert!(frames.iter().all(|f| f.match_id == 0 && f.absent.is_empty() && !f.last));
        assert_eq!(p.stats().matches_started, 1);
    }

    #[test]
    fn a_thousand_matches_seal_every_tick_and_only_due_matches_are_touched() {
        // 1 000 matches × 4 players at 60 Hz, all on the run's grid; the watermark moves in 1 ms
        // steps, so most steps end no tick and must touch no match at all.
        let config = Config { tick_hz: 60, grace_us: 0, ..Config::default() };
        let mut p = Pipeline::new(&config, 1).expect("valid config");
        let tick = 1_000_000_000 / 60;
        let start = 1_000 * tick as u64;
        let mut ts = start;
        for m in 0..1_000u64 {
            for player in 0..4u32 {
                ts += 16;
                p.push_input(0, item(InputKind::Join, ts, m, player, u64::from(player))).expect("feed");
            }
        }
        let mut frames = 0u64;
        let mut ticks = vec![0u64; 1_000];
        let (mut steps, mut idle_steps) = (0u64, 0u64);
        let end = start + 20 * tick as u64;
        let mut wm = ts;
        while wm < end {
            wm += MS;
            let before = p.match_advances();
            p.push_watermark(0, wm).expect("feed");
            let sealed: Vec<Frame> = p.drain_frames().collect();
            // Every advance sealed at least one frame: no idle match was looked at.
            assert!(p.match_advances() - before <= sealed.len() as u64);
            idle_steps += u64::from(p.match_advances() == before);
            frames += sealed.len() as u64;
            for f in &sealed {
                assert_eq!(f.tick, ticks[f.match_id as usize], "match {} skipped a tick", f.match_id);
                ticks[f.match_id as usize] += 1;
                // The joins straddle a tick boundary, so some players joined in tick 1.
                if f.tick > 1 {
                    assert_eq!(f.absent, vec![0, 1, 2, 3], "nobody sent a command");
                }
            }
            steps += 1;
        }
        let stats = p.stats();
        assert_eq!(stats.frames, frames);
        assert_eq!(stats.matches_started, 1_000);
        // Every match sealed about 20 ticks, in order (the epochs straddle one tick boundary).
        assert!(ticks.iter().all(|&n| (19..=21).contains(&n)), "{ticks:?}");
        assert!(steps > 300);
        assert!(idle_steps * 4 >= steps * 3, "{idle_steps} of {steps} steps had no match due");
    }

    #[test]
    fn a_removed_match_is_gone_and_the_one_moved_into_its_slot_is_still_found() {
        let config = Config::default();
        let mut live = Live::default();
        for id in [30, 10, 20] {
            let slot = live.insert(id, Match::new(&config, &FramePool::default()));
            live.at(slot).queued = id;
        }
        assert_eq!(live.find(30), Some(0));
        // 30 was the last found; removing it must not leave it findable through the cache.
        assert!(live.remove(30).is_some_and(|m| m.queued == 30));
        assert_eq!(live.find(30), None);
        assert!(live.get(30).is_none() && live.remove(30).is_none());
        // 20 moved from slot 2 into slot 0.
        assert_eq!(live.find(20), Some(0));
        assert_eq!(live.get_mut(20).map(|m| m.queued), Some(20));
        assert_eq!(live.get(10).map(|m| m.queued), Some(10));
        assert_eq!(live.ids().collect::<Vec<_>>(), vec![10, 20]);
        assert_eq!((live.len(), live.values().map(|m| m.queued).sum::<u64>()), (2, 30));
    }
}
