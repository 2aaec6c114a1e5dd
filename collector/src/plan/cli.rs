//! `collector plan check|test|types`: lint a plan, replay captured events against it before
//! turning `enforce` on, and print TypeScript declarations for the tracker.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::Value;

use super::{load, violation, Plan};
use crate::capture_cli::{self, Select};
use crate::ingest::message::MessageType;

#[derive(Subcommand, Debug)]
pub enum PlanCommand {
    /// Load and lint a plan: exit 0, or 1 with every problem listed by file
    Check(DirArgs),
    /// Replay captured events (capture .avro files or directories, or NDJSON files) against a
    /// plan and report the violations per event and path
    Test(TestArgs),
    /// Print TypeScript declarations that type the tracker's track() and identify() per plan
    Types(DirArgs),
}

#[derive(Args, Debug)]
pub struct DirArgs {
    /// The plan directory
    pub dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct TestArgs {
    /// The plan directory
    pub dir: PathBuf,
    /// Capture files or directories (*.avro), or NDJSON files of events
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Print the report as one JSON object
    #[arg(long)]
    pub json: bool,
}

/// Run a plan command; the exit code: 0 clean, 1 problems or violations found.
pub fn run(cmd: &PlanCommand, out: &mut impl Write) -> anyhow::Result<i32> {
    match cmd {
        PlanCommand::Check(a) => check(&a.dir, out),
        PlanCommand::Test(a) => test(a, out),
        PlanCommand::Types(a) => {
            let plan = load(&a.dir)?;
            out.write_all(
                super::types::declarations(&plan, &a.dir.display().to_string()).as_bytes(),
            )?;
            Ok(0)
        }
    }
}

fn check(dir: &Path, out: &mut impl Write) -> anyhow::Result<i32> {
    let plan = match load(dir) {
        Ok(p) => p,
        Err(e) => {
            for p in &e.problems {
                writeln!(out, "error: {p}")?;
            }
            writeln!(out, "{} problems; the plan does not load", e.problems.len())?;
            return Ok(1);
        }
    };
    for w in lints(&plan) {
        writeln!(out, "warning: {w}")?;
    }
    writeln!(out, "ok: {} schemas bound:", plan.schemas.len())?;
    for (b, s) in &plan.schemas {
        writeln!(out, "  {b:<40} {}", s.file)?;
    }
    Ok(0)
}

/// Likely mistakes that still load.
pub fn lints(plan: &Plan) -> Vec<String> {
    let mut warnings = Vec::new();
    for s in plan.schemas.values() {
        if s.value.get("additionalProperties") == Some(&Value::Bool(false)) {
            warnings.push(format!(
                "{}: /additionalProperties: false on the whole message refuses every field a library adds (messageId, context, timestamp...); constrain /properties/properties instead",
                s.file
            ));
        }
        if s.binding.kind == MessageType::Track
            && s.value.pointer("/properties/properties").is_none()
            && s.value.get("allOf").is_none()
            && s.value.get("$ref").is_none()
        {
            warnings.push(format!(
                "{}: {} constrains no properties (no /properties/properties)",
                s.file, s.binding
            ));
        }
    }
    let text: String = plan.shared.values().map(|v| v.to_string()).collect();
    let bound: HashSet<&str> = plan.schemas.values().map(|s| s.file.as_str()).collect();
    for uri in plan.shared.keys() {
        let rel = uri.trim_start_matches("file:///plan/");
        let name = rel.rsplit('/').next().unwrap_or(rel);
        if !bound.contains(rel) && !text.contains(name) {
            warnings.push(format!("{rel}: a shared definition no schema refers to"));
        }
    }
    warnings.sort();
    warnings
}

/// Violations of one event name at one path and keyword.
#[derive(Default, serde::Serialize)]
struct Finding {
    count: u64,
    example: String,
}

#[derive(Default, serde::Serialize)]
struct Report {
    events: u64,
    valid: u64,
    invalid: u64,
    unplanned: u64,
    unreadable: u64,
    /// binding → "path keyword" → finding
    violations: BTreeMap<String, BTreeMap<String, Finding>>,
    /// unplanned type/name → count
    unplanned_events: BTreeMap<String, u64>,
}

fn test(a: &TestArgs, out: &mut impl Write) -> anyhow::Result<i32> {
    let plan = load(&a.dir)?;
    let mut report = Report::default();
    let (avro, ndjson): (Vec<_>, Vec<_>) = a
        .paths
        .iter()
        .cloned()
        .partition(|p| p.is_dir() || p.extension().is_some_and(|e| e == "avro"));
    if !avro.is_empty() {
        let select = Select {
            paths: avro.iter().map(|p| p.display().to_string()).collect(),
            ..Default::default()
        };
        capture_cli::read(&select, |_, rec| {
            judge(&plan, rec.event, &mut report);
            Ok(())
        })?;
    }
    for path in ndjson {
        let file =
            std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        for line in std::io::BufReader::new(file).lines() {
            let line = line.with_context(|| format!("reading {}", path.display()))?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(&line) {
                Ok(v) => judge(&plan, v, &mut report),
                Err(_) => report.unreadable += 1,
            }
        }
    }
    if a.json {
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)?;
    } else {
        print_report(&report, out)?;
    }
    Ok(if report.invalid > 0 { 1 } else { 0 })
}

