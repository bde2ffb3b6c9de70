//! Results: merged histograms per scenario and receiver, ratios, and the files of a run
//! (`report.md`, `report.json`, `.hgrm` percentile files, charts, `raw/runs.json`).

use std::{collections::BTreeMap, fmt::Write as _, fs, path::Path};

use anyhow::{Context as _, Result};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{Value, json};

use crate::{
    measure::{self, Outcome, RunResult, Summary},
    plot,
    receiver::ReceiverKind,
    sockperf::Sockperf,
};

/// The machine the run was on.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// Online CPUs.
    pub nproc: usize,
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// Kernel release.
    pub kernel: String,
    /// When the run started (UTC).
    pub date: String,
}

impl Machine {
    /// Reads the machine's description.
    pub fn describe() -> Self {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim()))
            .unwrap_or("unknown")
            .to_owned();
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned();
        let date = std::process::Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M UTC"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        Self { nproc: std::thread::available_parallelism().map_or(1, usize::from), cpu_model, kernel, date }
    }
}

/// Everything a report is made of.
#[derive(Debug)]
pub struct Run {
    /// Where it ran.
    pub machine: Machine,
    /// The exact command line.
    pub command: String,
    /// The settings (JSON of the arguments).
    pub settings: Value,
    /// Every measurement, in the order it ran.
    pub outcomes: Vec<Outcome>,
    /// The sockperf cross-check, or why it is missing.
    pub sockperf: Result<Sockperf, String>,
    /// Total wall time, seconds.
    pub wall_s: f64,
}

/// All runs of one receiver in one latency scenario, histograms merged.
struct Group<'a> {
    latency: Histogram<u64>,
    rx_stamp: Histogram<u64>,
    tick_close: Histogram<u64>,
    runs: Vec<&'a RunResult>,
}

impl Group<'_> {
    fn sum(&self, f: impl Fn(&RunResult) -> u64) -> u64 {
        self.runs.iter().map(|r| f(r)).sum()
    }
    fn mean(&self, f: impl Fn(&RunResult) -> f64) -> f64 {
        self.runs.iter().map(|r| f(r)).sum::<f64>() / self.runs.len().max(1) as f64
    }
    fn inputs_sent(&self) -> u64 {
        self.sum(|r| r.generator.inputs)
    }
    fn lost(&self) -> i64 {
        self.runs.iter().map(|r| r.loss.legit_inputs_lost).sum()
    }
    fn loss_pct(&self) -> f64 {
        100.0 * self.lost() as f64 / self.inputs_sent().max(1) as f64
    }
    fn late_pct(&self) -> f64 {
        100.0 * self.sum(|r| r.late_next) as f64 / self.sum(|r| r.inputs_in_frames).max(1) as f64
    }
    fn unexplained(&self) -> i64 {
        self.runs
            .iter()
            .map(|r| r.loss.unexplained_packets.abs() + r.loss.unexplained_inputs.unwrap_or(0).abs())
            .sum()
    }
}

/// Scenario label → receiver → group, for every scenario but the sweep, in the order the
/// scenarios ran.
type Groups<'a> = Vec<(String, BTreeMap<ReceiverKind, Group<'a>>)>;

fn groups(outcomes: &[Outcome]) -> Groups<'_> {
    let mut out: Groups<'_> = Vec::new();
    for o in outcomes.iter().filter(|o| o.result.scenario != "sweep" && !is_grace(&o.result.scenario)) {
        let at = match out.iter().position(|(s, _)| *s == o.result.scenario) {
            Some(at) => at,
            None => {
                out.push((o.result.scenario.clone(), BTreeMap::new()));
                out.len() - 1
            }
        };
        let g = out[at].1.entry(o.result.receiver).or_insert_with(|| Group {
            latency: measure::histogram(),
            rx_stamp: measure::histogram(),
            tick_close: measure::histogram(),
            runs: Vec::new(),
        });
        // Cannot fail: all histograms share the same bounds.
        let _ = g.latency.add(&o.latency);
        let _ = g.rx_stamp.add(&o.rx_stamp);
        let _ = g.tick_close.add(&o.tick_close);
        g.runs.push(&o.result);
    }
    out
}

fn is_grace(scenario: &str) -> bool {
    scenario.starts_with("grace-")
}

/// One step of the grace scenario for one receiver, over its rounds.
#[derive(Clone, Debug, Serialize)]
pub struct GracePoint {
    /// The grace, µs.
    pub grace_us: u64,
    /// Tick close of every round's frames merged, µs.
    pub tick_close_us: Summary,
    /// Late inputs (moved to the next tick), % of the inputs in frames, all rounds.
    pub late_pct: f64,
    /// Legit inputs lost, all rounds.
    pub lost: i64,
    /// Per round: (tick close p99 µs, late %).
    pub rounds: Vec<(f64, f64)>,
}

/// The grace scenario per receiver, in grace order.
fn grace_sweep(outcomes: &[Outcome]) -> BTreeMap<ReceiverKind, Vec<GracePoint>> {
    /// One step's rounds, added up.
    struct Step {
        tick_close: Histogram<u64>,
        late: u64,
        inputs: u64,
        lost: i64,
        rounds: Vec<(f64, f64)>,
    }
    let mut steps: BTreeMap<(ReceiverKind, u64), Step> = BTreeMap::new();
    for o in outcomes.iter().filter(|o| is_grace(&o.result.scenario)) {
        let r = &o.result;
        let e = steps.entry((r.receiver, r.grace_us)).or_insert_with(|| Step {
            tick_close: measure::histogram(),
            late: 0,
            inputs: 0,
            lost: 0,
            rounds: Vec::new(),
        });
        // Cannot fail: all histograms share the same bounds.
        let _ = e.tick_close.add(&o.tick_close);
        e.late += r.late_next;
        e.inputs += r.inputs_in_frames;
        e.lost += r.loss.legit_inputs_lost;
        e.rounds.push((r.tick_close.p99_us, r.late_pct));
    }
    let mut out: BTreeMap<ReceiverKind, Vec<GracePoint>> = BTreeMap::new();
    for ((kind, grace_us), step) in steps {
        out.entry(kind).or_default().push(GracePoint {
            grace_us,
            tick_close_us: Summary::of(&step.tick_close),
            late_pct: 100.0 * step.late as f64 / step.inputs.max(1) as f64,
            lost: step.lost,
            rounds: step.rounds,
        });
    }
    out
}

