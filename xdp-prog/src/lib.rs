//! tickgate's XDP programs; the object is built from `main.rs` by `userspace/build.rs`.
#![no_std]
