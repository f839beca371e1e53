//! The Candor site recorder: configuration, one ingest task per camera, the
//! storage writer and continuous retention, wired together by [`Recorder`].

pub mod bus;
pub mod cloud;
pub mod config;
pub mod config_edit;
pub mod config_history;
pub mod diagnose;
pub mod ingest;
pub mod live;
pub mod motion;
pub mod mqtt;
pub mod objects;
pub mod onvif;
pub mod snapshot;
pub mod updates;
pub mod webhook;

pub use config::{Config, ConfigError};
pub use ingest::{CameraState, CameraStatus};

use candor_media::Time90k;
use candor_storage::retention::{self, CameraLimits, Limits};
use candor_storage::writer::{CameraStats, Writer, WriterOptions};
use candor_storage::{RecoveryReport, StorageError, Store};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;
use tokio::sync::watch;
use tracing::{error, info};

/// How often retention runs when nothing asks it to run sooner.
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(10);

pub struct Recorder {
    store: Arc<Store>,
    cloud: Option<cloud::CloudHandle>,
    updates: Option<updates::Updates>,
    writer: Option<Writer>,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    started: std::time::Instant,
    retention_stop: Option<mpsc::Sender<bool>>,
    retention_thread: Option<std::thread::JoinHandle<()>>,
    pub recovery: RecoveryReport,
}

#[derive(Debug, Clone)]
pub struct Status {
    pub camera: CameraStatus,
    pub storage: CameraStats,
}

