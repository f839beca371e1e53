//! Each storage invariant, broken on purpose, and recovery restoring it; and
//! the time mapping under simulated clocks (no sleeping: frames carry their
//! receipt times).

use candor_media::{Codec, Time90k};
use candor_storage::writer::{IngestFrame, Msg, SampleEntry, Writer, WriterOptions};
use candor_storage::{Export, Store};
use std::sync::Arc;

const FPS: i64 = 10;
const FRAME_90K: i64 = 90_000 / FPS;

fn entry() -> Arc<SampleEntry> {
    // Contents are opaque to storage; export only copies them into stsd.
    Arc::new(SampleEntry {
        codec: Codec::H264,
        width: 640,
        height: 480,
        data: b"\0\0\0\x10avc1fake-entry".to_vec(),
    })
}

struct Feed {
    camera_id: i64,
    media: i64,
    wall: i64,
    mono: i64,
    n: u64,
}

impl Feed {
    fn new(camera_id: i64, wall: Time90k) -> Feed {
        Feed {
            camera_id,
            media: 1_000_000,
            wall: wall.0,
            mono: 0,
            n: 0,
        }
    }

    /// One frame; the camera's clock runs at `(1 + ppm/1e6)` of real time.
    fn frame(&mut self, tx: &tokio::sync::mpsc::Sender<Msg>, ppm: i64, new_run: bool) {
        let key = self.n.is_multiple_of(10);
        let size = if key { 5000 } else { 700 } + (self.n % 7) as usize;
        tx.blocking_send(Msg::Frame(IngestFrame {
            camera_id: self.camera_id,
            media_ts: self.media,
            key,
            data: vec![(self.n % 251) as u8; size],
            recv_wall: Time90k(self.wall),
            recv_mono: self.mono,
            new_run,
            entry: new_run.then(entry),
        }))
        .unwrap();
        self.n += 1;
        self.media += FRAME_90K + FRAME_90K * ppm / 1_000_000;
        self.wall += FRAME_90K;
        self.mono += FRAME_90K;
    }
}

fn record(
    dir: &std::path::Path,
    seconds: i64,
    ppm: i64,
    mut between: impl FnMut(i64, &mut Feed),
) -> (Arc<Store>, i64) {
    let (store, _) = Store::open(dir).unwrap();
    let store = Arc::new(store);
    let cam = store.ensure_camera("cam").unwrap();
    let writer = Writer::spawn(
        store.clone(),
        WriterOptions {
            segment_target_90k: 5 * 90_000,
            ..Default::default()
        },
    );
    let tx = writer.sender();
    let mut feed = Feed::new(cam, Time90k::parse_rfc3339("2026-11-27T10:00:00Z").unwrap());
    for i in 0..seconds * FPS {
        between(i, &mut feed);
        feed.frame(&tx, ppm, i == 0);
    }
    drop(tx);
    writer.shutdown();
    (store, cam)
}

#[test]
fn segments_of_a_run_are_contiguous_and_slew_at_most_500ppm_for_a_drifting_camera() {
    let dir = tempfile::tempdir().unwrap();
    // The camera's clock runs 2000 ppm fast: more than the slew limit.
    let (store, _) = record(dir.path(), 60, 2000, |_, _| {});
    let rows = store.segments().unwrap();
    assert!(rows.len() >= 10, "{} segments", rows.len());
    for w in rows.windows(2) {
        let end = w[0].start_90k + w[0].wall_duration_90k.unwrap();
        assert_eq!(
            end, w[1].start_90k,
            "segments within a run must be contiguous"
        );
        assert!(!w[1].run_start);
    }
    for r in &rows[..rows.len() - 1] {
        let (wall, media) = (r.wall_duration_90k.unwrap(), r.media_duration_90k.unwrap());
        let ppm = (media - wall) * 1_000_000 / media;
        assert!(
            (499..=500).contains(&ppm),
            "slewed {ppm} ppm (wall {wall}, media {media})"
        );
    }
    assert!(store.check().unwrap().is_empty());
}

