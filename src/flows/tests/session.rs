//! The token check, `/auth/session` and logout.

use super::*;
use crate::token::access::{issue_access, TokenKey};

#[test]
fn logout_revokes_the_session_and_deletes_its_replica() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let sid = sid_of(&r.refresh_token);
    assert_eq!(block_on(w.at(NOW + 5).logout(Some(&bearer_of(&r)))), Ok(()));
    assert!(w.is_revoked(&sid));
    assert!(w.raw_entry(&replica_key(&sid)).is_none());
    // Again: still 204, nothing changes.
    assert_eq!(block_on(w.at(NOW + 6).logout(Some(&bearer_of(&r)))), Ok(()));

    assert_eq!(
        w.refresh(NOW + 6, &r.refresh_token),
        Err(ApiError::InvalidRefreshToken)
    );
    assert_eq!(
        w.authenticate_err(NOW + 6, &r, SessionCheck::EveryRequest),
        Some(ApiError::SessionRevoked)
    );
    // Stateless checking still accepts the token until it expires
    // (SESSION_CHECK=refresh-only semantics).
    let auth = block_on(
        w.at(NOW + 6)
            .authenticate(Some(&bearer_of(&r)), SessionCheck::RefreshOnly),
    )
    .expect("stateless check passes");
    assert_eq!(auth.access.claims.subject.openid, "oUser1");
    assert_eq!(auth.access.claims.sid, sid);
    assert!(auth.session.is_none());
    // The user record is not touched.
    assert_eq!(w.user("oUser1").expect("user").login_count, 1);
}

#[test]
fn logout_ends_only_its_own_session() {
    let w = World::new();
    let a = w.login_at(NOW, GOOD);
    let b = w.login_at(NOW + 1, GOOD);
    block_on(w.at(NOW + 2).logout(Some(&bearer_of(&a)))).expect("logout");
    assert!(w.is_revoked(&sid_of(&a.refresh_token)));
    assert!(!w.is_revoked(&sid_of(&b.refresh_token)));
    assert_eq!(
        w.authenticate_err(NOW + 2, &b, SessionCheck::EveryRequest),
        None
    );
    assert!(w.refresh(NOW + 3, &b.refresh_token).is_ok());
}

#[test]
fn logout_accepts_an_expired_but_genuine_token() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let late = NOW + 601;
    assert_eq!(
        w.authenticate_err(late, &r, SessionCheck::RefreshOnly),
        Some(ApiError::TokenExpired)
    );
    assert_eq!(block_on(w.at(late).logout(Some(&bearer_of(&r)))), Ok(()));
    assert!(w.is_revoked(&sid_of(&r.refresh_token)));
}

#[test]
fn logout_needs_a_genuine_token() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    for header in [
        None,
        Some(""),
        Some("Bearer "),
        Some("Basic dXNlcjpwYXNz"),
        Some(r.access_token.as_str()),
    ] {
        assert_eq!(
            block_on(w.at(NOW).logout(header)),
            Err(ApiError::Unauthorized),
            "{header:?}"
        );
    }
    assert_eq!(
        block_on(w.at(NOW).logout(Some("Bearer not.a.jwt"))),
        Err(ApiError::InvalidToken)
    );
    // A token of another deployment (another TOKEN_SECRET) naming this sid.
    let mut other_cfg = test_config();
    other_cfg.token_key =
        TokenKey::new("another-secret-0123456789-ABCDEFGHIJKLMNOP").expect("strong key");
    let other = World::with(other_cfg);
    let forged = AccessClaims::new(APPID, &OpenId::new("oUser1"), &sid_of(&r.refresh_token));
    let forged = issue_access(&other.cfg.token_key, &forged, NOW, 600).expect("issue");
    assert_eq!(
        block_on(w.at(NOW).logout(Some(&format!("Bearer {forged}")))),
        Err(ApiError::InvalidToken)
    );
    assert!(
        !w.is_revoked(&sid_of(&r.refresh_token)),
        "nothing was logged out"
    );
}