/// What the recorder runs for one camera, as others reach it.
#[derive(Clone)]
struct CameraHandle {
    name: String,
    id: i64,
    status: Arc<Mutex<CameraStatus>>,
    live: live::LiveSender,
    motion: watch::Sender<config::MotionConfig>,
    objects: watch::Sender<config::ObjectsConfig>,
    /// The config it runs with: a change other than motion or objects
    /// restarts it.
    cfg: config::CameraConfig,
    /// Stops this camera alone (removed, or restarted with a new config).
    stop: watch::Sender<bool>,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

/// Everything needed to start a camera, now or later (the web app adds
/// cameras at run time).
struct Spawn {
    store: Arc<Store>,
    /// Taken at shutdown: the writer stops once every sender is gone.
    writer: Mutex<Option<tokio::sync::mpsc::Sender<candor_storage::writer::Msg>>>,
    shutdown: watch::Receiver<bool>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    limits: Arc<Mutex<Limits>>,
    /// Camera names, for MQTT's Home Assistant discovery.
    names: watch::Sender<Vec<String>>,
    /// Object detection's sessions, shared by every camera.
    engine: Arc<objects::Engine>,
}

/// The recorder's cameras and event bus, shared with the web server.
struct Shared {
    cameras: std::sync::RwLock<Vec<CameraHandle>>,
    events: bus::EventBus,
    spawn: Option<Spawn>,
}

fn new_status(name: String) -> CameraStatus {
    CameraStatus {
        name,
        state: CameraState::Connecting,
        last_error: None,
        reconnects: 0,
        frames: 0,
        codec: None,
        resolution: None,
        motion: None,
        recent_errors: Default::default(),
    }
}

fn camera_limits(c: &config::CameraConfig) -> CameraLimits {
    CameraLimits {
        max_age_90k: c.max_age.map(|d| d90k(d.0)),
        max_bytes: c.max_bytes.map(|b| b.0),
        event_max_age_90k: c.event_max_age.map(|d| d90k(d.0)),
        events_only: c.record == config::RecordMode::Events,
        pre_capture_90k: d90k(c.pre_capture.0),
        post_capture_90k: d90k(c.post_capture.0),
    }
}

impl Shared {
    fn cameras(&self) -> std::sync::RwLockReadGuard<'_, Vec<CameraHandle>> {
        self.cameras.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts everything for one camera: ingest, its sub stream, ONVIF
    /// events, the motion detector, and its retention limits.
    fn start_camera(&self, c: &config::CameraConfig) -> Result<(), StorageError> {
        let Some(sp) = &self.spawn else {
            return Ok(());
        };
        let name = c.name.get_ref().0.clone();
        let Some(writer) = sp.writer.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
            return Ok(()); // shutting down
        };
        let id = sp.store.ensure_camera(&name)?;
        sp.limits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .cameras
            .insert(id, camera_limits(c));
        let mut tasks = Vec::new();
        // The camera's tasks stop on the recorder's shutdown or on its own.
        let (stop, shutdown) = watch::channel(false);
        {
            let stop = stop.clone();
            let mut global = sp.shutdown.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = global.wait_for(|v| *v) => { let _ = stop.send(true); }
                    _ = stop.closed() => {}
                }
            });
        }
        let status = Arc::new(Mutex::new(new_status(name.clone())));
        let live = live::channel();
        let (objects_tx, objects_rx) = watch::channel(c.objects.clone());
        tasks.push(tokio::spawn(
            ingest::CameraTask {
                live: live.clone(),
                cfg: Arc::new(c.clone()),
                camera_id: id,
                tx: Some(writer),
                status: status.clone(),
                shutdown: shutdown.clone(),
            }
            .run(),
        ));
        if let Some(onvif) = &c.onvif {
            let sink = onvif::EventSink {
                store: sp.store.clone(),
                camera_id: id,
                camera: name.clone(),
                bus: self.events.clone(),
                objects: objects_rx.clone(),
                status: status.clone(),
            };
            tasks.push(tokio::spawn(onvif::follow_events(
                onvif.0.clone(),
                c.url.username.clone().unwrap_or_default(),
                c.url.password.clone().unwrap_or_default(),
                sink,
                shutdown.clone(),
            )));
        }
        // Detect on the sub stream when there is one: decoding it costs a
        // fraction of the main stream. The detector task exists for every
        // camera, idle while motion is off, so the web app can turn it on.
        let frames = match c.sub_stream() {
            Some(url) => {
                let sub = live::channel();
                let mut cfg = c.clone();
                cfg.url = url;
                tasks.push(tokio::spawn(
                    ingest::CameraTask {
                        live: sub.clone(),
                        cfg: Arc::new(cfg),
                        camera_id: id,
                        tx: None,
                        status: Arc::new(Mutex::new(new_status(format!("{name}(sub)")))),
                        shutdown: shutdown.clone(),
                    }
                    .run(),
                ));
                sub
            }
            None => live.clone(),
        };
        let (motion_tx, motion_rx) = watch::channel(c.motion.clone());
        let m = motion::MotionTask {
            camera: name.clone(),
            camera_id: id,
            store: sp.store.clone(),
            bus: self.events.clone(),
            frames,
            status: status.clone(),
            engine: sp.engine.clone(),
        };
        tasks.push(tokio::spawn(m.run(motion_rx, objects_rx, shutdown.clone())));
        let tasks = Arc::new(Mutex::new(tasks));
        let mut cams = self.cameras.write().unwrap_or_else(|e| e.into_inner());
        cams.push(CameraHandle {
            name,
            id,
            status,
            live,
            motion: motion_tx,
            objects: objects_tx,
            cfg: c.clone(),
            stop,
            tasks,
        });
        sp.names
            .send_replace(cams.iter().map(|c| c.name.clone()).collect());
        Ok(())
    }

    /// Stops camera `name` and waits (at most 10 s) until its segment is
    /// closed. False if there is no such camera.
    async fn stop_camera(&self, name: &str) -> bool {
        let handle = {
            let mut cams = self.cameras.write().unwrap_or_else(|e| e.into_inner());
            let Some(i) = cams.iter().position(|c| c.name == name) else {
                return false;
            };
            let h = cams.remove(i);
            if let Some(sp) = &self.spawn {
                sp.names
                    .send_replace(cams.iter().map(|c| c.name.clone()).collect());
            }
            h
        };
        let _ = handle.stop.send(true);
        let tasks = std::mem::take(&mut *handle.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        let all = futures::future::join_all(tasks);
        if tokio::time::timeout(Duration::from_secs(10), all)
            .await
            .is_err()
        {
            tracing::warn!(camera = name, "camera tasks did not stop within 10 s");
        }
        if let Some(sp) = &self.spawn {
            // Its footage stays under the site-wide limits until retention
            // removes it.
            sp.limits
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .cameras
                .remove(&handle.id);
        }
        true
    }
}