#[test]
fn a_system_clock_step_starts_a_new_run_at_the_new_time() {
    let dir = tempfile::tempdir().unwrap();
    let step = 3600 * 90_000;
    let (store, cam) = record(dir.path(), 30, 0, |i, feed| {
        if i == 12 * FPS {
            feed.wall += step; // NTP fixes the NVR clock by an hour
        }
    });
    let rows = store.segments().unwrap();
    let stepped = rows
        .iter()
        .position(|r| r.run_start && r.id != rows[0].id)
        .expect("a second run");
    let gap = rows[stepped].start_90k
        - (rows[stepped - 1].start_90k + rows[stepped - 1].wall_duration_90k.unwrap());
    assert!(
        (gap - step).abs() < 6 * 90_000,
        "new run begins at the stepped time (gap {gap})"
    );
    let spans =
        candor_storage::export::spans(&store, cam, Time90k(0), Time90k(i64::MAX / 2)).unwrap();
    assert_eq!(spans.len(), 2);
}

/// A timeline must not cost the frame indexes: a month of them is over a
/// gigabyte decoded. With every closed segment's index spoiled, spans are
/// still listed from the rows alone (and an export, which needs the frames,
/// fails: the spoiling is real).
#[test]
fn spans_are_listed_from_the_segment_rows_without_reading_frame_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let (store, cam) = record(dir.path(), 30, 0, |_, _| {});
    let all = (Time90k(0), Time90k(i64::MAX / 2));
    let before = candor_storage::export::spans(&store, cam, all.0, all.1).unwrap();
    assert_eq!(before.len(), 1, "{before:?}");
    let rows = store.segments().unwrap();
    assert!(rows.len() >= 5 && rows.iter().all(|r| !r.open));
    let first = rows[0].start_90k;
    let last = rows.last().unwrap();
    assert_eq!(before[0].start.0, first);
    assert_eq!(
        before[0].end.0,
        last.start_90k + last.wall_duration_90k.unwrap()
    );

    let raw = rusqlite::Connection::open(dir.path().join("index.db")).unwrap();
    let spoiled = raw
        .execute("UPDATE segment SET frame_index = x'ff' WHERE state = 1", [])
        .unwrap();
    assert_eq!(spoiled, rows.len());
    drop(raw);
    // A fresh reader, as the web app and the CLI are: nothing cached.
    let store = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(
        candor_storage::export::spans(&store, cam, all.0, all.1).unwrap(),
        before
    );
    // A range inside the first segment: that segment, placed by its row.
    let inside = (Time90k(first + 90_000), Time90k(first + 2 * 90_000));
    let part = candor_storage::export::spans(&store, cam, inside.0, inside.1).unwrap();
    let first_end = first + rows[0].wall_duration_90k.unwrap();
    assert_eq!(
        part,
        [candor_storage::export::Span {
            start: Time90k(first),
            end: Time90k(first_end)
        }]
    );
    assert!(Export::plan(&store, cam, inside.0, inside.1).is_err());
}

#[test]
fn recovery_removes_orphan_files_and_rows_without_files() {
    let dir = tempfile::tempdir().unwrap();
    let (store, cam) = record(dir.path(), 20, 0, |_, _| {});
    let rows = store.segments().unwrap();
    let victim = &rows[1];
    std::fs::remove_file(store.segment_file(cam, victim.id)).unwrap();
    let orphan = store.segment_file(cam, 999_999);
    std::fs::write(&orphan, b"left behind by an interrupted retention pass").unwrap();
    assert_eq!(
        store.check().unwrap().len(),
        2,
        "both problems visible before recovery"
    );
    drop(store);
    let (store, report) = Store::open(dir.path()).unwrap();
    assert_eq!((report.rows_removed, report.orphans_removed), (1, 1));
    assert!(!orphan.exists());
    assert!(store.check().unwrap().is_empty());
    assert_eq!(store.segments().unwrap().len(), rows.len() - 1);
}

