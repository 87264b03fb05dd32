//! The `hub list`, `select` and `adapt` commands: where the hub lives (the
//! cluster's store, or a local-mode output folder) and where embed and
//! evaluate jobs run (the cluster's queue, or in-process workers).

use super::context::{cluster, cluster_miss_hint, drive_options, local_control, local_dir, local_run, local_runs, locate, Located, Place};
use crate::adapt::class_captions::{caption as caption_classes, ClassCaptioner};
use crate::adapt::select::{embed_classes, render_text as select_text, report, select_on_hub};
use crate::adapt::task::{read_class_list, ClassTexts};
use crate::adapt::{adapt as adapt_task, k_for, render_text as adapt_text, AdaptOptions, AdaptOutcome};
use crate::control::RunControl;
use crate::hub::{self, input_error, Hub};
use clap::{Args, Subcommand};
use mll_common::config::Settings;
use mll_common::queue::memory::MemoryQueue;
use mll_common::RunId;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Subcommand)]
pub enum HubCommand {
    /// List the runs of the store as hubs: models, graph size, and whether
    /// `select` and `adapt` accept them (graph labels and graph embeddings committed).
    #[command(after_help = hub_list_help())]
    List(HubListArgs),
}

fn hub_list_help() -> String {
    format!(
        "{}\n\nExamples:\n  coordinator hub list                 # the local runs under out/ (no broker configured)\n  coordinator hub list --cluster --json",
        super::context::WHERE_RUNS_ARE
    )
}

#[derive(Args)]
pub struct HubListArgs {
    #[command(flatten)]
    pub place: Place,
    /// Local runs: the folder whose sub-folders are run folders (each with a
    /// state.journal from `coordinator run --local`); implies --local.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Print the hubs as a JSON array: [{run, dir (local runs), state, usable, reason, models,
    /// labelled_models, graph_nodes, graph_images, datasets, embedder}].
    #[arg(long)]
    pub json: bool,
}

/// Where the hub is.
#[derive(Args, Clone)]
pub struct HubLocation {
    /// The hub: a finished run's id (`coordinator hub list` shows them).
    #[arg(long, value_name = "RUN")]
    pub hub: String,
    #[command(flatten)]
    pub place: Place,
    /// The hub run's local output folder (default out/<RUN>); implies --local.
    #[arg(long, value_name = "DIR")]
    pub hub_dir: Option<PathBuf>,
}

#[derive(Args)]
pub struct SelectArgs {
    #[command(flatten)]
    pub at: HubLocation,
    /// The task's class names, one per line, in label order.
    #[arg(long, value_name = "FILE")]
    pub classes: PathBuf,
    /// MLL-style captions: a JSON object {class name: [caption, ...]}. Without it
    /// a chat model writes them when one is configured (--llm-model, or the hub
    /// spec's [llm]), else the class names themselves are embedded (the output says so).
    #[arg(long, value_name = "FILE")]
    pub captions: Option<PathBuf>,
    #[command(flatten)]
    pub llm: LlmChoice,
    /// Models per class (default: the hub spec's first k).
    #[arg(long, value_name = "N")]
    pub k: Option<usize>,
    /// Print the selection as JSON: {hub, k, embedded, classes: [{class, models, scores, nodes}], ranking, ...}.
    #[arg(long)]
    pub json: bool,
}

/// The chat model that writes a task's class captions when no --captions FILE
/// is given (`crate::adapt::class_captions`).
#[derive(Args, Clone, Default)]
pub struct LlmChoice {
    /// A chat model that writes the class captions (10 descriptions per class,
    /// temperature 0, answers kept in the hub's store) when no --captions FILE is
    /// given; any OpenAI-compatible server. Default: the hub spec's [llm], if any.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["captions", "no_llm"])]
    pub llm_model: Option<String>,
    /// The API root for --llm-model (OpenAI, vLLM, Ollama, llama.cpp's server, ...)
    /// [default: https://api.openai.com/v1].
    #[arg(long, value_name = "URL", requires = "llm_model")]
    pub llm_base_url: Option<String>,
    /// A file holding the API key alone, for --llm-model (never logged); none for keyless servers.
    #[arg(long, value_name = "FILE", requires = "llm_model")]
    pub llm_key_file: Option<PathBuf>,
    /// Request starts per minute for --llm-model (0: unpaced) [default: 30].
    #[arg(long, value_name = "N", requires = "llm_model")]
    pub llm_requests_per_minute: Option<u32>,
    /// Embed the class names even when the hub spec has an [llm].
    #[arg(long)]
    pub no_llm: bool,
}

