//! Every raw syscall the bench makes: UDP sockets and batches (`sendmmsg`, `recvmmsg`), epoll,
//! absolute sleeps, the timer slack and thread ids. Everything returns `io::Result`.

use std::{
    io, mem,
    net::{SocketAddrV4, UdpSocket},
    os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
    ptr,
    time::Duration,
};

/// Largest UDP payload the bench sends or expects (a tickgate packet is at most 1452 bytes).
pub const MAX_DATAGRAM: usize = 2048;

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

fn sockaddr_in(addr: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(*addr.ip()).to_be() },
        sin_zero: [0; 8],
    }
}

fn set_int_option(
    sock: &UdpSocket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` is a live c_int and its size is passed; the fd is open for the call.
    check(unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

fn int_option(sock: &UdpSocket, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live and describe a c_int-sized buffer.
    check(unsafe { libc::getsockopt(sock.as_raw_fd(), level, name, (&raw mut value).cast(), &raw mut len) })?;
    Ok(value)
}

/// A UDP socket bound to `addr`, with `SO_REUSEPORT` first when `reuseport` (several sockets on
/// one port, one per receive queue).
pub fn bind_udp(addr: SocketAddrV4, reuseport: bool) -> io::Result<UdpSocket> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `fd` was just returned by socket(2) and is owned by nothing else.
    let sock = UdpSocket::from(unsafe { OwnedFd::from_raw_fd(fd) });
    if reuseport {
        set_int_option(&sock, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
    }
    let sa = sockaddr_in(addr);
    // SAFETY: `sa` is a live sockaddr_in and its size is passed.
    check(unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&raw const sa).cast(),
            mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    })?;
    Ok(sock)
}

/// Sets the receive buffer past `rmem_max` (`SO_RCVBUFFORCE`, needs CAP_NET_ADMIN) and returns
/// the size the kernel granted (twice the request: it counts its bookkeeping).
pub fn force_rcvbuf(sock: &UdpSocket, bytes: usize) -> io::Result<usize> {
    set_int_option(
        sock,
        libc::SOL_SOCKET,
        libc::SO_RCVBUFFORCE,
        bytes.min(i32::MAX as usize) as libc::c_int,
    )?;
    Ok(int_option(sock, libc::SOL_SOCKET, libc::SO_RCVBUF)? as usize)
}

/// Asks the kernel to stamp every datagram `sock` receives with its CLOCK_REALTIME receive time
/// (`SO_TIMESTAMPNS`), which [`RecvBatch::stamp`] then reads.
pub fn enable_rx_timestamps(sock: &UdpSocket) -> io::Result<()> {
    set_int_option(sock, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)
}

/// Makes every non-blocking read of `sock` that finds its queue empty run one busy-poll round
/// of the NAPI instance its datagrams came from (`SO_BUSY_POLL`), keeping that NAPI's
/// interrupts deferred while the reads come often enough (`SO_PREFER_BUSY_POLL`), 64 packets a
/// round (`SO_BUSY_POLL_BUDGET`): the socket path's way to receive in batches it drives.
pub fn busy_poll_reads(sock: &UdpSocket) -> io::Result<()> {
    use tickgate::sys::xsk::{SO_BUSY_POLL, SO_BUSY_POLL_BUDGET, SO_PREFER_BUSY_POLL};
    // A non-blocking read polls one round whatever the µs, as long as they are not 0.
    set_int_option(sock, libc::SOL_SOCKET, SO_BUSY_POLL, 10)?;
    set_int_option(sock, libc::SOL_SOCKET, SO_PREFER_BUSY_POLL, 1)?;
    set_int_option(sock, libc::SOL_SOCKET, SO_BUSY_POLL_BUDGET, 64)
}

/// Room for one `SCM_TIMESTAMPNS` control message (`CMSG_SPACE(sizeof(struct timespec))`),
/// as u64s so that the buffer is aligned for `cmsghdr`.
const CONTROL_WORDS: usize = 4;

/// Buffers and headers for `recvmmsg` of up to `batch` datagrams.
#[derive(Debug)]
pub struct RecvBatch {
    bufs: Vec<[u8; MAX_DATAGRAM]>,
    lens: Vec<usize>,
    names: Vec<libc::sockaddr_in>,
    controls: Vec<[u64; CONTROL_WORDS]>,
    stamps: Vec<Option<u64>>,
}

impl RecvBatch {
    /// Room for `batch` datagrams.
    pub fn new(batch: usize) -> Self {
        // SAFETY: all-zero is a valid sockaddr_in.
        let name: libc::sockaddr_in = unsafe { mem::zeroed() };
        Self {
            bufs: vec![[0; MAX_DATAGRAM]; batch.max(1)],
            lens: vec![0; batch.max(1)],
            names: vec![name; batch.max(1)],
            controls: vec![[0; CONTROL_WORDS]; batch.max(1)],
            stamps: vec![None; batch.max(1)],
        }
    }

    /// Datagrams one call can return.
    pub fn capacity(&self) -> usize {
        self.bufs.len()
    }

    /// `recvmmsg(fd, ..., flags)`: fills the batch and returns how many datagrams arrived.
    /// `MSG_WAITFORONE` blocks (up to the socket's receive timeout) for the first one only.
    pub fn recv(&mut self, sock: &UdpSocket, flags: libc::c_int) -> io::Result<usize> {
        let mut iovecs: Vec<libc::iovec> = self
            .bufs
            .iter_mut()
            .map(|b| libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: MAX_DATAGRAM })
            .collect();
        // SAFETY: all-zero is a valid mmsghdr (null name and control, no iovecs yet).
        let mut headers: Vec<libc::mmsghdr> = (0..iovecs.len()).map(|_| unsafe { mem::zeroed() }).collect();
        for (((h, iov), name), control) in
            headers.iter_mut().zip(iovecs.iter_mut()).zip(self.names.iter_mut()).zip(self.controls.iter_mut())
        {
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_name = (name as *mut libc::sockaddr_in).cast();
            h.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            h.msg_hdr.msg_control = control.as_mut_ptr().cast();
            h.msg_hdr.msg_controllen = mem::size_of_val(control);
        }
        // SAFETY: every header points at one live iovec over a live buffer of MAX_DATAGRAM bytes,
        // at one live sockaddr_in for the source and at one live control buffer of the size it
        // states; all of them outlive the call; vlen equals the number of headers.
        let n = check(unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                headers.as_mut_ptr(),
                headers.len() as libc::c_uint,
                flags,
                ptr::null_mut(),
            )
        })? as usize;
        for ((len, stamp), h) in self.lens.iter_mut().zip(self.stamps.iter_mut()).zip(&headers).take(n) {
            *len = (h.msg_len as usize).min(MAX_DATAGRAM);
            *stamp = timestampns(&h.msg_hdr);
        }
        Ok(n)
    }

    /// The kernel's CLOCK_REALTIME receive time of datagram `i` of the last call, ns, when the
    /// socket has [`enable_rx_timestamps`].
    pub fn stamp(&self, i: usize) -> Option<u64> {
        self.stamps[i]
    }

    /// Datagram `i` of the last call.
    pub fn datagram(&self, i: usize) -> &[u8] {
        &self.bufs[i][..self.lens[i]]
    }

    /// The source address of datagram `i` of the last call (IPv4: the lab's sockets are).
    pub fn source(&self, i: usize) -> std::net::SocketAddr {
        let n = &self.names[i];
        let ip = std::net::Ipv4Addr::from(u32::from_be(n.sin_addr.s_addr));
        std::net::SocketAddr::new(ip.into(), u16::from_be(n.sin_port))
    }
}

/// The `SCM_TIMESTAMPNS` time in a received message's control data, ns.
fn timestampns(msg: &libc::msghdr) -> Option<u64> {
    // SAFETY: `msg` is a header the kernel just filled: its control pointer and length describe
    // the control buffer it wrote, which the CMSG macros walk within those bounds.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                return Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    None
}

/// `sendmmsg` of `packets[i]` to `dsts[i]`; returns how many were sent (a prefix).
pub fn send_batch(sock: &UdpSocket, packets: &[&[u8]], dsts: &[SocketAddrV4]) -> io::Result<usize> {
    let n = packets.len().min(dsts.len());
    if n == 0 {
        return Ok(0);
    }
    let mut addrs: Vec<libc::sockaddr_in> = dsts[..n].iter().map(|d| sockaddr_in(*d)).collect();
    let mut iovecs: Vec<libc::iovec> = packets[..n]
        .iter()
        .map(|p| libc::iovec { iov_base: p.as_ptr() as *mut _, iov_len: p.len() })
        .collect();
    // SAFETY: all-zero is a valid mmsghdr.
    let mut headers: Vec<libc::mmsghdr> = (0..n).map(|_| unsafe { mem::zeroed() }).collect();
    for ((h, iov), addr) in headers.iter_mut().zip(iovecs.iter_mut()).zip(addrs.iter_mut()) {
        h.msg_hdr.msg_name = (addr as *mut libc::sockaddr_in).cast();
        h.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        h.msg_hdr.msg_iov = iov;
        h.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: each header points at a live address and one live iovec over a packet the kernel
    // only reads; all outlive the call; vlen equals the number of headers.
    let sent =
        check(unsafe { libc::sendmmsg(sock.as_raw_fd(), headers.as_mut_ptr(), n as libc::c_uint, 0) })?;
    Ok(sent as usize)
}

/// An epoll instance watching one socket (token 0) and any other fds for input.
#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    /// Watches `sock` for `EPOLLIN` (level-triggered), as token 0.
    pub fn for_socket(sock: &UdpSocket) -> io::Result<Self> {
        // SAFETY: plain epoll_create1 call; the result is checked.
        let raw = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `raw` is a new fd owned by nothing else.
        let this = Self { fd: unsafe { OwnedFd::from_raw_fd(raw) } };
        this.watch(sock.as_fd(), 0)?;
        Ok(this)
    }

    /// Watches `fd` for `EPOLLIN` (level-triggered) as `token` (below 64).
    pub fn watch(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event { events: libc::EPOLLIN as u32, u64: token };
        // SAFETY: both fds are open and `event` is a live epoll_event.
        check(unsafe {
            libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd.as_raw_fd(), &raw mut event)
        })?;
        Ok(())
    }

    /// Waits up to `timeout` (to the ns: epoll_pwait2; `None`: without one) for input; returns
    /// the readable tokens as a bit mask (`1 << token`), 0 on a timeout or a signal.
    pub fn wait(&self, timeout: Option<Duration>) -> io::Result<u64> {
        const MAX_EVENTS: usize = 4;
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS];
        let ts = timeout.map(|t| {
            let t = t.min(Duration::from_secs(60));
            libc::timespec {
                tv_sec: t.as_secs() as libc::time_t,
                tv_nsec: libc::c_long::from(t.subsec_nanos() as i32),
            }
        });
        let ts_ptr = ts.as_ref().map_or(ptr::null(), ptr::from_ref);
        // SAFETY: room for MAX_EVENTS events is passed; `ts_ptr` is a live timespec or null; no sigmask.
        let n = unsafe {
            libc::epoll_pwait2(
                self.fd.as_raw_fd(),
                events.as_mut_ptr(),
                MAX_EVENTS as libc::c_int,
                ts_ptr,
                ptr::null(),
            )
        };
        match check(n) {
            Ok(n) => Ok(events[..n as usize].iter().fold(0, |mask, e| mask | 1 << e.u64)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }
}

/// Makes SIGUSR1 interrupt a blocking system call of the thread it is sent to (a handler that
/// does nothing, without `SA_RESTART`), so that one thread can end another's long
/// `BPF_PROG_RUN` (`EINTR`). Installing it twice is harmless.
pub fn interrupt_with_sigusr1() -> io::Result<()> {
    extern "C" fn nothing(_: libc::c_int) {}
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the handler is an
    // async-signal-safe function that does nothing.
    let ret = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = nothing as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&raw mut action.sa_mask);
        libc::sigaction(libc::SIGUSR1, &raw const action, std::ptr::null_mut())
    };
    if ret != 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Sleeps until CLOCK_MONOTONIC reads `deadline_ns` (returns at once if it already has).
pub fn sleep_until_monotonic(deadline_ns: u64) {
    let ts = libc::timespec {
        tv_sec: (deadline_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (deadline_ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: `ts` is a live timespec; a null remainder is allowed with TIMER_ABSTIME. An early
    // return (signal) is harmless: callers re-check the clock.
    unsafe {
        libc::clock_nanosleep(libc::CLOCK_MONOTONIC, libc::TIMER_ABSTIME, &raw const ts, ptr::null_mut())
    };
}

/// Sets the calling thread's timer slack to 1 ns so paced sleeps end on time (the default 50 µs
/// would smear a 10 kpps schedule).
pub fn tight_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes an unsigned long and affects only the calling thread.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
}

/// The calling thread's kernel id.
pub fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// Effective user id.
pub fn geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// Sends `signal` to process `pid` (a child the bench started).
pub fn kill(pid: u32, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: kill(2) with a pid the caller started; failure is reported, not UB.
    check(unsafe { libc::kill(pid as libc::pid_t, signal) }).map(drop)
}

/// Pins thread `tid` of this process to `core`.
pub fn pin_thread(tid: i32, core: usize) -> io::Result<()> {
    // SAFETY: all-zero is an empty cpu_set_t; CPU_SET writes inside it (core is checked below
    // against the set's capacity).
    let mut set: libc::cpu_set_t = unsafe { mem::zeroed() };
    if core >= 8 * mem::size_of::<libc::cpu_set_t>() {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: `core` is within the set (checked above).
    unsafe { libc::CPU_SET(core, &mut set) };
    // SAFETY: `set` is a live cpu_set_t and its size is passed.
    check(unsafe { libc::sched_setaffinity(tid, mem::size_of::<libc::cpu_set_t>(), &raw const set) })
        .map(drop)
}

/// A thread's scheduling policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// SCHED_OTHER, the default.
    Other,
    /// SCHED_FIFO at this priority: runs ahead of every SCHED_OTHER thread on its core.
    Fifo(i32),
    /// SCHED_IDLE: runs only when nothing else on its core wants to.
    Idle,
}

/// Sets thread `tid`'s scheduling policy (0: the calling thread).
pub fn set_policy(tid: i32, policy: Policy) -> io::Result<()> {
    let (policy, priority) = match policy {
        Policy::Other => (libc::SCHED_OTHER, 0),
        Policy::Fifo(p) => (libc::SCHED_FIFO, p),
        Policy::Idle => (libc::SCHED_IDLE, 0),
    };
    let param = libc::sched_param { sched_priority: priority };
    // SAFETY: `param` is a live sched_param; a bad tid or priority is an error, not UB.
    check(unsafe { libc::sched_setscheduler(tid, policy, &raw const param) }).map(drop)
}

/// Clock ticks per second of `/proc/*/stat` times.
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if n > 0 { n as u64 } else { 100 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn realtime_ns() -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    }

    #[test]
    fn a_batch_reads_the_kernels_receive_time_of_each_datagram() {
        // Loopback only.
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        enable_rx_timestamps(&rx).unwrap();
        let before = realtime_ns();
        for i in 0..3u8 {
            tx.send_to(&[i; 5], rx.local_addr().unwrap()).unwrap();
        }
        rx.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
        let mut batch = RecvBatch::new(8);
        let mut got = 0;
        while got < 3 {
            let n = batch.recv(&rx, libc::MSG_WAITFORONE).unwrap();
            // Loopback may stamp a datagram after `send_to` returned (its softirq runs later),
            // never after it could be read.
            let after = realtime_ns();
            for i in 0..n {
                assert_eq!(batch.datagram(i), [got as u8; 5]);
                let stamp = batch.stamp(i).expect("SO_TIMESTAMPNS gives every datagram a stamp");
                assert!((before..=after).contains(&stamp), "{before} <= {stamp} <= {after}");
                got += 1;
            }
        }
        // Without the option, no stamp.
        let plain = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(b"x", plain.local_addr().unwrap()).unwrap();
        plain.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
        assert_eq!(batch.recv(&plain, libc::MSG_WAITFORONE).unwrap(), 1);
        assert_eq!(batch.stamp(0), None);
    }

    #[test]
    fn tai_is_ahead_of_realtime_by_whole_seconds_or_not_at_all() {
        // What socket-paced adds to a kernel stamp: the kernel's TAI offset, a whole number of
        // seconds (0 when nothing set it).
        let offset = tickgate::sys::tai_offset_ns();
        let whole = (offset + 500_000_000) / 1_000_000_000 * 1_000_000_000;
        assert!(offset.abs_diff(whole) < 10_000_000, "{offset}");
    }
}
