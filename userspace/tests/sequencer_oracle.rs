//! The sequencer and frame queue against a model: sort every input, cut into ticks (empty ones
//! included), hash as the documentation says. Streams are fed in random interleavings with random
//! watermarks and per-input delays, synchronously and through real producer threads.

use std::cmp::Ordering;
use std::collections::{BTreeMap, VecDeque};
use std::thread;

use proptest::collection::vec;
use proptest::prelude::*;
use tickgate::frame_queue::{Config, Epoch, Frame, Late, Pipeline, Stats, spawn};
use tickgate::input::{Clock, Input, Timestamp};
use tickgate::record::{RecordWriter, RunConfig, replay_with};
use tickgate::sequencer::{Frontier, Item, Merge};

const NS: u128 = 1_000_000_000;

// ---------------------------------------------------------------------------------------------
// The oracle, written from docs/architecture.md alone.

fn start(epoch: u64, hz: u32, tick: u64) -> u64 {
    let offset = (u128::from(tick) * NS).div_ceil(u128::from(hz));
    u64::try_from(u128::from(epoch) + offset).expect("test times fit")
}

fn tick_of(epoch: u64, hz: u32, ts: u64) -> Option<u64> {
    let since = ts.checked_sub(epoch)?;
    u64::try_from(u128::from(since) * u128::from(hz) / NS).ok()
}

fn aligned_epoch(ts: u64, hz: u32) -> u64 {
    start(0, hz, tick_of(0, hz, ts).expect("after zero"))
}

/// The last tick a watermark of `m` seals, if any.
fn sealed_through(epoch: u64, hz: u32, grace_ns: u64, m: u64) -> Option<u64> {
    (0u64..).take_while(|&t| start(epoch, hz, t + 1) + grace_ns <= m).last()
}

fn oracle_order(a: &Input, b: &Input) -> Ordering {
    (a.rx.ns, a.client_id, a.seq, a.client_frame, a.rx.clock, &a.payload, a.queue).cmp(&(
        b.rx.ns,
        b.client_id,
        b.seq,
        b.client_frame,
        b.rx.clock,
        &b.payload,
        b.queue,
    ))
}

