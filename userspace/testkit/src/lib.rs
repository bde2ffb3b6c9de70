//! What the demo, the bench and the root tests share, and a game server does not embed: a veth
//! lab in two network namespaces, a synthetic game client, paced lab traffic with injected faults,
//! and latency histograms. Traffic from here only ever goes to the addresses of a [`lab::Lab`] it was given.

pub mod client;
pub mod histogram;
pub mod lab;
pub mod traffic;
