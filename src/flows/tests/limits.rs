//! The worker's own rate limits: over a limit nothing downstream is asked.

use super::*;

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

#[test]
fn a_failing_limiter_lets_requests_through() {
    let w = World::new();
    w.limits.fail.set(true);
    w.reply(GOOD);
    assert!(block_on(w.at(NOW).login("code", Some(IP))).is_ok());
}
