//! Frames: one sealed tick's inputs in canonical order, chained to the previous frame by hash.
//!
//! Canonical encoding of a frame (all integers fixed-width big-endian):
//!
//! ```text
//! frame  = tick:u64  count:u64  input*count
//! input  = rx_ts_ns:u64  clock_kind:u8 (low nibble: 0 nic, 1 xdp; high: 0 command, 1 join,
//!          2 leave, 3 resync, 4 start, 5 end)
//!          client_id:u32  seq:u64
//!          client_frame:u32  payload_len:u32  payload
//! hash   = BLAKE3(prev_hash[32] || frame)     prev_hash of tick 0 = 32 zero bytes
//! ```
//!
//! The RX queue is deliberately not encoded, and inputs are ordered by content alone (see
//! [`frame_order`]), so the hash does not depend on how many queues there were or which one an
//! input came through. BLAKE3 is a frozen specification with official test vectors and one
//! output on every platform and SIMD path, and it hashes a large frame at several GB/s.

use std::cmp::Ordering;
use std::io::{self, Write};

use base64::Engine as _;
use serde::Serialize;
use serde::ser::{SerializeStruct, Serializer};

use crate::input::Input;

/// The hash before tick 0.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// One sealed tick of one match. Every tick of a match gets a frame, empty or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The match (0 for protocol v1). Each match has its own ticks and hash chain.
    pub match_id: u64,
    /// Tick number, counted from the match's epoch.
    pub tick: u64,
    /// The match's ticks per second (the run's, or its own when the game started it).
    pub tick_hz: u32,
    /// When the tick started, in the run's time base (the match's epoch plus `tick` ticks): the
    /// server time clients align their sending to. Not hashed (it follows from the epoch).
    pub start_ns: u64,
    /// The tick's inputs in [`frame_order`]. A late input moved here by `Late::Next` keeps its
    /// real `rx_ts_ns`, so it sorts first.
    pub inputs: Vec<Input>,
    /// `BLAKE3(previous frame's hash || canonical encoding of this frame)`.
    pub hash: [u8; 32],
    /// Players of the match who sent no command for this tick, ascending: members since an
    /// earlier tick (joined, not left) with no command and no leave in this one. Not hashed: it
    /// follows from the chain's joins, leaves and commands.
    pub absent: Vec<u32>,
    /// The match ended with this frame: its last player left. A later join of the same match id
    /// starts it again from tick 0.
    pub last: bool,
}

impl Frame {
    /// The hash as 64 lowercase hex digits.
    pub fn hash_hex(&self) -> String {
        hex(&self.hash)
    }
}

/// The order of inputs inside a frame: arrival time, then client id, then the client's sequence
/// number, then the remaining fields, so that it is total on content and the hash never depends
/// on arrival queue. (The merge breaks timestamp ties by queue instead; the frame re-sorts.)
/// Only inputs identical in every encoded field are then ordered by queue, which the hash cannot
/// see.
#[inline]
pub fn frame_order(a: &Input, b: &Input) -> Ordering {
    (a.rx.ns, a.client_id, a.seq)
        .cmp(&(b.rx.ns, b.client_id, b.seq))
        .then_with(|| {
            (a.client_frame, a.rx.clock, a.kind, &a.payload).cmp(&(
                b.client_frame,
                b.rx.clock,
                b.kind,
                &b.payload,
            ))
        })
        .then_with(|| a.queue.cmp(&b.queue))
}

/// Appends the canonical encoding of a frame (inputs already in [`frame_order`]) to `out`.
pub fn encode_frame(tick: u64, inputs: &[Input], out: &mut Vec<u8>) {
    let payloads: usize = inputs.iter().map(|i| i.payload.len()).sum();
    out.reserve(16 + inputs.len() * 29 + payloads);
    encode_head(tick, inputs.len(), out);
    for input in inputs {
        encode_input(input, out);
    }
}

/// Appends the canonical encoding of each input (as inside a frame), without the frame's head.
pub fn encode_inputs(inputs: &[Input], out: &mut Vec<u8>) {
    for input in inputs {
        encode_input(input, out);
    }
}

fn encode_head(tick: u64, count: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(&tick.to_be_bytes());
    out.extend_from_slice(&(count as u64).to_be_bytes());
}

#[inline]
fn encode_input(input: &Input, out: &mut Vec<u8>) {
    out.extend_from_slice(&encode_input_head(input));
    out.extend_from_slice(&input.payload);
}

/// Bytes of an input's encoding ahead of its payload.
pub(super) const ENCODED_HEAD: usize = 29;

