//! From collected inputs to the run's outcome: per dataset the ground truth,
//! the predicted rankings (MLL, INB, params, GFLOPs), reuse of MLL's
//! selection and every baseline; then the summary over datasets. Selection
//! itself comes in computed ([`HubSelection`]); this module only uses it.

use super::experiments::{dataset_experiments, DatasetExperiments, ExperimentOptions};
use super::{
    hub_average, imagenet_ranking, inb_models, oracle, order_desc, random_selection, same_models_for_all_classes, Accuracy, HubSelection,
    MethodError, ModelLabels, ReusePool, Selection,
};
use crate::input::classes_of;
pub use crate::input::{mean_finite, DatasetData, DatasetInput, GraphInput, ReportInput};
use crate::modelgpt::ModelGptRanking;
use crate::names;
use crate::options::{EnsembleWeight, MethodOptions};
use crate::outcome::*;
use ndarray::ArrayView2;
use std::collections::BTreeMap;

/// Builds the whole report from in-memory inputs: selection for every dataset
/// (when the graph has every model's labels), then each dataset, then the summary.
pub fn build_report(input: &ReportInput) -> Result<Report, ReportError> {
    build_report_with(input, None)
}

/// [`build_report`], plus the paper's experiments when `experiments` is given.
pub fn build_report_with(input: &ReportInput, experiments: Option<&ExperimentOptions>) -> Result<Report, ReportError> {
    let labelled: Option<Vec<bool>> =
        input.graph.as_ref().map(|g| (0..input.models.len()).map(|i| g.models.get(i).is_some_and(|l| l.is_some())).collect());
    let notes = mll_notes(&input.models, labelled.as_deref());
    let selections = select_in_memory(input)?;
    let node_ids = input.graph.as_ref().map(|g| g.node_ids.as_slice());
    let mut datasets = Vec::new();
    let mut per_dataset = Vec::new();
    for (d, sel) in input.datasets.iter().zip(&selections) {
        let (report, exp) = assess_dataset(&input.models, &input.options, node_ids, d, sel.as_ref(), experiments)?;
        datasets.push(report);
        per_dataset.extend(exp);
    }
    let summary = summarise(&datasets);
    let experiments = experiments
        .map(|exp| super::experiments::combine(per_dataset, &input.options, exp, input.models.len(), experiment_notes(&datasets)));
    Ok(Report {
        format_version: REPORT_FORMAT_VERSION,
        run: input.run.clone(),
        spec_digest: input.spec_digest.clone(),
        source: input.source.clone(),
        method: input.options.clone(),
        models: input.models.clone(),
        datasets,
        summary,
        notes,
        diagnostic: None,
        experiments,
    })
}

/// The experiments cover the complete datasets only, as the summary does.
pub fn experiment_notes(datasets: &[DatasetReport]) -> Vec<String> {
    let left_out: Vec<&str> = datasets.iter().filter(|d| !d.complete).map(|d| d.name.as_str()).collect();
    if left_out.is_empty() {
        Vec::new()
    } else {
        vec![format!("incomplete datasets left out of the experiments: {}", left_out.join(", "))]
    }
}

