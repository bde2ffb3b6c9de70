//! Connect tokens: what the game's backend hands a player so that tickgate lets it in.
//!
//! The backend and tickgate share a 32-byte private key. The backend mints a token per player and
//! match: a *private part*, sealed with that key, that only tickgate can open (who the player is,
//! which match, which servers, the session keys, the game's user data), and a *public part* the
//! client reads (the same keys and servers, expiry, timeout). The client sends the sealed private
//! part in its connection request; tickgate opens it, and from then on both ends hold the same
//! two direction keys, which nobody else does. The byte layout is normative and lives in
//! `docs/protocol.md` ("Connect tokens"), with a worked example that the tests below check.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::wire::crypto::{Cipher, Key, NONCE_LEN, TAG_LEN, Unauthentic};

/// The 16-byte version string that starts every token and request: `TICKGATE TOKEN 2`.
pub const VERSION_INFO: [u8; 16] = *b"TICKGATE TOKEN 2";
/// Bytes of a whole (public) connect token.
pub const CONNECT_TOKEN_LEN: usize = 2048;
/// Bytes of the private part before sealing.
pub const PRIVATE_LEN: usize = 1008;
/// Bytes of the sealed private part: [`PRIVATE_LEN`] plus the tag.
pub const SEALED_PRIVATE_LEN: usize = PRIVATE_LEN + TAG_LEN;
/// Most bytes of opaque user data a token carries for the game.
pub const MAX_USER_DATA: usize = 256;
/// Most server addresses one token names.
pub const MAX_ADDRESSES: usize = 32;

const ADDR_V4: u8 = 1;
const ADDR_V6: u8 = 2;

/// Byte offsets in the private part.
mod private {
    pub(super) const PLAYER_ID: usize = 0;
    pub(super) const MATCH_ID: usize = 8;
    pub(super) const CREATE_TS: usize = 16;
    pub(super) const TIMEOUT_S: usize = 24;
    pub(super) const USER_DATA_LEN: usize = 28;
    pub(super) const USER_DATA: usize = 30;
    pub(super) const C2S_KEY: usize = USER_DATA + super::MAX_USER_DATA;
    pub(super) const S2C_KEY: usize = C2S_KEY + 32;
    pub(super) const ADDRESSES: usize = S2C_KEY + 32;
}

/// Byte offsets in the public token.
mod public {
    pub(super) const VERSION_INFO: usize = 0;
    pub(super) const PROTOCOL_ID: usize = 16;
    pub(super) const CREATE_TS: usize = 24;
    pub(super) const EXPIRE_TS: usize = 32;
    pub(super) const NONCE: usize = 40;
    pub(super) const SEALED_PRIVATE: usize = NONCE + super::NONCE_LEN;
    pub(super) const TIMEOUT_S: usize = SEALED_PRIVATE + super::SEALED_PRIVATE_LEN;
    pub(super) const ADDRESSES: usize = TIMEOUT_S + 4;
}

/// Why a token could not be minted, read or opened.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// More than [`MAX_USER_DATA`] bytes of user data.
    #[error("user data of {0} bytes exceeds the {MAX_USER_DATA}-byte limit")]
    UserDataTooLong(usize),
    /// No server address, or more than [`MAX_ADDRESSES`].
    #[error("a token names 1 to {MAX_ADDRESSES} server addresses, not {0}")]
    Addresses(usize),
    /// Expiry not after creation.
    #[error("the token expires ({expire_ts}) before it is created ({create_ts})")]
    Expiry {
        /// Creation, Unix seconds.
        create_ts: u64,
        /// Expiry, Unix seconds.
        expire_ts: u64,
    },
    /// The bytes are not a token of this version, or a field is out of range.
    #[error("not a tickgate v2 connect token: {0}")]
    Malformed(&'static str),
    /// The sealed private part does not open under this key with these fields.
    #[error("the private part does not open: wrong key, or a changed protocol id, expiry or byte")]
    Unauthentic(#[from] Unauthentic),
}

/// What a token says: everything the backend chooses when it mints one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenParams {
    /// The game's protocol id: tickgate refuses tokens for another.
    pub protocol_id: u64,
    /// Creation time, Unix seconds.
    pub create_ts: u64,
    /// Expiry, Unix seconds: a connection request after this is refused.
    pub expire_ts: u64,
    /// Seconds of silence after which either side closes the session.
    pub timeout_s: u32,
    /// The match the player joins.
    pub match_id: u64,
    /// The player, as the game knows it.
    pub player_id: u64,
    /// Opaque bytes for the game (at most [`MAX_USER_DATA`]), delivered with the player's join.
    pub user_data: Vec<u8>,
    /// The tickgate servers this token is valid for (1 to [`MAX_ADDRESSES`]).
    pub addresses: Vec<SocketAddr>,
    /// Key of the client → server direction.
    pub c2s_key: Key,
    /// Key of the server → client direction.
    pub s2c_key: Key,
}