/// An input's encoding up to its payload.
#[inline]
pub(super) fn encode_input_head(input: &Input) -> [u8; ENCODED_HEAD] {
    let mut head = [0u8; ENCODED_HEAD];
    head[0..8].copy_from_slice(&input.rx.ns.to_be_bytes());
    // The kind rides in the clock byte's high nibble: a command encodes as it always has.
    head[8] = input.rx.clock.code() | (input.kind.code() << 4);
    head[9..13].copy_from_slice(&input.client_id.to_be_bytes());
    head[13..21].copy_from_slice(&input.seq.to_be_bytes());
    head[21..25].copy_from_slice(&input.client_frame.to_be_bytes());
    // Payloads come from single UDP datagrams (< 64 KiB); saturating keeps this total anyway.
    let len = u32::try_from(input.payload.len()).unwrap_or(u32::MAX);
    head[25..29].copy_from_slice(&len.to_be_bytes());
    head
}

/// The hash of a frame following `prev` (inputs already in [`frame_order`]).
pub fn chain_hash(prev: &[u8; 32], tick: u64, inputs: &[Input]) -> [u8; 32] {
    hash_with(prev, tick, inputs, &mut Vec::new())
}

/// Encoding is streamed into the hasher in blocks of this size: big enough for BLAKE3 to hash
/// 16 chunks side by side in SIMD lanes, small enough to stay in L2 rather than writing out and
/// reading back a whole frame's encoding.
pub(super) const HASH_BLOCK: usize = 64 * 1024;

pub(super) fn hash_with(prev: &[u8; 32], tick: u64, inputs: &[Input], scratch: &mut Vec<u8>) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(prev);
    scratch.clear();
    encode_head(tick, inputs.len(), scratch);
    for input in inputs {
        encode_input(input, scratch);
        if scratch.len() >= HASH_BLOCK {
            hasher.update(scratch);
            scratch.clear();
        }
    }
    hasher.update(scratch);
    hasher.finalize().into()
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    out
}

/// The JSON shape of a frame: `{"match":…,"tick":…,"tick_hz":…,"start_ns":…,"hash":"<hex>","inputs":[{"client":…,
/// "seq":…,"frame":…,"rx_ts_ns":…,"ts_source":"nic|xdp","queue":…,"kind":…,
/// "payload":"<base64>"}],"absent":[…],"last":false}`.
impl Serialize for Frame {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut frame = serializer.serialize_struct("Frame", 8)?;
        frame.serialize_field("match", &self.match_id)?;
        frame.serialize_field("tick", &self.tick)?;
        frame.serialize_field("tick_hz", &self.tick_hz)?;
        frame.serialize_field("start_ns", &self.start_ns)?;
        frame.serialize_field("hash", &self.hash_hex())?;
        frame.serialize_field("inputs", &JsonInputs(&self.inputs))?;
        frame.serialize_field("absent", &self.absent)?;
        frame.serialize_field("last", &self.last)?;
        frame.end()
    }
}

struct JsonInputs<'a>(&'a [Input]);

impl Serialize for JsonInputs<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(JsonInput))
    }
}

struct JsonInput<'a>(&'a Input);

impl Serialize for JsonInput<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let input = self.0;
        let mut out = serializer.serialize_struct("Input", 8)?;
        out.serialize_field("client", &input.client_id)?;
        out.serialize_field("seq", &input.seq)?;
        out.serialize_field("frame", &input.client_frame)?;
        out.serialize_field("rx_ts_ns", &input.rx.ns)?;
        out.serialize_field("ts_source", input.rx.clock.as_str())?;
        out.serialize_field("queue", &input.queue)?;
        out.serialize_field("kind", input.kind.as_str())?;
        out.serialize_field("payload", &base64::engine::general_purpose::STANDARD.encode(&input.payload))?;
        out.end()
    }
}

/// Writes frames as JSON lines, one frame per line.
#[derive(Debug)]
pub struct JsonLines<W: Write> {
    out: W,
}

impl<W: Write> JsonLines<W> {
    /// Writes to `out` (wrap a file in a `BufWriter`).
    pub fn new(out: W) -> Self {
        Self { out }
    }

