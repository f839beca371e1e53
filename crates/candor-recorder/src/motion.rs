//! Motion detection per camera: a thread that decodes the (sub) stream's
//! frames and runs [`candor_motion::Scanner`], turning its verdicts into
//! events with snapshots. It also gives camera-side (ONVIF) events of its
//! camera a snapshot, from the last picture it analysed.
//!
//! Frames come from the camera's live broadcast, like a viewer's: ingest
//! never waits for the detector. If the detector falls behind, it loses
//! frames, says so, and resumes at the next key frame.

use crate::bus::{EventBus, EventChange, ObjectInfo, Phase};
use crate::config::{MotionConfig, ObjectsConfig};
use crate::live::{LiveFrame, LiveInit, LiveSender};
use crate::objects::{CameraObjects, Engine, Found, ObjectStats, OpenObject};
use candor_detect::Change;
use candor_media::{Duration90k, Time90k};
use candor_motion::{Picture, ScanEvent, Scanner};
use candor_storage::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use tracing::{info, warn};

/// What the detector is doing, for the system page.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MotionStatus {
    /// `off`, `starting`, `running`, or why it can't run.
    pub state: String,
    pub stream: Option<String>,
    pub decoded: u64,
    pub analysed: u64,
    pub dropped: u64,
    /// Time spent decoding and analysing (µs), for the cost per camera;
    /// object detection's included.
    pub busy_us: u64,
    /// Object detection, when on.
    pub objects: Option<ObjectStats>,
}

#[derive(Clone)]
pub(crate) struct MotionTask {
    pub camera: String,
    pub camera_id: i64,
    pub store: Arc<Store>,
    pub bus: EventBus,
    pub frames: LiveSender,
    /// The camera's status; this task keeps its `motion` part.
    pub status: Arc<Mutex<crate::CameraStatus>>,
    /// Object detection's sessions, shared by every camera.
    pub engine: Arc<Engine>,
}

/// The settings a detector run starts with.
#[derive(Clone)]
struct RunConfig {
    motion: MotionConfig,
    objects: ObjectsConfig,
}

enum Item {
    Frame(Arc<LiveFrame>),
    /// Frames were lost: the decoder must wait for a key frame.
    Resync,
}

/// Frames queued for the detector thread: about 3 s at 15 fps.
const QUEUE: usize = 48;

