//! Per-client anti-replay windows: every input sequence number reaches the sequencer at most once.
//!
//! Clients survive loss by redundancy: each `Input` packet carries the client's newest input and
//! the few before it (an `InputFrame` numbers its commands `first_seq..=seq`, see
//! [`crate::wire`]), so one lost packet costs nothing and the server sees most inputs several
//! times. The worker runs every command of a packet through [`Clients::check`], oldest first,
//! and delivers only those it accepts.
//!
//! # The window
//!
//! [`Window`] is the RFC 6479 / WireGuard sliding bitmap over the 64-bit sequence number, exact to
//! the bit: with `newest` the highest seq accepted so far, a seq is
//! - accepted if it is above `newest` by at most [`MAX_JUMP`] (the window slides up to it), or
//!   in `newest - WINDOW + 1 ..= newest` and not accepted before;
//! - [`Reject::Duplicate`] if it is in that range and was accepted before;
//! - [`Reject::TooOld`] if it is `newest - WINDOW` or below: it may or may not have been
//!   delivered, and the window no longer knows, so it is refused rather than risk delivering twice;
//! - [`Reject::FarFuture`] if it is more than [`MAX_JUMP`] above `newest`.
//!
//! A fresh window (new client) accepts any seq. The far-future bound exists because the checksum
//! is not authentication: one corrupted or buggy seq near `u64::MAX` would otherwise push the
//! window past everything the client will ever send and silence it. A legitimate client never
//! jumps that far while it is active (seqs are consecutive, so a jump is a run of lost inputs:
//! [`MAX_JUMP`] is 18 minutes of total loss at 60 inputs per second). The exception is a client
//! that was silent: once it has had nothing accepted for `idle_timeout_ns` it is forgotten (see
//! below) and its next packet starts a fresh window at whatever seq it carries.
//!
//! Sequence numbers do not wrap. After `u64::MAX` nothing is newer, and seq 0 is too old, not
//! the successor; a client must start a new session (new client id) first. At a million inputs
//! per second that takes 584,000 years.
//!
//! # The client table
//!
//! [`Clients`] holds one window per client id, at most `max_clients` of them, allocated up front.
//! Only accepted inputs count as activity; rejected ones (duplicates included) do not. A client
//! that has had nothing accepted for `idle_timeout_ns` is *stale*, and is forgotten:
//! - its own next packet resets its window (counter `expired`), as if it were new;
//! - a new client id arriving at a full table takes the entry of the least recently active
//!   client if that one is stale (counter `evicted`); otherwise the new client is refused with
//!   [`Reject::TableFull`] until an entry goes stale or [`Clients::remove`] frees one.
//!
//! Forgetting a client is safe because the protocol forbids resending an input more than one
//! second after it was first sent (`docs/protocol.md`), far less than `idle_timeout_ns`
//! (default 30 s): no input the old window had accepted can still arrive. Windows are
//! deduplication, not security: without authentication anyone can forge a fresh seq.
//!
//! A window only sees the packets given to it: all of one client's packets must meet at the same
//! [`Clients`] (a worker only if the NIC steers every packet of a client to one queue).

use std::collections::HashMap;

use thiserror::Error;

/// Width of the window in sequence numbers: how far behind the newest an input may arrive.
///
/// 1024 inputs is 17 s at 60 inputs per second, far beyond any reordering, in 128 bytes.
pub const WINDOW: u64 = 1024;
const WORDS: usize = (WINDOW / 64) as usize;
const _: () = assert!(WINDOW.is_power_of_two() && WINDOW >= 64);

/// How far above the newest accepted seq a seq may be and still be accepted.
pub const MAX_JUMP: u64 = 1 << 16;

/// Why an input was not delivered.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum Reject {
    /// This seq was accepted before: a resent or network-duplicated input.
    #[error("duplicate: this sequence number was already delivered")]
    Duplicate,
    /// At least [`WINDOW`] below the newest accepted seq.
    #[error("too old: {WINDOW} or more behind the newest sequence number")]
    TooOld,
    /// More than [`MAX_JUMP`] above the newest accepted seq.
    #[error("far future: more than {MAX_JUMP} ahead of the newest sequence number")]
    FarFuture,
    /// A new client while the table is full and no entry is stale.
    #[error("client table full and no client idle long enough to evict")]
    TableFull,
}

