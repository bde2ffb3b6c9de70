//! The C ABI as a C game server uses it: the committed header is the one cbindgen generates, and
//! a C program compiled against it and `libtickgate_capi.so` reads a ring tickgate wrote (the
//! worked example of docs/frame-ring.md) field for field. Needs gcc (scripts/setup.sh).

use std::{path::PathBuf, process::Command};

use tickgate::{
    frame_queue::{Frame, GENESIS_HASH, chain_hash},
    game::{Read, RingReader, RingWriter, encode_frame, record::encode_match_start, ring::kind},
    input::{Clock, Input, InputKind, Timestamp},
};

#[test]
fn the_committed_header_is_the_generated_one() {
    let generated = include_str!(concat!(env!("OUT_DIR"), "/tickgate.h"));
    let committed = include_str!("../include/tickgate.h");
    assert_eq!(
        committed, generated,
        "userspace/capi/include/tickgate.h is stale: copy $OUT_DIR/tickgate.h over it"
    );
}

/// The shared library next to this test binary (cargo builds the cdylib with the crate).
fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let deps = exe.parent().expect("a directory").to_owned();
    for dir in [deps.clone(), deps.parent().expect("target/<profile>").to_owned()] {
        if dir.join("libtickgate_capi.so").exists() {
            return dir;
        }
    }
    panic!("libtickgate_capi.so not found near {}", deps.display());
}

#[test]
fn a_c_program_reads_a_ring_through_the_abi() {
    let dir = std::env::temp_dir().join(format!("tickgate-capi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let ring = dir.join("match-7.ring");
    let input = |kind, ns, seq, frame, payload: &[u8]| Input {
        kind,
        rx: Timestamp { ns, clock: Clock::Xdp },
        queue: 0,
        client_id: 42,
        match_id: 7,
        seq,
        client_frame: frame,
        payload: payload.into(),
    };
    let inputs = vec![
        input(InputKind::Join, 39_000_000, 3, 0, b"ab"),
        input(InputKind::Command, 40_000_000, 5, 1001, &[0x08, 0x05]),
    ];
    let hash = chain_hash(&GENESIS_HASH, 2, &inputs);
    let frame = Frame {
        match_id: 7,
        tick: 2,
        tick_hz: 60,
        start_ns: 33_333_334,
        inputs,
        hash,
        absent: vec![43],
        last: false,
    };
    let mut w = RingWriter::create(&ring, 7, 60, 4096, 0o600, None).expect("a ring");
    w.append(kind::MATCH_START, &encode_match_start(7, 60, 0)).expect("fits");
    let mut body = Vec::new();
    encode_frame(&frame, &mut body);
    w.append(kind::FRAME, &body).expect("fits");
    w.end();
    let out_ring = dir.join("match-7.out");
    let mut tickgate_side =
        RingReader::create_for_game(&out_ring, 7, 60, 4096, 0o600, None).expect("a .out ring");

    let exe = dir.join("reader");
    let lib = library_dir();
    let include = concat!(env!("CARGO_MANIFEST_DIR"), "/include");
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reader.c");
    let built = Command::new("gcc")
        .args(["-std=c11", "-Wall", "-Werror", "-I", include, source, "-o"])
        .arg(&exe)
        .arg("-L")
        .arg(&lib)
        .arg("-ltickgate_capi")
        .output()
        .unwrap_or_else(|e| panic!("cannot run gcc ({e}): scripts/setup.sh installs it"));
    assert!(built.status.success(), "gcc: {}", String::from_utf8_lossy(&built.stderr));
    let ran = Command::new(&exe)
        .arg(&ring)
        .arg(&out_ring)
        .env("LD_LIBRARY_PATH", &lib)
        .output()
        .expect("the reader runs");
    assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
    let text = String::from_utf8(ran.stdout).expect("text");
    let want = format!(
        "match 7\nrecord kind=1 seq=0 len=24\nframe seq=1 tick=2 hz=60 start=33333334 last=0 hash={:02x}{:02x}.. \
         input=1/42/3/39000000/0/6162 input=0/42/5/40000000/1001/0805 absent=43\nend -1\nsent 0 0\n",
        hash[0], hash[1]
    );
    assert_eq!(text, want);
    // What the C program wrote into the .out ring is what tickgate reads back.
    let mut got = Vec::new();
    while let Read::Record { kind, body, .. } = tickgate_side.read() {
        got.push((kind, body));
    }
    let mut to_player = 42u64.to_le_bytes().to_vec();
    to_player.extend_from_slice(b"hi");
    assert_eq!(got, vec![(kind::TO_MATCH, b"hello from c".to_vec()), (kind::TO_PLAYER, to_player)]);
    std::fs::remove_dir_all(&dir).expect("removed");
}
