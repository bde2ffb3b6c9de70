//! No heap allocation per input: a worker turning a packet's commands into inputs, and a
//! pipeline ordering them into frames that the game gives back, allocate nothing per input once
//! running (`docs/decisions.md`, "Payloads inline"). Counted by a global allocator that counts the
//! allocations of the thread under test.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use prost::Message as _;
use tickgate::frame_queue::{Config, Epoch, Late, Pipeline};
use tickgate::input::{Clock, Input, InputKind, Payload, PayloadArena, Timestamp};
use tickgate::sequencer::Item;
use tickgate::wire::{self, Packet};
use tickgate_common::wire::Kind;
use tickgate_proto::{Action, PlayerCommand};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is passed on to the system allocator unchanged; the count is a
// thread-local cell that never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract for `alloc` is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above, that is from the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: as for `alloc` and `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by this thread while `f` runs.
fn allocations<T>(f: impl FnOnce() -> T) -> (u64, T) {
    let before = ALLOCATIONS.with(Cell::get);
    let out = f();
    (ALLOCATIONS.with(Cell::get) - before, out)
}

/// The demo's packet: the newest command and two resent ones, late in a long session; with
/// `extra` bytes of a field this build does not know at the end of each command. The
/// `InputFrame` is written by hand, as prost writes it, so that a command can carry that field.
fn packet(newest: u64, extra: usize) -> Vec<u8> {
    let first = newest - 2;
    let mut frame = vec![1 << 3];
    prost::encoding::encode_varint(first, &mut frame);
    for seq in first..=newest {
        let mut command = PlayerCommand {
            command_id: seq as u32,
            entity_id: 1_000,
            target_id: 1_000,
            action: Action::Move as i32,
            client_timestamp_us: 1_800_000_000_000_000,
            client_frame: seq as u32,
        }
        .encode_to_vec();
        if extra > 0 {
            command.extend_from_slice(&[15 << 3 | 2, extra as u8]);
            command.extend(std::iter::repeat_n(7u8, extra));
        }
        frame.push(2 << 3 | 2);
        prost::encoding::encode_varint(command.len() as u64, &mut frame);
        frame.extend_from_slice(&command);
    }
    let mut out = Vec::new();
    wire::encode_raw(Kind::Input, 42, newest as u32, newest, &frame, &mut out).expect("encodes");
    out
}

#[test]
fn a_worker_allocates_nothing_to_turn_commands_into_inputs() {
    let packets: Vec<Vec<u8>> = (0..1_000).map(|n| packet(10_000_000 + n, 0)).collect();
    let mut inputs = Vec::with_capacity(3 * packets.len());
    let (count, ()) = allocations(|| {
        for p in &packets {
            let Ok(Packet::Input(packet)) = wire::decode(p) else { panic!("a valid packet was rejected") };
            inputs.extend(packet.commands().map(|c| c.to_input(Timestamp::xdp(1), 0, 1)));
        }
    });
    assert_eq!(inputs.len(), 3_000);
    assert!(inputs.iter().all(|i| i.payload.is_inline()));
    assert_eq!(count, 0, "allocations for 3 000 inputs");
    // The counter counts: a payload past the inline bound takes one.
    let (count, payload) = allocations(|| Payload::from(&[1u8; Payload::INLINE + 1][..]));
    assert_eq!((count, payload.is_inline()), (1, false));
}

#[test]
fn a_worker_cuts_long_payloads_from_shared_chunks() {
    // Each command carries 40 bytes of a field this build does not know: 76-byte payloads.
    let packets: Vec<Vec<u8>> = (0..1_000).map(|n| packet(10_000_000 + n, 40)).collect();
    let mut arena = PayloadArena::default();
    let mut inputs = Vec::with_capacity(3 * packets.len());
    let (count, ()) = allocations(|| {
        for p in &packets {
            let Ok(Packet::Input(packet)) = wire::decode(p) else { panic!("a valid packet was rejected") };
            inputs.extend(packet.commands().map(|c| c.to_input_in(&mut arena, Timestamp::xdp(1), 0, 1)));
        }
    });
    assert_eq!(inputs.len(), 3_000);
    assert!(inputs.iter().all(|i| !i.payload.is_inline() && i.payload.ends_with(&[7; 40])));
    // 3 000 × 76 bytes in 64 KiB chunks: 4 chunks, each a buffer and its shared header.
    assert_eq!(arena.chunks(), 4);
    assert!(count <= 2 * arena.chunks(), "{count} allocations for 3 000 long inputs");
}

/// `n` inputs 50 ns apart from 1 000 clients over `queues` queues, each queue's 64 inputs
/// followed by its watermark.
fn items(first: usize, n: usize, queues: usize) -> Vec<(usize, Item)> {
    let mut items = Vec::with_capacity(n + n / 64 + 1);
    for k in first..first + n {
        let slot = k % queues;
        let ts = 1_000_000_000_000 + k as u64 * 50;
        items.push((
            slot,
            Item::Input(Input {
                kind: InputKind::Command,
                rx: Timestamp { ns: ts, clock: Clock::Xdp },
                queue: slot as u16,
                client_id: (k % 1_000) as u32,
                match_id: 0,
                seq: (k / 1_000) as u64,
                client_frame: (k / 1_000) as u32,
                payload: Payload::from([k as u8; 16]),
            }),
        ));
        if (k / queues) % 64 == 63 {
            items.push((slot, Item::Watermark(ts)));
        }
    }
    items
}

#[test]
fn a_running_pipeline_allocates_nothing_when_frames_come_back() {
    for queues in [1, 8] {
        let config = Config {
            tick_hz: 1_000,
            grace_us: 2_000,
            late: Late::Next,
            time_base: Clock::Xdp,
            epoch: Epoch::FirstInput,
        };
        let mut pipeline = Pipeline::new(&config, queues).expect("valid config");
        let mut feed = |items: Vec<(usize, Item)>| {
            let mut inputs = 0;
            for (slot, item) in items {
                pipeline.feed(slot, item).expect("valid item");
                while let Some(frame) = pipeline.pop_frame() {
                    inputs += frame.inputs.len();
                    pipeline.recycle(frame);
                }
            }
            inputs
        };
        // 20 ms of a run at 20 M inputs/s: 20 frames, their buffers back in the pool.
        feed(items(0, 400_000, queues));
        let timed = items(400_000, 400_000, queues);
        let (count, inputs) = allocations(|| feed(timed));
        assert!(inputs >= 300_000, "{inputs} inputs framed");
        assert_eq!(count, 0, "{queues} queues: allocations for {inputs} inputs");
    }
}
