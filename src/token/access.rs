//! Access tokens: short-lived HS256 JWTs.
//!
//! Design choices:
//! - The header says `typ: at+jwt` (RFC 9068) and the claims say
//!   `token_use: access` and `aud: <appid>`, so neither an identity
//!   assertion nor a token of another deployment passes for one.
//! - Time is an argument (`now`, Unix seconds): the shell reads the
//!   runtime's clock, tests pass any instant.
//! - The JWT is made and checked here with `hmac` and `sha2`, not by a JWT
//!   library: one algorithm, one header, a fixed set of claims (the tests
//!   check it against jwt-compact, which issued the tokens before). Only
//!   `alg: HS256` is accepted, the MAC is compared in constant time before
//!   the claims are read, and `exp` and `iat` must be there.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{SigningError, ISSUER};
use crate::ids::{OpenId, SessionId, Subject, UnionId};
use crate::phone::{NotAPhone, Phone};

pub(crate) const ACCESS_TYP: &str = "at+jwt";
const TOKEN_USE_ACCESS: &str = "access";

/// One HS256 key, ready to MAC with, and its `kid`.
struct MacKey {
    mac: Hmac<Sha256>,
    /// Names the key in a token's header without revealing it: 16
    /// base64url characters (12 bytes) of SHA-256 over a label and the key.
    kid: String,
}

impl MacKey {
    fn new(secret: &str) -> Result<Self, &'static str> {
        let bytes = crate::secret::strong_key(secret)?;
        let mac = Hmac::<Sha256>::new_from_slice(bytes).map_err(|_| "is not a usable key")?;
        let mut h = Sha256::new();
        h.update(b"wx-edge/access-kid/v1\0");
        h.update(bytes);
        Ok(MacKey {
            mac,
            kid: B64URL.encode(&h.finalize()[..12]),
        })
    }

    /// The MAC of `signing_input` (`header.payload`).
    fn mac(&self, signing_input: &str) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(signing_input.as_bytes());
        mac
    }
}

/// The HS256 keys: `TOKEN_SECRET`, which makes every token (its `kid` in
/// the header), and `TOKEN_SECRET_PREVIOUS` while a rotation is under way,
/// which only verifies. Refuses keys too short or too uniform to be safe.
pub(crate) struct TokenKey {
    current: MacKey,
    previous: Option<MacKey>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey([redacted])")
    }
}

impl TokenKey {
    pub(crate) fn new(secret: &str) -> Result<Self, &'static str> {
        Ok(TokenKey {
            current: MacKey::new(secret)?,
            previous: None,
        })
    }

    /// This key, with `previous` (`TOKEN_SECRET_PREVIOUS`) also accepted.
    pub(crate) fn with_previous(self, previous: &str) -> Result<Self, &'static str> {
        let previous = MacKey::new(previous)?;
        if previous.kid == self.current.kid {
            return Err("equals TOKEN_SECRET");
        }
        Ok(TokenKey {
            current: self.current,
            previous: Some(previous),
        })
    }

    /// The `kid` new tokens carry.
    pub(crate) fn kid(&self) -> &str {
        &self.current.kid
    }

    /// The key a token's header names: by its `kid`, the current or the
    /// previous key; without a `kid` (a token made before tokens carried
    /// one), the current key only — such tokens were all made under the
    /// `TOKEN_SECRET` of their day, and the runbook has the first rotation
    /// wait one `ACCESS_TOKEN_TTL` after the upgrade, so by then none is
    /// left. An unknown `kid` is no key.
    fn for_kid(&self, kid: Option<&str>) -> Option<&MacKey> {
        match kid {
            None => Some(&self.current),
            Some(kid) => [Some(&self.current), self.previous.as_ref()]
                .into_iter()
                .flatten()
                .find(|k| k.kid == kid),
        }
    }
}

/// What an access token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "AccessWire", try_from = "AccessWire")]
pub(crate) struct AccessClaims {
    pub(crate) iss: String,
    pub(crate) aud: String,
    /// The user (`sub` is the openid), with the unionid and bound phone.
    pub(crate) subject: Subject,
    /// The session id.
    pub(crate) sid: SessionId,
    pub(crate) token_use: String,
}

impl AccessClaims {
    pub(crate) fn new(appid: &str, openid: &OpenId, sid: &SessionId) -> Self {
        AccessClaims {
            iss: ISSUER.into(),
            aud: appid.into(),
            subject: Subject::new(openid.clone()),
            sid: sid.clone(),
            token_use: TOKEN_USE_ACCESS.into(),
        }
    }
}

