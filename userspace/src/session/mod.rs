//! Who may speak for a player: connect tokens, the v2 handshake and session table ([`server`]),
//! its client side ([`client`]), and the anti-replay windows that let every input and every
//! packet through at most once.

pub mod anti_replay;
pub mod client;
pub mod gate;
pub mod server;
pub mod shared;
pub mod token;
