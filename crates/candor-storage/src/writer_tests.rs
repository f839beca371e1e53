//! The writer thread's decisions, frame by frame, with simulated time: the
//! thread is driven directly (no spawn, no nap), and the syncer is replaced
//! by the channel it would read, so each closed segment is seen as the
//! `CloseJob` the syncer would commit. The index is a real one in a
//! temporary directory (its rows carry `run_start` and `start_90k`).

use super::*;

const SEC: i64 = 90_000;
/// A frame every 100 ms (10 fps).
const STEP: i64 = SEC / 10;
const WALL0: i64 = 1_000_000 * SEC;

struct Harness {
    w: WriterThread,
    closed: mpsc::Receiver<SyncMsg>,
    _dir: tempfile::TempDir,
}

fn entry(width: u16) -> Arc<SampleEntry> {
    Arc::new(SampleEntry {
        codec: Codec::H264,
        width,
        height: 576,
        data: vec![width as u8; 16],
    })
}

fn harness(target_secs: i64) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path()).unwrap();
    let store = Arc::new(store);
    let cam = store.ensure_camera("gate").unwrap();
    assert_eq!(cam, 1);
    let (sync, closed) = mpsc::channel();
    let w = WriterThread {
        store,
        sync,
        cams: HashMap::new(),
        stats: Default::default(),
        opts: WriterOptions {
            segment_target_90k: target_secs * SEC,
            ..Default::default()
        },
        dead_rows: Vec::new(),
    };
    Harness {
        w,
        closed,
        _dir: dir,
    }
}

/// Frame `i` of a 10 fps camera whose clock, the wall clock and the
/// monotonic clock all advance together; a key frame every 10 frames.
fn frame(i: i64) -> IngestFrame {
    IngestFrame {
        camera_id: 1,
        media_ts: i * STEP,
        key: i % 10 == 0,
        data: vec![0, 0, 0, 1, 0x65],
        recv_wall: Time90k(WALL0 + i * STEP),
        recv_mono: i * STEP,
        new_run: i == 0,
        entry: (i == 0).then(|| entry(768)),
    }
}

impl Harness {
    fn closes(&self) -> Vec<CloseJob> {
        self.closed
            .try_iter()
            .filter_map(|m| match m {
                SyncMsg::Close(j) => Some(j),
                _ => None,
            })
            .collect()
    }

    /// (run_start, start_90k) of every segment row, in order.
    fn rows(&self) -> Vec<(bool, i64)> {
        let conn = self.w.store.conn();
        let mut q = conn
            .prepare("SELECT run_start, start_90k FROM segment ORDER BY id")
            .unwrap();
        q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// The writer's statistics once its queued records are written, as
    /// each batch ends.
    fn stats(&mut self) -> CameraStats {
        self.w.flush_all();
        self.w
            .stats
            .lock()
            .unwrap()
            .get(&1)
            .cloned()
            .unwrap_or_default()
    }
}

#[test]
fn segments_close_at_the_first_key_frame_after_the_target_and_stay_contiguous() {
    let mut h = harness(2);
    for i in 0..55 {
        h.w.frame(frame(i));
    }
    let closed = h.closes();
    // Key frames every second; the target is 2 s: closes at 2, 4 s.
    assert_eq!(closed.len(), 2, "closed {}", closed.len());
    assert!(
        closed
            .iter()
            .all(|j| j.frames == 20 && j.media_duration == 2 * SEC)
    );
    let rows = h.rows();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0], (true, WALL0));
    // Contiguous: each starts where the previous ended, not a new run.
    assert_eq!(rows[1], (false, WALL0 + closed[0].wall_duration));
    assert_eq!(rows[2].1, rows[1].1 + closed[1].wall_duration);
    assert_eq!(h.stats().frames, 55);
}

#[test]
fn frames_before_the_first_key_frame_are_dropped_and_counted() {
    let mut h = harness(2);
    let mut f = frame(3);
    (f.new_run, f.entry) = (true, Some(entry(768)));
    h.w.frame(f);
    for i in 4..12 {
        h.w.frame(frame(i));
    }
    // Frames 3..9 wait for the key frame at 10.
    assert_eq!(h.stats().dropped_no_key, 7);
    assert_eq!(h.stats().frames, 2);
    assert_eq!(h.rows().len(), 1);
}

#[test]
fn camera_time_going_backwards_starts_a_new_run() {
    let mut h = harness(2);
    for i in 0..15 {
        h.w.frame(frame(i));
    }
    // The camera rebooted its clock without a new session.
    let mut f = frame(20);
    f.media_ts = 0;
    h.w.frame(f);
    for i in 21..35 {
        let mut f = frame(i);
        f.media_ts = (i - 20) * STEP;
        h.w.frame(f);
    }
    let closed = h.closes();
    assert_eq!(closed.len(), 1, "the first run's segment closed");
    let rows = h.rows();
    assert_eq!(rows.len(), 2);
    assert!(rows[1].0, "the second segment starts a run");
    assert_eq!(
        rows[1].1,
        WALL0 + 20 * STEP,
        "anchored to the wall clock at receipt"
    );
}

