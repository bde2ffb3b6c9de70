//! The load generator: paced, valid tickgate packets from many clients and flows, each carrying
//! its send time (CLOCK_TAI), plus junk at the generator's full speed in the flood scenario.
//!
//! The schedule is open-loop: packet k is due at `start + k / rate` whatever happened before, so
//! a receiver that stalls is not excused by a generator that waits for it (no coordinated
//! omission). Every loop stops by itself at its deadline or its packet budget.

use std::{
    collections::BTreeMap,
    net::{SocketAddrV4, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use serde::Serialize;
use tickgate::{
    session::{
        client::{Client, Event, State},
        token::{self, TokenParams},
    },
    wire::{crypto::Key, v2},
};
use tickgate::{sys::clock_monotonic_ns, sys::clock_tai_ns, wire};
use tickgate_testkit::{client::SyntheticClient, traffic::SessionPlan};

use crate::{
    live::{self, LiveFrames},
    sys,
};

/// First byte of the tickgate header's checksum and length fields, and the header size.
const HEADER_LEN: usize = 28;
/// Largest UDP payload a tickgate packet may have (28-byte header + 1424).
pub const MAX_PACKET: usize = 1452;
/// Packets per `sendmmsg`.
const BATCH: usize = 32;
/// Game port of the lab.
pub const GAME_PORT: u16 = 7777;
/// The port junk that is not game traffic goes to: nothing listens there.
pub const OTHER_PORT: u16 = 9999;

/// How the generator's packets enter the lab.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum GenPath {
    /// UDP sockets (sendmmsg): each packet an skb, which the receiver veth converts for XDP.
    Skb,
    /// Junk (and the ceiling's packets) as live XDP frames (`BPF_PROG_RUN`), like a NIC's
    /// receive; legit inputs still through sockets (they are unique per packet).
    Live,
    /// Everything as live XDP frames, legit inputs too, each at its due time: one long
    /// `BPF_PROG_RUN` call whose program takes unique frames from a ring the generator fills
    /// ([`live::LiveSchedule`]), and sends junk (flood) whenever no input is due. Frames of up
    /// to [`live::SCHEDULED_FRAME_MAX`] bytes (UDP payloads up to 86).
    LiveInputs,
}

/// Where a flood's junk goes (`--junk-ports`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum JunkPorts {
    /// Half to the game port (bad magic), half to a port nothing listens on: the host's stack
    /// takes that half on either path.
    Both,
    /// All to the game port: what the frontend, not the host's stack, must shed.
    Game,
}

/// Copies per live-frame call at full speed.
const LIVE_BATCH: u64 = 65_536;

