//! `candor egress`: the egress ledger, every message and byte sent off-site,
//! from the index (read-only).

use super::{open_store, parse_opt_time};
use anyhow::Result;
use candor_storage::egress::{EgressEntry, EgressFilter};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[arg(short, long)]
    config: PathBuf,
    /// RFC 3339: entries at or after this instant.
    #[arg(long)]
    since: Option<String>,
    /// Only this kind (status, alarm, …).
    #[arg(long)]
    kind: Option<String>,
    /// CSV (time, destination, kind, bytes, summary) for spreadsheets.
    #[arg(long)]
    csv: bool,
}

pub fn run(a: Args) -> Result<()> {
    let store = open_store(&a.config)?;
    let list = store.egress(&EgressFilter {
        since: parse_opt_time(a.since.as_deref(), "since")?,
        kind: a.kind,
        ..Default::default()
    })?;
    if a.csv {
        print!("{}", candor_web::cloud_api::egress_csv(&list));
        return Ok(());
    }
    if list.is_empty() {
        eprintln!(
            "nothing has been sent off-site by Candor (the cloud, certificates, update checks). Connections you configured yourself (cameras, MQTT, webhooks) are not in this ledger."
        );
    }
    print!("{}", table(&list));
    eprintln!("{}", total(&list));
    Ok(())
}

/// Connection rows: `connect` (bytes only for a failed attempt: its proxy
/// CONNECT and TLS handshake) and `disconnect` (the connection's TLS
/// overhead), as opposed to messages.
fn is_connection_row(e: &EgressEntry) -> bool {
    matches!(e.kind.as_str(), "connect" | "disconnect")
}

/// One line per entry, columns as wide as their widest value.
fn table(list: &[EgressEntry]) -> String {
    let dw = list.iter().map(|e| e.destination.len()).max().unwrap_or(0);
    let kw = list.iter().map(|e| e.kind.len()).max().unwrap_or(0);
    let bw = list
        .iter()
        .map(|e| e.bytes.to_string().len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for e in list {
        out += &format!(
            "{}  {:<dw$}  {:<kw$}  {:>bw$} B  {}\n",
            e.at, e.destination, e.kind, e.bytes, e.summary
        );
    }
    out
}

/// The closing line: messages, and all bytes on the wire (the rows add up
/// to them: `disconnect` rows carry the TLS overhead).
fn total(list: &[EgressEntry]) -> String {
    let messages: Vec<&EgressEntry> = list.iter().filter(|e| !is_connection_row(e)).collect();
    let in_messages: u64 = messages.iter().map(|e| e.bytes).sum();
    let all: u64 = list.iter().map(|e| e.bytes).sum();
    let mut s = format!("{} message(s), {all} bytes", messages.len());
    if all != in_messages {
        s += &format!(
            " on the wire ({in_messages} in messages, {} of TLS and connection overhead)",
            all - in_messages
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use candor_media::Time90k;

    fn row(kind: &str, bytes: u64) -> EgressEntry {
        EgressEntry {
            id: 0,
            at: Time90k(0),
            destination: "cloud.example:8443".into(),
            kind: kind.into(),
            bytes,
            summary: "s".into(),
        }
    }

    #[test]
    fn columns_line_up_whatever_the_kind() {
        let t = table(&[row("pair_confirm", 1200), row("hello", 95)]);
        let at: Vec<usize> = t.lines().map(|l| l.find(" B ").unwrap()).collect();
        assert_eq!(at[0], at[1], "{t}");
        let kinds: Vec<usize> = t
            .lines()
            .map(|l| l.find("  pair_confirm").or(l.find("  hello")).unwrap())
            .collect();
        assert_eq!(kinds[0], kinds[1], "{t}");
    }

    #[test]
    fn the_total_counts_every_byte_on_the_wire() {
        let list = [
            row("connect", 0),
            row("hello", 95),
            row("status", 180),
            row("disconnect", 840),
        ];
        assert_eq!(
            total(&list),
            "2 message(s), 1115 bytes on the wire (275 in messages, 840 of TLS and connection overhead)"
        );
        assert_eq!(total(&list[1..3]), "2 message(s), 275 bytes");
    }
}