/// The sealed private part as opened by tickgate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrivateToken {
    /// The player.
    pub player_id: u64,
    /// The match.
    pub match_id: u64,
    /// Creation time, Unix seconds.
    pub create_ts: u64,
    /// Session timeout, seconds.
    pub timeout_s: u32,
    /// The game's opaque bytes.
    pub user_data: Vec<u8>,
    /// The servers the token is valid for.
    pub addresses: Vec<SocketAddr>,
    /// Client → server key.
    pub c2s_key: Key,
    /// Server → client key.
    pub s2c_key: Key,
}

/// The parts of a token a connection request carries: enough for tickgate to open it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedToken {
    /// The game's protocol id (bound into the seal).
    pub protocol_id: u64,
    /// Expiry, Unix seconds (bound into the seal).
    pub expire_ts: u64,
    /// The seal's nonce.
    pub nonce: [u8; NONCE_LEN],
    /// The sealed private part.
    pub sealed: [u8; SEALED_PRIVATE_LEN],
}

/// A connect token as the client reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicToken {
    /// What goes into the connection request.
    pub sealed: SealedToken,
    /// Creation time, Unix seconds.
    pub create_ts: u64,
    /// Session timeout, seconds.
    pub timeout_s: u32,
    /// Servers to try, in order.
    pub addresses: Vec<SocketAddr>,
    /// Client → server key.
    pub c2s_key: Key,
    /// Server → client key.
    pub s2c_key: Key,
}

/// The associated data of the private part's seal: the version string, the protocol id and the
/// expiry, so that none of the three can be changed in a request.
pub fn private_ad(protocol_id: u64, expire_ts: u64) -> [u8; 32] {
    let mut ad = [0u8; 32];
    ad[..16].copy_from_slice(&VERSION_INFO);
    ad[16..24].copy_from_slice(&protocol_id.to_be_bytes());
    ad[24..32].copy_from_slice(&expire_ts.to_be_bytes());
    ad
}

