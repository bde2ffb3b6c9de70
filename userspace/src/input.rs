//! A decoded, validated game input, and its receive [`Timestamp`]: what a worker hands to the
//! sequencer and what a frame holds.

use serde::{Deserialize, Serialize};
use tickgate_common::meta::{RxMeta, flags};

/// Which clock a receive time was read from.
///
/// NIC (PHC) time and CLOCK_TAI differ by an arbitrary offset, so a run compares every time in
/// one of them, its time base (`docs/architecture.md`, "Time base").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Clock {
    /// The NIC's hardware clock (PHC), read through the XDP RX-timestamp kfunc.
    Nic,
    /// `bpf_ktime_get_tai_ns()` at the XDP hook: CLOCK_TAI.
    Xdp,
    /// The NIC's hardware clock, converted to CLOCK_TAI by the worker through the PHC's measured
    /// offset and rate ([`crate::phc`]): in the TAI domain, and still the NIC's moment.
    NicTai,
}

impl Clock {
    /// The name used in JSON output and docs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nic => "nic",
            Self::Xdp => "xdp",
            Self::NicTai => "nic-tai",
        }
    }

    /// The one-byte code of the clock in the frame encoding and the record log.
    pub fn code(self) -> u8 {
        match self {
            Self::Nic => 0,
            Self::Xdp => 1,
            Self::NicTai => 2,
        }
    }

    /// The clock whose time `self`'s readings are in: a converted NIC stamp is in TAI.
    pub fn domain(self) -> Self {
        match self {
            Self::Nic => Self::Nic,
            Self::Xdp | Self::NicTai => Self::Xdp,
        }
    }

    /// The clock with this code, if any.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Nic),
            1 => Some(Self::Xdp),
            2 => Some(Self::NicTai),
            _ => None,
        }
    }
}

/// A receive time: nanoseconds in one clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Timestamp {
    /// Nanoseconds in `clock`.
    pub ns: u64,
    /// The clock `ns` was read from.
    pub clock: Clock,
}

impl Timestamp {
    /// `ns` in CLOCK_TAI, as the XDP hook reads it.
    pub const fn xdp(ns: u64) -> Self {
        Self { ns, clock: Clock::Xdp }
    }

    /// `ns` in the NIC's hardware clock.
    pub const fn nic(ns: u64) -> Self {
        Self { ns, clock: Clock::Nic }
    }

    /// The time the XDP program stamped in a packet's metadata (its flags say which clock).
    pub fn of(meta: &RxMeta) -> Self {
        let clock = if meta.flags & flags::TS_NIC != 0 { Clock::Nic } else { Clock::Xdp };
        Self { ns: meta.rx_ts_ns, clock }
    }
}

/// What an [`Input`] is: a player's command, or a session event of its tick.
///
/// Joins and leaves travel the same path as commands (merge, ticks, frames, record log), so
/// every replica of a match sees them at the same tick, in the same order, under the same hash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InputKind {
    /// A player's command (its payload is a one-command `InputFrame`).
    #[default]
    Command,
    /// A player's session started; `seq` is the session id, the payload the token's user data.
    Join,
    /// A player's session ended; `seq` is the session id, the payload the reason's name.
    Leave,
    /// A player asked to catch up from a tick older than the server still holds; `seq` is that
    /// tick. The game must bring the player up to date another way (send it the state).
    Resync,
    /// The game started the match before anyone joined; the payload is the match's own tick
    /// rate, grace and late policy ([`MatchConfig::encode`](crate::frame_queue::MatchConfig)).
    Start,
    /// The game ended the match: its frame is the match's last.
    End,
}

impl InputKind {
    /// The name in JSON output and docs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Command => "command",
            Self::Join => "join",
            Self::Leave => "leave",
            Self::Resync => "resync",
            Self::Start => "start",
            Self::End => "end",
        }
    }

    /// The code in the frame encoding and the record log (the high nibble of the clock byte,
    /// so that commands encode as they always have).
    pub fn code(self) -> u8 {
        match self {
            Self::Command => 0,
            Self::Join => 1,
            Self::Leave => 2,
            Self::Resync => 3,
            Self::Start => 4,
            Self::End => 5,
        }
    }

    /// The kind with this code, if any.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Command),
            1 => Some(Self::Join),
            2 => Some(Self::Leave),
            3 => Some(Self::Resync),
            4 => Some(Self::Start),
            5 => Some(Self::End),
            _ => None,
        }
    }
}

