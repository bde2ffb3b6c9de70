//! `replay`: rebuild the frames of a recorded run and check them against the log's checkpoints.

use std::{
    fs::File,
    io::{self, BufWriter, Write},
    path::PathBuf,
};

use anyhow::{Context as _, Result, bail};
use clap::Args;
use tickgate::record;

/// Arguments of `tickgate replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A record log written by `tickgate run --record FILE`.
    pub file: PathBuf,
    /// Write every rebuilt frame as a JSON line to FILE (`-` for stdout).
    #[arg(long, value_name = "FILE|-")]
    pub frames_out: Option<String>,
}

pub fn replay(a: &ReplayArgs) -> Result<()> {
    let mut out: Option<Box<dyn Write>> = match a.frames_out.as_deref() {
        None => None,
        Some("-") => Some(Box::new(BufWriter::new(io::stdout()))),
        Some(path) => {
            Some(Box::new(BufWriter::new(File::create(path).with_context(|| format!("creating {path}"))?)))
        }
    };
    let file = File::open(&a.file).with_context(|| format!("opening {}", a.file.display()))?;
    let mut last_hash = None;
    let mut write_error = None;
    let report = record::replay_with(io::BufReader::new(file), |frame| {
        last_hash = Some((frame.tick, frame.hash_hex()));
        if let Some(out) = out.as_mut()
            && let Err(e) = serde_json::to_writer(&mut *out, &frame)
                .map_err(io::Error::from)
                .and_then(|()| out.write_all(b"\n"))
        {
            write_error.get_or_insert(e);
        }
    })?;
    if let Some(out) = out.as_mut() {
        out.flush()?;
    }
    if let Some(e) = write_error {
        return Err(e).context("writing frames");
    }
    let s = &report.stats;
    eprintln!(
        "tickgate: replayed {} records of {}: {} frames ({} verified against the log's checkpoints), {} inputs, late dropped {}, late to next tick {}",
        report.records,
        a.file.display(),
        report.frames,
        report.verified_frames,
        s.inputs_ordered,
        s.late_dropped,
        s.late_next
    );
    if let Some((tick, hash)) = &last_hash {
        eprintln!("tickgate: last frame: tick {tick} hash {hash}");
    }
    match &report.stop {
        None if report.finished => eprintln!("tickgate: the log ends cleanly (the run stopped normally)"),
        None => eprintln!(
            "tickgate: the log ends without its queues closed: the run did not stop cleanly, but nothing is damaged"
        ),
        Some(stop) => eprintln!("tickgate: stopped at the damage: {stop}; everything before it was replayed"),
    }
    if let Some(d) = &report.divergence {
        bail!("the replay diverged from the recorded run: {d:?}");
    }
    Ok(())
}
