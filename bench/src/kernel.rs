//! Kernel counters read around each measurement: veth statistics, the receiver namespace's IP
//! and UDP MIB (`/proc/net/snmp`), softnet backlog drops, and CPU time per core and per thread.

use std::{collections::BTreeMap, fs, process::Command};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

/// One interface's packet counters.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct LinkStats {
    /// Packets received.
    pub rx_packets: u64,
    /// Received packets dropped by the driver (veth: peer ring or backlog full).
    pub rx_dropped: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Packets the driver dropped on transmit.
    pub tx_dropped: u64,
}

impl LinkStats {
    /// Counter increase from `before` to `self`.
    pub fn since(&self, before: &Self) -> Self {
        Self {
            rx_packets: self.rx_packets.wrapping_sub(before.rx_packets),
            rx_dropped: self.rx_dropped.wrapping_sub(before.rx_dropped),
            tx_packets: self.tx_packets.wrapping_sub(before.tx_packets),
            tx_dropped: self.tx_dropped.wrapping_sub(before.tx_dropped),
        }
    }
}

/// `ip -s -j -n NS link show dev IF`.
pub fn link_stats(ns: &str, ifname: &str) -> Result<LinkStats> {
    let out = Command::new("ip")
        .args(["-s", "-j", "-n", ns, "link", "show", "dev", ifname])
        .output()
        .context("running 'ip' (install iproute2)")?;
    if !out.status.success() {
        bail!("ip -n {ns} link show {ifname}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("parsing 'ip -j' output")?;
    let s = &v[0]["stats64"];
    let get = |dir: &str, k: &str| s[dir][k].as_u64().unwrap_or(0);
    Ok(LinkStats {
        rx_packets: get("rx", "packets"),
        rx_dropped: get("rx", "dropped"),
        tx_packets: get("tx", "packets"),
        tx_dropped: get("tx", "dropped"),
    })
}

/// The `Ip:` and `Udp:` counters of a namespace (`/proc/thread-self/net/snmp`).
pub type Mib = BTreeMap<String, u64>;

/// Reads the MIB of the calling thread's network namespace.
pub fn snmp() -> Result<Mib> {
    let text =
        fs::read_to_string("/proc/thread-self/net/snmp").context("reading /proc/thread-self/net/snmp")?;
    let mut mib = Mib::new();
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.chunks(2) {
        let [names, values] = pair else { continue };
        let Some((proto, names)) = names.split_once(':') else { continue };
        if proto != "Ip" && proto != "Udp" && proto != "Icmp" {
            continue;
        }
        let values = values.split_once(':').map_or("", |(_, v)| v);
        for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
            if let Ok(v) = v.parse::<i64>() {
                mib.insert(format!("{proto}.{n}"), v.max(0) as u64);
            }
        }
    }
    Ok(mib)
}

/// Increase of every counter of `after` over `before`.
pub fn mib_since(after: &Mib, before: &Mib) -> Mib {
    after.iter().map(|(k, v)| (k.clone(), v.wrapping_sub(before.get(k).copied().unwrap_or(0)))).collect()
}

/// Packets dropped because a CPU's input backlog was full (`/proc/net/softnet_stat`, all CPUs).
pub fn softnet_dropped() -> u64 {
    fs::read_to_string("/proc/net/softnet_stat")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|h| u64::from_str_radix(h, 16).ok())
        .sum()
}

/// CPU time of one core, in clock ticks, from `/proc/stat`.
#[derive(Clone, Copy, Debug, Default)]
pub struct CoreTimes {
    user: u64,
    system: u64,
    idle: u64,
    irq: u64,
    softirq: u64,
    total: u64,
    /// Entries into an idle state that stops the core (every cpuidle state but `POLL`).
    halts: u64,
}

/// Every core's times.
pub fn core_times() -> Vec<CoreTimes> {
    let text = fs::read_to_string("/proc/stat").unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            let mut words = l.split_whitespace();
            let core = words.next().and_then(|w| w.strip_prefix("cpu")).and_then(|n| n.parse().ok());
            let f: Vec<u64> = words.filter_map(|x| x.parse().ok()).collect();
            let at = |i: usize| f.get(i).copied().unwrap_or(0);
            // user nice system idle iowait irq softirq steal
            CoreTimes {
                user: at(0) + at(1),
                system: at(2),
                idle: at(3) + at(4),
                irq: at(5),
                softirq: at(6),
                total: f.iter().take(8).sum(),
                halts: core.map_or(0, halts),
            }
        })
        .collect()
}

