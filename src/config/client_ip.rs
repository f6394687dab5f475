//! `CLIENT_IP_HEADER`: the one request header the worker believes for the
//! client's address (rate-limit keys, `last_login_ip`, `X-WX-Client-IP`).
//!
//! On Cloudflare that is `CF-Connecting-IP`, which Cloudflare's edge sets.
//! On a server of one's own (the self-host profile) nothing overwrites it,
//! so the reverse proxy in front sets a header of its own (nginx:
//! `proxy_set_header X-Real-IP $remote_addr;`) and this setting names it.
//! Only names the proxy strips from what it forwards are accepted, so a
//! client's copy of the header never reaches the origin either.

use crate::http::headers::{is_stripped, normalized_name};

/// Cloudflare's header: set by its edge, whatever the client sent.
pub(crate) const DEFAULT_CLIENT_IP_HEADER: &str = "CF-Connecting-IP";

/// Longer names are not what a proxy sets.
const MAX_NAME: usize = 64;

/// The header to read the client's address from: `CF-Connecting-IP` when
/// unset, else the name given (trimmed; header names match in any case).
pub(super) fn client_ip_header(v: Option<String>) -> Result<String, &'static str> {
    let Some(name) = v else {
        return Ok(DEFAULT_CLIENT_IP_HEADER.to_string());
    };
    if name.is_empty() || name.len() > MAX_NAME || !name.bytes().all(is_token_byte) {
        return Err("is not a header name");
    }
    let n = normalized_name(&name);
    if n.starts_with("x-wx-") || ["authorization", "host"].contains(&n.as_str()) {
        return Err("names a header that does not carry the client's address");
    }
    // Lists that each proxy appends to: the first entry is the client's.
    if ["forwarded", "x-forwarded", "x-forwarded-for"].contains(&n.as_str()) {
        return Err(
            "may not name a list proxies append to (Forwarded, X-Forwarded-For): name a header the proxy overwrites, such as X-Real-IP",
        );
    }
    if !is_stripped(&name) {
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
        for name in ["X-Custom", "User-Agent", "Via", "Referer", "X-Edge-Addr"] {
            assert!(parsed(name).is_err(), "{name}");
        }
    }

    #[test]
    fn lists_and_headers_with_another_meaning_are_refused() {
        for name in [
            "X-Forwarded-For",
            "x_forwarded_for",
            "Forwarded",
            "X-Forwarded",
            "Authorization",
            "Host",
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

    // Host only: proptest has no wasm32 randomness (as boundary_props).
    #[cfg(not(target_arch = "wasm32"))]
    mod props {
        use super::parsed;
        use crate::http::headers::{rewrite_in_place, Client};
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Whatever name an operator configures, the client's copy of that
            /// header is gone from what the origin receives: only the address
            /// the worker read (as X-WX-Client-IP and X-Forwarded-For) is there.
            #[test]
            fn an_accepted_header_never_reaches_the_origin_as_the_client_sent_it(
                name in prop_oneof![
                    "[A-Za-z0-9_.-]{1,24}",
                    "(X|x)[-_](Real|Client|Remote|Forwarded|CF|cf)[-_](IP|Ip|Addr|Address|Client-IP)",
                    "(CF|Cf|cf)-[A-Za-z-]{1,20}",
                ],
            ) {
                if let Ok(accepted) = parsed(&name) {
                    let mut headers = vec![
                        (accepted.clone(), "198.51.100.66".to_string()),
                        ("CF-Connecting-IP".to_string(), "198.51.100.67".to_string()),
                        ("Accept".to_string(), "*/*".to_string()),
                    ];
                    let client = Client { ip: Some("203.0.113.5"), proto: "https" };
                    rewrite_in_place(&mut headers, client, None, None).expect("vec");
                    prop_assert!(headers.iter().all(|(_, v)| !v.starts_with("198.51.100.6")), "{headers:?}");
                    prop_assert!(headers.iter().any(|(n, v)| n == "X-WX-Client-IP" && v == "203.0.113.5"));
                }
            }
        }
    }
}
