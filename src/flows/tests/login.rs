//! Login: sessions, user records, tokens, and what reaches WeChat.

use super::*;

#[test]
fn login_returns_a_bearer_pair() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    assert_eq!(r.token_type, "Bearer");
    assert_eq!(r.expires_in, w.cfg.access_ttl);
    assert_eq!(r.expires_in, 600);
    assert_eq!(r.refresh_expires_in, w.cfg.refresh_ttl);
    assert_eq!(r.openid, "oUser1");
    assert_eq!(r.unionid.as_ref().map(UnionId::as_str), Some("uUnion1"));
    assert!(!r.phone_bound);
    let v = serde_json::to_value(&r).expect("JSON");
    for field in ["phoneNumber", "purePhoneNumber", "countryCode"] {
        assert!(v.get(field).is_none(), "{field} is for /auth/phone only");
    }
    assert_eq!(r.access_token.split('.').count(), 3, "a JWT");
    assert!(parsed(&r.refresh_token).is_some());
}

/// The authority reads its own clock, which may have passed the next
/// second since the worker read its own: the lifetimes told to the client
/// never exceed what is configured.
#[test]
fn an_authority_a_second_ahead_never_stretches_the_lifetimes() {
    let w = World::new();
    w.reply(GOOD);
    // The authority's clock (the store's) at NOW + 1, the worker's at NOW.
    let edge = Edge {
        now: NOW,
        ..w.at(NOW + 1)
    };
    let r = block_on(edge.login("code", None)).expect("login");
    assert_eq!(r.refresh_expires_in, w.cfg.refresh_ttl);
    assert_eq!(r.expires_in, w.cfg.access_ttl);
}

#[test]
fn token_lifetimes_follow_the_configuration() {
    let mut cfg = test_config();
    cfg.access_ttl = 120;
    cfg.refresh_ttl = 3_600;
    let w = World::with(cfg);
    let r = w.login_at(NOW, GOOD);
    assert_eq!(r.expires_in, 120);
    assert_eq!(r.refresh_expires_in, 3_600);
    let v = verify_access(&w.cfg.token_key, APPID, &r.access_token, NOW).expect("valid");
    assert_eq!(v.expires_at, NOW + 120);
    let s = w.session(&sid_of(&r.refresh_token)).expect("session");
    assert_eq!(s.expires_at, NOW + 3_600);
    let r2 = w.refresh(NOW + 100, &r.refresh_token).expect("rotates");
    assert_eq!(r2.expires_in, 120);
    assert_eq!(r2.refresh_expires_in, 3_600);
    assert_eq!(
        w.refresh(NOW + 100 + 3_600, &r2.refresh_token),
        Err(ApiError::InvalidRefreshToken)
    );
}

#[test]
fn login_stores_the_session_with_the_session_key_and_a_hashed_refresh_token() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let sid = sid_of(&r.refresh_token);
    // The user's authority holds the session...
    let state = w
        .authority
        .state(&OpenId::new("oUser1"))
        .expect("the user's authority");
    let s = state
        .sessions
        .get(&sid)
        .cloned()
        .expect("session kept by its authority");
    assert_eq!(s.unionid.as_ref().map(UnionId::as_str), Some("uUnion1"));
    assert_eq!(s.session_key.to_base64(), GOOD_KEY);
    assert!(s.phone.is_none());
    assert_eq!(s.created_at, NOW);
    assert_eq!(s.expires_at, NOW + w.cfg.refresh_ttl as i64);
    assert_eq!(s.refresh_hash, hash_of(&r.refresh_token));
    assert_eq!(s.prev_hash, None);
    assert_eq!(s.issued_at, NOW);
    assert_eq!(s.sealed_current, None);
    assert!(s.retired.is_empty());
    assert_eq!(s.revoked_at, None);

    // ...and KV its read replica, which drops out when the session ends.
    let replica = w.replica(&sid).expect("replica in KV");
    assert_eq!(replica.openid, "oUser1");
    assert_eq!(replica.expires_at, NOW + w.cfg.refresh_ttl as i64);
    let (_, exp) = w.raw_entry(&replica_key(&sid)).expect("raw entry");
    assert_eq!(exp, Some(NOW + w.cfg.refresh_ttl as i64));

    // Neither holds the refresh token itself; KV never sees the session_key.
    let secret_part = r.refresh_token.rsplit_once('.').expect("user.sid.secret").1;
    assert!(!w.store.raw().contains(secret_part));
    assert!(!format!("{state:?}").contains(secret_part));
    assert!(!w.store.raw().contains(GOOD_KEY));
}

#[test]
fn login_response_json_has_no_session_key_and_no_app_secret() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let text = serde_json::to_string(&r).expect("serializes");
    assert!(!text.contains(GOOD_KEY), "{text}");
    assert!(!text.contains("session_key"), "{text}");
    assert!(!text.contains(APP_SECRET), "{text}");
    let v: Value = serde_json::from_str(&text).expect("JSON");
    let mut keys: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "access_token",
            "expires_in",
            "openid",
            "phone_bound",
            "refresh_expires_in",
            "refresh_token",
            "token_type",
            "unionid"
        ]
    );
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 600);
    assert_eq!(v["refresh_expires_in"], 2_592_000);
    assert_eq!(v["phone_bound"], false);
}

