//! The UMEM: packet memory shared with the kernel, its frame geometry, the descriptor checks
//! that come before any frame is touched, and who owns each frame at any moment.

use std::{io, ptr::NonNull};

use crate::sys;

/// Anonymous, page-aligned memory that backs a UMEM; unmapped on drop.
///
/// The kernel writes into it, so it is never borrowed as a whole: only frames the ring protocol
/// hands to userspace are turned into slices, by [`UmemArea::frame_bytes`].
#[derive(Debug)]
pub(crate) struct UmemArea {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the area is plain memory owned by this value; nothing in it is tied to a thread.
unsafe impl Send for UmemArea {}

impl UmemArea {
    /// Maps `len` zeroed bytes.
    pub(crate) fn new(len: usize) -> io::Result<Self> {
        let base = sys::xsk::map_anonymous(len)?;
        Ok(Self { base, len })
    }

    /// The whole area, for registering it with the kernel.
    pub(crate) fn as_raw(&self) -> NonNull<[u8]> {
        NonNull::slice_from_raw_parts(self.base, self.len)
    }

    /// The bytes of a checked descriptor.
    ///
    /// # Safety
    /// `range` must come from [`FrameLayout::check`] for the layout this area was sized for, and
    /// the frame must be owned by userspace (taken from the RX ring and not yet given back) for
    /// as long as the returned slice lives, so the kernel does not write it meanwhile.
    pub(crate) unsafe fn frame_bytes(&self, range: CheckedRange) -> &[u8] {
        debug_assert!(range.end() <= self.len as u64);
        // SAFETY: `range` lies inside the area (checked against a layout no larger than it) and
        // the caller guarantees that nobody writes it while the slice lives.
        unsafe { std::slice::from_raw_parts(self.base.as_ptr().add(range.addr as usize), range.len as usize) }
    }

    /// The `N` bytes right before a checked descriptor (where XDP metadata sits), if they lie in
    /// the same frame.
    ///
    /// # Safety
    /// As for [`UmemArea::frame_bytes`].
    pub(crate) unsafe fn bytes_before<const N: usize>(&self, range: CheckedRange) -> Option<[u8; N]> {
        if (range.offset_in_frame as usize) < N {
            return None;
        }
        let start = range.addr as usize - N;
        // SAFETY: `start..start + N` lies inside the descriptor's frame (just checked), which is
        // inside the area and owned by userspace per the caller; the read is byte-wise.
        Some(unsafe { self.base.as_ptr().add(start).cast::<[u8; N]>().read() })
    }

    /// Copies `bytes` to the start of TX frame `frame`.
    ///
    /// # Safety
    /// `frame` must be a frame of the layout this area was sized for, `bytes` no longer than a
    /// frame, and the frame owned by userspace (free for TX, not in the TX ring).
    pub(crate) unsafe fn write_frame(&self, layout: &FrameLayout, frame: u32, bytes: &[u8]) {
        debug_assert!(bytes.len() <= layout.frame_size as usize && frame < layout.frame_count);
        let start = layout.frame_addr(frame) as usize;
        // SAFETY: the frame lies inside the area, `bytes` fits it, and the caller guarantees the
        // kernel does not use this frame now; `bytes` is ordinary memory, so they cannot overlap.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.base.as_ptr().add(start), bytes.len()) };
    }
}

impl Drop for UmemArea {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are our own mapping; every slice into it borrowed `self`, so none
        // is alive, and `XskSocket` drops this area only after its sockets are closed.
        if let Err(e) = unsafe { sys::xsk::unmap(self.base, self.len) } {
            log::warn!("munmap of the UMEM failed: {e}");
        }
    }
}

/// How the UMEM is cut into frames (aligned chunk mode: frame `i` starts at `i * frame_size`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameLayout {
    frame_size: u32,
    frame_count: u32,
}

/// A descriptor that passed [`FrameLayout::check`]: it lies in one frame of the UMEM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CheckedRange {
    /// Offset of the first byte in the UMEM.
    pub(crate) addr: u64,
    /// Length in bytes.
    pub(crate) len: u32,
    /// Index of the frame holding it.
    pub(crate) frame: u32,
    /// Offset of the first byte inside its frame.
    pub(crate) offset_in_frame: u32,
}

impl CheckedRange {
    fn end(&self) -> u64 {
        self.addr + u64::from(self.len)
    }
}

/// Why a descriptor from the kernel was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DescError {
    /// The address lies past the end of the UMEM.
    OutOfBounds,
    /// The bytes run past the end of the frame (and maybe the UMEM), or `addr + len` overflows.
    CrossesFrame {
        /// The frame the address falls in; it is still a real frame of ours.
        frame: u32,
    },
}

