//! Embed jobs: caption texts → L2-normalised sentence embeddings with the text
//! embedder (all-MiniLM-L6-v2 in process, or a hosted model over the
//! OpenAI-compatible API when the job names one), stored as a safetensors
//! artifact (`embeddings` f32 [n, D_e], rows in the job's text order).

use crate::engine::minilm::{embeddings_safetensors, MiniLm, MiniLmError, DEFAULT_BATCH_SIZE};
use crate::executor::{ExecContext, ExecError, Executor};
use mll_common::artifact::safetensors_io::{self, Named};
use mll_common::hosted::{Endpoint, HostedClient};
use mll_common::job::HostedEmbed;
use mll_common::output::EmbedOutput;
use mll_common::{Job, JobOutput, JobPayload};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tch::{Device, Tensor};

/// Runs embed jobs. Constructed once per worker; each embedder folder is loaded
/// on the first job that names it and kept for the worker's lifetime (the
/// model is ~90 MB, and a run uses one embedder).
pub struct EmbedExecutor {
    device: Device,
    batch_size: usize,
    // tch tensors are Send but not Sync, so each model sits behind its own
    // mutex; the outer one only guards the map (and serialises first loads).
    models: Mutex<HashMap<PathBuf, Arc<Mutex<MiniLm>>>>,
    // One client per endpoint, so its request pacing spans the worker's jobs.
    clients: Mutex<HashMap<ClientKey, Arc<HostedClient>>>,
}

/// A hosted endpoint as the worker keeps its client: base URL, model, key file, pacing.
type ClientKey = (String, String, Option<PathBuf>, u32);

impl EmbedExecutor {
    pub fn new(device: Device) -> Self {
        Self::with_batch_size(device, DEFAULT_BATCH_SIZE)
    }

    pub fn with_batch_size(device: Device, batch_size: usize) -> Self {
        EmbedExecutor { device, batch_size: batch_size.max(1), models: Mutex::new(HashMap::new()), clients: Mutex::new(HashMap::new()) }
    }

    /// The model for `folder`, loading it on first use. A folder that failed
    /// to load is not remembered, so fixing it on disk needs no worker restart.
    pub fn model(&self, folder: &Path) -> Result<Arc<Mutex<MiniLm>>, ExecError> {
        let mut models = self.models.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = models.get(folder) {
            return Ok(m.clone());
        }
        let model = Arc::new(Mutex::new(MiniLm::load(folder, self.device).map_err(load_error)?));
        models.insert(folder.to_path_buf(), model.clone());
        Ok(model)
    }

    /// Embeds `texts` in batches, checking for cancellation between batches.
    /// A batch that libtorch rejects (on CUDA usually out of memory) is split
    /// in halves before the job is given up as transient.
    pub fn embed(&self, model: &MiniLm, texts: &[String], ctx: &ExecContext) -> Result<Tensor, ExecError> {
        let mut parts = Vec::with_capacity(texts.len().div_ceil(self.batch_size));
        for chunk in texts.chunks(self.batch_size) {
            ctx.check_cancelled()?;
            embed_splitting(model, chunk, &mut parts)?;
        }
        if parts.is_empty() {
            return model.embed_batch::<&str>(&[]).map_err(run_error);
        }
        Tensor::f_cat(&parts, 0).map_err(|e| run_error(e.into()))
    }
}

