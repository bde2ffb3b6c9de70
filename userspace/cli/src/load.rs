//! `load`, `unload` and `status`.

use anyhow::Result;
use clap::Args;
use tickgate::{
    steer::rate_limit::RateLimit,
    steer::{self, Attachment, LoadError, Status},
};

use super::SteerArgs;

/// Arguments of `tickgate load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Interface to attach to.
    pub iface: String,
    #[command(flatten)]
    pub steer: SteerArgs,
    /// Replace a program already attached (atomically if it is tickgate's own).
    #[arg(short, long)]
    pub force: bool,
}

pub fn load(a: &LoadArgs) -> Result<()> {
    let opts = a.steer.load_options(&a.iface, a.force);
    steer::require_bpffs()?;
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
        join(&a.steer.port),
        rate_limit_text(a.steer.rate_limit),
        dir.display()
    );
    Ok(())
}

pub fn unload(iface: &str) -> Result<()> {
    let done = steer::unload(iface)?;
    match done.detached_prog_id {
        Some(id) => println!("{iface}: detached program id {id}"),
        None => println!("{iface}: the program was no longer attached"),
    }
    for path in &done.removed {
        println!("removed {}", path.display());
    }
    Ok(())
}

pub fn clean(iface: Option<&str>) -> Result<()> {
    let pinned = match iface {
        Some(i) => vec![i.to_owned()],
        None => steer::pinned_interfaces(),
    };
    let mut cleaned = 0;
    for name in pinned.iter().filter(|n| steer::pin_dir(n).is_dir()) {
        let done = steer::unload(name)?;
        match done.detached_prog_id {
            Some(id) => println!("{name}: detached program id {id}"),
            None => println!("{name}: program already gone"),
        }
        for path in &done.removed {
            println!("removed {}", path.display());
        }
        cleaned += 1;
    }
    for path in crate::live::stale(iface) {
        std::fs::remove_file(&path)?;
        println!("removed stale run report {}", path.display());
        cleaned += 1;
    }
    if cleaned == 0 {
        println!("nothing to clean: no pins under {} and no stale run reports", steer::PIN_ROOT);
    }
    Ok(())
}

pub fn status(iface: Option<&str>, json: bool) -> Result<()> {
    let mut pinned: Vec<Status> = Vec::new();
    let mut running: Vec<serde_json::Value> = Vec::new();
    match iface {
        Some(iface) => match steer::status(iface) {
            Ok(s) => pinned.push(s),
            Err(LoadError::NothingAttached { .. }) if crate::live::running(iface).is_some() => {
                running.extend(crate::live::running(iface));
            }
            Err(e) => return Err(e.into()),
        },
        None => {
            for i in steer::pinned_interfaces() {
                pinned.push(steer::status(&i)?);
            }
            running.extend(crate::live::all_running());
        }
    }
    if json {
        let value = match (iface, pinned.as_slice(), running.as_slice()) {
            (Some(_), [one], []) => serde_json::to_value(one)?,
            (Some(_), [], [one]) => one.clone(),
            _ => {
                let mut all: Vec<serde_json::Value> =
                    pinned.iter().map(serde_json::to_value).collect::<Result<_, _>>()?;
                all.extend(running);
                serde_json::Value::Array(all)
            }
        };
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    if pinned.is_empty() && running.is_empty() {
        println!("no tickgate attachments pinned under {} and no tickgate run active", steer::PIN_ROOT);
    }
    for s in &pinned {
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
        if let Some(limit) = s.rate_limit {
            println!("  rate limit: {limit}");
        }
        if s.insecure_v1 {
            println!("  protocol v1: ON (--insecure-v1): unauthenticated inputs are admitted");
        }
        println!("  counters: {}", s.counters);
    }
    for r in &running {
        println!(
            "{}: tickgate run (pid {}), {} in {} mode, up {:.0} s",
            r["interface"].as_str().unwrap_or("?"),
            r["pid"],
            r["program"].as_str().unwrap_or("?"),
            r["mode"].as_str().unwrap_or("?"),
            r["uptime_s"].as_f64().unwrap_or(0.0)
        );
        println!("  counters: {}", r["counters"]);
        match r.get("sessions").filter(|v| !v.is_null()) {
            Some(v) => println!(
                "  sessions (protocol v2, replies via {}): open {}, joined {}, closed {}, refused {}, dropped {}",
                r["replies"].as_str().unwrap_or("?"),
                v["open"],
                v["joined"],
                v["closed"],
                v["refused"],
                v["dropped"]
            ),
            None => println!("  sessions: off"),
        }
        if r["insecure_v1"] == true {
            println!("  protocol v1: ON (--insecure-v1): unauthenticated inputs are admitted");
        }
        for q in r["queues"].as_array().into_iter().flatten() {
            println!("  queue {}: received {}, delivered {}", q["queue"], q["received"], q["delivered"]);
        }
        let outputs = &r["outputs"];
        if let Some(f) = outputs.get("frame_rings") {
            println!(
                "  frame rings: {} rings, {} records, {} overwritten unread, {} frames not written; \
                 game messages {} taken, {} refused, {} unsent",
                f["rings"],
                f["records"],
                f["overwritten_unread"],
                f["not_written"],
                f["messages"],
                f["messages_refused"],
                f["messages_unsent"]
            );
        }
        for name in ["inputs_out", "frames_out"] {
            if let Some(o) = outputs.get(name) {
                println!(
                    "  --{}: {} lines written, {} dropped (reader behind), {} queued",
                    name.replace('_', "-"),
                    o["written"],
                    o["dropped"],
                    o["unwritten"]
                );
            }
        }
    }
    Ok(())
}

fn rate_limit_text(limit: Option<RateLimit>) -> String {
    limit.map_or_else(|| "off".to_owned(), |l| l.to_string())
}

fn join(ports: &[u16]) -> String {
    ports.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}