impl FrameLayout {
    /// A layout of `frame_count` frames of `frame_size` bytes; `None` unless `frame_size` is a
    /// non-zero power of two.
    pub(crate) fn new(frame_size: u32, frame_count: u32) -> Option<Self> {
        frame_size.is_power_of_two().then_some(Self { frame_size, frame_count })
    }

    /// Bytes of UMEM the layout covers.
    pub(crate) fn len(&self) -> u64 {
        u64::from(self.frame_size) * u64::from(self.frame_count)
    }

    /// Bytes per frame.
    pub(crate) fn frame_size(&self) -> u32 {
        self.frame_size
    }

    /// UMEM offset of the first byte of frame `frame`.
    pub(crate) fn frame_addr(&self, frame: u32) -> u64 {
        u64::from(frame) * u64::from(self.frame_size)
    }

    /// The frame base of any address inside a frame: what goes back to the fill ring. In copy
    /// mode descriptors point past the kernel's headroom and the metadata, never at the base.
    pub(crate) fn frame_base(&self, addr: u64) -> u64 {
        addr & !(u64::from(self.frame_size) - 1)
    }

    /// The frame an address falls in, if it is inside the UMEM.
    pub(crate) fn frame_of(&self, addr: u64) -> Option<u32> {
        if addr >= self.len() {
            return None;
        }
        u32::try_from(addr / u64::from(self.frame_size)).ok()
    }

    /// Checks a descriptor from the kernel: `addr..addr + len` must lie inside one frame of the
    /// UMEM. Nothing may read or write a frame before this passed.
    pub(crate) fn check(&self, addr: u64, len: u32) -> Result<CheckedRange, DescError> {
        let frame = self.frame_of(addr).ok_or(DescError::OutOfBounds)?;
        let offset_in_frame = (addr - self.frame_base(addr)) as u32;
        let fits = offset_in_frame.checked_add(len).is_some_and(|end| end <= self.frame_size);
        if !fits {
            return Err(DescError::CrossesFrame { frame });
        }
        Ok(CheckedRange { addr, len, frame, offset_in_frame })
    }
}

/// Who holds a frame. Every transition is checked, so a descriptor the kernel hands back twice,
/// or one that names a frame the kernel does not have, is refused instead of aliasing a frame
/// that is in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    /// RX frame in the fill ring, the kernel or the RX ring.
    Kernel,
    /// RX frame taken from the RX ring; in the caller's hands or waiting to go back to the fill ring.
    User,
    /// TX frame, free.
    TxFree,
    /// TX frame in the TX ring, the kernel or the completion ring.
    TxKernel,
}

/// Owner of every frame of a UMEM.
#[derive(Debug)]
pub(crate) struct Frames {
    owners: Vec<Owner>,
}

impl Frames {
    /// `rx_frames` RX frames, all userspace's (about to go in the fill ring), followed by
    /// `tx_frames` free TX frames.
    pub(crate) fn new(rx_frames: u32, tx_frames: u32) -> Self {
        let mut owners = vec![Owner::User; rx_frames as usize];
        owners.resize(rx_frames as usize + tx_frames as usize, Owner::TxFree);
        Self { owners }
    }

    /// The owner of `frame`, `None` past the end.
    #[cfg(test)]
    pub(crate) fn owner(&self, frame: u32) -> Option<Owner> {
        self.owners.get(frame as usize).copied()
    }

    /// Moves `frame` from `from` to `to`; `false` (and no change) if it was not owned by `from`.
    pub(crate) fn transfer(&mut self, frame: u32, from: Owner, to: Owner) -> bool {
        match self.owners.get_mut(frame as usize) {
            Some(owner) if *owner == from => {
                *owner = to;
                true
            }
            _ => false,
        }
    }

