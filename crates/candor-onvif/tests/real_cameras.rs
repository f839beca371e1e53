//! Candor's ONVIF parsers on responses captured from real cameras (see
//! `fixtures/real/README.md` for where each comes from and its licence).

use candor_onvif::{device, discovery, events};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/real/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[test]
fn hikvision_profiles_give_main_and_sub_stream() {
    let p = device::parse_profiles(&fixture("hikvision-getprofiles.xml")).unwrap();
    assert_eq!(p.len(), 2, "{p:?}");
    let (main, sub) = device::main_and_sub(&p);
    let (main, sub) = (main.unwrap(), sub.unwrap());
    assert_eq!(
        (main.name.as_str(), main.width, main.height),
        ("mainStream", Some(1920), Some(1080))
    );
    assert_eq!(
        (sub.name.as_str(), sub.width, sub.height),
        ("subStream", Some(640), Some(360))
    );
    assert_eq!(main.encoding.as_deref(), Some("H264"));
    assert!(main.fps.is_some() && main.bitrate.is_some(), "{main:?}");
}

#[test]
fn hikvision_initial_event_states_classify() {
    let n = events::parse_pull_messages(&fixture("hikvision-pullmessages.xml")).unwrap();
    assert!(n.len() >= 8, "{n:?}");
    assert!(
        n.iter()
            .all(|n| n.operation.as_deref() == Some("Initialized"))
    );
    let kinds: Vec<_> = n.iter().filter_map(events::classify).collect();
    // MotionAlarm and CellMotionDetector: motion, off. GlobalSceneChange and
    // ImageTooDark: tamper, off. The field detector and the monitoring topics
    // are not Candor events.
    assert_eq!(
        kinds,
        [
            (events::Kind::Motion, false),
            (events::Kind::Tamper, false),
            (events::Kind::Motion, false),
            (events::Kind::Tamper, false),
        ]
    );
    let field = n
        .iter()
        .find(|n| n.topic.contains("FieldDetector"))
        .unwrap();
    assert_eq!(events::classify(field), None);
    assert_eq!(field.data, [("IsInside".to_owned(), "false".to_owned())]);
}

#[test]
fn gsoap_camera_answers_parse() {
    assert_eq!(
        device::parse_stream_uri(&fixture("gsoap-GetStreamUri.xml")).unwrap(),
        "rtsp://192.168.68.111/h264main"
    );
    let info =
        device::parse_device_information(&fixture("gsoap-GetDeviceInformation.xml")).unwrap();
    assert_eq!(info.firmware, "Mockup_15_14_13");
    let p = device::parse_profiles(&fixture("gsoap-GetProfiles.xml")).unwrap();
    assert!(
        p.iter()
            .any(|p| p.width == Some(1920) && p.height == Some(1080)),
        "{p:?}"
    );
    // Its clock: 2014, in a time zone named by Windows ("MoroccoStandardTime0").
    let t = device::parse_system_date_and_time(&fixture("gsoap-GetSystemDateAndTime.xml")).unwrap();
    assert!((1_388_534_400..1_420_070_400).contains(&t), "2014: {t}");
    // The subscription answer carries the camera's own (never set) clock, year
    // 2000: the client must not trust it, and uses the offset it measured.
    assert_eq!(
        events::parse_subscription(&fixture("gsoap-events.CreatePullPointSubscription.xml"))
            .unwrap(),
        "http://192.168.68.111/onvif/services?SubscriptionId=0"
    );
}

#[test]
fn a_probe_match_with_an_unusable_address_is_kept_without_it() {
    let found = discovery::parse_probe_matches(&fixture("gsoap-Probe.xml")).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].name.as_deref(), Some("PREDATOR"));
    assert_eq!(found[0].hardware.as_deref(), Some("HD_PREDATOR"));
    assert_eq!(
        found[0].endpoint,
        "uuid:c9790c3a-701b-464d-a189-0060351c8ada"
    );
    // The published capture replaced XAddrs with a placeholder; it is no URL.
    assert!(found[0].xaddrs.is_empty());
}

#[test]
fn every_real_fixture_survives_the_fuzz_entry_point_and_its_truncations() {
    let dir = format!("{}/tests/fixtures/real", env!("CARGO_MANIFEST_DIR"));
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "xml") {
            let s = std::fs::read_to_string(&p).unwrap();
            for cut in (0..s.len()).step_by(97).filter(|&i| s.is_char_boundary(i)) {
                candor_onvif::fuzz_parsers(&s[..cut]);
            }
        }
    }
}
