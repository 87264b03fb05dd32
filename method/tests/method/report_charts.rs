//! Every chart the report writes renders with Debian's `rsvg-convert`
//! (librsvg2-bin, installed by scripts/setup), at the size the SVG declares,
//! with a legend entry per series whose swatch is visible in the rendered
//! image, and a title inside the canvas.

use mll_method::assess::build_report_with;
use mll_method::experiments::ExperimentOptions;
use mll_method::report::write_report;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// The value of attribute `name` in the element text `el`.
fn attr<'a>(el: &'a str, name: &str) -> Option<&'a str> {
    let at = el.find(&format!(" {name}=\""))? + name.len() + 3;
    Some(&el[at..at + el[at..].find('"')?])
}

fn num(el: &str, name: &str) -> f64 {
    attr(el, name).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no numeric {name} in {el}"))
}

/// The elements that start with `open` (up to their first '>').
fn elements<'a>(svg: &'a str, open: &str) -> Vec<&'a str> {
    svg.match_indices(open).map(|(i, _)| &svg[i..i + svg[i..].find('>').unwrap() + 1]).collect()
}

/// `data-series` names of the `<g class="CLASS" ...>` groups.
fn series_names(svg: &str, class: &str) -> Vec<String> {
    elements(svg, &format!("<g class=\"{class}\""))
        .iter()
        .map(|g| attr(g, "data-series").expect("data-series").replace("&amp;", "&").replace("&quot;", "\""))
        .collect()
}

