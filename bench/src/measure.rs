//! One measurement: start a receiver in the receiver namespace, run the generator in the sender
//! namespace, take every frame, and account for every packet and input afterwards.

use std::{
    collections::BTreeMap,
    sync::{atomic::AtomicBool, mpsc},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};
use hdrhistogram::Histogram;
use serde::Serialize;
use tickgate::{frame_queue::Frame, sys::clock_tai_ns, worker::Counter};
use tickgate_testkit::{
    client::send_time_ns,
    lab::{self, Lab},
};

use crate::{
    generator::{self, GenConfig, GenPath, GenReport},
    kernel::{self, CoreUse, LinkStats, Mib},
    receiver::{ReceiverConfig, ReceiverKind, ReceiverReport, Running},
};

/// Histogram range: 1 ns to 100 s, three significant digits.
const HIST_MAX_NS: u64 = 100_000_000_000;

/// A new latency histogram (ns).
pub fn histogram() -> Histogram<u64> {
    // Cannot fail: the bounds and precision are valid constants.
    Histogram::new_with_bounds(1, HIST_MAX_NS, 3).unwrap_or_else(|_| unreachable!("valid histogram bounds"))
}

/// What to measure.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Scenario label (`seed`, `seed-1000hz`, `sweep`, ...).
    pub scenario: String,
    /// Round (A B A B alternation) or sweep step.
    pub round: u32,
    /// The receiver and its settings.
    pub receiver: ReceiverConfig,
    /// The load.
    pub load: GenConfig,
    /// Core of the generator thread.
    pub gen_core: Option<usize>,
    /// Core of the sequencer thread and of the thread taking frames (the game's side).
    pub seq_core: Option<usize>,
    /// Core of the receiver veth's NAPI threads (threaded NAPI), `None` with stock veth.
    pub napi_core: Option<usize>,
    /// Those threads at SCHED_FIFO this priority (preempting the receiving threads, as a NIC's
    /// softirq does), or SCHED_OTHER (`None`).
    pub napi_fifo: Option<i32>,
    /// Keep the NAPI threads' core from halting while the load runs: a SCHED_IDLE thread spins
    /// there (`bench-awake`, in no CPU figure), so that a wake-up sent to that core runs its
    /// thread at once, as on a bare-metal core, not when a guest's halted vCPU is woken.
    pub keep_awake: bool,
    /// Inputs sent in the first `warmup` are counted but not put in the latency histograms.
    pub warmup: Duration,
    /// Nor those sent in the last `cooldown`, whose ticks may be sealed by the final close.
    pub cooldown: Duration,
}

/// Percentiles of a latency histogram, µs.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest sample.
    pub max_us: f64,
}

impl Summary {
    /// The summary of `h`.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let us = |ns: u64| ns as f64 / 1_000.0;
        Self {
            count: h.len(),
            mean_us: h.mean() / 1_000.0,
            p50_us: us(h.value_at_quantile(0.5)),
            p90_us: us(h.value_at_quantile(0.9)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
        }
    }
}

/// Where packets and inputs went.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Loss {
    /// Distinct legit inputs sent minus inputs found in frames.
    pub legit_inputs_lost: i64,
    /// The same, in percent of the inputs sent.
    pub legit_loss_pct: f64,
    /// Every drop counter that moved, by stage and reason (junk included).
    pub by_reason: BTreeMap<String, u64>,
    /// Packets sent that no counter accounts for (0 when everything balances).
    pub unexplained_packets: i64,
    /// Legit inputs lost that no drop counter accounts for; computed when every packet is legit
    /// and carries one input (no junk, redundancy 1), `None` otherwise.
    pub unexplained_inputs: Option<i64>,
}

