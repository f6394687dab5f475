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

/// A token this deployment minted (its tag verifies) for `user` and `sid`,
/// with a secret no authority knows.
fn minted(user: &str, sid: &SessionId) -> String {
    let rng = SeededRandom::new(0x5eed);
    NewRefresh::generate(&refresh_key(), &OpenId::new(user), sid, &rng)
        .expect("gen")
        .token
        .secret()
        .to_string()
}

#[test]
fn unknown_refresh_tokens_with_a_valid_tag_are_invalid_and_harmless() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let sid = sid_of(&r.refresh_token);
    // A session this user never had, and this session with another
    // secret: the authority is asked, and refuses.
    let unknown_sid = minted(
        "oUser1",
        &SessionId::parse(&B64URL.encode([7u8; 16])).expect("sid"),
    );
    let wrong_secret = minted("oUser1", &sid);
    let calls = w.authority.calls.get();
    for t in [&unknown_sid, &wrong_secret] {
        assert_eq!(
            w.refresh(NOW + 1, t),
            Err(ApiError::InvalidRefreshToken),
            "{t}"
        );
    }
    assert_eq!(w.authority.calls.get(), calls + 2);
    // A wrong secret for a real session neither revokes nor rotates it.
    let s = w.session(&sid).expect("session intact");
    assert_eq!(s.refresh_hash, hash_of(&r.refresh_token));
    assert!(w.refresh(NOW + 2, &r.refresh_token).is_ok());
}

#[test]
fn malformed_or_forged_refresh_tokens_are_refused_before_any_authority() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let sid = sid_of(&r.refresh_token);
    let p: Vec<&str> = r.refresh_token.split('.').collect();
    assert_eq!(p.len(), 4, "user.sid.secret.tag");
    let someone = minted("oSomeoneElse", &sid);
    let someone: Vec<&str> = someone.split('.').collect();
    let cases = [
        String::new(),
        "garbage".to_string(),
        "a.b".to_string(),
        format!("{sid}.short"),
        format!("{}.x.y", r.refresh_token),
        r.access_token.clone(),
        // The first format (no user) and the three-part one (no tag).
        format!("{sid}.{}", B64URL.encode([9u8; 32])),
        format!("{}.{}.{}", p[0], p[1], p[2]),
        // Someone else's name with this token's tag, and the other way
        // round: the tag binds the user.
        format!(
            "{}.{}.{}.{}",
            B64URL.encode("oSomeoneElse"),
            p[1],
            p[2],
            p[3]
        ),
        format!("{}.{}.{}.{}", p[0], p[1], p[2], someone[3]),
        // Another session with this token's tag: the tag binds the session.
        format!("{}.{}.{}.{}", p[0], B64URL.encode([7u8; 16]), p[2], p[3]),
        // A tag made up, or cut short.
        format!("{}.{}.{}.{}", p[0], p[1], p[2], B64URL.encode([0u8; 16])),
        format!("{}.{}.{}.{}", p[0], p[1], p[2], &p[3][..20]),
    ];
    let calls = w.authority.calls.get();
    let states = w.authority.states().len();
    for t in &cases {
        assert_eq!(
            w.refresh(NOW + 1, t),
            Err(ApiError::InvalidRefreshToken),
            "{t}"
        );
    }
    assert_eq!(w.authority.calls.get(), calls, "no authority was asked");
    assert_eq!(w.authority.states().len(), states, "no authority was made");
    // The real session is untouched.
    assert_eq!(
        w.session(&sid).expect("session").refresh_hash,
        hash_of(&r.refresh_token)
    );
    assert!(w.refresh(NOW + 2, &r.refresh_token).is_ok());
}

#[test]
fn forged_tokens_for_any_name_never_reach_an_authority() {
    let w = World::new();
    let rng = SeededRandom::new(0xf0f0);
    for i in 0..50 {
        let bytes: [u8; 8] = crate::random::bytes(&rng).expect("rng");
        let name = format!("o{}{i}", crate::random::hex(&bytes));
        let user = B64URL.encode(&name);
        let sid = SessionId::generate(&rng).expect("sid");
        let secret = B64URL.encode(crate::random::bytes::<32>(&rng).expect("rng"));
        let tag = B64URL.encode(crate::random::bytes::<16>(&rng).expect("rng"));
        for forged in [
            format!("{user}.{sid}.{secret}.{tag}"),
            format!("{user}.{sid}.{secret}"),
        ] {
            assert_eq!(
                w.refresh(NOW, &forged),
                Err(ApiError::InvalidRefreshToken),
                "{forged}"
            );
        }
    }
    assert_eq!(w.authority.calls.get(), 0, "an authority was asked");
    assert!(w.authority.states().is_empty(), "an authority saved state");
}

#[test]
fn a_token_tagged_under_another_refresh_secret_is_refused() {
    // Another deployment (or the key before a leak): same user, valid shape.
    let mut v = crate::testkit::config::vars();
    v.insert(
        "REFRESH_SECRET",
        "another-deployment-refresh-secret-0123456789abc".into(),
    );
    let theirs = World::with(crate::testkit::config::load(&v).expect("valid"));
    let r = theirs.login_at(NOW, GOOD);
    assert!(theirs.refresh(NOW + 1, &r.refresh_token).is_ok());

    let ours = World::new();
    let mine = ours.login_at(NOW, GOOD);
    let calls = ours.authority.calls.get();
    assert_eq!(
        ours.refresh(NOW + 1, &r.refresh_token),
        Err(ApiError::InvalidRefreshToken)
    );
    assert_eq!(ours.authority.calls.get(), calls);
    assert!(ours.refresh(NOW + 2, &mine.refresh_token).is_ok());
}

#[test]
fn the_refresh_key_is_not_the_access_token_key() {
    // Rotating TOKEN_SECRET (issue 17) must leave refresh tokens valid:
    // the tag depends on REFRESH_SECRET alone.
    let mut v = crate::testkit::config::vars();
    v.insert(
        "TOKEN_SECRET",
        "a-rotated-token-secret-0123456789-ABCDEFGHIJKL".into(),
    );
    let rotated = crate::testkit::config::load(&v).expect("valid");
    let sid = SessionId::parse(&B64URL.encode([3u8; 16])).expect("sid");
    let rng = SeededRandom::new(1);
    let token = NewRefresh::generate(
        &test_config().refresh_key,
        &OpenId::new("oUser1"),
        &sid,
        &rng,
    )
    .expect("gen");
    assert!(ParsedRefresh::parse(&rotated.refresh_key, token.token.secret()).is_some());
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