    /// Writes one frame and a newline.
    pub fn write_frame(&mut self, frame: &Frame) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, frame)?;
        self.out.write_all(b"\n")
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Gives back the underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::input::{Clock, Timestamp};

    /// A command with a two-byte payload, by its ordering fields (the chain's tests use it too).
    pub(in crate::frame_queue) fn input(ts: u64, client: u32, seq: u64, queue: u16) -> Input {
        Input {
            kind: crate::input::InputKind::Command,
            rx: Timestamp { ns: ts, clock: Clock::Nic },
            queue,
            client_id: client,
            match_id: 0,
            seq,
            client_frame: 9,
            payload: [0xab, 0xcd].into(),
        }
    }

    #[test]
    fn the_encoding_is_the_documented_bytes() {
        let mut out = vec![];
        encode_frame(2, &[input(0x0102, 7, 3, 5)], &mut out);
        let want: Vec<u8> = [
            &[0, 0, 0, 0, 0, 0, 0, 2][..],
            &[0, 0, 0, 0, 0, 0, 0, 1],
            &[0, 0, 0, 0, 0, 0, 1, 2],
            &[0],
            &[0, 0, 0, 7],
            &[0, 0, 0, 0, 0, 0, 0, 3],
            &[0, 0, 0, 9],
            &[0, 0, 0, 2],
            &[0xab, 0xcd],
        ]
        .concat();
        assert_eq!(out, want);
    }

    #[test]
    fn the_hash_is_blake3_of_the_previous_hash_and_the_encoding() {
        let inputs = [input(5, 1, 1, 0)];
        let mut bytes = GENESIS_HASH.to_vec();
        encode_frame(0, &inputs, &mut bytes);
        assert_eq!(chain_hash(&GENESIS_HASH, 0, &inputs), *blake3::hash(&bytes).as_bytes());
        assert_eq!(chain_hash(&GENESIS_HASH, 0, &[]), *blake3::hash(&[0u8; 48]).as_bytes());
    }

    /// Golden vectors, also in docs/architecture.md: a change of encoding or hash must be a
    /// deliberate, versioned decision.
    #[test]
    fn an_event_hashes_apart_from_a_command_with_the_same_fields() {
        let command = input(1_000, 7, 3, 0);
        let join = Input { kind: crate::input::InputKind::Join, ..command.clone() };
        let leave = Input { kind: crate::input::InputKind::Leave, ..command.clone() };
        let h = |i: &Input| chain_hash(&GENESIS_HASH, 0, std::slice::from_ref(i));
        assert_ne!(h(&command), h(&join));
        assert_ne!(h(&join), h(&leave));
        let mut bytes = Vec::new();
        encode_frame(0, &[join], &mut bytes);
        assert_eq!(bytes[16 + 8], 0x10, "kind in the high nibble, clock (nic) in the low");
    }

    #[test]
    fn golden_hashes_do_not_change() {
        let empty = "01e67c8e323e7c19b4bedddac050e0e47914c01f7bf1a8ca4dc8a59ddf8ae8a0";
        assert_eq!(hex(&chain_hash(&GENESIS_HASH, 0, &[])), empty);
        let jump = Input {
            kind: crate::input::InputKind::Command,
            rx: Timestamp { ns: 1_000, clock: Clock::Xdp },
            queue: 3,
            client_id: 7,
            match_id: 0,
            seq: 42,
            client_frame: 9,
            payload: (*b"jump").into(),
        };
        let one = "0bf7336071e0e5435eacb3c378bf7f189a09acd2bc4adf84095363dae84e9919";
        assert_eq!(hex(&chain_hash(&GENESIS_HASH, 5, &[jump])), one);
    }

    #[test]
    fn json_lines_have_the_documented_shape() {
        let frame = Frame {
            match_id: 5,
            tick: 3,
            tick_hz: 60,
            start_ns: 3_000,
            inputs: vec![input(10, 7, 2, 1)],
            hash: [0xa5; 32],
            absent: vec![8, 9],
            last: false,
        };
        let mut out = JsonLines::new(Vec::new());
        out.write_frame(&frame).expect("write to a Vec");
        let empty = Frame {
            match_id: 0,
            tick: 4,
            tick_hz: 60,
            start_ns: 4_000,
            inputs: vec![],
            hash: [0; 32],
            absent: vec![],
            last: true,
        };
        out.write_frame(&empty).expect("write to a Vec");
        let text = String::from_utf8(out.into_inner()).expect("JSON is UTF-8");
        let want = format!(
            "{{\"match\":5,\"tick\":3,\"tick_hz\":60,\"start_ns\":3000,\"hash\":\"{}\",\"inputs\":[{{\"client\":7,\"seq\":2,\"frame\":9,\
             \"rx_ts_ns\":10,\"ts_source\":\"nic\",\"queue\":1,\"kind\":\"command\",\"payload\":\"q80=\"}}],\
             \"absent\":[8,9],\"last\":false}}\n\
             {{\"match\":0,\"tick\":4,\"tick_hz\":60,\"start_ns\":4000,\"hash\":\"{}\",\"inputs\":[],\"absent\":[],\"last\":true}}\n",
            "a5".repeat(32),
            "0".repeat(64)
        );
        assert_eq!(text, want);
    }
}
