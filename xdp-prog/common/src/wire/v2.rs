//! Protocol v2's header: every packet is authenticated, and XDP knows which sources hold a
//! session.
//!
//! ```text
//! offset 0 magic:u16 (0xF1F2)  2 version:u8 (2)  3 kind:u8  4 payload_len:u16  6 reserved:u16 (0)
//!        8 session:u32 (0 before the handshake ends)  12 seq:u64 (the packet's nonce)
//! ```
//!
//! All big-endian. `docs/protocol.md` ("Protocol v2") is normative: the kinds, what each
//! payload holds and how it is sealed. XDP checks what it can afford: the layout, that the kind
//! may travel client → server, and that handshake packets have their exact size, so that no
//! reply is ever larger than the request that caused it.

use super::{HeaderError, MAGIC};

/// The header version of protocol v2.
pub const VERSION: u8 = 2;
/// Bytes of the v2 header.
pub const HEADER_LEN: usize = 20;
/// Largest payload (one unfragmented datagram on a 1500-byte MTU over IPv6).
pub const MAX_PAYLOAD_LEN: usize = 1500 - 40 - 8 - HEADER_LEN;
/// Bytes of the AEAD tag that ends every sealed payload.
pub const TAG_LEN: usize = 16;
/// Bytes of a connection request's payload: version string (16), protocol id (8), expiry (8),
/// token nonce (12) and the sealed private token (1008 + 16).
pub const REQUEST_PAYLOAD_LEN: usize = 16 + 8 + 8 + 12 + 1008 + TAG_LEN;
/// Bytes of a challenge token once sealed with the run's key (400 + tag).
pub const CHALLENGE_TOKEN_LEN: usize = 400 + TAG_LEN;
/// Bytes of a challenge response's payload: challenge sequence (8), the challenge token, and a
/// tag proving the client holds its client → server key.
pub const RESPONSE_PAYLOAD_LEN: usize = 8 + CHALLENGE_TOKEN_LEN + TAG_LEN;

/// Byte offsets of the header fields. The first 8 bytes (magic, version, kind, payload length,
/// reserved) are laid out as in v1, so that one read of the version tells the two apart.
pub mod offset {
    pub use crate::wire::offset::{KIND, MAGIC, PAYLOAD_LEN, RESERVED, VERSION};
    /// `u32` session id.
    pub const SESSION: usize = 8;
    /// `u64` packet sequence number.
    pub const SEQ: usize = 12;
}

/// What a packet is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Client → server, sealed: an `InputFrame`.
    Input = 1,
    /// Client → server, sealed: a `SyncAck`.
    Sync = 2,
    /// Client → server, plain: a connection request carrying the connect token's sealed part.
    Request = 3,
    /// Server → client, sealed with the server → client key: the challenge.
    Challenge = 4,
    /// Client → server: the challenge token back, with proof of the client → server key.
    Response = 5,
    /// Both ways, sealed: "still here"; the server's first one says "connected".
    Keepalive = 6,
    /// Server → client, sealed: the server is full.
    Denied = 7,
    /// Both ways, sealed: the session ends.
    Disconnect = 8,
    /// Server → client, sealed: the match's newest sealed frames, the player's ack.
    Frame = 9,
    /// Server → client, sealed: a message from the game to this player.
    Message = 10,
    /// Client → server, sealed: "send me the frames from this tick on" (after a reconnect).
    CatchUp = 11,
}

impl Kind {
    /// The kind of a header byte, if there is one.
    pub const fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            1 => Self::Input,
            2 => Self::Sync,
            3 => Self::Request,
            4 => Self::Challenge,
            5 => Self::Response,
            6 => Self::Keepalive,
            7 => Self::Denied,
            8 => Self::Disconnect,
            9 => Self::Frame,
            10 => Self::Message,
            11 => Self::CatchUp,
            _ => return None,
        })
    }

    /// Whether a client may send this kind to the server.
    pub const fn inbound(self) -> bool {
        !matches!(self, Self::Challenge | Self::Denied | Self::Frame | Self::Message)
    }

    /// Whether the kind belongs to the handshake, sent before the source has a session.
    pub const fn handshake(self) -> bool {
        matches!(self, Self::Request | Self::Response)
    }

    /// The exact payload length of a handshake kind.
    pub const fn fixed_payload_len(self) -> Option<usize> {
        match self {
            Self::Request => Some(REQUEST_PAYLOAD_LEN),
            Self::Response => Some(RESPONSE_PAYLOAD_LEN),
            _ => None,
        }
    }
}

/// A parsed v2 header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Kind.
    pub kind: Kind,
    /// Payload length.
    pub payload_len: u16,
    /// Session id (0 in the handshake).
    pub session: u32,
    /// Packet sequence number.
    pub seq: u64,
}

