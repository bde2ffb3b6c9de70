//! [`XskSocket`]: one AF_XDP socket bound to one RX queue, with its own UMEM and rings.

use std::{
    ffi::CString,
    fmt, io,
    num::NonZeroU32,
    os::fd::BorrowedFd,
    time::{Duration, Instant},
};

use serde::Serialize;
use tickgate_common::meta::{META_LEN, RxMeta};
use xdpilone::{IfInfo, Socket, SocketConfig, Umem, UmemConfig, User, xdp::XdpDesc};

use super::{
    config::{BindPreference, BusyPoll, ConfigError, XskConfig},
    ring::{Completion, Fill, Rx, Tx},
    stats::{XdpStatistics, XskCounters},
    umem::{DescError, FrameLayout, Frames, Owner, UmemArea},
};
use crate::{
    steer::privileges::{self, Capability},
    sys::{self, SyscallError},
};

/// The bind mode the kernel granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BindMode {
    /// The driver DMAs straight into the UMEM.
    ZeroCopy,
    /// The kernel copies each packet into the UMEM (any driver, and skb-mode XDP).
    Copy,
}

impl fmt::Display for BindMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ZeroCopy => "zero-copy",
            Self::Copy => "copy",
        })
    }
}

/// Why an AF_XDP socket could not be opened or used. Each message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    /// The configuration breaks a rule.
    #[error("invalid AF_XDP socket configuration: {0}")]
    InvalidConfig(#[from] ConfigError),
    /// No such interface in this network namespace.
    #[error("interface {ifname} not found in this network namespace ('ip link show' lists them)")]
    InterfaceNotFound {
        /// The name asked for.
        ifname: String,
    },
    /// The kernel was built without AF_XDP.
    #[error("this kernel has no AF_XDP sockets ({source}): it needs CONFIG_XDP_SOCKETS=y")]
    Unsupported {
        /// The error from `socket(AF_XDP)`.
        #[source]
        source: io::Error,
    },
    /// Creating an AF_XDP socket needs CAP_NET_RAW.
    #[error(
        "opening an AF_XDP socket needs CAP_NET_RAW, which this process lacks (uid {uid}): run as root \
         or grant it (AmbientCapabilities= in the systemd unit, --cap-add for a container)"
    )]
    PermissionDenied {
        /// Effective uid.
        uid: u32,
    },
    /// The kernel refused to lock the UMEM.
    #[error(
        "registering {bytes} bytes of UMEM failed ({source}): UMEM is locked memory; raise RLIMIT_MEMLOCK \
         ('ulimit -l', LimitMEMLOCK= in systemd) or the cgroup memory limit, or use fewer frames"
    )]
    UmemRegistration {
        /// Bytes of UMEM.
        bytes: u64,
        /// The error from `setsockopt(XDP_UMEM_REG)`.
        #[source]
        source: io::Error,
    },
    /// Another AF_XDP socket is bound to the queue.
    #[error(
        "{ifname} queue {queue} already has an AF_XDP socket bound (another tickgate worker or process): \
         stop it, or use another queue"
    )]
    QueueBusy {
        /// Interface.
        ifname: String,
        /// RX queue.
        queue: u32,
    },
    /// Zero-copy was demanded and the driver cannot do it.
    #[error(
        "zero-copy AF_XDP is not supported by driver {driver} on {ifname} queue {queue} ({source}): \
         use copy mode, or zero-copy-then-copy to take zero-copy where it exists"
    )]
    ZeroCopyUnsupported {
        /// Interface.
        ifname: String,
        /// RX queue.
        queue: u32,
        /// Its driver.
        driver: String,
        /// The error from `bind`.
        #[source]
        source: io::Error,
    },
    /// `bind` failed for another reason.
    #[error("binding an AF_XDP socket to {ifname} queue {queue} in {mode} mode failed: {source}{hint}")]
    Bind {
        /// Interface.
        ifname: String,
        /// RX queue.
        queue: u32,
        /// The mode asked for.
        mode: &'static str,
        /// What to check, if the errno suggests something.
        hint: String,
        /// The error from `bind`.
        #[source]
        source: io::Error,
    },
    /// [`XskSocket::transmit`] on a socket opened without a TX ring.
    #[error("this AF_XDP socket has no TX ring: open it with tx_size > 0 to transmit")]
    NoTxRing,
    /// Another kernel call failed.
    #[error(transparent)]
    Syscall(#[from] SyscallError),
}

/// One received packet, valid for the duration of the receive callback.
#[derive(Clone, Copy, Debug)]
pub struct Received<'a> {
    /// The metadata the XDP program wrote in front of the packet, if its magic is right.
    pub meta: Option<RxMeta>,
    /// The whole packet, from the Ethernet header.
    pub frame: &'a [u8],
    /// The UDP payload (tickgate header and body), located by `meta`, if it lies in `frame`.
    pub payload: Option<&'a [u8]>,
}

/// What woke an [`XskSocket::wait_with`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// The RX ring has packets.
    pub rx: bool,
    /// Which of the other fds are readable, in the order given.
    pub also: [bool; 2],
}

