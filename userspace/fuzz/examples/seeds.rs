//! Writes the committed seed corpora, `corpus/<target>/seed-*`: a handful of valid inputs per
//! target and one for each way of being refused, so every run starts past the easy checks.
//!
//! `cargo run --example seeds` from `userspace/fuzz` (stable is enough). Deterministic: rerun it
//! after a wire or log format change and commit what changed.

use std::{fs, path::Path};

use prost::Message as _;
use tickgate::{
    frame_queue::{Config, Epoch, Late, Pipeline},
    input::{Clock, Input, Timestamp},
    record::{Record, RecordWriter, RunConfig},
    sequencer::Item,
    wire,
};
use tickgate_common::{
    frame::{Frame, Ip, arp_request},
    wire::{HEADER_LEN, Kind, offset},
};
use tickgate_proto::{Action, InputFrame, PlayerCommand, SyncAck};

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (target, seeds) in
        [("header", header()), ("classify", classify()), ("decode", decode()), ("record", record())]
    {
        let dir = root.join(target);
        fs::create_dir_all(&dir)?;
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("seed-")) {
                fs::remove_file(path)?;
            }
        }
        for (i, (name, bytes)) in seeds.iter().enumerate() {
            fs::write(dir.join(format!("seed-{i:02}-{name}")), bytes)?;
        }
        println!("{target}: {} seeds", seeds.len());
    }
    Ok(())
}

fn command(frame: u32, action: Action) -> PlayerCommand {
    PlayerCommand {
        command_id: frame * 3,
        entity_id: 17,
        target_id: if action == Action::Attack { 23 } else { 0 },
        action: action as i32,
        client_timestamp_us: 1_700_000_000_000_000 + u64::from(frame) * 16_667,
        client_frame: frame,
    }
}

fn input(first_seq: u64, count: u32) -> Vec<u8> {
    let actions = [Action::Move, Action::Attack, Action::Idle, Action::Use, Action::Stop];
    let commands = (0..count).map(|i| command(100 + i, actions[i as usize % actions.len()])).collect();
    let mut out = Vec::new();
    wire::encode_input(7, 100 + count, &InputFrame { first_seq, commands }, &mut out).expect("valid frame");
    out
}

fn sync() -> Vec<u8> {
    let ack = SyncAck { tick: 1234, state_hash: 0x0123_4567_89ab_cdef, client_id: 7, version: 3 };
    let mut out = Vec::new();
    wire::encode_sync(140, 41, &ack, &mut out).expect("valid ack");
    out
}

fn raw(kind: Kind, seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    wire::encode_raw(kind, 7, 100, seq, payload, &mut out).expect("short payload");
    out
}

/// The UDP length (two bytes) followed by the UDP payload.
fn header() -> Vec<(&'static str, Vec<u8>)> {
    let with_len = |udp: Vec<u8>, len: usize| [&(len as u16).to_be_bytes()[..], &udp].concat();
    let exact = |udp: Vec<u8>| {
        let len = udp.len();
        with_len(udp, len)
    };
    let patched = |at: usize, value: u8| {
        let mut p = input(5, 1);
        p[at] = value;
        exact(p)
    };
    vec![
        ("input", exact(input(5, 1))),
        ("sync", exact(sync())),
        ("header-only", exact(raw(Kind::Input, 0, &[]))),
        ("largest", exact(raw(Kind::Sync, 0, &[0; tickgate_common::wire::MAX_PAYLOAD_LEN]))),
        ("bad-magic", patched(1, 0xF3)),
        ("bad-version", patched(offset::VERSION, 2)),
        ("bad-kind", patched(offset::KIND, 3)),
        ("udp-longer", with_len(input(5, 1), input(5, 1).len() + 1)),
        ("too-short", exact(input(5, 1)[..HEADER_LEN - 1].to_vec())),
    ]
}

/// Ethernet frames.
fn classify() -> Vec<(&'static str, Vec<u8>)> {
    let packet = input(9, 2);
    let v4 = || Ip::V4 { src: [10, 0, 0, 1], dst: [10, 0, 0, 2], options: 0, fragment: None };
    let v6 = |hop_by_hop, fragment| {
        let mut src = [0u8; 16];
        src[0] = 0xfd;
        src[15] = 1;
        let mut dst = src;
        dst[15] = 2;
        Ip::V6 { src, dst, hop_by_hop, fragment }
    };
    let udp = |ip| Frame::udp(ip, 40_000, 7777, &packet);
    let build = |f: Frame| f.build();
    let vlans = |ip, vlans: &[u16]| {
        let mut f = udp(ip);
        f.vlans = vlans.to_vec();
        f.build()
    };
    let mut bad_magic = packet.clone();
    bad_magic[0] = 0;
    let mut truncated = udp(v4());
    truncated.udp_len_override = Some(packet.len() as u16 + 8 + 40);
    vec![
        ("ipv4", build(udp(v4()))),
        ("ipv6", build(udp(v6(false, None)))),
        (
            "ipv4-options",
            build(udp(Ip::V4 { src: [192, 0, 2, 1], dst: [192, 0, 2, 2], options: 12, fragment: None })),
        ),
        ("vlan-ipv4", vlans(v4(), &[100])),
        ("qinq-ipv6", vlans(v6(false, None), &[10, 20])),
        ("ipv6-hbh-fragment0", build(udp(v6(true, Some((false, 0)))))),
        ("ipv6-first-fragment", build(udp(v6(false, Some((true, 0)))))),
        (
            "ipv4-first-fragment",
            build(udp(Ip::V4 {
                src: [10, 0, 0, 1],
                dst: [10, 0, 0, 2],
                options: 0,
                fragment: Some((true, 0)),
            })),
        ),
        ("truncated", build(truncated)),
        ("bad-magic", build(Frame::udp(v4(), 40_000, 7777, &bad_magic))),
        ("arp", arp_request()),
    ]
}

