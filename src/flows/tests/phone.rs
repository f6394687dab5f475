//! Phone binding: the legacy and code paths, the WeChat token cache, the allowlist.

use super::*;

#[test]
fn legacy_bind_decrypts_with_the_session_key_and_binds_the_phone() {
    assert_eq!(vector("phone_ok", "appid"), APPID);
    let w = World::new();
    let r = w.login_at(NOW, &phone_login_reply());
    let sid = sid_of(&r.refresh_token);
    let b = w
        .bind(NOW + 10, &r, PhoneRequest::Encrypted(encrypted("phone_ok")))
        .expect("binds");

    assert_eq!(b.pure_phone_number, PURE);
    assert_eq!(b.phone_number.as_deref(), Some(PURE));
    assert_eq!(b.country_code, "86");
    assert!(b.phone_bound);
    assert_eq!(b.token_type, "Bearer");
    assert_eq!(b.expires_in, 600);
    assert_eq!(b.openid, "oUser1");
    // The contract's answer, exactly: no refresh token (binding does not
    // rotate it; the client keeps the one it holds).
    let v = serde_json::to_value(&b).expect("JSON");
    let mut keys: Vec<&str> = v
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "access_token",
            "countryCode",
            "expires_in",
            "openid",
            "phoneNumber",
            "phone_bound",
            "purePhoneNumber",
            "token_type",
            "unionid",
        ]
    );
    assert_eq!(v["purePhoneNumber"], PURE);
    assert_eq!(v["phoneNumber"], PURE);
    assert_eq!(v["countryCode"], "86");
    assert_eq!(v["phone_bound"], true);
    assert_eq!(v["unionid"], "uUnion1");
    // The access token is issued now, not at the login's instant.
    let access = verify_access(&w.cfg.token_key, APPID, &b.access_token, NOW + 10 + 599)
        .expect("lives a full TTL from the binding");
    assert_eq!(access.expires_at, NOW + 10 + 600);

    let c = w.claims(&b.access_token, NOW + 10);
    assert_eq!(
        c.subject.phone.as_ref().map(Phone::pure_phone_number),
        Some(PURE)
    );
    assert_eq!(
        c.subject.phone.as_ref().map(Phone::country_code),
        Some("86")
    );
    assert_eq!(c.sid, sid);
    assert_eq!(w.sent_len(), 1, "the legacy path asks WeChat nothing");

    let u = w.user("oUser1").expect("user");
    assert_eq!(u.phone, Some(expected_phone()));
    assert_eq!(u.phone_bound_at, Some(NOW + 10));
    let s = w.session(&sid).expect("session");
    assert_eq!(s.phone, Some(expected_phone()));
    assert_eq!(s.refresh_hash, hash_of(&r.refresh_token), "not rotated");
    assert_eq!(s.prev_hash, None);
    // Binding neither extends the session nor reissues its pair.
    let ttl = i64::try_from(w.cfg.refresh_ttl).expect("small");
    assert_eq!((s.issued_at, s.expires_at), (NOW, NOW + ttl));
    assert_eq!(s.session_key.to_base64(), phone_key());

    // The login's refresh token still works, and its pair carries the
    // phone; a later login of the same user is bound.
    assert!(
        w.refresh(NOW + 20, &r.refresh_token)
            .expect("rotates")
            .phone_bound
    );
    let again = w.login_at(NOW + 100, GOOD);
    assert!(again.phone_bound);
    assert_eq!(
        w.claims(&again.access_token, NOW + 100)
            .subject
            .phone
            .as_ref()
            .map(Phone::pure_phone_number),
        Some(PURE)
    );
    let info = block_on(w.at(NOW + 100).session_info(Some(&bearer_of(&again)))).expect("info");
    assert!(info.phone_bound);
}

