//! The accounts database's schema and its upgrades.

use super::AccountError;
use rusqlite::{Connection, OptionalExtension};

/// The accounts database's version, in SQLite's `user_version` (0: a new
/// file, or one written before versions were kept).
pub const SCHEMA_VERSION: i64 = 5;

/// Today's schema, for a new file.
const SCHEMA: &str = "
             CREATE TABLE IF NOT EXISTS user (
                 id INTEGER PRIMARY KEY,
                 name TEXT NOT NULL UNIQUE,
                 role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
                 password_hash TEXT NOT NULL,
                 created_at INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS setup_token (
                 hash BLOB NOT NULL,
                 expires_at INTEGER NOT NULL
             );
             -- Only a hash of the session id is stored: a copy of this file
             -- does not let anyone act as a logged-in user.
             CREATE TABLE IF NOT EXISTS session (
                 id_hash BLOB PRIMARY KEY,
                 user_id INTEGER NOT NULL REFERENCES user(id) ON DELETE CASCADE,
                 csrf TEXT NOT NULL,
                 created_at INTEGER NOT NULL,
                 expires_at INTEGER NOT NULL,
                 ip TEXT,
                 -- Made through the cloud's relay (remote access): usable
                 -- only there, as a local session is only locally.
                 remote INTEGER NOT NULL DEFAULT 0
             );
             CREATE TABLE IF NOT EXISTS audit (
                 id INTEGER PRIMARY KEY,
                 at INTEGER NOT NULL,
                 user TEXT,
                 action TEXT NOT NULL,
                 detail TEXT NOT NULL
             );
             CREATE INDEX IF NOT EXISTS audit_at ON audit (at);
             -- Keys the server keeps for itself (the device cookie key).
             CREATE TABLE IF NOT EXISTS server_key (
                 name TEXT PRIMARY KEY,
                 value BLOB NOT NULL
             );
             CREATE TABLE IF NOT EXISTS recovery_code (
                 user_id INTEGER NOT NULL REFERENCES user(id) ON DELETE CASCADE,
                 hash BLOB NOT NULL
             );
             -- API tokens: like sessions, only a hash is kept. A token acts
             -- with at most its own role and camera list, never more than its
             -- user's (checked at every use, so demoting a user demotes
             -- their tokens).
             CREATE TABLE IF NOT EXISTS api_token (
                 id INTEGER PRIMARY KEY,
                 user_id INTEGER NOT NULL REFERENCES user(id) ON DELETE CASCADE,
                 name TEXT NOT NULL,
                 hash BLOB NOT NULL UNIQUE,
                 role TEXT NOT NULL,
                 cameras TEXT,
                 created_at INTEGER NOT NULL,
                 last_used_at INTEGER
             );
             -- Share links: a clip or a camera's live view for someone
             -- without an account, until it expires or is revoked. Only a
             -- hash of the link's token is kept.
             CREATE TABLE IF NOT EXISTS share (
                 id INTEGER PRIMARY KEY,
                 token_hash BLOB NOT NULL UNIQUE,
                 kind TEXT NOT NULL CHECK (kind IN ('clip', 'live')),
                 camera TEXT NOT NULL,
                 start_90k INTEGER,
                 end_90k INTEGER,
                 note TEXT NOT NULL,
                 created_by TEXT NOT NULL,
                 created_at INTEGER NOT NULL,
                 expires_at INTEGER NOT NULL,
                 revoked_at INTEGER,
                 views INTEGER NOT NULL DEFAULT 0
             );
             -- Technicians' access (docs/design/installers.md): granted here,
             -- by an admin of this recorder, for a time and a scope. A
             -- technician is a `user` row with `technician_org` set, whose
             -- sessions are bound to one grant and end with it.
             CREATE TABLE IF NOT EXISTS access_grant (
                 id INTEGER PRIMARY KEY,
                 user_id INTEGER NOT NULL REFERENCES user(id) ON DELETE CASCADE,
                 scopes TEXT NOT NULL,
                 cameras TEXT,
                 reason TEXT NOT NULL,
                 approved_by TEXT NOT NULL,
                 approved_at INTEGER NOT NULL,
                 expires_at INTEGER NOT NULL,
                 revoked_at INTEGER,
                 revoked_by TEXT,
                 enroll_hash BLOB,
                 enroll_expires INTEGER,
                 first_used_at INTEGER,
                 request_id INTEGER,
                 end_noted INTEGER NOT NULL DEFAULT 0
             );
             -- Requests for access: from the cloud (a technician of a linked
             -- installer) or typed here. Asking grants nothing.
             CREATE TABLE IF NOT EXISTS access_request (
                 id INTEGER PRIMARY KEY,
                 at INTEGER NOT NULL,
                 technician TEXT NOT NULL,
                 org TEXT NOT NULL,
                 scopes TEXT NOT NULL,
                 cameras TEXT,
                 hours INTEGER NOT NULL,
                 reason TEXT NOT NULL,
                 source TEXT NOT NULL,
                 state TEXT NOT NULL DEFAULT 'waiting',
                 decided_by TEXT,
                 decided_at INTEGER,
                 grant_id INTEGER
             );
             -- The lists of grants reported to the cloud, numbered, the last
             -- few: a quote of one the cloud confirmed storing is a mirror
             -- lagging behind; anything else is not this recorder's word.
             CREATE TABLE IF NOT EXISTS cloud_grant_report (
                 generation INTEGER PRIMARY KEY,
                 grants TEXT NOT NULL,
                 at INTEGER NOT NULL,
                 stored INTEGER NOT NULL DEFAULT 0,
                 stored_conn INTEGER
             );";

