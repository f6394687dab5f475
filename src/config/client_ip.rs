//! `CLIENT_IP_HEADER`: the one request header the worker believes for the
//! client's address (rate-limit keys, `last_login_ip`, `X-WX-Client-IP`).
//!
//! On Cloudflare that is `CF-Connecting-IP`, which Cloudflare's edge sets.
//! On a server of one's own (the self-host profile) nothing overwrites it,
//! so the reverse proxy in front sets a header of its own (nginx:
//! `proxy_set_header X-Real-IP $remote_addr;`) and this setting names it.
//! Only client-address names are accepted (`X-Real-IP`, `True-Client-IP`,
//! `CF-*`, ...): the proxy strips that whole family from what it forwards,
//! so a client's copy of the header never reaches the origin either
//! (`boundary_props` checks that every name accepted here is stripped).

/// Cloudflare's header: set by its edge, whatever the client sent.
pub(crate) const DEFAULT_CLIENT_IP_HEADER: &str = "CF-Connecting-IP";

/// Longer names are not what a proxy sets.
const MAX_NAME: usize = 64;

/// What a name that gives a client's address contains once lower-cased
/// and without its punctuation (`True-Client-IP`, `X-Cluster-Client-IP`,
/// `X_Real_IP`, `X-ProxyUser-Ip`, `X-AppEngine-User-IP`,
/// `X-Remote-Addr`, ...). The proxy strips every such name
/// (`crate::http::headers`, which reads this list), so the header named
/// here never reaches the origin as the client sent it.
pub(crate) const ADDRESS_PARTS: &[&str] = &[
    "clientip",
    "clientaddr",
    "remoteip",
    "remoteaddr",
    "realip",
    "userip",
    "socketip",
    "originatingip",
    "connectingip",
];

/// The header to read the client's address from: `CF-Connecting-IP` when
/// unset, else the name given (trimmed; header names match in any case).
pub(super) fn client_ip_header(v: Option<String>) -> Result<String, &'static str> {
    let Some(name) = v else {
        return Ok(DEFAULT_CLIENT_IP_HEADER.to_string());
    };
    if name.is_empty() || name.len() > MAX_NAME || !name.bytes().all(is_token_byte) {
        return Err("is not a header name");
    }
    // Lower-cased, any punctuation read as `-` (as the proxy reads names).
    let n: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    // The worker's own, or lists that each proxy appends to.
    if n.starts_with("x-wx-") || n.starts_with("forwarded") || n.starts_with("x-forwarded-for") {
        return Err(
            "may not name X-Forwarded-For, Forwarded or an X-WX- header: name one the proxy overwrites, such as X-Real-IP",
        );
    }
    let squashed: String = n.chars().filter(|c| *c != '-').collect();
    if !(n.starts_with("cf-") || ADDRESS_PARTS.iter().any(|p| squashed.contains(p))) {
        return Err(
            "must name a client-address header that the worker strips before proxying, such as X-Real-IP",
        );
    }
    Ok(name)
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::config::{load, vars};

    fn parsed(v: &str) -> Result<String, &'static str> {
        client_ip_header(Some(v.to_string()))
    }

    #[test]
    fn defaults_to_cloudflares_header() {
        assert_eq!(client_ip_header(None).as_deref(), Ok("CF-Connecting-IP"));
        let cfg = load(&vars()).expect("valid");
        assert_eq!(cfg.client_ip_header, "CF-Connecting-IP");
    }

    #[test]
    fn a_proxys_address_header_is_accepted_as_given() {
        for name in [
            "X-Real-IP",
            "x-real-ip",
            "True-Client-IP",
            "X-Client-IP",
            "X_Real_IP",
            "CF-Connecting-IP",
            "X-Forwarded-Client-Addr",
        ] {
            assert_eq!(parsed(name).as_deref(), Ok(name), "{name}");
        }
        let mut v = vars();
        v.insert("CLIENT_IP_HEADER", "  X-Real-IP ".to_string());
        assert_eq!(load(&v).expect("valid").client_ip_header, "X-Real-IP");
    }

    #[test]
    fn a_header_the_client_could_pass_to_the_origin_is_refused() {
        // Not stripped by the proxy: the client's own value would reach the
        // origin, and nothing says the reverse proxy overwrites it.
        for name in [
            "X-Custom",
            "User-Agent",
            "Via",
            "Referer",
            "X-Edge-Addr",
            "X-Edge-IP",
            "Authorization",
            "Host",
            "X-Forwarded-Host",
        ] {
            assert!(parsed(name).is_err(), "{name}");
        }
    }

    #[test]
    fn lists_and_headers_with_another_meaning_are_refused() {
        for name in [
            "X-Forwarded-For",
            "x_forwarded_for",
            "Forwarded",
            "X-Forwarded-For-Client-IP",
            "X-WX-Client-IP",
            "x_wx_client_ip",
            "X-WX-OpenID",
        ] {
            assert!(parsed(name).is_err(), "{name}");
        }
    }

    #[test]
    fn what_is_not_a_header_name_is_refused_and_never_echoed() {
        let long = format!("X-Real-IP-{}", "a".repeat(60));
        for name in [
            "X Real IP",
            "X-Real-IP:",
            "X-Real-IP\r\nX-Injected: 1",
            "Réal-IP",
            "(X-Real-IP)",
            long.as_str(),
        ] {
            let mut v = vars();
            v.insert("CLIENT_IP_HEADER", name.to_string());
            let e = load(&v).expect_err(name);
            assert_eq!(e.variable, "CLIENT_IP_HEADER");
            assert!(!e.to_string().contains(name.trim()), "{e}");
        }
    }
}
