//! A report over an empty hub (e.g. `report --truth` with a spec whose hub is
//! empty) still renders well-formed Markdown tables.

use mll_method::assess::{build_report, DatasetInput, ReportInput};
use mll_method::options::MethodOptions;
use mll_method::report::report_markdown;

#[test]
fn every_markdown_table_row_has_its_header_s_columns() {
    let input = ReportInput {
        run: "empty".into(),
        spec_digest: "abc".into(),
        source: "evaluate".into(),
        options: MethodOptions { k: vec![1], ..MethodOptions::default() },
        models: vec![],
        datasets: vec![DatasetInput { name: "A".into(), class_names: vec!["x".into(), "y".into()], ..Default::default() }],
        graph: None,
    };
    let md = report_markdown(&build_report(&input).unwrap());
    let mut table: Vec<&str> = Vec::new();
    for line in md.lines().chain(std::iter::once("")) {
        if line.starts_with('|') {
            table.push(line);
            continue;
        }
        if let Some(head) = table.first() {
            let cols = head.matches('|').count();
            assert!(cols > 2, "a table needs a column besides the first: {head}\n{md}");
            for row in &table {
                assert_eq!(row.matches('|').count(), cols, "row {row:?} under {head:?}\n{md}");
            }
        }
        table.clear();
    }
}