/// One function per version step: `UPGRADES[v]` takes version `v` to
/// `v + 1`. Step 0 brings a file from before versions (whatever columns it
/// had gained by then) to version 1: tables it lacks are created, columns
/// it lacks are added, found by name (`PRAGMA table_info`).
type Upgrade = fn(&rusqlite::Transaction) -> rusqlite::Result<()>;
const UPGRADES: [Upgrade; SCHEMA_VERSION as usize] =
    [v0_to_v1, v1_to_v2, v2_to_v3, v3_to_v4, v4_to_v5];

fn v0_to_v1(tx: &rusqlite::Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(SCHEMA)?;
    add_missing(
        tx,
        &[
            ("user", "cameras", "TEXT"),
            ("user", "totp_secret", "BLOB"),
            ("user", "totp_pending", "BLOB"),
            ("user", "totp_last_step", "INTEGER NOT NULL DEFAULT 0"),
            ("session", "ip", "TEXT"),
        ],
    )
}

/// Remote sessions (docs/design/remote.md).
fn v1_to_v2(tx: &rusqlite::Transaction) -> rusqlite::Result<()> {
    add_missing(tx, &[("session", "remote", "INTEGER NOT NULL DEFAULT 0")])
}

/// Share links (docs/design/remote.md).
fn v2_to_v3(tx: &rusqlite::Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(SCHEMA)
}

/// Technicians and their grants (docs/design/installers.md).
fn v3_to_v4(tx: &rusqlite::Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(SCHEMA)?;
    add_missing(
        tx,
        &[
            ("user", "technician_org", "TEXT"),
            ("session", "grant_id", "INTEGER"),
        ],
    )
}

/// The grants reported to the cloud (docs/design/installers.md).
fn v4_to_v5(tx: &rusqlite::Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(SCHEMA)
}

fn add_missing(tx: &rusqlite::Transaction, columns: &[(&str, &str, &str)]) -> rusqlite::Result<()> {
    for (table, column, ddl) in columns {
        let has: bool = tx.query_row(
            "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2",
            [table, column],
            |r| r.get::<_, i64>(0),
        )? > 0;
        if !has {
            tx.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {ddl}"))?;
        }
    }
    Ok(())
}

/// The oldest schema version a newer file says its readers need: a newer
/// build that changes this file keeps, in a table `schema_meta` (`key`,
/// `value`), `min_reader`, as the index does in its `meta`
/// (docs/design/updates.md, "The index across versions"). Without it, only
/// builds of the file's own version read it.
fn min_reader(conn: &Connection, v: i64) -> Result<i64, AccountError> {
    let has: bool = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_meta'",
        [],
        |r| r.get::<_, i64>(0),
    )? > 0;
    if !has {
        return Ok(v);
    }
    let m: Option<String> = conn
        .query_row(
            "SELECT value FROM schema_meta WHERE key = 'min_reader'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(m.and_then(|m| m.parse().ok()).unwrap_or(v))
}

