//! Paths: which ones may pass without a token, and where a proxied request
//! goes at the origin.

/// Whether `path` (as the client sent it, without the query) falls under
/// one of the `PUBLIC_PATHS` prefixes.
///
/// A prefix is taken literally, as the contract says ("path prefixes"):
/// `/api` covers `/api`, `/api/x` and `/apiary`; a trailing `/` in the
/// prefix keeps it to the folder.
///
/// Only a path in canonical form can be public (see [`is_canonical`]):
/// anything an origin might resolve differently from how it reads — Tomcat
/// and Spring treat `/public/..;/admin` as `/admin` — needs a token.
pub(crate) fn is_public(public_paths: &[String], path: &str) -> bool {
    is_canonical(path) && public_paths.iter().any(|p| path.starts_with(p.as_str()))
}

/// A path in canonical form: it starts with `/`; it has no `;` (path
/// parameters), no `\\`, no percent-encoded `.`, `/`, `\\` or `;` in either
/// case (nor `%25`, against origins that decode twice), no `.` or `..`
/// segment and no empty segment (`//`) — a trailing `/`
/// is a folder, not an empty segment. Nothing else is judged: other
/// percent-escapes pass as they are.
pub(crate) fn is_canonical(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    if path.contains([';', '\\']) {
        return false;
    }
    let bytes = path.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'%' {
            let escaped = bytes
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .map(|h| [h[0].to_ascii_lowercase(), h[1].to_ascii_lowercase()]);
            match escaped {
                // `%25` too: an origin that decodes twice would see the
                // others in `%252e`.
                Some(h) if [*b"2e", *b"2f", *b"5c", *b"3b", *b"25"].contains(&h) => return false,
                Some(_) => {}
                // A `%` without two hex digits after it: not a valid path.
                None => return false,
            }
        }
    }
    let body = rest.strip_suffix('/').unwrap_or(rest);
    rest.is_empty()
        || body
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

/// The path of an absolute http(s) URL exactly as it was sent (no
/// decoding, no dot-segment resolution), without query and fragment, and
/// its scheme (`https` or `http`). `None` for anything else. A string
/// split, not a URL parser: the runtime has parsed the URL already.
pub(crate) fn path_of(url: &str) -> Option<(&str, &'static str)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = if scheme.eq_ignore_ascii_case("https") {
        "https"
    } else if scheme.eq_ignore_ascii_case("http") {
        "http"
    } else {
        return None;
    };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let path = rest.find('/').map_or("/", |i| &rest[i..]);
    Some((path, scheme))
}

/// Why a request has no origin URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TargetError {
    /// The request URL is not an absolute http(s) URL (the runtime always
    /// makes it one).
    NotAbsolute,
    /// `ORIGIN_URL` has a base path, and an origin that decodes the path
    /// before it resolves dot segments could read this one as leaving it.
    LeavesBasePath,
}

/// The origin URL a proxied request goes to: `origin_url` (no trailing
/// slash) followed by the request's path and query exactly as the client
/// sent them. The fragment, which no client sends, is dropped.
///
/// When `origin_url` has a base path (`https://o.example/api`), a path that
/// could climb above it at some origin is refused rather than forwarded:
/// see [`may_leave_base`].
pub(crate) fn origin_target(origin_url: &str, request_url: &str) -> Result<String, TargetError> {
    let rest = request_url
        .strip_prefix("https://")
        .or_else(|| request_url.strip_prefix("http://"))
        .ok_or(TargetError::NotAbsolute)?;
    let rest = rest.split('#').next().unwrap_or_default();
    let path_and_query = match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('/') => &rest[i..],
        Some(i) => return Ok(format!("{origin_url}/{}", &rest[i..])),
        None => "/",
    };
    let path = path_and_query.split('?').next().unwrap_or_default();
    if has_base_path(origin_url) && may_leave_base(path) {
        return Err(TargetError::LeavesBasePath);
    }
    Ok(format!("{origin_url}{path_and_query}"))
}

