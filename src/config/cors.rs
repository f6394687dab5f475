//! `CORS_ORIGINS`: the browser origins (Taro / uni-app H5 builds) allowed
//! to call the worker cross-origin, read once at configuration time.
//!
//! Each entry is an exact origin, `scheme://host[:port]`, as a browser
//! serializes it in the `Origin` header: `https://` (plain `http://` only
//! for a loopback host, for development), no `*`, no `null`, no path (not
//! even `/`), no credentials, query or fragment. Entries are kept in the
//! browser's canonical form (scheme and host lower-cased, the default port
//! left out, an IPv6 address compressed), and a request's `Origin` must
//! equal one of them byte for byte: a browser never sends another
//! spelling, so anything else (another case, a trailing slash, a suffix,
//! two origins in one header) is not a browser on the list.

/// The allow-list; empty means no CORS at all (the worker behaves as if
/// the variable did not exist).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CorsOrigins(Vec<String>);

/// Why `CORS_ORIGINS` was refused (the message names no value).
pub(crate) const BAD_ENTRY: &str =
    "must be comma-separated exact origins like https://h5.example.com (scheme://host[:port], no path, no *)";
const NOT_TLS: &str = "must list https:// origins (http:// only for a loopback host)";

impl CorsOrigins {
    /// Parses the variable's value (`None` or blank: no CORS).
    pub(crate) fn parse(value: Option<&str>) -> Result<CorsOrigins, &'static str> {
        let mut origins: Vec<String> = Vec::new();
        for entry in value.unwrap_or_default().split(',').map(str::trim) {
            if entry.is_empty() {
                continue;
            }
            let origin = canonical_origin(entry)?;
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        Ok(CorsOrigins(origins))
    }

    /// Whether CORS is on (at least one origin is listed).
    pub(crate) fn enabled(&self) -> bool {
        !self.0.is_empty()
    }

    /// The listed origin a request's `Origin` header names, if any.
    pub(crate) fn allowed(&self, origin: Option<&str>) -> Option<&str> {
        let origin = origin?;
        self.0.iter().map(String::as_str).find(|o| *o == origin)
    }
}

/// `scheme://host[:port]` in a browser's serialization, or why not.
fn canonical_origin(entry: &str) -> Result<String, &'static str> {
    let (scheme, authority) = entry.split_once("://").ok_or(BAD_ENTRY)?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => 443,
        "http" => 80,
        _ => return Err(BAD_ENTRY),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (address, after) = v6.split_once(']').ok_or(BAD_ENTRY)?;
        let address: std::net::Ipv6Addr = address.parse().map_err(|_| BAD_ENTRY)?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or(BAD_ENTRY)?),
        };
        (format!("[{address}]"), port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        (host_name(host).ok_or(BAD_ENTRY)?, port)
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            match p.parse::<u16>() {
                Ok(0) | Err(_) => return Err(BAD_ENTRY),
                Ok(n) => Some(n),
            }
        }
        Some(_) => return Err(BAD_ENTRY),
    };
    let origin = match port {
        Some(p) if p != default_port => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    };
    if scheme == "https" || loopback(&host) {
        Ok(origin)
    } else {
        Err(NOT_TLS)
    }
}

