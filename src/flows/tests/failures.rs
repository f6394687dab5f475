//! Failing parts (store, randomness) and what may never leak.

use super::*;

#[test]
fn a_failing_kv_is_store_unavailable_never_a_panic() {
    let w = World::new();
    let r = w.login_at(NOW, &phone_login_reply());
    w.store.fail.set(true);
    let auth = Some(bearer_of(&r));
    let auth = auth.as_deref();

    w.reply(GOOD);
    assert_eq!(
        block_on(w.at(NOW + 1).login("code", None)),
        Err(ApiError::StoreUnavailable)
    );
    assert_eq!(
        block_on(w.at(NOW + 1).authenticate(auth, SessionCheck::EveryRequest)).err(),
        Some(ApiError::StoreUnavailable)
    );
    assert!(
        block_on(w.at(NOW + 1).authenticate(auth, SessionCheck::RefreshOnly)).is_ok(),
        "stateless"
    );
    assert_eq!(
        block_on(w.at(NOW + 1).proxy_identity("/api/x", auth)),
        Err(ApiError::StoreUnavailable)
    );
    assert_eq!(
        block_on(w.at(NOW + 1).wx_access_token(None)).map(|t| t.secret().to_string()),
        Err(ApiError::StoreUnavailable)
    );
    assert_eq!(ApiError::StoreUnavailable.status(), 503);

    // Back up: the session is as it was.
    w.store.fail.set(false);
    assert!(w.refresh(NOW + 2, &r.refresh_token).is_ok());
}

/// A gradual deploy pairs this worker with its user's authority still on
/// the previous release, which reads wire version 2 only. Everything that
/// release knows works — login, refresh, the phone, the session check,
/// logout — as their requests are still written in version 2. Only the
/// session-key operations it does not know (the signature, the key
/// check and reset, the re-key, open data) are refused by it (501) and
/// answered `503 store_unavailable`, retryable, changing nothing; they
/// work once the deploy finishes.
#[test]
fn an_authority_of_the_previous_release_answers_all_but_the_new_operations() {
    let w = World::new();
    w.authority.older.set(true);
    let first = w.login_at(NOW, &phone_login_reply());
    let sid = sid_of(&first.refresh_token);
    let r = w.refresh(NOW + 1, &first.refresh_token).expect("refreshed");
    let bound = w.bind(NOW + 2, &r, PhoneRequest::Encrypted(encrypted("phone_ok")));
    assert!(bound.is_ok(), "{bound:?}");
    assert!(w
        .authenticate_err(NOW + 3, &r, SessionCheck::Authority)
        .is_none());
    let before = serde_json::to_string(&w.authority.state(&openid()).expect("state"));
    let sent = w.sent_len();

    let user = openid();
    let object = |v: Value| match v {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    };
    let open = object(json!({
        "encryptedData": vector("phone_ok", "encrypted_data"),
        "iv": vector("phone_ok", "iv"),
    }));
    let at = w.at(NOW + 4);
    let sign = block_on(at.service_sign(&user, &object(json!({"data": "x"})))).err();
    assert_eq!(sign, Some(ApiError::StoreUnavailable));
    let check = block_on(at.service_check(&user)).err();
    assert_eq!(check, Some(ApiError::StoreUnavailable));
    let reset = block_on(at.service_reset(&user)).err();
    assert_eq!(reset, Some(ApiError::StoreUnavailable));
    let decrypt = block_on(at.service_decrypt(&user, &open)).err();
    assert_eq!(decrypt, Some(ApiError::StoreUnavailable));
    // The re-key's session check is answered; its key replacement is not.
    w.reply(&phone_login_reply());
    let code = object(json!({"code": "0a1RekeyCode"}));
    let auth = bearer_of(&r);
    let rekey = block_on(at.rekey(Some(&auth), Some(IP), &code));
    assert_eq!(rekey, Err(ApiError::StoreUnavailable));
    assert_eq!(ApiError::StoreUnavailable.status(), 503);
    let after = serde_json::to_string(&w.authority.state(&openid()).expect("state"));
    assert_eq!(
        before.ok(),
        after.ok(),
        "a refused operation changed nothing"
    );
    assert_eq!(w.sent_len(), sent + 1, "only the re-key's code2Session");

    // Logout, still on the previous release, takes.
    assert_eq!(block_on(w.at(NOW + 5).logout(Some(&auth))), Ok(()));
    assert!(w.is_revoked(&sid));

    // The deploy finished: the new operations take.
    w.authority.older.set(false);
    let again = w.login_at(NOW + 6, &phone_login_reply());
    let signed = block_on(
        w.at(NOW + 7)
            .service_sign(&user, &object(json!({"data": "x"}))),
    );
    assert!(signed.is_ok(), "{signed:?}");
    assert!(!w.is_revoked(&sid_of(&again.refresh_token)));
}

