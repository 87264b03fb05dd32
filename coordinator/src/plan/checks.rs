//! What a spec must satisfy before anything is planned or published: every
//! path it names stays under the data root (the rule the workers apply, from
//! [`mll_common::paths`]), and it describes a run that can produce a report
//! (models, datasets, k within the hub, a class name per class). A spec that
//! fails is refused at submit with the key named (exit 2), instead of being
//! dead-lettered job by job an hour later.

use super::error::PlanError;
use crate::spec::BenchmarkSpec;
use mll_common::paths::confine;
use std::path::Path;

fn input(key: impl Into<String>, reason: impl Into<String>) -> PlanError {
    PlanError::Input { key: key.into(), reason: reason.into() }
}

/// Paths and shape of the spec; reads nothing from disk.
pub fn check(spec: &BenchmarkSpec, data_root: &Path) -> Result<(), PlanError> {
    let confined = |key: String, rel: &str| confine(data_root, rel).map(|_| ()).map_err(|e| input(key, e.to_string()));
    for (i, m) in spec.hub.iter().enumerate() {
        confined(format!("hub[{i}].artifact"), &m.artifact)?;
    }
    for (i, d) in spec.datasets.iter().enumerate() {
        confined(format!("datasets[{i}].path"), &d.path)?;
        if let Some(c) = &d.captions {
            confined(format!("datasets[{i}].captions"), c)?;
        }
    }
    if let Some(g) = &spec.graph {
        confined("graph.path".into(), &g.path)?;
    }
    if let Some(e) = &spec.embedder {
        if !e.path.is_empty() {
            confined("embedder.path".into(), &e.path)?;
        }
        if let Some(k) = &e.key_file {
            confined("embedder.key_file".into(), k)?;
        }
    }
    if let Some(k) = spec.llm.as_ref().and_then(|l| l.key_file.as_ref()) {
        confined("llm.key_file".into(), k)?;
    }
    // A diagnostic spec exercises the queue only; everything else needs both.
    if spec.diagnostic.is_none() {
        if spec.hub.is_empty() {
            return Err(input("hub", "the hub is empty: list at least one [[hub]] model"));
        }
        if spec.datasets.is_empty() {
            return Err(input("datasets", "no target datasets: list at least one [[datasets]] entry"));
        }
    }
    if !spec.hub.is_empty() {
        if let Some(k) = spec.method.k.iter().find(|&&k| k > spec.hub.len()) {
            return Err(input(
                "method.k",
                format!("k = {k} is larger than the hub ({} models): each k picks that many models per class", spec.hub.len()),
            ));
        }
    }
    Ok(())
}

/// The spec's class names against the classes the dataset itself has (class
/// folders, or its classnames.txt): labels are positions, so the counts must agree.
pub fn check_classes(index: usize, spec_names: &[String], dataset_names: Option<&[String]>) -> Result<(), PlanError> {
    match dataset_names {
        Some(found) if !spec_names.is_empty() && found.len() != spec_names.len() => Err(input(
            format!("datasets[{index}].classnames"),
            format!(
                "{} class names given, but the dataset has {} classes ({}...): give one name per class, in label order",
                spec_names.len(),
                found.len(),
                found.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: &str) -> BenchmarkSpec {
        BenchmarkSpec::from_toml(&format!("name = \"s\"\n{extra}"), "t.toml").unwrap()
    }

    const HUB: &str = "[[hub]]\nkey = \"a/b\"\nartifact = \"models/a\"\n";
    const DS: &str = "[[datasets]]\nname = \"d\"\nformat = \"imagefolder\"\npath = \"ds\"\n";

    fn key_of(e: PlanError) -> String {
        match e {
            PlanError::Input { key, .. } => key,
            other => panic!("not an input error: {other}"),
        }
    }

    #[test]
    fn paths_leaving_the_data_root_are_refused_with_their_key() {
        let root = Path::new("/data");
        let spec = |body: &str| spec(&format!("{body}[method]\nk = [1]\n"));
        assert!(check(&spec(&format!("{HUB}{DS}")), root).is_ok());
        let bad_ds = DS.replace("\"ds\"", "\"/etc\"");
        assert_eq!(key_of(check(&spec(&format!("{HUB}{bad_ds}")), root).unwrap_err()), "datasets[0].path");
        let inside_but_absolute = DS.replace("\"ds\"", "\"/data/ds\"");
        assert_eq!(key_of(check(&spec(&format!("{HUB}{inside_but_absolute}")), root).unwrap_err()), "datasets[0].path");
        let climbing = HUB.replace("models/a", "models/../../a");
        assert_eq!(key_of(check(&spec(&format!("{climbing}{DS}")), root).unwrap_err()), "hub[0].artifact");
        let graph = "[graph]\npath = \"../graph.json\"\n";
        assert_eq!(key_of(check(&spec(&format!("{HUB}{DS}{graph}")), root).unwrap_err()), "graph.path");
    }

    #[test]
    fn degenerate_specs_are_refused_with_their_key() {
        let root = Path::new("/data");
        assert_eq!(key_of(check(&spec(DS), root).unwrap_err()), "hub");
        assert_eq!(key_of(check(&spec(HUB), root).unwrap_err()), "datasets");
        let k = "[method]\nk = [1, 3]\n";
        assert_eq!(key_of(check(&spec(&format!("{HUB}{DS}{k}")), root).unwrap_err()), "method.k");
        // A diagnostic spec has neither and is fine.
        assert!(check(&spec("[diagnostic]\njobs = 2\n"), root).is_ok());
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let folders = names(&["ant", "bee", "cat"]);
        assert_eq!(key_of(check_classes(2, &names(&["ant", "bee"]), Some(&folders)).unwrap_err()), "datasets[2].classnames");
        assert!(check_classes(0, &names(&["a", "b", "c"]), Some(&folders)).is_ok());
        assert!(check_classes(0, &[], Some(&folders)).is_ok());
    }
}