/// Times `core` entered an idle state that stops it (cpuidle's states but `POLL`, where the idle
/// loop spins); 0 without cpuidle.
fn halts(core: usize) -> u64 {
    let Ok(states) = fs::read_dir(format!("/sys/devices/system/cpu/cpu{core}/cpuidle")) else { return 0 };
    states
        .flatten()
        .filter(|state| fs::read_to_string(state.path().join("name")).is_ok_and(|n| n.trim() != "POLL"))
        .filter_map(|state| fs::read_to_string(state.path().join("usage")).ok()?.trim().parse::<u64>().ok())
        .sum()
}

/// While it lives, no core halts when idle: it holds a CPU latency QoS request of 0 µs
/// (`/dev/cpu_dma_latency`, dropped when the file closes), so cpuidle picks its `POLL` state and
/// the idle loop spins, woken at once, instead of halting (a VM's halted vCPU wakes late). No
/// thread runs for it: the scheduler sees an idle core.
#[derive(Debug)]
pub struct NoHalt {
    /// Held open: the request lasts as long as the file.
    _request: fs::File,
}

impl NoHalt {
    /// Errors if no cpuidle driver chooses the idle states (nothing to keep from halting then)
    /// or the request cannot be made (needs root).
    pub fn hold() -> Result<Self> {
        let driver = fs::read_to_string("/sys/devices/system/cpu/cpuidle/current_driver").unwrap_or_default();
        let driver = driver.trim();
        if driver.is_empty() || driver == "none" {
            bail!("no cpuidle driver: the idle cores cannot be made to poll instead of halting");
        }
        let mut file = fs::OpenOptions::new()
            .write(true)
            .open("/dev/cpu_dma_latency")
            .context("opening /dev/cpu_dma_latency (needs root)")?;
        std::io::Write::write_all(&mut file, &0i32.to_ne_bytes())
            .context("asking /dev/cpu_dma_latency for 0 µs")?;
        Ok(Self { _request: file })
    }
}

/// What one core did during a window, in percent of the window.
#[derive(Clone, Debug, Serialize)]
pub struct CoreUse {
    /// Core number.
    pub core: usize,
    /// Not idle.
    pub busy_pct: f64,
    /// User time.
    pub user_pct: f64,
    /// System time.
    pub system_pct: f64,
    /// Softirq time: where veth runs XDP and the kernel UDP receive path.
    pub softirq_pct: f64,
    /// Times the core halted when idle (cpuidle states but `POLL`).
    pub halts: u64,
}

/// Per-core use between two snapshots.
pub fn core_use(before: &[CoreTimes], after: &[CoreTimes]) -> Vec<CoreUse> {
    before
        .iter()
        .zip(after)
        .enumerate()
        .map(|(core, (b, a))| {
            let total = a.total.saturating_sub(b.total).max(1) as f64;
            let pct = |x: u64, y: u64| 100.0 * x.saturating_sub(y) as f64 / total;
            CoreUse {
                core,
                busy_pct: 100.0 - pct(a.idle, b.idle),
                user_pct: pct(a.user, b.user),
                system_pct: pct(a.system + a.irq, b.system + b.irq),
                softirq_pct: pct(a.softirq, b.softirq),
                halts: a.halts.saturating_sub(b.halts),
            }
        })
        .collect()
}

/// CPU time (ns, from `schedstat`) of every thread of this process, by thread id, with its name.
pub fn thread_times() -> BTreeMap<i32, (String, u64)> {
    let mut out = BTreeMap::new();
    let Ok(dir) = fs::read_dir("/proc/self/task") else { return out };
    for entry in dir.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let path = entry.path();
        let name = fs::read_to_string(path.join("comm")).unwrap_or_default().trim().to_owned();
        let ns = fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
            .unwrap_or(0);
        out.insert(tid, (name, ns));
    }
    out
}

