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

/// The origin URL a proxied request goes to: `origin_url` (no trailing
/// slash) followed by the request's path and query exactly as the client
/// sent them. The fragment, which no client sends, is dropped. `None` when
/// `request_url` is not an absolute http(s) URL.
pub(crate) fn origin_target(origin_url: &str, request_url: &str) -> Option<String> {
    let rest = request_url
        .strip_prefix("https://")
        .or_else(|| request_url.strip_prefix("http://"))?;
    let rest = rest.split('#').next().unwrap_or_default();
    let path_and_query = match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('/') => &rest[i..],
        Some(i) => return Some(format!("{origin_url}/{}", &rest[i..])),
        None => "/",
    };
    Some(format!("{origin_url}{path_and_query}"))
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
                Some(want),
                "{incoming}"
            );
        }
        assert_eq!(origin_target(o, "/relative"), None);
        assert_eq!(origin_target(o, "ftp://x/y"), None);
    }
}
