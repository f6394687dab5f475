//! The service endpoints' session-key operations: `checksession`,
//! `resetusersessionkey`, the virtual-payment signature and open data,
//! over the in-memory authorities and a scripted WeChat. (Admission —
//! `SERVICE_TOKEN`, the limiter, the openid in the path — is `service`'s,
//! tested there.)

use std::cell::Cell;

use super::*;
use crate::authority::machine::MAX_FAILED_DECRYPTS;
use crate::flows::service_keys::{KeyReset, KeyValid};
use crate::ids::AppId;
use crate::secret::{login_state_signature, SessionKey};
use crate::testkit::YieldOnce;

/// A key WeChat hands out by reset or re-key in these tests (the key of
/// WeChat's own signature example).
const NEW_KEY: &str = "o0q0otL8aEzpcZL/FT9WsQ==";
const OK: &str = r#"{"errcode":0,"errmsg":"ok"}"#;
const INVALID_SIGNATURE: &str = r#"{"errcode":87009,"errmsg":"invalid signature"}"#;

fn user() -> OpenId {
    OpenId::new("oUser1")
}

/// The login-state signature of `data` with the key whose text is `key`.
fn sig(key: &str, data: &str) -> String {
    let key = SessionKey::from_base64(key).expect("16 bytes");
    login_state_signature(&key, data.as_bytes())
}

fn session_key_url(api: &str, token: &str, key: &str) -> String {
    format!(
        "{API}/wxa/{api}?access_token={token}&openid=oUser1&signature={}&sig_method=hmac_sha256",
        sig(key, "")
    )
}

fn reset_reply(openid: &str, key: &str) -> String {
    json!({"errcode": 0, "errmsg": "ok", "openid": openid, "session_key": key}).to_string()
}

fn login_with_key(w: &World, now: i64, key: &str) -> TokenResponse {
    w.login_at(
        now,
        &json!({"openid": "oUser1", "session_key": key}).to_string(),
    )
}

fn check(w: &World, now: i64) -> Result<bool, ApiError> {
    block_on(w.at(now).service_check(&user())).map(|v| v.valid)
}

fn reset(w: &World, now: i64) -> Result<bool, ApiError> {
    block_on(w.at(now).service_reset(&user())).map(|r| r.reset)
}