#[test]
fn logout_accepts_a_just_expired_token_but_not_an_old_one() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let auth = bearer_of(&r);
    // Expired for less than one more access-token lifetime: fine.
    assert_eq!(block_on(w.at(NOW + 600 + 599).logout(Some(&auth))), Ok(()));
    let r = w.login_at(NOW, GOOD);
    let auth = bearer_of(&r);
    assert_eq!(
        block_on(w.at(NOW + 600 + 601).logout(Some(&auth))),
        Err(ApiError::TokenExpired)
    );
    assert!(!w.is_revoked(&sid_of(&r.refresh_token)));
}

#[test]
fn session_info_reports_both_expiries() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let info = block_on(w.at(NOW + 100).session_info(Some(&bearer_of(&r)))).expect("info");
    assert_eq!(
        info,
        SessionInfo {
            openid: "oUser1".into(),
            unionid: Some("uUnion1".into()),
            phone_bound: false,
            expires_at: NOW + 600,
            session_expires_at: NOW + w.cfg.refresh_ttl as i64,
        }
    );
    let v = serde_json::to_value(&info).expect("JSON");
    assert_eq!(
        v,
        json!({"openid": "oUser1", "unionid": "uUnion1", "phone_bound": false,
               "expires_at": NOW + 600, "session_expires_at": NOW + 2_592_000})
    );

    let r2 = w.refresh(NOW + 200, &r.refresh_token).expect("rotates");
    let info = block_on(w.at(NOW + 300).session_info(Some(&bearer_of(&r2)))).expect("info");
    assert_eq!(info.expires_at, NOW + 200 + 600);
    assert_eq!(
        info.session_expires_at,
        NOW + 200 + w.cfg.refresh_ttl as i64
    );
}

#[test]
fn session_info_after_logout_is_revoked_whatever_the_session_check() {
    for check in [
        SessionCheck::EveryRequest,
        SessionCheck::RefreshOnly,
        SessionCheck::Authority,
    ] {
        let mut cfg = test_config();
        cfg.session_check = check;
        let w = World::with(cfg);
        let r = w.login_at(NOW, GOOD);
        block_on(w.at(NOW + 1).logout(Some(&bearer_of(&r)))).expect("logout");
        assert_eq!(
            block_on(w.at(NOW + 2).session_info(Some(&bearer_of(&r)))),
            Err(ApiError::SessionRevoked),
            "{check:?}"
        );
    }
}

#[test]
fn session_info_needs_a_valid_token() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    assert_eq!(
        block_on(w.at(NOW).session_info(None)),
        Err(ApiError::Unauthorized)
    );
    assert_eq!(
        block_on(w.at(NOW).session_info(Some("Bearer x.y.z"))),
        Err(ApiError::InvalidToken)
    );
    assert_eq!(
        block_on(w.at(NOW + 601).session_info(Some(&bearer_of(&r)))),
        Err(ApiError::TokenExpired)
    );
}

#[test]
fn a_logout_the_replica_missed_still_holds_for_session_info_and_authority_mode() {
    // Another edge's KV still has the replica (eventual consistency): the
    // authority is asked, so the logout holds anyway.
    let mut cfg = test_config();
    cfg.session_check = SessionCheck::Authority;
    let w = World::with(cfg);
    let r = w.login_at(NOW, GOOD);
    let sid = sid_of(&r.refresh_token);
    let stale = w.raw_entry(&replica_key(&sid)).expect("replica");
    block_on(w.at(NOW + 1).logout(Some(&bearer_of(&r)))).expect("logout");
    w.store.data.borrow_mut().insert(replica_key(&sid), stale);
    assert_eq!(
        block_on(w.at(NOW + 2).session_info(Some(&bearer_of(&r)))),
        Err(ApiError::SessionRevoked)
    );
    assert_eq!(
        w.authenticate_err(NOW + 2, &r, SessionCheck::Authority),
        Some(ApiError::SessionRevoked)
    );
    // The replica check, by contrast, is fooled until KV catches up: that
    // is what every-request mode promises and no more.
    assert_eq!(
        w.authenticate_err(NOW + 2, &r, SessionCheck::EveryRequest),
        None
    );
}
