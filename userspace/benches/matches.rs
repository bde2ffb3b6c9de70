//! Sealing work per watermark step against the number of matches: a step that ends a tick seals
//! every match due (work grows with them), a step inside a tick touches no match at all (work
//! does not grow with the matches live). 4 joined players per match, 60 Hz, all on one grid.
//!
//! Run: `cargo bench --bench matches`. `docs/benchmarks.md` ("Matches") has the figures.

use divan::Bencher;
use divan::counter::ItemsCount;
use tickgate::frame_queue::{Config, Epoch, Late, Pipeline};
use tickgate::input::{Clock, Input, InputKind, Timestamp};

const TICK_NS: u64 = 16_666_667;
const START: u64 = 1_000 * TICK_NS;

fn main() {
    divan::main();
}

/// A pipeline with `matches` live matches of 4 players each, joined in tick 0, and the
/// watermark just past tick 0's end (every match sealed once).
fn live(matches: u64) -> (Pipeline, u64) {
    let config = Config {
        tick_hz: 60,
        grace_us: 0,
        late: Late::Next,
        time_base: Clock::Xdp,
        epoch: Epoch::FirstInput,
    };
    let mut p = Pipeline::new(&config, 1).expect("valid config");
    let mut ts = START;
    for m in 0..matches {
        for player in 0..4u32 {
            ts += 1;
            let join = Input {
                kind: InputKind::Join,
                rx: Timestamp { ns: ts, clock: Clock::Xdp },
                queue: 0,
                client_id: player,
                match_id: m,
                seq: u64::from(player),
                client_frame: 0,
                payload: Default::default(),
            };
            p.push_input(0, join).expect("valid item");
        }
    }
    let wm = START + 2 * TICK_NS;
    p.push_watermark(0, wm).expect("valid item");
    p.drain_frames().for_each(drop);
    (p, wm)
}

/// One watermark step that ends a tick: every match is due and seals one (empty) frame.
#[divan::bench(args = [100, 1_000, 10_000], sample_count = 20)]
fn step_ending_a_tick(bencher: Bencher, matches: u64) {
    let (mut p, mut wm) = live(matches);
    bencher.counter(ItemsCount::new(matches)).bench_local(|| {
        wm += TICK_NS;
        p.push_watermark(0, wm).expect("valid item");
        let sealed = p.drain_frames().count();
        assert_eq!(sealed as u64, matches);
    });
}

/// One watermark step inside a tick: no match is due, none is touched.
#[divan::bench(args = [100, 1_000, 10_000], sample_count = 20)]
fn step_inside_a_tick(bencher: Bencher, matches: u64) {
    let (mut p, mut wm) = live(matches);
    let advances = p.match_advances();
    bencher.bench_local(|| {
        // 1 ns steps: a run of a few million stays far inside the tick after the epoch's.
        wm += 1;
        p.push_watermark(0, wm).expect("valid item");
        assert_eq!(p.drain_frames().count(), 0);
    });
    assert_eq!(p.match_advances(), advances, "a step inside a tick touched a match");
}
