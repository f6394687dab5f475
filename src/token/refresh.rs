//! Refresh tokens: opaque, rotated on every use, stored only as hashes.
//!
//! Design choices:
//! - A refresh token is `{user}.{sid}.{secret}.{tag}`: the openid
//!   (base64url), so a refresh reaches the user's session authority with no
//!   lookup on the way; 128 random bits of session id; 256 random bits of
//!   secret; and a tag, the first 128 bits of HMAC-SHA256 under
//!   `REFRESH_SECRET` over the user and the session id. The authority holds
//!   only SHA-256 of the secret.
//! - The tag is checked (in constant time) before any authority is asked:
//!   a token the worker did not mint names no authority, so a made-up or
//!   mangled token never creates a Durable Object nor takes a user's queue.
//!   It covers the user and the session, not the secret: a session keeps
//!   its tag across rotations, and the secret is the authority's to check.
//! - `REFRESH_SECRET` is its own key, not derived from `TOKEN_SECRET`, so
//!   that rotating the access-token key never logs anyone out.
//! - On rotation the next secret is also stored sealed under a key derived
//!   from the previous secret, so a client that refreshes twice within the
//!   grace window receives the same new token instead of a reuse alarm, and
//!   nobody without the previous token can unseal it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::ids::{OpenId, SessionId};
use crate::random::{self, Random, RandomError};
use crate::secret::{ct_eq, strong_key, RefreshHash, RefreshToken};

/// The longest openid a refresh token may name (WeChat's are 28 characters).
const MAX_OPENID: usize = 128;

/// How much of the HMAC the tag keeps: 128 bits.
const TAG_BYTES: usize = 16;

/// What the tag's MAC covers before the user and the session.
const TAG_CONTEXT: &[u8] = b"wx-edge/refresh-tag/v1\0";

/// The refresh-token tag key (`REFRESH_SECRET`), ready to MAC with.
/// Refuses keys too short or too uniform to be safe, as `TOKEN_SECRET`'s
/// check does.
pub(crate) struct RefreshKey {
    current: Hmac<Sha256>,
    /// `REFRESH_SECRET_PREVIOUS`: tags made under it are still accepted,
    /// and the next token of such a session is tagged under the current key.
    previous: Option<Hmac<Sha256>>,
}

impl std::fmt::Debug for RefreshKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshKey([redacted])")
    }
}

impl RefreshKey {
    pub(crate) fn new(secret: &str) -> Result<Self, &'static str> {
        Ok(RefreshKey {
            current: mac_of(secret)?,
            previous: None,
        })
    }

    /// This key, with `previous` still accepted (a rotation of
    /// `REFRESH_SECRET` that logs nobody out).
    pub(crate) fn with_previous(self, previous: &str) -> Result<Self, &'static str> {
        Ok(RefreshKey {
            previous: Some(mac_of(previous)?),
            ..self
        })
    }

    /// The tag of a token naming `user` (its base64url, as the token
    /// carries it) and `sid`, under the current key.
    fn tag(&self, user: &str, sid: &str) -> [u8; TAG_BYTES] {
        tag_under(&self.current, user, sid)
    }

    /// Whether `presented` is the tag of `user` and `sid` under the
    /// current or the previous key (each compared in constant time).
    fn accepts(&self, user: &str, sid: &str, presented: &[u8; TAG_BYTES]) -> bool {
        let current = ct_eq(&self.tag(user, sid), presented);
        let previous = self
            .previous
            .as_ref()
            .is_some_and(|p| ct_eq(&tag_under(p, user, sid), presented));
        current | previous
    }
}

fn mac_of(secret: &str) -> Result<Hmac<Sha256>, &'static str> {
    Hmac::<Sha256>::new_from_slice(strong_key(secret)?).map_err(|_| "is not a usable key")
}

fn tag_under(key: &Hmac<Sha256>, user: &str, sid: &str) -> [u8; TAG_BYTES] {
    let mut mac = key.clone();
    mac.update(TAG_CONTEXT);
    mac.update(user.as_bytes());
    mac.update(b".");
    mac.update(sid.as_bytes());
    let full = mac.finalize().into_bytes();
    let mut tag = [0u8; TAG_BYTES];
    tag.copy_from_slice(&full[..TAG_BYTES]);
    tag
}

/// The parts of a token that stay the same across a session's rotations:
/// the user (base64url), the session and their tag.
#[derive(Clone)]
struct Holder {
    user: String,
    sid: SessionId,
    tag: String,
}

impl Holder {
    fn new(key: &RefreshKey, openid: &OpenId, sid: &SessionId) -> Self {
        let user = B64URL.encode(openid.as_str());
        let tag = B64URL.encode(key.tag(&user, sid.as_str()));
        Holder {
            user,
            sid: sid.clone(),
            tag,
        }
    }
}

