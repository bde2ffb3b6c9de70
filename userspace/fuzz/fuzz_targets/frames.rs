//! The client's side of the way back: a `Frame` packet's body (`wire::frame_packet::decode`) from
//! arbitrary bytes, and the same bytes sealed under the session's key through `Client::receive`.
//! Nothing panics, and whatever decodes encodes back to the same bytes (the layout is canonical).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickgate::{
    frame_queue::Frame,
    wire::frame_packet::{self, MAX_BODY_LEN},
};

fuzz_target!(|data: &[u8]| {
    let Ok(body) = frame_packet::decode(data) else { return };
    if data.len() > MAX_BODY_LEN {
        return;
    }
    let records: Vec<Vec<u8>> = body
        .records
        .iter()
        .map(|r| {
            let frame = Frame {
                match_id: 0,
                tick: r.tick,
                tick_hz: body.tick_hz,
                start_ns: r.start_ns,
                inputs: r.inputs.clone(),
                hash: r.hash,
                absent: r.absent.clone(),
                last: r.last,
            };
            let mut out = Vec::new();
            frame_packet::encode_record(&frame, &r.messages, &mut out);
            out
        })
        .collect();
    let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    let mut again = Vec::new();
    let taken = frame_packet::body(body.tick_hz, body.ack, body.flags, &refs, &mut again);
    assert_eq!(taken, records.len());
    assert_eq!(again, data, "decode and encode disagree");
});
