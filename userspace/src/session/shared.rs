//! A value read by every worker on every packet and written rarely: the session server.
//!
//! A `RwLock` would do, but its reader count is one word that every reader writes twice per
//! read, so on a many-core host every worker's packets bounce that cache line between cores
//! (`cargo bench -p tickgate --bench sessions`: two threads sharing one lock did 0.62–0.67 of two
//! unshared ones in a third of the runs). [`ReadMostly`] gives each reader slot a lock of its own
//! on lines of its own: a reader takes its slot's lock shared, a writer takes every slot's lock
//! exclusively, in slot order. Readers of different slots write nothing in common.

use std::{
    cell::UnsafeCell,
    ops::{Deref, DerefMut},
    sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard},
};

/// One slot's lock, alone on its cache lines (128 bytes: adjacent-line prefetchers pair them).
#[repr(align(128))]
struct Slot(RwLock<()>);

/// A `T` behind one read lock per reader slot and a write lock over all of them.
pub struct ReadMostly<T> {
    slots: Box<[Slot]>,
    value: UnsafeCell<T>,
}

impl<T> std::fmt::Debug for ReadMostly<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadMostly").field("slots", &self.slots.len()).finish_non_exhaustive()
    }
}

// SAFETY: the value is reached only through `Read` (shared references, while a slot's lock is
// held shared, so no `Write` exists) and `Write` (one exclusive reference, while every slot's
// lock is held exclusively, so nothing else exists). That is `RwLock<T>`'s contract, so the same
// bounds: readers on several threads need `T: Sync`, a writer on any thread needs `T: Send`.
unsafe impl<T: Send + Sync> Sync for ReadMostly<T> {}

impl<T> ReadMostly<T> {
    /// `value` behind `slots` reader slots (at least one).
    pub fn new(value: T, slots: usize) -> Self {
        Self {
            slots: (0..slots.max(1)).map(|_| Slot(RwLock::new(()))).collect(),
            value: UnsafeCell::new(value),
        }
    }

    /// Shared access through reader slot `slot` (one past the last reads through the first: a
    /// compare on the per-packet path, where a modulo would be a division).
    /// Several threads may read through one slot; each worker using its own is what keeps their
    /// reads apart. A panic while a lock was held poisons nothing here: the value is only ever
    /// changed through `Write`, whose holder's panic leaves it as the panic found it, as a
    /// `RwLock`'s would.
    pub fn read(&self, slot: usize) -> Read<'_, T> {
        let slot = if slot < self.slots.len() { slot } else { 0 };
        let guard = self.slots[slot].0.read().unwrap_or_else(PoisonError::into_inner);
        // SAFETY: the slot's lock is held shared until `guard` drops with the `Read`, so no
        // `Write`, which needs every slot exclusively, exists meanwhile.
        let value = unsafe { &*self.value.get() };
        Read { _guard: guard, value }
    }

    /// Exclusive access: every slot's lock, taken in slot order (so two writers never hold
    /// parts of the set each waits for). The caller must hold no `Read` of this value.
    pub fn write(&self) -> Write<'_, T> {
        let guards: Vec<_> =
            self.slots.iter().map(|s| s.0.write().unwrap_or_else(PoisonError::into_inner)).collect();
        // SAFETY: every slot's lock is held exclusively until `guards` drop with the `Write`, so
        // no `Read` and no other `Write` exists meanwhile.
        let value = unsafe { &mut *self.value.get() };
        Write { _guards: guards, value }
    }
}

/// Shared access to a [`ReadMostly`] value.
pub struct Read<'a, T> {
    _guard: RwLockReadGuard<'a, ()>,
    value: &'a T,
}

impl<T: std::fmt::Debug> std::fmt::Debug for Read<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.value.fmt(f)
    }
}

impl<T> Deref for Read<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.value
    }
}

/// Exclusive access to a [`ReadMostly`] value.
pub struct Write<'a, T> {
    _guards: Vec<RwLockWriteGuard<'a, ()>>,
    value: &'a mut T,
}

impl<T: std::fmt::Debug> std::fmt::Debug for Write<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.value.fmt(f)
    }
}

impl<T> Deref for Write<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.value
    }
}

impl<T> DerefMut for Write<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Readers on every slot (and two on one) never see a writer's change half made: the writer
    /// keeps two halves equal, changing them one after the other.
    #[test]
    fn readers_never_see_a_write_half_made() {
        let shared = ReadMostly::new((0u64, 0u64), 3);
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            for slot in [0, 1, 2, 2] {
                let (shared, done) = (&shared, &done);
                scope.spawn(move || {
                    let mut seen = 0;
                    while !done.load(std::sync::atomic::Ordering::Relaxed) {
                        let r = shared.read(slot);
                        assert_eq!(r.0, r.1, "a write seen half made");
                        assert!(r.0 >= seen, "a write seen undone");
                        seen = r.0;
                    }
                });
            }
            for _ in 0..20_000 {
                let mut w = shared.write();
                w.0 += 1;
                // A window a reader without the lock would fall into.
                for _ in 0..200 {
                    std::hint::black_box(&mut *w);
                    std::hint::spin_loop();
                }
                w.1 += 1;
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        let r = shared.read(7);
        assert_eq!(*r, (20_000, 20_000));
    }

    #[test]
    fn slots_are_on_lines_of_their_own() {
        assert_eq!(std::mem::align_of::<Slot>(), 128);
        assert!(std::mem::size_of::<Slot>() >= 128);
        assert_eq!(ReadMostly::new((), 0).slots.len(), 1, "at least one slot");
    }
}
