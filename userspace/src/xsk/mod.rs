//! AF_XDP sockets: the UMEM, the four rings and the socket that receives what the XDP program
//! steers, one socket per RX queue.
//!
//! [`XskSocket::open`] builds a UMEM and a socket bound to one queue; after the socket is in the
//! XSKMAP ([`crate::steer::Attachment::register_socket`]), [`XskSocket::receive`] hands each
//! packet to a callback with the [`RxMeta`](tickgate_common::meta::RxMeta) the program wrote in
//! front of it, and gives the frame back to the kernel right after. Nothing the kernel or the
//! network hands over is trusted: every descriptor is checked against the UMEM and against who
//! holds its frame before a byte is read.

pub mod config;
mod ring;
pub mod socket;
pub mod stats;
mod umem;

pub use config::{BindPreference, BusyPoll, ConfigError, MIN_FRAME_SIZE, XskConfig};
pub use socket::{BindMode, Ready, Received, RxBatch, TxBatch, XskError, XskSocket};
pub use stats::{XdpStatistics, XskCounters};
