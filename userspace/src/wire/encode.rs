//! Encoders for the client side of the wire format (clients, tools, tests).

use prost::Message;
use thiserror::Error;
use tickgate_common::wire::{self as header, HEADER_LEN, Header, Kind, MAX_PAYLOAD_LEN};
use tickgate_proto::{InputFrame, SyncAck};

use super::*;

/// Encodes a packet with `payload` as the raw payload bytes, into `out` (cleared first).
///
/// Writes the header with `payload_len` = `payload.len()`, reserved 0, and the CRC32C. For tests
/// and tools that need payloads the typed encoders refuse.
pub fn encode_raw(
    kind: Kind,
    client_id: u32,
    client_frame: u32,
    seq: u64,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    out.clear();
    out.resize(HEADER_LEN, 0);
    out.extend_from_slice(payload);
    finish(kind, client_id, client_frame, seq, out)
}

/// Encodes a packet whose payload is `message`, into `out` (cleared first).
pub fn encode(
    kind: Kind,
    client_id: u32,
    client_frame: u32,
    seq: u64,
    message: &impl Message,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    out.clear();
    out.resize(HEADER_LEN, 0);
    message.encode(out)?;
    finish(kind, client_id, client_frame, seq, out)
}

/// Encodes an `Input` packet; the header seq is that of the frame's last command.
///
/// `client_frame` is the client frame the packet is sent in.
pub fn encode_input(
    client_id: u32,
    client_frame: u32,
    frame: &InputFrame,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let count = frame.commands.len();
    if count == 0 {
        return Err(EncodeError::EmptyInput);
    }
    if count > MAX_COMMANDS {
        return Err(EncodeError::TooManyCommands { count });
    }
    let seq = frame
        .first_seq
        .checked_add(count as u64 - 1)
        .ok_or(EncodeError::SeqOverflow { first_seq: frame.first_seq, count })?;
    encode(Kind::Input, client_id, client_frame, seq, frame, out)
}

/// Encodes a `Sync` packet from `ack.client_id`. `seq` is the client's newest input seq (0 before
/// the first); the server does not check it.
pub fn encode_sync(client_frame: u32, seq: u64, ack: &SyncAck, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    encode(Kind::Sync, ack.client_id, client_frame, seq, ack, out)
}

/// Fills in the header of `out` (header space followed by the payload) and its checksum.
fn finish(
    kind: Kind,
    client_id: u32,
    client_frame: u32,
    seq: u64,
    out: &mut [u8],
) -> Result<(), EncodeError> {
    let len = out.len().saturating_sub(HEADER_LEN);
    let payload_len = match u16::try_from(len) {
        Ok(n) if len <= MAX_PAYLOAD_LEN => n,
        _ => return Err(EncodeError::PayloadTooLarge { len }),
    };
    let header = Header { kind, payload_len, client_id, client_frame, seq, checksum: 0 };
    let Some((head, payload)) = out.split_first_chunk_mut::<HEADER_LEN>() else {
        return Err(EncodeError::PayloadTooLarge { len });
    };
    // Cannot fail: `head` is exactly HEADER_LEN bytes.
    let _ = header::write_header(&header, head);
    let crc = checksum(head, payload);
    head[header::offset::CHECKSUM..].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// Why a packet could not be encoded.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum EncodeError {
    /// The payload is longer than [`MAX_PAYLOAD_LEN`]: send fewer (resent) commands.
    #[error("payload of {len} bytes exceeds the {MAX_PAYLOAD_LEN}-byte limit; send fewer commands")]
    PayloadTooLarge {
        /// Encoded payload length.
        len: usize,
    },
    /// An `InputFrame` with no commands.
    #[error("input frame has no commands")]
    EmptyInput,
    /// An `InputFrame` with more than [`MAX_COMMANDS`] commands.
    #[error("input frame has {count} commands; at most {MAX_COMMANDS} are allowed")]
    TooManyCommands {
        /// Commands in the frame.
        count: usize,
    },
    /// `first_seq + commands - 1` does not fit in a `u64`.
    #[error("sequence numbers from {first_seq} for {count} commands overflow u64")]
    SeqOverflow {
        /// `first_seq` of the frame.
        first_seq: u64,
        /// Commands in the frame.
        count: usize,
    },
    /// prost could not encode the message.
    #[error(transparent)]
    Protobuf(#[from] prost::EncodeError),
}
