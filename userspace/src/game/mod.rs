//! The game's end for a game server in another process or language: one shared-memory ring of
//! records per match, which tickgate writes and the game reads without linking Rust.
//!
//! `docs/frame-ring.md` is the format, normatively; [`ring`] is the mapping, the writer and a
//! reader, [`record`] the record bodies. The ring overwrites its oldest records when the game
//! falls behind: tickgate never waits for the game and never grows its memory, the game learns
//! what it missed from the records' sequence numbers, and tickgate counts what it overwrote
//! unread. Everything the game can write (the whole file) is untrusted: tickgate keeps its own
//! positions in private memory and only reads the game's read position to count.

pub mod record;
pub mod ring;
pub mod rings;

pub use record::{FrameRecord, decode_frame, encode_frame};
pub use ring::{Read, RingError, RingReader, RingStats, RingWriter};
pub use rings::{GameMessage, Rings, RingsConfig, RingsReport};

#[cfg(test)]
mod tests {
    use super::ring::{HEADER_LEN, RingWriter, kind};
    use super::*;

    /// The worked example of `docs/frame-ring.md`: match 7's ring (60 Hz, a 4096-byte data
    /// area) after its start and the frame of `record::tests::example`.
    pub(crate) fn example_ring() -> Vec<u8> {
        let path = std::env::temp_dir().join(format!("tickgate-ring-doc-{}", std::process::id()));
        let mut w = RingWriter::create(&path, 7, 60, 4096, 0o600, None).expect("a ring");
        w.append(kind::MATCH_START, &record::encode_match_start(7, 60, 0)).expect("fits");
        let mut body = Vec::new();
        encode_frame(&record::tests::example(), &mut body);
        w.append(kind::FRAME, &body).expect("fits");
        let bytes = std::fs::read(&path).expect("readable");
        std::fs::remove_file(&path).expect("removed");
        bytes
    }

    fn dump(bytes: &[u8]) -> String {
        crate::wire::v2::examples::dump(bytes)
    }

    #[test]
    fn the_frame_ring_doc_shows_these_bytes() {
        let doc = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/frame-ring.md"));
        let ring = example_ring();
        for (name, bytes) in [
            ("header, bytes 0..32", &ring[..32]),
            ("header, bytes 64..96", &ring[64..96]),
            ("data area, bytes 0..224", &ring[HEADER_LEN..HEADER_LEN + 224]),
        ] {
            let shown = dump(bytes);
            assert!(doc.contains(&shown), "docs/frame-ring.md lacks the example's {name}:\n{shown}");
        }
        // And the bytes decode back to the example.
        let frame = decode_frame(&ring[HEADER_LEN + 48 + 16..HEADER_LEN + 48 + 16 + 148]).expect("decodes");
        assert_eq!(frame.inputs, record::tests::example().inputs);
    }
}
