//! Traffic like a NIC's: frames injected into the sender veth with `BPF_PROG_RUN` in live-frame
//! mode (`BPF_F_TEST_XDP_LIVE_FRAMES`, the way xdp-trafficgen sends). The kernel runs a
//! two-instruction XDP program (`return XDP_TX`) on each copy of the frame as if the sender veth
//! had received it, and XDP_TX there becomes an `ndo_xdp_xmit` into the peer: the receiver veth
//! gets `xdp_frame`s, runs its XDP program on them without building an skb first (as a NIC
//! driver does), and builds an skb only for what goes on to the kernel stack (the socket path,
//! and what tickgate's program passes). A frame the peer's ring cannot take is counted by veth as
//! the sender's `tx_dropped`, which the bench's accounting already reads.
//!
//! Every copy of a call is the same bytes, so traffic that may repeat goes many copies a call
//! ([`LiveFrames`]): junk, and the ceiling's packets that XDP drops anyway. Sealed protocol v2
//! inputs are unique per packet, and a call per packet does not scale (a call of more than one
//! copy switches the kernel's XDP dispatcher, some 24 ms here; a call of one copy tears down a
//! page pool whose frame is still in flight, which costs more the faster calls come: with
//! veth's NAPI on another core it carried 7 000-9 500 a second when 10 000 were due). So
//! [`LiveSchedule`] keeps one call running with a program that takes unique frames from a ring
//! in a memory-mapped map and sends each at its due time (`--generators live-inputs`,
//! `--sweep-generator live-inputs`). Both programs are raw instructions loaded here, not part of
//! the eBPF object `tickgate` attaches.

use std::{
    ffi::CString,
    io,
    os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd},
    ptr::NonNull,
    sync::atomic::{AtomicU64, Ordering},
};

use tickgate::sys;
use tickgate_common::frame::{Frame, Ip};
use tickgate_testkit::lab::{RX_IP4, RX_MAC, TX_IP4, TX_MAC};

use libbpf_rs::libbpf_sys;

/// Copies of a frame the kernel sends per `BPF_PROG_RUN` call at most (it batches them by 64
/// and checks for signals in between).
pub const MAX_REPEAT: u32 = 1 << 16;

/// `r0 = XDP_TX; exit`, as raw eBPF instructions (opcode, registers, offset, immediate).
const XDP_TX_PROGRAM: [u64; 2] = [
    // BPF_ALU64 | BPF_MOV | BPF_K, dst r0, imm 3 (XDP_TX).
    0xb7 | (3 << 32),
    // BPF_JMP | BPF_EXIT.
    0x95,
];

/// The UDP source port of live frames (nothing in the lab sends from it otherwise).
pub const LIVE_SRC_PORT: u16 = 40_404;

/// An XDP_TX program loaded for live-frame injection through one interface of the calling
/// thread's network namespace.
#[derive(Debug)]
pub struct LiveFrames {
    prog: OwnedFd,
    ifindex: u32,
}

impl LiveFrames {
    /// Loads the program; `ifname` is the interface to send through (the sender veth), looked up
    /// in the calling thread's namespace, where every later `send` must run too.
    pub fn new(ifname: &str) -> io::Result<Self> {
        Ok(Self { prog: load_xdp(c"tg_live_tx", &XDP_TX_PROGRAM)?, ifindex: ifindex(ifname)? })
    }

    /// Sends `copies` copies of `frame` (an Ethernet frame) out of the interface. Returns once
    /// the kernel has run them all (or a signal interrupted it: then fewer went).
    pub fn send(&self, frame: &[u8], copies: u32) -> io::Result<()> {
        run_live(&self.prog, self.ifindex, frame, copies.clamp(1, MAX_REPEAT))
    }
}

