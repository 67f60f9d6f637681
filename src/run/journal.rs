//! The send journal: how a dispatcher sends without waiting for the
//! database between two messages, and still never sends one twice.
//!
//! A dispatcher marks a chunk of deliveries `sending` in one statement,
//! then, for each, appends `start` to a local file before the message
//! leaves and `done` (the outcome) after; the outcomes reach the database
//! in groups, in the background. Appending is one `write(2)` with no fsync:
//! what a killed process wrote is in the kernel's cache and survives it.
//!
//! Each dispatcher holds an exclusive lock on its journal while it lives.
//! A journal whose lock is free belongs to a dispatcher that died: whoever
//! takes the lock settles it (`Store::settle_journal`): outcomes recorded,
//! sends started without an outcome uncertain (at most one per slot), the
//! rest back to the queue. A journal is a lock file (`<stem>.lock`, which
//! holds the owner) and one segment file per chunk (`<stem>.<n>.log`),
//! removed once every outcome in it is recorded.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::store::runs::{DeliveryUpdate, JournalReplay, Settled};
use crate::store::Store;

/// One line of a segment, as written.
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum Line<'a> {
    /// The message is about to leave.
    Start(i64),
    /// Its outcome, not yet recorded in the database.
    Done(&'a DeliveryUpdate),
}

/// One line of a segment, as read back.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum ReadLine {
    Start(i64),
    Done(Box<DeliveryUpdate>),
}

/// A living dispatcher's journal. Dropping it frees the lock; a journal
/// left with segments is then settled by the next dispatcher to look.
pub struct Journal {
    dir: PathBuf,
    stem: String,
    /// Held locked for the journal's life.
    _lock: File,
    next: AtomicU64,
}

impl Journal {
    /// Opens `owner`'s journal in `dir`, locked. The lock file gets its
    /// name only once locked, so no settler ever takes it for a dead one's.
    pub fn open(dir: &Path, owner: &str) -> io::Result<Journal> {
        fs::create_dir_all(dir)?;
        let stem: String = owner
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let new = dir.join(format!("{stem}.lock.new"));
        let mut lock = private().write(true).truncate(true).open(&new)?;
        lock.try_lock().map_err(io::Error::other)?;
        lock.write_all(owner.as_bytes())?;
        fs::rename(&new, dir.join(format!("{stem}.lock")))?;
        Ok(Journal {
            dir: dir.to_owned(),
            stem,
            _lock: lock,
            next: AtomicU64::new(0),
        })
    }

    /// A new segment for `ids`, the deliveries about to be marked.
    pub fn segment(&self, ids: usize) -> io::Result<Segment> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("{}.{n}.log", self.stem));
        let file = private().create_new(true).append(true).open(&path)?;
        Ok(Segment {
            path,
            file: Mutex::new(file),
            open: AtomicUsize::new(ids),
        })
    }

    /// Ends the journal of a dispatcher that stopped cleanly: every send
    /// it started has its outcome recorded, and what it marked and never
    /// started has been given back.
    pub fn close(self) -> io::Result<()> {
        for path in segments(&self.dir, &self.stem)? {
            remove(&path)?;
        }
        remove(&self.dir.join(format!("{}.lock", self.stem)))
    }
}

/// The journal of one chunk of deliveries.
pub struct Segment {
    path: PathBuf,
    file: Mutex<File>,
    /// Deliveries whose outcome is not yet recorded.
    open: AtomicUsize,
}

impl Segment {
    /// Before the message of delivery `id` leaves.
    pub fn started(&self, id: i64) -> io::Result<()> {
        self.append(&Line::Start(id))
    }

    /// After: the outcome, until the database has it.
    pub fn done(&self, update: &DeliveryUpdate) -> io::Result<()> {
        self.append(&Line::Done(update))
    }

    /// `n` of its deliveries are settled (their outcome recorded, or they
    /// were never marked): the segment goes once all are.
    pub fn settled(&self, n: usize) -> io::Result<()> {
        if self.open.fetch_sub(n, Ordering::AcqRel) == n {
            remove(&self.path)?;
        }
        Ok(())
    }

    fn append(&self, line: &Line<'_>) -> io::Result<()> {
        let mut buf = serde_json::to_vec(line).map_err(io::Error::other)?;
        buf.push(b'\n');
        // One write: a process killed mid-way cannot leave half a line
        // before a whole one.
        self.file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_all(&buf)
    }
}

/// Settles every journal in `dir` whose dispatcher is gone. Safe to run
/// from any number of dispatchers at once: a journal is settled by the
/// one that holds its lock, and settling twice changes nothing.
pub async fn settle_left_behind(store: &dyn Store, dir: &Path) -> anyhow::Result<Settled> {
    let mut total = Settled::default();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(total),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let path = entry?.path();
        let Some(stem) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".lock"))
        else {
            continue;
        };
        // The lock is held until the journal is gone.
        let Some((_lock, owner)) = take_dead(&path)? else {
            continue;
        };
        let files = segments(dir, stem)?;
        let replay = replay(&files)?;
        let settled = store.settle_journal(&owner, &replay).await?;
        for f in &files {
            remove(f)?;
        }
        remove(&path)?;
        total += settled;
    }
    Ok(total)
}