/// CPU use during the load window.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Cpu {
    /// Window length, seconds.
    pub window_s: f64,
    /// Every core.
    pub cores: Vec<CoreUse>,
    /// Receiver threads: workers (AF_XDP or socket) + sequencer + frame consumer + the receiver
    /// veth's NAPI threads (threaded NAPI), % of one core.
    pub receiver_pct: f64,
    /// The receiver veth's NAPI kernel threads: XDP and the AF_XDP copy, or the kernel IP/UDP
    /// receive path up to the socket.
    pub napi_pct: f64,
    /// The receiving threads alone (AF_XDP workers or socket readers).
    pub worker_pct: f64,
    /// The sequencer thread.
    pub sequencer_pct: f64,
    /// The bench thread taking frames and recording latencies.
    pub consumer_pct: f64,
    /// The generator thread (its share of the sender core; softirq work may be charged to it).
    pub generator_pct: f64,
    /// Other user-space processes on the machine during the window (% of one core, a lower
    /// bound): above a few percent, the figures are disturbed.
    pub other_processes_pct: f64,
}

/// Counters of the lab read before and after a measurement.
#[derive(Clone, Debug, Default, Serialize)]
pub struct KernelView {
    /// Receiver veth, increase during the measurement.
    pub rx_link: LinkStats,
    /// Sender veth, increase.
    pub tx_link: LinkStats,
    /// Receiver namespace IP/UDP MIB, counters that moved.
    pub rx_mib: Mib,
    /// softnet backlog drops, all CPUs.
    pub softnet_dropped: u64,
}

/// The outcome of one measurement (JSON).
#[derive(Clone, Debug, Serialize)]
pub struct RunResult {
    /// Scenario label.
    pub scenario: String,
    /// Receiver.
    pub receiver: ReceiverKind,
    /// Round or sweep step.
    pub round: u32,
    /// Ticks per second.
    pub tick_hz: u32,
    /// Grace, µs.
    pub grace_us: u64,
    /// Legit packets per second asked for (`None`: as fast as possible).
    pub offered_pps: Option<u64>,
    /// What the generator did.
    pub generator: GenReport,
    /// Send → frame taken from the frame queue, inputs sent inside the window.
    pub latency: Summary,
    /// Send → receive stamp (socket: right after recv returned; tickgate: at the XDP hook).
    pub rx_stamp: Summary,
    /// Tick close: frame taken from the frame queue − the end of its tick, for every frame whose
    /// tick ended inside the window (empty ones too: the game waits for them all the same).
    pub tick_close: Summary,
    /// Inputs that missed their tick's seal and went to the next frame, % of the inputs in frames.
    pub late_pct: f64,
    /// Inputs found in frames.
    pub inputs_in_frames: u64,
    /// Inputs in frames per second of sending.
    pub delivered_pps: f64,
    /// Frames taken.
    pub frames: u64,
    /// Late inputs moved to the next tick.
    pub late_next: u64,
    /// Inputs with a receive stamp or frame time before their send time (clock trouble).
    pub negative_latencies: u64,
    /// Loss accounting.
    pub loss: Loss,
    /// CPU use.
    pub cpu: Cpu,
    /// Lab counters.
    pub kernel: KernelView,
    /// The receiver's own counters.
    pub receiver_report: ReceiverReport,
}

/// A result with its histograms.
#[derive(Debug)]
pub struct Outcome {
    /// The figures.
    pub result: RunResult,
    /// Send → frame, ns.
    pub latency: Histogram<u64>,
    /// Send → receive stamp, ns.
    pub rx_stamp: Histogram<u64>,
    /// Tick end → frame taken, ns.
    pub tick_close: Histogram<u64>,
}

struct Snapshot {
    rx_link: LinkStats,
    tx_link: LinkStats,
    rx_mib: Mib,
    softnet: u64,
}

impl Snapshot {
    fn read(lab: &Lab) -> Result<Self> {
        Ok(Self {
            rx_link: kernel::link_stats(&lab.rx_ns, &lab.rx_if)?,
            tx_link: kernel::link_stats(&lab.tx_ns, &lab.tx_if)?,
            rx_mib: lab::in_netns(&lab.rx_ns, kernel::snmp)??,
            softnet: kernel::softnet_dropped(),
        })
    }
}

/// Takes frames and records latencies.
struct Sink {
    window: (u64, u64),
    latency: Histogram<u64>,
    rx_stamp: Histogram<u64>,
    tick_close: Histogram<u64>,
    inputs: u64,
    frames: u64,
    negative: u64,
}

