//! Changes to `candor.toml` made from the web app. The file stays the one
//! source of truth: an edit keeps its comments and layout (toml_edit), the
//! whole new text must pass the same validation as at start-up, and it
//! replaces the old file atomically (temporary file, fsync, rename), owner
//! only (0600: it may hold camera passwords). Edits are serialized.

use crate::config::{AlarmOn, Config, ConfigError, MotionConfig, ObjectsConfig};
use std::io::Write;
use std::path::Path;
use toml_edit::{Array, ArrayOfTables, DocumentMut, Item, Table, value};

fn invalid(path: &Path, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_owned(),
        message: message.into(),
    }
}

fn points(p: &candor_motion::Polygon) -> Array {
    let mut a = Array::new();
    for &(x, y) in p.points() {
        // Four decimals: a tenth of a pixel on a 4K image is plenty.
        let r = |v: f32| (f64::from(v) * 10_000.0).round() / 10_000.0;
        a.push(Array::from_iter([r(x), r(y)]));
    }
    a
}

/// Sets `[cloud] sharing` and `private_alarms`: what the site shares is
/// the recorder's decision, kept in its own file.
pub fn set_cloud_sharing(
    path: &Path,
    sharing: candor_link::Sharing,
    private_alarms: bool,
) -> Result<Config, ConfigError> {
    edit(path, |doc| {
        let cloud = doc
            .get_mut("cloud")
            .and_then(Item::as_table_mut)
            .ok_or("there is no [cloud] section")?;
        let name = serde_json::to_value(sharing)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .ok_or("sharing level")?;
        cloud["sharing"] = value(name);
        cloud["private_alarms"] = value(private_alarms);
        Ok(())
    })
}

/// Switches remote access through the cloud on or off.
pub fn set_cloud_remote(path: &Path, on: bool) -> Result<Config, ConfigError> {
    edit(path, |doc| {
        let cloud = doc
            .get_mut("cloud")
            .and_then(Item::as_table_mut)
            .ok_or("there is no [cloud] section")?;
        cloud["remote_access"] = value(on);
        Ok(())
    })
}

/// Replaces camera `camera`'s `[cameras.motion]` section with `m`. Returns
/// the new, validated configuration.
pub fn set_motion(path: &Path, camera: &str, m: &MotionConfig) -> Result<Config, ConfigError> {
    edit(path, |doc| {
        let cam = camera_table(doc, camera)?;
        let mut t = Table::new();
        t["enabled"] = value(m.enabled);
        t["fps"] = value(f64::from(m.fps));
        t["sensitivity"] = value(i64::from(m.sensitivity));
        t["min_size"] = value((f64::from(m.min_size) * 1000.0).round() / 1000.0);
        t["hold"] = value(format!("{}ms", m.hold.0.as_millis()));
        if !m.masks.is_empty() {
            t["masks"] = value(Array::from_iter(m.masks.iter().map(|p| points(&p.0))));
        }
        if !m.zones.is_empty() {
            let mut zones = ArrayOfTables::new();
            for z in &m.zones {
                let mut zt = Table::new();
                zt["name"] = value(z.name.0.clone());
                zt["points"] = value(points(&z.points.0));
                zones.push(zt);
            }
            t["zones"] = Item::ArrayOfTables(zones);
        }
        cam["motion"] = Item::Table(t);
        Ok(())
    })
}

/// Replaces camera `camera`'s `[cameras.objects]` section with `o`.
/// Returns the new, validated configuration (objects need motion on, and
/// their zones must be motion's).
pub fn set_objects(path: &Path, camera: &str, o: &ObjectsConfig) -> Result<Config, ConfigError> {
    edit(path, |doc| {
        let cam = camera_table(doc, camera)?;
        let r = |v: f32| (f64::from(v) * 1000.0).round() / 1000.0;
        let mut t = Table::new();
        t["enabled"] = value(o.enabled);
        t["labels"] = value(Array::from_iter(o.labels.iter().map(|l| l.name())));
        t["min_score"] = value(r(o.min_score));
        t["threshold"] = value(r(o.threshold));
        t["fps"] = value(r(o.fps));
        t["alarm"] = value(match o.alarm {
            AlarmOn::Objects => "objects",
            AlarmOn::Motion => "motion",
            AlarmOn::Both => "both",
        });
        if !o.scores.is_empty() {
            let mut s = toml_edit::InlineTable::new();
            for (l, v) in &o.scores {
                s.insert(l.name(), r(*v).into());
            }
            t["scores"] = value(s);
        }
        if !o.zones.is_empty() {
            let mut z = toml_edit::InlineTable::new();
            for (name, labels) in &o.zones {
                z.insert(
                    name,
                    Array::from_iter(labels.iter().map(|l| l.name())).into(),
                );
            }
            t["zones"] = value(z);
        }
        cam["objects"] = Item::Table(t);
        Ok(())
    })
}

