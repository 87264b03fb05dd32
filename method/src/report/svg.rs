//! The report's charts as SVG, written by hand so the bytes are fixed by the
//! report alone (no font metrics, no library layout): every chart has a title
//! sized to fit, labelled axes with ticks, and a legend with one entry per
//! series (`<g class="legend-entry" data-series=…>` beside each
//! `<g class="series" data-series=…>`, which the chart test checks). Text
//! widths are estimated generously (0.62 em per character), so text fits in
//! any sans-serif font.

use super::write::round6;
use super::Report;
use crate::outcome::Experiments;
use std::fmt::Write as _;

/// Method colours (Tableau 10); the hub average is grey.
const METHOD_COLORS: &[&str] = &["#4e79a7", "#e15759", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f"];
const GREY: &str = "#9c9c9c";
/// Dataset colours: Tableau 10's hues without its grey first, one hue per
/// dataset up to 9, then Tableau 20's light tints of the same hues (18 in all).
const DATASET_COLORS: &[&str] = &[
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#a0cbe8", "#ffbe7d", "#ff9d9a",
    "#86bcb6", "#8cd17d", "#f1ce63", "#d4a6c8", "#fabfd2", "#d7b5a6",
];

const FONT: f64 = 11.0;
const TITLE_FONT: f64 = 14.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Coordinates with two decimals.
fn n(x: f64) -> String {
    format!("{}", (x * 100.0).round() / 100.0)
}

/// A generous estimate of a text's rendered width.
fn text_width(s: &str, size: f64) -> f64 {
    s.chars().count() as f64 * size * 0.62
}

/// A tick value's label: up to 3 decimals, no trailing zeros.
fn tick_label(v: f64) -> String {
    let s = format!("{:.3}", round6(v));
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mark {
    Bar,
    Line,
    Dot,
}

/// One series: its name (the legend's text), colour and values; `y` None = no value.
struct Series {
    name: String,
    color: &'static str,
    mark: Mark,
    points: Vec<(f64, Option<f64>)>,
    /// Line charts: a ± band around the line (the hub-growth study's spread).
    band: Option<Vec<f64>>,
    /// Dots: each point's tooltip, when its x is not the value to show (a spread point).
    titles: Option<Vec<String>>,
}

/// Horizontal axis: numeric (`ticks` at values) or categories (one slot each).
enum XAxis {
    Numeric { min: f64, max: f64, ticks: Vec<f64> },
    Categories(Vec<String>),
}

struct Chart {
    title: String,
    subtitle: Option<String>,
    x_label: String,
    y_label: String,
    x: XAxis,
    y_min: f64,
    y_max: f64,
    y_ticks: Vec<f64>,
    /// y_min at the top (ranks: 1 = best at the top).
    y_down: bool,
    series: Vec<Series>,
    /// A dashed reference line from (x0, y0) to (x1, y1) with its legend text.
    reference: Option<(String, [f64; 4])>,
    /// Small labels at data coordinates (how many points share a position).
    labels: Vec<(f64, f64, String)>,
    footnote: Option<String>,
    plot_w: f64,
    plot_h: f64,
}

/// Ticks from `min` to `max` in steps of `step`.
fn ticks(min: f64, max: f64, step: f64) -> Vec<f64> {
    let count = ((max - min) / step + 1e-9).floor() as usize;
    (0..=count).map(|i| round6(min + step * i as f64)).collect()
}

/// A y range that holds every value: [0, 1] for accuracies, lower when a value is negative.
fn unit_range(values: impl Iterator<Item = f64>) -> (f64, f64, Vec<f64>) {
    let lo = values.filter(|v| v.is_finite()).fold(0.0f64, f64::min);
    let min = if lo < 0.0 { (lo * 5.0).floor() / 5.0 } else { 0.0 };
    (min, 1.0, ticks(min, 1.0, 0.2))
}

impl Chart {
    fn render(&self) -> String {
        let pad = 16.0;
        // Left: tick labels and the rotated y label; bottom: tick labels (categories rotated) and the x label.
        let y_tick_w = self.y_ticks.iter().map(|&t| text_width(&tick_label(t), FONT)).fold(0.0, f64::max);
        let left = pad + FONT * 1.6 + y_tick_w + 8.0;
        let cat_h = match &self.x {
            XAxis::Categories(c) => c.iter().map(|s| text_width(s, FONT)).fold(0.0, f64::max) * 0.71 + FONT,
            XAxis::Numeric { .. } => FONT + 4.0,
        };
        let top = pad + TITLE_FONT * 1.3 + self.subtitle.as_ref().map_or(0.0, |_| FONT * 1.5) + 10.0;
        let legend_entries: Vec<(&str, &str, Mark)> = self
            .series
            .iter()
            .map(|s| (s.name.as_str(), s.color, s.mark))
            .chain(self.reference.iter().map(|(name, _)| (name.as_str(), "#999999", Mark::Line)))
            .collect();
        let legend_w = 28.0 + legend_entries.iter().map(|e| text_width(e.0, FONT)).fold(0.0, f64::max);
        let legend_h = legend_entries.len() as f64 * (FONT + 7.0);
        let plot_h = self.plot_h.max(legend_h - 10.0);
        let bottom = 8.0 + cat_h + FONT * 2.2 + self.footnote.as_ref().map_or(0.0, |_| FONT * 1.6) + pad;
        let content_w = left + self.plot_w + 24.0 + legend_w + pad;
        let title_w = text_width(&self.title, TITLE_FONT).max(self.subtitle.as_ref().map_or(0.0, |t| text_width(t, FONT))) + 2.0 * pad;
        let footnote_w = self.footnote.as_ref().map_or(0.0, |f| text_width(f, FONT) + 2.0 * pad);
        let width = content_w.max(title_w).max(footnote_w).ceil();
        let height = (top + plot_h + bottom).ceil();
        let (px0, py0) = (left, top);
        let sy = |v: f64| {
            let f = (v - self.y_min) / (self.y_max - self.y_min);
            py0 + plot_h * if self.y_down { f } else { 1.0 - f }
        };

        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" viewBox="0 0 {} {}" font-family="sans-serif" font-size="{FONT}">"#,
            n(width),
            n(height),
            n(width),
            n(height)
        );
        let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text class="title" x="{}" y="{}" font-size="{TITLE_FONT}" font-weight="bold">{}</text>"#,
            n(pad),
            n(pad + TITLE_FONT),
            esc(&self.title)
        );
        if let Some(sub) = &self.subtitle {
            let _ = writeln!(s, r##"<text x="{}" y="{}" fill="#444">{}</text>"##, n(pad), n(pad + TITLE_FONT + FONT * 1.5), esc(sub));
        }
        // Y grid, ticks and label.
        for &t in &self.y_ticks {
            let y = sy(t);
            let _ = writeln!(
                s,
                r##"<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="#e4e4e4"/><line x1="{}" x2="{}" y1="{}" y2="{}" stroke="#555"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
                n(px0),
                n(px0 + self.plot_w),
                n(y),
                n(y),
                n(px0 - 4.0),
                n(px0),
                n(y),
                n(y),
                n(px0 - 6.0),
                n(y + 4.0),
                tick_label(t)
            );
        }
        let ylx = pad + FONT;
        let yly = py0 + plot_h / 2.0;
        let _ = writeln!(
            s,
            r#"<text class="axis-label" x="{}" y="{}" transform="rotate(-90 {} {})" text-anchor="middle">{}</text>"#,
            n(ylx),
            n(yly),
            n(ylx),
            n(yly),
            esc(&self.y_label)
        );
        // X ticks.
        let slots = match &self.x {
            XAxis::Categories(c) => c.len().max(1) as f64,
            XAxis::Numeric { .. } => 1.0,
        };
        let sx = |v: f64| match &self.x {
            XAxis::Numeric { min, max, .. } => px0 + self.plot_w * if max > min { (v - min) / (max - min) } else { 0.5 },
            XAxis::Categories(_) => px0 + self.plot_w * (v + 0.5) / slots,
        };
        let axis_y = py0 + plot_h;
        match &self.x {
            XAxis::Numeric { ticks, .. } => {
                for &t in ticks {
                    let x = sx(t);
                    let _ = writeln!(
                        s,
                        r##"<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="#555"/><text x="{}" y="{}" text-anchor="middle">{}</text>"##,
                        n(x),
                        n(x),
                        n(axis_y),
                        n(axis_y + 4.0),
                        n(x),
                        n(axis_y + 6.0 + FONT),
                        tick_label(t)
                    );
                }
            }
            XAxis::Categories(names) => {
                for (i, name) in names.iter().enumerate() {
                    let x = sx(i as f64);
                    let ly = axis_y + 10.0;
                    let _ = writeln!(
                        s,
                        r##"<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="#555"/><text x="{}" y="{}" transform="rotate(45 {} {})">{}</text>"##,
                        n(x),
                        n(x),
                        n(axis_y),
                        n(axis_y + 4.0),
                        n(x),
                        n(ly),
                        n(x),
                        n(ly),
                        esc(name)
                    );
                }
            }
        }
        let _ = writeln!(
            s,
            r##"<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="#555"/>"##,
            n(px0),
            n(py0),
            n(self.plot_w),
            n(plot_h)
        );
        let _ = writeln!(
            s,
            r#"<text class="axis-label" x="{}" y="{}" text-anchor="middle">{}</text>"#,
            n(px0 + self.plot_w / 2.0),
            n(axis_y + 8.0 + cat_h + FONT * 1.2),
            esc(&self.x_label)
        );
        if let Some(f) = &self.footnote {
            let _ = writeln!(s, r##"<text x="{}" y="{}" fill="#444">{}</text>"##, n(pad), n(height - pad + 2.0), esc(f));
        }
        if let Some((name, [x0, y0, x1, y1])) = &self.reference {
            let _ = writeln!(
                s,
                r##"<g class="series" data-series="{}"><line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999999" stroke-dasharray="4 3"/></g>"##,
                esc(name),
                n(sx(*x0)),
                n(sy(*y0)),
                n(sx(*x1)),
                n(sy(*y1))
            );
        }
        // Series.
        let bars: Vec<usize> = (0..self.series.len()).filter(|&i| self.series[i].mark == Mark::Bar).collect();
        let slot_w = self.plot_w / slots;
        let bar_w = (slot_w - 6.0) / bars.len().max(1) as f64;
        for (si, sr) in self.series.iter().enumerate() {
            let _ = write!(s, r#"<g class="series" data-series="{}">"#, esc(&sr.name));
            match sr.mark {
                Mark::Bar => {
                    let bi = bars.iter().position(|&b| b == si).unwrap_or(0) as f64;
                    for &(x, y) in &sr.points {
                        let Some(y) = y.filter(|y| y.is_finite()) else { continue };
                        let y = round6(y).clamp(self.y_min, self.y_max);
                        let x0 = px0 + slot_w * x + 3.0 + bar_w * bi;
                        let (yt, yb) = (sy(y.max(0.0)), sy(y.min(0.0)));
                        let _ = write!(
                            s,
                            r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}: {:.4}</title></rect>"#,
                            n(x0),
                            n(yt),
                            n((bar_w - 1.0).max(0.5)),
                            n(yb - yt),
                            sr.color,
                            esc(&sr.name),
                            y
                        );
                    }
                }
                Mark::Line => {
                    if let Some(band) = &sr.band {
                        let pts: Vec<(f64, f64, f64)> = sr
                            .points
                            .iter()
                            .zip(band)
                            .filter_map(|(&(x, y), &b)| y.filter(|y| y.is_finite() && b.is_finite()).map(|y| (x, y, b)))
                            .collect();
                        if pts.len() > 1 {
                            let upper = pts.iter().map(|&(x, y, b)| format!("{},{}", n(sx(x)), n(sy((y + b).min(self.y_max)))));
                            let lower = pts.iter().rev().map(|&(x, y, b)| format!("{},{}", n(sx(x)), n(sy((y - b).max(self.y_min)))));
                            let poly: Vec<String> = upper.chain(lower).collect();
                            let _ = write!(
                                s,
                                r#"<polygon points="{}" fill="{}" fill-opacity="0.18" stroke="none"/>"#,
                                poly.join(" "),
                                sr.color
                            );
                        }
                    }
                    let pts: Vec<String> = sr
                        .points
                        .iter()
                        .filter_map(|&(x, y)| y.filter(|y| y.is_finite()).map(|y| format!("{},{}", n(sx(x)), n(sy(round6(y))))))
                        .collect();
                    let _ = write!(s, r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>"#, pts.join(" "), sr.color);
                    if sr.points.len() <= 12 {
                        for &(x, y) in &sr.points {
                            if let Some(y) = y.filter(|y| y.is_finite()) {
                                let _ = write!(
                                    s,
                                    r#"<circle cx="{}" cy="{}" r="3" fill="{}"><title>{} at {}: {:.4}</title></circle>"#,
                                    n(sx(x)),
                                    n(sy(round6(y))),
                                    sr.color,
                                    esc(&sr.name),
                                    tick_label(x),
                                    round6(y)
                                );
                            }
                        }
                    }
                }
                Mark::Dot => {
                    for (i, &(x, y)) in sr.points.iter().enumerate() {
                        if let Some(y) = y {
                            let title =
                                sr.titles.as_ref().and_then(|t| t.get(i)).cloned().unwrap_or_else(|| format!("{}: {} {}", sr.name, x, y));
                            let _ = write!(
                                s,
                                r#"<circle cx="{}" cy="{}" r="3" fill="{}" fill-opacity="0.85" stroke="white" stroke-width="0.5"><title>{}</title></circle>"#,
                                n(sx(x)),
                                n(sy(y)),
                                sr.color,
                                esc(&title)
                            );
                        }
                    }
                }
            }
            s.push_str("</g>\n");
        }
        for (x, y, text) in &self.labels {
            let _ =
                writeln!(s, r##"<text class="count" x="{}" y="{}" font-size="9" fill="#333">{}</text>"##, n(sx(*x)), n(sy(*y)), esc(text));
        }
        // Legend, right of the plot, one entry per row.
        let lx = px0 + self.plot_w + 24.0;
        for (i, (name, color, mark)) in legend_entries.iter().enumerate() {
            let y = py0 + 4.0 + i as f64 * (FONT + 7.0);
            let swatch = match mark {
                Mark::Bar => format!(r#"<rect x="{}" y="{}" width="12" height="12" fill="{color}"/>"#, n(lx), n(y)),
                Mark::Line if *color == "#999999" => format!(
                    r##"<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="#999999" stroke-width="2" stroke-dasharray="4 3"/>"##,
                    n(lx),
                    n(lx + 14.0),
                    n(y + 6.0),
                    n(y + 6.0)
                ),
                Mark::Line => format!(r#"<rect x="{}" y="{}" width="14" height="4" fill="{color}"/>"#, n(lx), n(y + 4.0)),
                Mark::Dot => format!(r#"<circle cx="{}" cy="{}" r="5" fill="{color}"/>"#, n(lx + 6.0), n(y + 6.0)),
            };
            let _ = writeln!(
                s,
                r#"<g class="legend-entry" data-series="{}">{swatch}<text x="{}" y="{}">{}</text></g>"#,
                esc(name),
                n(lx + 20.0),
                n(y + 10.0),
                esc(name)
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

/// The accuracy chart's methods: (selection key, legend name, colour). MLL
/// under the method's own weighting is the `mll_k` series; the ablation adds
/// only the other weighting (the same weighting again would be the same bars).
fn accuracy_methods(report: &Report) -> Vec<(String, String, &'static str)> {
    let k = report.method.k.first().copied().unwrap_or(1);
    let own = match report.method.ensemble_weight {
        crate::options::EnsembleWeight::InverseEntropy => "w_inverse_entropy",
        crate::options::EnsembleWeight::Entropy => "w_entropy",
    };
    let label_of = |suffix: &str| if suffix == "w_inverse_entropy" { "w=1/H" } else { "w=H" };
    let mut v = vec![(format!("inb_k{k}"), format!("INB k={k}"), METHOD_COLORS[0])];
    v.push((format!("mll_k{k}"), format!("MLL k={k} ({})", label_of(own)), METHOD_COLORS[1]));
    for (i, suffix) in ["w_inverse_entropy", "w_entropy"].into_iter().enumerate().filter(|(_, s)| *s != own) {
        let key = format!("mll_k{k}_{suffix}");
        if report.datasets.iter().any(|d| d.selections.contains_key(&key)) {
            v.push((key, format!("MLL k={k} ({})", label_of(suffix)), METHOD_COLORS[2 + i]));
        }
    }
    v.push(("oracle".into(), "Oracle".into(), METHOD_COLORS[4]));
    v.push(("hub_average".into(), "Hub avg".into(), GREY));
    v
}

/// Grouped bars: one group per dataset, one bar per method.
pub fn accuracy_by_method(report: &Report) -> String {
    let methods: Vec<(String, String, &'static str)> = accuracy_methods(report)
        .into_iter()
        .filter(|(m, _, _)| report.datasets.iter().any(|d| d.selections.get(m).and_then(|s| s.accuracy).is_some()))
        .collect();
    let names: Vec<String> = report.datasets.iter().map(|d| if d.complete { d.name.clone() } else { format!("{} *", d.name) }).collect();
    let series = methods
        .iter()
        .map(|(key, label, color)| Series {
            name: label.clone(),
            color,
            mark: Mark::Bar,
            points: report.datasets.iter().enumerate().map(|(i, d)| (i as f64, d.selections.get(key).and_then(|s| s.accuracy))).collect(),
            band: None,
            titles: None,
        })
        .collect();
    let k = report.method.k.first().copied().unwrap_or(1);
    Chart {
        title: format!("{}: reuse top-1 accuracy per dataset (k = {k})", report.run),
        subtitle: None,
        x_label: "target dataset".into(),
        y_label: "top-1 accuracy".into(),
        x: XAxis::Categories(names),
        y_min: 0.0,
        y_max: 1.0,
        y_ticks: ticks(0.0, 1.0, 0.2),
        y_down: false,
        series,
        reference: None,
        labels: Vec::new(),
        footnote: report.datasets.iter().any(|d| !d.complete).then(|| "* incomplete: a model has no result on this dataset".to_string()),
        plot_w: (report.datasets.len().max(1) as f64 * (methods.len().max(1) as f64 * 9.0 + 10.0)).max(260.0),
        plot_h: 260.0,
    }
    .render()
}

/// Rank ticks: 1, then multiples of a step that gives at most ~10 ticks.
fn rank_ticks(m: usize) -> Vec<f64> {
    let step = [1, 2, 5, 10, 20, 50].into_iter().find(|s| m / s <= 10).unwrap_or(100);
    let mut t = vec![1.0];
    t.extend((1..=m / step).map(|i| (i * step) as f64).filter(|&v| v > 1.0));
    t
}

/// Predicted rank (y) against true rank (x) of every model on every complete
/// dataset, one colour per dataset; the diagonal is a perfect ranking.
pub fn rank_scatter(report: &Report, method: &str) -> String {
    let m = report.models.len().max(1);
    let label = match method {
        "mll" => "MLL",
        "inb" => "INB (ImageNet top-1)",
        other => other,
    };
    let subtitle = report.summary.rankings.get(method).map(|r| {
        format!(
            "mean over {} complete datasets: R5 {:.3}, τ5 {:.3}, weighted τ {:.3}",
            r.datasets,
            round6(r.r5),
            round6(r.tau5),
            round6(r.weighted_tau)
        )
    });
    // (dataset, true rank, predicted rank) of every model on every complete dataset.
    let shown: Vec<&super::DatasetReport> = report.datasets.iter().filter(|d| d.complete && d.rankings.contains_key(method)).collect();
    let points: Vec<Vec<(usize, usize)>> = shown
        .iter()
        .map(|d| {
            let r = &d.rankings[method];
            d.gt_ranking
                .iter()
                .enumerate()
                .filter_map(|(t, key)| r.predicted.iter().position(|k| k == key).map(|p| (t + 1, p + 1)))
                .collect()
        })
        .collect();
    // Points of several datasets at the same ranks are spread sideways within
    // their cell (in dataset order), and the cell says how many share it.
    let mut at: std::collections::BTreeMap<(usize, usize), usize> = std::collections::BTreeMap::new();
    for &p in points.iter().flatten() {
        *at.entry(p).or_default() += 1;
    }
    let mut placed: std::collections::BTreeMap<(usize, usize), usize> = std::collections::BTreeMap::new();
    let series = shown
        .iter()
        .zip(&points)
        .enumerate()
        .map(|(i, (d, pts))| {
            let mut xy = Vec::with_capacity(pts.len());
            let mut titles = Vec::with_capacity(pts.len());
            for &(t, p) in pts {
                let n = at[&(t, p)];
                let j = placed.entry((t, p)).or_default();
                let step = (0.8 / n as f64).min(0.3);
                let dx = (*j as f64 - (n as f64 - 1.0) / 2.0) * step;
                *j += 1;
                xy.push((t as f64 + dx, Some(p as f64)));
                titles.push(format!("{}: true rank {t}, predicted rank {p}", d.name));
            }
            Series {
                name: d.name.clone(),
                color: DATASET_COLORS[i % DATASET_COLORS.len()],
                mark: Mark::Dot,
                points: xy,
                band: None,
                titles: Some(titles),
            }
        })
        .collect();
    // Two points side by side read as two; from three on, the cell says how many.
    let labels: Vec<(f64, f64, String)> =
        at.iter().filter(|(_, &n)| n > 2).map(|(&(t, p), &n)| (t as f64 + 0.42, p as f64 - 0.3, format!("×{n}"))).collect();
    let (lo, hi) = (0.5, m as f64 + 0.5);
    let side = (m as f64 * 12.0).clamp(360.0, 720.0);
    Chart {
        title: format!("{label}: predicted vs true model rank"),
        subtitle,
        x_label: "true rank (1 = best)".into(),
        y_label: "predicted rank (1 = best)".into(),
        x: XAxis::Numeric { min: lo, max: hi, ticks: rank_ticks(m) },
        y_min: lo,
        y_max: hi,
        y_ticks: rank_ticks(m),
        y_down: true,
        series,
        reference: Some(("perfect ranking".into(), [lo, lo, hi, hi])),
        footnote: at.values().any(|&n| n > 1).then(|| {
            if labels.is_empty() {
                "Datasets at the same ranks are spread sideways.".to_string()
            } else {
                "Datasets at the same ranks are spread sideways; ×n: n datasets at that position.".to_string()
            }
        }),
        labels,
        plot_w: side,
        plot_h: side,
    }
    .render()
}

/// Line chart over a numeric x with the given series.
#[allow(clippy::too_many_arguments)]
fn line_chart(
    title: String,
    subtitle: Option<String>,
    x_label: &str,
    y_label: &str,
    xs: &[f64],
    x_ticks: Vec<f64>,
    series: Vec<Series>,
    footnote: Option<String>,
) -> String {
    let (y_min, y_max, y_ticks) = unit_range(series.iter().flat_map(|s| s.points.iter().filter_map(|p| p.1)));
    let (min, max) = (xs.first().copied().unwrap_or(0.0), xs.last().copied().unwrap_or(1.0));
    Chart {
        title,
        subtitle,
        x_label: x_label.into(),
        y_label: y_label.into(),
        x: XAxis::Numeric { min, max, ticks: x_ticks },
        y_min,
        y_max,
        y_ticks,
        y_down: false,
        series,
        reference: None,
        labels: Vec::new(),
        footnote,
        plot_w: 380.0,
        plot_h: 260.0,
    }
    .render()
}

fn line(name: String, color: &'static str, xs: &[f64], ys: Vec<Option<f64>>) -> Series {
    Series { name, color, mark: Mark::Line, points: xs.iter().copied().zip(ys).collect(), band: None, titles: None }
}

/// The experiments' charts: (file name, SVG).
pub fn experiment_charts(report: &Report, e: &Experiments) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(a) = &e.alpha_sweep {
        let xs = &a.alphas;
        let mut series: Vec<Series> = report
            .method
            .k
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let key = format!("mll_k{k}");
                line(
                    format!("MLL k={k} reuse top-1"),
                    METHOD_COLORS[1 + i],
                    xs,
                    a.mean.iter().map(|p| p.accuracy.get(&key).copied().flatten()).collect(),
                )
            })
            .collect();
        series.push(line("MLL ranking R5".into(), METHOD_COLORS[5], xs, a.mean.iter().map(|p| Some(p.ranking.r5)).collect()));
        series.push(line(
            "MLL ranking weighted τ".into(),
            METHOD_COLORS[6],
            xs,
            a.mean.iter().map(|p| Some(p.ranking.weighted_tau)).collect(),
        ));
        out.push((
            "alpha_sweep.svg",
            line_chart(
                format!("{}: α sweep (mean over {} datasets)", report.run, a.per_dataset.len()),
                None,
                "α (weight of the class's own score)",
                "mean over datasets",
                xs,
                xs.clone(),
                series,
                Some(format!("the method's α is {}", report.method.alpha)),
            ),
        ));
    }
    if let Some(k) = &e.k_sweep {
        let xs: Vec<f64> = k.ks.iter().map(|&k| k as f64).collect();
        let acc = vec![
            line("MLL reuse top-1".into(), METHOD_COLORS[1], &xs, k.mean.iter().map(|p| p.mll).collect()),
            line("INB reuse top-1".into(), METHOD_COLORS[0], &xs, k.mean.iter().map(|p| p.inb).collect()),
        ];
        out.push((
            "k_sweep_accuracy.svg",
            line_chart(
                format!("{}: reuse accuracy by k (mean over {} datasets)", report.run, k.per_dataset.len()),
                None,
                "k (models per class)",
                "mean top-1 accuracy",
                &xs,
                xs.clone(),
                acc,
                None,
            ),
        ));
        let m = report.models.len().max(1) as f64;
        let cost = vec![
            line(
                "MLL: distinct models a dataset needs".into(),
                METHOD_COLORS[1],
                &xs,
                k.mean.iter().map(|p| Some(p.mll_hub_fraction)).collect(),
            ),
            line("INB: k models".into(), METHOD_COLORS[0], &xs, k.mean.iter().map(|p| Some(p.inb_models / m)).collect()),
        ];
        let gpu: Vec<String> =
            k.mean.iter().map(|p| format!("k={}: {}", p.k, p.mll_gpu_seconds.map_or("–".to_string(), |s| format!("{s:.0} s")))).collect();
        out.push((
            "k_sweep_cost.svg",
            line_chart(
                format!("{}: reuse cost by k (mean over {} datasets)", report.run, k.per_dataset.len()),
                None,
                "k (models per class)",
                "fraction of the hub evaluated",
                &xs,
                xs.clone(),
                cost,
                Some(format!("MLL GPU-seconds, all datasets: {}", gpu.join(", "))),
            ),
        ));
    }
    if let Some(g) = &e.hub_growth {
        let xs: Vec<f64> = g.sizes.iter().map(|&s| s as f64).collect();
        let names =
            [("mll_k1", "MLL k=1", METHOD_COLORS[1]), ("inb_k1", "INB k=1", METHOD_COLORS[0]), ("oracle", "Oracle", METHOD_COLORS[4])];
        let series: Vec<Series> = names
            .iter()
            .filter_map(|(key, name, color)| {
                g.curves.get(*key).map(|c| Series {
                    name: format!("{name} ({} datasets)", c.datasets.len()),
                    color,
                    mark: Mark::Line,
                    points: xs.iter().copied().zip(c.mean.iter().map(|&v| Some(v))).collect(),
                    band: Some(c.std.clone()),
                    titles: None,
                })
            })
            .collect();
        let m = g.sizes.len();
        out.push((
            "hub_growth.svg",
            line_chart(
                format!("{}: accuracy as the hub grows", report.run),
                Some(format!("mean over {} seeded random hub orders (seed {}); band: ± one standard deviation", g.orders, g.seed)),
                "models in the hub",
                "mean top-1 accuracy over datasets",
                &xs,
                rank_ticks(m),
                series,
                None,
            ),
        ));
    }
    out
}