/// One game input, after the header checksum, protobuf decode and anti-replay checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// A command or a session event.
    pub kind: InputKind,
    /// When the packet carrying it arrived.
    pub rx: Timestamp,
    /// RX queue the packet arrived on.
    pub queue: u16,
    /// Client id from the wire header (protocol v1), or the session's player id (v2).
    pub client_id: u32,
    /// The match the input belongs to: its session's token names it (protocol v2); `0` for v1.
    pub match_id: u64,
    /// Per-client input sequence number: the command's own (`first_seq + i` of its `InputFrame`).
    pub seq: u64,
    /// The client's frame id for this command.
    pub client_frame: u32,
    /// A one-command protobuf `InputFrame` with the client's original command bytes, opaque past decode.
    pub payload: Payload,
}

/// An input's bytes, held inside the [`Input`] up to [`Payload::INLINE`] bytes.
///
/// Inputs cross the sequencer by the million per second; a heap buffer per input cost a third of
/// its time (one allocation in the worker, one free where the game drops or recycles the frame).
/// A command of tickgate's schema fits inline (`docs/decisions.md`, "Payloads inline"); a longer
/// payload (a game's own extensions) is a slice of a shared buffer: one a worker's
/// [`PayloadArena`] cuts many payloads from, or one of its own.
#[derive(Clone)]
pub struct Payload(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, bytes: [u8; Payload::INLINE] },
    Shared(bytes::Bytes),
}

impl Payload {
    /// The longest payload kept inline. With it an [`Input`] is 88 bytes (72 with a `Vec`).
    pub const INLINE: usize = 38;

    /// No bytes.
    #[inline]
    pub const fn empty() -> Self {
        Self(Repr::Inline { len: 0, bytes: [0; Self::INLINE] })
    }

    /// `head` followed by `tail`, in one payload: how a worker builds a command's `InputFrame`
    /// (a few bytes of framing, then the client's command) without a buffer in between. Past the
    /// inline bound this allocates; [`PayloadArena::concat`] does not.
    #[inline]
    pub fn concat(head: &[u8], tail: &[u8]) -> Self {
        if head.len() + tail.len() > Self::INLINE {
            return Self(Repr::Shared(bytes::Bytes::from([head, tail].concat())));
        }
        Self::inline(head, tail)
    }

    /// `head` and `tail`, which fit inline together.
    #[inline]
    fn inline(head: &[u8], tail: &[u8]) -> Self {
        let len = head.len() + tail.len();
        let mut bytes = [0; Self::INLINE];
        bytes[..head.len()].copy_from_slice(head);
        bytes[head.len()..len].copy_from_slice(tail);
        Self(Repr::Inline { len: len as u8, bytes })
    }

    /// The bytes.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Shared(bytes) => bytes,
        }
    }

    /// Whether the bytes are held inline (no heap buffer).
    #[inline]
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline { .. })
    }
}

/// Where a worker keeps the payloads longer than [`Payload::INLINE`]: chunks of
/// [`PayloadArena::CHUNK`] bytes, each shared by the payloads cut from it, so that a long payload
/// costs a share of a chunk (a reference count) rather than an allocation of its own. A chunk is
/// freed when the last frame holding a payload of it is dropped.
#[derive(Debug, Default)]
pub struct PayloadArena {
    chunk: bytes::BytesMut,
    chunks: u64,
}

impl PayloadArena {
    /// Bytes per chunk: a datagram's payload fits in one.
    pub const CHUNK: usize = 64 * 1024;

    /// `head` followed by `tail`: inline when it fits, otherwise cut from the current chunk.
    #[inline]
    pub fn concat(&mut self, head: &[u8], tail: &[u8]) -> Payload {
        let len = head.len() + tail.len();
        if len <= Payload::INLINE {
            return Payload::inline(head, tail);
        }
        if self.chunk.capacity() - self.chunk.len() < len {
            self.chunk = bytes::BytesMut::with_capacity(Self::CHUNK.max(len));
            self.chunks += 1;
        }
        self.chunk.extend_from_slice(head);
        self.chunk.extend_from_slice(tail);
        Payload(Repr::Shared(self.chunk.split().freeze()))
    }

    /// Chunks allocated so far.
    pub fn chunks(&self) -> u64 {
        self.chunks
    }
}

impl Default for Payload {
    fn default() -> Self {
        Self::empty()
    }
}

