//! Sequencer + frame queue throughput on one core: the synchronous pipeline (merge, tick
//! assignment, sealing, sorting, BLAKE3 chain) over pre-generated inputs.
//!
//! Workload: 2^20 inputs arriving 50 ns apart (20 M inputs/s of wire time, so a 60 Hz tick holds
//! about 333 k inputs), 16-byte payloads, 1000 clients, spread round robin over the queues; each
//! queue hands over 64 inputs then a watermark, and the queues' batches are interleaved as the
//! sequencer thread would pop them. Generating and cloning inputs is outside the timing; freeing
//! the frames (and their payloads) is outside it in `pipeline` and inside it in `pipeline_and_free`;
//! `pipeline_recycling` gives every frame's buffer back as the game would (`FrameQueue::recycle`),
//! in the steady state of a server that has run a while: before the timing, a warm-up of
//! [`WARMUP`] earlier inputs (four 60 Hz ticks) went through the same pipeline and its frames came
//! back, so the pool holds buffers with their pages mapped. Those two run at 60 Hz and at 1 kHz,
//! which seals 52 frames of 20 000 inputs instead of 3 of 333 000.
//!
//! `seal` times what a tick end costs once the tick is full: the one watermark that seals a tick
//! of 20 000 (1 kHz) or 333 334 (60 Hz) inputs, fed one queue in order, up to the frame leaving
//! the pipeline (the frame's tick close, less the wake-ups).
//!
//! `read_only`, `merge_only` and `hash_only` split the pipeline's time: reading the workload's
//! items (which every figure pays), the merge alone, and the canonical encoding and BLAKE3 of
//! the same inputs in 1 kHz frames.
//!
//! Run: `cargo bench --bench sequencer` (or `-- --sample-count 20` for tighter figures).

use divan::Bencher;
use divan::counter::ItemsCount;
use tickgate::frame_queue::{Config, Epoch, Frame, GENESIS_HASH, Late, Pipeline, chain_hash};
use tickgate::input::{Clock, Input, Timestamp};
use tickgate::sequencer::{Item, Merge};

const INPUTS: usize = 1 << 20;
/// Inputs fed before `pipeline_recycling`'s timing: four ticks at 60 Hz.
const WARMUP: usize = 4 * 333_334;
const BATCH: usize = 64;

fn main() {
    divan::main();
}

fn workload(queues: usize) -> Vec<(usize, Item)> {
    workload_of(queues, INPUTS)
}

fn workload_of(queues: usize, inputs: usize) -> Vec<(usize, Item)> {
    let mut streams: Vec<Vec<Item>> = vec![Vec::new(); queues];
    for n in 0..inputs {
        let slot = n % queues;
        let rx_ts_ns = 1_000_000_000_000 + n as u64 * 50;
        streams[slot].push(Item::Input(Input {
            kind: tickgate::input::InputKind::Command,
            rx: Timestamp { ns: rx_ts_ns, clock: Clock::Xdp },
            queue: slot as u16,
            client_id: (n % 1_000) as u32,
            match_id: 0,
            seq: (n / 1_000) as u64,
            client_frame: (n / 1_000) as u32,
            payload: [n as u8; 16].into(),
        }));
        if (n / queues) % BATCH == BATCH - 1 {
            streams[slot].push(Item::Watermark(rx_ts_ns));
        }
    }
    let mut streams: Vec<_> = streams.into_iter().map(Vec::into_iter).collect();
    let mut sequence = Vec::with_capacity(inputs + inputs / BATCH + queues);
    loop {
        let before = sequence.len();
        for (slot, stream) in streams.iter_mut().enumerate() {
            sequence.extend(stream.by_ref().take(BATCH + 1).map(|item| (slot, item)));
        }
        if sequence.len() == before {
            break;
        }
    }
    sequence.extend((0..queues).map(|slot| (slot, Item::Close)));
    sequence
}

fn config(tick_hz: u32) -> Config {
    Config { tick_hz, grace_us: 2_000, late: Late::Next, time_base: Clock::Xdp, epoch: Epoch::FirstInput }
}

