//! The `X-WX-Identity` assertion: an EdDSA JWT the origin verifies against
//! the worker's JWKS, so it can trust identity even if someone reaches it
//! without going through the worker.
//!
//! Design choices:
//! - **Ed25519 is the runtime's** ([`Ed25519`]): in the worker, WebCrypto
//!   (native in workerd: about 20 µs a signature there, against about
//!   250 µs for ed25519-compact compiled to wasm); on the host, where the
//!   core is tested, ed25519-compact. Both are RFC 8032 Ed25519, so the same
//!   key signs the same bytes alike.
//! - **The JWT is assembled here**, not by a JWT library: a fixed header,
//!   the claims, and the signature of the two, base64url-encoded. The
//!   signature is asynchronous (WebCrypto), which JWT libraries' signing
//!   traits are not.

use std::cell::OnceCell;
use std::future::Future;
use std::pin::Pin;

use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub(crate) use super::SigningError;
use super::ISSUER;
use crate::ids::{AppId, OpenId, Subject, UnionId};
use crate::phone::{NotAPhone, Phone};

pub(crate) const IDENTITY_TYP: &str = "wx-identity+jwt";
/// Lifetime of an assertion, seconds (the contract allows at most 300).
pub(crate) const IDENTITY_TTL: i64 = 120;
const _: () = assert!(IDENTITY_TTL > 0 && IDENTITY_TTL <= 300);

/// A future of this crate: single-threaded, as everything in a worker is.
pub(crate) type LocalFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Ed25519 (RFC 8032) with an [`IdentityKey`], as the runtime provides it.
pub(crate) trait Ed25519 {
    /// The public key of `key`.
    fn public_key<'a>(
        &'a self,
        key: &'a IdentityKey,
    ) -> LocalFuture<'a, Result<[u8; 32], SigningError>>;

    /// The signature of `message` by `key`.
    fn sign<'a>(
        &'a self,
        key: &'a IdentityKey,
        message: &'a [u8],
    ) -> LocalFuture<'a, Result<[u8; 64], SigningError>>;
}

/// Ed25519 by ed25519-compact: what the host tests sign with.
#[cfg(any(test, not(target_arch = "wasm32")))]
pub(crate) struct Compact;

#[cfg(any(test, not(target_arch = "wasm32")))]
impl Ed25519 for Compact {
    fn public_key<'a>(
        &'a self,
        key: &'a IdentityKey,
    ) -> LocalFuture<'a, Result<[u8; 32], SigningError>> {
        let pair = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(*key.seed()));
        Box::pin(async move { Ok(*pair.pk) })
    }

    fn sign<'a>(
        &'a self,
        key: &'a IdentityKey,
        message: &'a [u8],
    ) -> LocalFuture<'a, Result<[u8; 64], SigningError>> {
        let pair = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(*key.seed()));
        Box::pin(async move { Ok(*pair.sk.sign(message, None)) })
    }
}

/// The Ed25519 key from `IDENTITY_KEY` (base64 of a 32-byte seed).
pub(crate) struct IdentityKey {
    seed: [u8; 32],
    /// Its public half as the JWKS shows it, once known.
    public: OnceCell<PublicJwk>,
}

/// The public half of an [`IdentityKey`]: `x` and the `kid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PublicJwk {
    pub(crate) x: String,
    pub(crate) kid: String,
}

impl std::fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.public.get() {
            Some(p) => write!(f, "IdentityKey(kid={}, [redacted])", p.kid),
            None => f.write_str("IdentityKey([redacted])"),
        }
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
        Ok(IdentityKey {
            seed,
            public: OnceCell::new(),
        })
    }

    /// Whether `other` is the same key (the same seed).
    pub(crate) fn same_key(&self, other: &IdentityKey) -> bool {
        self.seed == other.seed
    }

    /// The secret seed, for an [`Ed25519`] to sign with.
    pub(crate) fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// The public half (asked of `ed` once).
    pub(crate) async fn public(&self, ed: &dyn Ed25519) -> Result<&PublicJwk, SigningError> {
        if let Some(p) = self.public.get() {
            return Ok(p);
        }
        let pk = ed.public_key(self).await?;
        let x = B64URL.encode(pk);
        // RFC 7638 thumbprint: SHA-256 of the required members, sorted.
        let thumb = Sha256::digest(format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#));
        Ok(self.public.get_or_init(|| PublicJwk {
            x,
            kid: B64URL.encode(thumb),
        }))
    }
}

