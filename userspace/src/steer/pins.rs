//! Pins under bpffs: what `tickgate load` leaves behind, and what `status`, `unload` and `clean` read.
//!
//! A pinned attachment is its bpf_link and its maps under `/sys/fs/bpf/tickgate/<ifname>/`; the
//! program stays attached while the link pin exists.

use std::{
    fs, io,
    os::fd::AsFd as _,
    path::{Path, PathBuf},
};

use libbpf_rs::{MapCore as _, MapFlags, MapHandle};
use serde::Serialize;
use tickgate_common::rate::{RATE_CONFIG_LEN, RateConfig};

use super::{
    attach::{Attachment, LoadError, Mode, Program, libbpf, read_counters},
    counters::{TimestampCounters, XdpCounters},
    object, privileges,
    rate_limit::RateLimit,
};
use crate::sys::{self, SyscallError};

/// Where bpffs must be mounted.
pub const BPFFS: &str = "/sys/fs/bpf";
/// Directory under bpffs holding one sub-directory of pins per interface.
pub const PIN_ROOT: &str = "/sys/fs/bpf/tickgate";
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
pub(super) const LINK_PIN: &str = "link";

/// Maps pinned beside the link: what `status` reads and `unload` removes. The rate buckets are
/// not pinned: they are per-source state of one program, rebuilt after a replace.
const PINNED_MAPS: [&str; 4] =
    [object::PORTS_MAP, object::XSKS_MAP, object::COUNTERS_MAP, object::RATE_LIMIT_MAP];

/// Checks that bpffs is mounted at [`BPFFS`].
pub fn require_bpffs() -> Result<(), LoadError> {
    match sys::filesystem_magic(Path::new(BPFFS)) {
        Ok(magic) if magic == BPF_FS_MAGIC => Ok(()),
        _ => Err(LoadError::BpffsNotMounted),
    }
}

