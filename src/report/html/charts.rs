//! SVG chart geometry: horizontal bars, columns (histograms) and round axes. It knows SVG
//! coordinates and nothing of specs; the templates (`_charts.html`) draw what it computes.

use serde::Serialize;

use super::shorten;

/// Horizontal bars with labels on the left and values on the right.
#[derive(Serialize)]
pub(super) struct HBarChart {
    title: String,
    width: f64,
    height: f64,
    label_w: f64,
    plot_w: f64,
    plot_bottom: f64,
    rows: Vec<HBar>,
    ticks: Vec<Tick>,
}

#[derive(Serialize)]
struct HBar {
    label: String,
    /// The label cut to fit the chart (the full one is in the bar's tooltip and the data table).
    short: String,
    value: String,
    y: f64,
    h: f64,
    w: f64,
    text_y: f64,
    class: &'static str,
}

#[derive(Serialize)]
struct Tick {
    pos: f64,
    label: String,
}

/// Vertical columns (a histogram).
#[derive(Serialize)]
pub(super) struct ColumnChart {
    title: String,
    x_title: String,
    width: f64,
    height: f64,
    left: f64,
    top: f64,
    plot_w: f64,
    plot_h: f64,
    bottom: f64,
    columns: Vec<Column>,
    y_ticks: Vec<Tick>,
    /// Column labels are rotated when there are many.
    rotate: bool,
}

#[derive(Serialize)]
struct Column {
    label: String,
    count: usize,
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    cx: f64,
    label_y: f64,
    show_label: bool,
}

// ---------------------------------------------------------------------------------------------
// Chart geometry
// ---------------------------------------------------------------------------------------------

const CHART_W: f64 = 560.0;

fn r1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

pub(super) fn hbar_chart(
    title: &str,
    rows: Vec<(String, f64, String, &'static str)>,
    tick_fmt: impl Fn(f64) -> String,
    label_w: f64,
) -> HBarChart {
    let row_h = 26.0;
    let bar_h = 16.0;
    let top = 6.0;
    let value_w = 80.0;
    let plot_w = CHART_W - label_w - value_w;
    let max = rows.iter().map(|r| r.1).fold(0.0, f64::max);
    let (scale_max, n_ticks) = axis_scale(max);
    let plot_bottom = top + rows.len() as f64 * row_h;
    let bars = rows
        .into_iter()
        .enumerate()
        .map(|(i, (label, v, value, class))| {
            let y = top + i as f64 * row_h + (row_h - bar_h) / 2.0;
            let w = (v.max(0.0) / scale_max * plot_w).max(if v > 0.0 { 1.0 } else { 0.0 });
            HBar {
                short: shorten(&label, (label_w / 7.0) as usize),
                label,
                value,
                y: r1(y),
                h: bar_h,
                w: r1(w),
                text_y: r1(y + bar_h / 2.0 + 4.0),
                class,
            }
        })
        .collect();
    let ticks = (0..=n_ticks)
        .map(|i| {
            let v = scale_max * i as f64 / n_ticks as f64;
            Tick {
                pos: r1(label_w + plot_w * i as f64 / n_ticks as f64),
                label: tick_fmt(v),
            }
        })
        .collect();
    HBarChart {
        title: title.to_string(),
        width: CHART_W,
        height: r1(plot_bottom + 22.0),
        label_w,
        plot_w,
        plot_bottom: r1(plot_bottom),
        rows: bars,
        ticks,
    }
}

pub(super) fn column_chart(title: &str, x_title: &str, cols: Vec<(String, usize)>) -> ColumnChart {
    let left = 44.0;
    let top = 16.0;
    let plot_w = CHART_W - left - 10.0;
    let plot_h = 150.0;
    let rotate = cols.len() > 6;
    let bottom_space = if rotate { 70.0 } else { 40.0 };
    let max = cols.iter().map(|c| c.1).max().unwrap_or(0) as f64;
    let (scale_max, n_ticks) = if max <= 4.0 {
        (max.max(1.0), max.max(1.0) as usize)
    } else {
        axis_scale(max)
    };
    let n = cols.len().max(1) as f64;
    let slot = plot_w / n;
    let w = (slot * 0.8).max(1.0);
    let columns = cols
        .into_iter()
        .enumerate()
        .map(|(i, (label, count))| {
            let h = count as f64 / scale_max * plot_h;
            let x = left + i as f64 * slot + (slot - w) / 2.0;
            Column {
                label,
                count,
                x: r1(x),
                y: r1(top + plot_h - h),
                w: r1(w),
                h: r1(h),
                cx: r1(x + w / 2.0),
                label_y: r1(top + plot_h + 14.0),
                show_label: true,
            }
        })
        .collect();
    let y_ticks = (0..=n_ticks)
        .map(|i| {
            let v = scale_max * i as f64 / n_ticks as f64;
            Tick {
                pos: r1(top + plot_h - v / scale_max * plot_h),
                label: format!("{}", v.round()),
            }
        })
        .collect();
    ColumnChart {
        title: title.to_string(),
        x_title: x_title.to_string(),
        width: CHART_W,
        height: top + plot_h + bottom_space + 16.0,
        left,
        top,
        plot_w: r1(plot_w),
        plot_h,
        bottom: top + plot_h,
        columns,
        y_ticks,
        rotate,
    }
}

/// An axis for values up to `max`: a round tick step (about a quarter of `max`) and the
/// number of ticks (at most 4) whose last one is at or above `max`.
pub(super) fn axis_scale(max: f64) -> (f64, usize) {
    if max.is_nan() || max <= 0.0 || !max.is_finite() {
        return (1.0, 1);
    }
    let step = nice_ceil(max / 4.0);
    let n = ((max / step) - 1e-9).ceil().max(1.0) as usize;
    (step * n as f64, n)
}

/// The smallest of 1, 2, 2.5, 5 x 10^k that is >= `x`.
pub(super) fn nice_ceil(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 || !x.is_finite() {
        return 1.0;
    }
    let exp = 10f64.powf(x.log10().floor());
    for f in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if f * exp >= x * (1.0 - 1e-9) {
            return f * exp;
        }
    }
    10.0 * exp
}

