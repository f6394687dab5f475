//! Property tests of the boundary's invariants, over generated input:
//! - no header reaching the origin names identity unless the worker added it,
//!   and no header of a stripped family (forwarding, client address, host,
//!   URL or method override, proxy, `cf-*`) in any spelling reaches it;
//! - a path that is not canonical is never public;
//! - a forwarded path never leaves `ORIGIN_URL`'s base path, at an origin
//!   that decodes it (once or more), reads `\` as `/`, drops `;`
//!   parameters and merges `//` before it resolves dot segments;
//! - every decryption failure gives the same response, byte for byte;
//! - a `CLIENT_IP_HEADER` the configuration accepts is one the proxy strips.

use proptest::prelude::*;

use crate::error::ApiError;
use crate::http::headers::{
    added_headers, is_stripped, normalized_name, rewrite_request_headers, Client, Identity,
};
use crate::http::path::{is_canonical, is_public, origin_target};
use crate::ids::{AppId, OpenId, Subject};
use crate::phone::Phone;
use crate::secret::SessionKey;
use crate::testkit::ISSUE_18_NAMES;
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
    let issue = prop::sample::select(ISSUE_18_NAMES.to_vec()).prop_map(str::to_string);
    prop_oneof![spoofs, issue, family_variant(), "[ -~]{1,24}"]
}

