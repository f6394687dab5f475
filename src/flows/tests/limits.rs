//! The worker's own rate limits: over a limit nothing downstream is asked.

use super::*;
use crate::limits::RETRY_AFTER;

#[test]
fn a_login_burst_past_the_limit_never_reaches_wechat() {
    let w = World::new();
    w.limits.set(Limit::Login, 3);
    for i in 0..3 {
        w.reply(GOOD);
        assert!(
            block_on(w.at(NOW + i).login("code", Some(IP))).is_ok(),
            "login {i}"
        );
    }
    let sent = w.sent_len();
    for i in 0..20 {
        assert_eq!(
            block_on(w.at(NOW + 3 + i).login(&format!("code{i}"), Some(IP))),
            Err(ApiError::RateLimited { errcode: None })
        );
    }
    assert_eq!(w.sent_len(), sent, "WeChat was not called past the limit");
    // Another address has its own budget.
    w.reply(GOOD);
    assert!(block_on(w.at(NOW + 30).login("code", Some("198.51.100.1"))).is_ok());
    // The answer says when to come back.
    let h = ApiError::RateLimited { errcode: None }.extra_headers();
    assert!(h.contains(&("Retry-After", "60".to_string())), "{h:?}");
}

#[test]
fn refresh_is_limited_per_address_before_the_authority_is_asked() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    w.limits.set(Limit::Refresh, 2);
    let calls = w.authority.calls.get();
    let mut token = r.refresh_token;
    for i in 0..2 {
        token = w
            .refresh(NOW + 1 + i, &token)
            .expect("within the limit")
            .refresh_token;
    }
    for i in 0..5 {
        assert_eq!(
            w.refresh(NOW + 10 + i, &token),
            Err(ApiError::RateLimited { errcode: None })
        );
    }
    assert_eq!(
        w.authority.calls.get(),
        calls + 2,
        "the authority saw 2 refreshes"
    );
    assert_eq!(w.limits.count(Limit::Refresh, IP), 7);
}

#[test]
fn phone_binding_is_limited_per_user() {
    let (w, r) = code_world();
    w.limits.set(Limit::Phone, 1);
    w.reply(STABLE_T1);
    w.reply(PHONE_REPLY);
    let b = w
        .bind(NOW + 1, &r, PhoneRequest::Code("c1"))
        .expect("first binding");
    let sent = w.sent_len();
    assert_eq!(
        w.bind(NOW + 2, &b, PhoneRequest::Code("c2")),
        Err(ApiError::RateLimited { errcode: None })
    );
    assert_eq!(w.sent_len(), sent, "WeChat was not called");
    assert_eq!(w.limits.count(Limit::Phone, "oUser1"), 2);
}

/// What a failing limiter (its binding throws) means, per endpoint: login
/// (and its code2Session ceiling) and the operator endpoints fail closed
/// with 503 and a Retry-After, before WeChat or the authority is asked;
/// refresh and phone binding fail open.
#[test]
fn a_failing_limiter_fails_login_and_operators_closed_refresh_and_phone_open() {
    let mut cfg = test_config();
    cfg.admin_token = Some(crate::secret::AdminToken::new(ADMIN));
    let w = World::with(cfg);
    let r = w.login_at(NOW, &phone_login_reply());
    w.limits.fail.set(true);
    let (sent, calls) = (w.sent_len(), w.authority.calls.get());
    w.reply(GOOD);
    let e = block_on(w.at(NOW + 1).login("code", Some(IP))).expect_err("closed");
    assert_eq!(e, ApiError::StoreUnavailable);
    assert_eq!(e.status(), 503);
    assert!(e.extra_headers().iter().any(|(n, _)| *n == "Retry-After"));
    let admin = format!("Bearer {ADMIN}");
    assert_eq!(
        block_on(w.at(NOW + 1).admin_user(Some(&admin), Some(IP), "oUser1")),
        Err(ApiError::StoreUnavailable)
    );
    assert_eq!(w.sent_len(), sent, "WeChat was not called");
    assert_eq!(w.authority.calls.get(), calls, "nor the authority");
    // Open: refresh and the phone go through.
    let r2 = w
        .refresh(NOW + 2, &r.refresh_token)
        .expect("refresh is open");
    assert!(w
        .bind(NOW + 3, &r2, PhoneRequest::Encrypted(encrypted("phone_ok")))
        .is_ok());
}

