//! Loading, attaching, pinning and detaching the XDP program, with libbpf.
//!
//! One object holds two programs (see `xdp-prog`). [`Attachment::attach`] picks one by the
//! [`Timestamps`] policy, loads it (device-bound for `tickgate_hw`), attaches it with a
//! bpf_link in the requested [`Mode`] and fills the game-port and rate-limit maps. An attachment lives as long
//! as its link fd, unless [`Attachment::pin`] pins the link and maps under
//! `/sys/fs/bpf/tickgate/<ifname>/`, where `tickgate unload` finds and removes them.

use std::{
    fmt, fs, io,
    net::{IpAddr, SocketAddr},
    os::fd::{AsFd as _, BorrowedFd, OwnedFd},
    path::PathBuf,
};

use libbpf_rs::{MapCore as _, MapFlags, MapHandle, libbpf_sys};
use serde::Serialize;
use tickgate_common::session::{HandshakeLimit, SESSION_KEY_LEN, SessionKey};

use super::{
    counters::{COUNTER_SLOTS, TimestampCounters, XdpCounters},
    error::{LoadError, libbpf},
    kfunc, object,
    object::{LINK_PIN, PINNED_MAPS},
    pins::{pin_dir, remove_pins, require_bpffs},
    privileges,
    rate_limit::RateLimit,
    rx_seq::QueueCounts,
};
use crate::sys::{self, SyscallError};

/// How the program is attached to the interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// In the driver, before any skb exists (`XDP_FLAGS_DRV_MODE`). Needs driver support.
    Native,
    /// Generic XDP on the skb (`XDP_FLAGS_SKB_MODE`): any driver, slower, copy-mode AF_XDP only.
    Skb,
}

impl Mode {
    fn xdp_flags(self) -> u32 {
        match self {
            Self::Native => libbpf_sys::XDP_FLAGS_DRV_MODE,
            Self::Skb => libbpf_sys::XDP_FLAGS_SKB_MODE,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Native => "native",
            Self::Skb => "skb",
        })
    }
}

/// Which receive timestamps to ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timestamps {
    /// The NIC clock where the device-bound program loads and attaches, else the XDP clock.
    Auto,
    /// The NIC clock, or fail: the device-bound `hw` program, native mode only.
    Nic,
    /// The XDP-hook TAI clock: the `tai` program.
    Xdp,
}

/// One of the two programs in the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Program {
    /// `tickgate_hw`: device-bound, NIC timestamp with XDP-clock fallback per packet.
    Hw,
    /// `tickgate_tai`: XDP-clock timestamps only.
    Tai,
}

impl Program {
    /// The program's name in the object and in the kernel.
    pub fn name(self) -> &'static str {
        match self {
            Self::Hw => object::HW_PROGRAM,
            Self::Tai => object::TAI_PROGRAM,
        }
    }

    pub(super) fn from_name(name: &str) -> Option<Self> {
        [Self::Hw, Self::Tai].into_iter().find(|p| p.name() == name)
    }

    /// The clock the program stamps with, as status reports it.
    pub fn timestamp_source(self) -> &'static str {
        match self {
            Self::Hw => "nic (xdp when the NIC gives none)",
            Self::Tai => "xdp",
        }
    }
}

/// What to attach where.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Interface name.
    pub ifname: String,
    /// Game UDP ports.
    pub ports: Vec<u16>,
    /// Attach mode.
    pub mode: Mode,
    /// Timestamp policy.
    pub timestamps: Timestamps,
    /// Replace a program already attached (atomically when it is tickgate's own pinned link).
    pub force: bool,
    /// Per-source flood shedding on game ports; `None` admits every valid game packet.
    pub rate_limit: Option<RateLimit>,
    /// Serve protocol v1 too: unauthenticated inputs, for closed LANs and tests only
    /// (`--insecure-v1`). Off, XDP drops v1 packets as `bad_version`.
    pub insecure_v1: bool,
}

/// Capacity of the `GAME_PORTS` map (see `xdp-prog`).
pub const MAX_PORTS: usize = 1024;

/// A loaded (not necessarily attached) program with its maps.
pub struct Loaded {
    pub(super) object: libbpf_rs::Object,
    program: Program,
}