/// What to send.
#[derive(Clone, Debug, Serialize)]
pub struct GenConfig {
    /// How packets enter the lab.
    pub path: GenPath,
    /// The sender veth (live frames go through it).
    pub tx_if: String,
    /// Legit packets per second; `None` sends as fast as the core allows.
    pub rate: Option<u64>,
    /// How long to send.
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
    /// Upper bound on packets of all kinds (the second bound of the loop).
    pub max_packets: u64,
    /// UDP payload size of every packet (tickgate header + protobuf), padded with an unknown
    /// protobuf field when the natural size is smaller.
    pub size: usize,
    /// Client ids 1..=clients, in turn.
    pub clients: u32,
    /// Source ports (UDP sockets), used in turn per batch.
    pub flows: u32,
    /// Inputs per packet: the newest and `redundancy - 1` resends.
    pub redundancy: u32,
    /// Junk packets per second (`None`: as fast as the core allows) when `junk` is on.
    pub junk_rate: Option<u64>,
    /// Live inputs' paced junk goes in bursts of this many µs of its rate, back to back (as a
    /// NIC's interrupt moderation hands its NAPI a batch); 0: each frame alone, when due.
    pub junk_burst_us: u64,
    /// Fill every gap in the legit schedule with junk: bad magic to the game port and valid-size
    /// datagrams to another port, alternating.
    pub junk: bool,
    /// Where the junk goes: half to another port (`Both`), or all to the game port (`Game`: the
    /// datagrams that would have gone elsewhere are junk of the game's too).
    pub junk_ports: JunkPorts,
    /// Receiver.
    pub dst: SocketAddrV4,
    /// Protocol v2: each flow connects as its own player with a token minted with this plan's
    /// key, and every packet of a flow is its player's, sealed; `None` sends v1.
    #[serde(skip)]
    pub sessions: Option<SessionPlan>,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// What was sent.
#[derive(Clone, Debug, Default, Serialize)]
pub struct GenReport {
    /// Legit packets the kernel accepted.
    pub legit_packets: u64,
    /// Of those, the ones sent as live XDP frames (`--generators live-inputs`).
    pub legit_live_frames: u64,
    /// Distinct inputs carried by those packets (each input counted once however often resent).
    pub inputs: u64,
    /// Protocol v2 handshake packets (requests and responses, retries included).
    pub handshake_packets: u64,
    /// Bad-magic packets to the game port.
    pub junk_game_port: u64,
    /// Packets to the other port.
    pub junk_other_port: u64,
    /// Packets the kernel refused, by errno.
    pub send_errors: BTreeMap<String, u64>,
    /// Seconds from the first to the last send.
    pub elapsed_s: f64,
    /// Legit packets per second achieved.
    pub legit_pps: f64,
    /// All packets per second achieved.
    pub total_pps: f64,
    /// Smallest and largest legit UDP payload sent.
    pub size_min: usize,
    /// Largest legit UDP payload sent.
    pub size_max: usize,
    /// Legit packets that left more than 1 ms after their scheduled time (the generator fell
    /// behind: the offered rate was not really offered).
    pub late_sends: u64,
    /// The generator thread's id, for CPU accounting.
    pub tid: i32,
}

impl GenReport {
    /// Every packet that left the generator.
    pub fn total(&self) -> u64 {
        self.legit_packets + self.handshake_packets + self.junk_game_port + self.junk_other_port
    }
}

/// Pads a v1 tickgate packet to `size` bytes with unknown protobuf fields (which the server
/// skips, see docs/protocol.md) and rewrites its length and checksum. Never shrinks; a pad of
/// one byte is impossible (a field takes at least two), so such a packet gets two.
pub fn pad(packet: &mut Vec<u8>, size: usize) {
    if !pad_fields(packet, size.min(MAX_PACKET)) {
        return;
    }
    let payload_len = (packet.len() - HEADER_LEN) as u16;
    packet[4..6].copy_from_slice(&payload_len.to_be_bytes());
    let Some((head, payload)) = packet.split_first_chunk::<HEADER_LEN>() else { return };
    let crc = wire::checksum(head, payload);
    packet[24..28].copy_from_slice(&crc.to_be_bytes());
}

/// Appends unknown protobuf fields to `bytes` until it is `size` long (two more when one would
/// do); `false` if it was that long already.
fn pad_fields(bytes: &mut Vec<u8>, size: usize) -> bool {
    let mut need = size.saturating_sub(bytes.len());
    if need == 0 {
        return false;
    }
    if need == 1 {
        need = 2;
    }
    while need > 0 {
        // One field: tag (field 15, length-delimited) + one-byte length + up to 127 bytes.
        let take = if need <= 129 {
            need
        } else if need - 129 == 1 {
            128
        } else {
            129
        };
        bytes.push(0x7a);
        bytes.push((take - 2) as u8);
        bytes.resize(bytes.len() + take - 2, 0);
        need -= take;
    }
    true
}

/// Connects every flow as its own player (token, request, challenge, response), retrying for up
/// to 5 s; a flow that gets no session is an error (the run would measure nothing).
fn connect(
    flows: &[UdpSocket],
    plan: &SessionPlan,
    dst: SocketAddrV4,
    sent: &mut u64,
) -> std::io::Result<Vec<Client>> {
    let now_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut clients = Vec::with_capacity(flows.len());
    for i in 0..flows.len() {
        let params = TokenParams {
            protocol_id: plan.protocol_id,
            create_ts: now_s,
            expire_ts: now_s + 3600,
            timeout_s: plan.timeout_s,
            match_id: 0,
            player_id: i as u64 + 1,
            user_data: Vec::new(),
            addresses: vec![dst.into()],
            c2s_key: Key::random().map_err(|e| std::io::Error::other(e.to_string()))?,
            s2c_key: Key::random().map_err(|e| std::io::Error::other(e.to_string()))?,
        };
        let minted = token::mint_random(&plan.backend_key, &params)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let public = token::parse(&minted).map_err(|e| std::io::Error::other(e.to_string()))?;
        clients.push(Client::new(&public));
    }
    // Non-blocking while connecting: every flow's round trip overlaps the others', so 64 flows
    // connect in about one round trip, well inside the receiver's settling time before the load.
    for s in flows {
        s.set_nonblocking(true)?;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 2048];
    let mut last_send: Option<std::time::Instant> = None;
    loop {
        let mut challenged = false;
        for (s, c) in flows.iter().zip(clients.iter_mut()) {
            while let Ok((n, _)) = s.recv_from(&mut buf) {
                challenged |= c.receive(&buf[..n]) == Event::Challenged;
            }
        }
        let waiting = clients.iter().filter(|c| c.handshake_packet().is_some()).count();
        if waiting == 0 {
            break;
        }
        if std::time::Instant::now() > deadline {
            return Err(std::io::Error::other(format!("{waiting} flows got no session in 5 s")));
        }
        // Responses go out as soon as their challenge is in; anything pending is resent every
        // 20 ms.
        if challenged || last_send.is_none_or(|t| t.elapsed() >= Duration::from_millis(20)) {
            for (s, c) in flows.iter().zip(clients.iter()) {
                if let Some(p) = c.handshake_packet() {
                    s.send_to(&p, dst)?;
                    *sent += 1;
                }
            }
            last_send = Some(std::time::Instant::now());
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    for s in flows {
        s.set_nonblocking(false)?;
    }
    if let Some(c) = clients.iter().find(|c| !matches!(c.state(), State::Connected { .. })) {
        return Err(std::io::Error::other(format!("a flow was refused: {:?}", c.state())));
    }
    Ok(clients)
}

fn errno_name(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EAGAIN) => "EAGAIN".into(),
        Some(libc::ENOBUFS) => "ENOBUFS".into(),
        Some(libc::ECONNREFUSED) => "ECONNREFUSED".into(),
        Some(libc::EINTR) => "EINTR".into(),
        Some(n) => format!("errno {n}"),
        None => e.kind().to_string(),
    }
}

/// Sends per `config`, starting when CLOCK_TAI reads `start_tai_ns`, on the calling thread (which
/// the caller has moved into the sender namespace and pinned). Stops at the deadline, the packet
/// budget or `stop`, whichever comes first.
pub fn run(config: &GenConfig, start_tai_ns: u64, stop: &AtomicBool) -> std::io::Result<GenReport> {
    sys::tight_timer_slack();
    let any = SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0);
    let flows: Vec<UdpSocket> =
        (0..config.flows.max(1)).map(|_| sys::bind_udp(any, false)).collect::<Result<_, _>>()?;
    let junk_sock = sys::bind_udp(any, false)?;
    for s in flows.iter().chain([&junk_sock]) {
        // A full send buffer blocks at most this long, so the deadline still holds.
        s.set_write_timeout(Some(Duration::from_millis(100)))?;
    }
    // v2: one player per flow, each flow's packets its player's own.
    let players = if config.sessions.is_some() { flows.len() as u32 } else { config.clients.max(1) };
    let mut clients: Vec<SyntheticClient> =
        (1..=players).map(|id| SyntheticClient::new(id, config.redundancy)).collect();
    let mut handshake_packets = 0;
    let mut sessions = match &config.sessions {
        Some(plan) => connect(&flows, plan, config.dst, &mut handshake_packets)?,
        None => Vec::new(),
    };
    // Live inputs leave from their flow's port, where its session (v2) was made.
    let flow_ports =
        flows.iter().map(|f| f.local_addr().map(|a| a.port())).collect::<std::io::Result<Vec<u16>>>()?;
    let mut body = Vec::with_capacity(MAX_PACKET);
    let mut last_sent_seq = vec![0u64; clients.len()];
    let redundancy = u64::from(config.redundancy.clamp(1, wire::MAX_COMMANDS as u32));

