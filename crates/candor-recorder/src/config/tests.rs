use super::*;

const GOOD: &str = r#"
[storage]
path = "./candor-data"
max_bytes = "20GB"
min_free = "2GB"
[[cameras]]
name = "gate"
url = "rtsp://user:s%40cret@127.0.0.1:8554/cam0"
max_age = "14d"
max_bytes = "5GB"
"#;

#[test]
fn the_documented_example_parses() {
    let c = Config::parse(GOOD).unwrap();
    assert_eq!(c.storage.max_bytes, Some(ByteSize(20_000_000_000)));
    assert_eq!(c.storage.min_free, Some(ByteSize(2_000_000_000)));
    let cam = &c.cameras[0];
    assert_eq!(
        cam.max_age,
        Some(HumanDuration(Duration::from_secs(14 * 86400)))
    );
    assert_eq!(cam.url.password.as_deref(), Some("s@cret"));
    assert_eq!(cam.url.username.as_deref(), Some("user"));
}

#[test]
fn passwords_never_display() {
    let c = Config::parse(GOOD).unwrap();
    let shown = format!("{} {:?} {:?}", c.cameras[0].url, c.cameras[0].url, c);
    assert!(
        !shown.contains("s@cret") && !shown.contains("s%40cret"),
        "{shown}"
    );
    assert!(shown.contains("rtsp://user:***@127.0.0.1:8554/cam0"));
}

#[test]
fn errors_name_the_field_and_line() {
    let bad = GOOD.replace("max_bytes = \"5GB\"", "max_bytes = \"5XB\"");
    let e = Config::parse(&bad).unwrap_err();
    assert!(
        e.starts_with("line 10:") && e.contains("unknown size unit"),
        "{e}"
    );
    let bad = GOOD.replace("rtsp://user", "http://user");
    let e = Config::parse(&bad).unwrap_err();
    assert!(e.starts_with("line 8:") && e.contains("rtsp://"), "{e}");
    let bad = GOOD.replace("max_age", "max_agee");
    let e = Config::parse(&bad).unwrap_err();
    assert!(e.contains("line 9") && e.contains("max_agee"), "{e}");
    let dup = format!("{GOOD}[[cameras]]\nname = \"gate\"\nurl = \"rtsp://h/x\"\n");
    let e = Config::parse(&dup).unwrap_err();
    assert!(
        e.contains("line 12") && e.contains("used twice (first on line 7)"),
        "{e}"
    );
}

#[test]
fn motion_section_parses_and_validates() {
    let cfg = format!(
        "{GOOD}sub_url = \"rtsp://127.0.0.1:8554/cam0-sub\"\n[cameras.motion]\nenabled = true\nsensitivity = 70\nmasks = [[[0.5, 0.0], [1.0, 0.0], [1.0, 1.0]]]\n[[cameras.motion.zones]]\nname = \"door\"\npoints = [[0.0, 0.0], [0.5, 0.0], [0.5, 0.5]]\n"
    );
    let c = Config::parse(&cfg).unwrap();
    let cam = &c.cameras[0];
    assert!(cam.motion.enabled);
    assert_eq!(cam.motion.fps, 5.0);
    let s = cam.motion.settings();
    assert_eq!(
        (s.sensitivity, s.zones[0].name.as_str(), s.masks.len()),
        (70, "door", 1)
    );
    // The sub stream borrows the main stream's credentials.
    let sub = cam.sub_stream().unwrap();
    assert_eq!(
        (sub.username.as_deref(), sub.password.as_deref()),
        (Some("user"), Some("s@cret"))
    );
    let bad = cfg.replace("[0.5, 0.5]]", "[1.5, 0.5]]");
    let e = Config::parse(&bad).unwrap_err();
    assert!(e.contains("outside the image"), "{e}");
    let bad = cfg.replace("sensitivity = 70", "sensitivity = 0");
    assert!(
        Config::parse(&bad)
            .unwrap_err()
            .contains("between 1 and 100")
    );
    let bad = cfg.replace("name = \"door\"", "name = \"front door\"");
    assert!(Config::parse(&bad).unwrap_err().contains("zone name"));
    // Absent section: off.
    assert!(!Config::parse(GOOD).unwrap().cameras[0].motion.enabled);
}