/// Feeds the whole sequence at `tick_hz`; returns the frames and the emptied sequence buffer, so
/// that freeing it (a pre-generation artifact) is not timed. With `recycle`, the consumer gives
/// every frame's buffer back as soon as it has it (the game calling `FrameQueue::recycle`): the
/// pipeline refills returned buffers instead of faulting in fresh pages, and no frame is kept.
fn run(
    tick_hz: u32,
    queues: usize,
    mut sequence: Vec<(usize, Item)>,
    recycle: bool,
) -> (Vec<Frame>, Vec<(usize, Item)>) {
    let mut pipeline = Pipeline::new(&config(tick_hz), queues).expect("valid config");
    let (frames, inputs) = feed(&mut pipeline, &mut sequence, recycle);
    assert_eq!(inputs, INPUTS);
    (frames, sequence)
}

/// Feeds (and empties) `sequence`; returns the frames kept and the inputs they held.
fn feed(pipeline: &mut Pipeline, sequence: &mut Vec<(usize, Item)>, recycle: bool) -> (Vec<Frame>, usize) {
    let mut frames = Vec::new();
    let mut inputs = 0;
    for (slot, item) in sequence.drain(..) {
        pipeline.feed(slot, item).expect("valid item");
        for frame in pipeline.drain_frames() {
            inputs += frame.inputs.len();
            frames.push(frame);
        }
        if recycle {
            frames.drain(..).for_each(|frame| pipeline.recycle(frame));
        }
    }
    (frames, inputs)
}

/// A pipeline that has sealed and given back the frames of the workload's first [`WARMUP`]
/// inputs, and the rest of the workload ([`INPUTS`] inputs and the closes).
fn warmed_up(tick_hz: u32, queues: usize, sequence: &[(usize, Item)]) -> (Pipeline, Vec<(usize, Item)>) {
    let mut seen = 0;
    let split = sequence
        .iter()
        .position(|(_, item)| {
            seen += usize::from(matches!(item, Item::Input(_)));
            seen > WARMUP
        })
        .expect("the workload is longer than the warm-up");
    let mut pipeline = Pipeline::new(&config(tick_hz), queues).expect("valid config");
    feed(&mut pipeline, &mut sequence[..split].to_vec(), true);
    assert!(pipeline.stats().frames >= 3, "the warm-up sealed and gave back frames");
    (pipeline, sequence[split..].to_vec())
}

#[divan::bench(args = [1, 2, 4, 8], sample_count = 10, sample_size = 1)]
fn pipeline(bencher: Bencher, queues: usize) {
    let sequence = workload(queues);
    bencher
        .counter(ItemsCount::new(INPUTS))
        .with_inputs(|| sequence.clone())
        .bench_local_values(|sequence| run(60, queues, sequence, false));
}

/// Frames freed inside the timing, at 60 Hz (3 frames of 333 000 inputs) and 1 kHz (52 frames of
/// 20 000).
#[divan::bench(consts = [60, 1_000], args = [1, 8], sample_count = 10, sample_size = 1)]
fn pipeline_and_free<const TICK_HZ: u32>(bencher: Bencher, queues: usize) {
    let sequence = workload(queues);
    bencher.counter(ItemsCount::new(INPUTS)).with_inputs(|| sequence.clone()).bench_local_values(
        |sequence| {
            let (frames, sequence) = run(TICK_HZ, queues, sequence, false);
            drop(frames);
            sequence
        },
    );
}

/// Every frame's buffer given back at once, after a warm-up; the baseline is `pipeline_and_free`
/// at the same rate.
#[divan::bench(consts = [60, 1_000], args = [1, 8], sample_count = 10, sample_size = 1)]
fn pipeline_recycling<const TICK_HZ: u32>(bencher: Bencher, queues: usize) {
    let sequence = workload_of(queues, WARMUP + INPUTS);
    bencher
        .counter(ItemsCount::new(INPUTS))
        .with_inputs(|| warmed_up(TICK_HZ, queues, &sequence))
        .bench_local_values(|(mut pipeline, mut rest)| {
            let (frames, inputs) = feed(&mut pipeline, &mut rest, true);
            // The warm-up's open ticks are sealed here too: a tick's worth more than was fed.
            assert!(frames.is_empty() && inputs >= INPUTS, "{inputs} inputs");
            (pipeline, rest)
        });
}

