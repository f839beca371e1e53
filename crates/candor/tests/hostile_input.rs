//! The fuzz targets' entry points (see `fuzz/`) on seeded mutations of real
//! inputs, so every `cargo test` exercises them on stable Rust: truncations,
//! bit flips, byte insertions and splices of real clips, decoder records, RTSP
//! requests, segment files and configs. Passing means no panic and no hang.

mod common;

use candor_camsim::rtsp;
use candor_media::h26x::{DecoderConfig, nals};
use candor_media::mp4;
use candor_storage::segfile;

const H264: &[u8] = include_bytes!("../../../assets/clips/vtest-h264-10s.mp4");
const H265: &[u8] = include_bytes!("../../../assets/clips/vtest-h265-10s.mp4");

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: deterministic, so a failure reproduces.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(5) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => v.truncate(rng.below(v.len() + 1)),
            2 => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.next() as u8);
            }
            3 if !v.is_empty() => {
                // Interesting integers where sizes and counts live.
                let i = rng.below(v.len());
                let b = [0x00, 0xff, 0x7f, 0x80][rng.below(4)];
                v[i] = b;
            }
            _ if v.len() > 8 => {
                let (a, b) = (rng.below(v.len()), rng.below(v.len()));
                let (a, b) = (a.min(b), a.max(b));
                v.drain(a..b.min(a + 64));
            }
            _ => {}
        }
    }
    v
}

/// The clips are faststart: all of the parsing happens in the first bytes.
fn moov_prefix(clip: &[u8]) -> &[u8] {
    &clip[..clip.len().min(40_000)]
}

#[test]
fn mp4_reader_survives_mutated_clips() {
    let mut rng = Rng(0x5eed_0001);
    for clip in [H264, H265] {
        assert!(mp4::read::parse(clip).is_ok(), "the unmutated clip parses");
        let head = moov_prefix(clip);
        for _ in 0..3000 {
            let _ = mp4::read::parse(&mutate(&mut rng, head));
        }
    }
}

#[test]
fn decoder_config_and_nal_parsers_survive_mutation() {
    let mut rng = Rng(0x5eed_0002);
    let h264 = mp4::read::parse(H264).unwrap();
    let h265 = mp4::read::parse(H265).unwrap();
    // Rebuild records to mutate from the parsed configs' parameter sets.
    let mut avcc = vec![1, 0x4d, 0x40, 0x1f, 0xff, 0xe1];
    avcc.extend((h264.config.sps[0].len() as u16).to_be_bytes());
    avcc.extend(&h264.config.sps[0]);
    avcc.push(1);
    avcc.extend((h264.config.pps[0].len() as u16).to_be_bytes());
    avcc.extend(&h264.config.pps[0]);
    assert!(DecoderConfig::parse_avcc(&avcc).is_ok());
    let sample = &H264[h264.samples[0].offset as usize..][..h264.samples[0].size as usize];
    for _ in 0..5000 {
        let m = mutate(&mut rng, &avcc);
        let _ = DecoderConfig::parse_avcc(&m).map(|c| c.sdp_fmtp());
        let _ = DecoderConfig::parse_hvcc(&m).map(|c| c.sdp_fmtp());
        let s = mutate(&mut rng, &sample[..sample.len().min(256)]);
        for n in nals(&s, 4) {
            if n.is_err() {
                break;
            }
        }
    }
    assert_eq!(h265.config.vps.len(), 1);
}

#[test]
fn rtsp_request_parser_survives_mutation() {
    let mut rng = Rng(0x5eed_0003);
    let reqs: [&[u8]; 3] = [
        b"DESCRIBE rtsp://127.0.0.1:8554/cam0 RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp\r\n\r\n",
        b"SETUP rtsp://127.0.0.1:8554/cam0/trackID=0 RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP;unicast;client_port=5000-5001\r\n\r\n",
        b"SET_PARAMETER rtsp://h/cam1 RTSP/1.0\r\nCSeq: 9\r\nContent-Length: 4\r\n\r\nabcd$\x00\x00\x02hi",
    ];
    for _ in 0..5000 {
        let r = reqs[rng.below(reqs.len())];
        let m = mutate(&mut rng, r);
        if let rtsp::Parsed::Request { req, consumed } = rtsp::parse(&m) {
            assert!(consumed <= m.len());
            let _ = rtsp::camera_index(&req.url);
            let _ = req.transport.as_deref().map(rtsp::client_ports);
        }
    }
}

