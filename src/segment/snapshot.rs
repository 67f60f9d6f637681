//! The segment snapshot: the whole population as rules see it, cached in a
//! file and reused while the store's data version is unchanged. Reading a
//! million clients through the database driver takes many seconds; reading
//! them back from the snapshot takes about one.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::eval::Population;
use super::profile::{ClientView, Profile};
use crate::store::{DatabaseUrl, Store, StoreError};

/// Bumped whenever [`Profile`]'s layout changes, so old files are rebuilt.
const FORMAT: u32 = 1;

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Header {
    format: u32,
    data_version: i64,
    timezone: String,
    clients: u64,
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

/// The population, from the snapshot at `file` if it matches the store's
/// current data, otherwise from the store, refreshing the snapshot. A
/// snapshot that cannot be read or written is only a slower run.
pub async fn population(
    store: &dyn Store,
    tz: chrono_tz::Tz,
    file: &Path,
) -> Result<(Population, Source), StoreError> {
    // Read the version first: a change made while loading leaves the
    // snapshot marked older than the data, so the next run rebuilds it.
    let version = store.data_version().await?;
    let header = Header {
        format: FORMAT,
        data_version: version,
        timezone: tz.name().to_owned(),
        clients: 0,
    };
    if let Some(population) = read(file, &header) {
        return Ok((population, Source::Snapshot));
    }
    let population = Population::load(store, tz).await?;
    if let Err(e) = write(file, &header, &population) {
        tracing::warn!(file = %file.display(), error = %e, "cannot write the segment snapshot");
    }
    Ok((population, Source::Store))
}

fn read(file: &Path, expected: &Header) -> Option<Population> {
    let mut reader = BufReader::with_capacity(1 << 20, File::open(file).ok()?);
    let header: Header = bincode::deserialize_from(&mut reader).ok()?;
    let same = header.format == expected.format
        && header.data_version == expected.data_version
        && header.timezone == expected.timezone;
    if !same {
        return None;
    }
    let mut clients = Vec::with_capacity(header.clients as usize);
    for _ in 0..header.clients {
        let profile: Profile = bincode::deserialize_from(&mut reader).ok()?;
        clients.push(ClientView(Arc::new(profile)));
    }
    Some(Population { clients })
}

/// Writes to a temporary file and renames it, so a reader never sees half.
fn write(file: &Path, header: &Header, population: &Population) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
    let header = Header {
        format: header.format,
        data_version: header.data_version,
        timezone: header.timezone.clone(),
        clients: population.clients.len() as u64,
    };
    let io = |e: bincode::Error| std::io::Error::other(e.to_string());
    bincode::serialize_into(&mut out, &header).map_err(io)?;
    for client in &population.clients {
        bincode::serialize_into(&mut out, &*client.0).map_err(io)?;
    }
    out.flush()?;
    drop(out);
    std::fs::rename(&tmp, file)
}