/// A lost answer: the client never saw what the bind returned, and keeps
/// the refresh token it had. Past the grace window that token still
/// refreshes (binding rotated nothing, so it is not reuse), and the pair
/// carries the phone.
#[test]
fn a_bind_whose_answer_is_lost_leaves_the_refresh_token_current() {
    for legacy in [true, false] {
        let (w, r) = if legacy {
            let w = World::new();
            let r = w.login_at(NOW, &phone_login_reply());
            (w, r)
        } else {
            code_bind_world()
        };
        let sid = sid_of(&r.refresh_token);
        let req = if legacy {
            PhoneRequest::Encrypted(encrypted("phone_ok"))
        } else {
            PhoneRequest::Code("pc")
        };
        let _lost = w.bind(NOW + 10, &r, req).expect("binds");
        let later = NOW + 10 + REFRESH_GRACE + 1;
        let r2 = w
            .refresh(later, &r.refresh_token)
            .unwrap_or_else(|e| panic!("legacy {legacy}: {e:?}"));
        assert!(r2.phone_bound, "legacy {legacy}");
        assert!(!w.is_revoked(&sid), "legacy {legacy}");
        let s = w.session(&sid).expect("session");
        assert!(s.retired.is_empty(), "legacy {legacy}: one rotation only");
        assert!(w.refresh(later + 1, &r2.refresh_token).is_ok());
    }
}

/// A double tap: two binds in a row (two phone codes, each single use),
/// both answered, and the login's refresh token is still the one to use.
#[test]
fn two_binds_then_the_logins_refresh_token_refreshes() {
    let (w, r) = code_bind_world();
    w.reply(PHONE_REPLY);
    let first = w
        .bind(NOW + 1, &r, PhoneRequest::Code("c1"))
        .expect("first");
    let second = w
        .bind(NOW + 1, &r, PhoneRequest::Code("c2"))
        .expect("second");
    assert!(first.phone_bound && second.phone_bound);
    // Either answer's access token is good.
    for b in [&first, &second] {
        assert!(block_on(w.at(NOW + 2).session_info(Some(&bearer_of(b)))).is_ok());
    }
    let sid = sid_of(&r.refresh_token);
    let r2 = w
        .refresh(NOW + 1 + REFRESH_GRACE + 1, &r.refresh_token)
        .expect("not reuse");
    assert!(r2.phone_bound);
    assert!(!w.is_revoked(&sid));
}

/// A world logged in with [`GOOD`] and WeChat scripted for one code bind
/// (the stable_token, then the phone).
fn code_bind_world() -> (World, TokenResponse) {
    let (w, r) = code_world();
    w.reply(STABLE_T1);
    w.reply(PHONE_REPLY);
    (w, r)
}

#[test]
fn legacy_data_under_a_stale_session_key_does_not_decrypt() {
    let w = World::new();
    let old = w.login_at(NOW, &phone_login_reply());
    let new = w.login_at(NOW + 5, GOOD); // wx.login again: another session_key
    assert_ne!(GOOD_KEY, phone_key());
    let e = w
        .bind(
            NOW + 10,
            &new,
            PhoneRequest::Encrypted(encrypted("phone_ok")),
        )
        .expect_err("stale data");
    assert_eq!(e, ApiError::DecryptFailed);
    assert_eq!(e.status(), 400);
    assert!(w.user("oUser1").expect("user").phone.is_none());
    assert!(w
        .session(&sid_of(&new.refresh_token))
        .expect("session")
        .phone
        .is_none());
    // The session that owns the key still can.
    assert!(w
        .bind(
            NOW + 11,
            &old,
            PhoneRequest::Encrypted(encrypted("phone_ok"))
        )
        .is_ok());
}