#[test]
fn recovery_closes_open_segments_and_cuts_torn_tails() {
    let dir = tempfile::tempdir().unwrap();
    let (store, cam) = record(dir.path(), 12, 0, |_, _| {});
    let last = store.segments().unwrap().pop().unwrap();
    let frames = last.frames.unwrap();
    drop(store);
    // Simulate a crash mid-write: the row is still open and the file ends in half a record.
    let conn = rusqlite::Connection::open(dir.path().join("index.db")).unwrap();
    conn.execute(
        "UPDATE segment SET state = 0, frame_index = NULL WHERE id = ?1",
        [last.id],
    )
    .unwrap();
    drop(conn);
    let path = dir
        .path()
        .join(format!("segments/{cam}/{:010}.seg", last.id));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut f, &[0x10, 0, 0, 0, 1, 2, 3]).unwrap();
    drop(f);
    let (store, report) = Store::open(dir.path()).unwrap();
    assert_eq!(report.segments_recovered, 1);
    assert_eq!(report.bytes_truncated, 7);
    let row = store
        .segments()
        .unwrap()
        .into_iter()
        .find(|r| r.id == last.id)
        .unwrap();
    assert!(!row.open);
    assert_eq!(row.frames, Some(frames));
    assert!(store.check().unwrap().is_empty());
}

#[test]
fn export_starts_exactly_at_the_requested_instant_behind_an_edit_list() {
    let dir = tempfile::tempdir().unwrap();
    let (store, cam) = record(dir.path(), 20, 0, |_, _| {});
    let t0 = Time90k(store.segments().unwrap()[0].start_90k);
    // 3.25 s in: mid-GOP (key frames every 1 s), in the first 5 s segment.
    let from = t0 + candor_media::Duration90k(3 * 90_000 + 22_500);
    let to = t0 + candor_media::Duration90k(12 * 90_000);
    let e = Export::plan(&store, cam, from, to).unwrap();
    assert_eq!((e.from, e.to), (from, to));
    assert_eq!(
        e.plan.edit_start_90k, 22_500,
        "decoding starts at the key frame at 3.0 s"
    );
    assert_eq!(e.plan.samples.len(), 90, "frames 3.0 s .. 11.9 s");
    assert_eq!(e.plan.edit_duration_90k, 8 * 90_000 + 67_500);
    assert!(e.plan.samples[0].key);
    assert_eq!(
        e.plan.chunk_starts.len(),
        3,
        "crosses two segment boundaries"
    );
    let mut out = Vec::new();
    e.write_to(&mut out, |_| {}).unwrap();
    assert_eq!(out.len() as u64, e.total_len());
}

#[test]
fn new_stream_parameters_start_a_new_contiguous_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path()).unwrap();
    let store = Arc::new(store);
    let cam = store.ensure_camera("cam").unwrap();
    let writer = Writer::spawn(
        store.clone(),
        WriterOptions {
            segment_target_90k: 60 * 90_000,
            ..Default::default()
        },
    );
    let tx = writer.sender();
    let mut feed = Feed::new(cam, Time90k::parse_rfc3339("2026-11-27T10:00:00Z").unwrap());
    for i in 0..40 {
        if i == 20 {
            // The camera's resolution changed: a key frame with new parameters.
            let mut f = IngestFrame {
                camera_id: cam,
                media_ts: feed.media,
                key: true,
                data: vec![1; 4000],
                recv_wall: Time90k(feed.wall),
                recv_mono: feed.mono,
                new_run: false,
                entry: Some(Arc::new(SampleEntry {
                    width: 1280,
                    height: 720,
                    data: b"\0\0\0\x10avc1other-entry".to_vec(),
                    ..(*entry()).clone()
                })),
            };
            f.data[0] = 9;
            tx.blocking_send(Msg::Frame(f)).unwrap();
            feed.n = 1;
            feed.media += FRAME_90K;
            feed.wall += FRAME_90K;
            feed.mono += FRAME_90K;
            continue;
        }
        feed.frame(&tx, 0, i == 0);
    }
    drop(tx);
    writer.shutdown();
    let rows = store.segments().unwrap();
    assert_eq!(rows.len(), 2);
    assert_ne!(rows[0].sample_entry_id, rows[1].sample_entry_id);
    assert_eq!(
        rows[0].start_90k + rows[0].wall_duration_90k.unwrap(),
        rows[1].start_90k,
        "contiguous"
    );
    assert!(!rows[1].run_start, "same run: no gap");
    let e = Export::plan(
        &store,
        cam,
        Time90k(rows[0].start_90k),
        Time90k(rows[1].start_90k + 90_000),
    )
    .unwrap();
    assert_eq!(
        e.plan.sample_entries.len(),
        2,
        "both parameter sets go into stsd"
    );
    assert_eq!((e.plan.width, e.plan.height), (1280, 720));
}

