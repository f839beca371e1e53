//! One set of queries, two databases.
//!
//! SQLite (embedded default, one file) and PostgreSQL (production) run the
//! very same SQL text: `$1`-style parameters (rewritten to SQLite's `?1`),
//! only `TEXT`, `BIGINT` and bytes columns, `ON CONFLICT … DO NOTHING` and
//! `RETURNING`, which both support. Only the DDL differs (`BLOB` vs `BYTEA`).
//! A thin layer over rusqlite and tokio-postgres rather than sqlx: sqlx's
//! SQLite driver would bring a second libsqlite3-sys next to rusqlite's,
//! which cargo refuses, and the cloud needs a couple of dozen queries.

use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("database column {0} has an unexpected type")]
    Type(usize),
    #[error("database task: {0}")]
    Join(String),
    #[error(
        "the database is from a newer Candor cloud (schema version {0}); run that version, or restore a backup"
    )]
    SchemaVersion(String),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

impl From<i64> for Val {
    fn from(v: i64) -> Val {
        Val::Int(v)
    }
}
impl From<&str> for Val {
    fn from(v: &str) -> Val {
        Val::Text(v.to_owned())
    }
}
impl From<String> for Val {
    fn from(v: String) -> Val {
        Val::Text(v)
    }
}
impl From<&[u8]> for Val {
    fn from(v: &[u8]) -> Val {
        Val::Bytes(v.to_vec())
    }
}
impl<T: Into<Val>> From<Option<T>> for Val {
    fn from(v: Option<T>) -> Val {
        v.map_or(Val::Null, Into::into)
    }
}

pub struct Row(Vec<Val>);

impl Row {
    pub fn int(&self, i: usize) -> Result<i64, DbError> {
        match self.0.get(i) {
            Some(Val::Int(v)) => Ok(*v),
            _ => Err(DbError::Type(i)),
        }
    }
    pub fn opt_int(&self, i: usize) -> Result<Option<i64>, DbError> {
        match self.0.get(i) {
            Some(Val::Null) => Ok(None),
            _ => self.int(i).map(Some),
        }
    }
    pub fn text(&self, i: usize) -> Result<String, DbError> {
        match self.0.get(i) {
            Some(Val::Text(v)) => Ok(v.clone()),
            _ => Err(DbError::Type(i)),
        }
    }
    pub fn opt_text(&self, i: usize) -> Result<Option<String>, DbError> {
        match self.0.get(i) {
            Some(Val::Null) => Ok(None),
            _ => self.text(i).map(Some),
        }
    }
    pub fn bytes(&self, i: usize) -> Result<Vec<u8>, DbError> {
        match self.0.get(i) {
            Some(Val::Bytes(v)) => Ok(v.clone()),
            _ => Err(DbError::Type(i)),
        }
    }
    pub fn opt_bytes(&self, i: usize) -> Result<Option<Vec<u8>>, DbError> {
        match self.0.get(i) {
            Some(Val::Null) => Ok(None),
            _ => self.bytes(i).map(Some),
        }
    }
}

/// The cloud database's schema version, in `meta`.
pub const SCHEMA_VERSION: i64 = 5;

