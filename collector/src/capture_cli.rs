//! `collector capture cat|stats`: read capture Avro files (ours, or ones Event Hubs Capture
//! wrote to a Data Lake) from the command line, with the inspector's filters. Files are local
//! paths or objects in a store (`az://`, `abfss://`, `s3://`, `gs://`, with credentials from
//! the environment as for `--capture-url`); objects are downloaded one at a time to a
//! temporary file, read, and deleted.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use apache_avro::types::Value as Avro;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::sinks::capture::recover::{find_files, for_each_record};
use crate::sinks::capture::store::Store;
use crate::sinks::capture::{parse_destination, Destination};

#[derive(Subcommand, Debug)]
pub enum CaptureCommand {
    /// Print the events in capture files as NDJSON (one enriched event per line)
    Cat(CatArgs),
    /// Count events per type, per event name and per hour, and list the top pages
    Stats(StatsArgs),
}

#[derive(Args, Debug, Default)]
pub struct Select {
    /// Capture files or directories (searched for *.avro), or object store URLs
    /// (az://container/prefix, abfss://..., s3://bucket/prefix, gs://...)
    #[arg(required = true)]
    pub paths: Vec<String>,
    /// Only events of this type (track, page, ...)
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// Only events with this name (track's `event`, page's `name`)
    #[arg(long)]
    pub event: Option<String>,
    /// Only this visitor's events
    #[arg(long)]
    pub anonymous_id: Option<String>,
    /// Also read files still open (`.avro.tmp`), up to their last complete block
    #[arg(long)]
    pub include_open: bool,
}

#[derive(Args, Debug)]
pub struct CatArgs {
    #[command(flatten)]
    pub select: Select,
    /// Wrap each event with its Capture fields (SequenceNumber, Offset, EnqueuedTimeUtc, ...)
    #[arg(long)]
    pub meta: bool,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    #[command(flatten)]
    pub select: Select,
    /// Print the statistics as one JSON object
    #[arg(long)]
    pub json: bool,
    /// How many top pages to list
    #[arg(long, default_value_t = 10)]
    pub top: usize,
}

/// A capture record with its body parsed.
pub struct Captured {
    pub fields: Vec<(String, Avro)>,
    pub event: Value,
}

/// A capture file to read: local, or an object to download first.
enum Source {
    Local(PathBuf),
    Object {
        store: Store,
        name: object_store::path::Path,
        shown: String,
    },
}

fn sources(
    select: &Select,
    rt: &mut Option<tokio::runtime::Runtime>,
) -> anyhow::Result<Vec<Source>> {
    let mut out = Vec::new();
    for arg in &select.paths {
        if let Ok(Destination::Store(url)) = parse_destination(arg) {
            let store = Store::open(&url)?;
            let rt = runtime(rt)?;
            let suffixes: &[&str] = if select.include_open {
                &[".avro", ".avro.tmp"]
            } else {
                &[".avro"]
            };
            let base = &url[..url::Position::BeforePath];
            let mut found = Vec::new();
            for suffix in suffixes {
                found.extend(rt.block_on(store.list("", suffix))?);
            }
            if found.is_empty() && url.path().ends_with(".avro") {
                // One object named in full.
                let name = object_store::path::Path::from_url_path(url.path())?;
                found.push((name, 0));
            }
            found.sort();
            out.extend(found.into_iter().map(|(name, _)| Source::Object {
                store: store.clone(),
                shown: format!("{base}/{name}"),
                name,
            }));
            continue;
        }
        let p = PathBuf::from(arg);
        if p.is_dir() {
            let mut files = find_files(&p, ".avro")?;
            if select.include_open {
                files.extend(find_files(&p, ".avro.tmp")?);
            }
            files.sort();
            out.extend(files.into_iter().map(Source::Local));
        } else if p.exists() {
            out.push(Source::Local(p));
        } else {
            anyhow::bail!("{} does not exist", p.display());
        }
    }
    Ok(out)
}

fn runtime(rt: &mut Option<tokio::runtime::Runtime>) -> anyhow::Result<&tokio::runtime::Runtime> {
    if rt.is_none() {
        *rt = Some(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
        );
    }
    Ok(rt.as_ref().unwrap())
}

fn matches(select: &Select, e: &Value) -> bool {
    let name = e
        .get("event")
        .or_else(|| e.get("name"))
        .and_then(Value::as_str);
    select
        .kind
        .as_deref()
        .is_none_or(|k| e["type"].as_str() == Some(k))
        && select.event.as_deref().is_none_or(|n| name == Some(n))
        && select
            .anonymous_id
            .as_deref()
            .is_none_or(|a| e["anonymousId"].as_str() == Some(a))
}

