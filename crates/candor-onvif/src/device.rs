//! Device and media service calls: the request bodies and what Candor reads
//! from the answers (clock, identity, service addresses, profiles, stream URIs).

use crate::soap::{SoapError, escape, response_body};

pub const GET_SYSTEM_DATE_AND_TIME: &str = "<tds:GetSystemDateAndTime/>";
pub const GET_DEVICE_INFORMATION: &str = "<tds:GetDeviceInformation/>";
pub const GET_CAPABILITIES: &str =
    "<tds:GetCapabilities><tds:Category>All</tds:Category></tds:GetCapabilities>";
pub const GET_PROFILES: &str = "<trt:GetProfiles/>";
pub const GET_RELAY_OUTPUTS: &str = "<tds:GetRelayOutputs/>";

/// Switches a relay output (siren, gate, light): `active` or `inactive`.
pub fn set_relay_output_state(token: &str, active: bool) -> String {
    format!(
        "<tds:SetRelayOutputState><tds:RelayOutputToken>{}</tds:RelayOutputToken><tds:LogicalState>{}</tds:LogicalState></tds:SetRelayOutputState>",
        escape(token),
        if active { "active" } else { "inactive" }
    )
}

/// A camera's relay output, as `GetRelayOutputs` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayOutput {
    pub token: String,
    /// `Bistable` (stays as set) or `Monostable` (returns to idle after
    /// `delay`).
    pub mode: String,
    /// ISO 8601 duration, for monostable outputs.
    pub delay: Option<String>,
    /// `open` or `closed` when inactive.
    pub idle_state: Option<String>,
}

/// At most this many outputs are taken from one answer.
pub const MAX_RELAY_OUTPUTS: usize = 32;

pub fn parse_relay_outputs(xml: &str) -> Result<Vec<RelayOutput>, SoapError> {
    let b = response_body(xml)?;
    let short = |s: Option<&str>| s.map(|s| s.chars().take(64).collect::<String>());
    Ok(b.children_named("RelayOutputs")
        .filter_map(|r| {
            let token = short(r.attr("token"))?;
            if token.is_empty() {
                return None;
            }
            Some(RelayOutput {
                token,
                mode: short(r.text_at("Properties/Mode")).unwrap_or_else(|| "Bistable".into()),
                delay: short(r.text_at("Properties/DelayTime")),
                idle_state: short(r.text_at("Properties/IdleState")),
            })
        })
        .take(MAX_RELAY_OUTPUTS)
        .collect())
}

/// GetStreamUri for RTSP (RTP over RTSP, which works through NAT and with
/// Candor's TCP default) of one profile.
pub fn get_stream_uri(profile_token: &str) -> String {
    format!(
        "<trt:GetStreamUri><trt:StreamSetup><tt:Stream>RTP-Unicast</tt:Stream><tt:Transport><tt:Protocol>RTSP</tt:Protocol></tt:Transport></trt:StreamSetup><trt:ProfileToken>{}</trt:ProfileToken></trt:GetStreamUri>",
        escape(profile_token)
    )
}

/// Seconds since the Unix epoch of a proleptic Gregorian UTC date and time
/// (Howard Hinnant's days-from-civil), or `None` if a field is out of range.
pub fn unix_secs(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> Option<i64> {
    // Bounded so the arithmetic below cannot overflow on a hostile answer.
    if !(1..=9999).contains(&y)
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&d)
        || !(0..24).contains(&h)
        || !(0..60).contains(&mi)
        || !(0..61).contains(&s)
    {
        return None;
    }
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + s)
}

/// The camera's UTC clock, Unix seconds. The difference to ours is applied to
/// every WS-Security `Created`, or the camera rejects the digest.
pub fn parse_system_date_and_time(xml: &str) -> Result<i64, SoapError> {
    let b = response_body(xml)?;
    let t = b
        .path("SystemDateAndTime/UTCDateTime")
        .ok_or(SoapError::Missing("SystemDateAndTime/UTCDateTime"))?;
    let n = |p: &'static str| -> Result<i64, SoapError> {
        t.text_at(p)
            .and_then(|v| v.parse().ok())
            .ok_or(SoapError::Missing(p))
    };
    unix_secs(
        n("Date/Year")?,
        n("Date/Month")?,
        n("Date/Day")?,
        n("Time/Hour")?,
        n("Time/Minute")?,
        n("Time/Second")?,
    )
    .ok_or(SoapError::Missing("a valid UTC date and time"))
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceInformation {
    pub manufacturer: String,
    pub model: String,
    pub firmware: String,
    pub serial: String,
    pub hardware_id: String,
}

pub fn parse_device_information(xml: &str) -> Result<DeviceInformation, SoapError> {
    let b = response_body(xml)?;
    let s = |p: &str| b.text_at(p).unwrap_or("").to_owned();
    Ok(DeviceInformation {
        manufacturer: s("Manufacturer"),
        model: s("Model"),
        firmware: s("FirmwareVersion"),
        serial: s("SerialNumber"),
        hardware_id: s("HardwareId"),
    })
}

