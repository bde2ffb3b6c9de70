//! `load`, `unload` and `status`.

use anyhow::Result;
use clap::Args;
use tickgate::{
    loader::{self, Attachment, LoadOptions, Status},
    rate_limit::RateLimit,
};

use super::{ModeArg, TimestampsArg};

/// Arguments of `tickgate load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Interface to attach to.
    pub iface: String,
    /// Game UDP ports to steer into AF_XDP (comma-separated).
    #[arg(short, long, value_delimiter = ',', required = true)]
    pub port: Vec<u16>,
    /// Attach mode.
    #[arg(short, long, value_enum, default_value_t = ModeArg::Native)]
    pub mode: ModeArg,
    /// Receive-timestamp clock.
    #[arg(short, long, value_enum, default_value_t = TimestampsArg::Auto)]
    pub timestamps: TimestampsArg,
    /// Replace a program already attached (atomically if it is tickgate's own).
    #[arg(short, long)]
    pub force: bool,
    /// Shed floods: allow each source address PPS game packets per second, in bursts of up to
    /// BURST (default PPS/10, at least 1); valid game packets over the limit are dropped and
    /// counted as rate_limited. The budget is per source and per CPU. Off when not given.
    #[arg(long, value_name = "PPS[:BURST]")]
    pub rate_limit: Option<RateLimit>,
}

pub fn load(a: &LoadArgs) -> Result<()> {
    let opts = LoadOptions {
        ifname: a.iface.clone(),
        ports: a.port.clone(),
        mode: a.mode.into(),
        timestamps: a.timestamps.into(),
        force: a.force,
        rate_limit: a.rate_limit,
    };
    loader::require_bpffs()?;
    let attachment = Attachment::attach(&opts)?;
    for note in attachment.notes() {
        eprintln!("tickgate: {note}");
    }
    let dir = attachment.pin()?;
    println!(
        "{}: attached {} in {} mode via bpf_link, timestamps {}, ports {}, rate limit {}; pinned under {}",
        a.iface,
        attachment.program().name(),
        attachment.mode(),
        attachment.program().timestamp_source(),
        join(&a.port),
        rate_limit_text(a.rate_limit),
        dir.display()
    );
    Ok(())
}

pub fn unload(iface: &str) -> Result<()> {
    let done = loader::unload(iface)?;
    match done.detached_prog_id {
        Some(id) => println!("{iface}: detached program id {id}"),
        None => println!("{iface}: the program was no longer attached"),
    }
    for path in &done.removed {
        println!("removed {}", path.display());
    }
    Ok(())
}

pub fn status(iface: Option<&str>, json: bool) -> Result<()> {
    let statuses: Vec<Status> = match iface {
        Some(iface) => vec![loader::status(iface)?],
        None => loader::pinned_interfaces().iter().map(|i| loader::status(i)).collect::<Result<_, _>>()?,
    };
    if json {
        let value = match (iface, statuses.as_slice()) {
            (Some(_), [one]) => serde_json::to_string_pretty(one)?,
            _ => serde_json::to_string_pretty(&statuses)?,
        };
        println!("{value}");
        return Ok(());
    }
    if statuses.is_empty() {
        println!("no tickgate attachments pinned under {}", loader::PIN_ROOT);
    }
    for s in &statuses {
        let program = s.program.map_or("unknown", |p| p.name());
        let mode = s.mode.map_or_else(|| "detached".to_owned(), |m| m.to_string());
        println!("{}: {program} (id {}), mode {mode}, {}", s.interface, s.prog_id, s.attach);
        println!(
            "  timestamps: {}  (nic {}, xdp {}, kfunc errors {}, kfunc without timestamp {})",
            s.timestamp_source,
            s.timestamps.nic,
            s.timestamps.xdp,
            s.timestamps.kfunc_error,
            s.timestamps.kfunc_no_timestamp
        );
        println!("  ports: {}", join(&s.ports));
        println!("  rate limit: {}", rate_limit_text(s.rate_limit));
        println!("  counters: {}", s.counters);
    }
    Ok(())
}

fn rate_limit_text(limit: Option<RateLimit>) -> String {
    limit.map_or_else(|| "off".to_owned(), |l| l.to_string())
}

fn join(ports: &[u16]) -> String {
    ports.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}