/// MLL's selection for every dataset of an in-memory input, through the same
/// [`HubSelection`] aggregation streams models into; None where it cannot run.
pub fn select_in_memory(input: &ReportInput) -> Result<Vec<Option<Selection>>, ReportError> {
    let none = || vec![None; input.datasets.len()];
    let Some(g) = &input.graph else { return Ok(none()) };
    let labels: Option<Vec<&ModelLabels>> =
        if g.models.len() == input.models.len() { g.models.iter().map(|l| l.as_ref()).collect() } else { None };
    let Some(labels) = labels.filter(|l| !l.is_empty()) else { return Ok(none()) };
    let input_err = |d: usize, message: String| ReportError::Input { dataset: input.datasets[d].name.clone(), message };
    if g.node_ids.len() != g.node_embeddings.nrows() {
        return Err(input_err(0, format!("graph has {} node ids but {} node embeddings", g.node_ids.len(), g.node_embeddings.nrows())));
    }
    for (i, d) in input.datasets.iter().enumerate() {
        let classes = classes_of(d);
        if let Some(e_t) = &d.class_embeddings {
            if e_t.nrows() != classes {
                return Err(input_err(i, format!("{} class caption embeddings for {classes} classes", e_t.nrows())));
            }
        }
    }
    let e_t: Vec<Option<ArrayView2<f32>>> = input.datasets.iter().map(|d| d.class_embeddings.as_ref().map(|e| e.view())).collect();
    let method_err = |d: usize, source: MethodError| ReportError::Method { dataset: input.datasets[d].name.clone(), source };
    let mut hub = HubSelection::new(&e_t, g.node_embeddings.view(), &input.options).map_err(|(d, e)| method_err(d, e))?;
    for l in labels {
        hub.add_model(l).map_err(|(d, e)| method_err(d.unwrap_or(0), e))?;
    }
    Ok(hub.finish())
}

/// Why MLL did not run, if it did not: `labelled` is None without a graph,
/// else whether each hub model has its graph labels.
pub fn mll_notes(models: &[ModelInfo], labelled: Option<&[bool]>) -> Vec<String> {
    match labelled {
        None => vec!["MLL was not run: the input has no graph (node embeddings and model labels)".to_string()],
        Some(have) => {
            let missing: Vec<&str> = models.iter().zip(have).filter(|(_, h)| !**h).map(|(m, _)| m.key.as_str()).collect();
            if missing.is_empty() {
                Vec::new()
            } else {
                vec![format!(
                    "MLL was not run: graph labels are missing for {} of {} models ({}); run their label jobs",
                    missing.len(),
                    models.len(),
                    missing.join(", ")
                )]
            }
        }
    }
}

/// One dataset's part of the report. `node_ids` is the graph's (None: no
/// graph); `selection` is MLL's for this dataset when it ran.
pub fn build_dataset_report(
    models: &[ModelInfo],
    options: &MethodOptions,
    node_ids: Option<&[String]>,
    d: &DatasetInput,
    selection: Option<&Selection>,
) -> Result<DatasetReport, ReportError> {
    Ok(assess_dataset(models, options, node_ids, d, selection, None)?.0)
}

/// [`build_dataset_report`] and, when asked and the dataset is complete, its experiments.
pub fn assess_dataset(
    models: &[ModelInfo],
    options: &MethodOptions,
    node_ids: Option<&[String]>,
    d: &DatasetInput,
    selection: Option<&Selection>,
    experiments: Option<&ExperimentOptions>,
) -> Result<(DatasetReport, Option<DatasetExperiments>), ReportError> {
    let data = DatasetData::new(models, d)?;
    let m = models.len();
    let classes = data.classes;
    if let Some(sel) = selection {
        if sel.matched.len() != classes || sel.model_scores.len() != m {
            return Err(ReportError::Input {
                dataset: d.name.clone(),
                message: format!(
                    "the given selection covers {} classes and {} models, the dataset has {classes} and the hub {m}",
                    sel.matched.len(),
                    sel.model_scores.len()
                ),
            });
        }
    }
    let mut notes = Vec::new();
    if node_ids.is_some() && selection.is_none() && d.class_embeddings.is_none() {
        notes.push("MLL was not run: no class caption embeddings (run the embed jobs)".into());
    }
    let missing_models: Vec<String> = (0..m).filter(|&i| data.top1[i].is_nan()).map(|i| data.key(i)).collect();
    let accuracy = (0..m)
        .map(|i| {
            let a = d.accuracy.get(i).copied().flatten().unwrap_or(Accuracy::top1_only(f64::NAN));
            ModelAccuracy { model: data.key(i), top1: a.top1, top5: a.top5, mean_per_class_recall: a.mean_per_class_recall }
        })
        .collect();
    let gt_ranking: Vec<String> = order_desc(&data.top1).into_iter().filter(|i| !data.top1[*i].is_nan()).map(|i| data.key(i)).collect();
    let rankings = rankings(&data, selection, &mut notes);
    let selections = selections(&data, options, selection, &mut notes)?;
    let class_selections = match (selection, node_ids) {
        (Some(sel), Some(ids)) => class_selections(&data, sel, ids),
        _ => Vec::new(),
    };
    let complete = m > 0 && missing_models.is_empty();
    let exp = match experiments {
        Some(exp) if complete => Some(dataset_experiments(&data, options, selection, &d.evaluate_seconds, exp)?),
        _ => None,
    };
    let report = DatasetReport {
        name: d.name.clone(),
        benchmark_name: names::benchmark_name(&d.name),
        domain: d.domain.clone(),
        task: d.task.clone(),
        classes,
        complete,
        missing_models,
        accuracy,
        gt_ranking,
        rankings,
        selections,
        class_selections,
        notes,
    };
    Ok((report, exp))
}

