//! One request end to end as the shell hands it over: which flow answers,
//! what the answer is, and whom the log line names.

use super::*;
use crate::flows::serve::{Reply, Request, Served};
use crate::http::body::{BodyError, MAX_BODY_BYTES};
use crate::http::response::Payload;
use crate::http::router::route;
use crate::secret::AdminToken;

/// A request of `method` to `path` with `body` (JSON).
fn request<'a>(
    method: &'a str,
    url: &'a str,
    authorization: Option<&'a str>,
    body: &'a [u8],
) -> Request<'a> {
    let path = crate::http::path::path_of(url).expect("absolute").0;
    Request {
        route: route(method, path),
        method,
        url,
        path,
        authorization,
        client_ip: Some(IP),
        content_type: Some("application/json"),
        body: Ok(body),
    }
}

fn serve(w: &World, now: i64, req: Request<'_>) -> Served {
    block_on(w.at(now).serve(req))
}

fn json_of(served: &Served) -> Value {
    match &served.reply {
        Ok(Reply::Own(Payload::Json(body))) => serde_json::from_str(body).expect("JSON"),
        other => panic!("expected a JSON answer, got {other:?}"),
    }
}

fn error_of(served: Served) -> ApiError {
    match served.reply {
        Err(e) => e,
        Ok(r) => panic!("expected an error, got {r:?}"),
    }
}

const LOGIN: &str = "https://edge.example/auth/login";
const REFRESH: &str = "https://edge.example/auth/refresh";

