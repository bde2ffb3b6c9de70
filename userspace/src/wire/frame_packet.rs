//! The server → client `Frame` packet (protocol v2, kind 9): a match's newest sealed frames, the
//! player's ack and the server's tick clock. Layout and rules: docs/protocol.md ("Frames").
//!
//! ```text
//! body    = tick_hz:u32  ack:u64  flags:u8  count:u8  record*count
//! record  = tick:u64  start_ns:u64  hash:[u8;32]  inputs:u16  absent:u16  messages:u16  last:u8
//!           input*inputs  player:u32*absent  message*messages
//! message = len:u16  bytes                          the game's, to every player of the match
//! input  = the frame hash's canonical input: rx_ts_ns:u64 clock_kind:u8 client_id:u32 seq:u64
//!          client_frame:u32 payload_len:u32 payload
//! ```

use crate::frame_queue::Frame;
use crate::input::{Clock, Input, InputKind, Payload, Timestamp};

/// Bytes of the body before the records.
pub const BODY_HEAD_LEN: usize = 4 + 8 + 1 + 1;
/// Bytes of a record before its inputs.
pub const RECORD_HEAD_LEN: usize = 8 + 8 + 32 + 2 + 2 + 2 + 1;
/// Flag: the records answer a catch-up request (oldest first), not a broadcast (newest first).
pub const FLAG_CATCH_UP: u8 = 1;
/// Flag: the tick asked for is older than the server holds; the records start at the oldest it
/// holds and the game was told (the player must get the state another way).
pub const FLAG_TOO_OLD: u8 = 2;
/// The longest game message a record carries.
pub const MAX_MESSAGE_LEN: usize = 1024;
/// Bytes of an input before its payload.
pub const INPUT_HEAD_LEN: usize = 29;
/// The longest body: the largest sealed payload less the AEAD tag.
pub const MAX_BODY_LEN: usize = super::v2::MAX_PAYLOAD_LEN - super::crypto::TAG_LEN;

/// Appends one frame's record, with the game's `messages` for the match, to `out`. Counts
/// beyond `u16::MAX` cannot occur in a packet (it would not fit); they saturate, and such a
/// record is refused by [`body`] for its size. Messages longer than [`MAX_MESSAGE_LEN`] are the
/// caller's to refuse.
pub fn encode_record(frame: &Frame, messages: &[Vec<u8>], out: &mut Vec<u8>) {
    let count = |n: usize| u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes();
    out.extend_from_slice(&frame.tick.to_be_bytes());
    out.extend_from_slice(&frame.start_ns.to_be_bytes());
    out.extend_from_slice(&frame.hash);
    out.extend_from_slice(&count(frame.inputs.len()));
    out.extend_from_slice(&count(frame.absent.len()));
    out.extend_from_slice(&count(messages.len()));
    out.push(u8::from(frame.last));
    crate::frame_queue::encode_inputs(&frame.inputs, out);
    for player in &frame.absent {
        out.extend_from_slice(&player.to_be_bytes());
    }
    for message in messages {
        out.extend_from_slice(&count(message.len()));
        out.extend_from_slice(message);
    }
}

/// A body of as many of `records` (in the order given) as fit in [`MAX_BODY_LEN`], in `out`;
/// the number taken, 0 when not even the first fits.
pub fn body(tick_hz: u32, ack: u64, flags: u8, records: &[&[u8]], out: &mut Vec<u8>) -> usize {
    out.clear();
    out.extend_from_slice(&tick_hz.to_be_bytes());
    out.extend_from_slice(&ack.to_be_bytes());
    out.push(flags);
    out.push(0);
    let mut count = 0u8;
    for record in records.iter().take(usize::from(u8::MAX)) {
        if out.len() + record.len() > MAX_BODY_LEN {
            break;
        }
        out.extend_from_slice(record);
        count += 1;
    }
    out[BODY_HEAD_LEN - 1] = count;
    usize::from(count)
}

/// One decoded record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The frame's tick.
    pub tick: u64,
    /// When the tick started, in the server's clock (TAI ns).
    pub start_ns: u64,
    /// The frame's chain hash.
    pub hash: [u8; 32],
    /// The frame's inputs in frame order (their `queue` is 0: the wire does not carry it).
    pub inputs: Vec<Input>,
    /// Players who sent nothing for the tick.
    pub absent: Vec<u32>,
    /// The match ended with this frame.
    pub last: bool,
    /// The game's messages to every player of the match, sent with this frame.
    pub messages: Vec<Vec<u8>>,
}

/// A decoded body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Body {
    /// The match's tick rate.
    pub tick_hz: u32,
    /// One more than the newest input seq the server has accepted from this player (0: none).
    pub ack: u64,
    /// [`FLAG_CATCH_UP`], [`FLAG_TOO_OLD`].
    pub flags: u8,
    /// The frames: newest first in a broadcast, oldest first in a catch-up reply.
    pub records: Vec<Record>,
}

