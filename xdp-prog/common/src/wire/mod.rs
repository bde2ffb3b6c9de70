//! The tickgate wire header: layout, parsing and the checks XDP can afford.
//!
//! Every game packet is one UDP datagram: a fixed [`HEADER_LEN`]-byte header in network byte
//! order followed by `payload_len` bytes of payload. `docs/protocol.md` is the normative
//! description; the offsets below are the single source of truth for code.

pub mod v2;

/// First two bytes of every tickgate packet.
pub const MAGIC: u16 = 0xF1F2;
/// The only header version this build accepts.
pub const VERSION: u8 = 1;
/// Size of the fixed header in bytes.
pub const HEADER_LEN: usize = 28;
/// Largest payload a header may announce (one unfragmented datagram on a 1500-byte MTU, IPv6).
pub const MAX_PAYLOAD_LEN: usize = 1500 - 40 - 8 - HEADER_LEN;

/// Byte offsets of the header fields.
pub mod offset {
    /// `u16` magic, [`super::MAGIC`].
    pub const MAGIC: usize = 0;
    /// `u8` header version.
    pub const VERSION: usize = 2;
    /// `u8` message kind, see [`super::Kind`].
    pub const KIND: usize = 3;
    /// `u16` payload length in bytes.
    pub const PAYLOAD_LEN: usize = 4;
    /// `u16` reserved: senders write 0, receivers ignore it.
    pub const RESERVED: usize = 6;
    /// `u32` client id.
    pub const CLIENT_ID: usize = 8;
    /// `u32` the client's own frame id for this input.
    pub const CLIENT_FRAME: usize = 12;
    /// `u64` input sequence number, per client.
    pub const SEQ: usize = 16;
    /// `u32` CRC32C over the header (with this field zero) and the payload.
    pub const CHECKSUM: usize = 24;
}

/// What the payload carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A protobuf `InputFrame`: one or more player commands.
    Input = 1,
    /// A protobuf `SyncAck`: the client's view of a tick.
    Sync = 2,
}

impl Kind {
    /// The kind for a header byte, if this version knows it.
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            1 => Some(Self::Input),
            2 => Some(Self::Sync),
            _ => None,
        }
    }
}

/// A parsed header. The checksum is carried, not verified: XDP cannot afford it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Message kind.
    pub kind: Kind,
    /// Payload length in bytes.
    pub payload_len: u16,
    /// Client id.
    pub client_id: u32,
    /// The client's frame id.
    pub client_frame: u32,
    /// Per-client input sequence number.
    pub seq: u64,
    /// CRC32C as sent.
    pub checksum: u32,
}

/// Why a header was refused. Each one is its own XDP drop counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer than [`HEADER_LEN`] bytes of UDP payload.
    TooShort,
    /// The first two bytes are not [`MAGIC`].
    BadMagic,
    /// A header version this build does not speak.
    BadVersion,
    /// A message kind this version does not know.
    BadKind,
    /// `payload_len` disagrees with the UDP length, or exceeds [`MAX_PAYLOAD_LEN`].
    BadLength,
}

impl core::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::TooShort => "shorter than the tickgate header",
            Self::BadMagic => "bad magic",
            Self::BadVersion => "unsupported header version",
            Self::BadKind => "unknown message kind",
            Self::BadLength => "payload length disagrees with the UDP length",
        })
    }
}

#[cfg(feature = "user")]
impl std::error::Error for HeaderError {}

/// Checks a header the way the XDP program does and parses it.
///
/// `udp_payload` is the UDP payload as far as it is available (at least the header);
/// `udp_payload_len` is the payload length the UDP header announces (UDP length - 8).
/// Checks, in order: minimum size, magic, version, kind, and that header plus payload fill the
/// UDP payload exactly.
pub fn check_header(udp_payload: &[u8], udp_payload_len: usize) -> Result<Header, HeaderError> {
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
        client_id: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
        client_frame: u32::from_be_bytes([h[12], h[13], h[14], h[15]]),
        seq: u64::from_be_bytes([h[16], h[17], h[18], h[19], h[20], h[21], h[22], h[23]]),
        checksum: u32::from_be_bytes([h[24], h[25], h[26], h[27]]),
    })
}

