//! Crash recovery for capture files. A crash can leave `.avro.tmp` files whose last block is
//! torn. Each is salvaged: its readable records are rewritten to the final `.avro` name (or the
//! file is renamed, when whole). The highest `SequenceNumber` found (in salvaged files and the
//! newest finished file) tells the sink where to resume in the spool, so each event lands in
//! the capture output exactly once. Files are read and rewritten record by record: a 300 MB
//! file costs about one Avro block of memory, not 300 MB.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::Context;
use apache_avro::types::Value;
use apache_avro::{Codec, Reader, Writer};

use super::file::WholeWrites;
use super::schema::{sequence_number, SCHEMA};

/// All files under `dir` ending in `suffix`, sorted by path (which sorts by time).
pub fn find_files(dir: &Path, suffix: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let e = e?;
            let path = e.path();
            if e.file_type()?.is_dir() {
                stack.push(path);
            } else if path.to_str().is_some_and(|p| p.ends_with(suffix)) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Call `each` with every record that can be read, in order; returns whether the file was
/// whole (false: it ends in a torn block, or has not even a header).
pub fn for_each_record(
    path: &Path,
    mut each: impl FnMut(Value) -> anyhow::Result<()>,
) -> anyhow::Result<bool> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = match Reader::new(BufReader::new(file)) {
        Ok(r) => r,
        // Not even a header: nothing in it was ever fsync'd as a block.
        Err(_) => return Ok(false),
    };
    for v in reader {
        match v {
            Ok(v) => each(v)?,
            Err(_) => return Ok(false),
        }
    }
    Ok(true)
}

/// Read every record that can be read; also say whether the file was whole. Holds the whole
/// file in memory: for tests and small files; see [`for_each_record`].
pub fn read_records(path: &Path) -> anyhow::Result<(Vec<Value>, bool)> {
    let mut values = Vec::new();
    let whole = for_each_record(path, |v| {
        values.push(v);
        Ok(())
    })?;
    Ok((values, whole))
}

/// How many records, the highest sequence number among them, and whether the file is whole.
fn survey(path: &Path) -> anyhow::Result<(usize, Option<u64>, bool)> {
    let (mut count, mut max) = (0, None::<u64>);
    let whole = for_each_record(path, |v| {
        count += 1;
        if let Some(s) = sequence_number(&v) {
            max = Some(max.map_or(s, |m| m.max(s)));
        }
        Ok(())
    })?;
    Ok((count, max, whole))
}

/// Outcome of recovery.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Sequence number after the highest one found in any capture file.
    pub resume_at: Option<u64>,
    pub salvaged_files: usize,
    pub salvaged_records: usize,
}

/// Salvage `.avro.tmp` files under `dir` and find where the capture output ends.
pub fn recover(dir: &Path, codec: Codec) -> anyhow::Result<Recovered> {
    let mut out = Recovered::default();
    let mut max_seq: Option<u64> = None;
    let mut note = |seq: Option<u64>| {
        if let Some(s) = seq {
            max_seq = Some(max_seq.map_or(s, |m| m.max(s)));
        }
    };
    for stale in find_files(dir, ".avro.recovering")? {
        std::fs::remove_file(stale)?;
    }
    for tmp in find_files(dir, ".avro.tmp")? {
        let final_path = PathBuf::from(tmp.to_str().unwrap().strip_suffix(".tmp").unwrap());
        let (count, seq, whole) = survey(&tmp)?;
        note(seq);
        if count == 0 {
            std::fs::remove_file(&tmp)?;
        } else if whole {
            std::fs::rename(&tmp, &final_path)?;
        } else {
            rewrite(&tmp, &final_path, codec)?;
            std::fs::remove_file(&tmp)?;
        }
        if count > 0 {
            out.salvaged_files += 1;
            out.salvaged_records += count;
            tracing::info!(file = %final_path.display(), records = count, torn = !whole, "recovered capture file left by a crash");
        }
    }
    if let Some(newest) = find_files(dir, ".avro")?.pop() {
        note(survey(&newest)?.1);
    }
    out.resume_at = max_seq.map(|s| s + 1);
    Ok(out)
}

/// Records written to a new file before each flush: about one block.
const RECORDS_PER_BLOCK: usize = 1000;

/// Copy the readable records of a torn `from` to `final_path`, record by record.
fn rewrite(from: &Path, final_path: &Path, codec: Codec) -> anyhow::Result<()> {
    let mut partial = final_path.as_os_str().to_owned();
    partial.push(".recovering");
    let partial = PathBuf::from(partial);
    let mut w = Writer::with_codec(&SCHEMA, WholeWrites::new(File::create(&partial)?), codec);
    let mut n = 0;
    for_each_record(from, |v| {
        w.append(v)?;
        n += 1;
        if n % RECORDS_PER_BLOCK == 0 {
            w.flush()?;
        }
        Ok(())
    })?;
    w.into_inner()?.into_file().sync_all()?;
    std::fs::rename(&partial, final_path)?;
    Ok(())
}
