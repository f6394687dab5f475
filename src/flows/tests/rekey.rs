//! `POST /auth/session/rekey`: the session's key replaced by the one a
//! fresh `wx.login` code brings, for the same WeChat user only.

use super::*;
use crate::secret::{login_state_signature, SessionKey};

fn object(v: Value) -> serde_json::Map<String, Value> {
    let Value::Object(map) = v else {
        unreachable!("an object")
    };
    map
}

fn body(code: &str) -> serde_json::Map<String, Value> {
    object(json!({ "code": code }))
}

fn rekey(w: &World, now: i64, r: &TokenResponse) -> Result<(), ApiError> {
    block_on(
        w.at(now)
            .rekey(Some(&bearer_of(r)), Some(IP), &body("0a1RekeyCode")),
    )
}

fn sign(w: &World, now: i64, data: &str) -> Result<String, ApiError> {
    let b = object(json!({ "data": data }));
    block_on(w.at(now).service_sign(&OpenId::new("oUser1"), &b)).map(|s| s.signature)
}

fn sig(key: &str, data: &str) -> String {
    login_state_signature(
        &SessionKey::from_base64(key).expect("16 bytes"),
        data.as_bytes(),
    )
}

/// The phone vectors' key, handed out by code2Session for `oUser1`.
fn rekey_reply(openid: &str) -> String {
    json!({"openid": openid, "session_key": phone_key()}).to_string()
}

#[test]
fn a_rekey_replaces_the_sessions_key_and_legacy_phone_data_then_opens() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let sid = sid_of(&r.refresh_token);
    // The old key does not open the phone data.
    assert_eq!(
        w.bind(NOW + 1, &r, PhoneRequest::Encrypted(encrypted("phone_ok"))),
        Err(ApiError::DecryptFailed)
    );
    w.reply(&rekey_reply("oUser1"));
    assert_eq!(rekey(&w, NOW + 2, &r), Ok(()));
    assert!(w
        .sent_url(1)
        .starts_with(&format!("{API}/sns/jscode2session?")));
    assert!(w.sent_url(1).contains("js_code=0a1RekeyCode"));
    let s = w.session(&sid).expect("session");
    assert_eq!(s.session_key.to_base64(), phone_key());
    assert_eq!(s.key_replaced_at, Some(NOW + 2));
    assert_eq!(s.failed_decrypts, 1, "a new key does not reset the count");
    assert_eq!(s.refresh_hash, hash_of(&r.refresh_token), "not rotated");
    // The same session, no new login.
    let u = w.user("oUser1").expect("user");
    assert_eq!(u.login_count, 1);
    assert_eq!(
        w.authority
            .state(&OpenId::new("oUser1"))
            .expect("state")
            .sessions
            .len(),
        1
    );
    // Legacy phone data sealed under the new key now binds.
    let b = w
        .bind(NOW + 3, &r, PhoneRequest::Encrypted(encrypted("phone_ok")))
        .expect("binds");
    assert_eq!(b.pure_phone_number, PURE);
    assert_eq!(sign(&w, NOW + 4, "x"), Ok(sig(&phone_key(), "x")));
}

#[test]
fn a_code_of_another_user_is_409_and_changes_nothing() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let sid = sid_of(&r.refresh_token);
    let before = serde_json::to_string(&w.authority.state(&OpenId::new("oUser1")).expect("state"))
        .expect("json");
    w.reply(&rekey_reply("oSomeoneElse"));
    let e = rekey(&w, NOW + 1, &r).expect_err("refused");
    assert_eq!(e, ApiError::OpenidMismatch);
    assert_eq!(e.to_response().0, 409);
    let after = serde_json::to_string(&w.authority.state(&OpenId::new("oUser1")).expect("state"))
        .expect("json");
    assert_eq!(before, after, "nothing changed");
    // The old key still signs; the other user got no record.
    assert_eq!(sign(&w, NOW + 2, "x"), Ok(sig(GOOD_KEY, "x")));
    assert_eq!(
        w.session(&sid).expect("session").session_key.to_base64(),
        GOOD_KEY
    );
    assert!(w.authority.state(&OpenId::new("oSomeoneElse")).is_none());
}

#[test]
fn a_rekey_needs_a_live_session_and_asks_wechat_nothing_otherwise() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let b = |code: &str| body(code);
    assert_eq!(
        block_on(w.at(NOW).rekey(None, Some(IP), &b("c"))),
        Err(ApiError::Unauthorized)
    );
    assert_eq!(
        block_on(w.at(NOW).rekey(Some("Bearer forged"), Some(IP), &b("c"))),
        Err(ApiError::InvalidToken)
    );
    assert_eq!(rekey(&w, NOW + 601, &r), Err(ApiError::TokenExpired));
    block_on(w.at(NOW + 1).logout(Some(&bearer_of(&r)))).expect("logout");
    assert_eq!(rekey(&w, NOW + 2, &r), Err(ApiError::SessionRevoked));
    // A missing or malformed code is refused before WeChat too.
    let r = w.login_at(NOW + 3, GOOD);
    for bad in [
        json!({}),
        json!({"code": ""}),
        json!({"code": 5}),
        json!({"code": "has space"}),
    ] {
        let Value::Object(map) = bad.clone() else {
            unreachable!("objects")
        };
        let e = block_on(w.at(NOW + 4).rekey(Some(&bearer_of(&r)), Some(IP), &map)).err();
        assert!(
            matches!(e, Some(ApiError::InvalidRequest(_))),
            "{bad}: {e:?}"
        );
    }
    assert_eq!(w.sent_len(), 2, "only the logins asked WeChat");
    // WeChat refusing the code is the login's answer.
    w.reply(&errcode(40029));
    assert_eq!(
        rekey(&w, NOW + 5, &r),
        Err(ApiError::InvalidCode { errcode: 40029 })
    );
}

#[test]
fn rekeys_count_against_the_login_limit_and_the_code2session_ceiling() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    w.limits.set(Limit::Login, 3);
    w.reply(&rekey_reply("oUser1"));
    w.reply(&rekey_reply("oUser1"));
    assert_eq!(rekey(&w, NOW + 1, &r), Ok(()));
    assert_eq!(rekey(&w, NOW + 2, &r), Ok(()));
    assert_eq!(
        rekey(&w, NOW + 3, &r),
        Err(ApiError::RateLimited { errcode: None })
    );
    assert_eq!(w.sent_len(), 3, "the refused rekey never reached WeChat");
    assert_eq!(w.limits.count(Limit::Login, IP), 4);

    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    w.limits.set(Limit::Code2Session, 1);
    assert_eq!(
        rekey(&w, NOW + 1, &r),
        Err(ApiError::RateLimited { errcode: None })
    );
    assert_eq!(w.sent_len(), 1);
    assert_eq!(w.limits.count(Limit::Code2Session, APPID), 2);
    // A failing login limiter refuses (closed), as for a login.
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    w.limits.fail.set(true);
    assert_eq!(rekey(&w, NOW + 1, &r), Err(ApiError::StoreUnavailable));
    assert_eq!(w.sent_len(), 1);
}