/// Every selected record, file by file, in order.
pub fn read(
    select: &Select,
    mut each: impl FnMut(&str, Captured) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut rt = None;
    for source in sources(select, &mut rt)? {
        let (file, shown, downloaded) = match source {
            Source::Local(p) => {
                let shown = p.display().to_string();
                (p, shown, false)
            }
            Source::Object { store, name, shown } => {
                let tmp = std::env::temp_dir()
                    .join(format!("collector-capture-{}.avro", uuid::Uuid::new_v4()));
                runtime(&mut rt)?.block_on(store.download(&name, &tmp))?;
                (tmp, shown, true)
            }
        };
        let result = read_file(select, &file, &shown, &mut each);
        if downloaded {
            let _ = std::fs::remove_file(&file);
        }
        result?;
    }
    Ok(())
}

fn read_file(
    select: &Select,
    file: &Path,
    shown: &str,
    each: &mut impl FnMut(&str, Captured) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let whole = for_each_record(file, |v| {
        let Avro::Record(fields) = v else {
            return Ok(());
        };
        let event = fields
            .iter()
            .find(|(k, _)| k == "Body")
            .and_then(|(_, b)| match b {
                Avro::Union(_, inner) => match inner.as_ref() {
                    Avro::Bytes(b) => serde_json::from_slice(b).ok(),
                    _ => None,
                },
                _ => None,
            })
            .unwrap_or(Value::Null);
        if matches(select, &event) {
            each(shown, Captured { fields, event })?;
        }
        Ok(())
    })
    .with_context(|| format!("reading {shown}"))?;
    if !whole {
        eprintln!("warning: {shown} ends in an incomplete block; read up to it");
    }
    Ok(())
}

fn avro_to_json(v: &Avro) -> Value {
    match v {
        Avro::Null => Value::Null,
        Avro::Long(n) => json!(n),
        Avro::Int(n) => json!(n),
        Avro::Double(d) => json!(d),
        Avro::String(s) => json!(s),
        Avro::Bytes(b) => json!(String::from_utf8_lossy(b)),
        Avro::Union(_, inner) => avro_to_json(inner),
        Avro::Map(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), avro_to_json(v)))
                .collect(),
        ),
        other => json!(format!("{other:?}")),
    }
}

pub fn cat(args: &CatArgs, out: &mut impl Write) -> anyhow::Result<()> {
    read(&args.select, |file, rec| {
        let line = if args.meta {
            let mut m: serde_json::Map<String, Value> = rec
                .fields
                .iter()
                .filter(|(k, _)| k != "Body")
                .map(|(k, v)| (k.clone(), avro_to_json(v)))
                .collect();
            m.insert("file".into(), json!(file));
            m.insert("Body".into(), rec.event);
            Value::Object(m)
        } else {
            rec.event
        };
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")?;
        Ok(())
    })
}

/// Counts gathered by `stats`.
#[derive(Debug, Default)]
pub struct Stats {
    pub total: u64,
    pub by_type: BTreeMap<String, u64>,
    pub by_event: BTreeMap<(String, String), u64>,
    pub by_hour: BTreeMap<String, u64>,
    pub pages: HashMap<String, u64>,
}

pub fn gather(select: &Select) -> anyhow::Result<Stats> {
    let mut s = Stats::default();
    read(select, |_, rec| {
        let e = &rec.event;
        let kind = e["type"].as_str().unwrap_or("?").to_string();
        s.total += 1;
        *s.by_type.entry(kind.clone()).or_default() += 1;
        if let Some(name) = e
            .get("event")
            .or_else(|| e.get("name"))
            .and_then(Value::as_str)
        {
            *s.by_event
                .entry((kind.clone(), name.to_string()))
                .or_default() += 1;
        }
        let when = e["receivedAt"]
            .as_str()
            .or(e["timestamp"].as_str())
            .unwrap_or("");
        if let Some(hour) = when.get(..13) {
            *s.by_hour.entry(format!("{hour}:00Z")).or_default() += 1;
        }
        if kind == "page" {
            let path = e["context"]["page"]["path"]
                .as_str()
                .or(e["properties"]["path"].as_str())
                .or(e["name"].as_str())
                .unwrap_or("(unknown)");
            *s.pages.entry(path.to_string()).or_default() += 1;
        }
        Ok(())
    })?;
    Ok(s)
}

fn top_pages(s: &Stats, n: usize) -> Vec<(&String, &u64)> {
    let mut pages: Vec<_> = s.pages.iter().collect();
    pages.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    pages.truncate(n);
    pages
}