/// A name of a stripped family: a family's prefix, or a client-address
/// word with something before it, then anything after, in any case and
/// with `-`, `_` or `.` between words.
fn family_variant() -> impl Strategy<Value = String> {
    let prefixed = (
        prop::sample::select(vec![
            "x-wx-",
            "x-forwarded-",
            "forwarded-",
            "x-original-",
            "x-rewrite-",
            "x-http-method",
            "x-method-",
            "proxy-",
            "x-proxy-",
            "cf-",
        ]),
        "[a-z0-9-]{0,10}",
    )
        .prop_map(|(p, rest)| format!("{p}{rest}"));
    let worded = (
        "[a-z0-9]{0,6}",
        prop::sample::select(vec![
            "client-ip",
            "clientip",
            "client-addr",
            "real-ip",
            "remote-addr",
            "remote-ip",
            "user-ip",
            "proxyuser-ip",
            "connecting-ip",
            "originating-ip",
            "host",
            "override",
        ]),
        "[a-z0-9]{0,6}",
    )
        .prop_map(|(before, word, after)| {
            // Whole words for `host` and `override`; the address words
            // count anywhere.
            let whole = word == "host" || word == "override";
            match (before.is_empty(), after.is_empty(), whole) {
                (_, _, true) => format!("{before}-{word}-{after}"),
                _ => format!("{before}{word}{after}"),
            }
        });
    (
        prop_oneof![prefixed, worded],
        any::<u64>(),
        prop::sample::select(vec!['-', '_', '.']),
    )
        .prop_map(|(name, bits, sep)| {
            name.chars()
                .enumerate()
                .map(|(i, c)| match c {
                    '-' => sep,
                    c if bits >> (i % 64) & 1 == 1 => c.to_ascii_uppercase(),
                    c => c,
                })
                .collect()
        })
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

/// Segments that climb, or could at some origin.
const CLIMBS: &[&str] = &[
    "..",
    "%2e%2e",
    "%2E%2e",
    ".%2e",
    "..;",
    "..;x=1",
    ";",
    "%252e%252e",
    "%25252e.",
    "..%3b",
    ".",
];

/// What stands between segments: a slash, or what some origin reads as one.
const SEPARATORS: &[&str] = &[
    "/", "/", "%2f", "%2F", "%5c", "%5C", "\\", "%252f", "//", "/;/",
];

/// The path an origin resolves from `path`: percent-decoded `decodes`
/// times, `\` read as `/`, each segment cut at its first `;`, empty
/// segments merged, dot segments resolved (a `..` at the root stays
/// there). Written apart from `http::path`, as a naive origin would.
fn as_an_origin_resolves(path: &str, decodes: usize) -> String {
    let mut s = path.to_string();
    for _ in 0..decodes {
        let mut out = Vec::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match (b[i], hex) {
                (b'%', Some(v)) => {
                    out.push(v);
                    i += 3;
                }
                (c, _) => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        s = String::from_utf8_lossy(&out).into_owned();
    }
    let s = s.replace('\\', "/");
    let mut stack: Vec<&str> = Vec::new();
    for seg in s.split('/') {
        match seg.split(';').next().unwrap_or_default() {
            "" | "." => {}
            ".." => {
                // Above the root: an escape from the base path.
                if stack.pop().is_none() {
                    return "/..".into();
                }
            }
            other => stack.push(other),
        }
    }
    format!("/{}", stack.join("/"))
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
    fn no_header_of_a_stripped_family_reaches_the_origin(
        name in prop_oneof![
            prop::sample::select(ISSUE_18_NAMES.to_vec()).prop_map(str::to_string),
            family_variant(),
        ],
        ip in prop::option::of("[0-9a-f.:]{3,39}"),
    ) {
        prop_assert!(is_stripped(&name), "{name} is not stripped");
        let client = Client { ip: ip.as_deref(), proto: "https" };
        let incoming = vec![(name.clone(), "spoofed".to_string())];
        let out = rewrite_request_headers(&incoming, client, None, None);
        prop_assert!(
            out.iter().all(|(_, v)| v != "spoofed"),
            "{name} reached the origin: {out:?}"
        );
    }

    #[test]
    fn a_forwarded_path_never_leaves_the_base_path(
        segs in prop::collection::vec(
            prop_oneof![
                "[a-z0-9]{1,4}",
                prop::sample::select(CLIMBS.to_vec()).prop_map(str::to_string),
            ],
            0..7,
        ),
        seps in prop::collection::vec(prop::sample::select(SEPARATORS.to_vec()), 7),
    ) {
        let mut path = String::new();
        for (seg, sep) in segs.iter().zip(&seps) {
            path.push_str(sep);
            path.push_str(seg);
        }
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        let url = format!("https://e.example{path}");
        if let Ok(target) = origin_target("https://o.example/api", &url) {
            let sent = target.strip_prefix("https://o.example").expect("same origin");
            for decodes in 0..=3 {
                let seen = as_an_origin_resolves(sent, decodes);
                prop_assert!(
                    seen == "/api" || seen.starts_with("/api/"),
                    "{path} reaches {seen} after {decodes} decodes"
                );
            }
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever `CLIENT_IP_HEADER` an operator configures, the client's
    /// copy of that header is gone from what the origin receives: the
    /// configuration accepts only names the proxy strips (config may not
    /// use the proxy's rule; this pins the two together).
    #[test]
    fn an_accepted_client_ip_header_never_reaches_the_origin(
        name in prop_oneof![
            "[A-Za-z0-9_.-]{1,24}",
            "(X|x)[-_.](Real|Client|Remote|Forwarded|Cluster|User)[-_.]?(Client)?[-_.]?(IP|Ip|ip|Addr|Address)",
            "(True|Fastly|Akamai)-(Client|Connecting|Real)-(IP|Ip|Addr)",
            "(CF|Cf|cf)-[A-Za-z-]{1,20}",
        ],
    ) {
        let mut vars = crate::testkit::config::vars();
        vars.insert("CLIENT_IP_HEADER", name.clone());
        if let Ok(cfg) = crate::testkit::config::load(&vars) {
            prop_assert_eq!(&cfg.client_ip_header, &name);
            prop_assert!(is_stripped(&name), "{} is accepted but not stripped", name);
            let incoming = vec![
                (name.clone(), "198.51.100.66".to_string()),
                ("Accept".to_string(), "*/*".to_string()),
            ];
            let client = Client { ip: Some("203.0.113.5"), proto: "https" };
            let out = rewrite_request_headers(&incoming, client, None, None);
            prop_assert!(out.iter().all(|(_, v)| v != "198.51.100.66"), "{:?}", out);
            prop_assert!(out.iter().any(|(n, v)| n == "X-WX-Client-IP" && v == "203.0.113.5"));
        }
    }
}
