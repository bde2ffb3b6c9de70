//! tickgate: a kernel-bypass ingress for lockstep game servers.
//!
//! Game inputs arrive as small UDP datagrams. tickgate's XDP program steers the game ports into
//! AF_XDP sockets with a receive timestamp in front of each packet and drops junk before it
//! costs anything; workers decode the packets; a sequencer merges all RX queues in timestamp
//! order; the frame queue hands the game one ordered batch of inputs per tick.
//!
//! Data flows one way: [`loader`] (attach the program) → rings → workers → sequencer → frames.

pub mod anti_replay;
pub mod client;
pub mod counters;
pub mod demo;
pub mod frame_queue;
pub mod ingress;
pub mod input;
pub mod kfunc;
pub mod lab;
pub mod loader;
pub mod metrics;
pub mod netdev;
pub mod object;
pub mod privileges;
pub mod rate_limit;
pub mod record;
pub mod sequencer;
pub mod sys;
pub mod wire;
pub mod worker;
pub mod xsk;
