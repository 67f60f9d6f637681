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
    pub fn take(config: &Config) -> Result<SendLock> {
        let dir = config.cache_dir();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let key = files::content_hash(config.database_url.expose());
        let path = dir.join(format!("send-{}.lock", &key[..16]));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(SendLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "another herald is sending from {} ({} is locked); wait for it, or stop it",
                config.database_url,
                path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).context(format!("cannot lock {}", path.display()))
            }
        }
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
