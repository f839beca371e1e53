//! The storage writer: one thread appends every camera's frames to segment
//! files; a second thread ("syncer") fsyncs them and commits closed segments
//! to the index, so a slow fsync never delays appends.
//!
//! Time mapping (see `docs/design/storage.md`, "Time"): a *run* is one
//! uninterrupted camera session. Its first frame is anchored to the system
//! clock at receipt; after that, wall time advances with the monotonic clock,
//! so NVR clock steps do not bend a run. Segments of a run are contiguous.
//! Each closed segment's wall duration is its media (camera clock) duration
//! slewed by at most ±500 ppm towards the monotonic estimate, which absorbs
//! camera clock drift without ever opening gaps or overlaps inside a run. A
//! system clock step of more than 1 s (checked at each segment boundary)
//! starts a new run anchored to the new time.

use crate::index::{encode, frames_from_records};
use crate::{SEGMENT_MAX_90K, SEGMENT_TARGET_90K, StorageError, Store, db, segfile};

use candor_media::{Codec, Time90k};
use rusqlite::params;
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;
use tracing::{error, info, warn};

/// Maximum slew applied to camera time, in parts per million.
pub const MAX_SLEW_PPM: i64 = 500;
/// How long the writer thread naps when it has drained its queue; each
/// camera's frames of one such batch go to its file in one `writev`. It is
/// also what a `kill -9` can lose beyond the frames in the channel.
pub const BATCH_INTERVAL: Duration = Duration::from_millis(200);
/// A camera's queued frames are written at once past this many bytes or
/// frames, whatever the batch: bounds the memory a burst holds (a 4K key
/// frame is a few MB) and stays under `IOV_MAX` (1,024 pieces).
pub const BATCH_MAX_BYTES: usize = 4 << 20;
pub const BATCH_MAX_FRAMES: usize = 256;
/// A system clock step larger than this starts a new run.
pub const CLOCK_STEP_90K: i64 = 90_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleEntry {
    pub codec: Codec,
    pub width: u16,
    pub height: u16,
    /// The whole MP4 sample entry box (`avc1`/`hvc1`).
    pub data: Vec<u8>,
}

/// One video frame as received, in MP4 form (length-prefixed NAL units).
pub struct IngestFrame {
    pub camera_id: i64,
    /// Camera (RTP) time in 90 kHz units; must increase within a run.
    pub media_ts: i64,
    pub key: bool,
    pub data: Vec<u8>,
    /// System clock and monotonic clock (90 kHz, any fixed origin) at receipt.
    pub recv_wall: Time90k,
    pub recv_mono: i64,
    /// True for the first frame of a new camera session.
    pub new_run: bool,
    /// The stream's parameters: required with `new_run`, and whenever they change.
    pub entry: Option<Arc<SampleEntry>>,
}

pub enum Msg {
    Frame(IngestFrame),
    /// The camera session ended (error or shutdown): close its segment.
    EndRun {
        camera_id: i64,
    },
    /// Replies once everything sent before it is written and committed.
    Flush(mpsc::Sender<()>),
}

#[derive(Clone, Debug, Default)]
pub struct CameraStats {
    pub frames: u64,
    pub bytes: u64,
    pub dropped_no_key: u64,
    pub write_errors: u64,
    pub segments_closed: u64,
}

#[derive(Clone)]
pub struct WriterOptions {
    /// Power-loss bound: open segment files are fdatasync'ed this often.
    pub fsync_interval: Duration,
    /// Called (from the writer thread) when a write fails, e.g. on a full disk,
    /// so retention can free space at once.
    pub on_write_error: Option<Arc<dyn Fn() + Send + Sync>>,
    /// Segments close at the first key frame after this much media time.
    pub segment_target_90k: i64,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            fsync_interval: Duration::from_secs(5),
            on_write_error: None,
            segment_target_90k: SEGMENT_TARGET_90K,
        }
    }
}

pub struct Writer {
    tx: tokio::sync::mpsc::Sender<Msg>,
    thread: Option<std::thread::JoinHandle<()>>,
    stats: Arc<Mutex<HashMap<i64, CameraStats>>>,
}

