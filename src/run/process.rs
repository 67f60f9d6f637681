//! What a sending process holds and listens for: on SQLite the one
//! sender's lock, and the signals that ask it to stop.

use anyhow::{bail, Context, Result};

use super::files;
use crate::config::Config;

/// One sender per SQLite database: holding this lock, a sender knows every
/// other claim is a dead one's and can recover it at once.
pub struct SendLock {
    _file: std::fs::File,
}

impl SendLock {
    /// The lock, or an error naming it when another process holds it.
    pub fn take(config: &Config) -> Result<SendLock> {
        match Self::try_take(config)? {
            Some(lock) => Ok(lock),
            None => bail!(
                "another herald is sending from {} ({} is locked); wait for it, or stop it",
                config.database_url,
                Self::path(config).display()
            ),
        }
    }

    /// The lock, or `None` while another process holds it.
    pub fn try_take(config: &Config) -> Result<Option<SendLock>> {
        let path = Self::path(config);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(SendLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).context(format!("cannot lock {}", path.display()))
            }
        }
    }

    fn path(config: &Config) -> std::path::PathBuf {
        let key = files::content_hash(config.database_url.expose());
        config.cache_dir().join(format!("send-{}.lock", &key[..16]))
    }
}

/// Ctrl-C, or SIGTERM (a service manager stopping herald).
pub async fn stopping() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
