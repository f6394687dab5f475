//! Refresh: rotation, the grace window, reuse detection, expiry.

use super::*;

#[test]
fn refresh_rotates_and_grace_returns_the_same_new_token() {
    let w = World::new();
    let r1 = w.login_at(NOW, GOOD);
    let sid = sid_of(&r1.refresh_token);

    let r2 = w.refresh(NOW + 10, &r1.refresh_token).expect("rotates");
    assert_ne!(r2.refresh_token, r1.refresh_token);
    assert_eq!(sid_of(&r2.refresh_token), sid);
    assert_eq!(r2.token_type, "Bearer");
    assert_eq!(r2.expires_in, 600);
    assert_eq!(r2.refresh_expires_in, w.cfg.refresh_ttl);
    assert_eq!(r2.openid, "oUser1");
    assert_eq!(r2.unionid.as_ref().map(UnionId::as_str), Some("uUnion1"));
    assert!(!r2.phone_bound);
    let c = w.claims(&r2.access_token, NOW + 10);
    assert_eq!(
        (c.subject.openid.as_str(), c.sid.as_str()),
        ("oUser1", sid.as_str())
    );

    let s = w.session(&sid).expect("session");
    assert_eq!(s.refresh_hash, hash_of(&r2.refresh_token));
    assert_eq!(s.prev_hash, Some(hash_of(&r1.refresh_token)));
    assert_eq!(s.issued_at, NOW + 10);

    // A concurrent refresh with the old token, up to REFRESH_GRACE later:
    // the same pair, access token included.
    for dt in [0, 1, REFRESH_GRACE] {
        let again = w.refresh(NOW + 10 + dt, &r1.refresh_token).expect("grace");
        assert_eq!(again.refresh_token, r2.refresh_token, "at +{dt}");
        assert_eq!(again.access_token, r2.access_token, "at +{dt}");
        // The session was not extended again: less of it is left.
        assert_eq!(
            again.refresh_expires_in,
            w.cfg.refresh_ttl - dt as u64,
            "at +{dt}"
        );
        assert_eq!(w.claims(&again.access_token, NOW + 10 + dt).sid, sid);
    }
    // ... which did not rotate again.
    let s = w.session(&sid).expect("session");
    assert_eq!(s.refresh_hash, hash_of(&r2.refresh_token));
    assert_eq!(s.issued_at, NOW + 10);
}

#[test]
fn the_old_token_after_the_grace_is_reuse_and_revokes_the_session() {
    let w = World::new();
    let r1 = w.login_at(NOW, GOOD);
    let sid = sid_of(&r1.refresh_token);
    let r2 = w.refresh(NOW + 10, &r1.refresh_token).expect("rotates");

    let late = NOW + 10 + REFRESH_GRACE + 1;
    assert_eq!(
        w.refresh(late, &r1.refresh_token),
        Err(ApiError::RefreshReused)
    );
    assert!(w.is_revoked(&sid), "session revoked, and kept marked");
    assert!(w.replica(&sid).is_none(), "replica deleted");

    // Everyone is out: the newest refresh token and its access token.
    assert_eq!(
        w.refresh(late, &r2.refresh_token),
        Err(ApiError::InvalidRefreshToken)
    );
    assert_eq!(
        w.authenticate_err(late, &r2, SessionCheck::EveryRequest),
        Some(ApiError::SessionRevoked)
    );
    assert_eq!(
        block_on(w.at(late).session_info(Some(&bearer_of(&r2)))),
        Err(ApiError::SessionRevoked)
    );
}

#[test]
fn a_token_two_rotations_back_is_reuse_even_within_the_grace() {
    let w = World::new();
    let r1 = w.login_at(NOW, GOOD);
    let sid = sid_of(&r1.refresh_token);
    let r2 = w.refresh(NOW + 1, &r1.refresh_token).expect("1st rotation");
    let r3 = w.refresh(NOW + 2, &r2.refresh_token).expect("2nd rotation");
    assert_ne!(r3.refresh_token, r2.refresh_token);
    // The immediately previous one is still in its grace.
    assert_eq!(
        w.refresh(NOW + 3, &r2.refresh_token)
            .expect("grace")
            .refresh_token,
        r3.refresh_token
    );
    assert_eq!(
        w.refresh(NOW + 3, &r1.refresh_token),
        Err(ApiError::RefreshReused)
    );
    assert!(w.is_revoked(&sid));
    assert_eq!(
        w.refresh(NOW + 4, &r3.refresh_token),
        Err(ApiError::InvalidRefreshToken)
    );
}