/// Whether `origin_url` (as configured, trailing `/` removed) names a path
/// below its host.
fn has_base_path(origin_url: &str) -> bool {
    let after_scheme = origin_url.split_once("://").map_or(origin_url, |(_, r)| r);
    after_scheme
        .find('/')
        .is_some_and(|i| !after_scheme[i..].trim_matches('/').is_empty())
}

/// How many times a path is decoded at most when judged (`%25` nested
/// deeper than this is refused outright).
const MAX_DECODES: usize = 4;

/// Whether `path` (starting with `/`) could resolve above its root at an
/// origin that, before resolving dot segments, percent-decodes it (once or
/// more: `%252e`), reads `\` as `/` (as `%5C` decodes), or drops a `;`
/// parameter from a segment (`..;` as Tomcat reads it). Each decoding
/// level is resolved as RFC 3986 resolves dot segments, with `;`
/// parameters dropped and empty segments merged (`//`, as many servers
/// do); a `..` that pops above the root at any level, or
/// decoding nested deeper than [`MAX_DECODES`], means it could.
pub(crate) fn may_leave_base(path: &str) -> bool {
    let mut bytes = path.as_bytes().to_vec();
    for _ in 0..=MAX_DECODES {
        if climbs_above_root(&bytes) {
            return true;
        }
        let decoded = percent_decode(&bytes);
        if decoded == bytes {
            return false;
        }
        bytes = decoded;
    }
    true
}

/// Whether the segments of `path`, `\` read as `/` and each cut at its
/// first `;`, pop above the root when resolved, empty ones merged away.
fn climbs_above_root(path: &[u8]) -> bool {
    let mut depth: usize = 0;
    let segments = path.split(|b| *b == b'/' || *b == b'\\').skip(1);
    for seg in segments {
        let seg = seg.split(|b| *b == b';').next().unwrap_or_default();
        match seg {
            // Empty: many servers merge `//` (and `/;/` once the parameter
            // is gone), so it takes no depth.
            b"" | b"." => {}
            b".." => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return true,
            },
            _ => depth += 1,
        }
    }
    false
}