/// Width, height, bytes per pixel (RGB or RGBA) and the pixels.
fn render(svg_path: &Path) -> (u32, u32, usize, Vec<u8>) {
    let png = svg_path.with_extension("png");
    let out = Command::new("rsvg-convert")
        .arg("--output")
        .arg(&png)
        .arg(svg_path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run rsvg-convert ({e}): run scripts/setup, which installs Debian's librsvg2-bin"));
    assert!(out.status.success(), "rsvg-convert failed on {}: {}", svg_path.display(), String::from_utf8_lossy(&out.stderr));
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = match info.color_type {
        png::ColorType::Rgba => 4,
        png::ColorType::Rgb => 3,
        other => panic!("{}: unexpected colour type {other:?}", png.display()),
    };
    assert_eq!(info.bit_depth, png::BitDepth::Eight, "{}", png.display());
    buf.truncate(info.buffer_size());
    (info.width, info.height, channels, buf)
}

fn hex(c: &str) -> [u8; 3] {
    let v = u32::from_str_radix(c.trim_start_matches('#'), 16).unwrap();
    [(v >> 16) as u8, (v >> 8) as u8, v as u8]
}

/// Checks one chart; returns its series names.
fn check_chart(path: &Path) -> Vec<String> {
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let svg = std::fs::read_to_string(path).unwrap();
    let root = elements(&svg, "<svg")[0];
    let (w, h) = (num(root, "width"), num(root, "height"));
    let series = series_names(&svg, "series");
    let legend = series_names(&svg, "legend-entry");
    assert!(!series.is_empty(), "{name}: no series");
    assert_eq!(
        series.iter().collect::<BTreeSet<_>>(),
        legend.iter().collect::<BTreeSet<_>>(),
        "{name}: every series needs exactly one legend entry"
    );
    assert_eq!(legend.len(), legend.iter().collect::<BTreeSet<_>>().len(), "{name}: duplicate legend entries");
    assert_eq!(elements(&svg, "<text class=\"axis-label\"").len(), 2, "{name}: both axes need a label");
    assert!(elements(&svg, "<text ").len() > 6, "{name}: ticks need labels");
    // The title fits: its estimated width (0.62 em per character, as the layout assumes) is inside.
    let title = elements(&svg, "<text class=\"title\"")[0];
    let text = &svg[svg.find(title).unwrap() + title.len()..];
    let text = &text[..text.find("</text>").unwrap()];
    assert!(num(title, "x") + text.chars().count() as f64 * 14.0 * 0.62 <= w, "{name}: title '{text}' is cut off");

    let (pw, ph, channels, pixels) = render(path);
    assert_eq!((pw as f64, ph as f64), (w.ceil(), h.ceil()), "{name}: rendered size");
    // Each legend swatch shows its colour where the SVG put it (inside the canvas, drawn).
    for entry in elements(&svg, "<g class=\"legend-entry\"") {
        let rest = &svg[svg.find(entry).unwrap() + entry.len()..];
        let swatch = &rest[..rest.find('>').unwrap() + 1];
        let (x, y, color) = if swatch.starts_with("<rect") {
            (num(swatch, "x") + 2.0, num(swatch, "y") + num(swatch, "height") / 2.0, attr(swatch, "fill").unwrap())
        } else if swatch.starts_with("<circle") {
            (num(swatch, "cx"), num(swatch, "cy"), attr(swatch, "fill").unwrap())
        } else {
            (num(swatch, "x1") + 1.0, num(swatch, "y1"), attr(swatch, "stroke").unwrap())
        };
        assert!(x >= 0.0 && y >= 0.0 && x < w && y < h, "{name}: legend swatch of {entry} outside the canvas");
        let at = ((y as usize) * pw as usize + x as usize) * channels;
        let got = &pixels[at..at + 3];
        let want = hex(color);
        let close = got.iter().zip(want).all(|(&a, b)| (a as i32 - b as i32).abs() <= 40);
        assert!(close, "{name}: legend swatch {entry} renders {got:?} at ({x}, {y}), expected {color}");
    }
    series
}

#[test]
fn every_chart_renders_with_complete_legends() {
    let dir = tempfile::tempdir().unwrap();
    let input = crate::support_world::world(6, 11, true);
    let report = build_report_with(&input, Some(&ExperimentOptions::default())).unwrap();
    let files = write_report(&report, dir.path()).unwrap();
    let charts: Vec<_> = files.iter().filter(|p| p.extension().is_some_and(|e| e == "svg")).collect();
    let names: Vec<String> = charts.iter().map(|p| p.file_name().unwrap().to_string_lossy().to_string()).collect();
    assert_eq!(
        names,
        [
            "accuracy_by_method.svg",
            "rank_mll.svg",
            "rank_inb.svg",
            "alpha_sweep.svg",
            "k_sweep_accuracy.svg",
            "k_sweep_cost.svg",
            "hub_growth.svg"
        ]
    );
    for chart in &charts {
        let series = check_chart(chart);
        let name = chart.file_name().unwrap().to_string_lossy().to_string();
        match name.as_str() {
            // The grey hub average is in the legend like every other method.
            "accuracy_by_method.svg" => assert!(series.contains(&"Hub avg".to_string()), "{series:?}"),
            // One colour per complete dataset plus the diagonal.
            "rank_mll.svg" | "rank_inb.svg" => assert_eq!(series, ["perfect ranking", "set0", "set1"]),
            "hub_growth.svg" => assert_eq!(series.len(), 3, "{series:?}"),
            _ => {}
        }
    }
}

/// (cx, cy) of every dot of the series groups.
fn dot_positions(svg: &str) -> Vec<(String, String)> {
    svg.split("<g class=\"series\"")
        .skip(1)
        .flat_map(|g| elements(g.split("</g>").next().unwrap(), "<circle"))
        .map(|c| (attr(c, "cx").unwrap().to_string(), attr(c, "cy").unwrap().to_string()))
        .collect()
}

/// Issue 22: the accuracy chart shows MLL once per weighting (the method's
/// own is not repeated as an ablation series), ranks shared by several
/// datasets stay visible (spread and counted), each dataset has its own
/// colour, and report.md explains every method and metric it shows.
#[test]
fn charts_show_each_series_once_and_shared_ranks_apart() {
    use mll_method::options::EnsembleWeight;
    for (weight, own, other) in [
        (EnsembleWeight::Entropy, "MLL k=1 (w=H)", "MLL k=1 (w=1/H)"),
        (EnsembleWeight::InverseEntropy, "MLL k=1 (w=1/H)", "MLL k=1 (w=H)"),
    ] {
        let mut input = crate::support_world::world(6, 11, false);
        input.options.ensemble_weight = weight;
        let mut report = build_report_with(&input, None).unwrap();
        // Every dataset ranked alike, and one more: every point shared by all (at least three).
        let first = report.datasets[0].clone();
        for d in report.datasets.iter_mut().skip(1) {
            d.gt_ranking = first.gt_ranking.clone();
            d.rankings = first.rankings.clone();
            d.complete = true;
        }
        let mut third = first.clone();
        third.name = format!("{} again", first.name);
        report.datasets.push(third);
        let n = report.datasets.len();
        assert!(n >= 3, "{n}");
        let dir = tempfile::tempdir().unwrap();
        write_report(&report, dir.path()).unwrap();

        let acc = std::fs::read_to_string(dir.path().join("accuracy_by_method.svg")).unwrap();
        let mll: Vec<String> = series_names(&acc, "series").into_iter().filter(|s| s.starts_with("MLL")).collect();
        assert_eq!(mll, [own, other], "the method's own weighting once, then the other one");

        let ranks = std::fs::read_to_string(dir.path().join("rank_mll.svg")).unwrap();
        let dots = dot_positions(&ranks);
        assert_eq!(dots.len(), n * 6, "every model on every dataset");
        assert_eq!(dots.iter().collect::<BTreeSet<_>>().len(), dots.len(), "no dot hides another: {dots:?}");
        assert_eq!(elements(&ranks, "<text class=\"count\"").len(), 6, "each shared position says how many share it");
        assert!(ranks.contains(&format!("×{n}")) && ranks.contains("spread sideways"), "the chart explains the spread");
        let colours: Vec<&str> = elements(&ranks, "<g class=\"legend-entry\"")
            .iter()
            .map(|e| {
                let rest = &ranks[ranks.find(e).unwrap() + e.len()..];
                attr(&rest[..rest.find('>').unwrap() + 1], "fill").unwrap_or("none")
            })
            .filter(|c| *c != "none")
            .collect();
        assert_eq!(colours.iter().collect::<BTreeSet<_>>().len(), n, "one colour per dataset: {colours:?}");
        check_chart(&dir.path().join("rank_mll.svg"));

        let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
        let legend = &md[md.find("## Legend").expect("report.md has a legend")..];
        for name in [
            "**INB k**",
            "**MLL k**",
            "**Oracle**",
            "**Hub avg**",
            "**Random k**",
            "**w = 1/H vs w = H**",
            "**R5**",
            "**τ5**",
            "**Kendall τ-b**",
            "**weighted τ**",
        ] {
            assert!(legend.contains(name), "the legend explains {name}:\n{legend}");
        }
        assert!(!md.contains("Random k=1 |"), "Random k=1 is the hub average: no column of its own\n{md}");
    }
}
