//! Entry points for the fuzz targets (`fuzz/`), compiled only under
//! `cargo fuzz` (`--cfg fuzzing`). Each takes raw bytes from the fuzzer,
//! runs one parser that sees outside input, and checks what must hold
//! whatever the input: no panic, and the invariant of that boundary.

use crate::error::ApiError;
use crate::http::headers::{rewrite_request_headers, Client};
use crate::http::path::{is_canonical, is_public, origin_target, path_of};
use crate::secret::SessionKey;
use crate::token::access::{verify_access, TokenKey};
use crate::token::refresh::{ParsedRefresh, RefreshKey};
use crate::wechat::open_data::{EncryptedPhone, Freshness, OpenDataError};

/// Whatever the watermark's age: the fuzzers look at decryption.
const ANY_AGE: Freshness = Freshness {
    now: 0,
    max_age: u64::MAX,
};
use crate::wechat::HttpResponse;

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// `/auth/*` bodies: JSON or form, then each endpoint's fields.
pub fn body(data: &[u8]) {
    let (form, rest) = data
        .split_first()
        .map_or((false, data), |(f, r)| (f & 1 == 1, r));
    let ct = if form {
        Some("application/x-www-form-urlencoded")
    } else {
        Some("application/json")
    };
    if let Ok(map) = crate::http::body::parse_object(ct, rest, true) {
        let _ = crate::http::body::login_code(&map);
        let _ = crate::http::body::refresh_token(&map);
        let _ = crate::http::body::phone_request(&map);
    }
}

/// Refresh tokens as clients present them: what parses is exactly what
/// the tag key minted, spelled the one way it mints it.
pub fn refresh_token(data: &[u8]) {
    let key = RefreshKey::new("fuzz-only-refresh-secret-0123456789abcdefghij").expect("strong");
    let t = text(data);
    if let Some(p) = ParsedRefresh::parse(&key, &t) {
        let _ = p.hash();
        let opened = p.unseal("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        // Whatever it unseals is a token of the same user and session.
        if let Some(opened) = opened {
            let again = ParsedRefresh::parse(&key, opened.token.secret()).expect("verifies");
            assert!(again.openid == p.openid && again.sid == p.sid);
        }
        // Another key refuses it.
        let other =
            RefreshKey::new("fuzz-other-refresh-secret-0123456789abcdefgh").expect("strong");
        assert!(
            ParsedRefresh::parse(&other, &t).is_none(),
            "verified under two keys: {t}"
        );
    }
}

/// Access-token verification never accepts what it did not sign.
pub fn access_token(data: &[u8]) {
    let key = TokenKey::new("fuzz-only-token-secret-0123456789abcdefghijkl").expect("strong");
    let t = text(data);
    assert!(
        verify_access(&key, "wxd930ea5d5a258f4f", &t, 1_764_000_000).is_err(),
        "a token nobody signed verified: {t}"
    );
}

/// Header rewriting: nothing identity-like, address-like or override-like
/// from the client survives.
pub fn headers(data: &[u8]) {
    let t = text(data);
    let incoming: Vec<(String, String)> = t
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    let client = Client {
        ip: Some("203.0.113.9"),
        proto: "https",
    };
    for (name, value) in rewrite_request_headers(&incoming, client, None, None) {
        let n = crate::http::headers::normalized_name(&name);
        // Every family the worker strips (client addresses, hosts,
        // overrides, proxies' views, `cf-*`, `x-wx-*`) reaches the origin
        // only as the worker set it.
        if crate::http::headers::is_stripped(&n) || n.starts_with("x-wx-") || n == "x-forwarded-for"
        {
            assert!(
                (n == "x-wx-client-ip" || n == "x-forwarded-for") && value == "203.0.113.9"
                    || n == "x-forwarded-proto" && value == "https",
                "{name}: {value} reached the origin"
            );
        }
    }
}

/// Public-path classification: only canonical paths are public, and the
/// path classified is the path forwarded.
pub fn public_path(data: &[u8]) {
    let t = text(data);
    let url = format!("https://edge.example{t}");
    if let Some((path, _)) = path_of(&url) {
        let public = vec!["/public/".to_string()];
        if is_public(&public, path) {
            assert!(is_canonical(path));
            assert!(!path.contains(';') && !path.contains("/../") && !path.contains("//"));
            let target = origin_target("https://o.example", &url).expect("absolute");
            assert!(target.starts_with(&format!("https://o.example{path}")));
        }
    }
}

/// Legacy phone decryption: any failure to decrypt answers the same bytes.
pub fn phone(data: &[u8]) {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    if data.len() < 32 {
        return;
    }
    let (key, rest) = data.split_at(16);
    let (iv, ct) = rest.split_at(16);
    let key = SessionKey::from_base64(&b64.encode(key)).expect("16 bytes");
    let sealed = EncryptedPhone {
        encrypted_data: b64.encode(ct),
        iv: b64.encode(iv),
    };
    if let Err(OpenDataError::DecryptFailed) = sealed.open(&key, "wxd930ea5d5a258f4f", ANY_AGE) {
        assert_eq!(
            ApiError::from(OpenDataError::DecryptFailed).to_response(),
            ApiError::DecryptFailed.to_response()
        );
    }
    // The client's own strings, as sent.
    let raw = EncryptedPhone {
        encrypted_data: text(ct),
        iv: text(iv),
    };
    let _ = raw.open(&key, "wxd930ea5d5a258f4f", ANY_AGE);
    // Any open data (the service decrypt): what opens is a JSON object of
    // this app's watermark, nothing else.
    for sealed in [&sealed, &raw] {
        if let Ok(text) = sealed.open_object(&key, "wxd930ea5d5a258f4f", ANY_AGE) {
            let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
            assert!(value.is_object());
            assert_eq!(value["watermark"]["appid"], "wxd930ea5d5a258f4f");
        }
    }
}

/// WeChat's replies, whatever the bytes: parsed or refused, never echoed.
pub fn wechat_reply(data: &[u8]) {
    let resp = HttpResponse {
        status: 200,
        body: data.to_vec(),
    };
    let _ = crate::wechat::api::parse_code2session(&resp);
    let _ = crate::wechat::api::parse_stable_token(&resp);
    if let Ok(info) = crate::wechat::api::parse_phone_number(&resp) {
        let _ = crate::phone::Phone::from_phone_info(&info, "wxd930ea5d5a258f4f");
    }
    let _ = crate::wechat::api::parse_check_session(&resp);
    let _ = crate::wechat::api::parse_reset_session_key(&resp);
}
