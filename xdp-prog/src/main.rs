//! tickgate's XDP programs: one object, two programs.
//!
//! - `tickgate_hw`: loaded device-bound; stamps each game packet with the NIC's hardware receive
//!   time through the `bpf_xdp_metadata_rx_timestamp` kfunc, falling back to the XDP-hook TAI
//!   clock when the kfunc fails or returns 0. Attaches only in native mode.
//! - `tickgate_tai`: stamps with the TAI clock only; works in skb mode and on any driver.
//!
//! Both run the shared classifier from `tickgate-common`, shed sources over their rate limit,
//! write [`RxMeta`] in front of valid game packets and redirect them to the AF_XDP socket of
//! their RX queue. Every packet ends in exactly one outcome counter.
#![no_std]
#![no_main]
// Inline asm on the bpf target is still unstable; it emits the kfunc call (see `rx_timestamp`).
#![feature(asm_experimental_arch)]

use aya_ebpf::{
    bindings::{BPF_ANY, BPF_F_MMAPABLE, xdp_action, xdp_md},
    btf_maps::{Array, HashMap, LruPerCpuHashMap, PerCpuArray, XskMap},
    helpers::{bpf_ktime_get_ns, bpf_ktime_get_tai_ns, bpf_xdp_adjust_meta},
    macros::{btf_map, xdp},
    programs::XdpContext,
};
use tickgate_common::{
    classify::{Framing, GamePacket, Packet, Verdict, classify},
    counter::{self, Counter},
    meta::{self, META_LEN, RxMeta, flags},
    rate::{self, Bucket, RateConfig},
    session::{HandshakeLimit, SessionKey},
};

/// Game UDP ports (host byte order); userspace fills it. The value is unused.
#[btf_map]
static GAME_PORTS: HashMap<u16, u8, 1024> = HashMap::new();

/// RX queue index -> AF_XDP socket bound on that queue.
#[btf_map]
static XSKS: XskMap<{ meta::RX_QUEUES as usize }> = XskMap::new();

/// RX queue index -> packets steered on that queue so far; the last one's number is in its
/// metadata (`rx_seq`). One NAPI instance runs a queue's packets at a time in native mode, so the
/// plain increment has one writer; userspace maps the array (`BPF_F_MMAPABLE`), only loads from
/// it, and trusts the count in native mode only.
#[btf_map]
static RX_SEQ: Array<u64, { meta::RX_QUEUES as usize }, { BPF_F_MMAPABLE as usize }> = Array::new();

/// Per-CPU counters, one slot per [`Counter`].
#[btf_map]
static COUNTERS: PerCpuArray<u64, { counter::SLOTS as usize }> = PerCpuArray::new();

/// The flood-shedding limit, one element; userspace writes it at attach. Its zeroed initial
/// value (rate 0) disables shedding.
#[btf_map]
static RATE_LIMIT: Array<RateConfig, 1> = Array::new();

/// Token bucket per source address (v4-mapped for IPv4) and CPU. Per CPU because RSS puts a
/// flow's packets on one RX queue, hence one CPU, so each bucket has a single writer and needs
/// no atomics; the cost is that a source spread over several queues gets a budget on each. LRU,
/// so a flood of spoofed sources evicts idle buckets instead of failing inserts; an evicted
/// source starts again with a full burst.
///
/// An insert from BPF zero-fills the other CPUs' slots, which [`rate::admit`] reads as a new
/// source (kernel 5.10, "bpf: zero-fill re-used per-cpu map element",
/// tools/testing/selftests/bpf/prog_tests/map_init.c). Older kernels may leave a recycled
/// element's stale bucket there: at most one burst, capped by the current config.
#[btf_map]
static RATE_BUCKETS: LruPerCpuHashMap<[u8; 16], Bucket, 65536> = LruPerCpuHashMap::new();

/// Which protocol versions are served, one element: bit 0 set admits v1 (unauthenticated,
/// `--insecure-v1`). Zeroed, v1 packets are dropped as `bad_version`.
#[btf_map]
static PROTOCOL: Array<u32, 1> = Array::new();

/// Client address and port -> session id; userspace inserts on connect and removes on close.
#[btf_map]
static SESSIONS: HashMap<SessionKey, u32, 65536> = HashMap::new();

