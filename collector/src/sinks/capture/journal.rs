//! The upload journal: before a capture file is uploaded, its object name, spool sequence
//! range and size are written durably to `upload.json` in the staging directory. A process
//! killed during the upload cannot know whether the store completed it; at the next start the
//! journal says which object to ask about. If it is there, whole, its records are not sent
//! again (no duplicate file): resume at `end_seq`; if not, resume at `first_seq` and rebuild
//! them from the spool (nothing lost). Uploads go one at a time and in order, so everything
//! before `first_seq` is stored either way.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

const FILE: &str = "upload.json";

/// The upload last started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    /// Object name relative to the destination prefix.
    pub name: String,
    /// Where the spool resumes if the object is missing.
    pub first_seq: u64,
    /// Where the spool resumes if the object is there.
    pub end_seq: u64,
    pub bytes: u64,
}

impl Upload {
    /// The time in the object name `.../{YYYY}/{MM}/{DD}/{HH}/{mm}/{ss}.avro`.
    pub fn time(&self) -> Option<DateTime<Utc>> {
        let stem = self.name.strip_suffix(".avro")?;
        let parts: Vec<&str> = stem.rsplitn(7, '/').collect();
        let [s, mi, h, d, mo, y, _] = parts.as_slice() else {
            return None;
        };
        let text = format!("{y}/{mo}/{d}/{h}/{mi}/{s}");
        chrono::NaiveDateTime::parse_from_str(&text, "%Y/%m/%d/%H/%M/%S")
            .ok()
            .map(|t| t.and_utc())
    }
}

/// Record `upload` durably (written aside, fsync'd, renamed) before the upload starts.
pub fn write(dir: &Path, upload: &Upload) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(FILE);
    let aside = dir.join(format!("{FILE}.new"));
    let mut f =
        std::fs::File::create(&aside).with_context(|| format!("creating {}", aside.display()))?;
    f.write_all(&serde_json::to_vec(upload)?)?;
    f.sync_all()?;
    std::fs::rename(&aside, &path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// The upload last started, if any.
pub fn read(dir: &Path) -> anyhow::Result<Option<Upload>> {
    let path = dir.join(FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("reading the upload journal {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_names_its_time() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let u = Upload {
            name: "ns/hub/0/2026/12/04/10/05/07.avro".into(),
            first_seq: 10,
            end_seq: 20,
            bytes: 999,
        };
        write(dir.path(), &u).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(u.clone()));
        assert_eq!(u.time().unwrap().to_rfc3339(), "2026-12-04T10:05:07+00:00");
        std::fs::write(dir.path().join(FILE), b"{").unwrap();
        assert!(read(dir.path()).is_err());
    }
}