/// A captured `encryptedData`/`iv` replayed after `PHONE_DATA_MAX_AGE`:
/// refused with a message that says so, nothing bound, and each try counts
/// toward the five-failure lockout.
#[test]
fn legacy_data_older_than_the_window_is_refused_and_counts_as_a_failure() {
    let w = World::new();
    // The vectors are watermarked at NOW; this session logs in later.
    let late = NOW + 601;
    let r = w.login_at(late, &phone_login_reply());
    let sid = sid_of(&r.refresh_token);
    for i in 0..4 {
        let e = w
            .bind(
                late + 1 + i,
                &r,
                PhoneRequest::Encrypted(encrypted("phone_ok")),
            )
            .expect_err("stale");
        assert_eq!(e.code(), "invalid_request", "{i}");
        assert_eq!(e.status(), 400);
        assert!(
            e.message().contains("PHONE_DATA_MAX_AGE"),
            "{}",
            e.message()
        );
        assert!(!w.is_revoked(&sid), "{i}");
    }
    assert!(w.user("oUser1").expect("user").phone.is_none());
    // The fifth failed attempt revokes the session.
    assert!(w
        .bind(late + 9, &r, PhoneRequest::Encrypted(encrypted("phone_ok")))
        .is_err());
    assert!(w.is_revoked(&sid));
}

#[test]
fn the_phone_data_window_is_configurable() {
    let mut cfg = test_config();
    cfg.phone_data_max_age = 60;
    let w = World::with(cfg);
    let r = w.login_at(NOW + 30, &phone_login_reply());
    assert!(w
        .bind(NOW + 60, &r, PhoneRequest::Encrypted(encrypted("phone_ok")))
        .is_ok());
    let r = w.login_at(NOW + 61, &phone_login_reply());
    assert_eq!(
        w.bind(NOW + 61, &r, PhoneRequest::Encrypted(encrypted("phone_ok")))
            .expect_err("61 s old")
            .code(),
        "invalid_request"
    );
}

#[test]
fn legacy_data_of_another_app_is_a_watermark_mismatch() {
    let w = World::new();
    let r = w.login_at(NOW, &phone_login_reply());
    assert_eq!(
        w.bind(
            NOW + 1,
            &r,
            PhoneRequest::Encrypted(encrypted("phone_foreign_appid"))
        ),
        Err(ApiError::WatermarkMismatch)
    );
    assert!(w.user("oUser1").expect("user").phone.is_none());
    let s = w.session(&sid_of(&r.refresh_token)).expect("session");
    assert!(s.phone.is_none());
    assert_eq!(s.refresh_hash, hash_of(&r.refresh_token), "nothing rotated");
}

#[test]
fn legacy_data_survives_plus_turned_into_space() {
    let w = World::new();
    let r = w.login_at(NOW, &phone_login_reply());
    let mut enc = encrypted("phone_ok");
    assert!(
        enc.encrypted_data.contains('+'),
        "the vector must exercise this"
    );
    enc.encrypted_data = enc.encrypted_data.replace('+', " ");
    let b = w
        .bind(NOW + 1, &r, PhoneRequest::Encrypted(enc))
        .expect("binds");
    assert_eq!(b.pure_phone_number, PURE);
}

