//! Access tokens: short-lived HS256 JWTs.
//!
//! Design choices:
//! - The header says `typ: at+jwt` (RFC 9068) and the claims say
//!   `token_use: access` and `aud: <appid>`, so neither an identity
//!   assertion nor a token of another deployment passes for one.
//! - Time is an argument (`now`, Unix seconds): the shell reads the
//!   runtime's clock, tests pass any instant.

use jwt_compact::alg::{Hs256, Hs256Key};
use jwt_compact::{AlgorithmExt, Claims, Header, TimeOptions, UntrustedToken};
use serde::{Deserialize, Serialize};

use super::{instant, ISSUER};
use crate::ids::{OpenId, SessionId};

pub(crate) const ACCESS_TYP: &str = "at+jwt";
const TOKEN_USE_ACCESS: &str = "access";

/// The HS256 key (`TOKEN_SECRET`). Refuses keys too short or too uniform
/// to be safe.
pub(crate) struct TokenKey(Hs256Key);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey([redacted])")
    }
}

pub(crate) const MIN_SECRET_BYTES: usize = 32;

impl TokenKey {
    pub(crate) fn new(secret: &str) -> Result<Self, &'static str> {
        let bytes = secret.as_bytes();
        if bytes.len() < MIN_SECRET_BYTES {
            return Err("is too short: use at least 32 random bytes (openssl rand -base64 48)");
        }
        let mut distinct = bytes.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() < 12 {
            return Err("is too predictable: use random bytes (openssl rand -base64 48)");
        }
        Ok(TokenKey(Hs256Key::new(bytes)))
    }
}

/// What an access token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AccessClaims {
    pub(crate) iss: String,
    pub(crate) aud: String,
    /// The openid.
    pub(crate) sub: OpenId,
    /// The session id.
    pub(crate) sid: SessionId,
    pub(crate) token_use: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) unionid: Option<String>,
    /// Bound phone (purePhoneNumber) and its country code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) phone: Option<String>,
    #[serde(rename = "phone_cc", default, skip_serializing_if = "Option::is_none")]
    pub(crate) country_code: Option<String>,
}

impl AccessClaims {
    pub(crate) fn new(appid: &str, openid: &OpenId, sid: &SessionId) -> Self {
        AccessClaims {
            iss: ISSUER.into(),
            aud: appid.into(),
            sub: openid.clone(),
            sid: sid.clone(),
            token_use: TOKEN_USE_ACCESS.into(),
            unionid: None,
            phone: None,
            country_code: None,
        }
    }
}

/// Why an access token was not accepted, or could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AccessError {
    /// Malformed, badly signed, wrong type, audience or issuer.
    Invalid,
    /// Genuine but past `exp`.
    Expired,
    /// Signing failed (a bug or an impossible time).
    Signing,
}

/// A verified access token: its claims and its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VerifiedAccess {
    pub(crate) claims: AccessClaims,
    pub(crate) expires_at: i64,
}

/// Issues an access token valid for `ttl` seconds from `now`.
pub(crate) fn issue_access(
    key: &TokenKey,
    claims: &AccessClaims,
    now: i64,
    ttl: u64,
) -> Result<String, AccessError> {
    let ttl = i64::try_from(ttl).map_err(|_| AccessError::Signing)?;
    let mut c = Claims::new(claims.clone());
    c.issued_at = Some(instant(now));
    c.expiration = Some(instant(now.saturating_add(ttl)));
    let header = Header::empty().with_token_type(ACCESS_TYP);
    Hs256
        .token(&header, &c, &key.0)
        .map_err(|_| AccessError::Signing)
}

/// Verifies signature, type, audience and expiry.
pub(crate) fn verify_access(
    key: &TokenKey,
    appid: &str,
    token: &str,
    now: i64,
) -> Result<VerifiedAccess, AccessError> {
    verify(key, appid, token, Some(now))
}

/// Like [`verify_access`] but accepts an expired token: for logout, so a
/// client whose access token just ran out can still end its session.
pub(crate) fn verify_access_ignoring_expiry(
    key: &TokenKey,
    appid: &str,
    token: &str,
) -> Result<VerifiedAccess, AccessError> {
    verify(key, appid, token, None)
}

