//! Protocol v2 packets: the handshake's three layouts and the sealing of everything else.
//!
//! Every v2 packet is the 20-byte header ([`tickgate_common::wire::v2`]) and a payload. Sealed
//! packets (all but the request and the response) carry `ciphertext || tag`, AES-256-GCM under
//! the direction's key, nonce [`nonce`]`(kind, seq)`, associated data the 20 header bytes. The
//! layouts are normative in `docs/protocol.md` ("Protocol v2").

use tickgate_common::wire::HeaderError;
pub use tickgate_common::wire::v2::{
    CHALLENGE_TOKEN_LEN, HEADER_LEN, Header, Kind, MAX_PAYLOAD_LEN, REQUEST_PAYLOAD_LEN,
    RESPONSE_PAYLOAD_LEN, TAG_LEN, VERSION, check_inbound, encode as encode_header, nonce,
    parse as parse_header,
};

/// Offset of the version byte, where v1 and v2 headers agree: how a worker tells them apart.
pub const VERSION_OFFSET: usize = tickgate_common::wire::v2::offset::VERSION;

use super::crypto::{Cipher, NONCE_LEN, Unauthentic};

/// Bytes of a connection request on the wire.
pub const REQUEST_LEN: usize = HEADER_LEN + REQUEST_PAYLOAD_LEN;
/// Bytes of a challenge response on the wire.
pub const RESPONSE_LEN: usize = HEADER_LEN + RESPONSE_PAYLOAD_LEN;
/// Bytes of a challenge on the wire: the challenge sequence and token, sealed.
pub const CHALLENGE_LEN: usize = HEADER_LEN + 8 + CHALLENGE_TOKEN_LEN + TAG_LEN;
const _: () = assert!(CHALLENGE_LEN <= REQUEST_LEN, "a reply is never larger than its request");

/// Bytes of the sealed private token in a request.
pub const SEALED_TOKEN_LEN: usize = 1008 + TAG_LEN;

/// A connection request: the parts of the connect token tickgate needs to open it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The token's version string.
    pub version_info: [u8; 16],
    /// The game's protocol id.
    pub protocol_id: u64,
    /// Token expiry, Unix seconds.
    pub expire_ts: u64,
    /// The token's nonce.
    pub nonce: [u8; NONCE_LEN],
    /// The sealed private token.
    pub sealed_token: [u8; SEALED_TOKEN_LEN],
}

impl Request {
    /// The request on the wire (header: session 0, seq 0).
    pub fn encode(&self) -> [u8; REQUEST_LEN] {
        let mut out = [0u8; REQUEST_LEN];
        let header =
            Header { kind: Kind::Request, payload_len: REQUEST_PAYLOAD_LEN as u16, session: 0, seq: 0 };
        out[..HEADER_LEN].copy_from_slice(&encode_header(&header));
        let p = &mut out[HEADER_LEN..];
        p[..16].copy_from_slice(&self.version_info);
        p[16..24].copy_from_slice(&self.protocol_id.to_be_bytes());
        p[24..32].copy_from_slice(&self.expire_ts.to_be_bytes());
        p[32..44].copy_from_slice(&self.nonce);
        p[44..].copy_from_slice(&self.sealed_token);
        out
    }

    /// Reads a request's payload (the header was checked).
    pub fn decode(payload: &[u8]) -> Option<Self> {
        let p: &[u8; REQUEST_PAYLOAD_LEN] = payload.try_into().ok()?;
        let mut r = Self {
            version_info: [0; 16],
            protocol_id: u64::from_be_bytes(p[16..24].try_into().ok()?),
            expire_ts: u64::from_be_bytes(p[24..32].try_into().ok()?),
            nonce: [0; NONCE_LEN],
            sealed_token: [0; SEALED_TOKEN_LEN],
        };
        r.version_info.copy_from_slice(&p[..16]);
        r.nonce.copy_from_slice(&p[32..44]);
        r.sealed_token.copy_from_slice(&p[44..]);
        Some(r)
    }
}