#[derive(Serialize)]
struct Jwk<'a> {
    kty: &'static str,
    crv: &'static str,
    x: &'a str,
    kid: &'a str,
    alg: &'static str,
    #[serde(rename = "use")]
    use_: &'static str,
}

#[derive(Serialize)]
struct Jwks<'a> {
    keys: Vec<Jwk<'a>>,
}

/// The JWKS document (`/.well-known/jwks.json`): every key in `keys`, in
/// order (the current key, then `IDENTITY_KEY_NEXT`, then
/// `IDENTITY_KEY_PREVIOUS`), each under its own `kid` (its RFC 7638
/// thumbprint). Only the current key ever signs; the others are here so an
/// origin knows the next key before it signs and keeps the previous one
/// while assertions it made may still be in flight.
pub(crate) async fn jwks(keys: &[&IdentityKey], ed: &dyn Ed25519) -> Result<String, SigningError> {
    let mut public = Vec::with_capacity(keys.len());
    for k in keys {
        public.push(k.public(ed).await?);
    }
    let keys = public
        .into_iter()
        .map(|p| Jwk {
            kty: "OKP",
            crv: "Ed25519",
            x: &p.x,
            kid: &p.kid,
            alg: "EdDSA",
            use_: "sig",
        })
        .collect();
    serde_json::to_string(&Jwks { keys }).map_err(|_| SigningError)
}

/// The claims of `X-WX-Identity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "IdentityWire", try_from = "IdentityWire")]
pub(crate) struct IdentityClaims {
    pub(crate) iss: String,
    pub(crate) aud: String,
    /// Who is asserted: `sub` (the openid), `unionid`, `phone` and
    /// `phone_country`.
    pub(crate) subject: Subject,
    pub(crate) appid: AppId,
    pub(crate) iat: i64,
    pub(crate) exp: i64,
    pub(crate) jti: String,
}

impl IdentityClaims {
    /// An assertion of `subject`, issued at `now` for [`IDENTITY_TTL`].
    pub(crate) fn new(
        audience: &str,
        appid: &AppId,
        subject: Subject,
        jti: String,
        now: i64,
    ) -> Self {
        IdentityClaims {
            iss: ISSUER.into(),
            aud: audience.into(),
            subject,
            appid: appid.clone(),
            iat: now,
            exp: now.saturating_add(IDENTITY_TTL),
            jti,
        }
    }
}

/// The claims as the assertion carries them (names and order pinned by the
/// tests: origins read them).
#[derive(Serialize, Deserialize)]
struct IdentityWire {
    iss: String,
    aud: String,
    sub: OpenId,
    appid: AppId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unionid: Option<UnionId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    phone_country: Option<String>,
    iat: i64,
    exp: i64,
    jti: String,
}

impl From<IdentityClaims> for IdentityWire {
    fn from(c: IdentityClaims) -> Self {
        let (phone, phone_country) = Phone::to_claims(c.subject.phone.as_ref());
        IdentityWire {
            iss: c.iss,
            aud: c.aud,
            sub: c.subject.openid,
            appid: c.appid,
            unionid: c.subject.unionid,
            phone,
            phone_country,
            iat: c.iat,
            exp: c.exp,
            jti: c.jti,
        }
    }
}

impl TryFrom<IdentityWire> for IdentityClaims {
    type Error = NotAPhone;
    fn try_from(w: IdentityWire) -> Result<Self, NotAPhone> {
        Ok(IdentityClaims {
            iss: w.iss,
            aud: w.aud,
            subject: Subject {
                openid: w.sub,
                unionid: w.unionid,
                phone: Phone::from_claims(w.phone, w.phone_country)?,
            },
            appid: w.appid,
            iat: w.iat,
            exp: w.exp,
            jti: w.jti,
        })
    }
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    kid: &'a str,
    typ: &'static str,
}