#[test]
fn unknown_or_malformed_refresh_tokens_are_invalid_and_harmless() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let sid = sid_of(&r.refresh_token);
    let user = r.refresh_token.split('.').next().expect("user part");
    let unknown_sid = format!(
        "{user}.{}.{}",
        B64URL.encode([7u8; 16]),
        B64URL.encode([9u8; 32])
    );
    let wrong_secret = format!("{user}.{sid}.{}", B64URL.encode([9u8; 32]));
    // Someone else's user part with this session: another authority, which
    // knows no such session.
    let other_user = format!(
        "{}.{sid}.{}",
        B64URL.encode("oSomeoneElse"),
        r.refresh_token.rsplit('.').next().expect("secret")
    );
    let old_format = format!("{sid}.{}", B64URL.encode([9u8; 32]));
    let cases = [
        String::new(),
        "garbage".to_string(),
        "a.b".to_string(),
        format!("{sid}.short"),
        format!("{}.x.y", r.refresh_token),
        r.access_token.clone(),
        unknown_sid,
        wrong_secret,
        other_user,
        old_format,
    ];
    for t in &cases {
        assert_eq!(
            w.refresh(NOW + 1, t),
            Err(ApiError::InvalidRefreshToken),
            "{t}"
        );
    }
    // A wrong secret for a real session neither revokes nor rotates it.
    let s = w.session(&sid).expect("session intact");
    assert_eq!(s.refresh_hash, hash_of(&r.refresh_token));
    assert!(w.refresh(NOW + 2, &r.refresh_token).is_ok());
}

#[test]
fn an_expired_session_cannot_be_refreshed() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let end = NOW + w.cfg.refresh_ttl as i64;
    assert_eq!(
        w.refresh(end, &r.refresh_token),
        Err(ApiError::InvalidRefreshToken)
    );
    assert_eq!(
        w.refresh(end + 3_600, &r.refresh_token),
        Err(ApiError::InvalidRefreshToken)
    );
}

#[test]
fn an_expired_session_is_refused_and_forgotten_whatever_kv_still_holds() {
    // KV expiry is lazy: the replica can outlive expires_at a little. The
    // authority decides by its own clock.
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let sid = sid_of(&r.refresh_token);
    let end = NOW + w.cfg.refresh_ttl as i64;
    assert_eq!(
        w.refresh(end + 10, &r.refresh_token),
        Err(ApiError::InvalidRefreshToken)
    );
    assert!(w.session(&sid).is_none(), "expired session forgotten");
}

#[test]
fn the_alarm_forgets_expired_sessions_and_their_replicas() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let sid = sid_of(&r.refresh_token);
    let user = OpenId::new("oUser1");
    let end = NOW + w.cfg.refresh_ttl as i64;
    // A second after the end, in ms (as `setAlarm` takes it).
    assert_eq!(w.authority.alarm_ms(&user), Some((end + 1) * 1000));
    // Before the end the alarm changes nothing.
    w.store.now.set(end - 1);
    block_on(w.authority.alarm(&user)).expect("alarm");
    assert!(w.session(&sid).is_some());
    w.store.now.set(end);
    block_on(w.authority.alarm(&user)).expect("alarm");
    assert!(w.session(&sid).is_none());
    assert!(w.raw_entry(&replica_key(&sid)).is_none());
    // The user record stays.
    assert_eq!(w.user("oUser1").expect("user").login_count, 1);
}

#[test]
fn revoked_sessions_stay_marked_until_their_expiry() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let sid = sid_of(&r.refresh_token);
    block_on(w.at(NOW + 5).logout(Some(&bearer_of(&r)))).expect("logout");
    let end = NOW + w.cfg.refresh_ttl as i64;
    w.store.now.set(end - 1);
    block_on(w.authority.alarm(&OpenId::new("oUser1"))).expect("alarm");
    assert!(w.is_revoked(&sid), "still marked the second before its end");
    assert_eq!(
        w.refresh(end - 1, &r.refresh_token),
        Err(ApiError::InvalidRefreshToken)
    );
}

