//! WeChat API calls: request building, reply parsing, retry policy.
//!
//! The transport is passed in ([`Transport`]); the shell sends with
//! `fetch`, tests with a scripted stand-in, and the integration tests run
//! the real worker against a simulator speaking WeChat's wire format.
//!
//! WeChat answers failures with HTTP 200 and `{"errcode": N, "errmsg": ..}`,
//! often as `text/plain`: we parse the bytes and ignore the content type.
//! A reply body may contain `session_key` or an access token, so no error
//! here ever carries the body.
//!
//! The transport itself moves any method, content type and bytes
//! ([`WireRequest`], [`WireResponse`]): the API calls here are JSON, the
//! WeChat relay (`crate::flows`) passes the origin's bytes and WeChat's
//! answer (an image, say) through unchanged.

use serde::Deserialize;

pub(crate) mod access_token;
pub(crate) mod api;
pub(crate) mod open_data;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Post,
}

impl Method {
    /// The method's name on the wire.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// A WeChat API call as the worker builds it: a `GET`, or a `POST` with a
/// JSON body. `Debug` is deliberately not derived: the URL of a
/// code2Session call carries the AppSecret.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct HttpRequest {
    pub(crate) method: Method,
    pub(crate) url: String,
    /// JSON body for POST.
    pub(crate) body: Option<String>,
}

impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HttpRequest({:?} {} [query and body redacted])",
            self.method,
            path_only(&self.url)
        )
    }
}

/// A WeChat reply as the API calls read it: status and body (the content
/// type is ignored: WeChat sends JSON as `text/plain` too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpResponse {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

/// What the [`Transport`] sends: any method, a content type and a body of
/// bytes (the relay's request as the origin sent it, or an
/// [`HttpRequest`]). `Debug` shows the method and the path only: the query
/// may carry the AppSecret or an access_token, the body a secret too.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct WireRequest {
    /// As sent: `GET`, `POST`, or what the relay was asked for.
    pub(crate) method: String,
    pub(crate) url: String,
    pub(crate) content_type: Option<String>,
    pub(crate) body: Option<Vec<u8>>,
}

impl std::fmt::Debug for WireRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "WireRequest({} {} [query and body redacted])",
            self.method,
            path_only(&self.url)
        )
    }
}

impl From<HttpRequest> for WireRequest {
    /// A `POST` says its body is JSON, as every POST WeChat is sent is.
    fn from(r: HttpRequest) -> Self {
        WireRequest {
            method: r.method.as_str().to_string(),
            content_type: (r.method == Method::Post).then(|| "application/json".to_string()),
            url: r.url,
            body: r.body.map(String::into_bytes),
        }
    }
}

/// What the [`Transport`] got back: status, content type and the body's
/// bytes. `Debug` shows the body's length only (a reply may carry a
/// session_key or an access_token).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct WireResponse {
    pub(crate) status: u16,
    pub(crate) content_type: Option<String>,
    pub(crate) body: Vec<u8>,
}

impl std::fmt::Debug for WireResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "WireResponse({} {:?}, {} bytes [redacted])",
            self.status,
            self.content_type,
            self.body.len()
        )
    }
}

impl From<HttpResponse> for WireResponse {
    fn from(r: HttpResponse) -> Self {
        WireResponse {
            status: r.status,
            content_type: None,
            body: r.body,
        }
    }
}

impl From<WireResponse> for HttpResponse {
    fn from(r: WireResponse) -> Self {
        HttpResponse {
            status: r.status,
            body: r.body,
        }
    }
}

/// A URL without its query.
fn path_only(url: &str) -> &str {
    url.split('?').next().unwrap_or_default()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TransportError {
    /// No answer within the configured time.
    Timeout,
    /// Connection refused, reset, DNS failure...
    Network,
}

/// Sends one HTTP request with a bounded time.
#[allow(async_fn_in_trait)] // used with concrete types only; no Send bound wanted on wasm
pub(crate) trait Transport {
    async fn send(&self, req: WireRequest) -> Result<WireResponse, TransportError>;
    /// Waits `ms` milliseconds (the runtime's timer).
    async fn pause(&self, ms: u32);
}

/// Why a single WeChat call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallError {
    Errcode(i64),
    Http(u16),
    Unparseable,
    Transport(TransportError),
}

