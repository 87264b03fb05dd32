//! `plan`: a dry run. Plans the spec and prints it; publishes nothing and
//! needs no broker or store.

use crate::spec::BenchmarkSpec;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct PlanArgs {
    /// Benchmark spec (TOML).
    #[arg(long, value_name = "FILE")]
    benchmark: PathBuf,
    /// Use this data root instead of the spec's `data_root` (relative to the current folder).
    #[arg(long, value_name = "DIR")]
    data_root: Option<PathBuf>,
    /// A class without captions is an error (exit 2), whatever the spec says.
    #[arg(long)]
    strict_captions: bool,
    /// Print the result as JSON: {run, complete, missing, missing_models, jobs, datasets
    /// (each with samples found and the catalog's expected_samples), caption_fallbacks, graph,
    /// notes, method, execution}.
    #[arg(long)]
    json: bool,
}

/// `coordinator plan`: plans and prints, publishes nothing, needs no broker or
/// store. Inputs missing: exit 3 ([`crate::exit::PlanIncomplete`]) after the output.
pub fn dry_run(args: &PlanArgs) -> anyhow::Result<()> {
    let spec = BenchmarkSpec::load(&args.benchmark)?;
    let root = match &args.data_root {
        Some(r) => r.clone(),
        None => crate::plan::data_root_of(&spec, &args.benchmark),
    };
    let opts = crate::plan::PlanOptions::for_spec_file(&args.benchmark, args.strict_captions);
    let d = crate::dry_run::dry_run(&spec, &root, &opts)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&d)?);
    } else {
        print!("{}", crate::dry_run::render(&d));
    }
    if !d.complete {
        return Err(crate::exit::PlanIncomplete(d.missing.len()).into());
    }
    Ok(())
}
