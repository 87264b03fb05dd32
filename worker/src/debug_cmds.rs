//! `worker check MODEL_DIR`: loads a model artifact, runs a tiny batch
//! (2 seeded random images, 2 texts) and prints its metadata, embedding
//! dimensions and timings — for users debugging an export.

use crate::engine::device::{device_report, DeviceReport};
use crate::engine::{pick_device, DeviceChoice, LoadedModel, ModelArtifact, ModelMeta, Precision};
use anyhow::Context;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// Model artifact folder (module.pt, model.json, tokenizer.json).
    #[arg(value_name = "DIR")]
    pub model_dir: PathBuf,
    /// auto, cpu or cuda.
    #[arg(long, value_name = "DEVICE", default_value = "auto")]
    pub device: String,
    /// fp32 or fp16 (CUDA autocast).
    #[arg(long, value_name = "PRECISION", default_value = "fp32")]
    pub precision: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

const CHECK_TEXTS: [&str; 2] = ["a photo of a dog.", "A PHOTO of a cat &amp; a bird!"];

#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub model_dir: PathBuf,
    pub meta: ModelMeta,
    pub module_bytes: u64,
    pub device: String,
    pub precision: String,
    pub device_report: DeviceReport,
    pub load_seconds: f64,
    pub image_batch: usize,
    pub image_embeddings_shape: Vec<i64>,
    pub image_seconds: f64,
    pub text_batch: usize,
    pub text_embeddings_shape: Vec<i64>,
    pub text_seconds: f64,
    /// First ids of each check text, to eyeball the tokenizer.
    pub token_ids_head: Vec<Vec<i64>>,
    /// Cosines between the check images and texts ([image][text]).
    pub image_text_cosines: Vec<Vec<f32>>,
}

pub fn check(args: &CheckArgs) -> anyhow::Result<CheckReport> {
    let choice: DeviceChoice = args.device.parse().map_err(anyhow::Error::msg)?;
    let device = pick_device(choice)?;
    let precision: Precision = args.precision.parse()?;
    let artifact = ModelArtifact::open(&args.model_dir)?;
    let module_bytes = artifact.module_bytes;
    let t0 = Instant::now();
    let model = LoadedModel::load_artifact(artifact, device, precision).with_context(|| format!("loading {}", args.model_dir.display()))?;
    let load_seconds = t0.elapsed().as_secs_f64();

    let meta = model.meta().clone();
    let s = meta.image_size as i64;
    tch::manual_seed(0);
    let images = Tensor::randn([2, 3, s, s], (Kind::Float, Device::Cpu));
    let t1 = Instant::now();
    let img = model.encode_images(&images).context("encode_image on 2 random images")?;
    let image_seconds = t1.elapsed().as_secs_f64();

    let t2 = Instant::now();
    let txt = model.encode_texts(&CHECK_TEXTS).context("encode_text on 2 texts")?;
    let text_seconds = t2.elapsed().as_secs_f64();

    let tokens = model.tokenizer().tokenize(&CHECK_TEXTS)?;
    let token_ids_head =
        (0..2).map(|i| Vec::<i64>::try_from(tokens.get(i).narrow(0, 0, 12.min(meta.context_length as i64)))).collect::<Result<_, _>>()?;
    let cos = img.matmul(&txt.transpose(0, 1));
    let image_text_cosines = (0..2).map(|i| Vec::<f32>::try_from(cos.get(i))).collect::<Result<Vec<_>, _>>()?;

    Ok(CheckReport {
        model_dir: args.model_dir.clone(),
        module_bytes,
        device: format!("{:?}", model.device()),
        precision: format!("{:?}", model.precision()),
        device_report: device_report(),
        load_seconds,
        image_batch: 2,
        image_embeddings_shape: img.size(),
        image_seconds,
        text_batch: 2,
        text_embeddings_shape: txt.size(),
        text_seconds,
        token_ids_head,
        image_text_cosines,
        meta,
    })
}

pub fn run_check(args: CheckArgs) -> anyhow::Result<()> {
    let r = check(&args)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    let m = &r.meta;
    println!("model        {} ({})", m.model_key, r.model_dir.display());
    println!("module.pt    {:.1} MB", r.module_bytes as f64 / 1e6);
    println!("image        {}px, resize {:?}, {:?}, mean {:?}, std {:?}", m.image_size, m.resize_mode, m.interpolation, m.mean, m.std);
    println!("text         tokenizer {:?}, clean {:?}, context {}, pad id {}", m.tokenizer, m.text_clean(), m.context_length, m.pad_id);
    println!("embed dim    {} (logit scale {})", m.embed_dim, m.logit_scale);
    println!("exporter     {}", m.exporter);
    println!(
        "device       {} {} (CUDA available: {}, devices: {})",
        r.device, r.precision, r.device_report.cuda_available, r.device_report.cuda_devices
    );
    println!("load         {:.3}s", r.load_seconds);
    println!("images       {} → {:?} in {:.3}s", r.image_batch, r.image_embeddings_shape, r.image_seconds);
    println!("texts        {} → {:?} in {:.3}s", r.text_batch, r.text_embeddings_shape, r.text_seconds);
    println!("token ids    {:?}", r.token_ids_head);
    println!("cosines      {:?}", r.image_text_cosines);
    Ok(())
}
