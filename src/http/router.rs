//! Which handler a request goes to.

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
    Proxy,
    NotFound,
    /// The path exists; the method does not. Carries the `Allow` value.
    MethodNotAllowed(&'static str),
}

pub(crate) const JWKS_PATH: &str = "/.well-known/jwks.json";

/// The path of an absolute http(s) request URL as the runtime serialized
/// it (already parsed and normalized): what follows the authority, up to
/// the query or fragment; `/` when empty. `None` when `url` is not an
/// absolute http(s) URL. A string split, not a URL parser: the runtime has
/// parsed the URL already, and a parser's Unicode tables would be most of
/// the worker's size.
pub(crate) fn request_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let rest = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
    Some(rest.find('/').map_or("/", |i| &rest[i..]))
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

pub(crate) fn route<'a>(method: &str, path: &'a str) -> Route<'a> {
    if let Some(rest) = path.strip_prefix("/auth/admin/") {
        return admin_route(method, rest);
    }
    let (route, allow) = match path {
        "/auth/login" => (Route::Login, "POST"),
        "/auth/refresh" => (Route::Refresh, "POST"),
        "/auth/logout" => (Route::Logout, "POST"),
        "/auth/phone" => (Route::Phone, "POST"),
        "/auth/session" => (Route::Session, "GET"),
        JWKS_PATH => (Route::Jwks, "GET"),
        p if p == "/auth" || p.starts_with("/auth/") => return Route::NotFound,
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
    fn request_path_is_what_follows_the_authority() {
        let cases = [
            ("https://edge.example/auth/login", "/auth/login"),
            ("http://127.0.0.1:8787/api/x?a=1&b=/c", "/api/x"),
            ("http://127.0.0.1:8787", "/"),
            ("http://127.0.0.1:8787/", "/"),
            ("https://edge.example?q=/auth/login", "/"),
            ("https://edge.example#/auth/login", "/"),
            ("https://edge.example/a/%2e%2e/b#frag", "/a/%2e%2e/b"),
            ("https://edge.example//auth/login", "//auth/login"),
            ("http://[::1]:8787/.well-known/jwks.json", JWKS_PATH),
            ("https://edge.example/auth%2Flogin?x", "/auth%2Flogin"),
        ];
        for (url, path) in cases {
            assert_eq!(request_path(url), Some(path), "{url}");
        }
        for url in ["", "/auth/login", "ftp://x/y", "edge.example/auth/login"] {
            assert_eq!(request_path(url), None, "{url}");
        }
    }

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
    fn unknown_auth_paths_are_never_proxied() {
        for p in ["/auth", "/auth/", "/auth/unknown", "/auth/login/extra"] {
            assert_eq!(route("GET", p), Route::NotFound, "{p}");
        }
    }

    #[test]
    fn everything_else_is_proxied() {
        for p in ["/", "/api/orders", "/authors", "/.well-known/other"] {
            assert_eq!(route("GET", p), Route::Proxy, "{p}");
        }
    }
}