/// One entry per version step: `UPGRADES[v - 1]` holds the statements that
/// take version `v` to `v + 1`, for both SQLite and PostgreSQL (`BYTES` is
/// rewritten per database). Each may run again after a crash mid-step: an
/// `ADD COLUMN` whose column exists is skipped, indexes use `IF NOT EXISTS`.
const UPGRADES: [&[&str]; (SCHEMA_VERSION - 1) as usize] = [
    // 1 → 2: remote access. A site's DNS label (random, given at pairing
    // or at its first link after this upgrade), and whether its recorder
    // allows remote access (as its last hello said).
    &[
        "ALTER TABLE site ADD COLUMN label TEXT",
        "ALTER TABLE site ADD COLUMN remote BIGINT NOT NULL DEFAULT 0",
        "CREATE UNIQUE INDEX IF NOT EXISTS site_label ON site (label)",
    ],
    // 2 → 3: the CAA record (JSON: issuer, account) the site's recorder
    // asked for, served by the remote zone's DNS even while it is offline.
    &["ALTER TABLE site ADD COLUMN caa TEXT"],
    // 3 → 4: installers (docs/design/installers.md): organisations, their
    // members, one-time link codes either way, sites linked with the level
    // their owner shares; and the recorder's software version, for the
    // fleet view.
    &[
        "ALTER TABLE site ADD COLUMN software TEXT",
        "CREATE TABLE IF NOT EXISTS org (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        created BIGINT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS org_member (
        org TEXT NOT NULL REFERENCES org(id) ON DELETE CASCADE,
        account TEXT NOT NULL REFERENCES account(id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        PRIMARY KEY (org, account))",
        "CREATE INDEX IF NOT EXISTS org_member_account ON org_member (account)",
        "CREATE TABLE IF NOT EXISTS link_code (
        code TEXT PRIMARY KEY,
        org TEXT REFERENCES org(id) ON DELETE CASCADE,
        site TEXT REFERENCES site(id) ON DELETE CASCADE,
        level TEXT,
        expires BIGINT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS site_link (
        site TEXT PRIMARY KEY REFERENCES site(id) ON DELETE CASCADE,
        org TEXT NOT NULL REFERENCES org(id) ON DELETE CASCADE,
        level TEXT NOT NULL,
        linked_at BIGINT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS site_link_org ON site_link (org)",
    ],
    // 4 → 5: the technicians' grants each recorder reports, mirrored for
    // the fleet view (only a mirror: the recorder decides, and refuses a
    // quote of it that differs: docs/design/installers.md); one-time codes
    // that make an account a member of an installer's organisation.
    &[
        "ALTER TABLE site ADD COLUMN grants_generation BIGINT",
        "CREATE TABLE IF NOT EXISTS site_grant (
        site TEXT NOT NULL REFERENCES site(id) ON DELETE CASCADE,
        id BIGINT NOT NULL,
        technician TEXT NOT NULL,
        org TEXT NOT NULL,
        scopes TEXT NOT NULL,
        expires BIGINT NOT NULL,
        PRIMARY KEY (site, id))",
        "CREATE INDEX IF NOT EXISTS site_grant_technician ON site_grant (technician)",
        "CREATE TABLE IF NOT EXISTS org_invite (
        code TEXT PRIMARY KEY,
        org TEXT NOT NULL REFERENCES org(id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        expires BIGINT NOT NULL,
        made_by TEXT)",
    ],
];

/// Today's tables, for a new database. `meta` comes first: it holds the version.
const TABLES: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS account (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL UNIQUE,
        password TEXT NOT NULL,
        totp_secret BYTES,
        totp_last_step BIGINT,
        created BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS session (
        id TEXT PRIMARY KEY,
        account TEXT NOT NULL REFERENCES account(id) ON DELETE CASCADE,
        csrf TEXT NOT NULL,
        expires BIGINT NOT NULL)",
    // One row per paired recorder. `pubkey` is the recorder's Ed25519 key,
    // the only credential the cloud holds for it.
    "CREATE TABLE IF NOT EXISTS site (
        id TEXT PRIMARY KEY,
        account TEXT NOT NULL REFERENCES account(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        pubkey BYTES NOT NULL UNIQUE,
        sharing TEXT NOT NULL,
        paired_at BIGINT NOT NULL,
        online BIGINT NOT NULL DEFAULT 0,
        since BIGINT NOT NULL,
        status TEXT,
        label TEXT,
        remote BIGINT NOT NULL DEFAULT 0,
        caa TEXT,
        software TEXT,
        grants_generation BIGINT)",
    "CREATE UNIQUE INDEX IF NOT EXISTS site_label ON site (label)",
    // Keys of unpaired sites: refused for good, with a reason the recorder logs.
    "CREATE TABLE IF NOT EXISTS revoked_key (pubkey BYTES PRIMARY KEY, at BIGINT NOT NULL)",
    // (site, id) is the recorder's outbox id: storing twice is impossible.
    "CREATE TABLE IF NOT EXISTS alarm (
        site TEXT NOT NULL REFERENCES site(id) ON DELETE CASCADE,
        id BIGINT NOT NULL,
        at TEXT NOT NULL,
        received BIGINT NOT NULL,
        late BIGINT NOT NULL,
        camera TEXT,
        kind TEXT,
        acked_by TEXT,
        acked_at BIGINT,
        ack_recorded BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (site, id))",
    "CREATE TABLE IF NOT EXISTS org (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        created BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS org_member (
        org TEXT NOT NULL REFERENCES org(id) ON DELETE CASCADE,
        account TEXT NOT NULL REFERENCES account(id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        PRIMARY KEY (org, account))",
    "CREATE INDEX IF NOT EXISTS org_member_account ON org_member (account)",
    "CREATE TABLE IF NOT EXISTS link_code (
        code TEXT PRIMARY KEY,
        org TEXT REFERENCES org(id) ON DELETE CASCADE,
        site TEXT REFERENCES site(id) ON DELETE CASCADE,
        level TEXT,
        expires BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS site_link (
        site TEXT PRIMARY KEY REFERENCES site(id) ON DELETE CASCADE,
        org TEXT NOT NULL REFERENCES org(id) ON DELETE CASCADE,
        level TEXT NOT NULL,
        linked_at BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS site_link_org ON site_link (org)",
    "CREATE TABLE IF NOT EXISTS site_grant (
        site TEXT NOT NULL REFERENCES site(id) ON DELETE CASCADE,
        id BIGINT NOT NULL,
        technician TEXT NOT NULL,
        org TEXT NOT NULL,
        scopes TEXT NOT NULL,
        expires BIGINT NOT NULL,
        PRIMARY KEY (site, id))",
    "CREATE INDEX IF NOT EXISTS site_grant_technician ON site_grant (technician)",
    "CREATE TABLE IF NOT EXISTS org_invite (
        code TEXT PRIMARY KEY,
        org TEXT NOT NULL REFERENCES org(id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        expires BIGINT NOT NULL,
        made_by TEXT)",
    "CREATE TABLE IF NOT EXISTS push_sub (
        endpoint TEXT PRIMARY KEY,
        account TEXT NOT NULL REFERENCES account(id) ON DELETE CASCADE,
        p256dh TEXT NOT NULL,
        auth TEXT NOT NULL,
        created BIGINT NOT NULL)",
];

