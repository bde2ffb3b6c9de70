//! Checksum, protobuf scan and the rules of each kind: [`decode`] and the scanner behind it.

use prost::Message;
use tickgate_common::wire::{self as header, HEADER_LEN, Header, HeaderError, Kind};
use tickgate_proto::{Action, PlayerCommand, SyncAck};

use super::*;

/// CRC32C (Castagnoli) of a packet: the header with its checksum field taken as zero, then the
/// payload.
pub fn checksum(header: &[u8; HEADER_LEN], payload: &[u8]) -> u32 {
    let mut h = *header;
    h[header::offset::CHECKSUM..header::offset::CHECKSUM + 4].fill(0);
    crc32c::crc32c_append(crc32c::crc32c(&h), payload)
}

/// Validates and decodes one UDP payload (tickgate header and payload). Allocates nothing.
///
/// Checks in order: the header as XDP checks it (against `udp_payload.len()`), the checksum,
/// the protobuf structure, then the rules of the kind; the first failure is returned.
pub fn decode(udp_payload: &[u8]) -> Result<Packet<'_>, WireError> {
    let header = header::check_header(udp_payload, udp_payload.len()).map_err(WireError::BadHeader)?;
    let Some((head, payload)) = udp_payload.split_first_chunk::<HEADER_LEN>() else {
        return Err(WireError::BadHeader(HeaderError::TooShort));
    };
    let actual = checksum(head, payload);
    if actual != header.checksum {
        return Err(WireError::BadChecksum { expected: header.checksum, actual });
    }
    match header.kind {
        Kind::Input => decode_input(header, payload).map(Packet::Input),
        Kind::Sync => decode_sync(header, payload).map(Packet::Sync),
    }
}

/// Decodes the plaintext of a protocol v2 `Input` packet from `client_id`'s session: an
/// `InputFrame`, checked as v1's (commands, actions, numbering) except that the header's seq
/// numbers packets in v2, not inputs, so only the frame's own numbering must not overflow.
/// Allocates nothing.
pub fn decode_input_v2(client_id: u32, plain: &[u8]) -> Result<InputPacket<'_>, WireError> {
    let header = Header {
        kind: Kind::Input,
        payload_len: u16::try_from(plain.len()).unwrap_or(u16::MAX),
        client_id,
        client_frame: 0,
        seq: 0,
        checksum: 0,
    };
    decode_input_checked(header, plain, false)
}

fn decode_input(header: Header, payload: &[u8]) -> Result<InputPacket<'_>, WireError> {
    decode_input_checked(header, payload, true)
}

fn decode_input_checked(
    mut header: Header,
    payload: &[u8],
    header_seq: bool,
) -> Result<InputPacket<'_>, WireError> {
    let mut packet = InputPacket {
        header,
        first_seq: 0,
        len: 0,
        client_frames: [0; MAX_COMMANDS],
        spans: [(0, 0); MAX_COMMANDS],
        payload,
    };
    let mut count = 0usize;
    let mut bad_action = None;
    let mut fields = Fields::new(payload);
    while let Some((number, value)) = fields.next_field().map_err(WireError::Decode)? {
        match (number, value) {
            (1, Value::Varint(v)) => packet.first_seq = v,
            (1, _) => return Err(WireError::Decode("first_seq is not a varint")),
            (2, Value::Bytes { start, bytes }) => {
                let command = decode_command(bytes)?;
                if bad_action.is_none() && !known_action(command.action) {
                    bad_action = Some(command.action);
                }
                if let (Some(slot), Some(span), Ok(start), Ok(end)) = (
                    packet.client_frames.get_mut(count),
                    packet.spans.get_mut(count),
                    u16::try_from(start),
                    u16::try_from(start + bytes.len()),
                ) {
                    *slot = command.client_frame;
                    *span = (start, end);
                }
                count += 1;
            }
            (2, _) => return Err(WireError::Decode("command is not length-delimited")),
            _ => {}
        }
    }
    if count == 0 {
        return Err(WireError::EmptyInput);
    }
    if count > MAX_COMMANDS {
        return Err(WireError::TooManyCommands { count });
    }
    if let Some(value) = bad_action {
        return Err(WireError::BadAction { value });
    }
    let last = packet.first_seq.checked_add(count as u64 - 1);
    if !header_seq && let Some(last) = last {
        header.seq = last;
        packet.header = header;
    }
    if last != Some(header.seq) {
        return Err(WireError::SeqMismatch { first_seq: packet.first_seq, count, header_seq: header.seq });
    }
    packet.len = count;
    Ok(packet)
}

