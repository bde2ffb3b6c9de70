//! `tickgate ring dump FILE`: reads a frame ring (`--frame-rings`) as a game would and prints
//! one JSON line per record, the same shape as `--frames-out`'s, plus `{"missed":N}` where the
//! ring overwrote records before they were read. The Rust reader of `docs/frame-ring.md`.

use std::{
    io::Write as _,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use clap::Args;
use tickgate::{
    frame_queue::Frame,
    game::{Read, RingReader, decode_frame, ring::kind},
};

/// Arguments of `tickgate ring dump`.
#[derive(Debug, Args)]
pub struct RingArgs {
    /// The ring file (`match-<id>.ring` in the run's --frame-rings directory).
    pub file: PathBuf,
    /// Keep reading as records come, until the match ends or --timeout passes.
    #[arg(long)]
    pub follow: bool,
    /// With --follow, stop after this many seconds without the match ending.
    #[arg(long, default_value_t = 60.0)]
    pub timeout: f64,
}

pub fn dump(a: &RingArgs) -> Result<()> {
    let mut reader = RingReader::open(&a.file).with_context(|| format!("opening {}", a.file.display()))?;
    let match_id = reader.match_id();
    let deadline = Instant::now() + Duration::from_secs_f64(a.timeout.max(0.0));
    let mut out = std::io::stdout().lock();
    loop {
        match reader.read() {
            Read::Record { kind: kind::FRAME, seq, body } => {
                let Some(r) = decode_frame(&body) else {
                    writeln!(out, "{{\"seq\":{seq},\"malformed\":true}}")?;
                    continue;
                };
                let frame = Frame {
                    match_id,
                    tick: r.tick,
                    tick_hz: r.tick_hz,
                    start_ns: r.start_ns,
                    inputs: r.inputs,
                    hash: r.hash,
                    absent: r.absent,
                    last: r.last,
                };
                serde_json::to_writer(&mut out, &frame)?;
                writeln!(out)?;
            }
            Read::Record { kind: kind::MATCH_START, seq, .. } => {
                writeln!(out, "{{\"seq\":{seq},\"match_start\":{match_id}}}")?;
            }
            Read::Record { kind: kind::MATCH_END, seq, .. } => {
                writeln!(out, "{{\"seq\":{seq},\"match_end\":{match_id}}}")?;
            }
            Read::Record { kind, seq, .. } => writeln!(out, "{{\"seq\":{seq},\"unknown_kind\":{kind}}}")?,
            Read::Missed(n) => writeln!(out, "{{\"missed\":{n}}}")?,
            Read::Ended => return Ok(()),
            Read::Empty if a.follow && Instant::now() < deadline => {
                out.flush()?;
                reader.wait(Duration::from_millis(100));
            }
            Read::Empty => return Ok(()),
        }
    }
}