impl Recorder {
    /// Opens storage (running recovery), then starts the writer, retention and
    /// one ingest task per camera. Must be called within a tokio runtime.
    pub async fn start(config: &Config) -> Result<Recorder, StorageError> {
        let dir = config.storage.path.clone();
        let (store, recovery) = tokio::task::spawn_blocking(move || Store::open(&dir))
            .await
            .expect("open task")?;
        // Events left "ongoing" by a crash end now: nothing follows them any more.
        if let Ok(n) = store.close_open_events(Time90k::now())
            && n > 0
        {
            info!("closed {n} event(s) left open by the last run");
        }
        let store = Arc::new(store);
        let limits = Arc::new(Mutex::new(Limits {
            max_bytes: config.storage.max_bytes.map(|b| b.0),
            min_free: config.storage.min_free.map(|b| b.0),
            ..Default::default()
        }));
        let (kick_tx, kick_rx) = mpsc::channel::<bool>();
        let kick = kick_tx.clone();
        let kick_fn: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
            let _ = kick.send(true);
        });
        let writer = Writer::spawn(
            store.clone(),
            WriterOptions {
                fsync_interval: config.storage.fsync_interval.0,
                on_write_error: Some(kick_fn),
                segment_target_90k: candor_media::Duration90k::from_std(
                    config.storage.segment_duration.0,
                )
                .0,
            },
        );
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (names, names_rx) = watch::channel(Vec::new());
        let shared = Arc::new(Shared {
            cameras: Default::default(),
            events: bus::bus(),
            spawn: Some(Spawn {
                store: store.clone(),
                writer: Mutex::new(Some(writer.sender())),
                shutdown: shutdown_rx.clone(),
                tasks: Mutex::new(Vec::new()),
                limits: limits.clone(),
                names,
                engine: Arc::new(objects::Engine::new(&config.objects)),
            }),
        });
        for c in &config.cameras {
            shared.start_camera(c)?;
        }
        let retention_thread = {
            let store = store.clone();
            std::thread::Builder::new()
                .name("retention".into())
                .spawn(move || retention_loop(&store, &limits, kick_rx))
                .expect("spawning retention thread")
        };
        let mut tasks = Vec::new();
        for w in &config.webhooks {
            tasks.push(tokio::spawn(webhook::run(
                w.clone(),
                shared.events.clone(),
                shutdown_rx.clone(),
            )));
        }
        let updates = config.updates.as_ref().map(|u| {
            updates::Updates::new(
                u.clone(),
                store.clone(),
                config.storage.path.clone(),
                std::env::var_os(updates::PREFIX_ENV).map(std::path::PathBuf::from),
            )
        });
        if let Some(u) = &updates {
            tasks.push(tokio::spawn(u.clone().run(shutdown_rx.clone())));
        }
        if let Some(m) = &config.mqtt {
            tasks.push(tokio::spawn(mqtt::run(
                m.clone(),
                names_rx,
                shared.events.clone(),
                shutdown_rx.clone(),
            )));
        }
        let cloud = config.cloud.clone().map(|c| {
            let status = StatusSource {
                shared: shared.clone(),
                started: std::time::Instant::now(),
                stats: Some(writer.stats_handle()),
            };
            let (handle, task) = cloud::start(
                c,
                cloud::Deps {
                    store: store.clone(),
                    events: shared.events.clone(),
                    status,
                    shutdown: shutdown_rx.clone(),
                    footage_target_days: config.storage.target_days,
                },
            );
            tasks.push(task);
            handle
        });
        if let Some(sp) = &shared.spawn {
            sp.tasks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(tasks);
        }
        Ok(Recorder {
            store,
            cloud,
            updates,
            writer: Some(writer),
            shared,
            shutdown,
            started: std::time::Instant::now(),
            retention_stop: Some(kick_tx),
            retention_thread: Some(retention_thread),
            recovery,
        })
    }

    /// Event changes as they happen (for integrations and the web app).
    pub fn events(&self) -> &bus::EventBus {
        &self.shared.events
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The cloud link, when `[cloud]` is configured.
    pub fn cloud(&self) -> Option<cloud::CloudHandle> {
        self.cloud.clone()
    }

    /// Update checks and installs, when `[updates]` is configured.
    pub fn updates(&self) -> Option<updates::Updates> {
        self.updates.clone()
    }

    pub fn status(&self) -> Vec<Status> {
        self.status_source().status()
    }

    /// A cheap, cloneable way to read [`Recorder::status`] from elsewhere (the web server).
    pub fn status_source(&self) -> StatusSource {
        StatusSource {
            shared: self.shared.clone(),
            started: self.started,
            stats: self.writer.as_ref().map(|w| w.stats_handle()),
        }
    }

    /// Stops ingest, closes and fsyncs every segment, commits the index.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(sp) = &self.shared.spawn {
            sp.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
        let mut tasks: Vec<_> = self
            .shared
            .spawn
            .as_ref()
            .map(|sp| std::mem::take(&mut *sp.tasks.lock().unwrap_or_else(|e| e.into_inner())))
            .unwrap_or_default();
        for c in self.shared.cameras().iter() {
            tasks.append(&mut c.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        }
        for t in tasks {
            let _ = t.await;
        }
        if let Some(w) = self.writer.take() {
            let _ = tokio::task::spawn_blocking(move || w.shutdown()).await;
        }
        if let Some(stop) = self.retention_stop.take() {
            let _ = stop.send(false);
        }
        if let Some(t) = self.retention_thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        info!("recorder stopped cleanly");
    }
}

