//! The XDP program's count of the packets it steered on each RX queue (`RX_SEQ`), mapped into
//! the process and only ever loaded from: a worker reads its queue's count before it reads its
//! ring, and once it has read the packet of that number (`RxMeta::rx_seq`) it holds every packet the
//! program stamped before it looked (`docs/architecture.md`, "A caught-up worker's watermark").

use std::{
    io,
    os::fd::BorrowedFd,
    ptr::NonNull,
    sync::atomic::{AtomicU64, Ordering},
};

use tickgate_common::meta::RX_QUEUES;

use crate::sys;

/// A mapping of `RX_SEQ`. It is mapped writable because an `AtomicU64` may only point at writable
/// memory; tickgate never stores through it.
#[derive(Debug)]
pub struct QueueCounts {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is only loaded from, atomically, and lives until `drop`.
unsafe impl Send for QueueCounts {}
// SAFETY: as above: shared reads only.
unsafe impl Sync for QueueCounts {}

impl QueueCounts {
    /// Maps the array map `fd` (created `BPF_F_MMAPABLE` with [`RX_QUEUES`] `u64`s).
    pub(super) fn map(fd: BorrowedFd<'_>) -> io::Result<Self> {
        let page = sys::xsk::page_size();
        let len = (RX_QUEUES as usize * size_of::<u64>()).div_ceil(page) * page;
        let ptr = sys::map_shared(fd, len, true)?;
        Ok(Self { ptr, len })
    }

    /// Packets the program steered on `queue` so far; `None` past the array.
    pub fn get(&self, queue: u32) -> Option<u64> {
        if queue >= RX_QUEUES {
            return None;
        }
        // SAFETY: element `queue` lies within the mapping (checked above; the mapping holds
        // `RX_QUEUES` 8-byte, 8-aligned elements from its page-aligned start) and stays
        // mapped (readable and writable, as `from_ptr` requires) while `self` lives; the program
        // writes it whole with 8-byte stores, and nothing here writes it.
        let count = unsafe { AtomicU64::from_ptr(self.ptr.as_ptr().cast::<u64>().add(queue as usize)) };
        Some(count.load(Ordering::Acquire))
    }
}

impl Drop for QueueCounts {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours; `get` borrows nothing past its return.
        if let Err(e) = unsafe { sys::xsk::unmap(self.ptr, self.len) } {
            log::warn!("munmap of the XDP program's queue counts failed: {e}");
        }
    }
}