fn camera_table<'a>(doc: &'a mut DocumentMut, camera: &str) -> Result<&'a mut Table, String> {
    doc.get_mut("cameras")
        .and_then(Item::as_array_of_tables_mut)
        .ok_or_else(|| "the config has no [[cameras]]".to_owned())?
        .iter_mut()
        .find(|t| t.get("name").and_then(Item::as_str) == Some(camera))
        .ok_or_else(|| format!("no camera named {camera:?} in the config"))
}

/// A camera to add, as the web app's "Add camera" form gives it.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCamera {
    pub name: String,
    /// `rtsp://…`, without credentials.
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub sub_url: Option<String>,
    /// ONVIF device service, to follow the camera's own events.
    pub onvif: Option<String>,
    #[serde(default)]
    pub motion: bool,
    /// The admin confirms that stream addresses on another host than the
    /// ONVIF service are right (the web API refuses them otherwise).
    #[serde(default)]
    pub other_host: bool,
}

/// Percent-encodes a URL's user or password part.
fn userinfo(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Appends a `[[cameras]]` entry. Returns the new configuration; the caller
/// starts the camera (see `StatusSource::add_camera`).
pub fn add_camera(path: &Path, c: &NewCamera) -> Result<Config, ConfigError> {
    let with_creds = |u: &str| -> Result<String, String> {
        let mut url = url::Url::parse(u).map_err(|e| format!("{u:?} is not a URL: {e}"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(
                "give the user name and password in their own fields, not in the URL".into(),
            );
        }
        if let Some(user) = &c.username {
            // Set on the string form: url's setters would re-encode.
            let pass = c
                .password
                .as_deref()
                .map(|p| format!(":{}", userinfo(p)))
                .unwrap_or_default();
            let host_part = url
                .as_str()
                .strip_prefix("rtsp://")
                .ok_or("camera URLs start with rtsp://")?
                .to_owned();
            return Ok(format!("rtsp://{}{pass}@{host_part}", userinfo(user)));
        }
        url.set_fragment(None);
        Ok(url.to_string())
    };
    edit(path, |doc| {
        let main = with_creds(&c.url)?;
        let mut t = Table::new();
        t["name"] = value(c.name.clone());
        t["url"] = value(main);
        if let Some(sub) = c.sub_url.as_deref().filter(|s| !s.is_empty()) {
            t["sub_url"] = value(with_creds(sub)?);
        }
        if let Some(o) = c.onvif.as_deref().filter(|s| !s.is_empty()) {
            t["onvif"] = value(o.to_owned());
        }
        if c.motion {
            let mut m = Table::new();
            m["enabled"] = value(true);
            t["motion"] = Item::Table(m);
        }
        match doc
            .get_mut("cameras")
            .and_then(Item::as_array_of_tables_mut)
        {
            Some(cams) => cams.push(t),
            None => {
                let mut cams = ArrayOfTables::new();
                cams.push(t);
                doc["cameras"] = Item::ArrayOfTables(cams);
            }
        }
        Ok(())
    })
}

/// A ready-to-paste `[[cameras]]` entry for a camera found on the network
/// (`candor discover`): the name is made a slug, and both values are
/// written by the TOML serializer, so nothing a camera reports (a name with
/// a newline and a `[web]` line, a URL with quotes) can add TOML of its own.
pub fn camera_entry(name: &str, url: &str) -> String {
    #[derive(serde::Serialize)]
    struct Entry<'a> {
        name: &'a str,
        url: &'a str,
    }
    #[derive(serde::Serialize)]
    struct Doc<'a> {
        cameras: [Entry<'a>; 1],
    }
    let slug: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let doc = Doc {
        cameras: [Entry { name: &slug, url }],
    };
    toml::to_string(&doc).unwrap_or_default()
}

static EDITS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Applies `f` to the document, validates the result and writes it.
fn edit(
    path: &Path,
    f: impl FnOnce(&mut DocumentMut) -> Result<(), String>,
) -> Result<Config, ConfigError> {
    let read = |e| ConfigError::Read {
        path: path.to_owned(),
        source: e,
    };
    // One edit at a time: two requests reading the same file and writing
    // back their own change would lose one of them.
    let _one = EDITS.lock().unwrap_or_else(|e| e.into_inner());
    let text = std::fs::read_to_string(path).map_err(read)?;
    let mut doc: DocumentMut = text.parse().map_err(|e| invalid(path, format!("{e}")))?;
    f(&mut doc).map_err(|e| invalid(path, e))?;
    replace(path, &doc.to_string())
}

/// Writes a new config file (`candor demo`). The document is built with
/// toml_edit's typed values, never by pasting strings, and must pass the
/// start-up validation before it is written (0600, atomically).
pub fn create(path: &Path, build: impl FnOnce(&mut DocumentMut)) -> Result<Config, ConfigError> {
    let _one = EDITS.lock().unwrap_or_else(|e| e.into_inner());
    let mut doc = DocumentMut::new();
    build(&mut doc);
    replace(path, &doc.to_string())
}

/// Validates `new` and atomically replaces the file at `path` with it.
fn replace(path: &Path, new: &str) -> Result<Config, ConfigError> {
    let read = |e| ConfigError::Read {
        path: path.to_owned(),
        source: e,
    };
    let cfg = Config::parse(new).map_err(|e| {
        invalid(
            path,
            format!("the change would make the config invalid: {e}"),
        )
    })?;
    // A fresh, owner-only temporary file: the config holds camera, MQTT and
    // webhook secrets, so it is 0600 whatever the old file's mode was.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("toml.{}.{n}.tmp", std::process::id()));
    (|| -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(new.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            })?
            .sync_all()?;
        }
        Ok(())
    })()
    .map_err(read)?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_discovered_camera_cannot_write_toml_of_its_own() {
        let hostile_url = "rtsp://u:PASSWORD@10.0.0.9/x\"\n[web]\nlisten = \"0.0.0.0:1\"\n";
        let entry = camera_entry("Cam\n[web]\nallow_loopback_cameras = true", hostile_url);
        let text = format!("[storage]\npath = \"d\"\n\n{entry}");
        let doc: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(doc.len(), 2, "only storage and cameras: {text}");
        let cam = &doc["cameras"].as_array().unwrap()[0];
        assert_eq!(cam["url"].as_str(), Some(hostile_url));
        assert_eq!(
            cam["name"].as_str(),
            Some("cam--web--allow-loopback-cameras---true")
        );
    }

    #[test]
    fn concurrent_edits_all_land_and_the_file_stays_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("candor.toml");
        std::fs::write(&p, "[storage]\npath = \"d\"\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::thread::scope(|s| {
            for i in 0..16 {
                let p = &p;
                s.spawn(move || {
                    let c = NewCamera {
                        name: format!("cam{i}"),
                        url: format!("rtsp://10.0.0.{i}/x"),
                        username: None,
                        password: None,
                        sub_url: None,
                        onvif: None,
                        motion: false,
                        other_host: false,
                    };
                    add_camera(p, &c).unwrap();
                });
            }
        });
        let cfg = Config::load(&p).unwrap();
        assert_eq!(cfg.cameras.len(), 16, "an edit was lost");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "temporary files left behind");
    }

    #[test]
    fn adding_a_camera_appends_a_valid_entry_with_encoded_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("candor.toml");
        std::fs::write(
            &p,
            "[storage]\npath = \"d\"\n\n[[cameras]]\nname = \"gate\"\nurl = \"rtsp://h/x\"\n",
        )
        .unwrap();
        let new = NewCamera {
            name: "door".into(),
            url: "rtsp://10.0.0.5:554/main".into(),
            username: Some("admin".into()),
            password: Some("p@ss word:1".into()),
            sub_url: Some("rtsp://10.0.0.5:554/sub".into()),
            onvif: Some("http://10.0.0.5/onvif/device_service".into()),
            motion: true,
            other_host: false,
        };
        let cfg = add_camera(&p, &new).unwrap();
        let door = &cfg.cameras[1];
        assert_eq!(door.url.password.as_deref(), Some("p@ss word:1"));
        assert_eq!(
            door.sub_stream().unwrap().username.as_deref(),
            Some("admin")
        );
        assert!(door.motion.enabled && door.onvif.is_some());
        // The same name twice, or credentials inside the URL, are refused
        // and leave the file as it was.
        let before = std::fs::read_to_string(&p).unwrap();
        assert!(
            add_camera(&p, &new)
                .unwrap_err()
                .to_string()
                .contains("used twice")
        );
        let inline = NewCamera {
            name: "x".into(),
            url: "rtsp://u:p@h/x".into(),
            ..new
        };
        assert!(add_camera(&p, &inline).is_err());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), before);
    }

    #[test]
    fn motion_edit_keeps_comments_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("candor.toml");
        let original = "# my recorder\n[storage]\npath = \"d\" # where\n\n[[cameras]]\nname = \"gate\"\nurl = \"rtsp://h/x\"\n\n[[cameras]]\nname = \"yard\" # back\nurl = \"rtsp://h/y\"\n[cameras.motion]\nenabled = false\n";
        std::fs::write(&p, original).unwrap();
        let mut m = MotionConfig {
            enabled: true,
            sensitivity: 75,
            ..Default::default()
        };
        m.masks.push(crate::config::PolygonConfig(
            candor_motion::Polygon::new(vec![(0.1, 0.1), (0.5, 0.1), (0.3, 0.4)]).unwrap(),
        ));
        m.zones.push(crate::config::ZoneConfig {
            name: crate::config::ZoneName("path".into()),
            points: crate::config::PolygonConfig(
                candor_motion::Polygon::new(vec![(0.0, 0.5), (1.0, 0.5), (1.0, 1.0)]).unwrap(),
            ),
        });
        let cfg = set_motion(&p, "yard", &m).unwrap();
        assert_eq!(cfg.cameras[1].motion, m);
        assert!(!cfg.cameras[0].motion.enabled);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.starts_with("# my recorder\n")
                && text.contains("# where")
                && text.contains("# back"),
            "{text}"
        );
        // Reading it back gives the same settings.
        assert_eq!(Config::parse(&text).unwrap().cameras[1].motion, m);
        assert!(set_motion(&p, "nope", &m).is_err());
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            text,
            "a failed edit changes nothing"
        );
    }
}