impl CallError {
    /// -1, 5xx and network errors are worth one more try; a timeout is not
    /// (it would double the wait), nor is any other errcode.
    pub(crate) fn retryable(&self) -> bool {
        matches!(
            self,
            CallError::Errcode(-1)
                | CallError::Transport(TransportError::Network)
                | CallError::Http(500..=599)
        )
    }

    /// Whether the WeChat access_token was refused (40001, 40014, 42001).
    pub(crate) fn is_token_error(&self) -> bool {
        matches!(self, CallError::Errcode(40001 | 40014 | 42001))
    }
}

/// Sends `req`, trying once more when the failure is retryable.
pub(crate) async fn call_with_retry<T: Transport, R>(
    transport: &T,
    req: HttpRequest,
    parse: impl Fn(&HttpResponse) -> Result<R, CallError>,
) -> Result<R, CallError> {
    let first = call(transport, req.clone(), &parse).await;
    match first {
        Err(e) if e.retryable() => call(transport, req, &parse).await,
        other => other,
    }
}

async fn call<T: Transport, R>(
    transport: &T,
    req: HttpRequest,
    parse: &impl Fn(&HttpResponse) -> Result<R, CallError>,
) -> Result<R, CallError> {
    let resp = transport
        .send(req.into())
        .await
        .map_err(CallError::Transport)?;
    parse(&resp.into())
}

/// Parses a WeChat reply: HTTP status, then `errcode` (absent or 0 means
/// success), then the payload.
pub(super) fn parse_reply<R: for<'de> Deserialize<'de>>(
    resp: &HttpResponse,
) -> Result<R, CallError> {
    if resp.status != 200 {
        return Err(CallError::Http(resp.status));
    }
    let value: serde_json::Value =
        serde_json::from_slice(&resp.body).map_err(|_| CallError::Unparseable)?;
    match value.get("errcode").map(serde_json::Value::as_i64) {
        None | Some(Some(0)) => {}
        Some(Some(code)) => return Err(CallError::Errcode(code)),
        Some(None) => return Err(CallError::Unparseable),
    }
    serde_json::from_value(value).map_err(|_| CallError::Unparseable)
}

pub(super) fn query(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_call_goes_on_the_wire_as_json() {
        let get = WireRequest::from(HttpRequest {
            method: Method::Get,
            url: "https://w/sns/jscode2session?secret=S3CRET".into(),
            body: None,
        });
        assert_eq!(
            (get.method.as_str(), get.content_type, get.body),
            ("GET", None, None)
        );
        let post = WireRequest::from(HttpRequest {
            method: Method::Post,
            url: "https://w/cgi-bin/stable_token".into(),
            body: Some(r#"{"secret":"S3CRET"}"#.into()),
        });
        assert_eq!(post.method, "POST");
        assert_eq!(post.content_type.as_deref(), Some("application/json"));
        assert_eq!(post.body.as_deref(), Some(&br#"{"secret":"S3CRET"}"#[..]));
    }

    #[test]
    fn what_is_printed_of_requests_and_replies_hides_queries_and_bodies() {
        let req = WireRequest {
            method: "POST".into(),
            url: "https://w/wxa/x?access_token=T0KEN&secret=S3CRET".into(),
            content_type: Some("application/json".into()),
            body: Some(br#"{"session_key":"K3Y"}"#.to_vec()),
        };
        let resp = WireResponse {
            status: 200,
            content_type: Some("application/json".into()),
            body: br#"{"session_key":"K3Y","access_token":"T0KEN"}"#.to_vec(),
        };
        let api = HttpRequest {
            method: Method::Get,
            url: "https://w/sns/jscode2session?secret=S3CRET".into(),
            body: None,
        };
        for shown in [format!("{req:?}"), format!("{resp:?}"), format!("{api:?}")] {
            for secret in ["T0KEN", "S3CRET", "K3Y"] {
                assert!(!shown.contains(secret), "{shown}");
            }
        }
        assert!(format!("{req:?}").contains("/wxa/x"));
    }

    #[test]
    fn a_reply_reads_the_same_whatever_its_content_type() {
        let wire = WireResponse {
            status: 200,
            content_type: Some("text/plain".into()),
            body: br#"{"errcode":40001}"#.to_vec(),
        };
        let read: HttpResponse = wire.into();
        assert_eq!(
            parse_reply::<serde_json::Value>(&read),
            Err(CallError::Errcode(40001))
        );
        let back = WireResponse::from(read);
        assert_eq!((back.status, back.content_type), (200, None));
    }
}