impl Reject {
    /// Counter names of the variants, indexed by [`Reject::counter_index`].
    pub const COUNTER_NAMES: [&'static str; 4] = ["duplicate", "too_old", "far_future", "table_full"];

    /// Index of this rejection's counter in [`Reject::COUNTER_NAMES`].
    pub const fn counter_index(&self) -> usize {
        match self {
            Self::Duplicate => 0,
            Self::TooOld => 1,
            Self::FarFuture => 2,
            Self::TableFull => 3,
        }
    }

    /// Stable name of this rejection's counter.
    pub const fn counter_name(&self) -> &'static str {
        Self::COUNTER_NAMES[self.counter_index()]
    }
}

/// The sliding window of one client.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Window {
    newest: Option<u64>,
    /// Bit `seq % WINDOW` is set when `seq` (within `WINDOW` of `newest`) was accepted.
    bits: [u64; WORDS],
}

impl Window {
    /// An empty window: the first seq it sees is accepted.
    pub const fn new() -> Self {
        Self { newest: None, bits: [0; WORDS] }
    }

    /// The highest seq accepted, if any.
    pub fn newest(&self) -> Option<u64> {
        self.newest
    }

    /// Accepts and records `seq`, or says why not.
    pub fn check(&mut self, seq: u64) -> Result<(), Reject> {
        let Some(newest) = self.newest else {
            self.mark(seq);
            self.newest = Some(seq);
            return Ok(());
        };
        if seq > newest {
            let ahead = seq - newest;
            if ahead > MAX_JUMP {
                return Err(Reject::FarFuture);
            }
            self.forget(newest, ahead);
            self.mark(seq);
            self.newest = Some(seq);
            Ok(())
        } else if newest - seq >= WINDOW {
            Err(Reject::TooOld)
        } else if self.is_marked(seq) {
            Err(Reject::Duplicate)
        } else {
            self.mark(seq);
            Ok(())
        }
    }

    fn slot(seq: u64) -> (usize, u64) {
        ((seq / 64 % WORDS as u64) as usize, 1 << (seq % 64))
    }

    fn mark(&mut self, seq: u64) {
        let (word, bit) = Self::slot(seq);
        self.bits[word] |= bit;
    }

    fn is_marked(&self, seq: u64) -> bool {
        let (word, bit) = Self::slot(seq);
        self.bits[word] & bit != 0
    }

    /// Clears the bits of `newest + 1 ..= newest + ahead`: they now stand for those seqs, not for
    /// the ones `WINDOW` below them, which slide out.
    fn forget(&mut self, newest: u64, ahead: u64) {
        if ahead >= WINDOW {
            self.bits = [0; WORDS];
            return;
        }
        let mut seq = newest.wrapping_add(1);
        let mut left = ahead;
        while left > 0 {
            let first = seq % 64;
            let n = (64 - first).min(left);
            let mask = if n == 64 { u64::MAX } else { ((1 << n) - 1) << first };
            self.bits[Self::slot(seq).0] &= !mask;
            // Wraps only past the last bit to clear, when `newest + ahead` is u64::MAX.
            seq = seq.wrapping_add(n);
            left -= n;
        }
    }
}

/// Limits of a [`Clients`] table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientsConfig {
    /// Most clients tracked at once; memory for all of them is allocated up front.
    pub max_clients: usize,
    /// Time without an accepted input after which a client is forgotten. Must be far longer than
    /// the clients' resend horizon (1 s); `u64::MAX` never forgets.
    pub idle_timeout_ns: u64,
}

impl Default for ClientsConfig {
    fn default() -> Self {
        Self { max_clients: 4096, idle_timeout_ns: 30_000_000_000 }
    }
}

const NIL: u32 = u32::MAX;

#[derive(Clone, Debug)]
struct Entry {
    client_id: u32,
    window: Window,
    last_accept_ns: u64,
    /// Neighbours in the activity list, towards the most (`prev`) and least (`next`) recent.
    prev: u32,
    next: u32,
}

impl Entry {
    fn new(client_id: u32, now_ns: u64) -> Self {
        Self { client_id, window: Window::new(), last_accept_ns: now_ns, prev: NIL, next: NIL }
    }
}