/// Mints a token with the given nonce. The nonce must never repeat under one key: use
/// [`mint_random`] unless a test needs fixed bytes.
pub fn mint(
    key: &Key,
    params: &TokenParams,
    nonce: [u8; NONCE_LEN],
) -> Result<[u8; CONNECT_TOKEN_LEN], TokenError> {
    if params.user_data.len() > MAX_USER_DATA {
        return Err(TokenError::UserDataTooLong(params.user_data.len()));
    }
    if params.addresses.is_empty() || params.addresses.len() > MAX_ADDRESSES {
        return Err(TokenError::Addresses(params.addresses.len()));
    }
    if params.expire_ts <= params.create_ts {
        return Err(TokenError::Expiry { create_ts: params.create_ts, expire_ts: params.expire_ts });
    }
    let mut private = [0u8; PRIVATE_LEN];
    private[private::PLAYER_ID..][..8].copy_from_slice(&params.player_id.to_be_bytes());
    private[private::MATCH_ID..][..8].copy_from_slice(&params.match_id.to_be_bytes());
    private[private::CREATE_TS..][..8].copy_from_slice(&params.create_ts.to_be_bytes());
    private[private::TIMEOUT_S..][..4].copy_from_slice(&params.timeout_s.to_be_bytes());
    private[private::USER_DATA_LEN..][..2].copy_from_slice(&(params.user_data.len() as u16).to_be_bytes());
    private[private::USER_DATA..][..params.user_data.len()].copy_from_slice(&params.user_data);
    private[private::C2S_KEY..][..32].copy_from_slice(params.c2s_key.as_bytes());
    private[private::S2C_KEY..][..32].copy_from_slice(params.s2c_key.as_bytes());
    write_addresses(&mut private[private::ADDRESSES..], &params.addresses);
    let tag = key.cipher().seal(&nonce, &private_ad(params.protocol_id, params.expire_ts), &mut private);

    let mut token = [0u8; CONNECT_TOKEN_LEN];
    token[public::VERSION_INFO..][..16].copy_from_slice(&VERSION_INFO);
    token[public::PROTOCOL_ID..][..8].copy_from_slice(&params.protocol_id.to_be_bytes());
    token[public::CREATE_TS..][..8].copy_from_slice(&params.create_ts.to_be_bytes());
    token[public::EXPIRE_TS..][..8].copy_from_slice(&params.expire_ts.to_be_bytes());
    token[public::NONCE..][..NONCE_LEN].copy_from_slice(&nonce);
    token[public::SEALED_PRIVATE..][..PRIVATE_LEN].copy_from_slice(&private);
    token[public::SEALED_PRIVATE + PRIVATE_LEN..][..TAG_LEN].copy_from_slice(&tag);
    token[public::TIMEOUT_S..][..4].copy_from_slice(&params.timeout_s.to_be_bytes());
    let end = write_addresses(&mut token[public::ADDRESSES..], &params.addresses) + public::ADDRESSES;
    token[end..][..32].copy_from_slice(params.c2s_key.as_bytes());
    token[end + 32..][..32].copy_from_slice(params.s2c_key.as_bytes());
    Ok(token)
}

/// Mints a token with a random nonce.
pub fn mint_random(key: &Key, params: &TokenParams) -> Result<[u8; CONNECT_TOKEN_LEN], MintError> {
    let mut nonce = [0u8; NONCE_LEN];
    crate::wire::crypto::random_bytes(&mut nonce).map_err(MintError::Random)?;
    Ok(mint(key, params, nonce)?)
}

/// Why [`mint_random`] failed.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// The parameters are not a valid token.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The operating system gave no random bytes.
    #[error("no random bytes for the token nonce: {0}")]
    Random(getrandom::Error),
}

/// Reads a token as the client does.
pub fn parse(token: &[u8]) -> Result<PublicToken, TokenError> {
    let token: &[u8; CONNECT_TOKEN_LEN] =
        token.try_into().map_err(|_| TokenError::Malformed("a token is exactly 2048 bytes"))?;
    if token[..16] != VERSION_INFO {
        return Err(TokenError::Malformed("version string is not TICKGATE TOKEN 2"));
    }
    let create_ts = be_u64(token, public::CREATE_TS);
    let (addresses, end) = read_addresses(&token[public::ADDRESSES..])?;
    let end = public::ADDRESSES + end;
    let key_at =
        |at: usize| token.get(at..at + 32).and_then(|b| <[u8; 32]>::try_from(b).ok()).map(Key::from_bytes);
    let (Some(c2s_key), Some(s2c_key)) = (key_at(end), key_at(end + 32)) else {
        return Err(TokenError::Malformed("keys run past the end"));
    };
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&token[public::NONCE..][..NONCE_LEN]);
    let mut sealed = [0u8; SEALED_PRIVATE_LEN];
    sealed.copy_from_slice(&token[public::SEALED_PRIVATE..][..SEALED_PRIVATE_LEN]);
    Ok(PublicToken {
        sealed: SealedToken {
            protocol_id: be_u64(token, public::PROTOCOL_ID),
            expire_ts: be_u64(token, public::EXPIRE_TS),
            nonce,
            sealed,
        },
        create_ts,
        timeout_s: be_u32(token, public::TIMEOUT_S),
        addresses,
        c2s_key,
        s2c_key,
    })
}

