//! The segment snapshot: the whole population as rules see it, cached in a
//! file and reused while the store's data version is unchanged. Reading a
//! million clients through the database driver takes many seconds; the
//! snapshot reads back in a fraction of one, and only the parts of each
//! client the rule reads ([`Fields`]).
//!
//! Layout: one section per part (each a bincode `Vec`), then the header,
//! then the header's offset as the last eight bytes.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;
use rayon::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::eval::Population;
use super::fields::Fields;
use super::profile::{opt_day, ClientView, Profile, Touch};
use crate::client::types::InvestorType;
use crate::store::{DatabaseUrl, Store, StoreError};

/// Bumped whenever the layout changes, so old files are rebuilt.
const FORMAT: u32 = 2;

/// The sections, in file order: the ids, then one per [`Fields`] part.
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

#[derive(Serialize, Deserialize)]
struct Contact {
    name: String,
    email: Option<String>,
    phone: Option<String>,
    branch: Option<String>,
    advisor: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Suitability {
    investor_type: InvestorType,
    risk_level: u8,
    #[serde(with = "opt_day")]
    risk_assessed_on: Option<NaiveDate>,
    lowest_risk_category: bool,
    assets: f64,
}

#[derive(Serialize, Deserialize)]
struct Lists {
    tags: Vec<String>,
    holdings: Vec<String>,
    watchlist: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct Dates {
    #[serde(with = "opt_day")]
    birthday: Option<NaiveDate>,
    #[serde(with = "opt_day")]
    opened_on: Option<NaiveDate>,
    #[serde(with = "opt_day")]
    last_trade_on: Option<NaiveDate>,
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
    if let Err(e) = write(file, version, tz.name(), &population) {
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
    let ids: Vec<String> = read_section(file, header.offsets[0])?;
    let mut profiles: Vec<Profile> = ids
        .into_iter()
        .map(|id| Profile {
            id,
            ..Profile::default()
        })
        .collect();
    let wanted: Vec<(usize, Fields)> = PARTS
        .iter()
        .enumerate()
        .filter(|(_, part)| fields.contains(**part))
        .map(|(i, p)| (i, *p))
        .collect();
    // Each part reads on its own: they fill different fields.
    let parts: Vec<Option<Part>> = wanted
        .par_iter()
        .map(|(i, part)| read_part(file, header.offsets[i + 1], *part))
        .collect();
    for part in parts {
        part?.apply(&mut profiles)?;
    }
    Some(Population {
        clients: profiles
            .into_iter()
            .map(|p| ClientView(Arc::new(p)))
            .collect(),
    })
}

/// One part of every client, as read from its section.
enum Part {
    Contact(Vec<Contact>),
    Suitability(Vec<Suitability>),
    Lists(Vec<Lists>),
    Dates(Vec<Dates>),
    Consents(Vec<([bool; 3], [bool; 3])>),
    Attrs(Vec<String>),
    Touches(Vec<Vec<Touch>>),
}

fn read_part(file: &Path, offset: u64, part: Fields) -> Option<Part> {
    Some(match part {
        Fields::CONTACT => Part::Contact(read_section(file, offset)?),
        Fields::SUITABILITY => Part::Suitability(read_section(file, offset)?),
        Fields::LISTS => Part::Lists(read_section(file, offset)?),
        Fields::DATES => Part::Dates(read_section(file, offset)?),
        Fields::CONSENTS => Part::Consents(read_section(file, offset)?),
        Fields::ATTRS => Part::Attrs(read_section(file, offset)?),
        _ => Part::Touches(read_section(file, offset)?),
    })
}

impl Part {
    /// Fills the part's fields in; `None` if the section has the wrong length.
    fn apply(self, profiles: &mut [Profile]) -> Option<()> {
        fn zip<T>(
            profiles: &mut [Profile],
            items: Vec<T>,
            set: impl Fn(&mut Profile, T),
        ) -> Option<()> {
            (items.len() == profiles.len()).then(|| {
                for (p, item) in profiles.iter_mut().zip(items) {
                    set(p, item);
                }
            })
        }
        match self {
            Part::Contact(v) => zip(profiles, v, |p, c| {
                (p.name, p.email, p.phone, p.branch, p.advisor) =
                    (c.name, c.email, c.phone, c.branch, c.advisor)
            }),
            Part::Suitability(v) => zip(profiles, v, |p, s| {
                p.investor_type = s.investor_type;
                p.risk_level = s.risk_level;
                p.risk_assessed_on = s.risk_assessed_on;
                p.lowest_risk_category = s.lowest_risk_category;
                p.assets = s.assets;
            }),
            Part::Lists(v) => zip(profiles, v, |p, l| {
                (p.tags, p.holdings, p.watchlist) = (l.tags, l.holdings, l.watchlist)
            }),
            Part::Dates(v) => zip(profiles, v, |p, d| {
                (p.birthday, p.opened_on, p.last_trade_on) =
                    (d.birthday, d.opened_on, d.last_trade_on)
            }),
            Part::Consents(v) => zip(profiles, v, |p, (c, o)| (p.consents, p.opted_out) = (c, o)),
            Part::Attrs(v) => zip(profiles, v, |p, a| p.attrs_json = a),
            Part::Touches(v) => zip(profiles, v, |p, t| p.touches = t),
        }
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
fn write(
    file: &Path,
    version: i64,
    timezone: &str,
    population: &Population,
) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    let mut out = Counting {
        inner: BufWriter::with_capacity(1 << 20, File::create(&tmp)?),
        written: 0,
    };
    let profiles: Vec<&Profile> = population.clients.iter().map(|c| &*c.0).collect();
    let mut offsets = Vec::with_capacity(PARTS.len() + 1);
    let mut section = |out: &mut Counting, value: &dyn erased::Section| -> std::io::Result<()> {
        offsets.push(out.written);
        value.write_to(out)
    };
    section(
        &mut out,
        &profiles.iter().map(|p| p.id.clone()).collect::<Vec<_>>(),
    )?;
    section(
        &mut out,
        &profiles
            .iter()
            .map(|p| Contact {
                name: p.name.clone(),
                email: p.email.clone(),
                phone: p.phone.clone(),
                branch: p.branch.clone(),
                advisor: p.advisor.clone(),
            })
            .collect::<Vec<_>>(),
    )?;
    section(
        &mut out,
        &profiles
            .iter()
            .map(|p| Suitability {
                investor_type: p.investor_type,
                risk_level: p.risk_level,
                risk_assessed_on: p.risk_assessed_on,
                lowest_risk_category: p.lowest_risk_category,
                assets: p.assets,
            })
            .collect::<Vec<_>>(),
    )?;
    section(
        &mut out,
        &profiles
            .iter()
            .map(|p| Lists {
                tags: p.tags.clone(),
                holdings: p.holdings.clone(),
                watchlist: p.watchlist.clone(),
            })
            .collect::<Vec<_>>(),
    )?;
    section(
        &mut out,
        &profiles
            .iter()
            .map(|p| Dates {
                birthday: p.birthday,
                opened_on: p.opened_on,
                last_trade_on: p.last_trade_on,
            })
            .collect::<Vec<_>>(),
    )?;
    section(
        &mut out,
        &profiles
            .iter()
            .map(|p| (p.consents, p.opted_out))
            .collect::<Vec<_>>(),
    )?;
    section(
        &mut out,
        &profiles
            .iter()
            .map(|p| p.attrs_json.clone())
            .collect::<Vec<_>>(),
    )?;
    section(
        &mut out,
        &profiles
            .iter()
            .map(|p| p.touches.clone())
            .collect::<Vec<_>>(),
    )?;
    let header_at = out.written;
    let header = Header {
        format: FORMAT,
        data_version: version,
        timezone: timezone.to_owned(),
        clients: profiles.len() as u64,
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
