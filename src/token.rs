//! Access tokens (HS256 JWTs) and refresh tokens (opaque, stored hashed).
//!
//! Design choices:
//! - The access token's header says `typ: at+jwt` (RFC 9068) and its claims
//!   say `token_use: access` and `aud: <appid>`, so neither an identity
//!   assertion nor a token of another deployment passes for one.
//! - Time is an argument (`now`, Unix seconds): the shell reads the
//!   runtime's clock, tests pass any instant.
//! - A refresh token is `{sid}.{secret}`: 128 random bits of session id and
//!   256 random bits of secret. KV holds only SHA-256 of the secret. On
//!   rotation the next secret is also stored sealed under a key derived from
//!   the previous secret, so a client that refreshes twice within the grace
//!   window receives the same new token instead of a reuse alarm, and nobody
//!   without the previous token can unseal it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use chrono::{DateTime, Utc};
use jwt_compact::alg::{Hs256, Hs256Key};
use jwt_compact::{AlgorithmExt, Claims, Header, TimeOptions, UntrustedToken};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::random::{self, Random};
use crate::secret::RefreshToken;

pub const ACCESS_TYP: &str = "at+jwt";
pub const ISSUER: &str = "wx-edge";
const TOKEN_USE_ACCESS: &str = "access";

/// The HS256 key (`TOKEN_SECRET`). Refuses keys too short or too uniform
/// to be safe.
pub struct TokenKey(Hs256Key);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey([redacted])")
    }
}

pub const MIN_SECRET_BYTES: usize = 32;

impl TokenKey {
    pub fn new(secret: &str) -> Result<Self, &'static str> {
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
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The openid.
    pub sub: String,
    /// The session id.
    pub sid: String,
    pub token_use: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unionid: Option<String>,
    /// Bound phone (purePhoneNumber) and its country code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_cc: Option<String>,
}

impl AccessClaims {
    pub fn new(appid: &str, openid: &str, sid: &str) -> Self {
        AccessClaims {
            iss: ISSUER.into(),
            aud: appid.into(),
            sub: openid.into(),
            sid: sid.into(),
            token_use: TOKEN_USE_ACCESS.into(),
            unionid: None,
            phone: None,
            phone_cc: None,
        }
    }
}

/// A verified access token: its claims and its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAccess {
    pub claims: AccessClaims,
    pub expires_at: i64,
}

