//! CORS for H5 builds (`CORS_ORIGINS`): which preflights the worker answers
//! itself and how, and what every answer gets (its own and the origin's).
//!
//! With `CORS_ORIGINS` empty nothing here applies: no preflight is
//! answered, no header is added or removed. With it set:
//! - a preflight (`OPTIONS` with `Origin` and
//!   `Access-Control-Request-Method`) on `/auth/*` (but the operator and
//!   service endpoints, which are server to server) or on a proxied path is
//!   answered by the worker, 204, never sent on to the origin; an origin on
//!   the list gets the methods, `Authorization` and `Content-Type`, a
//!   bounded max-age; any other gets no CORS header at all, so its browser
//!   refuses;
//! - every answer, the worker's own and the origin's, loses the origin's
//!   `Access-Control-*` headers (the worker alone speaks CORS, so an
//!   origin's `*` never lets another site read an answer) and gets
//!   `Vary: Origin` (it differs by origin, for any cache on the way); an
//!   origin on the list also gets `Access-Control-Allow-Origin` (that
//!   origin, never `*`) and `Access-Control-Expose-Headers`
//!   (`X-WX-Edge-Error`, `Retry-After`: the client library acts on both).
//!   `Access-Control-Allow-Credentials` is never sent: the tokens travel in
//!   `Authorization`, never in cookies.

use super::router::JWKS_PATH;
use crate::config::CorsOrigins;

/// The methods a browser may send (the worker's own and the proxy's).
pub(crate) const ALLOW_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE";
/// The request headers a browser may send: what the client library sends.
pub(crate) const ALLOW_HEADERS: &str = "Authorization, Content-Type";
/// The answer headers scripts may read.
pub(crate) const EXPOSE_HEADERS: &str = "X-WX-Edge-Error, Retry-After";
/// How long a browser may keep a preflight's answer (seconds); browsers
/// cap it anyway (Chromium at 7200).
pub(crate) const MAX_AGE: &str = "600";

/// Whether the worker answers this request as a CORS preflight: CORS is
/// on, the method is `OPTIONS` and the request carries `Origin` and
/// `Access-Control-Request-Method`, on a path browsers may call.
pub(crate) fn is_preflight(
    cors: &CorsOrigins,
    method: &str,
    path: &str,
    origin: Option<&str>,
    request_method: Option<&str>,
) -> bool {
    cors.enabled()
        && method == "OPTIONS"
        && origin.is_some()
        && request_method.is_some()
        && browser_path(path)
}

/// `/auth/*` but for the operator and service endpoints, and every
/// proxied path (not the JWKS, fetched by origins, not browsers).
fn browser_path(path: &str) -> bool {
    let server_to_server = ["/auth/admin", "/auth/service"]
        .iter()
        .any(|p| path == *p || path.strip_prefix(p).is_some_and(|r| r.starts_with('/')));
    !server_to_server && path != JWKS_PATH
}

/// The headers of the worker's answer to a preflight from `origin`
/// (status 204, no body): the full set for an origin on the list, only
/// `Vary` for any other.
pub(crate) fn preflight_headers(
    cors: &CorsOrigins,
    origin: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut h = vec![("Vary", "Origin".to_string())];
    if let Some(allowed) = cors.allowed(origin) {
        h.extend([
            ("Access-Control-Allow-Origin", allowed.to_string()),
            ("Access-Control-Allow-Methods", ALLOW_METHODS.to_string()),
            ("Access-Control-Allow-Headers", ALLOW_HEADERS.to_string()),
            ("Access-Control-Max-Age", MAX_AGE.to_string()),
        ]);
    }
    h
}

/// What to change on an answer (the worker's own or the origin's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AnswerCors {
    /// `Vary`, set to this (the answer's own `Vary` with `Origin` added).
    pub(crate) vary: String,
    /// Set after the answer's `Access-Control-*` headers are removed.
    pub(crate) set: Vec<(&'static str, String)>,
}

