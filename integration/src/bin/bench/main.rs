//! Benchmarks of real node processes. Each scenario prints a table and ends with
//! one JSON line. Not tests: figures are read by people and compared as ratios
//! measured in one run.
//!
//! ```text
//! cargo build --release --workspace
//! cargo run --release -p x0tta6bl4-integration --bin bench -- mesh [--quick]
//! cargo run --release -p x0tta6bl4-integration --bin bench -- reroute [--quick]   # root: namespaces
//! cargo run --release -p x0tta6bl4-integration --bin bench -- memory [--quick]
//! cargo run --release -p x0tta6bl4-integration --bin bench -- xdp [--quick]       # root: namespaces, XDP
//! cargo run --release -p x0tta6bl4-integration --bin bench -- pqc [--quick]
//! cargo run --release -p x0tta6bl4-integration --bin bench -- heal [--quick] [--timeline]   # root: namespaces
//! cargo run --release -p x0tta6bl4-integration --bin bench -- stability [--quick]   # root: namespaces
//! cargo run --release -p x0tta6bl4-integration --bin bench -- storage [--quick]   # 100 SIGKILLs
//! cargo run --release -p x0tta6bl4-integration --bin bench -- soak [--quick] [--minutes N]   # root: namespaces, 30 min
//! cargo run --release -p x0tta6bl4-integration --bin bench -- api [--quick]   # needs wrk
//! cargo run --release -p x0tta6bl4-integration --bin bench -- conns [--quick]
//! cargo run --release -p x0tta6bl4-integration --bin bench -- instructions [--quick]   # valgrind
//! cargo run --release -p x0tta6bl4-integration --bin bench -- sync [--quick]
//! cargo run --release -p x0tta6bl4-integration --bin bench -- payments [--quick]
//! cargo run --release -p x0tta6bl4-integration --bin bench -- twin [--quick]   # python3-networkx
//! cargo run --release -p x0tta6bl4-integration --bin bench -- all [--quick] [--write docs/BENCHMARKS.md]
//! ```

mod all;
mod api;
mod conns;
mod heal;
mod instructions;
mod memory;
mod mesh;
mod payments;
mod peers;
mod pqc;
mod reroute;
mod soak;
mod stability;
mod storage;
mod sync;
mod twin;
mod xdp;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    match args.iter().find(|a| !a.starts_with("--")).map(String::as_str) {
        Some("mesh" | "throughput") | None => mesh::run(quick),
        Some("reroute") => reroute::run(quick),
        Some("memory") => memory::run(quick),
        Some("xdp") => xdp::run(quick),
        Some("pqc") => pqc::run(quick),
        Some("heal") => heal::run(quick, args.iter().any(|a| a == "--timeline")),
        Some("stability") => stability::run(quick),
        Some("storage") => storage::run(quick),
        Some("soak") => {
            let minutes = args.iter().skip_while(|a| *a != "--minutes").nth(1);
            soak::run(quick, minutes.and_then(|m| m.parse().ok()))
        }
        Some("api") => api::run(quick),
        Some("conns") => conns::run(quick),
        Some("instructions") => instructions::run(quick),
        Some("sync") => sync::run(quick),
        Some("payments") => payments::run(quick),
        Some("twin") => twin::run(quick),
        Some("all") => {
            let write = args.iter().skip_while(|a| *a != "--write").nth(1);
            all::run(quick, write.map(String::as_str));
        }
        Some(other) => {
            eprintln!(
                "unknown scenario '{other}'; available: mesh (alias throughput), reroute, memory, xdp, heal, pqc, stability, storage, soak, api, conns, instructions, sync, payments, twin, all"
            );
            std::process::exit(2);
        }
    }
}