fn verify(
    key: &TokenKey,
    appid: &str,
    token: &str,
    now: Option<i64>,
) -> Result<VerifiedAccess, AccessError> {
    let untrusted = UntrustedToken::new(token).map_err(|_| AccessError::Invalid)?;
    if untrusted.header().token_type.as_deref() != Some(ACCESS_TYP) {
        return Err(AccessError::Invalid);
    }
    // The validator refuses any `alg` but HS256 (so `none` and EdDSA too).
    let verified = Hs256
        .validator::<AccessClaims>(&key.0)
        .validate(&untrusted)
        .map_err(|_| AccessError::Invalid)?;
    let claims = verified.claims();
    if claims.custom.token_use != TOKEN_USE_ACCESS
        || claims.custom.aud != appid
        || claims.custom.iss != ISSUER
        || claims.issued_at.is_none()
    {
        return Err(AccessError::Invalid);
    }
    let expires_at = claims.expiration.ok_or(AccessError::Invalid)?.timestamp();
    if let Some(now) = now {
        let options = TimeOptions::new(chrono::Duration::zero(), move || instant(now));
        claims
            .validate_expiration(&options)
            .map_err(|_| AccessError::Expired)?;
    }
    Ok(VerifiedAccess {
        claims: claims.custom.clone(),
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::TEST_SECRET;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
    use base64::Engine;

    const APPID: &str = "wxd930ea5d5a258f4f";
    const NOW: i64 = 1_764_000_000;

    fn key() -> TokenKey {
        TokenKey::new(TEST_SECRET).expect("strong")
    }

    fn claims() -> AccessClaims {
        let mut c = AccessClaims::new(APPID, &OpenId::new("oUser"), &SessionId::new("sid123"));
        c.phone = Some("13800138000".into());
        c.country_code = Some("86".into());
        c
    }

    fn b64(part: &serde_json::Value) -> String {
        B64URL.encode(serde_json::to_vec(part).expect("json"))
    }

    #[test]
    fn issue_then_verify_roundtrips() {
        let t = issue_access(&key(), &claims(), NOW, 600).expect("issue");
        let v = verify_access(&key(), APPID, &t, NOW + 599).expect("valid");
        assert_eq!(v.claims, claims());
        assert_eq!(v.expires_at, NOW + 600);
    }

    #[test]
    fn expiry_uses_the_injected_clock() {
        let t = issue_access(&key(), &claims(), NOW, 600).expect("issue");
        assert!(verify_access(&key(), APPID, &t, NOW + 600).is_ok());
        assert_eq!(
            verify_access(&key(), APPID, &t, NOW + 601),
            Err(AccessError::Expired)
        );
        assert!(verify_access_ignoring_expiry(&key(), APPID, &t).is_ok());
    }

    #[test]
    fn another_key_or_app_is_refused() {
        let t = issue_access(&key(), &claims(), NOW, 600).expect("issue");
        let other = TokenKey::new("another-secret-0123456789-ABCDEFGHIJKLMNOP").expect("strong");
        assert_eq!(
            verify_access(&other, APPID, &t, NOW),
            Err(AccessError::Invalid)
        );
        assert_eq!(
            verify_access(&key(), "wx0000000000000000", &t, NOW),
            Err(AccessError::Invalid)
        );
    }

    #[test]
    fn tampered_payload_is_refused() {
        let t = issue_access(&key(), &claims(), NOW, 600).expect("issue");
        let parts: Vec<&str> = t.split('.').collect();
        let mut payload: serde_json::Value =
            serde_json::from_slice(&B64URL.decode(parts[1]).expect("b64")).expect("json");
        payload["sub"] = "oSomeoneElse".into();
        let forged = format!("{}.{}.{}", parts[0], b64(&payload), parts[2]);
        assert_eq!(
            verify_access(&key(), APPID, &forged, NOW),
            Err(AccessError::Invalid)
        );
    }

    #[test]
    fn alg_none_and_wrong_typ_are_refused() {
        let payload = serde_json::json!({
            "iss": ISSUER, "aud": APPID, "sub": "o", "sid": "s", "token_use": "access",
            "iat": NOW, "exp": NOW + 600
        });
        let none = format!(
            "{}.{}.",
            b64(&serde_json::json!({"alg": "none", "typ": ACCESS_TYP})),
            b64(&payload)
        );
        assert_eq!(
            verify_access(&key(), APPID, &none, NOW),
            Err(AccessError::Invalid)
        );

        // Correctly signed, but typed as something else.
        let mut c = Claims::new(claims());
        c.issued_at = Some(instant(NOW));
        c.expiration = Some(instant(NOW + 600));
        let other_typ = Hs256
            .token(&Header::empty().with_token_type("JWT"), &c, &key().0)
            .expect("sign");
        assert_eq!(
            verify_access(&key(), APPID, &other_typ, NOW),
            Err(AccessError::Invalid)
        );

        // Correctly signed and typed, but not an access token.
        let mut refresh_like = claims();
        refresh_like.token_use = "identity".into();
        let t = issue_access(&key(), &refresh_like, NOW, 600).expect("issue");
        assert_eq!(
            verify_access(&key(), APPID, &t, NOW),
            Err(AccessError::Invalid)
        );
    }

    #[test]
    fn garbage_is_invalid_not_a_panic() {
        for t in [
            "",
            "abc",
            "a.b.c",
            "....",
            "eyJhbGciOiJIUzI1NiJ9.e30.",
            &"x".repeat(5000),
        ] {
            assert_eq!(
                verify_access(&key(), APPID, t, NOW),
                Err(AccessError::Invalid),
                "{t}"
            );
        }
    }

    #[test]
    fn weak_secrets_are_refused() {
        assert!(TokenKey::new("short").is_err());
        assert!(TokenKey::new(&"ab".repeat(40)).is_err());
        assert!(TokenKey::new(TEST_SECRET).is_ok());
    }
}
