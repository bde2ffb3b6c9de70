//! Prometheus text exposition of every counter, and the latency histogram behind it.
//!
//! Names follow the Prometheus conventions: `tickgate_` prefix, `_total` for counters, base units
//! (seconds). Labels are bounded (queue, reason, outcome, clock): never a client id.

use std::{
    fmt::Write as _,
    io::{self, Read as _, Write as _},
    net::{SocketAddr, TcpListener},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::Duration,
};

use crate::{ingress::IngressReport, worker::QueueReport};

/// Upper bounds of the latency buckets, in seconds: 10 µs to 1 s.
pub const LATENCY_BUCKETS: [f64; 16] = [
    1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 1.7e-2, 2.5e-2, 5e-2, 1e-1, 2.5e-1, 1.0,
];

/// A cumulative latency histogram with fixed buckets (Prometheus `histogram`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LatencyHistogram {
    counts: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum_seconds: f64,
}

impl LatencyHistogram {
    /// Records one latency.
    pub fn record_ns(&mut self, ns: u64) {
        let seconds = ns as f64 / 1e9;
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&b| seconds <= b) {
            self.counts[i] += 1;
        }
        self.count += 1;
        self.sum_seconds += seconds;
    }

    /// Observations recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The smallest bucket bound under which at least `q` (0..=1) of the observations fall
    /// (`+Inf` when they are beyond the last bucket), as Prometheus' `histogram_quantile` would.
    pub fn quantile_upper_bound(&self, q: f64) -> f64 {
        let wanted = (q * self.count as f64).ceil() as u64;
        let mut seen = 0;
        for (bound, n) in LATENCY_BUCKETS.iter().zip(self.counts) {
            seen += n;
            if seen >= wanted {
                return *bound;
            }
        }
        f64::INFINITY
    }
}

