use super::*;

#[test]
fn the_audit_log_is_pruned_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let a = Accounts::open(dir.path()).unwrap();
    a.conn()
        .execute(
            "INSERT INTO audit (at, user, action, detail) VALUES (?1, NULL, 'old', '')",
            [now_secs() - AUDIT_KEEP_SECS - 10],
        )
        .unwrap();
    for _ in 0..AUDIT_PRUNE_EVERY {
        a.audit(None, "new", "").unwrap();
    }
    let log = a.audit_log().unwrap();
    assert!(log.iter().all(|e| e.action == "new"), "old entries kept");
    assert_eq!(log.len() as i64, AUDIT_PRUNE_EVERY);
}

#[test]
fn setup_token_is_single_use_and_closes_setup() {
    let dir = tempfile::tempdir().unwrap();
    let a = Accounts::open(dir.path()).unwrap();
    let t = a.new_setup_token(600).unwrap().unwrap();
    assert!(matches!(
        a.complete_setup("wrong", "root", "correct horse battery"),
        Err(AccountError::BadToken)
    ));
    assert!(matches!(
        a.complete_setup(&t, "root", "short"),
        Err(AccountError::WeakPassword)
    ));
    a.complete_setup(&t, "root", "correct horse battery")
        .unwrap();
    assert!(matches!(
        a.complete_setup(&t, "eve", "correct horse battery"),
        Err(AccountError::SetupClosed)
    ));
    assert_eq!(a.new_setup_token(600).unwrap(), None);
    assert_eq!(
        a.verify("root", "correct horse battery").unwrap(),
        Some(Role::Admin)
    );
    assert_eq!(a.verify("root", "wrong password!!").unwrap(), None);
    assert_eq!(a.verify("nobody", "correct horse battery").unwrap(), None);
    let (id, s) = a.create_session("root").unwrap();
    assert_eq!(a.session(&id).unwrap(), Some(s));
    a.audit(Some("root"), "login", "from 127.0.0.1").unwrap();
    assert_eq!(a.audit_log().unwrap()[0].action, "login");
    a.end_session(&id).unwrap();
    assert_eq!(a.session(&id).unwrap(), None);
}

#[test]
fn expired_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = Accounts::open(dir.path()).unwrap();
    let t = a.new_setup_token(-1).unwrap().unwrap();
    assert!(matches!(
        a.complete_setup(&t, "root", "correct horse battery"),
        Err(AccountError::BadToken)
    ));
}