/// The claims as the token carries them (the form every issued token has:
/// field names and order are pinned by the tests).
#[derive(Serialize, Deserialize)]
struct AccessWire {
    iss: String,
    aud: String,
    sub: OpenId,
    sid: SessionId,
    token_use: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unionid: Option<UnionId>,
    /// Bound phone (purePhoneNumber) and its country code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    phone_cc: Option<String>,
}

impl From<AccessClaims> for AccessWire {
    fn from(c: AccessClaims) -> Self {
        let (phone, phone_cc) = Phone::to_claims(c.subject.phone.as_ref());
        AccessWire {
            iss: c.iss,
            aud: c.aud,
            sub: c.subject.openid,
            sid: c.sid,
            token_use: c.token_use,
            unionid: c.subject.unionid,
            phone,
            phone_cc,
        }
    }
}

impl TryFrom<AccessWire> for AccessClaims {
    type Error = NotAPhone;
    fn try_from(w: AccessWire) -> Result<Self, NotAPhone> {
        Ok(AccessClaims {
            iss: w.iss,
            aud: w.aud,
            subject: Subject {
                openid: w.sub,
                unionid: w.unionid,
                phone: Phone::from_claims(w.phone, w.phone_cc)?,
            },
            sid: w.sid,
            token_use: w.token_use,
        })
    }
}

/// Why an access token was not accepted (verification only: failing to
/// make one is a [`SigningError`], as jwt-compact keeps creation errors
/// apart from parse and validation errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AccessError {
    /// Malformed, badly signed, wrong type, audience or issuer.
    Invalid,
    /// Genuine but past `exp`.
    Expired,
}

/// A verified access token: its claims and its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VerifiedAccess {
    pub(crate) claims: AccessClaims,
    /// `iat`: when the token was issued (what its claims are as of).
    pub(crate) issued_at: i64,
    pub(crate) expires_at: i64,
}

/// The header of every access token (with the key's `kid`).
#[derive(Serialize)]
struct IssuedHeader<'a> {
    alg: &'static str,
    typ: &'static str,
    kid: &'a str,
}

/// The header fields the worker reads.
#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
}

/// The payload as issued: the claims and their times.
#[derive(Serialize)]
struct Issued<'a> {
    #[serde(flatten)]
    claims: &'a AccessClaims,
    iat: i64,
    exp: i64,
}

/// The times of a payload (read apart from the claims, which ignore them).
#[derive(Deserialize)]
struct Times {
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    exp: Option<i64>,
}