#[test]
fn camera_timestamps_going_backwards_start_a_new_run_at_the_next_key_frame() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = record(dir.path(), 6, 0, |i, feed| {
        if i == 25 {
            feed.media -= 50 * FRAME_90K; // camera rebooted its RTP clock mid-session
        }
    });
    let rows = store.segments().unwrap();
    assert_eq!(rows.iter().filter(|r| r.run_start).count(), 2, "{rows:?}");
    // Frames 25..29 wait for the key frame at 30; the rest are all kept.
    assert_eq!(rows.iter().map(|r| r.frames.unwrap()).sum::<i64>(), 25 + 30);
    assert!(store.check().unwrap().is_empty());
}

#[test]
fn footage_waiting_for_a_key_frame_starts_at_that_key_frames_arrival() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path()).unwrap();
    let store = Arc::new(store);
    let cam = store.ensure_camera("cam").unwrap();
    let writer = Writer::spawn(store.clone(), WriterOptions::default());
    let tx = writer.sender();
    let t0 = Time90k::parse_rfc3339("2026-11-27T10:00:00Z").unwrap();
    let mut feed = Feed::new(cam, t0);
    feed.n = 3; // the session begins 7 frames before a key frame
    for i in 0..30 {
        feed.frame(&tx, 0, i == 0);
    }
    drop(tx);
    writer.shutdown();
    let rows = store.segments().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].start_90k,
        t0.0 + 7 * FRAME_90K,
        "starts when the key frame arrived"
    );
    assert_eq!(rows[0].frames, Some(23));
}

/// A rollback past an incompatible index upgrade (docs/design/updates.md):
/// the older build restores the copy taken before the upgrade, and the
/// footage the newer build recorded since (not in the copy) is kept in
/// `rolled-back/`, not removed as orphans.
#[test]
fn a_restored_index_keeps_the_newer_versions_footage_aside() {
    use candor_storage::db::{SCHEMA_VERSION, backup_path};
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("index.db");
    let (store, _) = record(dir.path(), 12, 0, |_, _| {});
    let before = store.segments().unwrap().len();
    drop(store);
    // The newer build's upgrade: the copy first, then its recording.
    rusqlite::Connection::open(&index)
        .unwrap()
        .execute(
            "VACUUM INTO ?1",
            [backup_path(&index, SCHEMA_VERSION).to_string_lossy()],
        )
        .unwrap();
    let (store, _) = record(dir.path(), 12, 0, |_, _| {});
    let after = store.segments().unwrap().len();
    assert!(after > before);
    drop(store);
    let c = rusqlite::Connection::open(&index).unwrap();
    for key in ["schema_version", "min_reader"] {
        c.execute(
            "UPDATE meta SET value = ?1 WHERE key = ?2",
            rusqlite::params![(SCHEMA_VERSION + 1).to_string(), key],
        )
        .unwrap();
    }
    drop(c);

    let (store, report) = Store::open(dir.path()).unwrap();
    assert_eq!(store.segments().unwrap().len(), before);
    assert_eq!(
        (report.kept_aside, report.orphans_removed),
        (after - before, 0)
    );
    let kept: usize = std::fs::read_dir(dir.path().join("rolled-back"))
        .unwrap()
        .map(|d| std::fs::read_dir(d.unwrap().path()).unwrap().count())
        .sum();
    assert_eq!(kept, after - before);
    assert!(store.check().unwrap().is_empty());
    assert!(!dir.path().join("index.db.restored").exists());
    assert!(
        dir.path()
            .join(format!(
                "index.db.schema-{}.rolled-back",
                SCHEMA_VERSION + 1
            ))
            .exists()
    );
}
