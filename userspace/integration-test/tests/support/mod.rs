//! Shared helpers of the root integration tests: a two-namespace veth lab that removes itself,
//! threads that run inside a namespace, the CLI run inside a namespace, and raw frame senders.
//!
//! Traffic only ever flows on the veth pair between the two namespaces a [`Lab`] creates.
#![allow(dead_code, reason = "each test binary uses a different subset")]
#![allow(clippy::unwrap_used, reason = "test support: a failed set-up step should fail the test loudly")]

use std::{
    io::Read as _,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use tickgate_common::wire::{HEADER_LEN, Header, Kind, write_header};

pub mod v2;

/// Fails the test unless it runs as root. Root tests never skip: CI runs them as root.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    assert_eq!(uid, 0, "this test needs root (CI runs it as root): run `sudo scripts/test.sh`");
}

/// The path of a binary of this workspace (`tickgate`, `tickgate-bench`), built beside the test
/// binaries. Root suites live in their own crate, so cargo does not build the binaries for them:
/// `scripts/test.sh` builds them first.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test binary> -> target/<profile>/<name>
    let path = exe.parent().and_then(Path::parent).unwrap().join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the binaries first (cargo build --bins; scripts/test.sh does)",
        path.display()
    );
    path
}

/// Runs a command, panicking with its output if it fails.
pub fn sh(args: &[&str]) -> Output {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

pub use tickgate_testkit::lab::{RX_IP4, RX_IP6, TX_IP4, TX_IP6};

/// The library's lab, with the helpers tests use.
#[derive(Debug)]
pub struct Lab {
    inner: tickgate_testkit::lab::Lab,
    /// Receiver MAC.
    pub rx_mac: [u8; 6],
    /// Sender MAC.
    pub tx_mac: [u8; 6],
}

impl std::ops::Deref for Lab {
    type Target = tickgate_testkit::lab::Lab;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl Lab {
    /// A lab with `queues` RX/TX queues on each veth.
    pub fn new(queues: u32) -> Self {
        require_root();
        let inner = tickgate_testkit::lab::Lab::create("tgt", queues).unwrap();
        Self { inner, rx_mac: tickgate_testkit::lab::RX_MAC, tx_mac: tickgate_testkit::lab::TX_MAC }
    }

    /// Runs `tickgate ARGS` inside the receiver namespace (nsenter keeps the host's bpffs,
    /// which `ip netns exec` would hide by remounting /sys).
    pub fn tickgate(&self, args: &[&str]) -> Output {
        tickgate_in(&self.rx_ns, args)
    }

    /// Like [`Lab::tickgate`] but asserts success and returns stdout.
    pub fn tickgate_ok(&self, args: &[&str]) -> String {
        let out = self.tickgate(args);
        assert!(
            out.status.success(),
            "tickgate {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `tickgate status IFACE --json`, parsed.
    pub fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.tickgate_ok(&["status", &self.rx_if, "--json"])).unwrap()
    }

    /// Sends raw Ethernet frames out of the sender veth.
    pub fn send_frames(&self, frames: &[Vec<u8>]) {
        let ifname = self.tx_if.clone();
        in_netns(&self.tx_ns, || send_raw(&ifname, frames));
    }

    /// An Ethernet frame from the sender to the receiver, with `payload` as UDP payload.
    pub fn frame(&self, ipv6: bool, dst_port: u16, payload: &[u8]) -> tickgate_common::frame::Frame {
        let ip = if ipv6 {
            tickgate_common::frame::Ip::between(TX_IP6.into(), RX_IP6.into())
        } else {
            tickgate_common::frame::Ip::between(TX_IP4.into(), RX_IP4.into())
        };
        let mut f = tickgate_common::frame::Frame::udp(ip, 40_000, dst_port, payload);
        f.dst_mac = self.rx_mac;
        f.src_mac = self.tx_mac;
        f
    }
}

impl Drop for Lab {
    /// The run directory goes with the lab (the namespaces go with `inner`); a failing test
    /// keeps it for a look and says where it is.
    fn drop(&mut self) {
        let dir = run_dir_path(self);
        if std::thread::panicking() {
            if dir.exists() {
                eprintln!("kept the failed run's outputs in {}", dir.display());
            }
        } else {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// Runs the CLI inside namespace `ns`.
pub fn tickgate_in(ns: &str, args: &[&str]) -> Output {
    Command::new("nsenter")
        .arg(format!("--net=/run/netns/{ns}"))
        .arg(bin("tickgate"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs `f` on a thread that has joined network namespace `ns` (only that thread moves).
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    tickgate_testkit::lab::in_netns(ns, f).unwrap()
}

/// Sends each frame once through an AF_PACKET socket bound to `ifname` (current namespace).
pub fn send_raw(ifname: &str, frames: &[Vec<u8>]) {
    let ifindex = {
        let c = std::ffi::CString::new(ifname).unwrap();
        // SAFETY: `c` is NUL-terminated.
        unsafe { libc::if_nametoindex(c.as_ptr()) }
    };
    assert_ne!(ifindex, 0, "no interface {ifname}");
    // SAFETY: plain socket call.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "AF_PACKET socket: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` is a fresh socket owned by nobody else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_ifindex = ifindex as i32;
    addr.sll_halen = 6;
    for frame in frames {
        addr.sll_addr[..6].copy_from_slice(&frame[..6]);
        // At full rate the device queue can be momentarily full (ENOBUFS, EAGAIN): back off and
        // retry that frame, for at most ~1 s, so a flood sends every frame it promised.
        let mut retries = 0;
        loop {
            // SAFETY: `frame` and `addr` are live for the call; lengths are theirs.
            let n = unsafe {
                libc::sendto(
                    sock.as_raw_fd(),
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&addr as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            if n == frame.len() as isize {
                break;
            }
            let err = std::io::Error::last_os_error();
            let transient = matches!(err.raw_os_error(), Some(libc::ENOBUFS | libc::EAGAIN));
            assert!(transient && retries < 10_000, "sendto: {err} (after {retries} retries)");
            retries += 1;
            std::thread::sleep(std::time::Duration::from_micros(100));
        }
    }
}

/// Pins this thread to the CPU it is on. The XDP rate buckets are per CPU, and both
/// `BPF_PROG_TEST_RUN` and a veth sender run the program on the sending thread's CPU: a thread
/// that migrated mid-test would find a fresh bucket on the new CPU and be granted a second burst.
pub fn pin_to_current_cpu() {
    // SAFETY: no arguments; returns the CPU number or -1.
    let cpu = unsafe { libc::sched_getcpu() };
    assert!(cpu >= 0, "sched_getcpu: {}", std::io::Error::last_os_error());
    pin_to_cpu(cpu as usize);
}

/// Pins this thread to CPU `cpu` (one the machine has).
pub fn pin_to_cpu(cpu: usize) {
    assert!(cpu < libc::CPU_SETSIZE as usize, "CPU {cpu} is outside a cpu_set_t");
    // SAFETY: an all-zero cpu_set_t is the empty set; CPU_SET writes one bit of it, in range
    // (checked above).
    let ret = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    assert_eq!(ret, 0, "sched_setaffinity: {}", std::io::Error::last_os_error());
}

/// A tickgate UDP payload (header + body); the checksum is left 0 (XDP does not check it).
pub fn game_payload(client_id: u32, seq: u64, body: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; HEADER_LEN];
    let header = Header {
        kind: Kind::Input,
        payload_len: body.len() as u16,
        client_id,
        client_frame: seq as u32,
        seq,
        checksum: 0,
    };
    write_header(&header, &mut p).unwrap();
    p.extend_from_slice(body);
    p
}

/// Waits until `cond` holds, polling for at most `secs` seconds.
pub fn wait_for(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    cond()
}

/// A fresh directory for one run's outputs.
pub fn run_dir(lab: &Lab) -> PathBuf {
    let dir = run_dir_path(lab);
    if !dir.exists() {
        std::fs::create_dir_all(&dir).unwrap();
    }
    dir
}

fn run_dir_path(lab: &Lab) -> PathBuf {
    std::env::temp_dir().join(format!("tickgate-run-{}", lab.rx_if))
}

pub struct Run {
    /// The `tickgate run` process (ours: killed by PID on drop).
    pub child: Child,
    /// Its output directory.
    pub dir: PathBuf,
}

impl Run {
    /// [`Run::start`] serving unauthenticated protocol v1 (`--insecure-v1`), which the
    /// pipeline suites send.
    pub fn start_v1(lab: &Lab, extra: &[&str]) -> Self {
        Self::start(lab, &[&["--insecure-v1"], extra].concat())
    }

    /// Starts `tickgate run` in the lab's receiver namespace and waits until it is receiving.
    pub fn start(lab: &Lab, extra: &[&str]) -> Self {
        let dir = run_dir(lab);
        let live = Path::new("/run/tickgate").join(format!("{}.json", lab.rx_if));
        let _ = std::fs::remove_file(&live);
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", lab.rx_ns))
            .arg(bin("tickgate"))
            .args(["run", &lab.rx_if, "--port", "7777", "--summary-json"])
            .arg(dir.join("summary.json"))
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut run = Self { child, dir };
        let ready = wait_for(15, || live.exists());
        if !ready {
            let _ = run.child.kill();
            let out = run.child.wait_with_output_string();
            panic!("tickgate run did not start: {out}");
        }
        run
    }

    /// Waits (bounded) for the run to end by itself and returns the summary.
    pub fn finish(mut self) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut stdout = String::new();
        // Draining stdout lets a run blocked on a full pipe go on.
        if let Some(mut out) = self.child.stdout.take() {
            let _ = out.read_to_string(&mut stdout);
        }
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                self.child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
                assert!(status.success(), "tickgate run failed: {err}");
                eprintln!("{err}");
                break;
            }
            assert!(Instant::now() < deadline, "tickgate run did not stop by itself");
            std::thread::sleep(Duration::from_millis(50));
        }
        serde_json::from_slice(&std::fs::read(self.dir.join("summary.json")).unwrap()).unwrap()
    }
}

impl Drop for Run {
    /// A test that fails half-way must not leave its `tickgate run` behind (our child, by PID).
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

trait OutputString {
    fn wait_with_output_string(&mut self) -> String;
}

impl OutputString for Child {
    fn wait_with_output_string(&mut self) -> String {
        let _ = self.wait();
        let mut s = String::new();
        if let Some(mut e) = self.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }
}

impl Run {
    /// Waits (bounded) for the run to exit by itself; returns whether it succeeded and stderr.
    pub fn wait_exit(mut self, secs: u64) -> (bool, String) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                self.child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
                return (status.success(), err);
            }
            assert!(Instant::now() < deadline, "tickgate run did not exit within {secs} s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `clients` synthetic clients, each on its own UDP socket (its own flow, so RSS spreads them
/// over the queues), send inputs 1..=inputs from the sender namespace; every packet carries the
/// last three inputs. Paced (200 µs per round) so no ring overflows. Returns the packets sent.
pub fn play(lab: &Lab, clients: u32, inputs: u64, ipv6: bool) -> u64 {
    in_netns(&lab.tx_ns, || {
        let dst: std::net::SocketAddr = if ipv6 { (RX_IP6, 7777).into() } else { (RX_IP4, 7777).into() };
        let bind = if ipv6 { "[::]:0" } else { "0.0.0.0:0" };
        let mut players: Vec<(std::net::UdpSocket, tickgate_testkit::client::SyntheticClient)> = (0..clients)
            .map(|i| {
                (
                    std::net::UdpSocket::bind(bind).unwrap(),
                    tickgate_testkit::client::SyntheticClient::new(i + 1, 3),
                )
            })
            .collect();
        let mut packet = Vec::new();
        let mut sent = 0;
        for _ in 0..inputs {
            for (sock, client) in &mut players {
                client.next_packet(tickgate::sys::clock_tai_ns(), &mut packet);
                sock.send_to(&packet, dst).unwrap();
                sent += 1;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        sent
    })
}
