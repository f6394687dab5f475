//! Admission to the service endpoints (`/auth/service/*`), end to end as
//! the shell hands a request over: 404 without `SERVICE_TOKEN`, whatever
//! the method or bearer; the limit; the bearer.

use super::*;
use crate::flows::serve::{Reply, Request, Served};
use crate::http::body::BodyError;
use crate::http::response::{Payload, Relayed};
use crate::http::router::route;
use crate::testkit::config::{load, vars};

pub(super) const SERVICE: &str = "svc-service-token-0123456789abcdefghijKLMN";
pub(super) const SERVICE_OLD: &str = "old-service-token-0123456789abcdefghijKLMN";
pub(super) const EDGE: &str = "https://edge.example";

/// A deployment with `SERVICE_TOKEN`, `ADMIN_TOKEN` and `extra`.
pub(super) fn service_world_with(extra: &[(&'static str, &str)]) -> World {
    let mut v = vars();
    v.insert("SERVICE_TOKEN", SERVICE.into());
    v.insert("ADMIN_TOKEN", ADMIN.into());
    for (k, val) in extra {
        v.insert(k, (*val).to_string());
    }
    World::with(load(&v).expect("valid"))
}

pub(super) fn service_world() -> World {
    service_world_with(&[])
}

pub(super) fn service_bearer() -> String {
    format!("Bearer {SERVICE}")
}

/// A request as the shell reads it: `url` absolute, `body` as the shell's
/// body reader left it.
pub(super) fn call(
    w: &World,
    method: &str,
    url: &str,
    authorization: Option<&str>,
    content_type: Option<&str>,
    body: Result<&[u8], BodyError>,
) -> Served {
    let path = crate::http::path::path_of(url).expect("absolute").0;
    block_on(w.at(NOW).serve(Request {
        route: route(method, path),
        method,
        url,
        path,
        authorization,
        client_ip: Some(IP),
        content_type,
        body,
    }))
}

pub(super) fn relayed(served: Served) -> Relayed {
    match served.reply {
        Ok(Reply::Own(Payload::Relayed(r))) => r,
        other => panic!("expected WeChat's answer, got {other:?}"),
    }
}

pub(super) fn error(served: Served) -> ApiError {
    match served.reply {
        Err(e) => e,
        Ok(r) => panic!("expected an error, got {r:?}"),
    }
}

/// Every service endpoint, with the method it takes.
fn endpoints() -> Vec<(&'static str, String)> {
    vec![
        (
            "POST",
            format!("{EDGE}/auth/service/users/oUser1/session-key/check"),
        ),
        (
            "POST",
            format!("{EDGE}/auth/service/users/oUser1/session-key/reset"),
        ),
        ("POST", format!("{EDGE}/auth/service/users/oUser1/sign")),
        ("POST", format!("{EDGE}/auth/service/users/oUser1/decrypt")),
        ("GET", format!("{EDGE}/auth/service/wechat/wxa/x")),
        ("POST", format!("{EDGE}/auth/service/wechat/wxa/x?a=1")),
    ]
}

const BODY: &[u8] = br#"{"data":"x","encryptedData":"e","iv":"i"}"#;

#[test]
fn without_service_token_every_service_path_and_method_is_404() {
    let w = World::new();
    w.login_at(NOW, GOOD);
    let sent = w.sent_len();
    let bearers = [
        None,
        Some(format!("Bearer {SERVICE}")),
        Some(format!("Bearer {ADMIN}")),
    ];
    let mut urls: Vec<String> = endpoints().into_iter().map(|(_, u)| u).collect();
    urls.extend(
        [
            "/auth/service/",
            "/auth/service/users/oUser1",
            "/auth/service/users/oUser1/session-key",
            "/auth/service/wechat",
            "/auth/service/wechat/",
            "/auth/service/wechat/cgi-bin/token",
            "/auth/service/anything",
        ]
        .map(|p| format!("{EDGE}{p}")),
    );
    // The limiter is never asked either.
    w.limits.fail.set(true);
    for url in &urls {
        for method in [
            "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "track",
        ] {
            for bearer in &bearers {
                let s = call(&w, method, url, bearer.as_deref(), None, Ok(BODY));
                assert_eq!(s.user, None);
                assert_eq!(error(s), ApiError::NotFound, "{method} {url} {bearer:?}");
            }
        }
    }
    assert_eq!(w.sent_len(), sent, "WeChat was never called");
}

#[test]
fn a_missing_or_wrong_bearer_is_refused_before_anything_else() {
    let w = service_world();
    let user = w.login_at(NOW, GOOD);
    let sent = w.sent_len();
    let calls = w.authority.calls.get();
    let access = bearer_of(&user);
    let near_miss = format!("Bearer {}x", &SERVICE[..SERVICE.len() - 1]);
    let admin = format!("Bearer {ADMIN}");
    let raw = SERVICE.to_string();
    let basic = format!("Basic {SERVICE}");
    for (header, want) in [
        (None, ApiError::Unauthorized),
        (Some(raw.as_str()), ApiError::Unauthorized),
        (Some(basic.as_str()), ApiError::Unauthorized),
        (Some("Bearer "), ApiError::Unauthorized),
        (Some(near_miss.as_str()), ApiError::InvalidToken),
        (Some("Bearer x"), ApiError::InvalidToken),
        (Some(access.as_str()), ApiError::InvalidToken),
        (Some(admin.as_str()), ApiError::InvalidToken),
    ] {
        for (method, url) in endpoints() {
            let s = call(&w, method, &url, header, None, Ok(BODY));
            assert_eq!(s.user, None, "{header:?}");
            assert_eq!(error(s), want.clone(), "{method} {url} {header:?}");
        }
        // Even a malformed openid, a bad body or a refused path: 401 first.
        for (url, body) in [
            ("/auth/service/users/o%2F1/sign", Ok(&b"[]"[..])),
            ("/auth/service/users/oUser1/sign", Err(BodyError::TooLarge)),
            ("/auth/service/wechat/cgi-bin/token", Ok(&b""[..])),
            ("/auth/service/wechat/wxa/x", Err(BodyError::TooLarge)),
        ] {
            let s = call(&w, "POST", &format!("{EDGE}{url}"), header, None, body);
            assert_eq!(error(s), want.clone(), "{url} {header:?}");
        }
    }
    assert_eq!(w.sent_len(), sent, "WeChat was never called");
    assert_eq!(w.authority.calls.get(), calls, "no authority was asked");
}

#[test]
fn the_service_token_and_its_predecessor_are_admitted_nothing_else() {
    let w = service_world_with(&[("SERVICE_TOKEN_PREVIOUS", SERVICE_OLD)]);
    for token in [SERVICE, SERVICE_OLD] {
        let auth = format!("Bearer {token}");
        assert_eq!(
            block_on(w.at(NOW).service_target(Some(&auth), Some(IP), "oUser1")),
            Ok(OpenId::new("oUser1")),
            "{token}"
        );
        // The log names the user only once the caller is admitted.
        assert_eq!(
            w.at(NOW).service_subject(Some(&auth), "oUser1"),
            Some(OpenId::new("oUser1"))
        );
        // ...and a service token is no operator token.
        assert_eq!(
            block_on(w.at(NOW).admin_user(Some(&auth), Some(IP), "oUser1")).map(|_| ()),
            Err(ApiError::InvalidToken)
        );
    }
    let wrong = format!("Bearer {ADMIN}");
    assert_eq!(w.at(NOW).service_subject(Some(&wrong), "oUser1"), None);
    assert_eq!(w.at(NOW).service_subject(None, "oUser1"), None);
    let auth = service_bearer();
    assert_eq!(w.at(NOW).service_subject(Some(&auth), "o/../x"), None);
    // Without SERVICE_TOKEN nobody is named, whatever is presented.
    let bare = World::new();
    assert_eq!(bare.at(NOW).service_subject(Some(&auth), "oUser1"), None);

    // Once the old token is removed, it is refused.
    let w = service_world();
    let old = format!("Bearer {SERVICE_OLD}");
    assert_eq!(
        block_on(w.at(NOW).service_target(Some(&old), Some(IP), "oUser1")),
        Err(ApiError::InvalidToken)
    );
}

#[test]
fn an_openid_that_is_not_one_is_400_once_admitted() {
    let w = service_world();
    let auth = service_bearer();
    for bad in ["a b", "..", "o%2F1", "中文", &"o".repeat(129)] {
        assert!(
            matches!(
                block_on(w.at(NOW).service_target(Some(&auth), Some(IP), bad)),
                Err(ApiError::InvalidRequest(_))
            ),
            "{bad}"
        );
    }
    assert_eq!(w.authority.calls.get(), 0);
}

#[test]
fn over_the_service_limit_is_429_per_address_before_the_bearer_is_looked_at() {
    let w = service_world();
    w.limits.set(Limit::Service, 2);
    let auth = service_bearer();
    let url = format!("{EDGE}/auth/service/wechat/wxa/x");
    // Two calls (one with a wrong token: guesses count too).
    assert_eq!(
        error(call(&w, "GET", &url, Some("Bearer guess"), None, Ok(b""))),
        ApiError::InvalidToken
    );
    assert_eq!(
        block_on(w.at(NOW).service_target(Some(&auth), Some(IP), "oUser1")),
        Ok(OpenId::new("oUser1"))
    );
    let sent = w.sent_len();
    for (method, url) in endpoints() {
        for header in [Some(auth.as_str()), None] {
            assert_eq!(
                error(call(&w, method, &url, header, None, Ok(BODY))),
                ApiError::RateLimited { errcode: None },
                "{method} {url}"
            );
        }
    }
    assert_eq!(w.sent_len(), sent, "WeChat was not called past the limit");
    assert_eq!(w.limits.count(Limit::Service, IP), 14);
    // Another address has its own budget.
    assert_eq!(
        block_on(
            w.at(NOW)
                .service_target(Some(&auth), Some("198.51.100.1"), "oUser1")
        ),
        Ok(OpenId::new("oUser1"))
    );
}

#[test]
fn a_failing_service_limiter_lets_the_token_holder_through() {
    let w = service_world();
    w.limits.fail.set(true);
    let auth = service_bearer();
    assert_eq!(
        block_on(w.at(NOW).service_target(Some(&auth), Some(IP), "oUser1")),
        Ok(OpenId::new("oUser1"))
    );
    // The bearer is still checked.
    assert_eq!(
        block_on(
            w.at(NOW)
                .service_target(Some("Bearer x"), Some(IP), "oUser1")
        ),
        Err(ApiError::InvalidToken)
    );
    // And a relayed call goes through.
    w.reply(STABLE_T1);
    w.reply(r#"{"errcode":0}"#);
    let s = call(
        &w,
        "GET",
        &format!("{EDGE}/auth/service/wechat/wxa/x"),
        Some(&auth),
        None,
        Ok(b""),
    );
    assert_eq!(relayed(s).body, br#"{"errcode":0}"#);
}

#[test]
fn each_service_route_reaches_its_flow_once_admitted() {
    // The flows themselves are tested with them; here: admitted requests
    // reach the flow, and the sign and decrypt bodies are
    // read as JSON objects only.
    let w = service_world();
    w.login_at(NOW, GOOD);
    let auth = service_bearer();
    for (method, url) in endpoints().into_iter().take(4) {
        let s = call(
            &w,
            method,
            &url,
            Some(&auth),
            Some("application/json"),
            Ok(BODY),
        );
        assert_eq!(s.user, Some(OpenId::new("oUser1")), "{url}");
        match s.reply {
            // `/sign` answers; the others fail further in (WeChat is not
            // scripted here, the body does not decrypt), never at admission.
            Ok(_) => assert!(url.ends_with("/sign"), "{url}"),
            Err(e) => {
                assert!(!url.ends_with("/sign"), "{url}: {e:?}");
                assert_ne!(e, ApiError::Unauthorized, "{url}");
                assert_ne!(e, ApiError::InvalidToken, "{url}");
                assert_ne!(e, ApiError::NotFound, "{url}");
            }
        }
    }
    for url in ["sign", "decrypt"].map(|p| format!("{EDGE}/auth/service/users/oUser1/{p}")) {
        for (ct, body) in [
            (Some("application/json"), &b"[1]"[..]),
            (Some("application/json"), b"not json"),
            (Some("application/x-www-form-urlencoded"), b"data=x"),
        ] {
            assert!(
                matches!(
                    error(call(&w, "POST", &url, Some(&auth), ct, Ok(body))),
                    ApiError::InvalidRequest(_)
                ),
                "{url} {ct:?}"
            );
        }
        assert_eq!(
            error(call(
                &w,
                "POST",
                &url,
                Some(&auth),
                None,
                Err(BodyError::TooLarge)
            )),
            ApiError::PayloadTooLarge
        );
    }
}

#[test]
fn rekey_is_the_mini_program_s_and_names_the_token_s_user() {
    let w = service_world();
    let r = w.login_at(NOW, GOOD);
    let url = format!("{EDGE}/auth/session/rekey");
    let auth = bearer_of(&r);
    let s = call(
        &w,
        "POST",
        &url,
        Some(&auth),
        Some("application/json"),
        Ok(br#"{"code":"c"}"#),
    );
    assert_eq!(s.user, Some(OpenId::new("oUser1")));
    // A body that is not one fails before the flow.
    assert!(matches!(
        error(call(&w, "POST", &url, Some(&auth), None, Ok(b"[]"))),
        ApiError::InvalidRequest(_)
    ));
    assert_eq!(
        error(call(&w, "GET", &url, Some(&auth), None, Ok(b""))),
        ApiError::MethodNotAllowed
    );
}

#[test]
fn only_an_admitted_caller_has_its_body_read() {
    use crate::flows::service::body_to_read;
    use crate::http::router::BodyKind;
    let with = service_world();
    let without = World::new();
    let access = format!("Bearer {}", with.login_at(NOW, GOOD).access_token);
    let relay = route("POST", "/auth/service/wechat/wxa/msg_sec_check");
    let sign = route("POST", "/auth/service/users/oUser1/sign");
    let auth = service_bearer();
    let admin = format!("Bearer {ADMIN}");
    // Admitted: the route's own body.
    assert_eq!(
        body_to_read(&with.cfg, relay, Some(&auth)),
        Some(BodyKind::Raw)
    );
    assert_eq!(
        body_to_read(&with.cfg, sign, Some(&auth)),
        Some(BodyKind::Json)
    );
    // Anyone else: nothing is read (admission refuses them first).
    for a in [
        None,
        Some(admin.as_str()),
        Some(access.as_str()),
        Some("Bearer x"),
    ] {
        assert_eq!(body_to_read(&with.cfg, relay, a), None, "{a:?}");
        assert_eq!(body_to_read(&with.cfg, sign, a), None, "{a:?}");
    }
    // Without SERVICE_TOKEN, not even the right-looking token.
    assert_eq!(body_to_read(&without.cfg, relay, Some(&auth)), None);
    // Other routes are untouched.
    let login = route("POST", "/auth/login");
    assert_eq!(
        body_to_read(&with.cfg, login, None),
        Some(BodyKind::JsonOrForm)
    );
    // And a refused caller is answered as before, the body unread.
    let s = call(
        &with,
        "POST",
        &format!("{EDGE}/auth/service/users/oUser1/sign"),
        None,
        None,
        Ok(b""),
    );
    assert_eq!(error(s), ApiError::Unauthorized);
}
