//! Steering: the XDP program that sorts every packet on the NIC's RX path, and its control.
//!
//! [`Attachment::attach`] loads the embedded [`object`] (patching the NIC-timestamp [`kfunc`]
//! call), attaches it with a bpf_link and fills its maps (game ports, XSKMAP, [`rate_limit`]);
//! [`pins`] keep a `tickgate load` attached after the command exits, and [`status`]/[`unload`]
//! read and remove them; [`counters`] read what the program counted; [`features`] asks the
//! kernel what a device supports; [`privileges`] says what this process may do.

mod attach;
mod error;
pub mod counters;
pub mod features;
pub mod kfunc;
pub mod object;
pub mod pins;
pub mod privileges;
pub mod rate_limit;
mod rx_seq;
mod status;

pub use attach::{Attachment, LoadOptions, Loaded, MAX_PORTS, Mode, Program, SessionMap, Timestamps};
pub use error::LoadError;
pub use object::{BPFFS, PIN_ROOT};
pub use pins::{pin_dir, pinned_interfaces, require_bpffs};
pub use rx_seq::QueueCounts;
pub use status::{Status, Unloaded, status, unload};