    let other_port = match config.junk_ports {
        JunkPorts::Both => OTHER_PORT,
        JunkPorts::Game => config.dst.port(),
    };
    let junk_dsts: Vec<SocketAddrV4> = (0..BATCH)
        .map(|i| SocketAddrV4::new(*config.dst.ip(), if i % 2 == 0 { config.dst.port() } else { other_port }))
        .collect();
    let junk_packets: Vec<Vec<u8>> = (0..BATCH)
        .map(|i| {
            let mut p = vec![0u8; config.size.clamp(HEADER_LEN, MAX_PACKET)];
            // Bad magic (00 00) on the game port; on the other port, anything.
            if i % 2 == 1 {
                p.fill(0x5a);
            }
            p
        })
        .collect();
    let junk_refs: Vec<&[u8]> = junk_packets.iter().map(Vec::as_slice).collect();
    // Live frames: the same junk as Ethernet frames, and the one sender that may send them.
    let live = match config.path {
        GenPath::Live => Some(LiveFrames::new(&config.tx_if)?),
        GenPath::Skb | GenPath::LiveInputs => None,
    };
    let live_junk =
        [live::udp_frame(config.dst.port(), &junk_packets[0]), live::udp_frame(other_port, &junk_packets[1])];

    let mut report =
        GenReport { size_min: usize::MAX, tid: sys::gettid(), handshake_packets, ..GenReport::default() };
    let mut bufs: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(MAX_PACKET)).collect();
    let mut owners: Vec<(usize, u64)> = Vec::with_capacity(BATCH);
    let legit_dsts = [config.dst; BATCH];

    // Both clocks tick at the same rate; pace on MONOTONIC (immune to TAI steps), stamp in TAI.
    let start_mono = clock_monotonic_ns() + start_tai_ns.saturating_sub(clock_tai_ns());
    let end_mono = start_mono + config.duration.as_nanos() as u64;
    if config.path == GenPath::LiveInputs {
        let plan = Schedule { clients, sessions, flow_ports, live_junk, start_mono, end_mono, redundancy };
        return run_live_schedule(config, plan, report, stop);
    }
    sys::sleep_until_monotonic(start_mono);
    let mut scheduled = 0u64;
    let mut junk_scheduled = 0u64;
    let mut next_client = 0usize;
    let mut batch_no = 0usize;
    let mut first_send = None;
    let mut last_send = start_mono;
    let sent_total = |r: &GenReport| r.total() + r.send_errors.values().sum::<u64>();
    // Live junk at full speed comes from a thread of its own (on this core: it inherits the
    // pinning), so that its long calls never hold the legit schedule.
    let junk_stop = Arc::new(AtomicBool::new(false));
    let junk_thread = match (&live, config.junk) {
        (Some(_), true) => Some(spawn_live_junk(
            &config.tx_if,
            live_junk.clone(),
            end_mono,
            config.max_packets,
            Arc::clone(&junk_stop),
        )?),
        _ => None,
    };

    // The ceiling with live frames: one packet, repeated as fast as the kernel runs them (XDP
    // drops them all but one a second, by the rate limit); its one input is counted once.
    let ceiling_live =
        config.path == GenPath::Live && config.rate.is_none() && !config.junk && sessions.is_empty();
    if let Some(live) = live.as_ref().filter(|_| ceiling_live) {
        let mut packet = Vec::new();
        let seq = clients[0].next_packet(clock_tai_ns(), &mut packet);
        pad(&mut packet, config.size);
        let frame = live::udp_frame(config.dst.port(), &packet);
        report.size_min = packet.len();
        report.size_max = packet.len();
        report.inputs = seq.min(1);
        first_send = Some(clock_monotonic_ns());
        while !stop.load(Ordering::Relaxed) && sent_total(&report) < config.max_packets {
            if clock_monotonic_ns() >= end_mono {
                break;
            }
            let n = LIVE_BATCH.min(config.max_packets - sent_total(&report));
            match live.send(&frame, n as u32) {
                Ok(()) => report.legit_packets += n,
                Err(e) => *report.send_errors.entry(errno_name(&e)).or_default() += 1,
            }
            last_send = clock_monotonic_ns();
        }
    }
    while !ceiling_live && !stop.load(Ordering::Relaxed) && sent_total(&report) < config.max_packets {
        let now = clock_monotonic_ns();
        if now >= end_mono {
            break;
        }
        let due = match config.rate {
            Some(rate) => {
                let by_now = (u128::from(now - start_mono) * u128::from(rate) / 1_000_000_000) as u64 + 1;
                by_now.saturating_sub(scheduled)
            }
            None => BATCH as u64,
        };
        if due == 0 {
            let junk_due = match (config.junk, config.junk_rate) {
                // Live junk has a thread of its own.
                _ if junk_thread.is_some() => 0,
                (false, _) => 0,
                (true, None) => BATCH,
                (true, Some(r)) => {
                    let by_now = (u128::from(now - start_mono) * u128::from(r) / 1_000_000_000) as u64 + 1;
                    by_now.saturating_sub(junk_scheduled).min(BATCH as u64) as usize
                }
            };
            if junk_due > 0 {
                junk_scheduled += junk_due as u64;
                match sys::send_batch(&junk_sock, &junk_refs[..junk_due], &junk_dsts[..junk_due]) {
                    Ok(n) => {
                        let game = n.div_ceil(2) as u64;
                        report.junk_game_port += game;
                        report.junk_other_port += n as u64 - game;
                    }
                    Err(e) => *report.send_errors.entry(errno_name(&e)).or_default() += 1,
                }
                first_send.get_or_insert(now);
                last_send = clock_monotonic_ns();
            } else if let Some(rate) = config.rate {
                let mut next = start_mono + (u128::from(scheduled) * 1_000_000_000 / u128::from(rate)) as u64;
                if let (true, Some(r)) = (config.junk, config.junk_rate) {
                    next = next.min(
                        start_mono + (u128::from(junk_scheduled) * 1_000_000_000 / u128::from(r)) as u64,
                    );
                }
                sys::sleep_until_monotonic(next.min(end_mono));
            }
            continue;
        }
        let n = (due as usize).min(BATCH);
        if let Some(rate) = config.rate {
            let scheduled_at = start_mono + (u128::from(scheduled) * 1_000_000_000 / u128::from(rate)) as u64;
            if now > scheduled_at + 1_000_000 {
                report.late_sends += n as u64;
            }
        }
        owners.clear();
        let flow_no = batch_no % flows.len();
        for buf in bufs.iter_mut().take(n) {
            let (c, seq) = match sessions.get_mut(flow_no) {
                Some(session) => {
                    let seq = clients[flow_no].next_body(clock_tai_ns(), &mut body);
                    // The sealed packet is the body plus the header and the tag: pad the body to fit `size`.
                    pad_fields(&mut body, config.size.saturating_sub(v2::HEADER_LEN + v2::TAG_LEN));
                    session.seal(v2::Kind::Input, &body, buf);
                    (flow_no, seq)
                }
                None => {
                    let c = next_client;
                    next_client = (next_client + 1) % clients.len();
                    let seq = clients[c].next_packet(clock_tai_ns(), buf);
                    pad(buf, config.size);
                    (c, seq)
                }
            };
            report.size_min = report.size_min.min(buf.len());
            report.size_max = report.size_max.max(buf.len());
            owners.push((c, seq));
        }
        let refs: Vec<&[u8]> = bufs[..n].iter().map(Vec::as_slice).collect();
        let flow = &flows[flow_no];
        batch_no += 1;
        // A packet the kernel refuses is lost to the receiver: count it, skip it, send the rest.
        let mut accepted = vec![false; n];
        let mut done = 0;
        while done < n {
            match sys::send_batch(flow, &refs[done..], &legit_dsts[done..n]) {
                Ok(0) => break,
                Ok(k) => {
                    accepted[done..done + k].fill(true);
                    done += k;
                }
                Err(e) => {
                    *report.send_errors.entry(errno_name(&e)).or_default() += 1;
                    done += 1;
                }
            }
        }
        for (&(c, seq), _) in owners.iter().zip(&accepted).filter(|(_, ok)| **ok) {
            // The packet carries seqs seq-R+1..=seq: the ones above the newest already sent are new.
            report.inputs += seq - last_sent_seq[c].max(seq.saturating_sub(redundancy));
            last_sent_seq[c] = seq;
            report.legit_packets += 1;
        }
        scheduled += n as u64;
        first_send.get_or_insert(now);
        last_send = clock_monotonic_ns();
    }
    junk_stop.store(true, Ordering::Relaxed);
    if let Some(t) = junk_thread {
        let junk = t.join().map_err(|_| std::io::Error::other("the live junk thread panicked"))?;
        report.junk_game_port += junk.game;
        report.junk_other_port += junk.other;
        for (k, v) in junk.errors {
            *report.send_errors.entry(k).or_default() += v;
        }
        first_send.get_or_insert(start_mono);
        last_send = last_send.max(junk.last_mono);
    }
    let first = first_send.unwrap_or(start_mono);
    report.elapsed_s = last_send.saturating_sub(first).max(1) as f64 / 1e9;
    report.legit_pps = report.legit_packets as f64 / report.elapsed_s;
    report.total_pps = report.total() as f64 / report.elapsed_s;
    if report.size_min == usize::MAX {
        report.size_min = 0;
    }
    Ok(junk_by_port(config, report))
}