/// `%XX` decoded wherever it is valid; anything else kept as it is.
fn percent_decode(bytes: &[u8]) -> Vec<u8> {
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let pair = (bytes.get(i + 1).copied(), bytes.get(i + 2).copied());
        if let (b'%', (Some(h), Some(l))) = (bytes[i], pair) {
            if let (Some(h), Some(l)) = (hex(h), hex(l)) {
                // Two hex digits: at most 255.
                out.push(u8::try_from(h * 16 + l).unwrap_or(u8::MAX));
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(path: &str) -> bool {
        is_public(&["/public/".to_string(), "/health".to_string()], path)
    }

    #[test]
    fn canonical_paths_under_a_prefix_are_public() {
        for p in [
            "/public/",
            "/public/x",
            "/public/x/",
            "/public/a%20b/c",
            "/public/caf%C3%A9",
            "/public/x.y/z..w/.well-known",
            "/health",
            "/healthz",
        ] {
            assert!(public(p), "{p}");
        }
        for p in ["/publicity", "/api", "/", "/Public/x", "public/x"] {
            assert!(!public(p), "{p}");
        }
    }

    #[test]
    fn every_escape_from_a_public_prefix_needs_a_token() {
        let escapes = [
            "/public/../admin",
            "/public/./x",
            "/public/..;/admin",
            "/public/%2e%2e;/admin",
            "/public/%2E%2E/admin",
            "/public/..%3b/admin",
            "/public/..%3B/admin",
            "/public/.%2e/admin",
            "/public/%2e./admin",
            "/public/%2e/x",
            "/public/..%2fadmin",
            "/public/..%2Fadmin",
            "/public/%5c..%5cadmin",
            "/public/..\\admin",
            "/public/x;jsessionid=1",
            "/public;/x",
            "/public//x",
            "/public/x//",
            "/public/x/..",
            "/public/x/.",
            "/public/%",
            "/public/%2",
            "/public/%/a",
            "/public/%zz/a",
            "/public/%252e%252e/admin",
        ];
        for p in escapes {
            assert!(!public(p), "{p} escaped the public prefix");
        }
    }

    #[test]
    fn path_of_keeps_the_path_as_sent() {
        let cases = [
            (
                "https://e.example/public/..;/admin?x=1",
                "/public/..;/admin",
                "https",
            ),
            ("http://127.0.0.1:8787/a%2e%2e/b#f", "/a%2e%2e/b", "http"),
            ("https://e.example", "/", "https"),
            ("https://e.example?q", "/", "https"),
            ("HTTPS://e.example/x", "/x", "https"),
        ];
        for (url, path, scheme) in cases {
            assert_eq!(path_of(url), Some((path, scheme)), "{url}");
        }
        assert_eq!(path_of("/relative"), None);
        assert_eq!(path_of("ftp://e.example/x"), None);
    }

    #[test]
    fn origin_target_keeps_path_and_query_verbatim() {
        let o = "https://api.example.com/v1";
        let cases = [
            (
                "https://edge.example/api/x?a=1&b=%2F",
                "https://api.example.com/v1/api/x?a=1&b=%2F",
            ),
            ("http://127.0.0.1:8787/", "https://api.example.com/v1/"),
            ("http://127.0.0.1:8787", "https://api.example.com/v1/"),
            (
                "https://edge.example?q=1",
                "https://api.example.com/v1/?q=1",
            ),
            (
                "https://edge.example/a/%2e%2e/b#frag",
                "https://api.example.com/v1/a/%2e%2e/b",
            ),
            (
                "https://edge.example//double",
                "https://api.example.com/v1//double",
            ),
            (
                "https://edge.example/p?x=http://other/",
                "https://api.example.com/v1/p?x=http://other/",
            ),
        ];
        for (incoming, want) in cases {
            assert_eq!(
                origin_target(o, incoming).as_deref(),
                Ok(want),
                "{incoming}"
            );
        }
        assert_eq!(origin_target(o, "/relative"), Err(TargetError::NotAbsolute));
        assert_eq!(origin_target(o, "ftp://x/y"), Err(TargetError::NotAbsolute));
    }

    #[test]
    fn a_path_that_could_climb_out_of_the_base_path_is_refused() {
        let o = "https://o.example/api";
        for p in [
            "/..%2fadmin",
            "/..%2Fadmin",
            "/%2e%2e/x",
            "/%2E%2E/x",
            "/a/..%5c..%5cb",
            "/a/..%5C..%5Cb",
            "/;/../x",
            "/..;/x",
            "/a/..;/..;/x",
            "/..%3b/x",
            "/%252e%252e/x",
            "/%25252e%25252e/x",
            "/a/b/..%2f..%2f..%2fx",
            "/a\\..\\..\\x",
            "/..",
            "/x%252f..%2f..%2fadmin",
            "/%2525252525252e",
        ] {
            let url = format!("https://e.example{p}?q=1");
            assert_eq!(
                origin_target(o, &url),
                Err(TargetError::LeavesBasePath),
                "{p}"
            );
            // Without a base path there is nothing to leave: forwarded as
            // sent, as before.
            assert!(origin_target("https://o.example", &url).is_ok(), "{p}");
        }
        for p in [
            "/a/..%2fb",
            "/a/b/%2e%2e/c",
            "/a;x=1/b",
            "/...",
            "/..a/b",
            "/a/.%2e",
            "/x?y=/../../..",
            "/caf%C3%A9",
        ] {
            let url = format!("https://e.example{p}");
            assert!(origin_target(o, &url).is_ok(), "{p} refused");
            assert!(origin_target(&format!("{o}/v1"), &url).is_ok(), "{p}");
        }
        assert!(has_base_path("https://o.example/api"));
        assert!(!has_base_path("https://o.example"));
        assert!(!has_base_path("http://127.0.0.1:8789"));
    }
}
