//! Operations files: the Prometheus config and alert rules pass `promtool`
//! (config check and the rule unit tests), and the Alertmanager entrypoint
//! renders its config from the environment and passes `amtool check-config`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use x0tta6bl4_integration::tool_available;

fn ops() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops")
}

fn run(command: &mut Command) -> Output {
    let output = command.output().expect("tool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{text}");
    output
}

#[test]
fn prometheus_config_and_alert_rules_pass_promtool() {
    if !tool_available("promtool", "prometheus") {
        return;
    }
    let dir = ops().join("prometheus");
    let check = run(Command::new("promtool")
        .args(["check", "config", "prometheus.yml"])
        .current_dir(&dir));
    assert!(check.status.success(), "promtool check config failed");
    let tests = run(Command::new("promtool")
        .args(["test", "rules", "tests/x0tta6bl4_test.yml"])
        .current_dir(&dir));
    assert!(tests.status.success(), "promtool test rules failed");
    assert!(String::from_utf8_lossy(&tests.stdout).contains("SUCCESS"));
}

#[test]
fn alertmanager_entrypoint_renders_the_telegram_receiver_and_amtool_accepts_it() {
    if !tool_available("amtool", "prometheus-alertmanager") || !tool_available("envsubst", "gettext-base") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let rendered = dir.path().join("alertmanager.yml");
    let entrypoint = ops().join("alertmanager/entrypoint.sh");
    let template = ops().join("alertmanager/alertmanager.yml.tmpl");
    let ok = run(Command::new("sh")
        .arg(&entrypoint)
        .env("TELEGRAM_BOT_TOKEN", "123456:ABC-test_token")
        .env("TELEGRAM_CHAT_ID", "-1001234567890")
        .env("ALERTMANAGER_TEMPLATE", &template)
        .env("ALERTMANAGER_CONFIG", &rendered)
        .env("ALERTMANAGER_BIN", "true"));
    assert!(ok.status.success(), "entrypoint failed");
    assert!(
        String::from_utf8_lossy(&ok.stdout).contains("SUCCESS"),
        "amtool checked it"
    );
    let config = std::fs::read_to_string(&rendered).expect("rendered config");
    assert!(config.contains("bot_token: '123456:ABC-test_token'"), "{config}");
    assert!(config.contains("chat_id: -1001234567890"), "{config}");
    assert!(!config.contains("${"), "every variable substituted: {config}");

    let missing = run(Command::new("sh")
        .arg(&entrypoint)
        .env_remove("TELEGRAM_BOT_TOKEN")
        .env("TELEGRAM_CHAT_ID", "1")
        .env("ALERTMANAGER_TEMPLATE", &template)
        .env("ALERTMANAGER_CONFIG", &rendered)
        .env("ALERTMANAGER_BIN", "true"));
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("TELEGRAM_BOT_TOKEN"));
}
