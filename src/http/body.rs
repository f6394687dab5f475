//! Request bodies of `/auth/*`: JSON, or form-encoded where the contract
//! allows it, at most 16 KiB, and what each endpoint reads from them; the
//! WeChat relay's bytes, at most 2 MiB.

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::wechat::open_data::EncryptedPhone;

pub(crate) const MAX_BODY_BYTES: usize = 16 * 1024;
/// The most the WeChat relay forwards (content security checks of images
/// and the like are WeChat's largest uploads).
pub(crate) const MAX_RELAY_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Why a body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Over the route's limit, declared or read.
    TooLarge,
    /// The stream failed before its end.
    Unreadable,
    /// Malformed, or a field missing or of the wrong type: the text says
    /// which.
    Invalid(&'static str),
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge => ApiError::PayloadTooLarge,
            BodyError::Unreadable => ApiError::InvalidRequest("the body could not be read"),
            BodyError::Invalid(what) => ApiError::InvalidRequest(what),
        }
    }
}

/// A body as it arrives, chunk by chunk: refused as soon as it is known to
/// be over its limit (by its `Content-Length`, before any of it is read,
/// or by what has been read), without reading the rest.
#[derive(Debug)]
pub(crate) struct BodyBuffer {
    bytes: Vec<u8>,
    limit: usize,
}

impl BodyBuffer {
    /// An empty buffer for a body of at most `limit` bytes (the route's:
    /// [`MAX_BODY_BYTES`], or [`MAX_RELAY_BODY_BYTES`]), or `TooLarge`
    /// when the declared length is over it. A `Content-Length` that is not
    /// a number is not trusted either way: the chunks decide.
    pub(crate) fn new(content_length: Option<&str>, limit: usize) -> Result<Self, BodyError> {
        let declared = content_length.and_then(|v| v.trim().parse::<usize>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Err(BodyError::TooLarge);
        }
        Ok(BodyBuffer {
            bytes: Vec::new(),
            limit,
        })
    }

    /// Adds the next chunk; `TooLarge` once the body is over the limit.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Result<(), BodyError> {
        if self.bytes.len().saturating_add(chunk.len()) > self.limit {
            return Err(BodyError::TooLarge);
        }
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }

    /// The whole body.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// What `/auth/phone` was sent.
pub(crate) enum PhoneRequest<'a> {
    Code(&'a str),
    Encrypted(EncryptedPhone),
}

/// Parses a body into a JSON object. `allow_form` admits
/// `application/x-www-form-urlencoded` (`/auth/login`, `/auth/phone`).
pub(crate) fn parse_object(
    content_type: Option<&str>,
    body: &[u8],
    allow_form: bool,
) -> Result<Map<String, Value>, BodyError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(BodyError::TooLarge);
    }
    let mime = content_type
        .and_then(|c| c.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if mime == "application/x-www-form-urlencoded" {
        if !allow_form {
            return Err(BodyError::Invalid("this endpoint takes a JSON body"));
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
        return Err(BodyError::Invalid("the body is empty; send a JSON object"));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(BodyError::Invalid("the body must be a JSON object")),
        Err(_) => Err(BodyError::Invalid("the body is not valid JSON")),
    }
}

/// A string field: `Ok(None)` when absent or empty, an error when present
/// with another type or over `max` bytes.
pub(crate) fn string_field<'a>(
    map: &'a Map<String, Value>,
    name: &'static str,
    max: usize,
    wrong: &'static str,
) -> Result<Option<&'a str>, BodyError> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s.len() <= max => Ok(Some(s.as_str())),
        Some(_) => Err(BodyError::Invalid(wrong)),
    }
}

/// `/auth/login`: the `wx.login` code.
pub(crate) fn login_code(body: &Map<String, Value>) -> Result<&str, BodyError> {
    string_field(body, "code", 256, "code must be a string")?
        .ok_or(BodyError::Invalid("code is missing"))
}

/// `/auth/refresh`: the refresh token.
pub(crate) fn refresh_token(body: &Map<String, Value>) -> Result<&str, BodyError> {
    string_field(body, "refresh_token", 512, "refresh_token must be a string")?
        .ok_or(BodyError::Invalid("refresh_token is missing"))
}