#[test]
fn segment_scanner_survives_corrupted_files() {
    let mut rng = Rng(0x5eed_0004);
    let header = segfile::Header {
        segment_id: 1,
        camera_id: 1,
        start_90k: 0,
        sample_entry: b"entry".to_vec(),
    };
    let mut file = header.encode();
    let clip = mp4::read::parse(H264).unwrap();
    for (i, s) in clip.samples.iter().take(20).enumerate() {
        let p = &H264[s.offset as usize..][..s.size as usize];
        file.extend(segfile::record_header(p, i as u32 * 9000, s.key));
        file.extend(p);
    }
    let ok = segfile::scan_reader(
        &mut std::io::BufReader::new(std::io::Cursor::new(&file)),
        file.len() as u64,
        true,
    )
    .unwrap();
    assert_eq!(ok.records.len(), 20);
    for _ in 0..400 {
        let m = mutate(&mut rng, &file);
        for verify in [false, true] {
            if let Ok(s) = segfile::scan_reader(
                &mut std::io::BufReader::new(std::io::Cursor::new(&m)),
                m.len() as u64,
                verify,
            ) {
                assert!(s.valid_len <= m.len() as u64);
                assert!(s.records.len() <= 21);
            }
        }
    }
}

#[test]
fn config_parser_survives_mutation() {
    let mut rng = Rng(0x5eed_0005);
    let good = "[storage]\npath = \"d\"\nmax_bytes = \"20GB\"\nmin_free = \"2GB\"\n[[cameras]]\nname = \"gate\"\nurl = \"rtsp://u:p@h:554/x\"\nmax_age = \"14d\"\n";
    assert!(candor_recorder::Config::parse(good).is_ok());
    for _ in 0..3000 {
        let m = mutate(&mut rng, good.as_bytes());
        if let Ok(s) = std::str::from_utf8(&m) {
            let _ = candor_recorder::Config::parse(s);
        }
    }
}

#[test]
fn http_handlers_survive_mutated_requests() {
    let h = candor_web::fuzzing::Harness::new();
    let seeds: &[&[u8]] = &[
        b"\x00/api/v1/cameras/gate/spans?from=2026-11-27T10:00:00Z&to=2026-11-27T11:00:00Z\x00\x00",
        b"\x00/api/v1/cameras/gate/export.mp4?from=2026-11-27T10:00:00Z&to=2026-11-27T10:00:05Z&download=1\x00bytes=0-99\x00",
        b"\x00/api/v1/audit?user=a&action=login*&since=0&until=99999999999&limit=5&format=csv\x00\x00",
        b"\x01/api/v1/users\x00\x00{\"name\":\"x\",\"password\":\"0123456789\",\"role\":\"viewer\",\"cameras\":[\"gate\"]}",
        b"\x02/api/v1/users/x\x00\x00{\"role\":\"operator\",\"cameras\":null}",
        b"\x01/api/v1/tokens\x00\x00{\"name\":\"t\",\"role\":\"viewer\",\"cameras\":[\"gate\"]}",
        b"\x03/api/v1/sessions/1\x00\x00",
        b"\x01/api/v1/login\x00\x00{\"username\":\"fuzz\",\"password\":\"nope\",\"totp\":\"123456\"}",
        b"\x01/api/v1/me/totp/confirm\x00\x00{\"code\":\"000000\"}",
        b"\x00/api/v1/system\x00\x00",
        b"\x00/app/app.js\x00\x00",
    ];
    let mut rng = Rng(0x005e_ed0f_4774);
    let mut answered = 0;
    for seed in seeds {
        assert!(
            h.request(seed).is_some(),
            "seed {:?} must parse",
            String::from_utf8_lossy(seed)
        );
        for _ in 0..150 {
            if h.request(&mutate(&mut rng, seed)).is_some() {
                answered += 1;
            }
        }
    }
    assert!(
        answered > 500,
        "only {answered} mutated requests reached the router"
    );
}

