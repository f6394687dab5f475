//! Secrets that never print.
//!
//! Every secret the worker handles (AppSecret, token key, session_key,
//! refresh tokens, WeChat access tokens) is wrapped in a newtype whose
//! `Debug` prints `[redacted]` and which has no `Display` and no
//! `PartialEq`: comparing secrets goes through [`ct_eq`] (constant time).

use subtle::ConstantTimeEq;

macro_rules! secret_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The secret itself. Call only where it is used (a request to
            /// WeChat, a key derivation), never to log or format it.
            pub fn secret(&self) -> &str {
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
    /// WeChat's per-user `session_key` (base64 of 16 bytes). Lives in KV only.
    SessionKey
);
secret_type!(
    /// A WeChat API `access_token` from `cgi-bin/stable_token`.
    WxAccessToken
);
secret_type!(
    /// A refresh token as handed to the client (`{sid}.{random}`).
    RefreshToken
);

/// Constant-time equality for secrets and digests.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let key = SessionKey::new("tiihtNczf5v6AKRyjwEUhQ==");
        let shown = format!("{key:?} {:?}", AppSecret::new("supersecret"));
        assert!(!shown.contains("tiihtN"), "{shown}");
        assert!(!shown.contains("supersecret"), "{shown}");
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn ct_eq_compares_content_and_length() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
    }
}
