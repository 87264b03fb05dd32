//! Rust preprocessing against open_clip's own eval transform (PIL +
//! torchvision) on generated JPEG and PNG images of odd sizes: at most 5/255
//! apart before normalisation (docs/formats.md, "Preprocessing and its parity
//! with open_clip"), for shortest+crop and squash, bicubic and bilinear.

use crate::support;

use mll_worker::engine::image::{decode_rgb, resize_crop, Interpolation, PreprocessConfig, ResizeMode};

#[test]
fn matches_open_clip_transform_within_5_of_255() {
    let dir = tempfile::tempdir().unwrap();
    let size = 224u32;
    support::run_python(&[&support::py_script("preprocess_ref.py"), dir.path().to_str().unwrap(), &size.to_string()]);
    let manifest: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    assert!(manifest.len() >= 30, "reference wrote {} cases", manifest.len());
    let plane = (size * size) as usize;
    let mut worst = 0f32;
    let mut sum_mean = 0f64;
    for case in &manifest {
        let file = case["file"].as_str().unwrap();
        let cfg = PreprocessConfig {
            resize_mode: serde_json::from_value::<ResizeMode>(case["mode"].clone()).unwrap(),
            interpolation: serde_json::from_value::<Interpolation>(case["interpolation"].clone()).unwrap(),
            ..PreprocessConfig::clip(size)
        };
        let bytes = std::fs::read(dir.path().join(file)).unwrap();
        let img = decode_rgb(&bytes, file).unwrap();
        let hwc = resize_crop(&img, &cfg, file).unwrap();
        let reference: Vec<f32> = std::fs::read(dir.path().join(case["ref"].as_str().unwrap()))
            .unwrap()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(reference.len(), 3 * plane);
        let mut max = 0f32;
        let mut sum = 0f64;
        for (i, px) in hwc.chunks_exact(3).enumerate() {
            for c in 0..3 {
                let d = (px[c] as f32 / 255.0 - reference[c * plane + i]).abs();
                max = max.max(d);
                sum += d as f64;
            }
        }
        let mean = sum / (3 * plane) as f64;
        sum_mean += mean;
        eprintln!("{file} {:?}/{:?}: max {:.1}/255, mean {:.3}/255", cfg.resize_mode, cfg.interpolation, max * 255.0, mean * 255.0);
        assert!(max <= 5.0 / 255.0 + 1e-6, "{file} {case}: max abs difference {}/255 > 5/255", max * 255.0);
        worst = worst.max(max);
    }
    let avg = sum_mean / manifest.len() as f64;
    eprintln!("worst {:.1}/255, average mean difference {:.3}/255", worst * 255.0, avg * 255.0);
    // Systematic errors (a shifted crop, a wrong filter) show in the mean
    // long before the max: keep it well under one grey level.
    assert!(avg * 255.0 < 0.6, "average mean abs difference {:.3}/255 is too large", avg * 255.0);
}