/// The watermark that seals one full tick, after its inputs went in (outside the timing).
#[divan::bench(consts = [60, 1_000], sample_count = 20, sample_size = 1)]
fn seal<const TICK_HZ: u32>(bencher: Bencher) {
    let per_tick = 20_000_000 / TICK_HZ as usize;
    let inputs: Vec<Item> = workload_of(1, per_tick).into_iter().map(|(_, item)| item).collect();
    let end = 1_000_000_000_000 + per_tick as u64 * 50 + 2 * 1_000_000_000 / u64::from(TICK_HZ);
    bencher
        .counter(ItemsCount::new(per_tick))
        .with_inputs(|| {
            let mut pipeline = Pipeline::new(&config(TICK_HZ), 1).expect("valid config");
            // The workload's epoch is the tick holding its first input; its inputs span
            // `per_tick` · 50 ns, one tick, give or take the alignment.
            for item in inputs.iter().filter(|item| !matches!(item, Item::Close)) {
                pipeline.feed(0, item.clone()).expect("valid item");
            }
            let before = pipeline.stats().frames;
            (pipeline, before)
        })
        .bench_local_values(|(mut pipeline, before)| {
            pipeline.feed(0, Item::Watermark(end)).expect("valid item");
            let frames: Vec<Frame> = pipeline.drain_frames().collect();
            assert!(pipeline.stats().frames > before && frames.iter().any(|frame| !frame.inputs.is_empty()));
            // Dropped after the timing: freeing a frame is the game's cost.
            (pipeline, frames)
        });
}

/// Reading the workload's items and nothing else: the floor under every figure above.
#[divan::bench(args = [1, 8], sample_count = 10, sample_size = 1)]
fn read_only(bencher: Bencher, queues: usize) {
    let sequence = workload(queues);
    bencher.counter(ItemsCount::new(INPUTS)).with_inputs(|| sequence.clone()).bench_local_values(
        |mut sequence| {
            let mut seqs = 0u64;
            for (slot, item) in sequence.drain(..) {
                if let Item::Input(input) = item {
                    seqs = seqs.wrapping_add(input.seq ^ slot as u64);
                }
            }
            (sequence, divan::black_box(seqs))
        },
    );
}

/// The merge alone: every input released, in order, to a sink that reads it.
#[divan::bench(args = [1, 8, 16, 32], sample_count = 10, sample_size = 1)]
fn merge_only(bencher: Bencher, queues: usize) {
    let sequence = workload(queues);
    bencher.counter(ItemsCount::new(INPUTS)).with_inputs(|| sequence.clone()).bench_local_values(
        |mut sequence| {
            let mut merge = Merge::new(queues, Clock::Xdp);
            let mut seqs = 0u64;
            for (slot, item) in sequence.drain(..) {
                merge
                    .push_release(slot, item, |released| seqs = seqs.wrapping_add(released.input.seq))
                    .expect("valid item");
            }
            (sequence, divan::black_box(seqs))
        },
    );
}

/// The canonical encoding and the BLAKE3 chain alone, over the workload's inputs cut into 1 kHz
/// frames of 20 000, each hashed whole (as a tick whose inputs came out of order is).
#[divan::bench(sample_count = 10, sample_size = 1)]
fn hash_only(bencher: Bencher) {
    let inputs: Vec<Input> = workload(1)
        .into_iter()
        .filter_map(|(_, item)| match item {
            Item::Input(input) => Some(input),
            _ => None,
        })
        .collect();
    bencher.counter(ItemsCount::new(INPUTS)).bench_local(|| {
        let mut hash = GENESIS_HASH;
        for (tick, frame) in inputs.chunks(20_000).enumerate() {
            hash = chain_hash(&hash, tick as u64, frame);
        }
        hash
    });
}
