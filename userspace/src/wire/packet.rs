//! The decoded packets: what [`super::decode`] returns when every check passed.

use core::fmt;

use prost::encoding::{WireType, encode_key, encode_varint};
use tickgate_common::wire::Header;
use tickgate_proto::{InputFrame, PlayerCommand, SyncAck};

use crate::input::{Input, Payload, PayloadArena, Timestamp};

use super::*;

/// A packet that passed every check.
#[derive(Clone, Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "boxing the commands would allocate per packet; a decoded packet lives on the worker's stack"
)]
pub enum Packet<'a> {
    /// Kind `Input`: one or more player commands.
    Input(InputPacket<'a>),
    /// Kind `Sync`: a client's acknowledgement of a tick.
    Sync(SyncPacket),
}

/// A decoded `Input` packet: the commands of its `InputFrame`, numbered.
#[derive(Clone)]
pub struct InputPacket<'a> {
    /// The packet's header.
    pub header: Header,
    /// `first_seq` of the frame: the seq of the first command.
    pub first_seq: u64,
    pub(super) len: usize,
    /// Each command's `client_frame`, the one field a worker needs decoded (the rest travels in
    /// the command's bytes; [`Command::command`] decodes them all): a packet this small moves
    /// cheaply out of `decode`, where a decoded `PlayerCommand` per slot made it 1.2 KB.
    pub(super) client_frames: [u32; MAX_COMMANDS],
    /// Where each command's encoding sits in `payload`: `(start, end)`.
    pub(super) spans: [(u16, u16); MAX_COMMANDS],
    pub(super) payload: &'a [u8],
}

impl InputPacket<'_> {
    /// The commands, oldest first, each with its sequence number.
    pub fn commands(&self) -> impl ExactSizeIterator<Item = Command<'_>> {
        let client_id = self.header.client_id;
        let first_seq = self.first_seq;
        let payload = self.payload;
        self.client_frames.iter().zip(&self.spans).take(self.len).enumerate().map(
            move |(i, (&client_frame, &(start, end)))| Command {
                client_id,
                // Cannot overflow: decode checked first_seq + len - 1 == header seq.
                seq: first_seq.wrapping_add(i as u64),
                client_frame,
                raw: payload.get(usize::from(start)..usize::from(end)).unwrap_or_default(),
            },
        )
    }

    /// The frame as prost's type (allocates; workers use [`InputPacket::commands`]).
    pub fn frame(&self) -> InputFrame {
        InputFrame { first_seq: self.first_seq, commands: self.commands().map(|c| c.command()).collect() }
    }
}

impl fmt::Debug for InputPacket<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InputPacket")
            .field("header", &self.header)
            .field("first_seq", &self.first_seq)
            .field("commands", &self.frame().commands)
            .finish()
    }
}

/// One command of an `Input` packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Command<'a> {
    /// Client id from the header.
    pub client_id: u32,
    /// The command's sequence number: `first_seq` plus its index in the frame.
    pub seq: u64,
    /// The command's `client_frame`.
    pub client_frame: u32,
    /// The command's bytes as the client encoded them, unknown fields included.
    pub raw: &'a [u8],
}

impl Command<'_> {
    /// The decoded command, as prost decodes [`raw`](Self::raw).
    pub fn command(&self) -> PlayerCommand {
        // `decode` accepted these very bytes with the same function, so this cannot fail; the
        // default is never seen.
        super::decode::decode_command(self.raw).unwrap_or_default()
    }

    /// The [`Input`] handed to the sequencer. Its payload is a one-command `InputFrame`
    /// (`first_seq` = this seq) that embeds the client's bytes for the command unchanged, so
    /// fields this build does not know still reach the game.
    pub fn to_input(&self, rx: Timestamp, queue: u16, match_id: u64) -> Input {
        self.input_with(rx, queue, match_id, Payload::concat)
    }

    /// [`to_input`](Self::to_input), with a payload past [`Payload::INLINE`] cut from `arena`
    /// rather than allocated: what a worker does.
    pub fn to_input_in(&self, arena: &mut PayloadArena, rx: Timestamp, queue: u16, match_id: u64) -> Input {
        self.input_with(rx, queue, match_id, |head, tail| arena.concat(head, tail))
    }

    fn input_with(
        &self,
        rx: Timestamp,
        queue: u16,
        match_id: u64,
        payload: impl FnOnce(&[u8], &[u8]) -> Payload,
    ) -> Input {
        // Key of first_seq (1) + varint (<= 10) + key of commands (1) + length (<= 3: a command
        // comes from one datagram).
        const HEAD: usize = 15;
        let mut head = [0u8; HEAD];
        let mut out = &mut head[..];
        // Omitted when zero, as prost does, so a canonical command re-encodes to prost's bytes.
        if self.seq != 0 {
            encode_key(1, WireType::Varint, &mut out);
            encode_varint(self.seq, &mut out);
        }
        encode_key(2, WireType::LengthDelimited, &mut out);
        encode_varint(self.raw.len() as u64, &mut out);
        let written = HEAD - out.len();
        let payload = payload(&head[..written], self.raw);
        Input {
            kind: crate::input::InputKind::Command,
            rx,
            queue,
            client_id: self.client_id,
            match_id,
            seq: self.seq,
            client_frame: self.client_frame,
            payload,
        }
    }
}

/// A decoded `Sync` packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncPacket {
    /// The packet's header.
    pub header: Header,
    /// The acknowledgement; its `client_id` equals the header's.
    pub ack: SyncAck,
}
