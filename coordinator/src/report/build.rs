//! From collected results to a [`Report`]: selection, reuse, metrics, baselines.

use super::*;
use crate::method::{
    hub_average, imagenet_ranking, inb_models, metrics::ranking_metrics, oracle, order_desc,
    random_selection, select, ReusePool, Selection,
};
use ndarray::ArrayView2;
use std::borrow::Cow;

/// Builds the whole report. Datasets are independent; a caller short of memory
/// can call [`build_dataset_report`] per dataset and [`summarise`] at the end instead.
pub fn build_report(input: &ReportInput) -> Result<Report, ReportError> {
    let labelled: Option<Vec<bool>> = input
        .graph
        .as_ref()
        .map(|g| (0..input.models.len()).map(|i| g.models.get(i).is_some_and(|l| l.is_some())).collect());
    let notes = mll_notes(&input.models, labelled.as_deref());
    let datasets = input
        .datasets
        .iter()
        .map(|d| build_dataset_report(&input.models, &input.options, input.graph.as_ref(), d))
        .collect::<Result<Vec<_>, _>>()?;
    let summary = summarise(&datasets);
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
    })
}

/// Why MLL did not run, if it did not: `labelled` is None without a graph,
/// else whether each hub model has its graph labels.
pub fn mll_notes(models: &[ModelInfo], labelled: Option<&[bool]>) -> Vec<String> {
    match labelled {
        None => vec![
            "MLL was not run: the input has no graph (node embeddings and model labels)".to_string(),
        ],
        Some(have) => {
            let missing: Vec<&str> = models
                .iter()
                .zip(have)
                .filter(|(_, h)| !**h)
                .map(|(m, _)| m.key.as_str())
                .collect();
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

/// The labels of every hub model, when all are there.
fn all_labels<'a>(graph: &'a GraphInput, models: usize) -> Option<Vec<&'a ModelLabels>> {
    if graph.models.len() != models {
        return None;
    }
    graph.models.iter().map(|l| l.as_ref()).collect()
}

pub fn build_dataset_report(
    models: &[ModelInfo],
    options: &MethodOptions,
    graph: Option<&GraphInput>,
    d: &DatasetInput,
) -> Result<DatasetReport, ReportError> {
    let input_err = |message: String| ReportError::Input {
        dataset: d.name.clone(),
        message,
    };
    let method_err = |source: MethodError| ReportError::Method {
        dataset: d.name.clone(),
        source,
    };
    let m = models.len();
    for (what, len) in [
        ("accuracy", d.accuracy.len()),
        ("predictions", d.predictions.len()),
    ] {
        if len != 0 && len != m {
            return Err(input_err(format!(
                "{what} has {len} entries but the hub has {m} models"
            )));
        }
    }
    let mut notes = Vec::new();
    let acc: Vec<Option<Accuracy>> = if d.accuracy.is_empty() {
        vec![None; m]
    } else {
        d.accuracy.clone()
    };
    let top1: Vec<f64> = acc.iter().map(|a| a.map_or(f64::NAN, |a| a.top1)).collect();
    let available: Vec<usize> = (0..m).filter(|&i| !top1[i].is_nan()).collect();
    let missing_models: Vec<String> = (0..m)
        .filter(|i| top1[*i].is_nan())
        .map(|i| models[i].key.clone())
        .collect();
    let complete = m > 0 && missing_models.is_empty();
    let key = |i: usize| models[i].key.clone();

    let accuracy = (0..m)
        .map(|i| {
            let a = acc[i].unwrap_or(Accuracy::top1_only(f64::NAN));
            ModelAccuracy {
                model: key(i),
                top1: a.top1,
                top5: a.top5,
                mean_per_class_recall: a.mean_per_class_recall,
            }
        })
        .collect();
    let gt_ranking: Vec<String> = order_desc(&top1)
        .into_iter()
        .filter(|i| !top1[*i].is_nan())
        .map(key)
        .collect();

    // Predictions for reuse: every present matrix must agree with the classes and the labels.
    let mut classes = d.class_names.len();
    let present: Vec<(usize, &Predictions)> = d
        .predictions
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.as_ref().map(|p| (i, p)))
        .collect();
    if classes == 0 {
        classes = present.first().map(|(_, p)| p.probs.ncols()).unwrap_or(0);
    }
    let labels: Option<&[usize]> = present.first().map(|(_, p)| p.labels.as_slice());
    for (i, p) in &present {
        if p.probs.ncols() != classes {
            return Err(input_err(format!(
                "model {}: probabilities have {} classes, expected {classes}",
                key(*i),
                p.probs.ncols()
            )));
        }
        if p.probs.nrows() != p.labels.len() {
            return Err(input_err(format!(
                "model {}: {} probability rows but {} labels",
                key(*i),
                p.probs.nrows(),
                p.labels.len()
            )));
        }
        if Some(p.labels.as_slice()) != labels {
            return Err(input_err(format!(
                "model {}: sample labels differ from model {}'s; evaluate outputs must cover the same samples in the same order",
                key(*i),
                key(present[0].0)
            )));
        }
    }
    let mut views: Vec<Option<ArrayView2<f32>>> = vec![None; m];
    for (i, p) in &present {
        views[*i] = Some(p.probs.view());
    }
    let mut pool = ReusePool::new(views, options.ensemble_weight).map_err(method_err)?;
    for (i, p) in &present {
        if let Some(h) = &p.entropy {
            pool.set_entropy(*i, h).map_err(method_err)?;
        }
    }
    let pool = pool;
    let has_probs = |set: &[usize]| {
        set.iter()
            .all(|&i| d.predictions.get(i).is_some_and(|p| p.is_some()))
    };

    // MLL selection.
    if let Some(sel) = &d.selection {
        if sel.matched.len() != classes || sel.model_scores.len() != m {
            return Err(input_err(format!(
                "the given selection covers {} classes and {} models, the dataset has {classes} and the hub {m}",
                sel.matched.len(),
                sel.model_scores.len()
            )));
        }
    }
    // Borrowed when the caller computed it, owned when computed here.
    let selection: Option<Cow<Selection>> = match (graph, &d.class_embeddings) {
        _ if d.selection.is_some() => d.selection.as_ref().map(Cow::Borrowed),
        (Some(g), Some(e_t)) => match all_labels(g, m) {
            Some(labels) => {
                if e_t.nrows() != classes {
                    return Err(input_err(format!(
                        "{} class caption embeddings for {classes} classes",
                        e_t.nrows()
                    )));
                }
                if g.node_ids.len() != g.node_embeddings.nrows() {
                    return Err(input_err(format!(
                        "graph has {} node ids but {} node embeddings",
                        g.node_ids.len(),
                        g.node_embeddings.nrows()
                    )));
                }
                Some(Cow::Owned(
                    select(e_t.view(), g.node_embeddings.view(), &labels, options)
                        .map_err(method_err)?,
                ))
            }
            None => None,
        },
        (Some(_), None) => {
            notes.push("MLL was not run: no class caption embeddings (run the embed jobs)".into());
            None
        }
        _ => None,
    };

    // Rankings, over the models that have a ground-truth accuracy.
    let mut rankings = BTreeMap::new();
    let rank = |scores: &[f64]| {
        let t: Vec<f64> = available.iter().map(|&i| top1[i]).collect();
        let p: Vec<f64> = available.iter().map(|&i| scores[i]).collect();
        let mt = ranking_metrics(&t, &p);
        RankingReport {
            predicted: order_desc(&p)
                .into_iter()
                .map(|j| key(available[j]))
                .collect(),
            r5: mt.r5,
            tau5: mt.tau5,
            kendall_tau_b: mt.kendall_tau_b,
            weighted_tau: mt.weighted_tau,
        }
    };
    if let Some(sel) = &selection {
        rankings.insert("mll".to_string(), rank(&sel.model_scores));
    }
    let imagenet: Vec<Option<f64>> = models.iter().map(|x| x.imagenet_top1).collect();
    if imagenet.iter().any(Option::is_some) {
        if imagenet.iter().any(Option::is_none) {
            notes.push("some models have no ImageNet top-1; INB ranks them last".into());
        }
        let order = imagenet_ranking(&imagenet);
        // INB's scores are ImageNet accuracies; models without one rank last.
        let scores: Vec<f64> = imagenet.iter().map(|v| v.unwrap_or(f64::NAN)).collect();
        debug_assert_eq!(order, order_desc(&scores));
        rankings.insert("inb".to_string(), rank(&scores));
    }
    for (name, values) in [
        (
            "params",
            models.iter().map(|x| x.params_m).collect::<Vec<_>>(),
        ),
        (
            "gflops",
            models.iter().map(|x| x.gflops).collect::<Vec<_>>(),
        ),
    ] {
        if let Some(v) = values.into_iter().collect::<Option<Vec<f64>>>() {
            rankings.insert(name.to_string(), rank(&v));
        }
    }

    // Selection methods.
    let mut selections = BTreeMap::new();
    let reuse = |set: &[Vec<usize>],
                 what: &str,
                 notes: &mut Vec<String>|
     -> Result<Option<f64>, ReportError> {
        let used: Vec<usize> = set.iter().flatten().copied().collect();
        match labels {
            Some(l) if has_probs(&used) => Ok(Some(pool.accuracy(l, set).map_err(method_err)?)),
            _ => {
                notes.push(format!(
                    "{what}: no reuse accuracy, probabilities of a selected model are missing"
                ));
                Ok(None)
            }
        }
    };
    let best = oracle(&top1);
    selections.insert(
        "oracle".to_string(),
        SelectionReport {
            accuracy: best.map(|b| b.1),
            models: best.map(|b| vec![key(b.0)]),
            how: "best model by ground-truth top-1".into(),
        },
    );
    let avg = hub_average(&top1);
    selections.insert(
        "hub_average".to_string(),
        SelectionReport {
            accuracy: (!avg.is_nan()).then_some(avg),
            models: None,
            how: format!("mean top-1 over {} models", available.len()),
        },
    );
    for &k in &options.k {
        let mll = match &selection {
            Some(sel) => SelectionReport {
                accuracy: reuse(&sel.top_k[&k], &format!("mll_k{k}"), &mut notes)?,
                models: None,
                how: format!("reuse of the per-class top-{k} models"),
            },
            // Listed anyway so every report has the same selection methods.
            None => SelectionReport {
                accuracy: None,
                models: None,
                how: "MLL not run".into(),
            },
        };
        selections.insert(format!("mll_k{k}"), mll);
        if let Some(inb) = inb_models(&imagenet, k) {
            let (acc, how) = if inb.len() == 1 {
                // One model for every class: the ensemble is that model's own argmax.
                let t = top1[inb[0]];
                (
                    (!t.is_nan()).then_some(t),
                    "zero-shot top-1 of the ImageNet-best model".to_string(),
                )
            } else {
                let set = baselines_same(&inb, classes);
                (
                    reuse(&set, &format!("inb_k{k}"), &mut notes)?,
                    format!("reuse of the {} ImageNet-best models", inb.len()),
                )
            };
            selections.insert(
                format!("inb_k{k}"),
                SelectionReport {
                    accuracy: acc,
                    models: Some(inb.iter().map(|&i| key(i)).collect()),
                    how,
                },
            );
        }
        let random = if k == 1 || m == 1 {
            SelectionReport {
                accuracy: (!avg.is_nan()).then_some(avg),
                models: None,
                how: "expected top-1 of one uniformly random model (exact: the hub average)".into(),
            }
        } else {
            let all: Vec<usize> = (0..m).collect();
            match labels {
                Some(l) if has_probs(&all) => {
                    let r = random_selection(&pool, l, classes, &all, k, options.seed)
                        .map_err(method_err)?;
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
                    notes.push(format!(
                        "random_k{k}: needs the probabilities of every model"
                    ));
                    SelectionReport {
                        accuracy: None,
                        models: None,
                        how: "not computed".into(),
                    }
                }
            }
        };
        selections.insert(format!("random_k{k}"), random);
    }

    let class_selections = match (&selection, graph) {
        (Some(sel), Some(g)) => (0..classes)
            .map(|y| ClassSelection {
                class: d
                    .class_names
                    .get(y)
                    .cloned()
                    .unwrap_or_else(|| y.to_string()),
                matched_nodes: sel.matched[y]
                    .iter()
                    .map(|n| MatchedNodeReport {
                        node: n.node,
                        id: g.node_ids[n.node].clone(),
                        similarity: n.similarity,
                    })
                    .collect(),
                picks: sel
                    .top_k
                    .iter()
                    .map(|(&k, per)| KPick {
                        k,
                        models: per[y].iter().map(|&i| key(i)).collect(),
                    })
                    .collect(),
            })
            .collect(),
        _ => Vec::new(),
    };

    Ok(DatasetReport {
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
    })
}

