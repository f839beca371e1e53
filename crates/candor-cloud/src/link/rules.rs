//! The link's rules for what a recorder may send, without I/O: which frames
//! are accepted, and what an unpaired recorder's messages lead to.

use candor_link::{Frame, Message, Refusal};

/// A frame from a recorder the cloud takes.
#[derive(Debug, PartialEq)]
pub(super) enum In {
    Message(Message),
    /// Data, credit or close of a stream the cloud opened (remote access).
    Stream(Frame),
}

/// One frame from a recorder, as the cloud accepts it: a control message a
/// recorder may send, or a paired recorder's answer on a stream. Opens
/// (only the cloud opens streams), stream frames while pairing, messages
/// only the cloud sends, and undecodable bytes end the connection.
pub(super) fn accept(
    frame: Result<Option<Frame>, candor_link::LinkError>,
    paired: bool,
) -> Result<Option<In>, String> {
    let m = match frame {
        Ok(Some(Frame::Control(m))) => m,
        Ok(Some(Frame::Open { .. })) => return Err("a recorder opened a stream".into()),
        Ok(Some(f)) if paired => return Ok(Some(In::Stream(f))),
        Ok(Some(_)) => return Err("stream frame before pairing".into()),
        Ok(None) => return Ok(None),
        Err(e) => return Err(format!("protocol error: {e}")),
    };
    if m.from_cloud() {
        return Err(format!("recorder sent a cloud message ({})", m.name()));
    }
    Ok(Some(In::Message(m)))
}

/// What an unpaired recorder's message leads to.
#[derive(Debug, PartialEq)]
pub(super) enum Unpaired {
    /// Hand out a pairing code (once per connection).
    Start {
        name: String,
    },
    /// Check the confirmation code the recorder's admin confirmed.
    Confirm {
        confirmation: String,
    },
    Nothing,
    /// Answer with this refusal and close.
    Refuse(Message),
}

/// The pairing phase's rules, without I/O: one `pair_start` per
/// connection, a confirmation only after it, and nothing else until paired.
pub(super) fn unpaired_step(m: Message, started: bool) -> Result<Unpaired, String> {
    Ok(match m {
        Message::PairStart { name } if !started => Unpaired::Start { name },
        Message::PairConfirm { .. } if !started => {
            return Err("confirm before a pairing".into());
        }
        Message::PairConfirm { confirmation } => Unpaired::Confirm { confirmation },
        Message::Pong { .. } => Unpaired::Nothing,
        other => Unpaired::Refuse(Message::Refused {
            code: Refusal::Protocol,
            reason: format!("unknown recorder: pair it first (sent {})", other.name()),
        }),
    })
}

/// State messages (hello, status, grants, access notices) a link may send
/// a minute. Each costs a database write and a notice to the owner's
/// browsers (an access notice, a push to their phones); a recorder sends its
/// status on change at most every 2 s, its hello once per connection, and
/// the others when an owner acts, so 60 is twice what one can need. Alarms
/// and their acknowledgements are not counted: a recorder back from a day
/// offline sends its whole outbox at once.
pub const STATE_PER_MINUTE: u32 = 60;

/// Whether a message counts against [`STATE_PER_MINUTE`].
pub(super) fn is_state(m: &Message) -> bool {
    matches!(
        m,
        Message::Hello { .. }
            | Message::Status { .. }
            | Message::Grants { .. }
            | Message::AccessNotice { .. }
    )
}

/// A link's budget of state messages: a window of a minute from the first.
#[derive(Debug)]
pub(super) struct StateBudget {
    window: std::time::Instant,
    used: u32,
}

impl StateBudget {
    pub(super) fn new(now: std::time::Instant) -> StateBudget {
        StateBudget {
            window: now,
            used: 0,
        }
    }

    /// Takes one; false when the budget is spent, and the link must end
    /// with [`over_budget`].
    pub(super) fn take(&mut self, now: std::time::Instant) -> bool {
        if now.duration_since(self.window) >= std::time::Duration::from_secs(60) {
            (self.window, self.used) = (now, 0);
        }
        self.used = self.used.saturating_add(1);
        self.used <= STATE_PER_MINUTE
    }
}

/// The refusal that ends a link over its [`StateBudget`].
pub(super) fn over_budget() -> Message {
    Message::Refused {
        code: Refusal::Protocol,
        reason: format!(
            "more than {STATE_PER_MINUTE} hello, status, grants and access messages in a minute"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_may_send_sixty_state_messages_a_minute_and_alarms_are_not_counted() {
        let t = std::time::Instant::now();
        let mut b = StateBudget::new(t);
        for _ in 0..STATE_PER_MINUTE {
            assert!(b.take(t + std::time::Duration::from_secs(59)));
        }
        assert!(!b.take(t + std::time::Duration::from_secs(59)));
        assert!(matches!(
            over_budget(),
            Message::Refused {
                code: Refusal::Protocol,
                ..
            }
        ));
        // A new minute, a new budget.
        assert!(b.take(t + std::time::Duration::from_secs(60)));
        assert!(is_state(&Message::Hello {
            proto: 1,
            software: "x".into(),
            sharing: candor_link::Sharing::Health,
            remote: false,
        }));
        assert!(!is_state(&Message::Pong { nonce: 1 }));
        assert!(!is_state(&Message::AckRecorded { alarm: 1 }));
    }

    #[test]
    fn a_recorder_may_send_only_recorder_messages_and_answer_streams_once_paired() {
        assert_eq!(accept(Ok(None), true), Ok(None));
        let hello = Message::Pong { nonce: 1 };
        assert_eq!(
            accept(Ok(Some(Frame::Control(hello.clone()))), false),
            Ok(Some(In::Message(hello)))
        );
        let forged = Message::Paired { site: "x".into() };
        assert!(accept(Ok(Some(Frame::Control(forged))), true).is_err());
        let data = || Frame::Data {
            stream: 1,
            payload: vec![0].into(),
        };
        assert_eq!(accept(Ok(Some(data())), true), Ok(Some(In::Stream(data()))));
        assert_eq!(
            accept(Ok(Some(data())), false),
            Err("stream frame before pairing".into())
        );
        let open = Frame::Open {
            stream: 2,
            payload: vec![],
        };
        assert_eq!(
            accept(Ok(Some(open)), true),
            Err("a recorder opened a stream".into())
        );
    }

    #[test]
    fn pairing_starts_once_and_confirms_only_after_it_started() {
        let start = || Message::PairStart {
            name: "Home".into(),
        };
        let confirm = || Message::PairConfirm {
            confirmation: "123456".into(),
        };
        assert_eq!(
            unpaired_step(start(), false),
            Ok(Unpaired::Start {
                name: "Home".into()
            })
        );
        assert!(unpaired_step(confirm(), false).is_err());
        assert!(matches!(
            unpaired_step(start(), true),
            Ok(Unpaired::Refuse(Message::Refused {
                code: Refusal::Protocol,
                ..
            }))
        ));
        assert!(matches!(
            unpaired_step(confirm(), true),
            Ok(Unpaired::Confirm { .. })
        ));
        assert_eq!(
            unpaired_step(Message::Pong { nonce: 3 }, true),
            Ok(Unpaired::Nothing)
        );
        let status = Message::Status {
            seq: 1,
            cameras: None,
            disk_used_percent: None,
            footage_days: None,
            last_event_at: None,
            footage_target_days: None,
            certificate: None,
        };
        assert!(matches!(
            unpaired_step(status, true),
            Ok(Unpaired::Refuse(_))
        ));
    }
}
