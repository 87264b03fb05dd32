//! Two small SVG charts, written by hand so the bytes are fixed by the report
//! alone (no fonts, no library layout): accuracy per dataset by method, and
//! predicted against true rank.

use super::write::round6;
use super::Report;
use std::fmt::Write as _;

const COLORS: &[&str] = &[
    "#4e79a7", "#e15759", "#59a14f", "#9c9c9c", "#f28e2b", "#b07aa1",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn n(x: f64) -> String {
    format!("{}", (x * 100.0).round() / 100.0)
}

/// Grouped bars: one group per dataset, one bar per method (INB, MLL at the
/// first k, oracle, hub average).
pub fn accuracy_by_method(report: &Report) -> String {
    let k = report.method.k.first().copied().unwrap_or(1);
    let candidates = [
        (format!("inb_k{k}"), format!("INB k={k}")),
        (format!("mll_k{k}"), format!("MLL k={k}")),
        ("oracle".to_string(), "Oracle".to_string()),
        ("hub_average".to_string(), "Hub average".to_string()),
    ];
    let methods: Vec<&(String, String)> = candidates
        .iter()
        .filter(|(m, _)| {
            report
                .datasets
                .iter()
                .any(|d| d.selections.get(m).and_then(|s| s.accuracy).is_some())
        })
        .collect();
    let bar = 10.0;
    let group = methods.len().max(1) as f64 * bar + 14.0;
    let (left, top, plot_h, bottom) = (50.0, 40.0, 260.0, 150.0);
    let width = left + group * report.datasets.len().max(1) as f64 + 20.0;
    let height = top + plot_h + bottom;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="11">"#,
        n(width),
        n(height)
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="20" font-size="14">{}: reuse top-1 accuracy per dataset</text>"#,
        n(left),
        esc(&report.run)
    );
    for i in 0..=5 {
        let v = i as f64 / 5.0;
        let y = top + plot_h * (1.0 - v);
        let _ = writeln!(
            s,
            r##"<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
            n(left),
            n(width - 20.0),
            n(y),
            n(y),
            n(left - 4.0),
            n(y + 4.0),
            v
        );
    }
    for (di, d) in report.datasets.iter().enumerate() {
        let x0 = left + group * di as f64 + 7.0;
        for (mi, (m, label)) in methods.iter().enumerate() {
            if let Some(a) = d.selections.get(m).and_then(|s| s.accuracy) {
                let a = round6(a).clamp(0.0, 1.0);
                let h = plot_h * a;
                let _ = writeln!(
                    s,
                    r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{} {}: {:.4}</title></rect>"#,
                    n(x0 + bar * mi as f64),
                    n(top + plot_h - h),
                    n(bar - 1.0),
                    n(h),
                    COLORS[mi % COLORS.len()],
                    esc(&d.name),
                    esc(label),
                    a
                );
            }
        }
        let lx = x0 + group / 2.0 - 7.0;
        let ly = top + plot_h + 10.0;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" transform="rotate(60 {} {})">{}{}</text>"#,
            n(lx),
            n(ly),
            n(lx),
            n(ly),
            esc(&d.name),
            if d.complete { "" } else { " *" }
        );
    }
    for (mi, (_, label)) in methods.iter().enumerate() {
        let x = left + 110.0 * mi as f64;
        let y = height - 14.0;
        let _ = writeln!(
            s,
            r#"<rect x="{}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            n(x),
            n(y - 9.0),
            COLORS[mi % COLORS.len()],
            n(x + 14.0),
            n(y),
            esc(label)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Predicted rank (y) against true rank (x) of every model on every complete
/// dataset, for one ranking method; the diagonal is a perfect ranking.
pub fn rank_scatter(report: &Report, method: &str) -> String {
    let m = report.models.len().max(1) as f64;
    let (left, top, size) = (50.0, 40.0, 360.0);
    let scale = |r: usize| size * (r as f64 - 0.5) / m;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="11">"#,
        n(left + size + 20.0),
        n(top + size + 50.0)
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let summary = report.summary.rankings.get(method);
    let title = match summary {
        Some(r) => format!(
            "{method}: predicted vs true rank (mean R5 {:.3}, weighted τ {:.3})",
            round6(r.r5),
            round6(r.weighted_tau)
        ),
        None => format!("{method}: predicted vs true rank"),
    };
    let _ = writeln!(
        s,
        r#"<text x="{}" y="20" font-size="13">{}</text>"#,
        n(left),
        esc(&title)
    );
    let _ = writeln!(
        s,
        r##"<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="#999"/>"##,
        n(left),
        n(top),
        n(size),
        n(size)
    );
    let _ = writeln!(
        s,
        r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#bbb" stroke-dasharray="4 3"/>"##,
        n(left),
        n(top),
        n(left + size),
        n(top + size)
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">true rank (1 = best)</text>"#,
        n(left + size / 2.0),
        n(top + size + 30.0)
    );
    let _ = writeln!(
        s,
        r#"<text x="15" y="{}" transform="rotate(-90 15 {})" text-anchor="middle">predicted rank</text>"#,
        n(top + size / 2.0),
        n(top + size / 2.0)
    );
    for (di, d) in report.datasets.iter().filter(|d| d.complete).enumerate() {
        let Some(r) = d.rankings.get(method) else {
            continue;
        };
        for (true_pos, key) in d.gt_ranking.iter().enumerate() {
            let Some(pred_pos) = r.predicted.iter().position(|k| k == key) else {
                continue;
            };
            let _ = writeln!(
                s,
                r#"<circle cx="{}" cy="{}" r="2.5" fill="{}" fill-opacity="0.6"><title>{} {}: true {} predicted {}</title></circle>"#,
                n(left + scale(true_pos + 1)),
                n(top + scale(pred_pos + 1)),
                COLORS[di % COLORS.len()],
                esc(&d.name),
                esc(key),
                true_pos + 1,
                pred_pos + 1
            );
        }
    }
    s.push_str("</svg>\n");
    s
}
