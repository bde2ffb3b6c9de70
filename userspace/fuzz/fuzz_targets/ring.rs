//! The frame ring's reader on a file whose positions and data area are arbitrary bytes (a
//! damaged ring, or one a hostile process wrote): `RingReader` and `decode_frame` never panic,
//! never read outside the mapping, and never spin: every `read` returns.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickgate::game::{
    Read, RingReader, decode_frame,
    ring::{HEADER_LEN, MAGIC, VERSION, kind, offset},
};

const CAPACITY: usize = 4096;

fuzz_target!(|data: &[u8]| {
    // A valid header (so that the reader gets past `open`), then the fuzz bytes over the
    // writer's and reader's positions (bytes 64..160) and the data area.
    let mut file = vec![0u8; HEADER_LEN + CAPACITY];
    file[offset::MAGIC..offset::MAGIC + 8].copy_from_slice(&MAGIC);
    file[offset::VERSION..offset::VERSION + 4].copy_from_slice(&VERSION.to_le_bytes());
    file[offset::HEADER_LEN..offset::HEADER_LEN + 4].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
    file[offset::CAPACITY..offset::CAPACITY + 8].copy_from_slice(&(CAPACITY as u64).to_le_bytes());
    let (positions, area) = data.split_at(data.len().min(96));
    file[64..64 + positions.len()].copy_from_slice(positions);
    let area = &area[..area.len().min(CAPACITY)];
    file[HEADER_LEN..HEADER_LEN + area.len()].copy_from_slice(area);
    let path = std::env::temp_dir().join(format!("tickgate-fuzz-ring-{}", std::process::id()));
    if std::fs::write(&path, &file).is_err() {
        return;
    }
    if let Ok(mut reader) = RingReader::open(&path) {
        for _ in 0..1_000 {
            match reader.read() {
                Read::Record { kind: kind::FRAME, body, .. } => {
                    let _ = decode_frame(&body);
                }
                Read::Record { body, .. } => assert!(body.len() < CAPACITY),
                Read::Missed(_) => {}
                Read::Empty | Read::Ended => break,
            }
        }
    }
    let _ = std::fs::remove_file(&path);
});