/// The windows of all clients, bounded, with the least recently active client first to go.
#[derive(Debug)]
pub struct Clients {
    config: ClientsConfig,
    index: HashMap<u32, u32>,
    entries: Vec<Entry>,
    /// Entries freed by [`Clients::remove`], reused before the table grows.
    free: Vec<u32>,
    /// Most recently active entry.
    head: u32,
    /// Least recently active entry: the eviction candidate.
    tail: u32,
    evicted: u64,
    expired: u64,
}

impl Clients {
    /// Names of the table's event counters, in the order of [`Clients::counters`].
    pub const COUNTER_NAMES: [&'static str; 2] = ["evicted", "expired"];

    /// An empty table. `max_clients` is capped at `u32::MAX - 1`.
    pub fn new(config: ClientsConfig) -> Self {
        let max_clients = config.max_clients.min(NIL as usize);
        Self {
            config: ClientsConfig { max_clients, ..config },
            index: HashMap::with_capacity(max_clients),
            entries: Vec::with_capacity(max_clients),
            free: Vec::with_capacity(max_clients),
            head: NIL,
            tail: NIL,
            evicted: 0,
            expired: 0,
        }
    }

    /// Accepts and records input `seq` of `client_id` at time `now_ns`, or says why not.
    ///
    /// `now_ns` is any monotonic clock, the same for every call; it only measures idleness.
    pub fn check(&mut self, client_id: u32, seq: u64, now_ns: u64) -> Result<(), Reject> {
        self.client(client_id, now_ns)?.check(seq)
    }

    /// `client_id`'s window at time `now_ns`, found (or made) once for every input of a packet:
    /// [`ClientWindow::check`] then does what [`check`](Self::check) does for each, without
    /// hashing the id again. A client that cannot be tracked gets the rejection its inputs
    /// would each get.
    pub fn client(&mut self, client_id: u32, now_ns: u64) -> Result<ClientWindow<'_>, Reject> {
        let slot = match self.index.get(&client_id) {
            Some(&slot) => {
                if self.is_stale(slot, now_ns) {
                    self.entries[slot as usize].window = Window::new();
                    self.expired += 1;
                }
                slot
            }
            None => self.admit(client_id, now_ns)?,
        };
        Ok(ClientWindow { clients: self, slot, now_ns })
    }

    /// Forgets `client_id` (its session ended); returns whether it was tracked.
    pub fn remove(&mut self, client_id: u32) -> bool {
        let Some(slot) = self.index.remove(&client_id) else {
            return false;
        };
        self.unlink(slot);
        self.free.push(slot);
        true
    }

    /// The newest seq accepted from `client_id`, if it is tracked and has one.
    pub fn newest(&self, client_id: u32) -> Option<u64> {
        let &slot = self.index.get(&client_id)?;
        self.entries[slot as usize].window.newest()
    }

    /// Clients tracked.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no client is tracked.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The configuration in force (`max_clients` after capping).
    pub fn config(&self) -> ClientsConfig {
        self.config
    }

    /// `[evicted, expired]`, named by [`Clients::COUNTER_NAMES`]: stale clients whose entry went
    /// to a new client, and stale clients whose own packet reset their window.
    pub fn counters(&self) -> [u64; 2] {
        [self.evicted, self.expired]
    }

    fn is_stale(&self, slot: u32, now_ns: u64) -> bool {
        let idle = now_ns.saturating_sub(self.entries[slot as usize].last_accept_ns);
        idle >= self.config.idle_timeout_ns
    }

    /// Finds an entry for a client not in the table and links it as the most recent.
    fn admit(&mut self, client_id: u32, now_ns: u64) -> Result<u32, Reject> {
        let slot = if let Some(slot) = self.free.pop() {
            self.entries[slot as usize] = Entry::new(client_id, now_ns);
            slot
        } else if self.entries.len() < self.config.max_clients {
            self.entries.push(Entry::new(client_id, now_ns));
            (self.entries.len() - 1) as u32
        } else {
            let slot = self.tail;
            if slot == NIL || !self.is_stale(slot, now_ns) {
                return Err(Reject::TableFull);
            }
            self.unlink(slot);
            let old = self.entries[slot as usize].client_id;
            self.index.remove(&old);
            self.entries[slot as usize] = Entry::new(client_id, now_ns);
            self.evicted += 1;
            slot
        };
        self.index.insert(client_id, slot);
        self.link_front(slot);
        Ok(slot)
    }