#[test]
fn login_without_unionid_omits_it() {
    let w = World::new();
    let r = w.login_at(
        NOW,
        &format!(r#"{{"openid":"oNoUnion","session_key":"{GOOD_KEY}"}}"#),
    );
    assert_eq!(r.openid, "oNoUnion");
    assert_eq!(r.unionid, None);
    let v: Value = serde_json::to_value(&r).expect("JSON");
    assert!(v.get("unionid").is_none());
    assert_eq!(w.claims(&r.access_token, NOW).subject.unionid, None);
}

#[test]
fn user_record_keeps_first_login_and_tracks_the_latest() {
    let w = World::new();
    w.login_from(NOW, GOOD, Some(IP));
    let u = w.user("oUser1").expect("user record");
    assert_eq!(
        u,
        UserRecord {
            openid: "oUser1".into(),
            unionid: Some("uUnion1".into()),
            first_login_at: NOW,
            last_login_at: NOW,
            last_login_ip: Some(IP.into()),
            login_count: 1,
            phone: None,
            phone_bound_at: None,
        }
    );

    w.login_from(NOW + 3_600, GOOD, Some("198.51.100.9"));
    let u = w.user("oUser1").expect("user record");
    assert_eq!(u.first_login_at, NOW);
    assert_eq!(u.last_login_at, NOW + 3_600);
    assert_eq!(u.last_login_ip.as_deref(), Some("198.51.100.9"));
    assert_eq!(u.login_count, 2);

    w.login_from(NOW + 7_200, GOOD, Some(IP));
    assert_eq!(w.user("oUser1").expect("user").login_count, 3);
}

#[test]
fn a_second_login_creates_another_session_with_the_new_session_key() {
    let w = World::new();
    let first = w.login_at(NOW, &phone_login_reply());
    let second = w.login_at(NOW + 5, GOOD);
    let (sid1, sid2) = (sid_of(&first.refresh_token), sid_of(&second.refresh_token));
    assert_ne!(sid1, sid2);
    assert_ne!(first.refresh_token, second.refresh_token);
    assert_eq!(
        w.session(&sid1).expect("first").session_key.to_base64(),
        phone_key()
    );
    let s2 = w.session(&sid2).expect("second");
    assert_eq!(s2.session_key.to_base64(), GOOD_KEY);
    assert_eq!(s2.created_at, NOW + 5);
    assert_eq!(w.claims(&second.access_token, NOW + 5).sid, sid2);
}

#[test]
fn code2session_errors_propagate_and_store_nothing() {
    let cases = [
        (40029, ApiError::InvalidCode { errcode: 40029 }, 400),
        (40163, ApiError::InvalidCode { errcode: 40163 }, 400),
        (40226, ApiError::UserBlocked { errcode: 40226 }, 403),
    ];
    for (code, want, status) in cases {
        let w = World::new();
        w.reply(&errcode(code));
        let e = block_on(w.at(NOW).login("0a1LoginCode", Some(IP))).expect_err("refused");
        assert_eq!(e, want);
        assert_eq!(e.wechat_errcode(), Some(code));
        assert_eq!(e.status(), status);
        assert!(
            w.store.data.borrow().is_empty(),
            "errcode {code} stored something"
        );
        assert_eq!(w.sent_len(), 1, "errcode {code} must not be retried");
    }
}

#[test]
fn code2session_request_carries_the_code_and_appid() {
    let w = World::new();
    w.reply(GOOD);
    block_on(w.at(NOW).login("0a1Code+/=", None)).expect("login");
    assert_eq!(w.sent_len(), 1);
    assert_eq!(w.sent_method(0), Method::Get);
    let url = w.sent_url(0);
    assert!(
        url.starts_with(&format!("{API}/sns/jscode2session?")),
        "{url}"
    );
    assert!(url.contains("js_code=0a1Code%2B%2F%3D"), "{url}");
    assert!(url.contains(&format!("appid={APPID}")), "{url}");
    assert!(url.contains("grant_type=authorization_code"), "{url}");
}

#[test]
fn a_malformed_login_code_never_reaches_wechat() {
    let w = World::new();
    w.reply(GOOD);
    let e = block_on(w.at(NOW).login("", None)).expect_err("empty code");
    assert!(matches!(e, ApiError::InvalidRequest(_)), "{e:?}");
    assert_eq!(w.sent_len(), 0);
    assert!(w.store.data.borrow().is_empty());
}

#[test]
fn the_access_token_verifies_with_openid_and_session_id() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let v = verify_access(&w.cfg.token_key, APPID, &r.access_token, NOW).expect("valid");
    assert_eq!(v.claims.subject.openid, "oUser1");
    assert_eq!(v.claims.sid, sid_of(&r.refresh_token));
    assert_eq!(v.claims.aud, APPID);
    assert_eq!(
        v.claims.subject.unionid.as_ref().map(UnionId::as_str),
        Some("uUnion1")
    );
    assert_eq!(v.claims.subject.phone, None);
    assert_eq!(v.expires_at, NOW + 600);
    assert_eq!(
        verify_access(&w.cfg.token_key, APPID, &r.access_token, NOW + 601).map_err(ApiError::from),
        Err(ApiError::TokenExpired)
    );
    // The refresh token is not an access token.
    assert_eq!(
        verify_access(&w.cfg.token_key, APPID, &r.refresh_token, NOW).map_err(ApiError::from),
        Err(ApiError::InvalidToken)
    );
}
