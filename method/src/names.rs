//! Dataset names across sources. A spec names datasets the way MLL's repository
//! does (`CIFAR100`, `OxfordIIITPet`, `clevr_closest_object_distance`); the
//! accuracy matrix uses CLIP_benchmark's names (the `--dataset` values of
//! `clip_benchmark eval`, as DataComp's 38-dataset suite that produced open_clip's
//! results table spells them); open_clip's results CSV uses display names.
//!
//! | MLL / spec | CLIP_benchmark | open_clip results column |
//! |---|---|---|
//! | CIFAR100 | cifar100 | CIFAR-100 |
//! | Country211 | country211 | Country211 |
//! | DTD | dtd | Describable Textures |
//! | FER2013 | fer2013 | — |
//! | Flowers102 | vtab/flowers | Oxford Flowers-102 |
//! | Food101 | food101 | Food-101 |
//! | GTSRB | gtsrb | GTSRB |
//! | MNIST | mnist | MNIST |
//! | OxfordIIITPet | vtab/pets | Oxford-IIIT Pet |
//! | PCAM | vtab/pcam | PatchCamelyon |
//! | RenderedSST2 | renderedsst2 | Rendered SST2 |
//! | STL10 | stl10 | STL-10 |
//! | StanfordCars | cars | Stanford Cars |
//! | UCF101 | ucf101 (not in CLIP_benchmark) | — |
//! | clevr_closest_object_distance | vtab/clevr_closest_object_distance | CLEVR Distance |
//! | dmlab | vtab/dmlab | — |
//! | resisc45 | vtab/resisc45 | RESISC45 |
//! | ImageNet | imagenet1k | ImageNet 1k |
//!
//! Names are compared case-insensitively with everything but letters and digits
//! removed, so `vtab/flowers`, `wds_vtab-flowers` and `Flowers102` all resolve.

/// One dataset's names: (MLL name, CLIP_benchmark name, other aliases incl. the open_clip column).
const TABLE: &[(&str, &str, &[&str])] = &[
    ("CIFAR100", "cifar100", &["CIFAR-100", "vtab/cifar100"]),
    ("Country211", "country211", &[]),
    ("DTD", "dtd", &["Describable Textures", "vtab/dtd"]),
    ("FER2013", "fer2013", &[]),
    ("Flowers102", "vtab/flowers", &["Oxford Flowers-102", "flowers"]),
    ("Food101", "food101", &["Food-101"]),
    ("GTSRB", "gtsrb", &[]),
    ("MNIST", "mnist", &[]),
    ("OxfordIIITPet", "vtab/pets", &["Oxford-IIIT Pet", "pets"]),
    ("PCAM", "vtab/pcam", &["PatchCamelyon"]),
    ("RenderedSST2", "renderedsst2", &["Rendered SST2"]),
    ("STL10", "stl10", &["STL-10"]),
    ("StanfordCars", "cars", &["Stanford Cars"]),
    ("UCF101", "ucf101", &[]),
    ("clevr_closest_object_distance", "vtab/clevr_closest_object_distance", &["CLEVR Distance"]),
    ("dmlab", "vtab/dmlab", &[]),
    ("resisc45", "vtab/resisc45", &["RESISC45"]),
    ("ImageNet", "imagenet1k", &["ImageNet 1k"]),
];

fn normalise(name: &str) -> String {
    let s: String = name.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect();
    // CLIP_benchmark's webdataset names carry a `wds` prefix.
    s.strip_prefix("wds").map(str::to_string).unwrap_or(s)
}

fn entry(name: &str) -> Option<usize> {
    let n = normalise(name);
    TABLE.iter().position(|(mll, bench, aliases)| normalise(mll) == n || normalise(bench) == n || aliases.iter().any(|a| normalise(a) == n))
}

/// The CLIP_benchmark-style column name of a dataset (its lower-cased name when unknown).
pub fn benchmark_name(name: &str) -> String {
    match entry(name) {
        Some(i) => TABLE[i].1.to_string(),
        None => name.to_ascii_lowercase(),
    }
}

/// True when two names denote the same dataset (same table entry, or equal
/// after normalisation for datasets the table does not know).
pub fn same_dataset(a: &str, b: &str) -> bool {
    match (entry(a), entry(b)) {
        (Some(x), Some(y)) => x == y,
        _ => normalise(a) == normalise(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_resolve() {
        assert_eq!(benchmark_name("Flowers102"), "vtab/flowers");
        assert_eq!(benchmark_name("StanfordCars"), "cars");
        assert_eq!(benchmark_name("my_new_set"), "my_new_set");
        assert!(same_dataset("OxfordIIITPet", "Oxford-IIIT Pet"));
        assert!(same_dataset("clevr_closest_object_distance", "CLEVR Distance"));
        assert!(same_dataset("PCAM", "wds/vtab/pcam"));
        assert!(!same_dataset("CIFAR100", "CIFAR-10"));
        assert!(!same_dataset("ImageNet", "imagenet_v2"));
    }
}
