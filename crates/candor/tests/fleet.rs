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
    let db = pg_database("fleet");
    let cloud = CloudProc::start(dir.path(), Some(&db), "");
    let owner = Owner::register(&cloud, dir.path(), "owner@example.com");
    let mut sites = Vec::new();
    for name in ["Shop", "Home", "Barn"] {
        let mut s = site(&dir.path().join(name), &cloud, name, "");
        if name == "Shop" {
            // The owner wants a month of footage kept.
            let text = std::fs::read_to_string(&s.cfg).unwrap();
            std::fs::write(
                &s.cfg,
                text.replace("[storage]\n", "[storage]\ntarget_days = 30\n"),
            )
            .unwrap();
            s = s.restart();
        }
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
    // Members join with an invitation their admin hands them, once; not
    // by an e-mail address the cloud never verified.
    let (code, inv) = boss_a.api(
        "POST",
        &format!("orgs/{org_a}/invites"),
        Some(r#"{"role":"technician"}"#),
    );
    assert_eq!(code, 201, "{inv}");
    let join = serde_json::json!({ "code": inv["code"] }).to_string();
    let (code, v) = tech_a.api("POST", "orgs/join", Some(&join));
    assert_eq!((code, v["role"].as_str()), (200, Some("technician")), "{v}");
    let (code, _) = boss_b.api("POST", "orgs/join", Some(&join));
    assert_eq!(code, 404, "an invitation works once");
    let (code, _) = boss_a.api(
        "POST",
        &format!("orgs/{org_a}/members"),
        Some(r#"{"email":"boss@other.example","role":"admin"}"#),
    );
    assert_eq!(code, 405, "no adding by address");
    let (_, m) = boss_a.api("GET", &format!("orgs/{org_a}/members"), None);
    assert_eq!(
        m["members"],
        serde_json::json!([{"email": "boss@acme.example", "role": "admin"}, {"email": "tech@acme.example", "role": "technician"}])
    );
    // A technician can't invite, list members or make codes; the last
    // admin can't leave.
    for (method, path, body) in [
        ("POST", format!("orgs/{org_a}/codes"), None),
        (
            "POST",
            format!("orgs/{org_a}/invites"),
            Some(r#"{"role":"admin"}"#),
        ),
        ("GET", format!("orgs/{org_a}/members"), None),
    ] {
        let (code, _) = tech_a.api(method, &path, body);
        assert_eq!(code, 403, "{path}");
    }
    let (code, v) = boss_a.api("DELETE", &format!("orgs/{org_a}/membership"), None);
    assert_eq!(code, 409, "{v}");
    // An admin who is let go can't come back with an invitation made
    // beforehand; the last admin can't lower their own role with one.
    let boss2 = Owner::register(&cloud, dir.path(), "boss2@acme.example");
    join_org(&boss_a, &boss2, &org_a, "admin");
    let (_, stash) = boss2.api(
        "POST",
        &format!("orgs/{org_a}/invites"),
        Some(r#"{"role":"admin"}"#),
    );
    let (_, open) = boss_a.api("GET", &format!("orgs/{org_a}/invites"), None);
    assert_eq!(
        open["invites"][0]["made_by"], "boss2@acme.example",
        "{open}"
    );
    let (code, _) = boss_a.api(
        "DELETE",
        &format!("orgs/{org_a}/members/boss2@acme.example"),
        None,
    );
    assert_eq!(code, 204);
    let body = serde_json::json!({ "code": stash["code"] }).to_string();
    let (code, _) = boss2.api("POST", "orgs/join", Some(&body));
    assert_eq!(code, 404, "the ex-admin's invitation went with them");
    join_org(&boss_a, &boss_a, &org_a, "technician");
    let (_, m) = boss_a.api("GET", &format!("orgs/{org_a}/members"), None);
    assert_eq!(
        m["members"][0],
        serde_json::json!({"email": "boss@acme.example", "role": "admin"})
    );

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
    assert_eq!(shop["footage_target_days"], 30.0, "{shop}");
    assert!(shop["attention"].as_array().unwrap().is_empty(), "{shop}");
    // A site with the cloud for longer than its target, and less footage:
    // it needs attention (here made 40 days old in the cloud's database).
    psql(
        &db,
        &format!(
            "UPDATE site SET paired_at = paired_at - 40 * 86400 WHERE id = '{}'",
            sites[0].1
        ),
    );
    let (_, fa) = fleet(&tech_a, &org_a);
    let shop = fa["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "Shop")
        .unwrap()
        .clone();
    assert!(
        shop["attention"][0]
            .as_str()
            .unwrap()
            .contains("of 30 days"),
        "{shop}"
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
    // A member may leave by themselves, at once.
    join_org(&boss_b, &tech_a, &org_b, "technician");
    assert_eq!(fleet(&tech_a, &org_b).0, 200);
    let (code, _) = tech_a.api("DELETE", &format!("orgs/{org_b}/membership"), None);
    assert_eq!(code, 204);
    assert_eq!(fleet(&tech_a, &org_b).0, 404);
}

/// One statement on the cloud's PostgreSQL database, as an intruder in it
/// would run it; rows as `a|b|c` lines.
fn psql(db: &str, sql: &str) -> String {
    let o = std::process::Command::new("psql")
        .args([db, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql");
    assert!(
        o.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

fn my_access(who: &Owner, org: &str) -> serde_json::Value {
    let (_, f) = fleet(who, org);
    f["sites"][0]["my_access"].clone()
}

/// Issue 15's acceptance 2. The cloud mirrors the grants a recorder
/// reports, for its fleet view; someone who changes that mirror (adds a
/// grant, extends one, puts back one that ended) gets nothing from the
/// recorder, which checks the cloud's quote on each connection and says in
/// its audit log what it refused. Also: the owner's phone hears of the
/// request and of the end of access.
#[test]
fn a_cloud_that_invents_extends_or_replays_a_grant_gets_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let push = PushEndpoint::start(dir.path());
    let db = pg_database("grants");
    let cloud = CloudProc::start(
        dir.path(),
        Some(&db),
        &format!(
            "push_ca = \"{}\"\npush_allow_hosts = [\"127.0.0.1\"]",
            push.cert.display()
        ),
    );
    let owner = Owner::register(&cloud, dir.path(), "owner@example.com");
    let (code, v) = owner.api("POST", "push", Some(&push.subscription.to_string()));
    assert_eq!(code, 201, "{v}");
    let shop = site(&dir.path().join("Shop"), &cloud, "Shop", "");
    let (shop_id, _) = pair(&shop, &owner);
    let boss = Owner::register(&cloud, dir.path(), "boss@acme.example");
    let tech = Owner::register(&cloud, dir.path(), "tech@acme.example");
    let old = Owner::register(&cloud, dir.path(), "old@acme.example");
    let (_, o) = boss.api("POST", "orgs", Some(r#"{"name":"ACME Security"}"#));
    let org = o["id"].as_str().unwrap().to_owned();
    for who in [&tech, &old] {
        join_org(&boss, who, &org, "technician");
    }
    let (_, c) = boss.api("POST", &format!("orgs/{org}/codes"), None);
    let body = serde_json::json!({ "code": c["code"], "level": "health" }).to_string();
    let (code, v) = owner.api("POST", &format!("sites/{shop_id}/link"), Some(&body));
    assert_eq!(code, 204, "{v}");

    // Each technician asks; the owner's phone hears of it; the owner grants
    // on the recorder.
    let mut grant_of = std::collections::HashMap::new();
    for (who, name) in [(&old, "old@acme.example"), (&tech, "tech@acme.example")] {
        let (code, v) = who.api(
            "POST",
            &format!("orgs/{org}/sites/{shop_id}/access-requests"),
            Some(r#"{"scopes":["config"],"hours":1,"reason":"motion settings"}"#),
        );
        assert_eq!(code, 202, "{v}");
        let mut req = serde_json::Value::Null;
        wait_for(
            "the request at the recorder",
            Duration::from_secs(15),
            || {
                let (_, _, g) = shop.web.api("GET", "grants", None);
                req = g["requests"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|r| r["technician"] == name && r["state"] == "waiting")
                    .cloned()
                    .unwrap_or_default();
                !req.is_null()
            },
        );
        wait_for("the owner's push", Duration::from_secs(15), || {
            push.payloads().iter().any(|p| {
                p["kind"] == "access"
                    && p["title"] == "Access request for Shop"
                    && p["body"].as_str().unwrap_or("").contains(name)
            })
        });
        let approve = serde_json::json!({
            "technician": name, "org": "ACME Security",
            "scopes": {"config": true}, "cameras": null, "hours": 1, "reason": "motion settings",
        });
        let (code, _, made) = shop.web.api(
            "POST",
            &format!("access-requests/{}/approve", req["id"]),
            Some(&approve.to_string()),
        );
        assert_eq!(code, 201, "{made}");
        grant_of.insert(name, made["grant"].clone());
    }
    // The recorder reports its grants; each technician sees their own in
    // the fleet view.
    for who in [&tech, &old] {
        wait_for(
            "the grant in the fleet view",
            Duration::from_secs(15),
            || my_access(who, &org)["scopes"] == serde_json::json!(["config"]),
        );
    }
    let tech_grant = &grant_of["tech@acme.example"];
    let old_grant = &grant_of["old@acme.example"];
    // The mirror as it is now: both grants, and the list's number.
    let snapshot = |db: &str| {
        (
            psql(
                db,
                &format!("SELECT grants_generation FROM site WHERE id = '{shop_id}'"),
            ),
            psql(
                db,
                "SELECT site, id, technician, org, scopes, expires FROM site_grant ORDER BY id",
            ),
        )
    };
    let (old_generation, old_rows) = snapshot(&db);
    assert_eq!(old_rows.lines().count(), 2, "{old_rows}");
    // The old technician's grant is revoked: the mirror follows, and the
    // owner's phone hears that access ended.
    let (code, _, _) = shop
        .web
        .api("POST", &format!("grants/{}/revoke", old_grant["id"]), None);
    assert_eq!(code, 204);
    wait_for(
        "the mirror without the revoked grant",
        Duration::from_secs(15),
        || my_access(&old, &org).is_null(),
    );
    wait_for(
        "the push that access ended",
        Duration::from_secs(15),
        || {
            push.payloads().iter().any(|p| {
                p["title"] == "Access ended at Shop"
                    && p["body"]
                        .as_str()
                        .unwrap_or("")
                        .contains("old@acme.example")
            })
        },
    );
    let refusals = |shop: &Site| -> Vec<String> {
        let (_, _, a) = shop
            .web
            .api("GET", "audit?action=cloud_grant_refused", None);
        a["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["detail"].as_str().unwrap().to_owned())
            .collect()
    };

    // 1. An intruder in the cloud's database extends and widens the grant
    // in force, and invents one for someone the owner never heard of. The
    // cloud quotes its mirror on the next connection.
    let month = unix_secs() + 30 * 86400;
    psql(
        &db,
        &format!(
            "UPDATE site_grant SET expires = {month}, scopes = 'config,live,playback' WHERE id = {}",
            tech_grant["id"]
        ),
    );
    psql(
        &db,
        &format!(
            "INSERT INTO site_grant (site, id, technician, org, scopes, expires) \
             VALUES ('{shop_id}', 9999, 'mallory@acme.example', 'ACME Security', 'live,playback', {month})"
        ),
    );
    let shop = shop.restart();
    let mut refused = Vec::new();
    wait_for("the recorder's refusal", Duration::from_secs(30), || {
        refused = refusals(&shop);
        !refused.is_empty()
    });
    eprintln!("refused: {refused:#?}");
    let r = &refused[0];
    assert!(r.contains("never sent: its records were changed"), "{r}");
    assert!(
        r.contains("grant 9999, to mallory@acme.example") && r.contains("never made"),
        "{r}"
    );
    assert!(
        r.contains(&format!(
            "grant {} as to tech@acme.example (ACME Security): config, live, playback",
            tech_grant["id"]
        )) && r
            .contains("this recorder made it to tech@acme.example (ACME Security): config until"),
        "{r}"
    );
    // Nothing changed on the recorder: one grant in force, as the owner
    // made it; no account for the invented technician.
    let (_, _, g) = shop.web.api("GET", "grants", None);
    let now = g["now"].as_i64().unwrap();
    let active: Vec<&serde_json::Value> = g["grants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["revoked_at"].is_null() && g["expires_at"].as_i64().unwrap() > now)
        .collect();
    assert_eq!(active.len(), 1, "{g}");
    assert_eq!(active[0]["id"], tech_grant["id"]);
    assert_eq!(active[0]["expires_at"], tech_grant["expires_at"]);
    assert_eq!(
        active[0]["scopes"],
        serde_json::json!({"config": true, "diagnostics": false, "live": false, "playback": false, "maintenance": false})
    );
    assert!(
        !g.to_string().contains("mallory"),
        "the invented technician is unknown to the recorder: {g}"
    );
    let (code, _, _) = curl(
        &shop.web.cert,
        &shop.dir.join("jar-mallory"),
        "POST",
        &format!("{}api/v1/login", shop.web.base),
        Some(r#"{"username":"mallory@acme.example","password":"any password at all"}"#),
        &[],
    );
    assert_eq!(code, 401);
    // The recorder's own list went back: the mirror is true again.
    wait_for("the mirror corrected", Duration::from_secs(15), || {
        psql(
            &db,
            "SELECT technician, expires FROM site_grant ORDER BY id",
        ) == format!("tech@acme.example|{}", tech_grant["expires_at"])
    });

    // 2. The intruder puts back the list as it was before the revocation,
    // number and all: an old approval, replayed.
    psql(&db, "DELETE FROM site_grant");
    for row in old_rows.lines() {
        let f: Vec<&str> = row.split('|').collect();
        psql(
            &db,
            &format!(
                "INSERT INTO site_grant (site, id, technician, org, scopes, expires) \
                 VALUES ('{}', {}, '{}', '{}', '{}', {})",
                f[0], f[1], f[2], f[3], f[4], f[5]
            ),
        );
    }
    psql(
        &db,
        &format!("UPDATE site SET grants_generation = {old_generation} WHERE id = '{shop_id}'"),
    );
    let shop = shop.restart();
    wait_for(
        "the recorder's refusal of the replay",
        Duration::from_secs(30),
        || {
            refused = refusals(&shop);
            refused.len() >= 2
        },
    );
    let r = &refused[0];
    assert!(
        r.contains("an older list of grants") && r.contains("a replay"),
        "{r}"
    );
    assert!(
        r.contains(&format!("grant {}, to old@acme.example", old_grant["id"]))
            && r.contains("as in force; it ended at"),
        "{r}"
    );
    assert!(
        !r.contains("tech@acme.example"),
        "the grant in force is as sent: {r}"
    );
    wait_for(
        "the mirror corrected again",
        Duration::from_secs(15),
        || my_access(&old, &org).is_null() && !my_access(&tech, &org).is_null(),
    );

    // 3. An honest cloud behind a change made while it was down (the grant
    // revoked meanwhile): its quote is a list the recorder sent, no more
    // than lagging, and is not taken for an attack.
    let judged = |shop: &Site| {
        shop.rec
            .log_text()
            .matches("is one this recorder sent")
            .count()
    };
    let judged_before = judged(&shop);
    let cloud = cloud.crash_and_restart(|| {
        let (code, _, _) =
            shop.web
                .api("POST", &format!("grants/{}/revoke", tech_grant["id"]), None);
        assert_eq!(code, 204);
    });
    wait_for(
        "the mirror after the outage",
        Duration::from_secs(40),
        || my_access(&tech, &org).is_null(),
    );
    // The quote was judged (not merely not judged yet): a list it sent.
    wait_for("the quote judged", Duration::from_secs(10), || {
        judged(&shop) > judged_before
    });
    assert_eq!(refusals(&shop).len(), 2, "{:#?}", refusals(&shop));
    drop(cloud);
}

fn unix_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