#[test]
fn malformed_legacy_fields_are_invalid_requests() {
    let w = World::new();
    let r = w.login_at(NOW, &phone_login_reply());
    let good = encrypted("phone_ok");
    for iv in ["AAAA", "not base64!", "", "AAECAwQFBgcICQoLDA0ODxAR"] {
        let req = EncryptedPhone {
            iv: iv.into(),
            ..good.clone()
        };
        assert_eq!(
            w.bind(NOW + 1, &r, PhoneRequest::Encrypted(req)),
            Err(ApiError::InvalidRequest(
                "iv must be the base64 of 16 bytes"
            )),
            "iv {iv:?}"
        );
    }
    for data in ["", "AAAA", "%%%"] {
        let req = EncryptedPhone {
            encrypted_data: data.into(),
            ..good.clone()
        };
        assert_eq!(
            w.bind(NOW + 1, &r, PhoneRequest::Encrypted(req)),
            Err(ApiError::InvalidRequest(
                "encryptedData must be base64 of whole AES blocks"
            )),
            "data {data:?}"
        );
    }
    assert!(w
        .session(&sid_of(&r.refresh_token))
        .expect("session")
        .phone
        .is_none());
}
#[test]
fn code_bind_uses_stable_token_then_getuserphonenumber() {
    let (w, r) = code_world();
    w.reply(STABLE_T1);
    w.reply(PHONE_REPLY);
    let b = w
        .bind(NOW + 10, &r, PhoneRequest::Code("phoneCode1"))
        .expect("binds");
    assert_eq!(b.pure_phone_number, PURE);
    assert_eq!(b.phone_number.as_deref(), Some(PURE));
    assert_eq!(b.country_code, "86");
    assert!(b.phone_bound);
    assert_eq!(
        w.claims(&b.access_token, NOW + 10)
            .subject
            .phone
            .as_ref()
            .map(Phone::pure_phone_number),
        Some(PURE)
    );

    assert_eq!(w.sent_len(), 3);
    assert_eq!(w.sent_method(1), Method::Post);
    assert_eq!(w.sent_url(1), format!("{API}/cgi-bin/stable_token"));
    let body = w.sent_body(1);
    assert_eq!(body["grant_type"], "client_credential");
    assert_eq!(body["appid"], APPID);
    assert_eq!(body["force_refresh"], false);
    assert_eq!(w.sent_method(2), Method::Post);
    assert_eq!(
        w.sent_url(2),
        format!("{API}/wxa/business/getuserphonenumber?access_token=T1")
    );
    assert_eq!(
        w.sent_body(2),
        json!({"code": "phoneCode1", "openid": "oUser1"})
    );

    let cached = cached_wx_token(&w).expect("token cached in KV");
    assert_eq!(cached.access_token.secret(), "T1");
    assert_eq!(cached.expires_at, NOW + 10 + 7200);
    assert_eq!(
        w.user("oUser1").expect("user").phone,
        Some(expected_phone())
    );
    assert_eq!(
        w.session(&sid_of(&r.refresh_token)).expect("session").phone,
        Some(expected_phone())
    );
}

#[test]
fn the_wechat_access_token_is_cached_while_it_lives() {
    let mut cfg = test_config();
    cfg.access_ttl = 86_400; // one access token for the whole test
    let w = World::with(cfg);
    let r = w.login_at(NOW, GOOD);
    w.reply(STABLE_T1);
    w.reply(PHONE_REPLY);
    w.bind(NOW, &r, PhoneRequest::Code("c1"))
        .expect("first bind");
    assert_eq!(w.sent_len(), 3);

    // Still more than WX_TOKEN_EARLY left: no stable_token call.
    w.reply(PHONE_REPLY);
    w.bind(
        NOW + 7200 - WX_TOKEN_EARLY - 1,
        &r,
        PhoneRequest::Code("c2"),
    )
    .expect("cached");
    assert_eq!(w.sent_len(), 4);
    assert_eq!(
        w.sent_url(3),
        format!("{API}/wxa/business/getuserphonenumber?access_token=T1")
    );

    // Within WX_TOKEN_EARLY of its end: fetched again.
    let late = NOW + 7200 - WX_TOKEN_EARLY + 1;
    w.reply(STABLE_T2);
    w.reply(PHONE_REPLY);
    w.bind(late, &r, PhoneRequest::Code("c3"))
        .expect("refetched");
    assert_eq!(w.sent_len(), 6);
    assert_eq!(w.sent_url(4), format!("{API}/cgi-bin/stable_token"));
    assert_eq!(w.sent_body(4)["force_refresh"], false);
    assert_eq!(
        w.sent_url(5),
        format!("{API}/wxa/business/getuserphonenumber?access_token=T2")
    );
    let cached = cached_wx_token(&w).expect("cached");
    assert_eq!(cached.access_token.secret(), "T2");
    assert_eq!(cached.expires_at, late + 7200);
}

