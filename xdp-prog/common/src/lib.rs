//! Types and checks that the XDP programs and userspace must agree on, byte for byte.
//!
//! Everything here is `no_std` and free of panics on any input, so the same code runs inside the
//! eBPF verifier's limits and in host unit tests and fuzzers. The XDP program calls
//! [`classify::classify`]; userspace reads the [`meta::RxMeta`] that the program wrote and sums
//! the [`counter::Counter`] slots. [`rate::admit`] is the per-source flood shedding the program
//! applies before steering.
#![no_std]

#[cfg(any(test, feature = "user"))]
extern crate std;

pub mod classify;
pub mod counter;
#[cfg(any(test, feature = "user"))]
pub mod frame;
pub mod kfunc;
pub mod meta;
pub mod rate;
pub mod session;
pub mod wire;
