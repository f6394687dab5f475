//! The worker's own responses (not the origin's), whole: status, headers
//! and body, from what a handler answered. The shell only copies them
//! onto the runtime's `Response`.

use crate::error::ApiError;

/// A handler's successful answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Payload {
    /// 200 with a JSON body, never cached.
    Json(String),
    /// The JWKS: 200, JSON, cacheable by anyone for five minutes.
    Jwks(String),
    /// 204, no body.
    NoContent,
    /// WeChat's answer to a relayed call, as WeChat gave it.
    Relayed(Relayed),
}

/// WeChat's answer through the relay: its status, content type and bytes,
/// unchanged, and none of its other headers. `Debug` shows the length of
/// the body only.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Relayed {
    pub(crate) status: u16,
    pub(crate) content_type: Option<String>,
    pub(crate) body: Vec<u8>,
}

impl std::fmt::Debug for Relayed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Relayed({} {:?}, {} bytes)",
            self.status,
            self.content_type,
            self.body.len()
        )
    }
}

/// How long caches may keep the JWKS.
pub(crate) const JWKS_CACHE_CONTROL: &str = "public, max-age=300";

const JSON: &str = "application/json; charset=utf-8";

/// A response of the worker's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OwnResponse {
    pub(crate) status: u16,
    /// Each name once.
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Option<Vec<u8>>,
}

impl OwnResponse {
    /// The response to `answer`. `allow` is the route's `Allow` value: a
    /// 405 carries it.
    pub(crate) fn of(answer: Result<Payload, &ApiError>, allow: Option<&'static str>) -> Self {
        match answer {
            Ok(Payload::Json(body)) => OwnResponse::json(200, body, "no-store"),
            Ok(Payload::Jwks(body)) => OwnResponse::json(200, body, JWKS_CACHE_CONTROL),
            Ok(Payload::NoContent) => OwnResponse {
                status: 204,
                headers: vec![("Cache-Control", "no-store".into())],
                body: None,
            },
            Ok(Payload::Relayed(r)) => {
                let mut headers = Vec::with_capacity(2);
                if let Some(content_type) = r.content_type {
                    headers.push(("Content-Type", content_type));
                }
                headers.push(("Cache-Control", "no-store".into()));
                OwnResponse {
                    status: r.status,
                    headers,
                    body: Some(r.body),
                }
            }
            Err(e) => {
                let (status, body) = e.to_response();
                let mut r = OwnResponse::json(status, body, "no-store");
                r.headers.extend(e.extra_headers());
                if let (ApiError::MethodNotAllowed, Some(allow)) = (e, allow) {
                    r.headers.push(("Allow", allow.into()));
                }
                r
            }
        }
    }

    fn json(status: u16, body: String, cache_control: &str) -> Self {
        OwnResponse {
            status,
            headers: vec![
                ("Content-Type", JSON.into()),
                ("Cache-Control", cache_control.into()),
            ],
            body: Some(body.into_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::EDGE_ERROR_HEADER;

    fn header<'a>(r: &'a OwnResponse, name: &str) -> Option<&'a str> {
        let mut found = r.headers.iter().filter(|(n, _)| *n == name);
        let value = found.next().map(|(_, v)| v.as_str());
        assert!(found.next().is_none(), "{name} twice in {r:?}");
        value
    }

    #[test]
    fn answers_are_json_and_never_cached() {
        let r = OwnResponse::of(Ok(Payload::Json(r#"{"a":1}"#.into())), None);
        assert_eq!(r.status, 200);
        assert_eq!(r.body.as_deref(), Some(&br#"{"a":1}"#[..]));
        assert_eq!(header(&r, "Content-Type"), Some(JSON));
        assert_eq!(header(&r, "Cache-Control"), Some("no-store"));
        assert_eq!(r.headers.len(), 2);
    }

    #[test]
    fn no_content_has_no_body_and_no_content_type() {
        let r = OwnResponse::of(Ok(Payload::NoContent), None);
        assert_eq!((r.status, r.body), (204, None));
        assert_eq!(r.headers, vec![("Cache-Control", "no-store".to_string())]);
    }

    #[test]
    fn the_jwks_is_the_one_cacheable_answer() {
        let r = OwnResponse::of(Ok(Payload::Jwks(r#"{"keys":[]}"#.into())), None);
        assert_eq!(r.status, 200);
        assert_eq!(header(&r, "Content-Type"), Some(JSON));
        assert_eq!(header(&r, "Cache-Control"), Some("public, max-age=300"));
    }

    #[test]
    fn errors_carry_the_table_s_status_body_and_headers() {
        let e = ApiError::TokenExpired;
        let r = OwnResponse::of(Err(&e), None);
        let (status, body) = e.to_response();
        assert_eq!(
            (r.status, r.body.as_deref()),
            (status, Some(body.as_bytes()))
        );
        assert_eq!(header(&r, "Content-Type"), Some(JSON));
        assert_eq!(header(&r, "Cache-Control"), Some("no-store"));
        assert_eq!(header(&r, EDGE_ERROR_HEADER), Some("token_expired"));
        assert!(header(&r, "WWW-Authenticate").is_some());
        assert_eq!(header(&r, "Allow"), None);
        let r = OwnResponse::of(Err(&ApiError::StoreUnavailable), None);
        assert_eq!(header(&r, "Retry-After"), Some("2"));
    }

    #[test]
    fn a_relayed_answer_is_wechat_s_status_type_and_bytes_never_cached() {
        let png = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0xff];
        let r = OwnResponse::of(
            Ok(Payload::Relayed(Relayed {
                status: 200,
                content_type: Some("image/png".into()),
                body: png.clone(),
            })),
            None,
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.body.as_deref(), Some(png.as_slice()));
        assert_eq!(header(&r, "Content-Type"), Some("image/png"));
        assert_eq!(header(&r, "Cache-Control"), Some("no-store"));
        assert_eq!(r.headers.len(), 2);
        // No edge marker: it is WeChat's answer, even a failing one.
        assert_eq!(header(&r, EDGE_ERROR_HEADER), None);
        // WeChat's status whatever it is; no content type when WeChat gave none.
        let r = OwnResponse::of(
            Ok(Payload::Relayed(Relayed {
                status: 503,
                content_type: None,
                body: Vec::new(),
            })),
            None,
        );
        assert_eq!(r.status, 503);
        assert_eq!(r.headers, vec![("Cache-Control", "no-store".to_string())]);
        assert_eq!(r.body.as_deref(), Some(&[][..]));
        let shown = format!(
            "{:?}",
            Relayed {
                status: 200,
                content_type: None,
                body: b"{\"session_key\":\"k\"}".to_vec(),
            }
        );
        assert!(!shown.contains("session_key"), "{shown}");
    }

    #[test]
    fn a_405_says_what_is_allowed_once() {
        let r = OwnResponse::of(Err(&ApiError::MethodNotAllowed), Some("GET, HEAD"));
        assert_eq!(r.status, 405);
        assert_eq!(header(&r, "Allow"), Some("GET, HEAD"));
        assert_eq!(header(&r, EDGE_ERROR_HEADER), Some("method_not_allowed"));
        // Another error on such a route (a misconfiguration) does not.
        let e = ApiError::ServerMisconfigured {
            variable: "WX_APPID",
            problem: "is missing",
        };
        let r = OwnResponse::of(Err(&e), Some("POST"));
        assert_eq!((r.status, header(&r, "Allow")), (500, None));
    }
}