/// Keys the collector adds to what it stores; a replay checks the message as it arrived.
const ADDED: [&str; 3] = ["receivedAt", "source", "writeKey"];
const ADDED_TO_CONTEXT: [&str; 3] = ["violations", "bot", "browser"];

fn judge(plan: &Plan, mut event: Value, report: &mut Report) {
    let Some(obj) = event.as_object_mut() else {
        report.unreadable += 1;
        return;
    };
    report.events += 1;
    for k in ADDED {
        obj.remove(k);
    }
    if let Some(Value::Object(c)) = obj.get_mut("context") {
        for k in ADDED_TO_CONTEXT {
            c.remove(k);
        }
    }
    let kind = obj
        .get("type")
        .and_then(Value::as_str)
        .and_then(MessageType::parse);
    let Some(kind) = kind else {
        report.unreadable += 1;
        return;
    };
    let key = if kind == MessageType::Track {
        "event"
    } else {
        "name"
    };
    let name = obj.get(key).and_then(Value::as_str);
    let Some(schema) = plan.schema(kind, name) else {
        report.unplanned += 1;
        let what = match name {
            Some(n) if kind == MessageType::Track => format!("track {n:?}"),
            _ => kind.as_str().to_string(),
        };
        *report.unplanned_events.entry(what).or_default() += 1;
        return;
    };
    let found = violation::collect(&schema.validator, &event);
    if found.is_empty() {
        report.valid += 1;
        return;
    }
    report.invalid += 1;
    let per = report.violations.entry(schema.label.clone()).or_default();
    for v in found.into_iter().filter(|v| v.keyword != "more") {
        let path = if v.path.is_empty() {
            "/".to_string()
        } else {
            v.path
        };
        let f = per.entry(format!("{path} {}", v.keyword)).or_default();
        f.count += 1;
        if f.example.is_empty() {
            f.example = v.message;
        }
    }
}

fn print_report(r: &Report, out: &mut impl Write) -> anyhow::Result<()> {
    writeln!(
        out,
        "{} events: {} valid, {} invalid, {} unplanned{}",
        r.events,
        r.valid,
        r.invalid,
        r.unplanned,
        if r.unreadable > 0 {
            format!(", {} unreadable", r.unreadable)
        } else {
            String::new()
        }
    )?;
    for (event, paths) in &r.violations {
        writeln!(out, "\n{event}")?;
        for (at, f) in paths {
            writeln!(out, "  {:>7}  {at:<40} e.g. {}", f.count, f.example)?;
        }
    }
    if !r.unplanned_events.is_empty() {
        writeln!(out, "\nunplanned")?;
        for (what, n) in &r.unplanned_events {
            writeln!(out, "  {n:>7}  {what}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_reports_violations_per_event_and_path_from_ndjson() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("o.json"),
            r#"{"x-type":"track","x-event":"Order Completed",
                "properties":{"properties":{"properties":{"revenue":{"type":"number"}},"required":["revenue"]}}}"#,
        )
        .unwrap();
        let events = dir.path().join("events.ndjson");
        std::fs::write(
            &events,
            [
                r#"{"type":"track","event":"Order Completed","properties":{"revenue":1},"receivedAt":"x","context":{"bot":false}}"#,
                r#"{"type":"track","event":"Order Completed","properties":{"revenue":"12,99"}}"#,
                r#"{"type":"track","event":"Order Completed","properties":{"revenue":"1"}}"#,
                r#"{"type":"track","event":"Order Complete","properties":{}}"#,
                "not json",
            ]
            .join("\n"),
        )
        .unwrap();
        let mut out = Vec::new();
        let code = run(
            &PlanCommand::Test(TestArgs {
                dir: dir.path().into(),
                paths: vec![events],
                json: false,
            }),
            &mut out,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(code, 1);
        assert!(
            text.starts_with("4 events: 1 valid, 2 invalid, 1 unplanned, 1 unreadable"),
            "{text}"
        );
        assert!(
            text.contains("track \"Order Completed\"\n        2  /properties/revenue type"),
            "{text}"
        );
        assert!(
            text.contains("        1  track \"Order Complete\""),
            "{text}"
        );
    }

    #[test]
    fn check_lists_problems_and_lints() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.json"),
            r#"{"x-type":"track","x-event":"A","additionalProperties":false}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("unused.json"), r#"{"type":"string"}"#).unwrap();
        let mut out = Vec::new();
        assert_eq!(check(dir.path(), &mut out).unwrap(), 0);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("warning: a.json: /additionalProperties: false"),
            "{text}"
        );
        assert!(
            text.contains("warning: unused.json: a shared definition no schema refers to"),
            "{text}"
        );
        assert!(text.contains("track \"A\""), "{text}");
        std::fs::write(
            dir.path().join("b.json"),
            r#"{"x-type":"track","x-event":"A"}"#,
        )
        .unwrap();
        let mut out = Vec::new();
        assert_eq!(check(dir.path(), &mut out).unwrap(), 1);
        assert!(String::from_utf8(out)
            .unwrap()
            .contains("error: b.json: /x-event: track \"A\" is already bound by a.json"));
    }
}