impl fmt::Debug for Loaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loaded").field("program", &self.program).finish_non_exhaustive()
    }
}

impl Loaded {
    /// Loads `program` from the embedded object without attaching it; `ifindex` is the device
    /// the `hw` program is bound to (ignored for `tai`). Used by `BPF_PROG_TEST_RUN` fixtures.
    pub fn load(program: Program, ifindex: u32) -> Result<Self, LoadError> {
        Ok(Self { object: load_object(program, ifindex)?, program })
    }

    /// Adds game ports to the port map.
    pub fn set_ports(&self, ports: &[u16]) -> Result<(), LoadError> {
        let map = self.map(object::PORTS_MAP)?;
        for port in ports {
            map.update(&port.to_ne_bytes(), &[1u8], MapFlags::ANY)
                .map_err(libbpf("filling the game-port map"))?;
        }
        Ok(())
    }

    /// Sets the per-source rate limit; `None` disables it. Takes effect on the next packet;
    /// buckets already filled keep their tokens, capped at the new burst.
    pub fn set_rate_limit(&self, limit: Option<RateLimit>) -> Result<(), LoadError> {
        self.map(object::RATE_LIMIT_MAP)?
            .update(&0u32.to_ne_bytes(), &RateLimit::config(limit).to_ne_bytes(), MapFlags::ANY)
            .map_err(libbpf("writing the rate-limit map"))
    }

    /// Admits (or drops, as `bad_version`) protocol v1 packets.
    pub fn set_insecure_v1(&self, allow: bool) -> Result<(), LoadError> {
        self.map(object::PROTOCOL_MAP)?
            .update(&0u32.to_ne_bytes(), &u32::from(allow).to_ne_bytes(), MapFlags::ANY)
            .map_err(libbpf("writing the protocol map"))
    }

    /// Whether protocol v1 is admitted.
    pub fn insecure_v1(&self) -> Result<bool, LoadError> {
        read_insecure_v1(&self.map(object::PROTOCOL_MAP)?)
    }

    /// Sets the handshake budget (per source and global, per CPU); disabled configs admit all.
    pub fn set_handshake_limit(&self, limit: &HandshakeLimit) -> Result<(), LoadError> {
        self.map(object::HANDSHAKE_LIMIT_MAP)?
            .update(&0u32.to_ne_bytes(), &limit.to_ne_bytes(), MapFlags::ANY)
            .map_err(libbpf("writing the handshake-limit map"))
    }

    /// A handle on the session map that outlives this borrow (workers own one each).
    pub fn session_map(&self) -> Result<SessionMap, LoadError> {
        let map = self.map(object::SESSIONS_MAP)?;
        let handle = MapHandle::try_from(&map).map_err(libbpf("opening the session map"))?;
        Ok(SessionMap(handle))
    }

    /// The program's per-queue counts of steered packets, mapped for loads (see [`QueueCounts`]).
    pub fn queue_counts(&self) -> Result<QueueCounts, LoadError> {
        let map = self.map(object::RX_SEQ_MAP)?;
        QueueCounts::map(map.as_fd()).map_err(|e| LoadError::from(SyscallError::new("mmap of RX_SEQ", e)))
    }

    /// Puts the AF_XDP socket `fd` in the XSKMAP slot of RX queue `queue`.
    pub fn register_socket(&self, queue: u32, fd: BorrowedFd<'_>) -> Result<(), LoadError> {
        let value = (sys::raw(fd) as u32).to_ne_bytes();
        self.map(object::XSKS_MAP)?
            .update(&queue.to_ne_bytes(), &value, MapFlags::ANY)
            .map_err(libbpf("registering the AF_XDP socket in the XSKMAP"))
    }

    /// Empties the XSKMAP slot of RX queue `queue`: from then on the program passes that
    /// queue's game packets to the kernel, counted as `no_socket`.
    pub fn unregister_socket(&self, queue: u32) -> Result<(), LoadError> {
        self.map(object::XSKS_MAP)?
            .delete(&queue.to_ne_bytes())
            .map_err(libbpf("removing the AF_XDP socket from the XSKMAP"))
    }