/// Where the services are. Cameras behind NAT or misconfigured report
/// addresses they can't be reached on; callers keep the host they used and
/// take only the path when the host looks wrong.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub media: Option<String>,
    pub events: Option<String>,
    pub pull_point: bool,
}

pub fn parse_capabilities(xml: &str) -> Result<Capabilities, SoapError> {
    let b = response_body(xml)?;
    let c = b
        .child("Capabilities")
        .ok_or(SoapError::Missing("Capabilities"))?;
    Ok(Capabilities {
        media: c.text_at("Media/XAddr").map(str::to_owned),
        events: c.text_at("Events/XAddr").map(str::to_owned),
        pull_point: c.text_at("Events/WSPullPointSupport") == Some("true"),
    })
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Profile {
    pub token: String,
    pub name: String,
    /// `H264`, `H265` (some cameras say `HEVC`), `JPEG`, … as the camera says.
    pub encoding: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fps: Option<f64>,
    /// kbit/s.
    pub bitrate: Option<u32>,
}

impl Profile {
    pub fn pixels(&self) -> u64 {
        u64::from(self.width.unwrap_or(0)) * u64::from(self.height.unwrap_or(0))
    }
}

pub fn parse_profiles(xml: &str) -> Result<Vec<Profile>, SoapError> {
    let b = response_body(xml)?;
    let mut out = Vec::new();
    for p in b.children_named("Profiles") {
        let Some(token) = p.attr("token") else {
            continue;
        };
        let v = p.child("VideoEncoderConfiguration");
        let num = |path: &str| {
            v.and_then(|v| v.text_at(path))
                .and_then(|t| t.parse::<u32>().ok())
        };
        out.push(Profile {
            token: token.to_owned(),
            name: p.text_at("Name").unwrap_or(token).to_owned(),
            encoding: v.and_then(|v| v.text_at("Encoding")).map(str::to_owned),
            width: num("Resolution/Width"),
            height: num("Resolution/Height"),
            fps: v
                .and_then(|v| v.text_at("RateControl/FrameRateLimit"))
                .and_then(|t| t.parse().ok()),
            bitrate: num("RateControl/BitrateLimit"),
        });
    }
    Ok(out)
}

/// The main stream (most pixels) and the sub stream (fewest, if different),
/// among profiles with video.
pub fn main_and_sub(profiles: &[Profile]) -> (Option<&Profile>, Option<&Profile>) {
    let video: Vec<&Profile> = profiles.iter().filter(|p| p.pixels() > 0).collect();
    let main = video.iter().copied().max_by_key(|p| p.pixels());
    let sub = video
        .iter()
        .copied()
        .min_by_key(|p| p.pixels())
        .filter(|s| main.is_some_and(|m| m.pixels() > s.pixels()));
    (main.or_else(|| profiles.first()), sub)
}

pub fn parse_stream_uri(xml: &str) -> Result<String, SoapError> {
    let b = response_body(xml)?;
    b.text_at("MediaUri/Uri")
        .map(str::to_owned)
        .ok_or(SoapError::Missing("MediaUri/Uri"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_outputs_parse_and_the_token_is_escaped() {
        let xml = env(
            r#"<tds:GetRelayOutputsResponse><tds:RelayOutputs token="siren"><tt:Properties><tt:Mode>Monostable</tt:Mode><tt:DelayTime>PT10S</tt:DelayTime><tt:IdleState>open</tt:IdleState></tt:Properties></tds:RelayOutputs><tds:RelayOutputs token=""/><tds:RelayOutputs token="gate"><tt:Properties><tt:Mode>Bistable</tt:Mode></tt:Properties></tds:RelayOutputs></tds:GetRelayOutputsResponse>"#,
        );
        let r = parse_relay_outputs(&xml).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(
            (
                r[0].token.as_str(),
                r[0].mode.as_str(),
                r[0].delay.as_deref()
            ),
            ("siren", "Monostable", Some("PT10S"))
        );
        assert_eq!(r[1].idle_state, None);
        let req = set_relay_output_state("a<b>", true);
        assert!(
            req.contains("a&lt;b&gt;") && req.contains(">active<"),
            "{req}"
        );
    }

    fn env(body: &str) -> String {
        format!(
            r#"<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope" xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:trt="http://www.onvif.org/ver10/media/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema"><SOAP-ENV:Body>{body}</SOAP-ENV:Body></SOAP-ENV:Envelope>"#
        )
    }

    #[test]
    fn clock_identity_and_services() {
        let t = env(
            "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:DateTimeType>NTP</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings><tt:TimeZone><tt:TZ>CST-8</tt:TZ></tt:TimeZone><tt:UTCDateTime><tt:Time><tt:Hour>10</tt:Hour><tt:Minute>0</tt:Minute><tt:Second>5</tt:Second></tt:Time><tt:Date><tt:Year>2026</tt:Year><tt:Month>11</tt:Month><tt:Day>27</tt:Day></tt:Date></tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>",
        );
        // 2026-11-27T10:00:05Z, checked with `date -u -d 2026-11-27T10:00:05Z +%s`.
        assert_eq!(parse_system_date_and_time(&t).unwrap(), 1_795_773_605);
        assert_eq!(unix_secs(1970, 1, 1, 0, 0, 0), Some(0));
        assert_eq!(unix_secs(2000, 2, 29, 0, 0, 0), Some(951_782_400));
        assert_eq!(unix_secs(2026, 13, 1, 0, 0, 0), None);
        assert_eq!(unix_secs(i64::MAX, 1, 1, 0, 0, 0), None);

        let i = env(
            "<tds:GetDeviceInformationResponse><tds:Manufacturer>Candor</tds:Manufacturer><tds:Model>camsim</tds:Model><tds:FirmwareVersion>1.0</tds:FirmwareVersion><tds:SerialNumber>S1</tds:SerialNumber><tds:HardwareId>H1</tds:HardwareId></tds:GetDeviceInformationResponse>",
        );
        let d = parse_device_information(&i).unwrap();
        assert_eq!(
            (d.manufacturer.as_str(), d.model.as_str(), d.serial.as_str()),
            ("Candor", "camsim", "S1")
        );

        let c = env(
            "<tds:GetCapabilitiesResponse><tds:Capabilities><tt:Device><tt:XAddr>http://10.0.0.5/onvif/device_service</tt:XAddr></tt:Device><tt:Events><tt:XAddr>http://10.0.0.5/onvif/event_service</tt:XAddr><tt:WSPullPointSupport>true</tt:WSPullPointSupport></tt:Events><tt:Media><tt:XAddr>http://10.0.0.5/onvif/media_service</tt:XAddr></tt:Media></tds:Capabilities></tds:GetCapabilitiesResponse>",
        );
        let c = parse_capabilities(&c).unwrap();
        assert_eq!(
            c.media.as_deref(),
            Some("http://10.0.0.5/onvif/media_service")
        );
        assert!(c.pull_point);
    }

    #[test]
    fn profiles_pick_main_and_sub_streams() {
        let p = env(r#"<trt:GetProfilesResponse>
            <trt:Profiles token="Profile_1" fixed="true"><tt:Name>mainStream</tt:Name>
              <tt:VideoEncoderConfiguration token="V1"><tt:Name>v</tt:Name><tt:Encoding>H264</tt:Encoding>
                <tt:Resolution><tt:Width>2560</tt:Width><tt:Height>1440</tt:Height></tt:Resolution>
                <tt:RateControl><tt:FrameRateLimit>25</tt:FrameRateLimit><tt:EncodingInterval>1</tt:EncodingInterval><tt:BitrateLimit>4096</tt:BitrateLimit></tt:RateControl>
              </tt:VideoEncoderConfiguration></trt:Profiles>
            <trt:Profiles token="Profile_2" fixed="true"><tt:Name>subStream</tt:Name>
              <tt:VideoEncoderConfiguration token="V2"><tt:Encoding>H264</tt:Encoding>
                <tt:Resolution><tt:Width>640</tt:Width><tt:Height>360</tt:Height></tt:Resolution>
                <tt:RateControl><tt:FrameRateLimit>15</tt:FrameRateLimit><tt:BitrateLimit>512</tt:BitrateLimit></tt:RateControl>
              </tt:VideoEncoderConfiguration></trt:Profiles>
            <trt:Profiles token="Audio_only"><tt:Name>audio</tt:Name></trt:Profiles>
          </trt:GetProfilesResponse>"#);
        let list = parse_profiles(&p).unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(
            (list[0].width, list[0].fps, list[0].bitrate),
            (Some(2560), Some(25.0), Some(4096))
        );
        let (main, sub) = main_and_sub(&list);
        assert_eq!(main.map(|p| p.token.as_str()), Some("Profile_1"));
        assert_eq!(sub.map(|p| p.token.as_str()), Some("Profile_2"));
        let u = env(
            "<trt:GetStreamUriResponse><trt:MediaUri><tt:Uri>rtsp://10.0.0.5:554/Streaming/Channels/101?transportmode=unicast&amp;profile=Profile_1</tt:Uri><tt:InvalidAfterConnect>false</tt:InvalidAfterConnect></trt:MediaUri></trt:GetStreamUriResponse>",
        );
        assert_eq!(
            parse_stream_uri(&u).unwrap(),
            "rtsp://10.0.0.5:554/Streaming/Channels/101?transportmode=unicast&profile=Profile_1"
        );
        assert!(get_stream_uri("a<b").contains("a&lt;b"));
    }
}