impl EmbedExecutor {
    fn client(&self, h: &HostedEmbed, key_file: Option<PathBuf>) -> Result<Arc<HostedClient>, ExecError> {
        let id = (h.base_url.clone(), h.model.clone(), key_file.clone(), h.requests_per_minute);
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&id) {
            return Ok(c.clone());
        }
        let mut endpoint = Endpoint::new(&h.base_url, &h.model, key_file);
        endpoint.requests_per_minute = h.requests_per_minute;
        let client = Arc::new(HostedClient::new(endpoint).map_err(|e| ExecError::Permanent(e.to_string()))?);
        clients.insert(id, client.clone());
        Ok(client)
    }

    /// Embeds the job's texts with a hosted model, `h.batch` texts per
    /// request, checking for cancellation between requests. A server that
    /// stayed down or busy through the client's retries is transient (the
    /// job is requeued); a refused request or a malformed answer is permanent.
    fn embed_hosted(&self, h: &HostedEmbed, texts: &[String], ctx: &ExecContext) -> Result<Vec<u8>, ExecError> {
        let key = h.key_file.as_deref().map(|k| ctx.resolve(k)).transpose()?;
        let client = self.client(h, key)?;
        let mut values = Vec::new();
        let mut dim = 0usize;
        for chunk in texts.chunks(h.batch.max(1) as usize) {
            ctx.check_cancelled()?;
            let rows = client.embed(chunk, h.dimensions, chunk.len()).map_err(|e| {
                if e.is_transient() {
                    ExecError::Transient(e.to_string())
                } else {
                    ExecError::Permanent(e.to_string())
                }
            })?;
            for row in rows {
                if dim == 0 {
                    dim = row.len();
                } else if row.len() != dim {
                    return Err(ExecError::Permanent(format!(
                        "hosted embedder {} gave vectors of {} and {dim} values in one job",
                        h.model,
                        row.len()
                    )));
                }
                // L2-normalised like the in-process encoder's (OpenAI's are already).
                let norm = row.iter().map(|v| f64::from(*v) * f64::from(*v)).sum::<f64>().sqrt().max(1e-12);
                values.extend(row.iter().map(|v| (f64::from(*v) / norm) as f32));
            }
        }
        Ok(safetensors_io::encode(&[Named::new("embeddings", vec![texts.len(), dim], &values)])?)
    }
}

fn embed_splitting(model: &MiniLm, texts: &[String], out: &mut Vec<Tensor>) -> Result<(), ExecError> {
    match model.embed_batch(texts) {
        Ok(t) => {
            out.push(t);
            Ok(())
        }
        Err(MiniLmError::Torch(_)) if texts.len() > 1 => {
            let (a, b) = texts.split_at(texts.len() / 2);
            embed_splitting(model, a, out)?;
            embed_splitting(model, b, out)
        }
        Err(e) => Err(run_error(e)),
    }
}

/// A model folder that is missing or unreadable will not get better by
/// retrying: permanent, with the path and how to provide it; libtorch
/// failures are transient ([`ExecError::Embedder`]).
fn load_error(e: MiniLmError) -> ExecError {
    ExecError::Embedder(e)
}

fn run_error(e: MiniLmError) -> ExecError {
    ExecError::Embedder(e)
}

impl Executor for EmbedExecutor {
    fn execute(&self, job: &Job, ctx: &ExecContext) -> Result<JobOutput, ExecError> {
        let JobPayload::Embed(embed) = &job.payload else {
            return Err(ExecError::Permanent(format!(
                "the embed executor was given a {} job ({}); this is a routing bug in the worker",
                job.stage().as_str(),
                job.payload.describe()
            )));
        };
        if let Some(h) = &embed.hosted {
            let bytes = self.embed_hosted(h, &embed.texts, ctx)?;
            let aref = ctx.artifacts.put(&bytes)?;
            return Ok(JobOutput::Embed(EmbedOutput { embeddings: aref, count: embed.texts.len() as u64 }));
        }
        let folder = ctx.resolve(&embed.embedder)?;
        let model = self.model(&folder)?;
        let model = model.lock().unwrap_or_else(|p| p.into_inner());
        let embeddings = self.embed(&model, &embed.texts, ctx)?;
        let rows = embeddings.size()[0] as usize;
        if rows != embed.texts.len() {
            return Err(ExecError::Permanent(format!(
                "text embedder {} returned {rows} embeddings for {} texts",
                folder.display(),
                embed.texts.len()
            )));
        }
        let bytes = embeddings_safetensors(&embeddings)?;
        let aref = ctx.artifacts.put(&bytes)?;
        Ok(JobOutput::Embed(EmbedOutput { embeddings: aref, count: rows as u64 }))
    }
}
