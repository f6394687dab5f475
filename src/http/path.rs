//! Paths: which ones may pass without a token, and where a proxied request
//! goes at the origin.

/// Whether `path` falls under one of the `PUBLIC_PATHS` prefixes.
///
/// A prefix is taken literally, as the contract says ("path prefixes"):
/// `/api` covers `/api`, `/api/x` and `/apiary`; a trailing `/` in the
/// prefix keeps it to the folder.
///
/// A path with an encoded `/` or `\\`, or a `..` segment, is never public:
/// an origin that decodes it could route it outside the prefix.
pub(crate) fn is_public(public_paths: &[String], path: &str) -> bool {
    public_paths.iter().any(|p| path_has_prefix(path, p))
}

fn path_has_prefix(path: &str, prefix: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    let ambiguous = lower.contains("%2f")
        || lower.contains("%5c")
        || lower.contains('\\')
        || lower
            .split('/')
            .any(|seg| seg == ".." || seg == "%2e%2e" || seg == ".%2e" || seg == "%2e.");
    !ambiguous && path.starts_with(prefix)
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