/// Lines over a sequence (runs), values from 0 to `max` (percentages: 100).
#[derive(Serialize)]
pub(super) struct LineChart {
    title: String,
    width: f64,
    height: f64,
    left: f64,
    top: f64,
    plot_w: f64,
    plot_h: f64,
    bottom: f64,
    y_ticks: Vec<Tick>,
    x_labels: Vec<XLabel>,
    series: Vec<Series>,
}

/// A label under the x axis: one or more lines (time above date), anchored so that the first
/// and last labels stay inside the chart.
#[derive(Serialize)]
struct XLabel {
    pos: f64,
    lines: Vec<String>,
    anchor: &'static str,
}

#[derive(Serialize)]
struct Series {
    name: String,
    class: &'static str,
    /// `x,y x,y ...` for a `<polyline>`.
    points: String,
    dots: Vec<Dot>,
}

#[derive(Serialize)]
struct Dot {
    x: f64,
    y: f64,
    value: String,
}

/// `series`: name, CSS class, one value per label; `unit` follows each value (`%`). A label may
/// have several lines (`\n`).
pub(super) fn line_chart(
    title: &str,
    labels: Vec<String>,
    series: Vec<(String, &'static str, Vec<f64>)>,
    max: f64,
    unit: &str,
) -> LineChart {
    let left = 44.0;
    let top = 12.0;
    let plot_w = CHART_W - left - 16.0;
    let plot_h = 140.0;
    let n = labels.len().max(1);
    let x = |i: usize| {
        if n == 1 {
            left + plot_w / 2.0
        } else {
            left + plot_w * i as f64 / (n - 1) as f64
        }
    };
    let max = if max > 0.0 { max } else { 1.0 };
    let y = |v: f64| top + plot_h - v.clamp(0.0, max) / max * plot_h;
    let series = series
        .into_iter()
        .map(|(name, class, values)| {
            let dots: Vec<Dot> = values
                .iter()
                .enumerate()
                .map(|(i, v)| Dot {
                    x: r1(x(i)),
                    y: r1(y(*v)),
                    value: format!("{}{unit}", (v * 10.0).round() / 10.0),
                })
                .collect();
            Series {
                name,
                class,
                points: dots
                    .iter()
                    .map(|d| format!("{},{}", d.x, d.y))
                    .collect::<Vec<_>>()
                    .join(" "),
                dots,
            }
        })
        .collect();
    let y_ticks = (0..=4)
        .map(|i| {
            let v = max * i as f64 / 4.0;
            Tick {
                pos: r1(y(v)),
                label: format!("{}{unit}", v.round()),
            }
        })
        .collect();
    // As many labels as fit side by side (at most 10), the last one always: a label is about
    // 6.5 px a character at the tick size, plus a gap.
    let lines = labels
        .iter()
        .map(|l| l.lines().count())
        .max()
        .unwrap_or(1)
        .max(1);
    let widest = labels
        .iter()
        .flat_map(|l| l.lines())
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(1) as f64;
    let fit = ((plot_w / (widest * 6.5 + 12.0)) as usize).clamp(2, 10);
    let every = n.div_ceil(fit);
    let x_labels = labels
        .into_iter()
        .enumerate()
        // A regular label too close to the last one would overlap it.
        .filter(|(i, _)| *i == n - 1 || (i % every == 0 && n - 1 - i >= every))
        .map(|(i, label)| XLabel {
            pos: r1(x(i)),
            lines: label.lines().map(str::to_string).collect(),
            // The last label ends at the plot's right edge instead of running past the chart.
            anchor: if n > 1 && i == n - 1 { "end" } else { "middle" },
        })
        .collect();
    LineChart {
        title: title.to_string(),
        width: CHART_W,
        height: top + plot_h + 20.0 + 14.0 * lines as f64,
        left,
        top,
        plot_w: r1(plot_w),
        plot_h,
        bottom: top + plot_h,
        y_ticks,
        x_labels,
        series,
    }
}