#[test]
fn another_isolate_takes_the_wechat_token_from_kv() {
    let (w, r) = code_world();
    w.reply(STABLE_T1);
    w.reply(PHONE_REPLY);
    w.bind(NOW + 1, &r, PhoneRequest::Code("c1"))
        .expect("first bind");
    assert_eq!(w.sent_len(), 3);

    let other = IsolateState::default();
    let edge = Edge {
        isolate: &other,
        ..w.at(NOW + 2)
    };
    w.reply(PHONE_REPLY);
    block_on(edge.bind_phone(Some(&bearer_of(&r)), PhoneRequest::Code("c2"))).expect("binds");
    assert_eq!(w.sent_len(), 4, "no stable_token call");
    assert_eq!(
        w.sent_url(3),
        format!("{API}/wxa/business/getuserphonenumber?access_token=T1")
    );

    // A third isolate, with KV's copy gone, fetches it.
    block_on(w.store.delete(WX_TOKEN_KEY)).expect("delete");
    let third = IsolateState::default();
    let edge = Edge {
        isolate: &third,
        ..w.at(NOW + 3)
    };
    w.reply(STABLE_T2);
    w.reply(PHONE_REPLY);
    block_on(edge.bind_phone(Some(&bearer_of(&r)), PhoneRequest::Code("c3"))).expect("binds");
    assert_eq!(w.sent_len(), 6);
    assert_eq!(w.sent_url(4), format!("{API}/cgi-bin/stable_token"));
    assert_eq!(
        w.sent_url(5),
        format!("{API}/wxa/business/getuserphonenumber?access_token=T2")
    );
}

#[test]
fn a_refused_wechat_token_is_refetched_with_force_when_needed() {
    for token_error in [40001, 40014, 42001] {
        let (w, r) = code_world();
        w.reply(STABLE_T1);
        w.reply(&errcode(token_error));
        w.reply(STABLE_T1); // normal mode hands back the refused token
        w.reply(STABLE_T2); // force_refresh
        w.reply(PHONE_REPLY);
        let b = w
            .bind(NOW + 1, &r, PhoneRequest::Code("pc"))
            .expect("retried");
        assert!(b.phone_bound);
        assert_eq!(w.sent_len(), 6, "errcode {token_error}");
        assert_eq!(w.sent_url(1), format!("{API}/cgi-bin/stable_token"));
        assert_eq!(w.sent_body(1)["force_refresh"], false);
        assert_eq!(
            w.sent_url(2),
            format!("{API}/wxa/business/getuserphonenumber?access_token=T1")
        );
        assert_eq!(w.sent_url(3), format!("{API}/cgi-bin/stable_token"));
        assert_eq!(w.sent_body(3)["force_refresh"], false);
        assert_eq!(w.sent_url(4), format!("{API}/cgi-bin/stable_token"));
        assert_eq!(w.sent_body(4)["force_refresh"], true);
        assert_eq!(
            w.sent_url(5),
            format!("{API}/wxa/business/getuserphonenumber?access_token=T2")
        );
        assert_eq!(w.sent_body(5), json!({"code": "pc", "openid": "oUser1"}));
        assert_eq!(
            cached_wx_token(&w).expect("cached").access_token.secret(),
            "T2"
        );
    }
}

#[test]
fn a_refused_wechat_token_replaced_in_normal_mode_needs_no_force() {
    let (w, r) = code_world();
    w.reply(STABLE_T1);
    w.reply(&errcode(40001));
    w.reply(STABLE_T2);
    w.reply(PHONE_REPLY);
    w.bind(NOW + 1, &r, PhoneRequest::Code("pc"))
        .expect("retried");
    assert_eq!(w.sent_len(), 5);
    assert_eq!(w.sent_body(3)["force_refresh"], false);
    assert_eq!(
        w.sent_url(4),
        format!("{API}/wxa/business/getuserphonenumber?access_token=T2")
    );
}

