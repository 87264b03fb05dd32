//! `graph build` and `graph count`: the semantic graph from sample dataset
//! folders and WordNet 3.0 (the builder is `crate::graph`).

use crate::graph::wordnet::WordNet;
use crate::graph::{
    build_graph_file, count_nodes, read_wnid_lists, GraphBuildRequest, GraphConstruction, GraphSampling, DEFAULT_IMAGES_PER_DATASET,
    DEFAULT_IMAGES_PER_NODE, DEFAULT_WORDNET_DIR,
};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum GraphCommand {
    /// Build graph.json from wnid-named sample dataset folders and WordNet 3.0.
    #[command(
        after_help = "Example (the paper's graph from the five ImageNet sample sets; README.md, step 4):\n  coordinator graph build --out /data/graph/graph.json --samples /data/graph/samples/imagenet-val \\\n    --samples /data/graph/samples/imagenet-sketch --samples /data/graph/samples/imagenet-r"
    )]
    Build(GraphBuildArgs),
    /// Print each construction's node count for a list of class wnids (no images needed).
    #[command(after_help = "Example:\n  coordinator graph count --wnids configs/imagenet/imagenet1k_wnids.txt")]
    Count(GraphCountArgs),
}

pub fn run(command: GraphCommand) -> anyhow::Result<()> {
    match command {
        GraphCommand::Build(args) => build(&args),
        GraphCommand::Count(args) => count(&args),
    }
}

fn sampling_arg() -> clap::builder::ValueParser {
    use clap::builder::TypedValueParser;
    clap::builder::ValueParser::new(
        clap::builder::PossibleValuesParser::new(["released", "capped"]).map(|s| s.parse::<GraphSampling>().expect("a possible value")),
    )
}

fn construction_arg() -> clap::builder::ValueParser {
    use clap::builder::TypedValueParser;
    clap::builder::ValueParser::new(
        clap::builder::PossibleValuesParser::new(GraphConstruction::ALL.map(GraphConstruction::name))
            .map(|s| s.parse::<GraphConstruction>().expect("a possible value")),
    )
}

