//! A synthetic game client: consecutive inputs, each packet carrying the last few for loss
//! resilience, stamped with the send time. Used by the demo, the bench and the tests.

use tickgate_proto::{Action, InputFrame, PlayerCommand};

use tickgate::{input::Input, wire};

/// One client's input stream.
#[derive(Clone, Debug)]
pub struct SyntheticClient {
    id: u32,
    next_seq: u64,
    redundancy: u64,
    history: Vec<PlayerCommand>,
}

impl SyntheticClient {
    /// Client `id`; every packet repeats the last `redundancy` inputs (1..=32, 1 = no resend).
    pub fn new(id: u32, redundancy: u32) -> Self {
        let redundancy = u64::from(redundancy.clamp(1, wire::MAX_COMMANDS as u32));
        Self { id, next_seq: 1, redundancy, history: Vec::with_capacity(redundancy as usize) }
    }

    /// The client id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Seq of the next new input.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Makes the next input (sent at `send_tai_ns`, CLOCK_TAI) and writes a protocol v1 packet
    /// carrying it and up to `redundancy - 1` earlier ones into `out` (cleared first). Returns
    /// the new seq.
    pub fn next_packet(&mut self, send_tai_ns: u64, out: &mut Vec<u8>) -> u64 {
        let (seq, frame) = self.next_frame(send_tai_ns);
        out.clear();
        // Cannot fail: 1..=MAX_COMMANDS commands, consecutive seqs, a payload far below the limit.
        let encoded = wire::encode_input(self.id, seq as u32, &frame, out);
        debug_assert!(encoded.is_ok(), "{encoded:?}");
        seq
    }

    /// The same input as [`SyntheticClient::next_packet`], as the `InputFrame` body that a
    /// protocol v2 packet seals (into `out`, cleared first). Returns the new seq.
    pub fn next_body(&mut self, send_tai_ns: u64, out: &mut Vec<u8>) -> u64 {
        use prost::Message as _;
        let (seq, frame) = self.next_frame(send_tai_ns);
        out.clear();
        // Cannot fail: a Vec grows as needed.
        let encoded = frame.encode(out);
        debug_assert!(encoded.is_ok(), "{encoded:?}");
        seq
    }

    fn next_frame(&mut self, send_tai_ns: u64) -> (u64, InputFrame) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let command = PlayerCommand {
            command_id: seq as u32,
            entity_id: self.id,
            target_id: 0,
            action: Action::Move as i32,
            client_timestamp_us: send_tai_ns / 1_000,
            client_frame: seq as u32,
        };
        if self.history.len() as u64 == self.redundancy {
            self.history.remove(0);
        }
        self.history.push(command);
        let frame =
            InputFrame { first_seq: seq + 1 - self.history.len() as u64, commands: self.history.clone() };
        (seq, frame)
    }
}

/// The send time (CLOCK_TAI, µs resolution, in ns) a synthetic client put in an input.
pub fn send_time_ns(input: &Input) -> Option<u64> {
    use prost::Message as _;
    let frame = InputFrame::decode(input.payload.as_slice()).ok()?;
    frame.commands.first().map(|c| c.client_timestamp_us.saturating_mul(1_000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickgate::{input::Timestamp, wire::Packet};

    #[test]
    fn packets_carry_the_last_inputs_and_the_send_time() {
        let mut client = SyntheticClient::new(7, 3);
        let mut out = Vec::new();
        for expected in 1..=5u64 {
            assert_eq!(client.next_packet(expected * 1_000_000, &mut out), expected);
            let Ok(Packet::Input(packet)) = wire::decode(&out) else { panic!("not an input packet") };
            let seqs: Vec<u64> = packet.commands().map(|c| c.seq).collect();
            let first = expected.saturating_sub(2).max(1);
            assert_eq!(seqs, (first..=expected).collect::<Vec<_>>());
            let newest = packet.commands().last().unwrap().to_input(Timestamp::xdp(0), 0, 0);
            assert_eq!(send_time_ns(&newest), Some(expected * 1_000_000));
            assert_eq!(newest.client_id, 7);
        }
    }
}
