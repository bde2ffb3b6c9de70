//! Who may speak for a client: today the per-client anti-replay windows that let every input
//! through exactly once; connect tokens, the handshake and the session table come here next.

pub mod anti_replay;
