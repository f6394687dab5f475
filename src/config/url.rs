//! `ORIGIN_URL` and `WX_API_BASE`: plain base URLs, read by hand.

/// Parses an http(s) base URL: returns it without a trailing slash, in
/// canonical form (scheme and host lower-cased, the default port left out,
/// an IPv6 address compressed), and its origin (`scheme://host[:port]`).
///
/// Parsed by hand rather than by a URL library (whose Unicode tables would
/// be most of the worker's size), so it accepts only what is plainly
/// `http(s)://host[:port][/path]`, and refuses, rather than rewrites,
/// anything a URL parser would have to interpret: credentials (which the
/// runtime's `fetch` refuses too), a query or fragment, a host that is not
/// ASCII (give its `xn--` form) or an IPv4 address in other than dotted-quad
/// form, a path with dot segments, whitespace or characters URLs escape.
pub(super) fn http_base(v: &str) -> Result<(String, String), &'static str> {
    const NOT_HTTP: &str = "is not an http(s) URL";
    let (scheme, rest) = v.split_once("://").ok_or(NOT_HTTP)?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return Err(NOT_HTTP),
    };
    if rest.contains(['?', '#']) {
        return Err("may not have a query or fragment");
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.contains('@') {
        return Err("may not contain credentials (user@host)");
    }
    let (host, port) = host_and_port(authority)?;
    let port = match port {
        None | Some("") => None,
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().map_err(|_| "has an invalid port")?)
        }
        Some(_) => return Err("has an invalid port"),
    };
    let origin = match port {
        Some(p) if p != default_port => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    };
    if !plain_path(path) {
        return Err("has a path that is not plain (dot segments, spaces or characters to escape)");
    }
    Ok((format!("{origin}{}", path.trim_end_matches('/')), origin))
}

/// [`http_base`], `https://` only, except for a loopback host (development
/// and tests): the assertion, the phone and the AppSecret travel to these
/// URLs.
pub(super) fn tls_base(v: &str) -> Result<(String, String), &'static str> {
    let (base, origin) = http_base(v)?;
    if origin.starts_with("https://") || is_loopback(&origin) {
        Ok((base, origin))
    } else {
        Err("must be an https:// URL (http:// only for a loopback host)")
    }
}

/// Whether a canonical origin's host is loopback: 127.0.0.0/8,
/// `localhost` or `[::1]`.
fn is_loopback(origin: &str) -> bool {
    let Some((_, authority)) = origin.split_once("://") else {
        return false;
    };
    if authority == "[::1]" || authority.starts_with("[::1]:") {
        return true;
    }
    let host = authority.split(':').next().unwrap_or_default();
    host == "localhost"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback())
}

/// The host (canonical) and the port (as written) of an authority.
fn host_and_port(authority: &str) -> Result<(String, Option<&str>), &'static str> {
    const BAD_HOST: &str = "has an invalid host";
    if let Some(v6) = authority.strip_prefix('[') {
        let (address, after) = v6.split_once(']').ok_or(BAD_HOST)?;
        let address: std::net::Ipv6Addr = address.parse().map_err(|_| BAD_HOST)?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or("has an invalid port")?),
        };
        return Ok((format!("[{address}]"), port));
    }
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    Ok((reg_name(host).ok_or(BAD_HOST)?, port))
}

/// A host name, lower-cased: ASCII letters, digits, `-` and `_` in
/// non-empty labels separated by dots. One whose last label is a number is
/// an IPv4 address to a URL parser, so it must be one, in dotted-quad form.
fn reg_name(host: &str) -> Option<String> {
    let host = host.to_ascii_lowercase();
    let labels_ok = host.split('.').all(|label| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    let last = host.rsplit('.').next().unwrap_or_default();
    let numeric = last.bytes().all(|b| b.is_ascii_digit()) || last.starts_with("0x");
    if !labels_ok || (numeric && host.parse::<std::net::Ipv4Addr>().is_err()) {
        return None;
    }
    Some(host)
}

/// Whether `path` is empty or `/`-separated segments of unreserved
/// characters, sub-delimiters, `:`, `@` and well-formed `%XX` escapes, none
/// of them `.` or `..` (plainly or escaped).
fn plain_path(path: &str) -> bool {
    let bytes = path.as_bytes();
    let escapes_ok = bytes.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || (bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    });
    let chars_ok = path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@%/".contains(&b));
    let no_dots = path.split('/').all(|segment| {
        let s = segment.to_ascii_lowercase().replace("%2e", ".");
        s != "." && s != ".."
    });
    (path.is_empty() || path.starts_with('/')) && escapes_ok && chars_ok && no_dots
}
