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

/// `every-request` with `REPLICA_CACHE_SECS=secs`.
fn replica_cached_world(secs: u64) -> World {
    let mut cfg = test_config();
    cfg.session_check = SessionCheck::EveryRequest;
    cfg.replica_cache_secs = secs;
    World::with(cfg)
}

#[test]
fn a_revocation_elsewhere_is_seen_within_the_replica_cache_seconds() {
    // Another edge revoked the session: KV's replica is gone, but this
    // isolate read it a moment ago.
    let w = replica_cached_world(3);
    let r = w.login_at(NOW, GOOD);
    let sid = sid_of(&r.refresh_token);
    assert_eq!(
        w.authenticate_err(NOW + 10, &r, SessionCheck::EveryRequest),
        None
    );
    w.store.data.borrow_mut().remove(&replica_key(&sid));
    assert_eq!(
        w.authenticate_err(NOW + 11, &r, SessionCheck::EveryRequest),
        None
    );
    assert_eq!(
        w.authenticate_err(NOW + 12, &r, SessionCheck::EveryRequest),
        None
    );
    // Never after the bound, nor ever again.
    for t in 13..20 {
        assert_eq!(
            w.authenticate_err(NOW + t, &r, SessionCheck::EveryRequest),
            Some(ApiError::SessionRevoked),
            "at +{t}"
        );
    }
}

#[test]
fn without_the_replica_cache_every_request_reads_kv() {
    let w = replica_cached_world(0);
    let r = w.login_at(NOW, GOOD);
    let sid = sid_of(&r.refresh_token);
    assert_eq!(
        w.authenticate_err(NOW + 10, &r, SessionCheck::EveryRequest),
        None
    );
    w.store.data.borrow_mut().remove(&replica_key(&sid));
    assert_eq!(
        w.authenticate_err(NOW + 10, &r, SessionCheck::EveryRequest),
        Some(ApiError::SessionRevoked)
    );
}

#[test]
fn a_missing_replica_is_not_remembered_longer_than_a_second() {
    // A replica KV has not shown yet (a login at another location): the
    // "no such session" answer is kept at most a second.
    let w = replica_cached_world(5);
    let r = w.login_at(NOW, GOOD);
    let sid = sid_of(&r.refresh_token);
    let entry = w.raw_entry(&replica_key(&sid)).expect("replica");
    w.store.data.borrow_mut().remove(&replica_key(&sid));
    assert_eq!(
        w.authenticate_err(NOW + 10, &r, SessionCheck::EveryRequest),
        Some(ApiError::SessionRevoked)
    );
    w.store.data.borrow_mut().insert(replica_key(&sid), entry);
    assert_eq!(
        w.authenticate_err(NOW + 10, &r, SessionCheck::EveryRequest),
        Some(ApiError::SessionRevoked)
    );
    assert_eq!(
        w.authenticate_err(NOW + 11, &r, SessionCheck::EveryRequest),
        None
    );
}

#[test]
fn a_logout_through_this_isolate_is_seen_at_once_despite_the_cache() {
    let w = replica_cached_world(10);
    let r = w.login_at(NOW, GOOD);
    let sid = sid_of(&r.refresh_token);
    let stale = w.raw_entry(&replica_key(&sid)).expect("replica");
    assert_eq!(
        w.authenticate_err(NOW + 1, &r, SessionCheck::EveryRequest),
        None
    );
    block_on(w.at(NOW + 1).logout(Some(&bearer_of(&r)))).expect("logout");
    // Even if this location's KV still shows the replica, for the moment
    // a read under way could take.
    w.store.data.borrow_mut().insert(replica_key(&sid), stale);
    assert_eq!(
        w.authenticate_err(NOW + 1, &r, SessionCheck::EveryRequest),
        Some(ApiError::SessionRevoked)
    );
    // Another session of the same user is untouched.
    let other = w.login_at(NOW + 1, GOOD);
    assert_eq!(
        w.authenticate_err(NOW + 1, &other, SessionCheck::EveryRequest),
        None
    );
}

#[test]
fn an_operator_revocation_through_this_isolate_is_seen_at_once() {
    let mut cfg = test_config();
    cfg.replica_cache_secs = 10;
    cfg.admin_token = Some(crate::secret::AdminToken::new(ADMIN));
    let w = World::with(cfg);
    let r = w.login_at(NOW, GOOD);
    let sid = sid_of(&r.refresh_token);
    let stale = w.raw_entry(&replica_key(&sid)).expect("replica");
    assert_eq!(
        w.authenticate_err(NOW + 1, &r, SessionCheck::EveryRequest),
        None
    );
    let auth = format!("Bearer {ADMIN}");
    block_on(w.at(NOW + 1).admin_revoke(Some(&auth), None, "oUser1")).expect("revoke");
    // Even if this location's KV still shows the replica.
    w.store.data.borrow_mut().insert(replica_key(&sid), stale);
    assert_eq!(
        w.authenticate_err(NOW + 1, &r, SessionCheck::EveryRequest),
        Some(ApiError::SessionRevoked)
    );
}

#[test]
fn a_phone_bound_through_this_isolate_is_seen_at_once_despite_the_cache() {
    let w = replica_cached_world(10);
    let r = w.login_at(NOW, &phone_login_reply());
    let before = block_on(w.at(NOW + 1).proxy_identity("/api/x", Some(&bearer_of(&r))))
        .expect("passes")
        .expect("id");
    assert_eq!(before.subject.phone, None);
    w.bind(NOW + 2, &r, PhoneRequest::Encrypted(encrypted("phone_ok")))
        .expect("binds");
    let after = block_on(w.at(NOW + 2).proxy_identity("/api/x", Some(&bearer_of(&r))))
        .expect("passes")
        .expect("id");
    assert!(after.subject.phone.is_some());
}
