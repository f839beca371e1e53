//! ONVIF events over PullPoint (Core spec §9.3): the subscription and pull
//! requests, the notification messages cameras answer with, and how their
//! topics map to Candor's event kinds.

use crate::soap::{SoapError, escape, response_body};

pub const NS_EVENTS: &str = "http://www.onvif.org/ver10/events/wsdl";
pub const NS_WSNT: &str = "http://docs.oasis-open.org/wsn/b-2";
pub const NS_WSA: &str = "http://www.w3.org/2005/08/addressing";

/// Body of CreatePullPointSubscription; `termination` is an ISO 8601
/// duration (`PT60S`): the subscription lapses unless renewed, so a
/// recorder that dies leaves nothing behind on the camera.
pub fn create_pull_point_subscription(termination: &str) -> String {
    format!(
        r#"<tev:CreatePullPointSubscription xmlns:tev="{NS_EVENTS}"><tev:InitialTerminationTime>{}</tev:InitialTerminationTime></tev:CreatePullPointSubscription>"#,
        escape(termination)
    )
}

/// Body of PullMessages: wait up to `timeout` (ISO 8601) for at most `limit`.
pub fn pull_messages(timeout: &str, limit: u32) -> String {
    format!(
        r#"<tev:PullMessages xmlns:tev="{NS_EVENTS}"><tev:Timeout>{}</tev:Timeout><tev:MessageLimit>{limit}</tev:MessageLimit></tev:PullMessages>"#,
        escape(timeout)
    )
}

pub fn renew(termination: &str) -> String {
    format!(
        r#"<wsnt:Renew xmlns:wsnt="{NS_WSNT}"><wsnt:TerminationTime>{}</wsnt:TerminationTime></wsnt:Renew>"#,
        escape(termination)
    )
}

