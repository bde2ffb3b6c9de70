//! The live report a running `tickgate run` publishes for `status` and `clean`: one JSON file per
//! interface under [`LIVE_DIR`], rewritten every second, removed when the run ends.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use tickgate::ingress::IngressReport;

/// Directory where a running `tickgate run` publishes its live counters for `status`.
pub const LIVE_DIR: &str = "/run/tickgate";

/// The live report file of a run on `iface`.
pub fn path(iface: &str) -> PathBuf {
    Path::new(LIVE_DIR).join(format!("{iface}.json"))
}

/// Replaces the file at `path` with `report`, atomically (write, then rename). A failure is
/// logged at debug level: the run goes on without a live status.
pub fn publish(path: &Path, report: &IngressReport) {
    let write = || -> io::Result<()> {
        fs::create_dir_all(LIVE_DIR)?;
        let tmp = path.with_extension("json.tmp");
        fs::write(&tmp, serde_json::to_vec_pretty(report)?)?;
        fs::rename(tmp, path)
    };
    if let Err(e) = write() {
        log::debug!("cannot publish live status to {}: {e}", path.display());
    }
}

/// The live report of a `tickgate run` on `iface`, if one is running (its pid is alive).
pub fn running(iface: &str) -> Option<serde_json::Value> {
    let report: serde_json::Value = serde_json::from_slice(&fs::read(path(iface)).ok()?).ok()?;
    let pid = report["pid"].as_u64()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(report)
}

/// The live reports of every running `tickgate run`, by interface name.
pub fn all_running() -> Vec<serde_json::Value> {
    let mut names: Vec<String> = fs::read_dir(LIVE_DIR)
        .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    names.sort();
    names.iter().filter_map(|n| n.strip_suffix(".json")).filter_map(running).collect()
}

/// Report files whose run is gone (killed), for `iface` or every interface.
pub fn stale(iface: Option<&str>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(LIVE_DIR).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(ifname) = name.strip_suffix(".json") else { continue };
        if iface.is_none_or(|i| i == ifname) && running(ifname).is_none() {
            out.push(entry.path());
        }
    }
    out
}
