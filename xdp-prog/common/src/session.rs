//! What XDP knows of sessions: the key of the session map, and the handshake budget.
//!
//! Userspace inserts `source address and port -> session id` when a handshake completes and
//! removes it when the session ends; XDP drops every data packet whose source is not in the map
//! or that names another session. Handshake packets (requests and responses) have no session
//! yet: they pass at their exact size and within a per-source and a global token bucket
//! ([`crate::rate`]), so a flood of them costs one map lookup each.

use crate::rate::RateConfig;

/// Key of the session map: the client's address (IPv4 as `::ffff:a.b.c.d`) and UDP port.
/// Native byte order for the port, as the map stores it; 20 bytes with explicit padding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct SessionKey {
    /// Source address, IPv6 or v4-mapped.
    pub addr: [u8; 16],
    /// Source UDP port.
    pub port: u16,
    /// Zero.
    pub pad: u16,
}

/// Bytes of a [`SessionKey`].
pub const SESSION_KEY_LEN: usize = core::mem::size_of::<SessionKey>();
const _: () = assert!(SESSION_KEY_LEN == 20);

impl SessionKey {
    /// The key of `addr`:`port`.
    pub const fn new(addr: [u8; 16], port: u16) -> Self {
        Self { addr, port, pad: 0 }
    }

    /// The key as the map stores it.
    pub fn to_ne_bytes(&self) -> [u8; SESSION_KEY_LEN] {
        let mut out = [0u8; SESSION_KEY_LEN];
        out[..16].copy_from_slice(&self.addr);
        out[16..18].copy_from_slice(&self.port.to_ne_bytes());
        out
    }
}

/// The handshake budget: one bucket per source address and CPU, and one per CPU for everyone.
/// A disabled config (rate 0) admits all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct HandshakeLimit {
    /// Per source address.
    pub per_source: RateConfig,
    /// All sources together, per CPU.
    pub global: RateConfig,
}

/// Bytes of a [`HandshakeLimit`] in its map.
pub const HANDSHAKE_LIMIT_LEN: usize = core::mem::size_of::<HandshakeLimit>();
const _: () = assert!(HANDSHAKE_LIMIT_LEN == 32);

impl HandshakeLimit {
    /// The value as the map stores it.
    pub fn to_ne_bytes(&self) -> [u8; HANDSHAKE_LIMIT_LEN] {
        let mut out = [0u8; HANDSHAKE_LIMIT_LEN];
        out[..16].copy_from_slice(&self.per_source.to_ne_bytes());
        out[16..].copy_from_slice(&self.global.to_ne_bytes());
        out
    }
}
