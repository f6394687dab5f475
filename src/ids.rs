//! Identifiers that are easy to swap by mistake, each its own type.
//!
//! An appid, an openid and a session id are all short strings; a function
//! taking three `&str` invites passing them in the wrong order. These
//! newtypes (in the manner of oauth2-rs's `new_type!`) make the compiler
//! check it. They are not secrets: they print, and compare with `==`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;

use crate::phone::Phone;
use crate::random::{self, Random, RandomError};

macro_rules! new_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
        )]
        #[serde(transparent)]
        pub(crate) struct $name(String);

        // Not every id needs every accessor.
        #[allow(dead_code)]
        impl $name {
            pub(crate) fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            pub(crate) fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl From<&str> for $name {
            fn from(v: &str) -> Self {
                Self(v.to_string())
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
    };
}

new_type!(
    /// The mini-program's appid (`WX_APPID`).
    AppId
);
new_type!(
    /// A user's openid: who the user is to this mini-program.
    OpenId
);
new_type!(
    /// A user's unionid: who the user is across the apps of one WeChat
    /// Open Platform account (when WeChat gives one).
    UnionId
);
new_type!(
    /// A session id: 128 random bits, base64url. Not secret on its own
    /// (it is the first part of the refresh token), but unguessable.
    SessionId
);

impl SessionId {
    /// A new session id from `rng`.
    pub(crate) fn generate(rng: &impl Random) -> Result<Self, RandomError> {
        let b: [u8; 16] = random::bytes(rng)?;
        Ok(SessionId(B64URL.encode(b)))
    }

    /// Accepts only what [`SessionId::generate`] makes: base64url of 16 bytes.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let bytes = B64URL.decode(s).ok()?;
        (bytes.len() == 16).then(|| SessionId(s.to_string()))
    }
}

/// Who a token, an assertion or a proxied request is about: the user and
/// what WeChat vouched for of them. One type for the access token's claims,
/// the identity assertion's, the assertion cache's key and the identity
/// headers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Subject {
    pub(crate) openid: OpenId,
    pub(crate) unionid: Option<UnionId>,
    pub(crate) phone: Option<Phone>,
}

impl Subject {
    /// The user, with no unionid or phone known.
    pub(crate) fn new(openid: OpenId) -> Self {
        Subject {
            openid,
            unionid: None,
            phone: None,
        }
    }
}

/// A one-time code from the mini-program (`wx.login` or the phone button),
/// checked for shape before it is sent anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WxCode(String);

/// Why a string is not a [`WxCode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadCode {
    Missing,
    Malformed,
}

impl WxCode {
    /// Printable ASCII, 1 to 256 characters.
    pub(crate) fn parse(code: &str) -> Result<Self, BadCode> {
        if code.is_empty() {
            return Err(BadCode::Missing);
        }
        if code.len() > 256 || !code.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(BadCode::Malformed);
        }
        Ok(WxCode(code.to_string()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::SeededRandom;

    #[test]
    fn session_ids_round_trip_and_refuse_anything_else() {
        let sid = SessionId::generate(&SeededRandom::default()).expect("random");
        assert_eq!(SessionId::parse(sid.as_str()), Some(sid.clone()));
        for bad in [
            "",
            "abc",
            "x.y",
            &format!("{sid}A"),
            "AAAAAAAAAAAAAAAAAAAAA+==",
        ] {
            assert_eq!(SessionId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn codes_are_printable_ascii_of_bounded_length() {
        assert!(WxCode::parse("0a1LoginCode").is_ok());
        assert_eq!(WxCode::parse(""), Err(BadCode::Missing));
        for bad in ["a b", "a\nb", "码", &"x".repeat(257)] {
            assert_eq!(WxCode::parse(bad), Err(BadCode::Malformed), "{bad}");
        }
        assert!(WxCode::parse(&"x".repeat(256)).is_ok());
    }

    #[test]
    fn newtypes_compare_with_strings_and_serialize_as_them() {
        let o = OpenId::new("oUser1");
        assert_eq!(o, "oUser1");
        assert_eq!(serde_json::to_string(&o).expect("json"), r#""oUser1""#);
    }
}