#[test]
fn a_token_error_is_retried_only_once() {
    let (w, r) = code_world();
    w.reply(STABLE_T1);
    w.reply(&errcode(40001));
    w.reply(STABLE_T2);
    w.reply(&errcode(40001));
    w.reply(PHONE_REPLY);
    assert_eq!(
        w.bind(NOW + 1, &r, PhoneRequest::Code("pc")),
        Err(ApiError::WechatUnavailable {
            errcode: Some(40001)
        })
    );
    assert_eq!(w.sent_len(), 5);
    assert!(w.user("oUser1").expect("user").phone.is_none());
}

#[test]
fn an_invalid_phone_code_is_invalid_code_and_binds_nothing() {
    let (w, r) = code_world();
    w.reply(STABLE_T1);
    w.reply(&errcode(40029));
    w.reply(PHONE_REPLY);
    let e = w
        .bind(NOW + 1, &r, PhoneRequest::Code("used"))
        .expect_err("refused");
    // Its own variant (a phone code, not a wx.login code), the contract's
    // 400 invalid_code all the same.
    assert_eq!(e, ApiError::InvalidPhoneCode { errcode: 40029 });
    assert_eq!(e.code(), "invalid_code");
    assert_eq!(e.status(), 400);
    assert_eq!(e.wechat_errcode(), Some(40029));
    assert_eq!(w.sent_len(), 3, "no retry of 40029");
    assert!(w.user("oUser1").expect("user").phone.is_none());
    let s = w.session(&sid_of(&r.refresh_token)).expect("session");
    assert!(s.phone.is_none());
    assert_eq!(s.refresh_hash, hash_of(&r.refresh_token));
}

#[test]
fn phone_info_of_another_app_is_a_watermark_mismatch() {
    let (w, r) = code_world();
    w.reply(STABLE_T1);
    w.reply(PHONE_REPLY_FOREIGN);
    assert_eq!(
        w.bind(NOW + 1, &r, PhoneRequest::Code("pc")),
        Err(ApiError::WatermarkMismatch)
    );
    assert!(w.user("oUser1").expect("user").phone.is_none());
}

#[test]
fn a_malformed_phone_code_never_reaches_wechat() {
    let (w, r) = code_world();
    w.reply(STABLE_T1);
    for code in ["", "has space", "中文"] {
        let e = w
            .bind(NOW + 1, &r, PhoneRequest::Code(code))
            .expect_err("malformed");
        assert!(matches!(e, ApiError::InvalidRequest(_)), "{code:?}: {e:?}");
    }
    assert_eq!(w.sent_len(), 1, "only the login");
}

#[test]
fn stable_token_refusing_our_credentials_is_a_misconfiguration() {
    let (w, r) = code_world();
    w.reply(&errcode(40125));
    assert_eq!(
        w.bind(NOW + 1, &r, PhoneRequest::Code("pc")),
        Err(ApiError::ServerMisconfigured {
            variable: "WX_APPSECRET",
            problem: "was refused by WeChat (errcode 40125)",
        })
    );
    assert!(cached_wx_token(&w).is_none());
}

fn allowlist_world() -> (World, TokenResponse) {
    let mut cfg = test_config();
    cfg.phone_allowlist = true;
    let w = World::with(cfg);
    let r = w.login_at(NOW, &phone_login_reply());
    (w, r)
}