/// The handshake budget, one element; userspace writes it at attach. Zeroed: no budget.
#[btf_map]
static HANDSHAKE_LIMIT: Array<HandshakeLimit, 1> = Array::new();

/// Handshake token bucket per source address and CPU (LRU, as [`RATE_BUCKETS`]).
#[btf_map]
static HANDSHAKE_BUCKETS: LruPerCpuHashMap<[u8; 16], Bucket, 65536> = LruPerCpuHashMap::new();

/// The handshake token bucket of all sources together, one per CPU.
#[btf_map]
static HANDSHAKE_GLOBAL: PerCpuArray<Bucket, 1> = PerCpuArray::new();

#[xdp]
pub fn tickgate_hw(ctx: XdpContext) -> u32 {
    run::<true>(&ctx)
}

#[xdp]
pub fn tickgate_tai(ctx: XdpContext) -> u32 {
    run::<false>(&ctx)
}

/// The live frame as the classifier sees it: every read is checked against `data_end`.
struct Frame<'a>(&'a XdpContext);

impl Packet for Frame<'_> {
    #[inline(always)]
    fn load<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        let start = self.0.data() + offset;
        if start + N > self.0.data_end() {
            return None;
        }
        // SAFETY: `start..start + N` lies within `data..data_end`, checked just above in the form
        // the verifier tracks; an unaligned read of plain bytes has no validity requirement.
        Some(unsafe { (start as *const [u8; N]).read_unaligned() })
    }

    #[inline(always)]
    fn len(&self) -> usize {
        self.0.data_end() - self.0.data()
    }
}

#[inline(always)]
fn count(slot: Counter) {
    if let Some(value) = COUNTERS.get_ptr_mut(slot as u32) {
        // SAFETY: the pointer comes from a successful per-CPU array lookup, so it points at this
        // CPU's u64 slot; XDP runs with preemption disabled, so nothing else writes it now.
        unsafe { *value += 1 };
    }
}

#[inline(always)]
fn run<const HW: bool>(ctx: &XdpContext) -> u32 {
    count(Counter::RxPackets);
    match classify(&Frame(ctx), is_game_port) {
        Verdict::Pass => {
            count(Counter::Passed);
            xdp_action::XDP_PASS
        }
        Verdict::Drop(reason) => {
            count(reason.into());
            xdp_action::XDP_DROP
        }
        // Shed before stamping: a flood must not cost a kfunc call or metadata per packet.
        Verdict::Steer(packet) if !within_rate(&packet.source) => {
            count(Counter::DropRateLimited);
            xdp_action::XDP_DROP
        }
        Verdict::Steer(packet) => match packet.header {
            Framing::V1(_) if v1_allowed() => steer::<HW>(ctx, &packet),
            Framing::V1(_) => {
                count(Counter::DropBadVersion);
                xdp_action::XDP_DROP
            }
            // Handshake packets have no session yet: they pass within their budget.
            Framing::V2(header) if header.kind.handshake() => {
                if within_handshake_budget(&packet.source) {
                    steer::<HW>(ctx, &packet)
                } else {
                    count(Counter::DropHandshakeLimited);
                    xdp_action::XDP_DROP
                }
            }
            Framing::V2(header) if !has_session(&packet, header.session) => {
                count(Counter::DropNoSession);
                xdp_action::XDP_DROP
            }
            Framing::V2(_) => steer::<HW>(ctx, &packet),
        },
    }
}

/// Whether protocol v1 is served (`--insecure-v1`).
#[inline(always)]
fn v1_allowed() -> bool {
    PROTOCOL.get(0).is_some_and(|&bits| bits & 1 != 0)
}

/// Whether the packet's source holds the session its header names.
#[inline(always)]
fn has_session(packet: &GamePacket, session: u32) -> bool {
    let key = SessionKey::new(packet.source, packet.source_port);
    // SAFETY: a lookup in a plain hash map; the value is copied out at once, before any update
    // from userspace could free the element.
    unsafe { SESSIONS.get(&key) }.is_some_and(|&held| held == session)
}

