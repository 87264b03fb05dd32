//! `coordinator`: plans MLL evaluation-cluster runs, drives them and reports.
//! The command line lives in the library's `cli` module.

use clap::Parser;

#[tokio::main]
async fn main() {
    let code = mll_coordinator::cli::run(mll_coordinator::cli::Cli::parse()).await;
    std::process::exit(code);
}