#[derive(Clone)]
pub enum Db {
    Sqlite(Arc<Mutex<rusqlite::Connection>>),
    Postgres(Arc<tokio_postgres::Client>),
}

impl Db {
    /// `database` is `postgres://…` or a SQLite file path.
    pub async fn open(database: &str) -> Result<Db, DbError> {
        let db = if database.starts_with("postgres://") || database.starts_with("postgresql://") {
            let (client, conn) = tokio_postgres::connect(database, tokio_postgres::NoTls).await?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::error!("PostgreSQL connection ended: {e}");
                }
            });
            Db::Postgres(Arc::new(client))
        } else {
            let c = rusqlite::Connection::open(database)?;
            c.busy_timeout(std::time::Duration::from_secs(10))?;
            c.execute_batch("PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON;")?;
            Db::Sqlite(Arc::new(Mutex::new(c)))
        };
        db.migrate().await?;
        Ok(db)
    }

    /// DDL for this database: `BYTES` is SQLite's BLOB, PostgreSQL's BYTEA.
    async fn has_column(&self, table: &str, column: &str) -> Result<bool, DbError> {
        let q = match self {
            Db::Sqlite(_) => "SELECT 1 FROM pragma_table_info($1) WHERE name = $2",
            Db::Postgres(_) => {
                "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() \
                 AND table_name::text = $1 AND column_name::text = $2"
            }
        };
        Ok(self
            .query_one(q, vec![table.into(), column.into()])
            .await?
            .is_some())
    }

    fn ddl(&self, t: &str) -> String {
        match self {
            Db::Sqlite(_) => t.replace("BYTES", "BLOB"),
            Db::Postgres(_) => t.replace("BYTES", "BYTEA"),
        }
    }

    /// A new database (or one from before versions were kept, which had
    /// today's tables) gets [`TABLES`] and [`SCHEMA_VERSION`]; an older
    /// version runs its [`UPGRADES`]; a newer one is refused untouched.
    async fn migrate(&self) -> Result<(), DbError> {
        self.exec(TABLES[0], vec![]).await?;
        let v = self
            .query_one(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                vec![],
            )
            .await?
            .map(|r| r.text(0))
            .transpose()?;
        let Some(v) = v else {
            for t in TABLES {
                self.exec(&self.ddl(t), vec![]).await?;
            }
            self.exec(
                "INSERT INTO meta (key, value) VALUES ('schema_version', $1)",
                vec![Val::Text(SCHEMA_VERSION.to_string())],
            )
            .await?;
            return Ok(());
        };
        let from = match v.parse::<i64>() {
            Ok(n) if (1..=SCHEMA_VERSION).contains(&n) => n,
            _ => return Err(DbError::SchemaVersion(v)),
        };
        for step in &UPGRADES[(from - 1) as usize..] {
            for statement in *step {
                if let Some((table, column)) = added_column(statement)
                    && self.has_column(table, column).await?
                {
                    continue;
                }
                self.exec(&self.ddl(statement), vec![]).await?;
            }
        }
        self.exec(
            "UPDATE meta SET value = $1 WHERE key = 'schema_version'",
            vec![Val::Text(SCHEMA_VERSION.to_string())],
        )
        .await?;
        Ok(())
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// Rows affected.
    pub async fn exec(&self, sql: &str, params: Vec<Val>) -> Result<u64, DbError> {
        match self {
            Db::Sqlite(c) => {
                let (c, sql) = (c.clone(), sqlite_sql(sql));
                blocking(move || {
                    let c = c.lock().unwrap_or_else(|e| e.into_inner());
                    Ok(c.execute(
                        &sql,
                        rusqlite::params_from_iter(params.iter().map(SqliteVal)),
                    )? as u64)
                })
                .await
            }
            Db::Postgres(c) => {
                let p = pg_params(&params);
                Ok(c.execute(
                    sql,
                    &p.iter()
                        .map(|b| b.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
                        .collect::<Vec<_>>(),
                )
                .await?)
            }
        }
    }

    pub async fn query(&self, sql: &str, params: Vec<Val>) -> Result<Vec<Row>, DbError> {
        match self {
            Db::Sqlite(c) => {
                let (c, sql) = (c.clone(), sqlite_sql(sql));
                blocking(move || {
                    let c = c.lock().unwrap_or_else(|e| e.into_inner());
                    let mut stmt = c.prepare_cached(&sql)?;
                    let n = stmt.column_count();
                    let rows = stmt
                        .query_map(
                            rusqlite::params_from_iter(params.iter().map(SqliteVal)),
                            |r| {
                                (0..n)
                                    .map(|i| {
                                        Ok(match r.get_ref(i)? {
                                            rusqlite::types::ValueRef::Null => Val::Null,
                                            rusqlite::types::ValueRef::Integer(v) => Val::Int(v),
                                            rusqlite::types::ValueRef::Real(v) => {
                                                Val::Int(v as i64)
                                            }
                                            rusqlite::types::ValueRef::Text(t) => {
                                                Val::Text(String::from_utf8_lossy(t).into_owned())
                                            }
                                            rusqlite::types::ValueRef::Blob(b) => {
                                                Val::Bytes(b.to_vec())
                                            }
                                        })
                                    })
                                    .collect::<Result<Vec<_>, _>>()
                                    .map(Row)
                            },
                        )?
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(rows)
                })
                .await
            }
            Db::Postgres(c) => {
                let p = pg_params(&params);
                let rows = c
                    .query(
                        sql,
                        &p.iter()
                            .map(|b| b.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
                            .collect::<Vec<_>>(),
                    )
                    .await?;
                rows.iter()
                    .map(|r| {
                        (0..r.len())
                            .map(|i| {
                                use tokio_postgres::types::Type;
                                let t = r.columns()[i].type_();
                                Ok(if *t == Type::INT8 {
                                    r.try_get::<_, Option<i64>>(i)?.map_or(Val::Null, Val::Int)
                                } else if *t == Type::INT4 {
                                    r.try_get::<_, Option<i32>>(i)?
                                        .map_or(Val::Null, |v| Val::Int(v.into()))
                                } else if *t == Type::BYTEA {
                                    r.try_get::<_, Option<Vec<u8>>>(i)?
                                        .map_or(Val::Null, Val::Bytes)
                                } else {
                                    r.try_get::<_, Option<String>>(i)?
                                        .map_or(Val::Null, Val::Text)
                                })
                            })
                            .collect::<Result<Vec<_>, DbError>>()
                            .map(Row)
                    })
                    .collect()
            }
        }
    }

    pub async fn query_one(&self, sql: &str, params: Vec<Val>) -> Result<Option<Row>, DbError> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DbError> + Send + 'static,
) -> Result<T, DbError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| DbError::Join(e.to_string()))?
}