fn baselines_same(models: &[usize], classes: usize) -> Vec<Vec<usize>> {
    crate::method::same_models_for_all_classes(models, classes)
}

fn mean_finite(values: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Means over the complete datasets. A method missing on a complete dataset is
/// listed in `missing` and left out of its mean; NaN metric values are skipped.
pub fn summarise(datasets: &[DatasetReport]) -> Summary {
    let complete: Vec<&DatasetReport> = datasets.iter().filter(|d| d.complete).collect();
    let incomplete = datasets
        .iter()
        .filter(|d| !d.complete)
        .map(|d| d.name.clone())
        .collect();
    let mut rankings = BTreeMap::new();
    let methods: std::collections::BTreeSet<&String> =
        complete.iter().flat_map(|d| d.rankings.keys()).collect();
    for name in methods {
        let have: Vec<&RankingReport> = complete
            .iter()
            .filter_map(|d| d.rankings.get(name))
            .collect();
        rankings.insert(
            name.clone(),
            SummaryRanking {
                r5: mean_finite(have.iter().map(|r| r.r5)),
                tau5: mean_finite(have.iter().map(|r| r.tau5)),
                kendall_tau_b: mean_finite(have.iter().map(|r| r.kendall_tau_b)),
                weighted_tau: mean_finite(have.iter().map(|r| r.weighted_tau)),
                datasets: have.len(),
                missing: complete
                    .iter()
                    .filter(|d| !d.rankings.contains_key(name))
                    .map(|d| d.name.clone())
                    .collect(),
            },
        );
    }
    let mut selections = BTreeMap::new();
    let methods: std::collections::BTreeSet<&String> =
        complete.iter().flat_map(|d| d.selections.keys()).collect();
    for name in methods {
        let have: Vec<f64> = complete
            .iter()
            .filter_map(|d| d.selections.get(name).and_then(|s| s.accuracy))
            .collect();
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
    Summary {
        datasets: datasets.len(),
        complete: complete.len(),
        incomplete,
        rankings,
        selections,
    }
}