#[test]
fn code2session_has_a_ceiling_of_its_own_whatever_the_address() {
    let w = World::new();
    w.limits.set(Limit::Code2Session, 2);
    for i in 0..2 {
        w.reply(GOOD);
        let ip = format!("198.51.100.{i}");
        assert!(block_on(w.at(NOW + i).login("code", Some(&ip))).is_ok());
    }
    let sent = w.sent_len();
    let e = block_on(w.at(NOW + 5).login("code", Some("192.0.2.99"))).expect_err("ceiling");
    assert_eq!(e, ApiError::RateLimited { errcode: None });
    assert!(e
        .extra_headers()
        .contains(&("Retry-After", RETRY_AFTER.to_string())));
    assert_eq!(w.sent_len(), sent, "WeChat was not called past the ceiling");
    // Keyed by the appid, one key for the location.
    assert_eq!(w.limits.count(Limit::Code2Session, APPID), 3);
}

#[test]
fn ipv6_logins_count_per_slash_64() {
    let w = World::new();
    w.limits.set(Limit::Login, 2);
    for host in ["2001:db8:1:2::1", "2001:db8:1:2:ffff::9"] {
        w.reply(GOOD);
        assert!(block_on(w.at(NOW).login("code", Some(host))).is_ok());
    }
    let sent = w.sent_len();
    assert_eq!(
        block_on(
            w.at(NOW + 1)
                .login("code", Some("2001:db8:1:2:dead:beef:0:1"))
        ),
        Err(ApiError::RateLimited { errcode: None })
    );
    assert_eq!(w.sent_len(), sent);
    // The next /64 has its own budget.
    w.reply(GOOD);
    assert!(block_on(w.at(NOW + 2).login("code", Some("2001:db8:1:3::1"))).is_ok());
    assert_eq!(w.limits.count(Limit::Login, "2001:db8:1:2::/64"), 3);
}

#[test]
fn ipv6_refreshes_count_per_slash_64() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    w.limits.set(Limit::Refresh, 1);
    let r2 = block_on(w.at(NOW + 1).refresh(&r.refresh_token, Some("2001:db8::1"))).expect("first");
    assert_eq!(
        block_on(
            w.at(NOW + 2)
                .refresh(&r2.refresh_token, Some("2001:db8::2"))
        ),
        Err(ApiError::RateLimited { errcode: None })
    );
}

#[test]
fn operator_calls_are_limited_per_address_before_the_token_is_checked() {
    let mut cfg = test_config();
    cfg.admin_token = Some(crate::secret::AdminToken::new(ADMIN));
    let w = World::with(cfg);
    w.login_at(NOW, GOOD);
    w.limits.set(Limit::Admin, 3);
    let wrong = "Bearer not-the-admin-token-0123456789abcdef";
    for _ in 0..3 {
        assert_eq!(
            block_on(w.at(NOW).admin_user(Some(wrong), Some(IP), "oUser1")),
            Err(ApiError::InvalidToken)
        );
    }
    // Guessing spent the budget: even the right token waits now.
    let admin = format!("Bearer {ADMIN}");
    assert_eq!(
        block_on(w.at(NOW).admin_revoke(Some(&admin), Some(IP), "oUser1")),
        Err(ApiError::RateLimited { errcode: None })
    );
    assert!(block_on(
        w.at(NOW)
            .admin_user(Some(&admin), Some("192.0.2.1"), "oUser1")
    )
    .is_ok());
    // Without ADMIN_TOKEN the endpoints do not exist, and count nothing.
    let plain = World::new();
    assert_eq!(
        block_on(plain.at(NOW).admin_user(Some(&admin), Some(IP), "oUser1")),
        Err(ApiError::NotFound)
    );
    assert_eq!(plain.limits.count(Limit::Admin, IP), 0);
}
