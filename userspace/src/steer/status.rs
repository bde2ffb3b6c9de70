//! The pinned attachment of one interface, read and removed: what `tickgate status`, `unload`
//! and `clean` do with what `tickgate load` left under bpffs.

use std::{os::fd::AsFd as _, path::PathBuf};

use libbpf_rs::{MapCore as _, MapFlags, MapHandle};
use serde::Serialize;
use tickgate_common::rate::{RATE_CONFIG_LEN, RateConfig};

use super::{
    attach::{Mode, Program, read_counters, read_insecure_v1},
    counters::{TimestampCounters, XdpCounters},
    error::{LoadError, libbpf},
    object,
    object::LINK_PIN,
    pins::{pin_dir, remove_pins, require_bpffs},
    privileges,
    rate_limit::RateLimit,
};
use crate::sys::{self, SyscallError};

fn read_rate_limit(map: &impl libbpf_rs::MapCore) -> Result<Option<RateLimit>, LoadError> {
    let value =
        map.lookup(&0u32.to_ne_bytes(), MapFlags::ANY).map_err(libbpf("reading the rate-limit map"))?;
    Ok(value
        .and_then(|v| <[u8; RATE_CONFIG_LEN]>::try_from(v.as_slice()).ok())
        .and_then(|bytes| RateLimit::from_config(RateConfig::from_ne_bytes(&bytes))))
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
    /// Whether unauthenticated protocol v1 packets are admitted (`--insecure-v1`).
    pub insecure_v1: bool,
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
    let insecure_v1 = match MapHandle::from_pinned_path(dir.join(object::PROTOCOL_MAP)) {
        Ok(map) => read_insecure_v1(&map)?,
        Err(_) => false,
    };
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
        insecure_v1,
        counters,
        timestamps,
        pins: dir,
    })
}
