//! The bodies of a ring's records (little-endian, as the header). Normative in
//! `docs/frame-ring.md`:
//!
//! ```text
//! match start = match_id:u64 tick_hz:u32 reserved:u32 epoch_ns:u64
//! frame       = tick:u64 start_ns:u64 hash:[u8;32] tick_hz:u32 flags:u32 (bit 0: last)
//!               inputs:u32 absent:u32 input*inputs player:u32*absent
//! input       = kind:u8 clock:u8 reserved:u16 player:u32 seq:u64 rx_ns:u64 client_frame:u32
//!               payload_len:u32 payload, zero-padded to a multiple of 8
//! match end   = last_tick:u64
//! ```

use crate::frame_queue::Frame;
use crate::input::{Clock, Input, InputKind, Payload, Timestamp};

/// Bytes of a frame body before its inputs.
pub const FRAME_HEAD_LEN: usize = 64;
/// Bytes of an input before its payload.
pub const INPUT_HEAD_LEN: usize = 32;

/// Appends a frame's body to `out`.
pub fn encode_frame(frame: &Frame, out: &mut Vec<u8>) {
    out.extend_from_slice(&frame.tick.to_le_bytes());
    out.extend_from_slice(&frame.start_ns.to_le_bytes());
    out.extend_from_slice(&frame.hash);
    out.extend_from_slice(&frame.tick_hz.to_le_bytes());
    out.extend_from_slice(&u32::from(frame.last).to_le_bytes());
    out.extend_from_slice(&(frame.inputs.len() as u32).to_le_bytes());
    out.extend_from_slice(&(frame.absent.len() as u32).to_le_bytes());
    for input in &frame.inputs {
        out.push(input.kind.code());
        out.push(input.rx.clock.code());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&input.client_id.to_le_bytes());
        out.extend_from_slice(&input.seq.to_le_bytes());
        out.extend_from_slice(&input.rx.ns.to_le_bytes());
        out.extend_from_slice(&input.client_frame.to_le_bytes());
        out.extend_from_slice(&(input.payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&input.payload);
        out.resize(out.len().next_multiple_of(8), 0);
    }
    for player in &frame.absent {
        out.extend_from_slice(&player.to_le_bytes());
    }
}

/// A frame as the ring carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameRecord {
    /// The tick.
    pub tick: u64,
    /// When it started (the server's clock, ns).
    pub start_ns: u64,
    /// The chain hash.
    pub hash: [u8; 32],
    /// The match's tick rate.
    pub tick_hz: u32,
    /// The match ended with it.
    pub last: bool,
    /// Its inputs in frame order (`queue` and `match_id` are not carried: 0).
    pub inputs: Vec<Input>,
    /// Players who sent nothing.
    pub absent: Vec<u32>,
}

/// Decodes a frame body; every length is checked against the bytes present.
pub fn decode_frame(body: &[u8]) -> Option<FrameRecord> {
    let mut r = Le(body);
    let tick = r.u64()?;
    let start_ns = r.u64()?;
    let hash: [u8; 32] = r.take(32)?.try_into().ok()?;
    let tick_hz = r.u32()?;
    let flags = r.u32()?;
    let (inputs, absent) = (r.u32()? as usize, r.u32()? as usize);
    // Each input takes at least its head: a count beyond that is a lie.
    if inputs > body.len() / INPUT_HEAD_LEN || absent > body.len() / 4 {
        return None;
    }
    let inputs = (0..inputs)
        .map(|_| {
            let kind = InputKind::from_code(r.u8()?)?;
            let clock = Clock::from_code(r.u8()?)?;
            r.take(2)?;
            let client_id = r.u32()?;
            let seq = r.u64()?;
            let ns = r.u64()?;
            let client_frame = r.u32()?;
            let len = r.u32()? as usize;
            let payload = Payload::from(r.take(len)?);
            r.take(len.next_multiple_of(8) - len)?;
            Some(Input {
                kind,
                rx: Timestamp { ns, clock },
                queue: 0,
                client_id,
                match_id: 0,
                seq,
                client_frame,
                payload,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let absent = (0..absent).map(|_| r.u32()).collect::<Option<Vec<_>>>()?;
    r.0.is_empty().then_some(FrameRecord {
        tick,
        start_ns,
        hash,
        tick_hz,
        last: flags & 1 == 1,
        inputs,
        absent,
    })
}

/// A match start body.
pub fn encode_match_start(match_id: u64, tick_hz: u32, epoch_ns: u64) -> [u8; 24] {
    let mut out = [0u8; 24];
    out[..8].copy_from_slice(&match_id.to_le_bytes());
    out[8..12].copy_from_slice(&tick_hz.to_le_bytes());
    out[16..24].copy_from_slice(&epoch_ns.to_le_bytes());
    out
}

struct Le<'a>(&'a [u8]);

impl<'a> Le<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::frame_queue::{GENESIS_HASH, chain_hash};

    /// The frame of `docs/frame-ring.md`'s worked example: match 7's tick 2 at 60 Hz (starting
    /// at 33 333 334 ns), player 42's join (session 3, user data `ab`) and its command seq 5
    /// (client frame 1001, payload `08 05`), player 43 absent.
    pub(crate) fn example() -> Frame {
        let input = |kind, ns, seq, frame, payload: &[u8]| Input {
            kind,
            rx: Timestamp { ns, clock: Clock::Xdp },
            queue: 0,
            client_id: 42,
            match_id: 0,
            seq,
            client_frame: frame,
            payload: payload.into(),
        };
        let inputs = vec![
            input(InputKind::Join, 39_000_000, 3, 0, b"ab"),
            input(InputKind::Command, 40_000_000, 5, 1001, &[0x08, 0x05]),
        ];
        let hash = chain_hash(&GENESIS_HASH, 2, &inputs);
        Frame {
            match_id: 7,
            tick: 2,
            tick_hz: 60,
            start_ns: 33_333_334,
            inputs,
            hash,
            absent: vec![43],
            last: false,
        }
    }

    #[test]
    fn frames_round_trip_and_every_cut_is_refused() {
        let frame = example();
        let mut body = Vec::new();
        encode_frame(&frame, &mut body);
        assert_eq!(body.len(), 64 + 2 * (32 + 8) + 4);
        let back = decode_frame(&body).expect("decodes");
        assert_eq!(
            (back.tick, back.start_ns, back.hash, back.tick_hz, back.last),
            (2, 33_333_334, frame.hash, 60, false)
        );
        assert_eq!(back.inputs, frame.inputs);
        assert_eq!(back.absent, vec![43]);
        for cut in 0..body.len() {
            assert_eq!(decode_frame(&body[..cut]), None, "cut at {cut}");
        }
        let mut longer = body.clone();
        longer.push(0);
        assert_eq!(decode_frame(&longer), None);
        let mut lying = body;
        lying[56..60].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_frame(&lying), None, "an input count past the body");
    }
}