impl SealedToken {
    /// Opens the private part with the minting key. Checks only the seal and the layout: expiry,
    /// protocol id and server address are the caller's to check against its own.
    pub fn open(&self, key: &Key) -> Result<PrivateToken, TokenError> {
        self.open_with(&key.cipher())
    }

    /// [`SealedToken::open`] with the minting key's cipher already made.
    pub fn open_with(&self, key: &Cipher) -> Result<PrivateToken, TokenError> {
        let mut private = [0u8; PRIVATE_LEN];
        private.copy_from_slice(&self.sealed[..PRIVATE_LEN]);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&self.sealed[PRIVATE_LEN..]);
        key.open(&self.nonce, &private_ad(self.protocol_id, self.expire_ts), &mut private, &tag)?;
        let user_data_len = usize::from(u16::from_be_bytes([
            private[private::USER_DATA_LEN],
            private[private::USER_DATA_LEN + 1],
        ]));
        if user_data_len > MAX_USER_DATA {
            return Err(TokenError::Malformed("user data length over 256"));
        }
        let key_at = |at: usize| {
            let mut k = [0u8; 32];
            k.copy_from_slice(&private[at..at + 32]);
            Key::from_bytes(k)
        };
        let (addresses, _) = read_addresses(&private[private::ADDRESSES..])?;
        Ok(PrivateToken {
            player_id: be_u64(&private, private::PLAYER_ID),
            match_id: be_u64(&private, private::MATCH_ID),
            create_ts: be_u64(&private, private::CREATE_TS),
            timeout_s: be_u32(&private, private::TIMEOUT_S),
            user_data: private[private::USER_DATA..][..user_data_len].to_vec(),
            addresses,
            c2s_key: key_at(private::C2S_KEY),
            s2c_key: key_at(private::S2C_KEY),
        })
    }
}

fn be_u64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_be_bytes(b)
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_be_bytes(b)
}

/// Writes `count:u32` and each address (`1` + 4 address bytes + port, or `2` + 16 + port, all
/// big-endian); returns the bytes written. The caller checked the count, and the buffer has room
/// for [`MAX_ADDRESSES`] IPv6 addresses.
fn write_addresses(out: &mut [u8], addresses: &[SocketAddr]) -> usize {
    out[..4].copy_from_slice(&(addresses.len() as u32).to_be_bytes());
    let mut at = 4;
    for addr in addresses {
        match addr.ip() {
            IpAddr::V4(ip) => {
                out[at] = ADDR_V4;
                out[at + 1..at + 5].copy_from_slice(&ip.octets());
                at += 5;
            }
            IpAddr::V6(ip) => {
                out[at] = ADDR_V6;
                out[at + 1..at + 17].copy_from_slice(&ip.octets());
                at += 17;
            }
        }
        out[at..at + 2].copy_from_slice(&addr.port().to_be_bytes());
        at += 2;
    }
    at
}