/// The late-rate bound of the tick close goal: ≤ 0.01 % of inputs late.
pub const GOAL_LATE_PCT: f64 = 0.01;
/// The tick close goal: p99 ≤ 100 µs.
pub const GOAL_CLOSE_P99_US: f64 = 100.0;

/// The lowest tick close p99 among the grace steps whose late rate is within [`GOAL_LATE_PCT`].
fn best_close_within_goal(points: &[GracePoint]) -> Option<&GracePoint> {
    points
        .iter()
        .filter(|p| p.late_pct <= GOAL_LATE_PCT && p.tick_close_us.count > 0)
        .min_by(|a, b| a.tick_close_us.p99_us.total_cmp(&b.tick_close_us.p99_us))
}

/// Per round, tickgate's figure over the best socket receiver's of the same round: the spread
/// of a ratio across rounds, `(min, max)`.
fn round_spread(
    by_receiver: &BTreeMap<ReceiverKind, Group<'_>>,
    tg: ReceiverKind,
    sockets: &[ReceiverKind],
    figure: impl Fn(&RunResult) -> f64,
) -> Option<(f64, f64)> {
    let t = by_receiver.get(&tg)?;
    let mut ratios = Vec::new();
    for tr in &t.runs {
        let best = sockets
            .iter()
            .filter_map(|k| by_receiver.get(k))
            .flat_map(|g| g.runs.iter().filter(|r| r.round == tr.round).map(|r| figure(r)))
            .filter(|v| *v > 0.0)
            .min_by(f64::total_cmp);
        if let Some(best) = best {
            ratios.push(figure(tr) / best);
        }
    }
    let min = ratios.iter().copied().min_by(f64::total_cmp)?;
    let max = ratios.iter().copied().max_by(f64::total_cmp)?;
    Some((min, max))
}

/// Runs of the sweep per receiver, in rate order.
fn sweep(outcomes: &[Outcome]) -> BTreeMap<ReceiverKind, Vec<&RunResult>> {
    let mut out: BTreeMap<ReceiverKind, Vec<&RunResult>> = BTreeMap::new();
    for o in outcomes.iter().filter(|o| o.result.scenario == "sweep") {
        out.entry(o.result.receiver).or_default().push(&o.result);
    }
    out
}

/// The highest offered rate with no legit input lost and nothing unexplained, and the most
/// inputs per second delivered at any step.
fn sweep_figures(runs: &[&RunResult]) -> (Option<f64>, f64) {
    let lossless = runs
        .iter()
        .filter(|r| r.loss.legit_inputs_lost == 0 && r.loss.unexplained_packets == 0)
        .map(|r| r.generator.legit_pps)
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
    let best = runs.iter().map(|r| r.delivered_pps).fold(0.0, f64::max);
    (lossless, best)
}

const SLEEPING_SOCKETS: [ReceiverKind; 3] =
    [ReceiverKind::SocketRecv, ReceiverKind::SocketEpoll, ReceiverKind::SocketRecvmmsg];
/// What tickgate-paced is held against: every sleeping socket, the paced one too.
const PACED_SOCKETS: [ReceiverKind; 4] = [
    ReceiverKind::SocketRecv,
    ReceiverKind::SocketEpoll,
    ReceiverKind::SocketRecvmmsg,
    ReceiverKind::SocketPaced,
];

/// One headline ratio.
#[derive(Clone, Debug, Serialize)]
pub struct Ratio {
    /// The scenario it comes from.
    pub scenario: String,
    /// What is compared.
    pub figure: String,
    /// The tickgate receiver.
    pub tickgate: ReceiverKind,
    /// Its value.
    pub tickgate_value: f64,
    /// The socket receiver it is compared with (the best one for this figure).
    pub socket: ReceiverKind,
    /// Its value.
    pub socket_value: f64,
    /// tickgate / socket.
    pub ratio: f64,
    /// Unit of the values.
    pub unit: String,
    /// Whether lower is better for this figure.
    pub lower_is_better: bool,
    /// The ratio round by round (each round's tickgate run against the best socket run of the
    /// same round): `[min, max]`; `None` with a single round or no per-round figure.
    pub spread: Option<[f64; 2]>,
}

