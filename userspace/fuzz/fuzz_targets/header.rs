//! `tickgate_common::wire::check_header`, the header checks XDP makes, on arbitrary bytes.
//!
//! Input: two bytes of UDP payload length (big-endian), then the UDP payload as far as it is
//! available. Beyond "no panic", an accepted header must be exactly what its bytes say, and a
//! refused one must be refused for the first check that fails.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickgate_common::wire::{
    HEADER_LEN, Header, HeaderError, Kind, MAGIC, MAX_PAYLOAD_LEN, VERSION, check_header, offset,
    write_header,
};

fuzz_target!(|data: &[u8]| {
    let Some((len, bytes)) = data.split_first_chunk::<2>() else { return };
    let udp_payload_len = usize::from(u16::from_be_bytes(*len));
    let result = check_header(bytes, udp_payload_len);
    assert_eq!(result, expected(bytes, udp_payload_len), "{bytes:02x?} udp length {udp_payload_len}");
    // The same bytes with the UDP length they would need: only the length check can change.
    if bytes.len() >= HEADER_LEN {
        let announced = usize::from(u16::from_be_bytes([bytes[4], bytes[5]]));
        let fitted = check_header(bytes, HEADER_LEN + announced);
        assert_eq!(fitted, expected(bytes, HEADER_LEN + announced));
    }
    if let Ok(header) = result {
        let mut out = [0u8; HEADER_LEN];
        write_header(&header, &mut out).expect("HEADER_LEN bytes fit a header");
        // write_header zeroes the reserved field, which receivers ignore.
        let mut sent = [0u8; HEADER_LEN];
        sent.copy_from_slice(&bytes[..HEADER_LEN]);
        sent[offset::RESERVED..offset::RESERVED + 2].fill(0);
        assert_eq!(out, sent, "write_header does not reproduce an accepted header");
        assert_eq!(check_header(&out, udp_payload_len), Ok(header));
    }
});

/// An independent statement of the header rules (docs/protocol.md).
fn expected(bytes: &[u8], udp_payload_len: usize) -> Result<Header, HeaderError> {
    if bytes.len() < HEADER_LEN || udp_payload_len < HEADER_LEN {
        return Err(HeaderError::TooShort);
    }
    let be = |at: usize, n: usize| bytes[at..at + n].iter().fold(0u64, |v, &b| v << 8 | u64::from(b));
    if be(offset::MAGIC, 2) != u64::from(MAGIC) {
        return Err(HeaderError::BadMagic);
    }
    if bytes[offset::VERSION] != VERSION {
        return Err(HeaderError::BadVersion);
    }
    let kind = match bytes[offset::KIND] {
        1 => Kind::Input,
        2 => Kind::Sync,
        _ => return Err(HeaderError::BadKind),
    };
    let payload_len = be(offset::PAYLOAD_LEN, 2) as usize;
    if payload_len > MAX_PAYLOAD_LEN || payload_len + HEADER_LEN != udp_payload_len {
        return Err(HeaderError::BadLength);
    }
    Ok(Header {
        kind,
        payload_len: payload_len as u16,
        client_id: be(offset::CLIENT_ID, 4) as u32,
        client_frame: be(offset::CLIENT_FRAME, 4) as u32,
        seq: be(offset::SEQ, 8),
        checksum: be(offset::CHECKSUM, 4) as u32,
    })
}