/// The index of `ifname` in the calling thread's network namespace.
fn ifindex(ifname: &str) -> io::Result<u32> {
    let name = CString::new(ifname).map_err(|_| io::Error::other("interface name with a NUL"))?;
    // SAFETY: `name` is a NUL-terminated string.
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => Err(io::Error::last_os_error()),
        index => Ok(index),
    }
}

/// One live-frame call: `prog` runs `repeat` times on copies of `frame`, as if interface
/// `ifindex` had received it. Returns once the kernel has run them all, or with `EINTR` when a
/// signal interrupted the call (then fewer went).
fn run_live(prog: &OwnedFd, ifindex: u32, frame: &[u8], repeat: u32) -> io::Result<()> {
    let ctx = libbpf_sys::xdp_md {
        data: 0,
        data_end: frame.len() as u32,
        data_meta: 0,
        ingress_ifindex: ifindex,
        rx_queue_index: 0,
        egress_ifindex: 0,
    };
    let mut opts = libbpf_sys::bpf_test_run_opts {
        sz: std::mem::size_of::<libbpf_sys::bpf_test_run_opts>() as _,
        data_in: frame.as_ptr().cast(),
        data_size_in: frame.len() as u32,
        ctx_in: (&raw const ctx).cast(),
        ctx_size_in: std::mem::size_of::<libbpf_sys::xdp_md>() as u32,
        repeat: repeat.min(i32::MAX as u32) as i32,
        flags: libbpf_sys::BPF_F_TEST_XDP_LIVE_FRAMES,
        ..Default::default()
    };
    // SAFETY: `opts` points at live buffers of the sizes it states, for the whole call.
    let ret = unsafe { libbpf_sys::bpf_prog_test_run_opts(prog.as_raw_fd(), &raw mut opts) };
    if ret < 0 { Err(io::Error::from_raw_os_error(-ret)) } else { Ok(()) }
}

/// Bytes of a frame a [`LiveSchedule`] sends at most (a 64-byte game payload makes 106).
pub const SCHEDULED_FRAME_MAX: usize = 128;
/// Bytes of a slot: due time, sent time, length, padding, then the frame.
const SLOT_LEN: usize = 24 + SCHEDULED_FRAME_MAX;

/// One instruction: opcode, destination and source registers, offset, immediate.
const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    code as u64 | ((dst | (src << 4)) as u64) << 8 | (off as u16 as u64) << 16 | (imm as u32 as u64) << 32
}

/// A small assembler for the scheduling program: instructions with forward jumps to labels.
struct Asm {
    code: Vec<u64>,
    /// (instruction index, label) of jumps whose offset is filled in by `finish`.
    jumps: Vec<(usize, usize)>,
    labels: Vec<Option<usize>>,
}

impl Asm {
    fn new(labels: usize) -> Self {
        Self { code: Vec::new(), jumps: Vec::new(), labels: vec![None; labels] }
    }
    fn op(&mut self, code: u8, dst: u8, src: u8, off: i16, imm: i32) {
        self.code.push(insn(code, dst, src, off, imm));
    }
    /// A conditional (or, with `code` 0x05, unconditional) jump to `label`.
    fn jump(&mut self, code: u8, dst: u8, src: u8, imm: i32, label: usize) {
        self.jumps.push((self.code.len(), label));
        self.op(code, dst, src, 0, imm);
    }
    fn label(&mut self, label: usize) {
        self.labels[label] = Some(self.code.len());
    }
    /// `dst = map fd` (a two-instruction load the kernel resolves to the map).
    fn map(&mut self, dst: u8, fd: i32) {
        self.op(0x18, dst, 1, 0, fd);
        self.op(0, 0, 0, 0, 0);
    }
    /// `r0 = lookup(map, &key)` with the key at `r10 + key_off`.
    fn lookup(&mut self, fd: i32, key_off: i16) {
        self.map(1, fd);
        self.op(0xbf, 2, 10, 0, 0); // r2 = r10
        self.op(0x07, 2, 0, 0, i32::from(key_off)); // r2 += key_off
        self.op(0x85, 0, 0, 0, 1); // call bpf_map_lookup_elem
    }
    fn finish(mut self) -> io::Result<Vec<u64>> {
        for (at, label) in self.jumps {
            let target = self.labels[label].ok_or_else(|| io::Error::other("a jump to an unplaced label"))?;
            let off =
                i16::try_from(target as i64 - at as i64 - 1).map_err(|_| io::Error::other("jump too far"))?;
            self.code[at] = (self.code[at] & !(0xffff << 16)) | (off as u16 as u64) << 16;
        }
        Ok(self.code)
    }
}

