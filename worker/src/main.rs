//! `worker`: runs jobs of the MLL evaluation cluster.

use anyhow::Context;
use clap::{Parser, Subcommand};
use mll_common::config::Settings;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "worker",
    version,
    about = "Runs MLL evaluation-cluster jobs: consumes RabbitMQ, runs models on libtorch, commits results to Redis.",
    long_about = "Runs MLL evaluation-cluster jobs.\n\n\
`worker run` consumes the job queue: each job is executed on a dedicated thread, its result committed \
to Redis exactly once, and only then acked. Run one process per GPU (CUDA_VISIBLE_DEVICES).\n\n\
Configuration: configs/default.toml, an optional --config profile, then MLL__SECTION__KEY environment \
variables (e.g. MLL__BROKER__URL, MLL__STORE__URL, MLL__DATA__ROOT, MLL__ARTIFACTS__ROOT).\n\n\
`worker check` and `worker eval` debug a model export without any broker."
)]
struct Cli {
    /// Profile file layered over configs/default.toml (e.g. configs/cluster.toml).
    #[arg(long, global = true, env = "MLL_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Consume jobs until SIGTERM (or until idle, with --exit-when-idle).
    Run {
        /// Exit after this many seconds without a job (for queue-driven batch pods).
        #[arg(long, value_name = "SECONDS")]
        exit_when_idle: Option<u64>,
    },
    /// Load a model artifact folder, run a tiny batch and print its metadata.
    Check(mll_worker::debug_cmds::CheckArgs),
    /// Evaluate a model on a dataset folder directly (no broker, no store):
    /// per-class counts and accuracy.
    Eval(mll_worker::debug_cmds_eval::EvalArgs),
    /// Print the effective configuration (passwords redacted) and exit.
    Config {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = real_main(cli).await {
        eprintln!("error: {}", mll_common::telemetry::error_report(&e));
        // The exit-code policy both binaries share (2 = fix the input).
        std::process::exit(mll_common::exit::code(&e, |_| None));
    }
}

async fn real_main(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    mll_common::telemetry::init_logging(settings.log.format, &settings.log.level);
    match cli.command {
        Command::Run { exit_when_idle } => {
            let executors = mll_worker::executors::for_worker(&settings).context("setting up the executors")?;
            mll_worker::service::run(settings, executors, exit_when_idle.map(Duration::from_secs)).await?;
        }
        Command::Check(args) => tokio::task::spawn_blocking(move || mll_worker::debug_cmds::run_check(args)).await??,
        Command::Eval(args) => tokio::task::spawn_blocking(move || mll_worker::debug_cmds_eval::run_eval(args)).await??,
        Command::Config { json } => {
            println!("{}", settings.render(json));
        }
    }
    Ok(())
}