/// UDP payloads.
fn decode() -> Vec<(&'static str, Vec<u8>)> {
    // A command with a field this build does not know (number 9), which must reach the game.
    let mut extended = command(50, Action::Move).encode_to_vec();
    extended.extend_from_slice(&[9 << 3, 42]);
    let mut frame = Vec::new();
    prost::encoding::uint64::encode(1, &11, &mut frame);
    prost::encoding::bytes::encode(2, &extended, &mut frame);
    let bad_action = InputFrame { first_seq: 1, commands: vec![command(1, Action::Unspecified)] };
    let mut bad_checksum = input(5, 1);
    bad_checksum[offset::CHECKSUM] ^= 1;
    vec![
        ("input-1", input(0, 1)),
        ("input-3", input(1_000, 3)),
        ("input-32", input(u64::MAX - 31, 32)),
        ("sync", sync()),
        ("unknown-field", raw(Kind::Input, 11, &frame)),
        ("bad-action", raw(Kind::Input, 1, &bad_action.encode_to_vec())),
        (
            "seq-mismatch",
            raw(
                Kind::Input,
                99,
                &InputFrame { first_seq: 1, commands: vec![command(1, Action::Idle)] }.encode_to_vec(),
            ),
        ),
        ("empty-input", raw(Kind::Input, 0, &[])),
        (
            "sync-other-client",
            raw(Kind::Sync, 0, &SyncAck { client_id: 8, ..Default::default() }.encode_to_vec()),
        ),
        ("bad-checksum", bad_checksum),
    ]
}

/// Record logs.
fn record() -> Vec<(&'static str, Vec<u8>)> {
    let run = |late, epoch| RunConfig {
        config: Config { tick_hz: 1_000, grace_us: 300, late, epoch, ..Config::default() },
        queues: vec![3, 5],
    };
    let input = |ts: u64, client: u32, seq: u64, queue: u16| Input {
        kind: tickgate::input::InputKind::Command,
        rx: Timestamp { ns: ts, clock: Clock::Xdp },
        queue,
        client_id: client,
        match_id: 0,
        seq,
        client_frame: seq as u32,
        payload: vec![client as u8; (seq % 3) as usize].into(),
    };
    // A short two-queue run with a late input, recorded by the pipeline itself.
    let recorded = {
        let run = run(Late::Next, Epoch::FirstInput);
        let writer = RecordWriter::new(Vec::new(), &run).expect("memory");
        let mut p = Pipeline::with_recorder(&run.config, 2, writer).expect("valid config");
        const MS: u64 = 1_000_000;
        for step in 0..6u64 {
            let t = 7 * MS + step * 400_000;
            p.feed((step % 2) as usize, Item::Input(input(t, step as u32 % 3, step, 3))).expect("valid");
            p.feed(((step + 1) % 2) as usize, Item::Watermark(t + 100_000)).expect("valid");
        }
        p.feed(1, Item::Input(input(7 * MS, 9, 50, 5))).expect("valid");
        p.feed(0, Item::Close).expect("valid");
        p.feed(1, Item::Close).expect("valid");
        p.into_recorder().finish().expect("memory")
    };
    // Every record kind, appended by hand, with a fixed epoch.
    let appended = {
        let mut w = RecordWriter::new(Vec::new(), &run(Late::Drop, Epoch::At(1_000))).expect("memory");
        for record in [
            Record::Item { slot: 0, item: Item::Input(input(2_000, 1, 1, 3)) },
            Record::Item { slot: 1, item: Item::Watermark(3_000_000) },
            Record::Epoch { match_id: 0, epoch_ns: 1_000 },
            Record::Frame { match_id: 0, tick: 0, hash: [7; 32] },
            Record::Item { slot: 1, item: Item::Close },
        ] {
            w.append(&record).expect("memory");
        }
        w.finish().expect("memory")
    };
    let config_only = RecordWriter::new(Vec::new(), &run(Late::Next, Epoch::FirstInput))
        .expect("memory")
        .finish()
        .expect("memory");
    let torn = recorded[..recorded.len() - 5].to_vec();
    vec![("recorded", recorded), ("every-kind", appended), ("config-only", config_only), ("torn", torn)]
}