/// The assertion of `claims`, signed with `key`.
pub(crate) async fn sign_identity(
    key: &IdentityKey,
    ed: &dyn Ed25519,
    claims: &IdentityClaims,
) -> Result<String, SigningError> {
    let header = Header {
        alg: "EdDSA",
        kid: &key.public(ed).await?.kid,
        typ: IDENTITY_TYP,
    };
    let mut token = B64URL.encode(serde_json::to_vec(&header).map_err(|_| SigningError)?);
    token.push('.');
    B64URL.encode_string(
        serde_json::to_vec(claims).map_err(|_| SigningError)?,
        &mut token,
    );
    let signature = ed.sign(key, token.as_bytes()).await?;
    token.push('.');
    B64URL.encode_string(signature, &mut token);
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::TEST_IDENTITY_SEED;
    use ed25519_compact::{PublicKey, Signature};
    use pollster::block_on;

    fn key() -> IdentityKey {
        IdentityKey::from_base64_seed(TEST_IDENTITY_SEED).expect("valid seed")
    }

    fn rfc8032_key() -> IdentityKey {
        // RFC 8032 7.1 TEST 1 (also RFC 8037 A.1's key).
        IdentityKey::from_base64_seed(&B64.encode([
            0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec,
            0x2c, 0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03,
            0x1c, 0xae, 0x7f, 0x60,
        ]))
        .expect("seed")
    }

    fn claims() -> IdentityClaims {
        let mut claims = IdentityClaims::new(
            "https://api.example.com",
            &AppId::new("wxapp"),
            Subject::new(OpenId::new("oUser")),
            "j1".into(),
            1_764_000_000,
        );
        claims.subject.phone = Some(Phone::for_tests("13800138000", "13800138000", "86"));
        claims
    }

    /// Verifies `token` the way an origin would: `kid` and `alg` from the
    /// header, the key from the JWKS. The claims, when it checks out.
    fn verify(token: &str, jwks_doc: &str) -> Option<serde_json::Value> {
        let jwks: serde_json::Value = serde_json::from_str(jwks_doc).expect("JWKS is JSON");
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let part = |i: usize| -> serde_json::Value {
            serde_json::from_slice(&B64URL.decode(parts[i]).expect("b64")).expect("JSON")
        };
        let header = part(0);
        assert_eq!(header["alg"], "EdDSA");
        assert_eq!(header["typ"], IDENTITY_TYP);
        let jwk = jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .find(|k| k["kid"] == header["kid"])?;
        let x = B64URL.decode(jwk["x"].as_str().expect("x")).expect("b64");
        let pk = PublicKey::from_slice(&x).expect("pk");
        let sig = Signature::from_slice(&B64URL.decode(parts[2]).expect("b64")).expect("sig");
        let signed = format!("{}.{}", parts[0], parts[1]);
        pk.verify(signed, &sig).ok().map(|()| part(1))
    }

    #[test]
    fn assertion_verifies_with_the_jwks_key() {
        let k = key();
        let claims = claims();
        let t = block_on(sign_identity(&k, &Compact, &claims)).expect("sign");
        let jwks = block_on(jwks(&[&k], &Compact)).expect("jwks");
        let payload = verify(&t, &jwks).expect("valid");
        assert_eq!(payload["iat"], 1_764_000_000);
        assert_eq!(payload["exp"], 1_764_000_000 + IDENTITY_TTL);
        assert_eq!(payload["sub"], "oUser");
        assert_eq!(payload["phone"], "13800138000");
        assert_eq!(payload["phone_country"], "86");
        assert!(payload.get("unionid").is_none());
        // The payload as origins have always read it, byte for byte.
        let mut pinned = claims.clone();
        pinned.subject.unionid = Some(UnionId::new("uUnion"));
        assert_eq!(
            serde_json::to_string(&pinned).expect("json"),
            r#"{"iss":"wx-edge","aud":"https://api.example.com","sub":"oUser","appid":"wxapp","unionid":"uUnion","phone":"13800138000","phone_country":"86","iat":1764000000,"exp":1764000120,"jti":"j1"}"#
        );
        let back: IdentityClaims = serde_json::from_value(payload).expect("claims");
        assert_eq!(back, claims);

        // A changed claim or signature does not verify.
        let mut forged = claims.clone();
        forged.subject.openid = OpenId::new("oAttacker");
        let forged_payload = B64URL.encode(serde_json::to_vec(&forged).expect("json"));
        let parts: Vec<&str> = t.split('.').collect();
        let swapped = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
        assert_eq!(verify(&swapped, &jwks), None);
        let mut sig = B64URL.decode(parts[2]).expect("b64");
        sig[0] ^= 1;
        let flipped = format!("{}.{}.{}", parts[0], parts[1], B64URL.encode(sig));
        assert_eq!(verify(&flipped, &jwks), None);
    }

    #[test]
    fn signatures_are_rfc8032_ed25519() {
        // RFC 8032 7.1 TEST 1: the empty message.
        let sig = block_on(Compact.sign(&rfc8032_key(), b"")).expect("sign");
        let hex: String = sig.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155\
             5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
    }

    #[test]
    fn kid_is_the_rfc7638_thumbprint() {
        // Thumbprint of the RFC 8037 A.3 example key, computed independently:
        // its x is 11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo.
        let k = rfc8032_key();
        let p = block_on(k.public(&Compact)).expect("public");
        assert_eq!(p.x, "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
        assert_eq!(p.kid, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
        let jwks: serde_json::Value =
            serde_json::from_str(&block_on(jwks(&[&k], &Compact)).expect("jwks")).expect("json");
        assert_eq!(
            jwks,
            serde_json::json!({"keys": [{
                "kty": "OKP", "crv": "Ed25519", "x": p.x, "kid": p.kid,
                "alg": "EdDSA", "use": "sig",
            }]})
        );
    }

    #[test]
    fn the_public_half_is_asked_for_once() {
        struct Counting(std::cell::Cell<u32>);
        impl Ed25519 for Counting {
            fn public_key<'a>(
                &'a self,
                key: &'a IdentityKey,
            ) -> LocalFuture<'a, Result<[u8; 32], SigningError>> {
                self.0.set(self.0.get() + 1);
                Compact.public_key(key)
            }
            fn sign<'a>(
                &'a self,
                key: &'a IdentityKey,
                message: &'a [u8],
            ) -> LocalFuture<'a, Result<[u8; 64], SigningError>> {
                Compact.sign(key, message)
            }
        }
        let ed = Counting(std::cell::Cell::new(0));
        let k = key();
        for _ in 0..3 {
            block_on(sign_identity(&k, &ed, &claims())).expect("sign");
            block_on(jwks(&[&k], &ed)).expect("jwks");
        }
        assert_eq!(ed.0.get(), 1);
    }

    #[test]
    fn a_refusing_runtime_is_a_signing_error() {
        struct Refusing;
        impl Ed25519 for Refusing {
            fn public_key<'a>(
                &'a self,
                _: &'a IdentityKey,
            ) -> LocalFuture<'a, Result<[u8; 32], SigningError>> {
                Box::pin(async { Err(SigningError) })
            }
            fn sign<'a>(
                &'a self,
                _: &'a IdentityKey,
                _: &'a [u8],
            ) -> LocalFuture<'a, Result<[u8; 64], SigningError>> {
                Box::pin(async { Err(SigningError) })
            }
        }
        assert_eq!(
            block_on(sign_identity(&key(), &Refusing, &claims())),
            Err(SigningError)
        );
        assert_eq!(block_on(jwks(&[&key()], &Refusing)), Err(SigningError));
    }

    #[test]
    fn the_jwks_lists_every_key_given_in_order_each_under_its_own_kid() {
        let current = key();
        let next = IdentityKey::from_base64_seed("ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=")
            .expect("seed");
        let previous =
            IdentityKey::from_base64_seed("QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8=")
                .expect("seed");
        let doc: serde_json::Value = serde_json::from_str(
            &block_on(jwks(&[&current, &next, &previous], &Compact)).expect("jwks"),
        )
        .expect("json");
        let keys = doc["keys"].as_array().expect("keys");
        assert_eq!(keys.len(), 3);
        for (jwk, k) in keys.iter().zip([&current, &next, &previous]) {
            let p = block_on(k.public(&Compact)).expect("public");
            assert_eq!(jwk["x"], p.x.as_str());
            assert_eq!(jwk["kid"], p.kid.as_str());
            assert_eq!(
                (jwk["alg"].as_str(), jwk["use"].as_str()),
                (Some("EdDSA"), Some("sig"))
            );
        }
        let kids: std::collections::HashSet<&str> =
            keys.iter().filter_map(|k| k["kid"].as_str()).collect();
        assert_eq!(kids.len(), 3, "distinct kids");
        // Only the current key signs: an assertion names its kid and
        // verifies against its entry, not against the others.
        let t = block_on(sign_identity(&current, &Compact, &claims())).expect("sign");
        assert!(verify(&t, &doc.to_string()).is_some());
        let without_current = serde_json::json!({"keys": [keys[1], keys[2]]});
        assert_eq!(verify(&t, &without_current.to_string()), None);
    }

    #[test]
    fn same_key_compares_seeds() {
        assert!(key().same_key(&key()));
        assert!(!key().same_key(&rfc8032_key()));
    }

    #[test]
    fn empty_jwks_without_a_key() {
        assert_eq!(
            block_on(jwks(&[], &Compact)).as_deref(),
            Ok(r#"{"keys":[]}"#)
        );
    }

    #[test]
    fn debug_hides_the_seed() {
        let k = key();
        let before = format!("{k:?}");
        block_on(k.public(&Compact)).expect("public");
        for shown in [before, format!("{k:?}")] {
            assert!(!shown.contains(TEST_IDENTITY_SEED));
            assert!(!shown.contains(&B64URL.encode(k.seed())));
            assert!(shown.contains("[redacted]"));
        }
    }
}