impl Writer {
    pub fn spawn(store: Arc<Store>, opts: WriterOptions) -> Writer {
        // ~2 s of frames for 100 cameras at 15 fps: absorbs a slow disk moment.
        let (tx, rx) = tokio::sync::mpsc::channel(4096);
        let stats = Arc::new(Mutex::new(HashMap::new()));
        let (sync_tx, sync_rx) = mpsc::channel();
        let syncer = {
            let store = store.clone();
            let interval = opts.fsync_interval;
            std::thread::Builder::new()
                .name("syncer".into())
                .spawn(move || syncer(store, sync_rx, interval))
                .expect("spawning syncer thread")
        };
        let st = stats.clone();
        let thread = std::thread::Builder::new()
            .name("writer".into())
            .spawn(move || {
                let mut w = WriterThread {
                    store,
                    sync: sync_tx,
                    cams: HashMap::new(),
                    stats: st,
                    opts,
                    dead_rows: Vec::new(),
                };
                w.run(rx);
                drop(w.sync);
                let _ = syncer.join();
            })
            .expect("spawning writer thread");
        Writer {
            tx,
            thread: Some(thread),
            stats,
        }
    }

    pub fn sender(&self) -> tokio::sync::mpsc::Sender<Msg> {
        self.tx.clone()
    }

    /// A handle to the live statistics, for status displays outside the recorder.
    pub fn stats_handle(&self) -> Arc<Mutex<HashMap<i64, CameraStats>>> {
        self.stats.clone()
    }