/// What the answer to a request from `origin` needs, or `None` when CORS
/// is off (the answer is left exactly as it is). `vary` is the answer's
/// own `Vary`, if any.
pub(crate) fn answer(
    cors: &CorsOrigins,
    origin: Option<&str>,
    vary: Option<&str>,
) -> Option<AnswerCors> {
    if !cors.enabled() {
        return None;
    }
    let set = match cors.allowed(origin) {
        Some(allowed) => vec![
            ("Access-Control-Allow-Origin", allowed.to_string()),
            ("Access-Control-Expose-Headers", EXPOSE_HEADERS.to_string()),
        ],
        None => Vec::new(),
    };
    Some(AnswerCors {
        vary: vary_with_origin(vary),
        set,
    })
}

/// Whether an answer header is CORS's (removed from every answer while
/// CORS is on: only the worker's own are sent).
pub(crate) fn is_cors_header(name: &str) -> bool {
    name.as_bytes()
        .get(..15)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"access-control-"))
}

/// `vary` with `Origin` in it once; `*` stays `*` (it already covers it).
fn vary_with_origin(vary: Option<&str>) -> String {
    let vary = vary.map(str::trim).filter(|v| !v.is_empty());
    match vary {
        None => "Origin".to_string(),
        Some(v)
            if v.split(',')
                .map(str::trim)
                .any(|f| f == "*" || f.eq_ignore_ascii_case("origin")) =>
        {
            v.to_string()
        }
        Some(v) => format!("{v}, Origin"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on() -> CorsOrigins {
        CorsOrigins::parse(Some("https://example.com,http://127.0.0.1:8080")).unwrap()
    }

    fn get<'a>(h: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
        let mut found = h.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name));
        let v = found.next().map(|(_, v)| v.as_str());
        assert!(found.next().is_none(), "{name} twice");
        v
    }

    #[test]
    fn no_cors_no_preflight_and_answers_untouched() {
        let off = CorsOrigins::default();
        assert!(!is_preflight(
            &off,
            "OPTIONS",
            "/auth/login",
            Some("https://example.com"),
            Some("POST")
        ));
        assert_eq!(
            answer(&off, Some("https://example.com"), Some("Accept")),
            None
        );
        assert_eq!(answer(&off, None, None), None);
    }

    #[test]
    fn a_preflight_is_options_with_origin_and_request_method_on_a_browser_path() {
        let c = on();
        let o = Some("https://example.com");
        for p in [
            "/auth/login",
            "/auth/refresh",
            "/auth/session",
            "/auth/nope",
            "/api/x",
            "/",
            "/authors",
            "/auth/administrator",
        ] {
            assert!(is_preflight(&c, "OPTIONS", p, o, Some("POST")), "{p}");
        }
        // A stranger's preflight is answered too (without CORS headers),
        // so that it never reaches the origin.
        assert!(is_preflight(
            &c,
            "OPTIONS",
            "/api/x",
            Some("https://evil.com"),
            Some("GET")
        ));
        assert!(is_preflight(
            &c,
            "OPTIONS",
            "/api/x",
            Some("null"),
            Some("GET")
        ));
        // Not a preflight: a plain OPTIONS (WebDAV, a probe) is routed as today.
        assert!(!is_preflight(&c, "OPTIONS", "/api/x", o, None));
        assert!(!is_preflight(&c, "OPTIONS", "/api/x", None, Some("GET")));
        assert!(!is_preflight(&c, "options", "/api/x", o, Some("GET")));
        assert!(!is_preflight(&c, "POST", "/api/x", o, Some("GET")));
        // Server-to-server endpoints and the JWKS are never for browsers.
        for p in [
            "/auth/admin",
            "/auth/admin/users/o1",
            "/auth/admin/users/o1/revoke",
            "/auth/service",
            "/auth/service/wechat/wxa/x",
            JWKS_PATH,
        ] {
            assert!(!is_preflight(&c, "OPTIONS", p, o, Some("POST")), "{p}");
        }
    }

    #[test]
    fn a_preflight_is_logged_as_one_and_reads_no_body() {
        use super::super::router::Route;
        assert_eq!(Route::Preflight.event(), "preflight");
        assert_eq!(Route::Preflight.body(), None);
        assert_eq!(Route::Preflight.allow(), None);
    }

    #[test]
    fn an_allowed_origin_s_preflight_gets_methods_headers_and_a_bounded_max_age() {
        let h = preflight_headers(&on(), Some("https://example.com"));
        assert_eq!(
            get(&h, "Access-Control-Allow-Origin"),
            Some("https://example.com")
        );
        assert_eq!(get(&h, "Access-Control-Allow-Methods"), Some(ALLOW_METHODS));
        assert_eq!(
            get(&h, "Access-Control-Allow-Headers"),
            Some("Authorization, Content-Type")
        );
        let age: u32 = get(&h, "Access-Control-Max-Age").unwrap().parse().unwrap();
        assert!((1..=7200).contains(&age));
        assert_eq!(get(&h, "Vary"), Some("Origin"));
        assert_eq!(get(&h, "Access-Control-Allow-Credentials"), None);
        assert!(!ALLOW_METHODS.contains("TRACE") && !ALLOW_METHODS.contains('*'));
    }

    #[test]
    fn any_other_origin_s_preflight_gets_no_cors_header() {
        for probe in [
            None,
            Some("null"),
            Some("https://evil.com"),
            Some("https://evil.com.example.com"),
            Some("https://example.com.evil.com"),
            Some("HTTPS://EXAMPLE.COM"),
            Some("https://example.com/"),
            Some("https://example.com:443"),
            Some("http://example.com"),
            Some("https://example.com, https://evil.com"),
            Some("https://example.com\r\nAccess-Control-Allow-Origin: *"),
            Some("http://127.0.0.1:8081"),
        ] {
            let h = preflight_headers(&on(), probe);
            assert_eq!(h, vec![("Vary", "Origin".to_string())], "{probe:?}");
        }
    }

    #[test]
    fn an_allowed_origin_s_answers_name_it_and_expose_the_worker_s_headers() {
        let a = answer(&on(), Some("http://127.0.0.1:8080"), None).unwrap();
        assert_eq!(
            get(&a.set, "Access-Control-Allow-Origin"),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(
            get(&a.set, "Access-Control-Expose-Headers"),
            Some("X-WX-Edge-Error, Retry-After")
        );
        assert_eq!(get(&a.set, "Access-Control-Allow-Credentials"), None);
        assert_eq!(a.vary, "Origin");
        assert!(a.set.iter().all(|(_, v)| v != "*"));
    }

    #[test]
    fn other_origins_answers_get_only_vary() {
        for probe in [
            None,
            Some("null"),
            Some("https://evil.com"),
            Some("https://example.com/"),
        ] {
            let a = answer(&on(), probe, None).unwrap();
            assert!(a.set.is_empty(), "{probe:?}");
            assert_eq!(a.vary, "Origin");
        }
    }

    #[test]
    fn vary_keeps_the_answer_s_own_fields() {
        let o = Some("https://example.com");
        let vary = |v| answer(&on(), o, v).unwrap().vary;
        assert_eq!(vary(Some("Accept-Encoding")), "Accept-Encoding, Origin");
        assert_eq!(vary(Some("accept, origin")), "accept, origin");
        assert_eq!(vary(Some("Origin")), "Origin");
        assert_eq!(vary(Some("*")), "*");
        assert_eq!(vary(Some("  ")), "Origin");
        assert_eq!(vary(Some("X-Origin-Id")), "X-Origin-Id, Origin");
    }

    #[test]
    fn the_origin_s_cors_headers_are_recognised_whatever_their_case() {
        for n in [
            "Access-Control-Allow-Origin",
            "access-control-allow-credentials",
            "ACCESS-CONTROL-EXPOSE-HEADERS",
            "access-control-max-age",
        ] {
            assert!(is_cors_header(n), "{n}");
        }
        for n in [
            "vary",
            "access-control",
            "x-access-control-allow-origin",
            "content-type",
            "accéss-control-x",
        ] {
            assert!(!is_cors_header(n), "{n}");
        }
    }
}