impl Sink {
    fn take(&mut self, frame: &Frame) {
        let now = clock_tai_ns();
        self.frames += 1;
        if let Some(tick_ns) = 1_000_000_000u64.checked_div(u64::from(frame.tick_hz)) {
            let end = frame.start_ns + tick_ns;
            if end >= self.window.0 && end < self.window.1 {
                // A frame is never sealed before its tick ends: 1 ns is the floor, not a clamp
                // that hides anything (the run's time base is the one `now` is read in).
                self.tick_close.saturating_record(now.saturating_sub(end).max(1));
            }
        }
        // Joins (protocol v2) are events, not the generator's inputs.
        for input in frame.inputs.iter().filter(|i| i.kind == tickgate::input::InputKind::Command) {
            self.inputs += 1;
            let Some(sent) = send_time_ns(input) else { continue };
            if sent < self.window.0 || sent >= self.window.1 {
                continue;
            }
            match (now.checked_sub(sent), input.rx.ns.checked_sub(sent)) {
                (Some(frame_latency), Some(stamp_latency)) => {
                    self.latency.saturating_record(frame_latency.max(1));
                    self.rx_stamp.saturating_record(stamp_latency.max(1));
                }
                _ => self.negative += 1,
            }
        }
    }
}

enum Control {
    Start { window: (u64, u64) },
    Drain { inputs: u64, within: Duration },
}

