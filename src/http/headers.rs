//! Header rewriting for the proxy: what the origin may trust, and what the
//! client may trust of the origin's answer.
//!
//! Dropped from the incoming request, whatever their case or punctuation,
//! by family rather than by list (see [`is_stripped`]): every name that
//! names identity (any name that, lower-cased and with `_` read as `-`,
//! starts with `x-wx-`); `Authorization` (the edge token stays at the
//! edge) and `Host` (the runtime sets it for the origin); every name that
//! could tell the origin where the client is, which host or URL or method
//! it asked for, or what an upstream proxy saw (`Forwarded`,
//! `X-Forwarded-*`, any `*client-ip*`, `X-Real-IP`, `X-Original-*`,
//! `X-Rewrite-*`, `X-Host`, `X-HTTP-Method*`, `X-Method-Override`,
//! `Proxy-*`, `X-ProxyUser-Ip`, ...); and every `CF-*` header (Cloudflare's
//! own are the runtime's to set). Then the worker adds `X-WX-Client-IP` and
//! `X-Forwarded-For` (the address Cloudflare saw), `X-Forwarded-Proto`,
//! and the identity headers when a valid token was shown. Everything else
//! passes unchanged, duplicates included.
//!
//! From the origin's answer the worker removes `X-WX-Edge-Error` and every
//! other `x-wx-*` header ([`is_withheld_from_answer`]): only the worker's
//! own answers carry its error marker, so a client can act on it.

use crate::ids::{AppId, Subject};

/// The identity the worker vouches for on a proxied request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) subject: Subject,
    pub(crate) appid: AppId,
}

pub(crate) const X_WX_OPENID: &str = "X-WX-OpenID";
pub(crate) const X_WX_UNIONID: &str = "X-WX-UnionID";
pub(crate) const X_WX_APPID: &str = "X-WX-AppID";
pub(crate) const X_WX_PHONE: &str = "X-WX-Phone";
pub(crate) const X_WX_PHONE_COUNTRY: &str = "X-WX-Phone-Country";
pub(crate) const X_WX_IDENTITY: &str = "X-WX-Identity";
pub(crate) const X_WX_CLIENT_IP: &str = "X-WX-Client-IP";

/// Where the request came from, as the trusted proxy in front (Cloudflare,
/// or the self-host profile's reverse proxy), not the client, says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Client<'a> {
    /// From `CLIENT_IP_HEADER` (`CF-Connecting-IP` on Cloudflare).
    pub(crate) ip: Option<&'a str>,
    /// The scheme the client used: `https` or `http`.
    pub(crate) proto: &'a str,
}

/// Names a client may not send on, after lower-casing and reading any
/// punctuation as `-`: exact names.
const STRIPPED: &[&str] = &["authorization", "host", "forwarded", "x-forwarded"];

/// Prefixes of the same: identity, forwarding, URL and method overrides,
/// proxies, and Cloudflare's own.
const STRIPPED_PREFIXES: &[&str] = &[
    "x-wx-",
    "x-forwarded-",
    "forwarded-",
    "x-original-",
    "x-rewrite-",
    "x-http-method",
    "x-method-",
    "proxy-",
    "x-proxy-",
    "x-envoy-",
    "cf-",
];

// What a name that gives a client's address contains once its dashes are
// gone: one list with the check of `CLIENT_IP_HEADER`, so the header the
// worker trusts is always one it strips.
use crate::config::ADDRESS_PARTS;

/// Words (between dashes) that make a name an override of what the client
/// asked for: `X-Host`, `X-HTTP-Host-Override`, `X-Backend-Host`,
/// `X-Override-URL`.
const OVERRIDE_WORDS: &[&str] = &["host", "override"];