impl LlmChoice {
    /// The captioner to use, if any: --llm-model, else the hub spec's `[llm]`;
    /// none with --captions FILE or --no-llm.
    fn captioner(&self, captions_given: bool, hub: &Hub) -> anyhow::Result<Option<ClassCaptioner>> {
        if captions_given || self.no_llm {
            return Ok(None);
        }
        // Flags make the same `[llm]` a spec would hold (same defaults), with the key file as given.
        let (llm, key_root, from) = match (&self.llm_model, &hub.spec().llm) {
            (Some(model), _) => {
                let flags = crate::spec::LlmSpec {
                    model: model.clone(),
                    base_url: self.llm_base_url.clone(),
                    key_file: self.llm_key_file.as_ref().map(|k| k.display().to_string()),
                    requests_per_minute: self.llm_requests_per_minute,
                    max_tokens: None,
                };
                (flags, Path::new(""), "--llm-model".to_string())
            }
            (None, Some(llm)) => (llm.clone(), hub.plan.data_root.as_path(), format!("the [llm] in the spec of hub '{}'", hub.run())),
            (None, None) => return Ok(None),
        };
        let (endpoint, max_tokens) = (llm.endpoint(key_root), llm.max_tokens());
        let client = mll_common::hosted::HostedClient::new(endpoint).map_err(|e| {
            input_error(format!(
                "the chat model for the class captions ({from}) cannot be used: {e}; --no-llm embeds the class names instead"
            ))
        })?;
        Ok(Some(ClassCaptioner { client: Arc::new(client), max_tokens, from }))
    }
}

#[derive(Args)]
pub struct AdaptArgs {
    #[command(flatten)]
    pub at: HubLocation,
    /// The task's images: an ImageFolder or WebDataset folder (labelled), or a
    /// flat folder of images with classnames.txt (unlabelled); optional
    /// zeroshot_classification_templates.txt. It must lie under the hub's data root.
    #[arg(long, value_name = "DIR")]
    pub task: PathBuf,
    /// Models per class (default: the hub spec's first k).
    #[arg(long, value_name = "N")]
    pub k: Option<usize>,
    /// MLL-style captions for the task's classes (see `select`).
    #[arg(long, value_name = "FILE")]
    pub captions: Option<PathBuf>,
    #[command(flatten)]
    pub llm: LlmChoice,
    /// Wait for the evaluate jobs, then write the outputs (local mode always waits).
    #[arg(long)]
    pub wait: bool,
    /// Output folder for predictions.csv and adapt.json (default out/<adapt run>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print adapt.json's content instead of the summary.
    #[arg(long)]
    pub json: bool,
}

/// The process's stop signal (SIGTERM, Ctrl-C): once installed it no longer
/// ends the process by itself, so every wait below selects on it.
type Stop = tokio::sync::watch::Receiver<bool>;

/// `work`, or an `Interrupted` error (exit 130) saying `what` as soon as the
/// stop signal turns true.
async fn until_stopped<T>(work: impl std::future::Future<Output = anyhow::Result<T>>, stop: &Stop, what: &str) -> anyhow::Result<T> {
    tokio::select! {
        r = work => r,
        _ = mll_common::shutdown::requested(stop.clone()) => Err(mll_common::exit::Interrupted(what.to_string()).into()),
    }
}

/// Workers inside this process (cargo feature `local`): they run the embed
/// job of a task's classes (MiniLM in process), and in local mode the
/// evaluate jobs too.
struct InProcess {
    queue: MemoryQueue,
    #[cfg(feature = "local")]
    handles: Vec<tokio::task::JoinHandle<anyhow::Result<mll_worker::consume::LoopStats>>>,
}

impl InProcess {
    #[cfg(feature = "local")]
    fn start(settings: &Settings, queue: MemoryQueue, ctl: &RunControl, data_root: &Path, stop: &Stop) -> anyhow::Result<InProcess> {
        let handles = crate::local::spawn_workers(settings, &queue, ctl.store.clone(), &ctl.artifacts, data_root, 1, stop)?;
        Ok(InProcess { queue, handles })
    }

    #[cfg(not(feature = "local"))]
    fn start(_: &Settings, _: MemoryQueue, _: &RunControl, _: &Path, _: &Stop) -> anyhow::Result<InProcess> {
        anyhow::bail!(
            "this coordinator was built without local mode (cargo feature `local`, which links libtorch): \
             drop --local to use the cluster's workers, or rebuild with the default features"
        )
    }