/// A new file gets [`SCHEMA`] (which `v0_to_v1` also creates, so step 0
/// serves both); an older one runs its steps in one transaction. A file
/// from a newer version is used as it is when its `min_reader` allows
/// this build (a rollback after a change older builds can live with), and
/// refused rather than changed otherwise.
pub(super) fn migrate(conn: &Connection) -> Result<(), AccountError> {
    let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if v == SCHEMA_VERSION {
        return Ok(());
    }
    if v > SCHEMA_VERSION && min_reader(conn, v)? <= SCHEMA_VERSION {
        tracing::info!(
            "accounts.db is of schema {v}, from a newer Candor; this build (schema {SCHEMA_VERSION}) uses it as it is"
        );
        return Ok(());
    }
    if !(0..SCHEMA_VERSION).contains(&v) {
        return Err(AccountError::SchemaVersion(v));
    }
    let tx = conn.unchecked_transaction()?;
    for step in &UPGRADES[v as usize..] {
        step(&tx)?;
    }
    tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(c: &Connection) -> Vec<String> {
        let mut q = c
            .prepare(
                "SELECT m.name, p.name, p.type, p.\"notnull\", p.dflt_value, p.pk \
                 FROM sqlite_master m JOIN pragma_table_info(m.name) p \
                 WHERE m.type = 'table' ORDER BY m.name, p.name",
            )
            .unwrap();
        q.query_map([], |r| {
            Ok(format!(
                "{} {} {} {} {:?} {}",
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, i64>(5)?
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    fn version(c: &Connection) -> i64 {
        c.query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn there_is_one_upgrade_per_version_step() {
        assert_eq!(UPGRADES.len() as i64, SCHEMA_VERSION);
    }

    /// A file from before versions, with only the first release's tables and
    /// columns and a user in it, upgrades to exactly a new file's columns
    /// and keeps the user.
    #[test]
    fn an_unversioned_file_upgrades_to_a_new_files_shape() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = Connection::open(dir.path().join("fresh.db")).unwrap();
        migrate(&fresh).unwrap();
        assert_eq!(version(&fresh), SCHEMA_VERSION);
        let old = Connection::open(dir.path().join("old.db")).unwrap();
        old.execute_batch(
            "CREATE TABLE user (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
                 role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
                 password_hash TEXT NOT NULL, created_at INTEGER NOT NULL);
             CREATE TABLE session (id_hash BLOB PRIMARY KEY,
                 user_id INTEGER NOT NULL REFERENCES user(id) ON DELETE CASCADE,
                 csrf TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);
             INSERT INTO user (name, role, password_hash, created_at) VALUES ('ann', 'admin', 'h', 1);",
        )
        .unwrap();
        // Half-way files exist too: one that had gained `cameras` already.
        let half = Connection::open(dir.path().join("half.db")).unwrap();
        half.execute_batch(
            "CREATE TABLE user (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
                 role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
                 password_hash TEXT NOT NULL, created_at INTEGER NOT NULL, cameras TEXT);",
        )
        .unwrap();
        for c in [&old, &half] {
            migrate(c).unwrap();
            assert_eq!(version(c), SCHEMA_VERSION);
            assert_eq!(columns(c), columns(&fresh));
        }
        let name: String = old
            .query_row("SELECT name FROM user", [], |r| r.get(0))
            .unwrap();
        assert_eq!(name, "ann");
    }

    #[test]
    fn a_file_from_a_newer_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let c = Connection::open(dir.path().join("a.db")).unwrap();
        c.execute_batch("PRAGMA user_version = 7").unwrap();
        assert!(matches!(migrate(&c), Err(AccountError::SchemaVersion(7))));
        // A newer file whose readers need schema 7: refused too.
        c.execute_batch(
            "CREATE TABLE schema_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             INSERT INTO schema_meta VALUES ('min_reader', '7');",
        )
        .unwrap();
        assert!(matches!(migrate(&c), Err(AccountError::SchemaVersion(7))));
    }

    /// A rollback after a change this build can live with: the newer file
    /// is used as it is (its version and extra table untouched).
    #[test]
    fn a_newer_file_this_build_may_read_is_used_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let c = Connection::open(dir.path().join("a.db")).unwrap();
        migrate(&c).unwrap();
        c.execute_batch(&format!(
            "CREATE TABLE later (x); PRAGMA user_version = {};
             CREATE TABLE schema_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             INSERT INTO schema_meta VALUES ('min_reader', '{SCHEMA_VERSION}');",
            SCHEMA_VERSION + 1
        ))
        .unwrap();
        migrate(&c).unwrap();
        assert_eq!(version(&c), SCHEMA_VERSION + 1);
        c.execute(
            "INSERT INTO user (name, role, password_hash, created_at) VALUES ('ann', 'admin', 'x', 0)",
            [],
        )
        .unwrap();
    }
}