/// Reads what [`write_addresses`] wrote; returns the addresses and the bytes read.
fn read_addresses(bytes: &[u8]) -> Result<(Vec<SocketAddr>, usize), TokenError> {
    let short = TokenError::Malformed("addresses run past the end");
    let count = bytes.get(..4).ok_or(short.clone())?;
    let count = u32::from_be_bytes([count[0], count[1], count[2], count[3]]) as usize;
    if count == 0 || count > MAX_ADDRESSES {
        return Err(TokenError::Addresses(count));
    }
    let mut at = 4;
    let mut addresses = Vec::with_capacity(count);
    for _ in 0..count {
        let (ip, len) = match bytes.get(at) {
            Some(&ADDR_V4) => {
                let b: [u8; 4] =
                    bytes.get(at + 1..at + 5).ok_or(short.clone())?.try_into().map_err(|_| short.clone())?;
                (IpAddr::V4(Ipv4Addr::from(b)), 5)
            }
            Some(&ADDR_V6) => {
                let b: [u8; 16] =
                    bytes.get(at + 1..at + 17).ok_or(short.clone())?.try_into().map_err(|_| short.clone())?;
                (IpAddr::V6(Ipv6Addr::from(b)), 17)
            }
            Some(_) => return Err(TokenError::Malformed("unknown address type")),
            None => return Err(short),
        };
        at += len;
        let port = bytes.get(at..at + 2).ok_or(short.clone())?;
        addresses.push(SocketAddr::new(ip, u16::from_be_bytes([port[0], port[1]])));
        at += 2;
    }
    Ok((addresses, at))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Runs `scripts/reference/tickgate_v2.py` (Python 3 and `cryptography`, which
    /// `scripts/setup.sh` installs) and returns what it printed.
    pub(crate) fn python_reference(args: &[&str]) -> String {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/reference/tickgate_v2.py");
        let out = std::process::Command::new("python3").arg(script).args(args).output().unwrap_or_else(|e| {
            panic!("cannot run python3 {script}: {e} (scripts/setup.sh installs python3 and python3-cryptography)")
        });
        assert!(out.status.success(), "{script} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// The parameters of `docs/protocol.md`'s worked example.
    pub(crate) fn example() -> (Key, TokenParams, [u8; NONCE_LEN]) {
        let key = Key::from_bytes(std::array::from_fn(|i| i as u8));
        let params = TokenParams {
            protocol_id: 0x7469_636b_6761_7465,
            create_ts: 1_800_000_000,
            expire_ts: 1_800_000_030,
            timeout_s: 10,
            match_id: 7,
            player_id: 42,
            user_data: b"team=blue".to_vec(),
            addresses: vec!["10.77.0.2:7777".parse().unwrap(), "[fd00:77::2]:7777".parse().unwrap()],
            c2s_key: Key::from_bytes([0x11; 32]),
            s2c_key: Key::from_bytes([0x22; 32]),
        };
        (key, params, [0x5a; NONCE_LEN])
    }

    #[test]
    fn a_minted_token_reads_and_opens_to_what_was_minted() {
        let (key, params, nonce) = example();
        let token = mint(&key, &params, nonce).unwrap();
        let public = parse(&token).unwrap();
        assert_eq!(
            (public.create_ts, public.timeout_s, &public.addresses, &public.c2s_key, &public.s2c_key),
            (params.create_ts, params.timeout_s, &params.addresses, &params.c2s_key, &params.s2c_key)
        );
        assert_eq!(
            (public.sealed.protocol_id, public.sealed.expire_ts),
            (params.protocol_id, params.expire_ts)
        );
        let private = public.sealed.open(&key).unwrap();
        assert_eq!(
            private,
            PrivateToken {
                player_id: 42,
                match_id: 7,
                create_ts: params.create_ts,
                timeout_s: 10,
                user_data: b"team=blue".to_vec(),
                addresses: params.addresses.clone(),
                c2s_key: params.c2s_key.clone(),
                s2c_key: params.s2c_key.clone(),
            }
        );
    }

    #[test]
    fn a_changed_byte_protocol_id_expiry_or_key_does_not_open() {
        let (key, params, nonce) = example();
        let sealed = parse(&mint(&key, &params, nonce).unwrap()).unwrap().sealed;
        assert!(matches!(sealed.open(&Key::from_bytes([9; 32])), Err(TokenError::Unauthentic(_))));
        for change in 0..4 {
            let mut s = sealed.clone();
            match change {
                0 => s.protocol_id ^= 1,
                1 => s.expire_ts += 3600,
                2 => s.nonce[0] ^= 1,
                _ => s.sealed[500] ^= 0x80,
            }
            assert!(matches!(s.open(&key), Err(TokenError::Unauthentic(_))), "change {change}");
        }
        // Every single byte of the sealed part is covered.
        for at in (0..SEALED_PRIVATE_LEN).step_by(37) {
            let mut s = sealed.clone();
            s.sealed[at] ^= 1;
            assert!(s.open(&key).is_err(), "byte {at}");
        }
    }

    #[test]
    fn bad_parameters_and_bad_bytes_are_errors_not_panics() {
        let (key, params, nonce) = example();
        let long = TokenParams { user_data: vec![0; 257], ..params.clone() };
        assert_eq!(mint(&key, &long, nonce), Err(TokenError::UserDataTooLong(257)));
        let none = TokenParams { addresses: vec![], ..params.clone() };
        assert_eq!(mint(&key, &none, nonce), Err(TokenError::Addresses(0)));
        let many = TokenParams { addresses: vec![params.addresses[1]; 33], ..params.clone() };
        assert_eq!(mint(&key, &many, nonce), Err(TokenError::Addresses(33)));
        let backwards = TokenParams { expire_ts: params.create_ts, ..params.clone() };
        assert!(matches!(mint(&key, &backwards, nonce), Err(TokenError::Expiry { .. })));
        // The longest token fits: 32 IPv6 addresses and 256 bytes of user data.
        let full =
            TokenParams { addresses: vec![params.addresses[1]; 32], user_data: vec![7; 256], ..params };
        let token = mint(&key, &full, nonce).unwrap();
        assert_eq!(parse(&token).unwrap().sealed.open(&key).unwrap().addresses.len(), 32);

        assert!(parse(&token[..2047]).is_err());
        let mut wrong_version = token;
        wrong_version[15] = b'1';
        assert!(parse(&wrong_version).is_err());
        let mut rng = fastrand::Rng::with_seed(2);
        for _ in 0..2_000 {
            let mut t = token;
            for _ in 0..rng.usize(1..8) {
                t[rng.usize(16..CONNECT_TOKEN_LEN)] = rng.u8(..);
            }
            if let Ok(p) = parse(&t) {
                let _ = p.sealed.open(&key);
            }
        }
    }

    #[test]
    fn an_independent_python_implementation_reads_and_writes_the_same_tokens() {
        let (key, params, nonce) = example();
        let token = mint(&key, &params, nonce).unwrap();
        let fields = python_reference(&["open", &hex(key.as_bytes()), &hex(&token)]);
        let get = |name: &str| {
            fields
                .lines()
                .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
                .unwrap_or_else(|| panic!("{name} missing in {fields}"))
                .to_owned()
        };
        assert_eq!(get("private.player_id"), "42");
        assert_eq!(get("private.match_id"), "7");
        assert_eq!(get("private.user_data"), hex(b"team=blue"));
        assert_eq!(get("private.addresses"), "10.77.0.2:7777,[fd00:77::2]:7777");
        assert_eq!(get("addresses"), get("private.addresses"));
        assert_eq!(get("c2s_key"), hex(&[0x11; 32]));
        assert_eq!(get("private.s2c_key"), hex(&[0x22; 32]));
        assert_eq!(get("expire_ts"), params.expire_ts.to_string());

        let minted = python_reference(&[
            "mint",
            &hex(key.as_bytes()),
            &params.protocol_id.to_string(),
            &params.create_ts.to_string(),
            &params.expire_ts.to_string(),
            &params.timeout_s.to_string(),
            &params.match_id.to_string(),
            &params.player_id.to_string(),
            &hex(&params.user_data),
            &hex(&nonce),
            &hex(params.c2s_key.as_bytes()),
            &hex(params.s2c_key.as_bytes()),
            "10.77.0.2:7777",
            "[fd00:77::2]:7777",
        ]);
        // Byte for byte the token Rust mints, so each side's reading of the layout is the same.
        assert_eq!(unhex(minted.trim()), token.to_vec());
        assert_eq!(parse(&unhex(minted.trim())).unwrap().sealed.open(&key).unwrap().player_id, 42);
    }
}