/// The challenge the server sends and the client echoes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// Sequence of the challenge token (its nonce under the run's key).
    pub seq: u64,
    /// The challenge token, sealed with a key only this tickgate run knows.
    pub token: [u8; CHALLENGE_TOKEN_LEN],
}

impl Challenge {
    /// The challenge packet, sealed with the server → client key.
    pub fn seal(&self, s2c: &Cipher) -> [u8; CHALLENGE_LEN] {
        let mut out = [0u8; CHALLENGE_LEN];
        let body_len = 8 + CHALLENGE_TOKEN_LEN;
        let header = Header {
            kind: Kind::Challenge,
            payload_len: (body_len + TAG_LEN) as u16,
            session: 0,
            seq: self.seq,
        };
        let head = encode_header(&header);
        out[..HEADER_LEN].copy_from_slice(&head);
        let (body, tag) = out[HEADER_LEN..].split_at_mut(body_len);
        body[..8].copy_from_slice(&self.seq.to_be_bytes());
        body[8..].copy_from_slice(&self.token);
        tag.copy_from_slice(&s2c.seal(&nonce(Kind::Challenge, self.seq), &head, body));
        out
    }

    /// Opens a challenge packet with the server → client key.
    pub fn open(packet: &[u8], s2c: &Cipher) -> Result<Self, OpenError> {
        let mut buf = [0u8; 8 + CHALLENGE_TOKEN_LEN];
        let header = open_into(packet, s2c, &mut buf)?;
        if header.kind != Kind::Challenge || header.payload_len as usize != buf.len() + TAG_LEN {
            return Err(OpenError::Layout);
        }
        let seq = u64::from_be_bytes(buf[..8].try_into().map_err(|_| OpenError::Layout)?);
        if seq != header.seq {
            return Err(OpenError::Layout);
        }
        let mut token = [0u8; CHALLENGE_TOKEN_LEN];
        token.copy_from_slice(&buf[8..]);
        Ok(Self { seq, token })
    }

    /// The client's response: the challenge back, with a tag under the client → server key.
    pub fn respond(&self, c2s: &Cipher) -> [u8; RESPONSE_LEN] {
        let mut out = [0u8; RESPONSE_LEN];
        let header =
            Header { kind: Kind::Response, payload_len: RESPONSE_PAYLOAD_LEN as u16, session: 0, seq: 0 };
        out[..HEADER_LEN].copy_from_slice(&encode_header(&header));
        out[HEADER_LEN..HEADER_LEN + 8].copy_from_slice(&self.seq.to_be_bytes());
        out[HEADER_LEN + 8..HEADER_LEN + 8 + CHALLENGE_TOKEN_LEN].copy_from_slice(&self.token);
        let (signed, tag) = out.split_at_mut(RESPONSE_LEN - TAG_LEN);
        tag.copy_from_slice(&c2s.seal(&nonce(Kind::Response, 0), signed, &mut []));
        out
    }

    /// Reads a response (the header was checked): the challenge, and a check of the client's
    /// tag once the caller has the client → server key from the opened challenge token.
    pub fn from_response(packet: &[u8]) -> Option<(Self, ResponseProof<'_>)> {
        let packet: &[u8; RESPONSE_LEN] = packet.try_into().ok()?;
        let seq = u64::from_be_bytes(packet[HEADER_LEN..HEADER_LEN + 8].try_into().ok()?);
        let mut token = [0u8; CHALLENGE_TOKEN_LEN];
        token.copy_from_slice(&packet[HEADER_LEN + 8..HEADER_LEN + 8 + CHALLENGE_TOKEN_LEN]);
        Some((Self { seq, token }, ResponseProof(packet)))
    }
}

