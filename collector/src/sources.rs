//! Who may send. Sources come from the config file; each has a name, one or more write keys
//! and the browser Origins allowed to use them. An unknown or missing key is refused (401), a
//! disallowed Origin too (403), and CORS headers go only to allowed Origins. With no sources
//! configured the collector runs open (demo mode) and says so at startup.
//!
//! ```toml
//! [[sources]]
//! name = "website"
//! write_keys = ["wk_live_3f9a", "wk_live_old"]   # several keys allow rotation
//! allowed_origins = ["https://shop.example", "*.shop.example"]
//! drop_bots = true                                 # refuse events with a bot user agent
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use anyhow::bail;
use hyper::StatusCode;
use serde::Deserialize;

use crate::ingest::ApiError;
use crate::plan::{Applied, Mode, PlanSet, PlanSettings, Unplanned};

/// The longest write key taken. Segment's are 32 characters.
pub const MAX_WRITE_KEY_BYTES: usize = 256;

/// A source as written in the config file.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub name: String,
    pub write_keys: Vec<String>,
    /// Exact origins (`https://shop.example`) or wildcards (`*.shop.example`,
    /// `https://*.shop.example`). Empty: any origin.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Refuse events whose user agent is flagged as a bot.
    #[serde(default)]
    pub drop_bots: bool,
    /// This source's tracking plan directory, mode and unplanned rule (else the flags').
    #[serde(default)]
    pub tracking_plan: Option<PathBuf>,
    #[serde(default)]
    pub tracking_plan_mode: Option<Mode>,
    #[serde(default)]
    pub tracking_plan_unplanned: Option<Unplanned>,
}

impl SourceConfig {
    pub fn plan_settings(&self) -> PlanSettings {
        PlanSettings {
            dir: self.tracking_plan.clone(),
            mode: self.tracking_plan_mode,
            unplanned: self.tracking_plan_unplanned,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum OriginPattern {
    Exact(String),
    /// `*.suffix`, with or without a scheme.
    Subdomains {
        scheme: Option<String>,
        suffix: String,
    },
}

impl OriginPattern {
    fn parse(s: &str) -> anyhow::Result<OriginPattern> {
        let s = s.trim().trim_end_matches('/').to_ascii_lowercase();
        let (scheme, host) = match s.split_once("://") {
            Some((scheme, host)) => (Some(scheme.to_string()), host.to_string()),
            None => (None, s.clone()),
        };
        if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                bail!("origin pattern {s:?} is not *.domain");
            }
            return Ok(OriginPattern::Subdomains {
                scheme,
                suffix: suffix.to_string(),
            });
        }
        if host.contains('*') {
            bail!("origin pattern {s:?}: only a leading *. wildcard is supported");
        }
        if scheme.is_none() {
            bail!("origin {s:?} needs a scheme, like https://{s}");
        }
        Ok(OriginPattern::Exact(s))
    }

    fn matches(&self, origin: &str) -> bool {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        match self {
            OriginPattern::Exact(o) => *o == origin,
            OriginPattern::Subdomains { scheme, suffix } => {
                let Some((s, host)) = origin.split_once("://") else {
                    return false;
                };
                let host = host.split(':').next().unwrap_or(host);
                scheme.as_deref().is_none_or(|want| want == s)
                    && host.len() > suffix.len() + 1
                    && host.ends_with(&format!(".{suffix}"))
            }
        }
    }
}

/// A configured source.
#[derive(Debug)]
pub struct Source {
    pub name: String,
    pub drop_bots: bool,
    /// The tracking plan its events are checked against.
    pub plan: Option<Arc<Applied>>,
    origins: Vec<OriginPattern>,
}

impl Source {
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.origins.is_empty() || self.origins.iter().any(|p| p.matches(origin))
    }
}

/// All sources, by write key. Empty means open mode.
#[derive(Debug, Default)]
pub struct Sources {
    by_key: HashMap<String, Arc<Source>>,
    all: Vec<Arc<Source>>,
    /// The plan of traffic without a source (open mode).
    pub plan: Option<Arc<Applied>>,
}

impl Sources {
    /// Build and validate: names and keys must be non-empty and unique, origins must parse.
    /// `plans` holds the tracking plans the sources and the flags name.
    pub fn from_config(list: &[SourceConfig], plans: &PlanSet) -> anyhow::Result<Sources> {
        let mut s = Sources {
            plan: plans.applied(&PlanSettings::default()),
            ..Sources::default()
        };
        for c in list {
            if c.name.trim().is_empty() {
                bail!("a source has an empty name");
            }
            if s.all.iter().any(|o| o.name == c.name) {
                bail!("source {:?} is defined twice", c.name);
            }
            if c.write_keys.is_empty() {
                bail!("source {:?} has no write_keys", c.name);
            }
            let origins = c
                .allowed_origins
                .iter()
                .map(|o| OriginPattern::parse(o))
                .collect::<anyhow::Result<Vec<_>>>()
                .map_err(|e| anyhow::anyhow!("source {:?}: {e}", c.name))?;
            let source = Arc::new(Source {
                name: c.name.clone(),
                drop_bots: c.drop_bots,
                plan: plans.applied(&c.plan_settings()),
                origins,
            });
            for key in &c.write_keys {
                if key.trim().is_empty() {
                    bail!("source {:?} has an empty write key", c.name);
                }
                if key.len() > MAX_WRITE_KEY_BYTES {
                    bail!(
                        "a write key of source {:?} is longer than {MAX_WRITE_KEY_BYTES} bytes",
                        c.name
                    );
                }
                if s.by_key.insert(key.clone(), source.clone()).is_some() {
                    // The key itself is a secret of sorts: name the sources, not the key.
                    bail!(
                        "a write key of source {:?} is also used by another source",
                        c.name
                    );
                }
            }
            s.all.push(source);
        }
        Ok(s)
    }