/// A header name as the stripping rule reads it: trimmed, lower-cased, any
/// punctuation read as `-`.
pub(crate) fn normalized_name(name: &str) -> String {
    name.trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// Whether a client-sent header must not reach the origin. Beyond the
/// contract's `_` for `-`, any punctuation counts as `-` (`X-WX.OpenID`),
/// since some servers map every such name to the same `HTTP_X_WX_OPENID`.
/// Judged by family: a name is dropped when it is one of [`STRIPPED`],
/// starts with one of [`STRIPPED_PREFIXES`], contains one of
/// [`ADDRESS_PARTS`] once its dashes are gone, or has one of
/// [`OVERRIDE_WORDS`] as a word. A family may catch a harmless name too
/// (`X-Backend-Host`): the origin never needs the client's word for any
/// of these.
pub(crate) fn is_stripped(name: &str) -> bool {
    let n = normalized_name(name);
    if STRIPPED.contains(&n.as_str()) || STRIPPED_PREFIXES.iter().any(|p| n.starts_with(p)) {
        return true;
    }
    let squashed: String = n.chars().filter(|c| *c != '-').collect();
    ADDRESS_PARTS.iter().any(|p| squashed.contains(p))
        || n.split('-').any(|w| OVERRIDE_WORDS.contains(&w))
}

/// Whether a header of the origin's answer is withheld from the client:
/// `X-WX-Edge-Error` and every other `x-wx-*` name, read as
/// [`normalized_name`] reads it. The worker's own answers are the only
/// ones to carry them.
pub(crate) fn is_withheld_from_answer(name: &str) -> bool {
    normalized_name(name).starts_with("x-wx-")
}

/// The names of an origin's answer to remove (each once, as given).
pub(crate) fn withheld_from_answer(names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in names {
        if is_withheld_from_answer(n) && !out.iter().any(|o| o.eq_ignore_ascii_case(n)) {
            out.push(n.clone());
        }
    }
    out
}

/// What the worker adds: the client's address and scheme, then — when a
/// valid token was shown — the identity and its assertion.
pub(crate) fn added_headers(
    client: Client<'_>,
    identity: Option<&Identity>,
    assertion: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::with_capacity(9);
    if let Some(ip) = client.ip {
        out.push((X_WX_CLIENT_IP, ip.to_string()));
        out.push(("X-Forwarded-For", ip.to_string()));
    }
    out.push(("X-Forwarded-Proto", client.proto.to_string()));
    if let Some(id) = identity {
        out.push((X_WX_OPENID, id.subject.openid.to_string()));
        if let Some(u) = &id.subject.unionid {
            out.push((X_WX_UNIONID, u.to_string()));
        }
        out.push((X_WX_APPID, id.appid.to_string()));
        if let Some(p) = &id.subject.phone {
            out.push((X_WX_PHONE, p.pure_phone_number().to_string()));
            out.push((X_WX_PHONE_COUNTRY, p.country_code().to_string()));
        }
        if let Some(a) = assertion {
            out.push((X_WX_IDENTITY, a.to_string()));
        }
    }
    out
}

/// A header list the rewrite can edit in place: the runtime's `Headers` in
/// the shell (so values never cross into wasm), a `Vec` in tests.
pub(crate) trait HeaderList {
    type Error;
    /// Every name present (duplicates may repeat).
    fn names(&self) -> Vec<String>;
    /// Removes every header of that name.
    fn delete(&mut self, name: &str) -> Result<(), Self::Error>;
    /// Sets the header, replacing any of that name.
    fn set(&mut self, name: &str, value: &str) -> Result<(), Self::Error>;
}

/// Rewrites the incoming headers in place into what the origin receives:
/// every stripped name deleted, then the worker's own set.
pub(crate) fn rewrite_in_place<H: HeaderList>(
    headers: &mut H,
    client: Client<'_>,
    identity: Option<&Identity>,
    assertion: Option<&str>,
) -> Result<(), H::Error> {
    for name in headers.names() {
        if is_stripped(&name) {
            headers.delete(&name)?;
        }
    }
    for (name, value) in added_headers(client, identity, assertion) {
        headers.set(name, &value)?;
    }
    Ok(())
}

impl HeaderList for Vec<(String, String)> {
    type Error = std::convert::Infallible;
    fn names(&self) -> Vec<String> {
        self.iter().map(|(n, _)| n.clone()).collect()
    }
    fn delete(&mut self, name: &str) -> Result<(), Self::Error> {
        self.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        Ok(())
    }
    fn set(&mut self, name: &str, value: &str) -> Result<(), Self::Error> {
        self.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.push((name.to_string(), value.to_string()));
        Ok(())
    }
}

/// The headers to send to the origin, as a new list (tests, fuzzing).
#[cfg(any(test, fuzzing))]
pub(crate) fn rewrite_request_headers(
    incoming: &[(String, String)],
    client: Client<'_>,
    identity: Option<&Identity>,
    assertion: Option<&str>,
) -> Vec<(String, String)> {
    let mut out = incoming.to_vec();
    match rewrite_in_place(&mut out, client, identity, assertion) {
        Ok(()) | Err(_) => out,
    }
}

/// The bearer token of an `Authorization` header, if it has one.
pub(crate) fn bearer(authorization: Option<&str>) -> Option<&str> {
    let v = authorization?.trim();
    let (scheme, token) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{OpenId, UnionId};
    use crate::phone::Phone;
    use crate::testkit::ISSUE_18_NAMES;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    const ANON: Client<'static> = Client {
        ip: None,
        proto: "https",
    };

    fn id() -> Identity {
        Identity {
            subject: Subject {
                openid: OpenId::new("oReal"),
                unionid: Some(UnionId::new("uReal")),
                phone: Some(Phone::for_tests("13800138000", "13800138000", "86")),
            },
            appid: AppId::new("wxapp"),
        }
    }

    #[test]
    fn spoofed_identity_headers_are_stripped_in_every_spelling() {
        let incoming = h(&[
            ("X-WX-OpenID", "oFake"),
            ("x-wx-openid", "oFake"),
            ("X_WX_OPENID", "oFake"),
            ("x_Wx-Phone", "110"),
            ("X-Wx-Identity", "forged"),
            ("X-WX.OpenID", "oFake"),
            ("x-wx-anything-new", "1"),
            (" X-WX-UnionID", "uFake"),
            ("Authorization", "Bearer edge-token"),
            ("AUTHORIZATION", "Basic x"),
            ("Host", "evil.example"),
            ("Content-Type", "application/json"),
            ("X-Request-Id", "r1"),
            ("Accept", "a"),
            ("Accept", "b"),
            ("X-WXY", "kept: not the x-wx- prefix"),
        ]);
        let out = rewrite_request_headers(&incoming, ANON, None, None);
        assert_eq!(
            out,
            h(&[
                ("Content-Type", "application/json"),
                ("X-Request-Id", "r1"),
                ("Accept", "a"),
                ("Accept", "b"),
                ("X-WXY", "kept: not the x-wx- prefix"),
                ("X-Forwarded-Proto", "https"),
            ])
        );
    }

    #[test]
    fn trusted_headers_are_added_once() {
        let incoming = h(&[("X-WX-OpenID", "oFake"), ("Accept", "*/*")]);
        let out = rewrite_request_headers(&incoming, ANON, Some(&id()), Some("jwt"));
        assert_eq!(
            out,
            h(&[
                ("Accept", "*/*"),
                ("X-Forwarded-Proto", "https"),
                ("X-WX-OpenID", "oReal"),
                ("X-WX-UnionID", "uReal"),
                ("X-WX-AppID", "wxapp"),
                ("X-WX-Phone", "13800138000"),
                ("X-WX-Phone-Country", "86"),
                ("X-WX-Identity", "jwt"),
            ])
        );
    }

    #[test]
    fn optional_identity_parts_are_omitted() {
        let mut i = id();
        i.subject.unionid = None;
        i.subject.phone = None;
        let out = rewrite_request_headers(&[], ANON, Some(&i), None);
        let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            vec!["X-Forwarded-Proto", "X-WX-OpenID", "X-WX-AppID"]
        );
    }

    #[test]
    fn spoofed_forwarding_headers_are_replaced_by_what_cloudflare_saw() {
        let incoming = h(&[
            ("X-Forwarded-For", "10.0.0.1"),
            ("x-forwarded-for", "10.0.0.2"),
            ("X_Forwarded_Host", "admin.internal"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Prefix", "/admin"),
            ("Forwarded", "for=10.0.0.3;proto=https"),
            ("X-Real-IP", "10.0.0.4"),
            ("True-Client-IP", "10.0.0.5"),
            ("X-Client-IP", "10.0.0.6"),
            ("x-original-url", "/admin"),
            ("X-Rewrite-URL", "/admin"),
            ("X.Real.IP", "10.0.0.7"),
            (" FORWARDED ", "for=x"),
            ("X-WX-Client-IP", "10.0.0.8"),
            ("CF-Connecting-IP", "203.0.113.9"),
            ("X-Forwarded", "for=10.0.0.9"),
            ("Forwarded-For", "10.0.0.10"),
            ("X-Forwardedness", "kept: not a forwarding header"),
        ]);
        let client = Client {
            ip: Some("203.0.113.9"),
            proto: "http",
        };
        let out = rewrite_request_headers(&incoming, client, None, None);
        assert_eq!(
            out,
            h(&[
                ("X-Forwardedness", "kept: not a forwarding header"),
                ("X-WX-Client-IP", "203.0.113.9"),
                ("X-Forwarded-For", "203.0.113.9"),
                ("X-Forwarded-Proto", "http"),
            ])
        );
    }

    #[test]
    fn every_family_is_stripped_not_just_a_list() {
        let families = [
            "X-Original-Host",
            "X-Host",
            "X-HTTP-Method-Override",
            "X-HTTP-Method",
            "X-Method-Override",
            "Client-IP",
            "X-Cluster-Client-IP",
            "X-Original-Forwarded-For",
            "X-ProxyUser-Ip",
            "Fastly-Client-IP",
            "Proxy-Connection",
            "Proxy-Authorization",
            "Fly-Client-IP",
            "X-Azure-ClientIP",
            "X-AppEngine-User-IP",
            "X-Remote-Addr",
            "X-Client-Addr",
            "X-Originating-IP",
            "X-Original-URI",
            "X-Original-Method",
            "X-Rewrite-Path",
            "X-HTTP-Host-Override",
            "X-Backend-Host",
            "X-Forwarded-Server",
            "x_forwarded_port",
            "X-Envoy-External-Address",
            "CF-IPCountry",
            "cf-access-jwt-assertion",
            "CF-Worker",
            "CF-Connecting-IPv6",
            "True-Client-IP",
        ];
        for name in families.iter().chain(ISSUE_18_NAMES) {
            assert!(is_stripped(name), "{name} would reach the origin");
            assert!(is_stripped(&name.to_ascii_lowercase()), "{name}");
            assert!(is_stripped(&name.replace('-', "_")), "{name}");
        }
        for kept in [
            "Accept",
            "Content-Type",
            "X-Request-Id",
            "User-Agent",
            "X-WXY",
            "Cookie",
            "X-Hostname-Hint-Not",
            "Ghost",
            "X-Forwardedness",
        ] {
            let stripped = is_stripped(kept);
            // `X-Hostname-Hint-Not` has no word `host`; `Ghost` neither.
            assert!(!stripped, "{kept} is stripped");
        }
    }

    #[test]
    fn only_the_worker_answers_with_its_marker() {
        for name in [
            "X-WX-Edge-Error",
            "x-wx-edge-error",
            "X_WX_Edge_Error",
            "X-WX-OpenID",
            "x-wx-anything",
        ] {
            assert!(is_withheld_from_answer(name), "{name}");
        }
        for name in ["Content-Type", "Retry-After", "X-WXY", "Set-Cookie"] {
            assert!(!is_withheld_from_answer(name), "{name}");
        }
        let names: Vec<String> = [
            "Content-Type",
            "x-wx-edge-error",
            "X-WX-Edge-Error",
            "x-wx-phone",
        ]
        .iter()
        .map(|s| (*s).to_string())
        .collect();
        assert_eq!(
            withheld_from_answer(&names),
            vec!["x-wx-edge-error".to_string(), "x-wx-phone".to_string()]
        );
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(Some("abc")), None);
        assert_eq!(bearer(None), None);
    }
}
