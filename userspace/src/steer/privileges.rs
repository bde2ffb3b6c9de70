//! Whether this process may load XDP programs and open AF_XDP sockets, and what it lacks.

use std::fmt;

use crate::sys;

/// A Linux capability tickgate needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capability {
    /// Load programs and create maps (CAP_SYS_ADMIN also grants it).
    Bpf,
    /// Attach XDP programs and configure interfaces.
    NetAdmin,
    /// Open AF_XDP sockets.
    NetRaw,
}

impl Capability {
    fn bit(self) -> u64 {
        match self {
            Self::NetAdmin => 1 << 12,
            Self::NetRaw => 1 << 13,
            Self::Bpf => 1 << 39,
        }
    }
}

const CAP_SYS_ADMIN: u64 = 1 << 21;

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Bpf => "CAP_BPF",
            Self::NetAdmin => "CAP_NET_ADMIN",
            Self::NetRaw => "CAP_NET_RAW",
        })
    }
}

/// The capabilities every tickgate command that touches the kernel needs.
pub const REQUIRED: [Capability; 3] = [Capability::Bpf, Capability::NetAdmin, Capability::NetRaw];

/// Refusal to run without the needed privileges.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// Not root and without the capabilities that would stand in for it.
    #[error(
        "tickgate {command} must run as root (or with {}); this process runs as uid {uid} without {}",
        list(&REQUIRED),
        list(missing)
    )]
    NotRoot {
        /// The subcommand refused.
        command: &'static str,
        /// Effective uid.
        uid: u32,
        /// What is missing.
        missing: Vec<Capability>,
    },
    /// Root, but the capability set was reduced (a container, systemd, capsh).
    #[error(
        "tickgate {command} runs as root but lacks {}: grant them (e.g. AmbientCapabilities= in the \
         systemd unit, or --cap-add for a container)",
        list(missing)
    )]
    MissingCapabilities {
        /// The subcommand refused.
        command: &'static str,
        /// What is missing.
        missing: Vec<Capability>,
    },
    /// The capability set could not be read.
    #[error(transparent)]
    Syscall(#[from] sys::SyscallError),
}

fn list(caps: &[Capability]) -> String {
    caps.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// Capabilities of `effective` that are missing among `needed`.
pub fn missing(effective: u64, needed: &[Capability]) -> Vec<Capability> {
    needed
        .iter()
        .copied()
        .filter(|c| {
            let granted =
                effective & c.bit() != 0 || (*c == Capability::Bpf && effective & CAP_SYS_ADMIN != 0);
            !granted
        })
        .collect()
}

/// Checks that this process holds [`REQUIRED`]; `command` names the subcommand in the message.
pub fn require(command: &'static str) -> Result<(), PrivilegeError> {
    let effective = sys::effective_capabilities().map_err(|e| sys::SyscallError::new("capget", e))?;
    let missing = missing(effective, &REQUIRED);
    if missing.is_empty() {
        return Ok(());
    }
    let uid = sys::geteuid();
    Err(if uid == 0 {
        PrivilegeError::MissingCapabilities { command, missing }
    } else {
        PrivilegeError::NotRoot { command, uid, missing }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sys_admin_stands_in_for_bpf_but_not_for_net_caps() {
        assert_eq!(missing(CAP_SYS_ADMIN, &REQUIRED), vec![Capability::NetAdmin, Capability::NetRaw]);
        assert_eq!(missing(u64::MAX, &REQUIRED), vec![]);
        assert_eq!(missing(0, &REQUIRED), REQUIRED.to_vec());
        let net = Capability::NetAdmin.bit() | Capability::NetRaw.bit();
        assert_eq!(missing(net, &REQUIRED), vec![Capability::Bpf]);
    }

    #[test]
    fn messages_name_what_is_missing() {
        let e = PrivilegeError::NotRoot { command: "load", uid: 1000, missing: vec![Capability::Bpf] };
        let text = e.to_string();
        assert!(text.contains("must run as root") && text.contains("uid 1000") && text.ends_with("CAP_BPF"));
        let e = PrivilegeError::MissingCapabilities { command: "run", missing: vec![Capability::NetRaw] };
        assert!(e.to_string().contains("lacks CAP_NET_RAW"));
    }
}