/// Runs one measurement. `stop` (Ctrl-C) ends the load early; the receiver is still drained and
/// stopped, so the lab is left clean.
pub fn measure(lab: &Lab, spec: &Spec, stop: &AtomicBool) -> Result<Outcome> {
    let before = Snapshot::read(lab)?;
    let napi = kernel::napi_threads(&lab.rx_if);
    if let Some(core) = spec.napi_core {
        if napi.is_empty() {
            bail!("no NAPI thread of {} found: threaded NAPI is not on", lab.rx_if);
        }
        for &pid in &napi {
            crate::sys::pin_thread(pid as i32, core).context("pinning the veth NAPI thread")?;
            let policy = spec.napi_fifo.map_or(crate::sys::Policy::Other, crate::sys::Policy::Fifo);
            crate::sys::set_policy(pid as i32, policy).context("setting the veth NAPI thread's priority")?;
        }
    }
    let (ready_tx, ready_rx) = mpsc::channel::<Result<()>>();
    let (ctl_tx, ctl_rx) = mpsc::channel::<Control>();
    let frames_cfg = spec.receiver.frames;
    let tick_ns = 1_000_000_000 / u64::from(frames_cfg.tick_hz.max(1));

    // Held until the measurement ends, however it ends.
    let _no_halt = match (spec.keep_awake, spec.napi_core) {
        (true, Some(_)) => Some(kernel::NoHalt::hold().context("--keep-awake")?),
        _ => None,
    };
    let (rx_result, gen_result, cpu) = std::thread::scope(|s| -> Result<_> {
        let rx = std::thread::Builder::new()
            .name("bench-rx".into())
            .spawn_scoped(s, move || -> Result<(Sink, ReceiverReport)> {
                let started = (|| -> Result<Running> {
                    lab::enter(&lab.rx_ns)?;
                    Running::start(&spec.receiver)
                })();
                let mut running = match started {
                    Ok(r) => {
                        if let Some(core) = spec.seq_core {
                            pin_game_side(core);
                        }
                        let _ = ready_tx.send(Ok(()));
                        r
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow!("{e:#}")));
                        return Err(e);
                    }
                };
                let mut sink = Sink {
                    window: (0, 0),
                    latency: histogram(),
                    rx_stamp: histogram(),
                    tick_close: histogram(),
                    inputs: 0,
                    frames: 0,
                    negative: 0,
                };
                // No new input for this long while draining: the rest was dropped.
                let idle_end =
                    Duration::from_nanos(2 * tick_ns + frames_cfg.grace_ns()) + Duration::from_millis(250);
                // Bounded: the load's length plus a minute, whatever the controller does.
                let hard_stop = Instant::now() + spec.load.duration + Duration::from_secs(60);
                let mut drain: Option<(u64, Instant)> = None;
                let mut last_progress = Instant::now();
                loop {
                    // At a fast tick rate a frame comes every millisecond, empty or not: the
                    // control messages are checked after every frame, not only when idle.
                    if let Some(frame) = running.frames().next_frame(Duration::from_millis(2)) {
                        let before = sink.inputs;
                        sink.take(&frame);
                        if sink.inputs > before {
                            last_progress = Instant::now();
                        }
                    }
                    match ctl_rx.try_recv() {
                        Ok(Control::Start { window }) => sink.window = window,
                        Ok(Control::Drain { inputs, within }) => {
                            drain = Some((inputs, Instant::now() + within))
                        }
                        Err(mpsc::TryRecvError::Empty) => {}
                        Err(mpsc::TryRecvError::Disconnected) => {
                            drain.get_or_insert((0, Instant::now()));
                        }
                    }
                    // Draining ends when every input sent is in a frame, when frames stop coming
                    // (what is missing was dropped), or at the deadline.
                    if let Some((inputs, deadline)) = drain
                        && (sink.inputs >= inputs
                            || last_progress.elapsed() >= idle_end
                            || Instant::now() >= deadline)
                    {
                        break;
                    }
                    if Instant::now() >= hard_stop {
                        break;
                    }
                }
                if !running.settle(Duration::from_secs(2)) {
                    eprintln!("{}: XDP still counting packets 2 s after the load ended", spec.scenario);
                }
                let report = running.stop(|frame| sink.take(&frame))?;
                Ok((sink, report))
            })
            .context("starting the receiver thread")?;
        match ready_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                drop(ctl_tx);
                let _ = rx.join();
                bail!("{} did not start: {e}", spec.receiver.kind.name());
            }
            Err(_) => {
                drop(ctl_tx);
                let _ = rx.join();
                bail!("{} did not start within 30 s", spec.receiver.kind.name());
            }
        }
        // Let the receiver settle (first poll, first watermark) before the load starts.
        let start = clock_tai_ns() + 50_000_000;
        let duration_ns = spec.load.duration.as_nanos() as u64;
        let (warm, cool) = (spec.warmup.as_nanos() as u64, spec.cooldown.as_nanos() as u64);
        let window = if duration_ns > warm + cool + 100_000_000 {
            (start + warm, start + duration_ns - cool)
        } else {
            (start, start + duration_ns)
        };
        let _ = ctl_tx.send(Control::Start { window });
        let generator = std::thread::Builder::new()
            .name("bench-gen".into())
            .spawn_scoped(s, move || -> Result<GenReport> {
                lab::enter(&lab.tx_ns)?;
                if let Some(core) = spec.gen_core {
                    core_affinity::set_for_current(core_affinity::CoreId { id: core });
                }
                Ok(generator::run(&spec.load, start, stop)?)
            })
            .context("starting the generator thread")?;
        std::thread::sleep(Duration::from_nanos(start.saturating_sub(clock_tai_ns())));
        let others0 = kernel::other_processes();
        let napi0: u64 = napi.iter().map(|&p| kernel::task_cpu_ns(p)).sum();
        let (cores0, threads0, t0) = (kernel::core_times(), kernel::thread_times(), Instant::now());
        let gen_result = generator.join().map_err(|_| anyhow!("the generator panicked"))?;
        let (cores1, threads1, window_s) =
            (kernel::core_times(), kernel::thread_times(), t0.elapsed().as_secs_f64());
        let napi1: u64 = napi.iter().map(|&p| kernel::task_cpu_ns(p)).sum();
        let sent_inputs = gen_result.as_ref().map_or(0, |g| g.inputs);
        let within = Duration::from_nanos(2 * tick_ns + frames_cfg.grace_ns()) + Duration::from_secs(5);
        let _ = ctl_tx.send(Control::Drain { inputs: sent_inputs, within });
        let rx_result = rx.join().map_err(|_| anyhow!("the receiver thread panicked"))?;
        let gen_tid = gen_result.as_ref().map_or(0, |g| g.tid);
        let mut cpu = cpu_use(&cores0, &cores1, &threads0, &threads1, window_s, gen_tid);
        cpu.other_processes_pct = kernel::other_cpu_pct(&others0, &kernel::other_processes(), window_s);
        cpu.napi_pct = 100.0 * napi1.saturating_sub(napi0) as f64 / (window_s * 1e9).max(1.0);
        cpu.receiver_pct += cpu.napi_pct;
        Ok((rx_result, gen_result, cpu))
    })?;
    let (sink, report) = rx_result?;
    let generator = gen_result?;
    let after = Snapshot::read(lab)?;
    let kernel = KernelView {
        rx_link: after.rx_link.since(&before.rx_link),
        tx_link: after.tx_link.since(&before.tx_link),
        rx_mib: kernel::mib_since(&after.rx_mib, &before.rx_mib)
            .into_iter()
            .filter(|(_, v)| *v > 0)
            .collect(),
        softnet_dropped: after.softnet.wrapping_sub(before.softnet),
    };
    let loss = account(spec, &generator, &sink, &report, &kernel);
    let result = RunResult {
        scenario: spec.scenario.clone(),
        receiver: spec.receiver.kind,
        round: spec.round,
        tick_hz: frames_cfg.tick_hz,
        grace_us: frames_cfg.grace_us,
        offered_pps: spec.load.rate,
        latency: Summary::of(&sink.latency),
        rx_stamp: Summary::of(&sink.rx_stamp),
        tick_close: Summary::of(&sink.tick_close),
        late_pct: 100.0 * report.sequencer.late_next as f64 / sink.inputs.max(1) as f64,
        inputs_in_frames: sink.inputs,
        delivered_pps: sink.inputs as f64 / generator.elapsed_s.max(1e-9),
        frames: sink.frames,
        late_next: report.sequencer.late_next,
        negative_latencies: sink.negative,
        loss,
        cpu,
        kernel,
        receiver_report: report,
        generator,
    };
    Ok(Outcome { result, latency: sink.latency, rx_stamp: sink.rx_stamp, tick_close: sink.tick_close })
}

