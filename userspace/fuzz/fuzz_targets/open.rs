//! The data-packet path of a connected session (`Server::open_data`, then the input decode) on
//! arbitrary packets from the session's own address: nothing opens without the key, nothing
//! panics, and the real session keeps working afterwards.
#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use tickgate::{
    session::{
        client::{Client, Event},
        server::{Data, Server, ServerConfig},
        token::{self, TokenParams},
    },
    wire::{
        crypto::Key,
        v2::{self, Kind},
    },
};

fuzz_target!(|data: &[u8]| {
    let backend = Key::from_bytes([1; 32]);
    let mut server =
        Server::with_run_key(ServerConfig::new(77, backend.clone(), 4), Key::from_bytes([2; 32]), 0);
    let src: SocketAddr = "10.0.0.1:4000".parse().expect("an address");
    let dst: SocketAddr = "10.0.0.2:7777".parse().expect("an address");
    let now_ms = 1_800_000_000_000;
    let params = TokenParams {
        protocol_id: 77,
        create_ts: 1_800_000_000,
        expire_ts: 1_800_000_060,
        timeout_s: 10,
        match_id: 1,
        player_id: 9,
        user_data: vec![],
        addresses: vec![dst],
        c2s_key: Key::from_bytes([3; 32]),
        s2c_key: Key::from_bytes([4; 32]),
    };
    let minted = token::mint(&backend, &params, [5; 12]).expect("a valid token");
    let mut client = Client::new(&token::parse(&minted).expect("a token"));
    let challenge = server
        .on_request(src, dst, &client.handshake_packet().expect("a request"), now_ms)
        .expect("a challenge");
    assert_eq!(client.receive(&challenge.bytes), Event::Challenged);
    let accepted = server
        .on_response(src, &client.handshake_packet().expect("a response"), now_ms, 1)
        .expect("a session");
    let session = accepted.joined.session;
    assert_eq!(client.receive(&accepted.reply.bytes), Event::Connected(session));

    let mut plain = [0u8; v2::MAX_PAYLOAD_LEN];
    // The bytes as a packet, and under a header naming the session.
    let mut named =
        v2::encode_header(&v2::Header { kind: Kind::Input, payload_len: data.len() as u16, session, seq: 1 })
            .to_vec();
    named.extend_from_slice(data);
    for packet in [data, named.as_slice()] {
        if let Ok(Data::Input { plain, .. }) = server.open_data(src, packet, 2, &mut plain) {
            panic!("a packet opened without the key: {plain:02x?}");
        }
        let _ = tickgate::wire::decode_input_v2(9, data);
    }
    // The session is untouched: the client's next packet opens.
    let mut out = Vec::new();
    assert!(client.seal(Kind::Keepalive, &[], &mut out));
    assert!(matches!(server.open_data(src, &out, 3, &mut plain), Ok(Data::Keepalive { .. })));
});
