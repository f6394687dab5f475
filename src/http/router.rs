//! Which handler a request goes to.

use super::body::{MAX_BODY_BYTES, MAX_RELAY_BODY_BYTES};

/// The worker's own endpoints, and everything else (the proxy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route<'a> {
    Login,
    Refresh,
    Logout,
    Session,
    Phone,
    Jwks,
    /// `GET /auth/admin/users/{openid}`.
    AdminUser(&'a str),
    /// `POST /auth/admin/users/{openid}/revoke`.
    AdminRevoke(&'a str),
    /// `POST /auth/session/rekey`.
    Rekey,
    /// `POST /auth/service/users/{openid}/session-key/check`.
    ServiceCheck(&'a str),
    /// `POST /auth/service/users/{openid}/session-key/reset`.
    ServiceReset(&'a str),
    /// `POST /auth/service/users/{openid}/sign`.
    ServiceSign(&'a str),
    /// `POST /auth/service/users/{openid}/decrypt`.
    ServiceDecrypt(&'a str),
    /// `/auth/service/wechat/{path}`, any method but `TRACE`/`TRACK`:
    /// carries `{path}` as sent.
    ServiceRelay(&'a str),
    Proxy,
    NotFound,
    /// The path exists; the method does not. Carries the `Allow` value.
    MethodNotAllowed(&'static str),
}

/// What a handler's body may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind {
    Json,
    /// JSON or `application/x-www-form-urlencoded`.
    JsonOrForm,
    /// Any bytes, up to [`MAX_RELAY_BODY_BYTES`] (the WeChat relay).
    Raw,
}

impl BodyKind {
    /// The most the shell reads of such a body.
    pub(crate) fn limit(self) -> usize {
        match self {
            BodyKind::Json | BodyKind::JsonOrForm => MAX_BODY_BYTES,
            BodyKind::Raw => MAX_RELAY_BODY_BYTES,
        }
    }
}

impl Route<'_> {
    /// The `event` of the request's log line.
    pub(crate) fn event(self) -> &'static str {
        match self {
            Route::Login => "login",
            Route::Refresh => "refresh",
            Route::Logout => "logout",
            Route::Session => "session",
            Route::Phone => "phone",
            Route::Jwks => "jwks",
            Route::AdminUser(_) => "admin_user",
            Route::AdminRevoke(_) => "revoke",
            Route::Rekey => "rekey",
            Route::ServiceCheck(_) => "service_check",
            Route::ServiceReset(_) => "service_reset",
            Route::ServiceSign(_) => "service_sign",
            Route::ServiceDecrypt(_) => "service_decrypt",
            Route::ServiceRelay(_) => "service_relay",
            Route::Proxy => "proxy",
            Route::NotFound => "not_found",
            Route::MethodNotAllowed(_) => "method_not_allowed",
        }
    }

    /// The `Allow` value of a 405.
    pub(crate) fn allow(self) -> Option<&'static str> {
        match self {
            Route::MethodNotAllowed(allow) => Some(allow),
            _ => None,
        }
    }

    /// The body the handler reads, if any.
    pub(crate) fn body(self) -> Option<BodyKind> {
        match self {
            Route::Login | Route::Phone | Route::Rekey => Some(BodyKind::JsonOrForm),
            Route::Refresh | Route::ServiceSign(_) | Route::ServiceDecrypt(_) => {
                Some(BodyKind::Json)
            }
            Route::ServiceRelay(_) => Some(BodyKind::Raw),
            _ => None,
        }
    }
}

pub(crate) const JWKS_PATH: &str = "/.well-known/jwks.json";

/// The `Allow` of a proxied path's 405: the methods an origin may be sent
/// (a method the worker does not know, WebDAV's say, passes too).
pub(crate) const PROXY_ALLOW: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// Methods that echo the request back (`TRACE`, and IIS's `TRACK`): never
/// proxied, whatever their case, since a hop that echoes them would hand
/// the caller the identity headers and the signed assertion.
fn echoes_the_request(method: &str) -> bool {
    method.eq_ignore_ascii_case("TRACE") || method.eq_ignore_ascii_case("TRACK")
}

/// The operator endpoints: `users/{openid}` and `users/{openid}/revoke`.
/// A wrong method is 404 like an unknown path, so that a deployment
/// without `ADMIN_TOKEN` shows no trace of them.
fn admin_route<'a>(method: &str, rest: &'a str) -> Route<'a> {
    let Some(rest) = rest.strip_prefix("users/") else {
        return Route::NotFound;
    };
    match rest.split_once('/') {
        None if method == "GET" || method == "HEAD" => Route::AdminUser(rest),
        Some((openid, "revoke")) if method == "POST" => Route::AdminRevoke(openid),
        _ => Route::NotFound,
    }
}

/// The service endpoints for the origin's servers: like the operator
/// endpoints, a wrong method is 404, so that a deployment without
/// `SERVICE_TOKEN` shows no trace of them.
fn service_route<'a>(method: &str, rest: &'a str) -> Route<'a> {
    if let Some(path) = rest.strip_prefix("wechat/") {
        return if echoes_the_request(method) {
            Route::NotFound
        } else {
            Route::ServiceRelay(path)
        };
    }
    let Some(rest) = rest.strip_prefix("users/") else {
        return Route::NotFound;
    };
    if method != "POST" {
        return Route::NotFound;
    }
    match rest.split_once('/') {
        Some((openid, "session-key/check")) => Route::ServiceCheck(openid),
        Some((openid, "session-key/reset")) => Route::ServiceReset(openid),
        Some((openid, "sign")) => Route::ServiceSign(openid),
        Some((openid, "decrypt")) => Route::ServiceDecrypt(openid),
        _ => Route::NotFound,
    }
}

