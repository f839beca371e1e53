//! `candor`: the site recorder's command-line entry point. Argument
//! parsing and dispatch only: each verb is a module of [`cmd`], and the
//! work lives in the library crates.

mod cmd;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "candor",
    // A release reports the version it was signed as (its stamp).
    version = candor_wire::version(),
    about = "Candor: a video recorder for your cameras that works offline and tells you what it does."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Record the cameras of a config file until SIGINT/SIGTERM.
    Run(cmd::run::Args),
    /// Start the camera simulator with 4 cameras and record them; nothing to set up.
    Demo(cmd::demo::Args),
    /// List recorded spans (and the gaps between them) of a camera.
    Spans(cmd::spans::Args),
    /// Export a time range of a camera as an MP4 file (no transcoding).
    Export(cmd::export::Args),
    /// Serve simulated RTSP cameras looping an MP4 clip: rtsp://LISTEN/cam0 … camN-1.
    Camsim(cmd::camsim::Args),
    /// List events (id, camera, kind, start, end, score), newest first.
    Events(cmd::events::Args),
    /// Run the optional cloud: owner accounts, pairing, the recorders'
    /// link, status and alarms (SQLite by default, PostgreSQL if configured).
    Cloud(cmd::cloud::Args),
    /// The egress ledger: every message and byte sent off-site, oldest first.
    Egress(cmd::egress::Args),
    /// Find ONVIF cameras (WS-Discovery) and, with credentials, their
    /// profiles and RTSP stream URIs, printed as [[cameras]] entries.
    Discover(cmd::discover::Args),
    /// Manage user accounts (headless and air-gapped installs).
    User {
        #[command(subcommand)]
        cmd: cmd::user::Args,
    },
    /// Check that the index and the segment files agree (read-only).
    Check(cmd::check::Args),
    /// Install a newer release from a folder holding a copy of the release
    /// repository (air-gapped sites), after verifying its signatures.
    Update(cmd::update::Args),
    /// Run `<prefix>/current/candor run` and keep it running; after an
    /// update, go back to the last good version if the new one fails.
    Supervise(cmd::supervise::Args),
    /// Publish releases: make keys and the root, sign the root in turn
    /// (threshold, rotation), stamp and sign a release into a repository.
    Release {
        #[command(subcommand)]
        cmd: cmd::release::Args,
    },
}

fn main() {
    one_malloc_arena();
    let cli = Cli::parse();
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    // Logs go to stderr, and the last lines to a ring the web app's
    // diagnostics read (secrets redacted there).
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,retina=warn".into()),
        )
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(candor_web::diagnostics::LogRing),
        )
        .init();
    let r = match cli.cmd {
        Cmd::Run(a) => cmd::run::run(a),
        Cmd::Demo(a) => cmd::demo::run(a),
        Cmd::Spans(a) => cmd::spans::run(a),
        Cmd::Export(a) => cmd::export::run(a),
        Cmd::Camsim(a) => cmd::camsim::run(a),
        Cmd::Events(a) => cmd::events::run(a),
        Cmd::Cloud(a) => cmd::cloud::run(a),
        Cmd::Egress(a) => cmd::egress::run(a),
        Cmd::Discover(a) => cmd::discover::run(a),
        Cmd::User { cmd } => cmd::user::run(cmd),
        Cmd::Check(a) => cmd::check::run(a),
        Cmd::Update(a) => cmd::update::run(a),
        Cmd::Supervise(a) => cmd::supervise::run(a),
        Cmd::Release { cmd } => cmd::release::run(cmd),
    };
    std::process::exit(match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {}", cmd::report(&e));
            cmd::exit_code(&e)
        }
    });
}

/// One glibc malloc arena for the whole process, unless the operator set
/// `MALLOC_ARENA_MAX`. By default glibc gives threads their own arenas (up
/// to 8 per core), and a recorder's short-lived blocking threads left each
/// one fragmented: its memory grew about 150 KB a minute for as long as it
/// ran; with one arena it stayed flat on a quiet machine (bench/soak.py;
/// BENCHMARKS.md, "Memory over time", which also shows what load still
/// adds).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn one_malloc_arena() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    // SAFETY: mallopt only sets a tunable of the C allocator; it takes any
    // positive value for M_ARENA_MAX and is safe to call at any time (here
    // first thing in main, before any other thread exists). Its result (0
    // on failure) only means the default stays.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn one_malloc_arena() {}

/// Hands memory freed since the last call back to the kernel. With one
/// arena, a burst (frames queued while the disk stalls under other load)
/// leaves its freed pages inside the heap, resident, for good: the hour's
/// soak stepped up 2.9 MB in one such minute and stayed there. `candor
/// run` calls this once a minute.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn return_free_memory() {
    // SAFETY: malloc_trim only walks glibc's own free lists and advises the
    // kernel that free pages may be dropped; no memory of ours is touched.
    // Its result (whether anything was released) needs no handling.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn return_free_memory() {}

/// Frames up to this size come from the heap rather than from a mapping of
/// their own. glibc's default (128 KiB, raised as large chunks are freed)
/// maps a 1080p key frame afresh, and every page of a fresh mapping faults
/// on first touch.
const FRAME_FROM_HEAP: usize = 4 << 20;
/// Free memory the heap keeps at its top, per camera, between the minute's
/// [`return_free_memory`]: about what one camera's frames in flight to the
/// writer (a key frame and a 200 ms batch of others) take at 4-8 Mbit/s.
const FREE_KEPT_PER_CAMERA: usize = 256 << 10;
const FREE_KEPT_MIN: usize = 1 << 20;
const FREE_KEPT_MAX: usize = 64 << 20;

/// Lets frame buffers reuse the heap's pages instead of faulting in new
/// ones. A frame is allocated on the runtime's worker and freed by the
/// writer thread up to a batch (200 ms) later, so the heap's top grows by
/// the frames in flight and, with glibc's defaults, is handed back and
/// faulted in again all the time: at 64 cameras about 1,900 page faults a second and
/// 8 % of the recorder's CPU (BENCHMARKS.md, "Frame memory kept"). The
/// memory kept is bounded by the camera count, so a small site keeps
/// little, and the minute's trim still returns it. `candor run` calls this
/// at start and each minute with the cameras it has. An operator's own
/// `MALLOC_TRIM_THRESHOLD_`/`MALLOC_MMAP_THRESHOLD_` or `GLIBC_TUNABLES`
/// for them wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn keep_frame_memory(cameras: usize) {
    let operator = std::env::var_os("MALLOC_TRIM_THRESHOLD_").is_some()
        || std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some()
        || std::env::var("GLIBC_TUNABLES")
            .is_ok_and(|t| t.contains("trim_threshold") || t.contains("mmap_threshold"));
    if operator {
        return;
    }
    let kept = cameras
        .saturating_mul(FREE_KEPT_PER_CAMERA)
        .clamp(FREE_KEPT_MIN, FREE_KEPT_MAX);
    // Both fit a C int: the largest is 64 MiB.
    let (mmap, trim) = (FRAME_FROM_HEAP as libc::c_int, kept as libc::c_int);
    // SAFETY: mallopt only sets tunables of the C allocator, takes its lock,
    // and may be called at any time from any thread. Both values are within
    // glibc's limits (the mapping threshold may be up to 32 MiB). A result
    // of 0 only means the default stays.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, mmap);
        libc::mallopt(libc::M_TRIM_THRESHOLD, trim);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn keep_frame_memory(_cameras: usize) {}
