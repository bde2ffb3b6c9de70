//! Valid game packets over IPv4 and IPv6 reach the AF_XDP socket of their queue with metadata
//! whose clock flag is right, for both programs and both modes; status counts them as steered.
#![expect(clippy::unwrap_used, reason = "integration tests: a failed step should fail loudly")]

mod support;

use std::{
    sync::mpsc,
    time::{Duration, Instant},
};

use support::{Lab, game_payload};
use tickgate::{
    steer::{Attachment, LoadOptions, Mode, Timestamps},
    xsk::{BindMode, XskConfig, XskSocket},
};
use tickgate_common::meta::{RxMeta, flags};

const PACKETS: u64 = 40;

struct Got {
    meta: RxMeta,
    payload: Vec<u8>,
}

fn steer(mode: Mode, timestamps: Timestamps) -> (Vec<Got>, serde_json::Value, &'static str) {
    let lab = Lab::new(1);
    let frames: Vec<Vec<u8>> = (0..PACKETS)
        .map(|i| lab.frame(i % 2 == 1, 7777, &game_payload(9, i, &i.to_be_bytes())).build())
        .collect();
    let (ready_tx, ready_rx) = mpsc::channel();
    let (got, counters, program) = std::thread::scope(|s| {
        let receiver = s.spawn(|| {
            support::in_netns(&lab.rx_ns, || {
                let opts = LoadOptions {
                    ifname: lab.rx_if.clone(),
                    ports: vec![7777],
                    mode,
                    timestamps,
                    force: false,
                    rate_limit: None,
                    insecure_v1: true,
                };
                let attachment = Attachment::attach(&opts).unwrap();
                let mut sock = XskSocket::open(&lab.rx_if, 0, &XskConfig::default()).unwrap();
                assert_eq!(sock.bind_mode(), BindMode::Copy, "veth has no zero-copy");
                attachment.register_socket(0, sock.fd()).unwrap();
                ready_tx.send(()).unwrap();
                let mut got = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(10);
                while (got.len() as u64) < PACKETS && Instant::now() < deadline {
                    sock.wait(Duration::from_millis(50)).unwrap();
                    sock.receive(64, |r| {
                        got.push(Got { meta: r.meta.unwrap(), payload: r.payload.unwrap().to_vec() });
                    })
                    .unwrap();
                }
                let (counters, timestamps) = attachment.counters().unwrap();
                let mut json = serde_json::to_value(&counters).unwrap();
                json["timestamps"] = serde_json::to_value(&timestamps).unwrap();
                json["queue_0_count"] = attachment.loaded().queue_counts().unwrap().get(0).unwrap().into();
                (got, json, attachment.program().name())
            })
        });
        ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        lab.send_frames(&frames);
        receiver.join().unwrap()
    });
    (got, counters, program)
}

fn check(mode: Mode, timestamps: Timestamps, expected_program: &str) {
    let (got, counters, program) = steer(mode, timestamps);
    assert_eq!(program, expected_program);
    assert_eq!(got.len() as u64, PACKETS, "every valid game packet reaches the socket");
    let now_tai = {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a live timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_TAI, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    };
    let mut last_ts = 0;
    for (i, g) in got.iter().enumerate() {
        let seq = i as u64;
        assert_eq!(
            g.payload,
            game_payload(9, seq, &seq.to_be_bytes()),
            "packet {i} arrives in order, intact"
        );
        assert_eq!(g.meta.flags & flags::IPV6 != 0, i % 2 == 1, "packet {i}: IPv6 flag");
        // veth has no NIC clock: both programs stamp with the XDP clock, and say so.
        assert_ne!(g.meta.flags & flags::TS_XDP, 0, "packet {i}: clock flag");
        assert_eq!(g.meta.flags & flags::TS_NIC, 0);
        assert_eq!(g.meta.flags & flags::HW_PROGRAM != 0, expected_program == "tickgate_hw");
        assert!(
            g.meta.rx_ts_ns <= now_tai && now_tai - g.meta.rx_ts_ns < 10_000_000_000,
            "TAI timestamp plausible"
        );
        assert!(g.meta.rx_ts_ns >= last_ts, "timestamps on one queue never go back");
        assert_eq!(g.meta.rx_seq, seq + 1, "packet {i}: numbered on its queue in the order steered");
        last_ts = g.meta.rx_ts_ns;
    }
    assert_eq!(counters["steered"], PACKETS, "{counters}");
    assert_eq!(counters["no_socket"], 0, "{counters}");
    assert_eq!(counters["timestamps"]["xdp"], PACKETS, "{counters}");
    assert_eq!(
        counters["queue_0_count"], PACKETS,
        "the mapped count is the last packet's number: {counters}"
    );
}

#[test]
fn tai_program_native_mode() {
    check(Mode::Native, Timestamps::Xdp, "tickgate_tai");
}

#[test]
fn tai_program_skb_mode() {
    check(Mode::Skb, Timestamps::Auto, "tickgate_tai");
}

#[test]
fn hw_program_native_mode_falls_back_per_packet() {
    check(Mode::Native, Timestamps::Nic, "tickgate_hw");
}
