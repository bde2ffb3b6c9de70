//! The one AEAD of protocol v2, AES-256-GCM, and the secrets it uses.
//!
//! AES-256-GCM is in the standard library of Go (`crypto/cipher`), C# (`AesGcm`), Java and the
//! browser (WebCrypto), and in Python's `cryptography`: a client or a token minter needs nothing
//! exotic (`docs/decisions.md`, "Packet and token AEAD"). Nonces are 12 bytes; tags 16 bytes,
//! compared by the AEAD itself. The implementation is ring's (BoringSSL's assembly, chosen at run
//! time for the CPU: AES-NI and carry-less multiply, or VAES).

use std::fmt;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, Tag, UnboundKey};

/// Bytes of a key.
pub const KEY_LEN: usize = 32;
/// Bytes of a nonce.
pub const NONCE_LEN: usize = 12;
/// Bytes of an authentication tag.
pub const TAG_LEN: usize = 16;

/// A 256-bit secret: a token-minting key, a session's direction key, or the run's challenge key.
/// Its `Debug` shows no byte of it, so keys never reach a log.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; KEY_LEN]);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<secret>)")
    }
}

impl Key {
    /// A key from its bytes.
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// A fresh key from the operating system's random source.
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; KEY_LEN];
        getrandom::fill(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// The key's bytes (to hand to a client inside its connect token, or to store).
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The cipher for this key, with its key schedule expanded once.
    pub fn cipher(&self) -> Cipher {
        match UnboundKey::new(&AES_256_GCM, &self.0) {
            Ok(key) => Cipher(LessSafeKey::new(key)),
            Err(_) => unreachable!("a 32-byte key is an AES-256-GCM key"),
        }
    }
}

/// AES-256-GCM under one key, ready to seal and open many messages.
#[derive(Clone)]
pub struct Cipher(LessSafeKey);

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cipher(<secret>)")
    }
}

/// An AEAD check failed: wrong key, wrong nonce or associated data, or a changed byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("authentication failed")]
pub struct Unauthentic;

impl Cipher {
    /// Encrypts `buf` in place and returns the tag over it and `ad`.
    pub fn seal(&self, nonce: &[u8; NONCE_LEN], ad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
        // Fails only for messages over 64 GiB; every message here is a datagram.
        match self.0.seal_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(ad), buf) {
            Ok(tag) => {
                let mut out = [0u8; TAG_LEN];
                out.copy_from_slice(tag.as_ref());
                out
            }
            Err(_) => unreachable!("AES-GCM seals any message shorter than 64 GiB"),
        }
    }

    /// Checks `tag` over `buf` and `ad` and decrypts `buf` in place. On failure `buf` is left
    /// unspecified and must not be used.
    pub fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        ad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), Unauthentic> {
        // A nonce is only ever reused to open a replayed packet, which the replay window then
        // refuses; ring's "unique" is about sealing.
        self.0
            .open_in_place_separate_tag(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(ad),
                Tag::from(*tag),
                buf,
                0..,
            )
            .map(|_| ())
            .map_err(|_| Unauthentic)
    }
}

/// Fills `buf` from the operating system's random source.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), getrandom::Error> {
    getrandom::fill(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NIST's GCM test case 16 (the AES-256 case with associated data), from "The Galois/Counter
    /// Mode of Operation (GCM)", McGrew and Viega, with the 12-byte nonce variant: the same
    /// numbers any other AES-256-GCM implementation gives.
    #[test]
    fn matches_the_published_aes_256_gcm_test_vector() {
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
        };
        let key: [u8; 32] =
            hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308").try_into().unwrap();
        let nonce: [u8; 12] = hex("cafebabefacedbaddecaf888").try_into().unwrap();
        let ad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let mut msg = hex(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        );
        let tag = Key::from_bytes(key).cipher().seal(&nonce, &ad, &mut msg);
        assert_eq!(
            msg,
            hex(
                "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
            )
        );
        assert_eq!(tag.to_vec(), hex("76fc6ece0f4e1768cddf8853bb2d551b"));
        let cipher = Key::from_bytes(key).cipher();
        let mut tampered = msg.clone();
        tampered[0] ^= 1;
        assert_eq!(cipher.open(&nonce, &ad, &mut tampered, &tag), Err(Unauthentic));
        assert_eq!(cipher.open(&nonce, b"other", &mut msg.clone(), &tag), Err(Unauthentic));
        cipher.open(&nonce, &ad, &mut msg, &tag).unwrap();
        assert!(msg.starts_with(&hex("d9313225f88406e5")));
    }

    #[test]
    fn keys_never_print() {
        let key = Key::from_bytes([0xAB; 32]);
        assert!(!format!("{key:?} {:?}", key.cipher()).to_lowercase().contains("ab"));
    }
}