pub fn stats(args: &StatsArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let s = gather(&args.select)?;
    if args.json {
        let events: Vec<Value> = s
            .by_event
            .iter()
            .map(|((t, n), c)| json!({"type": t, "event": n, "count": c}))
            .collect();
        let pages: Vec<Value> = top_pages(&s, args.top)
            .into_iter()
            .map(|(p, c)| json!({"path": p, "count": c}))
            .collect();
        let v = json!({"total": s.total, "by_type": s.by_type, "by_event": events, "by_hour": s.by_hour, "top_pages": pages});
        writeln!(out, "{v}")?;
        return Ok(());
    }
    writeln!(out, "{} events", s.total)?;
    writeln!(out, "\nby type")?;
    for (t, c) in &s.by_type {
        writeln!(out, "  {c:>10}  {t}")?;
    }
    writeln!(out, "\nby event")?;
    for ((t, n), c) in &s.by_event {
        writeln!(out, "  {c:>10}  {t:<9} {n}")?;
    }
    writeln!(out, "\nby hour (UTC)")?;
    for (h, c) in &s.by_hour {
        writeln!(out, "  {c:>10}  {h}")?;
    }
    writeln!(out, "\ntop pages")?;
    for (p, c) in top_pages(&s, args.top) {
        writeln!(out, "  {c:>10}  {p}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::capture::CaptureSink;
    use crate::sinks::capture::{CaptureCodec, CaptureConfig};
    use crate::sinks::Sink;
    use crate::spool::Record;

    async fn write_sample(dir: &Path) {
        let cfg = CaptureConfig {
            dir: dir.to_path_buf(),
            store: None,
            namespace: "local".into(),
            eventhub: "clickstream".into(),
            partition: "0".into(),
            roll_after: std::time::Duration::from_secs(300),
            roll_bytes: 1 << 30,
            codec: CaptureCodec::Null,
        };
        let mut sink = CaptureSink::new(cfg).unwrap();
        let events = [
            r#"{"type":"page","name":"Home","anonymousId":"a1","receivedAt":"2026-11-28T15:01:00.000Z","context":{"page":{"path":"/"}}}"#,
            r#"{"type":"page","name":"Shoe","anonymousId":"a1","receivedAt":"2026-11-28T15:02:00.000Z","context":{"page":{"path":"/p/shoe"}}}"#,
            r#"{"type":"page","name":"Home","anonymousId":"a2","receivedAt":"2026-11-28T16:00:00.000Z","context":{"page":{"path":"/"}}}"#,
            r#"{"type":"track","event":"Added","anonymousId":"a2","receivedAt":"2026-11-28T16:01:00.000Z"}"#,
        ];
        let records: Vec<Record> = events
            .iter()
            .enumerate()
            .map(|(i, e)| Record {
                seq: i as u64,
                payload: (*e).into(),
            })
            .collect();
        sink.deliver(&records).await.unwrap();
        sink.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn cat_filters_and_meta() {
        let dir = tempfile::tempdir().unwrap();
        write_sample(dir.path()).await;
        let select = |kind: Option<&str>, anon: Option<&str>| Select {
            paths: vec![dir.path().display().to_string()],
            kind: kind.map(Into::into),
            anonymous_id: anon.map(Into::into),
            ..Default::default()
        };
        let mut out = Vec::new();
        cat(
            &CatArgs {
                select: select(Some("page"), Some("a1")),
                meta: false,
            },
            &mut out,
        )
        .unwrap();
        let lines: Vec<Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["name"], "Shoe");
        let mut out = Vec::new();
        cat(
            &CatArgs {
                select: select(None, None),
                meta: true,
            },
            &mut out,
        )
        .unwrap();
        let first: Value =
            serde_json::from_str(String::from_utf8(out).unwrap().lines().next().unwrap()).unwrap();
        assert_eq!(first["SequenceNumber"], 0);
        assert_eq!(first["Properties"]["type"], "page");
        assert_eq!(first["Body"]["name"], "Home");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn stats_counts() {
        let dir = tempfile::tempdir().unwrap();
        write_sample(dir.path()).await;
        let s = gather(&Select {
            paths: vec![dir.path().display().to_string()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.total, 4);
        assert_eq!(s.by_type["page"], 3);
        assert_eq!(s.by_event[&("track".to_string(), "Added".to_string())], 1);
        assert_eq!(s.by_hour["2026-11-28T15:00Z"], 2);
        assert_eq!(top_pages(&s, 1), vec![(&"/".to_string(), &2)]);
    }
}
