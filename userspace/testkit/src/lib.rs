//! What the demo, the bench and the root tests share, and a game server does not embed: a veth
//! lab in two network namespaces, a synthetic game client, and paced lab traffic with injected
//! faults. Traffic from here only ever goes to the addresses of a [`lab::Lab`] it was given.

pub mod client;
pub mod lab;
pub mod traffic;
