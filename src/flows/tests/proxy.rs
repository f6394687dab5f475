//! The proxy: who a request is, public paths, the phone gate, and the identity assertion.

use super::*;
#[test]
fn proxy_requires_a_token_outside_public_paths() {
    let w = public_world();
    for header in [None, Some("Basic abc"), Some("Bearer ")] {
        assert_eq!(
            block_on(w.at(NOW).proxy_identity("/api/orders", header)),
            Err(ApiError::Unauthorized),
            "{header:?}"
        );
    }
    assert_eq!(
        block_on(w.at(NOW).proxy_identity("/api/orders", Some("Bearer bad"))),
        Err(ApiError::InvalidToken)
    );
}

#[test]
fn proxy_identity_carries_openid_unionid_and_appid() {
    let w = public_world();
    let r = w.login_at(NOW, GOOD);
    let id = block_on(
        w.at(NOW + 1)
            .proxy_identity("/api/orders?x=1", Some(&bearer_of(&r))),
    )
    .expect("passes")
    .expect("identified");
    assert_eq!(id, identity_of(&r, None));
    assert_eq!(
        id.subject.unionid.as_ref().map(UnionId::as_str),
        Some("uUnion1")
    );
    assert_eq!(id.appid, APPID);
}

#[test]
fn public_paths_pass_without_or_with_a_bad_token_and_identify_with_a_good_one() {
    let w = public_world();
    let r = w.login_at(NOW, GOOD);
    let at = |path: &str, header: Option<&str>, now: i64| {
        block_on(w.at(now).proxy_identity(path, header))
    };
    assert_eq!(at("/public/news", None, NOW), Ok(None));
    assert_eq!(at("/public/news", Some("Bearer garbage"), NOW), Ok(None));
    assert_eq!(at("/public/news", Some("Basic abc"), NOW), Ok(None));
    // Expired: anonymous on a public path, refused elsewhere.
    assert_eq!(
        at("/public/news", Some(&bearer_of(&r)), NOW + 601),
        Ok(None)
    );
    assert_eq!(
        at("/api/orders", Some(&bearer_of(&r)), NOW + 601),
        Err(ApiError::TokenExpired)
    );
    assert_eq!(
        at("/public/news", Some(&bearer_of(&r)), NOW + 1),
        Ok(Some(identity_of(&r, None)))
    );
}

#[test]
fn every_request_checking_sees_a_logout_at_once() {
    let w = public_world();
    assert_eq!(w.cfg.session_check, SessionCheck::EveryRequest);
    let r = w.login_at(NOW, GOOD);
    block_on(w.at(NOW + 1).logout(Some(&bearer_of(&r)))).expect("logout");
    assert_eq!(
        block_on(
            w.at(NOW + 2)
                .proxy_identity("/api/orders", Some(&bearer_of(&r)))
        ),
        Err(ApiError::SessionRevoked)
    );
    // On a public path the revoked token just makes the request anonymous.
    assert_eq!(
        block_on(
            w.at(NOW + 2)
                .proxy_identity("/public/x", Some(&bearer_of(&r)))
        ),
        Ok(None)
    );
}

#[test]
fn refresh_only_checking_trusts_the_token_until_it_expires() {
    let mut cfg = test_config();
    cfg.session_check = SessionCheck::RefreshOnly;
    let w = World::with(cfg);
    let r = w.login_at(NOW, GOOD);
    block_on(w.at(NOW + 1).logout(Some(&bearer_of(&r)))).expect("logout");
    assert_eq!(
        block_on(
            w.at(NOW + 2)
                .proxy_identity("/api/orders", Some(&bearer_of(&r)))
        ),
        Ok(Some(identity_of(&r, None)))
    );
    assert_eq!(
        block_on(
            w.at(NOW + 601)
                .proxy_identity("/api/orders", Some(&bearer_of(&r)))
        ),
        Err(ApiError::TokenExpired)
    );
}