/// The client's proof in a response, checked once its key is known.
#[derive(Debug)]
pub struct ResponseProof<'a>(&'a [u8; RESPONSE_LEN]);

impl ResponseProof<'_> {
    /// Whether the response was made with `c2s`.
    pub fn verify(&self, c2s: &Cipher) -> Result<(), Unauthentic> {
        let (signed, tag) = self.0.split_at(RESPONSE_LEN - TAG_LEN);
        let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| Unauthentic)?;
        c2s.open(&nonce(Kind::Response, 0), signed, &mut [], tag)
    }
}

/// Why a sealed packet did not open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The header is not a v2 header of this length.
    #[error("bad header: {0}")]
    Header(HeaderError),
    /// The payload is shorter than a tag, or larger than the buffer for it.
    #[error("payload of the wrong size")]
    Layout,
    /// The tag does not match: wrong key, or a changed byte.
    #[error(transparent)]
    Unauthentic(#[from] Unauthentic),
}

/// Seals a packet of `kind` with `body` into `out` (cleared first).
pub fn seal(cipher: &Cipher, kind: Kind, session: u32, seq: u64, body: &[u8], out: &mut Vec<u8>) {
    let header = Header { kind, payload_len: (body.len() + TAG_LEN) as u16, session, seq };
    let head = encode_header(&header);
    out.clear();
    out.extend_from_slice(&head);
    out.extend_from_slice(body);
    let tag = cipher.seal(&nonce(kind, seq), &head, &mut out[HEADER_LEN..]);
    out.extend_from_slice(&tag);
}

/// Opens a sealed packet into `plain` (which must hold the payload less the tag); returns the
/// header. The plaintext is `plain[..header.payload_len - TAG_LEN]`.
pub fn open_into(packet: &[u8], cipher: &Cipher, plain: &mut [u8]) -> Result<Header, OpenError> {
    let header = parse_header(packet, packet.len()).map_err(OpenError::Header)?;
    let body_len = (header.payload_len as usize).checked_sub(TAG_LEN).ok_or(OpenError::Layout)?;
    let plain = plain.get_mut(..body_len).ok_or(OpenError::Layout)?;
    let (head, rest) = packet.split_at(HEADER_LEN);
    let (body, tag) = rest.split_at(body_len);
    let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| OpenError::Layout)?;
    plain.copy_from_slice(body);
    cipher.open(&nonce(header.kind, header.seq), head, plain, tag)?;
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::crypto::Key;

    #[test]
    fn sealed_packets_open_only_unchanged_and_under_their_key() {
        let key = Key::from_bytes([3; 32]).cipher();
        let mut packet = Vec::new();
        seal(&key, Kind::Input, 9, 77, b"hello", &mut packet);
        assert_eq!(packet.len(), HEADER_LEN + 5 + TAG_LEN);
        let mut plain = [0u8; 64];
        let h = open_into(&packet, &key, &mut plain).unwrap();
        assert_eq!((h.kind, h.session, h.seq, &plain[..5]), (Kind::Input, 9, 77, &b"hello"[..]));
        for at in 0..packet.len() {
            let mut p = packet.clone();
            p[at] ^= 0x01;
            assert!(open_into(&p, &key, &mut plain).is_err(), "byte {at} changed and still opened");
        }
        let other = Key::from_bytes([4; 32]).cipher();
        assert_eq!(open_into(&packet, &other, &mut plain), Err(OpenError::Unauthentic(Unauthentic)));
        assert_eq!(open_into(&packet, &key, &mut [0u8; 4]), Err(OpenError::Layout));
        assert!(matches!(open_into(&packet[..30], &key, &mut plain), Err(OpenError::Header(_))));
    }

    #[test]
    fn the_handshake_layouts_round_trip() {
        let request = Request {
            version_info: *b"TICKGATE TOKEN 2",
            protocol_id: 5,
            expire_ts: 99,
            nonce: [7; 12],
            sealed_token: [8; SEALED_TOKEN_LEN],
        };
        let bytes = request.encode();
        assert_eq!(check_inbound(&bytes, bytes.len()).unwrap().kind, Kind::Request);
        assert_eq!(Request::decode(&bytes[HEADER_LEN..]), Some(request));

        let (s2c, c2s) = (Key::from_bytes([1; 32]).cipher(), Key::from_bytes([2; 32]).cipher());
        let challenge = Challenge { seq: 12345, token: [0xcc; CHALLENGE_TOKEN_LEN] };
        let sealed = challenge.seal(&s2c);
        assert!(sealed.len() < bytes.len());
        assert_eq!(Challenge::open(&sealed, &s2c), Ok(challenge.clone()));
        assert!(Challenge::open(&sealed, &c2s).is_err());
        let response = challenge.respond(&c2s);
        assert_eq!(check_inbound(&response, response.len()).unwrap().kind, Kind::Response);
        let (echoed, proof) = Challenge::from_response(&response).unwrap();
        assert_eq!(echoed, challenge);
        assert!(proof.verify(&c2s).is_ok());
        assert!(proof.verify(&s2c).is_err());
        let mut forged = response;
        forged[HEADER_LEN + 100] ^= 1;
        assert!(Challenge::from_response(&forged).unwrap().1.verify(&c2s).is_err());
    }
}