/// Predicted rankings: MLL's, INB's (ImageNet top-1), params', GFLOPs'.
fn rankings(data: &DatasetData, selection: Option<&Selection>, notes: &mut Vec<String>) -> BTreeMap<String, RankingReport> {
    let models = data.models;
    let mut rankings = BTreeMap::new();
    if let Some(sel) = selection {
        rankings.insert("mll".to_string(), data.rank(&sel.model_scores));
    }
    let imagenet = data.imagenet();
    if imagenet.iter().any(Option::is_some) {
        if imagenet.iter().any(Option::is_none) {
            notes.push("some models have no ImageNet top-1; INB ranks them last".into());
        }
        // INB's scores are ImageNet accuracies; models without one rank last.
        let scores: Vec<f64> = imagenet.iter().map(|v| v.unwrap_or(f64::NAN)).collect();
        debug_assert_eq!(imagenet_ranking(&imagenet), order_desc(&scores));
        rankings.insert("inb".to_string(), data.rank(&scores));
    }
    match &data.input.modelgpt {
        Some(g @ ModelGptRanking::Ranked { left_out, unknown, .. }) => {
            rankings.insert("modelgpt".to_string(), data.rank(&g.scores(models.len()).expect("a ranked answer has scores")));
            if !left_out.is_empty() {
                let keys: Vec<String> = left_out.iter().map(|&i| data.key(i)).collect();
                notes.push(format!("ModelGPT's answer left out {} model(s), ranked last: {}", keys.len(), keys.join(", ")));
            }
            if !unknown.is_empty() {
                notes.push(format!("ModelGPT's answer named {} key(s) not in the hub, ignored: {}", unknown.len(), unknown.join(", ")));
            }
        }
        Some(ModelGptRanking::Unusable(why)) => notes.push(format!("ModelGPT: no ranking ({why})")),
        None => {}
    }
    for (name, values) in
        [("params", models.iter().map(|x| x.params_m).collect::<Vec<_>>()), ("gflops", models.iter().map(|x| x.gflops).collect::<Vec<_>>())]
    {
        if let Some(v) = values.into_iter().collect::<Option<Vec<f64>>>() {
            rankings.insert(name.to_string(), data.rank(&v));
        }
    }
    rankings
}