    /// Current counters, summed over CPUs.
    pub fn counters(&self) -> Result<(XdpCounters, TimestampCounters), LoadError> {
        read_counters(&self.map(object::COUNTERS_MAP)?)
    }

    /// Runs the program once on `frame` with `BPF_PROG_TEST_RUN`; returns the XDP action.
    pub fn test_run(&self, frame: &[u8]) -> Result<u32, LoadError> {
        let prog = self.object.progs_mut().find(|p| p.name() == self.program.name()).ok_or_else(|| {
            LoadError::Libbpf {
                what: "finding the program in the object",
                source: libbpf_rs::Error::from(io::Error::from(io::ErrorKind::NotFound)),
            }
        })?;
        let input = libbpf_rs::ProgramInput { data_in: Some(frame), ..Default::default() };
        let output = prog.test_run(input).map_err(libbpf("BPF_PROG_TEST_RUN"))?;
        Ok(output.return_value)
    }

    fn map(&self, name: &str) -> Result<libbpf_rs::Map<'_>, LoadError> {
        self.object.maps().find(|m| m.name() == name).ok_or_else(|| LoadError::Libbpf {
            what: "finding a map in the object",
            source: libbpf_rs::Error::from(io::Error::from(io::ErrorKind::NotFound)),
        })
    }
}

/// The XDP session map: which client address and port holds which session. Data packets of
/// protocol v2 pass XDP only from a source in it, naming its session.
#[derive(Debug)]
pub struct SessionMap(MapHandle);

impl SessionMap {
    fn key(addr: SocketAddr) -> [u8; SESSION_KEY_LEN] {
        let ip = match addr.ip() {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        SessionKey::new(ip.octets(), addr.port()).to_ne_bytes()
    }

    /// Admits `addr`'s data packets naming `session`.
    pub fn insert(&self, addr: SocketAddr, session: u32) -> Result<(), LoadError> {
        self.0
            .update(&Self::key(addr), &session.to_ne_bytes(), MapFlags::ANY)
            .map_err(libbpf("adding a session to the XDP session map"))
    }

    /// Stops admitting `addr`'s data packets; `false` if it had no entry.
    pub fn remove(&self, addr: SocketAddr) -> Result<bool, LoadError> {
        match self.0.delete(&Self::key(addr)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(libbpf("removing a session from the XDP session map")(e)),
        }
    }

    /// The session `addr` holds, if any.
    pub fn get(&self, addr: SocketAddr) -> Result<Option<u32>, LoadError> {
        let value =
            self.0.lookup(&Self::key(addr), MapFlags::ANY).map_err(libbpf("reading the XDP session map"))?;
        Ok(value.and_then(|v| <[u8; 4]>::try_from(v.as_slice()).ok()).map(u32::from_ne_bytes))
    }
}

/// An attached program with its maps.
pub struct Attachment {
    pub(super) loaded: Loaded,
    pub(super) link: OwnedFd,
    ifindex: u32,
    pub(super) ifname: String,
    program: Program,
    mode: Mode,
    notes: Vec<String>,
}

impl fmt::Debug for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attachment")
            .field("ifname", &self.ifname)
            .field("ifindex", &self.ifindex)
            .field("program", &self.program)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// Routes libbpf's own messages to `log` (they are noisy at info level).
fn route_libbpf_logs() {
    fn print(level: libbpf_rs::PrintLevel, msg: String) {
        let msg = msg.trim_end();
        match level {
            libbpf_rs::PrintLevel::Warn => log::debug!(target: "libbpf", "{msg}"),
            _ => log::trace!(target: "libbpf", "{msg}"),
        }
    }
    libbpf_rs::set_print(Some((libbpf_rs::PrintLevel::Debug, print)));
}

/// Opens the embedded object with only `program` enabled and loads it.
fn load_object(program: Program, ifindex: u32) -> Result<libbpf_rs::Object, LoadError> {
    route_libbpf_logs();
    let mut elf = object::elf().to_vec();
    if program == Program::Hw {
        let id = kfunc::rx_timestamp_btf_id()?;
        kfunc::patch_placeholder_calls(&mut elf, id)?;
    }
    let mut builder = libbpf_rs::ObjectBuilder::default();
    builder.name("tickgate").map_err(libbpf("naming the object"))?;
    let mut open = builder.open_memory(&elf).map_err(libbpf("opening the XDP object"))?;
    for mut prog in open.progs_mut() {
        let wanted = prog.name() == program.name();
        prog.set_autoload(wanted);
        if wanted && program == Program::Hw {
            prog.set_ifindex(ifindex);
            prog.set_flags(libbpf_sys::BPF_F_XDP_DEV_BOUND_ONLY);
        }
    }
    open.load().map_err(libbpf("loading the XDP program"))
}

fn find_program(object: &libbpf_rs::Object, program: Program) -> Result<libbpf_rs::Program<'_>, LoadError> {
    object.progs().find(|p| p.name() == program.name()).ok_or_else(|| LoadError::Libbpf {
        what: "finding the program in the object",
        source: libbpf_rs::Error::from(io::Error::from(io::ErrorKind::NotFound)),
    })
}

