//! Request bodies of `/auth/*`: JSON, or form-encoded where the contract
//! allows it, at most 16 KiB.

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::flows::phone::PhoneRequest;
use crate::wechat::open_data::EncryptedPhone;

pub(crate) const MAX_BODY_BYTES: usize = 16 * 1024;

/// Parses a body into a JSON object. `allow_form` admits
/// `application/x-www-form-urlencoded` (`/auth/login`, `/auth/phone`).
pub(crate) fn parse_object(
    content_type: Option<&str>,
    body: &[u8],
    allow_form: bool,
) -> Result<Map<String, Value>, ApiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    let mime = content_type
        .and_then(|c| c.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if mime == "application/x-www-form-urlencoded" {
        if !allow_form {
            return Err(ApiError::InvalidRequest("this endpoint takes a JSON body"));
        }
        let mut map = Map::new();
        for (k, v) in form_urlencoded::parse(body) {
            map.insert(k.into_owned(), Value::String(v.into_owned()));
        }
        return Ok(map);
    }
    // JSON whatever the content type says (mini-program clients are not
    // always careful with it), but it must be an object.
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::InvalidRequest(
            "the body is empty; send a JSON object",
        ));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::InvalidRequest("the body must be a JSON object")),
        Err(_) => Err(ApiError::InvalidRequest("the body is not valid JSON")),
    }
}

/// A string field: `Ok(None)` when absent or empty, an error when present
/// with another type or over `max` bytes.
pub(crate) fn string_field<'a>(
    map: &'a Map<String, Value>,
    name: &'static str,
    max: usize,
    wrong: &'static str,
) -> Result<Option<&'a str>, ApiError> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s.len() <= max => Ok(Some(s.as_str())),
        Some(_) => Err(ApiError::InvalidRequest(wrong)),
    }
}

/// `/auth/login`: the `wx.login` code.
pub(crate) fn login_code(body: &Map<String, Value>) -> Result<&str, ApiError> {
    string_field(body, "code", 256, "code must be a string")?
        .ok_or(ApiError::InvalidRequest("code is missing"))
}

/// `/auth/refresh`: the refresh token.
pub(crate) fn refresh_token(body: &Map<String, Value>) -> Result<&str, ApiError> {
    string_field(body, "refresh_token", 512, "refresh_token must be a string")?
        .ok_or(ApiError::InvalidRequest("refresh_token is missing"))
}

/// `/auth/phone`: a getPhoneNumber `code` (preferred when both are sent) or
/// the legacy `encryptedData` + `iv`.
pub(crate) fn phone_request(body: &Map<String, Value>) -> Result<PhoneRequest<'_>, ApiError> {
    let code = string_field(body, "code", 256, "code must be a string")?;
    let enc = string_field(
        body,
        "encryptedData",
        8192,
        "encryptedData must be a string",
    )?;
    let iv = string_field(body, "iv", 64, "iv must be a string")?;
    match (code, enc, iv) {
        (Some(code), _, _) => Ok(PhoneRequest::Code(code)),
        (None, Some(e), Some(iv)) => Ok(PhoneRequest::Encrypted(EncryptedPhone {
            encrypted_data: e.to_string(),
            iv: iv.to_string(),
        })),
        (None, Some(_), None) => Err(ApiError::InvalidRequest("iv is missing")),
        (None, None, Some(_)) => Err(ApiError::InvalidRequest("encryptedData is missing")),
        (None, None, None) => Err(ApiError::InvalidRequest(
            "send {\"code\"} from getPhoneNumber, or {\"encryptedData\", \"iv\"}",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(json: &str) -> Map<String, Value> {
        parse_object(None, json.as_bytes(), false).expect("object")
    }

    #[test]
    fn endpoint_fields() {
        assert_eq!(login_code(&obj(r#"{"code":"c1"}"#)), Ok("c1"));
        assert!(matches!(
            login_code(&obj("{}")),
            Err(ApiError::InvalidRequest("code is missing"))
        ));
        assert!(matches!(
            login_code(&obj(r#"{"code":5}"#)),
            Err(ApiError::InvalidRequest(_))
        ));
        assert_eq!(refresh_token(&obj(r#"{"refresh_token":"a.b"}"#)), Ok("a.b"));
        assert!(refresh_token(&obj(r#"{"code":"x"}"#)).is_err());

        assert!(matches!(
            phone_request(&obj(r#"{"code":"p","encryptedData":"e","iv":"i"}"#)),
            Ok(PhoneRequest::Code("p"))
        ));
        match phone_request(&obj(r#"{"encryptedData":"e","iv":"i"}"#)) {
            Ok(PhoneRequest::Encrypted(e)) => {
                assert_eq!((e.encrypted_data.as_str(), e.iv.as_str()), ("e", "i"))
            }
            _ => panic!("expected the legacy request"),
        }
        for (body, want) in [
            (r#"{"encryptedData":"e"}"#, "iv is missing"),
            (r#"{"iv":"i"}"#, "encryptedData is missing"),
        ] {
            assert!(
                matches!(phone_request(&obj(body)), Err(ApiError::InvalidRequest(m)) if m == want)
            );
        }
        assert!(matches!(
            phone_request(&obj("{}")),
            Err(ApiError::InvalidRequest(_))
        ));
    }

    #[test]
    fn json_and_form_bodies() {
        let m = parse_object(Some("application/json"), br#"{"code":"abc"}"#, false).expect("json");
        assert_eq!(m["code"], "abc");
        let m = parse_object(
            Some("application/x-www-form-urlencoded; charset=UTF-8"),
            b"code=a%2Bb&iv=x+y",
            true,
        )
        .expect("form");
        assert_eq!(m["code"], "a+b");
        // '+' in form encoding is a space: the phone decoder repairs it.
        assert_eq!(m["iv"], "x y");
        // text/plain (or none) still parses as JSON.
        assert!(parse_object(Some("text/plain"), br#"{"a":1}"#, false).is_ok());
        assert!(parse_object(None, br#"{"a":1}"#, false).is_ok());
    }

    #[test]
    fn bad_bodies_are_invalid_request() {
        for (ct, b) in [
            (Some("application/json"), &b""[..]),
            (Some("application/json"), b"not json"),
            (Some("application/json"), b"[1,2]"),
            (Some("application/x-www-form-urlencoded"), b"code=x"),
        ] {
            assert!(matches!(
                parse_object(ct, b, false),
                Err(ApiError::InvalidRequest(_))
            ));
        }
    }

    #[test]
    fn over_16_kib_is_payload_too_large() {
        let big = format!(r#"{{"code":"{}"}}"#, "a".repeat(MAX_BODY_BYTES));
        assert_eq!(
            parse_object(None, big.as_bytes(), true),
            Err(ApiError::PayloadTooLarge)
        );
    }

    #[test]
    fn string_fields() {
        let m = parse_object(None, br#"{"a":"x","b":1,"c":"","d":"long"}"#, false).expect("json");
        assert_eq!(string_field(&m, "a", 10, "bad").expect("ok"), Some("x"));
        assert_eq!(string_field(&m, "c", 10, "bad").expect("ok"), None);
        assert_eq!(string_field(&m, "z", 10, "bad").expect("ok"), None);
        assert!(string_field(&m, "b", 10, "bad").is_err());
        assert!(string_field(&m, "d", 3, "bad").is_err());
    }
}