#[test]
fn passwords_are_stored_as_argon2id_and_the_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let a = Accounts::open(dir.path()).unwrap();
    a.add_user("ops", Role::Operator, "correct horse battery")
        .unwrap();
    assert!(matches!(
        a.add_user("ops", Role::Viewer, "correct horse battery"),
        Err(AccountError::Exists(_))
    ));
    let h: String = a
        .conn()
        .query_row("SELECT password_hash FROM user", [], |r| r.get(0))
        .unwrap();
    assert!(h.starts_with("$argon2id$"), "{h}");
    assert!(!h.contains("correct horse"));
    let mode = std::fs::metadata(dir.path().join("accounts.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0);
}

#[test]
fn totp_codes_and_recovery_codes_work_once() {
    let dir = tempfile::tempdir().unwrap();
    let a = Accounts::open(dir.path()).unwrap();
    a.add_user("u", Role::Viewer, "correct horse battery")
        .unwrap();
    let now = 1_800_000_000;
    assert!(matches!(
        a.totp_confirm("u", "000000", now),
        Err(AccountError::NoPendingTotp)
    ));
    let secret = a.totp_begin("u").unwrap();
    assert!(!a.totp_enabled("u").unwrap(), "pending until confirmed");
    let code = |t: i64| format!("{:06}", crate::totp::code_at(&secret, t / 30));
    let wrong = format!(
        "{:06}",
        (crate::totp::code_at(&secret, now / 30) + 1) % 1_000_000
    );
    assert!(matches!(
        a.totp_confirm("u", &wrong, now),
        Err(AccountError::BadCode)
    ));
    let recovery = a.totp_confirm("u", &code(now), now).unwrap();
    assert_eq!(recovery.len(), RECOVERY_CODES);
    assert!(a.totp_enabled("u").unwrap());
    // The confirming code's step is spent; the next step's code works once.
    assert!(!a.totp_check("u", &code(now), now).unwrap());
    assert!(a.totp_check("u", &code(now + 30), now + 30).unwrap());
    assert!(
        !a.totp_check("u", &code(now + 30), now + 31).unwrap(),
        "replayed"
    );
    assert!(a.totp_check("u", &recovery[0], now).unwrap());
    assert!(
        !a.totp_check("u", &recovery[0], now).unwrap(),
        "recovery codes are single-use"
    );
    a.totp_disable("u").unwrap();
    assert!(!a.totp_enabled("u").unwrap());
    assert!(!a.totp_check("u", &recovery[1], now).unwrap());
}

#[test]
fn tokens_never_exceed_their_user_and_revocation_is_immediate() {
    let dir = tempfile::tempdir().unwrap();
    let a = Accounts::open(dir.path()).unwrap();
    a.add_user("root", Role::Admin, "correct horse battery")
        .unwrap();
    a.add_user_scoped(
        "ops",
        Role::Operator,
        "correct horse battery",
        Some(&["gate".into(), "yard".into()]),
    )
    .unwrap();
    let (id, t) = a
        .create_token(
            "ops",
            "script",
            Role::Operator,
            Some(&["yard".into(), "door".into()]),
        )
        .unwrap();
    let p = a.token(&t).unwrap().unwrap();
    assert_eq!(
        (p.role, p.cameras.as_deref()),
        (Role::Operator, Some(&["yard".to_string()][..]))
    );
    // Demoting the user demotes the token.
    a.update_user("ops", Some(Role::Viewer), None, None)
        .unwrap();
    assert_eq!(a.token(&t).unwrap().unwrap().role, Role::Viewer);
    assert!(!a.revoke_token(id, Some("root-is-not-owner")).unwrap());
    assert!(a.revoke_token(id, Some("ops")).unwrap());
    assert_eq!(a.token(&t).unwrap(), None);
    assert_eq!(a.token("cnd_made-up").unwrap(), None);
    let stored: i64 = a
        .conn()
        .query_row(
            "SELECT COUNT(*) FROM api_token WHERE hash = ?1",
            [t.as_bytes()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, 0, "tokens are stored hashed");
}

#[test]
fn the_last_admin_cannot_be_removed_or_demoted() {
    let dir = tempfile::tempdir().unwrap();
    let a = Accounts::open(dir.path()).unwrap();
    a.add_user("root", Role::Admin, "correct horse battery")
        .unwrap();
    assert!(matches!(
        a.delete_user("root"),
        Err(AccountError::LastAdmin)
    ));
    assert!(matches!(
        a.update_user("root", Some(Role::Viewer), None, None),
        Err(AccountError::LastAdmin)
    ));
    a.add_user("second", Role::Admin, "correct horse battery")
        .unwrap();
    let (sid, _) = a.create_session("root").unwrap();
    a.update_user("root", None, None, Some("a new password here"))
        .unwrap();
    assert_eq!(
        a.session(&sid).unwrap(),
        None,
        "a password change ends sessions"
    );
    a.delete_user("root").unwrap();
    assert_eq!(a.users().unwrap().len(), 1);
}

#[test]
fn a_share_link_works_until_it_expires_or_is_revoked_and_only_its_token_opens_it() {
    let dir = tempfile::tempdir().unwrap();
    let a = Accounts::open(dir.path()).unwrap();
    a.add_user("op", Role::Admin, "long enough password")
        .unwrap();
    let (s, token) = a
        .create_share("gate", Some((90_000, 180_000)), "police", "op", 3600)
        .unwrap();
    assert_eq!(s.kind, "clip");
    assert!(s.expires_at - now_secs() <= 3600);
    assert_eq!(a.share_by_token(&token, true).unwrap().unwrap().id, s.id);
    assert_eq!(a.share_by_token(&token, false).unwrap().unwrap().views, 1);
    // Only a hash is stored; a near miss opens nothing.
    let stored: Vec<u8> = a
        .conn()
        .query_row("SELECT token_hash FROM share", [], |r| r.get(0))
        .unwrap();
    assert_ne!(stored, token.as_bytes());
    assert!(
        a.share_by_token(&format!("{token}x"), false)
            .unwrap()
            .is_none()
    );
    // Expired: gone for its holder and for live views re-checking it.
    a.conn()
        .execute("UPDATE share SET expires_at = ?1", [now_secs() - 1])
        .unwrap();
    assert!(a.share_by_token(&token, false).unwrap().is_none());
    assert!(!a.share_valid(s.id));
    // Revoked: the same.
    let (l, live) = a.create_share("gate", None, "", "op", 60).unwrap();
    assert_eq!(l.kind, "live");
    assert!(a.share_valid(l.id));
    a.revoke_share(l.id).unwrap();
    assert!(a.share_by_token(&live, false).unwrap().is_none());
    assert!(!a.share_valid(l.id));
    // A link never outlives its creator's access: narrowed, demoted, deleted.
    a.add_user_scoped("op2", Role::Operator, "long enough password", None)
        .unwrap();
    let (c, tok) = a.create_share("gate", None, "", "op2", 600).unwrap();
    assert!(a.share_valid(c.id));
    a.conn()
        .execute(
            "UPDATE user SET cameras = '[\"yard\"]' WHERE name = 'op2'",
            [],
        )
        .unwrap();
    assert!(!a.share_valid(c.id) && a.share_by_token(&tok, false).unwrap().is_none());
    a.conn()
        .execute(
            "UPDATE user SET cameras = NULL, role = 'viewer' WHERE name = 'op2'",
            [],
        )
        .unwrap();
    assert!(!a.share_valid(c.id));
    a.conn()
        .execute("UPDATE user SET role = 'operator' WHERE name = 'op2'", [])
        .unwrap();
    assert!(a.share_valid(c.id));
    a.add_user("boss", Role::Admin, "long enough password")
        .unwrap();
    a.delete_user("op2").unwrap();
    assert!(!a.share_valid(c.id));
    a.add_user_scoped("op2", Role::Operator, "long enough password", None)
        .unwrap();
    assert!(
        !a.share_valid(c.id),
        "a new user of the same name revives nothing"
    );
    // At most 7 days, and a bounded number at once.
    let (w, _) = a
        .create_share("gate", None, "", "boss", 100 * 86_400)
        .unwrap();
    assert!(w.expires_at - now_secs() <= shares::MAX_SECS);
    for _ in 1..shares::MAX_ACTIVE_PER_USER {
        a.create_share("gate", None, "", "boss", 60).unwrap();
    }
    assert!(matches!(
        a.create_share("gate", None, "", "boss", 60),
        Err(AccountError::TooMany(..))
    ));
}

fn tech_grant(
    hours: u32,
    scopes: grants::Scopes,
    cameras: Option<Vec<String>>,
) -> grants::NewGrant {
    grants::NewGrant {
        technician: "bob@acme".into(),
        org: "ACME".into(),
        scopes,
        cameras,
        hours,
        reason: "r".into(),
    }
}

#[test]
fn a_technicians_session_ends_with_its_grant_and_grants_do_not_stack() {
    let dir = tempfile::tempdir().unwrap();
    let a = Accounts::open(dir.path()).unwrap();
    let config = grants::Scopes {
        config: true,
        ..Default::default()
    };
    let (g, code) = a
        .create_grant(&tech_grant(1, config, None), "owner", None)
        .unwrap();
    assert!(code.is_some(), "never enrolled: a code");
    let (id, s) = a.create_session_at("bob@acme", None, true).unwrap();
    assert_eq!(s.grant.as_ref().map(|x| x.id), Some(g.id));
    assert_eq!(s.cameras, Some(vec![]), "no video scope, no cameras");
    assert!(a.session(&id).unwrap().is_some());
    // Expiry is checked at every lookup.
    a.conn()
        .execute(
            "UPDATE access_grant SET expires_at = ?1 WHERE id = ?2",
            params![now_secs() - 1, g.id],
        )
        .unwrap();
    assert!(a.session(&id).unwrap().is_none(), "expired: no session");
    assert!(a.active_grant("bob@acme").unwrap().is_none());
    assert!(
        a.create_session_at("bob@acme", None, true).is_err(),
        "no grant, no session"
    );
    let ended = a.grants_ended_unnoted().unwrap();
    assert_eq!(ended.len(), 1);
    assert!(a.grants_ended_unnoted().unwrap().is_empty(), "noted once");
    // A new grant replaces the one in force, and the sessions made under it.
    let live = grants::Scopes {
        live: true,
        ..Default::default()
    };
    let (g1, _) = a
        .create_grant(
            &tech_grant(2, live, Some(vec!["gate".into()])),
            "owner",
            None,
        )
        .unwrap();
    let (id1, s1) = a.create_session_at("bob@acme", None, false).unwrap();
    assert_eq!(s1.cameras, Some(vec!["gate".to_string()]));
    let (g2, _) = a
        .create_grant(&tech_grant(1, config, None), "owner", None)
        .unwrap();
    assert!(
        a.session(&id1).unwrap().is_none(),
        "made under the replaced grant"
    );
    assert!(!a.grant(g1.id).unwrap().unwrap().active(now_secs()));
    assert_eq!(a.active_grant("bob@acme").unwrap().unwrap().id, g2.id);
    // Technicians are not users the admin pages can promote.
    assert!(a.users().unwrap().is_empty());
    assert!(matches!(
        a.update_user("bob@acme", Some(Role::Admin), None, None),
        Err(AccountError::Technician(_))
    ));
    // Nor can a grant turn a user into a technician.
    a.add_user("carol", Role::Admin, "carol password 1")
        .unwrap();
    let mut c = tech_grant(1, config, None);
    c.technician = "carol".into();
    assert!(matches!(
        a.create_grant(&c, "owner", None),
        Err(grants::GrantError::NotTechnician(_))
    ));
}

#[test]
fn an_approval_may_narrow_a_request_never_widen_it() {
    let dir = tempfile::tempdir().unwrap();
    let a = Accounts::open(dir.path()).unwrap();
    let both = grants::Scopes {
        config: true,
        live: true,
        ..Default::default()
    };
    let r = grants::Request {
        id: 0,
        at: 0,
        technician: "bob@acme".into(),
        org: "ACME".into(),
        scopes: both,
        cameras: Some(vec!["gate".into()]),
        hours: 4,
        reason: "x".into(),
        source: String::new(),
        state: String::new(),
        decided_by: None,
        grant_id: None,
    };
    let id = a.add_request(&r, "cloud").unwrap();
    let wider = [
        tech_grant(8, both, Some(vec!["gate".into()])),
        tech_grant(4, both, None),
        tech_grant(
            4,
            grants::Scopes {
                playback: true,
                ..both
            },
            Some(vec!["gate".into()]),
        ),
    ];
    for w in &wider {
        assert!(matches!(
            a.decide_request(id, Some(w), "owner"),
            Err(grants::GrantError::Invalid(_))
        ));
    }
    let narrower = tech_grant(
        1,
        grants::Scopes {
            config: true,
            ..Default::default()
        },
        Some(vec![]),
    );
    let (g, _) = a
        .decide_request(id, Some(&narrower), "owner")
        .unwrap()
        .unwrap();
    assert_eq!(g.request_id, Some(id));
    assert!(
        a.decide_request(id, None, "owner").is_err(),
        "answered once"
    );
    // A newer request of the same technician replaces their waiting one.
    let first = a.add_request(&r, "cloud").unwrap();
    let second = a.add_request(&r, "cloud").unwrap();
    let states: Vec<_> = a
        .requests()
        .unwrap()
        .into_iter()
        .filter(|q| q.id == first || q.id == second)
        .map(|q| q.state)
        .collect();
    assert_eq!(states, ["waiting", "replaced"]);
    // A name that looks like one of the recorder's users is refused.
    a.add_user("Admin2", Role::Admin, "admin password 1")
        .unwrap();
    let mut fake = r.clone();
    fake.technician = "admin2".into();
    assert!(matches!(
        a.add_request(&fake, "cloud"),
        Err(grants::GrantError::NotTechnician(_))
    ));
    // The waiting list is bounded, across technicians (bob's one waits).
    for i in 0..grants::MAX_WAITING_REQUESTS - 1 {
        let mut other = r.clone();
        other.technician = format!("t{i}@acme");
        a.add_request(&other, "cloud").unwrap();
    }
    let mut one_more = r.clone();
    one_more.technician = "late@acme".into();
    assert!(matches!(
        a.add_request(&one_more, "cloud"),
        Err(grants::GrantError::TooManyRequests)
    ));
}

#[test]
fn the_maintenance_scope_opens_installs_and_nothing_else() {
    use crate::routes::technician_scope;
    use axum::http::Method;
    use grants::{Scope, Scopes};
    let m = Scopes::from_names(&["maintenance".into()]);
    assert!(m.allows(Scope::Maintenance) && !m.is_empty());
    for s in [
        Scope::Config,
        Scope::Diagnostics,
        Scope::Live,
        Scope::Playback,
    ] {
        assert!(!m.allows(s), "{s:?}");
    }
    assert_eq!(m.names(), vec!["maintenance".to_owned()]);
    assert!(m.within(&Scopes::from_names(&[
        "maintenance".into(),
        "config".into()
    ])));
    assert!(!m.within(&Scopes::from_names(&["config".into()])));
    for method in [Method::GET, Method::POST, Method::DELETE] {
        assert_eq!(
            technician_scope(&method, "/api/v1/system/update"),
            Some(Scope::Maintenance)
        );
    }
    assert_eq!(
        technician_scope(&Method::GET, "/api/v1/system"),
        Some(Scope::Diagnostics)
    );
}
