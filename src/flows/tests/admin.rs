//! The operator endpoints.

use super::*;

fn admin_world() -> World {
    let mut cfg = test_config();
    cfg.admin_token = Some(crate::secret::AdminToken::new(ADMIN));
    World::with(cfg)
}

#[test]
fn without_admin_token_the_endpoints_do_not_exist() {
    let w = World::new();
    w.login_at(NOW, GOOD);
    let auth = format!("Bearer {ADMIN}");
    assert_eq!(
        block_on(w.at(NOW).admin_user(Some(&auth), None, "oUser1")),
        Err(ApiError::NotFound)
    );
    assert_eq!(
        block_on(w.at(NOW).admin_revoke(Some(&auth), None, "oUser1")),
        Err(ApiError::NotFound)
    );
}

#[test]
fn a_missing_or_wrong_operator_token_is_refused_and_reaches_no_authority() {
    let w = admin_world();
    let r = w.login_at(NOW, GOOD);
    let calls = w.authority.calls.get();
    let user_access = bearer_of(&r);
    let near_miss = format!("Bearer {}x", &ADMIN[..ADMIN.len() - 1]);
    for (header, want) in [
        (None, ApiError::Unauthorized),
        (Some("Basic abc"), ApiError::Unauthorized),
        (Some(near_miss.as_str()), ApiError::InvalidToken),
        (Some(user_access.as_str()), ApiError::InvalidToken),
    ] {
        assert_eq!(
            block_on(w.at(NOW).admin_revoke(header, None, "oUser1")),
            Err(want.clone()),
            "{header:?}"
        );
        assert_eq!(
            block_on(w.at(NOW).admin_user(header, None, "oUser1")),
            Err(want),
            "{header:?}"
        );
    }
    assert_eq!(w.authority.calls.get(), calls);
    assert!(!w.is_revoked(&sid_of(&r.refresh_token)));
}

#[test]
fn the_user_view_has_the_record_and_live_sessions_and_no_secret() {
    let w = admin_world();
    let a = w.login_at(NOW, &phone_login_reply());
    w.bind(NOW + 1, &a, PhoneRequest::Encrypted(encrypted("phone_ok")))
        .expect("binds");
    let b = w.login_at(NOW + 2, &phone_login_reply());
    block_on(w.at(NOW + 3).logout(Some(&bearer_of(&b)))).expect("logout");
    let auth = format!("Bearer {ADMIN}");
    let view = block_on(w.at(NOW + 4).admin_user(Some(&auth), None, "oUser1")).expect("view");
    assert_eq!(view.live_sessions, 1);
    assert_eq!(view.login_count, 2);
    assert_eq!(view.last_login_ip.as_deref(), Some(IP));
    assert_eq!(view.phone_bound_at, Some(NOW + 1));
    let json = serde_json::to_value(&view).expect("json");
    assert_eq!(json["phone"]["purePhoneNumber"], PURE);
    let text = json.to_string();
    for secret in [phone_key(), a.refresh_token.clone(), a.access_token.clone()] {
        assert!(!text.contains(&secret), "{text}");
    }
    assert!(
        !text.contains("session_key") && !text.contains("hash"),
        "{text}"
    );

    assert_eq!(
        block_on(w.at(NOW + 4).admin_user(Some(&auth), None, "oNobody")),
        Err(ApiError::NotFound)
    );
}

#[test]
fn revoke_ends_every_session_and_the_user_can_log_in_again() {
    let w = admin_world();
    let a = w.login_at(NOW, GOOD);
    let b = w.login_at(NOW + 1, GOOD);
    let auth = format!("Bearer {ADMIN}");
    let out = block_on(w.at(NOW + 2).admin_revoke(Some(&auth), None, "oUser1")).expect("revoke");
    assert_eq!(out.revoked, 2);
    for r in [&a, &b] {
        assert_eq!(
            w.refresh(NOW + 3, &r.refresh_token),
            Err(ApiError::InvalidRefreshToken)
        );
        assert_eq!(
            w.authenticate_err(NOW + 3, r, SessionCheck::EveryRequest),
            Some(ApiError::SessionRevoked)
        );
    }
    let again = w.login_at(NOW + 4, GOOD);
    assert!(w.refresh(NOW + 5, &again.refresh_token).is_ok());
    // Revoking again finds nothing more to end but the new session.
    let out = block_on(w.at(NOW + 6).admin_revoke(Some(&auth), None, "oUser1")).expect("revoke");
    assert_eq!(out.revoked, 1);
}

#[test]
fn an_openid_that_is_not_one_is_refused_before_any_authority() {
    let w = admin_world();
    let auth = format!("Bearer {ADMIN}");
    for bad in ["", "a b", "../x", "o%2F1", &"o".repeat(129), "中文"] {
        assert!(
            matches!(
                block_on(w.at(NOW).admin_user(Some(&auth), None, bad)),
                Err(ApiError::InvalidRequest(_))
            ),
            "{bad}"
        );
    }
    assert_eq!(w.authority.calls.get(), 0);
}

#[test]
fn admin_token_previous_is_accepted_during_a_change_over_and_never_alone() {
    const OLD: &str = "old-admin-token-0123456789abcdefghijKLMN";
    let mut cfg = test_config();
    cfg.admin_token = Some(crate::secret::AdminToken::new(ADMIN));
    cfg.admin_token_previous = Some(crate::secret::AdminToken::new(OLD));
    let w = World::with(cfg);
    w.login_at(NOW, GOOD);
    for token in [ADMIN, OLD] {
        let auth = format!("Bearer {token}");
        assert!(
            block_on(w.at(NOW).admin_user(Some(&auth), None, "oUser1")).is_ok(),
            "{token}"
        );
    }
    // Once it is removed, the old token is refused.
    let w = admin_world();
    w.login_at(NOW, GOOD);
    let auth = format!("Bearer {OLD}");
    assert_eq!(
        block_on(w.at(NOW).admin_user(Some(&auth), None, "oUser1")).map(|_| ()),
        Err(ApiError::InvalidToken)
    );
}
