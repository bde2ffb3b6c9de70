//! `--frames-out` and `--inputs-out`: JSON lines written by a thread of their own, so that a
//! reader that stops reading (a full pipe) never stalls the run loop: `--duration`, signals, the
//! live status and the metrics go on, and what could not be handed over is counted, not kept.

use std::{
    fs::File,
    io::{self, BufWriter, Write},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc::{self, RecvTimeoutError, SyncSender, TrySendError},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

/// Lines waiting for the writer thread at most; beyond, lines are dropped and counted.
pub const SINK_CAPACITY: usize = 1024;

/// One output's counts.
#[derive(Debug, Default)]
struct Counts {
    accepted: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
    error: std::sync::Mutex<Option<String>>,
}

/// What became of one output's lines, for the run's summary: every line the run produced is
/// `written + dropped + unwritten`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SinkReport {
    /// Lines the reader was given (written into its file or pipe).
    pub written: u64,
    /// Lines dropped because the writer was [`SINK_CAPACITY`] lines behind, or had failed.
    pub dropped: u64,
    /// Lines queued for a reader that was still not reading when the run ended (not written).
    pub unwritten: u64,
}

/// A JSON-lines output fed without ever blocking.
#[derive(Debug)]
pub struct Sink {
    name: &'static str,
    tx: Option<SyncSender<Vec<u8>>>,
    counts: Arc<Counts>,
    writer: Option<thread::JoinHandle<()>>,
}

/// A reader idle this long gets what is buffered flushed to it.
const FLUSH_AFTER: Duration = Duration::from_millis(10);
/// How long `finish` waits for the writer to drain the queue into a reader that is reading.
const DRAIN: Duration = Duration::from_secs(2);

impl Sink {
    /// Opens `spec` (`-` for stdout, else a path; a FIFO opens once its reader does) and starts
    /// its writer thread. `None` when `spec` is.
    pub fn open(name: &'static str, spec: Option<&str>) -> Result<Option<Self>> {
        let Some(spec) = spec else { return Ok(None) };
        let out: Box<dyn Write + Send> = match spec {
            "-" => Box::new(BufWriter::new(io::stdout())),
            path => Box::new(BufWriter::new(File::create(path).with_context(|| format!("creating {path}"))?)),
        };
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(SINK_CAPACITY);
        let counts = Arc::new(Counts::default());
        let thread_counts = Arc::clone(&counts);
        let writer = thread::Builder::new()
            .name(format!("tickgate-{name}"))
            .spawn(move || {
                let mut out = out;
                let fail = |e: io::Error| {
                    if let Ok(mut slot) = thread_counts.error.lock() {
                        slot.get_or_insert(e.to_string());
                    }
                };
                loop {
                    match rx.recv_timeout(FLUSH_AFTER) {
                        Ok(line) => match out.write_all(&line) {
                            Ok(()) => {
                                thread_counts.written.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => return fail(e),
                        },
                        // A lull: what is buffered goes to the reader now.
                        Err(RecvTimeoutError::Timeout) => {
                            if let Err(e) = out.flush() {
                                return fail(e);
                            }
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                if let Err(e) = out.flush() {
                    fail(e);
                }
            })
            .context("starting an output writer thread")?;
        Ok(Some(Self { name, tx: Some(tx), counts, writer: Some(writer) }))
    }

    /// Hands one line (with its newline) to the writer; drops and counts it when the writer is
    /// that far behind or gone.
    pub fn push(&self, line: Vec<u8>) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(line) {
            Ok(()) => {
                self.counts.accepted.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The counts so far, for the live status and the metrics: `unwritten` is what is queued for
    /// the writer now.
    pub fn report(&self) -> SinkReport {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let written = load(&self.counts.written);
        SinkReport {
            written,
            dropped: load(&self.counts.dropped),
            unwritten: load(&self.counts.accepted).saturating_sub(written),
        }
    }

    /// Closes the queue, lets the writer drain it into a reader that reads (bounded), and says
    /// what happened. A reader that never reads keeps the writer blocked: it is not waited for,
    /// and the lines it still holds are reported as not written.
    pub fn finish(mut self) -> Result<SinkReport> {
        self.tx = None;
        let deadline = Instant::now() + DRAIN;
        while self.writer.as_ref().is_some_and(|w| !w.is_finished()) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        let finished = match self.writer.take() {
            Some(w) if w.is_finished() => w.join().is_ok(),
            _ => false,
        };
        let report = self.report();
        let SinkReport { written, dropped, .. } = report;
        if dropped > 0 || !finished {
            eprintln!(
                "tickgate: --{}: {written} lines written, {dropped} dropped{}: the reader did not keep up",
                self.name,
                if finished { "" } else { ", the rest still queued when the run ended" }
            );
        }
        match self.counts.error.lock().ok().and_then(|e| e.clone()) {
            Some(e) => anyhow::bail!("writing --{}: {e}", self.name),
            None => Ok(report),
        }
    }
}