#[test]
fn the_readme_reference_parses() {
    let readme = include_str!("../../../../README.md");
    let block = readme
        .split("## Configuration reference")
        .nth(1)
        .and_then(|r| r.split("```toml\n").nth(1))
        .and_then(|r| r.split("```").next())
        .expect("README has a toml block under Configuration reference");
    let c = Config::parse(block).unwrap_or_else(|e| panic!("README config: {e}"));
    let m = &c.cameras[0].motion;
    assert!(m.enabled);
    assert_eq!((m.zones.len(), m.masks.len()), (1, 1));
    assert!(
        c.cameras[0].sub_url.is_none(),
        "commented out in the README"
    );
    assert!(c.cloud.is_none(), "the cloud is off unless configured");
    let o = &c.cameras[0].objects;
    assert!(o.enabled);
    assert_eq!(
        o.labels,
        [candor_detect::Label::Person, candor_detect::Label::Car]
    );
    assert_eq!(o.min_score_of(candor_detect::Label::Car), 0.6);
    assert_eq!(o.min_score_of(candor_detect::Label::Person), 0.5);
    assert_eq!(
        o.zones,
        [("driveway".to_owned(), vec![candor_detect::Label::Person])]
    );
    assert_eq!(c.objects.threads(), 1);
    assert!(c.objects.runtime.as_ref().is_some_and(|p| p.is_absolute()));
    // The commented-out [cloud] example, switched on, is valid too.
    let mut on = String::new();
    let mut in_cloud = false;
    for l in block.lines() {
        if l.starts_with("# [cloud]") {
            in_cloud = true;
        } else if in_cloud && !l.starts_with("# ") {
            in_cloud = false;
        }
        on += if in_cloud { &l[2..] } else { l };
        on.push('\n');
    }
    let c = Config::parse(&on).unwrap_or_else(|e| panic!("README [cloud]: {e}"));
    let cloud = c.cloud.expect("[cloud] switched on");
    assert_eq!(cloud.address.to_string(), "cloud.example.com:443");
    assert_eq!(cloud.sharing, candor_link::Sharing::Health);
    assert_eq!(cloud.proxy.map(|p| p.port), Some(3128));
}

#[test]
fn object_settings_are_checked_where_they_are_read() {
    let cam = |objects: &str, motion: &str| {
        format!(
            "[storage]\npath = \"/x\"\n[[cameras]]\nname = \"gate\"\nurl = \"rtsp://h/\"\n[cameras.motion]\n{motion}\n[[cameras.motion.zones]]\nname = \"door\"\npoints = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]\n[cameras.objects]\n{objects}\n"
        )
    };
    let ok = Config::parse(&cam(
        "enabled = true\nzones = { door = [\"person\"] }",
        "enabled = true",
    ))
    .unwrap();
    assert!(ok.cameras[0].objects.enabled);
    for (objects, motion, says) in [
        (
            "enabled = true",
            "enabled = false",
            "objects need motion detection",
        ),
        (
            "labels = [\"dog\"]",
            "enabled = true",
            "unknown label \"dog\"",
        ),
        ("labels = []", "enabled = true", "at least one label"),
        ("min_score = 1.5", "enabled = true", "between 0.05 and 0.99"),
        (
            "scores = { car = 0.0 }",
            "enabled = true",
            "between 0.05 and 0.99",
        ),
        ("scores = { tree = 0.5 }", "enabled = true", "unknown label"),
        ("fps = 100", "enabled = true", "between 0.5 and 10"),
        ("alarm = \"always\"", "enabled = true", "unknown variant"),
        (
            "enabled = true\nzones = { porch = [\"person\"] }",
            "enabled = true",
            "not a zone of [cameras.motion]",
        ),
        ("colour = \"red\"", "enabled = true", "unknown field"),
        (
            "enabled = true\nzones = { door = [] }",
            "enabled = true",
            "lists no label",
        ),
        (
            "enabled = true\nlabels = [\"car\"]\nzones = { door = [\"person\"] }",
            "enabled = true",
            "not in objects.labels",
        ),
    ] {
        let e = Config::parse(&cam(objects, motion)).unwrap_err();
        assert!(e.contains(says), "{objects}: {e}");
    }
    let rel = "[storage]\npath = \"/x\"\n[objects]\nruntime = \"lib/libonnxruntime.so\"\n";
    assert!(Config::parse(rel).unwrap_err().contains("absolute path"));
    let threads = "[storage]\npath = \"/x\"\n[objects]\nthreads = 0\n";
    assert!(
        Config::parse(threads)
            .unwrap_err()
            .contains("between 1 and 64")
    );
}