/// Decodes one encoded `PlayerCommand` in the scan's single pass, as prost would: the last
/// value of a field wins, a varint is truncated to its field's width, unknown fields are skipped.
/// (`scan_agrees_with_prost` and the `decode` fuzz target hold it to prost's own decoding; the
/// struct literal below stops compiling when the message gains a field.)
pub(super) fn decode_command(bytes: &[u8]) -> Result<PlayerCommand, WireError> {
    let (mut command_id, mut entity_id, mut target_id, mut action, mut client_timestamp_us, mut client_frame) =
        (0, 0, 0, 0, 0, 0);
    let mut fields = Fields::new(bytes);
    while let Some((number, value)) = fields.next_field().map_err(WireError::Decode)? {
        match (number, value) {
            (1, Value::Varint(v)) => command_id = v as u32,
            (2, Value::Varint(v)) => entity_id = v as u32,
            (3, Value::Varint(v)) => target_id = v as u32,
            (4, Value::Varint(v)) => action = v as i32,
            (5, Value::Varint(v)) => client_timestamp_us = v,
            (6, Value::Varint(v)) => client_frame = v as u32,
            (1..=6, _) => return Err(WireError::Decode("command field is not a varint")),
            _ => {}
        }
    }
    Ok(PlayerCommand { command_id, entity_id, target_id, action, client_timestamp_us, client_frame })
}

pub(super) fn known_action(value: i32) -> bool {
    matches!(Action::try_from(value), Ok(action) if action != Action::Unspecified)
}

fn decode_sync(header: Header, payload: &[u8]) -> Result<SyncPacket, WireError> {
    let mut client_id = 0;
    let mut fields = Fields::new(payload);
    while let Some((number, value)) = fields.next_field().map_err(WireError::Decode)? {
        match (number, value) {
            (3, Value::Varint(v)) => client_id = v as u32,
            (1 | 4, Value::Varint(_)) | (2, Value::Fixed64) => {}
            (1 | 3 | 4, _) => return Err(WireError::Decode("sync ack field is not a varint")),
            (2, _) => return Err(WireError::Decode("state_hash is not fixed64")),
            _ => {}
        }
    }
    if client_id != header.client_id {
        return Err(WireError::ClientMismatch { header: header.client_id, payload: client_id });
    }
    let ack = SyncAck::decode(payload).map_err(|_| WireError::Decode("rejected by prost"))?;
    Ok(SyncPacket { header, ack })
}

/// A field value, as far as the scanner needs to know it.
enum Value<'a> {
    Varint(u64),
    Fixed64,
    Fixed32,
    Bytes { start: usize, bytes: &'a [u8] },
}

/// Allocation-free walk over the fields of one protobuf message.
///
/// Rejects everything prost rejects: truncated or over-long varints (more than 10 bytes, or a
/// 10th byte above 1), keys above `u32::MAX`, field number 0, wire types 6 and 7, lengths past
/// the end. It also rejects groups (wire types 3 and 4), which prost would skip: no tickgate
/// message has them, and refusing them keeps the scan flat.
struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    #[inline(always)]
    fn next_field(&mut self) -> Result<Option<(u32, Value<'a>)>, &'static str> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let Ok(key) = u32::try_from(key) else {
            return Err("field key exceeds u32");
        };
        let number = key >> 3;
        if number == 0 {
            return Err("field number 0");
        }
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Fixed64
            }
            2 => {
                let len = self.varint()?;
                let start = self.pos;
                let len = usize::try_from(len).map_err(|_| "length past the end")?;
                Value::Bytes { start, bytes: self.take(len)? }
            }
            3 | 4 => return Err("groups are not supported"),
            5 => {
                self.take(4)?;
                Value::Fixed32
            }
            _ => return Err("invalid wire type"),
        };
        Ok(Some((number, value)))
    }

    #[inline(always)]
    fn varint(&mut self) -> Result<u64, &'static str> {
        // Most of a command's varints (keys, ids, actions) fit in one byte.
        if let Some(&byte) = self.buf.get(self.pos)
            && byte < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(byte));
        }
        self.varint_long()
    }

    fn varint_long(&mut self) -> Result<u64, &'static str> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err("truncated varint");
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                // The 10th byte holds bit 63 only; more would overflow u64.
                return if i == 9 && byte > 1 { Err("varint overflows u64") } else { Ok(value) };
            }
        }
        Err("varint longer than 10 bytes")
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], &'static str> {
        let end = self.pos.checked_add(len).ok_or("length past the end")?;
        let bytes = self.buf.get(self.pos..end).ok_or("length past the end")?;
        self.pos = end;
        Ok(bytes)
    }
}