    /// Frames owned by `owner`.
    #[cfg(test)]
    pub(crate) fn count(&self, owner: Owner) -> usize {
        self.owners.iter().filter(|&&o| o == owner).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: u32 = 2048;

    fn layout() -> FrameLayout {
        FrameLayout::new(SIZE, 4).expect("power of two")
    }

    #[test]
    fn descriptors_inside_one_frame_pass() {
        let l = layout();
        // A whole frame, the copy-mode shape (headroom + metadata in front), the last byte.
        assert_eq!(l.check(0, SIZE), Ok(CheckedRange { addr: 0, len: SIZE, frame: 0, offset_in_frame: 0 }));
        assert_eq!(
            l.check(2048 + 256, 100),
            Ok(CheckedRange { addr: 2304, len: 100, frame: 1, offset_in_frame: 256 })
        );
        assert_eq!(l.check(4 * 2048 - 1, 1).map(|r| r.frame), Ok(3));
        assert_eq!(l.check(3 * 2048 + 256, 0).map(|r| r.len), Ok(0));
    }

    #[test]
    fn descriptors_outside_the_umem_are_refused() {
        let l = layout();
        for addr in [4 * 2048, 4 * 2048 + 1, 1 << 40, u64::MAX - 10, u64::MAX] {
            assert_eq!(l.check(addr, 1), Err(DescError::OutOfBounds), "{addr:#x}");
            assert_eq!(l.frame_of(addr), None);
        }
    }

    #[test]
    fn descriptors_crossing_a_frame_or_overflowing_are_refused() {
        let l = layout();
        // One byte too long, crossing into the next frame.
        assert_eq!(l.check(0, SIZE + 1), Err(DescError::CrossesFrame { frame: 0 }));
        assert_eq!(l.check(2048 + 2000, 49), Err(DescError::CrossesFrame { frame: 1 }));
        // The last frame running past the end of the UMEM.
        assert_eq!(l.check(3 * 2048 + 10, SIZE), Err(DescError::CrossesFrame { frame: 3 }));
        // Lengths that would overflow `addr + len` or `offset + len`.
        assert_eq!(l.check(2047, u32::MAX), Err(DescError::CrossesFrame { frame: 0 }));
        assert_eq!(l.check(3 * 2048 + 2047, u32::MAX), Err(DescError::CrossesFrame { frame: 3 }));
    }

    #[test]
    fn frame_base_strips_headroom_and_offset() {
        let l = layout();
        assert_eq!(l.frame_base(0), 0);
        assert_eq!(l.frame_base(256), 0);
        assert_eq!(l.frame_base(2047), 0);
        assert_eq!(l.frame_base(2048), 2048);
        assert_eq!(l.frame_base(3 * 2048 + 256 + 24), 3 * 2048);
        let l4k = FrameLayout::new(4096, 8).expect("power of two");
        assert_eq!(l4k.frame_base(5 * 4096 + 4095), 5 * 4096);
        assert_eq!(l4k.frame_addr(5), 5 * 4096);
        assert_eq!(FrameLayout::new(3000, 4), None);
        assert_eq!(FrameLayout::new(0, 4), None);
    }

    #[test]
    fn frame_count_at_u32_max_does_not_overflow() {
        let l = FrameLayout::new(4096, u32::MAX).expect("power of two");
        let last = u64::from(u32::MAX - 1) * 4096;
        assert_eq!(l.check(last + 100, 100).map(|r| r.frame), Ok(u32::MAX - 1));
        assert_eq!(l.check(l.len(), 1), Err(DescError::OutOfBounds));
    }

    #[test]
    fn ownership_refuses_duplicates_and_foreign_frames() {
        let mut f = Frames::new(3, 2);
        assert_eq!((f.count(Owner::User), f.count(Owner::TxFree)), (3, 2));
        // Into the fill ring: every RX frame to the kernel.
        for frame in 0..3 {
            assert!(f.transfer(frame, Owner::User, Owner::Kernel));
        }
        assert!(f.transfer(1, Owner::Kernel, Owner::User));
        // The kernel hands frame 1 back a second time: refused.
        assert!(!f.transfer(1, Owner::Kernel, Owner::User));
        // A TX frame coming back on the RX ring: refused.
        assert!(!f.transfer(3, Owner::Kernel, Owner::User));
        // Past the end.
        assert!(!f.transfer(5, Owner::Kernel, Owner::User));
        assert_eq!(f.owner(5), None);
        assert!(f.transfer(1, Owner::User, Owner::Kernel));
        assert!(f.transfer(4, Owner::TxFree, Owner::TxKernel));
        assert!(!f.transfer(4, Owner::TxFree, Owner::TxKernel));
        assert_eq!(f.owner(4), Some(Owner::TxKernel));
    }

    #[test]
    fn area_reads_metadata_only_inside_the_frame() {
        let l = layout();
        let area = UmemArea::new(l.len() as usize).expect("anonymous mmap");
        let meta_at = 2048 + 256;
        // SAFETY: nothing else uses this test-owned area; frame 1 is written in bounds.
        unsafe { area.write_frame(&l, 1, &[0u8; 256 + 8]) };
        let bytes: Vec<u8> = (0..8).collect();
        // SAFETY: as above; 8 bytes at offset 256 of frame 1 lie inside it.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), area.base.as_ptr().add(meta_at), 8) };
        let r = l.check(meta_at as u64 + 8, 16).expect("in bounds");
        // SAFETY: the test owns every frame of the area.
        let before: Option<[u8; 8]> = unsafe { area.bytes_before(r) };
        assert_eq!(before, Some([0, 1, 2, 3, 4, 5, 6, 7]));
        // At the start of a frame there is nothing before it in the same frame.
        let r0 = l.check(2048, 16).expect("in bounds");
        // SAFETY: as above.
        assert_eq!(unsafe { area.bytes_before::<8>(r0) }, None);
        // SAFETY: as above.
        assert_eq!(unsafe { area.frame_bytes(r0) }.len(), 16);
    }
}