/// Writes `header` into the first [`HEADER_LEN`] bytes of `out` with the checksum field as given.
/// Returns `None` when `out` is too short.
pub fn write_header(header: &Header, out: &mut [u8]) -> Option<()> {
    let h = out.first_chunk_mut::<HEADER_LEN>()?;
    h[0..2].copy_from_slice(&MAGIC.to_be_bytes());
    h[offset::VERSION] = VERSION;
    h[offset::KIND] = header.kind as u8;
    h[4..6].copy_from_slice(&header.payload_len.to_be_bytes());
    h[6..8].copy_from_slice(&0u16.to_be_bytes());
    h[8..12].copy_from_slice(&header.client_id.to_be_bytes());
    h[12..16].copy_from_slice(&header.client_frame.to_be_bytes());
    h[16..24].copy_from_slice(&header.seq.to_be_bytes());
    h[24..28].copy_from_slice(&header.checksum.to_be_bytes());
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(payload_len: u16) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        let header = Header {
            kind: Kind::Input,
            payload_len,
            client_id: 0x0102_0304,
            client_frame: 77,
            seq: 0x1122_3344_5566_7788,
            checksum: 0xdead_beef,
        };
        write_header(&header, &mut h).unwrap();
        h
    }

    #[test]
    fn round_trip_in_network_order() {
        let h = sample(10);
        assert_eq!(&h[..4], &[0xF1, 0xF2, 1, 1]);
        assert_eq!(&h[4..6], &[0, 10]);
        assert_eq!(&h[8..12], &[1, 2, 3, 4]);
        assert_eq!(&h[16..24], &[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]);
        let parsed = check_header(&h, HEADER_LEN + 10).unwrap();
        assert_eq!(parsed.client_id, 0x0102_0304);
        assert_eq!(parsed.client_frame, 77);
        assert_eq!(parsed.seq, 0x1122_3344_5566_7788);
        assert_eq!(parsed.checksum, 0xdead_beef);
        assert_eq!(parsed.kind, Kind::Input);
    }

    #[test]
    fn each_check_has_its_own_error() {
        let good = sample(4);
        assert_eq!(check_header(&good[..HEADER_LEN - 1], HEADER_LEN + 4), Err(HeaderError::TooShort));
        assert_eq!(check_header(&good, HEADER_LEN - 1), Err(HeaderError::TooShort));
        let mut bad = good;
        bad[1] = 0xF3;
        assert_eq!(check_header(&bad, HEADER_LEN + 4), Err(HeaderError::BadMagic));
        let mut bad = good;
        bad[offset::VERSION] = 2;
        assert_eq!(check_header(&bad, HEADER_LEN + 4), Err(HeaderError::BadVersion));
        let mut bad = good;
        bad[offset::KIND] = 9;
        assert_eq!(check_header(&bad, HEADER_LEN + 4), Err(HeaderError::BadKind));
        assert_eq!(check_header(&good, HEADER_LEN + 5), Err(HeaderError::BadLength));
        assert_eq!(check_header(&good, HEADER_LEN + 3), Err(HeaderError::BadLength));
        let huge = sample(MAX_PAYLOAD_LEN as u16 + 1);
        assert_eq!(check_header(&huge, HEADER_LEN + MAX_PAYLOAD_LEN + 1), Err(HeaderError::BadLength));
    }

    #[test]
    fn every_prefix_and_random_bytes_never_panic() {
        let good = sample(0);
        for n in 0..=HEADER_LEN {
            let r = check_header(&good[..n], HEADER_LEN);
            assert_eq!(r.is_ok(), n == HEADER_LEN);
        }
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut buf = [0u8; 64];
        for _ in 0..20_000 {
            for b in buf.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *b = state as u8;
            }
            let len = (state >> 40) as usize % buf.len();
            // Any outcome is fine as long as it is consistent with the bytes.
            if let Ok(h) = check_header(&buf[..len], (state >> 20) as usize % 2048) {
                assert_eq!(u16::from_be_bytes([buf[0], buf[1]]), MAGIC);
                assert_eq!(buf[2], VERSION);
                assert!(h.payload_len as usize <= MAX_PAYLOAD_LEN);
            }
        }
    }
}