pub(crate) fn instant(unix: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(unix, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Issues an access token valid for `ttl` seconds from `now`.
pub fn issue_access(
    key: &TokenKey,
    claims: &AccessClaims,
    now: i64,
    ttl: u64,
) -> Result<String, ApiError> {
    let ttl = i64::try_from(ttl).map_err(|_| ApiError::Internal)?;
    let mut c = Claims::new(claims.clone());
    c.issued_at = Some(instant(now));
    c.expiration = Some(instant(now.saturating_add(ttl)));
    let header = Header::empty().with_token_type(ACCESS_TYP);
    Hs256
        .token(&header, &c, &key.0)
        .map_err(|_| ApiError::Internal)
}

/// Verifies signature, type, audience and expiry.
pub fn verify_access(
    key: &TokenKey,
    appid: &str,
    token: &str,
    now: i64,
) -> Result<VerifiedAccess, ApiError> {
    verify(key, appid, token, Some(now))
}

/// Like [`verify_access`] but accepts an expired token: for logout, so a
/// client whose access token just ran out can still end its session.
pub fn verify_access_ignoring_expiry(
    key: &TokenKey,
    appid: &str,
    token: &str,
) -> Result<VerifiedAccess, ApiError> {
    verify(key, appid, token, None)
}

fn verify(
    key: &TokenKey,
    appid: &str,
    token: &str,
    now: Option<i64>,
) -> Result<VerifiedAccess, ApiError> {
    let untrusted = UntrustedToken::new(token).map_err(|_| ApiError::InvalidToken)?;
    if untrusted.header().token_type.as_deref() != Some(ACCESS_TYP) {
        return Err(ApiError::InvalidToken);
    }
    // The validator refuses any `alg` but HS256 (so `none` and EdDSA too).
    let verified = Hs256
        .validator::<AccessClaims>(&key.0)
        .validate(&untrusted)
        .map_err(|_| ApiError::InvalidToken)?;
    let claims = verified.claims();
    if claims.custom.token_use != TOKEN_USE_ACCESS
        || claims.custom.aud != appid
        || claims.custom.iss != ISSUER
        || claims.issued_at.is_none()
    {
        return Err(ApiError::InvalidToken);
    }
    let expires_at = claims.expiration.ok_or(ApiError::InvalidToken)?.timestamp();
    if let Some(now) = now {
        let options = TimeOptions::new(chrono::Duration::zero(), move || instant(now));
        claims
            .validate_expiration(&options)
            .map_err(|_| ApiError::TokenExpired)?;
    }
    Ok(VerifiedAccess {
        claims: claims.custom.clone(),
        expires_at,
    })
}

/// A new session id: 128 random bits, base64url.
pub fn new_session_id(rng: &impl Random) -> Result<String, ApiError> {
    let b: [u8; 16] = random::bytes(rng).map_err(|_| ApiError::Internal)?;
    Ok(B64URL.encode(b))
}

/// A freshly minted refresh token and what KV keeps of it.
pub struct NewRefresh {
    pub token: RefreshToken,
    pub hash: String,
    secret: [u8; 32],
}

impl NewRefresh {
    pub fn generate(sid: &str, rng: &impl Random) -> Result<Self, ApiError> {
        let secret: [u8; 32] = random::bytes(rng).map_err(|_| ApiError::Internal)?;
        Ok(Self::from_secret(sid, secret))
    }

    fn from_secret(sid: &str, secret: [u8; 32]) -> Self {
        NewRefresh {
            token: RefreshToken::new(format!("{sid}.{}", B64URL.encode(secret))),
            hash: hash_secret(&secret),
            secret,
        }
    }

    /// This token sealed so that only the holder of `previous` can open it.
    pub fn sealed_under(&self, previous: &ParsedRefresh) -> String {
        let pad = seal_pad(&previous.secret);
        let mut out = self.secret;
        for (o, p) in out.iter_mut().zip(pad.iter()) {
            *o ^= p;
        }
        B64URL.encode(out)
    }
}

/// A refresh token as presented by a client, split into its parts.
pub struct ParsedRefresh {
    pub sid: String,
    secret: [u8; 32],
}

impl ParsedRefresh {
    /// Splits `{sid}.{secret}`; `None` for anything else.
    pub fn parse(token: &str) -> Option<Self> {
        let (sid, secret) = token.split_once('.')?;
        let sid_bytes = B64URL.decode(sid).ok()?;
        if sid_bytes.len() != 16 {
            return None;
        }
        let secret: [u8; 32] = B64URL.decode(secret).ok()?.try_into().ok()?;
        Some(ParsedRefresh {
            sid: sid.to_string(),
            secret,
        })
    }

    /// The hash KV keeps for this token.
    pub fn hash(&self) -> String {
        hash_secret(&self.secret)
    }

    /// Opens a token sealed under this one (see [`NewRefresh::sealed_under`]).
    pub fn unseal(&self, sealed: &str) -> Option<NewRefresh> {
        let mut secret: [u8; 32] = B64URL.decode(sealed).ok()?.try_into().ok()?;
        for (s, p) in secret.iter_mut().zip(seal_pad(&self.secret).iter()) {
            *s ^= p;
        }
        Some(NewRefresh::from_secret(&self.sid, secret))
    }
}

fn hash_secret(secret: &[u8; 32]) -> String {
    let mut h = Sha256::new();
    h.update(b"wx-edge/refresh-hash/v1\0");
    h.update(secret);
    B64URL.encode(h.finalize())
}

fn seal_pad(secret: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"wx-edge/refresh-seal/v1\0");
    h.update(secret);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::TEST_SECRET;
    use crate::random::tests::CountingRandom;
    use crate::random::OsRandom;

    const APPID: &str = "wxd930ea5d5a258f4f";
    const NOW: i64 = 1_764_000_000;

    fn key() -> TokenKey {
        TokenKey::new(TEST_SECRET).expect("strong")
    }

    fn claims() -> AccessClaims {
        let mut c = AccessClaims::new(APPID, "oUser", "sid123");
        c.phone = Some("13800138000".into());
        c.phone_cc = Some("86".into());
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
            Err(ApiError::TokenExpired)
        );
        assert!(verify_access_ignoring_expiry(&key(), APPID, &t).is_ok());
    }

    #[test]
    fn another_key_or_app_is_refused() {
        let t = issue_access(&key(), &claims(), NOW, 600).expect("issue");
        let other = TokenKey::new("another-secret-0123456789-ABCDEFGHIJKLMNOP").expect("strong");
        assert_eq!(
            verify_access(&other, APPID, &t, NOW),
            Err(ApiError::InvalidToken)
        );
        assert_eq!(
            verify_access(&key(), "wx0000000000000000", &t, NOW),
            Err(ApiError::InvalidToken)
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
            Err(ApiError::InvalidToken)
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
            Err(ApiError::InvalidToken)
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
            Err(ApiError::InvalidToken)
        );

        // Correctly signed and typed, but not an access token.
        let mut refresh_like = claims();
        refresh_like.token_use = "identity".into();
        let t = issue_access(&key(), &refresh_like, NOW, 600).expect("issue");
        assert_eq!(
            verify_access(&key(), APPID, &t, NOW),
            Err(ApiError::InvalidToken)
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
                Err(ApiError::InvalidToken),
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

    #[test]
    fn session_ids_are_128_bit_and_distinct() {
        let a = new_session_id(&OsRandom).expect("id");
        let b = new_session_id(&OsRandom).expect("id");
        assert_ne!(a, b);
        assert_eq!(B64URL.decode(&a).expect("b64").len(), 16);
    }

    #[test]
    fn refresh_tokens_parse_hash_and_seal() {
        let rng = CountingRandom::default();
        let sid = new_session_id(&rng).expect("sid");
        let first = NewRefresh::generate(&sid, &rng).expect("gen");
        let parsed = ParsedRefresh::parse(first.token.secret()).expect("parses");
        assert_eq!(parsed.sid, sid);
        assert_eq!(parsed.hash(), first.hash);
        // The hash is not the token.
        assert!(!first.token.secret().contains(&first.hash));

        let second = NewRefresh::generate(&sid, &rng).expect("gen");
        assert_ne!(second.hash, first.hash);
        let sealed = second.sealed_under(&parsed);
        let opened = parsed.unseal(&sealed).expect("unseal");
        assert_eq!(opened.token.secret(), second.token.secret());
        // Another token cannot open it.
        let third = NewRefresh::generate(&sid, &rng).expect("gen");
        let third_parsed = ParsedRefresh::parse(third.token.secret()).expect("parses");
        let wrong = third_parsed.unseal(&sealed).expect("same length");
        assert_ne!(wrong.token.secret(), second.token.secret());
    }

    #[test]
    fn malformed_refresh_tokens_do_not_parse() {
        for t in ["", "abc", "a.b", "AAAAAAAAAAAAAAAAAAAAAA.short", "x.y.z"] {
            assert!(ParsedRefresh::parse(t).is_none(), "{t}");
        }
    }
}