/// Selection methods' reuse accuracies: oracle, hub average, and per k MLL, INB, random.
fn selections(
    data: &DatasetData,
    options: &MethodOptions,
    selection: Option<&Selection>,
    notes: &mut Vec<String>,
) -> Result<BTreeMap<String, SelectionReport>, ReportError> {
    let (m, classes, top1) = (data.models.len(), data.classes, &data.top1);
    let pool = data.pool(options.ensemble_weight)?;
    let other = |w: EnsembleWeight| if w == options.ensemble_weight { Ok(None) } else { data.pool(w).map(Some) };
    let (inverse, plain) = (other(EnsembleWeight::InverseEntropy)?, other(EnsembleWeight::Entropy)?);
    let (inverse, plain) = (inverse.as_ref().unwrap_or(&pool), plain.as_ref().unwrap_or(&pool));
    let mut selections = BTreeMap::new();
    let best = oracle(top1);
    selections.insert(
        "oracle".to_string(),
        SelectionReport {
            accuracy: best.map(|b| b.1),
            models: best.map(|b| vec![data.key(b.0)]),
            how: "best model by ground-truth top-1".into(),
        },
    );
    let avg = hub_average(top1);
    selections.insert(
        "hub_average".to_string(),
        SelectionReport {
            accuracy: (!avg.is_nan()).then_some(avg),
            models: None,
            how: format!("mean top-1 over {} models", data.available.len()),
        },
    );
    let imagenet = data.imagenet();
    for &k in &options.k {
        let mll = match selection {
            Some(sel) => SelectionReport {
                accuracy: data.reuse(&pool, &sel.top_k[&k], &format!("mll_k{k}"), notes)?,
                models: None,
                how: format!("reuse of the per-class top-{k} models"),
            },
            // Listed anyway so every report has the same selection methods.
            None => SelectionReport { accuracy: None, models: None, how: "MLL not run".into() },
        };
        selections.insert(format!("mll_k{k}"), mll);
        // The reuse-weight ablation: MLL's picks under both weightings, whatever the method's is.
        for (weighting, pool) in [(EnsembleWeight::InverseEntropy, &inverse), (EnsembleWeight::Entropy, &plain)] {
            let name = format!("mll_k{k}_{}", weight_suffix(weighting));
            let row = match selection {
                Some(sel) => SelectionReport {
                    accuracy: data.reuse(pool, &sel.top_k[&k], &name, notes)?,
                    models: None,
                    how: format!("reuse of the per-class top-{k} models with {}", weight_text(weighting)),
                },
                None => SelectionReport { accuracy: None, models: None, how: "MLL not run".into() },
            };
            selections.insert(name, row);
        }
        if let Some(inb) = inb_models(&imagenet, k) {
            let row = same_picks(data, &pool, &inb, &format!("inb_k{k}"), "the ImageNet-best model", "ImageNet-best models", notes)?;
            selections.insert(format!("inb_k{k}"), row);
        }
        match &data.input.modelgpt {
            Some(g @ ModelGptRanking::Ranked { .. }) => {
                let picks = g.top(k).expect("a ranked answer has picks");
                let name = format!("modelgpt_k{k}");
                let row = same_picks(data, &pool, &picks, &name, "the LLM's first model", "LLM's first models", notes)?;
                selections.insert(name, row);
            }
            Some(ModelGptRanking::Unusable(why)) => {
                selections
                    .insert(format!("modelgpt_k{k}"), SelectionReport { accuracy: None, models: None, how: format!("no ranking: {why}") });
            }
            None => {}
        }
        let random = if k == 1 || m == 1 {
            SelectionReport {
                accuracy: (!avg.is_nan()).then_some(avg),
                models: None,
                how: "expected top-1 of one uniformly random model (exact: the hub average)".into(),
            }
        } else {
            let all: Vec<usize> = (0..m).collect();
            match data.labels {
                Some(l) if data.has_probs(&all) => {
                    let r = random_selection(&pool, l, classes, &all, k, options.seed)
                        .map_err(|source| ReportError::Method { dataset: data.input.name.clone(), source })?;
                    SelectionReport {
                        accuracy: Some(r.accuracy),
                        models: None,
                        how: if r.exact {
                            format!("mean reuse top-1 over all {} {}-subsets", r.subsets, r.k)
                        } else {
                            format!(
                                "expected reuse top-1 of a uniformly random {}-subset, one subset drawn per test sample (seed {})",
                                r.k, r.seed
                            )
                        },
                    }
                }
                _ => {
                    notes.push(format!("random_k{k}: needs the probabilities of every model"));
                    SelectionReport { accuracy: None, models: None, how: "not computed".into() }
                }
            }
        };
        selections.insert(format!("random_k{k}"), random);
    }
    Ok(selections)
}

