//! Secrets that never print.
//!
//! Every secret the worker handles (AppSecret, token key, session_key,
//! refresh tokens, WeChat access tokens) is wrapped in a newtype whose
//! `Debug` prints `[redacted]` and which has no `Display` and no
//! `PartialEq`: comparing secrets goes through [`ct_eq`] (constant time).

use base64::Engine;
use subtle::ConstantTimeEq;

macro_rules! secret_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub(crate) struct $name(String);

        // Not every secret is read back (ADMIN_TOKEN is only compared).
        #[allow(dead_code)]
        impl $name {
            /// The secret itself. Call only where it is used (a request to
            /// WeChat, a key derivation), never to log or format it.
            pub(crate) fn secret(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }
    };
}

secret_type!(
    /// The mini-program's AppSecret (`WX_APPSECRET`).
    AppSecret
);
secret_type!(
    /// A WeChat API `access_token` from `cgi-bin/stable_token`.
    WxAccessToken
);
secret_type!(
    /// A refresh token as handed to the client
    /// (`{user}.{sid}.{secret}.{tag}`, see `token::refresh`).
    RefreshToken
);

/// What the session authority keeps of a refresh token: a hash of its
/// secret (base64url of SHA-256, see `token::refresh`). Not a secret by
/// itself, but it names one: it does not print, and equality is in
/// constant time. Serialized as the bare string, as before it had a type.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub(crate) struct RefreshHash(String);

impl RefreshHash {
    pub(crate) fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The hash itself, for the tests to compare with what they see.
    #[cfg(test)]
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl PartialEq for RefreshHash {
    fn eq(&self, other: &Self) -> bool {
        ct_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl Eq for RefreshHash {}

impl std::fmt::Debug for RefreshHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshHash([redacted])")
    }
}

secret_type!(
    /// The operator endpoints' bearer token (`ADMIN_TOKEN`).
    AdminToken
);

impl AdminToken {
    pub(crate) fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Whether `presented` is this token, in constant time (over digests,
    /// so not even the length is compared early).
    pub(crate) fn matches(&self, presented: &str) -> bool {
        use sha2::{Digest, Sha256};
        ct_eq(
            &Sha256::digest(self.0.as_bytes()),
            &Sha256::digest(presented.as_bytes()),
        )
    }
}

impl AppSecret {
    pub(crate) fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
}

impl RefreshToken {
    pub(crate) fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
}

/// WeChat's per-user `session_key`: the 16-byte AES key of the user's open
/// data. Decoded from base64 once, when code2Session hands it over; stored
/// (as base64) in the session record only. It never prints and never
/// leaves the worker.
#[derive(Clone)]
pub(crate) struct SessionKey([u8; 16]);

impl SessionKey {
    /// The base64 WeChat sends; `None` unless it is exactly 16 bytes.
    pub(crate) fn from_base64(b64: &str) -> Option<Self> {
        let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        raw.try_into().ok().map(SessionKey)
    }

    /// The base64 form, as stored (tests compare keys through it).
    #[cfg(test)]
    pub(crate) fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }

    /// The key itself: for the AES decryption only.
    pub(crate) fn bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey([redacted])")
    }
}

impl serde::Serialize for SessionKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(self.0))
    }
}

impl<'de> serde::Deserialize<'de> for SessionKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        SessionKey::from_base64(&text)
            .ok_or_else(|| serde::de::Error::custom("session_key is not base64 of 16 bytes"))
    }
}

/// The fewest bytes a keying secret (`TOKEN_SECRET`, `REFRESH_SECRET`) may
/// have.
pub(crate) const MIN_SECRET_BYTES: usize = 32;

/// A keying secret's bytes, if it is long and varied enough to be a key:
/// at least [`MIN_SECRET_BYTES`], and not a few characters repeated. The
/// problem names neither the value nor its length.
pub(crate) fn strong_key(secret: &str) -> Result<&[u8], &'static str> {
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
    Ok(bytes)
}

