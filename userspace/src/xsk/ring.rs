//! The four AF_XDP rings, one type per role: userspace produces into [`Fill`] and [`Tx`] and
//! consumes from [`Rx`] and [`Completion`], and no type offers the other direction.
//!
//! They wrap xdpilone's ring handles. xdpilone refreshes its cached view of the kernel's index
//! only when the cache says the ring is empty (consumers) or full (producers), so one
//! reservation can come back short; the producers here retry once the cache is exhausted.

use xdpilone::{CompletionQueue, FillQueue, RingRx, RingTx, xdp::XdpDesc};

/// The fill ring: frames userspace hands to the kernel to receive into.
pub(crate) struct Fill(FillQueue);

/// The RX ring: descriptors of received packets.
pub(crate) struct Rx(RingRx);

/// The TX ring: descriptors of packets to send.
pub(crate) struct Tx(RingTx);

/// The completion ring: frames the kernel has finished sending.
pub(crate) struct Completion(CompletionQueue);

/// Clamps a slice length to a ring request.
fn request(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// The producer loop shared by [`Fill`] and [`Tx`] (their xdpilone writers are distinct types):
/// reserve, insert exactly as many items as were granted, commit, and retry while the kernel's
/// index moved — a reservation can come back short when xdpilone's cached index is stale.
macro_rules! produce_all {
    ($items:expr, |$n:ident| $reserve:expr) => {{
        let items = $items;
        let mut done = 0;
        while done < items.len() {
            let rest = &items[done..];
            let $n = request(rest.len());
            let mut writer = $reserve;
            let n = (writer.capacity() as usize).min(rest.len());
            if n == 0 {
                break;
            }
            // Exactly `n <= capacity` items: the first `capacity` inserts are guaranteed to
            // land, and no item is pulled from the iterator without being written.
            let inserted = writer.insert(rest[..n].iter().copied()) as usize;
            writer.commit();
            done += inserted;
            if inserted == 0 {
                break;
            }
        }
        done
    }};
}

/// The consumer loop shared by [`Rx`] and [`Completion`]: read up to `max` entries, hand each
/// to `f`, release the slots; returns how many were read.
macro_rules! consume_up_to {
    ($max:expr, $f:expr, |$m:ident| $reserve:expr) => {{
        let ($m, mut f) = ($max, $f);
        if $m == 0 {
            return 0;
        }
        let mut reader = $reserve;
        let mut n = 0;
        while let Some(entry) = reader.read() {
            f(entry);
            n += 1;
        }
        reader.release();
        n
    }};
}

impl Fill {
    pub(crate) fn new(queue: FillQueue) -> Self {
        Self(queue)
    }

    /// Puts frame addresses from the front of `frames` into the ring until it is full or
    /// `frames` runs out; returns how many went in.
    pub(crate) fn produce(&mut self, frames: &[u64]) -> usize {
        produce_all!(frames, |n| self.0.fill(n))
    }

    /// Whether the driver waits for a wakeup before it takes more frames
    /// (`XDP_RING_NEED_WAKEUP`, with `XDP_USE_NEED_WAKEUP` bound).
    pub(crate) fn needs_wakeup(&self) -> bool {
        self.0.needs_wakeup()
    }
}

impl Rx {
    pub(crate) fn new(ring: RingRx) -> Self {
        Self(ring)
    }

    /// Takes up to `max` descriptors, hands each to `f`, then releases the ring slots; returns
    /// how many were taken. The descriptors are copies: their frames stay the caller's business.
    pub(crate) fn consume(&mut self, max: u32, f: impl FnMut(XdpDesc)) -> u32 {
        consume_up_to!(max, f, |m| self.0.receive(m))
    }

    /// Descriptors the kernel has published and nobody has taken yet (advisory: a relaxed read
    /// of both indices).
    pub(crate) fn pending(&self) -> u32 {
        self.0.available()
    }
}

impl Tx {
    pub(crate) fn new(ring: RingTx) -> Self {
        Self(ring)
    }

    /// Puts descriptors from the front of `descs` into the ring until it is full or `descs`
    /// runs out; returns how many went in.
    pub(crate) fn produce(&mut self, descs: &[XdpDesc]) -> usize {
        produce_all!(descs, |n| self.0.transmit(n))
    }

    /// Whether the kernel waits for a `sendto` before it transmits (always so in copy mode).
    pub(crate) fn needs_wakeup(&self) -> bool {
        self.0.needs_wakeup()
    }
}

impl Completion {
    pub(crate) fn new(queue: CompletionQueue) -> Self {
        Self(queue)
    }

    /// Takes up to `max` completed frame addresses, hands each to `f`, then releases the ring
    /// slots; returns how many were taken.
    pub(crate) fn consume(&mut self, max: u32, f: impl FnMut(u64)) -> u32 {
        consume_up_to!(max, f, |m| self.0.complete(m))
    }
}
