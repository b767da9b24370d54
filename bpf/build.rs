//! Compiles `c/x0tta_xdp.bpf.c` with clang into `$OUT_DIR/x0tta_xdp.o`.
//!
//! Without clang (or when compilation fails) the build still succeeds: an empty
//! object is written, a cargo warning says why, and the loader reports XDP as
//! unavailable with the same reason at run time.

use std::{env, fs, path::PathBuf, process::Command};

const SOURCE: &str = "c/x0tta_xdp.bpf.c";

fn main() {
    println!("cargo:rerun-if-changed={SOURCE}");
    println!("cargo:rerun-if-env-changed=CLANG");
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let object = out_dir.join("x0tta_xdp.o");
    let status = match compile(&object) {
        Ok(()) => "built".to_string(),
        Err(reason) => {
            println!("cargo:warning=XDP program not built, the node will run with XDP disabled: {reason}");
            fs::write(&object, []).expect("write empty object");
            reason
        }
    };
    println!("cargo:rustc-env=X0TTA_XDP_OBJECT={}", object.display());
    println!("cargo:rustc-env=X0TTA_XDP_BUILD_STATUS={status}");
}

fn compile(object: &PathBuf) -> Result<(), String> {
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let (target_arch, multiarch) = match arch.as_str() {
        "x86_64" => ("x86", "x86_64-linux-gnu"),
        "aarch64" => ("arm64", "aarch64-linux-gnu"),
        other => return Err(format!("no BPF build settings for target arch {other}")),
    };
    let output = Command::new(&clang)
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
        .arg(format!("-D__TARGET_ARCH_{target_arch}"))
        .arg(format!("-I/usr/include/{multiarch}"))
        .args(["-c", SOURCE, "-o"])
        .arg(object)
        .output()
        .map_err(|e| {
            format!("cannot run `{clang}` ({e}); install clang and libbpf-dev (apt install clang libbpf-dev)")
        })?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = stderr.lines().find(|l| l.contains("error")).unwrap_or("no diagnostics");
        Err(format!("`{clang}` failed on {SOURCE}: {first}"))
    }
}