/// What one [`XskSocket::receive`] call saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RxBatch {
    /// Packets handed to the callback.
    pub received: u32,
    /// Descriptors refused before any byte was read: outside the UMEM, across a frame boundary,
    /// or naming a frame the kernel did not hold.
    pub invalid_descriptors: u32,
    /// Received packets without valid metadata (`meta` is `None`).
    pub missing_metadata: u32,
    /// Received packets whose metadata points outside the packet (`payload` is `None`).
    pub payload_out_of_bounds: u32,
}

/// What one [`XskSocket::transmit`] call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TxBatch {
    /// Packets put in the TX ring.
    pub queued: u32,
    /// Frames the kernel reported sent since the previous call, now free again.
    pub completed: u32,
    /// Packets not sent: longer than a frame.
    pub too_long: u32,
    /// Packets not sent: every TX frame was in flight.
    pub no_frame: u32,
    /// Packets not sent: the TX ring was full.
    pub ring_full: u32,
}

/// Logs at most once a minute (quinn-udp's rule for I/O errors on the hot path).
#[derive(Debug, Default)]
struct RateLimit {
    last: Option<Instant>,
}

impl RateLimit {
    fn allow(&mut self) -> bool {
        let now = Instant::now();
        if self.last.is_some_and(|t| now.duration_since(t) < Duration::from_secs(60)) {
            return false;
        }
        self.last = Some(now);
        true
    }
}

/// An AF_XDP socket on one RX queue, with a UMEM of its own.
///
/// RX frames circulate fill ring → kernel → RX ring → [`XskSocket::receive`]'s callback → fill
/// ring. Every descriptor is checked against the UMEM and against who holds the frame before
/// a byte of it is read.
pub struct XskSocket {
    // Field order is drop order: the rings unmap, the last handle (`user`) closes the socket,
    // and only then is the UMEM memory unmapped.
    rx: Rx,
    fill: Fill,
    tx: Option<Tx>,
    completion: Completion,
    user: User,
    area: UmemArea,
    layout: FrameLayout,
    frames: Frames,
    /// Frame bases waiting to go back to the fill ring (all of them right after a receive,
    /// unless the ring looked full).
    refill: Vec<u64>,
    /// Free TX frames.
    tx_free: Vec<u32>,
    /// Scratch space for one transmit batch.
    tx_descs: Vec<XdpDesc>,
    ifname: String,
    queue: u32,
    bind_mode: BindMode,
    busy_poll: bool,
    completion_size: u32,
    counters: XskCounters,
    wake_log: RateLimit,
}

const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<XskSocket>();
};

impl fmt::Debug for XskSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XskSocket")
            .field("ifname", &self.ifname)
            .field("queue", &self.queue)
            .field("bind_mode", &self.bind_mode)
            .field("layout", &self.layout)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

fn os_error(e: xdpilone::Errno) -> io::Error {
    // xdpilone reports a few errors as negative errno values.
    io::Error::from_raw_os_error(e.get_raw().abs())
}

fn syscall(call: &'static str) -> impl FnOnce(xdpilone::Errno) -> XskError {
    move |e| SyscallError::new(call, os_error(e)).into()
}

/// `socket(AF_XDP)` and `XDP_UMEM_REG` both happen in `Umem::new`; the errno tells them apart.
fn umem_error(e: xdpilone::Errno, bytes: u64) -> XskError {
    let source = os_error(e);
    match source.raw_os_error() {
        Some(libc::EAFNOSUPPORT) => XskError::Unsupported { source },
        Some(libc::EPERM | libc::EACCES) if lacks_net_raw() => {
            XskError::PermissionDenied { uid: sys::geteuid() }
        }
        Some(libc::EPERM | libc::ENOMEM | libc::ENOBUFS) => XskError::UmemRegistration { bytes, source },
        _ => SyscallError::new("socket(AF_XDP) or setsockopt(XDP_UMEM_REG)", source).into(),
    }
}

fn lacks_net_raw() -> bool {
    sys::effective_capabilities()
        .map_or(true, |caps| !privileges::missing(caps, &[Capability::NetRaw]).is_empty())
}

fn bind_error(e: xdpilone::Errno, ifname: &str, queue: u32, preference: BindPreference) -> XskError {
    let source = os_error(e);
    let errno = source.raw_os_error();
    let (ifname, mode) = (ifname.to_owned(), preference_name(preference));
    match errno {
        Some(libc::EBUSY) => XskError::QueueBusy { ifname, queue },
        Some(libc::ENODEV) => XskError::InterfaceNotFound { ifname },
        Some(libc::EOPNOTSUPP) if preference == BindPreference::ZeroCopy => {
            let driver = sys::driver_name(&ifname).unwrap_or_else(|_| "unknown".into());
            XskError::ZeroCopyUnsupported { ifname, queue, driver, source }
        }
        Some(libc::EINVAL) => {
            let hint = format!(
                " (is {queue} one of {ifname}'s RX queues? 'ethtool -l {ifname}' lists them; veth needs \
                 numrxqueues and numtxqueues above the queue index)"
            );
            XskError::Bind { ifname, queue, mode, hint, source }
        }
        _ => XskError::Bind { ifname, queue, mode, hint: String::new(), source },
    }
}