/// Unique frames, each sent at its due time, from one long live-frame call.
///
/// A `BPF_PROG_RUN` call sends copies of one frame, and a call per frame costs more the faster
/// the calls come (each tears down a page pool whose frame is still in flight, and every
/// teardown walks all the XDP allocators still registered). So one call runs for the whole
/// load, on a thread of its own, and its program takes the frames from a ring in a map, which
/// the generator fills ahead of time through a memory mapping (no system call per frame): each
/// run of the program sends the oldest frame if it is due (`bpf_ktime_get_ns`, CLOCK_MONOTONIC)
/// and records when it went; otherwise a junk frame while a junk budget lasts (at full speed, or
/// paced: a burst of `junk_burst` every `junk_interval` ns), else nothing (`XDP_DROP`, and the
/// kernel runs it again). The call ends when the generator signals its thread.
#[derive(Debug)]
pub struct LiveSchedule {
    prog: OwnedFd,
    /// `{ next, junk_sent, junk_budget, produced, junk_interval, junk_due, junk_burst,
    /// junk_left }`, u64 each: the program writes `next`, `junk_sent`, `junk_due` and
    /// `junk_left`, the generator the others.
    state: Mapped,
    /// The ring of frames: [`SLOT_LEN`]-byte slots.
    slots: Mapped,
    capacity: u32,
    ifindex: u32,
    /// Owns the junk frames' map (the program refers to it).
    _junk: OwnedFd,
}

/// What the program did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScheduleState {
    /// Frames of the ring sent.
    pub next: u64,
    /// Junk frames sent.
    pub junk_sent: u64,
}

/// An array map and its memory, mapped into this process (`tickgate::sys::map_shared`, as the
/// ingress maps the XDP program's queue counts).
#[derive(Debug)]
struct Mapped {
    fd: OwnedFd,
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; every access goes through atomic operations on
// aligned words, or writes to slots the program no longer reads.
unsafe impl Send for Mapped {}
// SAFETY: as above.
unsafe impl Sync for Mapped {}

impl Mapped {
    fn new(name: &std::ffi::CStr, value_size: usize, entries: u32) -> io::Result<Self> {
        let fd = map_create(name, value_size, entries, libbpf_sys::BPF_F_MMAPABLE)?;
        let len = (value_size.next_multiple_of(8) * entries as usize).next_multiple_of(sys::xsk::page_size());
        let ptr = sys::map_shared(fd.as_fd(), len, true)?;
        Ok(Self { fd, ptr, len })
    }

    /// The u64 at byte `at` (8-aligned, inside the mapping), shared with the program.
    fn word(&self, at: usize) -> &AtomicU64 {
        assert!(at.is_multiple_of(8) && at + 8 <= self.len);
        // SAFETY: aligned, in bounds, and mapped (readable and writable) while `self` lives.
        unsafe { AtomicU64::from_ptr(self.ptr.as_ptr().add(at).cast::<u64>()) }
    }

