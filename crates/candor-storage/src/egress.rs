//! The egress ledger (every message and byte the recorder sends off-site)
//! and the outbox (alarms kept until the cloud confirms it stored them).
//! The link writes to the ledger *before* it sends, so nothing leaves
//! unrecorded; a crash in between records a message that may not have left,
//! which errs on the side of telling the owner too much.

use crate::{StorageError, Store};
use candor_media::Time90k;
use rusqlite::{OptionalExtension, params};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EgressEntry {
    pub id: i64,
    pub at: Time90k,
    /// Host:port it went to.
    pub destination: String,
    /// `status`, `alarm`, `stream_data`, …
    pub kind: String,
    pub bytes: u64,
    /// The control message itself (JSON), or a description of stream data.
    pub summary: String,
}

#[derive(Clone, Debug, Default)]
pub struct EgressFilter {
    pub since: Option<Time90k>,
    pub until: Option<Time90k>,
    pub kind: Option<String>,
    pub limit: Option<u32>,
}

/// An alarm waiting for the cloud.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub id: i64,
    pub at: Time90k,
    pub payload: String,
    pub attempts: u32,
}

impl Store {
    pub fn record_egress(
        &self,
        at: Time90k,
        destination: &str,
        kind: &str,
        bytes: u64,
        summary: &str,
    ) -> Result<i64, StorageError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO egress (at_90k, destination, kind, bytes, summary) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![at.0, destination, kind, bytes as i64, summary],
        )
        .map_err(|e| StorageError::db("recording egress", e))?;
        Ok(conn.last_insert_rowid())
    }

    /// Adds `bytes` to an existing entry and replaces its summary: for
    /// heartbeats, which are aggregated per hour (one row, not one per ping)
    /// so that a cloud cannot grow the ledger by pinging.
    pub fn add_to_egress(&self, id: i64, bytes: u64, summary: &str) -> Result<bool, StorageError> {
        let n = self
            .conn()
            .execute(
                "UPDATE egress SET bytes = bytes + ?1, summary = ?2 WHERE id = ?3",
                params![bytes as i64, summary, id],
            )
            .map_err(|e| StorageError::db("recording egress", e))?;
        Ok(n == 1)
    }

    /// Ledger retention: entries older than `before`, and beyond the newest
    /// `max_rows`, are replaced by one `pruned` entry that keeps their count
    /// and bytes, so the ledger's totals stay whole. Returns the entries removed.
    pub fn prune_egress(&self, before: Time90k, max_rows: i64) -> Result<u64, StorageError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction()
            .map_err(|e| StorageError::db("pruning the egress ledger", e))?;
        let cut: i64 = tx
            .query_row(
                "SELECT MAX(id) FROM egress WHERE at_90k < ?1 OR id <= (SELECT MAX(id) FROM egress) - ?2",
                params![before.0, max_rows],
                |r| r.get::<_, Option<i64>>(0),
            )
            .map_err(|e| StorageError::db("pruning the egress ledger", e))?
            .unwrap_or(0);
        if cut == 0 {
            return Ok(0);
        }
        let (n, bytes, first, last): (i64, i64, Option<i64>, Option<i64>) = tx
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(bytes), 0), MIN(at_90k), MAX(at_90k) FROM egress WHERE id <= ?1 AND kind != 'pruned'",
                [cut],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .map_err(|e| StorageError::db("pruning the egress ledger", e))?;
        let earlier: (i64, i64) = tx
            .query_row(
                "SELECT COALESCE(SUM(CAST(substr(summary, 1, instr(summary, ' ') - 1) AS INTEGER)), 0), COALESCE(SUM(bytes), 0) FROM egress WHERE id <= ?1 AND kind = 'pruned'",
                [cut],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| StorageError::db("pruning the egress ledger", e))?;
        tx.execute("DELETE FROM egress WHERE id <= ?1", [cut])
            .map_err(|e| StorageError::db("pruning the egress ledger", e))?;
        let span = match (first, last) {
            (Some(a), Some(b)) => format!(" from {} to {}", Time90k(a), Time90k(b)),
            _ => String::new(),
        };
        tx.execute(
            "INSERT INTO egress (id, at_90k, destination, kind, bytes, summary) VALUES (?1, ?2, '', 'pruned', ?3, ?4)",
            params![
                cut,
                last.unwrap_or(before.0),
                bytes + earlier.1,
                format!(
                    "{} earlier entries removed by ledger retention{span}; their bytes are counted here",
                    n + earlier.0
                )
            ],
        )
        .map_err(|e| StorageError::db("pruning the egress ledger", e))?;
        tx.commit()
            .map_err(|e| StorageError::db("pruning the egress ledger", e))?;
        Ok(n as u64)
    }

    /// Ledger entries, oldest first.
    pub fn egress(&self, f: &EgressFilter) -> Result<Vec<EgressEntry>, StorageError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT id, at_90k, destination, kind, bytes, summary FROM egress \
                 WHERE (?1 IS NULL OR at_90k >= ?1) AND (?2 IS NULL OR at_90k < ?2) AND (?3 IS NULL OR kind = ?3) \
                 ORDER BY at_90k, id LIMIT ?4",
            )
            .map_err(|e| StorageError::db("reading the egress ledger", e))?;
        stmt.query_map(
            params![
                f.since.map(|t| t.0),
                f.until.map(|t| t.0),
                f.kind,
                i64::from(f.limit.unwrap_or(10_000).min(1_000_000))
            ],
            |r| {
                Ok(EgressEntry {
                    id: r.get(0)?,
                    at: Time90k(r.get(1)?),
                    destination: r.get(2)?,
                    kind: r.get(3)?,
                    bytes: r.get::<_, i64>(4)? as u64,
                    summary: r.get(5)?,
                })
            },
        )
        .and_then(|rows| rows.collect())
        .map_err(|e| StorageError::db("reading the egress ledger", e))
    }

    /// Queues an alarm for the cloud; returns its id (the cloud deduplicates by it).
    pub fn enqueue_alarm(
        &self,
        at: Time90k,
        event: Option<i64>,
        payload: &str,
    ) -> Result<i64, StorageError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO outbox (at_90k, payload, event_id) VALUES (?1, ?2, ?3)",
            params![at.0, payload, event],
        )
        .map_err(|e| StorageError::db("queueing an alarm", e))?;
        Ok(conn.last_insert_rowid())
    }

    /// Alarms not yet confirmed, oldest first.
    pub fn pending_alarms(&self, limit: u32) -> Result<Vec<Pending>, StorageError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT id, at_90k, payload, attempts FROM outbox WHERE delivered = 0 ORDER BY id LIMIT ?1")
            .map_err(|e| StorageError::db("reading the outbox", e))?;
        stmt.query_map([i64::from(limit)], |r| {
            Ok(Pending {
                id: r.get(0)?,
                at: Time90k(r.get(1)?),
                payload: r.get(2)?,
                attempts: r.get(3)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(|e| StorageError::db("reading the outbox", e))
    }

    pub fn alarm_attempted(&self, id: i64) -> Result<(), StorageError> {
        self.conn()
            .execute(
                "UPDATE outbox SET attempts = attempts + 1 WHERE id = ?1",
                [id],
            )
            .map_err(|e| StorageError::db("updating the outbox", e))?;
        Ok(())
    }

    /// Unpaired: alarms for that cloud will never be delivered.
    pub fn clear_outbox(&self) -> Result<(), StorageError> {
        self.conn()
            .execute("DELETE FROM outbox", [])
            .map_err(|e| StorageError::db("clearing the outbox", e))?;
        Ok(())
    }

    /// The cloud stored it: never send it again. Unknown ids are fine (a
    /// repeated confirmation after a reconnect). Delivered alarms older than
    /// 30 days are forgotten here.
    pub fn alarm_delivered(&self, id: i64) -> Result<(), StorageError> {
        let conn = self.conn();
        conn.execute("UPDATE outbox SET delivered = 1 WHERE id = ?1", [id])
            .map_err(|e| StorageError::db("updating the outbox", e))?;
        let month = Time90k::now().0 - 30 * 86_400 * 90_000;
        conn.execute(
            "DELETE FROM outbox WHERE delivered = 1 AND at_90k < ?1",
            [month],
        )
        .map_err(|e| StorageError::db("updating the outbox", e))?;
        Ok(())
    }

    /// An acknowledgement from the cloud app for alarm `id`: recorded on the
    /// alarm's event. False when the alarm or its event is unknown.
    pub fn ack_alarm(&self, id: i64, by: &str, at: Time90k) -> Result<bool, StorageError> {
        match self.alarm_event(id)? {
            Some(e) => self.ack_event(e, by, at),
            None => Ok(false),
        }
    }

    /// The event a cloud alarm (outbox id) was raised for, while the
    /// outbox keeps it.
    pub fn alarm_event(&self, id: i64) -> Result<Option<i64>, StorageError> {
        Ok(self
            .conn()
            .query_row("SELECT event_id FROM outbox WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| StorageError::db("reading the outbox", e))?
            .flatten())
    }
}

impl From<&EgressEntry> for candor_wire::EgressEntry {
    fn from(e: &EgressEntry) -> candor_wire::EgressEntry {
        candor_wire::EgressEntry {
            id: e.id,
            at: e.at.to_string(),
            destination: e.destination.clone(),
            kind: e.kind.clone(),
            bytes: e.bytes,
            summary: e.summary.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_filters_and_outbox_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (store, _) = Store::open(dir.path()).unwrap();
            store
                .record_egress(
                    Time90k(100),
                    "cloud:443",
                    "status",
                    180,
                    "{\"type\":\"status\"}",
                )
                .unwrap();
            store
                .record_egress(
                    Time90k(200),
                    "cloud:443",
                    "alarm",
                    95,
                    "{\"type\":\"alarm\"}",
                )
                .unwrap();
            let a = store
                .enqueue_alarm(Time90k(150), None, "{\"camera\":\"gate\"}")
                .unwrap();
            let b = store.enqueue_alarm(Time90k(160), None, "{}").unwrap();
            store.alarm_attempted(a).unwrap();
            store.alarm_delivered(b).unwrap();
            store.alarm_delivered(b).unwrap(); // twice is fine
        }
        // A crash or restart loses nothing that was queued.
        let (store, _) = Store::open(dir.path()).unwrap();
        let all = store.egress(&EgressFilter::default()).unwrap();
        assert_eq!(all.iter().map(|e| e.bytes).sum::<u64>(), 275);
        let alarms = store
            .egress(&EgressFilter {
                kind: Some("alarm".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(alarms.len(), 1);
        assert_eq!(
            store
                .egress(&EgressFilter {
                    since: Some(Time90k(150)),
                    ..Default::default()
                })
                .unwrap()
                .len(),
            1
        );
        let p = store.pending_alarms(10).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].attempts, p[0].payload.as_str()),
            (1, "{\"camera\":\"gate\"}")
        );
    }
}

#[cfg(test)]
mod upgrade_tests {
    use crate::Store;
    use candor_media::Time90k;

    /// Retention removes old and excess entries but keeps their count and
    /// bytes in one `pruned` row, so the ledger's total stays whole, also
    /// across several prunes.
    #[test]
    fn ledger_retention_keeps_the_totals() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        let total = |s: &Store| -> u64 {
            s.egress(&Default::default())
                .unwrap()
                .iter()
                .map(|e| e.bytes)
                .sum()
        };
        for i in 0..50 {
            store
                .record_egress(Time90k(i * 90_000), "c:443", "status", 100, "{}")
                .unwrap();
        }
        assert_eq!(total(&store), 5_000);
        // Older than t = 20 s: 20 entries go.
        assert_eq!(store.prune_egress(Time90k(20 * 90_000), 1_000).unwrap(), 20);
        let e = store.egress(&Default::default()).unwrap();
        assert_eq!(e.len(), 31);
        assert_eq!(total(&store), 5_000);
        let p = e.iter().find(|e| e.kind == "pruned").unwrap();
        assert_eq!(p.bytes, 2_000);
        assert!(p.summary.starts_with("20 earlier entries"), "{}", p.summary);
        // A row cap: the newest 10 stay, the summary grows.
        store.prune_egress(Time90k(0), 10).unwrap();
        let e = store.egress(&Default::default()).unwrap();
        assert_eq!(e.len(), 11, "{e:?}");
        assert_eq!(total(&store), 5_000);
        let p = e.iter().find(|e| e.kind == "pruned").unwrap();
        assert!(p.summary.starts_with("40 earlier entries"), "{}", p.summary);
        // Heartbeats: one row, updated.
        let id = store
            .record_egress(Time90k(99 * 90_000), "c:443", "pong", 40, "1")
            .unwrap();
        assert!(store.add_to_egress(id, 40, "2 heartbeat answers").unwrap());
        assert_eq!(total(&store), 5_080);
    }

    /// An index written by the version before snapshots (2) opens, gains the
    /// snapshot column and the cloud tables, and keeps its events.
    #[test]
    fn a_version_2_index_upgrades_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let id = {
            let (store, _) = Store::open(dir.path()).unwrap();
            let cam = store.ensure_camera("gate").unwrap();
            store
                .start_event(cam, "motion", "onvif", Time90k(5), None)
                .unwrap()
        };
        {
            let c = rusqlite::Connection::open(dir.path().join("index.db")).unwrap();
            c.execute_batch(
                "ALTER TABLE event DROP COLUMN snapshot; ALTER TABLE event DROP COLUMN acked_by; \
                 ALTER TABLE event DROP COLUMN acked_at_90k; DROP TABLE egress; DROP TABLE outbox; \
                 UPDATE meta SET value = '2' WHERE key = 'schema_version';",
            )
            .unwrap();
        }
        let (store, _) = Store::open(dir.path()).unwrap();
        let e = store.event(id).unwrap().unwrap();
        assert!(!e.snapshot);
        let cam = store.ensure_camera("gate").unwrap();
        store.save_snapshot(cam, id, b"j", b"t").unwrap();
        assert!(store.event(id).unwrap().unwrap().snapshot);
        store.enqueue_alarm(Time90k(1), None, "{}").unwrap();
        let v: String = rusqlite::Connection::open(dir.path().join("index.db"))
            .unwrap()
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(v, crate::db::SCHEMA_VERSION.to_string());
    }

    /// Version 4's outbox handed out an emptied queue's ids again; after the
    /// upgrade to 5 an id is never reused, even once the queue is empty,
    /// and queued alarms are kept.
    #[test]
    fn outbox_ids_are_never_reused_after_the_version_4_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        {
            let c = rusqlite::Connection::open(dir.path().join("index.db")).unwrap();
            c.execute_batch(
                "ALTER TABLE event DROP COLUMN acked_by; ALTER TABLE event DROP COLUMN acked_at_90k; \
                 DROP TABLE outbox; \
                 CREATE TABLE outbox (id INTEGER PRIMARY KEY, at_90k INTEGER NOT NULL, \
                     payload TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0); \
                 INSERT INTO outbox (at_90k, payload) VALUES (1, 'kept'); \
                 UPDATE meta SET value = '4' WHERE key = 'schema_version';",
            )
            .unwrap();
        }
        let (store, _) = Store::open(dir.path()).unwrap();
        let p = store.pending_alarms(10).unwrap();
        assert_eq!((p.len(), p[0].payload.as_str()), (1, "kept"));
        store.alarm_delivered(p[0].id).unwrap();
        let next = store.enqueue_alarm(Time90k(2), None, "new").unwrap();
        assert!(next > p[0].id, "id {next} reused");
        store.alarm_delivered(next).unwrap();
        drop(store);
        let (store, _) = Store::open(dir.path()).unwrap();
        assert!(store.enqueue_alarm(Time90k(3), None, "newer").unwrap() > next);
    }
}