fn pairings() -> [(ReceiverKind, &'static [ReceiverKind]); 3] {
    [
        (ReceiverKind::TickgateWakeup, &SLEEPING_SOCKETS),
        (ReceiverKind::TickgatePaced, &PACED_SOCKETS),
        (ReceiverKind::TickgateBusy, &[ReceiverKind::SocketSpin]),
    ]
}

fn ratios(outcomes: &[Outcome]) -> Vec<Ratio> {
    let mut out = Vec::new();
    let groups = groups(outcomes);
    type Metric = (&'static str, fn(&Summary) -> f64);
    let metrics: [Metric; 4] =
        [("p50", |s| s.p50_us), ("p99", |s| s.p99_us), ("p99.9", |s| s.p999_us), ("mean", |s| s.mean_us)];
    for (scenario, by_receiver) in &groups {
        if scenario.starts_with("ceiling") {
            continue;
        }
        for (tg, sockets) in pairings() {
            let Some(t) = by_receiver.get(&tg) else { continue };
            // Send → frame, then tick close (tick end → frame taken), each against the best
            // socket receiver for that figure, with the ratio's spread across rounds.
            type Hist = for<'g> fn(&'g Group<'_>) -> &'g Histogram<u64>;
            type PerRun = fn(&RunResult) -> &Summary;
            let figures: [(&str, Hist, PerRun); 2] = [
                ("send -> frame", |g| &g.latency, |r| &r.latency),
                ("tick close", |g| &g.tick_close, |r| &r.tick_close),
            ];
            for (label, hist, per_run) in figures {
                let ts = Summary::of(hist(t));
                if ts.count == 0 {
                    continue;
                }
                for (name, metric) in metrics {
                    let best = sockets
                        .iter()
                        .filter_map(|k| by_receiver.get(k).map(|g| (*k, metric(&Summary::of(hist(g))))))
                        .filter(|(_, v)| *v > 0.0)
                        .min_by(|a, b| a.1.total_cmp(&b.1));
                    if let Some((socket, socket_value)) = best {
                        let spread = round_spread(by_receiver, tg, sockets, |r| metric(per_run(r)))
                            .filter(|_| t.runs.len() > 1)
                            .map(|(lo, hi)| [lo, hi]);
                        out.push(Ratio {
                            scenario: scenario.clone(),
                            figure: format!("{scenario}: {name} {label}"),
                            tickgate: tg,
                            tickgate_value: metric(&ts),
                            socket,
                            socket_value,
                            ratio: metric(&ts) / socket_value,
                            unit: "µs".into(),
                            lower_is_better: true,
                            spread,
                        });
                    }
                }
            }
            if scenario.starts_with("flood") {
                let loss = sockets
                    .iter()
                    .filter_map(|k| by_receiver.get(k).map(|g| (*k, g.loss_pct())))
                    .min_by(|a, b| a.1.total_cmp(&b.1));
                if let Some((socket, socket_value)) = loss
                    && socket_value > 0.0
                {
                    out.push(Ratio {
                        scenario: scenario.clone(),
                        figure: format!("{scenario}: legit inputs lost"),
                        tickgate: tg,
                        tickgate_value: t.loss_pct(),
                        socket,
                        socket_value,
                        ratio: t.loss_pct() / socket_value,
                        unit: "%".into(),
                        lower_is_better: true,
                        spread: round_spread(by_receiver, tg, sockets, |r| r.loss.legit_loss_pct)
                            .filter(|_| t.runs.len() > 1)
                            .map(|(lo, hi)| [lo, hi]),
                    });
                }
            }
            let cpu = sockets
                .iter()
                .filter_map(|k| by_receiver.get(k).map(|g| (*k, g.mean(|r| r.cpu.receiver_pct))))
                .min_by(|a, b| a.1.total_cmp(&b.1));
            if let Some((socket, socket_value)) = cpu
                && socket_value > 0.0
            {
                let v = t.mean(|r| r.cpu.receiver_pct);
                out.push(Ratio {
                    scenario: scenario.clone(),
                    figure: format!("{scenario}: receiver CPU"),
                    tickgate: tg,
                    tickgate_value: v,
                    socket,
                    socket_value,
                    ratio: v / socket_value,
                    unit: "% of a core".into(),
                    lower_is_better: true,
                    spread: round_spread(by_receiver, tg, sockets, |r| r.cpu.receiver_pct)
                        .filter(|_| t.runs.len() > 1)
                        .map(|(lo, hi)| [lo, hi]),
                });
            }
        }
    }
    let grace = grace_sweep(outcomes);
    for (tg, sockets) in pairings() {
        let Some(t) = grace.get(&tg).and_then(|p| best_close_within_goal(p)) else { continue };
        let best = sockets
            .iter()
            .filter_map(|k| grace.get(k).and_then(|p| best_close_within_goal(p)).map(|p| (*k, p)))
            .min_by(|a, b| a.1.tick_close_us.p99_us.total_cmp(&b.1.tick_close_us.p99_us));
        if let Some((socket, s)) = best {
            out.push(Ratio {
                scenario: "grace".into(),
                figure: format!(
                    "grace: lowest p99 tick close at ≤ {GOAL_LATE_PCT} % late (grace {} / {} µs)",
                    t.grace_us, s.grace_us
                ),
                tickgate: tg,
                tickgate_value: t.tick_close_us.p99_us,
                socket,
                socket_value: s.tick_close_us.p99_us,
                ratio: t.tick_close_us.p99_us / s.tick_close_us.p99_us.max(1e-9),
                unit: "µs".into(),
                lower_is_better: true,
                spread: None,
            });
        }
    }
    let sweep = sweep(outcomes);
    for (tg, sockets) in pairings() {
        let Some(t) = sweep.get(&tg) else { continue };
        let (t_lossless, t_best) = sweep_figures(t);
        let socket_figures: Vec<(ReceiverKind, Option<f64>, f64)> = sockets
            .iter()
            .filter_map(|k| sweep.get(k).map(|runs| (*k, sweep_figures(runs))))
            .map(|(k, (l, b))| (k, l, b))
            .collect();
        if let (Some(tl), Some((socket, Some(sl), _))) = (
            t_lossless,
            socket_figures.iter().max_by(|a, b| a.1.unwrap_or(0.0).total_cmp(&b.1.unwrap_or(0.0))),
        ) {
            out.push(Ratio {
                scenario: "sweep".into(),
                figure: "sweep: highest lossless rate".into(),
                tickgate: tg,
                tickgate_value: tl,
                socket: *socket,
                socket_value: *sl,
                ratio: tl / sl,
                unit: "packets/s".into(),
                lower_is_better: false,
                spread: None,
            });
        }
        if let Some((socket, _, sb)) = socket_figures.iter().max_by(|a, b| a.2.total_cmp(&b.2))
            && *sb > 0.0
        {
            out.push(Ratio {
                scenario: "sweep".into(),
                figure: "sweep: most inputs/s delivered".into(),
                tickgate: tg,
                tickgate_value: t_best,
                socket: *socket,
                socket_value: *sb,
                ratio: t_best / sb,
                unit: "inputs/s".into(),
                lower_is_better: false,
                spread: None,
            });
        }
        // A spinning receiver's core is all worker whatever the rate: nothing to divide.
        if !tg.spins()
            && let Some((socket, rate, tv, sv)) = sockets
                .iter()
                .filter_map(|k| per_worker_core(t, sweep.get(k)?).map(|(rate, tv, sv)| (*k, rate, tv, sv)))
                .max_by(|a, b| a.3.total_cmp(&b.3))
        {
            out.push(Ratio {
                scenario: "sweep".into(),
                figure: format!("sweep: inputs/s per worker core at {}k/s (both lose ≤ 0.5 %)", rate / 1000),
                tickgate: tg,
                tickgate_value: tv,
                socket,
                socket_value: sv,
                ratio: tv / sv,
                unit: "inputs/s".into(),
                lower_is_better: false,
                spread: None,
            });
        }
    }
    out
}

/// Inputs delivered per second of the receiving threads' CPU (`delivered / worker share`), at
/// the highest offered rate at which both receivers lost at most 0.5 % and explained every
/// packet: `(rate, tickgate's, the socket's)`.
fn per_worker_core(tickgate: &[&RunResult], socket: &[&RunResult]) -> Option<(u64, f64, f64)> {
    let kept = |r: &RunResult| r.loss.legit_loss_pct <= 0.5 && r.loss.unexplained_packets == 0;
    let per_core =
        |r: &RunResult| (r.cpu.worker_pct > 0.0).then(|| r.delivered_pps / (r.cpu.worker_pct / 100.0));
    tickgate
        .iter()
        .filter(|t| kept(t))
        .filter_map(|t| {
            let rate = t.offered_pps?;
            let s = socket.iter().find(|s| s.offered_pps == Some(rate) && kept(s))?;
            Some((rate, per_core(t)?, per_core(s)?))
        })
        .max_by_key(|(rate, _, _)| *rate)
}

/// Whether a ratio's round-by-round spread reaches beyond `pct` % of the ratio on either side.
fn spread_wider_than(r: &Ratio, pct: f64) -> bool {
    let Some([lo, hi]) = r.spread else { return false };
    let (below, above) = (r.ratio * (1.0 - pct / 100.0), r.ratio * (1.0 + pct / 100.0));
    lo < below || hi > above
}

/// The scenarios with a headline ratio whose spread across rounds is wider than ±`pct` %: the
/// ones another round should be run for.
pub fn wide_scenarios(outcomes: &[Outcome], pct: f64) -> std::collections::BTreeSet<String> {
    ratios(outcomes).into_iter().filter(|r| spread_wider_than(r, pct)).map(|r| r.scenario).collect()
}

/// The HdrHistogram percentile distribution text (`.hgrm`), values in milliseconds.
pub fn hgrm(h: &Histogram<u64>) -> String {
    let ms = |ns: f64| ns / 1e6;
    let mut s =
        format!("{:>12} {:>14} {:>10} {:>14}\n\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)");
    let mut total = 0u64;
    for v in h.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let q = v.quantile_iterated_to();
        let value = ms(v.value_iterated_to() as f64);
        if q < 1.0 {
            let _ = writeln!(s, "{value:12.3} {q:2.12} {total:10} {:14.2}", 1.0 / (1.0 - q));
        } else {
            let _ = writeln!(s, "{value:12.3} {q:2.12} {total:10}");
        }
    }
    let _ = writeln!(
        s,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        ms(if h.is_empty() { 0.0 } else { h.mean() }),
        ms(if h.is_empty() { 0.0 } else { h.stdev() })
    );
    let _ = writeln!(s, "#[Max     = {:12.3}, Total count    = {:12}]", ms(h.max() as f64), h.len());
    let _ = writeln!(s, "#[Buckets = {:12}, SubBuckets     = {:12}]", h.buckets(), h.distinct_values());
    s
}

fn us(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1} ms", v / 1000.0)
    } else if v >= 1000.0 {
        format!("{:.2} ms", v / 1000.0)
    } else {
        format!("{v:.0} µs")
    }
}

