//! Header rewriting for the proxy: what the origin may trust.
//!
//! Every incoming header that names identity is dropped — any name that,
//! lower-cased and with `_` read as `-`, starts with `x-wx-` — together
//! with `Authorization` (the edge token stays at the edge) and `Host` (the
//! runtime sets it for the origin). Then the worker's own identity headers
//! are added. Everything else passes unchanged, duplicates included.

use crate::ids::{AppId, OpenId};

/// The identity the worker vouches for on a proxied request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) openid: OpenId,
    pub(crate) unionid: Option<String>,
    pub(crate) appid: AppId,
    pub(crate) phone: Option<String>,
    pub(crate) country_code: Option<String>,
}

pub(crate) const X_WX_OPENID: &str = "X-WX-OpenID";
pub(crate) const X_WX_UNIONID: &str = "X-WX-UnionID";
pub(crate) const X_WX_APPID: &str = "X-WX-AppID";
pub(crate) const X_WX_PHONE: &str = "X-WX-Phone";
pub(crate) const X_WX_PHONE_COUNTRY: &str = "X-WX-Phone-Country";
pub(crate) const X_WX_IDENTITY: &str = "X-WX-Identity";

/// Whether a client-sent header must not reach the origin. Beyond the
/// contract's `_` for `-`, any punctuation counts as `-` (`X-WX.OpenID`),
/// since some servers map every such name to the same `HTTP_X_WX_OPENID`.
pub(crate) fn is_stripped(name: &str) -> bool {
    let n: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    n.starts_with("x-wx-") || n == "authorization" || n == "host"
}

/// The headers to send to the origin: the incoming ones minus every
/// identity-looking one, plus the worker's (when a valid token was shown).
pub(crate) fn rewrite_request_headers(
    incoming: &[(String, String)],
    identity: Option<&Identity>,
    assertion: Option<&str>,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = incoming
        .iter()
        .filter(|(name, _)| !is_stripped(name))
        .cloned()
        .collect();
    if let Some(id) = identity {
        let mut add = |name: &str, value: &str| out.push((name.to_string(), value.to_string()));
        add(X_WX_OPENID, id.openid.as_str());
        if let Some(u) = &id.unionid {
            add(X_WX_UNIONID, u);
        }
        add(X_WX_APPID, id.appid.as_str());
        if let Some(p) = &id.phone {
            add(X_WX_PHONE, p);
            if let Some(cc) = &id.country_code {
                add(X_WX_PHONE_COUNTRY, cc);
            }
        }
        if let Some(a) = assertion {
            add(X_WX_IDENTITY, a);
        }
    }
    out
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

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn id() -> Identity {
        Identity {
            openid: OpenId::new("oReal"),
            unionid: Some("uReal".into()),
            appid: AppId::new("wxapp"),
            phone: Some("13800138000".into()),
            country_code: Some("86".into()),
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
        let out = rewrite_request_headers(&incoming, None, None);
        assert_eq!(
            out,
            h(&[
                ("Content-Type", "application/json"),
                ("X-Request-Id", "r1"),
                ("Accept", "a"),
                ("Accept", "b"),
                ("X-WXY", "kept: not the x-wx- prefix"),
            ])
        );
    }

    #[test]
    fn trusted_headers_are_added_once() {
        let incoming = h(&[("X-WX-OpenID", "oFake"), ("Accept", "*/*")]);
        let out = rewrite_request_headers(&incoming, Some(&id()), Some("jwt"));
        assert_eq!(
            out,
            h(&[
                ("Accept", "*/*"),
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
        i.unionid = None;
        i.phone = None;
        let out = rewrite_request_headers(&[], Some(&i), None);
        let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["X-WX-OpenID", "X-WX-AppID"]);
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
