//! `candor discover`: find ONVIF cameras (WS-Discovery) and, with
//! credentials, their profiles and stream URIs, printed as ready-to-paste
//! `[[cameras]]` entries.

use super::{read_password, runtime};
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// Where to send the probe: the ONVIF multicast group, or a unicast address.
    #[arg(long, default_value = candor_onvif::discovery::MULTICAST)]
    probe: SocketAddr,
    /// How long to collect answers, seconds.
    #[arg(long, default_value_t = 3)]
    wait: u64,
    /// Camera user name; the password is read from standard input.
    #[arg(long)]
    user: Option<String>,
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let creds = match a.user {
        Some(u) => Some((u, read_password()?)),
        None => None,
    };
    runtime()?.block_on(discover(
        a.probe,
        Duration::from_secs(a.wait),
        creds,
        a.json,
    ))
}

/// `candor discover`: probe, then describe each camera found.
async fn discover(
    probe: SocketAddr,
    wait: Duration,
    creds: Option<(String, String)>,
    json: bool,
) -> Result<()> {
    use candor_recorder::onvif;
    let found = onvif::probe(probe, wait)
        .await
        .with_context(|| format!("probing {probe}"))?;
    if found.is_empty() {
        eprintln!(
            "no ONVIF camera answered within {wait:?} (is ONVIF enabled on the cameras, and are they on this network segment?)"
        );
    }
    let mut out = Vec::new();
    for f in &found {
        let Some(xaddr) = f.xaddrs.first() else {
            continue;
        };
        let mut cam = candor_wire::DiscoveredCamera {
            found: candor_wire::Discovered {
                endpoint: f.endpoint.clone(),
                xaddrs: f.xaddrs.clone(),
                name: f.name.clone(),
                hardware: f.hardware.clone(),
            },
            description: None,
            error: None,
        };
        if let Some((u, p)) = &creds {
            match onvif::describe(xaddr, u, p).await {
                Ok(d) => cam.description = Some(d.wire()),
                Err(e) if e.is_not_authorized() => {
                    cam.error = Some("the camera refused the user name or password".into());
                }
                Err(e) => cam.error = Some(e.to_string()),
            }
        }
        out.push(cam);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    // Everything below comes from the cameras: comments lose their control
    // characters (a newline would start a TOML line of the camera's
    // choosing), and values are written by the TOML serializer.
    let c = |v: &str| -> String {
        v.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    };
    for cam in &out {
        let name = cam.found.name.as_deref().unwrap_or("camera");
        let xaddr = cam.found.xaddrs.first().map_or("", String::as_str);
        println!(
            "# {} ({})",
            c(cam.found.name.as_deref().unwrap_or("")),
            c(xaddr)
        );
        if let Some(e) = &cam.error {
            println!("#   {}", c(e));
            continue;
        }
        let d = cam.description.as_ref();
        if let Some(d) = d {
            println!(
                "#   {} {} serial {}, clock off by {} s",
                c(&d.manufacturer),
                c(&d.model),
                c(&d.serial),
                d.clock_offset_secs
            );
        }
        if let Some(main) = d.and_then(|d| d.main.as_deref()) {
            // The password stays out of the output: put it in yourself.
            let url = match (&creds, main.strip_prefix("rtsp://")) {
                (Some((u, _)), Some(rest)) => format!("rtsp://{u}:PASSWORD@{rest}"),
                _ => main.to_owned(),
            };
            println!("{}", candor_recorder::config_edit::camera_entry(name, &url));
        } else if creds.is_none() {
            println!("#   run with --user to look up its streams\n");
        }
    }
    Ok(())
}