    pub fn is_open(&self) -> bool {
        self.all.is_empty()
    }

    pub fn len(&self) -> usize {
        self.all.len()
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// The source a request belongs to (`None` in open mode), or why it is refused.
    pub fn authorize(
        &self,
        write_key: Option<&str>,
        origin: Option<&str>,
    ) -> Result<Option<Arc<Source>>, ApiError> {
        if write_key.is_some_and(|k| k.len() > MAX_WRITE_KEY_BYTES) {
            // In open mode the key is copied into every event: bound it in every mode.
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                format!("write key is longer than {MAX_WRITE_KEY_BYTES} bytes"),
            ));
        }
        if self.is_open() {
            return Ok(None);
        }
        let Some(key) = write_key.filter(|k| !k.is_empty()) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing write key: send it as the HTTP Basic auth username or as `writeKey` in the body",
            ));
        };
        let Some(source) = self.by_key.get(key) else {
            return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unknown write key"));
        };
        if let Some(origin) = origin {
            if !source.allows_origin(origin) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!(
                        "origin {origin:?} is not allowed to send to source {:?}",
                        source.name
                    ),
                ));
            }
        }
        Ok(Some(source.clone()))
    }

    /// May this Origin get CORS headers? (Any source allows it, or open mode.)
    pub fn cors_allowed(&self, origin: &str) -> bool {
        self.is_open() || self.all.iter().any(|s| s.allows_origin(origin))
    }
}

/// The current sources, replaced whole when the config is reloaded.
#[derive(Default)]
pub struct Policy {
    current: RwLock<Arc<Sources>>,
}

impl Policy {
    pub fn new(sources: Sources) -> Policy {
        Policy {
            current: RwLock::new(Arc::new(sources)),
        }
    }

    pub fn get(&self) -> Arc<Sources> {
        self.current.read().unwrap().clone()
    }

    pub fn replace(&self, sources: Sources) {
        *self.current.write().unwrap() = Arc::new(sources);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources() -> Sources {
        Sources::from_config(
            &[
                SourceConfig {
                    name: "web".into(),
                    write_keys: vec!["k1".into(), "k1-old".into()],
                    allowed_origins: vec!["https://shop.example".into(), "*.shop.example".into()],
                    drop_bots: false,
                    ..Default::default()
                },
                SourceConfig {
                    name: "server".into(),
                    write_keys: vec!["k2".into()],
                    allowed_origins: vec![],
                    drop_bots: true,
                    ..Default::default()
                },
            ],
            &PlanSet::default(),
        )
        .unwrap()
    }

    #[test]
    fn keys_and_origins() {
        let s = sources();
        assert_eq!(s.authorize(Some("k1"), None).unwrap().unwrap().name, "web");
        assert_eq!(
            s.authorize(Some("k1-old"), Some("https://shop.example"))
                .unwrap()
                .unwrap()
                .name,
            "web"
        );
        assert!(s
            .authorize(Some("k1"), Some("https://m.shop.example"))
            .is_ok());
        assert!(s
            .authorize(Some("k1"), Some("http://a.b.shop.example:8080"))
            .is_ok());
        assert_eq!(
            s.authorize(Some("k1"), Some("https://evil.example"))
                .unwrap_err()
                .status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            s.authorize(Some("k1"), Some("https://shop.example.evil.com"))
                .unwrap_err()
                .status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            s.authorize(Some("k1"), Some("https://evilshop.example"))
                .unwrap_err()
                .status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            s.authorize(Some("nope"), None).unwrap_err().message,
            "unknown write key"
        );
        assert!(s
            .authorize(None, None)
            .unwrap_err()
            .message
            .starts_with("missing write key"));
        assert!(
            s.authorize(Some("k2"), Some("https://anything.example"))
                .is_ok(),
            "no origin list: any origin"
        );
        assert!(s.cors_allowed("https://shop.example"));
        assert!(
            s.cors_allowed("https://x.example"),
            "the server source allows any origin"
        );
    }

    #[test]
    fn open_mode_and_validation() {
        let open = Sources::default();
        assert!(open.is_open());
        assert!(open.authorize(None, Some("https://x")).unwrap().is_none());
        let dup = SourceConfig {
            name: "a".into(),
            write_keys: vec!["k".into()],
            allowed_origins: vec![],
            drop_bots: false,
            ..Default::default()
        };
        let err = Sources::from_config(
            &[
                dup.clone(),
                SourceConfig {
                    name: "b".into(),
                    ..dup.clone()
                },
            ],
            &PlanSet::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("also used"), "{err}");
        assert!(
            !err.to_string().contains("\"k\""),
            "the key is not in the message"
        );
        let bad = SourceConfig {
            allowed_origins: vec!["shop.example".into()],
            ..dup.clone()
        };
        assert!(Sources::from_config(&[bad], &PlanSet::default())
            .unwrap_err()
            .to_string()
            .contains("needs a scheme"));
        let empty = SourceConfig {
            write_keys: vec![],
            ..dup
        };
        assert!(Sources::from_config(&[empty], &PlanSet::default())
            .unwrap_err()
            .to_string()
            .contains("no write_keys"));
    }
}