fn interface_index(ifname: &str) -> Result<u32, LoadError> {
    sys::if_nametoindex(ifname).map_err(|_| LoadError::InterfaceNotFound { ifname: ifname.to_owned() })
}

/// The program attached to an interface in any mode, with the mode.
fn attached_program(ifindex: u32) -> Result<Option<(u32, Mode)>, LoadError> {
    let q = sys::xdp_query(ifindex).map_err(|e| SyscallError::new("bpf_xdp_query", e))?;
    Ok(if q.drv_prog_id != 0 {
        Some((q.drv_prog_id, Mode::Native))
    } else if q.skb_prog_id != 0 {
        Some((q.skb_prog_id, Mode::Skb))
    } else {
        None
    })
}

/// Our pinned link on `ifname`, if there is one and it still holds `prog_id`.
fn our_pinned_link(ifname: &str, prog_id: u32) -> Option<OwnedFd> {
    let link = sys::obj_get(&pin_dir(ifname).join(LINK_PIN)).ok()?;
    let (linked, _) = sys::xdp_link_info(link.as_fd()).ok()?;
    (linked == prog_id).then_some(link)
}

impl Attachment {
    /// Loads the program chosen by `opts.timestamps`, attaches it to `opts.ifname` with a
    /// bpf_link and fills the port map. The program stays attached while the returned value (or
    /// a pin made by [`Attachment::pin`]) lives.
    pub fn attach(opts: &LoadOptions) -> Result<Self, LoadError> {
        privileges::require("load")?;
        if opts.ports.is_empty() || opts.ports.len() > MAX_PORTS {
            return Err(LoadError::Ports { given: opts.ports.len(), max: MAX_PORTS });
        }
        let ifindex = interface_index(&opts.ifname)?;
        let mut replace_link = None;
        if let Some((prog_id, mode)) = attached_program(ifindex)? {
            let ours = our_pinned_link(&opts.ifname, prog_id);
            if !opts.force {
                let prog_name = sys::prog_info(prog_id).map(|i| i.name).unwrap_or_else(|_| "?".into());
                let hint = if ours.is_some() { ", or 'tickgate unload' it first" } else { "" };
                let mode = if mode == Mode::Native { "native" } else { "skb" };
                return Err(LoadError::AlreadyAttached {
                    ifname: opts.ifname.clone(),
                    prog_id,
                    prog_name,
                    mode,
                    hint,
                });
            }
            match ours {
                Some(link) if mode == opts.mode => replace_link = Some(link),
                Some(link) => {
                    log::warn!(
                        "{}: mode changes from {mode} to {}: detaching first (not atomic)",
                        opts.ifname,
                        opts.mode
                    );
                    sys::link_detach(link.as_fd()).map_err(|e| SyscallError::new("bpf_link_detach", e))?;
                    remove_pins(&opts.ifname)?;
                }
                None => detach_foreign(&opts.ifname, ifindex, prog_id, mode)?,
            }
        }

        let mut notes = Vec::new();
        let candidates: &[Program] = match (opts.timestamps, opts.mode) {
            (Timestamps::Xdp, _) => &[Program::Tai],
            (Timestamps::Nic, Mode::Skb) => return Err(LoadError::NicNeedsNative),
            (Timestamps::Nic, Mode::Native) => &[Program::Hw],
            (Timestamps::Auto, Mode::Skb) => {
                notes.push("skb mode: the device-bound NIC-timestamp program attaches only in native mode; using the XDP clock (tickgate_tai)".to_owned());
                &[Program::Tai]
            }
            (Timestamps::Auto, Mode::Native) => &[Program::Hw, Program::Tai],
        };
        let demanded = opts.timestamps == Timestamps::Nic;
        let mut last_error = None;
        for &program in candidates {
            let object = match load_object(program, ifindex) {
                Ok(object) => object,
                Err(e) if program == Program::Hw => {
                    let e = match e {
                        LoadError::Kfunc(k) if demanded => return Err(LoadError::Kfunc(k)),
                        LoadError::Libbpf { source, .. } if demanded => {
                            return Err(LoadError::DeviceBoundRefused {
                                ifname: opts.ifname.clone(),
                                reason: source.to_string(),
                            });
                        }
                        other => other,
                    };
                    notes.push(format!(
                        "device-bound tickgate_hw not loaded ({e}); using the XDP clock (tickgate_tai)"
                    ));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let prog = find_program(&object, program)?;
            let fd = prog.as_fd();
            let link = match &replace_link {
                Some(link) => sys::link_update(link.as_fd(), fd)
                    .map_err(|e| SyscallError::new("bpf_link_update", e))
                    .and_then(|()| link.try_clone().map_err(|e| SyscallError::new("dup", e))),
                None => sys::xdp_link_create(fd, ifindex, opts.mode.xdp_flags())
                    .map_err(|e| SyscallError::new("bpf_link_create", e)),
            };
            let link = match link {
                Ok(link) => link,
                Err(e) => {
                    let err = classify_attach_error(e, opts, ifindex, prog_fd_id(fd));
                    let fatal = matches!(
                        err,
                        LoadError::NativeUnsupported { .. }
                            | LoadError::AlreadyAttached { .. }
                            | LoadError::ForeignLink { .. }
                    );
                    if program == Program::Hw && !demanded && !fatal {
                        notes.push(format!("device-bound tickgate_hw did not attach ({err}); using the XDP clock (tickgate_tai)"));
                        last_error = Some(err);
                        continue;
                    }
                    return Err(err);
                }
            };
            let attachment = Self {
                loaded: Loaded { object, program },
                link,
                ifindex,
                ifname: opts.ifname.clone(),
                program,
                mode: opts.mode,
                notes,
            };
            attachment.loaded.set_ports(&opts.ports)?;
            attachment.loaded.set_rate_limit(opts.rate_limit)?;
            attachment.loaded.set_insecure_v1(opts.insecure_v1)?;
            if replace_link.is_some() {
                // The pinned link now runs the new program; its maps must be the pinned ones.
                attachment.pin()?;
            }
            return Ok(attachment);
        }
        Err(last_error.unwrap_or(LoadError::DeviceBoundRefused {
            ifname: opts.ifname.clone(),
            reason: "no program could be loaded".into(),
        }))
    }

    /// The loaded program and its maps (ports, XSKMAP, counters).
    pub fn loaded(&self) -> &Loaded {
        &self.loaded
    }

    /// Puts the AF_XDP socket `fd` in the XSKMAP slot of RX queue `queue`.
    pub fn register_socket(&self, queue: u32, fd: BorrowedFd<'_>) -> Result<(), LoadError> {
        self.loaded.register_socket(queue, fd)
    }

    /// Empties the XSKMAP slot of RX queue `queue` (see [`Loaded::unregister_socket`]).
    pub fn unregister_socket(&self, queue: u32) -> Result<(), LoadError> {
        self.loaded.unregister_socket(queue)
    }

    /// Current counters, summed over CPUs.
    pub fn counters(&self) -> Result<(XdpCounters, TimestampCounters), LoadError> {
        self.loaded.counters()
    }

    /// The program that was attached.
    pub fn program(&self) -> Program {
        self.program
    }

    /// Whether the link still holds the program on the interface: false once the interface was
    /// deleted (the kernel then detaches every link on it) or the link was detached by force.
    pub fn is_attached(&self) -> bool {
        sys::xdp_link_info(self.link.as_fd()).is_ok_and(|(_, ifindex)| ifindex != 0)
    }

    /// The interface name.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The attach mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The interface index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Why the program differs from what was asked for (e.g. why `auto` fell back to `tai`).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }
}

fn prog_fd_id(fd: BorrowedFd<'_>) -> u32 {
    libbpf_rs::Program::id_from_fd(fd).unwrap_or(0)
}

/// Turns a failed link create/update into the error a user can act on.
fn classify_attach_error(e: SyscallError, opts: &LoadOptions, ifindex: u32, _prog_id: u32) -> LoadError {
    match e.errno() {
        Some(libc::EOPNOTSUPP) if opts.mode == Mode::Native => LoadError::NativeUnsupported {
            ifname: opts.ifname.clone(),
            driver: sys::driver_name(&opts.ifname).unwrap_or_else(|_| "unknown".into()),
        },
        Some(libc::EBUSY | libc::EEXIST) => match attached_program(ifindex) {
            Ok(Some((prog_id, _))) => LoadError::ForeignLink { ifname: opts.ifname.clone(), prog_id },
            _ => LoadError::Syscall(e),
        },
        _ => LoadError::Syscall(e),
    }
}

/// `--force` over a program tickgate did not pin: detach it through netlink (not atomic).
fn detach_foreign(ifname: &str, ifindex: u32, prog_id: u32, mode: Mode) -> Result<(), LoadError> {
    log::warn!("{ifname}: --force: detaching program id {prog_id} first; the replacement is not atomic");
    match sys::xdp_detach(ifindex, mode.xdp_flags(), prog_id) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
            Err(LoadError::ForeignLink { ifname: ifname.to_owned(), prog_id })
        }
        Err(e) => Err(SyscallError::new("bpf_xdp_detach", e).into()),
    }
}

