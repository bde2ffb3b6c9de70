//! The hash chain: each frame's hash linked to the previous one ([`HashChain`]), computed while
//! its tick fills rather than when it is sealed ([`Digest`]).
//!
//! The hashed message is `prev_hash[32] || tick:u64 || count:u64 || inputs` (see [`super::frame`]).
//! Only its first 48 bytes wait for the seal (the previous frame's hash, and the count), and
//! BLAKE3 hashes the message as a tree of 1 KiB chunks: every chunk after the first is hashed
//! without them. So a [`Digest`] keeps the inputs' first [`HEAD`] encoded bytes (the rest of
//! chunk 0) and feeds everything after them, as it arrives, into the complete subtrees
//! `[2^k, 2^(k+1))` chunks (k = 0, 1, 2, …) of BLAKE3's tree. At the seal, chunk 0 and a few
//! chaining-value merges are left (`blake3::hazmat`): sealing a tick of 20 000 inputs costs
//! microseconds instead of the ~0.5 ms of encoding and hashing it whole, and the inputs are encoded
//! while they are still in cache.
//!
//! It only holds while the inputs arrive in frame order (the usual case); a tick whose inputs
//! arrive out of order drops its digest and is hashed whole at the seal, as before. Either way
//! the hash is the same: tests compare it with `blake3::hash` of the whole encoding.

use blake3::hazmat::{ChainingValue, HasherExt, Mode, merge_subtrees_non_root, merge_subtrees_root};
use blake3::{CHUNK_LEN, Hasher};

use super::frame::{Frame, GENESIS_HASH, HASH_BLOCK, encode_input_head, frame_order, hash_with};
use crate::input::Input;

/// Bytes of the message ahead of the inputs: the previous hash, the tick and the count.
const PREFIX: usize = 32 + 8 + 8;
/// Encoded input bytes that share chunk 0 with the prefix, hashed only at the seal.
pub(super) const HEAD: usize = CHUNK_LEN - PREFIX;
/// Encoded bytes gathered before they are hashed: 16 chunks, so that BLAKE3 can hash them side
/// by side in SIMD lanes.
const STAGE: usize = 16 * CHUNK_LEN;

/// The running hash of one open tick's inputs, in the order they were pushed.
#[derive(Clone)]
pub(super) struct Digest {
    /// The first [`HEAD`] encoded bytes.
    head: Vec<u8>,
    /// Encoded bytes past the head, not hashed yet.
    stage: Vec<u8>,
    /// Chaining values of the complete subtrees: `blocks[k]` covers chunks `[2^k, 2^(k+1))`.
    blocks: Vec<ChainingValue>,
    /// The subtree being filled, chunks `[2^k, 2^(k+1))` with `k = blocks.len()`.
    current: Hasher,
    /// Bytes fed to `current`.
    fed: u64,
    /// Staged bytes that reach the next [`STAGE`]-aligned offset of the message: hashing up to
    /// there keeps every later update on a 16-chunk boundary, where BLAKE3 hashes 16 chunks side
    /// by side (an unaligned run goes in smaller pieces).
    flush_at: usize,
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Digest").field("len", &self.len()).field("blocks", &self.blocks.len()).finish()
    }
}

impl Default for Digest {
    fn default() -> Self {
        let mut digest = Self {
            head: Vec::with_capacity(HEAD),
            stage: Vec::new(),
            blocks: Vec::new(),
            current: Hasher::new(),
            fed: 0,
            flush_at: STAGE - CHUNK_LEN,
        };
        digest.start_block();
        digest
    }
}

impl Digest {
    /// Empties the digest for another tick, keeping its buffers.
    pub(super) fn clear(&mut self) {
        self.head.clear();
        self.stage.clear();
        self.blocks.clear();
        self.start_block();
        self.flush_at = STAGE - CHUNK_LEN;
    }

    /// Encoded bytes pushed so far.
    pub(super) fn len(&self) -> u64 {
        (self.head.len() + self.stage.len()) as u64 + self.hashed()
    }

    /// Appends the canonical encoding of each input.
    pub(super) fn push_all(&mut self, inputs: &[Input]) {
        for input in inputs {
            self.push(input);
        }
    }

    /// Appends one input's canonical encoding.
    #[inline]
    pub(super) fn push(&mut self, input: &Input) {
        let head = encode_input_head(input);
        if self.head.len() < HEAD {
            self.fill_head(&head);
            self.fill_head(&input.payload);
        } else {
            self.stage.extend_from_slice(&head);
            self.stage.extend_from_slice(&input.payload);
        }
        if self.stage.len() >= self.flush_at {
            // Up to the last aligned offset staged: a long payload may pass several.
            let whole = (self.stage.len() - self.flush_at) / STAGE * STAGE;
            self.flush_to(self.flush_at + whole);
        }
    }

    /// Fills the head, and stages what does not fit.
    fn fill_head(&mut self, bytes: &[u8]) {
        let (head, rest) = bytes.split_at(bytes.len().min(HEAD - self.head.len()));
        self.head.extend_from_slice(head);
        self.stage.extend_from_slice(rest);
    }

