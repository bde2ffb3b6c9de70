//! The live report a running `tickgate run` publishes for `status` and `clean`: one JSON file per
//! interface under [`LIVE_DIR`], rewritten every second, removed when the run ends.

use std::{
    fmt::Write as _,
    fs, io,
    path::{Path, PathBuf},
};

use tickgate::{game::RingsReport, ingress::IngressReport};

use crate::sink::SinkReport;

/// Directory where a running `tickgate run` publishes its live counters for `status`.
pub const LIVE_DIR: &str = "/run/tickgate";

/// The live report file of a run on `iface`.
pub fn path(iface: &str) -> PathBuf {
    Path::new(LIVE_DIR).join(format!("{iface}.json"))
}

/// Replaces the file at `path` with `report` and `outputs`, atomically (write, then rename). A
/// failure is logged at debug level: the run goes on without a live status.
pub fn publish(path: &Path, report: &IngressReport, outputs: &Outputs) {
    let write = || -> io::Result<()> {
        fs::create_dir_all(LIVE_DIR)?;
        let tmp = path.with_extension("json.tmp");
        let mut value = serde_json::to_value(report)?;
        value["outputs"] = serde_json::to_value(outputs)?;
        fs::write(&tmp, serde_json::to_vec_pretty(&value)?)?;
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

/// What became of a run's outputs so far (the frame rings and the JSON-lines files): in the live
/// report under `outputs`, in the metrics, and in the run's summary.
#[derive(Debug, Default, serde::Serialize)]
pub struct Outputs {
    /// `--frame-rings`: the rings' counts, and the game's messages the way back refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame_rings: Option<FrameRings>,
    /// `--inputs-out`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inputs_out: Option<SinkReport>,
    /// `--frames-out`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frames_out: Option<SinkReport>,
}

/// The frame rings' counts.
#[derive(Debug, serde::Serialize)]
pub struct FrameRings {
    /// Rings, records, overwritten unread, not written, messages taken and refused.
    #[serde(flatten)]
    pub rings: RingsReport,
    /// The game's messages the way back could not send (no such match or player, or no sessions).
    pub messages_unsent: u64,
}

impl Outputs {
    /// The outputs' Prometheus metrics (text exposition), to append to the run's.
    pub fn metrics(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
            if samples.is_empty() {
                return;
            }
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let sinks: Vec<(&str, &SinkReport)> =
            [("inputs_out", &self.inputs_out), ("frames_out", &self.frames_out)]
                .into_iter()
                .filter_map(|(name, sink)| Some((name, sink.as_ref()?)))
                .collect();
        let lines: Vec<(String, u64)> = sinks
            .iter()
            .flat_map(|(name, s)| {
                [
                    (format!("{{output=\"{name}\",outcome=\"written\"}}"), s.written),
                    (format!("{{output=\"{name}\",outcome=\"dropped\"}}"), s.dropped),
                ]
            })
            .collect();
        metric(
            "tickgate_output_lines_total",
            "counter",
            "JSON lines of --inputs-out/--frames-out: written to the reader, or dropped because it fell behind.",
            &lines,
        );
        let queued: Vec<(String, u64)> =
            sinks.iter().map(|(name, s)| (format!("{{output=\"{name}\"}}"), s.unwritten)).collect();
        metric("tickgate_output_lines_queued", "gauge", "JSON lines waiting for a slow reader.", &queued);
        if let Some(r) = &self.frame_rings {
            let one = |v: u64| vec![(String::new(), v)];
            metric("tickgate_frame_rings", "gauge", "Frame rings made (one per match).", &one(r.rings.rings));
            metric(
                "tickgate_frame_ring_records_total",
                "counter",
                "Records written into the frame rings.",
                &one(r.rings.records),
            );
            metric(
                "tickgate_frame_ring_overwritten_unread_total",
                "counter",
                "Records overwritten before the game had read them (the game fell a ring behind).",
                &one(r.rings.overwritten_unread),
            );
            metric(
                "tickgate_frame_ring_frames_not_written_total",
                "counter",
                "Frames not written into a ring (no ring could be made, or a frame larger than half a ring).",
                &one(r.rings.not_written),
            );
            metric(
                "tickgate_game_messages_total",
                "counter",
                "The game's messages from its .out rings: taken, refused (not a valid record), unsent (no such match or player).",
                &[
                    ("{outcome=\"taken\"}".into(), r.rings.messages),
                    ("{outcome=\"refused\"}".into(), r.rings.messages_refused),
                    ("{outcome=\"unsent\"}".into(), r.messages_unsent),
                ],
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_render_as_metrics_only_for_what_the_run_has() {
        let none = Outputs::default();
        assert_eq!(none.metrics(), "");
        assert_eq!(serde_json::to_value(&none).unwrap(), serde_json::json!({}));

        let outputs = Outputs {
            frame_rings: Some(FrameRings {
                rings: RingsReport {
                    rings: 2,
                    records: 40,
                    overwritten_unread: 7,
                    not_written: 1,
                    messages: 3,
                    messages_refused: 4,
                },
                messages_unsent: 5,
            }),
            inputs_out: None,
            frames_out: Some(SinkReport { written: 10, dropped: 20, unwritten: 30 }),
        };
        let text = outputs.metrics();
        for line in [
            "tickgate_output_lines_total{output=\"frames_out\",outcome=\"written\"} 10",
            "tickgate_output_lines_total{output=\"frames_out\",outcome=\"dropped\"} 20",
            "tickgate_output_lines_queued{output=\"frames_out\"} 30",
            "tickgate_frame_rings 2",
            "tickgate_frame_ring_records_total 40",
            "tickgate_frame_ring_overwritten_unread_total 7",
            "tickgate_frame_ring_frames_not_written_total 1",
            "tickgate_game_messages_total{outcome=\"taken\"} 3",
            "tickgate_game_messages_total{outcome=\"refused\"} 4",
            "tickgate_game_messages_total{outcome=\"unsent\"} 5",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
        assert!(!text.contains("inputs_out"), "{text}");
        // Every sample has its HELP and TYPE.
        let samples = text.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(samples, 10, "{text}");
        assert_eq!(text.lines().filter(|l| l.starts_with("# TYPE")).count(), 7, "{text}");

        let json = serde_json::to_value(&outputs).unwrap();
        assert_eq!(json["frame_rings"]["overwritten_unread"], 7);
        assert_eq!(json["frame_rings"]["messages_unsent"], 5);
        assert_eq!(json["frames_out"]["dropped"], 20);
        assert!(json.get("inputs_out").is_none());
    }
}
