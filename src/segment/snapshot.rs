//! The segment snapshot: the whole population as rules see it, cached in a
//! file and reused while the store's data version is unchanged. Reading a
//! million clients through the database driver takes many seconds; the
//! snapshot reads back in a fraction of one, and only the parts of each
//! client the rule reads ([`Fields`]).
//!
//! Layout: one section per column (each a bincode `Vec`), then the header,
//! then the header's offset as the last eight bytes.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::eval::Population;
use super::fields::Fields;
use super::profile::Columns;
use crate::store::{DatabaseUrl, Store, StoreError};

/// Bumped whenever the layout changes, so old files are rebuilt.
const FORMAT: u32 = 3;

/// The part each section after the ids holds, in file order.
const PARTS: [Fields; 7] = [
    Fields::CONTACT,
    Fields::SUITABILITY,
    Fields::LISTS,
    Fields::DATES,
    Fields::CONSENTS,
    Fields::ATTRS,
    Fields::TOUCHES,
];

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Header {
    format: u32,
    data_version: i64,
    timezone: String,
    clients: u64,
    /// Where the id section and each part's section start.
    offsets: Vec<u64>,
}

/// Where a database's snapshot lives in `cache_dir`.
pub fn path(cache_dir: &Path, url: &DatabaseUrl) -> PathBuf {
    let key = blake3::hash(url.expose().as_bytes()).to_hex();
    cache_dir.join(format!("segment-{}.bin", &key[..16]))
}

/// How the population was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Read back from an up-to-date snapshot.
    Snapshot,
    /// Read from the store (and the snapshot written).
    Store,
}

/// The population with at least `fields` filled in: from the snapshot at
/// `file` if it matches the store's current data, otherwise from the store
/// (every field), refreshing the snapshot. A snapshot that cannot be read
/// or written only makes the run slower.
pub async fn population(
    store: &dyn Store,
    tz: chrono_tz::Tz,
    file: &Path,
    fields: Fields,
) -> Result<(Population, Source), StoreError> {
    // Read the version first: a change made while loading leaves the
    // snapshot marked older than the data, so the next run rebuilds it.
    let version = store.data_version().await?;
    if let Some(population) = read(file, version, tz.name(), fields) {
        return Ok((population, Source::Snapshot));
    }
    let population = Population::load(store, tz).await?;
    if let Err(e) = write(file, version, tz.name(), &population.columns) {
        tracing::warn!(file = %file.display(), error = %e, "cannot write the segment snapshot");
    }
    Ok((population, Source::Store))
}

fn read(file: &Path, version: i64, timezone: &str, fields: Fields) -> Option<Population> {
    let header = read_header(file)?;
    let current =
        header.format == FORMAT && header.data_version == version && header.timezone == timezone;
    if !current || header.offsets.len() != PARTS.len() + 1 {
        return None;
    }
    let offset = |part: Fields| {
        let i = PARTS
            .iter()
            .position(|p| *p == part)
            .expect("every part has a section");
        fields.contains(part).then_some(header.offsets[i + 1])
    };
    let ids: Vec<String> = read_section(file, header.offsets[0])?;
    let n = ids.len();
    let mut columns = Columns {
        ids,
        ..Columns::default()
    };
    // Each column is read on its own thread; a failed read leaves `ok` false.
    let ok = std::sync::atomic::AtomicBool::new(true);
    let Columns {
        contact,
        suitability,
        lists,
        dates,
        consents,
        attrs,
        touches,
        ..
    } = &mut columns;
    rayon::scope(|s| {
        let (ok, offset) = (&ok, &offset);
        s.spawn(move |_| fill(contact, file, offset(Fields::CONTACT), n, ok));
        s.spawn(move |_| fill(suitability, file, offset(Fields::SUITABILITY), n, ok));
        s.spawn(move |_| fill(lists, file, offset(Fields::LISTS), n, ok));
        s.spawn(move |_| fill(dates, file, offset(Fields::DATES), n, ok));
        s.spawn(move |_| fill(consents, file, offset(Fields::CONSENTS), n, ok));
        s.spawn(move |_| fill(attrs, file, offset(Fields::ATTRS), n, ok));
        s.spawn(move |_| fill(touches, file, offset(Fields::TOUCHES), n, ok));
    });
    if !ok.into_inner() {
        return None;
    }
    Some(Population::new(columns))
}

/// Reads a part's column, unless the rule does not read it (`offset` is
/// `None`): it must have one entry per client.
fn fill<T: DeserializeOwned>(
    column: &mut Vec<T>,
    file: &Path,
    offset: Option<u64>,
    clients: usize,
    ok: &std::sync::atomic::AtomicBool,
) {
    let Some(at) = offset else { return };
    match read_section::<Vec<T>>(file, at) {
        Some(values) if values.len() == clients => *column = values,
        _ => ok.store(false, std::sync::atomic::Ordering::Relaxed),
    }
}

fn read_header(file: &Path) -> Option<Header> {
    let mut f = File::open(file).ok()?;
    f.seek(SeekFrom::End(-8)).ok()?;
    let mut at = [0u8; 8];
    f.read_exact(&mut at).ok()?;
    f.seek(SeekFrom::Start(u64::from_le_bytes(at))).ok()?;
    bincode::deserialize_from(BufReader::new(f)).ok()
}

fn read_section<T: DeserializeOwned>(file: &Path, offset: u64) -> Option<T> {
    let mut f = File::open(file).ok()?;
    f.seek(SeekFrom::Start(offset)).ok()?;
    bincode::deserialize_from(BufReader::with_capacity(1 << 20, f)).ok()
}

/// Writes to a temporary file and renames it, so a reader never sees half.
fn write(file: &Path, version: i64, timezone: &str, c: &Columns) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    let mut out = Counting {
        inner: BufWriter::with_capacity(1 << 20, File::create(&tmp)?),
        written: 0,
    };
    let mut offsets = Vec::with_capacity(PARTS.len() + 1);
    let mut section = |out: &mut Counting, value: &dyn erased::Section| -> std::io::Result<()> {
        offsets.push(out.written);
        value.write_to(out)
    };
    // The ids, then the order of PARTS.
    section(&mut out, &c.ids)?;
    section(&mut out, &c.contact)?;
    section(&mut out, &c.suitability)?;
    section(&mut out, &c.lists)?;
    section(&mut out, &c.dates)?;
    section(&mut out, &c.consents)?;
    section(&mut out, &c.attrs)?;
    section(&mut out, &c.touches)?;
    let header_at = out.written;
    let header = Header {
        format: FORMAT,
        data_version: version,
        timezone: timezone.to_owned(),
        clients: c.len() as u64,
        offsets,
    };
    bincode::serialize_into(&mut out, &header).map_err(std::io::Error::other)?;
    out.write_all(&header_at.to_le_bytes())?;
    out.flush()?;
    drop(out);
    std::fs::rename(&tmp, file)
}

/// Counts bytes written, for the section offsets.
struct Counting {
    inner: BufWriter<File>,
    written: u64,
}

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Lets one closure write sections of different types.
mod erased {
    pub trait Section {
        fn write_to(&self, out: &mut super::Counting) -> std::io::Result<()>;
    }

    impl<T: serde::Serialize> Section for Vec<T> {
        fn write_to(&self, out: &mut super::Counting) -> std::io::Result<()> {
            bincode::serialize_into(out, self).map_err(std::io::Error::other)
        }
    }
}
