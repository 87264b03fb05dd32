//! The accuracy matrix is written and read as RFC 4180 CSV (the `csv` crate):
//! names with commas and quotes survive the round trip.

use mll_coordinator::aggregate::truth::TruthTable;
use mll_method::assess::{build_report, DatasetInput, ReportInput};
use mll_method::outcome::ModelInfo;
use mll_method::report::accuracy_matrix_csv;
use mll_method::Accuracy;

fn model(key: &str) -> ModelInfo {
    ModelInfo { key: key.into(), params_m: None, gflops: None, imagenet_top1: Some(0.5) }
}

#[test]
fn names_with_commas_and_quotes_round_trip() {
    let odd_model = r#"RN50,"quick, gelu"/open "ai", v2"#;
    let odd_set = r#"cars, "stanford""#;
    let input = ReportInput {
        run: "csv".into(),
        spec_digest: "d".into(),
        source: "evaluate".into(),
        options: Default::default(),
        models: vec![model(odd_model), model("ViT-B-32/laion2b")],
        datasets: vec![
            DatasetInput {
                name: odd_set.into(),
                class_names: vec!["a, \"b\"".into(), "c".into()],
                accuracy: vec![Some(Accuracy::top1_only(0.25)), Some(Accuracy::top1_only(0.75))],
                ..Default::default()
            },
            DatasetInput { name: "MNIST".into(), accuracy: vec![Some(Accuracy::top1_only(0.5)), None], ..Default::default() },
        ],
        graph: None,
    };
    let report = build_report(&input).unwrap();
    let csv = accuracy_matrix_csv(&report);
    // Quoted where needed, plain elsewhere.
    assert!(csv.starts_with("model,pretrained,\"cars, \"\"stanford\"\"\",mnist\n"), "{csv}");
    let table = TruthTable::parse(&csv, "matrix.csv").unwrap();
    assert_eq!(table.models, vec![odd_model.to_string(), "ViT-B-32/laion2b".to_string()]);
    let col = table.column_for(odd_set).expect("the odd dataset's column");
    assert_eq!(table.value(odd_model, col).unwrap(), Some(0.25));
    assert_eq!(table.value("ViT-B-32/laion2b", col).unwrap(), Some(0.75));
    let mnist = table.column_for("MNIST").unwrap();
    assert_eq!(table.value("ViT-B-32/laion2b", mnist).unwrap(), None, "an empty cell is a missing value");
}

#[test]
fn quoted_line_breaks_blank_lines_and_a_bom_are_read() {
    let text = "\u{feff}model,pretrained,\"CIFAR\n100\"\n\nRN50,openai,0.5\n\n\"RN101\",\"yfcc, 15m\",0.25\n";
    let t = TruthTable::parse(text, "t.csv").unwrap();
    assert_eq!(t.models, vec!["RN50/openai", "RN101/yfcc, 15m"]);
    assert_eq!(t.columns, vec!["CIFAR\n100"]);
    assert_eq!(t.value("RN101/yfcc, 15m", 0).unwrap(), Some(0.25));
    // Errors name the record's line.
    let err = TruthTable::parse("model,pretrained,x\nRN50,openai,0.1\nRN101,openai\n", "t.csv").unwrap_err().to_string();
    assert!(err.contains("line 3") && err.contains("2 fields"), "{err}");
}