    pub fn stats(&self) -> HashMap<i64, CameraStats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Closes every open segment, fsyncs and commits, then returns. All
    /// senders should be dropped (camera tasks stopped) before calling.
    pub fn shutdown(mut self) {
        let (tx, thread) = (self.tx.clone(), self.thread.take());
        drop(self);
        drop(tx);
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

struct OpenSeg {
    id: i64,
    file: Arc<File>,
    start_90k: i64,
    run_start: bool,
    media_start: i64,
    records: Vec<segfile::Record>,
    /// The file's length once `pending` is written.
    file_len: u64,
    /// What the file holds now: `file_len` less `pending`.
    written: u64,
    /// This batch's records, in order, not yet written: each record's header
    /// and frame. `records` lists them already.
    pending: Vec<([u8; segfile::RECORD_HEADER as usize], Vec<u8>)>,
    entry_id: i64,
}

struct Run {
    anchor_wall: i64,
    anchor_mono: i64,
    entry: Arc<SampleEntry>,
    entry_id: i64,
    next_start: i64,
    next_run_start: bool,
    last_media_ts: Option<i64>,
    last_mono: i64,
    seg: Option<OpenSeg>,
}

impl Run {
    fn local_now(&self, mono: i64) -> i64 {
        self.anchor_wall + (mono - self.anchor_mono)
    }
}

struct WriterThread {
    store: Arc<Store>,
    sync: mpsc::Sender<SyncMsg>,
    cams: HashMap<i64, Run>,
    stats: Arc<Mutex<HashMap<i64, CameraStats>>>,
    opts: WriterOptions,
    /// Rows of segments whose file could not be created and whose deletion
    /// failed too (a full disk refuses SQLite commits): retried until gone.
    dead_rows: Vec<i64>,
}

enum SyncMsg {
    Opened {
        id: i64,
        file: Arc<File>,
        dir: std::path::PathBuf,
    },
    Close(CloseJob),
    Flush(mpsc::Sender<()>),
}

struct CloseJob {
    id: i64,
    file: Arc<File>,
    wall_duration: i64,
    media_duration: i64,
    frames: i64,
    file_len: u64,
    index: Vec<u8>,
}

impl WriterThread {
    fn run(&mut self, mut rx: tokio::sync::mpsc::Receiver<Msg>) {
        use tokio::sync::mpsc::error::TryRecvError;
        loop {
            // Drain what is queued, write it, then nap. Blocking on the channel
            // would wake this thread (a context switch) for every frame of
            // every camera, which was the largest CPU cost of recording;
            // napping bounds wakeups to 1/BATCH_INTERVAL, and a camera's
            // frames of one batch cost one write instead of one each (a
            // write's fixed cost was about 9 of the 24 us one 33 KB frame
            // takes: BENCHMARKS.md, "Frames written in batches").
            match rx.try_recv() {
                Ok(Msg::Frame(f)) => self.frame(f),
                Ok(Msg::EndRun { camera_id }) => self.end_run(camera_id),
                Ok(Msg::Flush(reply)) => {
                    self.flush_all();
                    let _ = self.sync.send(SyncMsg::Flush(reply));
                }
                Err(TryRecvError::Empty) => {
                    self.flush_all();
                    std::thread::sleep(BATCH_INTERVAL);
                }
                Err(TryRecvError::Disconnected) => break,
            }
        }
        let cams: Vec<i64> = self.cams.keys().copied().collect();
        for c in cams {
            self.end_run(c);
        }
        self.delete_dead_rows();
    }

    fn delete_dead_rows(&mut self) {
        let store = &self.store;
        self.dead_rows.retain(|id| {
            store
                .conn()
                .execute("DELETE FROM segment WHERE id = ?1", [id])
                .is_err()
        });
    }

    fn stat(&self, camera_id: i64, f: impl FnOnce(&mut CameraStats)) {
        f(self
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(camera_id)
            .or_default());
    }

    fn end_run(&mut self, camera_id: i64) {
        if let Some(mut run) = self.cams.remove(&camera_id) {
            let mono = run.last_mono;
            self.close_seg(camera_id, &mut run, None, mono);
        }
    }

    fn frame(&mut self, f: IngestFrame) {
        let cam = f.camera_id;
        let restart = f.new_run
            || !self.cams.contains_key(&cam)
            || self.cams[&cam]
                .last_media_ts
                .is_some_and(|t| f.media_ts <= t);
        if restart {
            if !f.new_run && self.cams.contains_key(&cam) {
                warn!(
                    camera_id = cam,
                    "camera timestamps went backwards; starting a new run"
                );
            }
            // The camera task sends parameters only when they change, so a run
            // the writer restarts itself keeps the previous run's.
            let entry = f
                .entry
                .clone()
                .or_else(|| self.cams.get(&cam).map(|r| r.entry.clone()));
            self.end_run(cam);
            let entry = match entry {
                Some(e) => e,
                None => {
                    warn!(camera_id = cam, "frame without stream parameters; dropped");
                    return;
                }
            };
            let entry_id = match self.entry_id(&entry) {
                Ok(id) => id,
                Err(e) => {
                    error!(camera_id = cam, "can't store stream parameters: {e}");
                    return;
                }
            };
            self.cams.insert(
                cam,
                Run {
                    anchor_wall: f.recv_wall.0,
                    anchor_mono: f.recv_mono,
                    entry,
                    entry_id,
                    next_start: f.recv_wall.0,
                    next_run_start: true,
                    last_media_ts: None,
                    last_mono: f.recv_mono,
                    seg: None,
                },
            );
        }
        let mut run = self.cams.remove(&cam).expect("inserted above");
        // New parameters: close the segment (contiguously) and start another.
        if let Some(e) = &f.entry
            && **e != *run.entry
        {
            match self.entry_id(e) {
                Ok(id) => {
                    let end = run.last_media_ts.map(|t| f.media_ts - t);
                    self.close_seg(cam, &mut run, end, f.recv_mono);
                    run.entry = e.clone();
                    run.entry_id = id;
                }
                Err(err) => error!(camera_id = cam, "can't store new stream parameters: {err}"),
            }
        }
        if let Some(seg) = &run.seg {
            let len = f.media_ts - seg.media_start;
            if (f.key && len >= self.opts.segment_target_90k) || len >= SEGMENT_MAX_90K {
                let end = run.last_media_ts.map(|t| f.media_ts - t);
                self.close_seg(cam, &mut run, end, f.recv_mono);
                let drift = f.recv_wall.0 - run.local_now(f.recv_mono);
                if drift.abs() > CLOCK_STEP_90K {
                    warn!(
                        camera_id = cam,
                        "system clock stepped by {:.3} s; starting a new run",
                        drift as f64 / 90_000.0
                    );
                    run.anchor_wall = f.recv_wall.0;
                    run.anchor_mono = f.recv_mono;
                    run.next_start = f.recv_wall.0;
                    run.next_run_start = true;
                }
            }
        }
        if run.seg.is_none() {
            if !f.key {
                self.stat(cam, |s| s.dropped_no_key += 1);
                run.last_media_ts = Some(f.media_ts);
                run.last_mono = f.recv_mono;
                // Footage is missing from here to the next key frame; segments of
                // a run are contiguous, so what follows starts a new run.
                run.next_run_start = true;
                self.cams.insert(cam, run);
                return;
            }
            if run.next_run_start {
                run.next_start = run.local_now(f.recv_mono);
            }
            if let Err(e) = self.open_seg(cam, &mut run, f.media_ts) {
                error!(camera_id = cam, "can't open a new segment: {e}");
                self.stat(cam, |s| s.write_errors += 1);
                self.kick();
                self.cams.insert(cam, run);
                return;
            }
        }
        let seg = run.seg.as_mut().expect("opened above");
        let pts = (f.media_ts - seg.media_start) as u32;
        let header = segfile::record_header(&f.data, pts, f.key);
        let record_len = header.len() + f.data.len();
        seg.records.push(segfile::Record {
            offset: seg.file_len + segfile::RECORD_HEADER,
            size: f.data.len() as u32,
            pts,
            key: f.key,
        });
        seg.file_len += record_len as u64;
        seg.pending.push((header, f.data));
        run.last_media_ts = Some(f.media_ts);
        run.last_mono = f.recv_mono;
        if seg.file_len - seg.written >= BATCH_MAX_BYTES as u64
            || seg.pending.len() >= BATCH_MAX_FRAMES
        {
            self.flush(cam, &mut run);
        }
        self.cams.insert(cam, run);
    }

    /// Writes every camera's queued records.
    fn flush_all(&mut self) {
        let queued: Vec<i64> = self
            .cams
            .iter()
            .filter(|(_, r)| r.seg.as_ref().is_some_and(|s| !s.pending.is_empty()))
            .map(|(&c, _)| c)
            .collect();
        for cam in queued {
            if let Some(mut run) = self.cams.remove(&cam) {
                self.flush(cam, &mut run);
                self.cams.insert(cam, run);
            }
        }
    }

    /// Writes the run's queued records with one `writev` (more if the kernel
    /// takes part). On failure (most likely ENOSPC) the file is cut back to
    /// its last whole record, so it stays a valid log, the segment ends
    /// there, and recording starts over at the next key frame once
    /// retention has made room.
    fn flush(&mut self, cam: i64, run: &mut Run) {
        let Some(seg) = run.seg.as_mut() else { return };
        if seg.pending.is_empty() {
            return;
        }
        let before = seg.records.len() - seg.pending.len();
        let (done, failed) = match write_records(&seg.file, &seg.pending) {
            Ok(()) => (seg.file_len - seg.written, None),
            Err((n, e)) => (n, Some(e)),
        };
        let good = seg.written + done;
        let keep = seg
            .records
            .partition_point(|r| r.offset + u64::from(r.size) <= good);
        seg.records.truncate(keep);
        let end = seg
            .records
            .last()
            .map_or(seg.written, |r| r.offset + u64::from(r.size));
        let (frames, bytes) = ((keep - before) as u64, end - seg.written);
        seg.pending.clear();
        seg.written = end;
        seg.file_len = end;
        self.stat(cam, |s| {
            s.frames += frames;
            s.bytes += bytes;
        });
        if let Some(e) = failed {
            let _ = seg.file.set_len(end);
            error!(
                camera_id = cam,
                "write failed ({e}); closing segment and asking retention for space"
            );
            self.stat(cam, |s| s.write_errors += 1);
            let mono = run.last_mono;
            self.close_seg(cam, run, None, mono);
            run.next_run_start = true;
            self.kick();
        }
    }

    fn kick(&self) {
        if let Some(k) = &self.opts.on_write_error {
            k();
        }
    }

    fn entry_id(&self, e: &SampleEntry) -> Result<i64, StorageError> {
        db::sample_entry_id(
            &self.store.conn(),
            e.codec.as_str(),
            e.width,
            e.height,
            &e.data,
        )
    }

    fn open_seg(&mut self, cam: i64, run: &mut Run, media_ts: i64) -> Result<(), StorageError> {
        self.delete_dead_rows();
        // Invariant: the row exists (committed) before the file does, so a file
        // never exists without a row except after a retention crash (see recovery).
        let id = {
            let conn = self.store.conn();
            conn.execute(
                "INSERT INTO segment (camera_id, state, run_start, start_90k, sample_entry_id) VALUES (?1, 0, ?2, ?3, ?4)",
                params![cam, run.next_run_start, run.next_start, run.entry_id],
            )
            .map_err(|e| StorageError::db("inserting segment", e))?;
            conn.last_insert_rowid()
        };
        let dir = self.store.camera_dir(cam);
        let path = self.store.segment_path(cam, id);
        let created = std::fs::create_dir_all(&dir)
            .and_then(|_| File::options().create_new(true).append(true).open(&path))
            .and_then(|mut file| {
                let header = segfile::Header {
                    segment_id: id,
                    camera_id: cam,
                    start_90k: run.next_start,
                    sample_entry: run.entry.data.clone(),
                };
                let bytes = header.encode();
                file.write_all(&bytes)?;
                Ok((file, bytes.len() as u64))
            });
        let (file, header_len) = match created {
            Ok(v) => v,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                self.dead_rows.push(id);
                self.delete_dead_rows();
                return Err(StorageError::io(format!("creating {}", path.display()), e));
            }
        };
        let file = Arc::new(file);
        let _ = self.sync.send(SyncMsg::Opened {
            id,
            file: file.clone(),
            dir,
        });
        run.seg = Some(OpenSeg {
            id,
            file,
            start_90k: run.next_start,
            run_start: run.next_run_start,
            media_start: media_ts,
            records: Vec::new(),
            file_len: header_len,
            written: header_len,
            pending: Vec::new(),
            entry_id: run.entry_id,
        });
        run.next_run_start = false;
        Ok(())
    }

    /// Closes the run's open segment. `last_duration` is the media duration of
    /// its last frame when known (the next frame's arrival), else estimated.
    fn close_seg(&mut self, cam: i64, run: &mut Run, last_duration: Option<i64>, mono_at_end: i64) {
        // A failed write closes the segment itself (from inside `flush`).
        self.flush(cam, run);
        let Some(seg) = run.seg.take() else { return };
        let _ = (seg.run_start, seg.entry_id);
        if seg.records.is_empty() {
            // Nothing written (e.g. the first write failed): drop row and file.
            let path = self.store.segment_path(cam, seg.id);
            let _ = std::fs::remove_file(path);
            self.dead_rows.push(seg.id);
            self.delete_dead_rows();
            return;
        }
        let frames = frames_from_records(&seg.records, last_duration.filter(|&d| d > 0));
        let media = frames.last().map(|f| f.pts + f.duration).unwrap_or(0);
        // Slew towards the monotonic estimate of where this segment ends.
        let mono_end = if last_duration.is_some() {
            mono_at_end
        } else {
            mono_at_end + frames.last().map(|f| f.duration).unwrap_or(0)
        };
        let err = run.local_now(mono_end) - (seg.start_90k + media);
        let allow = media * MAX_SLEW_PPM / 1_000_000;
        let wall = media + err.clamp(-allow, allow);
        run.next_start = seg.start_90k + wall;
        let index = encode(
            &frames
                .iter()
                .map(|f| (f.size, f.duration, f.key))
                .collect::<Vec<_>>(),
        );
        self.stat(cam, |s| s.segments_closed += 1);
        let _ = self.sync.send(SyncMsg::Close(CloseJob {
            id: seg.id,
            file: seg.file,
            wall_duration: wall,
            media_duration: media,
            frames: frames.len() as i64,
            file_len: seg.file_len,
            index,
        }));
    }
}

/// Appends records in order with `writev(2)` (headers and payloads without
/// copying them together), continuing short writes. Appending in order is
/// what makes a torn last record the only possible damage from a kill. On
/// error, returns how many bytes did land, for the caller to cut back to
/// the last whole record.
fn write_records(
    mut file: &File,
    records: &[([u8; segfile::RECORD_HEADER as usize], Vec<u8>)],
) -> Result<(), (u64, std::io::Error)> {
    use std::io::IoSlice;
    let mut slices: Vec<IoSlice<'_>> = records
        .iter()
        .flat_map(|(h, d)| [IoSlice::new(h), IoSlice::new(d)])
        .collect();
    let mut bufs = &mut slices[..];
    let mut done = 0u64;
    while !bufs.is_empty() {
        match file.write_vectored(bufs) {
            Ok(0) => return Err((done, std::io::ErrorKind::WriteZero.into())),
            Ok(n) => {
                done += n as u64;
                IoSlice::advance_slices(&mut bufs, n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err((done, e)),
        }
    }
    Ok(())
}

/// Commits a closed segment. Invariant: closed rows describe fsynced data.
/// Returns false if it must be retried (e.g. the disk is full, so SQLite
/// cannot commit); the row stays open meanwhile, which readers handle.
fn commit_close(store: &Store, job: &CloseJob) -> bool {
    if let Err(e) = job.file.sync_data() {
        error!(segment = job.id, "fsync failed: {e}; will retry");
        return false;
    }
    let r = store.conn().execute(
        "UPDATE segment SET state = 1, wall_duration_90k = ?2, media_duration_90k = ?3, frames = ?4, \
         file_len = ?5, frame_index = ?6 WHERE id = ?1",
        params![job.id, job.wall_duration, job.media_duration, job.frames, job.file_len as i64, job.index],
    );
    if let Err(e) = r {
        error!(
            segment = job.id,
            "committing closed segment failed: {e}; will retry"
        );
        return false;
    }
    true
}

fn syncer(store: Arc<Store>, rx: mpsc::Receiver<SyncMsg>, interval: Duration) {
    let mut open: HashMap<i64, Arc<File>> = HashMap::new();
    let mut retry: Vec<CloseJob> = Vec::new();
    let mut dirty_dirs: Vec<std::path::PathBuf> = Vec::new();
    let mut next = std::time::Instant::now() + interval;
    let sync_dirs = |dirs: &mut Vec<std::path::PathBuf>| {
        dirs.sort();
        dirs.dedup();
        for d in dirs.drain(..) {
            if let Err(e) = File::open(&d).and_then(|f| f.sync_all()) {
                warn!("fsync of directory {} failed: {e}", d.display());
            }
        }
    };
    loop {
        let timeout = next.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(timeout) {
            Ok(SyncMsg::Opened { id, file, dir }) => {
                open.insert(id, file);
                dirty_dirs.push(dir);
            }
            Ok(SyncMsg::Close(job)) => {
                open.remove(&job.id);
                sync_dirs(&mut dirty_dirs);
                if !commit_close(&store, &job) {
                    retry.push(job);
                }
            }
            Ok(SyncMsg::Flush(reply)) => {
                sync_dirs(&mut dirty_dirs);
                for f in open.values() {
                    let _ = f.sync_data();
                }
                let _ = reply.send(());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                next = std::time::Instant::now() + interval;
                retry.retain(|job| !commit_close(&store, job));
                sync_dirs(&mut dirty_dirs);
                for (id, f) in &open {
                    if let Err(e) = f.sync_data() {
                        warn!(segment = id, "periodic fsync failed: {e}");
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                retry.retain(|job| !commit_close(&store, job));
                if retry.is_empty() {
                    info!("storage writer stopped; all segments closed and committed");
                } else {
                    warn!(
                        "storage writer stopped; {} segment(s) left open for recovery at next start",
                        retry.len()
                    );
                }
                return;
            }
        }
    }
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