/// Why a body does not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed frame packet body: {0}")]
pub struct Malformed(&'static str);

/// Decodes a body; every length is checked against the bytes present.
pub fn decode(body: &[u8]) -> Result<Body, Malformed> {
    let mut r = Reader(body);
    let tick_hz = r.u32()?;
    let ack = r.u64()?;
    let flags = r.u8()?;
    let count = r.u8()?;
    let mut records = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let tick = r.u64()?;
        let start_ns = r.u64()?;
        let hash: [u8; 32] = r.take(32)?.try_into().map_err(|_| Malformed("hash"))?;
        let (inputs, absent, messages, last) = (r.u16()?, r.u16()?, r.u16()?, r.u8()?);
        if last > 1 {
            return Err(Malformed("last is not 0 or 1"));
        }
        let inputs = (0..inputs).map(|_| r.input()).collect::<Result<Vec<_>, _>>()?;
        let absent = (0..absent).map(|_| r.u32()).collect::<Result<Vec<_>, _>>()?;
        let messages = (0..messages)
            .map(|_| {
                let len = usize::from(r.u16()?);
                r.take(len).map(<[u8]>::to_vec)
            })
            .collect::<Result<Vec<_>, _>>()?;
        records.push(Record { tick, start_ns, hash, inputs, absent, last: last == 1, messages });
    }
    if !r.0.is_empty() {
        return Err(Malformed("trailing bytes"));
    }
    Ok(Body { tick_hz, ack, flags, records })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.0.len() < n {
            return Err(Malformed("cut short"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, Malformed> {
        Ok(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }
    fn u32(&mut self) -> Result<u32, Malformed> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, Malformed> {
        Ok(u64::from(self.u32()?) << 32 | u64::from(self.u32()?))
    }
    fn input(&mut self) -> Result<Input, Malformed> {
        let ns = self.u64()?;
        let byte = self.u8()?;
        let clock = Clock::from_code(byte & 0x0f).ok_or(Malformed("unknown clock"))?;
        let kind = InputKind::from_code(byte >> 4).ok_or(Malformed("unknown input kind"))?;
        let client_id = self.u32()?;
        let seq = self.u64()?;
        let client_frame = self.u32()?;
        let len = self.u32()? as usize;
        let payload = Payload::from(self.take(len)?);
        Ok(Input {
            kind,
            rx: Timestamp { ns, clock },
            queue: 0,
            client_id,
            match_id: 0,
            seq,
            client_frame,
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame_queue::{GENESIS_HASH, chain_hash};

    fn frame(tick: u64, players: &[u32], payload_len: usize) -> Frame {
        let inputs: Vec<Input> = players
            .iter()
            .enumerate()
            .map(|(i, &p)| Input {
                kind: if i == 0 { InputKind::Join } else { InputKind::Command },
                rx: Timestamp { ns: 1_000 + i as u64, clock: Clock::Xdp },
                queue: 0,
                client_id: p,
                match_id: 0,
                seq: 10 + i as u64,
                client_frame: 7,
                payload: vec![p as u8; payload_len].into(),
            })
            .collect();
        let hash = chain_hash(&GENESIS_HASH, tick, &inputs);
        Frame {
            match_id: 9,
            tick,
            tick_hz: 60,
            start_ns: 5_000 * tick,
            inputs,
            hash,
            absent: vec![3, 4],
            last: tick == 2,
        }
    }

    fn record(frame: &Frame) -> Vec<u8> {
        let mut out = Vec::new();
        let messages = if frame.tick == 1 { vec![b"checksum".to_vec(), vec![]] } else { vec![] };
        encode_record(frame, &messages, &mut out);
        out
    }

    #[test]
    fn records_round_trip_newest_first_and_the_hash_can_be_checked() {
        let frames = [frame(2, &[1, 2], 5), frame(1, &[2], 0), frame(0, &[], 0)];
        let records: Vec<Vec<u8>> = frames.iter().map(record).collect();
        let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        let mut body_bytes = Vec::new();
        assert_eq!(body(60, 11, FLAG_CATCH_UP, &refs, &mut body_bytes), 3);
        let decoded = decode(&body_bytes).expect("decodes");
        assert_eq!((decoded.tick_hz, decoded.ack, decoded.flags, decoded.records.len()), (60, 11, 1, 3));
        assert_eq!(decoded.records[1].messages, vec![b"checksum".to_vec(), vec![]]);
        for (got, want) in decoded.records.iter().zip(&frames) {
            assert_eq!(
                (got.tick, got.start_ns, got.hash, got.last),
                (want.tick, want.start_ns, want.hash, want.last)
            );
            assert_eq!(got.inputs, want.inputs);
            assert_eq!(got.absent, want.absent);
            assert_eq!(chain_hash(&GENESIS_HASH, got.tick, &got.inputs), got.hash, "a client can check it");
        }
    }

    #[test]
    fn older_records_give_way_when_the_packet_is_full_and_a_huge_frame_is_refused() {
        let frames =
            [frame(2, &[1, 2, 3, 4], 150), frame(1, &[1, 2, 3, 4], 150), frame(0, &[1, 2, 3, 4], 150)];
        let records: Vec<Vec<u8>> = frames.iter().map(record).collect();
        let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        let mut out = Vec::new();
        let taken = body(60, 0, 0, &refs, &mut out);
        assert_eq!(taken, 1, "one 4-input frame of ~750 bytes fits, two do not");
        assert!(out.len() <= MAX_BODY_LEN);
        assert_eq!(decode(&out).expect("decodes").records[0].tick, 2);
        let huge = record(&frame(5, &[1, 2, 3, 4, 5, 6, 7, 8], 200));
        assert_eq!(body(60, 0, 0, &[&huge], &mut out), 0);
    }

    #[test]
    fn every_cut_and_every_extra_byte_is_refused_without_a_panic() {
        let records = [record(&frame(2, &[1, 2], 5)), record(&frame(1, &[2], 3))];
        let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        let mut whole = Vec::new();
        body(60, 1, 0, &refs, &mut whole);
        for cut in 0..whole.len() {
            assert!(decode(&whole[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = whole.clone();
        longer.push(0);
        assert_eq!(decode(&longer), Err(Malformed("trailing bytes")));
        let mut bad_last = whole;
        bad_last[BODY_HEAD_LEN + RECORD_HEAD_LEN - 1] = 2;
        assert!(decode(&bad_last).is_err());
    }
}