/// The pin directory of an interface.
pub fn pin_dir(ifname: &str) -> PathBuf {
    Path::new(PIN_ROOT).join(ifname)
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

fn read_rate_limit(map: &impl libbpf_rs::MapCore) -> Result<Option<RateLimit>, LoadError> {
    let value =
        map.lookup(&0u32.to_ne_bytes(), MapFlags::ANY).map_err(libbpf("reading the rate-limit map"))?;
    Ok(value
        .and_then(|v| <[u8; RATE_CONFIG_LEN]>::try_from(v.as_slice()).ok())
        .and_then(|bytes| RateLimit::from_config(RateConfig::from_ne_bytes(&bytes))))
}

fn remove_map_pins(ifname: &str) -> Result<Vec<PathBuf>, LoadError> {
    let dir = pin_dir(ifname);
    let mut removed = Vec::new();
    for name in PINNED_MAPS {
        let path = dir.join(name);
        match fs::remove_file(&path) {
            Ok(()) => removed.push(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(LoadError::Pin { path, source }),
        }
    }
    Ok(removed)
}

pub(super) fn remove_pins(ifname: &str) -> Result<Vec<PathBuf>, LoadError> {
    let dir = pin_dir(ifname);
    let mut removed = remove_map_pins(ifname)?;
    let link = dir.join(LINK_PIN);
    match fs::remove_file(&link) {
        Ok(()) => removed.push(link),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(LoadError::Pin { path: link, source }),
    }
    match fs::remove_dir(&dir) {
        Ok(()) => removed.push(dir),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(LoadError::Pin { path: dir, source }),
    }
    Ok(removed)
}

/// What `unload` did.
#[derive(Clone, Debug, Serialize)]
pub struct Unloaded {
    /// Id of the program that was detached, if it was still attached.
    pub detached_prog_id: Option<u32>,
    /// Every pin and directory removed.
    pub removed: Vec<PathBuf>,
}

/// Detaches tickgate's pinned program from `ifname` and removes every pin `load` made.
pub fn unload(ifname: &str) -> Result<Unloaded, LoadError> {
    privileges::require("unload")?;
    require_bpffs()?;
    let dir = pin_dir(ifname);
    if !dir.is_dir() {
        return Err(LoadError::NothingAttached { ifname: ifname.to_owned() });
    }
    let mut detached_prog_id = None;
    if let Ok(link) = sys::obj_get(&dir.join(LINK_PIN))
        && let Ok((prog_id, ifindex)) = sys::xdp_link_info(link.as_fd())
        && ifindex != 0
    {
        sys::link_detach(link.as_fd()).map_err(|e| SyscallError::new("bpf_link_detach", e))?;
        detached_prog_id = Some(prog_id);
    }
    let removed = remove_pins(ifname)?;
    Ok(Unloaded { detached_prog_id, removed })
}

/// What `status` reports for one interface.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    /// Interface name.
    pub interface: String,
    /// Whether the pinned link still holds the program on the interface.
    pub attached: bool,
    /// `hw` or `tai`.
    pub program: Option<Program>,
    /// Kernel program id.
    pub prog_id: u32,
    /// Attach mode, as the kernel reports it.
    pub mode: Option<Mode>,
    /// Always `bpf_link` for tickgate; pinned for `load`.
    pub attach: &'static str,
    /// The clock packets are stamped with.
    pub timestamp_source: &'static str,
    /// Game UDP ports, sorted.
    pub ports: Vec<u16>,
    /// Per-source flood shedding; `null` when off (or pinned by a tickgate without it).
    pub rate_limit: Option<RateLimit>,
    /// Outcome counters.
    pub counters: XdpCounters,
    /// Which clock stamped the steered packets.
    pub timestamps: TimestampCounters,
    /// Pin directory.
    pub pins: PathBuf,
}

/// Status of the pinned attachment on `ifname`.
pub fn status(ifname: &str) -> Result<Status, LoadError> {
    privileges::require("status")?;
    require_bpffs()?;
    let dir = pin_dir(ifname);
    if !dir.is_dir() {
        return Err(LoadError::NothingAttached { ifname: ifname.to_owned() });
    }
    let link = sys::obj_get(&dir.join(LINK_PIN)).map_err(|e| SyscallError::new("bpf_obj_get(link)", e))?;
    let (prog_id, link_ifindex) =
        sys::xdp_link_info(link.as_fd()).map_err(|e| SyscallError::new("bpf_link_get_info_by_fd", e))?;
    let program = sys::prog_info(prog_id).ok().and_then(|i| Program::from_name(&i.name));
    let mode = match sys::xdp_query(link_ifindex) {
        Ok(q) if link_ifindex != 0 && q.drv_prog_id == prog_id => Some(Mode::Native),
        Ok(q) if link_ifindex != 0 && q.skb_prog_id == prog_id => Some(Mode::Skb),
        _ => None,
    };
    let open =
        |name: &str| MapHandle::from_pinned_path(dir.join(name)).map_err(libbpf("opening a pinned map"));
    let mut ports: Vec<u16> = open(object::PORTS_MAP)?
        .keys()
        .filter_map(|k| k.get(..2).map(|b| u16::from_ne_bytes([b[0], b[1]])))
        .collect();
    ports.sort_unstable();
    let rate_limit = match MapHandle::from_pinned_path(dir.join(object::RATE_LIMIT_MAP)) {
        Ok(map) => read_rate_limit(&map)?,
        Err(_) => None,
    };
    let (counters, timestamps) = read_counters(&open(object::COUNTERS_MAP)?)?;
    Ok(Status {
        interface: ifname.to_owned(),
        attached: link_ifindex != 0,
        program,
        prog_id,
        mode,
        attach: "bpf_link (pinned)",
        timestamp_source: program.map_or("unknown", Program::timestamp_source),
        ports,
        rate_limit,
        counters,
        timestamps,
        pins: dir,
    })
}

/// Interfaces with a pin directory under [`PIN_ROOT`].
pub fn pinned_interfaces() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(PIN_ROOT)
        .map(|dir| dir.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    names.sort();
    names
}
