//! Tracking plans: the site owner's own JSON Schemas, which every event is held to between
//! validation and enrichment (like Segment Protocols, RudderStack tracking plans and
//! Snowplow's Iglu schemas).
//!
//! A plan is a directory of schema files. [`load`] reads and compiles it once; each schema is
//! bound to a message type and, for `track`, an event name (`x-type`, `x-event`, `x-name`).
//! [`Applied::judge`] finds the schema of a message and says what to do with it under the
//! plan's [`Mode`] and [`Unplanned`] rule. Plans are loaded with the config and swapped
//! whole with the sources that use them, so a request sees exactly one version.
//!
//! - [`load`]: directory → compiled [`Plan`], or every problem with its file and pointer.
//! - [`shape`]: the parts of a message a schema can see, so a check reads only those.
//! - [`violation`]: what a failed check reports, bounded.
//! - [`types`]: TypeScript declarations for the tracker's `track()`.
//! - [`cli`]: `collector plan check|test|types`.

pub mod cli;
pub mod load;
pub mod shape;
pub mod types;
pub mod violation;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use crate::ingest::message::MessageType;
pub use load::{load, LoadError, Problem};
pub use violation::Violation;

/// A message to check: its top-level keys, each with its value as JSON text.
pub type Fields<'m> = Vec<(Cow<'m, str>, Cow<'m, str>)>;

/// What happens to an event that breaks its schema.
#[derive(clap::ValueEnum, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Rejected like any invalid event: dead-lettered with its violations.
    #[default]
    Enforce,
    /// Stored, with the violations in `context.violations`.
    Tag,
    /// Stored unchanged; the violations are only counted and shown in the inspector.
    Observe,
}

/// What happens to an event the plan has no schema for.
#[derive(clap::ValueEnum, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Unplanned {
    #[default]
    Allow,
    /// Stored, with an `unplanned` violation in `context.violations`.
    Tag,
    Block,
}

/// What the flags, or one source, say about plans. A source's unset fields fall back to the
/// flags'.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanSettings {
    pub dir: Option<PathBuf>,
    pub mode: Option<Mode>,
    pub unplanned: Option<Unplanned>,
}

/// What a schema checks: a message type and, for track, the event name (for page and screen,
/// optionally the page name).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Binding {
    pub kind: MessageType,
    pub name: Option<String>,
}

impl fmt::Display for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{} {n:?}", self.kind.as_str()),
            None => f.write_str(self.kind.as_str()),
        }
    }
}

/// One compiled schema.
pub struct Schema {
    pub binding: Binding,
    /// Its file, relative to the plan directory.
    pub file: String,
    pub value: Value,
    pub validator: jsonschema::Validator,
    /// What the validator needs of a message.
    pub shape: shape::Shape,
    /// `binding` as a metric label, made once.
    label: String,
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schema({} in {})", self.binding, self.file)
    }
}

/// The schemas of one message type.
#[derive(Debug, Default)]
struct OfKind {
    named: HashMap<String, Arc<Schema>>,
    any: Option<Arc<Schema>>,
}

/// A loaded plan.
#[derive(Debug)]
pub struct Plan {
    pub dir: PathBuf,
    /// Every bound schema, in binding order.
    pub schemas: BTreeMap<Binding, Arc<Schema>>,
    /// Every file of the plan by its URI, for following `$ref`s outside validation.
    pub shared: HashMap<String, Value>,
    by_kind: [OfKind; 6],
}

impl Plan {
    fn new(dir: PathBuf, schemas: Vec<Schema>, shared: HashMap<String, Value>) -> Plan {
        let mut plan = Plan {
            dir,
            schemas: BTreeMap::new(),
            shared,
            by_kind: Default::default(),
        };
        for s in schemas {
            let s = Arc::new(s);
            let of = &mut plan.by_kind[s.binding.kind as usize];
            match &s.binding.name {
                Some(n) => {
                    of.named.insert(n.clone(), s.clone());
                }
                None => of.any = Some(s.clone()),
            }
            plan.schemas.insert(s.binding.clone(), s);
        }
        plan
    }

    /// The schema a message of `kind` named `name` (track: the event; page, screen: the
    /// page's name) is held to: the one bound to its name, else (page, screen) the type's.
    pub fn schema(&self, kind: MessageType, name: Option<&str>) -> Option<&Arc<Schema>> {
        let of = &self.by_kind[kind as usize];
        name.and_then(|n| of.named.get(n)).or(of.any.as_ref())
    }
}

/// A plan with the rules it is applied under.
#[derive(Debug)]
pub struct Applied {
    pub plan: Arc<Plan>,
    pub mode: Mode,
    pub unplanned: Unplanned,
}

