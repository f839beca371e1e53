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
        let described = match &creds {
            Some((u, p)) => Some(onvif::describe(xaddr, u, p).await),
            None => None,
        };
        let mut v = serde_json::json!({
            "endpoint": f.endpoint, "xaddrs": f.xaddrs, "name": f.name, "hardware": f.hardware,
        });
        match described {
            Some(Ok(d)) => {
                if let (Some(o), serde_json::Value::Object(d)) = (v.as_object_mut(), d.to_json()) {
                    o.extend(d);
                }
            }
            Some(Err(e)) => {
                v["error"] = if e.is_not_authorized() {
                    "the camera refused the user name or password".into()
                } else {
                    e.to_string().into()
                };
            }
            None => {}
        }
        out.push(v);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    // Everything below comes from the cameras: comments lose their control
    // characters (a newline would start a TOML line of the camera's
    // choosing), and values are written by the TOML serializer.
    let c = |v: &serde_json::Value| -> String {
        v.as_str()
            .unwrap_or("")
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    };
    for v in &out {
        let name = v["name"].as_str().unwrap_or("camera");
        println!("# {} ({})", c(&v["name"]), c(&v["xaddrs"][0]));
        if v["error"].is_string() {
            println!("#   {}", c(&v["error"]));
            continue;
        }
        if v["manufacturer"].is_string() {
            println!(
                "#   {} {} serial {}, clock off by {} s",
                c(&v["manufacturer"]),
                c(&v["model"]),
                c(&v["serial"]),
                v["clock_offset_secs"].as_i64().unwrap_or(0)
            );
        }
        if let Some(main) = v["main"].as_str() {
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
