//! The node's TOML config file: loading and validation never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use x0tta6bl4::config::NodeConfig;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("x0tta6bl4-fuzz-{}.toml", std::process::id()));
    if std::fs::write(&path, data).is_ok() {
        let _ = NodeConfig::load(Some(&path));
    }
});
