//! Cross-check of the socket baseline with sockperf (Debian package `sockperf`) in the same lab:
//! `sockperf server` in the receiver namespace, `sockperf ping-pong` in the sender namespace at
//! the seed rate and size. sockperf reports half the round trip over kernel UDP sockets, which
//! is what the bench's socket receivers measure as "send → receive stamp" one way.

use std::{
    collections::BTreeMap,
    io::Read as _,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use tickgate_testkit::lab::{Lab, RX_IP4};

use crate::sys;

const PORT: &str = "11111";

/// What sockperf measured.
#[derive(Clone, Debug, Serialize)]
pub struct Sockperf {
    /// Messages per second asked for.
    pub mps: u64,
    /// UDP payload bytes.
    pub msg_size: usize,
    /// Seconds of test.
    pub seconds: u32,
    /// Mean one-way latency (RTT/2), µs.
    pub avg_us: f64,
    /// Percentiles (`"50.000"`, `"99.000"`, ..., `"max"`, `"min"`), µs.
    pub percentiles_us: BTreeMap<String, f64>,
    /// Observations in the valid window.
    pub observations: u64,
    /// Messages sockperf saw dropped.
    pub dropped: u64,
    /// The command lines.
    pub commands: Vec<String>,
}

/// The sockperf server, killed (by its PID) on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = sys::kill(self.0.id(), libc::SIGINT);
        let deadline = Instant::now() + Duration::from_millis(500);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn in_ns(ns: &str, core: Option<usize>, args: &[String]) -> Command {
    // nsenter and taskset exec the next program, so the child's PID is sockperf's own.
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/run/netns/{ns}"));
    if let Some(core) = core {
        c.args(["taskset", "-c", &core.to_string()]);
    }
    c.args(args);
    c
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn number_after(line: &str, marker: &str) -> Option<f64> {
    let rest = &line[line.find(marker)? + marker.len()..];
    rest.split(|c: char| !(c.is_ascii_digit() || c == '.')).find(|s| !s.is_empty())?.parse().ok()
}

/// Parses sockperf's client summary.
pub fn parse(output: &str) -> Option<(f64, BTreeMap<String, f64>, u64, u64)> {
    let text = strip_ansi(output);
    let mut avg = None;
    let mut percentiles = BTreeMap::new();
    let mut observations = 0;
    let mut dropped = 0;
    for line in text.lines() {
        if line.contains("avg-latency=") {
            avg = number_after(line, "avg-latency=");
        } else if line.contains("<MAX> observation") {
            percentiles.insert("max".into(), number_after(line, "=")?);
        } else if line.contains("<MIN> observation") {
            percentiles.insert("min".into(), number_after(line, "=")?);
        } else if let Some(rest) = line.split("---> percentile ").nth(1) {
            let (p, v) = rest.split_once('=')?;
            percentiles.insert(p.trim().to_owned(), v.trim().parse().ok()?);
        } else if line.contains("Total ") && line.contains("observations") {
            observations = number_after(line, "Total ").unwrap_or(0.0) as u64;
        } else if line.contains("# dropped messages =") {
            dropped = number_after(line, "# dropped messages =").unwrap_or(0.0) as u64;
        }
    }
    Some((avg?, percentiles, observations, dropped))
}

/// Runs the server and a ping-pong client for `seconds`, each pinned like the bench's receiver
/// and generator.
pub fn run(
    lab: &Lab,
    mps: u64,
    msg_size: usize,
    seconds: u32,
    client_core: Option<usize>,
    server_core: Option<usize>,
) -> Result<Sockperf> {
    let ip = RX_IP4.to_string();
    let server_args: Vec<String> =
        ["sockperf", "server", "-i", &ip, "-p", PORT].iter().map(|s| (*s).to_owned()).collect();
    let client_args: Vec<String> = [
        "sockperf",
        "ping-pong",
        "-i",
        &ip,
        "-p",
        PORT,
        "--mps",
        &mps.to_string(),
        "-m",
        &msg_size.max(14).to_string(),
        "-t",
        &seconds.max(1).to_string(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let _server = Server(
        in_ns(&lab.rx_ns, server_core, &server_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting 'sockperf server' (install the sockperf package: scripts/setup.sh)")?,
    );
    std::thread::sleep(Duration::from_millis(300));
    let mut client = in_ns(&lab.tx_ns, client_core, &client_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting 'sockperf ping-pong'")?;
    let mut stdout = client.stdout.take().context("sockperf stdout")?;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(u64::from(seconds) + 20);
    let status = loop {
        if let Some(status) = client.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = client.kill();
            let _ = client.wait();
            bail!("sockperf ping-pong did not finish within {} s", seconds + 20);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    if let Some(mut e) = client.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let stdout = reader.join().unwrap_or_default();
    if !status.success() {
        bail!("sockperf ping-pong failed ({status}): {}", stderr.trim());
    }
    let (avg_us, percentiles_us, observations, dropped) = parse(&format!("{stdout}\n{stderr}"))
        .with_context(|| format!("cannot parse the sockperf output:\n{stdout}\n{stderr}"))?;
    Ok(Sockperf {
        mps,
        msg_size,
        seconds,
        avg_us,
        percentiles_us,
        observations,
        dropped,
        commands: vec![
            format!("nsenter --net=/run/netns/<rx> {}", server_args.join(" ")),
            format!("nsenter --net=/run/netns/<tx> {}", client_args.join(" ")),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_client_summary() {
        let out = "sockperf: \u{1b}[2;35m====> avg-latency=31.934 (std-dev=203.253)\u{1b}[0m\n\
                   sockperf: # dropped messages = 2; # duplicated messages = 0\n\
                   sockperf: \u{1b}[2;35mTotal 15227 observations\u{1b}[0m; each percentile\n\
                   sockperf: ---> <MAX> observation = 4358.965\n\
                   sockperf: ---> percentile 99.000 = 1046.719\n\
                   sockperf: ---> percentile 50.000 =    7.651\n\
                   sockperf: ---> <MIN> observation =    3.649\n";
        let (avg, p, obs, dropped) = parse(out).unwrap();
        assert_eq!(avg, 31.934);
        assert_eq!(p["50.000"], 7.651);
        assert_eq!(p["99.000"], 1046.719);
        assert_eq!(p["max"], 4358.965);
        assert_eq!(p["min"], 3.649);
        assert_eq!((obs, dropped), (15227, 2));
    }
}
