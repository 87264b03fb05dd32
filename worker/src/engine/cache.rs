//! Loaded models kept between jobs, bounded by memory: least recently used
//! first out, each model weighing the size of its module.pt (fp32 weights,
//! which is what a traced module holds on the device).
//!
//! A model larger than the whole budget is still loaded (a job needs it) and
//! everything else is evicted. An artifact whose module.pt changed on disk
//! (size or modification time) is reloaded.

use super::artifact::ModelArtifact;
use super::device::Precision;
use super::error::EngineError;
use super::model::LoadedModel;
use mll_common::telemetry::metrics;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};
use tch::Device;

struct Entry {
    dir: PathBuf,
    stamp: (u64, Option<SystemTime>),
    bytes: u64,
    model: Arc<LoadedModel>,
}

pub struct ModelCache {
    device: Device,
    precision: Precision,
    capacity_bytes: u64,
    /// Most recently used last. One lock also serialises loads: a worker
    /// runs one job at a time, and two threads loading the same model would
    /// need twice its memory.
    entries: Mutex<Vec<Entry>>,
}

fn stamp(module: &Path) -> (u64, Option<SystemTime>) {
    match std::fs::metadata(module) {
        Ok(m) => (m.len(), m.modified().ok()),
        Err(_) => (0, None),
    }
}

impl ModelCache {
    pub fn new(device: Device, precision: Precision, capacity_bytes: u64) -> Self {
        ModelCache { device, precision, capacity_bytes, entries: Mutex::new(Vec::new()) }
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// The model in `dir`, loaded on first use.
    pub fn get(&self, dir: impl AsRef<Path>) -> Result<Arc<LoadedModel>, EngineError> {
        let dir = dir.as_ref();
        let key = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = entries.iter().position(|e| e.dir == key) {
            let current = stamp(&key.join(super::artifact::MODULE_FILE));
            if entries[i].stamp == current {
                let e = entries.remove(i);
                let model = e.model.clone();
                entries.push(e);
                metrics().worker_model_cache.with_label_values(&["hit"]).inc();
                return Ok(model);
            }
            tracing::info!(dir = %key.display(), "module.pt changed on disk, reloading");
            entries.remove(i);
        }
        metrics().worker_model_cache.with_label_values(&["miss"]).inc();

        let artifact = ModelArtifact::open(&key)?;
        let bytes = artifact.module_bytes;
        // Make room before loading so the old and new models never coexist past the budget.
        let mut total: u64 = entries.iter().map(|e| e.bytes).sum();
        while !entries.is_empty() && total + bytes > self.capacity_bytes {
            let old = entries.remove(0);
            total -= old.bytes;
            tracing::info!(model = %old.model.meta().model_key, bytes = old.bytes, "evicting model from the cache");
        }
        let t0 = Instant::now();
        let stamp_before = stamp(&artifact.module_path);
        let model = Arc::new(LoadedModel::load_artifact(artifact, self.device, self.precision)?);
        let secs = t0.elapsed().as_secs_f64();
        metrics().worker_model_load.observe(secs);
        tracing::info!(model = %model.meta().model_key, device = ?self.device, secs, bytes, "model loaded");
        entries.push(Entry { dir: key, stamp: stamp_before, bytes, model: model.clone() });
        if self.device.is_cuda() {
            metrics().worker_gpu_memory.set((total + bytes) as i64);
        }
        Ok(model)
    }

    /// Model keys (and estimated bytes), least recently used first.
    pub fn contents(&self) -> Vec<(String, u64)> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.iter().map(|e| (e.model.meta().model_key.clone(), e.bytes)).collect()
    }

    pub fn resident_bytes(&self) -> u64 {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.iter().map(|e| e.bytes).sum()
    }

    pub fn clear(&self) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).clear();
        if self.device.is_cuda() {
            metrics().worker_gpu_memory.set(0);
        }
    }
}