/// Pins the calling thread (which takes frames) and the sequencer thread to `core`.
fn pin_game_side(core: usize) {
    core_affinity::set_for_current(core_affinity::CoreId { id: core });
    for (tid, (name, _)) in kernel::thread_times() {
        if name == "tickgate-seq" {
            let _ = crate::sys::pin_thread(tid, core);
        }
    }
}

fn cpu_use(
    cores0: &[kernel::CoreTimes],
    cores1: &[kernel::CoreTimes],
    threads0: &BTreeMap<i32, (String, u64)>,
    threads1: &BTreeMap<i32, (String, u64)>,
    window_s: f64,
    gen_tid: i32,
) -> Cpu {
    let mut cpu = Cpu { window_s, cores: kernel::core_use(cores0, cores1), ..Cpu::default() };
    let window_ns = (window_s * 1e9).max(1.0);
    for (tid, (name, ns1)) in threads1 {
        let Some((name0, ns0)) = threads0.get(tid) else { continue };
        if name0 != name {
            continue;
        }
        let pct = 100.0 * ns1.saturating_sub(*ns0) as f64 / window_ns;
        if *tid == gen_tid {
            cpu.generator_pct += pct;
        } else if name.starts_with("tickgate-q") || name.starts_with("bench-sock-q") {
            cpu.worker_pct += pct;
        } else if name == "tickgate-seq" {
            cpu.sequencer_pct += pct;
        } else if name == "bench-rx" {
            cpu.consumer_pct += pct;
        }
    }
    cpu.receiver_pct = cpu.worker_pct + cpu.sequencer_pct + cpu.consumer_pct;
    cpu
}

