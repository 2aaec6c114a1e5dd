//! Loading a plan: read every schema file of a directory, refuse what would reach outside it,
//! bind each schema to the messages it checks, and compile each one once.
//!
//! Every problem is reported, not just the first, each with its file, the JSON pointer inside
//! it and the reason: `collector plan check` lists them, and a collector that cannot load its
//! plan stops at start (or keeps the old plan on reload) naming them.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use jsonschema::{Draft, PatternOptions, Registry, Validator};
use serde_json::Value;

use super::{Binding, Plan, Schema};
use crate::ingest::message::MessageType;

/// Most schema files a plan may hold.
const MAX_FILES: usize = 10_000;
/// Largest schema file read.
const MAX_FILE_BYTES: u64 = 4 << 20;
/// Deepest subdirectory walked.
const MAX_DEPTH: usize = 16;
/// The made-up base every plan file's URI hangs from: `$ref`s resolve among the plan's files
/// and nowhere else.
const BASE: &str = "file:///plan/";

/// One thing wrong with a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file, relative to the plan directory (empty: the plan as a whole).
    pub file: String,
    /// Where in the file, as a JSON pointer (empty: the whole file).
    pub pointer: String,
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.file.is_empty(), self.pointer.is_empty()) {
            (true, _) => write!(f, "{}", self.reason),
            (false, true) => write!(f, "{}: {}", self.file, self.reason),
            (false, false) => write!(f, "{}: {}: {}", self.file, self.pointer, self.reason),
        }
    }
}

/// Why a plan did not load: every problem found.
#[derive(Debug, Clone)]
pub struct LoadError {
    pub dir: PathBuf,
    pub problems: Vec<Problem>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tracking plan {} does not load:", self.dir.display())?;
        for p in &self.problems {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

/// One schema file as read.
struct Doc {
    rel: String,
    uri: String,
    value: Value,
}

/// Load and compile the plan in `dir`.
pub fn load(dir: &Path) -> Result<Plan, LoadError> {
    let fail = |problems| LoadError {
        dir: dir.to_path_buf(),
        problems,
    };
    let mut problems = Vec::new();
    let mut paths = Vec::new();
    if let Err(reason) = walk(dir, dir, 0, &mut paths) {
        return Err(fail(vec![Problem {
            file: String::new(),
            pointer: String::new(),
            reason,
        }]));
    }
    paths.sort();
    let mut docs = Vec::new();
    for path in paths {
        let rel = relative(dir, &path);
        match read(&path) {
            Ok(value) if value.is_object() => docs.push(Doc {
                uri: format!("{BASE}{}", encode_path(&rel)),
                rel,
                value,
            }),
            Ok(_) => problems.push(problem(&rel, "", "a schema file must hold a JSON object")),
            Err(reason) => problems.push(problem(&rel, "", &reason)),
        }
    }
    if docs.is_empty() && problems.is_empty() {
        problems.push(problem("", "", "the directory holds no .json schema files"));
    }

    let mut known: HashSet<String> = docs.iter().map(|d| d.uri.clone()).collect();
    for d in &docs {
        walk_schema(
            &d.value,
            &d.uri,
            &mut String::new(),
            &mut |base, key, v, _| {
                if key == "$id" {
                    if let Some(id) = v.as_str().and_then(|id| resolve(base, id).ok()) {
                        known.insert(without_fragment(&id).to_string());
                    }
                }
            },
        );
    }
    let mut bindings: BTreeMap<Binding, usize> = BTreeMap::new();
    for (i, d) in docs.iter().enumerate() {
        lint(d, &known, &mut problems);
        match binding(&d.value) {
            Ok(None) => {}
            Ok(Some(b)) => {
                if let Some(&other) = bindings.get(&b) {
                    let at = match (b.kind, d.value.get("x-name")) {
                        (MessageType::Track, _) => "/x-event",
                        (_, Some(_)) => "/x-name",
                        _ => "/x-type",
                    };
                    problems.push(problem(
                        &d.rel,
                        at,
                        &format!("{b} is already bound by {}", docs[other].rel),
                    ));
                } else {
                    bindings.insert(b, i);
                }
            }
            Err((pointer, reason)) => problems.push(problem(&d.rel, pointer, &reason)),
        }
    }
    if !problems.is_empty() {
        return Err(fail(problems));
    }

    let schemas = {
        let registry = match Registry::new()
            .draft(Draft::Draft202012)
            .extend(docs.iter().map(|d| (d.uri.as_str(), &d.value)))
            .and_then(|r| r.prepare())
        {
            Ok(r) => r,
            Err(e) => return Err(fail(vec![problem("", "", &plain(&e.to_string()))])),
        };
        let mut schemas = Vec::new();
        for (binding, i) in bindings {
            let d = &docs[i];
            match compile(d, &registry) {
                Ok(validator) => schemas.push(Schema {
                    label: binding.to_string(),
                    binding,
                    file: d.rel.clone(),
                    shape: super::shape::Shape::of(&d.value),
                    value: d.value.clone(),
                    validator,
                }),
                Err(p) => problems.push(p),
            }
        }
        schemas
    };
    if !problems.is_empty() {
        return Err(fail(problems));
    }
    let shared = docs.into_iter().map(|d| (d.uri, d.value)).collect();
    Ok(Plan::new(dir.to_path_buf(), schemas, shared))
}

fn problem(file: &str, pointer: &str, reason: &str) -> Problem {
    Problem {
        file: file.into(),
        pointer: pointer.into(),
        reason: reason.into(),
    }
}

/// Our made-up base URI means nothing to a reader: say "the plan directory" instead.
fn plain(s: &str) -> String {
    s.replace(BASE, "")
}

/// Collect `.json` files under `dir`, skipping hidden ones; symlinked directories are not
/// followed (a loop cannot trap the walk).
fn walk(root: &Path, dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("reading {}: {e}", dir.display()))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        if kind.is_dir() {
            if depth + 1 > MAX_DEPTH {
                return Err(format!(
                    "{} is nested more than {MAX_DEPTH} directories deep",
                    relative(root, &path)
                ));
            }
            walk(root, &path, depth + 1, out)?;
        } else if name.ends_with(".json") {
            out.push(path);
            if out.len() > MAX_FILES {
                return Err(format!("the plan has more than {MAX_FILES} schema files"));
            }
        }
    }
    Ok(())
}

fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn read(path: &Path) -> Result<Value, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "the file is {} bytes; a schema file may have {MAX_FILE_BYTES}",
            meta.len()
        ));
    }
    let text = std::fs::read(path).map_err(|e| e.to_string())?;
    serde_json::from_slice(&text).map_err(|e| format!("invalid JSON: {e}"))
}

/// Percent-encode a relative path for a URI (`/` kept).
fn encode_path(rel: &str) -> String {
    let mut out = String::with_capacity(rel.len());
    for b in rel.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn resolve(base: &str, reference: &str) -> Result<String, String> {
    let base = jsonschema::uri::from_str(base).map_err(|e| e.to_string())?;
    jsonschema::uri::resolve_against(&base.borrow(), reference)
        .map(|u| u.as_str().to_string())
        .map_err(|e| e.to_string())
}

fn without_fragment(uri: &str) -> &str {
    uri.split_once('#').map_or(uri, |(u, _)| u)
}

/// Keywords whose values are data, not schemas: a `$ref` or `$id` inside them means nothing.
const DATA_KEYWORDS: [&str; 4] = ["const", "enum", "examples", "default"];

/// Visit every keyword of a schema document with the base URI in force there, the pointer to
/// the keyword's value, and the value.
fn walk_schema(
    v: &Value,
    base: &str,
    pointer: &mut String,
    visit: &mut dyn FnMut(&str, &str, &Value, &str),
) {
    match v {
        Value::Object(map) => {
            let own;
            let base = match map.get("$id").and_then(Value::as_str) {
                Some(id) => match resolve(base, id) {
                    Ok(u) => {
                        own = u;
                        own.as_str()
                    }
                    Err(_) => base,
                },
                None => base,
            };
            for (key, value) in map {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
                visit(base, key, value, pointer);
                if !DATA_KEYWORDS.contains(&key.as_str()) {
                    walk_schema(value, base, pointer, visit);
                }
                pointer.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = pointer.len();
                pointer.push_str(&format!("/{i}"));
                walk_schema(item, base, pointer, visit);
                pointer.truncate(len);
            }
        }
        _ => {}
    }
}

/// Refuse a `$ref` that leads outside the plan, and a `$schema` that is not a known draft.
fn lint(d: &Doc, known: &HashSet<String>, problems: &mut Vec<Problem>) {
    if let Some(s) = d.value.get("$schema") {
        if !s.is_string() || Draft::default().detect(&d.value) == Draft::Unknown {
            problems.push(problem(
                &d.rel,
                "/$schema",
                &format!(
                    "unknown $schema {s}; use https://json-schema.org/draft/2020-12/schema (the default) or http://json-schema.org/draft-07/schema#"
                ),
            ));
        }
    }
    walk_schema(
        &d.value,
        &d.uri,
        &mut String::new(),
        &mut |base, key, v, at| {
            if key != "$ref" && key != "$dynamicRef" {
                return;
            }
            let Some(reference) = v.as_str() else {
                problems.push(problem(&d.rel, at, &format!("{key} must be a string")));
                return;
            };
            match resolve(base, reference) {
            Ok(target) if known.contains(without_fragment(&target)) => {}
            Ok(target) if target.starts_with(BASE) => problems.push(problem(
                &d.rel,
                at,
                &format!(
                    "{key} {reference:?}: no file {:?} in the plan directory",
                    plain(without_fragment(&target))
                ),
            )),
            Ok(_) => problems.push(problem(
                &d.rel,
                at,
                &format!(
                    "{key} {reference:?} points outside the plan directory; the collector makes no network calls and reads no other files for validation: copy the schema into the plan and refer to it by file name or $id"
                ),
            )),
            Err(e) => problems.push(problem(&d.rel, at, &format!("{key} {reference:?}: {e}"))),
        }
        },
    );
}

/// What a schema file is bound to, from `x-type`, `x-event` and `x-name`; `None` for a file
/// of shared definitions. Errors carry the pointer of the keyword at fault.
fn binding(v: &Value) -> Result<Option<Binding>, (&'static str, String)> {
    let kind = match v.get("x-type") {
        None => {
            for key in ["x-event", "x-name"] {
                if v.get(key).is_some() {
                    return Err((
                        if key == "x-event" { "/x-event" } else { "/x-name" },
                        format!("{key} without x-type"),
                    ));
                }
            }
            return Ok(None);
        }
        Some(Value::String(s)) => MessageType::parse(s).ok_or_else(|| {
            (
                "/x-type",
                format!("unknown x-type {s:?}; expected one of track, page, screen, identify, group, alias"),
            )
        })?,
        Some(other) => return Err(("/x-type", format!("x-type must be a string, not {other}"))),
    };
    let text = |key: &'static str, at: &'static str| match v.get(key) {
        None => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
        Some(_) => Err((at, format!("{key} must be a non-empty string"))),
    };
    let event = text("x-event", "/x-event")?;
    let name = text("x-name", "/x-name")?;
    let name = match kind {
        MessageType::Track => {
            if name.is_some() {
                return Err((
                    "/x-name",
                    "x-name is for page and screen; track uses x-event".into(),
                ));
            }
            Some(event.ok_or((
                "/x-type",
                "a track schema needs x-event, the event name".to_string(),
            ))?)
        }
        MessageType::Page | MessageType::Screen => {
            if event.is_some() {
                return Err((
                    "/x-event",
                    format!(
                        "x-event is for track; a {} is named with x-name",
                        kind.as_str()
                    ),
                ));
            }
            name
        }
        _ => {
            if event.is_some() || name.is_some() {
                let at = if event.is_some() {
                    "/x-event"
                } else {
                    "/x-name"
                };
                return Err((
                    at,
                    format!("{} schemas take no x-event or x-name", kind.as_str()),
                ));
            }
            None
        }
    };
    Ok(Some(Binding { kind, name }))
}

fn compile(d: &Doc, registry: &Registry) -> Result<Validator, Problem> {
    jsonschema::options()
        .with_registry(registry)
        .with_base_uri(d.uri.clone())
        .offline()
        // Linear-time matching: a plan's `pattern` cannot make validation backtrack for ever.
        .with_pattern_options(PatternOptions::regex())
        .should_validate_formats(true)
        .build(&d.value)
        .map_err(|e| {
            let pointer = e.instance_path().as_str().to_string();
            problem(&d.rel, &pointer, &plain(&e.to_string()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    fn problems(files: &[(&str, &str)]) -> Vec<String> {
        let dir = plan_dir(files);
        match load(dir.path()) {
            Ok(_) => vec![],
            Err(e) => e.problems.iter().map(|p| p.to_string()).collect(),
        }
    }

    const ORDER: &str = r#"{"x-type":"track","x-event":"Order Completed",
        "properties":{"properties":{"properties":{"revenue":{"$ref":"defs/money.json"}},"required":["revenue"]}}}"#;
    const MONEY: &str = r#"{"type":"number","minimum":0}"#;

    #[test]
    fn binds_schemas_and_resolves_refs_by_file_name_and_by_id() {
        let dir = plan_dir(&[
            ("order.json", ORDER),
            ("defs/money.json", MONEY),
            (
                "page.json",
                r#"{"x-type":"page","properties":{"properties":{"$ref":"https://example.com/page-props"}}}"#,
            ),
            (
                "defs/page-props.json",
                r#"{"$id":"https://example.com/page-props","type":"object","required":["path"]}"#,
            ),
            ("README.md", "not a schema"),
            (".hidden.json", "not json"),
        ]);
        let plan = load(dir.path()).unwrap();
        assert_eq!(plan.schemas.len(), 2);
        let order = plan
            .schema(MessageType::Track, Some("Order Completed"))
            .unwrap();
        assert!(order
            .validator
            .is_valid(&serde_json::json!({"properties":{"revenue":3}})));
        assert!(!order
            .validator
            .is_valid(&serde_json::json!({"properties":{"revenue":"3"}})));
        let page = plan.schema(MessageType::Page, Some("Home")).unwrap();
        assert!(!page
            .validator
            .is_valid(&serde_json::json!({"properties":{}})));
    }

    #[test]
    fn every_problem_is_named_with_file_pointer_and_reason() {
        let found = problems(&[
            ("a.json", ORDER),
            ("b.json", ORDER),
            ("bad.json", "{\"x-type\": \"track\", "),
            (
                "remote.json",
                r#"{"x-type":"identify","properties":{"traits":{"$ref":"http://example.com/t.json"}}}"#,
            ),
            (
                "abs.json",
                r#"{"x-type":"group","allOf":[{"$ref":"/etc/passwd"}]}"#,
            ),
            ("up.json", r#"{"x-type":"alias","$ref":"../outside.json"}"#),
            ("kind.json", r#"{"x-type":"purchase"}"#),
            ("noevent.json", r#"{"x-type":"track"}"#),
            (
                "draft.json",
                r#"{"$schema":"https://example.com/my-meta","type":"object"}"#,
            ),
        ]);
        let has = |s: &str| found.iter().any(|p| p.contains(s));
        assert!(
            has("b.json: /x-event: track \"Order Completed\" is already bound by a.json"),
            "{found:#?}"
        );
        assert!(has("a.json: /properties/properties/properties/revenue/$ref: $ref \"defs/money.json\": no file \"defs/money.json\""), "{found:#?}");
        assert!(
            has("bad.json: invalid JSON: EOF while parsing"),
            "{found:#?}"
        );
        assert!(has("remote.json: /properties/traits/$ref: $ref \"http://example.com/t.json\" points outside"), "{found:#?}");
        assert!(
            has("abs.json: /allOf/0/$ref: $ref \"/etc/passwd\" points outside"),
            "{found:#?}"
        );
        assert!(
            has("up.json: /$ref: $ref \"../outside.json\""),
            "{found:#?}"
        );
        assert!(
            has("kind.json: /x-type: unknown x-type \"purchase\""),
            "{found:#?}"
        );
        assert!(
            has("noevent.json: /x-type: a track schema needs x-event"),
            "{found:#?}"
        );
        assert!(has("draft.json: /$schema: unknown $schema"), "{found:#?}");
    }

    #[test]
    fn an_invalid_schema_names_the_pointer_in_its_file() {
        let found = problems(&[(
            "order.json",
            r#"{"x-type":"track","x-event":"X","properties":{"properties":{"type":"objekt"}}}"#,
        )]);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].starts_with("order.json: /properties/properties/type: "),
            "{found:#?}"
        );
    }

    #[test]
    fn lookaround_patterns_are_refused_at_load() {
        let found = problems(&[(
            "p.json",
            r#"{"x-type":"identify","properties":{"userId":{"pattern":"^(?!admin).*$"}}}"#,
        )]);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].starts_with("p.json: "), "{found:#?}");
    }

    #[test]
    fn draft_07_is_honoured() {
        // In draft-07, `items` with an array is a tuple; in 2020-12 that is `prefixItems`.
        let dir = plan_dir(&[(
            "t.json",
            r#"{"$schema":"http://json-schema.org/draft-07/schema#","x-type":"track","x-event":"T",
               "properties":{"properties":{"properties":{"pair":{"items":[{"type":"string"},{"type":"number"}]}}}}}"#,
        )]);
        let plan = load(dir.path()).unwrap();
        let s = plan.schema(MessageType::Track, Some("T")).unwrap();
        assert!(s
            .validator
            .is_valid(&serde_json::json!({"properties":{"pair":["a",1]}})));
        assert!(!s
            .validator
            .is_valid(&serde_json::json!({"properties":{"pair":[1,"a"]}})));
    }

    #[test]
    fn an_empty_or_missing_directory_does_not_load() {
        assert!(problems(&[])[0].contains("no .json schema files"));
        let e = load(Path::new("/nonexistent/plan")).unwrap_err();
        assert!(e.to_string().contains("reading /nonexistent/plan"));
    }
}
