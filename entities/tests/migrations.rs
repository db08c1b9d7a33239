//! Migrations up / down / up on every database; SQLite connection rules.

mod common;

use migration::{Migrator, MigratorTrait, SchemaManager, TABLES};
use sea_orm::{ConnectionTrait, DbBackend, EntityTrait, QueryOrder, Statement};

async fn table_presence(db: &sea_orm::DatabaseConnection) -> Vec<(&'static str, bool)> {
    let manager = SchemaManager::new(db);
    let mut out = Vec::new();
    for t in TABLES {
        out.push((*t, manager.has_table(*t).await.expect("has_table")));
    }
    out
}

#[tokio::test]
async fn up_down_up() {
    for t in common::databases().await {
        println!("== {}", t.kind);
        let db = &t.db;
        Migrator::up(db, None).await.expect("up");
        for (table, present) in table_presence(db).await {
            assert!(present, "[{}] {table} missing after up", t.kind);
        }
        assert_eq!(
            Migrator::get_pending_migrations(db)
                .await
                .expect("pending")
                .len(),
            0
        );
        // Up again is a no-op.
        Migrator::up(db, None).await.expect("up twice");
        assert_recording_columns(db, t.kind).await;

        Migrator::down(db, None).await.expect("down");
        for (table, present) in table_presence(db).await {
            assert!(!present, "[{}] {table} still there after down", t.kind);
        }
        assert_eq!(
            Migrator::get_pending_migrations(db)
                .await
                .expect("pending")
                .len(),
            Migrator::migrations().len()
        );

        Migrator::up(db, None).await.expect("up again");
        for (table, present) in table_presence(db).await {
            assert!(present, "[{}] {table} missing after second up", t.kind);
        }
        // Step-wise down and up: the newest migration (intelligent routing rules) only.
        Migrator::down(db, Some(1)).await.expect("down 1");
        let schema = SchemaManager::new(db);
        assert!(!schema.has_table("routing_rule").await.unwrap());
        assert!(schema.has_table("vip_list").await.unwrap());
        assert!(schema.has_table("blacklist").await.unwrap());
        assert!(schema.has_table("setting").await.unwrap());
        assert!(schema.has_table("calllog").await.unwrap());
        Migrator::up(db, None).await.expect("up rest");
        assert!(SchemaManager::new(db)
            .has_table("routing_rule")
            .await
            .unwrap());
        assert_recording_columns(db, t.kind).await;
        t.finish().await;
    }
}

/// The recording overrides: a nullable boolean `recording` on `extension` and `call_group`
/// that stores NULL, true and false as such.
async fn assert_recording_columns(db: &sea_orm::DatabaseConnection, kind: &str) {
    let manager = SchemaManager::new(db);
    for table in ["extension", "call_group"] {
        assert!(
            manager.has_column(table, "recording").await.unwrap(),
            "[{kind}] {table}.recording"
        );
    }
    let backend = db.get_database_backend();
    let (t, f) = match backend {
        DbBackend::Sqlite => ("1", "0"),
        _ => ("TRUE", "FALSE"),
    };
    let now = 1;
    for (number, value) in [("801", "NULL"), ("802", t), ("803", f)] {
        db.execute_unprepared(&format!(
            "INSERT INTO extension (number, password, name, presence, presence_reason, \
             supervisor, direct_callback, recording, created_at, updated_at) \
             VALUES ('{number}', '', '', 'online', '', {f}, {f}, {value}, {now}, {now})"
        ))
        .await
        .unwrap_or_else(|e| panic!("[{kind}] insert extension {number}: {e}"));
    }
    db.execute_unprepared(&format!(
        "INSERT INTO call_group (number, name, strategy, ring_timeout, max_wait, wrap_up, \
         recording, created_at, updated_at) VALUES ('3003', '', 'ring-all', 20, 300, 0, NULL, {now}, {now})"
    ))
    .await
    .unwrap_or_else(|e| panic!("[{kind}] insert call_group: {e}"));
    let got: Vec<(String, Option<bool>)> = entities::extension::Entity::find()
        .order_by_asc(entities::extension::Column::Number)
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.number, e.recording))
        .collect();
    assert_eq!(
        got,
        [
            ("801".to_owned(), None),
            ("802".to_owned(), Some(true)),
            ("803".to_owned(), Some(false))
        ],
        "[{kind}]"
    );
    let g = entities::call_group::Entity::find()
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(g.recording, None, "[{kind}]");
    db.execute_unprepared("DELETE FROM extension")
        .await
        .unwrap();
    db.execute_unprepared("DELETE FROM call_group")
        .await
        .unwrap();
}