/// `coordinator graph build` arguments.
#[derive(Debug, Clone, Args)]
pub struct GraphBuildArgs {
    /// Sample dataset folder with one sub-folder per class named by wnid (e.g.
    /// n01440764/), images inside; repeat for several datasets.
    #[arg(long = "samples", value_name = "DIR", required = true)]
    pub samples: Vec<PathBuf>,
    /// graph.json to write; image paths in it are relative to its folder.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Which nodes: `released` (the released MLL code: every WordNet sense of every
    /// synonym of each class, plus one level of hyponyms) or `ancestors` (the classes
    /// plus all their hypernyms).
    #[arg(long, value_name = "CONSTRUCTION", default_value = "released", value_parser = construction_arg())]
    pub construction: GraphConstruction,
    /// Maximum images per node (a `released` hyponym takes ⌊N / its parents⌋ from each parent).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_IMAGES_PER_NODE)]
    pub images_per_node: usize,
    /// `released`: maximum images a node takes from one sample dataset.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_IMAGES_PER_DATASET)]
    pub images_per_dataset: usize,
    /// `released`: `released` (the released code's rule: up to N-per-dataset from each sample
    /// dataset with no per-node cap, a hyponym drawing from its parent's images as they stand)
    /// or `capped` (every node at most N images, a hyponym drawing from its parent's own).
    #[arg(long, value_name = "RULE", value_parser = sampling_arg())]
    pub sampling: Option<GraphSampling>,
    /// Seed of every random choice (recorded in the file).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// JSON {node id or lemma: [caption, ...]} of node captions; otherwise generated.
    #[arg(long, value_name = "FILE")]
    pub captions: Option<PathBuf>,
    /// WordNet 3.0 dict folder (holding data.noun, index.noun, noun.exc, ... of every part of speech).
    #[arg(long, value_name = "DIR", env = "MLL_WORDNET_DIR", default_value = DEFAULT_WORDNET_DIR)]
    pub wordnet: PathBuf,
    /// Node text is the definition alone instead of "{lemma}, which is {definition}".
    #[arg(long)]
    pub definition_only: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `coordinator graph count` arguments.
#[derive(Debug, Clone, Args)]
pub struct GraphCountArgs {
    /// Text file of class wnids, one per line ('#' starts a comment), e.g.
    /// configs/imagenet/imagenet1k_wnids.txt; repeat to pool several lists.
    #[arg(long = "wnids", value_name = "FILE", required = true)]
    pub wnids: Vec<PathBuf>,
    /// WordNet 3.0 dict folder.
    #[arg(long, value_name = "DIR", env = "MLL_WORDNET_DIR", default_value = DEFAULT_WORDNET_DIR)]
    pub wordnet: PathBuf,
    /// Print the counts as JSON.
    #[arg(long)]
    pub json: bool,
}

impl GraphBuildArgs {
    fn request(&self) -> GraphBuildRequest {
        GraphBuildRequest {
            samples: self.samples.clone(),
            out: self.out.clone(),
            construction: self.construction,
            images_per_node: self.images_per_node,
            images_per_dataset: self.images_per_dataset,
            sampling: self.sampling.unwrap_or_default(),
            seed: self.seed,
            captions: self.captions.clone(),
            wordnet: self.wordnet.clone(),
            definition_only: self.definition_only,
        }
    }
}

/// `coordinator graph build`.
fn build(args: &GraphBuildArgs) -> anyhow::Result<()> {
    if args.construction == GraphConstruction::Ancestors && args.sampling.is_some() {
        return Err(mll_common::exit::InputError(
            "--sampling applies to the released construction only (ancestors caps every node at --images-per-node)".into(),
        )
        .into());
    }
    let s = build_graph_file(&args.request())?;
    if args.json {
        println!("{}", serde_json::to_string(&s)?);
    } else {
        println!(
            "wrote {}: {} graph, {} nodes ({} sample classes in {} sample datasets), {} images, \
             {} nodes without images, {} left out without images, seed {}, sha256 {}",
            s.out,
            s.construction,
            s.nodes,
            s.sample_classes,
            s.sample_datasets,
            s.images,
            s.nodes_without_images,
            s.nodes_dropped_without_images,
            s.seed,
            s.sha256
        );
    }
    Ok(())
}

/// `coordinator graph count`.
fn count(args: &GraphCountArgs) -> anyhow::Result<()> {
    let classes = read_wnid_lists(&args.wnids)?;
    let wn = WordNet::open(&args.wordnet)?;
    let c = count_nodes(&wn, &classes)?;
    if args.json {
        println!("{}", serde_json::to_string(&c)?);
    } else {
        println!("{} classes, WordNet at {}", c.classes, args.wordnet.display());
        println!(
            "released:  {} nodes ({} senses of the classes' synonyms + {} further hyponyms)",
            c.released, c.released_senses, c.released_hyponyms
        );
        println!("ancestors: {} nodes ({} classes + {} hypernym ancestors)", c.ancestors, c.classes, c.ancestors_hypernyms);
        println!("paper:     {} nodes; closer: {}", c.paper, c.closer_to_paper);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: GraphBuildArgs,
    }

    #[test]
    fn cli_flags_and_defaults() {
        let cli = Cli::try_parse_from(["graph-build", "--samples", "s1", "--samples", "s2", "--out", "g/graph.json"]).unwrap();
        assert_eq!(cli.args.samples, [PathBuf::from("s1"), PathBuf::from("s2")]);
        assert_eq!(cli.args.out, PathBuf::from("g/graph.json"));
        assert_eq!(cli.args.construction, GraphConstruction::Released, "the default is the construction closer to the paper");
        assert_eq!((cli.args.images_per_node, cli.args.images_per_dataset), (75, 25));
        assert_eq!(cli.args.seed, 0);
        assert!(cli.args.captions.is_none() && !cli.args.definition_only && !cli.args.json);
        let cli = Cli::try_parse_from([
            "graph-build",
            "--samples",
            "s",
            "--out",
            "o.json",
            "--images-per-node",
            "10",
            "--seed",
            "3",
            "--captions",
            "c.json",
            "--wordnet",
            "/wn",
            "--definition-only",
            "--json",
            "--construction",
            "ancestors",
            "--images-per-dataset",
            "5",
        ])
        .unwrap();
        assert_eq!((cli.args.images_per_node, cli.args.images_per_dataset, cli.args.seed), (10, 5, 3));
        assert_eq!(cli.args.construction, GraphConstruction::Ancestors);
        let err = Cli::try_parse_from(["graph-build", "--samples", "s", "--out", "o.json", "--construction", "all"]).err().unwrap();
        assert!(err.to_string().contains("released"), "{err}");
        assert_eq!(cli.args.wordnet, PathBuf::from("/wn"));
        assert!(cli.args.definition_only && cli.args.json);
        assert!(Cli::try_parse_from(["graph-build", "--out", "o.json"]).is_err(), "--samples is required");
    }
}
