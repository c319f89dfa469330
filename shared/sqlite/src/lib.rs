//! How ClinicMeet opens and migrates a SQLite database, shared by the relay's
//! store (`relay/src/store.rs`) and the client's (`shared/client/src/store.rs`)
//! so both keep one set of durability settings and one migration rule.
//!
//! - [`open`]: WAL journal (readers do not block the writer; the relay's admin
//!   subcommands work while it runs), the [`SyncMode`] asked for, foreign keys
//!   enforced, a 5 s busy timeout.
//! - [`migrate`]: migrations are an append-only list of SQL batches; migration
//!   `i` (from 0) brings the schema to version `i + 1`, kept in `PRAGMA
//!   user_version`; each runs in its own transaction together with the version
//!   bump, so a crash leaves the database at the previous version, never
//!   half-migrated.
//!
//! `rusqlite_migration` does the same, but its current release needs rusqlite
//! 0.40 and Rust 1.95 (we are on rusqlite 0.41 and Rust 1.91); this is 40 lines.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, Params, Row};
use uuid::Uuid;

/// How hard SQLite works to keep a commit across power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// fsync on every commit: an acknowledged write survives a power cut.
    Full,
    /// fsync at checkpoints: survives a process crash, not a power cut.
    Normal,
}

/// Opens (creating if needed) the database at `path` and brings its schema up
/// to date with `migrations`.
pub fn open(path: &Path, sync: SyncMode, migrations: &[&str]) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", if sync == SyncMode::Full { "FULL" } else { "NORMAL" })?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    migrate(&mut conn, migrations)?;
    Ok(conn)
}

/// A database in memory with the same schema (tests; nothing touches a disk).
pub fn open_in_memory(migrations: &[&str]) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open_in_memory()?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    migrate(&mut conn, migrations)?;
    Ok(conn)
}

/// Runs the migrations past the database's `user_version`, each in its own
/// transaction with its version bump.
pub fn migrate(conn: &mut Connection, migrations: &[&str]) -> rusqlite::Result<()> {
    let version = schema_version(conn)?;
    for (i, sql) in migrations.iter().enumerate() {
        let v = i as i64 + 1;
        if v > version {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", v)?;
            tx.commit()?;
        }
    }
    Ok(())
}

/// The schema version (`PRAGMA user_version`).
pub fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}

/// Every row of a query, each turned into a `T` by `row`.
pub fn query_all<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    row: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params, row)?;
    rows.collect()
}

/// A UUID stored as text in column `idx`; a malformed one is a conversion error
/// naming the column, not a panic.
pub fn uuid_col(row: &Row<'_>, idx: usize) -> rusqlite::Result<Uuid> {
    let s: String = row.get(idx)?;
    Uuid::parse_str(&s)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = "CREATE TABLE a (id INTEGER PRIMARY KEY, uid TEXT);";
    const V2: &str = "ALTER TABLE a ADD COLUMN note TEXT;";

    #[test]
    fn migrations_run_once_in_order_and_set_the_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        let conn = open(&path, SyncMode::Full, &[V1]).unwrap();
        assert_eq!(schema_version(&conn).unwrap(), 1);
        conn.execute("INSERT INTO a (uid) VALUES ('x')", []).unwrap();
        drop(conn);
        // Reopened with one more migration: only that one runs, the data stays.
        let conn = open(&path, SyncMode::Normal, &[V1, V2]).unwrap();
        assert_eq!(schema_version(&conn).unwrap(), 2);
        let n: i64 = conn.query_row("SELECT COUNT(*) FROM a WHERE note IS NULL", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 1);
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn a_failing_migration_leaves_the_previous_version() {
        let mut conn = open_in_memory(&[V1]).unwrap();
        let bad = "CREATE TABLE b (x); THIS IS NOT SQL;";
        assert!(migrate(&mut conn, &[V1, bad]).is_err());
        assert_eq!(schema_version(&conn).unwrap(), 1);
        let b: i64 =
            conn.query_row("SELECT COUNT(*) FROM sqlite_master WHERE name = 'b'", [], |r| r.get(0)).unwrap();
        assert_eq!(b, 0, "the failed migration's first statement was rolled back");
    }

    #[test]
    fn malformed_uuid_is_an_error_not_a_panic() {
        let conn = open_in_memory(&[V1]).unwrap();
        conn.execute("INSERT INTO a (uid) VALUES ('not-a-uuid'), (?1)", [Uuid::nil().to_string()]).unwrap();
        let all = query_all(&conn, "SELECT uid FROM a ORDER BY id", [], |r| uuid_col(r, 0));
        assert!(matches!(all, Err(rusqlite::Error::FromSqlConversionFailure(0, _, _))));
        let ok = query_all(&conn, "SELECT uid FROM a WHERE id = 2", [], |r| uuid_col(r, 0)).unwrap();
        assert_eq!(ok, vec![Uuid::nil()]);
    }
}
