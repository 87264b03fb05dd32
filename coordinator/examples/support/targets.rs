//! What the scale and placement benchmarks take from the paper's 17 targets.

/// (classes, test samples) of the 17 target datasets (docs/method.md, "The
/// benchmark"; Country211 at its 21,100-image test split, not the 10,550-image
/// validation split the catalog prepares).
pub const DATASET_SHAPES: [(usize, u64); 17] = [
    (100, 10_000),
    (211, 21_100),
    (47, 1_880),
    (7, 7_178),
    (102, 6_149),
    (101, 25_250),
    (43, 12_630),
    (10, 10_000),
    (37, 3_669),
    (2, 32_768),
    (2, 1_821),
    (10, 8_000),
    (196, 8_041),
    (101, 3_783),
    (6, 15_000),
    (6, 22_735),
    (45, 31_500),
];
