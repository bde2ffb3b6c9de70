use aes_gcm::{aead::{AeadInPlace, KeyInit}, Aes256Gcm, Nonce, Tag};
use ring::aead::{Aad, LessSafeKey, UnboundKey, AES_256_GCM};
use std::time::Instant;
fn main() {
    let key = [7u8; 32];
    let rc = Aes256Gcm::new((&key).into());
    let rg = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).unwrap());
    for len in [16usize, 80, 200] {
        let n = 400_000usize;
        // seal n messages with distinct nonces
        let msgs: Vec<(Vec<u8>, [u8; 16], [u8; 12])> = (0..n).map(|i| {
            let mut nonce = [0u8; 12]; nonce[4..].copy_from_slice(&(i as u64).to_be_bytes());
            let mut m = vec![i as u8; len];
            let t = rc.encrypt_in_place_detached(Nonce::from_slice(&nonce), &[1,2,3,4], &mut m).unwrap();
            (m, t.into(), nonce)
        }).collect();
        for round in 0..3 {
            let mut buf = vec![0u8; len];
            let t = Instant::now();
            for (m, tag, nonce) in &msgs { buf.copy_from_slice(m); rc.decrypt_in_place_detached(Nonce::from_slice(nonce), &[1,2,3,4], &mut buf, Tag::from_slice(tag)).unwrap(); }
            let a = t.elapsed().as_nanos() as f64 / n as f64;
            let t = Instant::now();
            for (m, tag, nonce) in &msgs { buf.copy_from_slice(m); rg.open_in_place_separate_tag(ring::aead::Nonce::assume_unique_for_key(*nonce), Aad::from(&[1u8,2,3,4]), ring::aead::Tag::from(*tag), &mut buf, 0..).unwrap(); }
            let b = t.elapsed().as_nanos() as f64 / n as f64;
            println!("len {len} round {round}: aes-gcm {a:.0} ns, ring {b:.0} ns, ring/aes-gcm {:.2}", b / a);
        }
    }
}
