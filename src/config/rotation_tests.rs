//! The rotation variables: `IDENTITY_KEY_NEXT` / `_PREVIOUS`,
//! `TOKEN_SECRET_PREVIOUS`, `ADMIN_TOKEN_PREVIOUS`.

use crate::ids::OpenId;
use crate::testkit::config::{
    load, test_config, vars, TEST_IDENTITY_SEED, TEST_REFRESH_SECRET, TEST_SECRET,
};
use crate::token::identity::IdentityKey;

const NEXT_SEED: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
const PREVIOUS_SEED: &str = "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8=";
const OLD_TOKEN_SECRET: &str = "previous-token-secret-0123456789-ABCDEFGHIJKLMN";
const ADMIN: &str = "op-admin-token-0123456789abcdefghijKLMN";
const OLD_ADMIN: &str = "old-admin-token-0123456789abcdefghijKLMN";

fn seed(b64: &str) -> IdentityKey {
    IdentityKey::from_base64_seed(b64).expect("seed")
}

#[test]
fn next_and_previous_identity_keys_are_published_after_the_current_one() {
    assert_eq!(test_config().published_identity_keys().len(), 1);
    let mut v = vars();
    v.insert("IDENTITY_KEY_NEXT", NEXT_SEED.into());
    v.insert("IDENTITY_KEY_PREVIOUS", PREVIOUS_SEED.into());
    let c = load(&v).expect("valid");
    let published = c.published_identity_keys();
    assert_eq!(published.len(), 3);
    for (k, s) in published
        .iter()
        .zip([TEST_IDENTITY_SEED, NEXT_SEED, PREVIOUS_SEED])
    {
        assert!(k.same_key(&seed(s)));
    }
    // The current key is the one that signs.
    assert!(c
        .identity_key
        .as_ref()
        .is_some_and(|k| k.same_key(&seed(TEST_IDENTITY_SEED))));
    let shown = format!("{c:?}");
    for s in [NEXT_SEED, PREVIOUS_SEED] {
        assert!(!shown.contains(s), "{shown}");
    }
    // Without a current key (publishing a first key before it signs).
    v.remove("IDENTITY_KEY");
    v.remove("IDENTITY_KEY_PREVIOUS");
    let c = load(&v).expect("valid");
    assert!(c.identity_key.is_none());
    assert_eq!(c.published_identity_keys().len(), 1);
}

#[test]
fn a_next_or_previous_identity_key_that_is_malformed_or_a_duplicate_is_named() {
    for name in ["IDENTITY_KEY_NEXT", "IDENTITY_KEY_PREVIOUS"] {
        for bad in ["not base64!", "AAECAw=="] {
            let mut v = vars();
            v.insert(name, bad.into());
            let e = load(&v).unwrap_err();
            assert_eq!(e.variable, name, "{bad}");
            assert!(!e.to_string().contains(bad));
        }
        let mut v = vars();
        v.insert(name, TEST_IDENTITY_SEED.into());
        let e = load(&v).unwrap_err();
        assert_eq!((e.variable, e.problem), (name, "equals IDENTITY_KEY"));
        // The same seed written another way is the same key.
        let url_safe = TEST_IDENTITY_SEED.trim_end_matches('=').replace('+', "-");
        v.insert(name, url_safe);
        assert_eq!(load(&v).unwrap_err().variable, name);
    }
    let mut v = vars();
    v.insert("IDENTITY_KEY_NEXT", NEXT_SEED.into());
    v.insert("IDENTITY_KEY_PREVIOUS", NEXT_SEED.into());
    let e = load(&v).unwrap_err();
    assert_eq!(
        (e.variable, e.problem),
        ("IDENTITY_KEY_PREVIOUS", "equals IDENTITY_KEY_NEXT")
    );
}