/// A freshly minted refresh token and what the authority keeps of it.
pub(crate) struct NewRefresh {
    pub(crate) token: RefreshToken,
    pub(crate) hash: RefreshHash,
    secret: [u8; 32],
}

impl NewRefresh {
    pub(crate) fn generate(
        key: &RefreshKey,
        openid: &OpenId,
        sid: &SessionId,
        rng: &impl Random,
    ) -> Result<Self, RandomError> {
        let secret: [u8; 32] = random::bytes(rng)?;
        Ok(Self::from_secret(&Holder::new(key, openid, sid), secret))
    }

    fn from_secret(holder: &Holder, secret: [u8; 32]) -> Self {
        NewRefresh {
            token: RefreshToken::new(format!(
                "{}.{}.{}.{}",
                holder.user,
                holder.sid,
                B64URL.encode(secret),
                holder.tag
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

/// A refresh token as presented by a client, split into its parts, its tag
/// verified: its user and session are ones this deployment minted a token
/// for.
pub(crate) struct ParsedRefresh {
    pub(crate) openid: OpenId,
    pub(crate) sid: SessionId,
    secret: [u8; 32],
    holder: Holder,
}

impl ParsedRefresh {
    /// Splits `{user}.{sid}.{secret}.{tag}` and checks the tag under `key`
    /// (in constant time); `None` for anything else, a token of the old
    /// three-part form included.
    pub(crate) fn parse(key: &RefreshKey, token: &str) -> Option<Self> {
        let mut parts = token.split('.');
        let (user, sid, secret, tag) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let name = B64URL.decode(user).ok()?;
        if name.is_empty() || name.len() > MAX_OPENID || !name.iter().all(u8::is_ascii_graphic) {
            return None;
        }
        let sid = SessionId::parse(sid)?;
        let secret: [u8; 32] = B64URL.decode(secret).ok()?.try_into().ok()?;
        let presented: [u8; TAG_BYTES] = B64URL.decode(tag).ok()?.try_into().ok()?;
        if !key.accepts(user, sid.as_str(), &presented) {
            return None;
        }
        Some(ParsedRefresh {
            openid: OpenId::new(String::from_utf8(name).ok()?),
            holder: Holder {
                user: user.to_string(),
                sid: sid.clone(),
                // Under the current key, also when the presented tag was
                // the previous key's: the session's next token outlives
                // `REFRESH_SECRET_PREVIOUS`.
                tag: B64URL.encode(key.tag(user, sid.as_str())),
            },
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
        Some(NewRefresh::from_secret(&self.holder, secret))
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
    use crate::testkit::config::TEST_REFRESH_SECRET;
    use crate::testkit::SeededRandom;

    fn key() -> RefreshKey {
        RefreshKey::new(TEST_REFRESH_SECRET).expect("strong")
    }

    fn other_key() -> RefreshKey {
        RefreshKey::new("another-refresh-secret-0123456789-ABCDEFGHIJ").expect("strong")
    }

    fn mint(key: &RefreshKey, user: &str, rng: &SeededRandom) -> String {
        let sid = SessionId::generate(rng).expect("sid");
        NewRefresh::generate(key, &OpenId::new(user), &sid, rng)
            .expect("gen")
            .token
            .secret()
            .to_string()
    }

    /// A rotation of `REFRESH_SECRET` logs nobody out: a token tagged under
    /// the previous key is accepted while `REFRESH_SECRET_PREVIOUS` holds
    /// it, its session's next token is tagged under the current key (and so
    /// outlives the previous key), and once the previous key is gone its
    /// own tag is refused.
    #[test]
    fn a_token_tagged_under_the_previous_key_survives_the_rotation() {
        let rng = SeededRandom::default();
        let old = other_key();
        let token = mint(&old, "o-rotated", &rng);
        assert!(
            ParsedRefresh::parse(&key(), &token).is_none(),
            "unknown key"
        );
        let rotated = key()
            .with_previous("another-refresh-secret-0123456789-ABCDEFGHIJ")
            .expect("strong");
        let parsed = ParsedRefresh::parse(&rotated, &token).expect("the previous key's tag");
        let next = NewRefresh::generate(&rotated, &parsed.openid, &parsed.sid, &rng).expect("next");
        let next = next.token.secret().to_string();
        assert!(
            ParsedRefresh::parse(&key(), &next).is_some(),
            "the next token is tagged under the current key alone"
        );
        assert!(ParsedRefresh::parse(&key(), &token).is_none());
        // Within the grace, the same next token is handed out again: the
        // unsealed token carries the current key's tag too.
        let sealed = NewRefresh::generate(&rotated, &parsed.openid, &parsed.sid, &rng)
            .expect("next")
            .sealed_under(&parsed);
        let again = parsed.unseal(&sealed).expect("unseals");
        assert!(ParsedRefresh::parse(&key(), again.token.secret()).is_some());
        // A made-up tag is refused under either key.
        let forged = format!(
            "{}.AAAAAAAAAAAAAAAAAAAAAA",
            token.rsplit_once('.').expect("tag").0
        );
        assert!(ParsedRefresh::parse(&rotated, &forged).is_none());
    }

    fn parts(token: &str) -> Vec<&str> {
        token.split('.').collect()
    }

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
        let key = key();
        let sid = SessionId::generate(&rng).expect("sid");
        let user = OpenId::new("oGZUI0egBJY1zhBYw2KhdUfwVJJE");
        let first = NewRefresh::generate(&key, &user, &sid, &rng).expect("gen");
        assert_eq!(parts(first.token.secret()).len(), 4);
        let parsed = ParsedRefresh::parse(&key, first.token.secret()).expect("parses");
        assert_eq!(parsed.sid, sid);
        assert_eq!(parsed.openid, user);
        assert_eq!(parsed.hash(), first.hash);
        // The hash is not the token.
        assert!(!first.token.secret().contains(first.hash.as_str()));

        let second = NewRefresh::generate(&key, &user, &sid, &rng).expect("gen");
        assert_ne!(second.hash, first.hash);
        let sealed = second.sealed_under(&parsed);
        let opened = parsed.unseal(&sealed).expect("unseal");
        assert_eq!(opened.token.secret(), second.token.secret());
        // The unsealed token carries its session's tag: it verifies.
        assert!(ParsedRefresh::parse(&key, opened.token.secret()).is_some());
        // Another token cannot open it.
        let third = NewRefresh::generate(&key, &user, &sid, &rng).expect("gen");
        let third_parsed = ParsedRefresh::parse(&key, third.token.secret()).expect("parses");
        let wrong = third_parsed.unseal(&sealed).expect("same length");
        assert_ne!(wrong.token.secret(), second.token.secret());
    }

    /// The tag is decision 1's: base64url of the first 16 bytes of
    /// HMAC-SHA256(REFRESH_SECRET, "wx-edge/refresh-tag/v1\0" || user
    /// || "." || sid), computed here by another implementation (Python's
    /// hmac).
    #[test]
    fn the_tag_is_the_documented_hmac() {
        let sid = SessionId::parse("AAECAwQFBgcICQoLDA0ODw").expect("sid");
        let user = OpenId::new("oGZUI0egBJY1zhBYw2KhdUfwVJJE");
        let token = NewRefresh::generate(&key(), &user, &sid, &SeededRandom::default())
            .expect("gen")
            .token;
        let p = parts(token.secret());
        assert_eq!(p[0], "b0daVUkwZWdCSlkxemhCWXcyS2hkVWZ3VkpKRQ");
        assert_eq!(p[1], "AAECAwQFBgcICQoLDA0ODw");
        assert_eq!(p[3], "Kuc5WV1ENVg0STb6QzYzFA");
    }

    #[test]
    fn malformed_refresh_tokens_do_not_parse() {
        let rng = SeededRandom::default();
        let key = key();
        let good = mint(&key, "oUser1", &rng);
        assert!(ParsedRefresh::parse(&key, &good).is_some());
        let p = parts(&good);
        let long_user = B64URL.encode("o".repeat(129));
        let control_user = B64URL.encode("o\nX");
        for t in [
            "",
            "abc",
            "a.b",
            "AAAAAAAAAAAAAAAAAAAAAA.short",
            "x.y.z",
            "w.x.y.z",
            // The sid and secret without a user (the first format).
            &format!("{}.{}", p[1], p[2]),
            // The three-part token of before the tag.
            &format!("{}.{}.{}", p[0], p[1], p[2]),
            // An empty tag, a short one, one too long.
            &format!("{}.{}.{}.", p[0], p[1], p[2]),
            &format!("{}.{}.{}.{}", p[0], p[1], p[2], &p[3][..21]),
            &format!("{good}A"),
            &format!("{good}.extra"),
            &format!(".{}.{}.{}", p[1], p[2], p[3]),
            &format!("{long_user}.{}.{}.{}", p[1], p[2], p[3]),
            &format!("{control_user}.{}.{}.{}", p[1], p[2], p[3]),
            &format!("{}.{}.{}.{}", p[0], p[1], &p[2][1..], p[3]),
        ] {
            assert!(ParsedRefresh::parse(&key, t).is_none(), "{t}");
        }
    }

    #[test]
    fn the_tag_binds_the_user_and_the_session() {
        let rng = SeededRandom::default();
        let key = key();
        let a = mint(&key, "oAlice", &rng);
        let b = mint(&key, "oBob", &rng);
        let (a, b) = (parts(&a), parts(&b));
        // Alice's tag with Bob's name, or with Bob's session.
        for forged in [
            format!("{}.{}.{}.{}", b[0], a[1], a[2], a[3]),
            format!("{}.{}.{}.{}", a[0], b[1], a[2], a[3]),
            // Bob's tag on Alice's token.
            format!("{}.{}.{}.{}", a[0], a[1], a[2], b[3]),
        ] {
            assert!(ParsedRefresh::parse(&key, &forged).is_none(), "{forged}");
        }
        // The secret is not covered: the authority checks it.
        let other_secret = format!("{}.{}.{}.{}", a[0], a[1], b[2], a[3]);
        assert!(ParsedRefresh::parse(&key, &other_secret).is_some());
    }

    #[test]
    fn a_token_minted_under_another_key_is_refused() {
        let rng = SeededRandom::default();
        let theirs = mint(&other_key(), "oUser1", &rng);
        assert!(ParsedRefresh::parse(&other_key(), &theirs).is_some());
        assert!(ParsedRefresh::parse(&key(), &theirs).is_none());
    }

    #[test]
    fn forged_tokens_for_any_name_are_refused() {
        let rng = SeededRandom::default();
        let key = key();
        for i in 0..200u32 {
            let name = format!(
                "oVictim{i}-{}",
                random::hex(&random::bytes::<6>(&rng).expect("rng"))
            );
            let user = B64URL.encode(&name);
            let sid = SessionId::generate(&rng).expect("sid");
            let secret = B64URL.encode(random::bytes::<32>(&rng).expect("rng"));
            let tag = B64URL.encode(random::bytes::<16>(&rng).expect("rng"));
            for forged in [
                format!("{user}.{sid}.{secret}.{tag}"),
                format!("{user}.{sid}.{secret}"),
                format!("{user}.{sid}.{secret}.AAAAAAAAAAAAAAAAAAAAAA"),
            ] {
                assert!(ParsedRefresh::parse(&key, &forged).is_none(), "{forged}");
            }
        }
    }

    #[test]
    fn weak_keys_are_refused_and_keys_never_print() {
        assert!(RefreshKey::new("short").is_err());
        assert!(RefreshKey::new(&"ab".repeat(40)).is_err());
        let shown = format!("{:?}", key());
        assert_eq!(shown, "RefreshKey([redacted])");
    }
}

/// Over generated input (host only: proptest has no wasm32 randomness).
#[cfg(all(test, not(target_arch = "wasm32")))]
mod props {
    use super::*;
    use crate::testkit::config::TEST_REFRESH_SECRET;
    use crate::testkit::SeededRandom;
    use proptest::prelude::*;

    fn key() -> RefreshKey {
        RefreshKey::new(TEST_REFRESH_SECRET).expect("strong")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Nothing made up parses, whatever its shape.
        #[test]
        fn made_up_tokens_never_parse(
            user in "[A-Za-z0-9_-]{1,40}",
            sid in prop::array::uniform16(any::<u8>()),
            secret in prop::array::uniform32(any::<u8>()),
            tag in prop::array::uniform16(any::<u8>()),
            junk in "\\PC{0,200}",
        ) {
            let sid = B64URL.encode(sid);
            let secret = B64URL.encode(secret);
            let tag = B64URL.encode(tag);
            let key = key();
            let four = format!("{user}.{sid}.{secret}.{tag}");
            let three = format!("{user}.{sid}.{secret}");
            prop_assert!(ParsedRefresh::parse(&key, &four).is_none());
            prop_assert!(ParsedRefresh::parse(&key, &three).is_none());
            prop_assert!(ParsedRefresh::parse(&key, &junk).is_none());
        }

        /// Changing any one character of a minted token's user, session or
        /// tag makes it refused.
        #[test]
        fn a_mangled_token_never_parses(
            name in "o[A-Za-z0-9_-]{1,40}",
            at in any::<prop::sample::Index>(),
            with in prop::sample::select(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ "
                    .chars()
                    .collect::<Vec<_>>(),
            ),
        ) {
            let rng = SeededRandom::default();
            let key = key();
            let sid = SessionId::generate(&rng).expect("sid");
            let token = NewRefresh::generate(&key, &OpenId::new(name), &sid, &rng).expect("gen");
            let token = token.token.secret();
            let p: Vec<&str> = token.split('.').collect();
            let secret_span = (p[0].len() + p[1].len() + 2)..(p[0].len() + p[1].len() + 2 + p[2].len());
            let chars: Vec<char> = token.chars().collect();
            let i = at.index(chars.len());
            prop_assume!(chars[i] != with && !secret_span.contains(&i));
            let mut mangled = chars;
            mangled[i] = with;
            let mangled: String = mangled.into_iter().collect();
            prop_assert!(ParsedRefresh::parse(&key, &mangled).is_none(), "{}", mangled);
        }
    }
}