impl std::ops::Deref for Payload {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for Payload {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl From<&[u8]> for Payload {
    fn from(bytes: &[u8]) -> Self {
        Self::concat(&[], bytes)
    }
}

impl<const N: usize> From<[u8; N]> for Payload {
    fn from(bytes: [u8; N]) -> Self {
        Self::concat(&[], &bytes)
    }
}

impl From<Vec<u8>> for Payload {
    /// Inline when it fits; otherwise the vector's own buffer is kept.
    fn from(bytes: Vec<u8>) -> Self {
        if bytes.len() <= Self::INLINE {
            Self::concat(&[], &bytes)
        } else {
            Self(Repr::Shared(bytes::Bytes::from(bytes)))
        }
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_slice().fmt(f)
    }
}

/// Payloads are equal, ordered and hashed by their bytes alone, wherever they are held.
impl PartialEq for Payload {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Payload {}

impl PartialOrd for Payload {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Payload {
    #[inline]
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}

impl std::hash::Hash for Payload {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl PartialEq<[u8]> for Payload {
    fn eq(&self, other: &[u8]) -> bool {
        self.as_slice() == other
    }
}

impl PartialEq<Vec<u8>> for Payload {
    fn eq(&self, other: &Vec<u8>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<const N: usize> PartialEq<[u8; N]> for Payload {
    fn eq(&self, other: &[u8; N]) -> bool {
        self.as_slice() == other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_is_inline_up_to_the_bound_and_the_same_bytes_either_way() {
        let fits = vec![7u8; Payload::INLINE];
        let over = vec![7u8; Payload::INLINE + 1];
        assert!(Payload::from(fits.clone()).is_inline());
        assert!(Payload::from(&fits[..]).is_inline());
        assert!(!Payload::from(over.clone()).is_inline());
        assert_eq!(Payload::from(over.clone()), over);
        assert_eq!(&Payload::from(&over[..])[..], &over[..]);
        // Built from two parts, on both sides of the bound.
        let split = Payload::concat(&fits[..10], &fits[10..]);
        assert!(split.is_inline());
        assert_eq!(split, fits);
        let spilled = Payload::concat(&over[..3], &over[3..]);
        assert!(!spilled.is_inline());
        assert_eq!(spilled, over);
        assert_eq!(Payload::empty().len(), 0);
        assert_eq!(Payload::default(), Payload::from(Vec::new()));
    }

    #[test]
    fn an_arena_cuts_long_payloads_from_shared_chunks() {
        let mut arena = PayloadArena::default();
        let short = arena.concat(&[1, 2], &[3]);
        assert!(short.is_inline());
        assert_eq!(arena.chunks(), 0, "a short payload takes no chunk");
        let long: Vec<Payload> =
            (0..2_000u32).map(|n| arena.concat(&n.to_be_bytes(), &[n as u8; 60])).collect();
        // 2 000 payloads of 64 bytes: two 64 KiB chunks.
        assert_eq!(arena.chunks(), 2);
        for (n, payload) in (0..2_000u32).zip(&long) {
            assert!(!payload.is_inline());
            assert_eq!(&payload[..4], &n.to_be_bytes());
            assert_eq!(&payload[4..], &[n as u8; 60][..]);
        }
        // A payload bigger than a chunk gets a chunk of its size.
        let huge = arena.concat(&[], &vec![9; PayloadArena::CHUNK + 1]);
        assert_eq!((huge.len(), arena.chunks()), (PayloadArena::CHUNK + 1, 3));
        // Payloads outlive the arena and each other.
        drop(arena);
        let kept = long[1_999].clone();
        drop(long);
        assert_eq!(&kept[4..], &[1_999u32 as u8; 60][..]);
    }

    #[test]
    fn payloads_compare_by_bytes_alone() {
        let a = Payload::from(vec![1u8; 40]);
        let b = Payload::concat(&[1u8; 20], &[1u8; 20]);
        assert_eq!(a, b);
        let (low, high, long) =
            (Payload::from([1u8, 2]), Payload::from([1u8, 3]), Payload::from(vec![1u8; 40]));
        assert!(low < high);
        let prefix = Payload::from([1u8]);
        assert!(prefix < long, "a prefix sorts first, inline or not");
        assert!(long < high);
        assert_eq!(format!("{:?}", Payload::from([1u8, 2])), "[1, 2]");
    }

    #[test]
    fn an_input_is_88_bytes_at_most() {
        // The sequencer moves inputs by value through the merge and into frames.
        assert!(size_of::<Input>() <= 88, "{} bytes", size_of::<Input>());
    }
}
