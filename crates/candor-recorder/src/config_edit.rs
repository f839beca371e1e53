//! Changes to `candor.toml` made from the web app. The file stays the one
//! source of truth: an edit keeps its comments and layout (toml_edit), the
//! whole new text must pass the same validation as at start-up, and it
//! replaces the old file atomically (temporary file, fsync, rename), owner
//! only (0600: it may hold camera passwords). Edits are serialized, and
//! each one is a version in the config's history ([`crate::config_history`]),
//! with who made it and from where; a hand edit made since the last one is
//! recorded first, as such.

use crate::config::{AlarmOn, Config, ConfigError, MotionConfig, ObjectsConfig};
pub use crate::config_history::{Author, History, Origin};
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
    by: &Author,
    sharing: candor_link::Sharing,
    private_alarms: bool,
) -> Result<Edited, ConfigError> {
    edit(path, by, "cloud sharing".into(), |doc| {
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
pub fn set_cloud_remote(path: &Path, by: &Author, on: bool) -> Result<Edited, ConfigError> {
    let note = format!("remote access {}", if on { "on" } else { "off" });
    edit(path, by, note, |doc| {
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
pub fn set_motion(
    path: &Path,
    by: &Author,
    camera: &str,
    m: &MotionConfig,
) -> Result<Edited, ConfigError> {
    if let Some(e) = unchanged(path, |c| {
        c.cameras
            .iter()
            .any(|cam| cam.name.get_ref().0 == camera && cam.motion == *m)
    })? {
        return Ok(e);
    }
    edit(path, by, format!("motion settings of {camera}"), |doc| {
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
pub fn set_objects(
    path: &Path,
    by: &Author,
    camera: &str,
    o: &ObjectsConfig,
) -> Result<Edited, ConfigError> {
    if let Some(e) = unchanged(path, |c| {
        c.cameras
            .iter()
            .any(|cam| cam.name.get_ref().0 == camera && cam.objects == *o)
    })? {
        return Ok(e);
    }
    edit(path, by, format!("object detection of {camera}"), |doc| {
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

/// `url` with the user name and password put in (percent-encoded), or an
/// error if the URL carries credentials of its own.
fn stream_url(u: &str, username: Option<&str>, password: Option<&str>) -> Result<String, String> {
    let mut url = url::Url::parse(u).map_err(|e| format!("{u:?} is not a URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("give the user name and password in their own fields, not in the URL".into());
    }
    if let Some(user) = username.filter(|u| !u.is_empty()) {
        // Set on the string form: url's setters would re-encode.
        let pass = password
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
}

/// Appends a `[[cameras]]` entry. Returns the new configuration; the caller
/// starts the camera (see `StatusSource::add_camera`).
pub fn add_camera(path: &Path, by: &Author, c: &NewCamera) -> Result<Edited, ConfigError> {
    edit(path, by, format!("camera {} added", c.name), |doc| {
        let creds = |u: &str| stream_url(u, c.username.as_deref(), c.password.as_deref());
        let mut t = Table::new();
        t["name"] = value(c.name.clone());
        t["url"] = value(creds(&c.url)?);
        if let Some(sub) = c.sub_url.as_deref().filter(|s| !s.is_empty()) {
            t["sub_url"] = value(creds(sub)?);
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

/// Changes camera `name`'s addresses and credentials (`c.name` must be
/// `name`: a camera's name is what its recordings are filed under). A
/// password left out keeps the current one when the user name stays the
/// same. Motion, objects and retention settings are kept.
pub fn edit_camera(
    path: &Path,
    by: &Author,
    name: &str,
    c: &NewCamera,
) -> Result<Edited, ConfigError> {
    edit(path, by, format!("camera {name} changed"), |doc| {
        if c.name != name {
            return Err(format!(
                "cameras can't be renamed ({name:?} to {:?}): recordings are filed under the name; add a new camera instead",
                c.name
            ));
        }
        let cam = camera_table(doc, name)?;
        let old = cam
            .get("url")
            .and_then(Item::as_str)
            .and_then(|u| url::Url::parse(u).ok());
        // The password stays only for the same user at the same address:
        // a camera pointed at another host must be given its password
        // again, so a changed URL can't carry it somewhere else.
        // Each address gets the kept password only if it is the old main
        // address's host and port, so a changed URL (main or sub) can't
        // carry the password somewhere else.
        let kept = old.as_ref().and_then(|u| {
            let same_user =
                c.username.as_deref().unwrap_or("") == percent_decode(u.username()).as_str();
            (same_user && c.password.is_none())
                .then(|| u.password().map(percent_decode))
                .flatten()
        });
        let password_for = |addr: &str| -> Option<String> {
            if c.password.is_some() {
                return c.password.clone();
            }
            let n = url::Url::parse(addr).ok()?;
            let u = old.as_ref()?;
            (n.host_str() == u.host_str() && n.port_or_known_default() == u.port_or_known_default())
                .then(|| kept.clone())
                .flatten()
        };
        let creds = |u: &str| stream_url(u, c.username.as_deref(), password_for(u).as_deref());
        cam["url"] = value(creds(&c.url)?);
        match c.sub_url.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) => cam["sub_url"] = value(creds(sub)?),
            None => {
                cam.remove("sub_url");
            }
        }
        match c.onvif.as_deref().filter(|s| !s.is_empty()) {
            Some(o) => cam["onvif"] = value(o.to_owned()),
            None => {
                cam.remove("onvif");
            }
        }
        Ok(())
    })
}

/// A URL's user or password part as typed (`%40` → `@`; `+` stays `+`).
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Removes camera `name` from the config. Its recordings stay until
/// retention removes them.
pub fn remove_camera(path: &Path, by: &Author, name: &str) -> Result<Edited, ConfigError> {
    edit(path, by, format!("camera {name} removed"), |doc| {
        let cams = doc
            .get_mut("cameras")
            .and_then(Item::as_array_of_tables_mut)
            .ok_or("the config has no [[cameras]]")?;
        let i = cams
            .iter()
            .position(|t| t.get("name").and_then(Item::as_str) == Some(name))
            .ok_or_else(|| format!("no camera named {name:?} in the config"))?;
        cams.remove(i);
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

/// A change made: the new configuration, its version, and the version it
/// replaced (what a revert goes back to).
#[derive(Debug)]
pub struct Edited {
    pub config: Config,
    pub version: i64,
    pub previous: i64,
}

/// The config as it is, when `same` says a settings change would not change
/// what it means (a page saves every section it shows, and writing the
/// defaults out would make a version that changes nothing).
fn unchanged(
    path: &Path,
    same: impl FnOnce(&Config) -> bool,
) -> Result<Option<Edited>, ConfigError> {
    // Under the edits' lock: `current` records a hand edit, and must not
    // see an edit's text written before its version is.
    let _one = EDITS.lock().unwrap_or_else(|e| e.into_inner());
    let (_, text, version) = current(path)?;
    let config = Config::parse(&text).map_err(|e| invalid(path, e.to_string()))?;
    Ok(same(&config).then_some(Edited {
        config,
        version,
        previous: version,
    }))
}

/// Applies `f` to the document, validates the result, writes it and
/// records it as a version by `by`.
fn edit(
    path: &Path,
    by: &Author,
    note: String,
    f: impl FnOnce(&mut DocumentMut) -> Result<(), String>,
) -> Result<Edited, ConfigError> {
    // One edit at a time: two requests reading the same file and writing
    // back their own change would lose one of them.
    let _one = EDITS.lock().unwrap_or_else(|e| e.into_inner());
    let (history, text, previous) = current(path)?;
    let mut doc: DocumentMut = text.parse().map_err(|e| invalid(path, format!("{e}")))?;
    f(&mut doc).map_err(|e| invalid(path, e))?;
    let new = doc.to_string();
    // A save that changes nothing (a settings page sends every section it
    // shows) is not a version: the history lists changes, not saves.
    if new == text {
        let config = Config::parse(&new).map_err(|e| invalid(path, e.to_string()))?;
        return Ok(Edited {
            config,
            version: previous,
            previous,
        });
    }
    let config = replace(path, &new)?;
    let version = history.record(&new, by, &note)?;
    Ok(Edited {
        config,
        version,
        previous,
    })
}

/// The history, the file's text and its version (a hand edit made since
/// the last recorded version is recorded now, as one).
fn current(path: &Path) -> Result<(History, String, i64), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.to_owned(),
        source: e,
    })?;
    let history = History::open(path)?;
    history.notice(&text)?;
    let (version, _) = history
        .latest()?
        .ok_or_else(|| invalid(path, "the config history is empty"))?;
    Ok((history, text, version))
}

/// Records the file as it is now if it differs from the last version (at
/// start: a hand edit, or the first version). Returns the new version.
pub fn notice(path: &Path) -> Result<Option<i64>, ConfigError> {
    let _one = EDITS.lock().unwrap_or_else(|e| e.into_inner());
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.to_owned(),
        source: e,
    })?;
    Ok(History::open(path)?.notice(&text)?)
}

/// A whole-file change, checked and not yet written: the new text, what
/// it parses to, and what the file parses to now.
pub struct Prepared {
    pub text: String,
    pub config: Config,
    pub current: Config,
    note: String,
}

/// Checks a whole-file change: valid as at start (an error quoting a value
/// shows secrets as their marks), and for a technician, limited to cameras
/// (their addresses, detection and retention): `[web]`, `[cloud]`,
/// `[mqtt]`, webhooks and storage stay the owner's.
fn prepare(
    path: &Path,
    history: &History,
    by: &Author,
    text: &str,
    new: String,
    note: String,
) -> Result<Prepared, ConfigError> {
    if by.origin == Origin::Technician {
        let others: Vec<String> = changed_sections(text, &new)
            .into_iter()
            .filter(|s| s != "cameras")
            .map(|s| format!("[{s}]"))
            .collect();
        if !others.is_empty() {
            return Err(invalid(
                path,
                format!(
                    "a technician may change cameras only (with their detection and retention); {} stay the owner's",
                    others.join(", ")
                ),
            ));
        }
    }
    let config = Config::parse(&new).map_err(|e| {
        invalid(
            path,
            format!(
                "the change would make the config invalid: {}",
                history.scrub(&e, &new)
            ),
        )
    })?;
    let current = Config::parse(text).map_err(|e| invalid(path, history.scrub(&e, text)))?;
    Ok(Prepared {
        text: new,
        config,
        current,
        note,
    })
}

fn commit(
    path: &Path,
    history: &History,
    by: &Author,
    p: Prepared,
    previous: i64,
) -> Result<Edited, ConfigError> {
    let config = replace(path, &p.text)?;
    let version = history.record(&p.text, by, &p.note)?;
    Ok(Edited {
        config,
        version,
        previous,
    })
}

fn prepare_rollback_locked(
    path: &Path,
    by: &Author,
    version: i64,
) -> Result<(History, Prepared, i64), ConfigError> {
    let (history, text, previous) = current(path)?;
    let old = history.text(version)?;
    if old == text {
        return Err(invalid(
            path,
            format!("version {version} is the config already"),
        ));
    }
    let p = prepare(
        path,
        &history,
        by,
        &text,
        old,
        format!("rolled back to version {version}"),
    )?;
    Ok((history, p, previous))
}

/// What making version `version` the config again would give, without
/// doing it (for checks that need the network, before [`rollback`]).
pub fn prepare_rollback(path: &Path, by: &Author, version: i64) -> Result<Prepared, ConfigError> {
    let _one = EDITS.lock().unwrap_or_else(|e| e.into_inner());
    Ok(prepare_rollback_locked(path, by, version)?.1)
}

/// Makes version `version` the config again (validated as any change), as
/// a new version by `by`.
pub fn rollback(path: &Path, by: &Author, version: i64) -> Result<Edited, ConfigError> {
    let _one = EDITS.lock().unwrap_or_else(|e| e.into_inner());
    let (history, p, previous) = prepare_rollback_locked(path, by, version)?;
    commit(path, &history, by, p, previous)
}

/// The config's text with its secrets redacted, and its version.
pub fn redacted(path: &Path) -> Result<(String, i64), ConfigError> {
    let _one = EDITS.lock().unwrap_or_else(|e| e.into_inner());
    let (history, text, version) = current(path)?;
    Ok((history.redact(&text), version))
}

fn prepare_text_locked(
    path: &Path,
    by: &Author,
    base: i64,
    edited: &str,
) -> Result<(History, Prepared, i64), ConfigError> {
    if edited.len() > crate::config_history::MAX_TEXT {
        return Err(invalid(
            path,
            format!(
                "a config is at most {} bytes",
                crate::config_history::MAX_TEXT
            ),
        ));
    }
    let (history, text, previous) = current(path)?;
    if base != previous {
        return Err(invalid(
            path,
            format!(
                "the config changed since version {base} (it is version {previous} now); reload it and make the change again"
            ),
        ));
    }
    let new = history
        .restore(edited, &text)
        .map_err(|e| invalid(path, e))?;
    let p = prepare(path, &history, by, &text, new, "config text edited".into())?;
    Ok((history, p, previous))
}

/// What [`set_text`] would write, without writing it.
pub fn prepare_text(
    path: &Path,
    by: &Author,
    base: i64,
    edited: &str,
) -> Result<Prepared, ConfigError> {
    let _one = EDITS.lock().unwrap_or_else(|e| e.into_inner());
    Ok(prepare_text_locked(path, by, base, edited)?.1)
}

/// Replaces the whole config with `edited`, a text in the redacted form
/// [`redacted`] gives, with the secrets put back. `base`: the version the
/// user edited; a change made since is not overwritten (409-style error).
pub fn set_text(path: &Path, by: &Author, base: i64, edited: &str) -> Result<Edited, ConfigError> {
    let _one = EDITS.lock().unwrap_or_else(|e| e.into_inner());
    let (history, p, previous) = prepare_text_locked(path, by, base, edited)?;
    commit(path, &history, by, p, previous)
}

/// Sections whose change could cut off access to the recorder: its web
/// server's address and certificate, and the cloud link remote access
/// rides on. A change to them through the web app is held for
/// confirmation ([`hold`]).
pub const RISKY: &[&str] = &["web", "cloud"];

/// The top-level sections (`web`, `cameras`, …) that differ between two
/// config texts.
pub fn changed_sections(a: &str, b: &str) -> Vec<String> {
    let parse = |t: &str| toml::from_str::<toml::Table>(t).unwrap_or_default();
    let (a, b) = (parse(a), parse(b));
    let mut keys: Vec<String> = a.keys().chain(b.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    keys.retain(|k| a.get(k) != b.get(k));
    keys
}

/// The names of the cameras in a config text (empty if it does not parse).
pub fn camera_names(text: &str) -> Vec<String> {
    toml::from_str::<toml::Table>(text)
        .ok()
        .and_then(|t| t.get("cameras").and_then(|c| c.as_array()).cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|c| c.get("name").and_then(|n| n.as_str()).map(str::to_owned))
        .collect()
}

/// Whether, of section `section`, only `keys` differ between two config
/// texts (the section is in both).
pub fn only_changed(old: &str, new: &str, section: &str, keys: &[&str]) -> bool {
    let sect = |t: &str| {
        let mut s = toml::from_str::<toml::Table>(t)
            .ok()
            .and_then(|mut t| t.remove(section))
            .and_then(|v| v.as_table().cloned());
        if let Some(s) = &mut s {
            for k in keys {
                s.remove(*k);
            }
        }
        s
    };
    let (a, b) = (sect(old), sect(new));
    a.is_some() && b.is_some() && a == b
}

/// Holds change `version` (made from `previous` by `by`) for confirmation
/// if it could cut its author off: it reverts by itself ([`revert_if_due`])
/// unless [`confirm`]ed within `within`. That is a change to `[web]`, or to
/// `[cloud]` made through the relay (remote access rides on it; a local
/// caller keeps their way in). A second risky change while one waits
/// extends the wait, and a revert then goes back to before the first.
pub fn hold(
    path: &Path,
    version: i64,
    previous: i64,
    by: &Author,
    within: std::time::Duration,
) -> Result<Option<crate::config_history::Pending>, ConfigError> {
    let _one = EDITS.lock().unwrap_or_else(|e| e.into_inner());
    let h = History::open(path)?;
    let (old, new) = (h.text(previous)?, h.text(version)?);
    let far = matches!(by.origin, Origin::Remote | Origin::Technician);
    let risky = changed_sections(&old, &new)
        .iter()
        .any(|s| s == "web" || (far && s == "cloud"));
    if !risky {
        return Ok(None);
    }
    let p = crate::config_history::Pending {
        version,
        previous: h.pending()?.map_or(previous, |p| p.previous),
        deadline: crate::config_history::now() + within.as_secs() as i64,
    };
    h.set_pending(p)?;
    Ok(Some(p))
}

/// Confirms the change waiting for it. Returns it, or `None` if none was.
pub fn confirm(path: &Path) -> Result<Option<crate::config_history::Pending>, ConfigError> {
    let _one = EDITS.lock().unwrap_or_else(|e| e.into_inner());
    let h = History::open(path)?;
    let p = h.pending()?;
    h.clear_pending()?;
    Ok(p)
}

/// The change waiting for confirmation, if any.
pub fn pending(path: &Path) -> Result<Option<crate::config_history::Pending>, ConfigError> {
    Ok(History::open(path)?.pending()?)
}

/// Reverts the change waiting for confirmation once its deadline (unix
/// seconds) is past `now`: the [`RISKY`] sections go back to what they
/// were before it; changes made since to other sections stay. Runs at
/// start too, so a change that cut off access is undone by a restart.
pub fn revert_if_due(path: &Path, now: i64) -> Result<Option<Edited>, ConfigError> {
    let _one = EDITS.lock().unwrap_or_else(|e| e.into_inner());
    let (history, text, previous) = current(path)?;
    let Some(p) = history.pending()?.filter(|p| p.deadline <= now) else {
        return Ok(None);
    };
    let (before_text, held_text) = (history.text(p.previous)?, history.text(p.version)?);
    let before: DocumentMut = before_text
        .parse()
        .map_err(|e| invalid(path, format!("version {}: {e}", p.previous)))?;
    let mut doc: DocumentMut = text.parse().map_err(|e| invalid(path, format!("{e}")))?;
    // Only the keys the held change touched go back: a change made since
    // to another key (the owner's Cloud page switch) stays.
    let parse = |t: &str| toml::from_str::<toml::Table>(t).unwrap_or_default();
    let (was, held) = (parse(&before_text), parse(&held_text));
    for s in RISKY {
        let section = |t: &toml::Table| {
            t.get(*s)
                .and_then(|v| v.as_table())
                .cloned()
                .unwrap_or_default()
        };
        let (a, b) = (section(&was), section(&held));
        let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
        keys.sort();
        keys.dedup();
        for k in keys.into_iter().filter(|k| a.get(*k) != b.get(*k)) {
            match before.get(s).and_then(|t| t.get(k)) {
                Some(item) => {
                    if !doc.contains_table(s) {
                        doc[*s] = Item::Table(Table::new());
                    }
                    doc[*s][k.as_str()] = item.clone();
                }
                None => {
                    if let Some(t) = doc.get_mut(s).and_then(Item::as_table_like_mut) {
                        t.remove(k);
                    }
                }
            }
        }
        if doc
            .get(s)
            .and_then(Item::as_table_like)
            .is_some_and(|t| t.is_empty())
            && before.get(s).is_none()
        {
            doc.remove(s);
        }
    }
    let new = doc.to_string();
    let config = replace(path, &new)?;
    let version = history.record(
        &new,
        &Author::system(),
        &format!(
            "version {} was not confirmed in time: [web] and [cloud] as in version {}",
            p.version, p.previous
        ),
    )?;
    history.clear_pending()?;
    Ok(Some(Edited {
        config,
        version,
        previous,
    }))
}

/// Writes a new config file (`candor demo`). The document is built with
/// toml_edit's typed values, never by pasting strings, and must pass the
/// start-up validation before it is written (0600, atomically).
pub fn create(path: &Path, build: impl FnOnce(&mut DocumentMut)) -> Result<Config, ConfigError> {
    let _one = EDITS.lock().unwrap_or_else(|e| e.into_inner());
    let mut doc = DocumentMut::new();
    build(&mut doc);
    let text = doc.to_string();
    let cfg = replace(path, &text)?;
    History::open(path)?.record(&text, &Author::cli(), "created")?;
    Ok(cfg)
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
                    add_camera(p, &Author::cli(), &c).unwrap();
                });
            }
        });
        let cfg = Config::load(&p).unwrap();
        assert_eq!(cfg.cameras.len(), 16, "an edit was lost");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with("candor.history.db"))
            .collect();
        assert_eq!(leftovers, ["candor.toml"], "temporary files left behind");
        // Each edit is a version, after the first one seen.
        let h = History::open(&p).unwrap();
        assert_eq!(h.list(100, None).unwrap().len(), 17);
        assert_eq!(
            std::fs::metadata(History::path_for(&p))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600,
            "the history holds the same secrets"
        );
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
        let cfg = add_camera(&p, &Author::cli(), &new).unwrap().config;
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
            add_camera(&p, &Author::cli(), &new)
                .unwrap_err()
                .to_string()
                .contains("used twice")
        );
        let inline = NewCamera {
            name: "x".into(),
            url: "rtsp://u:p@h/x".into(),
            ..new
        };
        assert!(add_camera(&p, &Author::cli(), &inline).is_err());
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
        let cfg = set_motion(&p, &Author::cli(), "yard", &m).unwrap().config;
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
        assert!(set_motion(&p, &Author::cli(), "nope", &m).is_err());
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            text,
            "a failed edit changes nothing"
        );
    }
}

#[cfg(test)]
mod history_tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("candor.toml");
        std::fs::write(
            &p,
            "[storage]\npath = \"d\"\n\n[[cameras]]\nname = \"gate\"\nurl = \"rtsp://admin:s3cret@10.0.0.5/main\"\n[cameras.motion]\nenabled = true\n",
        )
        .unwrap();
        (dir, p)
    }

    fn cam(name: &str, url: &str) -> NewCamera {
        NewCamera {
            name: name.into(),
            url: url.into(),
            username: Some("admin".into()),
            password: None,
            sub_url: None,
            onvif: None,
            motion: false,
            other_host: false,
        }
    }

    #[test]
    fn hand_edits_are_versions_and_rollback_restores_any_version() {
        let (_d, p) = setup();
        let ann = Author::new("ann", Origin::Local, Some("192.0.2.4".into()));
        let e = set_motion(
            &p,
            &ann,
            "gate",
            &MotionConfig {
                enabled: true,
                sensitivity: 80,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!((e.previous, e.version), (1, 2));
        // Someone edits the file by hand; the next change records that first.
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, text.replace("sensitivity = 80", "sensitivity = 90")).unwrap();
        assert_eq!(notice(&p).unwrap(), Some(3));
        let h = History::open(&p).unwrap();
        let v = h.list(10, None).unwrap();
        assert_eq!(v[0].origin, Origin::File);
        assert_eq!(v[1].user.as_deref(), Some("ann"));
        assert_eq!(v[1].note, "motion settings of gate");
        // Back to the first version: validated, recorded, and the file is it.
        let r = rollback(&p, &ann, 1).unwrap();
        assert_eq!(
            r.config.cameras[0].motion.sensitivity,
            MotionConfig::default().sensitivity
        );
        assert_eq!(std::fs::read_to_string(&p).unwrap(), h.text(1).unwrap());
        assert_eq!(h.list(1, None).unwrap()[0].note, "rolled back to version 1");
        assert!(rollback(&p, &ann, 1).is_err(), "it is the config already");
        assert!(rollback(&p, &ann, 42).is_err());
    }

    #[test]
    fn a_save_that_changes_nothing_is_no_version() {
        let (_d, p) = setup();
        let ann = Author::new("ann", Origin::Local, None);
        let before = std::fs::read_to_string(&p).unwrap();
        // The objects section doesn't exist: its defaults change nothing.
        let e = set_objects(&p, &ann, "gate", &ObjectsConfig::default()).unwrap();
        assert_eq!((e.previous, e.version), (1, 1));
        let m = Config::parse(&before).unwrap().cameras[0].motion.clone();
        let e = set_motion(&p, &ann, "gate", &m).unwrap();
        assert_eq!((e.previous, e.version), (1, 1));
        assert_eq!(std::fs::read_to_string(&p).unwrap(), before);
        assert_eq!(History::open(&p).unwrap().list(10, None).unwrap().len(), 1);
        // A real change still is one.
        let e = set_motion(
            &p,
            &ann,
            "gate",
            &MotionConfig {
                sensitivity: 81,
                ..m
            },
        )
        .unwrap();
        assert_eq!((e.previous, e.version), (1, 2));
    }

    #[test]
    fn a_rollback_to_an_invalid_version_changes_nothing() {
        let (_d, p) = setup();
        notice(&p).unwrap();
        // A broken hand edit is recorded (it happened) but can't be restored.
        std::fs::write(&p, "[storage]\npath = 5\n").unwrap();
        let broken = notice(&p).unwrap().unwrap();
        std::fs::write(&p, History::open(&p).unwrap().text(1).unwrap()).unwrap();
        let before = std::fs::read_to_string(&p).unwrap();
        assert!(rollback(&p, &Author::cli(), broken).is_err());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), before);
    }

    #[test]
    fn cameras_are_edited_keeping_their_password_and_removed() {
        let (_d, p) = setup();
        let by = Author::cli();
        let e = edit_camera(&p, &by, "gate", &cam("gate", "rtsp://10.0.0.5/other")).unwrap();
        let c = &e.config.cameras[0];
        assert_eq!(c.url.password.as_deref(), Some("s3cret"), "kept");
        assert_eq!(c.url.url.path(), "/other");
        // Another host: the password is not carried there.
        let e = edit_camera(&p, &by, "gate", &cam("gate", "rtsp://10.0.0.6/main")).unwrap();
        let c = &e.config.cameras[0];
        assert_eq!(c.url.password, None, "not sent to a new host");
        assert_eq!(c.url.url.host_str(), Some("10.0.0.6"));
        assert!(c.motion.enabled, "motion settings kept");
        let mut n = cam("gate", "rtsp://10.0.0.6/main");
        n.password = Some("n:w".into());
        let e = edit_camera(&p, &by, "gate", &n).unwrap();
        assert_eq!(e.config.cameras[0].url.password.as_deref(), Some("n:w"));
        assert!(
            edit_camera(&p, &by, "gate", &cam("door", "rtsp://h/x")).is_err(),
            "no rename"
        );
        assert!(edit_camera(&p, &by, "nope", &cam("nope", "rtsp://h/x")).is_err());
        // Kept for a sub stream on the same host, not sent to one elsewhere.
        let mut sub = cam("gate", "rtsp://10.0.0.6/main");
        sub.sub_url = Some("rtsp://10.0.0.6/sub".into());
        let e = edit_camera(&p, &by, "gate", &sub).unwrap();
        let s = e.config.cameras[0].sub_url.clone().unwrap();
        assert_eq!(s.password.as_deref(), Some("n:w"));
        sub.sub_url = Some("rtsp://198.51.100.7/sub".into());
        let e = edit_camera(&p, &by, "gate", &sub).unwrap();
        let s = e.config.cameras[0].sub_url.clone().unwrap();
        assert_eq!(s.password, None, "a sub stream elsewhere gets no password");
        let e = remove_camera(&p, &by, "gate").unwrap();
        assert!(e.config.cameras.is_empty());
        assert!(remove_camera(&p, &by, "gate").is_err());
    }

    #[test]
    fn an_unconfirmed_web_change_reverts_and_keeps_later_changes() {
        let (_d, p) = setup();
        let by = Author::cli();
        let (text, v) = redacted(&p).unwrap();
        let moved = format!("{text}\n[web]\nlisten = \"127.0.0.1:9999\"\n");
        let e = set_text(&p, &by, v, &moved).unwrap();
        let held = hold(
            &p,
            e.version,
            e.previous,
            &by,
            std::time::Duration::from_secs(60),
        )
        .unwrap()
        .unwrap();
        assert_eq!(held.previous, v);
        // Meanwhile another [web] key changes by hand: it survives the revert.
        let t = std::fs::read_to_string(&p).unwrap();
        std::fs::write(
            &p,
            t.replace(
                "listen = \"127.0.0.1:9999\"",
                "listen = \"127.0.0.1:9999\"\nmax_connections = 77",
            ),
        )
        .unwrap();
        // A change to a camera meanwhile is not held, and survives the revert.
        let e2 = edit_camera(&p, &by, "gate", &cam("gate", "rtsp://10.0.0.7/main")).unwrap();
        assert!(
            hold(
                &p,
                e2.version,
                e2.previous,
                &by,
                std::time::Duration::from_secs(60)
            )
            .unwrap()
            .is_none()
        );
        assert!(
            revert_if_due(&p, held.deadline - 1).unwrap().is_none(),
            "not yet"
        );
        let r = revert_if_due(&p, held.deadline).unwrap().unwrap();
        assert_eq!(
            r.config.web.listen,
            crate::config::WebConfig::default().listen
        );
        assert_eq!(r.config.web.max_connections, 77, "an untouched key stays");
        assert_eq!(r.config.cameras[0].url.url.host_str(), Some("10.0.0.7"));
        assert!(pending(&p).unwrap().is_none());
        let h = History::open(&p).unwrap();
        assert_eq!(h.list(1, None).unwrap()[0].origin, Origin::System);
        // Confirmed in time: stays.
        let (text, v) = redacted(&p).unwrap();
        let e = set_text(
            &p,
            &by,
            v,
            &text.replace("[web]\n", "[web]\nlisten = \"127.0.0.1:9998\"\n"),
        )
        .unwrap();
        let held = hold(
            &p,
            e.version,
            e.previous,
            &by,
            std::time::Duration::from_secs(60),
        )
        .unwrap()
        .unwrap();
        assert_eq!(confirm(&p).unwrap(), Some(held));
        assert!(revert_if_due(&p, i64::MAX).unwrap().is_none());
        assert_eq!(
            Config::load(&p).unwrap().web.listen.to_string(),
            "127.0.0.1:9998"
        );
    }

    #[test]
    fn the_text_editor_sees_no_secret_and_keeps_them() {
        let (_d, p) = setup();
        let (text, v) = redacted(&p).unwrap();
        assert!(!text.contains("s3cret"), "{text}");
        let edited = text.replace("[[cameras]]", "# a comment\n[[cameras]]");
        let e = set_text(&p, &Author::cli(), v, &edited).unwrap();
        assert_eq!(e.config.cameras[0].url.password.as_deref(), Some("s3cret"));
        assert!(std::fs::read_to_string(&p).unwrap().contains("# a comment"));
        // Edited from an old version: refused, nothing lost.
        assert!(set_text(&p, &Author::cli(), v, &text).is_err());
        let huge = "#".repeat(crate::config_history::MAX_TEXT + 1);
        assert!(set_text(&p, &Author::cli(), e.version, &huge).is_err());
    }
}