/// Accounts for every packet sent and, where the mapping is exact, every legit input.
fn account(spec: &Spec, g: &GenReport, sink: &Sink, r: &ReceiverReport, k: &KernelView) -> Loss {
    let mut by_reason = BTreeMap::new();
    let mut add = |name: String, n: u64| {
        if n > 0 {
            *by_reason.entry(name).or_insert(0) += n;
        }
    };
    // veth counts a packet it could not queue to its peer (backlog or NAPI ring full) as the
    // sender's tx_dropped. With XDP it also counts a failed redirect (AF_XDP ring full) as the
    // receiver's rx_dropped, which the AF_XDP statistics count already: left out for tickgate.
    add("veth.tx_dropped".into(), k.tx_link.tx_dropped);
    // Live frames the receiver's ring could not take are counted on both sides (the receiver's
    // rx_dropped repeats the sender's tx_dropped): once is enough.
    let rx_dropped =
        if r.tickgate.is_some() || spec.load.path != GenPath::Skb { 0 } else { k.rx_link.rx_dropped };
    add("veth.rx_dropped".into(), rx_dropped);
    let veth = rx_dropped + k.tx_link.tx_dropped;
    let mut terminal = veth;
    let mut packet_drops = veth;
    let mut queue_balance: i64 = 0;
    for q in &r.queues {
        for (reason, &n) in &q.dropped_packets {
            add(format!("worker.{reason}"), n);
            packet_drops += if *reason == "invalid_descriptor" { 0 } else { n };
        }
        for (reason, &n) in &q.dropped_inputs {
            add(format!("input.{reason}"), n);
        }
        queue_balance += q.unexplained_packets() as i64;
    }
    let mib = |key: &str| k.rx_mib.get(key).copied().unwrap_or(0);
    match &r.tickgate {
        Some(t) => {
            let c = &t.counters;
            for (reason, &n) in &c.dropped {
                add(format!("xdp.{reason}"), n);
            }
            add("xdp.no_socket".into(), c.no_socket);
            // XDP passes the kernel's own IPv6 traffic (neighbour and multicast reports) too, and
            // ICMP: the sender's kernel answers protocol v2 keepalives that reach a flow after
            // the generator closed it with port-unreachable errors. The bench sends neither.
            let passed = c.passed.saturating_sub(mib("Ip6.InReceives") + mib("Icmp.InMsgs"));
            terminal += passed + c.no_socket + c.dropped_total();
            packet_drops += c.no_socket + c.dropped_total();
            for q in &t.queues {
                let s = &q.xdp_statistics;
                add("xsk.rx_dropped".into(), s.rx_dropped);
                add("xsk.rx_ring_full".into(), s.rx_ring_full);
                add("xsk.left_in_ring".into(), q.left_in_ring);
                let invalid = q.count(Counter::InvalidDescriptor);
                terminal += q.received + invalid + q.unread();
                packet_drops += invalid + q.unread();
            }
        }
        None => {
            let rcvbuf = mib("Udp.RcvbufErrors");
            let errors = mib("Udp.InErrors");
            add("udp.RcvbufErrors".into(), rcvbuf);
            add("udp.InErrors(other)".into(), errors.saturating_sub(rcvbuf));
            add("udp.NoPorts".into(), mib("Udp.NoPorts"));
            let ip: u64 = ["Ip.InDiscards", "Ip.InHdrErrors", "Ip.InAddrErrors", "Ip.InUnknownProtos"]
                .iter()
                .map(|key| {
                    add((*key).to_owned(), mib(key));
                    mib(key)
                })
                .sum();
            let received: u64 = r.queues.iter().map(|q| q.received).sum();
            terminal += mib("Udp.NoPorts") + errors + ip + received;
            packet_drops += errors + ip + mib("Udp.NoPorts");
        }
    }
    add("sequencer.late_dropped".into(), r.sequencer.late_dropped);
    let lost = g.inputs as i64 - sink.inputs as i64;
    let input_drops: u64 =
        r.queues.iter().flat_map(|q| q.dropped_inputs.values()).sum::<u64>() + r.sequencer.late_dropped;
    // Live frames of many copies repeat one packet: inputs and packets no longer map one to one
    // (live inputs are one copy each).
    let exact_inputs = !spec.load.junk && spec.load.redundancy <= 1 && spec.load.path != GenPath::Live;
    Loss {
        legit_inputs_lost: lost,
        legit_loss_pct: if g.inputs > 0 { 100.0 * lost as f64 / g.inputs as f64 } else { 0.0 },
        by_reason,
        unexplained_packets: g.total() as i64 - terminal as i64 + queue_balance,
        unexplained_inputs: exact_inputs.then(|| lost - packet_drops as i64 - input_drops as i64),
    }
}