#[test]
fn require_phone_blocks_sessions_without_a_phone_except_on_public_paths() {
    let mut cfg = test_config();
    cfg.require_phone = true;
    cfg.public_paths = vec!["/public/".into()];
    let w = World::with(cfg);
    let r = w.login_at(NOW, &phone_login_reply());
    assert_eq!(
        block_on(
            w.at(NOW + 1)
                .proxy_identity("/api/orders", Some(&bearer_of(&r)))
        ),
        Err(ApiError::PhoneRequired)
    );
    // On a public path it passes, but as anonymous: no identity for a
    // session that fails the gate.
    assert_eq!(
        block_on(
            w.at(NOW + 1)
                .proxy_identity("/public/x", Some(&bearer_of(&r)))
        ),
        Ok(None)
    );
    assert_eq!(
        block_on(w.at(NOW + 1).proxy_identity("/public/x", None)),
        Ok(None)
    );

    // Once bound, the same (older) access token passes: the session is read.
    w.bind(NOW + 2, &r, PhoneRequest::Encrypted(encrypted("phone_ok")))
        .expect("binds");
    assert_eq!(
        block_on(
            w.at(NOW + 3)
                .proxy_identity("/api/orders", Some(&bearer_of(&r)))
        ),
        Ok(Some(identity_of(&r, Some(PURE))))
    );
}

#[test]
fn proxy_phone_comes_from_the_session_or_from_the_token() {
    let w = World::new();
    let r = w.login_at(NOW, &phone_login_reply());
    let b = w
        .bind(NOW + 1, &r, PhoneRequest::Encrypted(encrypted("phone_ok")))
        .expect("binds");
    let identify = |edge: TestEdge<'_>, bearer: String| {
        block_on(edge.proxy_identity("/api/x", Some(&bearer)))
            .expect("passes")
            .expect("id")
    };
    // every-request: the session is fresher than the pre-binding token.
    assert_eq!(
        identify(w.at(NOW + 2), bearer_of(&r))
            .subject
            .phone
            .as_ref()
            .map(Phone::pure_phone_number),
        Some(PURE)
    );
    // refresh-only: only what the token says.
    let mut cfg = test_config();
    cfg.session_check = SessionCheck::RefreshOnly;
    let stateless = Edge {
        cfg: &cfg,
        ..w.at(NOW + 2)
    };
    assert_eq!(identify(stateless, bearer_of(&r)).subject.phone, None);
    let stateless = Edge {
        cfg: &cfg,
        ..w.at(NOW + 2)
    };
    assert_eq!(
        identify(stateless, bearer_of(&b)),
        identity_of(&b, Some(PURE))
    );
}

#[test]
fn no_identity_assertion_without_an_identity_key() {
    let mut cfg = test_config();
    cfg.identity_key = None;
    let w = World::with(cfg);
    let r = w.login_at(NOW, GOOD);
    let passed = block_on(w.at(NOW).proxy_pass("/api/x", Some(&bearer_of(&r))))
        .expect("passes")
        .expect("identified");
    assert_eq!(passed.identity, identity_of(&r, None));
    assert_eq!(passed.assertion, None);
}

#[test]
fn identity_assertion_is_a_short_lived_eddsa_jwt_for_the_origin() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let jwt = w.assertion(NOW + 5, &r);
    assert_eq!(jwt.split('.').count(), 3);

    let key = w.cfg.identity_key.as_ref().expect("test config has a key");
    let header = jwt_part(&jwt, 0);
    let public = block_on(key.public(&Compact)).expect("public key");
    assert_eq!(header["kid"], public.kid.as_str());
    assert_eq!(header["alg"], "EdDSA");

    let claims = jwt_part(&jwt, 1);
    assert_eq!(claims["aud"], w.cfg.origin_audience.as_str());
    assert_eq!(claims["aud"], "https://api.example.com");
    assert_eq!(claims["sub"], "oUser1");
    assert_eq!(claims["unionid"], "uUnion1");
    assert_eq!(claims["appid"], APPID);
    assert_eq!(claims["iss"], "wx-edge");
    assert!(claims.get("phone").is_none());
    let iat = claims["iat"].as_i64().expect("iat");
    let exp = claims["exp"].as_i64().expect("exp");
    assert_eq!(iat, NOW + 5);
    assert!(exp > iat && exp - iat <= 300, "iat {iat} exp {exp}");
    let jti = claims["jti"].as_str().expect("jti");
    assert_eq!(jti.len(), 32);

    // The signature checks out against the published key.
    let pk = published_key(key);
    let (signed, signature) = jwt.rsplit_once('.').expect("signature");
    let signature = ed25519_compact::Signature::from_slice(&B64URL.decode(signature).expect("b64"))
        .expect("64 bytes");
    assert!(pk.verify(signed, &signature).is_ok(), "signature valid");
    let typed: IdentityClaims = serde_json::from_value(claims).expect("the claims' shape");
    assert_eq!(typed.exp - typed.iat, exp - iat);
}

