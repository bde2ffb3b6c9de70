//! A veth lab in two network namespaces that removes itself: the bed for tests, the bench and
//! the demo.
//!
//! `Lab::create` makes a sender namespace and a receiver namespace joined by one veth pair with
//! `queues` queues each way, fixed MACs, addresses on the veths only (10.77.0.1/.2 and
//! fd00:77::1/2) and static neighbours, so the pair carries only the traffic a caller sends.
//! Dropping the lab deletes both namespaces (and with them the veths and any XDP program) and
//! any pins left under the receiver's name.

use std::{
    fs::File,
    io,
    net::{Ipv4Addr, Ipv6Addr},
    os::fd::AsFd as _,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

use tickgate::{steer, sys};

/// Sender address.
pub const TX_IP4: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// Receiver address.
pub const RX_IP4: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
/// Sender IPv6 address.
pub const TX_IP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 1);
/// Receiver IPv6 address.
pub const RX_IP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 2);
/// Sender MAC.
pub const TX_MAC: [u8; 6] = [0x02, 0x77, 0, 0, 0, 1];
/// Receiver MAC.
pub const RX_MAC: [u8; 6] = [0x02, 0x77, 0, 0, 0, 2];

/// Why the lab could not be built.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// An `ip` command failed.
    #[error("'{command}' failed: {stderr} (the lab needs root and iproute2)")]
    Ip {
        /// The command line.
        command: String,
        /// What it printed.
        stderr: String,
    },
    /// `ip` could not be started.
    #[error("cannot run 'ip' (install iproute2): {0}")]
    Spawn(#[source] io::Error),
    /// Joining a namespace failed.
    #[error("cannot enter network namespace {ns}: {source}")]
    Enter {
        /// The namespace.
        ns: String,
        /// The error.
        #[source]
        source: io::Error,
    },
}

static LABS: AtomicU32 = AtomicU32::new(0);

/// Two namespaces joined by one veth pair; deleted on drop.
#[derive(Debug)]
pub struct Lab {
    /// Sender namespace.
    pub tx_ns: String,
    /// Receiver namespace (tickgate attaches here).
    pub rx_ns: String,
    /// Sender veth.
    pub tx_if: String,
    /// Receiver veth.
    pub rx_if: String,
}

fn ip(args: &[&str]) -> Result<(), LabError> {
    let out = Command::new("ip").args(args).output().map_err(LabError::Spawn)?;
    if !out.status.success() {
        return Err(LabError::Ip {
            command: format!("ip {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

fn mac_text(mac: [u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

impl Lab {
    /// Builds a lab whose names start with `prefix` (at most 4 characters: interface names are
    /// limited to 15) and are unique to this process.
    pub fn create(prefix: &str, queues: u32) -> Result<Self, LabError> {
        let n = LABS.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}{}", std::process::id() % 100_000, n);
        let lab = Self {
            tx_ns: format!("{prefix}-{id}-tx"),
            rx_ns: format!("{prefix}-{id}-rx"),
            tx_if: format!("{prefix}t{id}"),
            rx_if: format!("{prefix}r{id}"),
        };
        // From here on, Drop removes whatever part of the lab exists.
        ip(&["netns", "add", &lab.tx_ns])?;
        ip(&["netns", "add", &lab.rx_ns])?;
        let q = queues.max(1).to_string();
        #[rustfmt::skip]
        ip(&["link", "add", &lab.tx_if, "netns", &lab.tx_ns, "numtxqueues", &q, "numrxqueues", &q,
             "type", "veth", "peer", "name", &lab.rx_if, "netns", &lab.rx_ns, "numtxqueues", &q, "numrxqueues", &q])?;
        for (ns, ifname, mac, ip4, ip6) in [
            (&lab.tx_ns, &lab.tx_if, TX_MAC, TX_IP4, TX_IP6),
            (&lab.rx_ns, &lab.rx_if, RX_MAC, RX_IP4, RX_IP6),
        ] {
            ip(&["-n", ns, "link", "set", ifname, "address", &mac_text(mac)])?;
            // No link-local address, no DAD, no router solicitations: only the caller's traffic.
            ip(&["-n", ns, "link", "set", ifname, "addrgenmode", "none"])?;
            ip(&["-n", ns, "addr", "add", &format!("{ip4}/24"), "dev", ifname])?;
            ip(&["-n", ns, "addr", "add", &format!("{ip6}/64"), "dev", ifname, "nodad"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&["-n", ns, "link", "set", ifname, "up"])?;
        }
        for (ns, ifname, ip4, ip6, mac) in [
            (&lab.tx_ns, &lab.tx_if, RX_IP4, RX_IP6, RX_MAC),
            (&lab.rx_ns, &lab.rx_if, TX_IP4, TX_IP6, TX_MAC),
        ] {
            for addr in [ip4.to_string(), ip6.to_string()] {
                ip(&[
                    "-n",
                    ns,
                    "neigh",
                    "replace",
                    &addr,
                    "lladdr",
                    &mac_text(mac),
                    "dev",
                    ifname,
                    "nud",
                    "permanent",
                ])?;
            }
        }
        Ok(lab)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.rx_ns, &self.tx_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = std::fs::remove_dir_all(steer::pin_dir(&self.rx_if));
    }
}

/// Moves the calling thread into network namespace `ns` (only this thread moves).
pub fn enter(ns: &str) -> Result<(), LabError> {
    let path = format!("/run/netns/{ns}");
    let file = File::open(&path).map_err(|source| LabError::Enter { ns: ns.to_owned(), source })?;
    sys::setns_net(file.as_fd()).map_err(|source| LabError::Enter { ns: ns.to_owned(), source })
}

/// Runs `f` on a new thread inside namespace `ns` and returns its result.
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> Result<T, LabError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            enter(ns)?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}
