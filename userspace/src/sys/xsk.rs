//! Raw AF_XDP socket calls: statistics and options, busy-poll socket options, wakeups, `poll(2)`,
//! and the anonymous mapping that backs a UMEM.
//!
//! Ring set-up, UMEM registration and `bind` happen inside `xdpilone`; everything the rest of
//! tickgate calls on an AF_XDP socket itself is here.

use std::{
    io, mem,
    os::fd::{AsRawFd as _, BorrowedFd},
    ptr::{self, NonNull},
};

// Socket options of the busy-poll family. libc 0.2 does not export them for linux-gnu targets.
// Values from include/uapi/asm-generic/socket.h (Linux 5.11 for the last two); alpha, mips,
// parisc and sparc number them differently (arch/*/include/uapi/asm/socket.h).
#[cfg(any(target_arch = "mips", target_arch = "mips64", target_arch = "sparc", target_arch = "sparc64"))]
compile_error!(
    "tickgate's busy-poll socket option numbers are the asm-generic ones; add this architecture's"
);
/// `SO_BUSY_POLL`: microseconds to busy-poll the device queue in blocking calls.
pub const SO_BUSY_POLL: i32 = 46;
/// `SO_PREFER_BUSY_POLL`: keep the device's interrupts masked while the application busy-polls.
pub const SO_PREFER_BUSY_POLL: i32 = 69;
/// `SO_BUSY_POLL_BUDGET`: packets one busy-poll round may process.
pub const SO_BUSY_POLL_BUDGET: i32 = 70;

/// The kernel's `struct xdp_statistics` (include/uapi/linux/if_xdp.h).
///
/// Kernels before 5.9 fill only the first three fields; [`statistics`] reports how many it got.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawXdpStatistics {
    /// Dropped for reasons other than an invalid descriptor (e.g. RX ring full).
    pub rx_dropped: u64,
    /// Dropped because of an invalid descriptor.
    pub rx_invalid_descs: u64,
    /// Dropped because of an invalid TX descriptor.
    pub tx_invalid_descs: u64,
    /// Dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Times the fill ring was empty when the kernel needed a frame.
    pub rx_fill_ring_empty_descs: u64,
    /// Times the TX ring was empty when the kernel looked for work.
    pub tx_ring_empty_descs: u64,
}

const STATISTICS_V1_LEN: usize = 3 * mem::size_of::<u64>();

/// `getsockopt(SOL_XDP, XDP_STATISTICS)`. The flag says whether the kernel filled the three
/// fields added in Linux 5.9.
pub fn statistics(fd: BorrowedFd<'_>) -> io::Result<(RawXdpStatistics, bool)> {
    let mut stats = RawXdpStatistics::default();
    let mut len = mem::size_of::<RawXdpStatistics>() as libc::socklen_t;
    // SAFETY: `stats` is a live, writable repr(C) struct of `len` bytes and `len` is a live
    // socklen_t; the kernel writes at most `len` bytes and stores the length it wrote.
    let ret = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            libc::XDP_STATISTICS,
            (&raw mut stats).cast(),
            &mut len,
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((stats, len as usize > STATISTICS_V1_LEN))
}

/// `getsockopt(SOL_XDP, XDP_OPTIONS)`: the `XDP_OPTIONS_*` flags of a bound socket.
///
/// # Minimum kernel version
/// 5.3 (commit 2640d3c81234, "xsk: add getsockopt XDP_OPTIONS").
pub fn options(fd: BorrowedFd<'_>) -> io::Result<u32> {
    let mut opts = libc::xdp_options { flags: 0 };
    let mut len = mem::size_of::<libc::xdp_options>() as libc::socklen_t;
    // SAFETY: `opts` is a live, writable xdp_options of `len` bytes; `len` is a live socklen_t.
    let ret = unsafe {
        libc::getsockopt(fd.as_raw_fd(), libc::SOL_XDP, libc::XDP_OPTIONS, (&raw mut opts).cast(), &mut len)
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(opts.flags)
}

/// `setsockopt(SOL_SOCKET, name, value)` for an `int` option.
pub fn set_socket_int(fd: BorrowedFd<'_>, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: `value` is a live int and the length passed is its size.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            (&raw const value).cast(),
            mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if ret != 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// `recvfrom(fd, NULL, 0, MSG_DONTWAIT)`: on an AF_XDP socket, runs one busy-poll round and
/// wakes the driver to take frames from the fill ring (net/xdp/xsk.c `xsk_recvmsg`).
pub fn wake_rx(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: a zero-length receive with null buffer and address pointers, which the kernel
    // never dereferences for AF_XDP.
    let ret = unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            ptr::null_mut(),
            0,
            libc::MSG_DONTWAIT,
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// `sendto(fd, NULL, 0, MSG_DONTWAIT)`: on an AF_XDP socket, makes the kernel transmit what
/// the TX ring holds (net/xdp/xsk.c `xsk_sendmsg`).
pub fn wake_tx(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: a zero-length send with null buffer and address, which the kernel never
    // dereferences for AF_XDP.
    let ret = unsafe { libc::sendto(fd.as_raw_fd(), ptr::null(), 0, libc::MSG_DONTWAIT, ptr::null(), 0) };
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// The size of a memory page.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
}

/// `mmap(2)` of `len` bytes of private, zeroed, page-aligned anonymous memory.
pub fn map_anonymous(len: usize) -> io::Result<NonNull<u8>> {
    // SAFETY: a fresh anonymous mapping at an address the kernel picks; no existing memory is
    // affected.
    let addr = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            -1,
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(addr.cast()).ok_or_else(|| io::Error::from(io::ErrorKind::AddrNotAvailable))
}

/// `munmap(2)`.
///
/// # Safety
/// `addr` and `len` must describe a mapping returned by [`map_anonymous`] or
/// [`map_shared`](super::map_shared) that nothing uses any more: no reference into it may
/// outlive this call.
pub unsafe fn unmap(addr: NonNull<u8>, len: usize) -> io::Result<()> {
    // SAFETY: the caller guarantees the range is a mapping of ours that is no longer used.
    if unsafe { libc::munmap(addr.as_ptr().cast(), len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
