//! `x0tta6bl4`: one self-healing mesh node, plus a local demo mesh and a small CLI
//! over the node's HTTP API.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use x0tta6bl4::{client, config, demo, keys, node, watch};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// x0tta6bl4 — a self-healing mesh network node.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run one node.
    Run {
        /// TOML config file; every key can also be set as X0TTA6BL4_<SECTION>__<KEY>.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Start a local mesh of N node processes on loopback and print their dashboards.
    Demo {
        /// Number of nodes.
        #[arg(long, default_value_t = 5)]
        nodes: usize,
        /// First dashboard port; node i uses base + i when it is free.
        #[arg(long, default_value_t = 8080)]
        http_base_port: u16,
        /// Directory for the nodes' data (one sub-directory each).
        #[arg(long, default_value = "data/demo")]
        data_dir: PathBuf,
    },
    /// Join the mesh as a light peer and show its nodes and topology live.
    Watch {
        /// A node's address, `/ip4/…/tcp/…/p2p/<peer id>`.
        #[arg(long)]
        bootstrap: libp2p::Multiaddr,
        /// Stop after this many seconds (default: until Ctrl-C).
        #[arg(long = "for")]
        seconds: Option<u64>,
        /// Print the topology as JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Manage the node's post-quantum keys.
    Keys {
        #[command(subcommand)]
        action: KeysCommand,
    },
    /// Show the node's status.
    Status(client::Target),
    /// List peers known to the node.
    Peers(client::Target),
    /// Show the routing table.
    Routes(client::Target),
    /// Send a routed text message.
    Send {
        #[command(flatten)]
        target: client::Target,
        /// Destination peer id.
        #[arg(long)]
        to: String,
        /// Message text.
        text: String,
    },
    /// Routed echo to a peer: round-trip time and hops.
    Ping {
        #[command(flatten)]
        target: client::Target,
        /// Destination peer id.
        peer: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Replace the post-quantum keys with new ones of a later epoch: a running
    /// node's through its API (`--api`), else a stopped node's in its data dir.
    Rotate {
        /// The stopped node's TOML config file (for its data dir).
        #[arg(long, conflicts_with = "api")]
        config: Option<PathBuf>,
        /// Base URL of a running node's API.
        #[arg(long)]
        api: Option<String>,
        /// The running node's API token.
        #[arg(long, env = "X0TTA6BL4_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,libp2p=warn,libp2p_gossipsub=error"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config } => {
            init_logging(cli.log_format);
            let config = config::NodeConfig::load(config.as_deref())?;
            node::run(config).context("node failed")
        }
        Command::Demo {
            nodes,
            http_base_port,
            data_dir,
        } => demo::run(nodes, http_base_port, &data_dir),
        Command::Watch {
            bootstrap,
            seconds,
            json,
        } => watch::run(bootstrap, seconds.map(std::time::Duration::from_secs), json),
        Command::Keys {
            action: KeysCommand::Rotate {
                api: Some(api), token, ..
            },
        } => client::rotate_keys(&client::Target { api, token }),
        Command::Keys {
            action: KeysCommand::Rotate { config, .. },
        } => {
            let data_dir = config::NodeConfig::load(config.as_deref())?.data_dir();
            let rotated = keys::rotate(&data_dir)?;
            println!(
                "post-quantum keys in {} rotated: epoch {} -> {}; the node announces them when it starts",
                data_dir.display(),
                rotated.from,
                rotated.to
            );
            Ok(())
        }
        Command::Status(target) => client::status(&target),
        Command::Peers(target) => client::peers(&target),
        Command::Routes(target) => client::routes(&target),
        Command::Send { target, to, text } => client::send(&target, &to, &text),
        Command::Ping { target, peer } => client::ping(&target, &peer),
    }
}
