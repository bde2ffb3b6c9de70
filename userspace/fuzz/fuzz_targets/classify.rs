//! `tickgate_common::classify::classify`, the XDP packet classifier, on arbitrary frames.
//!
//! Input: one frame from its Ethernet header on. Every UDP port is treated as a game port, so the
//! header checks run on whatever UDP the fuzzer builds. A steered packet must lie inside the frame,
//! pass its version's header check as a slice of it, and be the same packet however the frame is padded.
#![no_main]

use std::cell::Cell;

use libfuzzer_sys::fuzz_target;
use tickgate_common::{
    classify::{Framing, Verdict, classify},
    wire::{self, check_header},
};

fuzz_target!(|frame: &[u8]| {
    assert_eq!(classify(frame, |_| false), Verdict::Pass, "no game port, nothing to do");

    let (port, calls) = (Cell::new(None), Cell::new(0));
    let verdict = classify(frame, |p| {
        port.set(Some(p));
        calls.set(calls.get() + 1);
        true
    });
    assert!(calls.get() <= 1, "the port predicate is asked once per frame");
    match port.get() {
        // Not UDP that the classifier could follow: the port is never looked at.
        None => assert_eq!(verdict, Verdict::Pass),
        // The verdict for a game port depends on the port and nothing else about the predicate.
        Some(p) => {
            assert_eq!(classify(frame, |q| q == p), verdict);
            assert_eq!(classify(frame, |q| q != p), Verdict::Pass);
        }
    }

    let Verdict::Steer(game) = verdict else { return };
    let (offset, len) = (usize::from(game.payload_offset), usize::from(game.payload_len));
    let end = offset + len;
    assert!(end <= frame.len(), "steered payload {offset}+{len} runs past a {}-byte frame", frame.len());
    assert!(offset >= 8 + 14);
    match game.header {
        Framing::V1(header) => {
            assert!(len >= wire::HEADER_LEN);
            assert_eq!(check_header(&frame[offset..end], len), Ok(header));
        }
        Framing::V2(header) => {
            assert!(len >= wire::v2::HEADER_LEN && header.kind.inbound());
            assert_eq!(wire::v2::check_inbound(&frame[offset..end], len), Ok(header));
        }
    }
    assert_eq!(u16::from_be_bytes([frame[offset - 8], frame[offset - 7]]), game.source_port);
    // The UDP header in front of the payload is the one the verdict came from.
    let udp = &frame[offset - 8..offset];
    assert_eq!(Some(u16::from_be_bytes([udp[2], udp[3]])), port.get());
    assert_eq!(usize::from(u16::from_be_bytes([udp[4], udp[5]])), len + 8);
    if !game.ipv6 {
        assert_eq!(game.source[..12], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff], "v4-mapped source");
    }
    // Bytes after the UDP datagram (Ethernet padding, trailers) change nothing.
    assert_eq!(classify(&frame[..end], |_| true), verdict);
    let mut padded = frame.to_vec();
    padded.extend_from_slice(&[0xa5; 64]);
    assert_eq!(classify(padded.as_slice(), |_| true), verdict);
});
