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
    #[command(
        after_help = "Example (a second worker on this host, metrics on any free port):\n  MLL__WORKER__METRICS_ADDR=127.0.0.1:0 worker run --exit-when-idle 60"
    )]
    Run {
        /// Exit after this many seconds without a job (for queue-driven batch pods).
        #[arg(long, value_name = "SECONDS")]
        exit_when_idle: Option<u64>,
    },
    /// Load a model artifact folder, run a tiny batch and print its metadata.
    #[command(after_help = "Example:\n  worker check out/toy-world/models/toy-animals/v1 --json")]
    Check(mll_worker::debug_cmds::CheckArgs),
    /// Evaluate a model on a dataset folder directly (no broker, no store):
    /// per-class counts and accuracy.
    #[command(
        after_help = "Example:\n  worker eval --model out/toy-world/models/toy-animals/v1 --dataset out/toy-world/datasets/toy-pets"
    )]
    Eval(mll_worker::debug_cmds_eval::EvalArgs),
    /// Print the effective configuration (passwords redacted) and exit.
    #[command(after_help = "Example:\n  MLL__WORKER__BATCH_SIZE=32 worker config --json")]
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

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// The rules `coordinator`'s help follows too (its cli module tests them):
    /// every option and argument has a help line, every subcommand's help ends
    /// with an example, value names are one of a few upper-case words.
    #[test]
    fn every_option_has_help_and_every_command_an_example() {
        const VALUE_NAMES: &[&str] = &["FILE", "DIR", "N", "SECONDS", "FORMAT", "PROTOCOL", "DEVICE", "PRECISION"];
        let cmd = Cli::command();
        let mut gaps = Vec::new();
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let name = sub.get_name();
            if !sub.get_after_help().is_some_and(|h| h.to_string().contains("Example")) {
                gaps.push(format!("worker {name}: no example at the end of its help"));
            }
            for a in sub.get_arguments().filter(|a| !matches!(a.get_id().as_str(), "help" | "version")) {
                if a.get_help().is_none() {
                    gaps.push(format!("worker {name} {}: no help line", a.get_id()));
                }
                for v in a.get_value_names().into_iter().flatten().filter(|_| a.get_action().takes_values()) {
                    if !VALUE_NAMES.contains(&v.as_str()) {
                        gaps.push(format!("worker {name} {}: value name {v} is not one of {VALUE_NAMES:?}", a.get_id()));
                    }
                }
            }
        }
        assert!(gaps.is_empty(), "{}", gaps.join("\n"));
    }
}