/// The watermark slack the receiver's queues ended the run with.
fn slack_text(r: &RunResult) -> String {
    let slacks: Vec<String> =
        r.receiver_report.queues.iter().map(|q| format!("{} µs", q.watermark_slack_us)).collect();
    slacks.join(", ")
}

fn compact(r: &RunResult) -> Value {
    json!({
        "scenario": r.scenario, "receiver": r.receiver, "round": r.round,
        "tick_hz": r.tick_hz, "grace_us": r.grace_us, "offered_pps": r.offered_pps,
        "generator": {
            "legit_packets": r.generator.legit_packets, "legit_live_frames": r.generator.legit_live_frames,
            "inputs": r.generator.inputs,
            "junk_game_port": r.generator.junk_game_port, "junk_other_port": r.generator.junk_other_port,
            "legit_pps": r.generator.legit_pps, "total_pps": r.generator.total_pps,
            "late_sends": r.generator.late_sends, "send_errors": r.generator.send_errors,
            "size": [r.generator.size_min, r.generator.size_max],
        },
        "latency_us": r.latency, "rx_stamp_us": r.rx_stamp, "tick_close_us": r.tick_close, "late_pct": r.late_pct,
        "inputs_in_frames": r.inputs_in_frames, "delivered_pps": r.delivered_pps,
        "frames": r.frames, "late_next": r.late_next, "negative_latencies": r.negative_latencies,
        "loss": r.loss,
        "cpu": r.cpu,
    })
}

