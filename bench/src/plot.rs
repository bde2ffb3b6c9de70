//! Charts: latency percentile curves (both paths on one chart) and the rate sweep, as SVG with
//! plotters (no font library: the viewer draws the text), and as PNG by rasterising that SVG with
//! resvg, which reads font files itself (no fontconfig library).

use std::{fs, path::Path};

use anyhow::{Context as _, Result, anyhow};
use hdrhistogram::Histogram;
use plotters::prelude::*;

use crate::receiver::ReceiverKind;

const SIZE: (u32, u32) = (960, 540);

/// Line colour of a receiver: tickgate in warm colours, the socket modes in cool ones.
fn colour(kind: ReceiverKind) -> RGBColor {
    match kind {
        ReceiverKind::TickgateWakeup => RGBColor(214, 39, 40),
        ReceiverKind::TickgatePaced => RGBColor(140, 86, 75),
        ReceiverKind::TickgateBusy => RGBColor(255, 127, 14),
        ReceiverKind::SocketRecv => RGBColor(31, 119, 180),
        ReceiverKind::SocketEpoll => RGBColor(23, 190, 207),
        ReceiverKind::SocketRecvmmsg => RGBColor(44, 160, 44),
        ReceiverKind::SocketPaced => RGBColor(188, 189, 34),
        ReceiverKind::SocketSpin => RGBColor(148, 103, 189),
    }
}

/// (x = 1/(1-q), y = latency in ms) points of a histogram, as HdrHistogram's plotter draws them.
fn percentile_points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let mut points: Vec<(f64, f64)> = h
        .iter_quantiles(5)
        .filter(|v| v.quantile_iterated_to() < 1.0)
        .map(|v| (1.0 / (1.0 - v.quantile_iterated_to()), v.value_iterated_to() as f64 / 1e6))
        .collect();
    if let Some(&(x, _)) = points.last() {
        points.push((x * 2.0, h.max() as f64 / 1e6));
    }
    points
}

/// The series' legend, boxed, at `position`: the same on every chart.
fn legend<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    position: SeriesLabelPosition,
) -> Result<()>
where
    DB: DrawingBackend + 'a,
    X: Ranged,
    Y: Ranged,
{
    chart
        .configure_series_labels()
        .position(position)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(draw_error)
}

fn draw_error<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing the chart: {e:?}")
}

/// A percentile chart of `series` (receiver, send → frame histogram).
pub fn latency_svg(title: &str, series: &[(ReceiverKind, &Histogram<u64>)]) -> Result<String> {
    let curves: Vec<(ReceiverKind, Vec<(f64, f64)>)> =
        series.iter().filter(|(_, h)| !h.is_empty()).map(|(k, h)| (*k, percentile_points(h))).collect();
    let x_max = curves.iter().flat_map(|(_, p)| p.iter().map(|p| p.0)).fold(10.0, f64::max).min(1e6);
    let y_max = curves.iter().flat_map(|(_, p)| p.iter().map(|p| p.1)).fold(0.001, f64::max) * 1.05;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 24))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d((1.0..x_max).log_scale(), 0.0..y_max)
            .map_err(draw_error)?;
        chart
            .configure_mesh()
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 16))
            .x_desc("percentile")
            .y_desc("send -> frame latency (ms)")
            .x_label_formatter(&|x| {
                let p = 100.0 * (1.0 - 1.0 / x);
                if p < 0.5 { "0%".into() } else { format!("{}%", trim(p)) }
            })
            .y_label_formatter(&|y| format!("{y:.2}"))
            .draw()
            .map_err(draw_error)?;
        for (kind, points) in &curves {
            let c = colour(*kind);
            chart
                .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))
                .map_err(draw_error)?
                .label(kind.name())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3)));
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        root.present().map_err(draw_error)?;
    }
    Ok(svg)
}

fn trim(p: f64) -> String {
    let s = format!("{p:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Delivered inputs per second against offered packets per second, per receiver, with the XDP
/// ceiling as a horizontal line.
pub fn sweep_svg(
    title: &str,
    series: &[(ReceiverKind, Vec<(f64, f64)>)],
    ceiling_pps: Option<f64>,
) -> Result<String> {
    let all = series.iter().flat_map(|(_, p)| p.iter().copied());
    let (x_max, y_max) = all.fold((1e4, 1e4), |(x, y), p| (f64::max(x, p.0), f64::max(y, p.1)));
    let top = f64::max(y_max, ceiling_pps.unwrap_or(0.0)).max(x_max) * 1.1;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 24))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(80)
            .build_cartesian_2d(0.0..top, 0.0..top)
            .map_err(draw_error)?;
        chart
            .configure_mesh()
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 16))
            .x_desc("offered (packets/s achieved by the generator)")
            .y_desc("delivered (inputs/s in frames)")
            .x_label_formatter(&|x| kpps(*x))
            .y_label_formatter(&|y| kpps(*y))
            .draw()
            .map_err(draw_error)?;
        chart
            .draw_series(LineSeries::new([(0.0, 0.0), (top, top)], BLACK.mix(0.3).stroke_width(1)))
            .map_err(draw_error)?
            .label("lossless (delivered = offered)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.3)));
        if let Some(c) = ceiling_pps {
            chart
                .draw_series(LineSeries::new([(0.0, c), (top, c)], BLACK.stroke_width(1)))
                .map_err(draw_error)?
                .label("XDP ceiling (drop everything)")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
        }
        for (kind, points) in series {
            let c = colour(*kind);
            chart
                .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))
                .map_err(draw_error)?
                .label(kind.name())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3)));
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, c.filled()))).map_err(draw_error)?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        root.present().map_err(draw_error)?;
    }
    Ok(svg)
}