    fn move_to_front(&mut self, slot: u32) {
        if self.head != slot {
            self.unlink(slot);
            self.link_front(slot);
        }
    }

    fn link_front(&mut self, slot: u32) {
        let old_head = self.head;
        let entry = &mut self.entries[slot as usize];
        entry.prev = NIL;
        entry.next = old_head;
        if old_head == NIL {
            self.tail = slot;
        } else {
            self.entries[old_head as usize].prev = slot;
        }
        self.head = slot;
    }

    fn unlink(&mut self, slot: u32) {
        let Entry { prev, next, .. } = self.entries[slot as usize];
        if prev == NIL {
            self.head = next;
        } else {
            self.entries[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.entries[next as usize].prev = prev;
        }
        let entry = &mut self.entries[slot as usize];
        entry.prev = NIL;
        entry.next = NIL;
    }
}

/// One client's entry in a [`Clients`] table, from [`Clients::client`].
#[derive(Debug)]
pub struct ClientWindow<'a> {
    clients: &'a mut Clients,
    slot: u32,
    now_ns: u64,
}

impl ClientWindow<'_> {
    /// Accepts and records input `seq`, or says why not.
    pub fn check(&mut self, seq: u64) -> Result<(), Reject> {
        let entry = &mut self.clients.entries[self.slot as usize];
        entry.window.check(seq)?;
        entry.last_accept_ns = self.now_ns;
        self.clients.move_to_front(self.slot);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use tickgate_proto::{Action, InputFrame, PlayerCommand};

    use super::*;
    use crate::{
        input::Timestamp,
        wire::{self, Packet, tests::alloc_count},
    };

    /// The window's specification, written the obvious way: every seq ever accepted.
    #[derive(Default)]
    struct Model {
        accepted: BTreeSet<u64>,
    }

    impl Model {
        fn check(&mut self, seq: u64) -> Result<(), Reject> {
            let Some(&newest) = self.accepted.last() else {
                self.accepted.insert(seq);
                return Ok(());
            };
            if seq > newest && seq - newest > MAX_JUMP {
                Err(Reject::FarFuture)
            } else if seq < newest && newest - seq >= WINDOW {
                Err(Reject::TooOld)
            } else if !self.accepted.insert(seq) {
                Err(Reject::Duplicate)
            } else {
                Ok(())
            }
        }
    }

    fn accepts(w: &mut Window, seqs: impl IntoIterator<Item = u64>) {
        for seq in seqs {
            assert_eq!(w.check(seq), Ok(()), "seq {seq}");
        }
    }

    #[test]
    fn new_duplicate_and_out_of_order() {
        let mut w = Window::new();
        assert_eq!(w.newest(), None);
        accepts(&mut w, [10, 12, 11, 15]);
        assert_eq!(w.newest(), Some(15));
        for seq in [10, 11, 12, 15] {
            assert_eq!(w.check(seq), Err(Reject::Duplicate), "seq {seq}");
        }
        // Below the first seq but within the window: never seen, so new.
        accepts(&mut w, [0, 13, 14]);
        assert_eq!(w.check(0), Err(Reject::Duplicate));
    }

    #[test]
    fn too_old_starts_exactly_window_below_newest() {
        let mut w = Window::new();
        accepts(&mut w, [5000]);
        accepts(&mut w, [5000 - (WINDOW - 1)]);
        assert_eq!(w.check(5000 - (WINDOW - 1)), Err(Reject::Duplicate));
        assert_eq!(w.check(5000 - WINDOW), Err(Reject::TooOld));
        assert_eq!(w.check(0), Err(Reject::TooOld));
    }

    #[test]
    fn sliding_by_exactly_the_width() {
        let mut w = Window::new();
        accepts(&mut w, 0..WINDOW);
        // Every bit is set; slide by exactly WINDOW: every old seq falls out, and every bit must be
        // cleared, or the new seqs that reuse them would be taken for duplicates.
        accepts(&mut w, [2 * WINDOW - 1]);
        assert_eq!(w.check(WINDOW - 1), Err(Reject::TooOld));
        assert_eq!(w.check(0), Err(Reject::TooOld));
        accepts(&mut w, WINDOW..2 * WINDOW - 1);
        assert_eq!(w.check(WINDOW), Err(Reject::Duplicate));
        // One short of the width: the old newest is still inside, and still remembered.
        let mut w = Window::new();
        accepts(&mut w, [100]);
        accepts(&mut w, [100 + WINDOW - 1]);
        assert_eq!(w.check(100), Err(Reject::Duplicate));
        accepts(&mut w, [101]);
        // Slides by a whole word and by an unaligned run.
        accepts(&mut w, [100 + WINDOW + 64]);
        assert_eq!(w.check(101), Err(Reject::TooOld));
        accepts(&mut w, 100 + WINDOW..100 + WINDOW + 64);
    }

    #[test]
    fn far_future_is_bounded_except_for_a_fresh_window() {
        let mut w = Window::new();
        accepts(&mut w, [1_000]);
        assert_eq!(w.check(1_000 + MAX_JUMP + 1), Err(Reject::FarFuture));
        assert_eq!(w.check(u64::MAX), Err(Reject::FarFuture));
        assert_eq!(w.newest(), Some(1_000), "a refused seq must not move the window");
        accepts(&mut w, [1_000 + MAX_JUMP]);
        let mut fresh = Window::new();
        accepts(&mut fresh, [u64::MAX - 3]);
    }

    #[test]
    fn no_wraparound_at_u64_max() {
        let mut w = Window::new();
        accepts(&mut w, [u64::MAX - WINDOW - 3]);
        // The slide clears bits right up to u64::MAX without overflowing.
        accepts(&mut w, [u64::MAX]);
        accepts(&mut w, [u64::MAX - 1, u64::MAX - (WINDOW - 1)]);
        assert_eq!(w.check(u64::MAX), Err(Reject::Duplicate));
        assert_eq!(w.check(u64::MAX - WINDOW), Err(Reject::TooOld));
        // 0 is not the successor of u64::MAX.
        assert_eq!(w.check(0), Err(Reject::TooOld));
        assert_eq!(w.check(WINDOW - 2), Err(Reject::TooOld));
        let mut w = Window::new();
        accepts(&mut w, [u64::MAX - 100]);
        accepts(&mut w, [u64::MAX]);
        accepts(&mut w, u64::MAX - 99..u64::MAX);
    }

    #[test]
    fn window_matches_the_model() {
        let mut rng = fastrand::Rng::with_seed(0xA5A5_5A5A_1234_5678);
        let mut outcomes = [0u64; 5];
        for _ in 0..200 {
            let mut w = Window::new();
            let mut model = Model::default();
            let base = if rng.u64(..4) == 0 { u64::MAX - 3 * MAX_JUMP } else { rng.u64(..1 << 40) };
            let mut cursor = base;
            for _ in 0..2_000 {
                // Mostly near the newest (reorder, resend), sometimes across the window edge or
                // the jump bound.
                let offset = match rng.u64(..10) {
                    0..=5 => rng.u64(..40),
                    6 => WINDOW - 2 + rng.u64(..4),
                    7 => MAX_JUMP - 1 + rng.u64(..3),
                    8 => rng.u64(..3 * WINDOW),
                    _ => rng.u64(..) >> 1,
                };
                let seq = if rng.u64(..2) == 0 {
                    cursor.saturating_add(offset)
                } else {
                    cursor.saturating_sub(offset)
                };
                let expected = model.check(seq);
                assert_eq!(w.check(seq), expected, "seq {seq} after {:?}", model.accepted.last());
                if expected.is_ok() && rng.u64(..2) == 0 {
                    cursor = seq;
                }
                outcomes[expected.map_or_else(|r| r.counter_index() + 1, |()| 0)] += 1;
            }
            assert_eq!(w.newest(), model.accepted.last().copied());
        }
        // Accepted, duplicate, too old and far future must all have been exercised.
        assert!(outcomes[..4].iter().all(|&n| n > 1_000), "{outcomes:?}");
    }

    #[test]
    fn clients_have_separate_windows() {
        let mut clients = Clients::new(ClientsConfig { max_clients: 1000, ..Default::default() });
        assert!(clients.is_empty());
        for client in 0..1000 {
            for seq in 0..3 {
                assert_eq!(clients.check(client, seq, 0), Ok(()));
            }
        }
        assert_eq!(clients.len(), 1000);
        for client in 0..1000 {
            assert_eq!(clients.check(client, 1, 1), Err(Reject::Duplicate));
            assert_eq!(clients.newest(client), Some(2));
        }
        assert_eq!(clients.check(1000, 0, 2), Err(Reject::TableFull));
        assert_eq!(clients.newest(1000), None);
        assert_eq!(clients.counters(), [0, 0]);
    }

    #[test]
    fn full_table_evicts_only_the_least_recent_stale_client() {
        let config = ClientsConfig { max_clients: 3, idle_timeout_ns: 100 };
        let mut clients = Clients::new(config);
        for (client, now) in [(1, 0), (2, 10), (3, 20)] {
            assert_eq!(clients.check(client, 0, now), Ok(()));
        }
        // Client 1 is active again at 60: client 2 is now the least recently active.
        assert_eq!(clients.check(1, 1, 60), Ok(()));
        // Nobody is idle for 100 ns yet.
        assert_eq!(clients.check(4, 0, 109), Err(Reject::TableFull));
        // Rejected inputs are not activity: client 2 sending duplicates still goes stale.
        assert_eq!(clients.check(2, 0, 105), Err(Reject::Duplicate));
        assert_eq!(clients.check(4, 0, 110), Ok(()));
        assert_eq!(clients.counters(), [1, 0]);
        assert_eq!(clients.newest(2), None, "client 2 was evicted");
        assert_eq!(clients.newest(1), Some(1));
        assert_eq!(clients.newest(3), Some(0));
        // Client 2 comes back: client 3 (idle since 20) makes way; client 1 (60) stays.
        assert_eq!(clients.check(2, 7, 120), Ok(()));
        assert_eq!(clients.newest(3), None);
        assert_eq!(clients.check(3, 0, 121), Err(Reject::TableFull));
        assert_eq!(clients.counters(), [2, 0]);
        assert_eq!(clients.len(), 3);
    }

    #[test]
    fn stale_client_restarts_its_window() {
        let mut clients = Clients::new(ClientsConfig { max_clients: 8, idle_timeout_ns: 1_000 });
        assert_eq!(clients.check(5, 100, 0), Ok(()));
        let far = 100 + MAX_JUMP + 1;
        assert_eq!(clients.check(5, far, 999), Err(Reject::FarFuture));
        assert_eq!(clients.check(5, 100, 999), Err(Reject::Duplicate));
        assert_eq!(clients.counters(), [0, 0]);
        // Nothing accepted since 0 (rejections are not activity): stale at 1000, and the jump
        // starts a new session.
        assert_eq!(clients.check(5, far, 1_000), Ok(()));
        assert_eq!(clients.counters(), [0, 1]);
        assert_eq!(clients.newest(5), Some(far));
        assert_eq!(clients.check(5, far, 1_001), Err(Reject::Duplicate));
        assert_eq!(clients.check(5, 100, 1_001), Err(Reject::TooOld));
        // An active client is not reset: accepted at 1001 and 1999, so not stale at 2001.
        assert_eq!(clients.check(5, far + 1, 1_999), Ok(()));
        assert_eq!(clients.check(5, far + 1, 2_001), Err(Reject::Duplicate));
        assert_eq!(clients.counters(), [0, 1]);
    }

    #[test]
    fn removed_clients_free_their_entry() {
        let mut clients = Clients::new(ClientsConfig { max_clients: 2, idle_timeout_ns: u64::MAX });
        assert_eq!(clients.check(1, 0, 0), Ok(()));
        assert_eq!(clients.check(2, 0, 0), Ok(()));
        assert_eq!(clients.check(3, 0, u64::MAX - 1), Err(Reject::TableFull));
        assert!(clients.remove(1));
        assert!(!clients.remove(1));
        assert_eq!(clients.len(), 1);
        assert_eq!(clients.check(3, 0, 0), Ok(()));
        // A removed client comes back with an empty window.
        assert!(clients.remove(2));
        assert_eq!(clients.check(2, 0, 0), Ok(()));
        assert_eq!(clients.check(2, 0, 0), Err(Reject::Duplicate));
        assert_eq!(clients.counters(), [0, 0]);
        let mut none = Clients::new(ClientsConfig { max_clients: 0, ..Default::default() });
        assert_eq!(none.check(1, 0, 0), Err(Reject::TableFull));
    }

    /// Churn through a small table and check the activity list against a model of it.
    #[test]
    fn eviction_order_matches_the_model() {
        let mut rng = fastrand::Rng::with_seed(77);
        let config = ClientsConfig { max_clients: 16, idle_timeout_ns: 50 };
        let mut clients = Clients::new(config);
        // client -> last accept time
        let mut model: HashMap<u32, u64> = HashMap::new();
        let mut now = 0;
        for seq in 0..50_000 {
            now += rng.u64(..3);
            let client = rng.u64(..40) as u32;
            if rng.u64(..20) == 0 {
                assert_eq!(clients.remove(client), model.remove(&client).is_some());
                continue;
            }
            // Always new for a tracked client: only admission and eviction are tested here.
            let oldest = model.values().min().copied();
            let needs_eviction = !model.contains_key(&client) && model.len() == 16;
            let expected_ok = !needs_eviction || oldest.is_some_and(|at| now - at >= 50);
            let got = clients.check(client, seq, now);
            assert_eq!(got.is_ok(), expected_ok, "client {client} at {now}");
            let evicted: Vec<u32> = model.keys().copied().filter(|c| clients.newest(*c).is_none()).collect();
            if got.is_ok() && needs_eviction {
                // One of the least recently active (several may share a timestamp) made way.
                assert_eq!(evicted.len(), 1);
                assert_eq!(model.remove(&evicted[0]), oldest);
            } else {
                assert!(evicted.is_empty(), "{evicted:?}");
            }
            if got.is_ok() {
                model.insert(client, now);
            }
            assert_eq!(clients.len(), model.len());
        }
        assert!(clients.counters()[0] > 100, "{:?}", clients.counters());
    }

    #[test]
    fn checks_allocate_nothing_once_admitted() {
        let mut clients = Clients::new(ClientsConfig { max_clients: 4, idle_timeout_ns: 10 });
        for client in 0..4 {
            assert_eq!(clients.check(client, 0, 0), Ok(()));
        }
        let (results, n) = alloc_count::allocations(|| {
            [
                clients.check(0, 1, 1),
                clients.check(0, 1, 1),
                clients.check(1, MAX_JUMP + 1, 1),
                clients.check(9, 0, 1),
                clients.check(9, 0, 100), // evicts
                clients.check(2, 0, 100), // evicts again, the entry is reused
            ]
        });
        assert_eq!(
            results,
            [Ok(()), Err(Reject::Duplicate), Err(Reject::FarFuture), Err(Reject::TableFull), Ok(()), Ok(())]
        );
        assert_eq!(n, 0);
    }

    #[test]
    fn reject_counter_names() {
        let all = [Reject::Duplicate, Reject::TooOld, Reject::FarFuture, Reject::TableFull];
        for (i, r) in all.iter().enumerate() {
            assert_eq!(r.counter_index(), i);
            assert_eq!(r.counter_name(), Reject::COUNTER_NAMES[i]);
        }
    }

    /// The redundancy scheme end to end: a client sends each input in three consecutive packets
    /// over a channel that loses, duplicates and reorders. Each input must be delivered exactly
    /// once if any packet carrying it arrives, and never otherwise.
    #[test]
    fn redundancy_survives_loss_and_delivers_once() {
        const INPUTS: u64 = 5_000;
        const DEPTH: u64 = 3;
        let mut rng = fastrand::Rng::with_seed(0xFEED);
        let mut sent = Vec::new();
        for newest in 0..INPUTS {
            let first_seq = newest.saturating_sub(DEPTH - 1);
            let commands = (first_seq..=newest)
                .map(|seq| PlayerCommand {
                    command_id: seq as u32,
                    action: Action::Move as i32,
                    client_frame: seq as u32,
                    ..Default::default()
                })
                .collect();
            let mut bytes = Vec::new();
            wire::encode_input(9, newest as u32, &InputFrame { first_seq, commands }, &mut bytes).unwrap();
            sent.push((newest, bytes));
        }
        // 30% loss, 10% duplicated, then neighbours swapped at random (reordering).
        let mut channel = Vec::new();
        for packet in &sent {
            match rng.u64(..10) {
                0..=2 => {}
                3 => channel.extend([packet, packet]),
                _ => channel.push(packet),
            }
        }
        for i in 1..channel.len() {
            if rng.u64(..4) == 0 {
                channel.swap(i - 1, i);
            }
        }
        let arrived: BTreeSet<u64> = channel.iter().map(|(newest, _)| *newest).collect();

        let mut clients = Clients::new(ClientsConfig::default());
        let mut delivered = Vec::new();
        let mut rejected = [0u64; 4];
        for (i, (_, bytes)) in channel.iter().enumerate() {
            let Ok(Packet::Input(packet)) = wire::decode(bytes) else { panic!("valid packet rejected") };
            for command in packet.commands() {
                match clients.check(command.client_id, command.seq, i as u64) {
                    Ok(()) => delivered.push(command.to_input(Timestamp::xdp(i as u64), 0, 0)),
                    Err(r) => rejected[r.counter_index()] += 1,
                }
            }
        }
        let mut seqs: Vec<u64> = delivered.iter().map(|input| input.seq).collect();
        seqs.sort_unstable();
        let unique: BTreeSet<u64> = seqs.iter().copied().collect();
        assert_eq!(unique.len(), seqs.len(), "an input was delivered twice");
        let expected: BTreeSet<u64> =
            (0..INPUTS).filter(|seq| (*seq..seq + DEPTH).any(|p| arrived.contains(&p))).collect();
        assert_eq!(unique, expected);
        assert!(rejected[0] > INPUTS, "resends are removed as duplicates: {rejected:?}");
        assert_eq!(rejected[1..], [0, 0, 0]);
        // Loss of three packets in a row did happen, so the test also shows what it costs.
        assert!(expected.len() < INPUTS as usize && expected.len() > INPUTS as usize * 9 / 10);
        for input in &delivered {
            assert_eq!(u64::from(input.client_frame), input.seq);
        }
    }

    #[test]
    fn a_packet_checked_through_its_client_gets_the_verdicts_of_one_check_per_input() {
        // Packets of 1–4 inputs from 6 clients in a 4-entry table (evictions, a full table),
        // with gaps long enough for clients to go stale, jumps, resends and old seqs.
        let config = ClientsConfig { max_clients: 4, idle_timeout_ns: 50 };
        let (mut each, mut once) = (Clients::new(config), Clients::new(config));
        let mut rng = fastrand::Rng::with_seed(0x2545_f491_4f6c_dd1d);
        let mut next = |n: u64| rng.u64(..n);
        let mut now = 0;
        let mut newest = [0u64; 6];
        let mut verdicts = [0u64; 4];
        for _ in 0..20_000 {
            now += next(8);
            let client = next(6) as usize;
            let first = match next(10) {
                0 => newest[client] + 100 + next(MAX_JUMP), // a jump, maybe too far
                1 => newest[client].saturating_sub(WINDOW + next(10)), // too old
                _ => newest[client].saturating_sub(next(4)) + next(3),
            };
            let seqs: Vec<u64> = (first..first + 1 + next(4)).collect();
            let expected: Vec<_> = seqs.iter().map(|&seq| each.check(client as u32, seq, now)).collect();
            let got: Vec<_> = match once.client(client as u32, now) {
                Ok(mut window) => seqs.iter().map(|&seq| window.check(seq)).collect(),
                Err(reject) => vec![Err(reject); seqs.len()],
            };
            assert_eq!(got, expected, "client {client} seqs {seqs:?} at {now}");
            for reject in expected.iter().filter_map(|v| v.err()) {
                verdicts[reject.counter_index()] += 1;
            }
            newest[client] = newest[client].max(*seqs.last().unwrap_or(&0));
        }
        assert_eq!(once.counters(), each.counters());
        assert!(each.counters().iter().all(|&c| c > 0), "evictions and expiries: {:?}", each.counters());
        assert!(verdicts.iter().all(|&n| n > 0), "every kind of rejection happened: {verdicts:?}");
        for client in 0..6 {
            assert_eq!(once.newest(client), each.newest(client));
        }
    }
}