    /// Copies `bytes` to byte `at`.
    fn write(&self, at: usize, bytes: &[u8]) {
        assert!(at + bytes.len() <= self.len);
        // SAFETY: in bounds; the program does not read this slot until `produced` says so.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.as_ptr().add(at), bytes.len()) };
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`; nothing borrows from it once `self` goes.
        let _ = unsafe { sys::xsk::unmap(self.ptr, self.len) };
    }
}

fn map_create(name: &std::ffi::CStr, value_size: usize, entries: u32, flags: u32) -> io::Result<OwnedFd> {
    let opts = libbpf_sys::bpf_map_create_opts {
        sz: std::mem::size_of::<libbpf_sys::bpf_map_create_opts>() as _,
        map_flags: flags,
        ..Default::default()
    };
    // SAFETY: a NUL-terminated name and live options.
    let fd = unsafe {
        libbpf_sys::bpf_map_create(
            libbpf_sys::BPF_MAP_TYPE_ARRAY,
            name.as_ptr(),
            4,
            value_size as u32,
            entries,
            &raw const opts,
        )
    };
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(-fd));
    }
    // SAFETY: a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn map_write(map: &OwnedFd, key: u32, value: &[u8]) -> io::Result<()> {
    // SAFETY: `key` and `value` are live for the call; `value` is the map's value size (the
    // callers pass exactly that).
    let ret = unsafe {
        libbpf_sys::bpf_map_update_elem(map.as_raw_fd(), (&raw const key).cast(), value.as_ptr().cast(), 0)
    };
    if ret < 0 { Err(io::Error::from_raw_os_error(-ret)) } else { Ok(()) }
}

/// Byte offsets in the state map's value.
const NEXT: usize = 0;
const JUNK_SENT: usize = 8;
const JUNK_BUDGET: usize = 16;
const PRODUCED: usize = 24;
const JUNK_INTERVAL: usize = 32;
const JUNK_DUE: usize = 40;
const JUNK_BURST: usize = 48;
const JUNK_LEFT: usize = 56;

impl LiveSchedule {
    /// Maps and program for a ring of `capacity` frames (a power of two) sent through `ifname`
    /// (looked up in the calling thread's namespace, where the call must run too); two junk
    /// frames and a junk budget (0: no junk), sent at full speed or paced (see
    /// [`pace_junk`](Self::pace_junk)).
    pub fn new(ifname: &str, capacity: u32, junk: [&[u8]; 2], junk_budget: u64) -> io::Result<Self> {
        if !capacity.is_power_of_two() {
            return Err(io::Error::other("the live schedule's ring must be a power of two"));
        }
        let ifindex = ifindex(ifname)?;
        let state = Mapped::new(c"tg_live_state", 64, 1)?;
        let slots = Mapped::new(c"tg_live_slots", SLOT_LEN, capacity)?;
        let junk_map = map_create(c"tg_live_junk", SLOT_LEN, 2, 0)?;
        for (i, frame) in junk.into_iter().enumerate() {
            map_write(&junk_map, i as u32, &slot(0, frame)?)?;
        }
        state.word(JUNK_BUDGET).store(junk_budget, Ordering::Release);
        let code = program(&state.fd, &slots.fd, &junk_map, capacity)?;
        let prog = load_xdp(c"tg_live_sched", &code)?;
        Ok(Self { prog, state, slots, capacity, ifindex, _junk: junk_map })
    }

    /// Slots in the ring.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Puts frame number `k` (counting from 0 for the whole call) in its slot, due at `due_ns`
    /// (CLOCK_MONOTONIC); it may go once [`set_produced`](Self::set_produced) covers it. The
    /// slot must be free: `k < next + capacity`.
    pub fn put(&self, k: u64, due_ns: u64, frame: &[u8]) -> io::Result<()> {
        self.slots.write(self.slot_of(k), &slot(due_ns, frame)?);
        Ok(())
    }

    /// The due and sent times of frame `k` while it is still in its slot (sent 0: not yet).
    pub fn times(&self, k: u64) -> (u64, u64) {
        let at = self.slot_of(k);
        let load = |off| self.slots.word(at + off).load(Ordering::Acquire);
        (load(0), load(8))
    }

    /// Paces the junk: `per_second` frames a second from `from_ns` (CLOCK_MONOTONIC) on, in
    /// bursts of `burst` back to back (as a NIC's interrupt moderation hands its NAPI a batch),
    /// instead of one in every run of the program with no input due. Set before
    /// [`run`](Self::run). A schedule more than one burst behind starts again from the time it
    /// is found behind (catching up would be a burst of its own).
    pub fn pace_junk(&self, per_second: u64, burst: u64, from_ns: u64) {
        let burst = burst.max(1);
        let interval = (u128::from(burst) * 1_000_000_000 / u128::from(per_second.max(1))).max(1) as u64;
        self.state.word(JUNK_DUE).store(from_ns, Ordering::Release);
        self.state.word(JUNK_BURST).store(burst, Ordering::Release);
        self.state.word(JUNK_INTERVAL).store(interval, Ordering::Release);
    }

    /// Frames `0..produced` may be sent once due.
    pub fn set_produced(&self, produced: u64) {
        self.state.word(PRODUCED).store(produced, Ordering::Release);
    }

    /// What the program has done so far.
    pub fn state(&self) -> ScheduleState {
        let load = |at| self.state.word(at).load(Ordering::Acquire);
        ScheduleState { next: load(NEXT), junk_sent: load(JUNK_SENT) }
    }

    /// Runs the program until a signal interrupts the call (`Ok`) or its `repeat` runs out
    /// (`Ok` too: call again). Every run sends one frame or none.
    pub fn run(&self, repeat: u32) -> io::Result<()> {
        match run_live(&self.prog, self.ifindex, &[0u8; SCHEDULED_FRAME_MAX], repeat) {
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => Ok(()),
            other => other,
        }
    }

    /// Byte offset of frame `k`'s slot.
    fn slot_of(&self, k: u64) -> usize {
        (k & u64::from(self.capacity - 1)) as usize * SLOT_LEN
    }
}

/// A slot's bytes: due time, sent time (0), length, padding, the frame.
fn slot(due_ns: u64, frame: &[u8]) -> io::Result<[u8; SLOT_LEN]> {
    if frame.len() > SCHEDULED_FRAME_MAX || frame.len() < 14 {
        return Err(io::Error::other(format!(
            "a scheduled live frame has 14 to {SCHEDULED_FRAME_MAX} bytes, not {}",
            frame.len()
        )));
    }
    let mut value = [0u8; SLOT_LEN];
    value[0..8].copy_from_slice(&due_ns.to_ne_bytes());
    value[16..20].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
    value[24..24 + frame.len()].copy_from_slice(frame);
    Ok(value)
}

/// The scheduling program (see [`LiveSchedule`]), in raw eBPF instructions. r6: the context,
/// r7: the state, r8: a counter, r9: the slot to copy.
fn program(state: &OwnedFd, slots: &OwnedFd, junk: &OwnedFd, capacity: u32) -> io::Result<Vec<u64>> {
    const JUNK: usize = 0;
    const COPY: usize = 1;
    const DROP: usize = 2;
    const SEND_JUNK: usize = 3;
    const STORE_DUE: usize = 4;
    const IN_BURST: usize = 5;
    let fd = |f: &OwnedFd| f.as_raw_fd();
    let mut a = Asm::new(6);
    a.op(0xbf, 6, 1, 0, 0); // r6 = ctx
    a.op(0x62, 10, 0, -4, 0); // *(u32 *)(r10 - 4) = 0
    a.lookup(fd(state), -4);
    a.jump(0x15, 0, 0, 0, DROP); // if r0 == 0 goto drop
    a.op(0xbf, 7, 0, 0, 0); // r7 = state
    a.op(0x79, 1, 7, PRODUCED as i16, 0); // r1 = state.produced
    a.op(0x79, 8, 7, NEXT as i16, 0); // r8 = state.next
    a.jump(0x3d, 8, 1, 0, JUNK); // if r8 >= r1 goto junk
    a.op(0xbf, 1, 8, 0, 0); // r1 = r8
    a.op(0x57, 1, 0, 0, (capacity - 1) as i32); // r1 &= capacity - 1
    a.op(0x63, 10, 1, -8, 0); // *(u32 *)(r10 - 8) = r1
    a.lookup(fd(slots), -8);
    a.jump(0x15, 0, 0, 0, DROP);
    a.op(0xbf, 9, 0, 0, 0); // r9 = slot
    a.op(0x85, 0, 0, 0, 5); // r0 = bpf_ktime_get_ns()
    a.op(0x79, 1, 9, 0, 0); // r1 = slot.due
    a.jump(0xad, 0, 1, 0, JUNK); // if r0 < r1 goto junk
    a.op(0x7b, 9, 0, 8, 0); // slot.sent = r0
    a.op(0x07, 8, 0, 0, 1); // r8 += 1
    a.op(0x7b, 7, 8, NEXT as i16, 0); // state.next = r8
    a.jump(0x05, 0, 0, 0, COPY);
    a.label(JUNK);
    a.op(0x79, 8, 7, JUNK_SENT as i16, 0); // r8 = state.junk_sent
    a.op(0x79, 1, 7, JUNK_BUDGET as i16, 0); // r1 = state.junk_budget
    a.jump(0x3d, 8, 1, 0, DROP); // if r8 >= r1 goto drop
    a.op(0x79, 1, 7, JUNK_INTERVAL as i16, 0); // r1 = state.junk_interval
    a.jump(0x15, 1, 0, 0, SEND_JUNK); // if r1 == 0 goto send_junk (full speed)
    a.op(0x79, 1, 7, JUNK_LEFT as i16, 0); // r1 = state.junk_left
    a.jump(0x55, 1, 0, 0, IN_BURST); // if r1 != 0 goto in_burst
    a.op(0x85, 0, 0, 0, 5); // r0 = bpf_ktime_get_ns()
    a.op(0x79, 1, 7, JUNK_DUE as i16, 0); // r1 = state.junk_due
    a.jump(0xad, 0, 1, 0, DROP); // if r0 < r1 goto drop (the next burst is not due yet)
    a.op(0x79, 2, 7, JUNK_INTERVAL as i16, 0); // r2 = state.junk_interval
    a.op(0x0f, 1, 2, 0, 0); // r1 += r2 (the burst after it)
    a.op(0xbf, 3, 0, 0, 0); // r3 = r0
    a.op(0x1f, 3, 2, 0, 0); // r3 -= r2
    a.jump(0x3d, 1, 3, 0, STORE_DUE); // if r1 >= r3 goto store_due
    a.op(0xbf, 1, 0, 0, 0); // r1 = r0 (more than a burst behind: start again from now,
    a.op(0x0f, 1, 2, 0, 0); // r1 += r2   the next burst one interval on)
    a.label(STORE_DUE);
    a.op(0x7b, 7, 1, JUNK_DUE as i16, 0); // state.junk_due = r1
    a.op(0x79, 1, 7, JUNK_BURST as i16, 0); // r1 = state.junk_burst
    a.label(IN_BURST);
    a.op(0x07, 1, 0, 0, -1); // r1 -= 1
    a.op(0x7b, 7, 1, JUNK_LEFT as i16, 0); // state.junk_left = r1
    a.label(SEND_JUNK);
    a.op(0xbf, 1, 8, 0, 0); // r1 = r8
    a.op(0x57, 1, 0, 0, 1); // r1 &= 1
    a.op(0x63, 10, 1, -8, 0); // *(u32 *)(r10 - 8) = r1
    a.op(0x07, 8, 0, 0, 1); // r8 += 1
    a.op(0x7b, 7, 8, JUNK_SENT as i16, 0); // state.junk_sent = r8
    a.lookup(fd(junk), -8);
    a.jump(0x15, 0, 0, 0, DROP);
    a.op(0xbf, 9, 0, 0, 0); // r9 = junk slot
    a.label(COPY);
    a.op(0x61, 2, 6, 0, 0); // r2 = ctx.data
    a.op(0x61, 3, 6, 4, 0); // r3 = ctx.data_end
    a.op(0xbf, 4, 2, 0, 0); // r4 = r2
    a.op(0x07, 4, 0, 0, SCHEDULED_FRAME_MAX as i32); // r4 += FRAME_MAX
    a.jump(0x2d, 4, 3, 0, DROP); // if r4 > r3 goto drop
    for i in 0..(SCHEDULED_FRAME_MAX / 8) as i16 {
        a.op(0x79, 5, 9, 24 + 8 * i, 0); // r5 = slot.frame[i]
        a.op(0x7b, 2, 5, 8 * i, 0); // packet[i] = r5
    }
    a.op(0x61, 2, 9, 16, 0); // r2 = slot.len
    a.op(0x07, 2, 0, 0, -(SCHEDULED_FRAME_MAX as i32)); // r2 -= FRAME_MAX (the tail to cut)
    a.op(0xbf, 1, 6, 0, 0); // r1 = ctx
    a.op(0x85, 0, 0, 0, 65); // r0 = bpf_xdp_adjust_tail(ctx, r2)
    a.jump(0x55, 0, 0, 0, DROP); // if r0 != 0 goto drop
    a.op(0xb7, 0, 0, 0, 3); // r0 = XDP_TX
    a.op(0x95, 0, 0, 0, 0); // exit
    a.label(DROP);
    a.op(0xb7, 0, 0, 0, 1); // r0 = XDP_DROP
    a.op(0x95, 0, 0, 0, 0); // exit
    a.finish()
}

/// Loads an XDP program from raw instructions; a verifier rejection comes back with its log.
fn load_xdp(name: &std::ffi::CStr, code: &[u64]) -> io::Result<OwnedFd> {
    let mut log = vec![0u8; 64 * 1024];
    let mut opts = libbpf_sys::bpf_prog_load_opts {
        sz: std::mem::size_of::<libbpf_sys::bpf_prog_load_opts>() as _,
        log_buf: log.as_mut_ptr().cast(),
        log_size: log.len() as u32,
        log_level: 1,
        ..Default::default()
    };
    // SAFETY: the instructions outlive the call and have the layout of `bpf_insn`; `opts` and
    // its log buffer are live for the call.
    let fd = unsafe {
        libbpf_sys::bpf_prog_load(
            libbpf_sys::BPF_PROG_TYPE_XDP,
            name.as_ptr(),
            c"GPL".as_ptr(),
            code.as_ptr().cast(),
            code.len() as u64,
            &raw mut opts,
        )
    };
    if fd < 0 {
        let text = String::from_utf8_lossy(&log);
        let text = text.trim_end_matches('\0').trim();
        let tail: String =
            text.lines().rev().take(12).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
        return Err(io::Error::new(
            io::Error::from_raw_os_error(-fd).kind(),
            format!(
                "the live schedule's program was refused ({}): {tail}",
                io::Error::from_raw_os_error(-fd)
            ),
        ));
    }
    // SAFETY: a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An Ethernet + IPv4 + UDP frame from the lab's sender to its receiver, from
/// [`LIVE_SRC_PORT`] to `dst_port`, carrying `payload` (the fixtures' frame builder, with the
/// lab's addresses).
pub fn udp_frame(dst_port: u16, payload: &[u8]) -> Vec<u8> {
    udp_frame_from(LIVE_SRC_PORT, dst_port, payload)
}

/// As [`udp_frame`], from `src_port` (a legit input's flow, whose session is keyed by it).
pub fn udp_frame_from(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let ip = Ip::between(TX_IP4.into(), RX_IP4.into());
    Frame { dst_mac: RX_MAC, src_mac: TX_MAC, ..Frame::udp(ip, src_port, dst_port, payload) }.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one's-complement sum of an IPv4 header with its checksum in place is all ones.
    fn checksum_verifies(header: &[u8]) -> bool {
        let mut sum: u32 = header.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum == 0xffff
    }

    /// The offset field of instruction `at`.
    fn offset(code: &[u64], at: usize) -> i16 {
        (code[at] >> 16) as u16 as i16
    }

    #[test]
    fn jumps_land_on_their_labels() {
        let mut a = Asm::new(2);
        a.jump(0x15, 0, 0, 0, 1); // 0: forward to label 1
        a.op(0xb7, 0, 0, 0, 1); // 1
        a.label(0);
        a.map(1, 7); // 2, 3: a two-instruction load
        a.jump(0x05, 0, 0, 0, 0); // 4: back to label 0
        a.label(1);
        a.op(0x95, 0, 0, 0, 0); // 5
        let code = a.finish().unwrap();
        assert_eq!(code.len(), 6);
        // The kernel jumps to at + 1 + off.
        assert_eq!(offset(&code, 0), 4, "0 + 1 + 4 = 5");
        assert_eq!(offset(&code, 4), -3, "4 + 1 - 3 = 2");
        // The jumps keep their opcode and registers; the map load carries the pseudo source 1.
        assert_eq!(code[0] & 0xffff, 0x15);
        assert_eq!(code[2] & 0xffff, 0x18 | (1 | 1 << 4) << 8);
        assert_eq!(code[2] >> 32, 7);
        let mut unplaced = Asm::new(1);
        unplaced.jump(0x05, 0, 0, 0, 0);
        assert!(unplaced.finish().is_err());
    }

    #[test]
    fn a_slot_holds_its_due_time_length_and_frame() {
        let frame = udp_frame(7777, &[0xab; 64]);
        let s = slot(123_456_789, &frame).unwrap();
        assert_eq!(u64::from_ne_bytes(s[0..8].try_into().unwrap()), 123_456_789);
        assert_eq!(u64::from_ne_bytes(s[8..16].try_into().unwrap()), 0, "not sent yet");
        assert_eq!(u32::from_ne_bytes(s[16..20].try_into().unwrap()), frame.len() as u32);
        assert_eq!(&s[24..24 + frame.len()], &frame[..]);
        assert!(s[24 + frame.len()..].iter().all(|b| *b == 0));
        assert!(slot(0, &[0u8; SCHEDULED_FRAME_MAX + 1]).is_err(), "too long for the program's copy");
        assert!(slot(0, &[0u8; 13]).is_err(), "shorter than an Ethernet header");
    }

    #[test]
    fn a_udp_frame_has_a_valid_ipv4_header_and_the_lab_addresses() {
        let payload = [0u8; 36];
        let f = udp_frame(7777, &payload);
        assert_eq!(f.len(), 14 + 20 + 8 + 36);
        assert_eq!(&f[0..6], &RX_MAC);
        assert_eq!(&f[6..12], &TX_MAC);
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        assert!(checksum_verifies(&f[14..34]), "IPv4 header checksum");
        assert!(!checksum_verifies(&[
            0x45, 0, 0, 64, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 77, 0, 1, 10, 77, 0, 2
        ]));
        assert_eq!(u16::from_be_bytes([f[16], f[17]]), 64);
        assert_eq!(&f[26..30], &TX_IP4.octets());
        assert_eq!(&f[30..34], &RX_IP4.octets());
        assert_eq!(u16::from_be_bytes([f[34], f[35]]), LIVE_SRC_PORT);
        assert_eq!(u16::from_be_bytes([f[36], f[37]]), 7777);
        assert_eq!(u16::from_be_bytes([f[38], f[39]]), 44);
        assert!(tickgate::wire::decode(&f[42..]).is_err(), "bad magic must not decode");
    }
}