#[test]
fn onvif_parsers_survive_mutated_answers() {
    let seeds = [
        r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><trt:GetProfilesResponse><trt:Profiles token="P1"><tt:Name>main</tt:Name><tt:VideoEncoderConfiguration><tt:Encoding>H264</tt:Encoding><tt:Resolution><tt:Width>1920</tt:Width><tt:Height>1080</tt:Height></tt:Resolution><tt:RateControl><tt:FrameRateLimit>25</tt:FrameRateLimit><tt:BitrateLimit>4096</tt:BitrateLimit></tt:RateControl></tt:VideoEncoderConfiguration></trt:Profiles></trt:GetProfilesResponse></s:Body></s:Envelope>"#,
        r#"<s:Envelope xmlns:s="x"><s:Body><tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:UTCDateTime><tt:Time><tt:Hour>23</tt:Hour><tt:Minute>59</tt:Minute><tt:Second>60</tt:Second></tt:Time><tt:Date><tt:Year>-9999999999</tt:Year><tt:Month>2</tt:Month><tt:Day>29</tt:Day></tt:Date></tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse></s:Body></s:Envelope>"#,
        r#"<e:Envelope xmlns:e="x"><e:Body><d:ProbeMatches><d:ProbeMatch><a:EndpointReference><a:Address>urn:uuid:1</a:Address></a:EndpointReference><d:Scopes>onvif://www.onvif.org/name/A%2</d:Scopes><d:XAddrs>http://1.2.3.4/onvif/device_service</d:XAddrs></d:ProbeMatch></d:ProbeMatches></e:Body></e:Envelope>"#,
        r#"<e:Envelope xmlns:e="x"><e:Body><tev:PullMessagesResponse><wsnt:NotificationMessage><wsnt:Topic>tns1:RuleEngine/CellMotionDetector/Motion</wsnt:Topic><wsnt:Message><tt:Message UtcTime="2026-11-27T10:00:04Z" PropertyOperation="Changed"><tt:Source><tt:SimpleItem Name="Rule" Value="r"/></tt:Source><tt:Data><tt:SimpleItem Name="IsMotion" Value="true"/></tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage></tev:PullMessagesResponse></e:Body></e:Envelope>"#,
        r#"<env:Envelope xmlns:env="x"><env:Body><env:Fault><env:Code><env:Value>env:Sender</env:Value><env:Subcode><env:Value>ter:NotAuthorized</env:Value></env:Subcode></env:Code><env:Reason><env:Text>no</env:Text></env:Reason></env:Fault></env:Body></env:Envelope>"#,
    ];
    let mut rng = Rng(0x0000_0a1f_1234);
    for seed in seeds {
        for _ in 0..400 {
            let m = mutate(&mut rng, seed.as_bytes());
            candor_onvif::fuzz_parsers(&String::from_utf8_lossy(&m));
        }
    }
}

/// Camera bitstreams reach openh264 (C) through motion detection and
/// snapshots: corrupted, truncated and spliced samples, and mangled
/// parameter sets, must give errors, never a crash or a hang.
#[test]
fn h264_decoder_survives_corrupted_streams() {
    let clip = mp4::read::parse(H264).unwrap();
    let sample = |i: usize| {
        let s = &clip.samples[i];
        &H264[s.offset as usize..s.offset as usize + s.size as usize]
    };
    let mut rng = Rng(0x0264_dec0_de00);
    // A stream where a third of the samples are damaged.
    let mut scanner = candor_motion::Scanner::new(
        &clip.config,
        candor_motion::Settings::default(),
        5.0,
        90_000,
    )
    .unwrap();
    let (mut ok, mut errors) = (0, 0);
    for (i, s) in clip.samples.iter().enumerate() {
        let data = if rng.below(3) == 0 {
            mutate(&mut rng, sample(i))
        } else {
            sample(i).to_vec()
        };
        match scanner.push(s.time_90k, &data, s.key) {
            Ok(_) => ok += 1,
            Err(_) => errors += 1,
        }
    }
    assert!(ok > 0, "{ok} decoded, {errors} refused");
    // Mangled SPS/PPS with an intact key frame, and random bytes as frames.
    let key = sample(0).to_vec();
    for _ in 0..150 {
        let mut cfg = clip.config.clone();
        cfg.sps = cfg.sps.iter().map(|s| mutate(&mut rng, s)).collect();
        cfg.pps = cfg.pps.iter().map(|p| mutate(&mut rng, p)).collect();
        if let Ok(mut d) = candor_motion::H264Decoder::new(&cfg) {
            let _ = d.decode(&key, true).map(|f| f.map(|f| f.to_picture()));
            let junk: Vec<u8> = (0..rng.below(4000)).map(|_| rng.next() as u8).collect();
            let _ = d.decode(&junk, true).map(|f| f.is_some());
        }
    }
}

