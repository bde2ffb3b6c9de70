//! Who may speak for a player: connect tokens, the AEAD that seals every v2 packet, and the
//! per-client anti-replay windows that let every input through exactly once.

pub mod anti_replay;
pub mod crypto;
pub mod token;
