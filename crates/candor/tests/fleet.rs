//! Installer organisations in the cloud, against real recorders and
//! PostgreSQL (docs/design/installers.md): each organisation's fleet view
//! shows exactly the sites linked to it, at the level their owner chose;
//! codes work once; unlinking and removing a member take effect at once;
//! another organisation, an owner or an ex-member sees nothing.

mod common;
use common::cloud::*;
use common::*;
use std::time::Duration;

fn fleet(who: &Owner, org: &str) -> (u16, serde_json::Value) {
    who.api("GET", &format!("orgs/{org}/fleet"), None)
}

fn names(v: &serde_json::Value) -> Vec<String> {
    let mut n: Vec<String> = v["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    n.sort();
    n
}

#[test]
fn each_installer_sees_exactly_its_linked_sites_at_the_shared_level() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = CloudProc::start(dir.path(), Some(&pg_database("fleet")), "");
    let owner = Owner::register(&cloud, dir.path(), "owner@example.com");
    let mut sites = Vec::new();
    for name in ["Shop", "Home", "Barn"] {
        let s = site(&dir.path().join(name), &cloud, name, "");
        let (id, _) = pair(&s, &owner);
        sites.push((s, id));
    }
    let boss_a = Owner::register(&cloud, dir.path(), "boss@acme.example");
    let tech_a = Owner::register(&cloud, dir.path(), "tech@acme.example");
    let boss_b = Owner::register(&cloud, dir.path(), "boss@other.example");
    let (code, a) = boss_a.api("POST", "orgs", Some(r#"{"name":"ACME Security"}"#));
    assert_eq!(code, 201, "{a}");
    let org_a = a["id"].as_str().unwrap().to_owned();
    let (_, b) = boss_b.api("POST", "orgs", Some(r#"{"name":"Other Alarms"}"#));
    let org_b = b["id"].as_str().unwrap().to_owned();
    let (code, v) = boss_a.api(
        "POST",
        &format!("orgs/{org_a}/members"),
        Some(r#"{"email":"tech@acme.example","role":"technician"}"#),
    );
    assert_eq!(code, 204, "{v}");
    // A technician can't add members or make codes.
    let (code, _) = tech_a.api("POST", &format!("orgs/{org_a}/codes"), None);
    assert_eq!(code, 403);

    // Org A's codes link Shop (health) and Home (online only); the owner's
    // code for Barn is entered by org B's admin.
    for (i, level) in [(0, "health"), (1, "online")] {
        let (code, c) = boss_a.api("POST", &format!("orgs/{org_a}/codes"), None);
        assert_eq!(code, 201, "{c}");
        let body = serde_json::json!({ "code": c["code"], "level": level }).to_string();
        let (code, v) = owner.api("POST", &format!("sites/{}/link", sites[i].1), Some(&body));
        assert_eq!(code, 204, "{v}");
        // Used once.
        let (code, _) = owner.api("POST", &format!("sites/{}/link", sites[2].1), Some(&body));
        assert_eq!(code, 404, "a code works once");
    }
    let (code, c) = owner.api(
        "POST",
        &format!("sites/{}/link-code", sites[2].1),
        Some(r#"{"level":"health"}"#),
    );
    assert_eq!(code, 201, "{c}");
    let body = serde_json::json!({ "code": c["code"] }).to_string();
    // A site's code is for an installer's admin, not for another owner's site.
    let (code, _) = owner.api("POST", &format!("sites/{}/link", sites[1].1), Some(&body));
    assert_eq!(code, 400);
    let (_, c) = owner.api(
        "POST",
        &format!("sites/{}/link-code", sites[2].1),
        Some(r#"{"level":"health"}"#),
    );
    let body = serde_json::json!({ "code": c["code"] }).to_string();
    let (code, _) = tech_a.api("POST", &format!("orgs/{org_a}/link"), Some(&body));
    assert_eq!(code, 403, "only an org admin links");
    let (code, v) = boss_b.api("POST", &format!("orgs/{org_b}/link"), Some(&body));
    assert_eq!(code, 204, "{v}");

    // An installer can't take a site linked to another with a code (a
    // stale or leaked one): only its owner re-links.
    let (_, c) = owner.api(
        "POST",
        &format!("sites/{}/link-code", sites[0].1),
        Some(r#"{"level":"health"}"#),
    );
    let body = serde_json::json!({ "code": c["code"] }).to_string();
    let (code, v) = boss_b.api("POST", &format!("orgs/{org_b}/link"), Some(&body));
    assert_eq!(code, 409, "{v}");

    // Each fleet: exactly its sites, with what their owner shares.
    wait_for("health at the cloud", Duration::from_secs(30), || {
        let (_, f) = fleet(&tech_a, &org_a);
        f["sites"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["name"] == "Shop" && s["cameras"] == 1))
    });
    let (code, fa) = fleet(&tech_a, &org_a);
    assert_eq!(code, 200, "{fa}");
    assert_eq!(names(&fa), ["Home", "Shop"]);
    let shop = fa["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "Shop")
        .unwrap();
    let home = fa["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "Home")
        .unwrap();
    assert_eq!(shop["online"], true);
    assert!(
        shop["software"].as_str().unwrap().contains("andor"),
        "{shop}"
    );
    assert_eq!(home["level"], "online");
    assert!(
        home["cameras"].is_null() && home["disk_used_percent"].is_null(),
        "{home}"
    );
    let (_, fb) = fleet(&boss_b, &org_b);
    assert_eq!(names(&fb), ["Barn"]);
    // Outsiders see nothing: another org, the owner, a made-up id.
    for (who, org) in [(&boss_b, &org_a), (&owner, &org_a), (&tech_a, &org_b)] {
        let (code, _) = fleet(who, org);
        assert_eq!(code, 404);
    }
    let (code, _) = fleet(&tech_a, "no-such-org");
    assert_eq!(code, 404);

    // A technician asks Shop's recorder for access through the cloud: the
    // recorder stores a request, and only its admin can turn it into a grant.
    let shop_id = sites[0].1.clone();
    let ask = r#"{"scopes":["config","live"],"cameras":["gate"],"hours":4,"reason":"camera 2 keeps dropping"}"#;
    let (code, v) = tech_a.api(
        "POST",
        &format!("orgs/{org_a}/sites/{shop_id}/access-requests"),
        Some(ask),
    );
    assert_eq!(code, 202, "{v}");
    for (who, org, site, body, want) in [
        (&boss_b, &org_b, &shop_id, ask, 404),
        (&tech_a, &org_a, &sites[2].1, ask, 404),
        (
            &tech_a,
            &org_a,
            &shop_id,
            r#"{"scopes":["config"],"hours":3}"#,
            400,
        ),
        (
            &tech_a,
            &org_a,
            &shop_id,
            r#"{"scopes":["root"],"hours":1}"#,
            400,
        ),
    ] {
        let (code, v) = who.api(
            "POST",
            &format!("orgs/{org}/sites/{site}/access-requests"),
            Some(body),
        );
        assert_eq!(code, want, "{v}");
    }
    let shop = &sites[0].0;
    let mut waiting = serde_json::Value::Null;
    wait_for(
        "the request at the recorder",
        Duration::from_secs(10),
        || {
            let (_, _, g) = shop.web.api("GET", "grants", None);
            waiting = g["requests"]
                .as_array()
                .and_then(|r| r.first().cloned())
                .unwrap_or_default();
            !waiting.is_null()
        },
    );
    assert_eq!(waiting["technician"], "tech@acme.example");
    assert_eq!(waiting["org"], "ACME Security");
    assert_eq!(waiting["source"], "cloud");
    assert_eq!(waiting["state"], "waiting");
    let (_, _, g) = shop.web.api("GET", "grants", None);
    assert!(
        g["grants"].as_array().unwrap().is_empty(),
        "a request grants nothing"
    );
    // The owner narrows it on the recorder: config only, one hour.
    let approve = serde_json::json!({
        "technician": "tech@acme.example", "org": "ACME Security",
        "scopes": {"config": true}, "cameras": ["gate"], "hours": 1, "reason": "camera 2",
    });
    let (code, _, made) = shop.web.api(
        "POST",
        &format!("access-requests/{}/approve", waiting["id"]),
        Some(&approve.to_string()),
    );
    assert_eq!(code, 201, "{made}");
    assert!(made["enroll_code"].is_string());
    let (_, _, a) = shop.web.api("GET", "audit?action=access_requested", None);
    assert_eq!(a["entries"].as_array().unwrap().len(), 1, "{a}");

    // A site that goes down needs attention, first in the default sort.
    let (shop_site, _) = sites.remove(0);
    shop_site.rec.kill9();
    wait_for("Shop offline", Duration::from_secs(40), || {
        let (_, f) = fleet(&tech_a, &org_a);
        f["sites"][0]["name"] == "Shop" && f["sites"][0]["attention"][0] == "offline"
    });
    let (_, f) = tech_a.api("GET", &format!("orgs/{org_a}/fleet?attention=true"), None);
    assert_eq!(names(&f), ["Shop"]);
    assert_eq!(f["needing_attention"], 1);

    // Unlinking is instant; a member removed sees nothing at once.
    let (code, _) = owner.api("DELETE", &format!("sites/{}/link", sites[0].1), None);
    assert_eq!(code, 204);
    let (_, fa) = fleet(&tech_a, &org_a);
    assert_eq!(names(&fa), ["Shop"]);
    let (code, _) = boss_a.api(
        "DELETE",
        &format!("orgs/{org_a}/members/tech@acme.example"),
        None,
    );
    assert_eq!(code, 204);
    let (code, _) = fleet(&tech_a, &org_a);
    assert_eq!(code, 404, "an ex-member sees nothing");
}