    /// The frame's hash: `BLAKE3(prev || tick || count || inputs)`, `count` being the inputs
    /// pushed. Leaves the digest to be cleared.
    pub(super) fn finish(&mut self, prev: &[u8; 32], tick: u64, count: usize) -> [u8; 32] {
        let mut chunk0 = Hasher::new();
        chunk0.update(prev);
        chunk0.update(&tick.to_be_bytes());
        chunk0.update(&(count as u64).to_be_bytes());
        chunk0.update(&self.head);
        self.flush();
        // The root's left subtree is the largest power of two chunks below the message: with
        // the last subtree filled exactly, that excludes it; otherwise it is everything before
        // the subtree being filled.
        let right = if self.fed > 0 {
            self.current.finalize_non_root()
        } else if let Some(last) = self.blocks.pop() {
            last
        } else {
            // The whole message is chunk 0, the root.
            return chunk0.finalize().into();
        };
        let mut left = chunk0.finalize_non_root();
        for block in &self.blocks {
            left = merge_subtrees_non_root(&left, block, Mode::Hash);
        }
        merge_subtrees_root(&left, &right, Mode::Hash).into()
    }

    /// Bytes past the head already fed to subtrees.
    fn hashed(&self) -> u64 {
        // Subtrees 0..k hold chunks [1, 2^k): 2^k − 1 chunks.
        ((1u64 << self.blocks.len()) - 1) * CHUNK_LEN as u64 + self.fed
    }

    /// Hashes every staged byte into the subtrees.
    fn flush(&mut self) {
        self.flush_to(self.stage.len());
    }

    /// Hashes the first `len` staged bytes into the subtrees, closing each one as it fills, and
    /// keeps the rest staged.
    fn flush_to(&mut self, len: usize) {
        let mut stage = std::mem::take(&mut self.stage);
        let mut bytes = &stage[..len];
        while !bytes.is_empty() {
            let room = (CHUNK_LEN as u64) << self.blocks.len();
            let take = (room - self.fed).min(bytes.len() as u64) as usize;
            self.current.update(&bytes[..take]);
            self.fed += take as u64;
            bytes = &bytes[take..];
            if self.fed == room {
                self.blocks.push(self.current.finalize_non_root());
                self.start_block();
            }
        }
        stage.drain(..len);
        self.stage = stage;
        let start = CHUNK_LEN as u64 + self.hashed();
        self.flush_at = (STAGE as u64 - start % STAGE as u64) as usize;
    }

    /// Starts the subtree after the complete ones.
    fn start_block(&mut self) {
        self.current = Hasher::new();
        self.current.set_input_offset((CHUNK_LEN as u64) << self.blocks.len());
        self.fed = 0;
    }
}

/// The running hash chain, with a reusable encoding buffer.
#[derive(Debug)]
pub(super) struct HashChain {
    prev: [u8; 32],
    scratch: Vec<u8>,
}

impl Default for HashChain {
    fn default() -> Self {
        Self { prev: GENESIS_HASH, scratch: Vec::with_capacity(HASH_BLOCK + 1024) }
    }
}

