//! `bench all`: every scenario in one go, each in a process of its own (one
//! that fails is reported and the rest still run), and their JSON lines turned
//! into markdown tables. With `--write <file>` the tables replace the part of
//! the file between [`BEGIN`] and [`END`], headed by the commit they were
//! measured at (and a warning when the tree had uncommitted changes). Exits
//! non-zero when any scenario failed.

use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::{Map, Value};

/// Marks the start of the generated part of the benchmarks document.
pub const BEGIN: &str = "<!-- bench all: generated tables begin -->";
/// Marks its end.
pub const END: &str = "<!-- bench all: generated tables end -->";

/// The scenarios, in the order they run (the namespace-heavy ones last).
const SCENARIOS: [&str; 13] = [
    "mesh",
    "instructions",
    "pqc",
    "api",
    "conns",
    "sync",
    "payments",
    "twin",
    "memory",
    "xdp",
    "heal",
    "stability",
    "reroute",
];

/// Runs every scenario and prints (or, with `write`, writes) the tables.
pub fn run(quick: bool, write: Option<&str>) {
    let me = std::env::current_exe().expect("current_exe");
    // Taken before the runs: what was measured is the tree as it was then.
    let heading = heading(quick);
    let mut sections = Vec::new();
    let mut failed = Vec::new();
    for scenario in SCENARIOS {
        eprintln!("== bench {scenario}{}", if quick { " --quick" } else { "" });
        let started = Instant::now();
        let mut command = Command::new(&me);
        command.arg(scenario).stdin(Stdio::null()).stderr(Stdio::inherit());
        if quick {
            command.arg("--quick");
        }
        let outcome = command.output();
        let seconds = started.elapsed().as_secs();
        let body = match outcome {
            Ok(out) => match last_json(&String::from_utf8_lossy(&out.stdout)) {
                Some(json) if out.status.success() => tables(&json),
                _ => {
                    failed.push(scenario);
                    format!("**failed** ({}); see its output\n", out.status)
                }
            },
            Err(e) => {
                failed.push(scenario);
                format!("**could not start**: {e}\n")
            }
        };
        eprintln!("   {scenario} took {seconds} s");
        sections.push(format!(
            "### {scenario}\n\n`bench {scenario}{}`, {seconds} s.\n\n{body}",
            if quick { " --quick" } else { "" }
        ));
    }
    let report = format!("{heading}\n\n{}", sections.join("\n"));
    match write {
        Some(path) => match replace_between(path, &report) {
            Ok(()) => eprintln!("tables written to {path}"),
            Err(e) => {
                eprintln!("cannot write {path}: {e}");
                println!("{report}");
                std::process::exit(1);
            }
        },
        None => println!("{report}"),
    }
    if !failed.is_empty() {
        eprintln!("failed scenarios: {}", failed.join(", "));
        std::process::exit(1);
    }
}

/// The last line of `stdout` that parses as a JSON object.
fn last_json(stdout: &str) -> Option<Value> {
    stdout
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .find(Value::is_object)
}

/// What the tables were measured at: the commit, whether the tree had
/// changes on top of it, the date and the mode.
fn heading(quick: bool) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!(
        "Measured at commit `{commit}`{}, {date}, by `bench all{}` (release build, 2 cores).",
        if dirty { " **with uncommitted changes**" } else { "" },
        if quick { " --quick" } else { "" }
    )
}

/// A scenario's JSON line as markdown: its scalar fields as a list, each array
/// of objects as a table (columns: the fields of its rows, names first, then
/// in key order; nested values as compact JSON).
pub fn tables(json: &Value) -> String {
    let Some(object) = json.as_object() else {
        return format!("`{json}`\n");
    };
    let mut out = String::new();
    for (key, value) in object {
        if !value.is_array() && !value.is_object() {
            out.push_str(&format!("- {key}: {}\n", cell(value)));
        }
    }
    for (key, value) in object {
        match value {
            Value::Array(rows) if rows.iter().all(Value::is_object) && !rows.is_empty() => {
                out.push_str(&format!("\n{key}:\n\n{}", table(rows)));
            }
            Value::Object(inner) => out.push_str(&format!("- {key}: {}\n", compact(inner))),
            _ => {}
        }
    }
    out
}

/// A table of `rows`; the columns holding names (strings) come first, so each
/// row starts with what it is about.
fn table(rows: &[Value]) -> String {
    let mut columns: Vec<&str> = Vec::new();
    for row in rows.iter().filter_map(Value::as_object) {
        for key in row.keys() {
            if !columns.contains(&key.as_str()) {
                columns.push(key);
            }
        }
    }
    let names = |c: &&str| !rows.iter().any(|r| r[*c].is_string());
    columns.sort_by_key(names);
    let mut out = format!("| {} |\n|{}\n", columns.join(" | "), "---|".repeat(columns.len()));
    for row in rows {
        let cells: Vec<String> = columns
            .iter()
            .map(|c| row.get(*c).map(cell).unwrap_or_default())
            .collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out
}

/// One value in a table: numbers rounded to what a reader compares.
fn cell(value: &Value) -> String {
    match value {
        Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap_or_default();
            match x.abs() {
                a if a >= 100.0 => format!("{x:.0}"),
                a if a >= 1.0 => format!("{x:.2}"),
                _ => format!("{x:.3}"),
            }
        }
        Value::String(s) => s.clone(),
        Value::Null => "–".into(),
        other => other.to_string(),
    }
}

fn compact(object: &Map<String, Value>) -> String {
    Value::Object(object.clone()).to_string()
}

/// Replaces what lies between [`BEGIN`] and [`END`] in the file at `path`.
fn replace_between(path: &str, report: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let (Some(begin), Some(end)) = (text.find(BEGIN), text.find(END)) else {
        return Err(format!("the markers {BEGIN} and {END} are not both in it"));
    };
    if end < begin {
        return Err("the end marker comes before the begin marker".into());
    }
    let updated = format!("{}{BEGIN}\n{report}\n{}", &text[..begin], &text[end..]);
    std::fs::write(path, updated).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_json_line_becomes_a_list_and_tables() {
        let json = json!({
            "bench": "heal",
            "hold_ms": 5000,
            "results": [
                { "fault": "all", "trials": 20, "mttr_p95_ms": 689 },
                { "fault": "flapping", "trials": 6, "mttr_p95_ms": null, "share": 0.5 },
            ],
        });
        let md = tables(&json);
        assert!(md.contains("- bench: heal\n- hold_ms: 5000\n"), "{md}");
        assert!(
            md.contains("| fault | mttr_p95_ms | trials | share |\n|---|---|---|---|\n"),
            "{md}"
        );
        assert!(
            md.contains("| all | 689 | 20 |  |\n| flapping | – | 6 | 0.500 |\n"),
            "{md}"
        );
    }

    #[test]
    fn only_the_part_between_the_markers_is_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("b.md");
        std::fs::write(&path, format!("head\n{BEGIN}\nold\n{END}\ntail\n")).expect("write");
        let path = path.to_string_lossy().to_string();
        replace_between(&path, "new").expect("replaced");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text, format!("head\n{BEGIN}\nnew\n{END}\ntail\n"));
        std::fs::write(&path, "no markers").expect("write");
        assert!(replace_between(&path, "new").is_err());
    }

    #[test]
    fn the_json_line_is_the_last_object_printed() {
        let out = "table\n{\"bench\":\"x\",\"a\":1}\n";
        assert_eq!(last_json(out), Some(json!({ "bench": "x", "a": 1 })));
        assert_eq!(last_json("no json here\n[1,2]\n"), None);
    }
}
