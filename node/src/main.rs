//! `x0tta6bl4`: one self-healing mesh node, plus a local demo mesh and a small CLI
//! over the node's HTTP API (status, peers, routes, messages, orders).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use x0tta6bl4::{client, config, demo, keys, node, sim_cli, watch};

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
    /// Run the trust domain's certificate authority: issue, revoke, publish CRLs.
    Ca {
        /// Directory of the CA (key, bundle, revoked serials).
        #[arg(long, default_value = "ca", global = true)]
        dir: PathBuf,
        #[command(subcommand)]
        action: CaCommand,
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
    /// The shop's orders: list them, show one, or make one.
    Orders {
        #[command(subcommand)]
        action: OrdersCommand,
    },
    /// The digital twin: generate topologies, ask what a failure breaks.
    Sim {
        #[command(subcommand)]
        action: sim_cli::SimCommand,
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

#[derive(Subcommand)]
enum OrdersCommand {
    /// Every order, newest first, with counts per status.
    List(client::Target),
    /// One order in full.
    Show {
        #[command(flatten)]
        target: client::Target,
        /// The order id.
        id: String,
    },
    /// Make an order (as the sales bot's `/buy` does) and print how to pay it.
    Create {
        #[command(flatten)]
        target: client::Target,
        /// Product id.
        #[arg(long)]
        product: String,
        /// `usdt-trc20` or `ton` (default: the first the product is sold for).
        #[arg(long)]
        currency: Option<String>,
        /// The buyer's Telegram chat, told when it is paid.
        #[arg(long)]
        chat_id: Option<i64>,
    },
}

#[derive(Subcommand)]
enum CaCommand {
    /// Make a new CA for a trust domain.
    Init {
        /// The trust domain, e.g. `mesh.example.org`.
        #[arg(long)]
        trust_domain: String,
        /// Validity of the CA certificate, in days.
        #[arg(long, default_value_t = 365)]
        days: u64,
    },
    /// Issue an X.509-SVID: writes `<out>.pem` and `<out>.key.pem`.
    Issue {
        /// The node's peer id: the SVID names `spiffe://<trust domain>/node/<peer id>`.
        #[arg(long, conflicts_with = "id", required_unless_present = "id")]
        peer_id: Option<String>,
        /// Any SPIFFE ID of the trust domain (an operator, a tool).
        #[arg(long)]
        id: Option<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl_secs: u64,
        /// Path prefix of the files written.
        #[arg(long)]
        out: PathBuf,
    },
    /// Revoke an SVID by serial (hex) or by its certificate file.
    Revoke {
        /// Serial number, hex.
        #[arg(long, conflicts_with = "cert", required_unless_present = "cert")]
        serial: Option<String>,
        /// The certificate (PEM).
        #[arg(long)]
        cert: Option<PathBuf>,
    },
    /// Write a CRL of every revoked serial.
    Crl {
        /// Where to write it (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Hours until its nextUpdate.
        #[arg(long, default_value_t = 24)]
        hours: u64,
    },
}

fn run_ca(dir: &std::path::Path, action: CaCommand) -> anyhow::Result<()> {
    use std::time::Duration;
    use x0tta6bl4::ca::{serial_of, CaDir};
    match action {
        CaCommand::Init { trust_domain, days } => {
            let ca = CaDir::init(dir, &trust_domain, Duration::from_secs(days * 86_400))?;
            println!(
                "CA of {trust_domain} made; its trust bundle: {}",
                ca.bundle_path().display()
            );
        }
        CaCommand::Issue {
            peer_id,
            id,
            ttl_secs,
            out,
        } => {
            let ca = CaDir::open(dir)?;
            let id = match (peer_id, id) {
                (Some(peer), _) => x0tta6bl4_actors::svid::SpiffeId::for_node(ca.trust_domain(), &peer)?,
                (None, Some(id)) => x0tta6bl4_actors::svid::SpiffeId::parse(&id)?,
                (None, None) => anyhow::bail!("give --peer-id or --id"),
            };
            let serial = ca.issue(&id, Duration::from_secs(ttl_secs), &out)?;
            println!("issued {id} (serial {serial}, {ttl_secs} s) to {}.pem", out.display());
        }
        CaCommand::Revoke { serial, cert } => {
            let serial = match (serial, cert) {
                (Some(serial), _) => serial,
                (None, Some(cert)) => serial_of(&cert)?,
                (None, None) => anyhow::bail!("give --serial or --cert"),
            };
            let mut ca = CaDir::open(dir)?;
            match ca.revoke(&serial)? {
                true => println!("revoked {serial}; publish a new CRL with `x0tta6bl4 ca crl`"),
                false => println!("{serial} was already revoked"),
            }
        }
        CaCommand::Crl { out, hours } => {
            let pem = CaDir::open(dir)?.crl(Duration::from_secs(hours * 3600))?;
            match out {
                Some(path) => std::fs::write(&path, pem).with_context(|| format!("cannot write {}", path.display()))?,
                None => print!("{pem}"),
            }
        }
    }
    Ok(())
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
        Command::Ca { dir, action } => run_ca(&dir, action),
        Command::Status(target) => client::status(&target),
        Command::Peers(target) => client::peers(&target),
        Command::Routes(target) => client::routes(&target),
        Command::Send { target, to, text } => client::send(&target, &to, &text),
        Command::Ping { target, peer } => client::ping(&target, &peer),
        Command::Sim { action } => sim_cli::run(action),
        Command::Orders { action } => match action {
            OrdersCommand::List(target) => client::orders(&target),
            OrdersCommand::Show { target, id } => client::order(&target, &id),
            OrdersCommand::Create {
                target,
                product,
                currency,
                chat_id,
            } => client::create_order(&target, &product, currency.as_deref(), chat_id),
        },
    }
}