#[test]
fn token_secret_previous_must_be_strong_and_another_key() {
    let mut v = vars();
    v.insert("TOKEN_SECRET_PREVIOUS", TEST_SECRET.into());
    let e = load(&v).unwrap_err();
    assert_eq!(
        (e.variable, e.problem),
        ("TOKEN_SECRET_PREVIOUS", "equals TOKEN_SECRET")
    );
    for weak in ["tiny-key".to_string(), "ab".repeat(40)] {
        v.insert("TOKEN_SECRET_PREVIOUS", weak.clone());
        let e = load(&v).unwrap_err();
        assert_eq!(e.variable, "TOKEN_SECRET_PREVIOUS", "{weak}");
        assert!(!e.to_string().contains(&weak));
    }
    v.insert("TOKEN_SECRET_PREVIOUS", OLD_TOKEN_SECRET.into());
    let c = load(&v).expect("valid");
    assert!(!format!("{c:?}").contains(OLD_TOKEN_SECRET));
}

#[test]
fn the_log_user_hash_survives_a_token_secret_rotation() {
    let openid = OpenId::new("oUser");
    let before = test_config().log_salt.user(&openid);
    let mut v = vars();
    v.insert("TOKEN_SECRET", OLD_TOKEN_SECRET.into());
    assert_eq!(load(&v).expect("valid").log_salt.user(&openid), before);
    // REFRESH_SECRET keys it.
    let mut v = vars();
    v.insert(
        "REFRESH_SECRET",
        "another-refresh-secret-0123456789abcdefghijklmn".into(),
    );
    assert_ne!(load(&v).expect("valid").log_salt.user(&openid), before);
}

#[test]
fn admin_token_previous_is_accepted_alongside_admin_token() {
    let mut v = vars();
    v.insert("ADMIN_TOKEN", ADMIN.into());
    v.insert("ADMIN_TOKEN_PREVIOUS", OLD_ADMIN.into());
    let c = load(&v).expect("valid");
    assert!(c.is_admin_token(ADMIN));
    assert!(c.is_admin_token(OLD_ADMIN));
    assert!(!c.is_admin_token("op-admin-token-0123456789abcdefghijKLMX"));
    assert!(!c.is_admin_token(""));
    assert!(!format!("{c:?}").contains(OLD_ADMIN));
    v.remove("ADMIN_TOKEN_PREVIOUS");
    let c = load(&v).expect("valid");
    assert!(c.is_admin_token(ADMIN) && !c.is_admin_token(OLD_ADMIN));
}

#[test]
fn admin_token_previous_problems_are_named() {
    let mut v = vars();
    v.insert("ADMIN_TOKEN_PREVIOUS", OLD_ADMIN.into());
    let e = load(&v).unwrap_err();
    assert_eq!(
        (e.variable, e.problem),
        ("ADMIN_TOKEN_PREVIOUS", "is set without ADMIN_TOKEN")
    );
    v.insert("ADMIN_TOKEN", ADMIN.into());
    v.insert("ADMIN_TOKEN_PREVIOUS", ADMIN.into());
    let e = load(&v).unwrap_err();
    assert_eq!(
        (e.variable, e.problem),
        ("ADMIN_TOKEN_PREVIOUS", "equals ADMIN_TOKEN")
    );
    for weak in ["a".repeat(31) + "b", "short-admin-token".into()] {
        v.insert("ADMIN_TOKEN_PREVIOUS", weak.clone());
        let e = load(&v).unwrap_err();
        assert_eq!(e.variable, "ADMIN_TOKEN_PREVIOUS", "{weak}");
        assert!(!e.to_string().contains(&weak));
    }
}

#[test]
fn refresh_secret_previous_must_be_strong_and_another_key() {
    let mut v = vars();
    v.insert("REFRESH_SECRET_PREVIOUS", TEST_REFRESH_SECRET.into());
    let e = load(&v).unwrap_err();
    assert_eq!(
        (e.variable, e.problem),
        ("REFRESH_SECRET_PREVIOUS", "equals REFRESH_SECRET")
    );
    for weak in ["tiny-key".to_string(), "ab".repeat(40)] {
        v.insert("REFRESH_SECRET_PREVIOUS", weak.clone());
        let e = load(&v).unwrap_err();
        assert_eq!(e.variable, "REFRESH_SECRET_PREVIOUS", "{weak}");
        assert!(!e.to_string().contains(&weak));
    }
    let old = "an-older-refresh-secret-0123456789-abcdefghijk";
    v.insert("REFRESH_SECRET_PREVIOUS", old.into());
    let c = load(&v).expect("valid");
    assert!(!format!("{c:?}").contains(old));
}
