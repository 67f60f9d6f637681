//! The files a run is planned from (campaign, rule, templates, partials)
//! and their hashes: what an approval covers, so that a file changed after
//! approval stops the run until it is approved again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::campaign::{Audience, Campaign};
use crate::config::Config;
use crate::store::runs::hex;

/// Path (relative to the config folder) → SHA-256 of the file.
pub type FileHashes = BTreeMap<String, String>;

/// The files `campaign` is rendered and selected from.
pub fn campaign_files(campaign: &Campaign, config: &Config) -> Vec<PathBuf> {
    let mut files = vec![campaign.path.clone()];
    files.extend(campaign.seminar_path());
    if let Audience::Rule(rule) = &campaign.audience {
        files.push(crate::segment::rule::resolve(
            rule,
            &config.base_dir.join("rules"),
        ));
    }
    let templates = config.base_dir.join("templates");
    for dir in [
        templates.join(&campaign.templates),
        templates.join("partials"),
    ] {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            files.extend(
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_file()),
            );
        }
    }
    files.sort();
    files
}

/// Each file's hash; a file that cannot be read hashes as `missing`.
pub fn hash_files(files: &[PathBuf], base: &Path) -> FileHashes {
    files
        .iter()
        .map(|p| {
            let name = p.strip_prefix(base).unwrap_or(p).display().to_string();
            let hash = std::fs::read(p)
                .map(|bytes| hex(&Sha256::digest(bytes)))
                .unwrap_or_else(|_| "missing".to_owned());
            (name, hash)
        })
        .collect()
}

pub fn content_hash(content: &str) -> String {
    hex(&Sha256::digest(content.as_bytes()))
}

/// One hash over the content snapshot and every file.
pub fn fingerprint(content_hash: &str, files: &FileHashes) -> String {
    let mut h = Sha256::new();
    h.update(content_hash.as_bytes());
    for (name, hash) in files {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(hash.as_bytes());
        h.update([0]);
    }
    hex(&h.finalize())
}

/// The files whose hash differs between `then` and `now`.
pub fn changed(then: &FileHashes, now: &FileHashes) -> Vec<String> {
    then.keys()
        .chain(now.keys().filter(|k| !then.contains_key(*k)))
        .filter(|k| then.get(*k) != now.get(*k))
        .cloned()
        .collect()
}
