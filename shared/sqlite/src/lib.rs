//! How ClinicMeet opens and migrates a SQLite database, shared by the relay's
//! store (`relay/src/store.rs`) and the client's (`shared/client/src/store.rs`)
//! so both keep one set of durability settings and one migration rule.
//!
//! - [`open`]: WAL journal (readers do not block the writer; the relay's admin
//!   subcommands work while it runs), the [`SyncMode`] asked for, foreign keys
//!   enforced, a 5 s busy timeout, `secure_delete` (deleted rows — purged chat,
//!   names, addresses — are overwritten with zeros, not left in free pages), and
//!   a file readable by its owner only (0600 on Unix; SQLite gives the `-wal`
//!   and `-shm` files the database file's mode).
//! - [`private_dir`]: the directory that holds a database and its secrets,
//!   0700 on Unix (tightened if it exists with looser rights).
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
    owner_only(path).map_err(|e| io_error(path, e))?;
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", if sync == SyncMode::Full { "FULL" } else { "NORMAL" })?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "secure_delete", "ON")?;
    migrate(&mut conn, migrations)?;
    Ok(conn)
}

/// A database in memory with the same schema (tests; nothing touches a disk).
pub fn open_in_memory(migrations: &[&str]) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open_in_memory()?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "secure_delete", "ON")?;
    migrate(&mut conn, migrations)?;
    Ok(conn)
}

/// Creates `dir` (and its parents) for the owner only: mode 0700 on Unix, and
/// an existing directory with looser rights is tightened.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Makes the database file (created empty if missing) and any journal files
/// next to it readable by the owner only.
fn owner_only(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(path)?;
        for suffix in ["", "-wal", "-shm"] {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            match std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn io_error(path: &Path, e: std::io::Error) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
        Some(format!("{}: {e}", path.display())),
    )
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

    #[cfg(unix)]
    #[test]
    fn databases_and_their_directory_are_private_and_deletes_overwrite() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700, "an existing directory is tightened");
        // A database left world-readable by an older build is tightened too.
        let path = dir.join("t.sqlite3");
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let conn = open(&path, SyncMode::Full, &[V1]).unwrap();
        conn.execute("INSERT INTO a (uid) VALUES ('patient')", []).unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let p = dir.join(format!("t.sqlite3{suffix}"));
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
        let secure: i64 = conn.pragma_query_value(None, "secure_delete", |r| r.get(0)).unwrap();
        assert_eq!(secure, 1);
        // A deleted row's text is gone from the file, not left in a free page.
        conn.execute("DELETE FROM a", []).unwrap();
        conn.pragma_update(None, "wal_checkpoint", "TRUNCATE").unwrap();
        drop(conn);
        let bytes = std::fs::read(&path).unwrap();
        assert!(!bytes.windows(7).any(|w| w == b"patient"), "deleted text still in the file");
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