/// `/auth/phone`: a getPhoneNumber `code` (preferred when both are sent) or
/// the legacy `encryptedData` + `iv`.
pub(crate) fn phone_request(body: &Map<String, Value>) -> Result<PhoneRequest<'_>, BodyError> {
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
        (None, Some(_), None) => Err(BodyError::Invalid("iv is missing")),
        (None, None, Some(_)) => Err(BodyError::Invalid("encryptedData is missing")),
        (None, None, None) => Err(BodyError::Invalid(
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
            Err(BodyError::Invalid("code is missing"))
        ));
        assert!(matches!(
            login_code(&obj(r#"{"code":5}"#)),
            Err(BodyError::Invalid(_))
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
            assert!(matches!(phone_request(&obj(body)), Err(BodyError::Invalid(m)) if m == want));
        }
        assert!(matches!(
            phone_request(&obj("{}")),
            Err(BodyError::Invalid(_))
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
                Err(BodyError::Invalid(_))
            ));
        }
    }

    #[test]
    fn over_16_kib_is_payload_too_large() {
        let big = format!(r#"{{"code":"{}"}}"#, "a".repeat(MAX_BODY_BYTES));
        assert_eq!(
            parse_object(None, big.as_bytes(), true),
            Err(BodyError::TooLarge)
        );
    }

    #[test]
    fn a_body_over_the_limit_is_refused_by_its_declared_length_or_as_it_arrives() {
        assert_eq!(
            BodyBuffer::new(Some("16385"), MAX_BODY_BYTES).map(BodyBuffer::into_bytes),
            Err(BodyError::TooLarge)
        );
        for declared in [None, Some("16384"), Some(" 12 "), Some("lots"), Some("-1")] {
            assert!(
                BodyBuffer::new(declared, MAX_BODY_BYTES).is_ok(),
                "{declared:?}"
            );
        }
        // A length that lies small: the chunks decide.
        let mut b = BodyBuffer::new(Some("3"), MAX_BODY_BYTES).expect("small");
        b.push(&[b'a'; MAX_BODY_BYTES - 1]).expect("under");
        b.push(b"b").expect("exactly the limit");
        assert_eq!(b.push(b"c"), Err(BodyError::TooLarge));
        let mut b = BodyBuffer::new(None, MAX_BODY_BYTES).expect("none declared");
        b.push(br#"{"code":"#).expect("chunk");
        b.push(br#""c1"}"#).expect("chunk");
        assert_eq!(b.into_bytes(), br#"{"code":"c1"}"#);
    }

    #[test]
    fn the_relay_s_limit_is_2_mib_declared_or_read() {
        let limit = MAX_RELAY_BODY_BYTES;
        assert!(BodyBuffer::new(Some("2097152"), limit).is_ok());
        assert_eq!(
            BodyBuffer::new(Some("2097153"), limit).map(BodyBuffer::into_bytes),
            Err(BodyError::TooLarge)
        );
        let mut b = BodyBuffer::new(None, limit).expect("none declared");
        let chunk = vec![0u8; 64 * 1024];
        for _ in 0..32 {
            b.push(&chunk).expect("up to the limit");
        }
        assert_eq!(b.push(&[0xff]), Err(BodyError::TooLarge));
        // Binary bytes are kept as they came.
        let mut b = BodyBuffer::new(Some("4"), limit).expect("small");
        b.push(&[0x89, b'P']).expect("chunk");
        b.push(&[0x00, 0xff]).expect("chunk");
        assert_eq!(b.into_bytes(), vec![0x89, b'P', 0x00, 0xff]);
    }

    #[test]
    fn body_errors_answer_as_the_contract_says() {
        assert_eq!(
            ApiError::from(BodyError::TooLarge),
            ApiError::PayloadTooLarge
        );
        assert_eq!(
            ApiError::from(BodyError::Unreadable),
            ApiError::InvalidRequest("the body could not be read")
        );
        assert_eq!(
            ApiError::from(BodyError::Invalid("code is missing")),
            ApiError::InvalidRequest("code is missing")
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