fn openid() -> OpenId {
    OpenId::new("oUser1")
}

#[test]
fn an_unreachable_authority_is_store_unavailable_and_changes_nothing() {
    let w = World::new();
    let r = w.login_at(NOW, &phone_login_reply());
    let sid = sid_of(&r.refresh_token);
    let before = w.session(&sid).expect("session");
    w.authority.fail.set(true);
    let auth = Some(bearer_of(&r));
    let auth = auth.as_deref();

    w.reply(GOOD);
    assert_eq!(
        block_on(w.at(NOW + 1).login("code", None)),
        Err(ApiError::StoreUnavailable)
    );
    assert_eq!(
        w.refresh(NOW + 1, &r.refresh_token),
        Err(ApiError::StoreUnavailable)
    );
    assert_eq!(
        block_on(w.at(NOW + 1).logout(auth)),
        Err(ApiError::StoreUnavailable)
    );
    assert_eq!(
        block_on(w.at(NOW + 1).session_info(auth)),
        Err(ApiError::StoreUnavailable)
    );
    assert_eq!(
        w.bind(NOW + 1, &r, PhoneRequest::Encrypted(encrypted("phone_ok"))),
        Err(ApiError::StoreUnavailable)
    );
    let after = w.session(&sid).expect("session");
    assert_eq!(after.refresh_hash, before.refresh_hash);
    assert_eq!(after.revoked_at, None);
    assert!(after.phone.is_none());

    // Back: the retried logout takes.
    w.authority.fail.set(false);
    assert_eq!(block_on(w.at(NOW + 2).logout(auth)), Ok(()));
    assert!(w.is_revoked(&sid));
}

#[test]
fn a_refresh_whose_replica_write_failed_still_answers_its_pair() {
    // The authority rotated, then KV refused the replica's update: the pair
    // is answered all the same (a 503 would leave the client with a token
    // that, retried past the grace, counts as reuse); the update waits in
    // the authority's outbox. A retry within the grace gets the same pair
    // and, KV back, brings the replica up to date.
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let sid = sid_of(&r.refresh_token);
    let before = w.replica(&sid).expect("replica");
    w.store.fail.set(true);
    let rotated = w.refresh(NOW + 1, &r.refresh_token).expect("the pair");
    let session = w.session(&sid).expect("session");
    assert_eq!(session.refresh_hash, hash_of(&rotated.refresh_token));
    w.store.fail.set(false);
    assert_eq!(w.replica(&sid), Some(before), "KV refused the update");
    let retried = w
        .refresh(NOW + 2, &r.refresh_token)
        .expect("grace: the pair");
    assert_eq!(retried.refresh_token, rotated.refresh_token);
    assert_eq!(
        w.replica(&sid).map(|rep| rep.expires_at),
        Some(session.expires_at)
    );
    assert!(w.refresh(NOW + 3, &retried.refresh_token).is_ok());
}

struct BrokenRandom;

impl Random for BrokenRandom {
    fn fill(&self, _: &mut [u8]) -> Result<(), RandomError> {
        Err(RandomError)
    }
}

#[test]
fn a_failing_random_source_is_internal() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let edge = w.with_rng(NOW + 1, &BrokenRandom);
    w.reply(&format!(
        r#"{{"openid":"oOther","session_key":"{GOOD_KEY}"}}"#
    ));
    assert_eq!(block_on(edge.login("code", None)), Err(ApiError::Internal));
    assert!(w.user("oOther").is_none(), "no half-made login");
    assert_eq!(
        block_on(edge.refresh(&r.refresh_token, None)),
        Err(ApiError::Internal)
    );
    assert_eq!(
        w.session(&sid_of(&r.refresh_token))
            .expect("session")
            .refresh_hash,
        hash_of(&r.refresh_token),
        "a failed rotation leaves the session as it was"
    );
    // No jti for a new identity assertion.
    assert_eq!(
        block_on(edge.proxy_identity("/api/x", Some(&bearer_of(&r)))),
        Err(ApiError::Internal)
    );
}

fn show_err(e: &ApiError, shown: &mut Vec<String>) {
    shown.push(format!("{e:?} {e}"));
    shown.push(e.to_response().1);
}

