//! The other end: a game client's side of protocol v2 as one value, over any transport.
//!
//! [`Player`] wraps the handshake state machine ([`session::client::Client`]) and plays the rest
//! of `docs/protocol.md`: each new input goes out with the ones before it that the server has not
//! acknowledged (redundancy), frames come in whatever order and repetition the network gives and
//! leave in tick order, each checked against the hash chain, and a gap the redundancy did not
//! cover is asked for again (catch-up). Bytes in, bytes out: the caller owns the socket.
//!
//! [`session::client::Client`]: crate::session::client::Client

use std::collections::{BTreeMap, VecDeque};

use prost::Message as _;
use tickgate_proto::{InputFrame, PlayerCommand};

pub use crate::session::client::{Event, State};
use crate::{
    frame_queue::chain_hash,
    session::{client::Client, token::PublicToken},
    wire::{
        self,
        frame_packet::{FLAG_TOO_OLD, Record},
        v2::Kind,
    },
};

/// Frames held out of order before the oldest ones are given up on (a catch-up then fills in).
const MAX_HELD: usize = 1024;

/// One player's connection, inputs and frames.
#[derive(Debug)]
pub struct Player {
    session: Client,
    redundancy: usize,
    /// Inputs not acknowledged yet, oldest first, with their seqs.
    unacked: VecDeque<(u64, PlayerCommand)>,
    next_seq: u64,
    ack: u64,
    held: BTreeMap<u64, Record>,
    next_tick: Option<u64>,
    prev_hash: Option<[u8; 32]>,
    chain_breaks: u64,
    too_old: bool,
    messages: VecDeque<Vec<u8>>,
}

impl Player {
    /// A player that connects with `token` and repeats up to `redundancy` unacknowledged inputs
    /// in each input packet (1 to 32).
    pub fn new(token: &PublicToken, redundancy: usize) -> Self {
        Self {
            session: Client::new(token),
            redundancy: redundancy.clamp(1, wire::MAX_COMMANDS),
            unacked: VecDeque::new(),
            next_seq: 0,
            ack: 0,
            held: BTreeMap::new(),
            next_tick: None,
            prev_hash: None,
            chain_breaks: 0,
            too_old: false,
            messages: VecDeque::new(),
        }
    }

    /// Where the session is.
    pub fn state(&self) -> State {
        self.session.state()
    }

    /// The handshake packet to (re)send now, if the handshake is on (every 100 ms or so).
    pub fn handshake_packet(&self) -> Option<Vec<u8>> {
        self.session.handshake_packet()
    }

    /// Takes in one packet from the server. Frames are held for [`next_frame`](Self::next_frame)
    /// and messages for [`next_message`](Self::next_message); the event says what it was.
    pub fn receive(&mut self, packet: &[u8]) -> Event {
        let event = self.session.receive(packet);
        match &event {
            Event::Frames(body) => {
                self.ack = self.ack.max(body.ack);
                while self.unacked.front().is_some_and(|(seq, _)| *seq < self.ack) {
                    self.unacked.pop_front();
                }
                self.too_old |= body.flags & FLAG_TOO_OLD != 0;
                for record in &body.records {
                    if self.next_tick.is_none_or(|next| record.tick >= next) {
                        self.held.entry(record.tick).or_insert_with(|| record.clone());
                    }
                }
                while self.held.len() > MAX_HELD {
                    self.held.pop_first();
                }
            }
            Event::Message(message) => self.messages.push_back(message.clone()),
            _ => {}
        }
        event
    }