/// The lock (held) and owner of a journal whose dispatcher is gone; `None`
/// if it lives, or another settler got there first.
fn take_dead(path: &Path) -> io::Result<Option<(File, String)>> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => return Ok(None),
        Err(fs::TryLockError::Error(e)) => return Err(e),
    }
    let mut owner = String::new();
    io::Read::read_to_string(&mut file, &mut owner)?;
    Ok(Some((file, owner)))
}

/// The segment files of the journal `stem`, in the order they were made.
fn segments(dir: &Path, stem: &str) -> io::Result<Vec<PathBuf>> {
    let prefix = format!("{stem}.");
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let n = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".log"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(n) = n {
            out.push((n, path));
        }
    }
    out.sort();
    Ok(out.into_iter().map(|(_, p)| p).collect())
}

/// What the segments say, read in order: a delivery sent again (after
/// falling through to another channel) counts by its latest send. A line
/// that does not parse can only be the last one a dying process wrote.
fn replay(files: &[PathBuf]) -> io::Result<JournalReplay> {
    let mut done: HashMap<i64, DeliveryUpdate> = HashMap::new();
    let mut out = JournalReplay::default();
    for path in files {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for line in io::BufReader::new(file).split(b'\n') {
            match serde_json::from_slice::<ReadLine>(&line?) {
                Ok(ReadLine::Start(id)) => {
                    out.started.insert(id);
                    done.remove(&id);
                }
                Ok(ReadLine::Done(u)) => {
                    done.insert(u.id, *u);
                }
                Err(_) => {}
            }
        }
    }
    out.done = done.into_values().collect();
    Ok(out)
}

/// Options for a new journal file: it holds what the messages said and
/// to whom, so only herald's own user may read it.
fn private() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// Removes a file another settler may have removed first.
fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::runs::{ArchiveDictionary, ArchiveEntry, DeliveryState};

    fn journal_files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[cfg(unix)]
    #[test]
    fn only_herald_s_user_may_read_a_journal() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path(), "me").unwrap();
        journal.segment(1).unwrap();
        for name in ["me.lock", "me.0.log"] {
            let mode = fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
    }

    #[test]
    fn a_living_journal_is_not_taken_for_a_dead_one() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path(), "host:1:2:0").unwrap();
        let lock = dir.path().join("host_1_2_0.lock");
        assert!(take_dead(&lock).unwrap().is_none());
        drop(journal);
        let (_held, owner) = take_dead(&lock).unwrap().expect("its dispatcher is gone");
        assert_eq!(owner, "host:1:2:0");
    }

    #[test]
    fn a_segment_goes_once_every_outcome_in_it_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path(), "me").unwrap();
        let segment = journal.segment(3).unwrap();
        segment.started(1).unwrap();
        segment.settled(1).unwrap();
        segment.settled(1).unwrap();
        assert_eq!(journal_files(dir.path()), ["me.0.log", "me.lock"]);
        segment.settled(1).unwrap();
        assert_eq!(journal_files(dir.path()), ["me.lock"]);
        journal.segment(1).unwrap();
        journal.close().unwrap();
        assert!(journal_files(dir.path()).is_empty());
    }

    /// Segments are read in the order they were made (the tenth after the
    /// ninth), so a delivery sent again counts by its latest send; half a
    /// line, all a killed process can leave, is skipped.
    #[test]
    fn replay_follows_the_order_of_sends() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path(), "me").unwrap();
        let segments: Vec<Segment> = (0..11).map(|_| journal.segment(1).unwrap()).collect();
        let mut fell_through = DeliveryUpdate::new(7, DeliveryState::Queued);
        fell_through.error = Some("5.1.1".into());
        segments[9].started(7).unwrap();
        segments[9].done(&fell_through).unwrap();
        segments[10].started(7).unwrap();
        segments[3].started(8).unwrap();
        let mut sent = DeliveryUpdate::new(8, DeliveryState::Sent);
        let at = chrono::Utc::now();
        let dictionary = ArchiveDictionary::new("{\"消息\":0}".as_bytes().to_vec());
        let record = "{\"消息\":1}".to_owned();
        let archived = ArchiveEntry::new(8, 1, "000123".into(), at, record, Some(&dictionary));
        sent.archive = Some(archived.clone());
        segments[3].done(&sent).unwrap();
        segments[4].started(9).unwrap();
        let mut torn = OpenOptions::new()
            .append(true)
            .open(&segments[4].path)
            .unwrap();
        torn.write_all(b"{\"done\":{\"id\":9,\"sta").unwrap();

        let replay = replay(&super::segments(dir.path(), "me").unwrap()).unwrap();
        assert_eq!(replay.started, [7, 8, 9].into());
        let done: Vec<(i64, DeliveryState)> = replay.done.iter().map(|u| (u.id, u.state)).collect();
        assert_eq!(done, [(8, DeliveryState::Sent)]);
        let back = replay.done[0].archive.clone().expect("the archive record");
        assert_eq!(
            (&back.body, &back.dictionary),
            (&archived.body, &Some(dictionary.hash))
        );
    }
}
