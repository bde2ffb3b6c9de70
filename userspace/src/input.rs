//! A decoded, validated game input: what a worker hands to the sequencer.

use serde::{Deserialize, Serialize};

/// Which clock stamped an input's receive time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TsSource {
    /// The NIC's hardware clock (PHC), read through the XDP RX-timestamp kfunc.
    Nic,
    /// `bpf_ktime_get_tai_ns()` at the XDP hook: CLOCK_TAI.
    Xdp,
}

impl TsSource {
    /// The name used in JSON output and docs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nic => "nic",
            Self::Xdp => "xdp",
        }
    }
}

/// One game input, after the header checksum, protobuf decode and anti-replay checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// Receive timestamp in nanoseconds, in the clock named by `ts_source`.
    pub rx_ts_ns: u64,
    /// The clock that produced `rx_ts_ns`.
    pub ts_source: TsSource,
    /// RX queue the packet arrived on.
    pub queue: u16,
    /// Client id from the wire header.
    pub client_id: u32,
    /// Per-client input sequence number: the command's own (`first_seq + i` of its `InputFrame`).
    pub seq: u64,
    /// The client's frame id for this command.
    pub client_frame: u32,
    /// A one-command protobuf `InputFrame` with the client's original command bytes, opaque past decode.
    pub payload: Vec<u8>,
}
