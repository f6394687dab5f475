//! Header rewriting for the proxy: what the origin may trust.
//!
//! Dropped from the incoming request, whatever their case or punctuation:
//! every name that names identity (any name that, lower-cased and with `_`
//! read as `-`, starts with `x-wx-`); `Authorization` (the edge token stays
//! at the edge) and `Host` (the runtime sets it for the origin); and what a
//! client could use to lie about where it is or what it asked for:
//! `Forwarded`, `X-Forwarded-*`, `X-Real-IP`, `True-Client-IP`,
//! `X-Client-IP`, `X-Original-URL`, `X-Rewrite-URL`. Then the worker adds
//! `X-WX-Client-IP` and `X-Forwarded-For` (the address Cloudflare saw),
//! `X-Forwarded-Proto`, and the identity headers when a valid token was
//! shown. Everything else passes unchanged, duplicates included.

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

/// Where the request came from, as Cloudflare (not the client) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Client<'a> {
    /// `CF-Connecting-IP`.
    pub(crate) ip: Option<&'a str>,
    /// The scheme the client used: `https` or `http`.
    pub(crate) proto: &'a str,
}

/// Names a client may not send on, after lower-casing and reading any
/// punctuation as `-` (exact names; `x-forwarded-` and `x-wx-` are
/// prefixes).
const STRIPPED: &[&str] = &[
    "authorization",
    "host",
    "forwarded",
    "x-real-ip",
    "true-client-ip",
    "x-client-ip",
    "x-original-url",
    "x-rewrite-url",
];

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
pub(crate) fn is_stripped(name: &str) -> bool {
    let n = normalized_name(name);
    n.starts_with("x-wx-") || n.starts_with("x-forwarded-") || STRIPPED.contains(&n.as_str())
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
            ("X-Forwarded", "kept: not the x-forwarded- prefix"),
            ("Forwarded-By", "kept: another name"),
        ]);
        let client = Client {
            ip: Some("203.0.113.9"),
            proto: "http",
        };
        let out = rewrite_request_headers(&incoming, client, None, None);
        assert_eq!(
            out,
            h(&[
                ("CF-Connecting-IP", "203.0.113.9"),
                ("X-Forwarded", "kept: not the x-forwarded- prefix"),
                ("Forwarded-By", "kept: another name"),
                ("X-WX-Client-IP", "203.0.113.9"),
                ("X-Forwarded-For", "203.0.113.9"),
                ("X-Forwarded-Proto", "http"),
            ])
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
