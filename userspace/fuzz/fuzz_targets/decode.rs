//! `tickgate::wire::decode`, the worker's full decode (header, CRC32C, protobuf, protocol rules).
//!
//! Input: one UDP payload. The CRC32C would stop almost every mutation at `bad_checksum`, so each
//! input is decoded twice: as given, and with its checksum field recomputed, which lets the
//! fuzzer reach the protobuf scanner and the rules behind it.
//!
//! For packets it accepts, decode agrees with prost, numbers the commands from `first_seq` up to
//! the header's seq, and round-trips: re-encoding the decoded message gives a packet that
//! decodes to the same header and message. The re-encoding cannot be refused, since prost's
//! canonical encoding of what it decoded is never longer than the bytes it came from (unknown
//! fields are dropped, varints shortened, and no kept field is a negative `int32`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use tickgate::{
    input::Timestamp,
    wire::{self, Packet, WireError},
};
use tickgate_common::wire::{HEADER_LEN, offset};
use tickgate_proto::{InputFrame, PlayerCommand, SyncAck};

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Some((head, payload)) = data.split_first_chunk::<HEADER_LEN>() {
        let crc = wire::checksum(head, payload);
        let mut fixed = data.to_vec();
        fixed[offset::CHECKSUM..offset::CHECKSUM + 4].copy_from_slice(&crc.to_be_bytes());
        check(&fixed);
    }
});

fn check(udp_payload: &[u8]) {
    let packet = match wire::decode(udp_payload) {
        Ok(packet) => packet,
        Err(error) => {
            // Every rejection has a counter.
            assert_eq!(WireError::COUNTER_NAMES[error.counter_index()], error.counter_name());
            return;
        }
    };
    let payload = &udp_payload[HEADER_LEN..];
    let mut out = Vec::new();
    match packet {
        Packet::Input(packet) => {
            let frame = packet.frame();
            assert_eq!(InputFrame::decode(payload).as_ref(), Ok(&frame), "decode disagrees with prost");
            let commands: Vec<_> = packet.commands().collect();
            assert!(!commands.is_empty() && commands.len() <= wire::MAX_COMMANDS);
            assert_eq!(commands.last().map(|c| c.seq), Some(packet.header.seq));
            for (i, command) in commands.iter().enumerate() {
                assert_eq!(command.seq, packet.first_seq + i as u64);
                assert_eq!(command.client_id, packet.header.client_id);
                assert_eq!(command.command(), frame.commands[i]);
                assert_eq!(command.client_frame, frame.commands[i].client_frame);
                // The raw bytes kept for the game are the command as sent.
                assert_eq!(PlayerCommand::decode(command.raw), Ok(command.command()));
                // What the sequencer gets is a one-command frame numbered with the command's seq.
                let input = command.to_input(Timestamp::xdp(1), 0, 0);
                let single =
                    InputFrame::decode(input.payload.as_slice()).expect("to_input writes a valid frame");
                assert_eq!(single, InputFrame { first_seq: command.seq, commands: vec![command.command()] });
            }

            let header = packet.header;
            wire::encode_input(header.client_id, header.client_frame, &frame, &mut out)
                .expect("a decoded frame re-encodes");
            assert!(out.len() <= udp_payload.len(), "canonical encoding is never longer");
            let Ok(Packet::Input(again)) = wire::decode(&out) else {
                panic!("re-encoded input does not decode: {:?}", wire::decode(&out));
            };
            assert_eq!(again.header.seq, header.seq);
            assert_eq!(again.header.client_id, header.client_id);
            assert_eq!(again.header.client_frame, header.client_frame);
            assert_eq!(again.frame(), frame);
            let mut twice = Vec::new();
            wire::encode_input(header.client_id, header.client_frame, &again.frame(), &mut twice)
                .expect("a decoded frame re-encodes");
            assert_eq!(twice, out, "the canonical encoding is a fixed point");
        }
        Packet::Sync(sync) => {
            assert_eq!(SyncAck::decode(payload).as_ref(), Ok(&sync.ack), "decode disagrees with prost");
            assert_eq!(sync.ack.client_id, sync.header.client_id);
            let header = sync.header;
            wire::encode_sync(header.client_frame, header.seq, &sync.ack, &mut out)
                .expect("a decoded sync ack re-encodes");
            assert!(out.len() <= udp_payload.len(), "canonical encoding is never longer");
            let Ok(Packet::Sync(again)) = wire::decode(&out) else {
                panic!("re-encoded sync ack does not decode: {:?}", wire::decode(&out));
            };
            assert_eq!(again.ack, sync.ack);
            assert_eq!(
                (again.header.client_id, again.header.client_frame, again.header.seq),
                (header.client_id, header.client_frame, header.seq)
            );
        }
    }
}
