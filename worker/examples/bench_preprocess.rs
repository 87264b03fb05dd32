//! Preprocessing throughput on one thread (decode + resize + crop +
//! normalise), for comparison with scripts/bench_preprocess.py on the same files.
//!
//! usage: cargo run --release -p mll-worker --example bench_preprocess -- DIR [SIZE] [REPEAT]

use mll_worker::engine::image::{preprocess_into, PreprocessConfig};
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or_else(|| anyhow::anyhow!("usage: bench_preprocess DIR [SIZE] [REPEAT]"))?;
    let size: u32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(224);
    let repeat: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(3);
    let mut files: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("jpg" | "png" | "webp")))
        .collect();
    files.sort();
    let blobs: Vec<Vec<u8>> = files.iter().map(std::fs::read).collect::<Result<_, _>>()?;
    let cfg = PreprocessConfig::clip(size);
    let mut out = vec![0f32; cfg.image_len()];
    let mut best = f64::INFINITY;
    for _ in 0..repeat {
        let t0 = Instant::now();
        for b in &blobs {
            preprocess_into(b, &cfg, "bench", &mut out)?;
        }
        best = best.min(t0.elapsed().as_secs_f64());
    }
    println!(
        "rust image+fast_image_resize: {} images, best of {repeat}: {best:.3} s, {:.1} images/s on 1 thread",
        blobs.len(),
        blobs.len() as f64 / best
    );
    Ok(())
}
