//! Refresh tokens: opaque, rotated on every use, stored only as hashes.
//!
//! Design choices:
//! - A refresh token is `{user}.{sid}.{secret}`: the openid (base64url), so
//!   a refresh reaches the user's session authority with no lookup on the
//!   way; 128 random bits of session id; 256 random bits of secret. The
//!   authority holds only SHA-256 of the secret.
//! - On rotation the next secret is also stored sealed under a key derived
//!   from the previous secret, so a client that refreshes twice within the
//!   grace window receives the same new token instead of a reuse alarm, and
//!   nobody without the previous token can unseal it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::ids::{OpenId, SessionId};
use crate::random::{self, Random, RandomError};
use crate::secret::{RefreshHash, RefreshToken};

/// The longest openid a refresh token may name (WeChat's are 28 characters).
const MAX_OPENID: usize = 128;

/// A freshly minted refresh token and what the authority keeps of it.
pub(crate) struct NewRefresh {
    pub(crate) token: RefreshToken,
    pub(crate) hash: RefreshHash,
    secret: [u8; 32],
}

impl NewRefresh {
    pub(crate) fn generate(
        openid: &OpenId,
        sid: &SessionId,
        rng: &impl Random,
    ) -> Result<Self, RandomError> {
        let secret: [u8; 32] = random::bytes(rng)?;
        Ok(Self::from_secret(openid, sid, secret))
    }

    fn from_secret(openid: &OpenId, sid: &SessionId, secret: [u8; 32]) -> Self {
        NewRefresh {
            token: RefreshToken::new(format!(
                "{}.{sid}.{}",
                B64URL.encode(openid.as_str()),
                B64URL.encode(secret)
            )),
            hash: hash_secret(&secret),
            secret,
        }
    }

    /// This token sealed so that only the holder of `previous` can open it.
    pub(crate) fn sealed_under(&self, previous: &ParsedRefresh) -> String {
        let pad = seal_pad(&previous.secret);
        let mut out = self.secret;
        for (o, p) in out.iter_mut().zip(pad.iter()) {
            *o ^= p;
        }
        B64URL.encode(out)
    }
}

/// A refresh token as presented by a client, split into its parts.
pub(crate) struct ParsedRefresh {
    pub(crate) openid: OpenId,
    pub(crate) sid: SessionId,
    secret: [u8; 32],
}

impl ParsedRefresh {
    /// Splits `{user}.{sid}.{secret}`; `None` for anything else.
    pub(crate) fn parse(token: &str) -> Option<Self> {
        let mut parts = token.split('.');
        let (user, sid, secret) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let user = B64URL.decode(user).ok()?;
        if user.is_empty() || user.len() > MAX_OPENID || !user.iter().all(u8::is_ascii_graphic) {
            return None;
        }
        let openid = OpenId::new(String::from_utf8(user).ok()?);
        let sid = SessionId::parse(sid)?;
        let secret: [u8; 32] = B64URL.decode(secret).ok()?.try_into().ok()?;
        Some(ParsedRefresh {
            openid,
            sid,
            secret,
        })
    }

    /// The hash the authority keeps for this token.
    pub(crate) fn hash(&self) -> RefreshHash {
        hash_secret(&self.secret)
    }

    /// Opens a token sealed under this one (see [`NewRefresh::sealed_under`]).
    pub(crate) fn unseal(&self, sealed: &str) -> Option<NewRefresh> {
        let mut secret: [u8; 32] = B64URL.decode(sealed).ok()?.try_into().ok()?;
        for (s, p) in secret.iter_mut().zip(seal_pad(&self.secret).iter()) {
            *s ^= p;
        }
        Some(NewRefresh::from_secret(&self.openid, &self.sid, secret))
    }
}

fn hash_secret(secret: &[u8; 32]) -> RefreshHash {
    let mut h = Sha256::new();
    h.update(b"wx-edge/refresh-hash/v1\0");
    h.update(secret);
    RefreshHash::new(B64URL.encode(h.finalize()))
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
    use crate::testkit::SeededRandom;

    #[test]
    fn session_ids_are_128_bit_and_distinct() {
        let rng = SeededRandom::default();
        let a = SessionId::generate(&rng).expect("id");
        let b = SessionId::generate(&rng).expect("id");
        assert_ne!(a, b);
        assert_eq!(B64URL.decode(a.as_str()).expect("b64").len(), 16);
    }

    #[test]
    fn refresh_tokens_parse_hash_and_seal() {
        let rng = SeededRandom::default();
        let sid = SessionId::generate(&rng).expect("sid");
        let user = OpenId::new("oGZUI0egBJY1zhBYw2KhdUfwVJJE");
        let first = NewRefresh::generate(&user, &sid, &rng).expect("gen");
        let parsed = ParsedRefresh::parse(first.token.secret()).expect("parses");
        assert_eq!(parsed.sid, sid);
        assert_eq!(parsed.openid, user);
        assert_eq!(parsed.hash(), first.hash);
        // The hash is not the token.
        assert!(!first.token.secret().contains(first.hash.as_str()));

        let second = NewRefresh::generate(&user, &sid, &rng).expect("gen");
        assert_ne!(second.hash, first.hash);
        let sealed = second.sealed_under(&parsed);
        let opened = parsed.unseal(&sealed).expect("unseal");
        assert_eq!(opened.token.secret(), second.token.secret());
        // Another token cannot open it.
        let third = NewRefresh::generate(&user, &sid, &rng).expect("gen");
        let third_parsed = ParsedRefresh::parse(third.token.secret()).expect("parses");
        let wrong = third_parsed.unseal(&sealed).expect("same length");
        assert_ne!(wrong.token.secret(), second.token.secret());
    }

    #[test]
    fn malformed_refresh_tokens_do_not_parse() {
        let rng = SeededRandom::default();
        let good = NewRefresh::generate(
            &OpenId::new("oUser1"),
            &SessionId::generate(&rng).expect("sid"),
            &rng,
        )
        .expect("gen");
        let good = good.token.secret();
        assert!(ParsedRefresh::parse(good).is_some());
        let parts: Vec<&str> = good.split('.').collect();
        let long_user = B64URL.encode("o".repeat(129));
        let control_user = B64URL.encode("o\nX");
        for t in [
            "",
            "abc",
            "a.b",
            "AAAAAAAAAAAAAAAAAAAAAA.short",
            "x.y.z",
            // The sid and secret without a user (the old format).
            &format!("{}.{}", parts[1], parts[2]),
            &format!("{good}.extra"),
            &format!(".{}.{}", parts[1], parts[2]),
            &format!("{long_user}.{}.{}", parts[1], parts[2]),
            &format!("{control_user}.{}.{}", parts[1], parts[2]),
            &format!("{}.{}.{}", parts[0], parts[1], &parts[2][1..]),
        ] {
            assert!(ParsedRefresh::parse(t).is_none(), "{t}");
        }
    }
}
