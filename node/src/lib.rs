//! The x0tta6bl4 node as a library: configuration, wiring, HTTP API, and the
//! launcher that starts node processes (used by `x0tta6bl4 demo` and the
//! integration tests).

pub mod api;
pub mod ca;
pub mod client;
pub mod config;
pub mod demo;
pub mod identity;
pub mod keys;
pub mod launcher;
pub mod node;
pub mod sim_cli;
pub mod twin;
pub mod watch;
