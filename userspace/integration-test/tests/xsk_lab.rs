//! Root test of the AF_XDP socket: the XDP program steers game packets sent across a veth pair
//! into an [`XskSocket`], in native and skb mode, and the socket transmits back.
//!
//! Each test builds its own pair of network namespaces joined by one veth pair and deletes them
//! when it ends, also on panic. Traffic flows only on that pair; the machine's own interfaces
//! are never touched. Needs root (CI runs it as root): without it the tests fail, they do not
//! skip.

use std::{
    fs::File,
    net::{Ipv4Addr, SocketAddrV4, UdpSocket},
    os::fd::AsRawFd as _,
    panic,
    process::Command,
    sync::{
        atomic::{AtomicU32, Ordering},
        mpsc,
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use tickgate::{
    steer::{Attachment, LoadOptions, Mode, Timestamps},
    xsk::{BindMode, BindPreference, BusyPoll, RxBatch, XskConfig, XskError, XskSocket},
};
use tickgate_common::{
    frame::{Frame, Ip},
    meta::{RxMeta, flags},
    wire::{HEADER_LEN, Header, Kind, write_header},
};

const GAME_PORT: u16 = 7777;
const PACKETS: usize = 50;
/// Bound on every wait for packets or for the other thread.
const DEADLINE: Duration = Duration::from_secs(15);

fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    assert_eq!(
        uid, 0,
        "xsk_lab needs root (CAP_NET_ADMIN, CAP_BPF, CAP_NET_RAW) to create namespaces, attach XDP and \
         open AF_XDP sockets; CI runs it as root. Run: sudo -E cargo test -p tickgate --test xsk_lab"
    );
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap_or_else(|e| panic!("ip {args:?}: {e}"));
    assert!(out.status.success(), "ip {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

static LABS: AtomicU32 = AtomicU32::new(0);

/// Two namespaces and a veth pair between them; both namespaces (and so the veths) are deleted
/// on drop.
struct Lab {
    tx_ns: String,
    rx_ns: String,
    tx_if: String,
    rx_if: String,
    tx_ip: Ipv4Addr,
    rx_ip: Ipv4Addr,
    tx_mac: [u8; 6],
    rx_mac: [u8; 6],
}

impl Lab {
    fn new() -> Self {
        require_root();
        let pid = std::process::id();
        let n = LABS.fetch_add(1, Ordering::Relaxed);
        // Addresses live only inside the namespaces; the subnet comes from the pid anyway, so
        // that concurrent runs are told apart in captures and logs.
        let x = (pid % 250 + 1) as u8;
        let id = format!("{}{n}", pid % 100_000);
        let mut lab = Self {
            tx_ns: format!("tgxsk-{pid}-{n}-tx"),
            rx_ns: format!("tgxsk-{pid}-{n}-rx"),
            tx_if: format!("tgxt{id}"),
            rx_if: format!("tgxr{id}"),
            tx_ip: Ipv4Addr::new(10, 201, x, 1),
            rx_ip: Ipv4Addr::new(10, 201, x, 2),
            tx_mac: [0x02, 0xc9, x, 0, n as u8, 1],
            rx_mac: [0x02, 0xc9, x, 0, n as u8, 2],
        };
        ip(&["netns", "add", &lab.tx_ns]);
        // From here on, Drop removes whatever was made, also when a later step panics.
        let rx_ns = std::mem::take(&mut lab.rx_ns);
        ip(&["netns", "add", &rx_ns]);
        lab.rx_ns = rx_ns;
        #[rustfmt::skip]
        ip(&["link", "add", &lab.tx_if, "netns", &lab.tx_ns, "numtxqueues", "1", "numrxqueues", "1",
             "type", "veth", "peer", "name", &lab.rx_if, "netns", &lab.rx_ns,
             "numtxqueues", "1", "numrxqueues", "1"]);
        for (ns, ifname, mac, addr) in [
            (&lab.tx_ns, &lab.tx_if, mac_string(lab.tx_mac), lab.tx_ip),
            (&lab.rx_ns, &lab.rx_if, mac_string(lab.rx_mac), lab.rx_ip),
        ] {
            ip(&["-n", ns, "link", "set", ifname, "address", &mac]);
            // No link-local address and no router solicitations: only the test's traffic.
            ip(&["-n", ns, "link", "set", ifname, "addrgenmode", "none"]);
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", ifname]);
            ip(&["-n", ns, "link", "set", ifname, "up"]);
        }
        for (ns, ifname, addr, mac) in [
            (&lab.tx_ns, &lab.tx_if, lab.rx_ip, mac_string(lab.rx_mac)),
            (&lab.rx_ns, &lab.rx_if, lab.tx_ip, mac_string(lab.tx_mac)),
        ] {
            #[rustfmt::skip]
            ip(&["-n", ns, "neigh", "replace", &addr.to_string(), "lladdr", &mac, "dev", ifname,
                 "nud", "permanent"]);
        }
        lab
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.tx_ns, &self.rx_ns] {
            if ns.is_empty() {
                continue;
            }
            match Command::new("ip").args(["netns", "del", ns]).output() {
                Ok(out) if out.status.success() => {}
                Ok(out) => eprintln!("ip netns del {ns}: {}", String::from_utf8_lossy(&out.stderr)),
                Err(e) => eprintln!("ip netns del {ns}: {e}"),
            }
        }
    }
}

fn mac_string(mac: [u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Runs `f` on a new thread that has entered network namespace `ns` (only that thread moves).
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    let path = format!("/run/netns/{ns}");
    thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: `file` is an open namespace fd; setns moves only the calling thread.
        let ret = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(ret, 0, "setns({path}): {}", std::io::Error::last_os_error());
        f()
    })
}

/// Joins a thread, re-raising its panic in the test thread.
fn join<T>(handle: JoinHandle<T>) -> T {
    handle.join().unwrap_or_else(|e| panic::resume_unwind(e))
}

fn clock_tai_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a live timespec the call fills.
    let ret = unsafe { libc::clock_gettime(libc::CLOCK_TAI, &mut ts) };
    assert_eq!(ret, 0, "clock_gettime(CLOCK_TAI)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The UDP payload of game packet `i`: a 28-byte Input header and a small body.
fn game_payload(i: usize) -> Vec<u8> {
    let body: Vec<u8> = (0..8 + i % 16).map(|b| (b + i) as u8).collect();
    let mut out = vec![0u8; HEADER_LEN + body.len()];
    let header = Header {
        kind: Kind::Input,
        payload_len: body.len() as u16,
        client_id: 7,
        client_frame: i as u32,
        seq: i as u64,
        checksum: 0,
    };
    write_header(&header, &mut out).expect("buffer holds the header");
    out[HEADER_LEN..].copy_from_slice(&body);
    out
}

/// What the RX thread saw.
#[derive(Debug)]
struct Received {
    bind_mode: BindMode,
    packets: Vec<(Option<RxMeta>, Option<Vec<u8>>, usize)>,
    totals: RxBatch,
    tai_at_end: u64,
}

fn steer_into_socket(mode: Mode, config: XskConfig) {
    let lab = Lab::new();
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let rx_if = lab.rx_if.clone();
    let rx = in_netns(&lab.rx_ns, move || {
        let attachment = Attachment::attach(&LoadOptions {
            ifname: rx_if.clone(),
            ports: vec![GAME_PORT],
            mode,
            timestamps: Timestamps::Xdp,
            force: false,
            rate_limit: None,
            insecure_v1: true,
        })
        .unwrap_or_else(|e| panic!("attach in {mode} mode: {e}"));
        let mut sock = XskSocket::open(&rx_if, 0, &config).unwrap_or_else(|e| panic!("open: {e}"));
        attachment.register_socket(0, sock.fd()).unwrap_or_else(|e| panic!("register_socket: {e}"));
        ready_tx.send(()).expect("test thread waits");

        let mut packets = Vec::new();
        let mut totals = RxBatch::default();
        let deadline = Instant::now() + DEADLINE;
        // Until all arrived, then a little longer to catch extras; bounded by the deadline and
        // by the packet count (at most 4 x PACKETS are looked at).
        let mut quiet_until = None;
        while Instant::now() < deadline && packets.len() < 4 * PACKETS {
            if packets.len() >= PACKETS && quiet_until.is_none() {
                quiet_until = Some(Instant::now() + Duration::from_millis(300));
            }
            if quiet_until.is_some_and(|t| Instant::now() >= t) {
                break;
            }
            sock.wait(Duration::from_millis(50)).unwrap_or_else(|e| panic!("wait: {e}"));
            let batch = sock
                .receive(64, |r| packets.push((r.meta, r.payload.map(<[u8]>::to_vec), r.frame.len())))
                .unwrap_or_else(|e| panic!("receive: {e}"));
            totals.received += batch.received;
            totals.invalid_descriptors += batch.invalid_descriptors;
            totals.missing_metadata += batch.missing_metadata;
            totals.payload_out_of_bounds += batch.payload_out_of_bounds;
        }
        let tai_at_end = clock_tai_ns();
        let stats = sock.statistics().unwrap_or_else(|e| panic!("statistics: {e}"));
        println!("{mode} mode, {} bind: XDP_STATISTICS {stats:?}", sock.bind_mode());
        println!("{mode} mode: socket counters {:?}", sock.counters());
        match attachment.counters() {
            Ok((xdp, ts)) => println!("{mode} mode: XDP counters {xdp:?} {ts:?}"),
            Err(e) => println!("{mode} mode: XDP counters unavailable: {e}"),
        }
        assert_eq!(stats.rx_invalid_descs, 0, "the kernel refused fill-ring descriptors: {stats:?}");
        if config.busy_poll.is_some() {
            assert!(sock.counters().rx_wakeups > 0, "busy polling kicks the kernel on every receive");
        }
        Received { bind_mode: sock.bind_mode(), packets, totals, tai_at_end }
    });
    if ready_rx.recv_timeout(DEADLINE).is_err() {
        join(rx);
        panic!("the RX thread neither got ready nor panicked within {DEADLINE:?}");
    }

    let (tx_ip, rx_ip) = (lab.tx_ip, lab.rx_ip);
    let sent = join(in_netns(&lab.tx_ns, move || {
        let sock = UdpSocket::bind(SocketAddrV4::new(tx_ip, 0)).expect("bind UDP sender");
        let dst = SocketAddrV4::new(rx_ip, GAME_PORT);
        let mut sent = Vec::with_capacity(PACKETS);
        for i in 0..PACKETS {
            let payload = game_payload(i);
            let n = sock.send_to(&payload, dst).unwrap_or_else(|e| panic!("send_to {dst}: {e}"));
            assert_eq!(n, payload.len());
            sent.push(payload);
        }
        sent
    }));
    let got = join(rx);

    assert_eq!(
        got.bind_mode,
        BindMode::Copy,
        "veth has no zero-copy AF_XDP: the kernel must fall back to copy"
    );
    assert_eq!(
        got.packets.len(),
        PACKETS,
        "{mode} mode: every game packet, and nothing else, reaches the socket"
    );
    assert_eq!(
        got.totals,
        RxBatch { received: PACKETS as u32, ..RxBatch::default() },
        "{mode} mode: no invalid descriptor, every packet has metadata and a payload"
    );
    for (i, ((meta, payload, frame_len), expected)) in got.packets.iter().zip(&sent).enumerate() {
        let meta = meta.unwrap_or_else(|| panic!("packet {i}: no metadata"));
        assert_ne!(meta.flags & flags::TS_XDP, 0, "packet {i}: not stamped by the XDP clock: {meta:?}");
        assert!(
            meta.rx_ts_ns <= got.tai_at_end && got.tai_at_end - meta.rx_ts_ns < 5_000_000_000,
            "packet {i}: rx_ts_ns {} is not within 5 s before CLOCK_TAI {}",
            meta.rx_ts_ns,
            got.tai_at_end
        );
        assert_eq!(usize::from(meta.payload_offset), 14 + 20 + 8, "packet {i}: Ethernet + IPv4 + UDP");
        assert_eq!(
            payload.as_deref(),
            Some(expected.as_slice()),
            "packet {i}: payload differs from what was sent"
        );
        assert_eq!(*frame_len, 14 + 20 + 8 + expected.len(), "packet {i}: frame length");
    }
}

#[test]
fn native_mode_steers_every_game_packet_into_the_socket() {
    // Busy polling on top: every receive drives the queue with recvfrom.
    let busy = XskConfig { busy_poll: Some(BusyPoll { budget: 64, usecs: 20 }), ..XskConfig::default() };
    steer_into_socket(Mode::Native, busy);
}

#[test]
fn skb_mode_steers_every_game_packet_into_the_socket() {
    steer_into_socket(Mode::Skb, XskConfig::default());
}

#[test]
fn socket_refuses_zero_copy_and_a_busy_queue_on_veth_and_transmits() {
    let lab = Lab::new();
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let (tx_ip, rx_ip) = (lab.tx_ip, lab.rx_ip);
    // The peer listens for what the socket sends.
    let peer = in_netns(&lab.tx_ns, move || {
        let sock = UdpSocket::bind(SocketAddrV4::new(tx_ip, 9999)).expect("bind UDP receiver");
        sock.set_read_timeout(Some(DEADLINE)).expect("read timeout");
        ready_tx.send(()).expect("test thread waits");
        let mut buf = [0u8; 2048];
        let (n, from) =
            sock.recv_from(&mut buf).unwrap_or_else(|e| panic!("nothing arrived from the socket: {e}"));
        (buf[..n].to_vec(), from)
    });
    ready_rx.recv_timeout(DEADLINE).expect("the peer got ready");

    let (rx_if, tx_mac, rx_mac) = (lab.rx_if.clone(), lab.tx_mac, lab.rx_mac);
    let batches = join(in_netns(&lab.rx_ns, move || {
        let zc = XskConfig { bind: BindPreference::ZeroCopy, ..XskConfig::default() };
        match XskSocket::open(&rx_if, 0, &zc) {
            Err(XskError::ZeroCopyUnsupported { driver, .. }) => assert_eq!(driver, "veth"),
            other => panic!("zero-copy on veth: expected ZeroCopyUnsupported, got {other:?}"),
        }
        let config = XskConfig { tx_size: 64, bind: BindPreference::Copy, ..XskConfig::default() };
        let mut sock = XskSocket::open(&rx_if, 0, &config).unwrap_or_else(|e| panic!("open: {e}"));
        assert_eq!(sock.bind_mode(), BindMode::Copy);
        match XskSocket::open(&rx_if, 0, &XskConfig::default()) {
            Err(XskError::QueueBusy { queue: 0, .. }) => {}
            other => panic!("second socket on queue 0: expected QueueBusy, got {other:?}"),
        }
        let mut frame = Frame::udp(
            Ip::V4 { src: rx_ip.octets(), dst: tx_ip.octets(), options: 0, fragment: None },
            9000,
            9999,
            b"from the AF_XDP socket",
        );
        frame.dst_mac = tx_mac;
        frame.src_mac = rx_mac;
        let bytes = frame.build();
        let too_long = vec![0u8; 4096];
        let first = sock
            .transmit([bytes.as_slice(), too_long.as_slice()])
            .unwrap_or_else(|e| panic!("transmit: {e}"));
        // Frames come back through the completion ring; reap them (bounded).
        let deadline = Instant::now() + DEADLINE;
        let mut completed = 0;
        while completed < first.queued && Instant::now() < deadline {
            completed += sock.transmit([]).unwrap_or_else(|e| panic!("transmit: {e}")).completed;
            thread::sleep(Duration::from_millis(10));
        }
        println!("transmit: {first:?}, completed {completed}, counters {:?}", sock.counters());
        println!(
            "transmit: XDP_STATISTICS {:?}",
            sock.statistics().unwrap_or_else(|e| panic!("statistics: {e}"))
        );
        (first, completed)
    }));
    let (first, completed) = batches;
    assert_eq!((first.queued, first.too_long, first.no_frame, first.ring_full), (1, 1, 0, 0), "{first:?}");
    assert_eq!(completed, 1, "the sent frame comes back through the completion ring");
    let (data, from) = join(peer);
    assert_eq!(data, b"from the AF_XDP socket");
    assert_eq!(from, std::net::SocketAddr::V4(SocketAddrV4::new(rx_ip, 9000)));
}