/// Whether a handshake packet from `source` is within the per-source and the global budget on
/// this CPU; takes a token from each if so.
#[inline(always)]
fn within_handshake_budget(source: &[u8; 16]) -> bool {
    let Some(&limit) = HANDSHAKE_LIMIT.get(0) else {
        return true;
    };
    // SAFETY: a helper with no arguments and no preconditions.
    let now_ns = unsafe { bpf_ktime_get_ns() };
    if limit.per_source.enabled() && !take(&HANDSHAKE_BUCKETS, source, now_ns, &limit.per_source) {
        return false;
    }
    if !limit.global.enabled() {
        return true;
    }
    match HANDSHAKE_GLOBAL.get_ptr_mut(0) {
        // SAFETY: this CPU's slot of a per-CPU array; XDP runs with preemption disabled.
        Some(bucket) => rate::admit(unsafe { &mut *bucket }, now_ns, &limit.global),
        None => true,
    }
}

/// Takes a token from `source`'s bucket in `buckets` (made full on first sight).
#[inline(always)]
fn take(
    buckets: &LruPerCpuHashMap<[u8; 16], Bucket, 65536>,
    source: &[u8; 16],
    now_ns: u64,
    config: &RateConfig,
) -> bool {
    if let Some(bucket) = buckets.get_ptr_mut(source) {
        // SAFETY: as in `within_rate`: this CPU's bucket of a per-CPU map, no insert or remove
        // before the reference ends.
        return rate::admit(unsafe { &mut *bucket }, now_ns, config);
    }
    let mut bucket = Bucket::default();
    let admitted = rate::admit(&mut bucket, now_ns, config);
    let _ = buckets.insert(source, bucket, u64::from(BPF_ANY));
    admitted
}

/// Whether `source` is within its rate limit on this CPU; takes a token if so.
#[inline(always)]
fn within_rate(source: &[u8; 16]) -> bool {
    let Some(&config) = RATE_LIMIT.get(0) else {
        return true;
    };
    if !config.enabled() {
        return true;
    }
    // SAFETY: a helper with no arguments and no preconditions.
    let now_ns = unsafe { bpf_ktime_get_ns() };
    if let Some(bucket) = RATE_BUCKETS.get_ptr_mut(source) {
        // SAFETY: the pointer comes from a successful lookup in a per-CPU map, so it points at
        // this CPU's bucket, which nothing else writes while XDP runs with preemption disabled;
        // this map sees no insert or remove before the reference ends, so its slot is not
        // recycled under it.
        return rate::admit(unsafe { &mut *bucket }, now_ns, &config);
    }
    let mut bucket = Bucket::default();
    let admitted = rate::admit(&mut bucket, now_ns, &config);
    // A failed insert (memory pressure) leaves the source unknown: its next packet starts a
    // fresh bucket again, which admits, so the hot path degrades to no limit rather than drops.
    // Two CPUs inserting the same new source at once can each grant one extra burst: benign.
    let _ = RATE_BUCKETS.insert(source, bucket, u64::from(BPF_ANY));
    admitted
}

#[inline(always)]
fn is_game_port(port: u16) -> bool {
    GAME_PORTS.get_ptr(port).is_some()
}

/// Stamps, writes the metadata and redirects one valid game packet.
#[inline(always)]
fn steer<const HW: bool>(ctx: &XdpContext, packet: &GamePacket) -> u32 {
    // Counted before it is stamped: a packet numbered above the count a worker reads at `t` is
    // stamped after `t` (give or take the store's way to memory), so a worker holding every packet
    // up to that count holds every packet stamped before `t`.
    let rx_seq = count_on_queue(ctx.rx_queue_index());
    let (rx_ts_ns, mut meta_flags, kfunc_ret) = if HW { nic_or_tai_time(ctx) } else { tai_time() };
    if packet.ipv6 {
        meta_flags |= flags::IPV6;
    }
    // SAFETY: `ctx.ctx` is the live xdp_md of this invocation; a negative delta asks the kernel
    // for headroom in front of the data and it checks the bounds itself.
    if unsafe { bpf_xdp_adjust_meta(ctx.ctx, -(META_LEN as i32)) } != 0 {
        count(Counter::DropNoMetadata);
        return xdp_action::XDP_DROP;
    }
    // After adjust_meta every packet pointer must be re-derived and re-checked.
    let meta_start = ctx.metadata();
    if meta_start + META_LEN > ctx.data() {
        count(Counter::DropNoMetadata);
        return xdp_action::XDP_DROP;
    }
    let meta = RxMeta {
        rx_ts_ns,
        flags: meta_flags,
        kfunc_ret,
        payload_offset: packet.payload_offset,
        payload_len: packet.payload_len,
        magic: meta::MAGIC,
        rx_seq,
    };
    // SAFETY: `meta_start..meta_start + META_LEN` is the metadata area just granted and checked
    // against `data` above; the write is unaligned-safe.
    unsafe { (meta_start as *mut RxMeta).write_unaligned(meta) };

    match XSKS.redirect(ctx.rx_queue_index(), u64::from(xdp_action::XDP_PASS)) {
        Ok(action) => {
            count(Counter::Steered);
            action
        }
        Err(action) => {
            count(Counter::NoSocket);
            action
        }
    }
}

