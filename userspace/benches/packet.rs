//! What protocol v2's crypto costs per packet on one core: a worker's per-packet step for v1
//! (CRC32C + decode) against v2 (session lookup, address check, AES-256-GCM open, replay window,
//! decode), on the same input packet: the newest input and two resent ones, as the demo sends.
//!
//! Run: `cargo bench -p tickgate --bench packet` (`-- --sample-count 50` for tighter figures).
//! The v2 − v1 difference is the crypto's cost per packet.

use std::net::SocketAddr;

use divan::{Bencher, black_box, counter::ItemsCount};
use prost::Message as _;
use tickgate::{
    session::{
        anti_replay::{Clients, ClientsConfig},
        client::{Client, Event},
        server::{Data, Server, ServerConfig},
        token::{self, TokenParams},
    },
    wire::{self, crypto::Key, v2},
};
use tickgate_proto::{Action, InputFrame, PlayerCommand};

const PACKETS: usize = 4096;

fn main() {
    divan::main();
}

fn frame(newest: u64) -> InputFrame {
    let first = newest.saturating_sub(2);
    let commands = (first..=newest)
        .map(|seq| PlayerCommand {
            command_id: seq as u32,
            entity_id: 7,
            action: Action::Move as i32,
            client_timestamp_us: 1_800_000_000_000_000,
            client_frame: seq as u32,
            ..Default::default()
        })
        .collect();
    InputFrame { first_seq: first, commands }
}

#[divan::bench]
fn v1_checksum_and_decode(bencher: Bencher) {
    let packets: Vec<Vec<u8>> = (0..PACKETS as u64)
        .map(|n| {
            let mut out = Vec::new();
            wire::encode_input(42, n as u32, &frame(n + 2), &mut out).expect("encodes");
            out
        })
        .collect();
    bencher.counter(ItemsCount::new(PACKETS)).bench(|| {
        for p in &packets {
            let _ = black_box(wire::decode(black_box(p)));
        }
    });
}

#[divan::bench]
fn v2_open_and_decode(bencher: Bencher) {
    let backend = Key::from_bytes([1; 32]);
    let src: SocketAddr = "10.0.0.1:4000".parse().expect("an address");
    let dst: SocketAddr = "10.0.0.2:7777".parse().expect("an address");
    let params = TokenParams {
        protocol_id: 7,
        create_ts: 1_800_000_000,
        expire_ts: 1_800_000_060,
        timeout_s: 10,
        match_id: 1,
        player_id: 42,
        user_data: vec![],
        addresses: vec![dst],
        c2s_key: Key::from_bytes([3; 32]),
        s2c_key: Key::from_bytes([4; 32]),
    };
    let token = token::parse(&token::mint(&backend, &params, [5; 12]).expect("mints")).expect("parses");
    let now_ms = 1_800_000_000_000;
    let mut client = Client::new(&token);
    let make_server = |client: &mut Client| {
        let mut server =
            Server::with_run_key(ServerConfig::new(7, backend.clone(), 16), Key::from_bytes([2; 32]), 0);
        let challenge = server
            .on_request(src, dst, &client.handshake_packet().expect("request"), now_ms)
            .expect("challenge");
        client.receive(&challenge.bytes);
        let accepted = server
            .on_response(src, &client.handshake_packet().expect("response"), now_ms, 1)
            .expect("session");
        assert!(matches!(client.receive(&accepted.reply.bytes), Event::Connected(_)));
        server
    };
    let server = make_server(&mut client);
    let packets: Vec<Vec<u8>> = (0..PACKETS as u64)
        .map(|n| {
            let mut out = Vec::new();
            client.seal(v2::Kind::Input, &frame(n + 2).encode_to_vec(), &mut out);
            out
        })
        .collect();
    let mut plain = [0u8; v2::MAX_PAYLOAD_LEN];
    // Each round replays the same packets, so the replay window must start empty each time: a
    // fresh session per round (outside the timing).
    bencher
        .counter(ItemsCount::new(PACKETS))
        .with_inputs(|| make_server(&mut Client::new(&token)))
        .bench_local_refs(|server| {
            for p in &packets {
                if let Ok(Data::Input { plain, .. }) = server.open_data(src, black_box(p), 2, &mut plain) {
                    let _ = black_box(wire::decode_input_v2(42, plain));
                }
            }
        });
    // The packets really open (a benchmark of failures would flatter v2).
    let opened = packets
        .iter()
        .filter(|p| matches!(server.open_data(src, p, 2, &mut plain), Ok(Data::Input { .. })))
        .count();
    assert_eq!(opened, PACKETS);
}

/// The dedup behind the decode: 64 clients' packets (the newest input and two resent ones)
/// through one worker's [`Clients`] table, its window looked up per input or once per packet
/// (what the worker does). Fresh table per round, outside the timing.
#[divan::bench(args = ["per input", "per packet"])]
fn dedup(bencher: Bencher, how: &str) {
    const CLIENTS: u32 = 64;
    let packets: Vec<Vec<u8>> = (0..PACKETS as u64)
        .map(|n| {
            let mut out = Vec::new();
            let client = 1000 + (n % u64::from(CLIENTS)) as u32;
            wire::encode_input(client, n as u32, &frame(n / u64::from(CLIENTS) + 2), &mut out)
                .expect("encodes");
            out
        })
        .collect();
    let decoded: Vec<_> = packets
        .iter()
        .map(|p| match wire::decode(p) {
            Ok(wire::Packet::Input(packet)) => packet,
            other => panic!("not an input packet: {other:?}"),
        })
        .collect();
    let per_packet = how == "per packet";
    bencher
        .counter(ItemsCount::new(PACKETS))
        .with_inputs(|| Clients::new(ClientsConfig::default()))
        .bench_local_refs(|clients| {
            let mut accepted = 0u32;
            for packet in &decoded {
                if per_packet {
                    if let Ok(mut client) = clients.client(packet.header.client_id, 1) {
                        for command in packet.commands() {
                            accepted += u32::from(client.check(command.seq).is_ok());
                        }
                    }
                } else {
                    for command in packet.commands() {
                        accepted += u32::from(clients.check(command.client_id, command.seq, 1).is_ok());
                    }
                }
            }
            // Each packet brings one new input (its two resent ones came before).
            assert_eq!(accepted as usize, PACKETS + 2 * CLIENTS as usize);
        });
}
