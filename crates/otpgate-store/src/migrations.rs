//! The SQL backends' schemas are embedded in the binary as (version, description, SQL) lists;
//! sqlx's migrator applies them and keeps its bookkeeping table, the same way on each backend.

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AssertSqlSafe, SqlSafeStr};

/// An embedded migration: version, description, SQL.
pub(crate) type Embedded = (i64, &'static str, &'static str);

/// A migrator for `embedded`, in order.
pub(crate) fn migrator(embedded: &'static [Embedded]) -> Migrator {
    let migrations = embedded
        .iter()
        .map(|(version, description, sql)| {
            Migration::new(
                *version,
                Cow::Borrowed(*description),
                MigrationType::Simple,
                AssertSqlSafe(*sql).into_sql_str(),
                false,
            )
        })
        .collect::<Vec<_>>();
    Migrator { migrations: Cow::Owned(migrations), ..Migrator::DEFAULT }
}
