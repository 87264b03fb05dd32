//! `graph build` and `graph count`: the semantic graph from sample dataset
//! folders and WordNet 3.0 (the builder is `crate::graph`); `graph captions`:
//! LLM node captions (`crate::llm_captions`).

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
    /// Write LLM node captions into graph.json: 10 descriptions per node from an
    /// OpenAI-compatible chat model (the released label.py's), cached and resumable.
    #[command(
        after_help = "Rewriting graph.json changes its digest: a run using it plans new label jobs.\n\nExample:\n  coordinator graph captions --graph data/graph/graph.json --llm-model gpt-4o-2024-08-06 \\\n    --llm-key-file ~/.config/openai.key"
    )]
    Captions(GraphCaptionsArgs),
}

pub fn run(command: GraphCommand) -> anyhow::Result<()> {
    match command {
        GraphCommand::Build(args) => build(&args),
        GraphCommand::Count(args) => count(&args),
        GraphCommand::Captions(args) => captions(&args),
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

/// `coordinator graph captions` arguments.
#[derive(Debug, Clone, Args)]
pub struct GraphCaptionsArgs {
    /// graph.json whose node captions to write.
    #[arg(long, value_name = "FILE")]
    pub graph: PathBuf,
    /// Where to write the captioned graph (default: over --graph).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The chat model's name.
    #[arg(long, value_name = "NAME")]
    pub llm_model: String,
    /// The API root (OpenAI, vLLM, Ollama, llama.cpp's server, ...).
    #[arg(long, value_name = "URL", default_value = crate::spec::OPENAI_BASE_URL)]
    pub llm_base_url: String,
    /// A file holding the API key alone (never logged); none for keyless servers.
    #[arg(long, value_name = "FILE")]
    pub llm_key_file: Option<PathBuf>,
    /// Request starts per minute (0: unpaced).
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub requests_per_minute: u32,
    /// Descriptions per node.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub per_node: usize,
    /// Longest answer asked for, in tokens.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_tokens: u32,
    /// Folder of cached answers (default: llm-captions/ beside --graph).
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Print the summary as JSON.
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

/// `coordinator graph captions`.
fn captions(args: &GraphCaptionsArgs) -> anyhow::Result<()> {
    let graph = mll_common::data::graph::Graph::read(&args.graph)?;
    let mut endpoint = mll_common::hosted::Endpoint::new(&args.llm_base_url, &args.llm_model, args.llm_key_file.clone());
    endpoint.requests_per_minute = args.requests_per_minute;
    let client = mll_common::hosted::HostedClient::new(endpoint)?;
    let cache = args.cache.clone().unwrap_or_else(|| args.graph.parent().unwrap_or(std::path::Path::new(".")).join("llm-captions"));
    let (graph, summary) = crate::llm_captions::caption_graph(graph, &client, &cache, args.per_node.max(1), args.max_tokens)?;
    let out = args.out.as_ref().unwrap_or(&args.graph);
    mll_method::report::write_atomically(out, &graph.to_json_bytes())
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "wrote {}: {} nodes, {} answers from the cache ({}), {} asked, {} without new captions",
            out.display(),
            summary.nodes,
            summary.cached,
            cache.display(),
            summary.asked,
            summary.failed.len()
        );
        for (node, why) in &summary.failed {
            println!("  {node}: {why}");
        }
    }
    if !summary.failed.is_empty() {
        anyhow::bail!(
            "{} of {} nodes got no captions (listed above); run the same command again to ask for them (the others are cached)",
            summary.failed.len(),
            summary.nodes
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
