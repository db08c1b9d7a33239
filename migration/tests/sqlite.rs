//! The migrations on an in-memory SQLite database (the multi-database runs, PostgreSQL and
//! MySQL included, live in `entities/tests/migrations.rs`).

use migration::{Migrator, MigratorTrait, SchemaManager, TABLES};
use sea_orm_migration::sea_orm::{ConnectOptions, Database};

#[tokio::test]
async fn up_down_up_on_sqlite() {
    let mut opt = ConnectOptions::new("sqlite::memory:");
    opt.max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None);
    let db = Database::connect(opt).await.expect("connect");
    let manager = SchemaManager::new(&db);

    Migrator::up(&db, None).await.expect("up");
    for t in TABLES {
        assert!(manager.has_table(*t).await.unwrap(), "{t} after up");
    }
    Migrator::down(&db, None).await.expect("down");
    for t in TABLES {
        assert!(!manager.has_table(*t).await.unwrap(), "{t} after down");
    }
    Migrator::up(&db, None).await.expect("up again");
    for t in TABLES {
        assert!(manager.has_table(*t).await.unwrap(), "{t} after up again");
    }
    // Recording overrides (nullable: None follows the wider setting).
    for t in ["extension", "call_group"] {
        assert!(manager.has_column(t, "recording").await.unwrap(), "{t}");
    }
    assert!(Migrator::get_pending_migrations(&db)
        .await
        .unwrap()
        .is_empty());
}

#[test]
fn migrations_are_ordered_and_named() {
    let names: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "oldest first");
    assert!(names.iter().all(|n| n.starts_with("m2026")));
}