/// CPU time (clock ticks) of every other user-space process on the machine, by pid: what else
/// ran while the bench measured (kernel threads, whose parent is kthreadd, are left out: they
/// include the softirq threads that carry the lab's packets).
pub fn other_processes() -> BTreeMap<u32, u64> {
    let me = std::process::id();
    let mut out = BTreeMap::new();
    let Ok(dir) = fs::read_dir("/proc") else { return out };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if pid == me || pid == 2 {
            continue;
        }
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else { continue };
        // The command name may hold spaces and parentheses: fields start after the last ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        let f: Vec<&str> = rest.split_whitespace().collect();
        // f[0] state, f[1] ppid, ..., f[11] utime, f[12] stime
        if f.get(1) == Some(&"2") {
            continue;
        }
        let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
        out.insert(pid, ticks(11) + ticks(12));
    }
    out
}

/// Percent of one core the other processes used between two snapshots `window_s` apart
/// (processes that ended in between are missed: a lower bound).
pub fn other_cpu_pct(before: &BTreeMap<u32, u64>, after: &BTreeMap<u32, u64>, window_s: f64) -> f64 {
    let ticks: u64 =
        after.iter().map(|(pid, t)| t.saturating_sub(before.get(pid).copied().unwrap_or(0))).sum();
    100.0 * ticks as f64 / crate::sys::clock_ticks_per_second() as f64 / window_s.max(1e-3)
}

/// Samples the other processes' CPU use over `window`.
pub fn other_cpu_now(window: std::time::Duration) -> f64 {
    let before = other_processes();
    std::thread::sleep(window);
    other_cpu_pct(&before, &other_processes(), window.as_secs_f64())
}

fn run(args: &[&str]) -> Result<()> {
    let out =
        Command::new(args[0]).args(&args[1..]).output().with_context(|| format!("running {}", args[0]))?;
    if !out.status.success() {
        bail!("'{}' failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Moves the receive side of the lab off the sender's core, as a NIC would: GRO on the receiver
/// veth keeps its NAPI instance alive with or without XDP, `threaded` runs that NAPI in a kernel
/// thread (the caller pins it), and TSO off on the sender lets its locally sent UDP take that
/// NAPI path too (veth only queues a packet to NAPI when TSO is off on the sender or the
/// receiver forwards UDP GRO). Without this, veth runs XDP and the whole kernel receive path in
/// the sender's softirq, on the generator's core.
pub fn threaded_napi(tx_ns: &str, tx_if: &str, rx_ns: &str, rx_if: &str) -> Result<()> {
    run(&["ip", "netns", "exec", tx_ns, "ethtool", "-K", tx_if, "tso", "off"])?;
    run(&["ip", "netns", "exec", rx_ns, "ethtool", "-K", rx_if, "gro", "on"])?;
    // `ip netns exec` mounts the namespace's own sysfs, where the receiver veth is visible.
    let threaded = format!("echo 1 > /sys/class/net/{rx_if}/threaded");
    run(&["ip", "netns", "exec", rx_ns, "sh", "-c", &threaded])
}

/// Software interrupt coalescing on `rx_if`: after a poll that found packets its NAPI stays
/// masked for `count` empty rounds of `timeout_ns` each, polled by its timer or by a busy-polling
/// socket, instead of being scheduled by every packet the peer sends (the kernel's
/// `napi_defer_hard_irqs` and `gro_flush_timeout`, Documentation/networking/napi.rst).
pub fn napi_defer(rx_ns: &str, rx_if: &str, count: u32, timeout_ns: u64) -> Result<()> {
    let write = format!(
        "echo {count} > /sys/class/net/{rx_if}/napi_defer_hard_irqs && \
         echo {timeout_ns} > /sys/class/net/{rx_if}/gro_flush_timeout"
    );
    run(&["ip", "netns", "exec", rx_ns, "sh", "-c", &write])
}

/// Pids of the NAPI kernel threads of `ifname` (`napi/<ifname>-<id>`, cut to 15 characters).
pub fn napi_threads(ifname: &str) -> Vec<u32> {
    let full = format!("napi/{ifname}-");
    let prefix = &full[..full.len().min(15)];
    let mut out = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else { return out };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if fs::read_to_string(entry.path().join("comm")).is_ok_and(|c| c.trim_end().starts_with(prefix)) {
            out.push(pid);
        }
    }
    out
}

/// CPU time (ns, `schedstat`) of process or thread `pid`.
pub fn task_cpu_ns(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
        .unwrap_or(0)
}