/// Late inputs drawn at this floor are 0 (the y axis is logarithmic).
const LATE_FLOOR_PCT: f64 = 1e-4;

/// One point of the grace chart.
#[derive(Clone, Copy, Debug)]
pub struct GraceStep {
    /// Tick close p99, µs.
    pub p99_us: f64,
    /// Late inputs, %.
    pub late_pct: f64,
    /// The grace, µs (the point's label).
    pub grace_us: u64,
}

/// The grace sweep: late inputs (%) against tick close p99 (µs), one line per receiver through
/// its grace steps (labelled with the grace), and the goal's corner: `goal` is (tick close p99
/// µs, late %).
pub fn grace_svg(title: &str, series: &[(ReceiverKind, Vec<GraceStep>)], goal: (f64, f64)) -> Result<String> {
    let x_max = series.iter().flat_map(|(_, p)| p.iter().map(|p| p.p99_us)).fold(200.0, f64::max) * 1.1;
    let y_max = series.iter().flat_map(|(_, p)| p.iter().map(|p| p.late_pct)).fold(1.0, f64::max) * 2.0;
    let at = |late: f64| late.max(LATE_FLOOR_PCT);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(80)
            .build_cartesian_2d(0.0..x_max, (LATE_FLOOR_PCT..y_max).log_scale())
            .map_err(draw_error)?;
        chart
            .configure_mesh()
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 16))
            .x_desc("tick close p99 (µs): tick end -> frame taken")
            .y_desc("late inputs (%, 0 drawn at 0.0001)")
            .y_label_formatter(&|y| if *y <= LATE_FLOOR_PCT { "0".into() } else { trim(*y) })
            .draw()
            .map_err(draw_error)?;
        let (goal_p99_us, goal_late_pct) = goal;
        let corner = [(0.0, goal_late_pct), (goal_p99_us, goal_late_pct), (goal_p99_us, LATE_FLOOR_PCT)];
        chart
            .draw_series(LineSeries::new(corner, BLACK.mix(0.5).stroke_width(1)))
            .map_err(draw_error)?
            .label(format!("goal: p99 <= {goal_p99_us} µs at <= {goal_late_pct} % late"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.5)));
        for (kind, points) in series {
            let c = colour(*kind);
            let xy: Vec<(f64, f64)> = points.iter().map(|p| (p.p99_us, at(p.late_pct))).collect();
            chart
                .draw_series(LineSeries::new(xy.iter().copied(), c.stroke_width(2)))
                .map_err(draw_error)?
                .label(kind.name())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3)));
            chart.draw_series(xy.iter().map(|&p| Circle::new(p, 3, c.filled()))).map_err(draw_error)?;
            chart
                .draw_series(points.iter().map(|p| {
                    let style = ("sans-serif", 11).into_font().color(&c);
                    Text::new(format!("{}", p.grace_us), (p.p99_us, at(p.late_pct)), style)
                }))
                .map_err(draw_error)?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        root.present().map_err(draw_error)?;
    }
    Ok(svg)
}

fn kpps(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.1}M", x / 1e6)
    } else if x == 0.0 {
        "0".into()
    } else {
        format!("{:.0}k", x / 1e3)
    }
}

/// Writes `svg` to `path` and, unless `png` is false, a PNG beside it. Returns a note when the
/// PNG could not be made (no font files for the labels).
pub fn write(path: &Path, svg: &str, png: bool) -> Result<Option<String>> {
    fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
    if !png {
        return Ok(None);
    }
    let mut options = resvg::usvg::Options::default();
    options.fontdb_mut().load_system_fonts();
    if options.fontdb.is_empty() {
        return Ok(Some(
            "no font files under /usr/share/fonts: PNG charts skipped (install fonts-dejavu-core)".into(),
        ));
    }
    // plotters writes font-family="sans-serif"; fontdb maps that to Arial unless told otherwise.
    let family = {
        let db = &options.fontdb;
        let has = |name: &str| db.faces().any(|f| f.families.iter().any(|(n, _)| n == name));
        ["DejaVu Sans", "Liberation Sans", "Noto Sans", "FreeSans"]
            .into_iter()
            .find(|n| has(n))
            .map(str::to_owned)
            .or_else(|| db.faces().next().and_then(|f| f.families.first().map(|(n, _)| n.clone())))
    };
    if let Some(family) = family {
        options.fontdb_mut().set_sans_serif_family(family.clone());
        options.font_family = family;
    }
    let tree = resvg::usvg::Tree::from_str(svg, &options).context("parsing the chart SVG")?;
    let size = tree.size().to_int_size();
    let mut pixmap =
        resvg::tiny_skia::Pixmap::new(size.width(), size.height()).context("allocating the PNG canvas")?;
    resvg::render(&tree, resvg::tiny_skia::Transform::default(), &mut pixmap.as_mut());
    let png_path = path.with_extension("png");
    // RGB on white with the best compression: a third of tiny-skia's RGBA file.
    let rgb: Vec<u8> = pixmap.pixels().iter().flat_map(|p| [p.red(), p.green(), p.blue()]).collect();
    let file = fs::File::create(&png_path).with_context(|| format!("writing {}", png_path.display()))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), size.width(), size.height());
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Best);
    encoder
        .write_header()
        .and_then(|mut w| w.write_image_data(&rgb))
        .with_context(|| format!("encoding {}", png_path.display()))?;
    Ok(None)
}