/// Renders every counter of `report` and the latency histogram as Prometheus text.
pub fn render(report: &IngressReport, latency: &LatencyHistogram) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let one = |v: u64| vec![(String::new(), v as f64)];
    metric(
        "tickgate_build_info",
        "gauge",
        "Version of this tickgate build (always 1).",
        &[(format!("{{version=\"{}\"}}", env!("CARGO_PKG_VERSION")), 1.0)],
    );
    metric(
        "tickgate_uptime_seconds",
        "gauge",
        "Seconds since the receive path started.",
        &[(String::new(), report.uptime_s)],
    );
    let c = &report.counters;
    metric("tickgate_xdp_rx_packets_total", "counter", "Packets the XDP program ran on.", &one(c.rx_packets));
    metric(
        "tickgate_xdp_packets_total",
        "counter",
        "Packets by XDP outcome other than drops.",
        &[
            ("{outcome=\"steered\"}".into(), c.steered as f64),
            ("{outcome=\"passed\"}".into(), c.passed as f64),
            ("{outcome=\"no_socket\"}".into(), c.no_socket as f64),
        ],
    );
    let dropped: Vec<(String, f64)> =
        c.dropped.iter().map(|(r, n)| (format!("{{reason=\"{r}\"}}"), *n as f64)).collect();
    metric("tickgate_xdp_dropped_packets_total", "counter", "Packets XDP dropped, by reason.", &dropped);
    let t = &report.timestamps;
    metric(
        "tickgate_xdp_timestamps_total",
        "counter",
        "Game packets stamped, by clock.",
        &[("{clock=\"nic\"}".into(), t.nic as f64), ("{clock=\"xdp\"}".into(), t.xdp as f64)],
    );
    metric(
        "tickgate_xdp_nic_timestamp_fallbacks_total",
        "counter",
        "Packets the hw program stamped with the XDP clock instead of the NIC's, by reason.",
        &[
            ("{reason=\"kfunc_error\"}".into(), t.kfunc_error as f64),
            ("{reason=\"no_timestamp\"}".into(), t.kfunc_no_timestamp as f64),
        ],
    );
    let per_queue = |f: &dyn Fn(&QueueReport) -> u64| -> Vec<(String, f64)> {
        report.queues.iter().map(|q| (format!("{{queue=\"{}\"}}", q.queue), f(q) as f64)).collect()
    };
    metric(
        "tickgate_queue_received_packets_total",
        "counter",
        "Packets workers took from their RX ring.",
        &per_queue(&|q| q.received),
    );
    metric(
        "tickgate_queue_delivered_inputs_total",
        "counter",
        "Inputs handed to the sequencer.",
        &per_queue(&|q| q.delivered),
    );
    let per_queue_reason = |f: &dyn Fn(&QueueReport) -> &std::collections::BTreeMap<&'static str, u64>| {
        let samples = report.queues.iter().flat_map(|q| {
            f(q).iter()
                .map(move |(reason, n)| (format!("{{queue=\"{}\",reason=\"{reason}\"}}", q.queue), *n as f64))
        });
        samples.collect::<Vec<_>>()
    };
    metric(
        "tickgate_queue_dropped_packets_total",
        "counter",
        "Packets a worker dropped, by reason.",
        &per_queue_reason(&|q| &q.dropped_packets),
    );
    metric(
        "tickgate_queue_dropped_inputs_total",
        "counter",
        "Inputs not delivered, by reason.",
        &per_queue_reason(&|q| &q.dropped_inputs),
    );
    metric(
        "tickgate_queue_nic_timestamps_total",
        "counter",
        "NIC timestamps by fate: converted to CLOCK_TAI through the PHC, or left to be restamped.",
        &per_queue_reason(&|q| &q.nic_time),
    );
    metric(
        "tickgate_queue_watermarks_total",
        "counter",
        "Watermarks published on a drained ring: proved by the XDP program's count (the instant before the read), or by_slack (that instant less the slack).",
        &per_queue_reason(&|q| &q.watermarks),
    );
    metric(
        "tickgate_queue_wakeups_total",
        "counter",
        "A sleeping worker's waits by what ended them: its alarm at a seal instant (seal) or at the idle or a paced worker's stretched deadline (timed), or packets, a frame to send or an error (other).",
        &per_queue_reason(&|q| &q.wakeups),
    );
    let with_phc = |f: &dyn Fn(&crate::phc::PhcReport) -> f64| -> Vec<(String, f64)> {
        report
            .queues
            .iter()
            .filter_map(|q| q.phc.as_ref().map(|p| (format!("{{queue=\"{}\"}}", q.queue), f(p))))
            .collect()
    };
    let mut delay = Vec::new();
    for q in &report.queues {
        let mut cumulative = 0;
        for [below_us, n] in &q.visible_delay_us {
            cumulative += n;
            let le = *below_us as f64 / 1e6;
            delay.push((format!("_bucket{{queue=\"{}\",le=\"{le}\"}}", q.queue), cumulative as f64));
        }
        delay.push((format!("_bucket{{queue=\"{}\",le=\"+Inf\"}}", q.queue), cumulative as f64));
        delay.push((format!("_count{{queue=\"{}\"}}", q.queue), cumulative as f64));
    }
    // A histogram without a sum: its buckets are what tuning the grace needs.
    metric(
        "tickgate_queue_visible_delay_seconds",
        "histogram",
        "XDP-stamped packets by how long they took from their stamp to their worker's batch.",
        &delay,
    );
    metric(
        "tickgate_queue_watermark_slack_seconds",
        "gauge",
        "How far the queue's watermark trails now when its ring is empty (fixed, or measured with --watermark-slack auto).",
        &report
            .queues
            .iter()
            .map(|q| (format!("{{queue=\"{}\"}}", q.queue), q.watermark_slack_us as f64 / 1e6))
            .collect::<Vec<_>>(),
    );
    metric(
        "tickgate_phc_offset_nanoseconds",
        "gauge",
        "CLOCK_TAI minus the NIC's PTP hardware clock at the last sample.",
        &with_phc(&|p| p.offset_ns as f64),
    );
    metric(
        "tickgate_phc_uncertainty_nanoseconds",
        "gauge",
        "The last PHC sample's system-clock window (0 when the NIC cross-timestamps).",
        &with_phc(&|p| p.window_ns as f64),
    );
    metric(
        "tickgate_phc_rate_ppb",
        "gauge",
        "The PHC's rate against CLOCK_TAI, parts per billion.",
        &with_phc(&|p| p.rate_ppb as f64),
    );
    for (name, help, f) in [
        (
            "tickgate_xsk_rx_dropped_total",
            "XDP_STATISTICS rx_dropped.",
            (|q: &QueueReport| q.xdp_statistics.rx_dropped) as fn(&QueueReport) -> u64,
        ),
        ("tickgate_xsk_rx_invalid_descs_total", "XDP_STATISTICS rx_invalid_descs.", |q| {
            q.xdp_statistics.rx_invalid_descs
        }),
        ("tickgate_xsk_rx_ring_full_total", "XDP_STATISTICS rx_ring_full.", |q| {
            q.xdp_statistics.rx_ring_full
        }),
        ("tickgate_xsk_rx_fill_ring_empty_descs_total", "XDP_STATISTICS rx_fill_ring_empty_descs.", |q| {
            q.xdp_statistics.rx_fill_ring_empty_descs
        }),
        (
            "tickgate_xsk_left_in_ring_total",
            "Descriptors still in the RX ring when the worker stopped, never read.",
            |q| q.left_in_ring,
        ),
    ] {
        metric(name, "counter", help, &per_queue(&f));
    }
    let s = &report.sequencer;
    metric("tickgate_frames_total", "counter", "Frames emitted, empty ones included.", &one(s.frames));
    metric("tickgate_inputs_ordered_total", "counter", "Inputs placed in frames.", &one(s.inputs_ordered));
    metric(
        "tickgate_late_inputs_total",
        "counter",
        "Inputs that arrived for a sealed tick, by what the late policy did.",
        &[
            ("{policy=\"drop\"}".into(), s.late_dropped as f64),
            ("{policy=\"next\"}".into(), s.late_next as f64),
        ],
    );
    metric(
        "tickgate_out_of_order_inputs_total",
        "counter",
        "Inputs below their queue's floor (restamped).",
        &one(s.out_of_order),
    );
    metric(
        "tickgate_clock_jumps_total",
        "counter",
        "Watermarks that jumped more than 65536 ticks ahead: the gap was skipped, not emitted.",
        &one(s.clock_jumps),
    );
    metric(
        "tickgate_far_future_inputs_dropped_total",
        "counter",
        "Inputs more than 65536 ticks ahead of the oldest open tick, dropped.",
        &one(s.far_future_dropped),
    );
    metric(
        "tickgate_restamped_clock_inputs_total",
        "counter",
        "Inputs stamped by a clock other than the time base.",
        &one(s.restamped_clock),
    );
    metric(
        "tickgate_insecure_v1",
        "gauge",
        "1 when unauthenticated protocol v1 is served (--insecure-v1): anyone can speak for any client id.",
        &one(u64::from(report.insecure_v1)),
    );
    if let Some(v) = &report.sessions {
        metric("tickgate_sessions_open", "gauge", "Protocol v2 sessions open.", &one(v.open));
        metric("tickgate_sessions_joined_total", "counter", "Protocol v2 sessions created.", &one(v.joined));
        let by = |m: &std::collections::BTreeMap<&'static str, u64>| -> Vec<(String, f64)> {
            m.iter().map(|(r, n)| (format!("{{reason=\"{r}\"}}"), *n as f64)).collect()
        };
        metric("tickgate_sessions_closed_total", "counter", "Sessions ended, by reason.", &by(&v.closed));
        metric(
            "tickgate_handshake_refused_total",
            "counter",
            "Handshake packets refused, by reason.",
            &by(&v.refused),
        );
        metric(
            "tickgate_session_packets_dropped_total",
            "counter",
            "Data packets the session layer dropped, by reason.",
            &by(&v.dropped),
        );
        metric("tickgate_challenges_total", "counter", "Challenges sent.", &one(v.challenges));
        metric(
            "tickgate_session_map_errors_total",
            "counter",
            "XDP session-map updates that failed.",
            &one(v.map_errors),
        );
    }
    let name = "tickgate_input_latency_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} From the receive timestamp at the XDP hook to the input's frame being taken.\n# TYPE {name} histogram"
    );
    let mut cumulative = 0;
    for (bound, n) in LATENCY_BUCKETS.iter().zip(latency.counts) {
        cumulative += n;
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", latency.count);
    let _ = writeln!(out, "{name}_sum {}", latency.sum_seconds);
    let _ = writeln!(out, "{name}_count {}", latency.count);
    out
}