fn preference_name(preference: BindPreference) -> &'static str {
    match preference {
        BindPreference::ZeroCopyThenCopy => "zero-copy-then-copy",
        BindPreference::Copy => "copy",
        BindPreference::ZeroCopy => "zero-copy",
    }
}

/// Descriptors the kernel's copy-mode TX path sends per `sendto` (`TX_BATCH_SIZE` in
/// net/xdp/xsk.c, `xsk_generic_xmit`; 32 since AF_XDP's introduction in 4.18).
const GENERIC_TX_BATCH: usize = 32;

/// `recvfrom`/`sendto` wakeups fail transiently while the device is busy, down, or out of
/// buffers (libxdp's xdpsock tolerates the same set); anything else is a broken socket.
fn transient_wakeup_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::ENETDOWN | libc::EINTR)
    )
}

fn set_busy_poll(fd: BorrowedFd<'_>, bp: BusyPoll, ifname: &str, queue: u32) -> Result<(), XskError> {
    let usecs = i32::try_from(bp.usecs).map_err(|_| ConfigError::BusyPollUsecs { usecs: bp.usecs })?;
    for (name, call, value) in [
        (sys::xsk::SO_PREFER_BUSY_POLL, "setsockopt(SO_PREFER_BUSY_POLL)", 1),
        (sys::xsk::SO_BUSY_POLL, "setsockopt(SO_BUSY_POLL)", usecs),
        (sys::xsk::SO_BUSY_POLL_BUDGET, "setsockopt(SO_BUSY_POLL_BUDGET)", i32::from(bp.budget)),
    ] {
        match sys::xsk::set_socket_int(fd, name, value) {
            Ok(()) => {}
            // ENOPROTOOPT: no CONFIG_NET_RX_BUSY_POLL, or a kernel before 5.11 (the last two
            // options); EPERM: raising a value past its sysctl default needs CAP_NET_ADMIN.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOPROTOOPT | libc::EPERM)) => {
                log::warn!(
                    "{ifname} queue {queue}: {call} refused ({e}); busy polling may be partial or off"
                );
            }
            Err(e) => return Err(SyscallError::new(call, e).into()),
        }
    }
    Ok(())
}