/// Object detection takes the same decoded frames, corrupted ones
/// included: the recorder's own pipeline (motion boxes, squares, I420 to
/// RGB, the model, the tracker) on a stream where a third of the samples
/// are damaged gives detections or nothing, never a panic. Needs the PyPI
/// onnxruntime wheel's library (.ci/run installs it).
#[test]
fn object_detection_survives_corrupted_streams() {
    let engine =
        candor_recorder::objects::Engine::new(&candor_recorder::config::ObjectsRuntimeConfig {
            runtime: Some(common::onnxruntime().into()),
            threads: Some(1),
        });
    let clip = mp4::read::parse(H264).unwrap();
    let sample = |i: usize| {
        let s = &clip.samples[i];
        &H264[s.offset as usize..s.offset as usize + s.size as usize]
    };
    // The most sensitive motion settings, so damage shows as motion boxes
    // everywhere and the model looks at damaged pictures.
    let settings = candor_motion::Settings {
        sensitivity: 100,
        min_size: 0.0005,
        ..Default::default()
    };
    let mut scanner = candor_motion::Scanner::new(&clip.config, settings, 10.0, 90_000).unwrap();
    let mut objects = candor_recorder::objects::CameraObjects::new(
        candor_recorder::config::ObjectsConfig {
            enabled: true,
            fps: 10.0,
            ..Default::default()
        },
        vec![],
        vec![],
    );
    let mut rng = Rng(0x0b1e_c7ed);
    let (mut looks, mut found) = ([0; 2], 0);
    // Twice through the clip: the model warms up on the first pass.
    for pass in 0..2 {
        for (i, s) in clip.samples.iter().enumerate() {
            let data = if pass == 1 && rng.below(3) == 0 {
                mutate(&mut rng, sample(i))
            } else {
                sample(i).to_vec()
            };
            let t = s.time_90k + pass * 10 * 90_000;
            let _ = scanner.push_observed(t, &data, s.key, |frame, a| {
                if let Some(f) = objects.observe(&engine, t, frame, a) {
                    looks[pass as usize] += 1;
                    found += f.len();
                }
            });
        }
    }
    assert_eq!(objects.stats.state, "running");
    assert!(
        looks[0] > 20 && looks[1] > 0,
        "looks at clean and damaged frames: {looks:?}"
    );
    assert!(found > 0, "the undamaged pass finds the walkers: {found}");
    assert!(objects.working());
    // The stream ends: whatever was open ends too.
    objects.finish();
    assert!(objects.tracks().is_empty());
}

/// A data connection's preamble (`candor_link::dial`), the first bytes the
/// cloud reads from anyone: mutated preambles never panic the reader, and
/// whatever it accepts is exactly a preamble with a well-formed token.
#[test]
fn dial_preamble_peek_survives_mutated_preambles() {
    use candor_link::dial::{Peek, is_token, peek, preamble};
    let good = preamble(&"c0".repeat(32));
    let mut rng = Rng(0xd1a1_0001);
    let mut accepted = 0;
    for _ in 0..3000 {
        let m = mutate(&mut rng, &good);
        if let Peek::Dial(t) = peek(&m) {
            assert!(is_token(&t));
            assert_eq!(&m[..good.len()], &preamble(&t)[..]);
            accepted += 1;
        }
    }
    assert!(accepted > 0, "no mutated preamble still parsed");
}

/// The remote-access router reads a browser's ClientHello before anything
/// else: mutated real hellos (rustls's) never panic it, and every answer is
/// one of the three it may give.
#[test]
fn client_hello_peek_survives_mutated_hellos() {
    use candor_cloud::relay::sni::{Peek, peek};
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("home.remote.example").unwrap();
    let mut c = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let mut hello = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut hello).unwrap();
    }
    assert!(matches!(peek(&hello), Peek::Hello { sni: Some(_) }));
    let mut rng = Rng(0x5e1f_c0de);
    let mut named = 0;
    for _ in 0..3000 {
        if let Peek::Hello { sni: Some(_) } = peek(&mutate(&mut rng, &hello)) {
            named += 1;
        }
    }
    assert!(named > 0, "no mutated hello still parsed");
}