#[test]
fn identity_assertion_carries_a_bound_phone() {
    let w = World::new();
    let r = w.login_at(NOW, &phone_login_reply());
    w.bind(NOW + 1, &r, PhoneRequest::Encrypted(encrypted("phone_ok")))
        .expect("binds");
    let claims = jwt_part(&w.assertion(NOW + 2, &r), 1);
    assert_eq!(claims["phone"], PURE);
    assert_eq!(claims["phone_country"], "86");
}

#[test]
fn a_phone_taken_off_the_allowlist_loses_identity_at_once() {
    let mut cfg = test_config();
    cfg.require_phone = true;
    cfg.phone_allowlist = true;
    cfg.public_paths = vec!["/public/".into()];
    let w = World::with(cfg);
    w.allow(PURE);
    let r = w.login_at(NOW, &phone_login_reply());
    let b = w
        .bind(NOW + 1, &r, PhoneRequest::Encrypted(encrypted("phone_ok")))
        .expect("listed");
    let auth = bearer_of(&b);
    for path in ["/api/x", "/public/x"] {
        assert_eq!(
            block_on(w.at(NOW + 2).proxy_identity(path, Some(&auth))),
            Ok(Some(identity_of(&b, Some(PURE)))),
            "{path}"
        );
    }
    // The staff member leaves: off the list, before any refresh.
    block_on(w.store.delete(&allow_key(&expected_phone()))).expect("delete");
    assert_eq!(
        block_on(w.at(NOW + 3).proxy_identity("/api/x", Some(&auth))),
        Err(ApiError::NotInternalUser)
    );
    assert_eq!(
        block_on(w.at(NOW + 3).proxy_identity("/public/x", Some(&auth))),
        Ok(None),
        "public paths pass as anonymous"
    );
}

#[test]
fn a_session_reuses_its_assertion_while_more_than_half_its_life_is_left() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let first = w.assertion(NOW + 5, &r);
    let life = jwt_part(&first, 1)["exp"].as_i64().expect("exp") - (NOW + 5);
    // Within the first half of its life: the very same token, for every
    // request of the session.
    for now in [NOW + 5, NOW + 6, NOW + 5 + life / 2 - 1] {
        assert_eq!(w.assertion(now, &r), first, "at {now}");
    }
    // Half of it gone: a new one, with its own jti (it names the assertion).
    let second = w.assertion(NOW + 5 + life / 2, &r);
    assert_ne!(second, first);
    assert_ne!(jwt_part(&second, 1)["jti"], jwt_part(&first, 1)["jti"]);
    assert_eq!(jwt_part(&second, 1)["iat"], NOW + 5 + life / 2);
    assert_eq!(w.assertion(NOW + 5 + life / 2 + 1, &r), second);
    // A clock gone backwards is never handed the later assertion.
    let earlier = w.assertion(NOW + 6, &r);
    assert_ne!(earlier, second);
    assert_eq!(jwt_part(&earlier, 1)["iat"], NOW + 6);
}