/// Issues an access token valid for `ttl` seconds from `now`.
pub(crate) fn issue_access(
    key: &TokenKey,
    claims: &AccessClaims,
    now: i64,
    ttl: u64,
) -> Result<String, SigningError> {
    let ttl = i64::try_from(ttl).map_err(|_| SigningError)?;
    let payload = serde_json::to_vec(&Issued {
        claims,
        iat: now,
        exp: now.saturating_add(ttl),
    })
    .map_err(|_| SigningError)?;
    let header = serde_json::to_vec(&IssuedHeader {
        alg: "HS256",
        typ: ACCESS_TYP,
        kid: key.kid(),
    })
    .map_err(|_| SigningError)?;
    let mut token = B64URL.encode(header);
    token.push('.');
    B64URL.encode_string(payload, &mut token);
    let tag = key.current.mac(&token).finalize().into_bytes();
    token.push('.');
    B64URL.encode_string(tag, &mut token);
    Ok(token)
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

// By value: it is passed to `map_err`.
#[allow(clippy::needless_pass_by_value)]
fn invalid<E>(_: E) -> AccessError {
    AccessError::Invalid
}

fn verify(
    key: &TokenKey,
    appid: &str,
    token: &str,
    now: Option<i64>,
) -> Result<VerifiedAccess, AccessError> {
    let (signing_input, tag) = token.rsplit_once('.').ok_or(AccessError::Invalid)?;
    let (header, payload) = signing_input.split_once('.').ok_or(AccessError::Invalid)?;
    let header: Header =
        serde_json::from_slice(&B64URL.decode(header).map_err(invalid)?).map_err(invalid)?;
    // HS256 only: `none`, EdDSA and the rest are refused.
    if header.alg != "HS256" || header.typ.as_deref() != Some(ACCESS_TYP) {
        return Err(AccessError::Invalid);
    }
    let mac_key = key
        .for_kid(header.kid.as_deref())
        .ok_or(AccessError::Invalid)?;
    let tag = B64URL.decode(tag).map_err(invalid)?;
    mac_key
        .mac(signing_input)
        .verify_slice(&tag)
        .map_err(invalid)?;
    let payload = B64URL.decode(payload).map_err(invalid)?;
    let claims: AccessClaims = serde_json::from_slice(&payload).map_err(invalid)?;
    let times: Times = serde_json::from_slice(&payload).map_err(invalid)?;
    if claims.token_use != TOKEN_USE_ACCESS || claims.aud != appid || claims.iss != ISSUER {
        return Err(AccessError::Invalid);
    }
    let issued_at = times.iat.ok_or(AccessError::Invalid)?;
    let expires_at = times.exp.ok_or(AccessError::Invalid)?;
    if now.is_some_and(|now| now > expires_at) {
        return Err(AccessError::Expired);
    }
    Ok(VerifiedAccess {
        claims,
        issued_at,
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::TEST_SECRET;
    use chrono::{DateTime, Utc};
    use jwt_compact::alg::{Hs256, Hs256Key};
    use jwt_compact::{AlgorithmExt, Claims, Header, UntrustedToken};

    const APPID: &str = "wxd930ea5d5a258f4f";
    const NOW: i64 = 1_764_000_000;

    fn key() -> TokenKey {
        TokenKey::new(TEST_SECRET).expect("strong")
    }

    fn claims() -> AccessClaims {
        let mut c = AccessClaims::new(APPID, &OpenId::new("oUser"), &SessionId::new("sid123"));
        c.subject.phone = Some(Phone::for_tests("13800138000", "13800138000", "86"));
        c
    }

    fn b64(part: &serde_json::Value) -> String {
        B64URL.encode(serde_json::to_vec(part).expect("json"))
    }

    fn instant(unix: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(unix, 0).expect("a representable instant")
    }

    /// The key as jwt-compact, an independent implementation, takes it.
    fn jwt_compact_key() -> Hs256Key {
        Hs256Key::new(TEST_SECRET.as_bytes())
    }

    /// A token as jwt-compact makes it (as the worker did before it made
    /// them itself), with the header `typ` given.
    fn jwt_compact_token(typ: &str, claims: &AccessClaims, iat: i64, exp: i64) -> String {
        let mut c = Claims::new(claims.clone());
        c.issued_at = Some(instant(iat));
        c.expiration = Some(instant(exp));
        Hs256
            .token(
                &Header::empty().with_token_type(typ),
                &c,
                &jwt_compact_key(),
            )
            .expect("sign")
    }

    /// A correctly MACed token of any header and payload.
    fn mac_token(header: &serde_json::Value, payload: &serde_json::Value) -> String {
        let signing_input = format!("{}.{}", b64(header), b64(payload));
        let tag = key().current.mac(&signing_input).finalize().into_bytes();
        format!("{signing_input}.{}", B64URL.encode(tag))
    }

    fn payload() -> serde_json::Value {
        serde_json::json!({
            "iss": ISSUER, "aud": APPID, "sub": "o", "sid": "s", "token_use": "access",
            "iat": NOW, "exp": NOW + 600
        })
    }

    #[test]
    fn tokens_agree_with_jwt_compact_both_ways() {
        // Made by jwt-compact (as before): verifies, claims and expiry intact.
        let before = jwt_compact_token(ACCESS_TYP, &claims(), NOW, NOW + 600);
        let v = verify_access(&key(), APPID, &before, NOW + 1).expect("valid");
        assert_eq!(v.claims, claims());
        assert_eq!(v.expires_at, NOW + 600);

        // Made here: jwt-compact verifies it, with the same claims and times.
        let t = issue_access(&key(), &claims(), NOW, 600).expect("issue");
        let untrusted = UntrustedToken::new(&t).expect("parses");
        assert_eq!(untrusted.algorithm(), "HS256");
        assert_eq!(untrusted.header().token_type.as_deref(), Some(ACCESS_TYP));
        let verified = Hs256
            .validator::<AccessClaims>(&jwt_compact_key())
            .validate(&untrusted)
            .expect("jwt-compact verifies it");
        assert_eq!(verified.claims().custom, claims());
        assert_eq!(verified.claims().issued_at, Some(instant(NOW)));
        assert_eq!(verified.claims().expiration, Some(instant(NOW + 600)));
    }

    #[test]
    fn times_must_be_there_and_the_mac_must_cover_the_header() {
        assert!(verify_access(&key(), APPID, &mac_token(&json_header(), &payload()), NOW).is_ok());
        for field in ["iat", "exp"] {
            let mut p = payload();
            p.as_object_mut().expect("object").remove(field);
            assert_eq!(
                verify_access(&key(), APPID, &mac_token(&json_header(), &p), NOW),
                Err(AccessError::Invalid),
                "without {field}"
            );
        }
        let mut p = payload();
        p["exp"] = serde_json::json!("tomorrow");
        assert_eq!(
            verify_access(&key(), APPID, &mac_token(&json_header(), &p), NOW),
            Err(AccessError::Invalid)
        );
        // Another algorithm named in the header, even correctly MACed.
        for alg in ["HS512", "hs256", "EdDSA", "none"] {
            let header = serde_json::json!({"alg": alg, "typ": ACCESS_TYP});
            assert_eq!(
                verify_access(&key(), APPID, &mac_token(&header, &payload()), NOW),
                Err(AccessError::Invalid),
                "{alg}"
            );
        }
        // No typ.
        let header = serde_json::json!({"alg": "HS256"});
        assert_eq!(
            verify_access(&key(), APPID, &mac_token(&header, &payload()), NOW),
            Err(AccessError::Invalid)
        );
        // A header swapped under a genuine MAC.
        let t = issue_access(&key(), &claims(), NOW, 600).expect("issue");
        let (_, rest) = t.split_once('.').expect("header");
        let other = b64(&serde_json::json!({"alg": "HS256", "typ": ACCESS_TYP, "kid": "k"}));
        assert_eq!(
            verify_access(&key(), APPID, &format!("{other}.{rest}"), NOW),
            Err(AccessError::Invalid)
        );
    }

    fn json_header() -> serde_json::Value {
        serde_json::json!({"alg": "HS256", "typ": ACCESS_TYP})
    }

    #[test]
    fn the_payload_of_an_issued_token_is_pinned() {
        // Tokens issued before `Subject` and `Phone` carried exactly this.
        let mut c = claims();
        c.subject.unionid = Some(UnionId::new("uUnion"));
        let t = issue_access(&key(), &c, NOW, 600).expect("issue");
        let issued = t.split('.').nth(1).expect("payload");
        assert_eq!(
            String::from_utf8(B64URL.decode(issued).expect("b64")).expect("utf-8"),
            r#"{"iss":"wx-edge","aud":"wxd930ea5d5a258f4f","sub":"oUser","sid":"sid123","token_use":"access","unionid":"uUnion","phone":"13800138000","phone_cc":"86","iat":1764000000,"exp":1764000600}"#
        );
        assert_eq!(
            verify_access(&key(), APPID, &t, NOW).expect("valid").claims,
            c
        );
        // A phone claim without its country code was never issued.
        let mut p = payload();
        p["phone"] = "13800138000".into();
        assert_eq!(
            verify_access(&key(), APPID, &mac_token(&json_header(), &p), NOW),
            Err(AccessError::Invalid)
        );
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
        let other_typ = jwt_compact_token("JWT", &claims(), NOW, NOW + 600);
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

    const PREVIOUS: &str = "previous-token-secret-0123456789-ABCDEFGHIJKLMN";

    fn header_of(token: &str) -> serde_json::Value {
        let h = token.split('.').next().expect("header");
        serde_json::from_slice(&B64URL.decode(h).expect("b64")).expect("json")
    }

    #[test]
    fn tokens_name_their_key_by_a_kid_that_is_not_the_key() {
        let t = issue_access(&key(), &claims(), NOW, 600).expect("issue");
        let h = header_of(&t);
        assert_eq!(h["alg"], "HS256");
        assert_eq!(h["typ"], ACCESS_TYP);
        let kid = h["kid"].as_str().expect("a kid");
        assert_eq!(kid, key().kid());
        assert_eq!(kid.len(), 16);
        assert!(!TEST_SECRET.contains(kid) && !kid.contains(&TEST_SECRET[..8]));
        // Another key, another kid; the same key, the same kid.
        let other = TokenKey::new(PREVIOUS).expect("strong");
        assert_ne!(other.kid(), kid);
        assert_eq!(TokenKey::new(TEST_SECRET).expect("strong").kid(), kid);
    }

    #[test]
    fn a_token_made_under_the_previous_secret_verifies_after_a_rotation() {
        let before = TokenKey::new(PREVIOUS).expect("strong");
        let t = issue_access(&before, &claims(), NOW, 600).expect("issue");
        let rotated = key().with_previous(PREVIOUS).expect("valid");
        let v = verify_access(&rotated, APPID, &t, NOW + 1).expect("valid");
        assert_eq!(v.claims, claims());
        assert_eq!(
            verify_access(&rotated, APPID, &t, NOW + 601),
            Err(AccessError::Expired)
        );
        // New tokens are made under the current key, and verify without
        // the previous one.
        let new = issue_access(&rotated, &claims(), NOW, 600).expect("issue");
        assert_eq!(header_of(&new)["kid"], key().kid());
        assert!(verify_access(&key(), APPID, &new, NOW).is_ok());
        // Once TOKEN_SECRET_PREVIOUS is removed, the old token is refused.
        assert_eq!(
            verify_access(&key(), APPID, &t, NOW + 1),
            Err(AccessError::Invalid)
        );
    }

    #[test]
    fn a_token_under_a_random_key_is_refused_whatever_kid_it_names() {
        let rotated = key().with_previous(PREVIOUS).expect("valid");
        let random = TokenKey::new("random-attacker-key-0123456789-ABCDEFGHIJKLMNOP").expect("k");
        for kid in [
            Some(key().kid().to_string()),
            Some(TokenKey::new(PREVIOUS).expect("k").kid().to_string()),
            Some(random.kid().to_string()),
            None,
        ] {
            let mut header = json_header();
            if let Some(kid) = &kid {
                header["kid"] = kid.as_str().into();
            }
            let signing_input = format!("{}.{}", b64(&header), b64(&payload()));
            let tag = random.current.mac(&signing_input).finalize().into_bytes();
            let t = format!("{signing_input}.{}", B64URL.encode(tag));
            assert_eq!(
                verify_access(&rotated, APPID, &t, NOW),
                Err(AccessError::Invalid),
                "{kid:?}"
            );
        }
    }

    #[test]
    fn the_kid_picks_the_key() {
        let previous = TokenKey::new(PREVIOUS).expect("strong");
        let rotated = key().with_previous(PREVIOUS).expect("valid");
        // MACed under `mac_with`, naming `kid` (or none).
        let token = |mac_with: &TokenKey, kid: Option<&str>| {
            let mut header = json_header();
            if let Some(kid) = kid {
                header["kid"] = kid.into();
            }
            let signing_input = format!("{}.{}", b64(&header), b64(&payload()));
            let tag = mac_with.current.mac(&signing_input).finalize().into_bytes();
            format!("{signing_input}.{}", B64URL.encode(tag))
        };
        let ok = |t: &str| verify_access(&rotated, APPID, t, NOW).is_ok();
        assert!(ok(&token(&key(), Some(key().kid()))));
        assert!(ok(&token(&previous, Some(previous.kid()))));
        // A kid naming the other key than the one that MACed: refused.
        assert!(!ok(&token(&previous, Some(key().kid()))));
        assert!(!ok(&token(&key(), Some(previous.kid()))));
        // An unknown kid: refused even when the MAC is the current key's.
        assert!(!ok(&token(&key(), Some("AAAAAAAAAAAAAAAA"))));
        // No kid (made before tokens carried one): the current key only.
        assert!(ok(&token(&key(), None)));
        assert!(!ok(&token(&previous, None)));
    }

    #[test]
    fn the_previous_secret_must_be_strong_and_another_key() {
        assert_eq!(
            key().with_previous(TEST_SECRET).map(|_| ()),
            Err("equals TOKEN_SECRET")
        );
        assert!(key().with_previous("short").is_err());
        assert!(key().with_previous(&"ab".repeat(40)).is_err());
        assert!(format!("{:?}", key().with_previous(PREVIOUS).expect("ok")).contains("redacted"));
    }

    #[test]
    fn weak_secrets_are_refused() {
        assert!(TokenKey::new("short").is_err());
        assert!(TokenKey::new(&"ab".repeat(40)).is_err());
        assert!(TokenKey::new(TEST_SECRET).is_ok());
    }
}