fn encode(tick: u64, inputs: &[Input]) -> Vec<u8> {
    let mut out = vec![];
    out.extend(tick.to_be_bytes());
    out.extend((inputs.len() as u64).to_be_bytes());
    for i in inputs {
        out.extend(i.rx.ns.to_be_bytes());
        out.push(match i.rx.clock {
            Clock::Nic => 0,
            Clock::NicTai => 2,
            Clock::Xdp => 1,
        });
        out.extend(i.client_id.to_be_bytes());
        out.extend(i.seq.to_be_bytes());
        out.extend(i.client_frame.to_be_bytes());
        out.extend((i.payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&i.payload);
    }
    out
}

/// Frames 0..=last with the inputs placed by tick, sorted and chained; tick `t` starts at
/// `start(epoch, hz, t)`.
fn oracle_frames(placed: Vec<(u64, Input)>, last: Option<u64>, (epoch, hz): (u64, u32)) -> Vec<Frame> {
    let Some(last) = last else { return vec![] };
    let mut buckets: BTreeMap<u64, Vec<Input>> = BTreeMap::new();
    for (tick, input) in placed {
        buckets.entry(tick).or_default().push(input);
    }
    let mut prev = [0u8; 32];
    (0..=last)
        .map(|tick| {
            let mut inputs = buckets.remove(&tick).unwrap_or_default();
            inputs.sort_by(oracle_order);
            let mut hasher = blake3::Hasher::new();
            hasher.update(&prev);
            hasher.update(&encode(tick, &inputs));
            prev = hasher.finalize().into();
            Frame {
                match_id: 0,
                tick,
                tick_hz: hz,
                start_ns: start(epoch, hz, tick),
                inputs,
                hash: prev,
                absent: Vec::new(),
                last: false,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Scenario building.

#[derive(Clone, Debug)]
struct InSpec {
    slot: usize,
    client: u32,
    /// Position in the time span, in millionths.
    at: u64,
    /// Delivery delay in thousandths of the grace (so always below it).
    delay: u64,
    payload: u8,
}

fn in_spec() -> impl Strategy<Value = InSpec> {
    (0..16usize, 0..6u32, 0..1_000_000u64, 0..1_000u64, 0..4u8)
        .prop_map(|(slot, client, at, delay, payload)| InSpec { slot, client, at, delay, payload })
}

#[derive(Clone, Debug)]
struct Params {
    queues: usize,
    hz: u32,
    grace_us: u64,
    epoch: u64,
    inputs: Vec<InSpec>,
    /// (slot, position in millionths): the worker publishes its own time then.
    watermarks: Vec<(usize, u64)>,
    picks: Vec<u32>,
    /// Per queue: publish a watermark beyond everything before closing.
    final_watermark: Vec<bool>,
}

fn params(max_inputs: usize) -> impl Strategy<Value = Params> {
    (
        1..=16usize,
        prop_oneof![Just(60u32), Just(1_000u32), 1..=500u32],
        0..=5_000u64,
        1_000_000_000_000..2_000_000_000_000u64,
        vec(in_spec(), 0..max_inputs),
        vec((0..16usize, 0..1_000_000u64), 0..80),
        vec(any::<u32>(), 0..800),
        vec(any::<bool>(), 16),
    )
        .prop_map(|(queues, hz, grace_us, epoch, inputs, watermarks, picks, final_watermark)| Params {
            queues,
            hz,
            grace_us,
            epoch,
            inputs,
            watermarks,
            picks,
            final_watermark,
        })
}

fn scale(span: u64, millionths: u64) -> u64 {
    u64::try_from(u128::from(span) * u128::from(millionths) / 1_000_000).expect("fits")
}

fn make_input(index: usize, spec: &InSpec, slot: usize, rx_ts_ns: u64) -> Input {
    Input {
        kind: tickgate::input::InputKind::Command,
        rx: Timestamp { ns: rx_ts_ns, clock: Clock::Xdp },
        queue: slot as u16,
        client_id: spec.client,
        match_id: 0,
        seq: index as u64,
        client_frame: (index * 7) as u32,
        payload: vec![index as u8; usize::from(spec.payload)].into(),
    }
}

/// A queue's stream in worker time: each event at the time the worker handles it. Inputs come
/// before a watermark at the same time, since a worker publishes its time after its deliveries.
#[derive(Default)]
struct Stream(Vec<(u64, u8, Item)>);

impl Stream {
    fn input(&mut self, delivered_at: u64, input: Input) {
        self.0.push((delivered_at, 0, Item::Input(input)));
    }
    fn watermark(&mut self, at: u64) {
        self.0.push((at, 1, Item::Watermark(at)));
    }
    fn into_items(mut self) -> Vec<Item> {
        self.0.sort_by_key(|&(at, order, _)| (at, order));
        self.0.into_iter().map(|(_, _, item)| item).collect()
    }
}

/// Feeds the per-queue streams to one sequence, choosing the next queue with `picks`.
fn interleave(streams: Vec<Vec<Item>>, picks: &[u32]) -> Vec<(usize, Item)> {
    let mut streams: Vec<VecDeque<Item>> = streams.into_iter().map(VecDeque::from).collect();
    let mut picks = picks.iter();
    let mut out = vec![];
    loop {
        let live: Vec<usize> = (0..streams.len()).filter(|&q| !streams[q].is_empty()).collect();
        let Some(&first) = live.first() else { break };
        let q = picks.next().map_or(first, |&p| live[p as usize % live.len()]);
        out.extend(streams[q].pop_front().map(|item| (q, item)));
    }
    out
}

/// The floor of the queue that closed last, when it closed: the highest watermark the run ever had.
fn final_watermark(sequence: &[(usize, Item)]) -> u64 {
    let Some(&(last, _)) = sequence.last() else { return 0 };
    sequence
        .iter()
        .filter(|(q, _)| *q == last)
        .map(|(_, item)| match item {
            Item::Input(input) => input.rx.ns,
            Item::Watermark(w) => *w,
            Item::Close => 0,
        })
        .max()
        .unwrap_or(0)
}

fn run(config: &Config, queues: usize, sequence: Vec<(usize, Item)>) -> (Vec<Frame>, Stats) {
    let mut pipeline = Pipeline::new(config, queues).expect("valid config");
    let mut frames = vec![];
    for (slot, item) in sequence {
        pipeline.feed(slot, item).expect("valid item");
        frames.extend(pipeline.drain_frames());
    }
    assert!(pipeline.is_finished());
    (frames, pipeline.stats())
}

/// Everything on time: per-queue streams in delivery order, deliveries up to just under the grace
/// behind their timestamps, watermarks at the worker's time.
struct OnTime {
    config: Config,
    streams: Vec<Vec<Item>>,
    inputs: Vec<Input>,
}

fn on_time(p: &Params, first_input: bool) -> OnTime {
    let grace_ns = p.grace_us * 1_000;
    let period = start(0, p.hz, 1);
    let span = 12 * period;
    let mut streams: Vec<Stream> = (0..p.queues).map(|_| Stream::default()).collect();
    let mut inputs = vec![];
    for (index, spec) in p.inputs.iter().enumerate() {
        let slot = spec.slot % p.queues;
        let rx = p.epoch + scale(span, spec.at);
        // With the epoch taken from the first input, a delayed earlier input could precede it;
        // that case belongs to the late tests.
        let delay = if first_input { 0 } else { grace_ns * spec.delay / 1_000 };
        let input = make_input(index, spec, slot, rx);
        streams[slot].input(rx + delay, input.clone());
        inputs.push(input);
    }
    for &(slot, at) in &p.watermarks {
        streams[slot % p.queues].watermark(p.epoch + scale(span, at));
    }
    let end = p.epoch + span + grace_ns + 2 * period;
    for (q, stream) in streams.iter_mut().enumerate() {
        if p.final_watermark[q] {
            stream.watermark(end);
        }
    }
    let epoch = if first_input { Epoch::FirstInput } else { Epoch::At(p.epoch) };
    let config =
        Config { tick_hz: p.hz, grace_us: p.grace_us, late: Late::Drop, time_base: Clock::Xdp, epoch };
    let streams = streams
        .into_iter()
        .map(|s| {
            let mut items = s.into_items();
            items.push(Item::Close);
            items
        })
        .collect();
    OnTime { config, streams, inputs }
}

/// The oracle's frames for all-on-time inputs, given the highest merged watermark.
fn expected_on_time(config: &Config, inputs: &[Input], watermark: u64) -> Vec<Frame> {
    let epoch = match config.epoch {
        Epoch::At(epoch) => epoch,
        Epoch::FirstInput => match inputs.iter().map(|i| i.rx.ns).min() {
            Some(first) => aligned_epoch(first, config.tick_hz),
            None => return vec![],
        },
    };
    let hz = config.tick_hz;
    let placed: Vec<_> =
        inputs.iter().map(|i| (tick_of(epoch, hz, i.rx.ns).expect("after the epoch"), i.clone())).collect();
    let last_input = placed.iter().map(|(t, _)| *t).max();
    let last_sealed = sealed_through(epoch, hz, config.grace_ns(), watermark);
    oracle_frames(placed, last_input.max(last_sealed), (epoch, hz))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Delays below the grace: the frames, hashes included, are exactly the oracle's, whatever the
    /// queue count, interleaving or watermarks.
    #[test]
    fn on_time_inputs_give_the_oracle_frames(p in params(150), first_input in any::<bool>()) {
        let OnTime { config, streams, inputs, .. } = on_time(&p, first_input);
        let sequence = interleave(streams, &p.picks);
        let watermark = final_watermark(&sequence);
        let (frames, stats) = run(&config, p.queues, sequence);
        let expected = expected_on_time(&config, &inputs, watermark);
        prop_assert_eq!(&frames, &expected);
        prop_assert_eq!(stats.inputs_ordered, inputs.len() as u64);
        prop_assert_eq!(stats.frames, expected.len() as u64);
        prop_assert_eq!((stats.late_dropped, stats.late_next), (0, 0));
        prop_assert!(stats.late_by_client.is_empty());
        if first_input {
            prop_assert_eq!(stats.out_of_order, 0, "no delays, no watermark is broken");
        }
    }

    /// Inputs delivered after every queue's watermark passed their tick's end plus the grace are
    /// exactly the late ones; the policy applies to them alone and they are counted per client.
    #[test]
    fn inputs_behind_the_grace_are_late_and_only_they(
        p in params(80),
        late in vec((0..16usize, 0..6u32, 0..1_000_000u64), 1..20),
        tail in vec(in_spec(), 0..40),
        policy in prop_oneof![Just(Late::Drop), Just(Late::Next)],
    ) {
        let (hz, grace_ns, epoch) = (p.hz, p.grace_us * 1_000, p.epoch);
        let period = start(0, hz, 1);
        // Phase A: ticks 0..5, on time. Then every queue says "G", fed before anything else.
        let barrier = start(epoch, hz, 5) + grace_ns;
        let first_open = 5;
        let mut phase_a: Vec<Stream> = (0..p.queues).map(|_| Stream::default()).collect();
        let mut on_time = vec![];
        for (index, spec) in p.inputs.iter().enumerate() {
            let slot = spec.slot % p.queues;
            let rx = epoch + scale(start(0, hz, 5), spec.at);
            let input = make_input(index, spec, slot, rx);
            phase_a[slot].input(rx + grace_ns * spec.delay / 1_000, input.clone());
            on_time.push(input);
        }
        for &(slot, at) in &p.watermarks {
            phase_a[slot % p.queues].watermark(epoch + scale(barrier - epoch, at));
        }
        let mut streams: Vec<Vec<Item>> = phase_a.into_iter().map(Stream::into_items).collect();
        for stream in &mut streams {
            stream.push(Item::Watermark(barrier));
        }
        let mut sequence = interleave(streams, &p.picks);
        // Phase B: the stragglers first (sealed ticks, or before the epoch), then on-time traffic.
        let mut phase_b: Vec<Stream> = (0..p.queues).map(|_| Stream::default()).collect();
        let mut stragglers = vec![];
        for (n, &(slot, client, at)) in late.iter().enumerate() {
            let slot = slot % p.queues;
            let rx = epoch - period + scale(start(0, hz, first_open) + period, at);
            let spec = InSpec { slot, client, at, delay: 0, payload: 1 };
            let input = make_input(10_000 + n, &spec, slot, rx);
            phase_b[slot].input(barrier, input.clone());
            stragglers.push(input);
        }
        for (n, spec) in tail.iter().enumerate() {
            let slot = spec.slot % p.queues;
            let rx = barrier + scale(5 * period, spec.at);
            let input = make_input(20_000 + n, spec, slot, rx);
            phase_b[slot].input(rx + grace_ns * spec.delay / 1_000, input.clone());
            on_time.push(input);
        }
        let streams: Vec<Vec<Item>> = phase_b
            .into_iter()
            .map(|s| {
                let mut items = s.into_items();
                items.push(Item::Close);
                items
            })
            .collect();
        sequence.extend(interleave(streams, &p.picks));
        let watermark = final_watermark(&sequence);

        let config = Config { tick_hz: hz, grace_us: p.grace_us, late: policy, time_base: Clock::Xdp, epoch: Epoch::At(epoch) };
        let (frames, stats) = run(&config, p.queues, sequence);

        let mut placed: Vec<_> = on_time.iter().map(|i| (tick_of(epoch, hz, i.rx.ns).expect("after epoch"), i.clone())).collect();
        if policy == Late::Next {
            placed.extend(stragglers.iter().map(|i| (first_open, i.clone())));
        }
        let last_input = placed.iter().map(|(t, _)| *t).max();
        let expected = oracle_frames(placed, last_input.max(sealed_through(epoch, hz, grace_ns, watermark)).max(Some(first_open - 1)), (epoch, hz));
        prop_assert_eq!(&frames, &expected);
        let mut per_client = BTreeMap::new();
        for input in &stragglers {
            *per_client.entry(input.client_id).or_insert(0u64) += 1;
        }
        prop_assert_eq!(&stats.late_by_client, &per_client);
        let (dropped, moved) = match policy {
            Late::Drop => (stragglers.len() as u64, 0),
            Late::Next => (0, stragglers.len() as u64),
        };
        prop_assert_eq!((stats.late_dropped, stats.late_next), (dropped, moved));
        prop_assert!(stats.out_of_order >= stragglers.len() as u64);
    }
}

// ---------------------------------------------------------------------------------------------
// The merge alone: released order against a sort of every input by its documented key.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Streams with disorder (clock steps, broken watermarks) in random interleavings: the merge
    /// releases exactly the sort by (max(rx_ts, floor), slot, arrival), never releases anything
    /// an open queue could still precede, and its frontier never goes back.
    #[test]
    fn the_merge_releases_in_key_order_and_only_when_safe(
        queues in 1..=20usize,
        events in vec((0..20usize, any::<bool>(), 0..1_000u64), 0..300),
        picks in vec(any::<u32>(), 0..400),
    ) {
        let mut streams: Vec<Vec<Item>> = vec![vec![]; queues];
        for (n, &(slot, is_input, ts)) in events.iter().enumerate() {
            let slot = slot % queues;
            streams[slot].push(if is_input {
                Item::Input(input(ts, Clock::Xdp, n as u32, n as u64, slot as u16))
            } else {
                Item::Watermark(ts)
            });
        }
        // The oracle: each queue's floor and keys, then one stable sort.
        let mut expected = vec![];
        for (slot, stream) in streams.iter().enumerate() {
            let mut floor: Option<u64> = None;
            for item in stream {
                match item {
                    Item::Input(i) => {
                        let key = floor.map_or(i.rx.ns, |f| f.max(i.rx.ns));
                        floor = Some(key);
                        expected.push((key, slot, i.seq));
                    }
                    Item::Watermark(w) => floor = Some(floor.map_or(*w, |f| f.max(*w))),
                    Item::Close => {}
                }
            }
        }
        expected.sort_by_key(|&(key, slot, _)| (key, slot));
        for stream in &mut streams {
            stream.push(Item::Close);
        }
        let mut merge = Merge::new(queues, Clock::Xdp);
        // The same items through the one-call path the pipeline uses: identical at every step.
        let mut fused = Merge::new(queues, Clock::Xdp);
        let mut released = vec![];
        let mut fused_released = vec![];
        let mut last_frontier = 0;
        for (slot, item) in interleave(streams, &picks) {
            fused.push_release(slot, item.clone(), |r| fused_released.push((r.order_ts, r.slot, r.input.seq))).expect("valid item");
            merge.push(slot, item).expect("valid item");
            let before = released.len();
            merge.release(|r| released.push((r.order_ts, r.slot, r.input.seq)));
            prop_assert_eq!(&fused_released, &released);
            prop_assert_eq!(fused.frontier(), merge.frontier());
            if let Frontier::At(frontier) = merge.frontier() {
                prop_assert!(frontier >= last_frontier);
                last_frontier = frontier;
                for &(key, _, _) in &released[before..] {
                    prop_assert!(key <= frontier);
                }
            }
        }
        prop_assert_eq!(merge.frontier(), Frontier::End);
        prop_assert_eq!(released, expected);
    }
}

// ---------------------------------------------------------------------------------------------
// Threads.

/// Pushes a queue's stream through a real producer, retrying inputs the full queue rejects.
fn produce(mut producer: tickgate::sequencer::Producer, items: Vec<Item>, cap: u64) {
    for item in items {
        match item {
            Item::Input(mut input) => {
                while let Err(back) = producer.try_push_input(input) {
                    input = back;
                    thread::yield_now();
                }
            }
            Item::Watermark(w) => producer.publish_watermark(w.min(cap)),
            Item::Close => break,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Real producer threads and the blocking consumer give the oracle's frames, and the recorded
    /// run replays to the same frames and counters.
    #[test]
    fn threaded_run_matches_the_oracle_and_its_replay(p in params(300), capacity in 1..16usize) {
        let OnTime { config, streams, inputs, .. } = on_time(&p, false);
        // Watermarks are capped at the last timestamp, so the run's last frame is the last
        // input's tick however many watermarks were coalesced on the way.
        let cap = inputs.iter().map(|i| i.rx.ns).max().unwrap_or(p.epoch);
        let run = RunConfig { config, queues: (0..p.queues as u16).collect() };
        let writer = RecordWriter::new(Vec::new(), &run).expect("memory");
        let mut running = spawn(&config, p.queues, capacity, writer).expect("spawn");
        let workers: Vec<_> = running
            .producers
            .drain(..)
            .zip(streams)
            .map(|(producer, items)| thread::spawn(move || produce(producer, items, cap)))
            .collect();
        let frames: Vec<Frame> = running.frames.by_ref().collect();
        for worker in workers {
            worker.join().expect("worker");
        }
        let outcome = running.sequencer.join().expect("sequencer");
        prop_assert_eq!(&frames, &expected_on_time(&config, &inputs, cap));

        let log = outcome.recorder.finish().expect("memory");
        let mut replayed = vec![];
        let report = replay_with(&log[..], |f| replayed.push(f)).expect("valid log");
        prop_assert_eq!(&replayed, &frames);
        prop_assert_eq!(&report.stats, &outcome.stats);
        prop_assert_eq!(report.verified_frames, frames.len() as u64);
        prop_assert!(report.stop.is_none() && report.divergence.is_none() && report.finished);
    }
}

/// With stragglers far behind the grace, what is late depends on thread timing; the replay must
/// still reproduce the live run's decisions exactly.
#[test]
fn threaded_late_decisions_replay_exactly() {
    const MS: u64 = 1_000_000;
    let config = Config {
        tick_hz: 1_000,
        grace_us: 100,
        late: Late::Drop,
        time_base: Clock::Nic,
        epoch: Epoch::At(0),
    };
    for round in 0..8u64 {
        let run = RunConfig { config, queues: vec![0, 1, 2] };
        let writer = RecordWriter::new(Vec::new(), &run).expect("memory");
        let mut running = spawn(&config, 3, 4, writer).expect("spawn");
        let workers: Vec<_> = running
            .producers
            .drain(..)
            .enumerate()
            .map(|(q, mut producer)| {
                thread::spawn(move || {
                    for n in 0..2_000u64 {
                        let t = n * 10_000 + q as u64;
                        // Every 7th input of queue 1 is stamped 2 ms in the past.
                        let rx_ts_ns = if q == 1 && n % 7 == 3 { t.saturating_sub(2 * MS) } else { t };
                        let mut input = Input {
                            kind: tickgate::input::InputKind::Command,
                            rx: Timestamp { ns: rx_ts_ns, clock: Clock::Nic },
                            queue: q as u16,
                            client_id: (n % 5) as u32,
                            match_id: 0,
                            seq: n,
                            client_frame: round as u32,
                            payload: Default::default(),
                        };
                        while let Err(back) = producer.try_push_input(input) {
                            input = back;
                            thread::yield_now();
                        }
                        producer.publish_watermark(t);
                    }
                })
            })
            .collect();
        let frames: Vec<Frame> = running.frames.by_ref().collect();
        for worker in workers {
            worker.join().expect("worker");
        }
        let outcome = running.sequencer.join().expect("sequencer");
        let stats = &outcome.stats;
        assert_eq!(stats.inputs_ordered + stats.late_dropped, 6_000);
        assert_eq!(stats.late_by_client.values().sum::<u64>(), stats.late_dropped);
        let log = outcome.recorder.finish().expect("memory");
        let mut replayed = vec![];
        let report = replay_with(&log[..], |f| replayed.push(f)).expect("valid log");
        assert_eq!(replayed, frames, "round {round}");
        assert_eq!(&report.stats, stats);
        assert_eq!((report.verified_frames, report.divergence), (frames.len() as u64, None));
    }
}

// ---------------------------------------------------------------------------------------------
// Idle, closed and single queues; clock mixing.

fn input(ts: u64, source: Clock, client: u32, seq: u64, queue: u16) -> Input {
    Input {
        kind: tickgate::input::InputKind::Command,
        rx: Timestamp { ns: ts, clock: source },
        queue,
        client_id: client,
        match_id: 0,
        seq,
        client_frame: 0,
        payload: Default::default(),
    }
}

fn collect(p: &mut Pipeline) -> Vec<Frame> {
    p.drain_frames().collect()
}

#[test]
fn an_idle_queue_publishing_watermarks_and_a_closed_queue_never_stall_the_others() {
    const MS: u64 = 1_000_000;
    let config = Config {
        tick_hz: 1_000,
        grace_us: 200,
        late: Late::Drop,
        time_base: Clock::Xdp,
        epoch: Epoch::At(0),
    };
    let mut p = Pipeline::new(&config, 3).expect("valid config");
    p.close(2).expect("feed");
    let mut emitted = 0;
    for step in 1..=100u64 {
        let now = step * 100_000;
        p.push_input(0, input(now - 50_000, Clock::Xdp, 1, step, 0)).expect("feed");
        p.push_watermark(0, now).expect("feed");
        p.push_watermark(1, now).expect("feed");
        emitted += collect(&mut p).len() as u64;
        // Every tick whose end plus grace is at or below `now` is out, and no other.
        let want = (now.saturating_sub(200_000)) / MS;
        assert_eq!(emitted, want, "at {now} ns");
    }
    assert_eq!(emitted, 9);
    assert_eq!(p.stats().inputs_ordered, 90);
}

#[test]
fn a_silent_queue_holds_every_tick_until_it_speaks_or_closes() {
    let config =
        Config { tick_hz: 1_000, grace_us: 0, late: Late::Drop, time_base: Clock::Xdp, epoch: Epoch::At(0) };
    let mut p = Pipeline::new(&config, 2).expect("valid config");
    for ms in 0..10u64 {
        p.push_input(0, input(ms * 1_000_000, Clock::Xdp, 1, ms, 0)).expect("feed");
    }
    assert!(collect(&mut p).is_empty(), "queue 1 could still deliver an input at time 0");
    p.close(1).expect("feed");
    assert_eq!(collect(&mut p).len(), 9, "ticks 0..9 sealed by queue 0's own inputs");
    p.close(0).expect("feed");
    assert_eq!(collect(&mut p).iter().map(|f| f.tick).collect::<Vec<_>>(), vec![9]);
}

#[test]
fn a_single_queue_is_ordered_and_sealed_by_its_own_stream() {
    let config = Config {
        tick_hz: 100,
        grace_us: 1_000,
        late: Late::Next,
        time_base: Clock::Nic,
        epoch: Epoch::At(0),
    };
    let mut p = Pipeline::new(&config, 1).expect("valid config");
    let stamps = [5_000_000, 5_000_000, 9_999_999, 10_000_000, 30_500_000];
    for (n, ts) in stamps.into_iter().enumerate() {
        p.push_input(0, input(ts, Clock::Nic, 9 - n as u32, n as u64, 0)).expect("feed");
    }
    let sealed = collect(&mut p);
    assert_eq!(sealed.iter().map(|f| (f.tick, f.inputs.len())).collect::<Vec<_>>(), vec![(0, 3), (1, 1)]);
    assert_eq!(sealed[0].inputs.iter().map(|i| i.client_id).collect::<Vec<_>>(), vec![8, 9, 7]);
    p.close(0).expect("feed");
    assert_eq!(
        collect(&mut p).iter().map(|f| (f.tick, f.inputs.len())).collect::<Vec<_>>(),
        vec![(2, 0), (3, 1)]
    );
}

#[test]
fn the_other_clock_is_restamped_to_the_queue_floor_never_compared() {
    const TAI: u64 = 1_700_000_000_000_000_000;
    let config =
        Config { tick_hz: 1_000, grace_us: 0, late: Late::Drop, time_base: Clock::Nic, epoch: Epoch::At(0) };
    let mut p = Pipeline::new(&config, 2).expect("valid config");
    p.push_input(1, input(TAI, Clock::Xdp, 5, 1, 1)).expect("no floor yet: dropped");
    p.push_input(0, input(1_500_000, Clock::Nic, 1, 1, 0)).expect("feed");
    p.push_watermark(1, 2_200_000).expect("feed");
    p.push_input(1, input(TAI + 7, Clock::Xdp, 5, 2, 1)).expect("feed");
    p.push_input(0, input(2_500_000, Clock::Nic, 1, 2, 0)).expect("feed");
    p.close(0).expect("feed");
    p.close(1).expect("feed");
    let frames = collect(&mut p);
    let ticks: Vec<_> = frames
        .iter()
        .map(|f| (f.tick, f.inputs.iter().map(|i| (i.rx.ns, i.rx.clock, i.client_id)).collect::<Vec<_>>()))
        .collect();
    assert_eq!(
        ticks,
        vec![
            (0, vec![]),
            (1, vec![(1_500_000, Clock::Nic, 1)]),
            (2, vec![(2_200_000, Clock::Nic, 5), (2_500_000, Clock::Nic, 1)]),
        ]
    );
    let stats = p.stats();
    assert_eq!((stats.restamped_clock, stats.dropped_no_floor, stats.out_of_order), (1, 1, 0));
}