async fn pragma(db: &sea_orm::DatabaseConnection, name: &str) -> String {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            format!("PRAGMA {name}"),
        ))
        .await
        .expect("pragma")
        .expect("a row");
    row.try_get_by_index::<String>(0)
        .or_else(|_| row.try_get_by_index::<i64>(0).map(|v| v.to_string()))
        .expect("pragma value")
}

#[tokio::test]
async fn sqlite_file_is_wal_with_foreign_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("deeper").join("switch.db");
    // No mode= in the URL: the file (and its directories) are created anyway.
    let url = format!("sqlite://{}", path.display());
    let db = entities::connect(&url).await.expect("connect");
    Migrator::up(&db, None).await.expect("up");
    assert!(path.exists(), "database file created");
    // Every pooled connection carries the pragmas: check from several at once.
    let mut checks = Vec::new();
    for _ in 0..4 {
        let db = db.clone();
        checks.push(tokio::spawn(async move {
            (
                pragma(&db, "journal_mode").await,
                pragma(&db, "foreign_keys").await,
                pragma(&db, "busy_timeout").await,
            )
        }));
    }
    for c in checks {
        let (mode, fk, busy) = c.await.unwrap();
        assert_eq!(mode.to_lowercase(), "wal");
        assert_eq!(fk, "1");
        assert!(busy.parse::<i64>().unwrap() >= 1000, "busy_timeout {busy}");
    }
    db.close().await.unwrap();

    // The common helper's database is WAL too.
    for t in common::databases().await {
        if t.kind == "sqlite" {
            assert_eq!(pragma(&t.db, "journal_mode").await.to_lowercase(), "wal");
        }
        t.finish().await;
    }
}

#[tokio::test]
async fn sqlite_in_memory_is_one_shared_connection() {
    for url in ["sqlite::memory:", "sqlite://:memory:"] {
        let db = entities::connect(url).await.expect("connect");
        Migrator::up(&db, None).await.expect("up");
        // Many concurrent users see the same (single) database.
        let mut tasks = Vec::new();
        for i in 0..8 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                entities::repo::settings::set(&db, &format!("k{i}"), "v")
                    .await
                    .unwrap();
                entities::repo::settings::all(&db).await.unwrap().len()
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap() >= 1);
        }
        assert_eq!(entities::repo::settings::all(&db).await.unwrap().len(), 8);
        db.close().await.unwrap();
    }
}

#[tokio::test]
async fn bad_sqlite_url_is_invalid() {
    let err = entities::connect("sqlite://x.db?mode=bogus")
        .await
        .expect_err("bad mode");
    assert!(
        matches!(err, entities::Error::Invalid { ref field, .. } if field == "database.url"),
        "{err:?}"
    );
}

#[test]
fn url_rewriting() {
    assert_eq!(
        common::with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        common::with_database("mysql://root@127.0.0.1:3306/test?ssl-mode=disabled", "x"),
        "mysql://root@127.0.0.1:3306/x?ssl-mode=disabled"
    );
    assert_eq!(
        common::with_database("mysql://root@127.0.0.1:3306", "x"),
        "mysql://root@127.0.0.1:3306/x"
    );
}