/// A selection that uses the same `picks` for every class (INB, ModelGPT):
/// one model's own zero-shot top-1, or the reuse of several.
fn same_picks(
    data: &DatasetData,
    pool: &ReusePool,
    picks: &[usize],
    name: &str,
    one: &str,
    many: &str,
    notes: &mut Vec<String>,
) -> Result<SelectionReport, ReportError> {
    let (accuracy, how) = if picks.len() == 1 {
        // One model for every class: the ensemble is that model's own argmax.
        let t = data.top1[picks[0]];
        ((!t.is_nan()).then_some(t), format!("zero-shot top-1 of {one}"))
    } else {
        let set = same_models_for_all_classes(picks, data.classes);
        (data.reuse(pool, &set, name, notes)?, format!("reuse of the {} {many}", picks.len()))
    };
    Ok(SelectionReport { accuracy, models: Some(picks.iter().map(|&i| data.key(i)).collect()), how })
}

/// The selection-method suffix of a reuse weighting (`mll_k1_w_inverse_entropy`).
pub fn weight_suffix(w: EnsembleWeight) -> &'static str {
    match w {
        EnsembleWeight::InverseEntropy => "w_inverse_entropy",
        EnsembleWeight::Entropy => "w_entropy",
    }
}

fn weight_text(w: EnsembleWeight) -> &'static str {
    match w {
        EnsembleWeight::InverseEntropy => "w = 1/H (the released code)",
        EnsembleWeight::Entropy => "w = H (the paper's text)",
    }
}

/// MLL's per-class result: matched nodes and picks per k.
fn class_selections(data: &DatasetData, sel: &Selection, node_ids: &[String]) -> Vec<ClassSelection> {
    (0..data.classes)
        .map(|y| ClassSelection {
            class: data.input.class_names.get(y).cloned().unwrap_or_else(|| y.to_string()),
            matched_nodes: sel.matched[y]
                .iter()
                .map(|n| MatchedNodeReport { node: n.node, id: node_ids[n.node].clone(), similarity: n.similarity })
                .collect(),
            picks: sel.top_k.iter().map(|(&k, per)| KPick { k, models: per[y].iter().map(|&i| data.key(i)).collect() }).collect(),
        })
        .collect()
}

/// Means over the complete datasets. A method missing on a complete dataset is
/// listed in `missing` and left out of its mean; NaN metric values are skipped.
pub fn summarise(datasets: &[DatasetReport]) -> Summary {
    let complete: Vec<&DatasetReport> = datasets.iter().filter(|d| d.complete).collect();
    let incomplete = datasets.iter().filter(|d| !d.complete).map(|d| d.name.clone()).collect();
    let mut rankings = BTreeMap::new();
    let methods: std::collections::BTreeSet<&String> = complete.iter().flat_map(|d| d.rankings.keys()).collect();
    for name in methods {
        let have: Vec<&RankingReport> = complete.iter().filter_map(|d| d.rankings.get(name)).collect();
        rankings.insert(
            name.clone(),
            SummaryRanking {
                r5: mean_finite(have.iter().map(|r| r.r5)),
                tau5: mean_finite(have.iter().map(|r| r.tau5)),
                kendall_tau_b: mean_finite(have.iter().map(|r| r.kendall_tau_b)),
                weighted_tau: mean_finite(have.iter().map(|r| r.weighted_tau)),
                datasets: have.len(),
                missing: complete.iter().filter(|d| !d.rankings.contains_key(name)).map(|d| d.name.clone()).collect(),
            },
        );
    }
    let mut selections = BTreeMap::new();
    let methods: std::collections::BTreeSet<&String> = complete.iter().flat_map(|d| d.selections.keys()).collect();
    for name in methods {
        let have: Vec<f64> = complete.iter().filter_map(|d| d.selections.get(name).and_then(|s| s.accuracy)).collect();
        selections.insert(
            name.clone(),
            SummarySelection {
                accuracy: mean_finite(have.iter().copied()),
                datasets: have.len(),
                missing: complete
                    .iter()
                    .filter(|d| d.selections.get(name).and_then(|s| s.accuracy).is_none())
                    .map(|d| d.name.clone())
                    .collect(),
            },
        );
    }
    Summary { datasets: datasets.len(), complete: complete.len(), incomplete, rankings, selections }
}