    /// Seals a new input (its seq is the next one, from 0) into `out`, with the unacknowledged
    /// inputs before it up to the redundancy; `None` (nothing written) unless connected.
    pub fn input(&mut self, command: PlayerCommand, out: &mut Vec<u8>) -> Option<u64> {
        if !matches!(self.session.state(), State::Connected { .. }) {
            return None;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.unacked.push_back((seq, command));
        // The protocol lets an input be resent for a second at most; the window is far smaller.
        while self.unacked.len() > wire::MAX_COMMANDS {
            self.unacked.pop_front();
        }
        let take = self.unacked.len().min(self.redundancy);
        let sent: Vec<&(u64, PlayerCommand)> = self.unacked.iter().skip(self.unacked.len() - take).collect();
        let frame = InputFrame { first_seq: sent[0].0, commands: sent.iter().map(|(_, c)| *c).collect() };
        out.clear();
        self.session.seal(Kind::Input, &frame.encode_to_vec(), out).then_some(seq)
    }

    /// The next frame in tick order, once it is here; its hash checked against the frame before
    /// it (a frame that does not follow is still handed out, and counted in
    /// [`chain_breaks`](Self::chain_breaks)).
    pub fn next_frame(&mut self) -> Option<Record> {
        let tick = match self.next_tick {
            Some(tick) => tick,
            None => *self.held.keys().next()?,
        };
        let record = self.held.remove(&tick)?;
        if let Some(prev) = self.prev_hash
            && chain_hash(&prev, record.tick, &record.inputs) != record.hash
        {
            self.chain_breaks += 1;
        }
        self.prev_hash = Some(record.hash);
        self.next_tick = Some(tick + 1);
        Some(record)
    }

    /// The first tick missing while newer ones are here: what to ask a catch-up for.
    pub fn missing(&self) -> Option<u64> {
        let next = self.next_tick?;
        let newest = *self.held.keys().next_back()?;
        (newest > next && !self.held.contains_key(&next)).then_some(next)
    }

    /// Seals a catch-up request from the first frame not handed out yet into `out` (after a
    /// reconnect, or when [`missing`](Self::missing) says so); `false` unless connected.
    pub fn catch_up(&mut self, out: &mut Vec<u8>) -> bool {
        let from = self.next_tick.unwrap_or(0);
        out.clear();
        self.session.catch_up(from, out)
    }

    /// The next message the game sent to this player alone.
    pub fn next_message(&mut self) -> Option<Vec<u8>> {
        self.messages.pop_front()
    }

    /// One more than the newest input the server acknowledged.
    pub fn ack(&self) -> u64 {
        self.ack
    }

    /// Inputs sent and not yet acknowledged.
    pub fn unacked(&self) -> usize {
        self.unacked.len()
    }

    /// Frames whose hash did not follow from the frame before them.
    pub fn chain_breaks(&self) -> u64 {
        self.chain_breaks
    }

    /// Whether the server said a catch-up asked for frames it no longer holds (the game must
    /// send this player the state another way).
    pub fn too_old(&self) -> bool {
        self.too_old
    }

    /// Seals `copies` disconnect packets; nothing more can be sent after them.
    pub fn disconnect(&mut self, copies: usize) -> Vec<Vec<u8>> {
        self.session.disconnect(copies)
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::{
        frame_queue::{Frame, GENESIS_HASH},
        input::{Clock, Input, InputKind, Timestamp},
        session::{
            server::{Data, Server, ServerConfig},
            token::{self, TokenParams},
        },
        wire::{crypto::Key, frame_packet},
    };

    const NOW_MS: u64 = 1_800_000_000_000;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("an address")
    }

    /// A server and a connected player with redundancy 3.
    fn connected() -> (Server, Player, u32) {
        let backend = Key::from_bytes([1; 32]);
        let mut server =
            Server::with_run_key(ServerConfig::new(77, backend.clone(), 4), Key::from_bytes([2; 32]), 0);
        let params = TokenParams {
            protocol_id: 77,
            create_ts: NOW_MS / 1000,
            expire_ts: NOW_MS / 1000 + 60,
            timeout_s: 10,
            match_id: 5,
            player_id: 9,
            user_data: vec![],
            addresses: vec![addr("10.0.0.2:7777")],
            c2s_key: Key::from_bytes([3; 32]),
            s2c_key: Key::from_bytes([4; 32]),
        };
        let minted = token::mint(&backend, &params, [5; 12]).expect("a token");
        let mut player = Player::new(&token::parse(&minted).expect("parses"), 3);
        let src = addr("10.0.0.1:4000");
        let request = player.handshake_packet().expect("a request");
        let challenge = server.on_request(src, addr("10.0.0.2:7777"), &request, NOW_MS).expect("a challenge");
        assert_eq!(player.receive(&challenge.bytes), Event::Challenged);
        let response = player.handshake_packet().expect("a response");
        let accepted = server.on_response(src, &response, NOW_MS, 1).expect("a session");
        let session = accepted.joined.session;
        assert_eq!(player.receive(&accepted.reply.bytes), Event::Connected(session));
        (server, player, session)
    }

    /// Frames 0..n of a match where player 9 sends input `t` in tick `t`, chained.
    fn frames(n: u64) -> Vec<Frame> {
        let mut prev = GENESIS_HASH;
        (0..n)
            .map(|tick| {
                let inputs = vec![Input {
                    kind: InputKind::Command,
                    rx: Timestamp { ns: 1_000 + tick, clock: Clock::Xdp },
                    queue: 0,
                    client_id: 9,
                    match_id: 0,
                    seq: tick,
                    client_frame: tick as u32,
                    payload: [tick as u8].into(),
                }];
                let hash = chain_hash(&prev, tick, &inputs);
                prev = hash;
                Frame {
                    match_id: 5,
                    tick,
                    tick_hz: 60,
                    start_ns: tick,
                    inputs,
                    hash,
                    absent: vec![],
                    last: false,
                }
            })
            .collect()
    }

    /// The frame packet a broadcast of `frames[newest]` sends (with two older ones).
    fn packet(server: &mut Server, session: u32, frames: &[Frame], newest: usize, ack: u64) -> Vec<u8> {
        let records: Vec<Vec<u8>> = (newest.saturating_sub(2)..=newest)
            .rev()
            .map(|i| {
                let mut r = Vec::new();
                frame_packet::encode_record(&frames[i], &[], &mut r);
                r
            })
            .collect();
        let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        let mut body = Vec::new();
        frame_packet::body(60, ack, 0, &refs, &mut body);
        server.seal_to(session, Kind::Frame, &body, 2).expect("a session").bytes
    }

    #[test]
    fn frames_come_out_once_in_tick_order_whatever_order_they_arrive_in() {
        let (mut server, mut player, session) = connected();
        let all = frames(12);
        // Packets for ticks 0..12 arrive shuffled, some twice, packet 5 lost (its frame rides on 6 and 7).
        for newest in [1, 0, 3, 2, 2, 4, 7, 6, 9, 8, 11, 10] {
            let p = packet(&mut server, session, &all, newest, 0);
            assert!(matches!(player.receive(&p), Event::Frames(_)));
        }
        let ticks: Vec<u64> = std::iter::from_fn(|| player.next_frame()).map(|r| r.tick).collect();
        assert_eq!(ticks, (0..12).collect::<Vec<_>>());
        assert_eq!(player.chain_breaks(), 0);
        assert_eq!(player.missing(), None);
    }

    #[test]
    fn a_gap_is_reported_and_asked_for_and_a_forged_hash_is_counted() {
        let (mut server, mut player, session) = connected();
        let mut all = frames(10);
        player.receive(&packet(&mut server, session, &all, 1, 0));
        while player.next_frame().is_some() {}
        // Ticks 2..=5 lost beyond the redundancy: 9 brings 7..=9.
        player.receive(&packet(&mut server, session, &all, 9, 0));
        assert_eq!(player.next_frame(), None, "tick 2 is not here");
        assert_eq!(player.missing(), Some(2));
        let mut out = Vec::new();
        assert!(player.catch_up(&mut out));
        let mut plain = [0u8; 64];
        assert_eq!(
            server.open_data(addr("10.0.0.1:4000"), &out, 3, &mut plain),
            Ok(Data::CatchUp { session, player_id: 9, match_id: 5, from_tick: 2 })
        );
        // The answer fills the gap; a frame with a wrong hash is handed out and counted.
        all[4].hash[0] ^= 1;
        for newest in [4, 6] {
            player.receive(&packet(&mut server, session, &all, newest, 0));
        }
        let ticks: Vec<u64> = std::iter::from_fn(|| player.next_frame()).map(|r| r.tick).collect();
        assert_eq!(ticks, (2..10).collect::<Vec<_>>());
        assert_eq!(player.chain_breaks(), 2, "tick 4 does not follow 3, and 5 does not follow 4");
    }

    #[test]
    fn inputs_carry_the_unacked_ones_before_them_until_the_server_acks() {
        let (mut server, mut player, session) = connected();
        let src = addr("10.0.0.1:4000");
        let mut out = Vec::new();
        let mut plain = [0u8; 256];
        let mut sent = Vec::new();
        for i in 0..5u32 {
            let seq = player.input(PlayerCommand { command_id: i, ..Default::default() }, &mut out);
            assert_eq!(seq, Some(u64::from(i)));
            let Ok(Data::Input { plain, .. }) = server.open_data(src, &out, 3, &mut plain) else {
                panic!("an input packet")
            };
            let frame = InputFrame::decode(plain).expect("an InputFrame");
            sent.push((frame.first_seq, frame.commands.len()));
        }
        assert_eq!(sent, vec![(0, 1), (0, 2), (0, 3), (1, 3), (2, 3)], "redundancy 3");
        // The server acks inputs below 4: the next packet carries 4 and 5 only.
        let all = frames(1);
        player.receive(&packet(&mut server, session, &all, 0, 4));
        assert_eq!((player.ack(), player.unacked()), (4, 1));
        player.input(PlayerCommand::default(), &mut out).expect("connected");
        let Ok(Data::Input { plain, .. }) = server.open_data(src, &out, 3, &mut plain) else {
            panic!("an input packet")
        };
        let frame = InputFrame::decode(plain).expect("an InputFrame");
        assert_eq!((frame.first_seq, frame.commands.len()), (4, 2));
    }
}