#[test]
fn a_login_names_the_user_wechat_vouched_for_and_a_failed_one_nobody() {
    let w = World::new();
    w.reply(GOOD);
    let s = serve(&w, NOW, request("POST", LOGIN, None, br#"{"code":"c1"}"#));
    assert_eq!(json_of(&s)["openid"], "oUser1");
    assert_eq!(s.user, Some(OpenId::new("oUser1")));

    w.reply(&errcode(40029));
    let s = serve(&w, NOW, request("POST", LOGIN, None, br#"{"code":"c2"}"#));
    assert_eq!(s.user, None);
    assert_eq!(error_of(s), ApiError::InvalidCode { errcode: 40029 });
}

#[test]
fn a_refresh_names_the_user_only_when_the_token_s_tag_verifies() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let body = json!({ "refresh_token": r.refresh_token }).to_string();
    let s = serve(&w, NOW + 1, request("POST", REFRESH, None, body.as_bytes()));
    assert_eq!(s.user, Some(OpenId::new("oUser1")));
    assert!(json_of(&s)["access_token"].is_string());

    // The same token again after the grace: reuse, refused by the
    // authority, and still a token minted for oUser1.
    let late = NOW + 2 + REFRESH_GRACE;
    let s = serve(&w, late, request("POST", REFRESH, None, body.as_bytes()));
    assert_eq!(s.user, Some(OpenId::new("oUser1")));
    assert_eq!(error_of(s), ApiError::RefreshReused);

    // A token naming another user, made up by the client: nobody.
    let p: Vec<&str> = r.refresh_token.split('.').collect();
    let forged = format!("{}.{}.{}.{}", B64URL.encode("oVictim"), p[1], p[2], p[3]);
    let body = json!({ "refresh_token": forged }).to_string();
    let s = serve(&w, late, request("POST", REFRESH, None, body.as_bytes()));
    assert_eq!(s.user, None);
    assert_eq!(error_of(s), ApiError::InvalidRefreshToken);
}

#[test]
fn operator_requests_name_the_user_only_once_the_operator_is_admitted() {
    let mut cfg = test_config();
    cfg.admin_token = Some(AdminToken::new(ADMIN));
    let w = World::with(cfg);
    w.login_at(NOW, GOOD);
    let admin = format!("Bearer {ADMIN}");
    let url = "https://edge.example/auth/admin/users/oUser1";
    for auth in [None, Some("Bearer wrong")] {
        let s = serve(&w, NOW, request("GET", url, auth, b""));
        assert_eq!(s.user, None, "{auth:?}");
        assert!(s.reply.is_err());
    }
    let s = serve(&w, NOW, request("GET", url, Some(&admin), b""));
    assert_eq!(s.user, Some(OpenId::new("oUser1")));
    assert_eq!(json_of(&s)["live_sessions"], 1);
    // Admitted, and the user does not exist: still who it was about.
    let url = "https://edge.example/auth/admin/users/oNobody/revoke";
    let s = serve(&w, NOW, request("POST", url, Some(&admin), b""));
    assert_eq!(s.user, Some(OpenId::new("oNobody")));
}

#[test]
fn session_calls_name_the_token_s_verified_subject() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let auth = bearer_of(&r);
    let url = "https://edge.example/auth/session";
    let s = serve(&w, NOW + 1, request("GET", url, Some(&auth), b""));
    assert_eq!(s.user, Some(OpenId::new("oUser1")));
    assert_eq!(json_of(&s)["openid"], "oUser1");
    let s = serve(&w, NOW + 1, request("GET", url, Some("Bearer forged"), b""));
    assert_eq!(s.user, None);

    let url = "https://edge.example/auth/logout";
    let s = serve(&w, NOW + 2, request("POST", url, Some(&auth), b""));
    assert_eq!(s.user, Some(OpenId::new("oUser1")));
    assert!(matches!(s.reply, Ok(Reply::Own(Payload::NoContent))));
}

#[test]
fn bodies_are_refused_before_any_flow_runs() {
    let w = World::new();
    let mut req = request("POST", LOGIN, None, b"");
    req.body = Err(BodyError::TooLarge);
    assert_eq!(error_of(serve(&w, NOW, req)), ApiError::PayloadTooLarge);
    let mut req = request("POST", LOGIN, None, b"");
    req.body = Err(BodyError::Unreadable);
    assert_eq!(
        error_of(serve(&w, NOW, req)),
        ApiError::InvalidRequest("the body could not be read")
    );
    let big = vec![b' '; MAX_BODY_BYTES + 1];
    let s = serve(&w, NOW, request("POST", LOGIN, None, &big));
    assert_eq!(error_of(s), ApiError::PayloadTooLarge);
    // Forms: login and phone take them, refresh does not.
    let mut req = request("POST", REFRESH, None, b"refresh_token=x");
    req.content_type = Some("application/x-www-form-urlencoded");
    assert_eq!(
        error_of(serve(&w, NOW, req)),
        ApiError::InvalidRequest("this endpoint takes a JSON body")
    );
    w.reply(GOOD);
    let mut req = request("POST", LOGIN, None, b"code=c1");
    req.content_type = Some("application/x-www-form-urlencoded");
    assert_eq!(serve(&w, NOW, req).user, Some(OpenId::new("oUser1")));
    assert_eq!(w.sent_len(), 1, "WeChat asked once, for the form login");
}

#[test]
fn a_bad_phone_body_still_names_the_token_s_subject() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let auth = bearer_of(&r);
    let s = serve(
        &w,
        NOW + 1,
        request(
            "POST",
            "https://edge.example/auth/phone",
            Some(&auth),
            b"{}",
        ),
    );
    assert_eq!(s.user, Some(OpenId::new("oUser1")));
    assert!(matches!(s.reply, Err(ApiError::InvalidRequest(_))));
}

#[test]
fn unknown_paths_wrong_methods_and_the_jwks() {
    let w = World::new();
    let s = serve(
        &w,
        NOW,
        request("GET", "https://e.example/auth/x", None, b""),
    );
    assert_eq!(s.user, None);
    assert_eq!(error_of(s), ApiError::NotFound);
    let s = serve(&w, NOW, request("GET", LOGIN, None, b""));
    assert_eq!(error_of(s), ApiError::MethodNotAllowed);
    let s = serve(
        &w,
        NOW,
        request("GET", "https://e.example/.well-known/jwks.json", None, b""),
    );
    match s.reply {
        Ok(Reply::Own(Payload::Jwks(body))) => assert!(body.contains("Ed25519")),
        other => panic!("expected the JWKS, got {other:?}"),
    }
    assert_eq!(s.user, None);
}

#[test]
fn a_proxied_request_is_forwarded_with_its_identity_and_the_origin_s_url() {
    let w = World::new();
    let r = w.login_at(NOW, GOOD);
    let auth = bearer_of(&r);
    let s = serve(
        &w,
        NOW + 1,
        request("GET", "https://e.example/api/orders?x=1", Some(&auth), b""),
    );
    assert_eq!(s.user, None, "proxied requests are not logged by user");
    let Ok(Reply::Forward(f)) = s.reply else {
        panic!("expected a forward");
    };
    assert_eq!(f.outgoing.url, "https://api.example.com/v1/api/orders?x=1");
    assert!(!f.outgoing.with_body);
    let passed = f.passed.expect("identified");
    assert_eq!(passed.identity, identity_of(&r, None));
    assert!(passed.assertion.is_some());

    let s = serve(
        &w,
        NOW + 1,
        request("GET", "https://e.example/api/x", None, b""),
    );
    assert_eq!(error_of(s), ApiError::Unauthorized);
}
