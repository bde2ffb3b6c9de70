//! Steering: the XDP program that sorts every packet on the NIC's RX path, and its control.
//!
//! [`Attachment::attach`] loads the embedded [`object`] (patching the NIC-timestamp [`kfunc`]
//! call), attaches it with a bpf_link and fills its maps (game ports, XSKMAP, [`rate_limit`]);
//! [`pins`] keep a `tickgate load` attached after the command exits; [`counters`] read what the
//! program counted; [`features`] asks the kernel what a device supports; [`privileges`] says
//! what this process may do.

mod attach;
pub mod counters;
pub mod features;
pub mod kfunc;
pub mod object;
pub mod pins;
pub mod privileges;
pub mod rate_limit;

pub use attach::{Attachment, LoadError, LoadOptions, Loaded, MAX_PORTS, Mode, Program, Timestamps};
pub use pins::{
    BPFFS, PIN_ROOT, Status, Unloaded, pin_dir, pinned_interfaces, require_bpffs, status, unload,
};
