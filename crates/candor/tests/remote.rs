//! Remote access through the cloud (docs/design/remote.md), end to end on
//! loopback: a browser's TLS goes to the cloud's port, the cloud reads only
//! the server name and passes the bytes, unopened, over the recorder's link;
//! TLS ends in the recorder's own web server. curl plays the browser: it
//! resolves `<label>.remote.test` to the cloud and trusts only the
//! recorder's own remote-access certificate, so a cloud that answered
//! itself would fail the handshake.

mod common;
use common::cloud::*;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A browser reaching `url` (`https://host:port/`) at the cloud's address.
struct Browser {
    host: String,
    port: u16,
    cert: PathBuf,
    jar: PathBuf,
    csrf: String,
}

impl Browser {
    fn new(url: &str, cert: &Path, jar: PathBuf) -> Browser {
        let hp = url
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .to_string();
        let (host, port) = hp.rsplit_once(':').unwrap();
        Browser {
            host: host.into(),
            port: port.parse().unwrap(),
            cert: cert.to_owned(),
            jar,
            csrf: String::new(),
        }
    }

    fn curl(&self, host: &str) -> Command {
        let mut c = Command::new("curl");
        c.args(["-sS", "--max-time", "20", "--resolve"])
            .arg(format!("{host}:{}:127.0.0.1", self.port))
            .arg("--cacert")
            .arg(&self.cert)
            .arg("-b")
            .arg(&self.jar)
            .arg("-c")
            .arg(&self.jar);
        c
    }

    /// (status, body as JSON) of an API call; status 0 if the connection failed.
    fn api(&self, method: &str, path: &str, body: Option<&str>) -> (u16, serde_json::Value) {
        self.api_at(&self.host.clone(), method, path, body)
    }

    fn api_at(
        &self,
        host: &str,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let mut c = self.curl(host);
        c.args(["-o", "-", "-w", "\n%{http_code}", "-X", method]);
        c.args(["-H", &format!("X-CSRF-Token: {}", self.csrf)]);
        if let Some(b) = body {
            c.args(["-H", "Content-Type: application/json", "-d", b]);
        }
        let o = c
            .arg(format!("https://{host}:{}/api/v1/{path}", self.port))
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let (json, code) = out.rsplit_once('\n').unwrap_or(("", "0"));
        (
            code.trim().parse().unwrap_or(0),
            serde_json::from_str(json).unwrap_or_default(),
        )
    }

    fn login(
        &mut self,
        user: &str,
        password: &str,
        totp: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let mut body = serde_json::json!({ "username": user, "password": password });
        if let Some(c) = totp {
            body["totp"] = c.into();
        }
        let (code, v) = self.api("POST", "login", Some(&body.to_string()));
        if code == 200 {
            self.csrf = v["csrf_token"].as_str().unwrap().to_owned();
        }
        (code, v)
    }

    /// The status of `GET /api/v1/cameras` sent with one extra header.
    fn status_with(&self, header: &str) -> String {
        let o = self
            .curl(&self.host)
            .args(["-o", "/dev/null", "-w", "%{http_code}", "-H", header])
            .arg(format!(
                "https://{}:{}/api/v1/cameras",
                self.host, self.port
            ))
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).to_string()
    }

    fn download(&self, path: &str, out: &Path) -> u16 {
        let o = self
            .curl(&self.host)
            .arg("-o")
            .arg(out)
            .args(["-w", "%{http_code}"])
            .arg(format!("https://{}:{}/api/v1/{path}", self.host, self.port))
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    }
}

fn oathtool(secret: &str) -> String {
    let o = Command::new("oathtool")
        .args(["--totp", "-b", secret])
        .output()
        .expect("oathtool is needed: apt-get install oathtool");
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn port_of(cloud: &CloudProc) -> u16 {
    cloud
        .base
        .trim_end_matches('/')
        .rsplit_once(':')
        .unwrap()
        .1
        .parse()
        .unwrap()
}

/// The first byte the server answers a ClientHello for `name` with, or
/// None if it closes the connection without a byte.
fn first_answer(port: u16, name: &str) -> Option<u8> {
    answer_to(port, &client_hello(name))
}

/// What the cloud answers a connection that sends `bytes` and then waits:
/// the first byte, or None if it closes without one.
fn answer_to(port: u16, bytes: &[u8]) -> Option<u8> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(bytes).unwrap();
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(1) => Some(b[0]),
        Ok(_) => None,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => None,
        Err(e) => panic!("no answer and no close: {e}"),
    }
}

/// The host name in `https://host:port/`.
fn host_of(url: &str) -> String {
    url.trim_start_matches("https://")
        .split([':', '/'])
        .next()
        .unwrap()
        .to_string()
}

fn remote_url(site: &Site) -> String {
    let mut url = String::new();
    wait_for(
        "the cloud to name the recorder",
        Duration::from_secs(20),
        || match site.cloud_state()["remote"]["url"].as_str() {
            Some(u) => {
                url = u.to_owned();
                true
            }
            None => false,
        },
    );
    url
}

/// A cloud with a remote zone (and `cloud_extra`), an owner, and a recorder
/// (`site_extra` in its `[cloud]`) paired to it. Returns the site's id.
fn paired_site(
    dir: &Path,
    cloud_extra: &str,
    site_extra: &str,
) -> (CloudProc, Owner, Site, String) {
    let cloud = CloudProc::start(
        dir,
        None,
        &format!("remote_zone = \"remote.test\"\n{cloud_extra}"),
    );
    let owner = Owner::register(&cloud, dir, "owner@example.com");
    let site = site(&dir.join("site"), &cloud, "Home", site_extra);
    let (site_id, _) = pair(&site, &owner);
    (cloud, owner, site, site_id)
}

/// [`paired_site`], with something started between the cloud and the
/// recorder (`between` returns it and the recorder's `[cloud]` extra).
fn paired_site_with<T>(
    dir: &Path,
    cloud_extra: &str,
    between: impl FnOnce(&CloudProc) -> (T, String),
) -> (CloudProc, Owner, (Site, T), String) {
    let cloud = CloudProc::start(
        dir,
        None,
        &format!("remote_zone = \"remote.test\"\n{cloud_extra}"),
    );
    let (t, site_extra) = between(&cloud);
    let owner = Owner::register(&cloud, dir, "owner@example.com");
    let site = site(&dir.join("site"), &cloud, "Home", &site_extra);
    let (site_id, _) = pair(&site, &owner);
    (cloud, owner, (site, t), site_id)
}

/// The recorder's certificate for its remote name, once made.
fn remote_cert(site: &Site) -> PathBuf {
    let cert = site.dir.join("data/tls/remote/cert.pem");
    wait_for("the remote certificate", Duration::from_secs(10), || {
        cert.exists()
    });
    cert
}

