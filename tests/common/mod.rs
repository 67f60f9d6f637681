//! What integration tests need: a fresh store on each backend.
//!
//! PostgreSQL tests run against `HERALD_TEST_DATABASE_URL` (a server where
//! the user may create databases); each test gets a database of its own,
//! dropped when the test ends. Where the variable is unset they are skipped,
//! loudly.

#![allow(dead_code)] // each test binary uses a different part of this file

pub mod cli;
pub mod smtp;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use herald::store::{self, DatabaseUrl, Store};
use sqlx::{Connection, Executor, PgConnection};

/// A store on a database that exists for one test only.
pub struct TestStore {
    pub store: Arc<dyn Store>,
    pub url: DatabaseUrl,
    _guard: Guard,
}

enum Guard {
    Sqlite(tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Guard::Postgres { admin_url, name } = self {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs outside any runtime we can block on, so use a thread.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(mut conn) = PgConnection::connect(&admin_url).await {
                        let _ = conn
                            .execute(
                                format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str(),
                            )
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

pub async fn sqlite() -> TestStore {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = DatabaseUrl::new(format!(
        "sqlite://{}",
        dir.path().join("herald.db").display()
    ));
    let store = store::open(&url).await.expect("open sqlite");
    TestStore {
        store,
        url,
        _guard: Guard::Sqlite(dir),
    }
}

/// The PostgreSQL server for tests, if one is configured.
pub fn postgres_url() -> Option<String> {
    match std::env::var("HERALD_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            // Written straight to stderr, past the test harness's capture, so
            // that a skip is seen even when the test "passes".
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "*** SKIPPED: PostgreSQL test (set HERALD_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres to run it) ***"
            );
            None
        }
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh PostgreSQL database, or `None` (skipped) when none is configured.
pub async fn postgres() -> Option<TestStore> {
    let admin_url = postgres_url()?;
    let name = format!(
        "herald_test_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    );
    let mut admin = PgConnection::connect(&admin_url)
        .await
        .expect("connect to HERALD_TEST_DATABASE_URL");
    admin
        .execute(format!("CREATE DATABASE \"{name}\"").as_str())
        .await
        .expect("create test database");
    admin.close().await.ok();
    let mut url = url::Url::parse(&admin_url).expect("HERALD_TEST_DATABASE_URL is a URL");
    url.set_path(&name);
    let url = DatabaseUrl::new(url.to_string());
    let store = store::open(&url).await.expect("open postgres");
    Some(TestStore {
        store,
        url,
        _guard: Guard::Postgres { admin_url, name },
    })
}

/// Runs `sql` (one statement or several) on a connection of its own to
/// the database at `url`, SQLite or PostgreSQL.
pub async fn execute(url: &str, sql: &str) -> Result<(), sqlx::Error> {
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await?;
        sqlx::raw_sql(sql).execute(&mut c).await.map(|_| ())
    } else {
        let mut c = PgConnection::connect(url).await?;
        sqlx::raw_sql(sql).execute(&mut c).await.map(|_| ())
    }
}

/// Writes one test body twice: once against SQLite, once against
/// PostgreSQL. The body is an async fn taking `&dyn Store`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let t = $crate::common::sqlite().await;
                    super::$name(&*t.store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(t) = $crate::common::postgres().await else { return };
                    super::$name(&*t.store).await;
                }
            )*
        }
    };
}

/// Like [`on_both_backends`], for bodies that also take the database URL
/// (to configure herald or open a second connection).
#[macro_export]
macro_rules! with_url {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let t = $crate::common::sqlite().await;
                    super::$name(&*t.store, t.url.expose()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(t) = $crate::common::postgres().await else { return };
                    super::$name(&*t.store, t.url.expose()).await;
                }
            )*
        }
    };
}

/// Copies a folder of the project (templates, rules, campaigns) into a
/// test's working folder.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}