#[derive(Clone)]
pub struct StatusSource {
    shared: Arc<Shared>,
    started: std::time::Instant,
    stats: Option<Arc<Mutex<std::collections::HashMap<i64, CameraStats>>>>,
}

impl StatusSource {
    /// A source with no cameras, for tests and fuzzing of the web layer.
    pub fn empty() -> StatusSource {
        StatusSource {
            shared: Arc::new(Shared {
                cameras: Default::default(),
                events: bus::bus(),
                spawn: None,
            }),
            started: std::time::Instant::now(),
            stats: None,
        }
    }

    fn camera(&self, name: &str) -> Option<CameraHandle> {
        self.shared
            .cameras()
            .iter()
            .find(|c| c.name == name)
            .cloned()
    }

    /// A receiver of the named camera's live frames.
    pub fn subscribe(
        &self,
        camera: &str,
    ) -> Option<tokio::sync::broadcast::Receiver<Arc<live::LiveFrame>>> {
        self.camera(camera).map(|c| c.live.subscribe())
    }

    /// Starts recording a camera added at run time (its config must already
    /// be valid and saved). Errors if a camera of that name runs already.
    pub fn add_camera(&self, c: &config::CameraConfig) -> Result<(), String> {
        if self.camera(&c.name.get_ref().0).is_some() {
            return Err(format!(
                "a camera named {:?} exists already",
                c.name.get_ref().0
            ));
        }
        if self.shared.spawn.is_none() {
            return Err("no recorder is attached".into());
        }
        self.shared.start_camera(c).map_err(|e| e.to_string())
    }

    /// Stops recording camera `name` (removed from the config), once its
    /// segment is closed. False if it was not running.
    pub async fn remove_camera(&self, name: &str) -> bool {
        self.shared.stop_camera(name).await
    }

    /// Brings the running cameras in line with `cameras` (a config just
    /// saved): starts new ones, stops removed ones, restarts those whose
    /// stream settings changed, and hands motion and object settings to
    /// the running detectors. Returns what it did, in words.
    pub async fn apply_cameras(&self, cameras: &[config::CameraConfig]) -> Vec<String> {
        let mut done = Vec::new();
        let running: Vec<(String, config::CameraConfig)> = self
            .shared
            .cameras()
            .iter()
            .map(|c| (c.name.clone(), c.cfg.clone()))
            .collect();
        for (name, _) in &running {
            if !cameras.iter().any(|c| c.name.get_ref().0 == *name) {
                self.remove_camera(name).await;
                done.push(format!("camera {name} stopped"));
            }
        }
        for c in cameras {
            let name = c.name.get_ref().0.clone();
            match running.iter().find(|(n, _)| *n == name) {
                None => match self.add_camera(c) {
                    Ok(()) => done.push(format!("camera {name} started")),
                    Err(e) => done.push(format!("camera {name} not started: {e}")),
                },
                Some((_, old)) => {
                    if stream_changed(old, c) {
                        self.remove_camera(&name).await;
                        match self.add_camera(c) {
                            Ok(()) => done.push(format!("camera {name} restarted")),
                            Err(e) => done.push(format!("camera {name} not restarted: {e}")),
                        }
                        continue;
                    }
                    if old.motion != c.motion {
                        self.set_motion_settings(&name, c.motion.clone());
                        done.push(format!("motion settings of {name}"));
                    }
                    if old.objects != c.objects {
                        self.set_objects_settings(&name, c.objects.clone());
                        done.push(format!("object detection of {name}"));
                    }
                }
            }
        }
        done
    }