pub(crate) fn route<'a>(method: &str, path: &'a str) -> Route<'a> {
    if let Some(rest) = path.strip_prefix("/auth/admin/") {
        return admin_route(method, rest);
    }
    if let Some(rest) = path.strip_prefix("/auth/service/") {
        return service_route(method, rest);
    }
    let (route, allow) = match path {
        "/auth/login" => (Route::Login, "POST"),
        "/auth/refresh" => (Route::Refresh, "POST"),
        "/auth/logout" => (Route::Logout, "POST"),
        "/auth/phone" => (Route::Phone, "POST"),
        "/auth/session" => (Route::Session, "GET"),
        "/auth/session/rekey" => (Route::Rekey, "POST"),
        JWKS_PATH => (Route::Jwks, "GET"),
        p if p == "/auth" || p.starts_with("/auth/") => return Route::NotFound,
        _ if echoes_the_request(method) => return Route::MethodNotAllowed(PROXY_ALLOW),
        _ => return Route::Proxy,
    };
    let method_ok = match allow {
        "GET" => method == "GET" || method == "HEAD",
        m => method == m,
    };
    if method_ok {
        route
    } else {
        Route::MethodNotAllowed(if allow == "GET" { "GET, HEAD" } else { allow })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_endpoints_and_methods() {
        assert_eq!(route("POST", "/auth/login"), Route::Login);
        assert_eq!(route("POST", "/auth/refresh"), Route::Refresh);
        assert_eq!(route("POST", "/auth/logout"), Route::Logout);
        assert_eq!(route("POST", "/auth/phone"), Route::Phone);
        assert_eq!(route("GET", "/auth/session"), Route::Session);
        assert_eq!(route("GET", JWKS_PATH), Route::Jwks);
        assert_eq!(route("GET", "/auth/login"), Route::MethodNotAllowed("POST"));
        assert_eq!(
            route("POST", "/auth/session"),
            Route::MethodNotAllowed("GET, HEAD")
        );
        assert_eq!(
            route("DELETE", JWKS_PATH),
            Route::MethodNotAllowed("GET, HEAD")
        );
    }

    #[test]
    fn operator_endpoints() {
        assert_eq!(
            route("GET", "/auth/admin/users/oUser1"),
            Route::AdminUser("oUser1")
        );
        assert_eq!(
            route("POST", "/auth/admin/users/oUser1/revoke"),
            Route::AdminRevoke("oUser1")
        );
        for (m, p) in [
            ("POST", "/auth/admin/users/oUser1"),
            ("GET", "/auth/admin/users/oUser1/revoke"),
            ("POST", "/auth/admin/users/oUser1/revoke/x"),
            ("GET", "/auth/admin/users"),
            ("GET", "/auth/admin/"),
            ("GET", "/auth/admin"),
        ] {
            assert_eq!(route(m, p), Route::NotFound, "{m} {p}");
        }
    }

    #[test]
    fn service_endpoints_take_post_and_a_wrong_method_is_404() {
        for (p, want) in [
            (
                "/auth/service/users/o1/session-key/check",
                Route::ServiceCheck("o1"),
            ),
            (
                "/auth/service/users/o1/session-key/reset",
                Route::ServiceReset("o1"),
            ),
            ("/auth/service/users/o1/sign", Route::ServiceSign("o1")),
            (
                "/auth/service/users/o1/decrypt",
                Route::ServiceDecrypt("o1"),
            ),
        ] {
            assert_eq!(route("POST", p), want, "{p}");
            for m in ["GET", "HEAD", "PUT", "DELETE", "post", "TRACE"] {
                assert_eq!(route(m, p), Route::NotFound, "{m} {p}");
            }
        }
        for p in [
            "/auth/service",
            "/auth/service/",
            "/auth/service/users",
            "/auth/service/users/",
            "/auth/service/users/o1",
            "/auth/service/users/o1/session-key",
            "/auth/service/users/o1/session-key/check/x",
            "/auth/service/users/o1/sign/",
            "/auth/service/users/o1/x/sign",
            "/auth/service/wechat",
            "/auth/service/other/x",
        ] {
            assert_eq!(route("POST", p), Route::NotFound, "{p}");
        }
    }

    #[test]
    fn the_relay_takes_any_method_but_the_echoing_ones() {
        for m in [
            "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND",
        ] {
            assert_eq!(
                route(m, "/auth/service/wechat/wxa/msg_sec_check"),
                Route::ServiceRelay("wxa/msg_sec_check"),
                "{m}"
            );
        }
        for m in ["TRACE", "trace", "TRACK", "Track"] {
            assert_eq!(
                route(m, "/auth/service/wechat/wxa/x"),
                Route::NotFound,
                "{m}"
            );
        }
        // The path is handed over as sent, to be judged by the relay.
        assert_eq!(
            route("GET", "/auth/service/wechat/"),
            Route::ServiceRelay("")
        );
        assert_eq!(
            route("GET", "/auth/service/wechat//cgi-bin/%2e%2e/token"),
            Route::ServiceRelay("/cgi-bin/%2e%2e/token")
        );
    }

    #[test]
    fn rekey_is_a_post() {
        assert_eq!(route("POST", "/auth/session/rekey"), Route::Rekey);
        assert_eq!(
            route("GET", "/auth/session/rekey"),
            Route::MethodNotAllowed("POST")
        );
        assert_eq!(route("POST", "/auth/session/rekey/"), Route::NotFound);
    }

    #[test]
    fn unknown_auth_paths_are_never_proxied() {
        for p in ["/auth", "/auth/", "/auth/unknown", "/auth/login/extra"] {
            assert_eq!(route("GET", p), Route::NotFound, "{p}");
        }
    }

    #[test]
    fn each_route_names_its_log_event() {
        for (m, p, event) in [
            ("POST", "/auth/login", "login"),
            ("POST", "/auth/refresh", "refresh"),
            ("POST", "/auth/logout", "logout"),
            ("GET", "/auth/session", "session"),
            ("POST", "/auth/phone", "phone"),
            ("GET", JWKS_PATH, "jwks"),
            ("GET", "/auth/admin/users/o1", "admin_user"),
            ("POST", "/auth/admin/users/o1/revoke", "revoke"),
            ("POST", "/auth/session/rekey", "rekey"),
            (
                "POST",
                "/auth/service/users/o1/session-key/check",
                "service_check",
            ),
            (
                "POST",
                "/auth/service/users/o1/session-key/reset",
                "service_reset",
            ),
            ("POST", "/auth/service/users/o1/sign", "service_sign"),
            ("POST", "/auth/service/users/o1/decrypt", "service_decrypt"),
            ("GET", "/auth/service/wechat/wxa/x", "service_relay"),
            ("GET", "/api/x", "proxy"),
            ("GET", "/auth/nope", "not_found"),
            ("GET", "/auth/login", "method_not_allowed"),
        ] {
            assert_eq!(route(m, p).event(), event, "{m} {p}");
        }
    }

    #[test]
    fn only_a_405_has_an_allow_value() {
        assert_eq!(route("GET", "/auth/login").allow(), Some("POST"));
        assert_eq!(route("PUT", JWKS_PATH).allow(), Some("GET, HEAD"));
        assert_eq!(route("POST", "/auth/login").allow(), None);
        assert_eq!(route("GET", "/auth/nope").allow(), None);
    }

    #[test]
    fn login_and_phone_take_forms_refresh_only_json_the_rest_no_body() {
        assert_eq!(
            route("POST", "/auth/login").body(),
            Some(BodyKind::JsonOrForm)
        );
        assert_eq!(
            route("POST", "/auth/phone").body(),
            Some(BodyKind::JsonOrForm)
        );
        assert_eq!(route("POST", "/auth/refresh").body(), Some(BodyKind::Json));
        assert_eq!(
            route("POST", "/auth/session/rekey").body(),
            Some(BodyKind::JsonOrForm)
        );
        for p in ["sign", "decrypt"] {
            let r = route("POST", &format!("/auth/service/users/o1/{p}")).body();
            assert_eq!(r, Some(BodyKind::Json), "{p}");
        }
        for m in ["GET", "POST", "PUT"] {
            assert_eq!(
                route(m, "/auth/service/wechat/wxa/x").body(),
                Some(BodyKind::Raw)
            );
        }
        assert_eq!(BodyKind::Json.limit(), 16 * 1024);
        assert_eq!(BodyKind::JsonOrForm.limit(), 16 * 1024);
        assert_eq!(BodyKind::Raw.limit(), 2 * 1024 * 1024);
        for (m, p) in [
            ("POST", "/auth/service/users/o1/session-key/check"),
            ("POST", "/auth/service/users/o1/session-key/reset"),
            ("POST", "/auth/logout"),
            ("GET", "/auth/session"),
            ("POST", "/api/x"),
            ("POST", "/auth/admin/users/o1/revoke"),
            ("GET", "/auth/login"),
        ] {
            assert_eq!(route(m, p).body(), None, "{m} {p}");
        }
    }

    #[test]
    fn trace_is_never_proxied_whatever_its_case() {
        for m in ["TRACE", "trace", "Trace", "TRACK", "track"] {
            for p in ["/", "/api/x", "/public/x"] {
                assert_eq!(route(m, p), Route::MethodNotAllowed(PROXY_ALLOW), "{m} {p}");
            }
            assert_eq!(route(m, "/auth/login"), Route::MethodNotAllowed("POST"));
            assert_eq!(route(m, "/auth/admin/users/o1"), Route::NotFound);
        }
        assert_eq!(route("TRACES", "/api/x"), Route::Proxy);
    }

    #[test]
    fn everything_else_is_proxied() {
        for p in ["/", "/api/orders", "/authors", "/.well-known/other"] {
            assert_eq!(route("GET", p), Route::Proxy, "{p}");
        }
    }
}