/// What to do with one event.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Store it as it is (it matches its schema, or it is unplanned and allowed).
    Store,
    /// Store it with these violations in `context.violations`.
    Tag(Vec<Violation>),
    /// Store it unchanged; show these violations.
    Observe(Vec<Violation>),
    /// Refuse it with this reason.
    Reject(String, Vec<Violation>),
}

/// How the events of one request fared, counted once per request.
#[derive(Debug, Default)]
pub struct Tally {
    pub valid: u64,
    pub invalid: u64,
    pub unplanned: u64,
}

impl Tally {
    /// Add to `collector_plan_events_total{source, result}`.
    pub fn record(&self, source: &str) {
        for (result, n) in [
            ("valid", self.valid),
            ("invalid", self.invalid),
            ("unplanned", self.unplanned),
        ] {
            if n > 0 {
                metrics::counter!("collector_plan_events_total", "source" => source.to_string(), "result" => result)
                    .increment(n);
            }
        }
    }
}

impl Applied {
    /// Judge a message of `kind` named `name`. `message` gives the message's fields; it is
    /// called only when there is a schema to check. `source` labels the metrics.
    pub fn judge<'m>(
        &self,
        kind: MessageType,
        name: Option<&str>,
        message: impl FnOnce() -> Result<Fields<'m>, String>,
        source: &str,
        tally: &mut Tally,
    ) -> Result<Verdict, String> {
        let Some(schema) = self.plan.schema(kind, name) else {
            tally.unplanned += 1;
            let subject = match name {
                Some(n) if kind == MessageType::Track => format!("track {n:?}"),
                _ => kind.as_str().to_string(),
            };
            let v = || {
                vec![Violation::new(
                    "",
                    "unplanned",
                    &format!("the tracking plan has no schema for {subject}"),
                )]
            };
            return Ok(match self.unplanned {
                Unplanned::Allow => Verdict::Store,
                Unplanned::Tag => Verdict::Tag(v()),
                Unplanned::Block => {
                    Verdict::Reject(format!("{subject} is not in the tracking plan"), v())
                }
            });
        };
        let fields = message()?;
        let unreadable = |e: serde_json::Error| {
            format!("event does not parse as JSON for the tracking plan: {e}")
        };
        // Most events match: a yes/no check on the parts the schema can see; the violations
        // are listed from the whole message.
        let seen = schema.shape.project_fields(&fields).map_err(unreadable)?;
        if schema.validator.is_valid(&seen) {
            tally.valid += 1;
            return Ok(Verdict::Store);
        }
        let whole = match schema.shape {
            shape::Shape::Whole => seen,
            _ => shape::Shape::Whole
                .project_fields(&fields)
                .map_err(unreadable)?,
        };
        let found = violation::collect(&schema.validator, &whole);
        if found.is_empty() {
            tally.valid += 1;
            return Ok(Verdict::Store);
        }
        tally.invalid += 1;
        for v in found.iter().filter(|v| v.keyword != "more") {
            metrics::counter!("collector_plan_violations_total",
                "source" => source.to_string(), "event" => schema.label.clone(), "keyword" => v.keyword.clone())
            .increment(1);
        }
        Ok(match self.mode {
            Mode::Enforce => Verdict::Reject(violation::reason(&schema.label, &found), found),
            Mode::Tag => Verdict::Tag(found),
            Mode::Observe => Verdict::Observe(found),
        })
    }
}

/// The plans named by the flags and by the sources, each directory loaded once.
#[derive(Debug, Default)]
pub struct PlanSet {
    global: PlanSettings,
    loaded: HashMap<PathBuf, Arc<Plan>>,
}

