//! tickgate: a kernel-bypass ingress for lockstep game servers.
//!
//! Game inputs arrive as small UDP datagrams. tickgate's XDP program steers the game ports into
//! AF_XDP sockets with a receive timestamp in front of each packet and drops junk before it
//! costs anything; workers decode the packets; a sequencer merges all RX queues in timestamp
//! order; the frame queue hands the game one ordered batch of inputs per tick.
//!
//! The modules are the stages, in the order a packet meets them (`docs/architecture.md` draws
//! the whole path):
//!
//! - [`steer`]: the XDP program on the NIC: attach, program object, kfunc patch, counters, rate
//!   limit, pins, device features.
//! - [`phc`]: the NIC's PTP hardware clock, and its timestamps converted to CLOCK_TAI.
//! - [`xsk`]: AF_XDP sockets: the UMEM and one type per ring.
//! - [`worker`]: one RX queue's loop: ring → decode → anti-replay → hand-off.
//! - [`wire`]: the packet format: header checks, packets, payload decode.
//! - [`session`]: who may speak for a client (anti-replay).
//! - [`input`]: a decoded input and its receive [`input::Timestamp`].
//! - [`sequencer`]: the per-queue hand-off and the timestamp-ordered merge.
//! - [`frame_queue`]: ticks, hash-chained frames, the sequencer thread and the game's end.
//! - [`game`]: the game's end in another process: a shared-memory ring of records per match.
//! - [`broadcast`]: the way back: each sealed frame to every player of its match.
//! - [`record`]: the record log of a run, and replay.
//! - [`ingress`]: the whole receive path as one value.
//! - [`metrics`]: the Prometheus endpoint.
//! - [`sys`]: every raw system call and the netlink framing.
//!
//! And the other end: [`client`], a game client's side of protocol v2 (handshake, inputs with
//! redundancy, frames in tick order, catch-up), over any transport.
//!
//! The `tickgate` command is `userspace/cli`; the lab, synthetic clients and lab traffic are
//! `userspace/testkit`.

pub mod steer;
pub mod phc;
pub mod xsk;
pub mod worker;
pub mod wire;
pub mod session;
pub mod input;
pub mod sequencer;
pub mod frame_queue;
pub mod game;
pub mod broadcast;
pub mod record;
pub mod ingress;
pub mod metrics;
pub mod sys;
pub mod client;