#[test]
fn a_browser_reaches_the_recorders_own_web_app_through_the_cloud() {
    let dir = tempfile::tempdir().unwrap();
    let (cloud, owner, site, site_id) = paired_site(dir.path(), "", "remote_access = true");
    let url = remote_url(&site);
    let cloud_port = cloud
        .base
        .trim_end_matches('/')
        .rsplit_once(':')
        .unwrap()
        .1
        .to_string();
    assert!(
        url.starts_with("https://") && url.ends_with(&format!(".remote.test:{cloud_port}/")),
        "{url}"
    );
    // The owner's app links to it; the label names neither owner nor site.
    assert_eq!(owner.site(&site_id)["remote"].as_str(), Some(url.as_str()));
    assert!(!url.contains("home") && !url.contains(&site_id));

    let cert = remote_cert(&site);
    // Signed in with the recorder's own accounts: the cloud has none. An
    // admin without two-factor is refused remotely (the default policy),
    // answered like a wrong password; the audit log says why.
    let mut b = Browser::new(&url, &cert, dir.path().join("jar-remote"));
    let (code, v) = b.login("admin", "admin password 1", None);
    assert_eq!(
        (code, v["code"].as_str()),
        (401, Some("remote_sign_in_failed")),
        "{v}"
    );
    assert!(v["message"].as_str().unwrap().contains("two-factor"), "{v}");
    let (_, _, audit) = site.web.api("GET", "audit", None);
    assert!(audit.to_string().contains("remote_needs_2fa"), "{audit}");
    // With TOTP (enrolled on the local network), the admin gets in.
    let (code, _, v) = site.web.api("POST", "me/totp", Some("{}"));
    assert_eq!(code, 200, "{v}");
    let secret = v["secret"].as_str().unwrap().to_string();
    let body = format!(r#"{{"code":"{}"}}"#, oathtool(&secret));
    let (code, _, v) = site.web.api("POST", "me/totp/confirm", Some(&body));
    assert_eq!(code, 200, "{v}");
    // A fresh code (the enrolment used this step's).
    std::thread::sleep(Duration::from_secs(31));
    let (code, v) = b.login("admin", "admin password 1", Some(&oathtool(&secret)));
    assert_eq!(code, 200, "{v}");
    let (code, _, sessions) = site.web.api("GET", "sessions", None);
    assert_eq!(code, 200);
    let remote: Vec<_> = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["remote"] == true)
        .collect();
    assert_eq!(remote.len(), 1, "{sessions}");
    assert_eq!(remote[0]["ip"], "127.0.0.1");
    let (_, _, audit) = site.web.api("GET", "audit", None);
    assert!(
        audit
            .to_string()
            .contains("through the cloud (remote access"),
        "{audit}"
    );
    // The local session's cookie is not signed in through the relay, and
    // API tokens work on the local network only.
    let session_cookie = |jar: &Path| {
        std::fs::read_to_string(jar)
            .unwrap()
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f.len() == 7 && f[5] == "__Host-candor_session").then(|| f[6].to_string())
            })
            .expect("a session cookie")
    };
    let cookie = session_cookie(&site.web.jar);
    let stranger = Browser::new(&url, &cert, dir.path().join("jar-empty"));
    let replay =
        |cookie: &str| stranger.status_with(&format!("Cookie: __Host-candor_session={cookie}"));
    assert_eq!(
        replay(&cookie),
        "401",
        "a local session replayed through the relay"
    );
    let (code, _, v) = site
        .web
        .api("POST", "tokens", Some(r#"{"name":"ha","role":"viewer"}"#));
    assert_eq!(code, 201, "{v}");
    let token = v["token"].as_str().unwrap().to_string();
    assert_eq!(
        b.status_with(&format!("Authorization: Bearer {token}")),
        "403"
    );
    let (code, cams) = b.api("GET", "cameras", None);
    assert_eq!(code, 200, "{cams}");
    assert_eq!(cams["cameras"][0]["name"], "gate", "{cams}");

    // Footage through the relay: an export that ffprobe accepts.
    wait_for("footage", Duration::from_secs(30), || {
        recorded_secs(&site.cfg, "gate") >= 6.0
    });
    let s = spans(&site.cfg, "gate")[0].start;
    let mp4 = dir.path().join("remote.mp4");
    let code = b.download(
        &format!(
            "cameras/gate/export.mp4?from={}&to={}",
            s + secs(0.5),
            s + secs(4.0)
        ),
        &mp4,
    );
    assert_eq!(code, 200);
    let p = ffprobe(&mp4);
    assert!(p.duration > 3.0 && p.duration < 4.5, "{p:?}");
    ffmpeg_decodes(&mp4).unwrap();

    // The same port still serves the cloud's own app.
    assert_eq!(owner.sites().len(), 1);

    // Answers at the TLS level: a label that is no site is closed without a
    // byte; the site's label gets the recorder's ServerHello; a name
    // outside the zone gets the cloud's own TLS.
    assert_eq!(first_answer(port_of(&cloud), "aaaaaaaa.remote.test"), None);
    assert_eq!(first_answer(port_of(&cloud), &b.host), Some(0x16));
    assert_eq!(
        first_answer(port_of(&cloud), "cloud.example.com"),
        Some(0x16)
    );
    // Data connections that guess: a token no browser waits for, half a
    // preamble left hanging (closed at the handshake deadline), and bytes
    // after a preamble, 200 of each at once: each is closed without a byte,
    // and the site still answers.
    let port = port_of(&cloud);
    let guess = candor_link::dial::preamble(&"0f".repeat(32));
    let site_hello = client_hello(&host_of(&url));
    let answers: Vec<Option<u8>> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..600)
            .map(|i| {
                let (guess, site_hello) = (&guess, &site_hello);
                sc.spawn(move || match i % 3 {
                    0 => answer_to(port, guess),
                    1 => answer_to(port, &guess[..20]),
                    _ => answer_to(port, &[&guess[..], &site_hello[..]].concat()),
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(answers.iter().all(Option::is_none), "{answers:?}");
    assert_eq!(b.api("GET", "cameras", None).0, 200);
    // A wrong password, a right one without the code, and a wrong code get
    // one answer through the relay (no password oracle).
    let codes: Vec<_> = [
        ("wrong", None),
        ("admin password 1", None),
        ("admin password 1", Some("000000")),
    ]
    .iter()
    .map(|(p, c)| {
        let mut s = Browser::new(&url, &cert, dir.path().join("jar-guess"));
        let (code, v) = s.login("admin", p, *c);
        (
            code,
            v["code"].as_str().unwrap_or_default().to_string(),
            v["message"].as_str().unwrap_or_default().to_string(),
        )
    })
    .collect();
    assert!(
        codes.iter().all(|c| c == &codes[0] && c.0 == 401),
        "{codes:?}"
    );

    // Each tunnel is in the recorder's egress ledger, with its bytes and
    // without its contents.
    let mut rows = Vec::new();
    wait_for("tunnel rows in the ledger", Duration::from_secs(90), || {
        let (code, _, v) = site.web.api("GET", "egress?kind=tunnel", None);
        assert_eq!(code, 200);
        rows = v["entries"].as_array().unwrap().clone();
        rows.len() >= 3
    });
    let total: u64 = rows.iter().map(|r| r["bytes"].as_u64().unwrap()).sum();
    assert!(total > 100_000, "the export's bytes are counted: {rows:?}");
    for r in &rows {
        let s = r["summary"].as_str().unwrap();
        // Browsers come as data connections of their own (`dial`).
        assert!(
            s.contains("end-to-end encrypted")
                && s.contains("127.0.0.1")
                && s.contains("a data connection"),
            "{s}"
        );
    }

    // Switched off on the recorder: the relay closes at once.
    let (code, _, v) = site
        .web
        .api("PUT", "cloud/remote", Some(r#"{"enabled":false}"#));
    assert_eq!(code, 200, "{v}");
    wait_for("remote access to close", Duration::from_secs(20), || {
        b.api("GET", "cameras", None).0 == 0
    });
    assert!(
        std::fs::read_to_string(&site.cfg)
            .unwrap()
            .contains("remote_access = false")
    );
}

#[test]
fn remote_access_is_off_until_an_admin_switches_it_on() {
    let dir = tempfile::tempdir().unwrap();
    let (_cloud, owner, site, site_id) = paired_site(dir.path(), "", "");
    wait_for("the link", Duration::from_secs(20), || {
        site.cloud_state()["connected"] == true
    });
    let st = site.cloud_state();
    assert_eq!(st["remote"]["enabled"], false, "{st}");
    assert!(st["remote"]["url"].is_null(), "{st}");
    assert!(owner.site(&site_id)["remote"].is_null());
    // An operator (not an admin) cannot switch it on.
    let o = user_add(&site.cfg, "op", "operator", "operator password 1");
    assert!(o.status.success());
    let op = Web::login(&site.rec, &site.dir, "op", "operator password 1");
    let (code, _, _) = op.api("PUT", "cloud/remote", Some(r#"{"enabled":true}"#));
    assert_eq!(code, 403);
    // The admin can; the cloud then names the recorder.
    let (code, _, v) = site
        .web
        .api("PUT", "cloud/remote", Some(r#"{"enabled":true}"#));
    assert_eq!(code, 200, "{v}");
    let url = remote_url(&site);
    assert_eq!(owner.site(&site_id)["remote"].as_str(), Some(url.as_str()));
    let (code, _, v) = site.web.api("GET", "audit", None);
    assert_eq!(code, 200);
    assert!(v.to_string().contains("cloud_remote_access_changed"), "{v}");
}

/// Pebble, an RFC 8555 test CA (Debian's `pebble`), validating DNS-01
/// through the cloud's DNS server only. Its own HTTPS uses the cloud's
/// generated certificate (valid for 127.0.0.1), which recorders trust as
/// `acme_ca`.
struct Pebble {
    child: std::process::Child,
    directory: String,
    management: u16,
    tls_ca: PathBuf,
}

impl Pebble {
    fn start(dir: &Path, cloud: &CloudProc, dns_port: u16) -> Pebble {
        let (port, management) = (free_port(), free_port());
        let tls = cloud.cert.parent().unwrap();
        let cfg = dir.join("pebble.json");
        std::fs::write(
            &cfg,
            serde_json::json!({ "pebble": {
                "listenAddress": format!("127.0.0.1:{port}"),
                "managementListenAddress": format!("127.0.0.1:{management}"),
                "certificate": tls.join("cert.pem"),
                "privateKey": tls.join("key.pem"),
                "httpPort": free_port(),
                "tlsPort": free_port(),
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
            }})
            .to_string(),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("pebble.log")).unwrap();
        let child = Command::new("pebble")
            .arg("-config")
            .arg(&cfg)
            .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("pebble is needed: apt-get install pebble");
        wait_for("pebble to listen", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Pebble {
            child,
            directory: format!("https://127.0.0.1:{port}/dir"),
            management,
            tls_ca: cloud.cert.clone(),
        }
    }

    /// Pebble's root (made anew at each start), PEM, written to `out`.
    fn root(&self, out: &Path) {
        let o = Command::new("curl")
            .args(["-sS", "--fail", "--cacert"])
            .arg(&self.tls_ca)
            .arg(format!("https://127.0.0.1:{}/roots/0", self.management))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::write(out, &o.stdout).unwrap();
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A cloud serving the remote zone's DNS, Pebble resolving through it,
/// and a paired recorder with remote access on that asks Pebble for its
/// certificate. Waits until the certificate is issued.
fn acme_site(dir: &Path, cloud_extra: &str) -> (CloudProc, Owner, Site, Pebble, u16) {
    let dns = free_port();
    let (cloud, owner, site, _) = paired_site_with(
        dir,
        &format!(
            "dns_listen = \"127.0.0.1:{dns}\"\nremote_addresses = [\"127.0.0.1\"]\n{cloud_extra}"
        ),
        |cloud| {
            let pebble = Pebble::start(dir, cloud, dns);
            let extra = format!(
                "remote_access = true\nacme_directory = \"{}\"\nacme_ca = \"{}\"\nacme_caa = \"pebble.test\"",
                pebble.directory,
                pebble.tls_ca.display()
            );
            (pebble, extra)
        },
    );
    let (site, pebble) = site;
    wait_for(
        "the CA to issue the remote certificate",
        Duration::from_secs(150),
        || {
            let c = &site.cloud_state()["remote"]["certificate"];
            assert_ne!(c["state"], "off", "{c}");
            c["state"] == "valid"
        },
    );
    (cloud, owner, site, pebble, dns)
}

fn dig(dns: u16, name: &str, kind: &str) -> String {
    let o = dig_with(dns, name, kind, &["+short"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// dig's full answer (status line included), whatever its exit status.
fn dig_status(dns: u16, name: &str, kind: &str) -> String {
    String::from_utf8_lossy(&dig_with(dns, name, kind, &[]).stdout).to_string()
}

fn dig_with(dns: u16, name: &str, kind: &str, extra: &[&str]) -> std::process::Output {
    Command::new("dig")
        .args(["@127.0.0.1", "-p", &dns.to_string(), "+tries=1", "+time=5"])
        .args(extra)
        .args([name, kind])
        .output()
        .expect("dig is needed: apt-get install dnsutils")
}

/// Stops a paired site's recorder and returns what speaking its link takes:
/// its key as a TLS identity, the cloud's certificate as the only root, and
/// the cloud's address.
fn link_of_stopped(
    cloud: &CloudProc,
    site: Site,
) -> (
    candor_link::identity::Identity,
    rustls::RootCertStore,
    String,
) {
    let key = std::fs::read(site.dir.join("data/cloud/key")).unwrap();
    let addr = cloud
        .base
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_owned();
    let Site { rec, .. } = site;
    rec.stop();
    let id = candor_link::identity::Identity::from_pkcs8(&key).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut &std::fs::read(&cloud.cert).unwrap()[..]) {
        roots.add(c.unwrap()).unwrap();
    }
    (id, roots, addr)
}

/// A recorder's link spoken by the test: TLS with `tls` to the cloud at
/// `addr`, and its hello (remote access on or off).
async fn raw_link(
    tls: Arc<rustls::ClientConfig>,
    addr: &str,
    remote: bool,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(addr.rsplit_once(':').unwrap().0.to_owned())
        .unwrap();
    let mut s = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .unwrap();
    let hello = candor_link::Message::Hello {
        proto: candor_link::VERSION,
        software: "candor 0.1".into(),
        sharing: candor_link::Sharing::Health,
        remote,
    };
    s.write_all(&candor_link::encode(&candor_link::Frame::Control(hello)).unwrap())
        .await
        .unwrap();
    s
}

/// How the cloud hands a browser to a recorder, told apart by the link's
/// ALPN: a recorder that offers only `candor-link/1` (a build from before
/// data connections) gets a stream over its link; one that offers
/// `candor-link/1+dial` gets a `dial`, and the browser's bytes on the data
/// connection that presents its token. A token works once; a browser whose
/// data connection never comes is closed. Spoken with the site's own key,
/// the real recorder stopped.
#[test]
fn browsers_reach_older_recorders_by_stream_and_newer_ones_by_data_connection() {
    use candor_link::{Decoder, Frame, Message};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let (cloud, _owner, site, _) = paired_site(dir.path(), "", "remote_access = true");
    let host = host_of(&remote_url(&site));
    let (id, roots, addr) = link_of_stopped(&cloud, site);
    type Link = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;
    // A linked recorder with remote access on, offering these ALPN ids; it
    // waits for the cloud's `remote` answer.
    let link = |alpn: Vec<Vec<u8>>| {
        let mut tls = id.client_config(roots.clone()).unwrap();
        tls.alpn_protocols = alpn;
        let addr = addr.clone();
        async move {
            let mut s = raw_link(Arc::new(tls), &addr, true).await;
            let mut d = Decoder::new();
            let f = next_frame(&mut s, &mut d, |f| {
                matches!(f, Frame::Control(Message::Remote { .. }))
            })
            .await;
            assert!(f.is_some(), "the cloud's remote answer");
            (s, d)
        }
    };
    // The next frame `want` accepts (others are skipped), within 15 s.
    async fn next_frame(
        s: &mut Link,
        d: &mut Decoder,
        want: impl Fn(&Frame) -> bool,
    ) -> Option<Frame> {
        let mut buf = [0u8; 4096];
        loop {
            while let Ok(Some(f)) = d.next_frame() {
                if want(&f) {
                    return Some(f);
                }
            }
            match tokio::time::timeout(Duration::from_secs(15), s.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => d.push(&buf[..n]),
                _ => return None,
            }
        }
    }
    let hello = client_hello(&host);
    let browser = |addr: String, hello: Vec<u8>| async move {
        let mut b = tokio::net::TcpStream::connect(&addr).await.unwrap();
        b.write_all(&hello).await.unwrap();
        b
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // An older recorder: a stream, whose open carries the hello.
        let (mut s, mut d) = link(vec![candor_link::ALPN.to_vec()]).await;
        let _b = browser(addr.clone(), hello.clone()).await;
        let f = next_frame(&mut s, &mut d, |f| {
            matches!(f, Frame::Open { .. } | Frame::Control(Message::Dial { .. }))
        })
        .await;
        match f {
            Some(Frame::Open { payload, .. }) => assert!(payload.ends_with(&hello)),
            other => panic!("an older recorder must get a stream: {other:?}"),
        }
        drop(s);

        // A newer one: a dial; the data connection gets the hello, and the
        // browser what the recorder answers.
        let (mut s, mut d) = link(vec![
            candor_link::ALPN_DIAL.to_vec(),
            candor_link::ALPN.to_vec(),
        ])
        .await;
        let mut b = browser(addr.clone(), hello.clone()).await;
        let f = next_frame(&mut s, &mut d, |f| {
            matches!(f, Frame::Open { .. } | Frame::Control(Message::Dial { .. }))
        })
        .await;
        let Some(Frame::Control(Message::Dial { token, client })) = f else {
            panic!("a newer recorder must get a dial: {f:?}");
        };
        assert!(client.starts_with("127.0.0.1:"), "{client}");
        let mut data = tokio::net::TcpStream::connect(&addr).await.unwrap();
        data.write_all(&candor_link::dial::preamble(&token))
            .await
            .unwrap();
        let mut got = vec![0u8; hello.len()];
        data.read_exact(&mut got).await.unwrap();
        assert_eq!(got, hello, "the browser's hello, first");
        data.write_all(b"\x16from the recorder").await.unwrap();
        let mut back = [0u8; 18];
        b.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"\x16from the recorder");
        // The token again: closed without a byte.
        let mut again = tokio::net::TcpStream::connect(&addr).await.unwrap();
        again
            .write_all(&candor_link::dial::preamble(&token))
            .await
            .unwrap();
        let mut one = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(15), again.read(&mut one))
            .await
            .expect("closed, not left open")
            .unwrap_or(0);
        assert_eq!(n, 0, "a used token pairs nothing");

        // The recorder's hello switches remote access off: the cloud cuts
        // the joined pair itself (this recorder keeps its side open).
        let hello_remote = |on: bool| {
            candor_link::encode(&Frame::Control(Message::Hello {
                proto: candor_link::VERSION,
                software: "candor 0.1".into(),
                sharing: candor_link::Sharing::Health,
                remote: on,
            }))
            .unwrap()
        };
        s.write_all(&hello_remote(false)).await.unwrap();
        assert_closed(&mut b, "the browser, remote access off").await;
        assert_closed(&mut data, "the data connection, remote access off").await;
        s.write_all(&hello_remote(true)).await.unwrap();
        let f = next_frame(&mut s, &mut d, |f| {
            matches!(f, Frame::Control(Message::Remote { .. }))
        })
        .await;
        assert!(f.is_some(), "remote access on again");

        // A dial never answered: the browser is closed after its wait.
        let mut b = browser(addr.clone(), hello.clone()).await;
        let f = next_frame(&mut s, &mut d, |f| {
            matches!(f, Frame::Control(Message::Dial { .. }))
        })
        .await;
        assert!(f.is_some());
        let t = std::time::Instant::now();
        let n = tokio::time::timeout(Duration::from_secs(30), b.read(&mut one))
            .await
            .expect("the waiting browser is closed")
            .unwrap_or(0);
        assert_eq!(n, 0);
        assert!(
            t.elapsed() >= Duration::from_secs(5),
            "closed by the wait, not at once: {:?}",
            t.elapsed()
        );

        // A browser parked, then remote access off and on again before its
        // data connection comes: not joined.
        let mut b = browser(addr.clone(), hello.clone()).await;
        let token = next_dial(&mut s, &mut d).await;
        s.write_all(&hello_remote(false)).await.unwrap();
        s.write_all(&hello_remote(true)).await.unwrap();
        assert!(
            next_frame(&mut s, &mut d, |f| matches!(
                f,
                Frame::Control(Message::Remote { .. })
            ))
            .await
            .is_some()
        );
        let mut data = tokio::net::TcpStream::connect(&addr).await.unwrap();
        data.write_all(&candor_link::dial::preamble(&token))
            .await
            .unwrap();
        assert_closed(&mut data, "a data connection across an off and on").await;
        assert_closed(&mut b, "its browser").await;

        // A newer link of the same key takes the site: the old link's pair
        // is cut.
        let (mut b, mut data) = joined(&mut s, &mut d, &addr, &hello).await;
        let (mut s, mut d) = link(vec![
            candor_link::ALPN_DIAL.to_vec(),
            candor_link::ALPN.to_vec(),
        ])
        .await;
        assert_closed(&mut b, "the browser, link replaced").await;
        assert_closed(&mut data, "the data connection, link replaced").await;

        // The link ends with a pair joined: the cloud cuts it.
        let (mut b, mut data) = joined(&mut s, &mut d, &addr, &hello).await;
        drop(s);
        assert_closed(&mut b, "the browser, link ended").await;
        assert_closed(&mut data, "the data connection, link ended").await;
    });

    async fn next_dial(s: &mut Link, d: &mut Decoder) -> String {
        match next_frame(s, d, |f| matches!(f, Frame::Control(Message::Dial { .. }))).await {
            Some(Frame::Control(Message::Dial { token, .. })) => token,
            other => panic!("a dial: {other:?}"),
        }
    }
    // A browser and its data connection, joined, a byte gone each way.
    async fn joined(
        s: &mut Link,
        d: &mut Decoder,
        addr: &str,
        hello: &[u8],
    ) -> (tokio::net::TcpStream, tokio::net::TcpStream) {
        let mut b = tokio::net::TcpStream::connect(addr).await.unwrap();
        b.write_all(hello).await.unwrap();
        let token = next_dial(s, d).await;
        let mut data = tokio::net::TcpStream::connect(addr).await.unwrap();
        data.write_all(&candor_link::dial::preamble(&token))
            .await
            .unwrap();
        let mut got = vec![0u8; hello.len()];
        data.read_exact(&mut got).await.unwrap();
        data.write_all(b"\x16").await.unwrap();
        let mut back = [0u8; 1];
        b.read_exact(&mut back).await.unwrap();
        (b, data)
    }
}

/// `s` is closed (end of stream, or reset) within 15 s, with no more bytes.
async fn assert_closed(s: &mut tokio::net::TcpStream, what: &str) {
    use tokio::io::AsyncReadExt;
    let mut one = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(15), s.read(&mut one))
        .await
        .unwrap_or_else(|_| panic!("{what}: still open after 15 s"))
        .unwrap_or(0);
    assert_eq!(n, 0, "{what}: closed without more bytes");
}

/// What a paired recorder turned hostile can make the cloud's DNS say: it
/// speaks the real link protocol with the recorder's own key (the real
/// recorder stopped), and asks for challenge records. Only while its hello
/// says remote access is on, only under its own name, at most 6 a minute.
/// Meanwhile 1,000 DNS-over-TCP connections held open from one address do
/// not stop the zone from answering anyone else.
#[test]
fn a_hostile_recorder_gets_only_its_own_challenge_records_and_a_dns_flood_silences_nothing() {
    use candor_link::{Decoder, Frame, Message};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = candor_auth::conn::raise_nofile_limit();
    let dir = tempfile::tempdir().unwrap();
    let dns = free_port();
    let (cloud, _owner, site, _) = paired_site(
        dir.path(),
        &format!("dns_listen = \"127.0.0.1:{dns}\"\nremote_addresses = [\"127.0.0.1\"]"),
        "remote_access = true",
    );
    let host = host_of(&remote_url(&site));
    let challenge = format!("_acme-challenge.{host}");
    let (id, roots, addr) = link_of_stopped(&cloud, site);

    type Link = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;
    let tls = Arc::new(id.client_config(roots).unwrap());
    let connect = |remote: bool| {
        let (tls, addr) = (tls.clone(), addr.clone());
        async move { raw_link(tls, &addr, remote).await }
    };
    // Asks for `txt`; the cloud's answer (None: it said nothing in 20 s).
    async fn ask(s: &mut Link, d: &mut Decoder, txt: &str) -> Option<Option<String>> {
        let m = Message::AcmeDns {
            txt: vec![txt.to_owned()],
            caa: None,
        };
        s.write_all(&candor_link::encode(&Frame::Control(m)).unwrap())
            .await
            .ok()?;
        let mut buf = [0u8; 4096];
        loop {
            while let Ok(Some(f)) = d.next_frame() {
                if let Frame::Control(Message::AcmeDnsDone { error }) = f {
                    return Some(error);
                }
            }
            match tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => d.push(&buf[..n]),
                _ => return None,
            }
        }
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    // A DNS-01 answer's shape (43 characters of base64url), or the link
    // itself refuses to carry it.
    let txt = |i: usize| format!("hostile{i:02}{}", "A".repeat(34));

    // Remote access off in the hello: nothing is published.
    let error = rt.block_on(async {
        let mut s = connect(false).await;
        ask(&mut s, &mut Decoder::new(), &txt(0)).await
    });
    assert!(
        error
            .as_ref()
            .and_then(|e| e.as_deref())
            .is_some_and(|e| e.contains("remote access is off")),
        "{error:?}"
    );
    assert_eq!(
        dig(dns, &challenge, "TXT"),
        "",
        "published with remote access off"
    );

    // On: its own name only (the message names none: the cloud uses the
    // link's), and the 7th in a minute is refused.
    let (link, answers) = rt.block_on(async {
        let mut s = connect(true).await;
        let mut d = Decoder::new();
        let mut out = Vec::new();
        for i in 1..=7 {
            out.push(ask(&mut s, &mut d, &txt(i)).await);
        }
        (s, out)
    });
    for (i, a) in answers.iter().take(6).enumerate() {
        assert_eq!(a, &Some(None), "request {} of 6 in a minute", i + 1);
    }
    assert!(
        answers[6]
            .as_ref()
            .and_then(|e| e.as_deref())
            .is_some_and(|e| e.contains("ACME DNS requests a minute")),
        "{:?}",
        answers[6]
    );
    // Each request replaces the last: one record, the 6th.
    assert_eq!(dig(dns, &challenge, "TXT"), format!("\"{}\"", txt(6)));
    let other = format!(
        "_acme-challenge.{}",
        host.replacen(&host[..8], "abcd2345", 1)
    );
    assert!(
        dig_status(dns, &other, "TXT").contains("NXDOMAIN"),
        "another name"
    );

    // 1,000 DNS-over-TCP connections held open from one address: the zone
    // still answers UDP, and TCP from another address.
    let flood: Vec<std::net::TcpStream> = (0..1000)
        .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", dns)).ok())
        .collect();
    assert!(flood.len() >= 900, "only {} connections", flood.len());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        dig(dns, &challenge, "TXT"),
        format!("\"{}\"", txt(6)),
        "UDP"
    );
    let over_tcp_from = |from: &str| {
        let o = dig_with(dns, &challenge, "TXT", &["+tcp", "+short", "-b", from]);
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    };
    assert_eq!(
        over_tcp_from("127.0.0.2"),
        format!("\"{}\"", txt(6)),
        "TCP from another address"
    );
    // ... while the flooding address itself gets no more than its share
    // (8 connections): its next one is turned away.
    assert!(
        !over_tcp_from("127.0.0.1").contains("hostile06"),
        "the flooding address was served a 1,001st connection"
    );
    drop(flood);
    // The link gone, its challenge records go with it.
    drop(link);
    wait_for("the records to go", Duration::from_secs(10), || {
        dig(dns, &challenge, "TXT").is_empty()
    });
}

/// The remote certificate by ACME DNS-01: the recorder's own key and
/// account, the cloud publishing only the challenge answer and a CAA record
/// binding the name to that account. curl trusting nothing but Pebble's
/// root reaches the recorder's web app through the relay; the name's DNS
/// is as designed; the CA's traffic is in the egress ledger; the key stays
/// private on disk.
/// A paired recorder that floods the cloud with status messages, speaking
/// the real protocol with the site's own key, is refused after
/// `STATE_PER_MINUTE` state messages and its link closed; each would have
/// been a database write and a notice to the owner's browsers. A recorder
/// within the budget (its hello and 30 statuses, a minute's worth at the
/// fastest a real one sends) keeps its link.
#[test]
fn a_recorder_flooding_status_messages_is_refused_and_cut_off() {
    use candor_link::{Decoder, Frame, Message, Refusal};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let (cloud, owner, site, site_id) = paired_site(dir.path(), "", "");
    let (id, roots, addr) = link_of_stopped(&cloud, site);
    let status = |seq| {
        let m = Message::Status {
            seq,
            cameras: None,
            disk_used_percent: Some(seq as f32 % 100.0),
            footage_days: None,
            last_event_at: None,
            footage_target_days: None,
            certificate: None,
        };
        candor_link::encode(&Frame::Control(m)).unwrap()
    };
    // Every frame the cloud sends until it closes the link or `quiet`
    // passes with nothing more; and whether it closed.
    async fn frames(
        s: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
        quiet: Duration,
    ) -> (Vec<Frame>, bool) {
        let (mut d, mut buf, mut out) = (Decoder::new(), [0u8; 4096], Vec::new());
        loop {
            while let Ok(Some(f)) = d.next_frame() {
                out.push(f);
            }
            match tokio::time::timeout(quiet, s.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => d.push(&buf[..n]),
                Ok(_) => return (out, true),
                Err(_) => return (out, false),
            }
        }
    }
    let refusal = |fs: &[Frame]| {
        fs.iter().find_map(|f| match f {
            Frame::Control(Message::Refused { code, reason }) => Some((*code, reason.clone())),
            _ => None,
        })
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let tls = Arc::new(id.client_config(roots).unwrap());
        let mut s = raw_link(tls.clone(), &addr, false).await;
        let burst: Vec<u8> = (1..=1000).flat_map(status).collect();
        // The cloud may close while this is still being written.
        let _ = s.write_all(&burst).await;
        let (fs, closed) = frames(&mut s, Duration::from_secs(15)).await;
        assert!(closed, "the cloud kept a flooding link open");
        let (code, reason) = refusal(&fs).expect("a refusal before the close");
        assert_eq!(code, Refusal::Protocol);
        assert!(
            reason.contains(&format!(
                "more than {}",
                candor_cloud::link::STATE_PER_MINUTE
            )),
            "{reason}"
        );
        assert!(
            matches!(fs.first(), Some(Frame::Control(Message::Welcome { .. }))),
            "the hello was taken before the flood: {:?}",
            fs.first()
        );

        // Within the budget: the link stays, and nothing is refused.
        let mut s = raw_link(tls, &addr, false).await;
        let calm: Vec<u8> = (1..=30).flat_map(status).collect();
        s.write_all(&calm).await.unwrap();
        let (fs, closed) = frames(&mut s, Duration::from_secs(3)).await;
        assert!(!closed, "a recorder within its budget was cut off: {fs:?}");
        assert_eq!(refusal(&fs), None);
    });
    // What a recorder within its budget sends is taken: the site's status
    // is the calm link's last.
    let s = owner.site(&site_id);
    assert_eq!(s["status"]["disk_used_percent"].as_f64(), Some(30.0), "{s}");
}

#[test]
fn the_recorder_gets_a_publicly_trusted_certificate_by_acme_through_the_clouds_dns() {
    let dir = tempfile::tempdir().unwrap();
    let (cloud, _owner, site, pebble, dns) = acme_site(dir.path(), "");
    let url = remote_url(&site);
    let host = host_of(&url);
    let root = dir.path().join("pebble-root.pem");
    pebble.root(&root);
    // A browser trusting only Pebble's root gets the recorder's app.
    let b = Browser::new(&url, &root, dir.path().join("jar"));
    let (code, v) = b.api("GET", "cameras", None);
    assert_eq!(code, 401, "{v}");
    let o = b
        .curl(&host)
        .args(["-o", "/dev/null", "-w", "%{http_code} %{ssl_verify_result}"])
        .arg(&url)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "200 0",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The recorder's own key: the served certificate's key is the one in
    // its data directory, which the cloud never had.
    let key = site.dir.join("data/tls/remote/acme/key.pem");
    let served = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo | openssl s_client -connect 127.0.0.1:{} -servername {host} 2>/dev/null | openssl x509 -pubkey -noout",
            port_of(&cloud)
        ))
        .output()
        .unwrap();
    let ours = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(!ours.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&served.stdout),
        String::from_utf8_lossy(&ours.stdout)
    );
    let cloud_data = std::fs::read_dir(dir.path().join("cloud-data"))
        .unwrap()
        .count();
    assert!(cloud_data > 0);
    let private = std::fs::read(&key).unwrap();
    let mut stolen = std::fs::read(dir.path().join("cloud-data/cloud.db")).unwrap();
    stolen.extend(cloud.log_text().into_bytes());
    assert!(
        !contains(&stolen, &private[40..80]),
        "the cloud holds the recorder's key"
    );

    // The zone: the name resolves to the cloud; its CAA allows only this
    // recorder's ACME account, by DNS-01; the spent answer is gone.
    assert_eq!(dig(dns, &host, "A"), "127.0.0.1");
    let caa = dig(dns, &host, "CAA");
    let account: serde_json::Value = serde_json::from_slice(
        &std::fs::read(site.dir.join("data/tls/remote/acme/account.json")).unwrap(),
    )
    .unwrap();
    let account_url = account["credentials"]["id"].as_str().unwrap();
    assert!(
        caa.contains("pebble.test")
            && caa.contains(&format!("accounturi={account_url}"))
            && caa.contains("validationmethods=dns-01"),
        "{caa}"
    );
    assert_eq!(dig(dns, &format!("_acme-challenge.{host}"), "TXT"), "");
    // Not a resolver, no zone transfer, and names it does not hold are
    // NXDOMAIN with the zone's SOA.
    let outside = dig_status(dns, "example.com", "A");
    assert!(outside.contains("status: REFUSED"), "{outside}");
    let axfr = dig_status(dns, "remote.test", "AXFR");
    assert!(!axfr.contains(&host), "{axfr}");
    let nx = dig_status(dns, "nosuch.nosuch.remote.test", "TXT");
    assert!(
        nx.contains("status: NXDOMAIN") || nx.contains("status: NOERROR"),
        "{nx}"
    );

    // Owner-only files: the key, the account's key.
    use std::os::unix::fs::PermissionsExt;
    for f in ["key.pem", "account.json", "cert.pem"] {
        let m = std::fs::metadata(site.dir.join("data/tls/remote/acme").join(f)).unwrap();
        assert_eq!(m.permissions().mode() & 0o077, 0, "{f}");
    }
    let m = std::fs::metadata(site.dir.join("data/tls/remote/acme")).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o700);

    // Every request to the CA left a ledger row with its bytes; the DNS
    // requests to the cloud are rows with their full contents.
    let (_, _, v) = site.web.api("GET", "egress?kind=acme", None);
    let rows = v["entries"].as_array().unwrap();
    assert!(rows.len() >= 5, "{v}");
    assert!(
        rows.iter().all(|r| r["bytes"].as_u64().unwrap() > 0
            && r["destination"].as_str().unwrap().starts_with("127.0.0.1:")),
        "{v}"
    );
    let (_, _, v) = site.web.api("GET", "egress?kind=acme_dns", None);
    assert!(
        v.to_string().contains("accounturi") || v.to_string().contains(account_url),
        "{v}"
    );

    // A restart keeps the certificate (no new order: the CA's rate limits).
    let before = rows.len();
    let site = site.restart();
    wait_for(
        "the certificate after a restart",
        Duration::from_secs(60),
        || site.cloud_state()["remote"]["certificate"]["state"] == "valid",
    );
    let (_, _, v) = site.web.api("GET", "egress?kind=acme", None);
    assert_eq!(v["entries"].as_array().unwrap().len(), before, "{v}");
    let o = b
        .curl(&host)
        .args(["-o", "/dev/null", "-w", "%{http_code}"])
        .arg(&url)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "200");
}

/// A TCP relay in front of the cloud that keeps every byte it passes, per
/// connection and direction: the bytes the cloud's relay forwards as they
/// are (it passes the browser's TLS on unopened).
struct Tap {
    port: u16,
    to: Arc<AtomicU16>,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Tap {
    fn start() -> Tap {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let to = Arc::new(AtomicU16::new(0));
        let seen: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let (to2, seen2) = (to.clone(), seen.clone());
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(a) = c else { return };
                let Ok(b) = std::net::TcpStream::connect(("127.0.0.1", to2.load(Ordering::SeqCst)))
                else {
                    continue;
                };
                for (mut from, mut into) in
                    [(a.try_clone().unwrap(), b.try_clone().unwrap()), (b, a)]
                {
                    let seen = seen2.clone();
                    std::thread::spawn(move || {
                        let slot = {
                            let mut s = seen.lock().unwrap();
                            s.push(Vec::new());
                            s.len() - 1
                        };
                        let mut buf = [0u8; 65536];
                        loop {
                            let n = match std::io::Read::read(&mut from, &mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            seen.lock().unwrap()[slot].extend_from_slice(&buf[..n]);
                            if std::io::Write::write_all(&mut into, &buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = into.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        Tap { port, to, seen }
    }

    /// Whether any connection's bytes, either way, contain `needle`.
    fn saw(&self, needle: &[u8]) -> bool {
        contains(&self.seen.lock().unwrap().concat(), needle)
    }

    fn bytes(&self) -> usize {
        self.seen.lock().unwrap().iter().map(Vec::len).sum()
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Acceptance 1 and 4, so far: cloud app → Open → the recorder's own web
/// app in Chromium, with the certificate the recorder obtained from Pebble
/// by ACME validated against Pebble's root (trusted by this browser only;
/// no certificate error ignored), then live, playback from a clicked instant
/// and an export ffprobe accepts, all through the relay. The bytes the
/// relay passed hold none of the session's secrets or contents, which the
/// recorder's side of the same session shows; neither do the cloud's
/// database and log.
#[test]
fn the_owner_opens_the_site_from_the_cloud_app_in_chromium_and_the_cloud_sees_only_ciphertext() {
    ensure_playwright();
    let dir = tempfile::tempdir().unwrap();
    // Browsers reach the remote name at the tap's port, which passes to the
    // cloud's (as a NAT in front of it would).
    let tap = Tap::start();
    // A push endpoint (Python's http_ece decrypts what the cloud sends),
    // before the cloud, which must trust its certificate.
    let push = PushEndpoint::start(dir.path());
    let (cloud, owner, site, pebble, _) = acme_site(
        dir.path(),
        &format!(
            "remote_port = {}\npush_ca = \"{}\"\npush_allow_hosts = [\"127.0.0.1\"]",
            tap.port,
            push.cert.display()
        ),
    );
    let (code, v) = owner.api("POST", "push", Some(&push.subscription.to_string()));
    assert_eq!(code, 201, "{v}");
    tap.to.store(port_of(&cloud), Ordering::SeqCst);
    let url = remote_url(&site);
    let o = user_add(&site.cfg, "family", "operator", "family password 1");
    assert!(o.status.success());
    // This browser alone trusts Pebble's root (its own NSS database, in a
    // HOME of its own): no certificate error is ignored for the remote name.
    let home = nss_home(dir.path(), &pebble);
    let pebble_root = dir.path().join("pebble-root.pem");
    wait_for("footage", Duration::from_secs(30), || {
        recorded_secs(&site.cfg, "gate") >= 8.0
    });
    // An alarm: its push carries the event's address on the recorder,
    // through remote access; the browser opens it below, as a tap does.
    site.wait_following();
    site.event();
    let mut alarm_url = String::new();
    wait_for("the alarm's push", Duration::from_secs(30), || {
        let got = push
            .payloads()
            .iter()
            .find_map(|p| p["url"].as_str().map(str::to_owned));
        got.map(|u| alarm_url = u).is_some()
    });
    assert!(
        alarm_url.starts_with(&format!("{url}#alarm=")),
        "{alarm_url} (remote {url})"
    );
    drop(push);
    // The alarm's event, for whoever may see its camera only: a user
    // granted no camera gets the answer of a missing alarm.
    let alarm_id = alarm_url.rsplit('=').next().unwrap().to_string();
    let (code, _, e) = site.web.api("GET", &format!("alarms/{alarm_id}"), None);
    assert_eq!((code, e["camera"].as_str()), (200, Some("gate")), "{e}");
    let mut c = Command::new(env!("CARGO_BIN_EXE_candor"))
        .args(["user", "add", "nobody", "--role", "viewer", "-c"])
        .arg(&site.cfg)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(c.stdin.as_mut().unwrap(), b"nobody password 1\n").unwrap();
    assert!(c.wait().unwrap().success());
    let nobody = Web::login(&site.rec, &site.dir, "nobody", "nobody password 1");
    for id in [alarm_id.as_str(), "999999", "x"] {
        let (code, _, v) = nobody.api("GET", &format!("alarms/{id}"), None);
        assert_eq!(
            (code, v["code"].as_str()),
            (404, Some("no_alarm")),
            "{id}: {v}"
        );
    }
    let shots = dir.path().join("shots");
    std::fs::create_dir_all(&shots).unwrap();
    let download = dir.path().join("remote-export.mp4");
    let result = run_e2e(
        "remote.mjs",
        &[
            ("CLOUD_URL", &cloud.base),
            ("OWNER", &"owner@example.com"),
            ("PASSWORD", &"long enough password"),
            ("REMOTE_URL", &url),
            ("USER", &"family"),
            ("USER_PASSWORD", &"family password 1"),
            ("HOME", &home),
            ("ALARM_URL", &alarm_url),
            ("SHOTS", &shots),
            ("DOWNLOAD", &download),
        ],
        || {
            format!(
                "cloud log:\n{}\nrecorder log:\n{}",
                cloud.log_text(),
                site.rec.log_text()
            )
        },
    );
    eprintln!(
        "remote open → live playing: {} ms; alarm address → event clip playing: {} ms",
        result["open_to_live_ms"], result["alarm_to_clip_ms"]
    );
    // A trusted certificate: the browser also takes the recorder app's
    // service worker (refused for any certificate whose errors it was told
    // to ignore, as for the cloud app's self-signed one here).
    let refused = result["service_worker_refused"].as_array().unwrap();
    assert!(!refused.iter().any(|r| r == "recorder"), "{result}");
    // The output switched on the camera (camsim's relay state), and the
    // recorder's audit log says who did it.
    let relays = Command::new("curl")
        .args([
            "-sS",
            &format!("http://{}/control/cam0/relays", site.sim.http),
        ])
        .output()
        .unwrap();
    let relays: serde_json::Value = serde_json::from_slice(&relays.stdout).unwrap();
    assert_eq!(relays, serde_json::json!({"siren": true, "gate": false}));
    let (_, _, audit) = site.web.api("GET", "audit", None);
    assert!(
        audit.to_string().contains("output_switched")
            && audit.to_string().contains(r#"output \"siren\" set active"#),
        "{audit}"
    );
    // Share links: the stranger's browser played only what was shared,
    // with no account (and got no cookie); a link opens its own clip only.
    assert_eq!(result["stranger_cookies"], 0, "{result}");
    let secs = result["shared_clip_secs"].as_f64().unwrap();
    assert!(secs > 2.5 && secs < 3.6, "{result}");
    let clip_token = result["clip_link"]
        .as_str()
        .unwrap()
        .rsplit("#share=")
        .next()
        .unwrap()
        .to_string();
    let live_token = result["live_link"]
        .as_str()
        .unwrap()
        .rsplit("#share=")
        .next()
        .unwrap()
        .to_string();
    let stranger = Browser::new(&url, &pebble_root, dir.path().join("stranger-jar"));
    let share = |token: &str, path: &str| {
        let o = stranger
            .curl(&stranger.host)
            .args([
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-H",
                &format!("X-Candor-Share: {token}"),
            ])
            .arg(format!(
                "https://{}:{}/api/v1/{path}",
                stranger.host, stranger.port
            ))
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    assert_eq!(share(&clip_token, "share"), "200");
    assert_eq!(share(&clip_token, "share/clip.mp4"), "200");
    assert_eq!(
        share(&clip_token, "share/clip.mp4?camera=other"),
        "404",
        "another camera"
    );
    assert_eq!(
        share(&clip_token, "share/clip.mp4?from=2020-01-01T00:00:00Z"),
        "404",
        "another range"
    );
    assert_eq!(
        share(&clip_token, "share/live"),
        "404",
        "a clip link is not live view"
    );
    assert_eq!(share(&live_token, "share"), "404", "revoked");
    assert_eq!(share("cshare_guess", "share"), "404");
    assert_eq!(
        share(
            &clip_token,
            "cameras/gate/export.mp4?from=2020-01-01T00:00:00Z&to=2020-01-01T00:00:01Z"
        ),
        "401",
        "no account"
    );
    let (_, _, audit) = site.web.api("GET", "audit", None);
    let a = audit.to_string();
    assert!(
        a.contains("share_created") && a.contains("share_viewed") && a.contains("share_revoked"),
        "{audit}"
    );
    // Revoking the clip link ends it too.
    let (_, _, list) = site.web.api("GET", "shares", None);
    let clip_id = list["shares"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "clip")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let (code, _, _) = site.web.api("DELETE", &format!("shares/{clip_id}"), None);
    assert_eq!(code, 200);
    assert_eq!(share(&clip_token, "share/clip.mp4"), "404", "revoked");
    // An API token (local-only, no second factor) cannot mint links that
    // work from anywhere.
    let (code, _, v) = site.web.api(
        "POST",
        "tokens",
        Some(r#"{"name":"script","role":"operator"}"#),
    );
    assert_eq!(code, 201, "{v}");
    let o = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(&site.web.cert)
        .args([
            "-H",
            &format!("Authorization: Bearer {}", v["token"].as_str().unwrap()),
        ])
        .args([
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"camera":"gate"}"#,
        ])
        .arg(format!("{}api/v1/shares", site.web.base))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    assert_eq!(v["code"], "session_required", "{v}");
    // A link's holder cannot flood the recorder (or its audit log): the
    // link answers 429 past its budget of requests a minute.
    let (_, _, v) = site.web.api(
        "POST",
        "shares",
        Some(r#"{"camera":"gate","expires_in_secs":600}"#),
    );
    let flood = v["link"]
        .as_str()
        .unwrap()
        .trim_start_matches("#share=")
        .to_string();
    // (On the LAN: through the relay the cloud's own limit of 30 new
    // connections a minute per client comes first.)
    let lan = |token: &str| {
        let o = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(&site.web.cert)
            .args(["-H", &format!("X-Candor-Share: {token}")])
            .arg(format!("{}api/v1/share", site.web.base))
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let codes: Vec<String> = (0..40).map(|_| lan(&flood)).collect();
    assert_eq!(
        codes.iter().filter(|c| *c == "200").count(),
        30,
        "{codes:?}"
    );
    assert!(codes[30..].iter().all(|c| c == "429"), "{codes:?}");
    let (_, _, audit) = site.web.api("GET", "audit?action=share_viewed", None);
    let lines = audit["entries"].as_array().map_or(0, |e| e.len());
    assert!(
        lines <= 4,
        "one audit line a minute per link: {lines}\n{audit}"
    );
    eprintln!(
        "shared clip played by a stranger; revoked live view ended after {} ms",
        result["revoked_live_ended_ms"]
    );
    let p = ffprobe(&download);
    assert!(p.duration > 2.5 && p.duration < 3.6, "{p:?}");
    ffmpeg_decodes(&download).unwrap();
    // The recorder saw a remote sign-in.
    let (_, _, audit) = site.web.api("GET", "audit", None);
    assert!(
        audit
            .to_string()
            .contains("through the cloud (remote access"),
        "{audit}"
    );

    // Blindness. What the session carried, in the clear on the recorder's
    // side: the password, the session cookie, the API's JSON, MP4 boxes of
    // live (fragments) and of the export, the camera's name.
    let cookie = result["cookies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "__Host-candor_session")
        .and_then(|c| c["value"].as_str())
        .expect("the remote session's cookie")
        .to_string();
    let export = std::fs::read(&download).unwrap();
    let mdat = export
        .windows(4)
        .position(|w| w == b"mdat")
        .expect("an mdat box");
    let (_, _, cams) = site.web.api("GET", "cameras", None);
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("password", b"family password 1".to_vec()),
        ("session cookie", cookie.clone().into_bytes()),
        ("API JSON", br#""csrf_token""#.to_vec()),
        ("camera name in JSON", br#""name":"gate""#.to_vec()),
        ("MP4 ftyp", export[4..12].to_vec()),
        // The mdat box's header with its first bytes, and 32 bytes of
        // coded video from its middle (a 4-byte box name alone turns up in
        // any large random file by chance).
        ("MP4 mdat", export[mdat - 4..mdat + 12].to_vec()),
        (
            "video bytes",
            export[(mdat + export.len()) / 2..][..32].to_vec(),
        ),
        ("fMP4 fragment (moof, mfhd)", b"moof\0\0\0\x10mfhd".to_vec()),
        (
            "share link token",
            result["clip_link"]
                .as_str()
                .unwrap()
                .rsplit("#share=")
                .next()
                .unwrap()
                .as_bytes()
                .to_vec(),
        ),
    ];
    // The recorder's side shows them (so the check can find them) ...
    assert_eq!(&export[4..8], b"ftyp");
    assert!(cams.to_string().contains(r#""name":"gate""#));
    // ... and the relay passed none of them, in either direction.
    eprintln!(
        "relayed {} bytes in {} directions",
        tap.bytes(),
        tap.seen.lock().unwrap().len()
    );
    assert!(
        tap.bytes() > 500_000,
        "the session moved video: {} bytes",
        tap.bytes()
    );
    for (what, needle) in &secrets {
        assert!(!tap.saw(needle), "the relayed bytes hold the {what}");
    }
    // The cloud's database and log hold no secret of the session, no
    // video and not the recorder's key.
    let key = std::fs::read(site.dir.join("data/cloud/key")).unwrap();
    let mut stolen = std::fs::read(dir.path().join("cloud-data/cloud.db")).unwrap();
    stolen.extend(cloud.log_text().into_bytes());
    for (what, needle) in secrets.iter().filter(|(w, _)| !w.starts_with("camera")) {
        assert!(
            !contains(&stolen, needle),
            "the cloud's database or log holds the {what}"
        );
    }
    assert!(
        !contains(&stolen, &key[key.len() - 32..]),
        "the recorder's private key"
    );
}

/// Acceptance 3: slow phones stall only their own streams (an alarm from
/// the same site still arrives; its delay is measured and printed), and a
/// cloud killed mid-session leaves recording and local use alone; the
/// recorder reconnects, and the same remote session works again.
#[test]
fn stalled_phones_and_a_dead_cloud_hurt_neither_alarms_nor_recording() {
    let dir = tempfile::tempdir().unwrap();
    let (cloud, owner, site, site_id) = paired_site(dir.path(), "", "remote_access = true");
    site.wait_following();
    let url = remote_url(&site);
    let o = user_add(&site.cfg, "family", "operator", "family password 1");
    assert!(o.status.success());
    let cert = remote_cert(&site);
    let mut b = Browser::new(&url, &cert, dir.path().join("jar-remote"));
    assert_eq!(b.login("family", "family password 1", None).0, 200);
    wait_for("footage", Duration::from_secs(30), || {
        recorded_secs(&site.cfg, "gate") >= 10.0
    });

    // How long an alarm takes from the camera to the owner's list.
    let alarm_ms = || {
        let before = newest_alarm(&owner, &site_id);
        let t = std::time::Instant::now();
        site.raise("motion/on");
        wait_for("the alarm in the cloud", Duration::from_secs(20), || {
            newest_alarm(&owner, &site_id) > before
        });
        let ms = t.elapsed().as_millis();
        site.raise("motion/off");
        std::thread::sleep(Duration::from_millis(500));
        ms
    };
    let quiet = alarm_ms();
    // Four phones that read at 2 KB/s, each pulling a whole export.
    let s = spans(&site.cfg, "gate")[0].start;
    let path = format!("cameras/gate/export.mp4?from={}&to={}", s, s + secs(9.0));
    let slow: Vec<_> = (0..4)
        .map(|_| {
            b.curl(&b.host)
                .args(["-o", "/dev/null", "--limit-rate", "2k", "--max-time", "60"])
                .arg(format!("https://{}:{}/api/v1/{path}", b.host, b.port))
                .spawn()
                .unwrap()
        })
        .collect();
    wait_for("the stalled streams", Duration::from_secs(10), || {
        site.cloud_state()["remote"]["open"].as_u64() >= Some(4)
    });
    std::thread::sleep(Duration::from_secs(2));
    let stalled: Vec<u128> = (0..3).map(|_| alarm_ms()).collect();
    eprintln!(
        "alarm camera → cloud: {quiet} ms quiet; {stalled:?} ms with 4 stalled remote downloads"
    );
    for mut c in slow {
        let _ = c.kill();
        let _ = c.wait();
    }

    // The cloud dies mid-session.
    let before = recorded_secs(&site.cfg, "gate");
    let local = &site.web;
    let cloud = cloud.crash_and_restart(|| {
        std::thread::sleep(Duration::from_secs(3));
        let (code, _, v) = local.api("GET", "cameras", None);
        assert_eq!(code, 200, "local use while the cloud is down: {v}");
        assert_eq!(
            b.api("GET", "cameras", None).0,
            0,
            "no relay without a cloud"
        );
    });
    assert!(
        recorded_secs(&site.cfg, "gate") > before + 2.0,
        "recording went on"
    );
    // The recorder comes back (backoff from 1 s), and the same session
    // works through the relay again: the label and the session survive.
    wait_for("the recorder to reconnect", Duration::from_secs(30), || {
        site.cloud_state()["remote"]["url"].as_str() == Some(url.as_str())
    });
    let (code, v) = b.api("GET", "cameras", None);
    assert_eq!(code, 200, "{v}");
    assert!(cloud.log_text().contains("cloud listening"));
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// The id of the site's newest alarm in the owner's list (0: none). Not
/// the list's length, which stops at its first page (100).
fn newest_alarm(owner: &Owner, site: &str) -> i64 {
    owner
        .alarms(site)
        .first()
        .and_then(|a| a["id"].as_i64())
        .unwrap_or(0)
}

/// Context switches (voluntary and not) of a process's live threads so far.
fn ctx_switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("status")).ok())
        .flat_map(|status| {
            status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

/// The port in `https://host:port/`.
fn port_of_url(url: &str) -> u16 {
    url.trim_end_matches('/')
        .rsplit_once(':')
        .unwrap()
        .1
        .parse()
        .unwrap()
}

/// HAProxy in TCP mode routing by SNI (`*.remote.test`) to the recorder's
/// web port, as an operator would put in front: (process, port).
fn start_haproxy(dir: &Path, rec_port: u16) -> (std::process::Child, u16) {
    let hp_port = free_port();
    let hp_cfg = dir.join("haproxy.cfg");
    std::fs::write(
        &hp_cfg,
        format!(
            "global\n  maxconn 4096\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 120s\n  timeout server 120s\n\
             frontend fe\n  bind 127.0.0.1:{hp_port}\n  tcp-request inspect-delay 5s\n  tcp-request content accept if {{ req.ssl_hello_type 1 }}\n\
             \x20 use_backend rec if {{ req.ssl_sni -m end .remote.test }}\nbackend rec\n  server r1 127.0.0.1:{rec_port}\n"
        ),
    )
    .unwrap();
    let child = Command::new("haproxy")
        .args(["-db", "-f"])
        .arg(&hp_cfg)
        .spawn()
        .expect("haproxy (apt-get install haproxy)");
    wait_for("haproxy to listen", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", hp_port)).is_ok()
    });
    (child, hp_port)
}

/// Round trips of `GET /api/v1/health` on one kept-alive TLS connection to
/// `port` asking for `name`, trusting only `cert`: milliseconds each.
fn round_trips(port: u16, name: &str, cert: &Path, n: usize) -> Vec<f64> {
    use std::io::{Read, Write};
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(cert).unwrap(),
    )) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let conn = rustls::ClientConnection::new(
        Arc::new(config),
        rustls::pki_types::ServerName::try_from(name.to_string()).unwrap(),
    )
    .unwrap();
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_nodelay(true).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let req = format!("GET /api/v1/health HTTP/1.1\r\nHost: {name}\r\n\r\n");
    let mut out = Vec::with_capacity(n);
    let mut buf = vec![0u8; 16384];
    for i in 0..n + 20 {
        let t = std::time::Instant::now();
        s.write_all(req.as_bytes()).unwrap();
        let mut got = Vec::new();
        // Headers, then Content-Length bytes.
        loop {
            let k = s.read(&mut buf).unwrap();
            assert!(k > 0, "closed");
            got.extend_from_slice(&buf[..k]);
            if let Some(h) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&got[..h]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map_or(0, |v| v.trim().parse().unwrap());
                if got.len() >= h + 4 + len {
                    break;
                }
            }
        }
        if i >= 20 {
            out.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    out
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// The relay against direct LAN access and against HAProxy doing the same
/// SNI passthrough (`req.ssl_sni`), side by side in one run. Prints figures
/// for BENCHMARKS.md; asserts nothing about speed. Run:
/// `cargo test --release -p candor --test remote bench_relay -- --ignored --nocapture`
#[test]
#[ignore]
fn bench_relay() {
    let dir = tempfile::tempdir().unwrap();
    let (cloud, _owner, site, _) = paired_site(
        dir.path(),
        "",
        "remote_access = true\nremote_2fa = \"nobody\"",
    );
    let url = remote_url(&site);
    let remote_cert = remote_cert(&site);
    let host = host_of(&url);
    let cloud_port = port_of_url(&cloud.base);
    let rec_port = port_of_url(&site.web.base);
    let (mut haproxy, hp_port) = start_haproxy(dir.path(), rec_port);
    wait_for("footage", Duration::from_secs(40), || {
        recorded_secs(&site.cfg, "gate") >= 20.0
    });

    // 1. Latency: request round trips on a kept-alive connection.
    let local_cert = site.dir.join("data/tls/cert.pem");
    let n = 2000;
    let mut direct = round_trips(rec_port, "localhost", &local_cert, n);
    let mut relay = round_trips(cloud_port, &host, &remote_cert, n);
    let mut hap = round_trips(hp_port, &host, &remote_cert, n);
    println!("round trip, ms (p50 / p99 / max) over {n} requests each:");
    for (name, v) in [
        ("direct", &mut direct),
        ("candor relay", &mut relay),
        ("haproxy", &mut hap),
    ] {
        println!(
            "  {name:<13} {:.3} / {:.3} / {:.3}",
            pct(v, 0.5),
            pct(v, 0.99),
            pct(v, 1.0)
        );
    }
    println!(
        "  added by the relay: p50 {:.3} ms, p99 {:.3} ms (haproxy: {:.3}, {:.3})",
        pct(&mut relay, 0.5) - pct(&mut direct, 0.5),
        pct(&mut relay, 0.99) - pct(&mut direct, 0.99),
        pct(&mut hap, 0.5) - pct(&mut direct, 0.5),
        pct(&mut hap, 0.99) - pct(&mut direct, 0.99),
    );

    // 2. CPU per Mbit/s: the same export downloaded again and again through
    // each, 4 at a time; the relay's CPU against HAProxy's.
    let s = spans(&site.cfg, "gate")[0].start;
    let path = format!(
        "api/v1/cameras/gate/export.mp4?from={}&to={}",
        s,
        s + secs(18.0)
    );
    // A session through each path (through HAProxy the recorder sees a LAN
    // connection, so a remote session's cookie is not valid there).
    let mut b = Browser::new(&url, &remote_cert, dir.path().join("jar-bench"));
    assert_eq!(b.login("admin", "admin password 1", None).0, 200);
    let mut h = Browser::new(
        &format!("https://{host}:{hp_port}/"),
        &remote_cert,
        dir.path().join("jar-hap"),
    );
    assert_eq!(h.login("admin", "admin password 1", None).0, 200);
    let run = |port: u16, pid: u32, jar: &Path| -> (f64, f64, f64) {
        let cpu0 = cpu_secs(pid);
        let t = std::time::Instant::now();
        let kids: Vec<_> = (0..4)
            .map(|_| {
                let mut c = Command::new("curl");
                c.args(["-sS", "--resolve"])
                    .arg(format!("{host}:{port}:127.0.0.1"))
                    .arg("--cacert")
                    .arg(&remote_cert)
                    .arg("-b")
                    .arg(jar)
                    .args(["-w", "%{size_download}\n"]);
                // One `-o` per URL: curl applies each to one transfer.
                for _ in 0..50 {
                    c.args(["-o", "/dev/null"])
                        .arg(format!("https://{host}:{port}/{path}"));
                }
                c.output().unwrap()
            })
            .collect();
        let bytes: f64 = kids
            .iter()
            .flat_map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .map(|l| l.parse::<f64>().unwrap_or(0.0))
                    .collect::<Vec<_>>()
            })
            .sum();
        (bytes, t.elapsed().as_secs_f64(), cpu_secs(pid) - cpu0)
    };
    // Rounds alternate between the two (CANDOR_ROUNDS each, 5 by default:
    // the relay admits 30 opens a minute from one address and a round makes
    // 4), and the figures add all of them up, so a passing burst of other
    // work on the machine weighs on both.
    // CANDOR_PROFILE="perf record -g -o /tmp/{who}.perf -p {pid}" (or
    // `strace -c -f -o /tmp/{who}.txt -p {pid}`): each contender's last
    // round runs under that command, attached to it alone.
    let rounds: usize = std::env::var("CANDOR_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let profiled = |who: &str, pid: u32, port: u16, jar: &Path, last: bool| {
        let prof = std::env::var("CANDOR_PROFILE")
            .ok()
            .filter(|_| last)
            .map(|cmd| {
                let cmd = cmd.replace("{pid}", &pid.to_string()).replace("{who}", who);
                let mut words = cmd.split_whitespace();
                let p = Command::new(words.next().unwrap())
                    .args(words)
                    .spawn()
                    .unwrap();
                std::thread::sleep(Duration::from_millis(500));
                p
            });
        let r = run(port, pid, jar);
        if let Some(p) = prof {
            let _ = Command::new("kill")
                .args(["-INT", &p.id().to_string()])
                .status();
            let _ = p.wait_with_output();
        }
        r
    };
    let add = |a: (f64, f64, f64), b: (f64, f64, f64)| (a.0 + b.0, a.1 + b.1, a.2 + b.2);
    let (mut relay_sum, mut hap_sum) = ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0));
    for i in 0..rounds {
        let last = i + 1 == rounds;
        let r = profiled("relay", cloud.pid(), cloud_port, &b.jar, last);
        let h = profiled("haproxy", haproxy.id(), hp_port, &h.jar, last);
        println!(
            "  round {}: relay {:.3} ms CPU per Mbit, haproxy {:.3}",
            i + 1,
            1000.0 * r.2 / (r.0 * 8.0 / 1e6),
            1000.0 * h.2 / (h.0 * 8.0 / 1e6)
        );
        relay_sum = add(relay_sum, r);
        hap_sum = add(hap_sum, h);
    }
    let ((rb, rt, rc), (hb, ht, hc)) = (relay_sum, hap_sum);
    let mbit = |bytes: f64| bytes * 8.0 / 1e6;
    println!("bulk ({rounds} rounds of 4 clients × 50 exports of 18 s):");
    println!(
        "  candor relay: {:.0} Mbit in {rt:.1} s, relay CPU {rc:.2} s = {:.3} ms per Mbit",
        mbit(rb),
        1000.0 * rc / mbit(rb)
    );
    println!(
        "  haproxy:      {:.0} Mbit in {ht:.1} s, haproxy CPU {hc:.2} s = {:.3} ms per Mbit",
        mbit(hb),
        1000.0 * hc / mbit(hb)
    );
    println!(
        "  relay / haproxy CPU per Mbit: {:.2}×",
        (rc / mbit(rb)) / (hc / mbit(hb))
    );
    let _ = haproxy.kill();
    let _ = haproxy.wait();
}

/// Concurrent remote viewers (issue 13, acceptance 5): N people, each with
/// their own account and address, pull footage through the relay at
/// 4 Mbit/s (an export read at 500 KiB/s, as a player streams it) for 20 s,
/// while alarms go from the camera to the cloud. Then the largest round
/// again through HAProxy (SNI passthrough), for the CPU per Mbit/s of the
/// two at the same paced load. Prints the rate each viewer got, each
/// alarm's delay and the CPU; asserts nothing about speed. A first round
/// with no viewer measures what the cloud process spends meanwhile on its
/// other work (the alarms, and the owner's API the test polls for them over
/// a new TLS connection each time), which HAProxy's figure does not hold;
/// the ratio is given with and without it.
///
/// `cargo test --release -p candor --test remote bench_viewers -- --ignored --nocapture`
#[test]
#[ignore]
fn bench_viewers() {
    const MAX: usize = 30;
    let dir = tempfile::tempdir().unwrap();
    let (cloud, owner, site, site_id) = paired_site(
        dir.path(),
        "",
        "remote_access = true\nremote_2fa = \"nobody\"",
    );
    site.wait_following();
    let url = remote_url(&site);
    let cert = remote_cert(&site);
    let host = host_of(&url);
    let rec_port = port_of_url(&site.web.base);
    let (mut haproxy, hp_port) = start_haproxy(dir.path(), rec_port);
    let relay = Browser::new(&url, &cert, dir.path().join("jar-relay"));
    let hap = Browser::new(
        &format!("https://{host}:{hp_port}/"),
        &cert,
        dir.path().join("jar-hap"),
    );
    // Each viewer: an account (8 playbacks at once per user is the
    // recorder's own limit), signed in from its own address (the relay
    // counts streams and opens per client address), per path.
    let viewer = |br: &Browser, i: usize, args: &[&str]| {
        let jar = dir.path().join(format!("jar-{}-{i}", br.port));
        let mut c = br.curl(&br.host);
        c.args(["--interface", &format!("127.0.0.{}", 10 + i)])
            .arg("-b")
            .arg(&jar)
            .arg("-c")
            .arg(&jar)
            .args(args);
        c
    };
    for i in 0..MAX {
        let o = user_add(&site.cfg, &format!("v{i}"), "viewer", "viewer password 1");
        assert!(o.status.success());
        let body = format!(r#"{{"username":"v{i}","password":"viewer password 1"}}"#);
        for br in [&relay, &hap] {
            let o = viewer(br, i, &["-o", "/dev/null", "-w", "%{http_code}"])
                .args(["-H", "Content-Type: application/json", "-d", &body])
                .arg(format!("https://{}:{}/api/v1/login", br.host, br.port))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&o.stdout), "200", "login v{i}");
        }
    }
    wait_for("a minute of footage", Duration::from_secs(90), || {
        recorded_secs(&site.cfg, "gate") >= 60.0
    });
    let s = spans(&site.cfg, "gate")[0].start;
    let export = |br: &Browser| {
        format!(
            "https://{}:{}/api/v1/cameras/gate/export.mp4?from={}&to={}",
            br.host,
            br.port,
            s,
            s + secs(58.0)
        )
    };
    let alarm_ms = || {
        let before = newest_alarm(&owner, &site_id);
        let t = std::time::Instant::now();
        site.raise("motion/on");
        wait_for("the alarm in the cloud", Duration::from_secs(20), || {
            newest_alarm(&owner, &site_id) > before
        });
        let ms = t.elapsed().as_millis() as u64;
        site.raise("motion/off");
        ms
    };
    let quiet: Vec<u64> = (0..5)
        .map(|_| {
            let ms = alarm_ms();
            std::thread::sleep(Duration::from_millis(700));
            ms
        })
        .collect();
    println!("alarm camera → cloud, quiet: {quiet:?} ms");
    println!(
        "path, viewers | Mbit/s per viewer (min / median) | total Mbit/s | CPU % of a core | ms CPU per Mbit | context switches per Mbit | alarm delays, ms"
    );
    // CPU seconds per second of the cloud's own work, from the first round.
    let mut baseline = 0.0;
    // CANDOR_PAIRS=K (1 by default): K rounds of MAX viewers alternating
    // between the relay and HAProxy, each pair's ratio and their median
    // (single rounds at a player's pace are a few hundred ms of CPU, which
    // this VM's noise moves by a third). CANDOR_PAIRS_ONLY=1 skips the
    // rounds of 1, 8 and 16 viewers.
    let pairs: usize = std::env::var("CANDOR_PAIRS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    // First one unmeasured round of MAX through each (the first round
    // through a path has paid for what later ones reuse: in the runs of
    // 2026-12-04 the relay's first came out 1.6× its next).
    let mut rounds = vec![
        (&relay, cloud.pid(), MAX, false),
        (&hap, haproxy.id(), MAX, false),
        (&relay, cloud.pid(), 0usize, true),
    ];
    if std::env::var_os("CANDOR_PAIRS_ONLY").is_none() {
        rounds.extend([1, 8, 16].map(|n| (&relay, cloud.pid(), n, true)));
    }
    for _ in 0..pairs {
        rounds.extend([
            (&relay, cloud.pid(), MAX, true),
            (&hap, haproxy.id(), MAX, true),
        ]);
    }
    // Per pair: (relay ms per Mbit, its total Mbit/s, its context switches
    // per Mbit), then HAProxy's.
    let mut measured: Vec<(f64, f64, f64)> = Vec::new();
    for (br, pid, n, measure) in rounds {
        let cpu0 = cpu_secs(pid);
        let switches0 = ctx_switches(pid);
        let t = std::time::Instant::now();
        // The export, paced, for 20 s (curl ends the transfer then and
        // prints what it moved in how long).
        let url = export(br);
        let viewers: Vec<_> = (0..n)
            .map(|i| {
                viewer(
                    br,
                    i,
                    &[
                        "--limit-rate",
                        "500k",
                        "--max-time",
                        "20",
                        "-o",
                        "/dev/null",
                    ],
                )
                .args(["-w", "%{size_download} %{time_total}\n"])
                .arg(&url)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
            })
            .collect();
        std::thread::sleep(Duration::from_secs(2));
        let mut delays = Vec::new();
        while t.elapsed() < Duration::from_secs(18) {
            delays.push(alarm_ms());
            std::thread::sleep(Duration::from_millis(1500));
        }
        let mut rates: Vec<f64> = viewers
            .into_iter()
            .map(|c| {
                let o = c.wait_with_output().unwrap();
                let (bytes, time) = String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .filter_map(|l| {
                        let (a, b) = l.split_once(' ')?;
                        Some((a.parse::<f64>().ok()?, b.parse::<f64>().ok()?))
                    })
                    .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
                if time > 0.0 {
                    bytes * 8.0 / 1e6 / time
                } else {
                    0.0
                }
            })
            .collect();
        let (cpu, secs_run) = (cpu_secs(pid) - cpu0, t.elapsed().as_secs_f64());
        let switches = ctx_switches(pid).saturating_sub(switches0);
        if n == 0 {
            baseline = cpu / secs_run;
            println!(
                "relay     0 | the cloud's own work meanwhile: {:.1} % of a core, {:.0} context switches a second",
                100.0 * baseline,
                switches as f64 / secs_run
            );
            std::thread::sleep(Duration::from_secs(3));
            continue;
        }
        rates.sort_by(f64::total_cmp);
        let total: f64 = rates.iter().sum();
        let ms_per_mbit = 1000.0 * cpu / (total * secs_run);
        let switches_per_mbit = switches as f64 / (total * secs_run);
        if n == MAX && measure {
            measured.push((ms_per_mbit, total, switches_per_mbit));
        }
        println!(
            "{}{} {n:>3} | {:.2} / {:.2} | {total:.1} | {:.1} | {ms_per_mbit:.3} | {switches_per_mbit:.1} | {delays:?}",
            if measure { "" } else { "(warm-up) " },
            if br.port == hp_port {
                "haproxy"
            } else {
                "relay  "
            },
            rates[0],
            rates[rates.len() / 2],
            100.0 * cpu / secs_run
        );
        std::thread::sleep(Duration::from_secs(3));
    }
    let mut raw = Vec::new();
    let mut net = Vec::new();
    for (k, p) in measured.chunks_exact(2).enumerate() {
        let ((relay, total, rs), (hap, _, hs)) = (p[0], p[1]);
        let own = (relay * total - 1000.0 * baseline) / total;
        println!(
            "pair {k}: relay / haproxy CPU per Mbit {:.2}×, without the cloud's own work {:.2}×; context switches per Mbit {rs:.1} / {hs:.1}",
            relay / hap,
            own / hap
        );
        raw.push(relay / hap);
        net.push(own / hap);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "relay / haproxy CPU per Mbit at {MAX} paced viewers, median of {pairs}: {:.2}×; without the cloud's own work: {:.2}×",
        median(&mut raw),
        median(&mut net)
    );
    let _ = haproxy.kill();
    let _ = haproxy.wait();
}

/// This browser alone trusts Pebble's root: an NSS database in a HOME of
/// its own, so no certificate error is ignored for the remote name.
fn nss_home(dir: &Path, pebble: &Pebble) -> PathBuf {
    let home = dir.join("home");
    let nssdb = home.join(".pki/nssdb");
    std::fs::create_dir_all(&nssdb).unwrap();
    let root = dir.join("pebble-root.pem");
    pebble.root(&root);
    let db = format!("sql:{}", nssdb.display());
    for args in [
        vec!["-N", "--empty-password", "-d", &db],
        vec![
            "-A",
            "-t",
            "C,,",
            "-n",
            "pebble",
            "-i",
            root.to_str().unwrap(),
            "-d",
            &db,
        ],
    ] {
        let o = Command::new("certutil")
            .args(&args)
            .output()
            .expect("certutil: apt-get install libnss3-tools");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    home
}

/// Issue 15's acceptance 1, in Chromium (e2e/installers.mjs): two installer
/// organisations, three sites (Home and Shop linked to A, Barn to B). Each
/// fleet view shows exactly its sites; A's technician asks for an hour of
/// configuration access, the owner approves on the recorder, and the
/// technician, through the relay, changes gate's motion sensitivity and
/// adds a camera; the owner sees both as versions with diffs and in the
/// audit log, rolls the camera back (stopped at once) and ends the grant:
/// the technician is out within 5 s.
#[test]
fn installers_fleet_request_change_rollback_and_revoke_in_chromium() {
    ensure_playwright();
    let dir = tempfile::tempdir().unwrap();
    // The owner's phone (a push endpoint that decrypts what it gets).
    let push = PushEndpoint::start(dir.path());
    let (cloud, owner, home, pebble, _) = acme_site(
        dir.path(),
        &format!(
            "push_ca = \"{}\"\npush_allow_hosts = [\"127.0.0.1\"]",
            push.cert.display()
        ),
    );
    let (code, v) = owner.api("POST", "push", Some(&push.subscription.to_string()));
    assert_eq!(code, 201, "{v}");
    let home_id = owner.sites()[0]["id"].as_str().unwrap().to_owned();
    let remote = remote_url(&home);
    let shop = site(&dir.path().join("shop"), &cloud, "Shop", "");
    let (shop_id, _) = pair(&shop, &owner);
    let barn = site(&dir.path().join("barn"), &cloud, "Barn", "");
    let (barn_id, _) = pair(&barn, &owner);
    let boss_a = Owner::register(&cloud, dir.path(), "boss@acme.example");
    let boss_b = Owner::register(&cloud, dir.path(), "boss@other.example");
    let _tech = Owner::register(&cloud, dir.path(), "tech@acme.example");
    let (_, a) = boss_a.api("POST", "orgs", Some(r#"{"name":"ACME Security"}"#));
    let org_a = a["id"].as_str().unwrap().to_owned();
    let (_, b) = boss_b.api("POST", "orgs", Some(r#"{"name":"Other Alarms"}"#));
    let org_b = b["id"].as_str().unwrap().to_owned();
    // The technician joins org A in the browser, with an invitation.
    // Shop and Barn are linked here; the browser links Home.
    for (boss, org, site) in [(&boss_a, &org_a, &shop_id), (&boss_b, &org_b, &barn_id)] {
        let (_, c) = boss.api("POST", &format!("orgs/{org}/codes"), None);
        let body = serde_json::json!({ "code": c["code"], "level": "health" }).to_string();
        let (code, v) = owner.api("POST", &format!("sites/{site}/link"), Some(&body));
        assert_eq!(code, 204, "{v}");
    }
    // The simulator is on loopback: the camera form refuses it otherwise.
    allow_loopback_cameras(&home.cfg);
    let home_nss = nss_home(dir.path(), &pebble);
    let shots = dir.path().join("shots");
    std::fs::create_dir_all(&shots).unwrap();
    let cam_url = format!("rtsp://{}/cam0", home.sim.rtsp);
    let result = run_e2e(
        "installers.mjs",
        &[
            ("CLOUD_URL", &cloud.base),
            ("PASSWORD", &"long enough password"),
            ("OWNER", &"owner@example.com"),
            ("BOSS_A", &"boss@acme.example"),
            ("BOSS_B", &"boss@other.example"),
            ("TECH", &"tech@acme.example"),
            ("ORG_A", &org_a),
            ("ORG_B", &org_b),
            ("HOME_ID", &home_id),
            ("RECORDER_URL", &home.web.base),
            ("ADMIN", &"admin"),
            ("ADMIN_PASSWORD", &"admin password 1"),
            ("CAM_URL", &cam_url),
            ("CAM_USER", &"admin"),
            ("CAM_PASSWORD", &"cam pass 1"),
            ("HOME", &home_nss),
            ("SHOTS", &shots),
        ],
        || {
            format!(
                "cloud log:\n{}\nrecorder log:\n{}",
                cloud.log_text(),
                home.rec.log_text()
            )
        },
    );
    eprintln!("{result:#}");
    assert_eq!(result["fleet_a"], serde_json::json!(["Home", "Shop"]));
    assert_eq!(result["fleet_b"], serde_json::json!(["Barn"]));
    assert!(
        result["home_health"]
            .as_str()
            .unwrap()
            .contains("1/1 cameras"),
        "{result}"
    );
    assert_eq!(result["remote"], remote.as_str());
    assert!(
        result["my_access"].as_str().unwrap().contains("config"),
        "{result}"
    );
    // The rollback undid the camera, not the motion change, at once.
    assert_eq!(
        result["cameras_after_rollback"],
        serde_json::json!(["gate"])
    );
    assert_eq!(
        result["sensitivity_after_rollback"],
        result["sensitivity_set"]
    );
    let out_ms = result["technician_out_ms"].as_u64().unwrap();
    assert!(out_ms < 5000, "{result}");
    // The owner's phone heard of the request, the technician's arrival and
    // the end of access; a tap opens the recorder's Access page.
    let mut titles = Vec::new();
    wait_for("the owner's pushes", Duration::from_secs(20), || {
        titles = push
            .payloads()
            .iter()
            .filter(|p| p["kind"] == "access")
            .map(|p| (p["title"].as_str().unwrap().to_owned(), p["url"].clone()))
            .collect();
        titles.len() >= 3
    });
    let names: Vec<&str> = titles.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        names,
        [
            "Access request for Home",
            "Technician at Home",
            "Access ended at Home"
        ],
        "{titles:?}"
    );
    assert!(
        titles.iter().all(|(_, u)| *u == format!("{remote}#access")),
        "{titles:?}"
    );
    // The recorder's own records: the versions are the technician's, from
    // the relay, and their requests are in the audit log.
    let (_, _, v) = home.web.api("GET", "config/versions", None);
    let by_tech: Vec<&serde_json::Value> = v["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["user"] == "tech@acme.example")
        .collect();
    assert_eq!(by_tech.len(), 2, "{v}");
    assert!(by_tech.iter().all(|x| x["origin"] == "technician"), "{v}");
    let (_, _, a) = home.web.api("GET", "audit?action=technician_action", None);
    let actions = a["entries"].as_array().unwrap();
    assert!(
        actions
            .iter()
            .any(|e| e["detail"].as_str().unwrap().contains("/api/v1/cameras")),
        "{a}"
    );
}
