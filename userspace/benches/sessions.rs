//! How the session layer's lock lets workers run side by side: data packets opened by one and by
//! two threads at once (each with its own session, as each worker has its own queue's clients),
//! and by one thread while another serves a stream of connection requests (each a token open and
//! a challenge seal, as a handshake flood at XDP's budget sends them).
//!
//! The threads share one [`Server`] behind the lock the worker's gate
//! (`tickgate::session::gate::Gate`) takes for each kind of packet; a socket receiver of the lab
//! bench shares it the same way.
//!
//! "2 data threads, a server each" gives each thread a server of its own (nothing shared but the
//! machine): what two threads can do side by side here, for the shared setting to be read against.
//!
//! Run: `cargo bench -p tickgate --bench sessions` (`-- ROUNDS PACKETS` to change the default 7
//! rounds of 200 000 packets per data thread). It prints inputs/s for each setting, the median
//! and the range across rounds; settings alternate within each round.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Barrier,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use tickgate::{
    session::{
        client::{Client, Event},
        server::{Data, Server, ServerConfig},
        shared::ReadMostly,
        token::{self, TokenParams},
    },
    wire::{crypto::Key, v2},
};

const NOW_MS: u64 = 1_800_000_000_000;

/// The lock the gate shares the server through.
type Shared = ReadMostly<Server>;

/// Reader slots: one per thread of a measurement, as the gate has one per worker.
const SLOTS: usize = 4;

fn shared(server: Server) -> Shared {
    ReadMostly::new(server, SLOTS)
}

/// One data packet, opened as the gate opens one (under reader slot `slot`). True when it opened.
fn open(server: &Shared, slot: usize, src: SocketAddr, packet: &[u8], plain: &mut [u8]) -> bool {
    matches!(server.read(slot).open_data(src, packet, 2, plain), Ok(Data::Input { .. }))
}

/// One connection request, served as the gate serves one (under reader slot `slot`). True when
/// it was answered.
fn request(server: &Shared, slot: usize, src: SocketAddr, dst: SocketAddr, packet: &[u8]) -> bool {
    server.read(slot).on_request(src, dst, packet, NOW_MS).is_ok()
}

struct Lab {
    backend: Key,
    dst: SocketAddr,
}

impl Lab {
    fn token(&self, player: u64) -> token::PublicToken {
        let params = TokenParams {
            protocol_id: 7,
            create_ts: NOW_MS / 1000,
            expire_ts: NOW_MS / 1000 + 60,
            timeout_s: 10,
            match_id: 1,
            player_id: player,
            user_data: vec![],
            addresses: vec![self.dst],
            c2s_key: Key::from_bytes([player as u8; 32]),
            s2c_key: Key::from_bytes([player as u8 ^ 0xff; 32]),
        };
        token::parse(&token::mint(&self.backend, &params, [player as u8; 12]).expect("mints"))
            .expect("parses")
    }

    fn src(player: u64) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], 4000 + player as u16))
    }

    /// A server with `players` connected, and each player's client.
    fn server(&self, players: u64) -> (Server, Vec<Client>) {
        let mut server =
            Server::with_run_key(ServerConfig::new(7, self.backend.clone(), 64), Key::from_bytes([2; 32]), 0);
        let clients = (1..=players)
            .map(|player| {
                let mut client = Client::new(&self.token(player));
                let src = Self::src(player);
                let challenge = server
                    .on_request(src, self.dst, &client.handshake_packet().expect("request"), NOW_MS)
                    .expect("challenge");
                client.receive(&challenge.bytes);
                let accepted = server
                    .on_response(src, &client.handshake_packet().expect("response"), NOW_MS, 1)
                    .expect("session");
                assert!(matches!(client.receive(&accepted.reply.bytes), Event::Connected(_)));
                client
            })
            .collect();
        (server, clients)
    }
}

/// An input packet's plaintext: the newest input and two resent ones, as the demo sends.
fn body() -> Vec<u8> {
    use prost::Message as _;
    let commands = (0..3)
        .map(|seq| tickgate_proto::PlayerCommand {
            command_id: seq,
            entity_id: 7,
            client_timestamp_us: 1_800_000_000_000_000,
            client_frame: seq,
            ..Default::default()
        })
        .collect();
    tickgate_proto::InputFrame { first_seq: 0, commands }.encode_to_vec()
}

/// How the data threads reach their sessions.
#[derive(Clone, Copy, PartialEq)]
enum Sharing {
    /// One server for all, behind the gate's lock.
    Shared,
    /// A server of its own for each thread, still behind the lock: the most the threads can do
    /// side by side on this machine, which the shared setting is measured against.
    Separate,
}