#[test]
fn cloud_addresses_parse_in_the_forms_people_type() {
    for (s, host, port) in [
        ("cloud.example.com", "cloud.example.com", 443),
        ("cloud.example.com:8443", "cloud.example.com", 8443),
        ("https://cloud.example.com/app", "cloud.example.com", 443),
        ("[2001:db8::1]:9000", "2001:db8::1", 9000),
        ("127.0.0.1:8443", "127.0.0.1", 8443),
    ] {
        let a = CloudAddress::parse(s, 443).unwrap();
        assert_eq!((a.host.as_str(), a.port), (host, port), "{s}");
    }
    assert!(CloudAddress::parse("https://user:pw@cloud.example.com", 443).is_err());
    assert!(CloudAddress::parse("", 443).is_err());
}

#[test]
fn update_checks_are_off_unless_configured_and_validated() {
    let base = "[storage]\npath = \"/x\"\n";
    assert!(Config::parse(base).unwrap().updates.is_none());
    let u = |body: &str| Config::parse(&format!("{base}[updates]\n{body}"));
    let ok = u(
        "repository = \"https://updates.example.org/candor/\"\nroot = \"/etc/candor/root.json\"\n",
    )
    .unwrap()
    .updates
    .unwrap();
    assert_eq!(ok.check_every.0.as_secs(), 6 * 3600);
    for (body, says) in [
        (
            "repository = \"file:///media/usb\"\nroot = \"/r.json\"\n",
            "http:// or https://",
        ),
        (
            "repository = \"https://u.example/\"\nroot = \"r.json\"\n",
            "absolute path",
        ),
        (
            "repository = \"https://me:pw@u.example/\"\nroot = \"/r.json\"\n",
            "without a user or password",
        ),
        (
            "repository = \"https://u.example/\"\nroot = \"/r.json\"\ncheck_every = \"10s\"\n",
            "1m to 7d",
        ),
        (
            "repository = \"https://u.example/\"\nroot = \"/r.json\"\nauto = true\n",
            "unknown field",
        ),
        (
            // Tests are built without CANDOR_RELEASE_ROOT.
            "repository = \"https://u.example/\"\n",
            "[updates] root is needed: this build has no release root built in",
        ),
        (
            "repository = \"https://u.example/\"\nroot = \"/r.json\"\nca = \"ca.pem\"\n",
            "[updates] ca must be an absolute path",
        ),
        (
            "repository = \"https://u.example/\"\nroot = \"/r.json\"\nwindow = \"2:00-4:00\"\n",
            "HH:MM-HH:MM",
        ),
        (
            "repository = \"https://u.example/\"\nroot = \"/r.json\"\nwindow = \"03:00-03:00\"\n",
            "HH:MM-HH:MM",
        ),
        (
            "repository = \"https://u.example/\"\nroot = \"/r.json\"\nwindow = \"24:00-01:00\"\n",
            "HH:MM-HH:MM",
        ),
    ] {
        let e = u(body).unwrap_err();
        assert!(e.contains(says), "{body}: {e}");
    }
}

#[test]
fn a_maintenance_window_may_cross_midnight() {
    use crate::updates::Window;
    let night = Window::parse("23:30-02:00").unwrap();
    for (m, inside) in [
        (23 * 60 + 29, false),
        (23 * 60 + 30, true),
        (0, true),
        (119, true),
        (120, false),
        (12 * 60, false),
    ] {
        assert_eq!(night.contains(m), inside, "{m}");
    }
    let day = Window::parse("02:00-04:00").unwrap();
    assert!(day.contains(150) && !day.contains(240) && !day.contains(119));
}