/// The text the endpoint serves, replaced by the caller as counters change.
pub type Exposition = Arc<Mutex<String>>;

/// A running `/metrics` endpoint; stops when dropped.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Parses `--metrics`: `PORT` or `HOST:PORT`; a bare port binds to loopback.
pub fn parse_addr(spec: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = spec.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    spec.parse()
        .map_err(|_| format!("--metrics {spec:?}: expected PORT or ADDR:PORT (e.g. 9187 or 127.0.0.1:9187)"))
}

impl Server {
    /// Serves `exposition` at `http://addr/metrics` on a thread of its own.
    pub fn start(addr: SocketAddr, exposition: Exposition) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            thread::Builder::new().name("tickgate-metrics".into()).spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            // One slow client may not hold the endpoint: short timeouts.
                            let _ = respond(stream, &exposition);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(50))
                        }
                        Err(e) => {
                            log::warn!("metrics endpoint: accept failed: {e}");
                            thread::sleep(Duration::from_millis(200));
                        }
                    }
                }
            })?
        };
        Ok(Self { addr, stop, thread: Some(thread) })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn respond(mut stream: std::net::TcpStream, exposition: &Exposition) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    // Read up to the end of the headers: a client may send the request in several pieces, and
    // closing with request bytes unread makes the kernel reset the connection.
    let mut request = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8 * 1024 {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&request);
    let (status, body) = if line.starts_with("GET /metrics ") || line.starts_with("GET / ") {
        ("200 OK", exposition.lock().map(|s| s.clone()).unwrap_or_default())
    } else {
        ("404 Not Found", "try /metrics\n".to_owned())
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> IngressReport {
        let counters = crate::steer::counters::XdpCounters {
            rx_packets: 10,
            steered: 7,
            dropped: [("bad_magic", 3)].into(),
            ..Default::default()
        };
        let q = QueueReport {
            queue: 1,
            received: 7,
            dropped_inputs: [("duplicate", 4)].into(),
            ..Default::default()
        };
        IngressReport {
            interface: "eth0".into(),
            pid: 1,
            attached: true,
            program: "tickgate_tai",
            mode: crate::steer::Mode::Native,
            attach: "",
            timestamp_source: "xdp",
            ports: vec![7777],
            uptime_s: 1.5,
            counters,
            timestamps: Default::default(),
            queues: vec![q],
            sequencer: Default::default(),
            unexplained_steered: 0,
            sessions: None,
            broadcast: None,
            replies: "none",
            insecure_v1: false,
        }
    }

    #[test]
    fn every_counter_is_exposed_with_conventional_names() {
        let mut latency = LatencyHistogram::default();
        latency.record_ns(30_000);
        latency.record_ns(2_000_000);
        let text = render(&sample(), &latency);
        assert!(text.contains("tickgate_xdp_rx_packets_total 10"));
        assert!(text.contains("tickgate_xdp_packets_total{outcome=\"steered\"} 7"));
        assert!(text.contains("tickgate_xdp_dropped_packets_total{reason=\"bad_magic\"} 3"));
        assert!(text.contains("tickgate_queue_dropped_inputs_total{queue=\"1\",reason=\"duplicate\"} 4"));
        assert!(text.contains("tickgate_input_latency_seconds_bucket{le=\"0.00005\"} 1"));
        assert!(text.contains("tickgate_input_latency_seconds_count 2"));
        assert!(text.contains("tickgate_build_info{version="));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(name.starts_with("tickgate_"), "{line}");
            assert!(!line.contains("client"), "no per-client labels: {line}");
        }
        for line in text.lines().filter(|l| l.starts_with("# TYPE") && l.ends_with(" counter")) {
            assert!(line.split(' ').nth(2).unwrap().ends_with("_total"), "{line}");
        }
    }

    #[test]
    fn quantiles_come_from_bucket_bounds() {
        let mut h = LatencyHistogram::default();
        for _ in 0..99 {
            h.record_ns(20_000);
        }
        h.record_ns(40_000_000);
        assert_eq!(h.quantile_upper_bound(0.5), 2.5e-5);
        assert_eq!(h.quantile_upper_bound(0.99), 2.5e-5);
        assert_eq!(h.quantile_upper_bound(1.0), 5e-2);
    }

    #[test]
    fn the_endpoint_serves_the_exposition_on_loopback() {
        let exposition: Exposition = Arc::new(Mutex::new("tickgate_up 1\n".into()));
        let server = Server::start(parse_addr("0").unwrap(), Arc::clone(&exposition)).unwrap();
        assert!(server.addr().ip().is_loopback(), "a bare port binds to loopback");
        let get = |path: &str| {
            let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
            write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut body = String::new();
            s.read_to_string(&mut body).unwrap();
            body
        };
        let body = get("/metrics");
        assert!(body.starts_with("HTTP/1.1 200") && body.ends_with("tickgate_up 1\n"), "{body}");
        *exposition.lock().unwrap() = "tickgate_up 2\n".into();
        assert!(get("/metrics").ends_with("tickgate_up 2\n"));
        assert!(get("/other").starts_with("HTTP/1.1 404"));
        assert!(parse_addr("nonsense").is_err());
    }
}
