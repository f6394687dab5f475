//! Property tests of the boundary's invariants, over generated input:
//! - no header reaching the origin names identity unless the worker added it;
//! - a path that is not canonical is never public;
//! - every decryption failure gives the same response, byte for byte.

use proptest::prelude::*;

use crate::error::ApiError;
use crate::http::headers::{
    added_headers, is_stripped, normalized_name, rewrite_request_headers, Client, Identity,
};
use crate::http::path::{is_canonical, is_public};
use crate::ids::{AppId, OpenId, Subject};
use crate::phone::Phone;
use crate::secret::SessionKey;
use crate::wechat::open_data::{EncryptedPhone, Freshness, OpenDataError};

fn header_name() -> impl Strategy<Value = String> {
    let spoofs = prop::sample::select(vec![
        "X-WX-OpenID",
        "x_wx_phone",
        "X.WX.Identity",
        " x-wx-unionid",
        "X-Wx-AppID",
        "X-WX-Client-IP",
        "X-Forwarded-For",
        "x_forwarded_host",
        "Forwarded",
        "X-Real-IP",
        "True-Client-IP",
        "X-Client-IP",
        "X-Original-URL",
        "x-rewrite-url",
        "Authorization",
        "HOST",
        "Accept",
        "X-Request-Id",
        "Content-Type",
    ])
    .prop_map(str::to_string);
    prop_oneof![spoofs, "[ -~]{1,24}"]
}

fn identity() -> impl Strategy<Value = Option<Identity>> {
    prop::option::of(
        ("[a-zA-Z0-9_-]{1,28}", prop::option::of("[0-9]{5,11}")).prop_map(|(openid, phone)| {
            Identity {
                subject: Subject {
                    openid: OpenId::new(openid),
                    unionid: None,
                    phone: phone.map(|p| Phone::for_tests(&p, &p, "86")),
                },
                appid: AppId::new("wxd930ea5d5a258f4f"),
            }
        }),
    )
}

/// Fragments that take a path out of canonical form.
const ESCAPES: &[&str] = &[
    ";", ";x=1", "..", ".", "%2e", "%2E", "%2f", "%2F", "%5c", "%5C", "%3b", "%3B", "\\\\", "%25",
    "/", "%",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_x_wx_header_reaches_the_origin_unless_the_worker_added_it(
        incoming in prop::collection::vec((header_name(), "[ -~]{0,16}"), 0..12),
        id in identity(),
        ip in prop::option::of("[0-9a-f.:]{3,39}"),
    ) {
        let client = Client { ip: ip.as_deref(), proto: "https" };
        let out = rewrite_request_headers(&incoming, client, id.as_ref(), Some("assertion"));
        let added = added_headers(client, id.as_ref(), Some("assertion"));
        for (name, value) in &out {
            let n = normalized_name(name);
            if n.starts_with("x-wx-") || n.starts_with("x-forwarded-") || is_stripped(name) {
                prop_assert!(
                    added.iter().any(|(a, v)| a == name && v == value),
                    "{name}: {value} reached the origin"
                );
            }
        }
        // And each of the worker's own is there exactly once.
        for (a, _) in &added {
            prop_assert_eq!(out.iter().filter(|(n, _)| n == a).count(), 1);
        }
    }

    #[test]
    fn a_non_canonical_path_is_never_public(
        segs in prop::collection::vec("[a-zA-Z0-9_~-]{1,8}", 0..5),
        at in 0usize..6,
        escape in prop::sample::select(ESCAPES.to_vec()),
        around in prop::sample::select(vec!["seg", "/seg/", "/seg", "seg/"]),
    ) {
        let mut parts: Vec<String> = segs;
        let frag = around.replace("seg", escape);
        let at = at.min(parts.len());
        parts.insert(at, frag);
        let path = format!("/public/{}", parts.join("/"));
        let public = vec!["/public/".to_string()];
        if !is_canonical(&path) {
            prop_assert!(!is_public(&public, &path), "{path}");
        }
        // Every escape fragment, standing as its own segment or inside one,
        // makes the path non-canonical (a lone "/" only when it empties a
        // segment).
        if escape != "/" {
            prop_assert!(!is_public(&public, &path), "{path} is public");
        }
    }

    #[test]
    fn every_decryption_failure_answers_the_same_bytes(
        key in any::<[u8; 16]>(),
        iv in any::<[u8; 16]>(),
        blocks in prop::collection::vec(any::<[u8; 16]>(), 1..8),
    ) {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let data: Vec<u8> = blocks.concat();
        let sealed = EncryptedPhone { encrypted_data: b64.encode(&data), iv: b64.encode(iv) };
        let key = SessionKey::from_base64(&b64.encode(key)).expect("16 bytes");
        let got = sealed.open(&key, "wxd930ea5d5a258f4f", Freshness { now: 0, max_age: u64::MAX });
        // Random bytes under a random key are never a phone.
        prop_assert!(got.is_err());
        if got == Err(OpenDataError::DecryptFailed) {
            let e = ApiError::from(OpenDataError::DecryptFailed);
            prop_assert_eq!(e.to_response(), ApiError::DecryptFailed.to_response());
            prop_assert_eq!(e.extra_headers(), ApiError::DecryptFailed.extra_headers());
        }
    }
}

#[test]
fn the_decryption_failure_answer_is_pinned() {
    let (status, body) = ApiError::DecryptFailed.to_response();
    assert_eq!(status, 400);
    assert_eq!(
        body,
        r#"{"error":"decrypt_failed","message":"the phone data does not decrypt with this session's session_key: it was most likely rotated by a later wx.login(); log in again, then ask for the phone number again"}"#
    );
    assert_eq!(
        ApiError::DecryptFailed.extra_headers(),
        vec![("X-WX-Edge-Error", "decrypt_failed".to_string())]
    );
}

#[test]
fn configured_public_paths_match_by_folder() {
    let mut v = crate::testkit::config::vars();
    v.insert("PUBLIC_PATHS", "/health, /public/".into());
    let c = crate::testkit::config::load(&v).expect("valid");
    let public = |p: &str| is_public(&c.public_paths, p);
    assert!(public("/health"));
    assert!(public("/public/x"));
    assert!(!public("/publicity"));
    assert!(!public("/api"));
    // Nothing an origin could decode into another folder.
    assert!(!public("/public/..%2Fadmin"));
    assert!(!public("/public/%2e%2e/admin"));
    assert!(!public("/public/../admin"));
    assert!(!public("/public/a%5Cb"));
}