    async fn stop(self) {
        self.queue.close();
        #[cfg(feature = "local")]
        for h in self.handles {
            let _ = h.await;
        }
    }
}

/// The hub's control, the control embed jobs go through, the in-process
/// workers (if any) and the opened hub.
struct Session {
    ctl: RunControl,
    embed_ctl: RunControl,
    hub: Hub,
    workers: Option<InProcess>,
    /// The hub is a local run (its jobs run in this process).
    local: bool,
}

async fn session(settings: &Settings, config: Option<&Path>, at: &HubLocation, stop: &Stop) -> anyhow::Result<Session> {
    let run = RunId::new(&at.hub).map_err(input_error)?;
    let located = locate(&at.place, config, at.hub_dir.as_ref().map(|_| "--hub-dir"))?;
    if located.is_local() {
        let dir = local_dir(run.as_str(), at.hub_dir.as_deref());
        let queue = MemoryQueue::new(settings.broker.delivery_limit);
        let ctl = local_run(settings, run.as_str(), &dir, &located, &queue)?;
        check_recorded_data_root(&ctl, &run, &dir)?;
        let hub = Hub::open(&ctl, &run).await?;
        let workers = InProcess::start(settings, queue, &ctl, &hub.plan.data_root, stop)?;
        return Ok(Session { embed_ctl: ctl.clone(), ctl, hub, workers: Some(workers), local: true });
    }
    let ctl = cluster(settings).await?;
    let hub = Hub::open(&ctl, &run).await.map_err(|e| cluster_miss_hint(e, run.as_str(), &located))?;
    // With local mode built in, MiniLM runs here: no queue round trip for the
    // class texts; otherwise one embed job goes to the cluster's workers.
    if cfg!(feature = "local") {
        let queue = MemoryQueue::new(settings.broker.delivery_limit);
        let embed_ctl = RunControl { queue: Arc::new(queue.clone()), ..ctl.clone() };
        let workers = InProcess::start(settings, queue, &embed_ctl, &hub.plan.data_root, stop)?;
        Ok(Session { ctl, embed_ctl, hub, workers: Some(workers), local: false })
    } else {
        Ok(Session { embed_ctl: ctl.clone(), ctl, hub, workers: None, local: false })
    }
}

/// A local hub reads its images and graph from the data root recorded when
/// it was made (its saved spec's `data_root`, relative to that spec's path),
/// not from anything near its folder: a hub folder copied to another place
/// or machine says so here instead of failing on a missing dataset later.
fn check_recorded_data_root(ctl: &RunControl, run: &RunId, dir: &Path) -> anyhow::Result<()> {
    let Ok(sub) = ctl.saved_submission(run) else { return Ok(()) }; // Hub::open says what is missing
    let Ok(spec) = sub.spec() else { return Ok(()) };
    let root = crate::plan::data_root_of(&spec, &sub.spec_path);
    if !root.is_dir() {
        return Err(input_error(format!(
            "hub '{run}' in {} reads its data from {}, the data root recorded when it was made (the spec {} \
             names it), and that folder does not exist here: the hub folder was moved or copied without its data. \
             Put the data root there (or link it), or run the hub's spec again where the data is",
            dir.display(),
            root.display(),
            sub.spec_path.display()
        )));
    }
    tracing::debug!(hub = %run, data_root = %root.display(), "the hub reads the data root recorded when it was made");
    Ok(())
}

impl Session {
    async fn close(self) {
        if let Some(w) = self.workers {
            w.stop().await;
        }
    }
}