/// `$1` → `?1`. The queries are ours (no user text is ever spliced in), so
/// a `$` followed by digits is always a parameter.
fn sqlite_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

struct SqliteVal<'a>(&'a Val);

impl rusqlite::ToSql for SqliteVal<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self.0 {
            Val::Null => ValueRef::Null,
            Val::Int(v) => ValueRef::Integer(*v),
            Val::Text(t) => ValueRef::Text(t.as_bytes()),
            Val::Bytes(b) => ValueRef::Blob(b),
        }))
    }
}

type PgParam = Box<dyn tokio_postgres::types::ToSql + Sync + Send>;

fn pg_params(params: &[Val]) -> Vec<PgParam> {
    params
        .iter()
        .map(|v| -> PgParam {
            match v {
                Val::Null => Box::new(PgNull),
                Val::Int(i) => Box::new(*i),
                Val::Text(t) => Box::new(t.clone()),
                Val::Bytes(b) => Box::new(b.clone()),
            }
        })
        .collect()
}

/// NULL for a parameter of any type (an `Option<String>` would be refused
/// for a BIGINT column by tokio-postgres's type check).
#[derive(Debug)]
struct PgNull;

impl tokio_postgres::types::ToSql for PgNull {
    fn to_sql(
        &self,
        _: &tokio_postgres::types::Type,
        _: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        Ok(tokio_postgres::types::IsNull::Yes)
    }

