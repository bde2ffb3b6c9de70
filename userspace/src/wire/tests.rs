use prost::{
    Message,
    encoding::{WireType, encode_key, encode_varint},
};
use tickgate_common::wire::{self as header, HEADER_LEN, Kind, MAX_PAYLOAD_LEN};
use tickgate_proto::{Action, InputFrame, PlayerCommand, SyncAck};

use super::{decode::known_action, *};
use crate::input::{Input, Timestamp};

/// Counts heap allocations made by the current thread, so tests can assert there are none.
pub(crate) mod alloc_count {
    use std::{
        alloc::{GlobalAlloc, Layout, System},
        cell::Cell,
    };

    std::thread_local! {
        static COUNT: Cell<u64> = const { Cell::new(0) };
    }

    struct Counting;

    // SAFETY: every call is forwarded unchanged to `System`, which upholds GlobalAlloc.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // `try_with`: allocations during thread teardown are not counted, not a panic.
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
            // SAFETY: the caller's obligations for `alloc` are passed through unchanged.
            unsafe { System.alloc(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: `ptr` came from `System.alloc` with this `layout`, via `alloc` above.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    /// Runs `f` and returns its result with the number of allocations it made.
    pub(crate) fn allocations<T>(f: impl FnOnce() -> T) -> (T, u64) {
        let before = COUNT.with(Cell::get);
        let out = f();
        (out, COUNT.with(Cell::get) - before)
    }
}

fn cmd(command_id: u32, action: Action, client_frame: u32) -> PlayerCommand {
    PlayerCommand {
        command_id,
        entity_id: 7,
        target_id: 0,
        action: action as i32,
        client_timestamp_us: 0,
        client_frame,
    }
}

fn input_packet(client_id: u32, frame: &InputFrame) -> Vec<u8> {
    let mut out = Vec::new();
    encode_input(client_id, 100, frame, &mut out).unwrap();
    out
}

fn raw_packet(kind: Kind, client_id: u32, seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_raw(kind, client_id, 100, seq, payload, &mut out).unwrap();
    out
}

fn sync_packet(ack: &SyncAck) -> Vec<u8> {
    let mut out = Vec::new();
    encode_sync(100, 9, ack, &mut out).unwrap();
    out
}

fn seqs(packet: &InputPacket<'_>) -> Vec<u64> {
    packet.commands().map(|c| c.seq).collect()
}

#[test]
fn crc32c_is_castagnoli() {
    assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    // The checksum field does not take part: any value there gives the same checksum.
    let mut head = [0xAAu8; HEADER_LEN];
    let a = checksum(&head, b"xyz");
    head[header::offset::CHECKSUM] ^= 0xFF;
    assert_eq!(checksum(&head, b"xyz"), a);
    head[0] ^= 1;
    assert_ne!(checksum(&head, b"xyz"), a);
}

#[test]
fn input_round_trip() {
    let frame = InputFrame {
        first_seq: 40,
        commands: vec![cmd(1, Action::Move, 10), cmd(2, Action::Attack, 11), cmd(3, Action::Stop, 12)],
    };
    let bytes = input_packet(0xC0FFEE, &frame);
    let Ok(Packet::Input(packet)) = decode(&bytes) else { panic!("valid packet rejected") };
    assert_eq!(packet.header.client_id, 0xC0FFEE);
    assert_eq!(packet.header.client_frame, 100);
    assert_eq!(packet.header.seq, 42);
    assert_eq!(packet.header.kind, Kind::Input);
    assert_eq!(usize::from(packet.header.payload_len), bytes.len() - HEADER_LEN);
    assert_eq!(seqs(&packet), [40, 41, 42]);
    assert_eq!(packet.frame(), frame);
    for (c, expected) in packet.commands().zip(&frame.commands) {
        assert_eq!(&c.command(), expected);
        assert_eq!(c.client_id, 0xC0FFEE);
        assert_eq!(PlayerCommand::decode(c.raw).unwrap(), *expected);
    }
}

#[test]
fn sync_round_trip() {
    let ack = SyncAck { tick: 12_345, state_hash: 0xDEAD_BEEF_0BAD_F00D, client_id: 77, version: 3 };
    let bytes = sync_packet(&ack);
    let Ok(Packet::Sync(packet)) = decode(&bytes) else { panic!("valid packet rejected") };
    assert_eq!(packet.ack, ack);
    assert_eq!(packet.header.client_id, 77);
    assert_eq!(packet.header.seq, 9);
    assert_eq!(packet.header.kind, Kind::Sync);
    // An all-default ack is an empty payload, and still valid for client 0.
    let empty = sync_packet(&SyncAck::default());
    assert_eq!(empty.len(), HEADER_LEN);
    assert!(matches!(decode(&empty), Ok(Packet::Sync(p)) if p.ack == SyncAck::default()));
}

#[test]
fn seqs_up_to_u64_max() {
    let frame = InputFrame { first_seq: u64::MAX - 1, commands: vec![cmd(1, Action::Idle, 0); 2] };
    let bytes = input_packet(1, &frame);
    let Ok(Packet::Input(packet)) = decode(&bytes) else { panic!("valid packet rejected") };
    assert_eq!(seqs(&packet), [u64::MAX - 1, u64::MAX]);
    let over = InputFrame { first_seq: u64::MAX - 1, commands: vec![cmd(1, Action::Idle, 0); 3] };
    let mut out = Vec::new();
    assert_eq!(
        encode_input(1, 0, &over, &mut out),
        Err(EncodeError::SeqOverflow { first_seq: u64::MAX - 1, count: 3 })
    );
    // Forged with a header seq that cannot be right: the numbers would pass u64::MAX.
    let bytes = raw_packet(Kind::Input, 1, u64::MAX, &over.encode_to_vec());
    assert_eq!(
        decode(&bytes).unwrap_err(),
        WireError::SeqMismatch { first_seq: u64::MAX - 1, count: 3, header_seq: u64::MAX }
    );
}

#[test]
fn to_input_is_a_one_command_frame() {
    for first_seq in [0, 1, 300, u64::MAX - 1] {
        let frame = InputFrame {
            first_seq,
            commands: vec![
                cmd(5, Action::Use, 70),
                PlayerCommand { target_id: 9, ..cmd(6, Action::Move, 71) },
            ],
        };
        let bytes = input_packet(3, &frame);
        let Ok(Packet::Input(packet)) = decode(&bytes) else { panic!("valid packet rejected") };
        let inputs: Vec<Input> = packet.commands().map(|c| c.to_input(Timestamp::nic(555), 4, 0)).collect();
        assert_eq!(inputs.len(), 2);
        for (i, (input, command)) in inputs.iter().zip(&frame.commands).enumerate() {
            let seq = first_seq + i as u64;
            assert_eq!(input.seq, seq);
            assert_eq!(input.client_id, 3);
            assert_eq!(input.client_frame, command.client_frame);
            assert_eq!((input.rx.ns, input.rx.clock, input.queue), (555, crate::input::Clock::Nic, 4));
            let expected = InputFrame { first_seq: seq, commands: vec![*command] };
            assert_eq!(input.payload, expected.encode_to_vec(), "prost's own encoding");
        }
    }
}

#[test]
fn a_command_of_a_long_running_session_is_held_inline() {
    // Ten million inputs into a session, entity and target ids in the thousands, a TAI time in µs.
    let seq = 10_000_000;
    let command = PlayerCommand {
        command_id: seq as u32,
        entity_id: 1_000,
        target_id: 1_000,
        action: Action::Attack as i32,
        client_timestamp_us: 1_800_000_000_000_000,
        client_frame: seq as u32,
    };
    let bytes = input_packet(3, &InputFrame { first_seq: seq, commands: vec![command] });
    let Ok(Packet::Input(packet)) = decode(&bytes) else { panic!("valid packet rejected") };
    let input = packet.commands().next().expect("one command").to_input(Timestamp::xdp(1), 0, 0);
    assert!(input.payload.is_inline(), "{} bytes", input.payload.len());
    assert_eq!(input.payload.len(), 34);
}

#[test]
fn unknown_fields_reach_the_game() {
    // A command from a newer client: field 15 (varint 99) is unknown here.
    let mut command = cmd(1, Action::Move, 5).encode_to_vec();
    command.extend_from_slice(&[15 << 3, 99]);
    let mut payload = Vec::new();
    encode_key(2, WireType::LengthDelimited, &mut payload);
    encode_varint(command.len() as u64, &mut payload);
    payload.extend_from_slice(&command);
    payload.extend_from_slice(&[0xF8, 0x01, 0x07]); // top-level unknown field 31 = 7
    let bytes = raw_packet(Kind::Input, 8, 0, &payload);
    let Ok(Packet::Input(packet)) = decode(&bytes) else { panic!("valid packet rejected") };
    let c = packet.commands().next().unwrap();
    assert_eq!(c.command(), cmd(1, Action::Move, 5));
    assert_eq!(c.raw, &command[..]);
    let input = c.to_input(Timestamp::xdp(0), 0, 0);
    assert!(input.payload.ends_with(&[15 << 3, 99]));
    let decoded = InputFrame::decode(&input.payload[..]).unwrap();
    assert_eq!(decoded.commands, [cmd(1, Action::Move, 5)]);
}

#[test]
fn last_value_wins_as_in_prost() {
    // first_seq twice (7 then 3) and action twice in one command (0 then MOVE): prost keeps the
    // last of each, and so must the checks.
    let command = [0x20, 0x00, 0x20, 0x02];
    let payload = [0x08, 0x07, 0x12, 0x04, command[0], command[1], command[2], command[3], 0x08, 0x03];
    let prost_view = InputFrame::decode(&payload[..]).unwrap();
    assert_eq!(prost_view.first_seq, 3);
    assert_eq!(prost_view.commands[0].action, Action::Move as i32);
    let bytes = raw_packet(Kind::Input, 1, 3, &payload);
    let Ok(Packet::Input(packet)) = decode(&bytes) else { panic!("valid packet rejected") };
    assert_eq!(packet.frame(), prost_view);
    // A varint action of 2^32 + 2 truncates to 2 (MOVE) in prost; the check agrees.
    let mut payload = vec![0x12, 0];
    let mut command = vec![0x20];
    encode_varint((1 << 32) + 2, &mut command);
    payload[1] = command.len() as u8;
    payload.extend_from_slice(&command);
    let bytes = raw_packet(Kind::Input, 1, 0, &payload);
    assert!(
        matches!(decode(&bytes), Ok(Packet::Input(p)) if p.commands().next().unwrap().command().action == 2)
    );
}

/// One packet for every rejection, in [`WireError::COUNTER_NAMES`] order.
fn one_of_each_rejection() -> Vec<Vec<u8>> {
    let good = input_packet(1, &InputFrame { first_seq: 0, commands: vec![cmd(1, Action::Move, 0)] });
    let mut bad_header = good.clone();
    bad_header[header::offset::VERSION] = 9;
    let mut bad_checksum = good.clone();
    *bad_checksum.last_mut().unwrap() ^= 0x40;
    let decode_error = raw_packet(Kind::Input, 1, 0, &[0x12, 0x05, 0x08]);
    let empty = raw_packet(Kind::Input, 1, 0, &[0x08, 0x05]);
    let many = InputFrame { first_seq: 0, commands: vec![cmd(1, Action::Move, 0); MAX_COMMANDS + 1] };
    let too_many = raw_packet(Kind::Input, 1, MAX_COMMANDS as u64, &many.encode_to_vec());
    let two = InputFrame { first_seq: 10, commands: vec![cmd(1, Action::Move, 0); 2] };
    let seq_mismatch = raw_packet(Kind::Input, 1, 10, &two.encode_to_vec());
    let unspecified = InputFrame { first_seq: 0, commands: vec![cmd(1, Action::Unspecified, 0)] };
    let bad_action = raw_packet(Kind::Input, 1, 0, &unspecified.encode_to_vec());
    let ack = SyncAck { client_id: 2, ..Default::default() };
    let client_mismatch = raw_packet(Kind::Sync, 1, 0, &ack.encode_to_vec());
    vec![bad_header, bad_checksum, decode_error, empty, too_many, seq_mismatch, bad_action, client_mismatch]
}

#[test]
fn each_rejection_is_counted_under_its_reason() {
    let mut counts = [0u64; WireError::COUNTER_NAMES.len()];
    for (i, bytes) in one_of_each_rejection().iter().enumerate() {
        let err = decode(bytes).unwrap_err();
        assert_eq!(err.counter_index(), i, "{err}");
        assert_eq!(err.counter_name(), WireError::COUNTER_NAMES[i]);
        counts[err.counter_index()] += 1;
    }
    assert_eq!(counts, [1; WireError::COUNTER_NAMES.len()]);
    let unknown =
        InputFrame { first_seq: 0, commands: vec![PlayerCommand { action: 99, ..Default::default() }] };
    let bytes = raw_packet(Kind::Input, 1, 0, &unknown.encode_to_vec());
    assert_eq!(decode(&bytes).unwrap_err(), WireError::BadAction { value: 99 });
}

#[test]
fn decode_allocates_nothing() {
    let frame = InputFrame { first_seq: 5, commands: vec![cmd(1, Action::Move, 0); MAX_COMMANDS] };
    let input = input_packet(1, &frame);
    let sync = sync_packet(&SyncAck { tick: 1, state_hash: 2, client_id: 3, version: 4 });
    let rejects = one_of_each_rejection();
    // The counter itself must see allocations, or the zeros below prove nothing.
    assert_eq!(alloc_count::allocations(|| Vec::<u8>::with_capacity(1)).1, 1);
    // Warm up lazily initialised state (CPU feature detection in crc32c) outside the count.
    let _ = decode(&input);
    let (ok, n) = alloc_count::allocations(|| decode(&input).is_ok() && decode(&sync).is_ok());
    assert!(ok);
    assert_eq!(n, 0, "accepted packets allocated");
    let (errors, n) = alloc_count::allocations(|| rejects.iter().filter(|b| decode(b).is_err()).count());
    assert_eq!(errors, rejects.len());
    assert_eq!(n, 0, "rejected packets allocated");
}

#[test]
fn every_single_bit_flip_is_rejected() {
    let frame =
        InputFrame { first_seq: 1000, commands: vec![cmd(1, Action::Move, 9), cmd(2, Action::Use, 10)] };
    let ack = SyncAck { tick: 5, state_hash: 6, client_id: 0x1234, version: 1 };
    for good in [input_packet(0x1234, &frame), sync_packet(&ack)] {
        assert!(decode(&good).is_ok());
        for bit in 0..good.len() * 8 {
            let mut bad = good.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let err = decode(&bad).expect_err("a flipped bit was accepted");
            assert!(
                matches!(err, WireError::BadHeader(_) | WireError::BadChecksum { .. }),
                "bit {bit}: {err}"
            );
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = fastrand::Rng::with_seed(0x9E37_79B9_7F4A_7C15);
    let mut counts = [0u64; WireError::COUNTER_NAMES.len()];
    let mut buf = [0u8; 96];
    let mut accepted = 0;
    for round in 0..200_000 {
        for b in buf.iter_mut() {
            *b = rng.u64(..) as u8;
        }
        let len = rng.u64(..buf.len() as u64 + 1) as usize;
        let bytes: &[u8] = if round % 2 == 0 {
            &buf[..len]
        } else {
            // Half of them get a valid header and checksum, so the protobuf scan runs.
            let kind = if round % 4 == 1 { Kind::Input } else { Kind::Sync };
            let mut out = Vec::new();
            encode_raw(kind, rng.u64(..) as u32, 0, rng.u64(..4), &buf[..len.min(60)], &mut out).unwrap();
            buf[..out.len()].copy_from_slice(&out);
            &buf[..out.len()]
        };
        match decode(bytes) {
            Ok(_) => accepted += 1,
            Err(e) => counts[e.counter_index()] += 1,
        }
    }
    assert_eq!(accepted + counts.iter().sum::<u64>(), 200_000);
    assert!(counts[0] > 90_000, "raw random bytes fail the header: {counts:?}");
    assert!(counts[2] > 10_000, "random payloads fail the protobuf scan: {counts:?}");
}

/// Appends a random protobuf message. `well_formed`: only valid varints, lengths and wire
/// types, and the expected wire type for known fields; otherwise anything goes.
fn gen_message(rng: &mut fastrand::Rng, out: &mut Vec<u8>, nested: bool, well_formed: bool) {
    for _ in 0..rng.u64(..if nested { 5 } else { 6 }) {
        let number = [1u32, 2, 3, 4, 5, 6, 15, 1000, (1 << 29) - 1][rng.u64(..9) as usize];
        let known = if nested { (1..=6).contains(&number) } else { number <= 2 };
        let wire = if !well_formed && rng.u64(..8) == 0 {
            rng.u64(..8)
        } else if known {
            if nested || number == 1 { 0 } else { 2 }
        } else {
            [0, 1, 2, 5][rng.u64(..4) as usize]
        };
        encode_varint((u64::from(number) << 3) | wire, out);
        match wire {
            0 => {
                if !well_formed && rng.u64(..10) == 0 {
                    out.extend_from_slice(&[0xFF; 9]);
                    out.push(rng.u64(..4) as u8);
                } else if nested && number == 4 {
                    encode_varint(rng.u64(..8), out);
                } else {
                    encode_varint(rng.u64(..) >> rng.u64(..64), out);
                }
            }
            1 => out.extend_from_slice(&rng.u64(..).to_le_bytes()),
            5 => out.extend_from_slice(&(rng.u64(..) as u32).to_le_bytes()),
            2 => {
                let mut inner = Vec::new();
                if !nested && number == 2 {
                    gen_message(rng, &mut inner, true, well_formed);
                } else {
                    inner.extend((0..rng.u64(..6)).map(|_| rng.u64(..) as u8));
                }
                let len = inner.len() as u64;
                let len = if !well_formed && rng.u64(..10) == 0 { len + rng.u64(..3) } else { len };
                encode_varint(len, out);
                out.extend_from_slice(&inner);
            }
            _ => {}
        }
    }
}

/// The scanner must reject everything prost rejects, accept what prost accepts (when no groups
/// are involved), and the semantic checks must agree with prost's view of the message.
#[test]
fn scan_agrees_with_prost() {
    let mut rng = fastrand::Rng::with_seed(0x0123_4567_89AB_CDEF);
    let mut agreed = [0u64; 3];
    for round in 0..100_000 {
        let well_formed = round % 2 == 0;
        let mut payload = Vec::new();
        gen_message(&mut rng, &mut payload, false, well_formed);
        if !well_formed && !payload.is_empty() && rng.u64(..2) == 0 {
            let at = rng.u64(..payload.len() as u64) as usize;
            payload[at] ^= 1 << rng.u64(..8);
        }
        if payload.len() > MAX_PAYLOAD_LEN {
            continue;
        }
        let prost_view = InputFrame::decode(&payload[..]);
        let seq = match &prost_view {
            Ok(f) if !f.commands.is_empty() => f.first_seq.wrapping_add(f.commands.len() as u64 - 1),
            _ => 0,
        };
        let bytes = raw_packet(Kind::Input, 1, seq, &payload);
        let ours = decode(&bytes);
        match (&prost_view, ours) {
            (Err(_), Err(WireError::Decode(_))) => agreed[0] += 1,
            (Err(e), other) => panic!("prost rejects ({e}) but decode gives {other:?}: {payload:02x?}"),
            (Ok(_), Err(WireError::Decode(reason))) => {
                assert!(!well_formed, "well-formed payload rejected ({reason}): {payload:02x?}");
                assert_eq!(reason, "groups are not supported", "{payload:02x?}");
            }
            (Ok(frame), result) => {
                let n = frame.commands.len();
                let bad_action = frame.commands.iter().find(|c| !known_action(c.action)).map(|c| c.action);
                let expected = if n == 0 {
                    Err(WireError::EmptyInput)
                } else if n > MAX_COMMANDS {
                    Err(WireError::TooManyCommands { count: n })
                } else if let Some(value) = bad_action {
                    Err(WireError::BadAction { value })
                } else if frame.first_seq.checked_add(n as u64 - 1).is_none() {
                    Err(WireError::SeqMismatch { first_seq: frame.first_seq, count: n, header_seq: seq })
                } else {
                    Ok(frame.clone())
                };
                let got = result.map(|p| match p {
                    Packet::Input(p) => p.frame(),
                    Packet::Sync(_) => unreachable!("kind is Input"),
                });
                assert_eq!(got, expected, "{payload:02x?}");
                agreed[if got.is_ok() { 1 } else { 2 }] += 1;
            }
        }
    }
    // The generator must reach every outcome, or this test proves little.
    assert!(agreed.iter().all(|&n| n > 1_000), "{agreed:?}");
}

#[test]
fn malformed_protobuf_each_caught() {
    let cases: [(&[u8], &str); 8] = [
        (&[0x08], "truncated varint"),
        (&[0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02], "varint overflows u64"),
        (
            &[0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x80, 0x00],
            "varint longer than 10 bytes",
        ),
        (&[0x80, 0x80, 0x80, 0x80, 0x10], "field key exceeds u32"),
        (&[0x00, 0x00], "field number 0"),
        (&[0x0B, 0x0C], "groups are not supported"),
        (&[0x0E], "invalid wire type"),
        (&[0x12, 0x01], "length past the end"),
    ];
    for (payload, reason) in cases {
        assert!(InputFrame::decode(payload).is_err(), "prost accepts {payload:02x?}");
        let bytes = raw_packet(Kind::Input, 1, 0, payload);
        assert_eq!(decode(&bytes).unwrap_err(), WireError::Decode(reason));
    }
    // The largest valid varint: ten bytes, the last one 1.
    let mut max = vec![0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01];
    max.extend_from_slice(&[0x12, 0x02, 0x20, 0x01]);
    let bytes = raw_packet(Kind::Input, 1, u64::MAX, &max);
    assert!(matches!(decode(&bytes), Ok(Packet::Input(p)) if p.first_seq == u64::MAX));
    // Known fields with the wrong wire type.
    for payload in [&[0x09, 0, 0, 0, 0, 0, 0, 0, 0][..], &[0x10, 0x01], &[0x12, 0x02, 0x25, 0x01]] {
        let bytes = raw_packet(Kind::Input, 1, 0, payload);
        assert!(matches!(decode(&bytes), Err(WireError::Decode(_))), "{payload:02x?}");
    }
    let bytes = raw_packet(Kind::Sync, 0, 0, &[0x10, 0x01]);
    assert_eq!(decode(&bytes).unwrap_err(), WireError::Decode("state_hash is not fixed64"));
}

#[test]
fn encoder_refuses_what_decode_would() {
    let mut out = Vec::new();
    let empty = InputFrame::default();
    assert_eq!(encode_input(1, 0, &empty, &mut out), Err(EncodeError::EmptyInput));
    let many = InputFrame { first_seq: 0, commands: vec![cmd(1, Action::Move, 0); MAX_COMMANDS + 1] };
    assert_eq!(encode_input(1, 0, &many, &mut out), Err(EncodeError::TooManyCommands { count: 33 }));
    let big = vec![0u8; MAX_PAYLOAD_LEN + 1];
    assert_eq!(
        encode_raw(Kind::Input, 1, 0, 0, &big, &mut out),
        Err(EncodeError::PayloadTooLarge { len: MAX_PAYLOAD_LEN + 1 })
    );
    // The largest payload is fine, and decodes as far as the protobuf (zeros: field 0).
    encode_raw(Kind::Input, 1, 0, 0, &big[1..], &mut out).unwrap();
    assert_eq!(out.len(), HEADER_LEN + MAX_PAYLOAD_LEN);
    assert_eq!(decode(&out).unwrap_err(), WireError::Decode("field number 0"));
}

/// The worked example of `docs/protocol.md`, byte for byte.
pub(crate) const WORKED_EXAMPLE: &str = "\
f1 f2 01 01 00 1a 00 00 00 00 00 2a 00 00 03 e9
00 00 00 00 00 00 00 05 62 fa 13 88 08 04 12 09
08 01 10 07 20 02 30 e8 07 12 0b 08 02 10 07 18
09 20 03 30 e9 07";

pub(crate) fn worked_example() -> Vec<u8> {
    let mut out = Vec::new();
    encode_input(42, 1001, &worked_example_frame(), &mut out).unwrap();
    out
}

/// The example's `InputFrame`: player 42's inputs 4 (entity 7 moves, client frame 1000) and 5
/// (entity 7 attacks entity 9, frame 1001). Protocol v2's data example carries the same frame.
pub(crate) fn worked_example_frame() -> InputFrame {
    InputFrame {
        first_seq: 4,
        commands: vec![
            PlayerCommand {
                command_id: 1,
                entity_id: 7,
                target_id: 0,
                action: Action::Move as i32,
                client_timestamp_us: 0,
                client_frame: 1000,
            },
            PlayerCommand {
                command_id: 2,
                entity_id: 7,
                target_id: 9,
                action: Action::Attack as i32,
                client_timestamp_us: 0,
                client_frame: 1001,
            },
        ],
    }
}

/// Lowercase hex, 16 bytes per line, as the doc shows packets.
fn hex(bytes: &[u8]) -> String {
    let lines: Vec<String> = bytes
        .chunks(16)
        .map(|line| line.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" "))
        .collect();
    lines.join("\n")
}

#[test]
fn worked_example_matches_the_doc() {
    let bytes = worked_example();
    assert_eq!(hex(&bytes), WORKED_EXAMPLE);
    let Ok(Packet::Input(packet)) = decode(&bytes) else { panic!("the doc's example is rejected") };
    assert_eq!(seqs(&packet), [4, 5]);
    assert!(PROTOCOL_DOC.contains(WORKED_EXAMPLE), "docs/protocol.md does not show the example's bytes");
}

const PROTOCOL_DOC: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md"));

/// The doc shows the .proto without comments and blank lines: it must be exactly that.
#[test]
fn doc_shows_the_proto_as_compiled() {
    let proto = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../proto/proto/tickgate.proto"));
    let stripped: Vec<&str> =
        proto.lines().filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with("//")).collect();
    let block = PROTOCOL_DOC.split("```proto\n").nth(1).and_then(|rest| rest.split("```").next());
    let shown: Vec<&str> = block.expect("docs/protocol.md has no ```proto block").lines().collect();
    assert_eq!(shown, stripped);
}
