//! The SQLite schema, embedded in the binary so a fresh file is ready without any tool, and
//! brought up to date with sqlx's migrator (kept for its bookkeeping table, which existing
//! databases already carry).
//!
//! # Numbering
//! Each step has the same number in SQLite and PostgreSQL (`migrations/sqlite/000N_*.sql` and
//! `migrations/postgres/000N_*.sql` make the same change). SQLite used to number four steps
//! apart (idempotency 3, counters 10, shared values 11, refresh reuse grace 12, signing keys 13;
//! PostgreSQL's numbers were already the shared ones), and sqlx refuses a database whose
//! bookkeeping names versions it does not know or holds another step's checksum under a
//! version. So before migrating, a database on the old numbering has its bookkeeping rows
//! renumbered ([`RENUMBERED`]), in one transaction: the SQL of every step is unchanged, so each
//! row keeps its checksum and nothing is applied twice. A database renumbered this way cannot be
//! opened by an older otpgate again (it would see steps it does not know).

use std::path::Path;
use std::time::Duration;

use otpgate_core::StoreError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};

const MIGRATIONS: &[crate::migrations::Embedded] = &[
    (1, "verifications", include_str!("../../migrations/sqlite/0001_verifications.sql")),
    (2, "sessions", include_str!("../../migrations/sqlite/0002_sessions.sql")),
    (3, "counters", include_str!("../../migrations/sqlite/0003_counters.sql")),
    (4, "idempotency", include_str!("../../migrations/sqlite/0004_idempotency.sql")),
    (5, "shared values", include_str!("../../migrations/sqlite/0005_shared_values.sql")),
    (6, "refresh reuse grace", include_str!("../../migrations/sqlite/0006_refresh_reuse_grace.sql")),
    (7, "signing keys", include_str!("../../migrations/sqlite/0007_signing_keys.sql")),
];

/// (old version, description, shared version), in an order where no new version is still held
/// by an old row when it is written (3 leaves before 10 arrives).
const RENUMBERED: &[(i64, &str, i64)] = &[
    (3, "idempotency", 4),
    (10, "counters", 3),
    (11, "shared values", 5),
    (12, "refresh reuse grace", 6),
    (13, "signing keys", 7),
];

/// Creates the file if needed, renumbers an old bookkeeping table, and applies the embedded
/// migrations, on a connection of its own that is closed before the store starts.
pub(super) async fn migrate(path: &Path) -> Result<(), StoreError> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let result = async {
        renumber(&pool).await?;
        let migrator = crate::migrations::migrator(MIGRATIONS);
        migrator.run(&pool).await.map_err(|e| StoreError::Internal(format!("migration failed: {e}")))
    }
    .await;
    pool.close().await;
    result
}

/// Moves the bookkeeping rows of the old numbering to the shared one. Each update matches a row
/// by its old version *and* description, so it does nothing on a new or renumbered database.
async fn renumber(pool: &SqlitePool) -> Result<(), StoreError> {
    let failed = |e: sqlx::Error| StoreError::Internal(format!("migration renumbering failed: {e}"));
    let mut tx = pool.begin().await.map_err(failed)?;
    let bookkept: bool = sqlx::query_scalar::<Sqlite, bool>(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(failed)?;
    if bookkept {
        for (old, description, new) in RENUMBERED {
            sqlx::query("UPDATE _sqlx_migrations SET version = ? WHERE version = ? AND description = ?")
                .bind(new)
                .bind(old)
                .bind(description)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
        }
    }
    tx.commit().await.map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The numbering before SQLite and PostgreSQL were numbered alike (same files, same SQL).
    const OLD: &[crate::migrations::Embedded] = &[
        (1, "verifications", MIGRATIONS[0].2),
        (2, "sessions", MIGRATIONS[1].2),
        (3, "idempotency", MIGRATIONS[3].2),
        (10, "counters", MIGRATIONS[2].2),
        (11, "shared values", MIGRATIONS[4].2),
        (12, "refresh reuse grace", MIGRATIONS[5].2),
        (13, "signing keys", MIGRATIONS[6].2),
    ];

    async fn versions(path: &Path) -> Vec<(i64, String)> {
        let pool = SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        let rows = sqlx::query_as::<Sqlite, (i64, String)>(
            "SELECT version, description FROM _sqlx_migrations ORDER BY version",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        rows
    }

    fn shared() -> Vec<(i64, String)> {
        MIGRATIONS.iter().map(|(v, d, _)| (*v, (*d).to_owned())).collect()
    }

    #[tokio::test]
    async fn a_database_on_the_old_numbering_is_renumbered_and_opens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let pool = SqlitePool::connect_with(SqliteConnectOptions::new().filename(&path).create_if_missing(true))
            .await
            .unwrap();
        crate::migrations::migrator(OLD).run(&pool).await.unwrap();
        pool.close().await;

        let store = super::super::SqliteStore::open(&path).await.expect("an old database opens");
        store.close().await;
        assert_eq!(versions(&path).await, shared());
        // Opening again changes nothing.
        super::super::SqliteStore::open(&path).await.unwrap().close().await;
        assert_eq!(versions(&path).await, shared());
    }

    #[tokio::test]
    async fn a_new_database_gets_the_shared_numbering() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        super::super::SqliteStore::open(&path).await.unwrap().close().await;
        assert_eq!(versions(&path).await, shared());
    }

    #[test]
    fn sqlite_and_postgres_number_each_step_alike() {
        let names = |dir: &str| {
            let mut names: Vec<String> = std::fs::read_dir(format!("{}/migrations/{dir}", env!("CARGO_MANIFEST_DIR")))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            names
        };
        assert_eq!(names("sqlite"), names("postgres"));
    }
}