/// Checks one RX descriptor and, if it is sound, hands its packet to `f` and queues its frame
/// for the fill ring. Refused descriptors are counted in `batch` and their bytes never read.
fn deliver(
    desc: XdpDesc,
    area: &UmemArea,
    layout: &FrameLayout,
    frames: &mut Frames,
    refill: &mut Vec<u64>,
    batch: &mut RxBatch,
    f: &mut impl FnMut(Received<'_>),
) {
    let range = match layout.check(desc.addr, desc.len) {
        Ok(range) => range,
        Err(DescError::OutOfBounds) => {
            batch.invalid_descriptors += 1;
            return;
        }
        Err(DescError::CrossesFrame { frame }) => {
            batch.invalid_descriptors += 1;
            // A real frame of ours with a bad length: take it back unread, if the kernel had it.
            if frames.transfer(frame, Owner::Kernel, Owner::User) {
                refill.push(layout.frame_addr(frame));
            }
            return;
        }
    };
    if !frames.transfer(range.frame, Owner::Kernel, Owner::User) {
        // Handed out twice, or a TX frame: reading it could alias a frame in use.
        batch.invalid_descriptors += 1;
        return;
    }
    // SAFETY: `range` passed the layout check for this area, and the frame is now ours
    // (Kernel -> User) until it goes back to the fill ring, after `f` has returned.
    let frame = unsafe { area.frame_bytes(range) };
    // SAFETY: as above; the metadata is read only if it lies in the same frame.
    let meta = unsafe { area.bytes_before::<META_LEN>(range) }.and_then(|b| RxMeta::from_bytes(&b));
    let payload =
        meta.and_then(|m| frame.get(usize::from(m.payload_offset)..)?.get(..usize::from(m.payload_len)));
    batch.received += 1;
    if meta.is_none() {
        batch.missing_metadata += 1;
    } else if payload.is_none() {
        batch.payload_out_of_bounds += 1;
    }
    f(Received { meta, frame, payload });
    refill.push(layout.frame_addr(range.frame));
}

impl XskSocket {
    /// Creates a UMEM and an AF_XDP socket, binds it to `queue` of `ifname` and fills the fill
    /// ring with every RX frame. Register [`XskSocket::fd`] in the XSKMAP to start receiving.
    pub fn open(ifname: &str, queue: u32, config: &XskConfig) -> Result<Self, XskError> {
        config.validate()?;
        let not_found = || XskError::InterfaceNotFound { ifname: ifname.to_owned() };
        let c_ifname = CString::new(ifname).map_err(|_| not_found())?;
        sys::if_nametoindex(ifname).map_err(|_| not_found())?;
        let frame_size_error =
            || ConfigError::FrameSize { frame_size: config.frame_size, page_size: sys::xsk::page_size() };
        let layout = FrameLayout::new(config.frame_size, config.frame_count).ok_or_else(frame_size_error)?;
        let bytes = layout.len();
        let too_large =
            || ConfigError::UmemTooLarge { frame_count: config.frame_count, frame_size: config.frame_size };
        let area = UmemArea::new(usize::try_from(bytes).map_err(|_| too_large())?)
            .map_err(|e| SyscallError::new("mmap(UMEM)", e))?;

        let umem_config = UmemConfig {
            fill_size: config.fill_size,
            complete_size: config.completion_size,
            frame_size: config.frame_size,
            headroom: 0,
            flags: 0,
        };
        // SAFETY: `area` is a page-aligned mapping of exactly `bytes` bytes, and it outlives the
        // UMEM and every socket and ring made from it: here it is declared before them (so it is
        // dropped after them on every early return), and `XskSocket` declares it after them.
        let umem = unsafe { Umem::new(umem_config, area.as_raw()) }.map_err(|e| umem_error(e, bytes))?;
        let mut info = IfInfo::invalid();
        info.from_name(&c_ifname).map_err(|_| not_found())?;
        info.set_queue(queue);
        let socket = Socket::with_shared(&info, &umem).map_err(syscall("getsockopt(SO_NETNS_COOKIE)"))?;
        let (fill, completion) = umem
            .fq_cq(&socket)
            .map_err(syscall("setsockopt(XDP_UMEM_FILL_RING/COMPLETION_RING)"))?
            .into_parts();

        let mode_flag = match config.bind {
            // No mode flag: the kernel tries zero-copy and falls back to copy by itself.
            BindPreference::ZeroCopyThenCopy => 0,
            BindPreference::Copy => SocketConfig::XDP_BIND_COPY,
            BindPreference::ZeroCopy => SocketConfig::XDP_BIND_ZEROCOPY,
        };
        let socket_config = SocketConfig {
            rx_size: NonZeroU32::new(config.rx_size),
            tx_size: NonZeroU32::new(config.tx_size),
            bind_flags: mode_flag | SocketConfig::XDP_BIND_NEED_WAKEUP,
        };
        let user = umem.rx_tx(&socket, &socket_config).map_err(syscall("setsockopt(XDP_RX_RING/TX_RING)"))?;
        let rx = user.map_rx().map_err(syscall("mmap(RX ring)"))?;
        let tx = match config.tx_size {
            0 => None,
            _ => Some(Tx::new(user.map_tx().map_err(syscall("mmap(TX ring)"))?)),
        };
        umem.bind(&user).map_err(|e| bind_error(e, ifname, queue, config.bind))?;
        // The socket stays open through the rings and `user`; `Umem` itself (not `Send`) is
        // needed no more.
        drop(socket);
        drop(umem);

        let rx_frames = config.rx_frames();
        let tx_frames = config.tx_frames();
        let mut this = Self {
            rx: Rx::new(rx),
            fill: Fill::new(fill),
            tx,
            completion: Completion::new(completion),
            user,
            area,
            layout,
            frames: Frames::new(rx_frames, tx_frames),
            refill: (0..rx_frames).map(|f| layout.frame_addr(f)).collect(),
            tx_free: (rx_frames..rx_frames + tx_frames).rev().collect(),
            tx_descs: Vec::with_capacity(tx_frames as usize),
            ifname: ifname.to_owned(),
            queue,
            bind_mode: BindMode::Copy,
            busy_poll: config.busy_poll.is_some(),
            completion_size: config.completion_size,
            counters: XskCounters::default(),
            wake_log: RateLimit::default(),
        };
        let options =
            sys::xsk::options(this.fd()).map_err(|e| SyscallError::new("getsockopt(XDP_OPTIONS)", e))?;
        this.bind_mode =
            if options & libc::XDP_OPTIONS_ZEROCOPY != 0 { BindMode::ZeroCopy } else { BindMode::Copy };
        if let Some(bp) = config.busy_poll {
            set_busy_poll(this.fd(), bp, ifname, queue)?;
        }
        this.return_frames()?;
        log::debug!(
            "AF_XDP socket on {ifname} queue {queue}: {} mode, {rx_frames} RX + {tx_frames} TX frames of {} bytes",
            this.bind_mode,
            config.frame_size
        );
        Ok(this)
    }

    /// The socket, for the XSKMAP (`Attachment::register_socket`).
    pub fn fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the fd belongs to the socket that `self.user` (and the rings) keep open; it is
        // closed only when the last of them drops, which is after any borrow of `self` ends.
        unsafe { BorrowedFd::borrow_raw(self.user.as_raw_fd()) }
    }

    /// The mode the kernel granted at bind time.
    pub fn bind_mode(&self) -> BindMode {
        self.bind_mode
    }

    /// The RX queue the socket is bound to.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// The interface the socket is bound to.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Running totals since the socket was opened.
    pub fn counters(&self) -> XskCounters {
        self.counters
    }

    /// Receives up to `max` packets. Each descriptor is checked against the UMEM first; `f`
    /// sees every valid one and may not keep its bytes: the frames go back to the fill ring
    /// before this call returns. Kicks the kernel with `recvfrom` when the fill ring asks for a
    /// wakeup, and on every call when busy polling.
    ///
    /// Errors only when the socket is broken (a wakeup fails with something other than a
    /// transient errno); bad descriptors and packets are counted in the [`RxBatch`].
    pub fn receive(&mut self, max: u32, mut f: impl FnMut(Received<'_>)) -> Result<RxBatch, XskError> {
        if self.busy_poll || self.fill.needs_wakeup() {
            self.wake_rx()?;
        }
        let mut batch = RxBatch::default();
        let Self { rx, area, layout, frames, refill, .. } = self;
        rx.consume(max, |desc| deliver(desc, area, layout, frames, refill, &mut batch, &mut f));
        let c = &mut self.counters;
        c.received += u64::from(batch.received);
        c.invalid_descriptors += u64::from(batch.invalid_descriptors);
        c.missing_metadata += u64::from(batch.missing_metadata);
        c.payload_out_of_bounds += u64::from(batch.payload_out_of_bounds);
        self.return_frames()?;
        Ok(batch)
    }

    /// Descriptors waiting in the RX ring, unread.
    pub fn rx_pending(&self) -> u32 {
        self.rx.pending()
    }

    /// Blocks in `poll(2)` until the RX ring has packets (`true`) or `timeout` passes (`false`).
    /// A signal ends the wait early with `false`.
    pub fn wait(&self, timeout: Duration) -> Result<bool, XskError> {
        Ok(self.wait_with(true, [None, None], Some(timeout))?.rx)
    }

    /// [`wait`](Self::wait) (woken by the RX ring only if `rx`), also woken when one of `also`
    /// (an eventfd, a timerfd; `None` entries are skipped) becomes readable; `timeout` `None`
    /// waits without one.
    pub fn wait_with(
        &self,
        rx: bool,
        also: [Option<BorrowedFd<'_>>; 2],
        timeout: Option<Duration>,
    ) -> Result<Ready, XskError> {
        let ring = rx.then(|| self.fd());
        let [rx, first, second] = sys::poll_readable([ring, also[0], also[1]], timeout)
            .map_err(|e| SyscallError::new("ppoll", e))?;
        Ok(Ready { rx, also: [first, second] })
    }

    /// The kernel's counters for this socket.
    pub fn statistics(&self) -> Result<XdpStatistics, XskError> {
        let (raw, _extended) = sys::xsk::statistics(self.fd())
            .map_err(|e| SyscallError::new("getsockopt(XDP_STATISTICS)", e))?;
        Ok(raw.into())
    }

    /// Sends each packet (whole Ethernet frames) from a free TX frame; packets that cannot go
    /// are counted by reason, not queued. Frames come back as the kernel completes them (reaped
    /// at the start of every call).
    pub fn transmit<'p>(&mut self, packets: impl IntoIterator<Item = &'p [u8]>) -> Result<TxBatch, XskError> {
        if self.tx.is_none() {
            return Err(XskError::NoTxRing);
        }
        let mut batch = TxBatch { completed: self.reap_completions(), ..TxBatch::default() };
        let Self { tx, area, layout, frames, tx_free, tx_descs, .. } = self;
        let Some(tx) = tx.as_mut() else { return Err(XskError::NoTxRing) };
        tx_descs.clear();
        for packet in packets {
            let Ok(len) = u32::try_from(packet.len()) else {
                batch.too_long += 1;
                continue;
            };
            if len > layout.frame_size() {
                batch.too_long += 1;
                continue;
            }
            let Some(frame) = tx_free.pop() else {
                batch.no_frame += 1;
                continue;
            };
            if !frames.transfer(frame, Owner::TxFree, Owner::TxKernel) {
                // The free list and the owners disagree: keep the frame out of circulation.
                log::error!(
                    "{} queue {}: TX frame {frame} on the free list is not free",
                    self.ifname,
                    self.queue
                );
                batch.no_frame += 1;
                continue;
            }
            // SAFETY: `frame` is a TX frame of this layout that was free (now marked in flight,
            // not yet in the ring), and `packet` fits a frame.
            unsafe { area.write_frame(layout, frame, packet) };
            tx_descs.push(XdpDesc { addr: layout.frame_addr(frame), len, options: 0 });
        }
        let queued = tx.produce(tx_descs);
        for desc in &tx_descs[queued..] {
            if let Some(frame) = layout.frame_of(desc.addr)
                && frames.transfer(frame, Owner::TxKernel, Owner::TxFree)
            {
                tx_free.push(frame);
            }
        }
        batch.queued = queued as u32;
        batch.ring_full = (tx_descs.len() - queued) as u32;
        let wake = queued > 0 && tx.needs_wakeup();
        let c = &mut self.counters;
        c.transmitted += u64::from(batch.queued);
        c.tx_too_long += u64::from(batch.too_long);
        c.tx_no_frame += u64::from(batch.no_frame);
        c.tx_ring_full += u64::from(batch.ring_full);
        if wake {
            // In copy mode each sendto transmits at most GENERIC_TX_BATCH descriptors and
            // leaves the rest in the ring; zero-copy drivers take the whole ring from one kick.
            let kicks = match self.bind_mode {
                BindMode::Copy => queued.div_ceil(GENERIC_TX_BATCH),
                BindMode::ZeroCopy => 1,
            };
            for _ in 0..kicks {
                self.counters.tx_wakeups += 1;
                let result = sys::xsk::wake_tx(self.fd());
                self.wakeup_result("sendto", result)?;
            }
        }
        Ok(batch)
    }

    /// Frees the TX frames the kernel has finished with; returns how many.
    fn reap_completions(&mut self) -> u32 {
        let Self { completion, layout, frames, tx_free, counters, completion_size, .. } = self;
        let mut freed = 0;
        completion.consume(*completion_size, |addr| match layout.frame_of(addr) {
            Some(frame) if frames.transfer(frame, Owner::TxKernel, Owner::TxFree) => {
                tx_free.push(frame);
                freed += 1;
            }
            _ => counters.invalid_completions += 1,
        });
        freed
    }

    /// Puts the frames waiting in `refill` back in the fill ring, and wakes the driver if it
    /// asks for it.
    fn return_frames(&mut self) -> Result<(), XskError> {
        if self.refill.is_empty() {
            return Ok(());
        }
        let n = self.fill.produce(&self.refill);
        for &addr in &self.refill[..n] {
            if let Some(frame) = self.layout.frame_of(addr) {
                self.frames.transfer(frame, Owner::User, Owner::Kernel);
            }
        }
        self.refill.drain(..n);
        if !self.refill.is_empty() {
            self.counters.fill_deferred += 1;
        }
        if n > 0 && self.fill.needs_wakeup() {
            self.wake_rx()?;
        }
        Ok(())
    }

    fn wake_rx(&mut self) -> Result<(), XskError> {
        self.counters.rx_wakeups += 1;
        let result = sys::xsk::wake_rx(self.fd());
        self.wakeup_result("recvfrom", result)
    }

    fn wakeup_result(&mut self, call: &'static str, result: io::Result<()>) -> Result<(), XskError> {
        match result {
            Ok(()) => Ok(()),
            Err(e) if transient_wakeup_error(&e) => {
                if matches!(e.raw_os_error(), Some(libc::ENETDOWN | libc::ENOBUFS)) {
                    self.counters.wakeup_errors += 1;
                    if self.wake_log.allow() {
                        log::warn!(
                            "{} queue {}: {call} wakeup: {e} (at most one such message a minute)",
                            self.ifname,
                            self.queue
                        );
                    }
                }
                Ok(())
            }
            Err(e) => Err(SyscallError::new(call, e).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_mode_reads_well() {
        assert_eq!(BindMode::ZeroCopy.to_string(), "zero-copy");
        assert_eq!(BindMode::Copy.to_string(), "copy");
        assert_eq!(serde_json::to_string(&BindMode::ZeroCopy).ok().as_deref(), Some("\"zero-copy\""));
        assert_eq!(serde_json::to_string(&BindMode::Copy).ok().as_deref(), Some("\"copy\""));
    }

    #[test]
    fn bind_errors_say_what_to_do() {
        let busy = bind_error(xdpilone_errno(libc::EBUSY), "eth0", 3, BindPreference::Copy);
        assert!(matches!(busy, XskError::QueueBusy { queue: 3, .. }), "{busy:?}");
        let inval = bind_error(xdpilone_errno(libc::EINVAL), "eth0", 9, BindPreference::ZeroCopyThenCopy);
        let text = inval.to_string();
        assert!(text.contains("ethtool -l eth0") && text.contains("zero-copy-then-copy"), "{text}");
        let zc = bind_error(xdpilone_errno(libc::EOPNOTSUPP), "nonexistent0", 0, BindPreference::ZeroCopy);
        assert!(matches!(zc, XskError::ZeroCopyUnsupported { .. }), "{zc:?}");
        assert!(zc.to_string().contains("use copy mode"), "{zc}");
        // Without a zero-copy demand, EOPNOTSUPP is just a bind error.
        let other = bind_error(xdpilone_errno(libc::EOPNOTSUPP), "eth0", 0, BindPreference::Copy);
        assert!(matches!(other, XskError::Bind { .. }), "{other:?}");
    }

    #[test]
    fn umem_errors_are_told_apart() {
        assert!(matches!(umem_error(xdpilone_errno(libc::EAFNOSUPPORT), 1), XskError::Unsupported { .. }));
        let e = umem_error(xdpilone_errno(libc::ENOMEM), 8 << 20);
        assert!(matches!(e, XskError::UmemRegistration { bytes: 8388608, .. }), "{e:?}");
        assert!(e.to_string().contains("RLIMIT_MEMLOCK"));
        // xdpilone's negative errno values are normalised.
        assert_eq!(os_error(xdpilone_errno(-libc::EINVAL)).raw_os_error(), Some(libc::EINVAL));
    }

    #[test]
    fn transient_wakeup_errors_are_tolerated() {
        for errno in [libc::EAGAIN, libc::EBUSY, libc::ENOBUFS, libc::ENETDOWN, libc::EINTR] {
            assert!(transient_wakeup_error(&io::Error::from_raw_os_error(errno)), "{errno}");
        }
        for errno in [libc::ENXIO, libc::EBADF, libc::EOPNOTSUPP] {
            assert!(!transient_wakeup_error(&io::Error::from_raw_os_error(errno)), "{errno}");
        }
    }

    #[test]
    fn rate_limit_allows_one_message_a_minute() {
        let mut limit = RateLimit::default();
        assert!(limit.allow());
        assert!(!limit.allow());
        limit.last = Instant::now().checked_sub(Duration::from_secs(61));
        assert!(limit.allow());
    }

    #[test]
    fn open_refuses_bad_config_and_unknown_interfaces_before_any_syscall() {
        let bad = XskConfig { fill_size: 4096, ..XskConfig::default() };
        let e = XskSocket::open("lo", 0, &bad).expect_err("fill ring too small");
        assert!(matches!(e, XskError::InvalidConfig(ConfigError::FillTooSmall { .. })), "{e:?}");
        let e = XskSocket::open("tgnosuchif0", 0, &XskConfig::default()).expect_err("no interface");
        assert!(matches!(e, XskError::InterfaceNotFound { .. }), "{e:?}");
        let e = XskSocket::open("bad\0name", 0, &XskConfig::default()).expect_err("NUL in name");
        assert!(matches!(e, XskError::InterfaceNotFound { .. }), "{e:?}");
    }

    /// What the receive callback saw: metadata, frame bytes, payload bytes.
    type Seen = Vec<(Option<RxMeta>, Vec<u8>, Option<Vec<u8>>)>;

    /// A UMEM of 4 frames on anonymous memory, RX frames 0..3 with the kernel, frame 3 for TX.
    struct FakeKernel {
        area: UmemArea,
        layout: FrameLayout,
        frames: Frames,
        refill: Vec<u64>,
    }

    const FRAME: u32 = 2048;
    /// Where copy mode puts the packet: after XDP_PACKET_HEADROOM.
    const HEADROOM: u64 = 256;

    impl FakeKernel {
        fn new() -> Self {
            let layout = FrameLayout::new(FRAME, 4).expect("power of two");
            let area = UmemArea::new(layout.len() as usize).expect("anonymous mmap");
            let mut frames = Frames::new(3, 1);
            for frame in 0..3 {
                assert!(frames.transfer(frame, Owner::User, Owner::Kernel));
            }
            Self { area, layout, frames, refill: Vec::new() }
        }

        /// Writes `packet` at the copy-mode offset of `frame`, with metadata in front of it.
        fn receive_into(&self, frame: u32, meta: Option<[u8; META_LEN]>, packet: &[u8]) -> XdpDesc {
            let mut bytes = vec![0u8; HEADROOM as usize + packet.len()];
            if let Some(meta) = meta {
                bytes[HEADROOM as usize - META_LEN..HEADROOM as usize].copy_from_slice(&meta);
            }
            bytes[HEADROOM as usize..].copy_from_slice(packet);
            // SAFETY: the test owns the whole area; the bytes fit a frame.
            unsafe { self.area.write_frame(&self.layout, frame, &bytes) };
            XdpDesc { addr: self.layout.frame_addr(frame) + HEADROOM, len: packet.len() as u32, options: 0 }
        }

        /// Runs one descriptor through `deliver`, collecting what the callback saw.
        fn deliver(&mut self, desc: XdpDesc, batch: &mut RxBatch) -> Seen {
            let mut seen = Vec::new();
            let mut f =
                |r: Received<'_>| seen.push((r.meta, r.frame.to_vec(), r.payload.map(<[u8]>::to_vec)));
            deliver(desc, &self.area, &self.layout, &mut self.frames, &mut self.refill, batch, &mut f);
            seen
        }
    }

    fn meta_bytes(payload_offset: u16, payload_len: u16, magic: u32) -> [u8; META_LEN] {
        let mut b = [0u8; META_LEN];
        b[0..8].copy_from_slice(&123_456_789u64.to_ne_bytes());
        b[8..12].copy_from_slice(&tickgate_common::meta::flags::TS_XDP.to_ne_bytes());
        b[12..16].copy_from_slice(&tickgate_common::meta::KFUNC_NOT_CALLED.to_ne_bytes());
        b[16..18].copy_from_slice(&payload_offset.to_ne_bytes());
        b[18..20].copy_from_slice(&payload_len.to_ne_bytes());
        b[20..24].copy_from_slice(&magic.to_ne_bytes());
        b
    }

    #[test]
    fn a_sound_descriptor_delivers_packet_meta_and_payload_and_recycles_the_frame_base() {
        let mut k = FakeKernel::new();
        let packet: Vec<u8> = (0..60).collect();
        let desc = k.receive_into(1, Some(meta_bytes(42, 18, tickgate_common::meta::MAGIC)), &packet);
        let mut batch = RxBatch::default();
        let seen = k.deliver(desc, &mut batch);
        assert_eq!(batch, RxBatch { received: 1, ..RxBatch::default() });
        let (meta, frame, payload) = &seen[0];
        let meta = meta.expect("metadata present");
        assert_eq!(
            (meta.rx_ts_ns, meta.flags, meta.payload_offset, meta.payload_len),
            (123_456_789, 2, 42, 18)
        );
        assert_eq!(frame, &packet);
        assert_eq!(payload.as_deref(), Some(&packet[42..60]));
        assert_eq!(k.refill, vec![u64::from(FRAME)], "the frame base goes back, not the descriptor address");
        assert_eq!(k.frames.owner(1), Some(Owner::User));
    }

    #[test]
    fn the_same_frame_handed_out_twice_is_refused_the_second_time() {
        let mut k = FakeKernel::new();
        let desc = k.receive_into(2, None, &[1, 2, 3]);
        let mut batch = RxBatch::default();
        assert_eq!(k.deliver(desc, &mut batch).len(), 1);
        assert!(k.deliver(desc, &mut batch).is_empty());
        assert_eq!(
            batch,
            RxBatch { received: 1, invalid_descriptors: 1, missing_metadata: 1, payload_out_of_bounds: 0 }
        );
        assert_eq!(k.refill, vec![2 * u64::from(FRAME)]);
    }

    #[test]
    fn descriptors_outside_the_umem_or_a_frame_are_counted_and_not_read() {
        let mut k = FakeKernel::new();
        let mut batch = RxBatch::default();
        for desc in [
            XdpDesc { addr: 4 * u64::from(FRAME), len: 1, options: 0 },
            XdpDesc { addr: u64::MAX, len: u32::MAX, options: 0 },
        ] {
            assert!(k.deliver(desc, &mut batch).is_empty());
        }
        assert!(k.refill.is_empty(), "no frame to give back");
        // Crossing into the next frame: refused, but the frame is ours and goes back unread.
        let crossing = XdpDesc { addr: HEADROOM, len: FRAME, options: 0 };
        assert!(k.deliver(crossing, &mut batch).is_empty());
        assert_eq!(k.refill, vec![0]);
        // The TX frame coming back on the RX ring.
        let tx = XdpDesc { addr: 3 * u64::from(FRAME) + HEADROOM, len: 10, options: 0 };
        assert!(k.deliver(tx, &mut batch).is_empty());
        assert_eq!(batch, RxBatch { invalid_descriptors: 4, ..RxBatch::default() });
    }

    #[test]
    fn bad_magic_means_no_metadata_and_a_bad_payload_range_means_no_payload() {
        let mut k = FakeKernel::new();
        let mut batch = RxBatch::default();
        let desc = k.receive_into(0, Some(meta_bytes(0, 10, 0xdead_beef)), &[7; 20]);
        let seen = k.deliver(desc, &mut batch);
        assert_eq!((seen[0].0, seen[0].2.as_deref()), (None, None));
        for (offset, len) in [(15u16, 6u16), (21, 0), (u16::MAX, u16::MAX)] {
            let desc =
                k.receive_into(1, Some(meta_bytes(offset, len, tickgate_common::meta::MAGIC)), &[7; 20]);
            assert!(
                k.frames.transfer(1, Owner::User, Owner::Kernel) || k.frames.owner(1) == Some(Owner::Kernel)
            );
            let seen = k.deliver(desc, &mut batch);
            assert!(seen[0].0.is_some() && seen[0].2.is_none(), "{offset} {len}");
        }
        assert_eq!(
            batch,
            RxBatch { received: 4, invalid_descriptors: 0, missing_metadata: 1, payload_out_of_bounds: 3 }
        );
    }

    #[test]
    fn metadata_is_not_read_across_the_frame_start() {
        let mut k = FakeKernel::new();
        // A packet at the very start of frame 2: the 24 bytes before it belong to frame 1.
        let desc = XdpDesc { addr: 2 * u64::from(FRAME), len: 8, options: 0 };
        let mut batch = RxBatch::default();
        let seen = k.deliver(desc, &mut batch);
        assert_eq!(seen[0].0, None);
        assert_eq!(batch.missing_metadata, 1);
    }

    /// xdpilone's `Errno` has no public constructor from a value; errno is thread-local.
    fn xdpilone_errno(value: i32) -> xdpilone::Errno {
        // SAFETY: `__errno_location` returns this thread's errno slot, always valid to write.
        unsafe { *libc::__errno_location() = value };
        xdpilone::Errno::last_os_error()
    }
}