fn scenario_note(r: &RunResult) -> String {
    let rate = r.offered_pps.map_or("max rate".to_owned(), |p| format!("{p} pps"));
    let junk = if r.generator.junk_game_port + r.generator.junk_other_port > 0 {
        let pace =
            if r.scenario.contains("-junk") { "at a fixed rate" } else { "at the generator's full speed" };
        let ports = if r.generator.junk_other_port > 0 {
            "half bad magic to the game port, half to another port"
        } else {
            "all bad magic to the game port"
        };
        format!(
            " + junk {pace} ({:.0} pps achieved in the first run, {ports})",
            (r.generator.junk_game_port + r.generator.junk_other_port) as f64 / r.generator.elapsed_s
        )
    } else {
        String::new()
    };
    format!(
        "{rate} legit, {}-{} B UDP payload{junk}; {} Hz ticks, grace {} µs",
        r.generator.size_min, r.generator.size_max, r.tick_hz, r.grace_us
    )
}

/// Removes the files an earlier run wrote into `dir` (and only those), so that a scenario left
/// out this time leaves no stale chart behind.
fn clean(dir: &Path) {
    for sub in ["hgrm", "raw"] {
        let _ = fs::remove_dir_all(dir.join(sub));
    }
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = name == "report.md"
            || name == "report.json"
            || ((name.starts_with("latency-") || name.starts_with("sweep."))
                && (name.ends_with(".svg") || name.ends_with(".png")));
        if ours {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Writes every file of the run into `dir` and returns the paths written.
pub fn write(dir: &Path, run: &Run, png: bool) -> Result<Vec<String>> {
    clean(dir);
    fs::create_dir_all(dir.join("hgrm")).with_context(|| format!("creating {}", dir.display()))?;
    fs::create_dir_all(dir.join("raw"))?;
    let mut written = Vec::new();
    let mut notes = Vec::new();
    let groups = groups(&run.outcomes);
    let sweep = sweep(&run.outcomes);
    let grace = grace_sweep(&run.outcomes);
    let ratios = ratios(&run.outcomes);

    for (scenario, by_receiver) in &groups {
        for (kind, g) in by_receiver {
            if g.latency.is_empty() {
                continue;
            }
            let path = dir.join("hgrm").join(format!("{scenario}.{}.hgrm", kind.name()));
            fs::write(&path, hgrm(&g.latency))?;
            // The receive-stamp distribution is for the sockperf cross-check: seed only.
            if scenario.starts_with("seed") {
                let path = dir.join("hgrm").join(format!("{scenario}.{}.rx-stamp.hgrm", kind.name()));
                fs::write(&path, hgrm(&g.rx_stamp))?;
            }
        }
        written.push(format!("{}/hgrm/{scenario}.*.hgrm", dir.display()));
        if scenario.starts_with("ceiling") {
            continue;
        }
        let series: Vec<(ReceiverKind, &Histogram<u64>)> =
            by_receiver.iter().map(|(k, g)| (*k, &g.latency)).collect();
        let title = by_receiver.values().next().and_then(|g| g.runs.first()).map_or(String::new(), |r| {
            format!("{scenario}: {} pps, {} Hz ticks, send -> frame", r.offered_pps.unwrap_or(0), r.tick_hz)
        });
        let svg = plot::latency_svg(&title, &series)?;
        let path = dir.join(format!("latency-{scenario}.svg"));
        if let Some(note) = plot::write(&path, &svg, png)? {
            notes.push(note);
        }
        written.push(path.display().to_string());
    }
    let ceiling = |name: &str| {
        groups.iter().find(|(s, _)| s == name).and_then(|(_, g)| g.values().next()).map(|g| {
            g.mean(|r| {
                r.receiver_report
                    .tickgate
                    .as_ref()
                    .map_or(0.0, |t| t.counters.rx_packets as f64 / r.generator.elapsed_s)
            })
        })
    };
    let ceiling_pps = ceiling("ceiling");
    let ceiling_live_pps = ceiling("ceiling-live");
    if !sweep.is_empty() {
        let series: Vec<(ReceiverKind, Vec<(f64, f64)>)> = sweep
            .iter()
            .map(|(k, runs)| {
                (*k, runs.iter().map(|r| (r.generator.legit_pps, r.delivered_pps.max(1.0))).collect())
            })
            .collect();
        let svg = plot::sweep_svg("sweep: delivered vs offered", &series, ceiling_pps)?;
        let path = dir.join("sweep.svg");
        if let Some(note) = plot::write(&path, &svg, png)? {
            notes.push(note);
        }
        written.push(path.display().to_string());
    }
    if !grace.is_empty() {
        let series: Vec<(ReceiverKind, Vec<plot::GraceStep>)> = grace
            .iter()
            .map(|(k, points)| {
                let steps = points.iter().map(|p| plot::GraceStep {
                    p99_us: p.tick_close_us.p99_us,
                    late_pct: p.late_pct,
                    grace_us: p.grace_us,
                });
                (*k, steps.collect())
            })
            .collect();
        let tick_hz =
            run.outcomes.iter().find(|o| is_grace(&o.result.scenario)).map_or(0, |o| o.result.tick_hz);
        let svg = plot::grace_svg(
            &format!("grace sweep at {tick_hz} Hz: late inputs against tick close"),
            &series,
            (GOAL_CLOSE_P99_US, GOAL_LATE_PCT),
        )?;
        let path = dir.join("grace.svg");
        if let Some(note) = plot::write(&path, &svg, png)? {
            notes.push(note);
        }
        written.push(path.display().to_string());
    }
    notes.dedup();

    let raw: Vec<&RunResult> = run.outcomes.iter().map(|o| &o.result).collect();
    let path = dir.join("raw").join("runs.json");
    fs::write(&path, serde_json::to_vec_pretty(&raw)?)?;

    let mut scenarios = serde_json::Map::new();
    for (scenario, by_receiver) in &groups {
        let mut receivers = serde_json::Map::new();
        for (kind, g) in by_receiver {
            receivers.insert(
                kind.name().into(),
                json!({
                    "latency_us": Summary::of(&g.latency),
                    "rx_stamp_us": Summary::of(&g.rx_stamp),
                    "tick_close_us": Summary::of(&g.tick_close),
                    "late_pct": g.late_pct(),
                    "inputs_sent": g.inputs_sent(),
                    "inputs_lost": g.lost(),
                    "loss_pct": g.loss_pct(),
                    "unexplained": g.unexplained(),
                    "receiver_cpu_pct": g.mean(|r| r.cpu.receiver_pct),
                    "runs": g.runs.iter().map(|r| compact(r)).collect::<Vec<_>>(),
                }),
            );
        }
        scenarios.insert(scenario.clone(), Value::Object(receivers));
    }
    let sweep_json: serde_json::Map<String, Value> = sweep
        .iter()
        .map(|(k, runs)| {
            let (lossless, best) = sweep_figures(runs);
            (
                k.name().to_owned(),
                json!({
                    "highest_lossless_pps": lossless,
                    "most_delivered_pps": best,
                    "steps": runs.iter().map(|r| compact(r)).collect::<Vec<_>>(),
                }),
            )
        })
        .collect();
    let report = json!({
        "machine": run.machine,
        "command": run.command,
        "settings": run.settings,
        "wall_s": run.wall_s,
        "ratios": ratios,
        "scenarios": scenarios,
        "sweep": sweep_json,
        "grace": grace.iter().map(|(k, p)| (k.name().to_owned(), json!(p))).collect::<serde_json::Map<_, _>>(),
        "ceiling_pps": ceiling_pps,
        "ceiling_live_pps": ceiling_live_pps,
        "sockperf": match &run.sockperf { Ok(s) => json!(s), Err(e) => json!({ "error": e }) },
        "notes": notes,
    });
    let path = dir.join("report.json");
    fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
    written.push(path.display().to_string());

    let path = dir.join("report.md");
    fs::write(&path, markdown(run, &groups, &sweep, &grace, &ratios, ceiling_pps, &notes))?;
    written.push(path.display().to_string());
    Ok(written)
}

fn markdown(
    run: &Run,
    groups: &Groups<'_>,
    sweep: &BTreeMap<ReceiverKind, Vec<&RunResult>>,
    grace: &BTreeMap<ReceiverKind, Vec<GracePoint>>,
    ratios: &[Ratio],
    ceiling_pps: Option<f64>,
    notes: &[String],
) -> String {
    let mut md = String::new();
    let m = &run.machine;
    let _ = writeln!(md, "# tickgate-bench results\n");
    let _ = writeln!(
        md,
        "- machine: {} CPUs, {}, kernel {}\n- date: {}, {:.0} s wall time\n- command: `{}`\n",
        m.nproc, m.cpu_model, m.kernel, m.date, run.wall_s, run.command
    );
    let _ = writeln!(md, "## Headline: tickgate / socket\n");
    let _ = writeln!(
        md,
        "Each tickgate receiver against the best socket receiver of its kind for that figure \
         (wakeup against the best of recv, epoll and recvmmsg; paced against the best of those and socket-paced; busy-poll against the spinning socket). \
         Latency and CPU: below 1 means tickgate is lower. Throughput: above 1 means tickgate is higher. \
         Spread: the same ratio round by round (each round's tickgate run against the best socket run of that round).\n"
    );
    let setting = |k: &str| run.settings.get(k).map_or("?".to_owned(), ToString::to_string);
    let _ = writeln!(
        md,
        "Rounds: {} per scenario, and more (up to {} in all) for a scenario while one of its ratios spread wider \
         than ±{} % across rounds; the spread column shows what remained.\n",
        setting("rounds"),
        setting("max_rounds"),
        setting("spread_target_pct")
    );
    let _ = writeln!(
        md,
        "| figure | tickgate | value | socket | value | tickgate / socket | spread across rounds |"
    );
    let _ = writeln!(md, "|---|---|---:|---|---:|---:|---:|");
    for r in ratios {
        let fmt = |v: f64| match r.unit.as_str() {
            "µs" => us(v),
            "% of a core" => format!("{v:.1} %"),
            "%" => format!("{v:.2} %"),
            _ => format!("{:.0}k", v / 1e3),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | **{:.2}** | {} |",
            r.figure,
            r.tickgate.name(),
            fmt(r.tickgate_value),
            r.socket.name(),
            fmt(r.socket_value),
            r.ratio,
            r.spread.map_or("".to_owned(), |[lo, hi]| format!("{lo:.2}–{hi:.2}"))
        );
    }
    for (scenario, by_receiver) in groups {
        let Some(first) = by_receiver.values().next().and_then(|g| g.runs.first()) else { continue };
        let _ = writeln!(md, "\n## {scenario}\n\n{}\n", scenario_note(first));
        if scenario.starts_with("ceiling") {
            let _ = writeln!(
                md,
                "| round | generator pps | XDP rx pps | dropped rate_limited | other drops | steered | unexplained | NAPI CPU | hook capacity (rx pps / NAPI share) |"
            );
            let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
            for g in by_receiver.values() {
                for r in &g.runs {
                    let t = r.receiver_report.tickgate.as_ref();
                    let rx = t.map_or(0, |t| t.counters.rx_packets);
                    let limited =
                        t.and_then(|t| t.counters.dropped.get("rate_limited").copied()).unwrap_or(0);
                    let other: Vec<String> = r
                        .loss
                        .by_reason
                        .iter()
                        .filter(|(k, _)| k.as_str() != "xdp.rate_limited")
                        .map(|(k, v)| format!("{k} {v}"))
                        .collect();
                    let _ = writeln!(
                        md,
                        "| {} | {:.0} | {:.0} | {} | {} | {} | {} | {:.0} % | {} |",
                        r.round,
                        r.generator.total_pps,
                        rx as f64 / r.generator.elapsed_s,
                        limited,
                        if other.is_empty() { "none".to_owned() } else { other.join(", ") },
                        t.map_or(0, |t| t.counters.steered),
                        r.loss.unexplained_packets,
                        r.cpu.napi_pct,
                        if r.cpu.napi_pct > 1.0 {
                            format!("{:.0}", rx as f64 / r.generator.elapsed_s / (r.cpu.napi_pct / 100.0))
                        } else {
                            "n/a (threaded NAPI off)".to_owned()
                        },
                    );
                }
            }
            continue;
        }
        let _ = writeln!(
            md,
            "| receiver | inputs | p50 | p90 | p99 | p99.9 | max | lost | lost by round | junk pps | unexplained | late→next | rx stamp p50 / p99 | CPU total | NAPI | worker | sequencer | other processes |"
        );
        let _ = writeln!(
            md,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for (kind, g) in by_receiver {
            let s = Summary::of(&g.latency);
            let st = Summary::of(&g.rx_stamp);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} ({:.2} %) | {} | {:.0} | {} | {} | {} / {} | {:.0} % | {:.0} % | {:.0} % | {:.0} % | {:.0} % |",
                kind.name(),
                g.sum(|r| r.inputs_in_frames),
                us(s.p50_us),
                us(s.p90_us),
                us(s.p99_us),
                us(s.p999_us),
                us(s.max_us),
                g.lost(),
                g.loss_pct(),
                g.runs
                    .iter()
                    .map(|r| format!("{:.2} %", r.loss.legit_loss_pct))
                    .collect::<Vec<_>>()
                    .join(" / "),
                g.mean(|r| (r.generator.junk_game_port + r.generator.junk_other_port) as f64
                    / r.generator.elapsed_s),
                g.unexplained(),
                g.sum(|r| r.late_next),
                us(st.p50_us),
                us(st.p99_us),
                g.mean(|r| r.cpu.receiver_pct),
                g.mean(|r| r.cpu.napi_pct),
                g.mean(|r| r.cpu.worker_pct),
                g.mean(|r| r.cpu.sequencer_pct),
                g.mean(|r| r.cpu.other_processes_pct),
            );
        }
        let mut reasons: BTreeMap<(ReceiverKind, &str), u64> = BTreeMap::new();
        for (kind, g) in by_receiver {
            for r in &g.runs {
                for (reason, n) in &r.loss.by_reason {
                    *reasons.entry((*kind, reason.as_str())).or_default() += n;
                }
            }
        }
        if !reasons.is_empty() {
            let _ = writeln!(md, "\nDrops by reason (all traffic, all rounds):\n");
            for (kind, g) in by_receiver {
                let _ = g;
                let list: Vec<String> = reasons
                    .iter()
                    .filter(|((k, _), _)| k == kind)
                    .map(|((_, r), n)| format!("{r} {n}"))
                    .collect();
                if !list.is_empty() {
                    let _ = writeln!(md, "- {}: {}", kind.name(), list.join(", "));
                }
            }
        }
        let _ = writeln!(
            md,
            "\nTick close (tick end → frame taken by the game's thread, every frame whose tick ended in the window) \
             and late inputs (sealed out of their tick, moved to the next):\n"
        );
        let _ = writeln!(
            md,
            "| receiver | frames | p50 | p99 | p99.9 | max | late inputs | watermark slack (last run) |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|");
        for (kind, g) in by_receiver {
            let s = Summary::of(&g.tick_close);
            let slack = g.runs.last().map_or(String::new(), |r| slack_text(r));
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {:.4} % | {} |",
                kind.name(),
                s.count,
                us(s.p50_us),
                us(s.p99_us),
                us(s.p999_us),
                us(s.max_us),
                g.late_pct(),
                slack
            );
        }
        let _ = writeln!(md, "\n![{scenario}](latency-{scenario}.svg)");
    }
    if !sweep.is_empty() {
        let _ = writeln!(md, "\n## sweep\n");
        if let Some(c) = ceiling_pps {
            let _ = writeln!(md, "XDP ceiling of this lab (from `ceiling`): {:.0} packets/s.\n", c);
        }
        let _ = writeln!(
            md,
            "| receiver | highest lossless rate | highest rate losing ≤ 0.5 % | most inputs/s delivered |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|");
        for (kind, runs) in sweep {
            let (lossless, best) = sweep_figures(runs);
            let nearly = runs
                .iter()
                .filter(|r| r.loss.legit_loss_pct <= 0.5 && r.loss.unexplained_packets == 0)
                .map(|r| r.generator.legit_pps)
                .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.0} |",
                kind.name(),
                lossless.map_or("none".to_owned(), |l| format!("{l:.0}")),
                nearly.map_or("none".to_owned(), |l| format!("{l:.0}")),
                best
            );
        }
        let _ = writeln!(
            md,
            "\n| receiver | offered | achieved | delivered | lost | unexplained | p50 | p99 | CPU total | NAPI | worker | other processes | drops |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        for (kind, runs) in sweep {
            for r in runs {
                let drops: Vec<String> = r.loss.by_reason.iter().map(|(k, v)| format!("{k} {v}")).collect();
                let _ = writeln!(
                    md,
                    "| {} | {} | {:.0} | {:.0} | {:.2} % | {} | {} | {} | {:.0} % | {:.0} % | {:.0} % | {:.0} % | {} |",
                    kind.name(),
                    r.offered_pps.map_or("max".to_owned(), |p| p.to_string()),
                    r.generator.legit_pps,
                    r.delivered_pps,
                    r.loss.legit_loss_pct,
                    r.loss.unexplained_packets,
                    us(r.latency.p50_us),
                    us(r.latency.p99_us),
                    r.cpu.receiver_pct,
                    r.cpu.napi_pct,
                    r.cpu.worker_pct,
                    r.cpu.other_processes_pct,
                    drops.join(", ")
                );
            }
        }
        let _ = writeln!(md, "\n![sweep](sweep.svg)");
    }
    if !grace.is_empty() {
        let _ = writeln!(
            md,
            "\n## grace\n\nThe seed load at the fast tick rate with each grace in turn. A tick seals when every \
             queue's watermark (now − slack) passes its end + grace; tick close is what the game waits after the \
             tick ends, late inputs what sealing early costs. Goal: tick close p99 ≤ {GOAL_CLOSE_P99_US} µs with ≤ {GOAL_LATE_PCT} % late.\n"
        );
        let _ = writeln!(
            md,
            "| receiver | grace | tick close p50 | p99 | p99.9 | late inputs | lost | p99 / late by round |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---|");
        for (kind, points) in grace {
            for p in points {
                let rounds: Vec<String> =
                    p.rounds.iter().map(|(p99, late)| format!("{} / {late:.3} %", us(*p99))).collect();
                let _ = writeln!(
                    md,
                    "| {} | {} µs | {} | {} | {} | {:.4} % | {} | {} |",
                    kind.name(),
                    p.grace_us,
                    us(p.tick_close_us.p50_us),
                    us(p.tick_close_us.p99_us),
                    us(p.tick_close_us.p999_us),
                    p.late_pct,
                    p.lost,
                    rounds.join(", ")
                );
            }
        }
        let _ = writeln!(md, "\n| receiver | lowest p99 tick close at ≤ {GOAL_LATE_PCT} % late | at grace |");
        let _ = writeln!(md, "|---|---:|---:|");
        for (kind, points) in grace {
            match best_close_within_goal(points) {
                Some(p) => {
                    let _ = writeln!(
                        md,
                        "| {} | {} | {} µs |",
                        kind.name(),
                        us(p.tick_close_us.p99_us),
                        p.grace_us
                    );
                }
                None => {
                    let _ = writeln!(md, "| {} | not reached | |", kind.name());
                }
            }
        }
        let _ = writeln!(md, "\n![grace](grace.svg)");
    }
    match &run.sockperf {
        Ok(s) => {
            let p = |k: &str| s.percentiles_us.get(k).copied().unwrap_or(f64::NAN);
            let _ = writeln!(
                md,
                "\n## sockperf cross-check\n\n`sockperf ping-pong` over kernel UDP in the same lab, {} msg/s, {} B, {} s, \
                 pinned like the bench (client on the generator core, server on the receiver core). One-way latency \
                 (RTT/2): mean {}, p50 {}, p90 {}, p99 {}, p99.9 {}, max {} ({} observations, {} dropped). \
                 Compare with the socket receivers' `rx stamp` column of `seed`.\n",
                s.mps,
                s.msg_size,
                s.seconds,
                us(s.avg_us),
                us(p("50.000")),
                us(p("90.000")),
                us(p("99.000")),
                us(p("99.900")),
                us(p("max")),
                s.observations,
                s.dropped
            );
        }
        Err(e) => {
            let _ = writeln!(md, "\n## sockperf cross-check\n\nnot run: {e}\n");
        }
    }
    for note in notes {
        let _ = writeln!(md, "\nNote: {note}");
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ratio(ratio: f64, spread: Option<[f64; 2]>) -> Ratio {
        Ratio {
            scenario: "seed".into(),
            figure: "seed: p50 send -> frame".into(),
            tickgate: ReceiverKind::TickgateWakeup,
            tickgate_value: ratio,
            socket: ReceiverKind::SocketRecv,
            socket_value: 1.0,
            ratio,
            unit: "µs".into(),
            lower_is_better: true,
            spread,
        }
    }

    #[test]
    fn a_spread_is_wide_when_a_round_strays_more_than_the_target_either_way() {
        assert!(!spread_wider_than(&ratio(1.0, None), 10.0), "one round has no spread");
        assert!(!spread_wider_than(&ratio(1.0, Some([0.95, 1.08])), 10.0));
        assert!(spread_wider_than(&ratio(1.0, Some([0.89, 1.0])), 10.0));
        assert!(spread_wider_than(&ratio(1.0, Some([1.0, 1.11])), 10.0));
        assert!(!spread_wider_than(&ratio(0.5, Some([0.46, 0.54])), 10.0));
        assert!(spread_wider_than(&ratio(0.5, Some([0.44, 0.5])), 10.0));
    }
}