/// One measurement: `data` threads open `packets` each; `handshakes` threads send requests until
/// they are done. Returns (inputs/s over the slowest data thread, requests answered/s).
fn measure(lab: &Lab, data: u64, handshakes: u64, sharing: Sharing, packets: usize) -> (f64, f64) {
    let (server, mut clients) = lab.server(data);
    // Servers made the same way number the same players' sessions alike, with the keys of the
    // same tokens, so the clients' packets open in each.
    let own: Vec<Shared> = match sharing {
        Sharing::Shared => Vec::new(),
        Sharing::Separate => (0..data).map(|_| shared(lab.server(data).0)).collect(),
    };
    let body = body();
    let sealed: Vec<Vec<Vec<u8>>> = clients
        .iter_mut()
        .map(|c| {
            (0..packets)
                .map(|_| {
                    let mut out = Vec::new();
                    c.seal(v2::Kind::Input, &body, &mut out);
                    out
                })
                .collect()
        })
        .collect();
    // The flood's requests: one valid request per handshake thread, sent again and again from
    // its own address (each costs the token's open and the challenge's seal).
    let requests: Vec<(SocketAddr, Vec<u8>)> = (0..handshakes)
        .map(|h| {
            let player = 1000 + h;
            let client = Client::new(&lab.token(player));
            (Lab::src(player), client.handshake_packet().expect("request"))
        })
        .collect();
    let server = Arc::new(shared(server));
    let start = Barrier::new((data + handshakes) as usize);
    let done = AtomicBool::new(false);
    let answered = AtomicU64::new(0);
    let (elapsed, hs_elapsed) = thread::scope(|scope| {
        let openers: Vec<_> = sealed
            .iter()
            .enumerate()
            .map(|(i, packets)| {
                let (server, start) = (own.get(i).unwrap_or(&server), &start);
                scope.spawn(move || {
                    let src = Lab::src(i as u64 + 1);
                    let mut plain = vec![0u8; v2::MAX_PAYLOAD_LEN];
                    start.wait();
                    let t = Instant::now();
                    let opened = packets.iter().filter(|p| open(server, i, src, p, &mut plain)).count();
                    assert_eq!(opened, packets.len(), "every packet opens");
                    t.elapsed()
                })
            })
            .collect();
        let flooders: Vec<_> = requests
            .iter()
            .enumerate()
            .map(|(h, (src, packet))| {
                let slot = data as usize + h;
                let (server, start, done, answered, dst) = (&server, &start, &done, &answered, lab.dst);
                scope.spawn(move || {
                    start.wait();
                    let t = Instant::now();
                    while !done.load(Ordering::Relaxed) {
                        if request(server, slot, *src, dst, packet) {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    t.elapsed()
                })
            })
            .collect();
        let elapsed = openers.into_iter().map(|h| h.join().expect("opener")).max().unwrap_or_default();
        done.store(true, Ordering::Relaxed);
        let hs = flooders.into_iter().map(|h| h.join().expect("flooder")).max().unwrap_or(Duration::ZERO);
        (elapsed, hs)
    });
    let inputs = (data as usize * packets) as f64 / elapsed.as_secs_f64();
    let requests =
        if hs_elapsed.is_zero() { 0.0 } else { answered.into_inner() as f64 / hs_elapsed.as_secs_f64() };
    (inputs, requests)
}

fn main() {
    // `cargo bench` passes `--bench`; numbers are ours.
    let numbers: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let rounds = numbers.first().copied().unwrap_or(7);
    let packets = numbers.get(1).copied().unwrap_or(200_000);
    let lab = Lab { backend: Key::from_bytes([1; 32]), dst: "10.0.0.2:7777".parse().expect("an address") };
    let settings: [(&str, u64, u64, Sharing); 4] = [
        ("1 data thread", 1, 0, Sharing::Shared),
        ("2 data threads", 2, 0, Sharing::Shared),
        ("2 data threads, a server each", 2, 0, Sharing::Separate),
        ("1 data thread + 1 request flood", 1, 1, Sharing::Shared),
    ];
    let mut inputs = vec![Vec::new(); settings.len()];
    let mut requests = vec![Vec::new(); settings.len()];
    for _ in 0..rounds {
        for (i, &(_, data, hs, sharing)) in settings.iter().enumerate() {
            let (ins, reqs) = measure(&lab, data, hs, sharing, packets);
            inputs[i].push(ins);
            requests[i].push(reqs);
        }
    }
    println!("sessions: {rounds} rounds, {packets} packets per data thread; median (range) across rounds");
    println!("{:<34} {:>28} {:>28}", "setting", "inputs/s", "requests answered/s");
    for (i, &(name, _, hs, _)) in settings.iter().enumerate() {
        let reqs = if hs == 0 { "-".to_string() } else { spread(&mut requests[i]) };
        println!("{name:<34} {:>28} {reqs:>28}", spread(&mut inputs[i]));
    }
}

/// "median (lowest-highest)" of `values`.
fn spread(values: &mut [f64]) -> String {
    values.sort_by(f64::total_cmp);
    let k = |v: f64| format!("{:.0}k", v / 1000.0);
    format!("{} ({}-{})", k(values[values.len() / 2]), k(values[0]), k(values[values.len() - 1]))
}
