//! Test databases: SQLite always (a WAL file in a temp dir), PostgreSQL when
//! `CTISWITCH_TEST_POSTGRES_URL` is set, MySQL/MariaDB when `CTISWITCH_TEST_MYSQL_URL` is set.
//! Each PostgreSQL/MySQL test database is created fresh under a unique name from the server
//! URL and dropped by [`TestDb::finish`], so tests run in parallel.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

pub const POSTGRES_ENV: &str = "CTISWITCH_TEST_POSTGRES_URL";
pub const MYSQL_ENV: &str = "CTISWITCH_TEST_MYSQL_URL";

pub struct TestDb {
    /// `sqlite`, `postgres` or `mysql`.
    pub kind: &'static str,
    pub url: String,
    pub db: DatabaseConnection,
    server: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// Close the pool and drop the per-test database.
    pub async fn finish(self) {
        let TestDb {
            kind, db, server, ..
        } = self;
        db.close().await.expect("close pool");
        if let Some((server_url, name)) = server {
            let admin = Database::connect(server_url.as_str())
                .await
                .expect("connect to server");
            let sql = match kind {
                "postgres" => format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
                _ => format!("DROP DATABASE IF EXISTS `{name}`"),
            };
            admin.execute_unprepared(&sql).await.expect("drop database");
            admin.close().await.expect("close admin");
        }
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "ctis_test_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        nanos
    )
}

/// `url` with its database path replaced by `name` (query string kept).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[after_scheme..]
        .find('/')
        .map(|i| i + after_scheme)
        .unwrap_or(base.len());
    let mut out = format!("{}/{}", &base[..host_end], name);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("tempdir");
    // A sub-directory that does not exist yet: connect() must create it.
    let path = dir.path().join("data").join("ctiswitch.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let db = entities::connect(&url).await.expect("connect sqlite");
    TestDb {
        kind: "sqlite",
        url,
        db,
        server: None,
        _dir: Some(dir),
    }
}

async fn server(kind: &'static str, server_url: &str) -> TestDb {
    let name = unique_name();
    let admin = Database::connect(server_url)
        .await
        .unwrap_or_else(|e| panic!("connect to {kind} server {server_url}: {e}"));
    let sql = match kind {
        "postgres" => format!("CREATE DATABASE \"{name}\""),
        _ => format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"),
    };
    admin
        .execute_unprepared(&sql)
        .await
        .expect("create database");
    admin.close().await.expect("close admin");
    let url = with_database(server_url, &name);
    let db = entities::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    TestDb {
        kind,
        url,
        db,
        server: Some((server_url.to_owned(), name)),
        _dir: None,
    }
}

/// Fresh, empty databases to run a test on.
pub async fn databases() -> Vec<TestDb> {
    let mut out = vec![sqlite().await];
    match std::env::var(POSTGRES_ENV) {
        Ok(url) if !url.is_empty() => out.push(server("postgres", &url).await),
        _ => println!("skipping postgres: {POSTGRES_ENV} not set"),
    }
    match std::env::var(MYSQL_ENV) {
        Ok(url) if !url.is_empty() => out.push(server("mysql", &url).await),
        _ => println!("skipping mysql: {MYSQL_ENV} not set"),
    }
    out
}

/// Fresh databases with every migration applied.
pub async fn migrated() -> Vec<TestDb> {
    let dbs = databases().await;
    for t in &dbs {
        Migrator::up(&t.db, None)
            .await
            .unwrap_or_else(|e| panic!("[{}] migrate up: {e}", t.kind));
    }
    dbs
}

/// Run `body` on every migrated test database, then drop them.
#[macro_export]
macro_rules! on_each_db {
    (|$db:ident, $kind:ident| $body:block) => {{
        for t in common::migrated().await {
            println!("== {}", t.kind);
            {
                let $db = &t.db;
                let $kind: &str = t.kind;
                let _ = $kind;
                $body
            }
            t.finish().await;
        }
    }};
}