impl MotionTask {
    /// Runs until shutdown, following the camera's motion settings: idle
    /// (not even subscribed to frames) while disabled, restarted with the
    /// new settings when they change (an ongoing event ends first).
    pub async fn run(
        self,
        mut settings: watch::Receiver<MotionConfig>,
        mut objects: watch::Receiver<ObjectsConfig>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let cfg = RunConfig {
                motion: settings.borrow_and_update().clone(),
                objects: objects.borrow_and_update().clone(),
            };
            if !cfg.motion.enabled {
                self.set(|m| {
                    *m = MotionStatus {
                        state: "off".into(),
                        ..Default::default()
                    }
                });
                tokio::select! {
                    r = settings.changed() => if r.is_err() { return },
                    r = objects.changed() => if r.is_err() { return },
                    _ = shutdown.changed() => return,
                }
                continue;
            }
            if !self
                .session(cfg, &mut settings, &mut objects, &mut shutdown)
                .await
            {
                return;
            }
        }
    }

    /// One detector run with fixed settings. Returns false on shutdown.
    async fn session(
        &self,
        cfg: RunConfig,
        settings: &mut watch::Receiver<MotionConfig>,
        objects: &mut watch::Receiver<ObjectsConfig>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Item>(QUEUE);
        let mut frames = self.frames.subscribe();
        let status = self.status.clone();
        let task = self.clone();
        let worker = std::thread::Builder::new()
            .name(format!("motion-{}", self.camera))
            .spawn(move || task.work(rx, cfg));
        let worker = match worker {
            Ok(w) => w,
            Err(e) => {
                warn!(camera = %self.camera, "motion detection not started: {e}");
                return false;
            }
        };
        let mut lost = false;
        let keep_going = loop {
            let item = tokio::select! {
                r = frames.recv() => match r {
                    Ok(f) => Item::Frame(f),
                    Err(RecvError::Lagged(n)) => {
                        set_status(&status, |m| m.dropped += n);
                        Item::Resync
                    }
                    Err(RecvError::Closed) => break false,
                },
                r = settings.changed() => break r.is_ok(),
                r = objects.changed() => break r.is_ok(),
                _ = shutdown.changed() => break false,
            };
            // A full queue means the detector is slower than the stream:
            // drop and resync rather than ever slowing anything else.
            if lost && tx.try_send(Item::Resync).is_ok() {
                lost = false;
            }
            if !lost && tx.try_send(item).is_err() {
                lost = true;
                set_status(&status, |m| m.dropped += 1);
            }
        };
        drop(tx);
        let _ = tokio::task::spawn_blocking(move || worker.join()).await;
        keep_going
    }

    fn set(&self, f: impl FnOnce(&mut MotionStatus)) {
        set_status(&self.status, f);
    }

    fn work(self, rx: std::sync::mpsc::Receiver<Item>, run: RunConfig) {
        let cfg = run.motion;
        let mut objs = run.objects.enabled.then(|| {
            let s = cfg.settings();
            CameraObjects::new(run.objects.clone(), s.zones, s.masks)
        });
        let mut open_objects: HashMap<u64, OpenObject> = HashMap::new();
        let mut bus_rx = self.bus.subscribe();
        let hold = Duration90k::from_std(cfg.hold.0).0;
        let mut scanner: Option<(Arc<LiveInit>, Scanner)> = None;
        let mut unsupported: Option<Arc<LiveInit>> = None;
        // The open motion event: id, start, has a snapshot, raised an alarm.
        let mut open: Option<(i64, Time90k, bool, bool)> = None;
        let mut latest: Option<(Time90k, Picture)> = None;
        while let Ok(item) = rx.recv() {
            let f = match item {
                Item::Frame(f) => f,
                Item::Resync => {
                    if let Some((_, s)) = &mut scanner {
                        s.resync();
                    }
                    continue;
                }
            };
            let t0 = Instant::now();
            let new_stream = scanner
                .as_ref()
                .is_none_or(|(i, _)| !Arc::ptr_eq(i, &f.init));
            if new_stream
                && unsupported
                    .as_ref()
                    .is_none_or(|i| !Arc::ptr_eq(i, &f.init))
            {
                if let Some((_, mut s)) = scanner.take()
                    && let Some(e) = s.finish()
                {
                    self.handle(e, &mut open, motion_alarms(objs.as_ref()));
                }
                if let Some(o) = &mut objs {
                    let ends = o.finish();
                    self.handle_objects(ends, o, &mut open_objects, Time90k::now());
                }
                let made = f
                    .init
                    .decoder
                    .as_ref()
                    .ok_or_else(|| "no decoder configuration".to_owned())
                    .and_then(|c| {
                        Scanner::new(c, cfg.settings(), cfg.fps, hold).map_err(|e| e.to_string())
                    });
                let desc = format!("{}x{} {}", f.init.width, f.init.height, f.init.codec);
                match made {
                    Ok(s) => {
                        info!(camera = %self.camera, "motion detection on {desc}");
                        self.set(|st| {
                            st.state = "running".into();
                            st.stream = Some(desc);
                        });
                        scanner = Some((f.init.clone(), s));
                        unsupported = None;
                    }
                    Err(e) => {
                        warn!(camera = %self.camera, "motion detection can't run on {desc}: {e}");
                        self.set(|st| {
                            st.state = e;
                            st.stream = Some(desc);
                        });
                        unsupported = Some(f.init.clone());
                    }
                }
            }
            let Some((_, s)) = scanner.as_mut().filter(|_| unsupported.is_none()) else {
                continue;
            };
            // Event times are wall-clock times of arrival, as recording uses.
            let wall = Time90k::now() - Duration90k::from_std(f.received.elapsed());
            // Camera-side events of this camera get the latest picture; keep
            // one about once a second, since a copy is a whole frame.
            if latest.as_ref().is_none_or(|(t, _)| (wall - *t).0 > 90_000) {
                s.request_picture();
            }
            let mut found: Option<Vec<Found>> = None;
            let r = match &mut objs {
                Some(o) => s.push_observed(wall.0, &f.data, f.key, |frame, a| {
                    found = o.observe(&self.engine, wall.0, frame, a);
                }),
                None => s.push(wall.0, &f.data, f.key),
            };
            if let Some(p) = s.take_picture() {
                latest = Some((wall, p));
            }
            if let (Some(o), Some(found)) = (&mut objs, found) {
                self.handle_objects(found, o, &mut open_objects, wall);
            }
            match r {
                Ok(Some(e)) => {
                    if let ScanEvent::Start { picture, .. } = &e {
                        latest = Some((wall, picture.clone()));
                    }
                    self.handle(e, &mut open, motion_alarms(objs.as_ref()));
                }
                Ok(None) => {}
                Err(e) => {
                    warn!(camera = %self.camera, "motion: {e}; waiting for the next key frame")
                }
            }
            // Detection stopped working during a motion event that raised
            // no alarm (objects were to): the event raises it now.
            if let Some((id, start, _, alarmed)) = &mut open
                && !*alarmed
                && motion_alarms(objs.as_ref())
            {
                *alarmed = true;
                self.raise_motion_alarm(*id, *start);
            }
            loop {
                match bus_rx.try_recv() {
                    // The camera's own events (ONVIF) get a picture; Candor's
                    // detectors make their own.
                    Ok(e)
                        if e.camera == self.camera
                            && e.source == "onvif"
                            && e.phase == Phase::Start =>
                    {
                        if let Some((t, p)) = &latest
                            && (wall - *t).0 < 3 * 90_000
                        {
                            self.snapshot_for(&e, p);
                        }
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {}
                    Err(_) => break,
                }
            }
            let st = s.stats();
            let dt = t0.elapsed().as_micros() as u64;
            self.set(|m| {
                m.decoded = st.decoded;
                m.analysed = st.analysed;
                m.busy_us += dt;
                m.objects = objs.as_ref().map(|o| ObjectStats {
                    working: o.working(),
                    ..o.stats.clone()
                });
            });
        }
        if let Some((_, mut s)) = scanner
            && let Some(e) = s.finish()
        {
            self.handle(e, &mut open, motion_alarms(objs.as_ref()));
        }
        if let Some(o) = &mut objs {
            let ends = o.finish();
            self.handle_objects(ends, o, &mut open_objects, Time90k::now());
        }
        self.set(|st| st.state = "stopped".into());
    }

    fn encode(&self, p: &Picture) -> Option<(Vec<u8>, Vec<u8>)> {
        let full = p
            .jpeg(80)
            .inspect_err(|e| warn!(camera = %self.camera, "snapshot: {e}"))
            .ok()?;
        let thumb = p.scaled_to_width(320).jpeg(75).ok()?;
        Some((full, thumb))
    }

    /// A snapshot for another source's event, announced as an update.
    fn snapshot_for(&self, e: &EventChange, p: &Picture) {
        let Some((full, thumb)) = self.encode(p) else {
            return;
        };
        if let Err(err) = self
            .store
            .save_snapshot(self.camera_id, e.id, &full, &thumb)
        {
            warn!(camera = %self.camera, "saving a snapshot: {err}");
            return;
        }
        let update = EventChange {
            phase: Phase::Update,
            snapshot: Some(full.into()),
            has_snapshot: true,
            ..e.clone()
        };
        let _ = self.bus.send(update.stored(&self.store));
    }

    fn handle(&self, e: ScanEvent, open: &mut Option<(i64, Time90k, bool, bool)>, alarm: bool) {
        let change =
            |id, phase, start, end, score: f32, zone: Option<String>, snapshot: Option<Vec<u8>>| {
                EventChange {
                    end,
                    score: Some(f64::from(score)),
                    zone,
                    has_snapshot: snapshot.is_some(),
                    snapshot: snapshot.map(Into::into),
                    alarm,
                    ..EventChange::new(id, self.camera.clone(), "motion", "motion", phase, start)
                }
            };
        match e {
            ScanEvent::Start {
                at_90k,
                score,
                zone,
                picture,
            } => {
                // The alarm first (one index commit), the pictures after: JPEG
                // encoding costs more than everything else on this path, and
                // an alarm must not wait for it.
                let start = Time90k(at_90k);
                let id = match self.store.start_detected_event(
                    self.camera_id,
                    "motion",
                    "motion",
                    start,
                    f64::from(score),
                    zone.as_deref(),
                ) {
                    Ok(id) => id,
                    Err(err) => {
                        warn!(camera = %self.camera, "recording a motion event: {err}");
                        return;
                    }
                };
                let c = change(id, Phase::Start, start, None, score, zone, None);
                let _ = self.bus.send(c.clone());
                let saved = self.encode(&picture).and_then(|(full, thumb)| {
                    self.store
                        .save_snapshot(self.camera_id, id, &full, &thumb)
                        .inspect_err(|e| warn!(camera = %self.camera, "saving a snapshot: {e}"))
                        .ok()
                        .map(|_| full)
                });
                *open = Some((id, start, saved.is_some(), alarm));
                if let Some(full) = saved {
                    let _ = self.bus.send(EventChange {
                        phase: Phase::Update,
                        has_snapshot: true,
                        snapshot: Some(full.into()),
                        ..c
                    });
                }
            }
            ScanEvent::End {
                at_90k,
                peak_score,
                zone,
                picture,
            } => {
                let Some((id, start, had_snapshot, alarmed)) = open.take() else {
                    return;
                };
                let end = Time90k(at_90k.max(start.0));
                if let Err(err) = self.store.end_event(id, end) {
                    warn!(camera = %self.camera, "ending a motion event: {err}");
                }
                if let Err(err) =
                    self.store
                        .set_event_result(id, f64::from(peak_score), zone.as_deref())
                {
                    warn!(camera = %self.camera, "recording a motion event's peak: {err}");
                }
                // The peak picture replaces the first one: it shows the most.
                let mut saved = false;
                if let Some(p) = picture
                    && let Some((full, thumb)) = self.encode(&p)
                {
                    match self.store.save_snapshot(self.camera_id, id, &full, &thumb) {
                        Ok(_) => saved = true,
                        Err(err) => warn!(camera = %self.camera, "saving a snapshot: {err}"),
                    }
                }
                // As the API will say: a snapshot exists if either was saved,
                // and a pin or an acknowledgement made meanwhile shows.
                let mut c = change(id, Phase::End, start, Some(end), peak_score, zone, None);
                c.has_snapshot = had_snapshot || saved;
                // An alarm ends as one, whatever the detector says now.
                c.alarm |= alarmed;
                let _ = self.bus.send(c.stored(&self.store));
            }
        }
    }

    /// Records what a look found: object events start, improve, and end.
    fn handle_objects(
        &self,
        found: Vec<Found>,
        objs: &CameraObjects,
        open: &mut HashMap<u64, OpenObject>,
        wall: Time90k,
    ) {
        for f in found {
            let id = f.change.id();
            let t = &f.track;
            match f.change {
                Change::New(_) => {
                    let zones = f.zones.clone();
                    let info = ObjectInfo {
                        label: t.label.name(),
                        score: t.score,
                        top_score: t.best_score,
                        bbox: t.best_box,
                        current_zones: f.zones.clone(),
                        zones: zones.clone(),
                        stationary: false,
                        frame: wall,
                    };
                    let start = Time90k(t.first_seen_90k);
                    let alarm = objs.alarms(t.label, &zones);
                    let ev = match self.store.start_object_event(
                        self.camera_id,
                        start,
                        &candor_storage::events::ObjectResult {
                            label: info.label,
                            score: f64::from(info.top_score),
                            bbox: info.bbox,
                            zones: &zones,
                        },
                    ) {
                        Ok(ev) => ev,
                        Err(err) => {
                            warn!(camera = %self.camera, "recording an object event: {err}");
                            continue;
                        }
                    };
                    let o = OpenObject {
                        event_id: ev,
                        start,
                        info,
                        alarm,
                        has_snapshot: false,
                    };
                    // The alarm first, the pictures after (as motion).
                    let _ = self
                        .bus
                        .send(self.object_change(&o, Phase::Start, None, None));
                    let o = open.entry(id).insert_entry(o).into_mut();
                    if let Some(p) = f.picture {
                        // As Frigate's, every update has a `before`.
                        let before = o.info.clone();
                        self.object_snapshot(o, p, Some(before));
                    }
                }
                Change::Better(_) => {
                    let Some(o) = open.get_mut(&id) else { continue };
                    let before = o.info.clone();
                    o.info.score = t.score;
                    o.info.top_score = t.best_score;
                    o.info.bbox = t.best_box;
                    o.info.current_zones = f.zones.clone();
                    o.info.frame = wall;
                    self.save_object(o);
                    match f.picture {
                        Some(p) => self.object_snapshot(o, p, Some(before)),
                        None => {
                            let _ = self.bus.send(self.object_change(
                                o,
                                Phase::Update,
                                None,
                                Some(before),
                            ));
                        }
                    }
                }
                Change::Stationary(_) | Change::End(_) => {
                    let Some(mut o) = open.remove(&id) else {
                        continue;
                    };
                    let before = o.info.clone();
                    o.info.stationary = matches!(f.change, Change::Stationary(_));
                    o.info.current_zones = f.zones.clone();
                    o.info.frame = wall;
                    let end = Time90k(t.last_seen_90k.max(o.start.0)).min(wall.max(o.start));
                    if let Err(err) = self.store.end_event(o.event_id, end) {
                        warn!(camera = %self.camera, "ending an object event: {err}");
                    }
                    let c = self.object_change(&o, Phase::End, Some(end), Some(before));
                    let _ = self.bus.send(c.stored(&self.store));
                }
            }
        }
        // Zones entered while the object moves: the event says so, and an
        // object that walks into a zone that requires its label raises its
        // alarm then.
        for t in objs.tracks() {
            let Some(o) = open.get_mut(&t.id) else {
                continue;
            };
            let now = objs.zones_of(&t.bbox);
            let new: Vec<String> = now
                .iter()
                .filter(|z| !o.info.zones.contains(z))
                .cloned()
                .collect();
            if new.is_empty() && now == o.info.current_zones {
                continue;
            }
            let before = o.info.clone();
            o.info.zones.extend(new.iter().cloned());
            o.info.current_zones = now;
            o.info.frame = wall;
            if new.is_empty() {
                continue; // only moved between zones it had entered: no message
            }
            self.save_object(o);
            let raises = !o.alarm && objs.alarms(t.label, &o.info.zones);
            o.alarm |= raises;
            let _ = self
                .bus
                .send(self.object_change(o, Phase::Update, None, Some(before)));
        }
    }

    /// An ongoing motion event becomes an alarm: an update that says so,
    /// with what the index has of it.
    fn raise_motion_alarm(&self, id: i64, start: Time90k) {
        let mut c = EventChange::new(
            id,
            self.camera.clone(),
            "motion",
            "motion",
            Phase::Update,
            start,
        )
        .stored(&self.store);
        if let Ok(Some(e)) = self.store.event(id) {
            (c.score, c.zone) = (e.score, e.zone);
        }
        let _ = self.bus.send(c);
    }

    fn save_object(&self, o: &OpenObject) {
        if let Err(err) = self.store.set_object_result(
            o.event_id,
            &candor_storage::events::ObjectResult {
                label: o.info.label,
                score: f64::from(o.info.top_score),
                bbox: o.info.bbox,
                zones: &o.info.zones,
            },
        ) {
            warn!(camera = %self.camera, "updating an object event: {err}");
        }
    }

    /// Saves an object event's snapshots (the box drawn, a thumbnail of
    /// that, and the clean picture) and announces them.
    fn object_snapshot(&self, o: &mut OpenObject, clean: Picture, before: Option<ObjectInfo>) {
        let mut marked = clean.clone();
        let thick = (marked.width / 200).max(2);
        marked.draw_box(o.info.bbox, crate::objects::BOX_COLOUR, thick);
        let pictures = self.encode(&marked).and_then(|(full, thumb)| {
            let c = clean
                .jpeg(80)
                .inspect_err(|e| warn!(camera = %self.camera, "snapshot: {e}"))
                .ok()?;
            Some((full, thumb, c))
        });
        let mut change = self.object_change(o, Phase::Update, None, before);
        if let Some((full, thumb, c)) = pictures {
            match self
                .store
                .save_snapshots(self.camera_id, o.event_id, &full, &thumb, Some(&c))
            {
                Ok(()) => {
                    o.has_snapshot = true;
                    change.has_snapshot = true;
                    change.snapshot = Some(full.into());
                }
                Err(err) => warn!(camera = %self.camera, "saving a snapshot: {err}"),
            }
        }
        let _ = self.bus.send(change);
    }

    fn object_change(
        &self,
        o: &OpenObject,
        phase: Phase,
        end: Option<Time90k>,
        before: Option<ObjectInfo>,
    ) -> EventChange {
        EventChange {
            end,
            score: Some(f64::from(o.info.top_score)),
            zone: o.info.zones.first().cloned(),
            has_snapshot: o.has_snapshot,
            alarm: o.alarm,
            object: Some(o.info.clone()),
            before,
            ..EventChange::new(
                o.event_id,
                self.camera.clone(),
                "object",
                "object",
                phase,
                o.start,
            )
        }
    }
}

/// Whether motion events raise alarms: unless object detection runs on
/// the camera and alarms come from objects alone.
fn motion_alarms(objs: Option<&CameraObjects>) -> bool {
    objs.is_none_or(|o| crate::objects::motion_raises_alarms(&o.cfg, o.working()))
}

fn set_status(s: &Mutex<crate::CameraStatus>, f: impl FnOnce(&mut MotionStatus)) {
    f(s.lock()
        .unwrap_or_else(|e| e.into_inner())
        .motion
        .get_or_insert_default());
}
