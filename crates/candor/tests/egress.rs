//! `candor egress`: the owner's record of what the recorder sent off-site.

mod common;
use common::*;

/// `candor egress`: the ledger as text and as CSV that an independent
/// reader (Python's csv module) parses back, quotes and commas included.
#[test]
fn egress_ledger_lists_and_exports_csv() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "", &[]);
    {
        let (store, _) = candor_storage::Store::open(&dir.path().join("data")).unwrap();
        store
            .record_egress(
                candor_media::Time90k(1),
                "cloud.example:443",
                "status",
                180,
                r#"{"type":"status","seq":1}"#,
            )
            .unwrap();
        store
            .record_egress(
                candor_media::Time90k(2),
                "cloud.example:443",
                "alarm",
                95,
                r#"{"type":"alarm","camera":"gate, north"}"#,
            )
            .unwrap();
    }
    let o = candor(&["egress", "-c", cfg.to_str().unwrap(), "--csv"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut py = std::process::Command::new("python3")
        .args([
            "-c",
            "import csv,sys,json; r=list(csv.DictReader(sys.stdin)); print(json.dumps(r))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut py.stdin.take().unwrap(), &o.stdout).unwrap();
    let rows: serde_json::Value =
        serde_json::from_slice(&py.wait_with_output().unwrap().stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2);
    assert_eq!(
        rows[1]["summary"],
        r#"{"type":"alarm","camera":"gate, north"}"#
    );
    assert_eq!(rows[1]["bytes"], "95");
    let o = candor(&["egress", "-c", cfg.to_str().unwrap(), "--kind", "alarm"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("gate, north") && !text.contains("\"seq\""),
        "{text}"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 message(s), 95 bytes"));
}