#[test]
fn another_isolate_signs_its_own_assertion() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let here = w.assertion(NOW + 1, &r);
    let other = IsolateState::default();
    let edge = Edge {
        isolate: &other,
        ..w.at(NOW + 1)
    };
    let there = block_on(edge.proxy_pass("/api/x", Some(&bearer_of(&r))))
        .expect("passes")
        .expect("identified")
        .assertion
        .expect("key");
    assert_ne!(there, here);
}

#[test]
fn a_phone_bound_since_gets_a_new_assertion_at_once() {
    let w = World::new();
    let r = w.login_at(NOW, &phone_login_reply());
    let before = w.assertion(NOW + 1, &r);
    assert!(jwt_part(&before, 1).get("phone").is_none());
    w.bind(NOW + 2, &r, PhoneRequest::Encrypted(encrypted("phone_ok")))
        .expect("binds");
    // The same (pre-binding) access token: the session says there is a
    // phone now, and the assertion says so too.
    let after = w.assertion(NOW + 3, &r);
    assert_ne!(after, before);
    assert_eq!(jwt_part(&after, 1)["phone"], PURE);
}

#[test]
fn sessions_do_not_share_assertions() {
    let w = public_world();
    let a = w.login_at(NOW, GOOD);
    let b = w.login_at(NOW, GOOD);
    assert_eq!(a.openid, b.openid, "one user, two sessions");
    let for_a = w.assertion(NOW + 1, &a);
    let for_b = w.assertion(NOW + 1, &b);
    assert_ne!(for_a, for_b);
    assert_eq!(jwt_part(&for_a, 1)["sub"], jwt_part(&for_b, 1)["sub"]);
    // Once a session ends, its token is refused before any assertion is
    // needed, and on a public path it is anonymous: no assertion at all.
    block_on(w.at(NOW + 2).logout(Some(&bearer_of(&a)))).expect("logout");
    assert_eq!(
        block_on(w.at(NOW + 3).proxy_identity("/api/x", Some(&bearer_of(&a)))),
        Err(ApiError::SessionRevoked)
    );
    assert_eq!(
        block_on(
            w.at(NOW + 3)
                .proxy_identity("/public/x", Some(&bearer_of(&a)))
        ),
        Ok(None)
    );
    assert_eq!(w.assertion(NOW + 3, &b), for_b);
    assert_eq!(w.assertion_on(NOW + 3, &b, "/public/x"), for_b);
}

#[test]
fn the_assertion_is_made_for_the_identity_it_comes_with() {
    let w = World::new();
    let r = w.login_at(NOW, &phone_login_reply());
    w.bind(NOW + 1, &r, PhoneRequest::Encrypted(encrypted("phone_ok")))
        .expect("binds");
    let passed = block_on(w.at(NOW + 2).proxy_pass("/api/x", Some(&bearer_of(&r))))
        .expect("passes")
        .expect("identified");
    let id = &passed.identity;
    let claims = jwt_part(passed.assertion.as_deref().expect("key"), 1);
    let s = &id.subject;
    assert_eq!(claims["sub"], s.openid.as_str());
    assert_eq!(claims["appid"], id.appid.as_str());
    assert_eq!(
        claims["unionid"].as_str(),
        s.unionid.as_ref().map(UnionId::as_str)
    );
    assert_eq!(
        claims["phone"].as_str(),
        s.phone.as_ref().map(Phone::pure_phone_number)
    );
    assert_eq!(
        claims["phone_country"].as_str(),
        s.phone.as_ref().map(Phone::country_code)
    );
    assert_eq!(s.phone.as_ref().map(Phone::pure_phone_number), Some(PURE));
}

