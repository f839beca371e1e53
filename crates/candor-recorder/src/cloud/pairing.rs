//! Pairing, the recorder's side: start, show the code, wait for the claim,
//! and pair only after the local admin confirmed the code both screens show.

use super::*;

impl Link {
    pub(super) async fn pairing(&mut self, io: &mut LinkIo, dest: &str, key: [u8; 32]) -> Ended {
        let start = Message::PairStart {
            name: self.config.name.clone(),
        };
        if let Err(e) = self.send(io, dest, &start).await {
            return Ended::Retry(e);
        }
        self.state.send_modify(|s| {
            s.connected = true;
            s.last_error = None;
            s.pairing = Some(PairingView::default());
        });
        let tunnel = io.tunnel.clone();
        let mut code = String::new();
        // Set only once the local admin confirmed, and sent: the cloud's
        // `paired` counts only after it (docs/design/cloud.md).
        let mut confirmed = false;
        let (mut beat, mut last_pong) = (None, None);
        let mut deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let msg = tokio::select! {
                r = io.next(false) => match r {
                    Ok(In::Message(m)) => m,
                    Ok(In::Open { .. }) => return Ended::Retry("protocol error: a stream while pairing".into()),
                    Err(e) => return Ended::Retry(e),
                },
                _ = tunnel.ended() => return Ended::Retry("sending to the cloud failed".into()),
                c = self.cmd.recv() => {
                    match c {
                        Some(Cmd::Confirm) => {
                            let Some(confirmation) = self.state.borrow().pairing.as_ref().and_then(|p| p.confirmation.clone()) else {
                                continue;
                            };
                            if let Err(e) = self.send(io, dest, &Message::PairConfirm { confirmation }).await {
                                return Ended::Retry(e);
                            }
                            confirmed = true;
                            continue;
                        }
                        Some(Cmd::Cancel) | Some(Cmd::Unpair) | None => {
                            self.state.send_modify(|s| { s.pairing = None; s.connected = false; });
                            return Ended::Again;
                        }
                        Some(Cmd::Settings { sharing, private_alarms }) => { self.settings(sharing, private_alarms); continue; }
                        Some(Cmd::Remote(on)) => { self.set_remote(on); continue; }
                        Some(c @ (Cmd::AcmeDns { .. } | Cmd::Notice { .. })) => { super::not_linked(c); continue; }
                        // Already pairing: this attempt answers that request too.
                        Some(Cmd::StartPairing) => {
                            self.state.send_modify(|s| s.pairing_attempts += 1);
                            continue;
                        }
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    self.state.send_modify(|s| { s.pairing = None; s.connected = false; });
                    return Ended::Retry("the pairing code expired; start again".into());
                }
                _ = self.deps.shutdown.changed() => return Ended::Shutdown,
            };
            match msg {
                Message::PairCode {
                    code: c,
                    expires_in,
                } => {
                    code = c.clone();
                    deadline = Instant::now() + Duration::from_secs(u64::from(expires_in.min(900)));
                    self.state.send_modify(|s| {
                        s.pairing = Some(PairingView {
                            code: Some(c),
                            expires_in: Some(expires_in),
                            ..Default::default()
                        })
                    });
                }
                Message::PairClaimed { account, nonce } if !code.is_empty() => {
                    // Computed here from what the recorder itself knows: the
                    // code it showed and its own key.
                    let confirmation = candor_link::confirmation(&code, &key, &account, &nonce);
                    info!("cloud pairing claimed by {account}; confirmation code {confirmation}");
                    self.state.send_modify(|s| {
                        if let Some(p) = &mut s.pairing {
                            p.claimed_by = Some(account);
                            p.confirmation = Some(confirmation);
                        }
                    });
                }
                Message::Paired { .. } if !confirmed => {
                    // A cloud that says "paired" before this recorder's
                    // admin confirmed is lying or broken: pairing needs
                    // the person at the recorder.
                    warn!("the cloud said paired before the admin confirmed; pairing abandoned");
                    self.state.send_modify(|s| {
                        s.pairing = None;
                        s.connected = false;
                        s.last_error = Some("the cloud claimed the pairing without this recorder's confirmation; start again".into());
                    });
                    return Ended::Retry("paired without confirmation".into());
                }
                Message::Paired { site } => {
                    let p = Paired {
                        site,
                        address: self.config.address.to_string(),
                        paired_at: jiff::Timestamp::now().to_string(),
                        remote_host: None,
                    };
                    if let Err(e) = self.files.save_paired(&p) {
                        return Ended::Retry(e);
                    }
                    info!(site = p.site, "paired with the cloud");
                    self.state.send_modify(|s| {
                        s.paired = Some(p);
                        s.pairing = None;
                        s.connected = false;
                    });
                    return Ended::Again;
                }
                Message::Refused { reason, .. } => {
                    self.state.send_modify(|s| s.pairing = None);
                    return Ended::Retry(format!("the cloud refused: {reason}"));
                }
                Message::Ping { nonce } => {
                    if last_pong.is_some_and(|t: Instant| t.elapsed() < PONG_MIN_INTERVAL) {
                        continue;
                    }
                    last_pong = Some(Instant::now());
                    if let Err(e) = self.pong(io, dest, nonce, &mut beat).await {
                        return Ended::Retry(e);
                    }
                }
                other => return Ended::Retry(format!("unexpected {} while pairing", other.name())),
            }
        }
    }
}