/// WeChat's login-state signature: hex HMAC-SHA256 keyed with the
/// `session_key` *text* exactly as WeChat sent it (its base64, not the
/// decoded bytes) over `message` (`""` for `checksession` and
/// `resetusersessionkey`, the `signData` for virtual payment).
///
/// The key is kept decoded; its text is re-encoded here, and is the text
/// WeChat sent: [`SessionKey::from_base64`] accepts only canonical base64
/// (padding and trailing bits checked), of which a key has exactly one.
pub(crate) fn login_state_signature(key: &SessionKey, message: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let text = base64::engine::general_purpose::STANDARD.encode(key.0);
    // HMAC takes a key of any length: this cannot fail.
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(text.as_bytes()) else {
        return String::new();
    };
    mac.update(message);
    crate::random::hex(&mac.finalize().into_bytes())
}

/// Constant-time equality for secrets and digests.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let key = SessionKey::from_base64("tiihtNczf5v6AKRyjwEUhQ==").expect("16 bytes");
        let shown = format!(
            "{key:?} {:?} {:?}",
            AppSecret::new("supersecret"),
            RefreshHash::new("hashvalue")
        );
        assert!(!shown.contains("tiihtN"), "{shown}");
        assert!(!shown.contains("supersecret"), "{shown}");
        assert!(!shown.contains("hashvalue"), "{shown}");
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn a_refresh_hash_serializes_as_its_bare_string() {
        let h = RefreshHash::new("abc_-1");
        assert_eq!(serde_json::to_string(&h).expect("json"), r#""abc_-1""#);
        let back: RefreshHash = serde_json::from_str(r#""abc_-1""#).expect("parses");
        assert_eq!(back, h);
        assert_ne!(back, RefreshHash::new("abc_-2"));
    }

    #[test]
    fn session_keys_are_16_bytes_and_round_trip_as_base64() {
        let key = SessionKey::from_base64("tiihtNczf5v6AKRyjwEUhQ==").expect("16 bytes");
        let json = serde_json::to_string(&key).expect("json");
        assert_eq!(json, r#""tiihtNczf5v6AKRyjwEUhQ==""#);
        let back: SessionKey = serde_json::from_str(&json).expect("parses");
        assert_eq!(back.bytes(), key.bytes());
        for bad in ["c2hvcnQ=", "x", "", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] {
            assert!(SessionKey::from_base64(bad).is_none(), "{bad}");
        }
    }

    /// Computed independently: `python3 -c 'import hmac, hashlib;
    /// print(hmac.new(KEY.encode(), MSG, hashlib.sha256).hexdigest())'`,
    /// and WeChat's own documentation example (the first row).
    #[test]
    fn the_login_state_signature_is_keyed_with_the_base64_text() {
        let rows = [
            (
                "o0q0otL8aEzpcZL/FT9WsQ==",
                r#"{"foo":"bar"}"#,
                "654571f79995b2ce1e149e53c0a33dc39c0a74090db514261454e8dbe432aa0b",
            ),
            (
                "tiihtNczf5v6AKRyjwEUhQ==",
                "",
                "7154f9f8b4b76b92f541cbf0e37d48840fa06e5e42da92a6f80168a1516a4735",
            ),
            (
                "tiihtNczf5v6AKRyjwEUhQ==",
                r#"{"offerId":"123","buyQuantity":1,"env":0,"currencyType":"CNY","productId":"p1","goodsPrice":100,"outTradeNo":"t-1","attach":"中文"}"#,
                "3dd6543c4538ccaa24b19e7fea8dbfc78cd34aaa9631def3eb03646665cf96fb",
            ),
        ];
        for (key, message, want) in rows {
            let key = SessionKey::from_base64(key).expect("16 bytes");
            assert_eq!(login_state_signature(&key, message.as_bytes()), want);
        }
        // Keyed with the text, not the bytes: the bytes give another MAC.
        use hmac::{Hmac, Mac};
        let key = SessionKey::from_base64("tiihtNczf5v6AKRyjwEUhQ==").expect("16 bytes");
        let mut by_bytes = Hmac::<sha2::Sha256>::new_from_slice(key.bytes()).expect("any length");
        by_bytes.update(b"");
        assert_ne!(
            crate::random::hex(&by_bytes.finalize().into_bytes()),
            login_state_signature(&key, b"")
        );
        // A key's text is only ever its canonical form: a non-canonical
        // spelling of the same bytes is not a key at all.
        assert!(SessionKey::from_base64("tiihtNczf5v6AKRyjwEUhR==").is_none());
        assert!(SessionKey::from_base64("tiihtNczf5v6AKRyjwEUhQ").is_none());
    }

    #[test]
    fn ct_eq_compares_content_and_length() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
    }
}
