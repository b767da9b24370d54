//! `x0tta6bl4 sim`: the digital twin from the command line. Every command
//! prints a human summary and, last, one JSON line with the full answer.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Subcommand;
use x0tta6bl4_sim::protocol::ProtocolConfig;
use x0tta6bl4_sim::scenario::converge_and_cut;
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
    /// Run the routing protocol in virtual time: convergence after a start,
    /// then (every node simulated in full) the reroute after a link cut.
    Converge {
        /// A topology JSON file…
        #[arg(long, conflicts_with = "shape")]
        topology: Option<PathBuf>,
        /// …or a shape to generate (see `sim generate`).
        #[arg(long, default_value = "ba:1000:2")]
        shape: Shape,
        /// Seed of the shape, the timers' phases and the flow cut.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Nodes that run a full link-state database (default: all up to
        /// 2,000 nodes, else 8); the others only send beacons.
        #[arg(long)]
        observers: Option<usize>,
        /// The router's `max_nodes` (default: the node's, 1,024).
        #[arg(long)]
        max_nodes: Option<usize>,
        /// Virtual seconds to wait for convergence (and to follow the flow after the cut).
        #[arg(long, default_value_t = 10)]
        limit_secs: u64,
    },
}

/// Meshes up to this size are simulated with every node in full by default.
const FULL_UP_TO: usize = 2_000;

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
            let failure = Failure::from_specs(&fail, &partition);
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
        SimCommand::Converge {
            topology,
            shape,
            seed,
            observers,
            max_nodes,
            limit_secs,
        } => {
            let topology = match topology {
                Some(path) => load(&path)?,
                None => generate(shape, seed)?,
            };
            let n = topology.nodes().len();
            let mut config = ProtocolConfig {
                observers: observers.unwrap_or(if n <= FULL_UP_TO { n } else { 8 }),
                seed,
                ..ProtocolConfig::default()
            };
            if let Some(max) = max_nodes {
                config.router.max_nodes = max;
            }
            eprintln!(
                "{n} nodes, {} links; {} run the router's link-state database",
                topology.links().len(),
                config.observers.min(n)
            );
            let bar = indicatif::ProgressBar::new(1_000).with_style(
                indicatif::ProgressStyle::with_template(
                    "{msg:>9} [{bar:40}] {percent:>3} % virtual time, {elapsed} real",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let report = converge_and_cut(
                &topology,
                config,
                Duration::from_secs(limit_secs),
                &mut |phase, done| {
                    bar.set_message(phase.to_owned());
                    bar.set_position((done.clamp(0.0, 1.0) * 1_000.0) as u64);
                },
            )?;
            bar.finish_and_clear();
            let stats = &report.stats;
            match report.converged_after_ms {
                Some(ms) => println!("converged after {ms:.0} ms of virtual time"),
                None => println!(
                    "not converged in {limit_secs} s: routes to {:.1} % of the nodes, {:.0} nodes known (max_nodes bounds it)",
                    stats.coverage * 100.0,
                    stats.nodes_known_mean
                ),
            }
            println!(
                "beacons {:.0} B each; a node receives {:.0} B/s of them; a recompute takes {:.2} ms here",
                stats.beacon_bytes_mean, stats.beacon_bytes_in_per_node_per_sec, stats.recompute_ms_mean
            );
            if let Some(r) = &report.reroute {
                println!(
                    "link {}-{} cut on the path {} -> {} ({} hops): {}, {} frames lost at 1 per ms, {} hops after",
                    r.cut[0],
                    r.cut[1],
                    r.flow[0],
                    r.flow[1],
                    r.hops_before,
                    r.outage_ms
                        .map_or("never back".to_owned(), |ms| format!("back after {ms:.0} ms")),
                    r.frames_lost,
                    r.hops_after.map_or("-".to_owned(), |h| h.to_string()),
                );
            }
            println!("{}", serde_json::to_string(&report)?);
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