    /// A camera's pre- and post-capture now, in 90 kHz ticks: the window a
    /// pin of one of its events holds.
    pub fn capture_90k(&self, camera: &str) -> Option<(i64, i64)> {
        self.camera(camera)
            .map(|c| (d90k(c.cfg.pre_capture.0), d90k(c.cfg.post_capture.0)))
    }

    /// A camera's motion settings now.
    pub fn motion_settings(&self, camera: &str) -> Option<config::MotionConfig> {
        self.camera(camera).map(|c| c.motion.borrow().clone())
    }

    /// Applies new motion settings to a running camera (the detector
    /// restarts with them). False if there is no such camera.
    pub fn set_motion_settings(&self, camera: &str, cfg: config::MotionConfig) -> bool {
        self.with_camera(camera, |c| {
            c.cfg.motion = cfg.clone();
            c.motion.send_replace(cfg);
        })
    }

    fn with_camera(&self, camera: &str, f: impl FnOnce(&mut CameraHandle)) -> bool {
        let mut cams = self
            .shared
            .cameras
            .write()
            .unwrap_or_else(|e| e.into_inner());
        match cams.iter_mut().find(|c| c.name == camera) {
            Some(c) => {
                f(c);
                true
            }
            None => false,
        }
    }

    /// A camera's object detection settings now.
    pub fn objects_settings(&self, camera: &str) -> Option<config::ObjectsConfig> {
        self.camera(camera).map(|c| c.objects.borrow().clone())
    }

    /// Applies new object detection settings to a running camera (its
    /// detector restarts with them). False if there is no such camera.
    pub fn set_objects_settings(&self, camera: &str, cfg: config::ObjectsConfig) -> bool {
        self.with_camera(camera, |c| {
            c.cfg.objects = cfg.clone();
            c.objects.send_replace(cfg);
        })
    }

    /// Live viewers per camera, for metrics.
    pub fn viewers(&self) -> Vec<(String, usize)> {
        self.shared
            .cameras()
            .iter()
            .map(|c| (c.name.clone(), c.live.receiver_count()))
            .collect()
    }

    /// Event changes as they happen.
    pub fn subscribe_events(&self) -> tokio::sync::broadcast::Receiver<bus::EventChange> {
        self.shared.events.subscribe()
    }

    /// When the recorder started.
    pub fn started(&self) -> std::time::Instant {
        self.started
    }

    pub fn status(&self) -> Vec<Status> {
        let stats = self
            .stats
            .as_ref()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .unwrap_or_default();
        self.shared
            .cameras()
            .iter()
            .map(|c| Status {
                camera: c.status.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                storage: stats.get(&c.id).cloned().unwrap_or_default(),
            })
            .collect()
    }
}

/// Whether a camera's new config needs it restarted: anything but motion
/// and objects changed. Compared through Debug (CameraConfig holds types
/// without PartialEq), which hides passwords, so those are compared apart.
fn stream_changed(a: &config::CameraConfig, b: &config::CameraConfig) -> bool {
    let plain = |c: &config::CameraConfig| {
        let mut c = c.clone();
        c.motion = Default::default();
        c.objects = Default::default();
        format!("{c:?}")
    };
    let pass = |c: &config::CameraConfig| {
        (
            c.url.password.clone(),
            c.sub_url.as_ref().and_then(|u| u.password.clone()),
        )
    };
    plain(a) != plain(b) || pass(a) != pass(b)
}

fn d90k(d: Duration) -> i64 {
    candor_media::Duration90k::from_std(d).0
}

/// Runs retention every [`RETENTION_INTERVAL`], or at once when kicked with
/// `true` (a write failed: free extra space, see [`retention::run_once`]), and
/// stops on `false`.
fn retention_loop(store: &Store, limits: &Mutex<Limits>, rx: mpsc::Receiver<bool>) {
    let mut emergency = false;
    loop {
        let l = limits.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Err(e) = retention::run_once(store, &l, Time90k::now().0, emergency) {
            error!("retention failed: {e}");
        }
        match rx.recv_timeout(RETENTION_INTERVAL) {
            Ok(true) => emergency = true,
            Ok(false) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
            Err(mpsc::RecvTimeoutError::Timeout) => emergency = false,
        }
    }
}