#[test]
fn session_max_age_caps_how_far_refreshes_extend_a_session() {
    let mut cfg = test_config();
    cfg.session_max_age = 86_400;
    cfg.refresh_ttl = 3_600;
    let w = World::with(cfg);
    let mut token = w.login_at(NOW, GOOD).refresh_token;
    let sid = sid_of(&token);
    // Refresh every half hour: each extends by an hour, up to the cap.
    let mut t = NOW;
    while t + 1_800 < NOW + 86_400 {
        t += 1_800;
        let r = w.refresh(t, &token).expect("within the max age");
        assert!(t + r.refresh_expires_in as i64 <= NOW + 86_400, "at {t}");
        token = r.refresh_token;
    }
    assert_eq!(w.session(&sid).expect("live").expires_at, NOW + 86_400);
    assert_eq!(
        w.refresh(NOW + 86_400, &token),
        Err(ApiError::InvalidRefreshToken),
        "past login + SESSION_MAX_AGE: log in again"
    );
}

#[test]
fn refresh_extends_the_session() {
    let w = World::new();
    let r1 = w.login_at(NOW, GOOD);
    let sid = sid_of(&r1.refresh_token);
    let later = NOW + 1_000_000;
    let r2 = w.refresh(later, &r1.refresh_token).expect("rotates");
    assert_eq!(r2.refresh_expires_in, w.cfg.refresh_ttl);
    let s = w.session(&sid).expect("session");
    assert_eq!(s.expires_at, later + w.cfg.refresh_ttl as i64);
    assert_eq!(s.created_at, NOW);
    let (_, exp) = w.raw_entry(&replica_key(&sid)).expect("raw");
    assert_eq!(exp, Some(later + w.cfg.refresh_ttl as i64));
    // Past the original end, the session lives on.
    let beyond = NOW + w.cfg.refresh_ttl as i64 + 10;
    assert!(w.refresh(beyond, &r2.refresh_token).is_ok());
}

#[test]
fn refresh_carries_the_session_key_unionid_and_phone_along() {
    let w = World::new();
    let r = w.login_at(NOW, &phone_login_reply());
    let b = w
        .bind(NOW + 1, &r, PhoneRequest::Encrypted(encrypted("phone_ok")))
        .expect("binds");
    assert!(b.phone_bound);
    let r2 = w.refresh(NOW + 100, &r.refresh_token).expect("rotates");
    assert!(r2.phone_bound);
    let v = serde_json::to_value(&r2).expect("JSON");
    assert!(
        v.get("purePhoneNumber").is_none(),
        "phone fields are for /auth/phone only"
    );
    let c = w.claims(&r2.access_token, NOW + 100);
    assert_eq!(
        c.subject.phone.as_ref().map(Phone::pure_phone_number),
        Some(PURE)
    );
    assert_eq!(
        c.subject.phone.as_ref().map(Phone::country_code),
        Some("86")
    );
    assert_eq!(
        c.subject.unionid.as_ref().map(UnionId::as_str),
        Some("uUnion1")
    );
    let s = w.session(&sid_of(&r2.refresh_token)).expect("session");
    assert_eq!(s.session_key.to_base64(), phone_key());
}

#[test]
fn reuse_detection_remembers_retired_kept_tokens() {
    let w = World::new();
    let mut tokens = vec![w.login_at(NOW, GOOD).refresh_token];
    for i in 1..=20 {
        let next = w
            .refresh(NOW + i, tokens.last().expect("a token"))
            .expect("rotates");
        tokens.push(next.refresh_token);
    }
    let sid = sid_of(&tokens[0]);
    let s = w.session(&sid).expect("session");
    assert_eq!(s.retired.len(), RETIRED_KEPT);
    assert_eq!(s.prev_hash, Some(hash_of(&tokens[19])));
    // tokens[0..3] fell off the list: merely invalid, the session survives.
    for old in &tokens[0..3] {
        assert_eq!(
            w.refresh(NOW + 100, old),
            Err(ApiError::InvalidRefreshToken)
        );
    }
    assert!(!w.is_revoked(&sid));
    // tokens[3] is still remembered.
    assert_eq!(
        w.refresh(NOW + 100, &tokens[3]),
        Err(ApiError::RefreshReused)
    );
    assert!(w.is_revoked(&sid));
}