pub(super) fn read_insecure_v1(map: &impl libbpf_rs::MapCore) -> Result<bool, LoadError> {
    let value = map.lookup(&0u32.to_ne_bytes(), MapFlags::ANY).map_err(libbpf("reading the protocol map"))?;
    Ok(value
        .and_then(|v| <[u8; 4]>::try_from(v.as_slice()).ok())
        .is_some_and(|b| u32::from_ne_bytes(b) & 1 != 0))
}

pub(super) fn read_counters(
    map: &impl libbpf_rs::MapCore,
) -> Result<(XdpCounters, TimestampCounters), LoadError> {
    let mut slots = Vec::with_capacity(COUNTER_SLOTS as usize);
    for slot in 0..COUNTER_SLOTS {
        let per_cpu = map
            .lookup_percpu(&slot.to_ne_bytes(), MapFlags::ANY)
            .map_err(libbpf("reading the counter map"))?
            .unwrap_or_default();
        slots.push(
            per_cpu
                .iter()
                .filter_map(|v| v.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_ne_bytes))
                .sum(),
        );
    }
    Ok(XdpCounters::from_slots(&slots))
}

impl Attachment {
    /// Pins the link and maps under [`pin_dir`], so the attachment outlives this process.
    /// Idempotent: map pins of an earlier program (before a `--force` replace) are replaced.
    pub fn pin(&self) -> Result<PathBuf, LoadError> {
        require_bpffs()?;
        let dir = pin_dir(&self.ifname);
        fs::create_dir_all(&dir).map_err(|source| LoadError::Pin { path: dir.clone(), source })?;
        let link_path = dir.join(LINK_PIN);
        if !link_path.exists() {
            sys::obj_pin(self.link.as_fd(), &link_path)
                .map_err(|source| LoadError::Pin { path: link_path, source })?;
        }
        for map in self.loaded.object.maps() {
            let name = map.name().to_string_lossy().into_owned();
            if PINNED_MAPS.contains(&name.as_str()) {
                let path = dir.join(&name);
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(source) => return Err(LoadError::Pin { path, source }),
                }
                sys::obj_pin(map.as_fd(), &path).map_err(|source| LoadError::Pin { path, source })?;
            }
        }
        Ok(dir)
    }
}