fn body(v: Value) -> serde_json::Map<String, Value> {
    match v {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn sign(w: &World, now: i64, data: &str) -> Result<String, ApiError> {
    let answer = block_on(
        w.at(now)
            .service_sign(&user(), &body(json!({ "data": data }))),
    )?;
    assert_eq!(answer.sig_method, "hmac_sha256");
    Ok(answer.signature)
}

fn decrypt_body(w: &World, now: i64, b: Value) -> Result<Value, ApiError> {
    block_on(w.at(now).service_decrypt(&user(), &body(b))).map(|d| d.data)
}

fn decrypt(w: &World, now: i64, case: &str) -> Result<Value, ApiError> {
    decrypt_body(
        w,
        now,
        json!({"encryptedData": vector(case, "encrypted_data"), "iv": vector(case, "iv")}),
    )
}

/// Whole AES blocks and a 16-byte iv that no key of these tests opens.
fn garbage(w: &World, now: i64) -> Result<Value, ApiError> {
    decrypt_body(
        w,
        now,
        json!({"encryptedData": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "iv": "AAAAAAAAAAAAAAAAAAAAAA=="}),
    )
}

#[test]
fn checksession_is_signed_with_the_newest_key_and_says_valid_or_not() {
    let w = World::new();
    login_with_key(&w, NOW, &phone_key());
    login_with_key(&w, NOW + 1, GOOD_KEY);
    w.reply(STABLE_T1);
    w.reply(OK);
    assert_eq!(check(&w, NOW + 2), Ok(true));
    assert_eq!(w.sent_len(), 4);
    assert_eq!(w.sent_method(3), Method::Get);
    assert_eq!(
        w.sent_url(3),
        session_key_url("checksession", "T1", GOOD_KEY)
    );
    assert!(w.wx.sent.borrow()[3].body.is_none());
    // WeChat no longer takes that key: not valid (the token is cached).
    w.reply(INVALID_SIGNATURE);
    assert_eq!(check(&w, NOW + 3), Ok(false));
    assert_eq!(w.sent_len(), 5);
    // Nothing was counted, revoked or replaced by a check.
    for s in w.authority.state(&user()).expect("state").sessions.values() {
        assert_eq!(s.failed_decrypts, 0);
        assert!(s.revoked_at.is_none());
        assert_eq!(s.key_replaced_at, None);
    }
}

#[test]
fn a_refused_token_is_fetched_again_once_and_the_call_retried() {
    for token_error in [40001, 40014, 42001] {
        let w = World::new();
        w.login_at(NOW, GOOD);
        w.reply(STABLE_T1);
        w.reply(&errcode(token_error));
        w.reply(STABLE_T1); // normal mode hands back the refused token
        w.reply(STABLE_T2); // force_refresh
        w.reply(OK);
        assert_eq!(check(&w, NOW + 1), Ok(true), "{token_error}");
        assert_eq!(w.sent_len(), 6, "{token_error}");
        assert_eq!(
            w.sent_url(2),
            session_key_url("checksession", "T1", GOOD_KEY)
        );
        assert_eq!(w.sent_body(4)["force_refresh"], true);
        assert_eq!(
            w.sent_url(5),
            session_key_url("checksession", "T2", GOOD_KEY)
        );
        // Refused again: WeChat's failure, after one refetch only.
        let w = World::new();
        w.login_at(NOW, GOOD);
        w.reply(STABLE_T1);
        w.reply(&errcode(token_error));
        w.reply(STABLE_T2);
        w.reply(&errcode(token_error));
        w.reply(OK);
        assert_eq!(
            reset(&w, NOW + 1),
            Err(ApiError::WechatUnavailable {
                errcode: Some(token_error)
            })
        );
        assert_eq!(w.sent_len(), 5, "{token_error}: one refetch, one retry");
    }
}

#[test]
fn other_wechat_failures_answer_as_every_wechat_call_does() {
    let cases = [
        (
            vec![ok(&errcode(-1)), ok(&errcode(-1))],
            ApiError::WechatUnavailable { errcode: Some(-1) },
        ),
        (
            vec![Err(crate::wechat::TransportError::Timeout)],
            ApiError::WechatUnavailable { errcode: None },
        ),
        (
            vec![ok("<html>busy</html>")],
            ApiError::WechatUnavailable { errcode: None },
        ),
        (
            vec![ok(&errcode(45011))],
            ApiError::RateLimited {
                errcode: Some(45011),
            },
        ),
    ];
    for (replies, want) in cases {
        let w = World::new();
        w.login_at(NOW, GOOD);
        w.reply(STABLE_T1);
        for r in replies {
            w.wx.push(r);
        }
        assert_eq!(check(&w, NOW + 1), Err(want.clone()));
        // A reset WeChat did not make stores nothing.
        let w = World::new();
        let r = w.login_at(NOW, GOOD);
        w.reply(STABLE_T1);
        w.reply(INVALID_SIGNATURE);
        assert_eq!(
            reset(&w, NOW + 1),
            Err(ApiError::WechatUnavailable {
                errcode: Some(87009)
            })
        );
        let s = w.session(&sid_of(&r.refresh_token)).expect("session");
        assert_eq!(s.session_key.to_base64(), GOOD_KEY);
    }
}

#[test]
fn a_reset_stores_the_new_key_and_later_signatures_use_it() {
    let w = World::new();
    let older = login_with_key(&w, NOW, &phone_key());
    let r = w.login_at(NOW + 1, GOOD);
    let sid = sid_of(&r.refresh_token);
    w.reply(STABLE_T1);
    w.reply(&reset_reply("oUser1", NEW_KEY));
    assert_eq!(reset(&w, NOW + 2), Ok(true));
    assert_eq!(
        w.sent_url(3),
        session_key_url("resetusersessionkey", "T1", GOOD_KEY)
    );
    let s = w.session(&sid).expect("session");
    assert_eq!(s.session_key.to_base64(), NEW_KEY);
    assert_eq!(s.key_replaced_at, Some(NOW + 2));
    // The older session's key is untouched.
    let o = w.session(&sid_of(&older.refresh_token)).expect("session");
    assert_eq!(o.session_key.to_base64(), phone_key());
    // The new key signs, and WeChat is asked with it.
    assert_eq!(sign(&w, NOW + 3, "x"), Ok(sig(NEW_KEY, "x")));
    w.reply(OK);
    assert_eq!(check(&w, NOW + 4), Ok(true));
    assert_eq!(
        w.sent_url(4),
        session_key_url("checksession", "T1", NEW_KEY)
    );
    // The session lives on: its tokens work, nothing was rotated.
    assert!(w
        .authenticate_err(NOW + 5, &r, SessionCheck::Authority)
        .is_none());
    assert_eq!(s.refresh_hash, hash_of(&r.refresh_token));
    // The answer carries no key.
    let answer = serde_json::to_string(&KeyValid { valid: true }).expect("json");
    assert_eq!(answer, r#"{"valid":true}"#);
    let answer = serde_json::to_string(&KeyReset { reset: true }).expect("json");
    assert_eq!(answer, r#"{"reset":true}"#);
}

#[test]
fn a_reset_answered_for_another_openid_stores_nothing() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    w.reply(STABLE_T1);
    w.reply(&reset_reply("oSomeoneElse", NEW_KEY));
    assert_eq!(
        reset(&w, NOW + 1),
        Err(ApiError::WechatUnavailable { errcode: None })
    );
    let s = w.session(&sid_of(&r.refresh_token)).expect("session");
    assert_eq!(s.session_key.to_base64(), GOOD_KEY);
    assert_eq!(sign(&w, NOW + 2, "x"), Ok(sig(GOOD_KEY, "x")));
    assert!(w.authority.state(&OpenId::new("oSomeoneElse")).is_none());
}

/// The session signed with ends (a logout) while WeChat resets its key:
/// the reset happened, and is answered so; nothing is revived.
#[test]
fn a_reset_whose_session_ended_meanwhile_still_answers_reset() {
    let mut ended_meanwhile = 0;
    for shift in 0..40 {
        let w = World::new();
        let r = w.login_at(NOW, GOOD);
        let sid = sid_of(&r.refresh_token);
        w.reply(STABLE_T1);
        w.reply(&reset_reply("oUser1", NEW_KEY));
        let edge = w.at(NOW + 1);
        let reset_sent = Cell::new(false);
        let (answer, ()) = block_on(async {
            futures_util::join!(
                async {
                    let a = edge.service_reset(&user()).await;
                    reset_sent.set(true);
                    a
                },
                async {
                    for _ in 0..shift {
                        YieldOnce(false).await;
                    }
                    edge.logout(Some(&bearer_of(&r))).await.expect("logout");
                }
            )
        });
        assert!(reset_sent.get());
        let s = w.session(&sid).expect("kept revoked");
        assert!(s.revoked_at.is_some(), "{shift}");
        match answer {
            Ok(KeyReset { reset: true }) => {
                if s.session_key.to_base64() == GOOD_KEY {
                    ended_meanwhile += 1;
                }
            }
            other => assert_eq!(other.err(), Some(ApiError::NoLiveSession), "{shift}"),
        }
    }
    assert!(ended_meanwhile > 0, "no shift ended the session meanwhile");
}

#[test]
fn the_signature_is_wechats_login_state_signature() {
    let w = World::new();
    login_with_key(&w, NOW, NEW_KEY);
    // WeChat's documentation example.
    assert_eq!(
        sign(&w, NOW + 1, r#"{"foo":"bar"}"#),
        Ok("654571f79995b2ce1e149e53c0a33dc39c0a74090db514261454e8dbe432aa0b".into())
    );
    // Computed independently (python3 hmac), with non-ASCII data.
    login_with_key(&w, NOW + 2, GOOD_KEY);
    let data = r#"{"offerId":"123","buyQuantity":1,"env":0,"currencyType":"CNY","productId":"p1","goodsPrice":100,"outTradeNo":"t-1","attach":"中文"}"#;
    assert_eq!(
        sign(&w, NOW + 3, data),
        Ok("3dd6543c4538ccaa24b19e7fea8dbfc78cd34aaa9631def3eb03646665cf96fb".into())
    );
    let answer = block_on(
        w.at(NOW + 3)
            .service_sign(&user(), &body(json!({"data": "d"}))),
    )
    .expect("signs");
    assert_eq!(
        serde_json::to_value(&answer).expect("json"),
        json!({"signature": sig(GOOD_KEY, "d"), "sig_method": "hmac_sha256"})
    );
    assert_eq!(w.sent_len(), 2, "signing asks WeChat nothing");
}

/// `data` must be a non-empty string: the empty string's signature is
/// what the session-key APIs take, and stays at the edge. Nothing reaches
/// an authority.
#[test]
fn sign_takes_only_a_non_empty_string() {
    let w = World::new();
    w.login_at(NOW, GOOD);
    let calls = w.authority.calls.get();
    for b in [
        json!({}),
        json!({"data": ""}),
        json!({"data": null}),
        json!({"data": 7}),
        json!({"data": {"a": 1}}),
        json!({"data": ["x"]}),
        json!({"other": "x"}),
    ] {
        let e = block_on(w.at(NOW).service_sign(&user(), &body(b.clone()))).err();
        assert!(matches!(e, Some(ApiError::InvalidRequest(_))), "{b}: {e:?}");
    }
    assert_eq!(w.authority.calls.get(), calls);
}

#[test]
fn decrypt_falls_back_from_a_stale_newest_key_to_an_older_live_sessions() {
    let w = World::new();
    // The data was sealed under the first session's key; the client
    // logged in again since, and WeChat's newest key is another.
    let first = login_with_key(&w, NOW, &phone_key());
    let second = w.login_at(NOW + 1, GOOD);
    let data = decrypt(&w, NOW + 2, "phone_ok").expect("opens");
    let plaintext: Value = serde_json::from_str(&vector("phone_ok", "plaintext")).expect("JSON");
    assert_eq!(data, plaintext, "the whole object, watermark included");
    assert_eq!(data["watermark"]["appid"], APPID);
    // Nothing counted against either session.
    for r in [&first, &second] {
        let s = w.session(&sid_of(&r.refresh_token)).expect("session");
        assert_eq!(s.failed_decrypts, 0);
    }
    // Decrypting binds nothing.
    assert!(w.user("oUser1").expect("user").phone.is_none());
    assert_eq!(w.sent_len(), 2, "decrypting asks WeChat nothing");
    // With the first session gone, no live key opens it.
    block_on(w.at(NOW + 3).logout(Some(&bearer_of(&first)))).expect("logout");
    assert_eq!(
        decrypt(&w, NOW + 4, "phone_ok"),
        Err(ApiError::DecryptFailed)
    );
}

/// WeChat's published sample opens through the generic path, for its
/// appid (its watermark is of 2016: a window that admits it).
#[test]
fn the_official_sample_decrypts() {
    let mut cfg = test_config();
    cfg.appid = AppId::new(vector("decrypt_userinfo", "appid"));
    cfg.phone_data_max_age = u64::MAX;
    let w = World::with(cfg);
    login_with_key(&w, NOW, &vector("decrypt_userinfo", "session_key"));
    let data = decrypt(&w, NOW + 1, "decrypt_userinfo").expect("opens");
    let plaintext: Value =
        serde_json::from_str(&vector("decrypt_userinfo", "plaintext")).expect("JSON");
    assert_eq!(data, plaintext);
    assert_eq!(data["nickName"], "Band");
}

#[test]
fn decrypt_refuses_as_the_phone_does_and_counts_the_same_failures() {
    let w = World::new();
    let older = w.login_at(NOW, GOOD);
    let newest = login_with_key(&w, NOW + 1, &phone_key());
    let failures = |r: &TokenResponse| {
        w.session(&sid_of(&r.refresh_token))
            .expect("session")
            .failed_decrypts
    };
    // Another app's data: a mismatch, not counted.
    assert_eq!(
        decrypt(&w, NOW + 2, "phone_foreign_appid"),
        Err(ApiError::WatermarkMismatch)
    );
    assert_eq!(failures(&newest), 0);
    // Malformed input: invalid_request, not counted, whatever the keys.
    for (b, why) in [
        (
            json!({"encryptedData": "not base64!", "iv": "AAAAAAAAAAAAAAAAAAAAAA=="}),
            "encryptedData",
        ),
        (
            json!({"encryptedData": "AAAAAAAAAAAAAAAAAAAAAA==", "iv": "AAAA"}),
            "iv",
        ),
        (
            json!({"encryptedData": "AAAA", "iv": "AAAAAAAAAAAAAAAAAAAAAA=="}),
            "encryptedData",
        ),
    ] {
        match decrypt_body(&w, NOW + 2, b.clone()) {
            Err(ApiError::InvalidRequest(m)) => assert!(m.contains(why), "{b}: {m}"),
            other => panic!("{b}: {other:?}"),
        }
    }
    for b in [
        json!({"iv": "AAAAAAAAAAAAAAAAAAAAAA=="}),
        json!({"encryptedData": "AAAA"}),
        json!({"encryptedData": 1, "iv": "AAAAAAAAAAAAAAAAAAAAAA=="}),
        json!({"encryptedData": "AAAA", "iv": "A".repeat(65)}),
    ] {
        let e = decrypt_body(&w, NOW + 2, b.clone()).err();
        assert!(matches!(e, Some(ApiError::InvalidRequest(_))), "{b}: {e:?}");
    }
    assert_eq!(failures(&newest), 0);
    // Stale data (past PHONE_DATA_MAX_AGE) counts, against the newest.
    let late = NOW + 601;
    match decrypt(&w, late, "phone_ok") {
        Err(ApiError::InvalidRequest(m)) => assert!(m.contains("PHONE_DATA_MAX_AGE"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!((failures(&newest), failures(&older)), (1, 0));
    // Garbage: decrypt_failed, the same answer with one key or two;
    // counted against the newest, whose fifth failure revokes it.
    for n in 2..=MAX_FAILED_DECRYPTS {
        assert_eq!(garbage(&w, late), Err(ApiError::DecryptFailed));
        assert_eq!(failures(&newest), n);
    }
    assert!(w.is_revoked(&sid_of(&newest.refresh_token)));
    assert_eq!(
        w.authenticate_err(late, &newest, SessionCheck::Authority),
        Some(ApiError::SessionRevoked)
    );
    assert!(w.replica(&sid_of(&newest.refresh_token)).is_none());
    // The older session is the newest live one now.
    assert_eq!(garbage(&w, late), Err(ApiError::DecryptFailed));
    assert_eq!(failures(&older), 1);
    for _ in 1..MAX_FAILED_DECRYPTS {
        assert_eq!(garbage(&w, late), Err(ApiError::DecryptFailed));
    }
    assert!(w.is_revoked(&sid_of(&older.refresh_token)));
    // No live session left.
    assert_eq!(garbage(&w, late), Err(ApiError::NoLiveSession));
}

/// A user with no live session is 404 for every operation, WeChat is
/// never asked, and a user with no record gets no storage (an openid
/// from a path must not make an authority keep anything).
#[test]
fn no_live_session_is_404_and_an_unknown_user_gets_no_storage() {
    let w = World::new();
    let nobody = OpenId::new("oNobody");
    let answers = [
        block_on(w.at(NOW).service_check(&nobody)).err(),
        block_on(w.at(NOW).service_reset(&nobody)).err(),
        block_on(
            w.at(NOW)
                .service_sign(&nobody, &body(json!({"data": "x"}))),
        )
        .err(),
        block_on(w.at(NOW).service_decrypt(
            &nobody,
            &body(json!({"encryptedData": vector("phone_ok", "encrypted_data"), "iv": vector("phone_ok", "iv")})),
        ))
        .err(),
    ];
    for a in answers {
        assert_eq!(a, Some(ApiError::NoLiveSession));
    }
    assert_eq!(ApiError::NoLiveSession.to_response().0, 404);
    assert!(w.authority.state(&nobody).is_none(), "storage was written");
    assert_eq!(w.sent_len(), 0, "WeChat was asked");
    assert!(w.store.data.borrow().is_empty(), "KV was written");
    // A user whose sessions all ended: 404 too, and nothing changes.
    let r = w.login_at(NOW, GOOD);
    block_on(w.at(NOW + 1).logout(Some(&bearer_of(&r)))).expect("logout");
    let before = serde_json::to_string(&w.authority.state(&user()).expect("state")).expect("json");
    assert_eq!(check(&w, NOW + 2), Err(ApiError::NoLiveSession));
    assert_eq!(reset(&w, NOW + 2), Err(ApiError::NoLiveSession));
    assert_eq!(sign(&w, NOW + 2, "x"), Err(ApiError::NoLiveSession));
    assert_eq!(garbage(&w, NOW + 2), Err(ApiError::NoLiveSession));
    let after = serde_json::to_string(&w.authority.state(&user()).expect("state")).expect("json");
    assert_eq!(before, after);
    assert_eq!(w.sent_len(), 1, "only the login asked WeChat");
}

/// No answer, error or log-visible value carries a session key.
#[test]
fn no_answer_carries_a_key() {
    let w = World::new();
    w.login_at(NOW, GOOD);
    w.reply(STABLE_T1);
    w.reply(&reset_reply("oUser1", NEW_KEY));
    let reset = block_on(w.at(NOW + 1).service_reset(&user())).expect("reset");
    let signed = block_on(
        w.at(NOW + 2)
            .service_sign(&user(), &body(json!({"data": "x"}))),
    )
    .expect("signs");
    let opened = garbage(&w, NOW + 3);
    let shown = format!(
        "{reset:?} {} {signed:?} {opened:?} {:?}",
        serde_json::to_string(&reset).expect("json"),
        w.wx.sent.borrow()
    );
    for key in [GOOD_KEY, NEW_KEY, "T1"] {
        assert!(!shown.contains(key), "{key} in {shown}");
    }
}
