//! The cloud's test helpers: `candor cloud` as a child process, an owner's
//! API session, PostgreSQL databases, recorders with `[cloud]`, pairing.
#![allow(dead_code)]

use super::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub struct CloudProc {
    child: std::process::Child,
    pub log: PathBuf,
    pub base: String,
    pub cert: PathBuf,
    pub cfg: PathBuf,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl CloudProc {
    /// `database`: None for the embedded SQLite default.
    pub fn start(dir: &Path, database: Option<&str>, extra: &str) -> CloudProc {
        CloudProc::start_on(dir, "127.0.0.1", database, extra)
    }

    /// Listening on `ip`. A certificate for that address may be put in
    /// `dir/cloud-data/tls/{cert,key}.pem` first (else one for loopback is made).
    pub fn start_on(dir: &Path, ip: &str, database: Option<&str>, extra: &str) -> CloudProc {
        let port = free_port();
        let cfg = dir.join("cloud.toml");
        let mut text = format!(
            "listen = \"{ip}:{port}\"\ndata_dir = \"{}\"\n{extra}\n",
            dir.join("cloud-data").display()
        );
        if let Some(db) = database {
            text += &format!("database = \"{db}\"\n");
        }
        std::fs::write(&cfg, text).unwrap();
        CloudProc::start_with(&cfg, &format!("{ip}:{port}"))
    }

    fn start_with(cfg: &Path, addr: &str) -> CloudProc {
        let (child, log) = spawn_candor("cloud", cfg, "info");
        let c = CloudProc {
            child,
            log,
            base: format!("https://{addr}/"),
            cert: cfg.parent().unwrap().join("cloud-data/tls/cert.pem"),
            cfg: cfg.to_owned(),
        };
        wait_for("the cloud to listen", Duration::from_secs(20), || {
            c.log_text().contains("cloud listening")
        });
        c
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, then start again on the same port, data and database.
    pub fn crash_and_restart(mut self, down: impl FnOnce()) -> CloudProc {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        down();
        let addr = self
            .base
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .to_string();
        CloudProc::start_with(&self.cfg.clone(), &addr)
    }
}

impl Drop for CloudProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An owner's session in the cloud app's API.
pub struct Owner {
    pub email: String,
    pub base: String,
    pub cert: PathBuf,
    pub jar: PathBuf,
    csrf: String,
}

impl Owner {
    pub fn register(cloud: &CloudProc, dir: &Path, email: &str) -> Owner {
        let jar = dir.join(format!("jar-{email}"));
        let body =
            serde_json::json!({"email": email, "password": "long enough password"}).to_string();
        let (code, _, v) = curl(
            &cloud.cert,
            &jar,
            "POST",
            &format!("{}api/accounts", cloud.base),
            Some(&body),
            &[],
        );
        assert_eq!(code, 201, "{v}");
        let (headers, owner) = Owner::sign_in(cloud, jar, email, "long enough password");
        assert!(
            headers
                .to_lowercase()
                .contains("httponly; secure; samesite=strict"),
            "{headers}"
        );
        owner
    }

    /// Signs an existing account in, in its own cookie jar.
    pub fn login(cloud: &CloudProc, dir: &Path, email: &str, password: &str, jar: &str) -> Owner {
        Owner::sign_in(cloud, dir.join(jar), email, password).1
    }

    /// Signs in; returns the answer's headers and the session.
    fn sign_in(cloud: &CloudProc, jar: PathBuf, email: &str, password: &str) -> (String, Owner) {
        let body = serde_json::json!({"email": email, "password": password}).to_string();
        let (code, headers, v) = curl(
            &cloud.cert,
            &jar,
            "POST",
            &format!("{}api/login", cloud.base),
            Some(&body),
            &[],
        );
        assert_eq!(code, 200, "{v}");
        let owner = Owner {
            email: email.into(),
            base: cloud.base.clone(),
            cert: cloud.cert.clone(),
            jar,
            csrf: v["csrf"].as_str().unwrap().into(),
        };
        (headers, owner)
    }

    pub fn api(&self, method: &str, path: &str, body: Option<&str>) -> (u16, serde_json::Value) {
        let h = format!("X-CSRF-Token: {}", self.csrf);
        let (code, _, v) = curl(
            &self.cert,
            &self.jar,
            method,
            &format!("{}api/{path}", self.base),
            body,
            &[&h],
        );
        (code, v)
    }

    pub fn sites(&self) -> Vec<serde_json::Value> {
        let (code, v) = self.api("GET", "sites", None);
        assert_eq!(code, 200, "{v}");
        v["sites"].as_array().unwrap().clone()
    }

    pub fn site(&self, id: &str) -> serde_json::Value {
        self.sites()
            .into_iter()
            .find(|s| s["id"] == id)
            .unwrap_or_default()
    }

    pub fn alarms(&self, site: &str) -> Vec<serde_json::Value> {
        let (code, v) = self.api("GET", &format!("alarms?site={site}"), None);
        assert_eq!(code, 200, "{v}");
        v["alarms"].as_array().unwrap().clone()
    }
}

/// `member` joins `org` as `role`, with an invitation its admin made.
#[allow(dead_code)]
pub fn join_org(admin: &Owner, member: &Owner, org: &str, role: &str) {
    let body = serde_json::json!({ "role": role }).to_string();
    let (code, inv) = admin.api("POST", &format!("orgs/{org}/invites"), Some(&body));
    assert_eq!(code, 201, "{inv}");
    let body = serde_json::json!({ "code": inv["code"] }).to_string();
    let (code, v) = member.api("POST", "orgs/join", Some(&body));
    assert_eq!(code, 200, "{v}");
}

/// A fresh PostgreSQL database on the machine's server (trust auth on
/// loopback, as the brief's machine has it).
pub fn pg_database(tag: &str) -> String {
    let name = format!(
        "candor_{tag}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            % 1_000_000
    );
    let o = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
        ])
        .arg(format!("CREATE DATABASE {name}"))
        .output()
        .expect("psql (PostgreSQL client) is installed");
    assert!(
        o.status.success(),
        "creating {name}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    format!("postgres://postgres@127.0.0.1:5432/{name}")
}

pub struct Site {
    pub rec: RecorderProc,
    pub web: Web,
    pub cfg: PathBuf,
    pub sim: Camsim,
    pub dir: PathBuf,
}

/// A recorder with one ONVIF camera (events on demand) and `[cloud]` set.
pub fn site(dir: &Path, cloud: &CloudProc, name: &str, cloud_extra: &str) -> Site {
    std::fs::create_dir_all(dir).unwrap();
    let sim = camsim_with_onvif(1, "cam pass 1", 0);
    let url = format!("rtsp://admin:cam%20pass%201@{}/cam0", sim.rtsp);
    let onvif = format!("onvif = \"http://{}/onvif/cam0/device_service\"", sim.http);
    let cfg = write_config(dir, "", &[("gate", url, &onvif)]);
    let addr = cloud
        .base
        .trim_start_matches("https://")
        .trim_end_matches('/');
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text += &format!(
        "\n[cloud]\naddress = \"{addr}\"\nca = \"{}\"\nname = \"{name}\"\n{cloud_extra}\n",
        cloud.cert.display()
    );
    std::fs::write(&cfg, text).unwrap();
    let o = user_add(&cfg, "admin", "admin", "admin password 1");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rec = start_recorder(&cfg);
    let web = Web::login(&rec, dir, "admin", "admin password 1");
    Site {
        rec,
        web,
        cfg,
        sim,
        dir: dir.to_owned(),
    }
}

impl Site {
    /// Stopped (SIGTERM) and started again on the same config and data.
    #[allow(dead_code)]
    pub fn restart(self) -> Site {
        let Site {
            rec, cfg, sim, dir, ..
        } = self;
        rec.stop();
        let rec = start_recorder(&cfg);
        let web = Web::login(&rec, &dir, "admin", "admin password 1");
        Site {
            rec,
            web,
            cfg,
            sim,
            dir,
        }
    }

    pub fn cloud_state(&self) -> serde_json::Value {
        let (code, _, v) = self.web.api("GET", "cloud", None);
        assert_eq!(code, 200, "{v}");
        v
    }

    pub fn raise(&self, what: &str) {
        raise_on_camsim(&self.sim.http, 0, what);
    }

    /// One whole ONVIF motion event.
    pub fn event(&self) {
        self.raise("motion/on");
        std::thread::sleep(Duration::from_millis(300));
        self.raise("motion/off");
        std::thread::sleep(Duration::from_millis(300));
    }

    pub fn events(&self) -> Vec<serde_json::Value> {
        events_json(&self.cfg)
    }

    pub fn wait_following(&self) {
        wait_for("the ONVIF subscription", Duration::from_secs(20), || {
            self.rec.log_text().contains("following ONVIF events")
        });
    }
}

/// Pairs through both APIs: the recorder asks for a code, the owner enters
/// it, both sides show the same confirmation code, the recorder's admin
/// confirms. Returns the site id and the code (for the replay check).
pub fn pair(site: &Site, owner: &Owner) -> (String, String) {
    pair_web(&site.web, owner)
}

/// [`pair`] for any recorder's web session.
pub fn pair_web(web: &Web, owner: &Owner) -> (String, String) {
    let cloud_state = || {
        let (code, _, v) = web.api("GET", "cloud", None);
        assert_eq!(code, 200, "{v}");
        v
    };
    let (code, _, v) = web.api("POST", "cloud/pair", None);
    assert_eq!(code, 200, "{v}");
    let t = std::time::Instant::now();
    let pair_code = loop {
        let st = cloud_state();
        if let Some(c) = st["pairing"]["code"].as_str() {
            break c.to_string();
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "no pairing code: {st}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(pair_code.len(), 10);
    // Typed on a phone: dashes and lower case are fine.
    let typed = format!("{}-{}", &pair_code[..5], &pair_code[5..]).to_lowercase();
    let (code, claim) = owner.api(
        "POST",
        "pair",
        Some(&serde_json::json!({"code": typed}).to_string()),
    );
    assert_eq!(code, 200, "{claim}");
    let shown_in_app = claim["confirmation"].as_str().unwrap().to_string();
    assert_eq!(shown_in_app.len(), 6);
    let mut on_recorder = String::new();
    wait_for("the claim on the recorder", Duration::from_secs(10), || {
        let s = cloud_state();
        if let Some(c) = s["pairing"]["confirmation"].as_str() {
            assert_eq!(s["pairing"]["claimed_by"], owner.email.as_str());
            on_recorder = c.to_string();
            true
        } else {
            false
        }
    });
    assert_eq!(on_recorder, shown_in_app, "both screens show the same code");
    let (code, _, v) = web.api("POST", "cloud/pair/confirm", None);
    assert_eq!(code, 200, "{v}");
    let mut id = String::new();
    wait_for(
        "the recorder to be paired and connected",
        Duration::from_secs(20),
        || {
            let s = cloud_state();
            match s["paired"]["site"].as_str() {
                Some(p) if s["connected"] == true => {
                    id = p.to_string();
                    true
                }
                _ => false,
            }
        },
    );
    let (_, st) = owner.api(
        "GET",
        &format!("pair/{}", claim["claim"].as_str().unwrap()),
        None,
    );
    assert!(st["state"] == "paired" || st["state"] == "gone", "{st}");
    (id, pair_code)
}

/// A Web Push endpoint (e2e/push_endpoint.py): checks VAPID and decrypts
/// each message with Python's `http_ece`, an implementation nobody here
/// wrote. Start it before the cloud, which must trust `cert`
/// (`push_ca`).
#[allow(dead_code)]
pub struct PushEndpoint {
    child: std::process::Child,
    pub cert: PathBuf,
    /// A browser's subscription to it, for `POST /api/push`.
    pub subscription: serde_json::Value,
    /// What arrived: one JSON object per message (`vapid`, `encoding`,
    /// `plaintext`).
    pub pushed: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
}

#[allow(dead_code)]
impl PushEndpoint {
    pub fn start(dir: &Path) -> PushEndpoint {
        let cert = dir.join("push-cert.pem");
        let mut child = std::process::Command::new("python3")
            .arg(workspace().join("e2e/push_endpoint.py"))
            .env("CERT_OUT", &cert)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("python3");
        let mut out =
            std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
        let first: serde_json::Value = serde_json::from_str(&out.next().unwrap().unwrap()).unwrap();
        let pushed = std::sync::Arc::new(std::sync::Mutex::new(Vec::<serde_json::Value>::new()));
        let p2 = pushed.clone();
        std::thread::spawn(move || {
            for l in out.map_while(Result::ok) {
                p2.lock().unwrap().push(serde_json::from_str(&l).unwrap());
            }
        });
        PushEndpoint {
            child,
            cert,
            subscription: first["subscription"].clone(),
            pushed,
        }
    }

    /// The decrypted payloads so far, as JSON.
    pub fn payloads(&self) -> Vec<serde_json::Value> {
        self.pushed
            .lock()
            .unwrap()
            .iter()
            .filter_map(|m| serde_json::from_str(m["plaintext"].as_str()?).ok())
            .collect()
    }
}

impl Drop for PushEndpoint {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
