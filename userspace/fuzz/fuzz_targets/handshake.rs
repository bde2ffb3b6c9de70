//! The server side of the v2 handshake (`tickgate::session::server`) on arbitrary request and
//! response packets: never a panic, and never a session, because a response needs a challenge
//! token sealed with the run's key, which nothing here holds. (A request may earn a challenge:
//! the seed is a real token for this server's backend key.)
#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use tickgate::{
    session::server::{Server, ServerConfig},
    wire::{crypto::Key, v2},
};

fuzz_target!(|data: &[u8]| {
    let config = ServerConfig::new(77, Key::from_bytes([1; 32]), 4);
    let mut server = Server::with_run_key(config, Key::from_bytes([2; 32]), 0);
    let src: SocketAddr = "10.0.0.1:4000".parse().expect("an address");
    let dst: SocketAddr = "10.0.0.2:7777".parse().expect("an address");
    let now_ms = 1_800_000_000_000;
    // The bytes as they are, and after a header of each handshake kind at its one size.
    let _ = server.on_request(src, dst, data, now_ms);
    let _ = server.on_response(src, data, now_ms, 1);
    for (kind, len) in [(v2::Kind::Request, v2::REQUEST_LEN), (v2::Kind::Response, v2::RESPONSE_LEN)] {
        let mut p = v2::encode_header(&v2::Header {
            kind,
            payload_len: (len - v2::HEADER_LEN) as u16,
            session: 0,
            seq: 0,
        })
        .to_vec();
        p.extend_from_slice(data);
        p.resize(len, 0);
        let _ = server.on_request(src, dst, &p, now_ms);
        assert!(server.on_response(src, &p, now_ms, 1).is_err());
    }
    assert!(server.is_empty(), "a session without a valid token");
});
