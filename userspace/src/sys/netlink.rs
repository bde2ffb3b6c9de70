//! Raw `NETLINK_GENERIC` socket calls: open, bind, send to the kernel, receive one datagram.
//!
//! Message framing and parsing live in `crate::steer::features`; this module only moves bytes.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Opens a generic-netlink socket: `socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC)`.
pub fn socket() -> io::Result<OwnedFd> {
    // SAFETY: `socket` takes only integer arguments and touches no memory of ours.
    let fd =
        unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_GENERIC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by a successful `socket` call, so it is open and nothing
    // else owns it; the `OwnedFd` becomes its only owner and closes it on drop.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The kernel's netlink address (port id 0), or our own with the port left for the kernel to pick.
fn kernel_addr() -> libc::sockaddr_nl {
    // SAFETY: `sockaddr_nl` is a plain C struct of integers, for which all-zero bytes are valid.
    let mut addr: libc::sockaddr_nl = unsafe { mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    addr
}

/// Binds `fd` with port id 0, so the kernel assigns a unique port id to this socket.
pub fn bind(fd: BorrowedFd<'_>) -> io::Result<()> {
    let addr = kernel_addr();
    // SAFETY: `addr` is a valid, initialised `sockaddr_nl` that outlives the call, and the length
    // passed is exactly its size; `fd` is a borrowed, open descriptor.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const addr).cast::<libc::sockaddr>(),
            mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets an integer `SOL_NETLINK` option (`NETLINK_EXT_ACK`, `NETLINK_CAP_ACK`, ...) to `value`.
pub fn set_netlink_option(fd: BorrowedFd<'_>, option: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: `value` is a live `c_int` for the duration of the call and the length passed is its
    // size; the kernel only reads it. `fd` is a borrowed, open descriptor.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_NETLINK,
            option,
            (&raw const value).cast::<libc::c_void>(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sends one netlink datagram to the kernel and returns the number of bytes sent.
///
/// Retries when a signal interrupts the call.
pub fn send(fd: BorrowedFd<'_>, datagram: &[u8]) -> io::Result<usize> {
    let addr = kernel_addr();
    loop {
        // SAFETY: `datagram` is a live slice and the length passed is its length, so the kernel
        // reads only initialised memory we own; `addr` is a valid `sockaddr_nl` of the size passed.
        let sent = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                datagram.as_ptr().cast::<libc::c_void>(),
                datagram.len(),
                0,
                (&raw const addr).cast::<libc::sockaddr>(),
                mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        match usize::try_from(sent) {
            Ok(sent) => return Ok(sent),
            Err(_) => {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }
}

/// Receives one netlink datagram into `buf`, blocking until one arrives.
///
/// Returns the datagram's full length (`MSG_TRUNC`): a value larger than `buf.len()` means the
/// datagram did not fit and only its first `buf.len()` bytes were written.
/// Retries when a signal interrupts the call.
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is a live, exclusively borrowed slice and the length passed is its
        // length, so the kernel writes only within it. `fd` is a borrowed, open descriptor.
        let len = unsafe {
            libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast::<libc::c_void>(), buf.len(), libc::MSG_TRUNC)
        };
        match usize::try_from(len) {
            Ok(len) => return Ok(len),
            Err(_) => {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }
}
