//! Why loading, attaching, pinning or detaching failed: one error type for the whole stage.

use std::{io, path::PathBuf};

use super::{
    kfunc::KfuncError,
    object::{BPFFS, PIN_ROOT},
    privileges::PrivilegeError,
};
use crate::sys::SyscallError;

/// Why loading, attaching or detaching failed. Each message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Not root, or capabilities missing.
    #[error(transparent)]
    Privileges(#[from] PrivilegeError),
    /// No such interface in this network namespace.
    #[error("interface {ifname} not found in this network namespace ('ip link show' lists them)")]
    InterfaceNotFound {
        /// The name asked for.
        ifname: String,
    },
    /// bpffs is not mounted where pins go.
    #[error(
        "bpffs is not mounted at {BPFFS}: mount it with 'mount -t bpf bpf {BPFFS}' (tickgate pins its \
         program and maps there). Under 'ip netns exec' /sys is remounted and bpffs hidden: use \
         'nsenter --net=/run/netns/NAME' instead"
    )]
    BpffsNotMounted,
    /// Another XDP program is attached and `--force` was not given.
    #[error(
        "an XDP program ({prog_name}, id {prog_id}) is already attached to {ifname} in {mode} mode: \
         use --force to replace it{hint}"
    )]
    AlreadyAttached {
        /// Interface.
        ifname: String,
        /// Id of the attached program.
        prog_id: u32,
        /// Its name.
        prog_name: String,
        /// The mode it is attached in.
        mode: &'static str,
        /// Extra advice.
        hint: &'static str,
    },
    /// The attached program is held by a bpf_link tickgate cannot reach.
    #[error(
        "the XDP program on {ifname} (id {prog_id}) is held by a bpf_link that tickgate did not pin \
         (a running 'tickgate run', or another tool): stop that process or detach it with its owner"
    )]
    ForeignLink {
        /// Interface.
        ifname: String,
        /// Id of the attached program.
        prog_id: u32,
    },
    /// The driver has no native XDP.
    #[error("attaching XDP in native mode is not supported by driver {driver} ({ifname}) - try --mode skb")]
    NativeUnsupported {
        /// Interface.
        ifname: String,
        /// Its driver.
        driver: String,
    },
    /// `--timestamps nic` with `--mode skb`.
    #[error(
        "--timestamps nic needs --mode native: the device-bound program that reads the NIC clock does \
         not attach in skb mode (use --timestamps xdp or auto)"
    )]
    NicNeedsNative,
    /// The device-bound program was refused and `--timestamps nic` demanded it.
    #[error(
        "the kernel refused the device-bound program for {ifname} ({reason}), so NIC timestamps are not \
         available; use --timestamps auto or xdp to run on the XDP clock instead"
    )]
    DeviceBoundRefused {
        /// Interface.
        ifname: String,
        /// What the kernel or libbpf said.
        reason: String,
    },
    /// The kfunc is not usable on this kernel and `--timestamps nic` demanded it.
    #[error("--timestamps nic: {0}")]
    Kfunc(#[from] KfuncError),
    /// `unload` or `status` of an interface with no pins of ours.
    #[error("nothing of tickgate's is attached to {ifname} (no pins under {PIN_ROOT}/{ifname})")]
    NothingAttached {
        /// Interface.
        ifname: String,
    },
    /// More ports than the map holds, or none.
    #[error("between 1 and {max} game ports are supported, {given} given")]
    Ports {
        /// How many were given.
        given: usize,
        /// Capacity of the port map.
        max: usize,
    },
    /// A libbpf call failed.
    #[error("{what}: {source}")]
    Libbpf {
        /// What was being done.
        what: &'static str,
        /// libbpf's error.
        #[source]
        source: libbpf_rs::Error,
    },
    /// A raw kernel call failed.
    #[error(transparent)]
    Syscall(#[from] SyscallError),
    /// A file under bpffs could not be created or removed.
    #[error("{}: {source}", path.display())]
    Pin {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

pub(super) fn libbpf(what: &'static str) -> impl FnOnce(libbpf_rs::Error) -> LoadError {
    move |source| LoadError::Libbpf { what, source }
}