impl PlanSet {
    /// Load every plan the flags (`global`) and the sources name.
    pub fn load<'a>(
        global: &'a PlanSettings,
        sources: impl IntoIterator<Item = &'a PlanSettings>,
    ) -> Result<PlanSet, LoadError> {
        let mut set = PlanSet {
            global: global.clone(),
            loaded: HashMap::new(),
        };
        let dirs = std::iter::once(global)
            .chain(sources)
            .filter_map(|s| s.dir.clone());
        for dir in dirs {
            if let std::collections::hash_map::Entry::Vacant(e) = set.loaded.entry(dir) {
                let plan = load(e.key())?;
                e.insert(Arc::new(plan));
            }
        }
        Ok(set)
    }

    /// The plan and rules for a source's settings (or the flags' own, for traffic without a
    /// source); `None` when no plan applies.
    pub fn applied(&self, own: &PlanSettings) -> Option<Arc<Applied>> {
        let dir = own.dir.as_ref().or(self.global.dir.as_ref())?;
        Some(Arc::new(Applied {
            plan: self.loaded.get(dir)?.clone(),
            mode: own.mode.or(self.global.mode).unwrap_or_default(),
            unplanned: own.unplanned.or(self.global.unplanned).unwrap_or_default(),
        }))
    }

    /// Every loaded plan.
    pub fn plans(&self) -> impl Iterator<Item = &Arc<Plan>> {
        self.loaded.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn applied(mode: Mode, unplanned: Unplanned) -> (tempfile::TempDir, Applied) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("order.json"),
            r#"{"x-type":"track","x-event":"Order Completed","required":["userId"],
                "properties":{"properties":{"properties":{"revenue":{"type":"number"}}}}}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("page.json"),
            r#"{"x-type":"page","required":["properties"]}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("home.json"),
            r#"{"x-type":"page","x-name":"Home","required":["name"]}"#,
        )
        .unwrap();
        let plan = Arc::new(load(dir.path()).unwrap());
        (
            dir,
            Applied {
                plan,
                mode,
                unplanned,
            },
        )
    }

    fn judge(a: &Applied, kind: MessageType, name: Option<&str>, m: Value) -> Verdict {
        let fields = m.as_object().unwrap().iter();
        let fields = fields.map(|(k, v)| (Cow::Owned(k.clone()), Cow::Owned(v.to_string())));
        a.judge(
            kind,
            name,
            || Ok(fields.collect()),
            "web",
            &mut Tally::default(),
        )
        .unwrap()
    }

    #[test]
    fn modes_decide_what_a_violation_does() {
        let bad =
            json!({"type":"track","event":"Order Completed","properties":{"revenue":"12,99"}});
        let good = json!({"type":"track","event":"Order Completed","userId":"u","properties":{"revenue":12.99}});
        let t = MessageType::Track;
        let name = Some("Order Completed");
        let (_d, enforce) = applied(Mode::Enforce, Unplanned::Allow);
        assert_eq!(judge(&enforce, t, name, good.clone()), Verdict::Store);
        let Verdict::Reject(reason, v) = judge(&enforce, t, name, bad.clone()) else {
            panic!()
        };
        assert_eq!(v.len(), 2);
        assert!(
            reason.starts_with("violates the tracking plan for track \"Order Completed\":"),
            "{reason}"
        );
        assert!(reason.contains("/properties/revenue: type:"), "{reason}");
        let (_d, tag) = applied(Mode::Tag, Unplanned::Allow);
        assert!(matches!(judge(&tag, t, name, bad.clone()), Verdict::Tag(v) if v.len() == 2));
        let (_d, observe) = applied(Mode::Observe, Unplanned::Allow);
        assert!(matches!(judge(&observe, t, name, bad), Verdict::Observe(v) if v.len() == 2));
    }

    #[test]
    fn unplanned_events_follow_their_own_rule_and_are_not_parsed() {
        let never = || -> Result<Fields, String> { panic!("no schema: no message needed") };
        for (rule, want) in [
            (Unplanned::Allow, "store"),
            (Unplanned::Tag, "tag"),
            (Unplanned::Block, "reject"),
        ] {
            let (_d, a) = applied(Mode::Enforce, rule);
            let mut tally = Tally::default();
            let v = a
                .judge(
                    MessageType::Track,
                    Some("Order Complete"),
                    never,
                    "web",
                    &mut tally,
                )
                .unwrap();
            assert_eq!(tally.unplanned, 1);
            match (want, v) {
                ("store", Verdict::Store) => {}
                ("tag", Verdict::Tag(v)) => assert_eq!(v[0].keyword, "unplanned"),
                ("reject", Verdict::Reject(r, _)) => {
                    assert_eq!(r, "track \"Order Complete\" is not in the tracking plan")
                }
                (w, v) => panic!("{w}: {v:?}"),
            }
        }
    }

    #[test]
    fn a_named_page_schema_wins_over_the_type_schema() {
        let (_d, a) = applied(Mode::Enforce, Unplanned::Block);
        let p = MessageType::Page;
        assert_eq!(a.plan.schema(p, Some("Home")).unwrap().file, "home.json");
        assert_eq!(a.plan.schema(p, Some("Cart")).unwrap().file, "page.json");
        assert_eq!(a.plan.schema(p, None).unwrap().file, "page.json");
        assert!(a.plan.schema(MessageType::Identify, None).is_none());
    }

    #[test]
    fn sources_fall_back_to_the_flags() {
        let (d, _) = applied(Mode::Enforce, Unplanned::Allow);
        let global = PlanSettings {
            dir: Some(d.path().to_path_buf()),
            mode: Some(Mode::Tag),
            unplanned: None,
        };
        let own = PlanSettings {
            mode: Some(Mode::Observe),
            ..Default::default()
        };
        let set = PlanSet::load(&global, [&own]).unwrap();
        let a = set.applied(&own).unwrap();
        assert_eq!((a.mode, a.unplanned), (Mode::Observe, Unplanned::Allow));
        assert_eq!(
            set.applied(&PlanSettings::default()).unwrap().mode,
            Mode::Tag
        );
        assert!(PlanSet::default()
            .applied(&PlanSettings::default())
            .is_none());
    }
}