/// Checks a header of a packet that arrived at the server, as the XDP program does: size,
/// magic, version, an inbound kind, `HEADER_LEN + payload_len == udp_payload_len`, and the exact
/// size of handshake kinds.
pub fn check_inbound(udp_payload: &[u8], udp_payload_len: usize) -> Result<Header, HeaderError> {
    let header = parse(udp_payload, udp_payload_len)?;
    if !header.kind.inbound() {
        return Err(HeaderError::BadKind);
    }
    match header.kind.fixed_payload_len() {
        Some(len) if len != header.payload_len as usize => Err(HeaderError::BadLength),
        _ => Ok(header),
    }
}

/// Parses a header of either direction, checking the layout only.
pub fn parse(udp_payload: &[u8], udp_payload_len: usize) -> Result<Header, HeaderError> {
    let Some(h) = udp_payload.first_chunk::<HEADER_LEN>() else {
        return Err(HeaderError::TooShort);
    };
    if udp_payload_len < HEADER_LEN {
        return Err(HeaderError::TooShort);
    }
    if u16::from_be_bytes([h[0], h[1]]) != MAGIC {
        return Err(HeaderError::BadMagic);
    }
    if h[offset::VERSION] != VERSION {
        return Err(HeaderError::BadVersion);
    }
    let Some(kind) = Kind::from_u8(h[offset::KIND]) else {
        return Err(HeaderError::BadKind);
    };
    let payload_len = u16::from_be_bytes([h[4], h[5]]);
    if payload_len as usize > MAX_PAYLOAD_LEN || HEADER_LEN + payload_len as usize != udp_payload_len {
        return Err(HeaderError::BadLength);
    }
    Ok(Header {
        kind,
        payload_len,
        session: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
        seq: u64::from_be_bytes([h[12], h[13], h[14], h[15], h[16], h[17], h[18], h[19]]),
    })
}

/// The header's bytes.
pub fn encode(header: &Header) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..2].copy_from_slice(&MAGIC.to_be_bytes());
    h[offset::VERSION] = VERSION;
    h[offset::KIND] = header.kind as u8;
    h[4..6].copy_from_slice(&header.payload_len.to_be_bytes());
    h[8..12].copy_from_slice(&header.session.to_be_bytes());
    h[12..20].copy_from_slice(&header.seq.to_be_bytes());
    h
}

/// The AEAD nonce of a sealed packet: `00 00 00 kind` then the sequence number, big-endian.
/// Each direction has its own key, and within one the (kind, seq) pair never repeats.
pub const fn nonce(kind: Kind, seq: u64) -> [u8; 12] {
    let s = seq.to_be_bytes();
    [0, 0, 0, kind as u8, s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_the_checks_xdp_makes() {
        let h =
            Header { kind: Kind::Input, payload_len: 40, session: 0x0102_0304, seq: 0x1122_3344_5566_7788 };
        let bytes = encode(&h);
        assert_eq!(
            bytes,
            [0xF1, 0xF2, 2, 1, 0, 40, 0, 0, 1, 2, 3, 4, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]
        );
        assert_eq!(check_inbound(&bytes, HEADER_LEN + 40), Ok(h));
        assert_eq!(check_inbound(&bytes, HEADER_LEN + 41), Err(HeaderError::BadLength));
        assert_eq!(check_inbound(&bytes[..19], HEADER_LEN + 40), Err(HeaderError::TooShort));
        let mut v1 = bytes;
        v1[offset::VERSION] = 1;
        assert_eq!(check_inbound(&v1, HEADER_LEN + 40), Err(HeaderError::BadVersion));
        for kind in [Kind::Challenge, Kind::Denied, Kind::Frame, Kind::Message] {
            let out = encode(&Header { kind, ..h });
            assert_eq!(parse(&out, HEADER_LEN + 40).map(|h| h.kind), Ok(kind));
            assert_eq!(check_inbound(&out, HEADER_LEN + 40), Err(HeaderError::BadKind), "{kind:?}");
        }
        let mut unknown = bytes;
        unknown[offset::KIND] = 12;
        assert_eq!(check_inbound(&unknown, HEADER_LEN + 40), Err(HeaderError::BadKind));
    }

    #[test]
    fn handshake_packets_have_one_size_and_requests_are_the_largest() {
        for (kind, len) in [(Kind::Request, REQUEST_PAYLOAD_LEN), (Kind::Response, RESPONSE_PAYLOAD_LEN)] {
            let at = |payload_len: usize| {
                let h = encode(&Header { kind, payload_len: payload_len as u16, session: 0, seq: 0 });
                check_inbound(&h, HEADER_LEN + payload_len)
            };
            assert!(at(len).is_ok());
            assert_eq!(at(len - 1), Err(HeaderError::BadLength));
            assert_eq!(at(len + 1), Err(HeaderError::BadLength));
        }
        assert_eq!(HEADER_LEN + REQUEST_PAYLOAD_LEN, 1088);
        // The challenge (the reply to a request) is the size of a response: smaller.
        const { assert!(RESPONSE_PAYLOAD_LEN < REQUEST_PAYLOAD_LEN) };
        assert_eq!(nonce(Kind::Challenge, 0x0102), [0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 1, 2]);
    }
}