#[test]
fn the_origin_is_asked_without_redirects_caching_or_a_get_body() {
    use super::super::proxy::Outgoing;
    let o = Outgoing::to_origin(
        "https://origin.example/base",
        "https://edge.example/api/orders?x=1",
        "POST",
    )
    .expect("absolute");
    assert_eq!(
        o,
        Outgoing {
            url: "https://origin.example/base/api/orders?x=1".into(),
            with_body: true,
            follow_redirects: false,
            cached: false,
        }
    );
    for (method, with_body) in [
        ("GET", false),
        ("HEAD", false),
        ("PUT", true),
        ("DELETE", true),
        ("PROPFIND", true),
    ] {
        let o = Outgoing::to_origin("https://o.example", "https://e.example/x", method)
            .expect("absolute");
        assert_eq!(o.with_body, with_body, "{method}");
        assert!(!o.follow_redirects && !o.cached, "{method}");
    }
    assert_eq!(
        Outgoing::to_origin("https://o.example", "/relative", "GET"),
        Err(ApiError::Internal)
    );
    // A path that could climb out of the base path at the origin.
    assert_eq!(
        Outgoing::to_origin(
            "https://o.example/api",
            "https://e.example/..%2fadmin",
            "GET"
        ),
        Err(ApiError::InvalidRequest(
            "the path could leave the origin's base path"
        ))
    );
}

/// The phone as the freshest source says: a binding's token is newer than
/// the replica an edge still caches (KV keeps one up to 60 s).
#[test]
fn a_phone_just_bound_passes_although_the_edge_still_caches_the_old_replica() {
    let mut cfg = test_config();
    cfg.require_phone = true;
    cfg.phone_allowlist = true;
    let w = World::with(cfg);
    w.allow(PURE);
    let r = w.login_at(NOW, &phone_login_reply());
    let key = replica_key(&w.claims(&r.access_token, NOW).sid);
    let cached = w.raw_entry(&key).expect("replica written at login");
    let b = w
        .bind(NOW + 2, &r, PhoneRequest::Encrypted(encrypted("phone_ok")))
        .expect("binds");
    // This edge still reads the replica from before the binding.
    w.store.data.borrow_mut().insert(key.clone(), cached);
    let sid = w.claims(&b.access_token, NOW + 3).sid;
    assert_eq!(w.replica(&sid).and_then(|x| x.phone), None);
    assert_eq!(
        block_on(w.at(NOW + 3).proxy_identity("/api/x", Some(&bearer_of(&b)))),
        Ok(Some(identity_of(&b, Some(PURE))))
    );
    // The older token has no phone of its own: the replica is the newer
    // word for it, and says none yet.
    assert_eq!(
        block_on(w.at(NOW + 3).proxy_identity("/api/x", Some(&bearer_of(&r)))),
        Err(ApiError::PhoneRequired)
    );
    // The allowlist stays a live check for the token's phone too.
    block_on(w.store.delete(&allow_key(&expected_phone()))).expect("delete");
    assert_eq!(
        block_on(w.at(NOW + 4).proxy_identity("/api/x", Some(&bearer_of(&b)))),
        Err(ApiError::NotInternalUser)
    );
}

/// A replica written after the token (the phone gone at a later refresh,
/// say) is the newer word, and one from before `as_of` was kept counts as
/// newer than any token.
#[test]
fn a_replica_newer_than_the_token_wins_and_an_old_format_one_always_does() {
    let mut cfg = test_config();
    cfg.require_phone = true;
    let w = World::with(cfg);
    let r = w.login_at(NOW, &phone_login_reply());
    let b = w
        .bind(NOW + 2, &r, PhoneRequest::Encrypted(encrypted("phone_ok")))
        .expect("binds");
    let sid = w.claims(&b.access_token, NOW + 2).sid;
    let mut replica = w.replica(&sid).expect("replica");
    assert_eq!(replica.as_of, Some(NOW + 2));
    replica.phone = None;
    replica.as_of = Some(NOW + 5);
    let put = |v: &Replica| {
        let json = serde_json::to_string(v).expect("json");
        block_on(w.store.put(&replica_key(&sid), &json, None)).expect("put");
    };
    put(&replica);
    assert_eq!(
        block_on(w.at(NOW + 6).proxy_identity("/api/x", Some(&bearer_of(&b)))),
        Err(ApiError::PhoneRequired)
    );
    replica.as_of = None;
    put(&replica);
    assert_eq!(
        block_on(w.at(NOW + 6).proxy_identity("/api/x", Some(&bearer_of(&b)))),
        Err(ApiError::PhoneRequired)
    );
}
