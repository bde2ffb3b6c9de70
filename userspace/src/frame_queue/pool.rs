//! Frame buffers the game gives back (`FrameQueue::recycle`, `Pipeline::recycle`) for the
//! sequencer's next frames. A tick's inputs go into a `Vec<Input>` that becomes the frame; a fresh
//! one faults in every page it fills (about 2.5 µs a page on the lab VM, a third of the
//! sequencer's time per input at high rates), a returned one has its pages mapped already.
//!
//! Bounded: at most [`POOL_BUFFERS`] buffers are kept, each no larger than a frame the game
//! already held; a buffer beyond that is freed. Recycling is optional: a game that drops its
//! frames gets fresh buffers, as before.

use std::sync::{Arc, Mutex};

use crate::input::Input;

/// Buffers kept at most.
pub const POOL_BUFFERS: usize = 4;

/// A shared pool of emptied frame buffers (cheap to clone: one pool per pipeline).
#[derive(Clone, Debug, Default)]
pub struct FramePool(Arc<Mutex<Vec<Vec<Input>>>>);

impl FramePool {
    /// Gives `inputs` back, emptied (its inputs, and their payloads, are dropped here).
    pub fn put(&self, mut inputs: Vec<Input>) {
        if inputs.capacity() == 0 {
            return;
        }
        inputs.clear();
        if let Ok(mut pool) = self.0.lock()
            && pool.len() < POOL_BUFFERS
        {
            pool.push(inputs);
        }
    }

    /// An emptied buffer, if one was given back.
    pub(super) fn take(&self) -> Option<Vec<Input>> {
        self.0.lock().ok()?.pop()
    }

    /// Buffers held now.
    pub fn len(&self) -> usize {
        self.0.lock().map_or(0, |p| p.len())
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::{Clock, InputKind, Timestamp};

    fn input() -> Input {
        Input {
            kind: InputKind::Command,
            rx: Timestamp { ns: 1, clock: Clock::Xdp },
            queue: 0,
            client_id: 1,
            match_id: 0,
            seq: 1,
            client_frame: 0,
            payload: [1, 2, 3].into(),
        }
    }

    #[test]
    fn buffers_come_back_empty_with_their_capacity_and_the_pool_is_bounded() {
        let pool = FramePool::default();
        assert!(pool.take().is_none());
        for _ in 0..POOL_BUFFERS + 3 {
            let mut v = Vec::with_capacity(100);
            v.push(input());
            pool.put(v);
        }
        assert_eq!(pool.len(), POOL_BUFFERS, "bounded");
        let v = pool.take().expect("a buffer");
        assert!(v.is_empty());
        assert!(v.capacity() >= 100);
        pool.put(Vec::new());
        assert_eq!(pool.len(), POOL_BUFFERS - 1, "an unallocated buffer is not kept");
    }
}
