//! `x0tta6bl4 sim`: the digital twin from the command line. Every command
//! prints a human summary and, last, one JSON line with the full answer.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Subcommand;
use x0tta6bl4_sim::{generate, Failure, Shape, Topology};

use crate::client;

/// Largest topology file read (a million nodes with ten links each fit).
const MAX_FILE_BYTES: u64 = 1 << 30;

/// The `sim` subcommands.
#[derive(Subcommand)]
pub enum SimCommand {
    /// Generate a topology and write it as JSON.
    Generate {
        /// line:N, ring:N, grid:WxH, geometric:N:RADIUS, ba:N:M or chords:N:LINKS.
        shape: Shape,
        /// Seed of the random shapes.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Where to write it (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// What a failure breaks, on a topology file or on a running node's graph.
    Whatif {
        /// A topology JSON file (default: the graph of the node at --api).
        #[arg(long)]
        topology: Option<PathBuf>,
        /// The running node asked for its graph when no file is given.
        #[command(flatten)]
        target: client::Target,
        /// What fails: `<node>` or `<a>-<b>` (a link), comma-separated.
        #[arg(long, default_value = "")]
        fail: String,
        /// One side of a partition: comma-separated nodes.
        #[arg(long, default_value = "")]
        partition: String,
        /// Also estimate the loss of the all-pairs traffic matrix.
        #[arg(long)]
        traffic: bool,
    },
}

/// Runs one `sim` subcommand.
pub fn run(command: SimCommand) -> anyhow::Result<()> {
    match command {
        SimCommand::Generate { shape, seed, out } => {
            let topology = generate(shape, seed)?;
            let json = topology.to_json();
            match out {
                Some(path) => {
                    std::fs::write(&path, &json).with_context(|| format!("cannot write {}", path.display()))?;
                    eprintln!(
                        "{} nodes, {} links written to {}",
                        topology.nodes().len(),
                        topology.links().len(),
                        path.display()
                    );
                }
                None => println!("{json}"),
            }
            Ok(())
        }
        SimCommand::Whatif {
            topology,
            target,
            fail,
            partition,
            traffic,
        } => {
            let topology = match topology {
                Some(path) => load(&path)?,
                None => Topology::from_api(&client::get(&target, "/api/v1/topology")?)?,
            };
            let mut failure = Failure::parse(&fail);
            failure.partition = Failure::parse(&partition).nodes;
            anyhow::ensure!(
                failure != Failure::default(),
                "say what fails: --fail and/or --partition"
            );
            let started = Instant::now();
            let answer = crate::twin::answer(&topology, &failure, traffic)?;
            let took = started.elapsed();
            println!(
                "{} nodes, {} links affected; connectivity kept {:.1} %; largest component {} -> {}; {} nodes cut off{}",
                answer.failed_nodes.len(),
                answer.links_affected.len(),
                answer.connectivity_kept * 100.0,
                answer.largest_component_before,
                answer.largest_component_after,
                answer.cut_off.len(),
                if answer.partitions { " (the mesh partitions)" } else { "" },
            );
            println!(
                "articulation points {} -> {}, bridges {} -> {}; answered in {:.1} ms",
                answer.articulation_points_before.len(),
                answer.articulation_points_after.len(),
                answer.bridges_before.len(),
                answer.bridges_after.len(),
                took.as_secs_f64() * 1e3
            );
            if let Some(t) = &answer.traffic {
                println!(
                    "traffic: {} of {} flows lost ({} with a failed end), {} lengthened by {:.2} ms on average",
                    t.lost, t.flows, t.lost_with_failed_end, t.lengthened, t.extra_ms_mean
                );
            }
            println!("{}", serde_json::to_string(&answer)?);
            Ok(())
        }
    }
}

/// Reads a topology file, refusing one past [`MAX_FILE_BYTES`] before reading it.
pub fn load(path: &Path) -> anyhow::Result<Topology> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    anyhow::ensure!(
        size <= MAX_FILE_BYTES,
        "{}: {size} bytes; topology files are read up to {MAX_FILE_BYTES} bytes",
        path.display()
    );
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Topology::from_json(&text).with_context(|| format!("{}", path.display()))
}
