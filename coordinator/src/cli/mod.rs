//! The coordinator's command line, one module per command family; `main.rs`
//! only parses and exits with [`crate::exit::code`]. Each command reads its
//! arguments, calls the library (plan, control, drive, aggregate, hub, adapt,
//! verify, graph) and prints; nothing here computes what the library does.
//!
//! - `submit` — `submit` and `resume`: plan, check inputs, publish, follow;
//! - `run` — `run --local`: the same pipeline in one process;
//! - `status` — `status`, `cancel`, `delete`, and the end-of-run summary;
//! - `retry`, `verify`, `report`, `plan` (the dry run), `graph`, `hub`
//!   (`hub list`, `select`, `adapt`);
//! - `context` — what several commands share: where a named run is (the
//!   cluster or a local run folder) and opening it, run ids, progress and
//!   publishing windows.

mod context;
mod graph;
mod hub;
mod plan;
mod report;
mod retry;
mod run;
mod status;
mod submit;
mod verify;

use clap::{Parser, Subcommand};
use mll_common::config::Settings;
use std::path::PathBuf;

const ABOUT: &str = "Plans, drives and reports MLL evaluation-cluster runs.";
const LONG_ABOUT: &str = "Plans, drives and reports MLL evaluation-cluster runs.

A run is a benchmark spec (configs/benchmarks/*.toml): a hub of models, target datasets, a semantic
graph and method options. The coordinator plans it into jobs with deterministic ids (embed, label,
evaluate), publishes them to RabbitMQ, and workers commit results to Redis exactly once. With --wait
it follows progress, records dead-lettered jobs, and writes the report: ground-truth rankings, MLL
selections, reuse ensembles, baselines and selection metrics. `run --local` does all of it in one
process, with the state in the output folder.

Typical use:
  coordinator run --local --benchmark configs/benchmarks/toy.toml     # everything in one process
  coordinator hub list                  # finished runs usable as hubs for new tasks
  coordinator submit --benchmark configs/benchmarks/mll-49x17.toml --wait --out out/mll
  coordinator status mll-49x17 --json
  coordinator resume mll-49x17          # republish exactly the jobs without a result
  coordinator report mll-49x17 --out out/mll

Commands that name a run (status, verify, report, cancel, delete, hub list, select, adapt) find it on
RabbitMQ and Redis when the configuration names them (an MLL__BROKER__* or MLL__STORE__* variable, or a
[broker] or [store] table in a profile), and among the local runs under out/ otherwise; --local and
--cluster choose.

Configuration: configs/default.toml, an optional --config profile, then MLL__SECTION__KEY
environment variables (MLL__BROKER__URL, MLL__STORE__URL, MLL__ARTIFACTS__ROOT, ...).
Exit codes: 0 done; 1 failed (a service down, jobs that failed); 2 an input to fix (configuration,
spec, path, run id); 3 `plan` found inputs missing; 130 interrupted.";

#[derive(Parser)]
#[command(name = "coordinator", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    /// Profile file layered over configs/default.toml (e.g. configs/cluster.toml).
    #[arg(long, global = true, env = "MLL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Plan a benchmark spec and publish its jobs; prints the run id.
    ///
    /// Submitting a spec again continues its run: only jobs without a result are published, so
    /// adding a model or a dataset to the spec runs only the new jobs.
    #[command(after_help = "Example:\n  coordinator submit --benchmark configs/benchmarks/toy.toml --wait --out out/toy-cluster")]
    Submit(submit::SubmitArgs),
    /// Plan a benchmark spec and print it without publishing anything (a dry run).
    ///
    /// Prints the jobs per stage, the graph's node count and construction, every class whose
    /// captions are missing, and the method options the spec resolves to (its preset plus
    /// explicit keys). It checks the inputs `submit` checks (model folders, prepared datasets,
    /// the graph); when some are missing it lists each once, with its resolved path and the
    /// command that makes it, and exits 3.
    #[command(after_help = "Example:\n  coordinator plan --benchmark configs/benchmarks/mll-49x17.toml --data-root /data")]
    Plan(plan::PlanArgs),
    /// Show a run's progress per stage and its failed jobs.
    #[command(after_help = status_help())]
    Status(status::StatusArgs),
    /// Republish exactly the jobs of a run whose results are missing.
    ///
    /// Use after a coordinator crash, lost messages, or a store that lost its data. The spec saved at
    /// submit time is used unless --benchmark is given.
    #[command(after_help = "Example:\n  coordinator resume mll-49x17 --wait")]
    Resume(submit::ResumeArgs),
    /// Publish failed jobs again, once the cause of their failure is fixed.
    ///
    /// Jobs that failed for good (dead-lettered: a broken model file, a missing dataset, a poison
    /// input) keep a failure record and are skipped by `resume`. `retry` first records what waits
    /// in the dead-letter queue, then clears the records of the chosen jobs (all, one stage's, or
    /// one job) and publishes exactly those; jobs in flight are not touched. Follow with `status`.
    #[command(after_help = "Example:\n  coordinator retry mll-49x17 --stage evaluate --benchmark fixed.toml")]
    Retry(retry::RetryArgs),
    /// Check every committed result of a run and the artifacts it names.
    ///
    /// Lists each bad one (damaged result, missing or corrupt artifact, wrong shape) with job, stage,
    /// model and dataset; exits 1 if there are any. With --repair drops those results and publishes
    /// exactly those jobs again (locally: the next `run --local` computes them).
    #[command(after_help = verify_help())]
    Verify(verify::VerifyArgs),
    /// Cancel a running run on the cluster: workers drop its remaining jobs.
    ///
    /// A finished run cannot be cancelled; a cancelled run is not published again until
    /// `coordinator delete RUN` removes it. A local run stops with Ctrl-C where it runs.
    #[command(
        after_help = "Example:\n  coordinator cancel toy.adapt-1f2e3d4c5b6a7988\n  coordinator delete toy.adapt-1f2e3d4c5b6a7988 --yes   # then the same adapt starts afresh"
    )]
    Cancel(status::CancelArgs),
    /// Delete a run: its keys in Redis and its saved spec, or a local run folder's state.
    ///
    /// For a cancelled or unwanted run. Cluster: every key of the run (state, expected and done
    /// sets, results, failure records) and its saved spec (artifacts.root/runs/<RUN>/); the
    /// content-addressed artifacts stay (other runs may share them). A running run must be
    /// cancelled first. Local: the run folder's state.journal, artifacts/, run.log and report
    /// files, then the folder when nothing else is in it. Asks before deleting; --yes does not.
    #[command(after_help = delete_help())]
    Delete(status::DeleteArgs),
    /// Write or print a run's report.
    ///
    /// With --out DIR writes report.json, report.md, accuracy_matrix.csv and SVG charts into DIR.
    /// With --truth FILE --benchmark SPEC, builds the report from an external accuracy table
    /// (open_clip's results CSV shape; the published one ships as
    /// docs/published/openclip_classification_results.csv) instead of a run: no GPU needed.
    /// --experiments adds the paper's experiments (report.json `experiments`, report.md tables,
    /// charts).
    #[command(after_help = report_help())]
    Report(report::ReportArgs),
    /// Run a benchmark end to end in one process (embedded local mode with --local).
    ///
    /// The queue and the store live in the process (no RabbitMQ, no Redis); the state is
    /// journaled in the output folder, so an interrupted run resumes where it stopped when the
    /// same command runs again. On a terminal it shows one progress block; every log line goes to
    /// <out>/run.log and only warnings to the terminal.
    #[command(after_help = "Example:\n  coordinator run --local --benchmark configs/benchmarks/toy.toml --workers 2")]
    Run(run::RunArgs),
    /// Semantic graph tools.
    #[command(after_help = "Example:\n  coordinator graph count --wnids configs/imagenet/imagenet1k_wnids.txt")]
    Graph {
        #[command(subcommand)]
        command: graph::GraphCommand,
    },
    /// Labelled hubs: finished runs that `select` and `adapt` serve new tasks from.
    #[command(after_help = "Example:\n  coordinator hub list")]
    Hub {
        #[command(subcommand)]
        command: hub::HubCommand,
    },
    /// Pick models for a new task from its class names alone (no GPU): the per-class
    /// top-k models of a hub, their class scores r_{m,y} and the predicted model ranking.
    #[command(after_help = select_help())]
    Select(hub::SelectArgs),
    /// Serve a new task's images: select, evaluate only the selected models (an ordinary
    /// run: status, cancel, resumable), reuse them as an ensemble, and write
    /// predictions.csv and adapt.json.
    #[command(after_help = adapt_help())]
    Adapt(hub::AdaptArgs),
    /// Print the effective configuration (passwords redacted).
    #[command(after_help = "Example:\n  MLL__WORKER__BATCH_SIZE=32 coordinator config --json")]
    Config {
        /// As JSON (the same keys as configs/default.toml).
        #[arg(long)]
        json: bool,
    },
}

/// `--help` text after the options: the rule for where runs are, then examples.
fn with_place(examples: &str) -> String {
    format!("{}\n\n{examples}", context::WHERE_RUNS_ARE)
}

fn status_help() -> String {
    with_place("Examples:\n  coordinator status toy                 # a local run in out/toy (no broker configured)\n  coordinator status mll-49x17 --cluster --json")
}

fn verify_help() -> String {
    with_place("Examples:\n  coordinator verify toy --local --run-dir out/toy\n  coordinator verify mll-49x17 --repair")
}

fn delete_help() -> String {
    with_place("Examples:\n  coordinator delete toy-before --run-dir out/toy-before\n  coordinator delete toy.adapt-1f2e3d4c5b6a7988 --cluster --yes")
}

fn report_help() -> String {
    with_place(
        "Examples:\n  coordinator report toy --out out/toy-report\n  coordinator report --truth docs/published/openclip_classification_results.csv \\\n    --benchmark configs/benchmarks/mll-49x17.toml --out out/truth",
    )
}

fn select_help() -> String {
    with_place(
        "Example (the toy hub of `scripts/local`, and its held-out task from `scripts/toy-world heldout`):\n  coordinator select --hub toy --classes out/toy-world/heldout/toy-heldout/classnames.txt --k 2",
    )
}

fn adapt_help() -> String {
    with_place(
        "Example (the toy hub of `scripts/local`, and its held-out task from `scripts/toy-world heldout`):\n  coordinator adapt --hub toy --task out/toy-world/heldout/toy-heldout \\\n    --captions out/toy-world/heldout/toy-heldout/captions.json --out out/heldout",
    )
}

/// Runs the parsed command line; returns the process's exit code (printing
/// the error chain first when it failed).
pub async fn run(cli: Cli) -> i32 {
    match dispatch(cli).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {}", mll_common::telemetry::error_report(&e));
            crate::exit::code(&e)
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    let config = cli.config.as_deref();
    let local_run = matches!(cli.command, Command::Run(_));
    crate::logs::init(&crate::logs::LogSetup { format: settings.log.format, level: &settings.log.level, local_run });
    match cli.command {
        Command::Config { json } => {
            println!("{}", settings.render(json));
            Ok(())
        }
        Command::Graph { command } => graph::run(command),
        Command::Run(args) => run::run(&settings, &args).await,
        Command::Submit(args) => submit::submit(&settings, args).await,
        Command::Resume(args) => submit::resume(&settings, args).await,
        Command::Retry(args) => retry::retry(&settings, &args).await,
        Command::Plan(args) => plan::dry_run(&args),
        Command::Status(args) => status::status(&settings, config, &args).await,
        Command::Cancel(args) => status::cancel(&settings, config, &args).await,
        Command::Delete(args) => status::delete(&settings, config, &args).await,
        Command::Report(args) => report::report(&settings, config, args).await,
        Command::Hub { command: hub::HubCommand::List(args) } => hub::hub_list(&settings, config, &args).await,
        Command::Select(args) => hub::select(&settings, config, &args).await,
        Command::Adapt(args) => hub::adapt(&settings, config, &args).await,
        Command::Verify(args) => verify::verify(&settings, config, &args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Value names: a few upper-case words for the kind of value.
    const VALUE_NAMES: &[&str] =
        &["FILE", "DIR", "RUN", "N", "SECONDS", "STAGE", "ID", "FORMAT", "CONSTRUCTION", "NAME", "DEVICE", "PRECISION", "RULE", "URL"];

    /// Every option and argument without a help line, every (sub)command
    /// whose help does not end with an example, every value name outside
    /// [`VALUE_NAMES`].
    fn help_gaps(cmd: &clap::Command, path: &str, gaps: &mut Vec<String>) {
        for a in cmd.get_arguments().filter(|a| !matches!(a.get_id().as_str(), "help" | "version")) {
            if a.get_help().is_none() && a.get_long_help().is_none() {
                gaps.push(format!("{path} {}: no help line", a.get_id()));
            }
            for v in a.get_value_names().into_iter().flatten().filter(|_| a.get_action().takes_values()) {
                if !VALUE_NAMES.contains(&v.as_str()) {
                    gaps.push(format!("{path} {}: value name {v} is not one of {VALUE_NAMES:?}", a.get_id()));
                }
            }
        }
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let p = format!("{path} {}", sub.get_name());
            let after = sub.get_after_help().or(sub.get_after_long_help()).map(|h| h.to_string()).unwrap_or_default();
            let last = after.trim_end().rsplit_once("\n\n").map_or(after.as_str(), |(_, l)| l);
            if !last.trim_start().starts_with("Example") {
                gaps.push(format!("{p}: its help does not end with an example"));
            }
            help_gaps(sub, &p, gaps);
        }
    }

    #[test]
    fn every_option_has_help_and_every_command_an_example() {
        let mut gaps = Vec::new();
        help_gaps(&Cli::command(), "coordinator", &mut gaps);
        assert!(gaps.is_empty(), "{}", gaps.join("\n"));
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
