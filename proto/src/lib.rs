//! Protobuf messages that follow the tickgate wire header.
//!
//! The header (framing, checksum, sequence number) is fixed-layout and lives in
//! `tickgate-common` so the XDP program can read it; the payloads are protobuf so game clients in
//! any language can produce them and the game can add fields without a new header version. This
//! crate is the one place the Rust types for those payloads are generated, from
//! `proto/tickgate.proto`; `docs/protocol.md` says how they are framed and what the server checks.

/// Package `tickgate.v1`.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/tickgate.v1.rs"));
}

pub use v1::{Action, InputFrame, PlayerCommand, SyncAck};