impl HashChain {
    /// Orders a tick's inputs (unless already `sorted`) and links the frame into the chain. A
    /// `digest` of the sorted inputs, if the tick kept one, saves hashing them here.
    pub(super) fn seal(
        &mut self,
        tick: u64,
        mut inputs: Vec<Input>,
        sorted: bool,
        digest: Option<&mut Digest>,
    ) -> Frame {
        if !sorted {
            // Stable: inputs arrive nearly in order, which this sort handles in about one pass.
            inputs.sort_by(frame_order);
        }
        let hash = match digest {
            Some(digest) if sorted => digest.finish(&self.prev, tick, inputs.len()),
            _ => hash_with(&self.prev, tick, &inputs, &mut self.scratch),
        };
        self.prev = hash;
        Frame { match_id: 0, tick, tick_hz: 0, start_ns: 0, inputs, hash, absent: Vec::new(), last: false }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame_queue::frame::tests::input as keyed;
    use crate::frame_queue::frame::{chain_hash, encode_frame};
    use crate::input::{Clock, InputKind, Timestamp};

    fn input(n: usize, payload_len: usize) -> Input {
        Input {
            kind: InputKind::Command,
            rx: Timestamp { ns: 1_000 + n as u64, clock: Clock::Xdp },
            queue: 0,
            client_id: n as u32,
            match_id: 0,
            seq: n as u64,
            client_frame: 7,
            payload: vec![n as u8; payload_len].into(),
        }
    }

    fn whole(prev: &[u8; 32], tick: u64, inputs: &[Input]) -> [u8; 32] {
        let mut message = prev.to_vec();
        encode_frame(tick, inputs, &mut message);
        blake3::hash(&message).into()
    }

    /// Inputs whose encodings sum to every length around the tree's boundaries.
    #[test]
    fn the_digest_is_blake3_of_the_whole_message_at_every_length() {
        let prev = [7u8; 32];
        let mut digest = Digest::default();
        let mut inputs = Vec::new();
        // 29 + 1 = 30 bytes per input, then a few odd sizes so that lengths fall on and around
        // chunk and subtree boundaries; a 70 000-byte payload crosses several at once.
        for n in 0..3_000 {
            let payload_len = match n % 97 {
                0 => 1_000,
                1 => 3,
                _ if n == 2_000 => 70_000,
                _ => 1,
            };
            assert_eq!(digest.len(), inputs.iter().map(|i: &Input| 29 + i.payload.len() as u64).sum::<u64>());
            let mut probe = digest.clone();
            assert_eq!(
                probe.finish(&prev, 9, inputs.len()),
                whole(&prev, 9, &inputs),
                "{} inputs",
                inputs.len()
            );
            let next = input(n, payload_len);
            digest.push(&next);
            inputs.push(next);
        }
        assert!(digest.blocks.len() >= 6, "the test reached subtrees of 32 chunks and more");
    }

    #[test]
    fn a_message_that_fills_its_last_subtree_exactly_is_hashed_right() {
        // The head takes 29 inputs of 32 bytes (29 + 3) and one of 48; after it, 32 inputs of 32
        // bytes fill a chunk, so the digest ends exactly on the boundary of subtree k when
        // 2^(k+1) − 1 chunks follow chunk 0.
        let prev = [1u8; 32];
        for chunks in [1usize, 3, 7, 15, 31, 63] {
            let mut inputs: Vec<Input> = (0..29).map(|n| input(n, 3)).collect();
            inputs.push(input(29, 19));
            inputs.extend((30..30 + 32 * chunks).map(|n| input(n, 3)));
            let mut digest = Digest::default();
            inputs.iter().for_each(|i| digest.push(i));
            assert_eq!(digest.len(), (HEAD + chunks * CHUNK_LEN) as u64);
            let hash = digest.finish(&prev, 1, inputs.len());
            assert_eq!(digest.fed, 0, "{chunks} chunks past chunk 0 close their last subtree");
            assert_eq!(hash, whole(&prev, 1, &inputs), "{chunks} chunks");
        }
    }

    #[test]
    fn long_payloads_are_hashed_as_they_come_not_staged() {
        let prev = [2u8; 32];
        let inputs: Vec<Input> = (0..40).map(|n| input(n, 60_000)).collect();
        let mut digest = Digest::default();
        for input in &inputs {
            digest.push(input);
            assert!(digest.stage.len() < STAGE, "{} bytes staged", digest.stage.len());
        }
        assert_eq!(digest.finish(&prev, 2, inputs.len()), whole(&prev, 2, &inputs));
    }

    #[test]
    fn a_cleared_digest_starts_over() {
        let prev = [0u8; 32];
        let inputs: Vec<Input> = (0..500).map(|n| input(n, 10)).collect();
        let mut digest = Digest::default();
        inputs.iter().for_each(|i| digest.push(i));
        digest.finish(&prev, 0, inputs.len());
        digest.clear();
        inputs[..40].iter().for_each(|i| digest.push(i));
        assert_eq!(digest.finish(&prev, 3, 40), whole(&prev, 3, &inputs[..40]));
        digest.clear();
        assert_eq!(digest.finish(&prev, 4, 0), whole(&prev, 4, &[]));
    }

    #[test]
    fn order_ignores_the_queue_except_between_identical_inputs() {
        let mut chain = HashChain::default();
        let frame = chain.seal(0, vec![keyed(5, 2, 1, 0), keyed(5, 1, 9, 3), keyed(4, 9, 9, 1)], false, None);
        let keys: Vec<_> = frame.inputs.iter().map(|i| (i.rx.ns, i.client_id)).collect();
        assert_eq!(keys, vec![(4, 9), (5, 1), (5, 2)]);
        let mut other = HashChain::default();
        let moved = other.seal(0, vec![keyed(5, 1, 9, 0), keyed(4, 9, 9, 0), keyed(5, 2, 1, 7)], false, None);
        assert_eq!(moved.hash, frame.hash, "queues differ, hash does not");
        let mut twins = [keyed(1, 1, 1, 4), keyed(1, 1, 1, 2)];
        twins.sort_by(frame_order);
        assert_eq!(twins.iter().map(|i| i.queue).collect::<Vec<_>>(), vec![2, 4]);
    }

    #[test]
    fn the_chain_links_each_frame_to_the_previous_one() {
        let mut chain = HashChain::default();
        let first = chain.seal(0, vec![], true, None);
        let second = chain.seal(1, vec![keyed(1, 1, 1, 0)], true, None);
        assert_eq!(second.hash, chain_hash(&first.hash, 1, &second.inputs));
        assert_ne!(second.hash, chain_hash(&GENESIS_HASH, 1, &second.inputs));
    }
}