/// How far ahead of its due time a frame is put in the live schedule's ring. The ring holds
/// far more than that at any rate the bench offers (65 536 slots against 12 000 frames at
/// 600 000/s), so a slot is written again long after the program took its frame (the program
/// counts a frame as taken just before it copies it).
const SCHEDULE_LEAD_NS: u64 = 20_000_000;
/// Slots of the live schedule's ring (a power of two; 152 bytes each).
const SCHEDULE_RING: u32 = 1 << 16;

/// What `run_live_schedule` sends from: the clients (and their sessions) and flows of the run.
struct Schedule {
    clients: Vec<SyntheticClient>,
    sessions: Vec<Client>,
    flow_ports: Vec<u16>,
    live_junk: [Vec<u8>; 2],
    start_mono: u64,
    end_mono: u64,
    redundancy: u64,
}

/// `--generators live-inputs`: every legit input a live frame of its own, sent at its due time
/// by one long live-frame call ([`live::LiveSchedule`]) on a thread of its own, with junk (if
/// the scenario has junk) in every run of the program that has no input due, or paced at the
/// junk rate. This thread fills the schedule's ring ahead of the due times, then ends the call.
fn run_live_schedule(
    config: &GenConfig,
    mut plan: Schedule,
    mut report: GenReport,
    stop: &AtomicBool,
) -> std::io::Result<GenReport> {
    let Some(rate) = config.rate.filter(|r| *r > 0) else {
        return Err(std::io::Error::other("live inputs are paced: they need a rate"));
    };
    let junk_budget = if config.junk { config.max_packets } else { 0 };
    let schedule = Arc::new(live::LiveSchedule::new(
        &config.tx_if,
        SCHEDULE_RING,
        [&plan.live_junk[0], &plan.live_junk[1]],
        junk_budget,
    )?);
    if let (true, Some(per_second)) = (config.junk, config.junk_rate) {
        let burst = u128::from(per_second) * u128::from(config.junk_burst_us) / 1_000_000;
        schedule.pace_junk(per_second, (burst as u64).max(1), plan.start_mono);
    }
    sys::interrupt_with_sigusr1()?;
    let due = |k: u64| plan.start_mono + (u128::from(k) * 1_000_000_000 / u128::from(rate)) as u64;
    let tai_minus_mono = clock_tai_ns().wrapping_sub(clock_monotonic_ns());
    let total = (u128::from(rate) * config.duration.as_nanos() / 1_000_000_000) as u64;
    let total = total.min(config.max_packets);
    let mut owners: Vec<(usize, u64)> = Vec::with_capacity(total as usize);
    let mut body = Vec::with_capacity(MAX_PACKET);
    let mut packet = Vec::with_capacity(MAX_PACKET);
    let mut next_client = 0usize;
    let mut produced = 0u64;
    let mut late = 0u64;
    // Fills the ring with what is due before `until`, as far as it has room.
    let mut produce = |until: u64, sent: u64, report: &mut GenReport| -> std::io::Result<()> {
        while produced < total && due(produced) < until && produced < sent + u64::from(schedule.capacity()) {
            let k = produced;
            if k >= u64::from(schedule.capacity()) {
                // The frame leaving its slot: was it late?
                let (was_due, sent_at) = schedule.times(k - u64::from(schedule.capacity()));
                late += u64::from(sent_at.saturating_sub(was_due) > 1_000_000);
            }
            let flow = (k % plan.flow_ports.len() as u64) as usize;
            let stamp = due(k).wrapping_add(tai_minus_mono);
            let (c, seq) = match plan.sessions.get_mut(flow) {
                Some(session) => {
                    let seq = plan.clients[flow].next_body(stamp, &mut body);
                    pad_fields(&mut body, config.size.saturating_sub(v2::HEADER_LEN + v2::TAG_LEN));
                    session.seal(v2::Kind::Input, &body, &mut packet);
                    (flow, seq)
                }
                None => {
                    let c = next_client;
                    next_client = (next_client + 1) % plan.clients.len();
                    let seq = plan.clients[c].next_packet(stamp, &mut packet);
                    pad(&mut packet, config.size);
                    (c, seq)
                }
            };
            report.size_min = report.size_min.min(packet.len());
            report.size_max = report.size_max.max(packet.len());
            schedule.put(
                k,
                due(k),
                &live::udp_frame_from(plan.flow_ports[flow], config.dst.port(), &packet),
            )?;
            owners.push((c, seq));
            produced += 1;
        }
        schedule.set_produced(produced);
        Ok(())
    };
    produce(plan.start_mono + SCHEDULE_LEAD_NS, 0, &mut report)?;

    let done = Arc::new(AtomicBool::new(false));
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let caller = {
        let (schedule, done) = (Arc::clone(&schedule), Arc::clone(&done));
        // Created on this thread: it shares its network namespace and core.
        std::thread::Builder::new().name("bench-gen-sched".into()).spawn(move || -> std::io::Result<()> {
            // SAFETY: pthread_self has no preconditions.
            let _ = tid_tx.send(unsafe { libc::pthread_self() });
            while !done.load(Ordering::Relaxed) {
                schedule.run(u32::MAX)?;
            }
            Ok(())
        })?
    };
    let caller_thread =
        tid_rx.recv().map_err(|_| std::io::Error::other("the live schedule's thread did not start"))?;
    let mut failure = None;
    loop {
        let now = clock_monotonic_ns();
        let sent = schedule.state().next;
        // Every input sent, and (with junk) the duration over; or the deadline, or a stop.
        let finished = sent >= total && (!config.junk || now >= plan.end_mono);
        if finished
            || now >= plan.end_mono + 100_000_000
            || stop.load(Ordering::Relaxed)
            || caller.is_finished()
        {
            break;
        }
        if let Err(e) = produce(now + SCHEDULE_LEAD_NS, sent, &mut report) {
            failure = Some(e);
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    // End the call: signal its thread until it has seen `done`.
    done.store(true, Ordering::Relaxed);
    while !caller.is_finished() {
        // SAFETY: the thread is not joined yet (its handle is held), so its pthread_t is valid
        // even if it has just ended.
        unsafe { libc::pthread_kill(caller_thread, libc::SIGUSR1) };
        std::thread::sleep(Duration::from_millis(1));
    }
    let call = caller.join().map_err(|_| std::io::Error::other("the live schedule's thread panicked"))?;
    if let Some(e) = failure.or(call.err()) {
        return Err(e);
    }
    let state = schedule.state();
    // The frames still in their slots whose lateness `produce` did not count (it counted each
    // frame as its slot was taken again, so those before `produced - capacity`).
    let mut last_sent = plan.start_mono;
    for k in produced.saturating_sub(u64::from(schedule.capacity()))..state.next {
        let (was_due, sent_at) = schedule.times(k);
        late += u64::from(sent_at.saturating_sub(was_due) > 1_000_000);
        last_sent = last_sent.max(sent_at);
    }
    let mut last_sent_seq = vec![0u64; plan.clients.len()];
    for &(c, seq) in owners.iter().take(state.next as usize) {
        report.inputs += seq - last_sent_seq[c].max(seq.saturating_sub(plan.redundancy));
        last_sent_seq[c] = seq;
    }
    report.legit_packets = state.next;
    report.legit_live_frames = state.next;
    report.late_sends = late;
    report.junk_game_port = state.junk_sent.div_ceil(2);
    report.junk_other_port = state.junk_sent / 2;
    let end = if config.junk { clock_monotonic_ns().min(plan.end_mono) } else { last_sent };
    report.elapsed_s = end.saturating_sub(plan.start_mono).max(1) as f64 / 1e9;
    report.legit_pps = report.legit_packets as f64 / report.elapsed_s;
    report.total_pps = report.total() as f64 / report.elapsed_s;
    if report.size_min == usize::MAX {
        report.size_min = 0;
    }
    Ok(junk_by_port(config, report))
}

/// With all the junk to the game port, the half counted as "other port" went there too.
fn junk_by_port(config: &GenConfig, mut report: GenReport) -> GenReport {
    if config.junk_ports == JunkPorts::Game {
        report.junk_game_port += std::mem::take(&mut report.junk_other_port);
    }
    report
}

/// What the live junk thread sent.
#[derive(Debug, Default)]
struct LiveJunk {
    game: u64,
    other: u64,
    errors: BTreeMap<String, u64>,
    last_mono: u64,
}

/// Starts the thread that sends junk as live frames at full speed until `end_mono`, `budget`
/// frames or `stop`: the two kinds in turn, [`LIVE_BATCH`] copies per call. A `BPF_PROG_RUN`
/// call costs about 25 ms here whatever its size (set-up and tear-down of its page pool), so the
/// calls are large and unpaced: only full-speed junk goes this way. The thread is created on
/// the caller's thread, so it shares its network namespace and core, at idle priority.
fn spawn_live_junk(
    tx_if: &str,
    frames: [Vec<u8>; 2],
    end_mono: u64,
    budget: u64,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<LiveJunk>> {
    let live = LiveFrames::new(tx_if)?;
    std::thread::Builder::new().name("bench-gen-live".into()).spawn(move || {
        // SCHED_IDLE: the legit thread on this core preempts it whenever a packet is due (at the
        // next batch of 64 frames inside the kernel's loop), so junk takes only what is left.
        if let Err(e) = sys::set_policy(0, sys::Policy::Idle) {
            eprintln!("tickgate-bench: SCHED_IDLE for the live junk thread: {e}");
        }
        let mut out = LiveJunk::default();
        let mut calls = 0u64;
        while !stop.load(Ordering::Relaxed) && clock_monotonic_ns() < end_mono {
            let sent = out.game + out.other + out.errors.values().sum::<u64>();
            if sent >= budget {
                break;
            }
            let n = LIVE_BATCH.min(budget - sent);
            let game = calls.is_multiple_of(2);
            calls += 1;
            match live.send(&frames[usize::from(!game)], n as u32) {
                Ok(()) if game => out.game += n,
                Ok(()) => out.other += n,
                Err(e) => *out.errors.entry(errno_name(&e)).or_default() += 1,
            }
            out.last_mono = clock_monotonic_ns();
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickgate::wire::Packet;

    #[test]
    fn padded_packets_decode_to_the_same_inputs() {
        let mut client = SyntheticClient::new(9, 2);
        let mut out = Vec::new();
        for size in [0, 40, 50, 51, 52, 64, 130, 131, 200, 300, 1452, 5000] {
            client.next_packet(123_456_789_000, &mut out);
            let before: Vec<u64> = match wire::decode(&out) {
                Ok(Packet::Input(p)) => p.commands().map(|c| c.seq).collect(),
                other => panic!("{other:?}"),
            };
            let natural = out.len();
            pad(&mut out, size);
            let expected = if size <= natural {
                natural
            } else if size == natural + 1 {
                natural + 2
            } else {
                size.min(MAX_PACKET)
            };
            assert_eq!(out.len(), expected, "size {size}, natural {natural}");
            match wire::decode(&out) {
                Ok(Packet::Input(p)) => {
                    assert_eq!(p.commands().map(|c| c.seq).collect::<Vec<_>>(), before);
                    let input =
                        p.commands().last().unwrap().to_input(tickgate::input::Timestamp::xdp(0), 0, 0);
                    assert_eq!(tickgate_testkit::client::send_time_ns(&input), Some(123_456_789_000));
                }
                other => panic!("size {size}: {other:?}"),
            }
        }
    }
}
