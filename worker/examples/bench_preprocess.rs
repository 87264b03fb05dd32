//! Preprocessing throughput on one thread (decode + resize + crop +
//! normalise), for comparison with scripts/bench-preprocess on the same files.
//! A second timing runs the stages one by one (decode, resize + crop,
//! normalise) and prints the milliseconds per image each takes.
//!
//! usage: cargo run --release -p mll-worker --example bench_preprocess -- DIR [SIZE] [REPEAT]

use mll_worker::engine::image::{decode_rgb, normalize_chw, preprocess_into, resize_crop, PreprocessConfig};
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
    let n = blobs.len() as f64;
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
    println!("rust preprocess: {} images, best of {repeat}: {best:.3} s, {:.1} images/s on 1 thread", blobs.len(), n / best);

    // Per stage, through the public stage functions (the fused path above may
    // skip a copy these need, so the sum can exceed the total a little).
    let mut stage_best = [f64::INFINITY; 3];
    for _ in 0..repeat {
        let mut t = [0f64; 3];
        for b in &blobs {
            let t0 = Instant::now();
            let img = decode_rgb(b, "bench")?;
            let t1 = Instant::now();
            let hwc = resize_crop(&img, &cfg, "bench")?;
            let t2 = Instant::now();
            normalize_chw(&hwc, &cfg, &mut out);
            let t3 = Instant::now();
            t[0] += (t1 - t0).as_secs_f64();
            t[1] += (t2 - t1).as_secs_f64();
            t[2] += (t3 - t2).as_secs_f64();
        }
        for (b, t) in stage_best.iter_mut().zip(t) {
            *b = b.min(t);
        }
    }
    let ms = |t: f64| 1e3 * t / n;
    println!(
        "per image (best of {repeat}): decode {:.3} ms, resize+crop {:.3} ms, normalise {:.3} ms",
        ms(stage_best[0]),
        ms(stage_best[1]),
        ms(stage_best[2])
    );
    Ok(())
}