/// The next number of `queue`'s count in `RX_SEQ` (0 for a queue index past the array).
#[inline(always)]
fn count_on_queue(queue: u32) -> u64 {
    let Some(slot) = RX_SEQ.get_ptr_mut(queue) else {
        return 0;
    };
    // SAFETY: the pointer is this queue's element of an array map, valid for the program's run;
    // only the NAPI instance running this queue writes it (native mode), and the volatile write
    // keeps the store ahead of the stamp's helper call.
    unsafe {
        let next = core::ptr::read_volatile(slot).wrapping_add(1);
        core::ptr::write_volatile(slot, next);
        next
    }
}

#[inline(always)]
fn tai_time() -> (u64, u32, i32) {
    count(Counter::TsXdp);
    // SAFETY: a helper with no arguments and no preconditions.
    (unsafe { bpf_ktime_get_tai_ns() }, flags::TS_XDP, meta::KFUNC_NOT_CALLED)
}

#[inline(always)]
fn nic_or_tai_time(ctx: &XdpContext) -> (u64, u32, i32) {
    let mut nic_ts: u64 = 0;
    // SAFETY: `ctx.ctx` is this invocation's xdp_md and `nic_ts` a live stack slot the kfunc
    // writes one u64 into.
    let ret = unsafe { rx_timestamp(ctx.ctx, &mut nic_ts) };
    if ret == 0 && nic_ts != 0 {
        count(Counter::TsNic);
        return (nic_ts, flags::TS_NIC | flags::HW_PROGRAM, ret);
    }
    count(if ret == 0 { Counter::KfuncNoTimestamp } else { Counter::KfuncError });
    let (ts, tai_flags, _) = tai_time();
    (ts, tai_flags | flags::HW_PROGRAM, ret)
}

/// Calls `int bpf_xdp_metadata_rx_timestamp(const struct xdp_md *ctx, u64 *timestamp)`.
///
/// rustc emits no BTF for `extern` functions, so neither libbpf nor the kernel could resolve an
/// ordinary extern call. The raw instruction is emitted instead: CALL with src_reg 2 (kfunc) and
/// a placeholder imm that the loader patches with the FUNC's BTF id from vmlinux
/// (`tickgate_common::kfunc`). BPF calling convention: args r1-r5, result r0, r1-r5 clobbered.
///
/// # Minimum kernel version
/// 6.3 (XDP RX metadata kfuncs, Documentation/networking/xdp-rx-metadata.rst), and the program
/// must be loaded device-bound (`BPF_F_XDP_DEV_BOUND_ONLY`).
///
/// # Safety
/// `ctx` must be the program's own context and `ts` must point at 8 writable bytes.
#[inline(always)]
unsafe fn rx_timestamp(ctx: *mut xdp_md, ts: *mut u64) -> i32 {
    let ret: u64;
    // SAFETY: the instruction is a kfunc call taking (ctx, ts) in r1/r2 as the caller guarantees;
    // the operands declare every register the BPF ABI lets the callee clobber.
    unsafe {
        core::arch::asm!(
            ".quad 0x7ffffff000002085",
            inout("r1") ctx as u64 => _,
            inout("r2") ts as u64 => _,
            lateout("r0") ret,
            lateout("r3") _,
            lateout("r4") _,
            lateout("r5") _,
            options(nostack),
        );
    }
    ret as i32
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any program in which this is reachable, so it never runs.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