    fn accepts(_: &tokio_postgres::types::Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

/// `ALTER TABLE t ADD COLUMN c …` → (t, c).
fn added_column(statement: &str) -> Option<(&str, &str)> {
    let mut w = statement.split_whitespace();
    match (
        w.next()?,
        w.next()?,
        w.next()?,
        w.next()?,
        w.next()?,
        w.next()?,
    ) {
        ("ALTER", "TABLE", t, "ADD", "COLUMN", c) => Some((t, c)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_version_1_database_is_upgraded_even_after_a_crash_mid_step() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cloud.db");
        let path = path.to_str().unwrap();
        let db = Db::open(path).await.unwrap();
        // Back to version 1's site table, with the first statement of the
        // step already run (a crash right after it).
        db.exec("DROP INDEX site_label", vec![]).await.unwrap();
        db.exec("ALTER TABLE site DROP COLUMN remote", vec![])
            .await
            .unwrap();
        db.exec(
            "UPDATE meta SET value = '1' WHERE key = 'schema_version'",
            vec![],
        )
        .await
        .unwrap();
        drop(db);
        let db = Db::open(path).await.unwrap();
        assert!(db.has_column("site", "label").await.unwrap());
        assert!(db.has_column("site", "remote").await.unwrap());
        let v = db
            .query_one(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                vec![],
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(v.text(0).unwrap(), SCHEMA_VERSION.to_string());
        assert_eq!(
            added_column("ALTER TABLE site ADD COLUMN label TEXT"),
            Some(("site", "label"))
        );
    }

    #[test]
    fn there_is_one_upgrade_per_version_step() {
        assert_eq!(UPGRADES.len() as i64, SCHEMA_VERSION - 1);
    }

    #[tokio::test]
    async fn a_new_database_gets_a_version_and_a_newer_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cloud.db");
        let path = path.to_str().unwrap();
        let db = Db::open(path).await.unwrap();
        let v = db
            .query_one(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                vec![],
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(v.text(0).unwrap(), SCHEMA_VERSION.to_string());
        drop(db);
        // Opening again changes nothing.
        let db = Db::open(path).await.unwrap();
        db.exec(
            "UPDATE meta SET value = '9' WHERE key = 'schema_version'",
            vec![],
        )
        .await
        .unwrap();
        drop(db);
        assert!(matches!(Db::open(path).await, Err(DbError::SchemaVersion(v)) if v == "9"));
    }

    #[test]
    fn parameters_are_rewritten_for_sqlite() {
        assert_eq!(
            sqlite_sql("SELECT a FROM t WHERE b = $1 AND c = $12 AND d = '$'"),
            "SELECT a FROM t WHERE b = ?1 AND c = ?12 AND d = '$'"
        );
    }
}