/// The worked examples of `docs/protocol.md` ("Protocol v2"), rebuilt from their inputs: the doc
/// must show exactly these bytes.
#[cfg(test)]
pub(crate) mod examples {
    use prost::Message as _;

    use super::*;
    use crate::wire::crypto::Key;

    /// Lowercase hex, 16 bytes a line, bytes separated by spaces (as the doc prints them).
    pub(crate) fn dump(bytes: &[u8]) -> String {
        bytes
            .chunks(16)
            .map(|l| l.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Player 42's input 5 (entity 7 attacks entity 9 in client frame 1001) with input 4 (entity
    /// 7 moves, frame 1000), in session 3's 9th packet, sealed with the client → server key
    /// `11 11 … 11`.
    pub(crate) fn input_packet() -> Vec<u8> {
        let frame = crate::wire::tests::worked_example_frame();
        let mut out = Vec::new();
        seal(&Key::from_bytes([0x11; 32]).cipher(), Kind::Input, 3, 9, &frame.encode_to_vec(), &mut out);
        out
    }

    /// The server's keepalive to session 3, its 2nd packet, sealed with the server → client key
    /// `22 22 … 22`.
    pub(crate) fn keepalive_packet() -> Vec<u8> {
        let mut out = Vec::new();
        seal(&Key::from_bytes([0x22; 32]).cipher(), Kind::Keepalive, 3, 2, &[], &mut out);
        out
    }

    /// Match 7's frame for tick 2 (60 Hz, epoch 0: it starts at 33 333 334 ns) as player 42 of
    /// session 3 receives it in the server's 7th packet: player 42's input 5 (the input example's
    /// second command, received at 40 000 000 ns), player 43 absent, the game's message `ok`,
    /// ack 6 and no older frame; the hash chains tick 2 to a previous hash of 32 zero bytes.
    /// Returns the body and the sealed packet (server → client key `22 × 32`).
    pub(crate) fn frame_packet() -> (Vec<u8>, Vec<u8>) {
        use crate::frame_queue::{Frame, GENESIS_HASH, chain_hash};
        use crate::input::Timestamp;
        use crate::wire::frame_packet;
        let plain = crate::wire::tests::worked_example_frame().encode_to_vec();
        let packet = crate::wire::decode_input_v2(42, &plain).expect("the example decodes");
        let input =
            packet.commands().nth(1).expect("two commands").to_input(Timestamp::xdp(40_000_000), 0, 7);
        let inputs = vec![input];
        let hash = chain_hash(&GENESIS_HASH, 2, &inputs);
        let frame = Frame {
            match_id: 7,
            tick: 2,
            tick_hz: 60,
            start_ns: 33_333_334,
            inputs,
            hash,
            absent: vec![43],
            last: false,
        };
        let mut record = Vec::new();
        frame_packet::encode_record(&frame, &[b"ok".to_vec()], &mut record);
        let mut body = Vec::new();
        frame_packet::body(60, 6, 0, &[&record], &mut body);
        let mut sealed = Vec::new();
        seal(&Key::from_bytes([0x22; 32]).cipher(), Kind::Frame, 3, 7, &body, &mut sealed);
        (body, sealed)
    }

    /// The handshake of the token example (`session::token::tests::example`) from
    /// 10.77.0.1:40001 to 10.77.0.2:7777 at Unix time 1800000000.000, against a server whose
    /// run key is `99 × 32` and whose first challenge sequence is 1000: request, challenge and
    /// response, byte for byte.
    pub(crate) fn handshake() -> [Vec<u8>; 3] {
        use crate::session::{
            client::Client,
            server::{Server, ServerConfig},
            token,
        };
        let (key, params, nonce) = token::tests::example();
        let minted = token::mint(&key, &params, nonce).expect("the example mints");
        let mut client = Client::new(&token::parse(&minted).expect("the example parses"));
        let config = ServerConfig::new(params.protocol_id, key, 8);
        let mut server = Server::with_run_key(config, Key::from_bytes([0x99; 32]), 1000);
        let src = "10.77.0.1:40001".parse().expect("an address");
        let request = client.handshake_packet().expect("a request");
        let challenge =
            server.on_request(src, params.addresses[0], &request, 1_800_000_000_000).expect("a challenge");
        client.receive(&challenge.bytes);
        let response = client.handshake_packet().expect("a response");
        assert!(server.on_response(src, &response, 1_800_000_000_000, 1).is_ok());
        [request, challenge.bytes, response]
    }

    #[test]
    fn the_protocol_doc_shows_these_bytes() {
        let doc = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md"));
        for (name, bytes) in [("input", input_packet()), ("keepalive", keepalive_packet())] {
            let dump = dump(&bytes);
            assert!(doc.contains(&dump), "docs/protocol.md lacks the {name} example:\n{dump}");
        }
        let token = crate::session::token::tests::example();
        let minted = crate::session::token::mint(&token.0, &token.1, token.2).unwrap();
        let token_dump = dump(&minted[..96]);
        assert!(
            doc.contains(&token_dump),
            "docs/protocol.md lacks the token example's first 96 bytes:\n{token_dump}"
        );
        let [request, challenge, response] = handshake();
        assert_eq!((request.len(), challenge.len(), response.len()), (1088, 460, 460));
        for (name, bytes) in
            [("request", &request[..64]), ("challenge", &challenge[..48]), ("response", &response[..48])]
        {
            let shown = dump(bytes);
            assert!(
                doc.contains(&shown),
                "docs/protocol.md lacks the {name} example's first bytes:\n{shown}"
            );
        }
        let proof = dump(&response[response.len() - 16..]);
        assert!(doc.contains(&proof), "docs/protocol.md lacks the response's proof:\n{proof}");
        let (body, sealed) = frame_packet();
        let decoded = crate::wire::frame_packet::decode(&body).expect("the example decodes");
        assert_eq!(
            (decoded.ack, decoded.records[0].tick, decoded.records[0].absent.clone()),
            (6, 2, vec![43])
        );
        for (name, shown) in [("frame body", dump(&body)), ("frame packet", dump(&sealed[..48]))] {
            assert!(doc.contains(&shown), "docs/protocol.md lacks the {name} example:\n{shown}");
        }
        let tag = dump(&sealed[sealed.len() - 16..]);
        assert!(doc.contains(&tag), "docs/protocol.md lacks the frame packet's tag:\n{tag}");
    }
}
