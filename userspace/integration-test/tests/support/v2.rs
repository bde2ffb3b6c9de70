//! Protocol v2 on the lab: tokens, the handshake over a UDP socket, and `tickgate run` with keys.

use std::{
    net::{SocketAddr, UdpSocket},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use prost::Message as _;
use tickgate::{
    session::{
        client::{Client, Event},
        token::{self, TokenParams},
    },
    wire::crypto::Key,
};
use tickgate_proto::{Action, InputFrame, PlayerCommand};

use super::{Lab, Run, run_dir};

/// The protocol id of every lab run.
pub const PROTOCOL: u64 = 77;

/// Unix seconds now.
pub fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A token for `player` of `match_id` at `server` whose session times out after `timeout_s` of
/// silence.
pub fn mint(key: &Key, server: SocketAddr, player: u64, match_id: u64, timeout_s: u32) -> Vec<u8> {
    let params = TokenParams {
        protocol_id: PROTOCOL,
        create_ts: now_s(),
        expire_ts: now_s() + 60,
        timeout_s,
        match_id,
        player_id: player,
        user_data: b"lab".to_vec(),
        addresses: vec![server],
        c2s_key: Key::random().unwrap(),
        s2c_key: Key::random().unwrap(),
    };
    token::mint_random(key, &params).unwrap().to_vec()
}

/// The input packet body carrying inputs `newest - 2 ..= newest`.
pub fn inputs(newest: u64) -> Vec<u8> {
    let first = newest.saturating_sub(2);
    let commands = (first..=newest)
        .map(|seq| PlayerCommand {
            action: Action::Move as i32,
            client_frame: seq as u32,
            ..Default::default()
        })
        .collect();
    InputFrame { first_seq: first, commands }.encode_to_vec()
}

/// Starts `tickgate run` serving protocol v2 with `key` (written to a key file) and `extra` flags.
pub fn start_v2(lab: &Lab, key: &Key, extra: &[&str]) -> Run {
    let key_file = run_dir(lab).join("backend.key");
    std::fs::write(&key_file, key.as_bytes().iter().map(|b| format!("{b:02x}")).collect::<String>()).unwrap();
    let protocol = PROTOCOL.to_string();
    let base = ["--timestamps", "xdp", "--key-file", key_file.to_str().unwrap(), "--protocol-id", &protocol];
    Run::start(lab, &[&base[..], extra].concat())
}

/// What the client side saw of a handshake.
#[derive(Debug, Default)]
pub struct Seen {
    /// The largest packet it sent.
    pub request_len: usize,
    /// The largest packet it received.
    pub largest_reply: usize,
    /// Its session id.
    pub session: u32,
}

/// Runs the handshake over `sock` (with a read timeout set), retrying every 100 ms for up to 5 s.
pub fn handshake(sock: &UdpSocket, server: SocketAddr, client: &mut Client, seen: &mut Seen) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        if let Some(packet) = client.handshake_packet() {
            seen.request_len = seen.request_len.max(packet.len());
            sock.send_to(&packet, server).unwrap();
        }
        while let Ok((n, _)) = sock.recv_from(&mut buf) {
            seen.largest_reply = seen.largest_reply.max(n);
            if let Event::Connected(id) = client.receive(&buf[..n]) {
                seen.session = id;
                return;
            }
        }
    }
    panic!("no session after 5 s: client state {:?}", client.state());
}