pub async fn hub_list(settings: &Settings, config: Option<&Path>, args: &HubListArgs) -> anyhow::Result<()> {
    let located = locate(&args.place, config, args.root.as_ref().map(|_| "--root"))?;
    let mut hubs = Vec::new();
    let root = args.root.clone().unwrap_or_else(|| PathBuf::from("out"));
    if located.is_local() {
        if args.root.is_some() && !root.is_dir() {
            return Err(input_error(format!("--root {}: no such folder", root.display())));
        }
        for dir in local_runs(&root) {
            // One unreadable run folder is listed with its reason, not the end of the list.
            let found = match local_control(settings, &dir, &MemoryQueue::new(settings.broker.delivery_limit)) {
                Ok(ctl) => hub::list(&ctl).await,
                Err(e) => Err(e),
            };
            let found = found.unwrap_or_else(|e| {
                let run = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                vec![hub::HubSummary::unreadable(run, format!("cannot open the run folder: {e:#}"))]
            });
            for mut h in found {
                // Local runs are found by folder: say which.
                h.dir = Some(dir.display().to_string());
                hubs.push(h);
            }
        }
    } else {
        hubs = hub::list(&cluster(settings).await?).await?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&hubs)?);
        return Ok(());
    }
    if hubs.is_empty() {
        println!("{}", no_hubs(&located, &root));
    }
    for h in &hubs {
        let what = if h.usable { "usable".to_string() } else { format!("not usable: {}", h.reason.as_deref().unwrap_or("?")) };
        let default_dir = local_dir(&h.run, None).display().to_string();
        let place = match &h.dir {
            Some(d) if *d == default_dir => format!(" (local: {d})"),
            Some(d) => format!(" (local: {d}; pass --hub-dir {d})"),
            None => String::new(),
        };
        println!(
            "{}{place}  [{}] {} models ({} labelled), graph {} nodes / {} images, {} datasets: {what}",
            h.run,
            h.state,
            h.models.len(),
            h.labelled_models,
            h.graph_nodes,
            h.graph_images,
            h.datasets.len()
        );
    }
    Ok(())
}

/// What `hub list` says when it found nothing: where it looked, and why there.
fn no_hubs(located: &Located, root: &Path) -> String {
    if located.is_local() {
        format!(
            "no hubs among the local runs in {} (looked there because {}): a hub is a run whose spec has a graph; \
             `coordinator run --local --benchmark SPEC` makes one, --cluster lists the runs on RabbitMQ and Redis",
            root.display(),
            located.why
        )
    } else {
        format!(
            "no hubs in the cluster's store (looked there because {}): a hub is a run whose spec has a graph; \
             --local lists the local runs under out/",
            located.why
        )
    }
}

pub async fn select(settings: &Settings, config: Option<&Path>, args: &SelectArgs) -> anyhow::Result<()> {
    let drive = drive_options(settings);
    let names = read_class_list(&args.classes)?;
    let classes = ClassTexts::new(names, args.captions.as_deref())?;
    let stop = mll_common::shutdown::signal();
    let s = session(settings, config, &args.at, &stop).await?;
    let work = async {
        let k = k_for(&s.hub, args.k)?;
        let classes = match args.llm.captioner(args.captions.is_some(), &s.hub)? {
            Some(c) => caption_classes(classes, &c, &s.ctl.artifacts).await?,
            None => classes,
        };
        let started = std::time::Instant::now();
        let (e_t, embed_run) = embed_classes(&s.embed_ctl, &s.hub, &classes, &drive).await?;
        let embedded = started.elapsed().as_secs_f64();
        let selection = select_on_hub(&s.hub, &e_t, k)?;
        tracing::debug!(embed_seconds = embedded, select_seconds = started.elapsed().as_secs_f64() - embedded, "select");
        Ok::<_, anyhow::Error>(report(&s.hub, &classes, &selection, k, &embed_run))
    };
    let result = until_stopped(work, &stop, "select stopped: nothing was written; run it again").await;
    s.close().await;
    let r = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", select_text(&r));
    }
    Ok(())
}

pub async fn adapt(settings: &Settings, config: Option<&Path>, args: &AdaptArgs) -> anyhow::Result<()> {
    let drive = drive_options(settings);
    let stop = mll_common::shutdown::signal();
    let s = session(settings, config, &args.at, &stop).await?;
    let captioner = match args.llm.captioner(args.captions.is_some(), &s.hub) {
        Ok(c) => c,
        Err(e) => {
            s.close().await;
            return Err(e);
        }
    };
    let opts = AdaptOptions {
        task: args.task.clone(),
        k: args.k,
        captions: args.captions.clone(),
        captioner,
        out: args.out.clone(),
        wait: args.wait || s.local,
        drive,
    };
    let stopped = if s.local {
        "adapt stopped: its finished evaluate jobs are kept in the hub's folder; the same command resumes it"
    } else {
        "adapt stopped: its published jobs stay queued for the cluster's workers; the same command with --wait collects them"
    };
    let result = until_stopped(adapt_task(&s.ctl, &s.embed_ctl, &s.hub, &opts), &stop, stopped).await;
    s.close().await;
    match result? {
        AdaptOutcome::Submitted { run, jobs, published } => {
            eprintln!(
                "adapt run {run}: {jobs} evaluate jobs, {published} published; `coordinator status {run}` follows it, \
                 the same command with --wait collects the predictions"
            );
            println!("{run}");
        }
        AdaptOutcome::Done { report, out } => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", adapt_text(&report, &out));
            }
        }
    }
    Ok(())
}