/// A host name, lower-cased: non-empty labels of ASCII letters, digits and
/// `-` separated by dots; one whose last label is numeric must be a
/// dotted-quad IPv4 address (a browser would rewrite any other form).
fn host_name(host: &str) -> Option<String> {
    let host = host.to_ascii_lowercase();
    let labels_ok = host.split('.').all(|label| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    let last = host.rsplit('.').next().unwrap_or_default();
    let numeric = last.bytes().all(|b| b.is_ascii_digit()) || last.starts_with("0x");
    if !labels_ok || (numeric && host.parse::<std::net::Ipv4Addr>().is_err()) {
        return None;
    }
    Some(host)
}

fn loopback(host: &str) -> bool {
    host == "localhost"
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &str) -> Result<Vec<String>, &'static str> {
        CorsOrigins::parse(Some(v)).map(|c| c.0)
    }

    #[test]
    fn empty_or_unset_is_no_cors() {
        for v in [None, Some(""), Some("  "), Some(" , ,")] {
            let c = CorsOrigins::parse(v).expect("valid");
            assert!(!c.enabled(), "{v:?}");
            assert_eq!(c.allowed(Some("https://h5.example.com")), None);
            assert_eq!(c.allowed(Some("null")), None);
        }
    }

    #[test]
    fn entries_are_kept_in_the_browser_s_form() {
        assert_eq!(
            parse(
                " https://H5.Example.com , HTTPS://a.example.com:443,https://b.example.com:8443 "
            )
            .unwrap(),
            [
                "https://h5.example.com",
                "https://a.example.com",
                "https://b.example.com:8443"
            ]
        );
        assert_eq!(
            parse("http://127.0.0.1:8080,http://localhost:80,http://[0:0:0:0:0:0:0:1]:3000")
                .unwrap(),
            [
                "http://127.0.0.1:8080",
                "http://localhost",
                "http://[::1]:3000"
            ]
        );
        assert_eq!(
            parse("https://[2001:DB8::1]").unwrap(),
            ["https://[2001:db8::1]"]
        );
        // A repeat is one entry.
        assert_eq!(
            parse("https://a.example.com,https://A.example.com").unwrap(),
            ["https://a.example.com"]
        );
    }

    #[test]
    fn anything_but_an_exact_origin_is_refused() {
        for v in [
            "*",
            "https://*.example.com",
            "null",
            "h5.example.com",
            "//h5.example.com",
            "https://",
            "https://h5.example.com/",
            "https://h5.example.com/app",
            "https://h5.example.com?x=1",
            "https://h5.example.com#top",
            "https://user@h5.example.com",
            "https://user:pw@h5.example.com",
            "https://h5.example.com:",
            "https://h5.example.com:0",
            "https://h5.example.com:65536",
            "https://h5.example.com:+443",
            "https://h5.example.com:0443x",
            "https://h5..example.com",
            "https://.example.com",
            "https://h5.example.com.",
            "https://h5_example.com",
            "https://h5.exa mple.com",
            "https://h5.example.com\r\nX-Evil: 1",
            "https://bücher.example",
            "https://0x7f.1",
            "https://127.1",
            "https://[::1",
            "https://[not-v6]",
            "ftp://h5.example.com",
            "javascript://h5.example.com",
            "file://",
            "https://good.example.com,https://bad.example.com/",
        ] {
            assert_eq!(parse(v), Err(BAD_ENTRY), "{v:?}");
        }
    }

    #[test]
    fn a_bad_list_is_a_misconfiguration_naming_the_variable_never_the_value() {
        use crate::testkit::config::{load, vars};
        let mut v = vars();
        assert!(
            !load(&v).expect("valid").cors_origins.enabled(),
            "unset: no CORS"
        );
        v.insert("CORS_ORIGINS", "https://h5.example.com/private-path".into());
        let e = load(&v).expect_err("a path is refused");
        assert_eq!(e.variable, "CORS_ORIGINS");
        assert!(!e.to_string().contains("private-path"), "{e}");
        v.insert("CORS_ORIGINS", "*".into());
        assert_eq!(load(&v).expect_err("* is refused").variable, "CORS_ORIGINS");
        v.insert("CORS_ORIGINS", " https://h5.example.com ".into());
        let c = load(&v).expect("valid").cors_origins;
        assert_eq!(
            c.allowed(Some("https://h5.example.com")),
            Some("https://h5.example.com")
        );
    }

    #[test]
    fn plain_http_only_for_loopback() {
        for v in [
            "http://h5.example.com",
            "http://10.0.0.1:8080",
            "http://[2001:db8::1]",
        ] {
            assert_eq!(parse(v), Err(NOT_TLS), "{v}");
        }
        for v in ["http://localhost:5173", "http://127.0.0.2", "http://[::1]"] {
            assert!(parse(v).is_ok(), "{v}");
        }
    }

    #[test]
    fn only_the_exact_origin_a_browser_sends_matches() {
        let c = CorsOrigins::parse(Some("https://example.com, http://127.0.0.1:8080")).unwrap();
        assert!(c.enabled());
        assert_eq!(
            c.allowed(Some("https://example.com")),
            Some("https://example.com")
        );
        assert_eq!(
            c.allowed(Some("http://127.0.0.1:8080")),
            Some("http://127.0.0.1:8080")
        );
        for probe in [
            "null",
            "",
            " https://example.com",
            "https://example.com ",
            "HTTPS://EXAMPLE.COM",
            "https://Example.com",
            "https://example.com/",
            "https://example.com:443",
            "https://example.com:8443",
            "http://example.com",
            "https://evil.com.example.com",
            "https://example.com.evil.com",
            "https://evilexample.com",
            "https://sub.example.com",
            "https://example.co",
            "https://example.com, https://evil.com",
            "https://example.com\r\nAccess-Control-Allow-Credentials: true",
            "https://example.com\0",
            "http://127.0.0.1:8081",
            "http://127.0.0.1",
            "http://localhost:8080",
            "*",
        ] {
            assert_eq!(c.allowed(Some(probe)), None, "{probe:?}");
        }
        assert_eq!(c.allowed(None), None);
    }
}
