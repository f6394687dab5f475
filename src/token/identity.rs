//! The `X-WX-Identity` assertion: an EdDSA JWT the origin verifies against
//! the worker's JWKS, so it can trust identity even if someone reaches it
//! without going through the worker.

use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use base64::Engine;
use ed25519_compact::{KeyPair, PublicKey, SecretKey, Seed};
use jwt_compact::alg::Ed25519;
use jwt_compact::{AlgorithmExt, Claims, Header};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{instant, ISSUER};
use crate::ids::{AppId, OpenId};

pub(crate) const IDENTITY_TYP: &str = "wx-identity+jwt";
/// Lifetime of an assertion, seconds (the contract allows at most 300).
pub(crate) const IDENTITY_TTL: i64 = 120;

/// The Ed25519 key from `IDENTITY_KEY` (base64 of a 32-byte seed).
pub(crate) struct IdentityKey {
    secret: SecretKey,
    public: PublicKey,
    kid: String,
}

impl std::fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IdentityKey(kid={}, [redacted])", self.kid)
    }
}

impl IdentityKey {
    pub(crate) fn from_base64_seed(v: &str) -> Result<Self, &'static str> {
        let raw = B64
            .decode(v.trim())
            .or_else(|_| B64URL.decode(v.trim().trim_end_matches('=')))
            .map_err(|_| "is not base64")?;
        let seed: [u8; 32] = raw
            .try_into()
            .map_err(|_| "must be the base64 of a 32-byte Ed25519 seed")?;
        let pair = KeyPair::from_seed(Seed::new(seed));
        let x = B64URL.encode(pair.pk.as_ref());
        // RFC 7638 thumbprint: SHA-256 of the required members, sorted.
        let thumb = Sha256::digest(format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#));
        Ok(IdentityKey {
            secret: pair.sk,
            public: pair.pk,
            kid: B64URL.encode(thumb),
        })
    }

    #[cfg(test)]
    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    /// This key as a JWK.
    pub(crate) fn jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": B64URL.encode(self.public.as_ref()),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        })
    }
}

/// The JWKS document (`/.well-known/jwks.json`).
pub(crate) fn jwks(key: Option<&IdentityKey>) -> String {
    let keys: Vec<serde_json::Value> = key.map(IdentityKey::jwk).into_iter().collect();
    serde_json::json!({ "keys": keys }).to_string()
}

/// The claims of `X-WX-Identity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IdentityClaims {
    pub(crate) iss: String,
    pub(crate) aud: String,
    pub(crate) sub: OpenId,
    pub(crate) appid: AppId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) unionid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) phone: Option<String>,
    #[serde(
        rename = "phone_country",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) country_code: Option<String>,
    pub(crate) jti: String,
}

/// Signing an assertion failed (an impossible time, or a bug).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SigningError;

/// Signs an assertion for `claims`, valid from `now` for [`IDENTITY_TTL`].
pub(crate) fn sign_identity(
    key: &IdentityKey,
    claims: &IdentityClaims,
    now: i64,
) -> Result<String, SigningError> {
    let mut c = Claims::new(claims.clone());
    c.issued_at = Some(instant(now));
    c.expiration = Some(instant(now + IDENTITY_TTL));
    let header = Header::empty()
        .with_key_id(key.kid.clone())
        .with_token_type(IDENTITY_TYP);
    Ed25519
        .token(&header, &c, &key.secret)
        .map_err(|_| SigningError)
}

impl IdentityClaims {
    pub(crate) fn new(audience: &str, appid: &AppId, openid: &OpenId, jti: String) -> Self {
        IdentityClaims {
            iss: ISSUER.into(),
            aud: audience.into(),
            sub: openid.clone(),
            appid: appid.clone(),
            unionid: None,
            phone: None,
            country_code: None,
            jti,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::TEST_IDENTITY_SEED;
    use jwt_compact::UntrustedToken;

    fn key() -> IdentityKey {
        IdentityKey::from_base64_seed(TEST_IDENTITY_SEED).expect("valid seed")
    }

    #[test]
    fn assertion_verifies_with_the_jwks_key() {
        let k = key();
        let mut claims = IdentityClaims::new(
            "https://api.example.com",
            &AppId::new("wxapp"),
            &OpenId::new("oUser"),
            "j1".into(),
        );
        claims.phone = Some("13800138000".into());
        let t = sign_identity(&k, &claims, 1_764_000_000).expect("sign");

        // Verify the way an origin would: kid from the header, key from the JWKS.
        let jwks: serde_json::Value = serde_json::from_str(&jwks(Some(&k))).expect("json");
        let jwk = &jwks["keys"][0];
        let untrusted = UntrustedToken::new(&t).expect("parse");
        assert_eq!(untrusted.header().key_id.as_deref(), jwk["kid"].as_str());
        assert_eq!(untrusted.header().token_type.as_deref(), Some(IDENTITY_TYP));
        assert_eq!(untrusted.algorithm(), "EdDSA");
        let x = B64URL.decode(jwk["x"].as_str().expect("x")).expect("b64");
        let pk = PublicKey::from_slice(&x).expect("pk");
        let v = Ed25519
            .validator::<IdentityClaims>(&pk)
            .validate(&untrusted)
            .expect("valid");
        assert_eq!(v.claims().custom, claims);
        let iat = v.claims().issued_at.expect("iat").timestamp();
        let exp = v.claims().expiration.expect("exp").timestamp();
        assert!(exp - iat <= 300 && exp > iat);
    }

    #[test]
    fn kid_is_the_rfc7638_thumbprint() {
        // Thumbprint of the RFC 8037 A.3 example key, computed independently:
        // its x is 11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo.
        let seed = B64.encode([
            0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec,
            0x2c, 0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03,
            0x1c, 0xae, 0x7f, 0x60,
        ]);
        let k = IdentityKey::from_base64_seed(&seed).expect("seed");
        assert_eq!(k.jwk()["x"], "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
        assert_eq!(k.kid(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    }

    #[test]
    fn empty_jwks_without_a_key() {
        assert_eq!(jwks(None), r#"{"keys":[]}"#);
    }

    #[test]
    fn debug_hides_the_seed() {
        let shown = format!("{:?}", key());
        assert!(!shown.contains(TEST_IDENTITY_SEED));
        assert!(shown.contains("[redacted]"));
    }
}