#[test]
fn nothing_returned_carries_a_session_key_or_the_app_secret() {
    const WX_TOKEN: &str = "WXACCESSTOKEN-secret-0987654321";
    let mut cfg = test_config();
    cfg.public_paths = vec!["/public/".into()];
    let w = World::with(cfg);
    let mut shown: Vec<String> = Vec::new();
    let mut json_shown: Vec<String> = Vec::new();

    let r = w.login_at(NOW, &phone_login_reply());
    shown.push(format!("{r:?}"));
    json_shown.push(serde_json::to_string(&r).expect("json"));
    let b = w
        .bind(NOW + 1, &r, PhoneRequest::Encrypted(encrypted("phone_ok")))
        .expect("binds");
    shown.push(format!("{b:?}"));
    json_shown.push(serde_json::to_string(&b).expect("json"));
    // Binding did not rotate: the login's refresh token is still current.
    let r2 = w.refresh(NOW + 2, &r.refresh_token).expect("refresh");
    shown.push(format!("{r2:?}"));
    let grace = w.refresh(NOW + 3, &r.refresh_token).expect("grace");
    shown.push(format!("{grace:?}"));
    let info = block_on(w.at(NOW + 3).session_info(Some(&bearer_of(&r2)))).expect("info");
    shown.push(format!("{info:?}"));
    json_shown.push(serde_json::to_string(&info).expect("json"));
    let auth = block_on(
        w.at(NOW + 3)
            .authenticate(Some(&bearer_of(&r2)), SessionCheck::EveryRequest),
    )
    .expect("auth");
    shown.push(format!("{:?} {:?}", auth.access, auth.session));
    let edge = w.at(NOW + 3);
    let passed = block_on(edge.proxy_pass("/api/x", Some(&bearer_of(&r2))))
        .expect("passes")
        .expect("identified");
    shown.push(format!("{passed:?}"));
    let assertion = passed.assertion.clone().expect("key");
    assert!(
        !format!("{passed:?}").contains(&assertion),
        "the assertion is redacted"
    );
    for part in assertion.split('.').take(2) {
        shown.push(String::from_utf8_lossy(&B64URL.decode(part).expect("b64")).into_owned());
    }
    for part in r2.access_token.split('.').take(2) {
        shown.push(String::from_utf8_lossy(&B64URL.decode(part).expect("b64")).into_owned());
    }

    // The code path, with a WeChat access token to keep quiet too.
    let g = w.login_at(NOW + 4, GOOD);
    w.reply(&format!(
        r#"{{"access_token":"{WX_TOKEN}","expires_in":7200}}"#
    ));
    w.reply(PHONE_REPLY);
    let gb = w
        .bind(NOW + 5, &g, PhoneRequest::Code("pc"))
        .expect("binds");
    shown.push(format!("{gb:?}"));
    json_shown.push(serde_json::to_string(&gb).expect("json"));
    let token = block_on(w.at(NOW + 5).wx_access_token(None)).expect("cached");
    shown.push(format!("{token:?}"));

    // Errors along the way.
    let stale = w.bind(NOW + 6, &g, PhoneRequest::Encrypted(encrypted("phone_ok")));
    show_err(&stale.expect_err("stale key"), &mut shown);
    let foreign = w.bind(
        NOW + 6,
        &r2,
        PhoneRequest::Encrypted(encrypted("phone_foreign_appid")),
    );
    show_err(&foreign.expect_err("foreign"), &mut shown);
    w.reply(&errcode(40163));
    let used = block_on(w.at(NOW + 7).login("used", None));
    show_err(&used.expect_err("used code"), &mut shown);
    w.reply(&format!(r#"{{"session_key":"{GOOD_KEY}"}}"#));
    let partial = block_on(w.at(NOW + 7).login("c", None));
    show_err(&partial.expect_err("no openid"), &mut shown);
    w.reply(&errcode(40001));
    w.reply(&format!(
        r#"{{"access_token":"{WX_TOKEN}","expires_in":7200}}"#
    ));
    w.reply(&format!(
        r#"{{"access_token":"{WX_TOKEN}","expires_in":7200}}"#
    ));
    w.reply(&format!(r#"{{"errcode":40001,"errmsg":"{WX_TOKEN}"}}"#));
    let refused = w.bind(NOW + 8, &g, PhoneRequest::Code("pc2"));
    show_err(&refused.expect_err("refused twice"), &mut shown);
    let reused = w.refresh(NOW + 100, &r.refresh_token);
    show_err(&reused.expect_err("reuse"), &mut shown);

    // What went to WeChat is not printable with its secrets either.
    shown.push(format!("{:?}", w.wx.sent.borrow()));
    // Records read back print redacted.
    shown.push(format!("{:?}", w.session(&sid_of(&g.refresh_token))));
    shown.push(format!("{:?}", cached_wx_token(&w)));

    let phone_key = phone_key();
    for s in shown.iter().chain(json_shown.iter()) {
        assert!(!s.contains(&phone_key), "session_key leaked: {s}");
        assert!(!s.contains(GOOD_KEY), "session_key leaked: {s}");
        assert!(!s.contains(APP_SECRET), "AppSecret leaked: {s}");
        assert!(!s.contains(WX_TOKEN), "WeChat access token leaked: {s}");
    }
    for s in &json_shown {
        assert!(!s.contains("session_key"), "{s}");
    }
}