#[test]
fn an_unlisted_phone_is_not_an_internal_user_and_nothing_is_bound() {
    let (w, r) = allowlist_world();
    let e = w
        .bind(NOW + 1, &r, PhoneRequest::Encrypted(encrypted("phone_ok")))
        .expect_err("not listed");
    assert_eq!(e, ApiError::NotInternalUser);
    assert_eq!(e.status(), 403);
    let u = w.user("oUser1").expect("user");
    assert!(u.phone.is_none() && u.phone_bound_at.is_none());
    let s = w.session(&sid_of(&r.refresh_token)).expect("session");
    assert!(s.phone.is_none());
    assert_eq!(
        s.refresh_hash,
        hash_of(&r.refresh_token),
        "pair not rotated"
    );
    assert!(
        !w.refresh(NOW + 2, &r.refresh_token)
            .expect("still current")
            .phone_bound
    );
}

#[test]
fn a_listed_phone_binds() {
    let (w, r) = allowlist_world();
    w.allow(PURE);
    let b = w
        .bind(NOW + 1, &r, PhoneRequest::Encrypted(encrypted("phone_ok")))
        .expect("listed");
    assert!(b.phone_bound);
    assert_eq!(
        w.user("oUser1").expect("user").phone,
        Some(expected_phone())
    );
    // Listed users keep their phone on later logins.
    assert!(w.login_at(NOW + 10, GOOD).phone_bound);
}

#[test]
fn a_phone_taken_off_the_list_is_dropped_from_new_sessions_and_refreshes() {
    let (w, r) = allowlist_world();
    w.allow(PURE);
    w.bind(NOW + 1, &r, PhoneRequest::Encrypted(encrypted("phone_ok")))
        .expect("listed");
    block_on(w.store.delete(&allow_key(&expected_phone()))).expect("delete");

    let again = w.login_at(NOW + 10, GOOD);
    assert!(!again.phone_bound);
    assert_eq!(w.claims(&again.access_token, NOW + 10).subject.phone, None);
    assert!(w
        .session(&sid_of(&again.refresh_token))
        .expect("session")
        .phone
        .is_none());
    // The user record still remembers the number (re-listing restores it).
    assert_eq!(
        w.user("oUser1").expect("user").phone,
        Some(expected_phone())
    );

    let refreshed = w.refresh(NOW + 20, &r.refresh_token).expect("rotates");
    assert!(!refreshed.phone_bound);
    assert_eq!(
        w.claims(&refreshed.access_token, NOW + 20).subject.phone,
        None
    );
    assert!(w
        .session(&sid_of(&r.refresh_token))
        .expect("session")
        .phone
        .is_none());

    w.allow(PURE);
    assert!(w.login_at(NOW + 30, GOOD).phone_bound);
}

#[test]
fn repeated_binding_rotates_nothing() {
    let w = World::new();
    let r = w.login_at(NOW, &phone_login_reply());
    for i in 0..(RETIRED_KEPT as i64 + 4) {
        w.bind(NOW + i, &r, PhoneRequest::Encrypted(encrypted("phone_ok")))
            .expect("the same access token binds again");
    }
    let s = w.session(&sid_of(&r.refresh_token)).expect("session");
    assert_eq!(s.refresh_hash, hash_of(&r.refresh_token));
    assert_eq!((s.prev_hash.as_ref(), s.retired.len()), (None, 0));
    assert!(w.refresh(NOW + 100, &r.refresh_token).is_ok());
}

#[test]
fn a_phone_bound_on_one_device_appears_in_the_other_devices_later_tokens() {
    let w = World::new();
    let phone_device = w.login_at(NOW, &phone_login_reply());
    let other_device = w.login_at(NOW + 1, GOOD);
    w.bind(
        NOW + 2,
        &phone_device,
        PhoneRequest::Encrypted(encrypted("phone_ok")),
    )
    .expect("binds");
    // The contract: "The phone is bound to the user record and appears in
    // later tokens and identity headers."
    let later = w
        .refresh(NOW + 10, &other_device.refresh_token)
        .expect("rotates");
    assert!(later.phone_bound);
    assert_eq!(
        w.claims(&later.access_token, NOW + 10)
            .subject
            .phone
            .as_ref()
            .map(Phone::pure_phone_number),
        Some(PURE)
    );
}