pub fn unsubscribe() -> String {
    format!(r#"<wsnt:Unsubscribe xmlns:wsnt="{NS_WSNT}"/>"#)
}

/// The subscription's own address, where PullMessages, Renew and
/// Unsubscribe go.
pub fn parse_subscription(xml: &str) -> Result<String, SoapError> {
    let b = response_body(xml)?;
    b.text_at("SubscriptionReference/Address")
        .map(str::to_owned)
        .ok_or(SoapError::Missing("SubscriptionReference/Address"))
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notification {
    /// E.g. `tns1:RuleEngine/CellMotionDetector/Motion`, prefix as sent.
    pub topic: String,
    /// `Initialized` (state at subscription), `Changed` or `Deleted`.
    pub operation: Option<String>,
    pub utc_time: Option<String>,
    pub source: Vec<(String, String)>,
    pub data: Vec<(String, String)>,
}

pub fn parse_pull_messages(xml: &str) -> Result<Vec<Notification>, SoapError> {
    let b = response_body(xml)?;
    let items = |e: Option<&crate::xml::Element>| -> Vec<(String, String)> {
        e.map(|e| {
            e.children_named("SimpleItem")
                .filter_map(|i| Some((i.attr("Name")?.to_owned(), i.attr("Value")?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
    };
    Ok(b.children_named("NotificationMessage")
        .map(|n| {
            // Message/Message: the wsnt wrapper, then the tt:Message payload.
            let m = n.path("Message/Message");
            Notification {
                topic: n.text_at("Topic").unwrap_or("").to_owned(),
                operation: m
                    .and_then(|m| m.attr("PropertyOperation"))
                    .map(str::to_owned),
                utc_time: m.and_then(|m| m.attr("UtcTime")).map(str::to_owned),
                source: items(m.and_then(|m| m.child("Source"))),
                data: items(m.and_then(|m| m.child("Data"))),
            }
        })
        .collect())
}

/// Candor's event kinds for camera-side events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Motion,
    Tamper,
    Input,
}

/// What a notification means for Candor: a kind and whether it is now
/// active, or `None` for topics Candor does not act on. Topics are matched
/// without their namespace prefix, and vendors' variants of the common ones
/// are included.
pub fn classify(n: &Notification) -> Option<(Kind, bool)> {
    let topic: String = n
        .topic
        .split('/')
        .map(|seg| seg.rsplit(':').next().unwrap_or(seg))
        .collect::<Vec<_>>()
        .join("/");
    let value = |names: &[&str]| {
        n.data
            .iter()
            .find(|(k, _)| names.contains(&k.as_str()))
            .map(|(_, v)| v.eq_ignore_ascii_case("true") || v == "1")
    };
    let kind = if topic.starts_with("RuleEngine/CellMotionDetector/Motion")
        || topic.starts_with("VideoSource/MotionAlarm")
        || topic.starts_with("RuleEngine/MotionRegionDetector/Motion")
    {
        Kind::Motion
    } else if topic.starts_with("VideoSource/GlobalSceneChange")
        || topic.starts_with("VideoSource/ImageTooDark")
        || topic.starts_with("VideoSource/ImageTooBlurry")
        || topic.starts_with("VideoSource/ImageTooBright")
        || topic.contains("/TamperDetector/Tamper")
    {
        Kind::Tamper
    } else if topic.starts_with("Device/Trigger/DigitalInput")
        || topic.starts_with("Device/IO/Port")
    {
        Kind::Input
    } else {
        return None;
    };
    let active = value(&["IsMotion", "State", "LogicalState", "IsTamper", "Value"])?;
    Some((kind, active))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(body: &str) -> String {
        format!(
            r#"<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:tev="{NS_EVENTS}" xmlns:wsnt="{NS_WSNT}" xmlns:wsa5="{NS_WSA}" xmlns:tt="http://www.onvif.org/ver10/schema" xmlns:tns1="http://www.onvif.org/ver10/topics"><env:Body>{body}</env:Body></env:Envelope>"#
        )
    }

    #[test]
    fn subscription_and_notifications_parse_and_classify() {
        let s = env(
            "<tev:CreatePullPointSubscriptionResponse><tev:SubscriptionReference><wsa5:Address>http://10.0.0.5/onvif/Subscription?Idx=3</wsa5:Address></tev:SubscriptionReference><wsnt:CurrentTime>2026-11-27T10:00:00Z</wsnt:CurrentTime><wsnt:TerminationTime>2026-11-27T10:01:00Z</wsnt:TerminationTime></tev:CreatePullPointSubscriptionResponse>",
        );
        assert_eq!(
            parse_subscription(&s).unwrap(),
            "http://10.0.0.5/onvif/Subscription?Idx=3"
        );
        let p = env(
            r#"<tev:PullMessagesResponse><tev:CurrentTime>2026-11-27T10:00:05Z</tev:CurrentTime><tev:TerminationTime>2026-11-27T10:01:00Z</tev:TerminationTime>
            <wsnt:NotificationMessage><wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">tns1:RuleEngine/CellMotionDetector/Motion</wsnt:Topic>
              <wsnt:Message><tt:Message UtcTime="2026-11-27T10:00:04Z" PropertyOperation="Changed"><tt:Source><tt:SimpleItem Name="VideoSourceConfigurationToken" Value="VideoSourceToken"/><tt:SimpleItem Name="Rule" Value="MyMotionDetectorRule"/></tt:Source><tt:Data><tt:SimpleItem Name="IsMotion" Value="true"/></tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage>
            <wsnt:NotificationMessage><wsnt:Topic>tns1:Device/Trigger/DigitalInput</wsnt:Topic>
              <wsnt:Message><tt:Message UtcTime="2026-11-27T10:00:05Z" PropertyOperation="Changed"><tt:Source><tt:SimpleItem Name="InputToken" Value="1"/></tt:Source><tt:Data><tt:SimpleItem Name="LogicalState" Value="false"/></tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage>
            <wsnt:NotificationMessage><wsnt:Topic>tns1:Monitoring/ProcessorUsage</wsnt:Topic>
              <wsnt:Message><tt:Message UtcTime="2026-11-27T10:00:05Z"><tt:Data><tt:SimpleItem Name="Value" Value="0.3"/></tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage>
            </tev:PullMessagesResponse>"#,
        );
        let n = parse_pull_messages(&p).unwrap();
        assert_eq!(n.len(), 3);
        assert_eq!(n[0].operation.as_deref(), Some("Changed"));
        assert_eq!(
            n[0].source[1],
            ("Rule".to_string(), "MyMotionDetectorRule".to_string())
        );
        assert_eq!(classify(&n[0]), Some((Kind::Motion, true)));
        assert_eq!(classify(&n[1]), Some((Kind::Input, false)));
        assert_eq!(
            classify(&n[2]),
            None,
            "topics Candor does not act on are left alone"
        );
        let tamper = Notification {
            topic: "tns1:VideoSource/GlobalSceneChange/ImagingService".into(),
            data: vec![("State".into(), "true".into())],
            ..Default::default()
        };
        assert_eq!(classify(&tamper), Some((Kind::Tamper, true)));
        for body in [
            create_pull_point_subscription("PT60S"),
            pull_messages("PT5S", 32),
            renew("PT60S"),
            unsubscribe(),
        ] {
            assert!(
                crate::xml::parse(&crate::soap::envelope(&body, None)).is_ok(),
                "{body}"
            );
        }
    }
}