#[test]
fn a_system_clock_step_starts_a_new_run_at_the_next_segment_boundary() {
    let mut h = harness(1);
    for i in 0..10 {
        h.w.frame(frame(i));
    }
    // The wall clock jumps 1 h forward; camera and monotonic time go on.
    for i in 10..25 {
        let mut f = frame(i);
        f.recv_wall = Time90k(f.recv_wall.0 + 3600 * SEC);
        h.w.frame(f);
    }
    // Key frames at 0, 1 and 2 s with a 1 s target: three segments; the
    // step is seen when the first closes, so the second starts a run
    // anchored to the new time, and the third follows it contiguously.
    let rows = h.rows();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1], (true, WALL0 + 3600 * SEC + 10 * STEP));
    assert!(!rows[2].0);
}

#[test]
fn new_stream_parameters_close_the_segment_without_a_gap() {
    let mut h = harness(10);
    for i in 0..15 {
        h.w.frame(frame(i));
    }
    let mut f = frame(15);
    f.entry = Some(entry(1280));
    f.key = true;
    h.w.frame(f);
    for i in 16..20 {
        h.w.frame(frame(i));
    }
    let closed = h.closes();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].frames, 15);
    let rows = h.rows();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1], (false, WALL0 + closed[0].wall_duration));
}

#[test]
fn the_slew_never_exceeds_500_ppm_whatever_the_clocks_say() {
    let mut h = harness(10);
    // The camera's clock runs 1% fast against the monotonic clock.
    for i in 0..101 {
        let mut f = frame(i);
        f.media_ts = i * STEP * 101 / 100;
        h.w.frame(f);
    }
    let j = &h.closes()[0];
    let allowed = j.media_duration * MAX_SLEW_PPM / 1_000_000;
    assert_eq!(
        j.wall_duration,
        j.media_duration - allowed,
        "slewed by the maximum"
    );
}

/// The open segment's file, as a reader would scan it now.
fn scan_open(h: &Harness) -> segfile::Scan {
    let seg = h.w.cams[&1].seg.as_ref().unwrap();
    let file = File::open(h.w.store.segment_path(1, seg.id)).unwrap();
    segfile::scan(&file, true).unwrap()
}

#[test]
fn a_batch_of_frames_lands_at_once_in_order_and_reads_back() {
    let mut h = harness(10);
    for i in 0..5 {
        h.w.frame(frame(i));
    }
    // Queued, not yet written: the file holds its header only.
    let queued = scan_open(&h);
    assert!(queued.records.is_empty());
    h.w.flush_all();
    let scan = scan_open(&h);
    assert_eq!(scan.trailing, 0);
    assert_eq!(
        scan.records.iter().map(|r| r.pts).collect::<Vec<_>>(),
        (0..5).map(|i| (i * STEP) as u32).collect::<Vec<_>>()
    );
    let seg = h.w.cams[&1].seg.as_ref().unwrap();
    assert_eq!(
        scan.records, seg.records,
        "the writer's records are the file's"
    );
    assert_eq!(scan.valid_len, seg.file_len);
    assert_eq!(h.stats().frames, 5);
}

#[test]
fn a_camera_with_too_much_queued_is_written_before_the_batch_ends() {
    let mut h = harness(1000);
    let big = BATCH_MAX_BYTES / 3;
    for i in 0..4 {
        let mut f = frame(i);
        f.data = vec![0x65; big];
        h.w.frame(f);
    }
    // The third frame crossed the bound: three landed, the fourth waits.
    assert_eq!(scan_open(&h).records.len(), 3);
    let seg = h.w.cams[&1].seg.as_ref().unwrap();
    assert_eq!(seg.pending.len(), 1);
    assert_eq!(h.stats().frames, 4);
}

#[test]
fn a_failed_batch_ends_the_segment_at_its_last_written_record() {
    let mut h = harness(10);
    for i in 0..3 {
        h.w.frame(frame(i));
    }
    h.w.flush_all();
    let good_len = h.w.cams[&1].seg.as_ref().unwrap().file_len;
    // The next batch's write fails: the file is swapped for a handle that
    // can't be written (what ENOSPC does to every byte of a batch).
    {
        let seg = h.w.cams[&1].seg.as_ref().unwrap();
        let path = h.w.store.segment_path(1, seg.id);
        let ro = Arc::new(File::open(path).unwrap());
        h.w.cams.get_mut(&1).unwrap().seg.as_mut().unwrap().file = ro;
    }
    for i in 3..6 {
        h.w.frame(frame(i));
    }
    h.w.flush_all();
    let closed = h.closes();
    assert_eq!(closed.len(), 1, "the segment closed at the failure");
    assert_eq!(closed[0].frames, 3, "only the written frames are indexed");
    assert_eq!(closed[0].file_len, good_len);
    let stats = h.stats();
    assert_eq!((stats.frames, stats.write_errors), (3, 1));
    // Recording starts over at the next key frame, as a new run.
    for i in 6..11 {
        h.w.frame(frame(i));
    }
    assert_eq!(h.stats().dropped_no_key, 4);
    let rows = h.rows();
    assert_eq!(rows.len(), 2);
    assert!(rows[1].0, "a new run after the loss");
}
