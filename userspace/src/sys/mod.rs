//! Every raw system call tickgate makes, each returning `io::Result`.
//!
//! The rest of the crate never calls `libc` or `libbpf_sys` directly: this is where the
//! unsafety and the errno handling live.

use std::{
    ffi::{CStr, CString},
    io, mem,
    os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd, RawFd},
    path::Path,
};

use libbpf_rs::libbpf_sys;

pub mod netlink;
pub mod uname;
pub mod xsk;

/// A failed kernel call: which one, and the errno it returned.
#[derive(Debug, thiserror::Error)]
#[error("{call} failed: {source}")]
pub struct SyscallError {
    /// The call, as a reader would grep for it (`bpf_link_create`, `if_nametoindex`, ...).
    pub call: &'static str,
    /// The OS error.
    #[source]
    pub source: io::Error,
}

impl SyscallError {
    /// Wraps an `io::Error` from `call`.
    pub fn new(call: &'static str, source: io::Error) -> Self {
        Self { call, source }
    }

    /// The errno, if there is one.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

fn path_cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// Converts a libbpf return value (`-errno` or `>= 0`).
fn libbpf_ret(ret: i32) -> io::Result<i32> {
    if ret < 0 { Err(io::Error::from_raw_os_error(-ret)) } else { Ok(ret) }
}

/// `if_nametoindex(3)`: the index of an interface in this network namespace.
pub fn if_nametoindex(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 { Err(io::Error::last_os_error()) } else { Ok(index) }
}

/// The effective capability set of this thread (`capget(2)`, both 32-bit words).
pub fn effective_capabilities() -> io::Result<u64> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let mut header = Header { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let mut data = [Data::default(); 2];
    // SAFETY: capget with version 3 reads one header and writes two Data structs, both live
    // and correctly laid out (repr(C), as in linux/capability.h).
    let ret = unsafe { libc::syscall(libc::SYS_capget, &mut header as *mut Header, data.as_mut_ptr()) };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(u64::from(data[0].effective) | (u64::from(data[1].effective) << 32))
}

/// The effective user id.
pub fn geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// `statfs(2)` of `path`: the filesystem magic number.
pub fn filesystem_magic(path: &Path) -> io::Result<i64> {
    let c = path_cstring(path)?;
    // SAFETY: zeroed statfs is a valid out-buffer.
    let mut st: libc::statfs = unsafe { mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` is a live, writable statfs.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_type)
}

/// The driver behind an interface (`ETHTOOL_GDRVINFO`), e.g. "veth", "mlx5_core".
pub fn driver_name(ifname: &str) -> io::Result<String> {
    const ETHTOOL_GDRVINFO: u32 = 0x0000_0003;
    #[repr(C)]
    struct DrvInfo {
        cmd: u32,
        driver: [u8; 32],
        version: [u8; 32],
        fw_version: [u8; 32],
        bus_info: [u8; 32],
        erom_version: [u8; 32],
        reserved2: [u8; 12],
        n_priv_flags: u32,
        n_stats: u32,
        testinfo_len: u32,
        eedump_len: u32,
        regdump_len: u32,
    }
    // SAFETY: all-zero is a valid DrvInfo (plain integers and byte arrays).
    let mut info: DrvInfo = unsafe { mem::zeroed() };
    info.cmd = ETHTOOL_GDRVINFO;
    ethtool(ifname, &mut info)?;
    let end = info.driver.iter().position(|&b| b == 0).unwrap_or(info.driver.len());
    Ok(String::from_utf8_lossy(&info.driver[..end]).into_owned())
}

/// `socket(2)`.
pub fn socket(domain: i32, kind: i32, protocol: i32) -> io::Result<OwnedFd> {
    // SAFETY: socket has no memory preconditions.
    let fd = unsafe { libc::socket(domain, kind, protocol) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// What is attached to an interface's XDP hook (`bpf_xdp_query`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpQuery {
    /// Program id in driver (native) mode, 0 if none.
    pub drv_prog_id: u32,
    /// Program id in generic (skb) mode, 0 if none.
    pub skb_prog_id: u32,
    /// Program id in hardware-offload mode, 0 if none.
    pub hw_prog_id: u32,
}

/// `bpf_xdp_query`: the programs attached to `ifindex`, in every mode.
pub fn xdp_query(ifindex: u32) -> io::Result<XdpQuery> {
    // SAFETY: zeroed opts with `sz` set is how libbpf's OPTS structs are initialised.
    let mut opts: libbpf_sys::bpf_xdp_query_opts = unsafe { mem::zeroed() };
    opts.sz = mem::size_of::<libbpf_sys::bpf_xdp_query_opts>() as _;
    // SAFETY: `opts` is live and correctly sized for this libbpf.
    libbpf_ret(unsafe { libbpf_sys::bpf_xdp_query(ifindex as i32, 0, &mut opts) })?;
    Ok(XdpQuery { drv_prog_id: opts.drv_prog_id, skb_prog_id: opts.skb_prog_id, hw_prog_id: opts.hw_prog_id })
}

/// `bpf_xdp_detach`: removes a netlink-attached program in the mode given by `xdp_flags`,
/// only if it is still `expected_prog_id`.
pub fn xdp_detach(ifindex: u32, xdp_flags: u32, expected_prog_id: u32) -> io::Result<()> {
    // SAFETY: as in `xdp_query`.
    let mut opts: libbpf_sys::bpf_xdp_attach_opts = unsafe { mem::zeroed() };
    opts.sz = mem::size_of::<libbpf_sys::bpf_xdp_attach_opts>() as _;
    opts.old_prog_fd = 0;
    let flags = xdp_flags | libbpf_sys::XDP_FLAGS_REPLACE;
    let old = prog_fd_by_id(expected_prog_id)?;
    opts.old_prog_fd = old.as_raw_fd();
    // SAFETY: `opts` is live; `old` stays open across the call.
    libbpf_ret(unsafe { libbpf_sys::bpf_xdp_detach(ifindex as i32, flags, &opts) }).map(drop)
}

/// `BPF_LINK_CREATE` for XDP with `xdp_flags` (`XDP_FLAGS_DRV_MODE` or `XDP_FLAGS_SKB_MODE`).
pub fn xdp_link_create(prog: BorrowedFd<'_>, ifindex: u32, xdp_flags: u32) -> io::Result<OwnedFd> {
    // SAFETY: as in `xdp_query`.
    let mut opts: libbpf_sys::bpf_link_create_opts = unsafe { mem::zeroed() };
    opts.sz = mem::size_of::<libbpf_sys::bpf_link_create_opts>() as _;
    opts.flags = xdp_flags;
    // SAFETY: `prog` is an open program fd and `opts` is live.
    let fd = libbpf_ret(unsafe {
        libbpf_sys::bpf_link_create(prog.as_raw_fd(), ifindex as i32, libbpf_sys::BPF_XDP, &opts)
    })?;
    // SAFETY: a new fd returned by the kernel, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `BPF_LINK_UPDATE`: atomically swaps the program behind a link.
pub fn link_update(link: BorrowedFd<'_>, new_prog: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: both fds are open; null opts means "no expectations".
    libbpf_ret(unsafe {
        libbpf_sys::bpf_link_update(link.as_raw_fd(), new_prog.as_raw_fd(), std::ptr::null())
    })
    .map(drop)
}

/// `BPF_LINK_DETACH`: detaches a link's program even while other fds or pins hold the link.
pub fn link_detach(link: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: `link` is an open link fd.
    libbpf_ret(unsafe { libbpf_sys::bpf_link_detach(link.as_raw_fd()) }).map(drop)
}

/// `BPF_OBJ_PIN`.
pub fn obj_pin(fd: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    let c = path_cstring(path)?;
    // SAFETY: `fd` is open and `c` NUL-terminated.
    libbpf_ret(unsafe { libbpf_sys::bpf_obj_pin(fd.as_raw_fd(), c.as_ptr()) }).map(drop)
}

/// `BPF_OBJ_GET`: opens a pinned object.
pub fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let c = path_cstring(path)?;
    // SAFETY: `c` is NUL-terminated.
    let fd = libbpf_ret(unsafe { libbpf_sys::bpf_obj_get(c.as_ptr()) })?;
    // SAFETY: a new fd returned by the kernel, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The program id behind a link, and whether the link is still attached (`ifindex != 0`).
pub fn xdp_link_info(link: BorrowedFd<'_>) -> io::Result<(u32, u32)> {
    // SAFETY: zeroed bpf_link_info is a valid out-buffer.
    let mut info: libbpf_sys::bpf_link_info = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libbpf_sys::bpf_link_info>() as u32;
    // SAFETY: `info` is live and `len` holds its size.
    libbpf_ret(unsafe { libbpf_sys::bpf_link_get_info_by_fd(link.as_raw_fd(), &mut info, &mut len) })?;
    // SAFETY: the kernel filled the XDP member for an XDP link; for other kinds the
    // integer is still initialised (zeroed above).
    let ifindex = unsafe { info.__bindgen_anon_1.xdp.ifindex };
    Ok((info.prog_id, ifindex))
}

/// Name and device binding of a loaded program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgInfo {
    /// Program name as the kernel stores it (at most 15 bytes).
    pub name: String,
    /// Interface the program is bound to (device-bound programs), 0 otherwise.
    pub ifindex: u32,
}

/// `BPF_PROG_GET_FD_BY_ID`.
pub fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    // SAFETY: plain integer argument.
    let fd = libbpf_ret(unsafe { libbpf_sys::bpf_prog_get_fd_by_id(id) })?;
    // SAFETY: a new fd returned by the kernel, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `BPF_OBJ_GET_INFO_BY_FD` for a program id.
pub fn prog_info(id: u32) -> io::Result<ProgInfo> {
    let fd = prog_fd_by_id(id)?;
    // SAFETY: zeroed bpf_prog_info is a valid out-buffer.
    let mut info: libbpf_sys::bpf_prog_info = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libbpf_sys::bpf_prog_info>() as u32;
    // SAFETY: `info` is live and `len` holds its size; no pointer fields are set, so the
    // kernel writes nothing beyond the struct.
    libbpf_ret(unsafe { libbpf_sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) })?;
    // SAFETY: `name` is a fixed-size array the kernel NUL-terminates.
    let name = unsafe { CStr::from_ptr(info.name.as_ptr()) }.to_string_lossy().into_owned();
    Ok(ProgInfo { name, ifindex: info.ifindex })
}

/// Raw fd of a borrowed fd, for APIs that want one (`XSKMAP` values).
pub fn raw(fd: BorrowedFd<'_>) -> RawFd {
    fd.as_raw_fd()
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a live timespec; the clocks used here always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(ts.tv_nsec as u64)
}

/// CLOCK_TAI now, in ns: the clock `bpf_ktime_get_tai_ns()` reads at the XDP hook.
pub fn clock_tai_ns() -> u64 {
    clock_ns(libc::CLOCK_TAI)
}

/// CLOCK_MONOTONIC now, in ns.
pub fn clock_monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// `recv(fd, buf, MSG_DONTWAIT)`: one datagram if one is waiting (`WouldBlock` if not), whatever
/// the socket's blocking mode.
pub fn recv_dontwait(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is live and writable for its length.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// `ppoll(2)` for `POLLIN` on each fd of `fds` (`None` entries are skipped) until one is readable,
/// `timeout` passes (`None`: no timeout) or a signal interrupts the wait: which fds are
/// readable, none on a timeout or a signal.
pub fn poll_readable<const N: usize>(
    fds: [Option<BorrowedFd<'_>>; N],
    timeout: Option<std::time::Duration>,
) -> io::Result<[bool; N]> {
    // The kernel ignores a negative fd.
    let mut pfds = fds.map(|fd| pollin(fd.map_or(-1, |fd| fd.as_raw_fd())));
    ppoll(&mut pfds, timeout)?;
    Ok(pfds.map(|p| p.revents & libc::POLLIN != 0))
}

/// [`poll_readable`] over any number of fds, for up to `timeout`: the indexes of the readable
/// ones (none on timeout or when a signal interrupted the wait).
pub fn poll_readable_many(fds: &[BorrowedFd<'_>], timeout: std::time::Duration) -> io::Result<Vec<usize>> {
    let mut pfds: Vec<libc::pollfd> = fds.iter().map(|fd| pollin(fd.as_raw_fd())).collect();
    ppoll(&mut pfds, Some(timeout))?;
    Ok(pfds.iter().enumerate().filter(|(_, p)| p.revents & libc::POLLIN != 0).map(|(i, _)| i).collect())
}

fn pollin(fd: RawFd) -> libc::pollfd {
    libc::pollfd { fd, events: libc::POLLIN, revents: 0 }
}

/// `ppoll(2)` on `pfds` with the current signal mask; an interrupted wait returns with no
/// `revents` set, as a timeout does.
fn ppoll(pfds: &mut [libc::pollfd], timeout: Option<std::time::Duration>) -> io::Result<()> {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), std::ptr::from_ref);
    // SAFETY: `pfds.len()` live pollfds, a live timespec or null (wait without a timeout), and a
    // null signal mask (keep the current one).
    let ret = unsafe { libc::ppoll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ts_ptr, std::ptr::null()) };
    if ret < 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
        pfds.iter_mut().for_each(|p| p.revents = 0);
    }
    Ok(())
}

/// `mmap(2)` of the first `len` bytes of the file `fd`, shared with every other process that
/// maps it, readable and (if `writable`) writable.
pub fn map_shared(fd: BorrowedFd<'_>, len: usize, writable: bool) -> io::Result<std::ptr::NonNull<u8>> {
    let prot = if writable { libc::PROT_READ | libc::PROT_WRITE } else { libc::PROT_READ };
    // SAFETY: a new mapping at an address the kernel picks; no existing memory is affected.
    let addr = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_SHARED, fd.as_raw_fd(), 0) };
    if addr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    std::ptr::NonNull::new(addr.cast()).ok_or_else(|| io::Error::from(io::ErrorKind::AddrNotAvailable))
}

/// `futex(FUTEX_WAKE)` of every waiter on the 32-bit word at `word` (a shared mapping: no
/// FUTEX_PRIVATE_FLAG, so waiters in other processes wake too).
pub fn futex_wake(word: &std::sync::atomic::AtomicU32) {
    // SAFETY: `word` is a live, aligned 32-bit word; FUTEX_WAKE only reads its address.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX, 0, 0, 0) };
}

/// `futex(FUTEX_WAIT)`: sleeps while the word at `word` holds `expected`, for up to `timeout`
/// (a wake, a changed word, a signal or the timeout end it).
pub fn futex_wait(word: &std::sync::atomic::AtomicU32, expected: u32, timeout: std::time::Duration) {
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a live, aligned 32-bit word and `ts` a live timespec for the call.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT, expected, &raw const ts, 0, 0) };
}

/// `prctl(PR_SET_TIMERSLACK, 1)`: the calling thread's timed waits end within about 1 µs of
/// their deadline instead of the default 50 µs.
pub fn tight_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes an unsigned long and affects only the calling thread.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
}

/// A non-blocking `eventfd(2)`: a counter another thread bumps to wake a `poll(2)` on it.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: no pointers; the flags are valid.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by eventfd and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds 1 to an eventfd (it becomes readable). A counter at its maximum stays readable, so the
/// error that reports it (`EAGAIN`) is not one.
pub fn eventfd_signal(fd: BorrowedFd<'_>) {
    let one = 1u64;
    // SAFETY: writes 8 bytes from a live u64, as eventfd requires.
    unsafe { libc::write(fd.as_raw_fd(), (&raw const one).cast(), mem::size_of::<u64>()) };
}

/// Reads an eventfd back to zero (not readable); nothing to read is not an error.
pub fn eventfd_clear(fd: BorrowedFd<'_>) {
    let mut value = 0u64;
    // SAFETY: reads 8 bytes into a live u64, as eventfd requires.
    unsafe { libc::read(fd.as_raw_fd(), (&raw mut value).cast(), mem::size_of::<u64>()) };
}

/// A non-blocking one-shot `timerfd(2)` on CLOCK_MONOTONIC: readable once its deadline has
/// passed, until [`clear`](Self::clear)ed or [armed](Self::arm_at) again (which resets the
/// expiry count). A thread that sleeps in `poll(2)` many times per
/// deadline arms it once instead of passing a timeout to every `poll`, which starts and cancels
/// a kernel timer each time (a timer-register write, and under a hypervisor a VM exit, each).
#[derive(Debug)]
pub struct Timer(OwnedFd);

impl Timer {
    /// A disarmed timer.
    pub fn new() -> io::Result<Self> {
        // SAFETY: no pointers; the clock and flags are valid.
        let fd =
            unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by timerfd_create and is owned by nobody else.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Arms the timer for CLOCK_MONOTONIC time `at_ns` (a time already past fires at once),
    /// replacing any earlier deadline.
    pub fn arm_at(&self, at_ns: u64) -> io::Result<()> {
        // A zero `it_value` would disarm.
        let at_ns = at_ns.max(1);
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec {
                tv_sec: libc::time_t::try_from(at_ns / 1_000_000_000).unwrap_or(libc::time_t::MAX),
                tv_nsec: (at_ns % 1_000_000_000) as libc::c_long,
            },
        };
        // SAFETY: a live itimerspec to read and a null old value (not wanted).
        let ret = unsafe {
            libc::timerfd_settime(
                self.0.as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &raw const spec,
                std::ptr::null_mut(),
            )
        };
        if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }

    /// Makes the timer unreadable again; whether it had fired.
    pub fn clear(&self) -> bool {
        let mut expirations = 0u64;
        // SAFETY: reads 8 bytes into a live u64, as timerfd requires.
        let n =
            unsafe { libc::read(self.0.as_raw_fd(), (&raw mut expirations).cast(), mem::size_of::<u64>()) };
        n == mem::size_of::<u64>() as isize && expirations > 0
    }

    /// The fd to poll.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Number of RX queues of an interface (`ETHTOOL_GCHANNELS`: rx + combined channels).
pub fn rx_queue_count(ifname: &str) -> io::Result<u32> {
    const ETHTOOL_GCHANNELS: u32 = 0x0000_003c;
    #[repr(C)]
    #[derive(Default)]
    struct Channels {
        cmd: u32,
        max_rx: u32,
        max_tx: u32,
        max_other: u32,
        max_combined: u32,
        rx_count: u32,
        tx_count: u32,
        other_count: u32,
        combined_count: u32,
    }
    let mut channels = Channels { cmd: ETHTOOL_GCHANNELS, ..Default::default() };
    ethtool(ifname, &mut channels)?;
    Ok((channels.rx_count + channels.combined_count).max(1))
}

/// `SIOCETHTOOL` on `ifname` with `data`: an ethtool command struct (`#[repr(C)]`, its `cmd`
/// first) that the kernel reads and fills in.
fn ethtool<T>(ifname: &str, data: &mut T) -> io::Result<()> {
    if ifname.len() >= libc::IFNAMSIZ {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: all-zero is a valid ifreq.
    let mut ifr: libc::ifreq = unsafe { mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(ifname.bytes()) {
        *dst = src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_data = (data as *mut T).cast();
    let sock = socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)?;
    // SAFETY: SIOCETHTOOL reads `ifr` and writes through its data pointer into `data`, a command
    // struct of the size the command implies, which outlives the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, &mut ifr) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `ETHTOOL_GET_TS_INFO`: the index of `ifname`'s PTP hardware clock (`/dev/ptp<index>`), or
/// `None` when the driver has none.
pub fn phc_index(ifname: &str) -> io::Result<Option<u32>> {
    const ETHTOOL_GET_TS_INFO: u32 = 0x41;
    #[repr(C)]
    #[derive(Default)]
    struct TsInfo {
        cmd: u32,
        so_timestamping: u32,
        phc_index: i32,
        tx_types: u32,
        tx_reserved: [u32; 3],
        rx_filters: u32,
        rx_reserved: [u32; 3],
    }
    let mut info = TsInfo { cmd: ETHTOOL_GET_TS_INFO, phc_index: -1, ..Default::default() };
    ethtool(ifname, &mut info)?;
    Ok(u32::try_from(info.phc_index).ok())
}

/// `struct ptp_clock_time` (include/uapi/linux/ptp_clock.h).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct PtpClockTime {
    sec: i64,
    nsec: u32,
    reserved: u32,
}

impl PtpClockTime {
    fn ns(self) -> u64 {
        u64::try_from(self.sec).unwrap_or(0).wrapping_mul(1_000_000_000).wrapping_add(u64::from(self.nsec))
    }
}

/// `PTP_SYS_OFFSET_PRECISE` on the PHC `fd`: its time and CLOCK_REALTIME read at one instant
/// by the hardware (cross-timestamping), as `(phc_ns, realtime_ns)`. Drivers without it fail
/// with `EOPNOTSUPP`.
///
/// # Minimum kernel version
/// 4.7 (commit 719f1aa4a671, "ptp: Add PTP_SYS_OFFSET_PRECISE for driver crosstimestamping").
pub fn ptp_offset_precise(fd: BorrowedFd<'_>) -> io::Result<(u64, u64)> {
    #[repr(C)]
    #[derive(Default)]
    struct Precise {
        device: PtpClockTime,
        sys_realtime: PtpClockTime,
        sys_monoraw: PtpClockTime,
        rsv: [u32; 4],
    }
    // _IOWR('=', 8, struct ptp_sys_offset_precise), 64 bytes.
    const PTP_SYS_OFFSET_PRECISE: libc::c_ulong = 0xC040_3D08;
    let mut p = Precise::default();
    // SAFETY: the ioctl writes one `Precise` (64 bytes, the size its number encodes) into `p`.
    if unsafe { libc::ioctl(fd.as_raw_fd(), PTP_SYS_OFFSET_PRECISE, &mut p) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((p.device.ns(), p.sys_realtime.ns()))
}

/// `PTP_SYS_OFFSET_EXTENDED` on the PHC `fd` with `n` (1..=25) samples: for each, CLOCK_REALTIME
/// before, the PHC, and CLOCK_REALTIME after, in ns.
///
/// # Minimum kernel version
/// 5.0 (commit 361800876f80, "ptp: add PTP_SYS_OFFSET_EXTENDED ioctl").
pub fn ptp_offset_extended(fd: BorrowedFd<'_>, n: u32) -> io::Result<Vec<[u64; 3]>> {
    const MAX: usize = 25;
    #[repr(C)]
    struct Extended {
        n_samples: u32,
        clockid: i32,
        rsv: [u32; 2],
        ts: [[PtpClockTime; 3]; MAX],
    }
    // _IOWR('=', 9, struct ptp_sys_offset_extended), 1216 bytes.
    const PTP_SYS_OFFSET_EXTENDED: libc::c_ulong = 0xC4C0_3D09;
    let n = n.clamp(1, MAX as u32);
    // clockid 0 is CLOCK_REALTIME, and what older kernels (where it is reserved) require.
    let mut e = Extended { n_samples: n, clockid: 0, rsv: [0; 2], ts: [[PtpClockTime::default(); 3]; MAX] };
    // SAFETY: the ioctl fills `e` (1216 bytes, the size its number encodes) and reads its head.
    if unsafe { libc::ioctl(fd.as_raw_fd(), PTP_SYS_OFFSET_EXTENDED, &mut e) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(e.ts[..n as usize].iter().map(|t| [t[0].ns(), t[1].ns(), t[2].ns()]).collect())
}

/// CLOCK_TAI − CLOCK_REALTIME now, to the second (the kernel's TAI offset; 0 when unset).
pub fn tai_offset_ns() -> u64 {
    let (realtime, tai) = (clock_ns(libc::CLOCK_REALTIME), clock_ns(libc::CLOCK_TAI));
    tai.saturating_sub(realtime).saturating_add(500_000_000) / 1_000_000_000 * 1_000_000_000
}

/// `setns(fd, CLONE_NEWNET)`: moves the calling thread into the network namespace of `fd`.
pub fn setns_net(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: `fd` is an open namespace file; CLONE_NEWNET affects only the calling thread.
    if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd as _;
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn both_poll_helpers_say_which_fds_are_readable_and_wait_out_their_timeout() {
        let (quiet, loud) = (eventfd().expect("eventfd"), eventfd().expect("eventfd"));
        eventfd_signal(loud.as_fd());
        let fds = [Some(quiet.as_fd()), None, Some(loud.as_fd())];
        assert_eq!(poll_readable(fds, Some(Duration::from_secs(5))).expect("ppoll"), [false, false, true]);
        let many = poll_readable_many(&[quiet.as_fd(), loud.as_fd()], Duration::from_secs(5)).expect("ppoll");
        assert_eq!(many, [1]);
        eventfd_clear(loud.as_fd());
        let start = Instant::now();
        assert_eq!(
            poll_readable([Some(loud.as_fd())], Some(Duration::from_millis(20))).expect("ppoll"),
            [false]
        );
        assert!(
            poll_readable_many(&[quiet.as_fd(), loud.as_fd()], Duration::from_millis(20))
                .expect("ppoll")
                .is_empty()
        );
        assert!(start.elapsed() >= Duration::from_millis(40), "both waited: {:?}", start.elapsed());
    }
}
