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

use serde::Deserialize;

use crate::config::Config;
use crate::error::ApiError;
use crate::secret::{SessionKey, WxAccessToken};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

/// An outgoing HTTP request. `Debug` is deliberately not derived: the URL
/// of a code2Session call carries the AppSecret.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: Method,
    pub url: String,
    /// JSON body for POST.
    pub body: Option<String>,
}

impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = self.url.split('?').next().unwrap_or_default();
        write!(
            f,
            "HttpRequest({:?} {path} [query and body redacted])",
            self.method
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportError {
    /// No answer within the configured time.
    Timeout,
    /// Connection refused, reset, DNS failure...
    Network,
}

/// Sends one HTTP request with a bounded time.
#[allow(async_fn_in_trait)] // used with concrete types only; no Send bound wanted on wasm
pub trait Transport {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, TransportError>;
    /// Waits `ms` milliseconds (the runtime's timer).
    async fn pause(&self, ms: u32);
}

/// Why a single WeChat call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallError {
    Errcode(i64),
    Http(u16),
    Unparseable,
    Transport(TransportError),
}

impl CallError {
    /// -1, 5xx and network errors are worth one more try; a timeout is not
    /// (it would double the wait), nor is any other errcode.
    fn retryable(&self) -> bool {
        matches!(
            self,
            CallError::Errcode(-1)
                | CallError::Transport(TransportError::Network)
                | CallError::Http(500..=599)
        )
    }

    /// Whether the WeChat access_token was refused (40001, 40014, 42001).
    pub fn is_token_error(&self) -> bool {
        matches!(self, CallError::Errcode(40001 | 40014 | 42001))
    }
}

/// The mapping from a failed call to the contract's error table.
pub fn api_error(e: CallError) -> ApiError {
    match e {
        CallError::Errcode(code @ (40029 | 40163)) => ApiError::InvalidCode { errcode: code },
        CallError::Errcode(code @ 40226) => ApiError::UserBlocked { errcode: code },
        CallError::Errcode(code @ 45011) => ApiError::RateLimited {
            errcode: Some(code),
        },
        // WeChat refusing our own credentials is a deployment problem.
        CallError::Errcode(40013) => ApiError::ServerMisconfigured {
            variable: "WX_APPID",
            problem: "was refused by WeChat (errcode 40013)",
        },
        CallError::Errcode(40125) => ApiError::ServerMisconfigured {
            variable: "WX_APPSECRET",
            problem: "was refused by WeChat (errcode 40125)",
        },
        CallError::Errcode(code) => ApiError::WechatUnavailable {
            errcode: Some(code),
        },
        CallError::Http(_) | CallError::Unparseable | CallError::Transport(_) => {
            ApiError::WechatUnavailable { errcode: None }
        }
    }
}

/// Sends `req`, trying once more when the failure is retryable.
pub async fn call_with_retry<T: Transport, R>(
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
    let resp = transport.send(req).await.map_err(CallError::Transport)?;
    parse(&resp)
}

/// Parses a WeChat reply: HTTP status, then `errcode` (absent or 0 means
/// success), then the payload.
fn parse_reply<R: for<'de> Deserialize<'de>>(resp: &HttpResponse) -> Result<R, CallError> {
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

fn query(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

// ---------------------------------------------------------------- code2Session

/// What code2Session gives for a valid code.
#[derive(Debug, Clone)]
pub struct WxSession {
    pub openid: String,
    pub unionid: Option<String>,
    pub session_key: SessionKey,
}

#[derive(Deserialize)]
struct Code2SessionReply {
    openid: String,
    session_key: SessionKey,
    #[serde(default)]
    unionid: Option<String>,
}

/// Checks a `wx.login` (or phone) code's shape before sending it anywhere.
pub fn validate_code(code: &str) -> Result<(), ApiError> {
    if code.is_empty() {
        return Err(ApiError::InvalidRequest("code is missing"));
    }
    if code.len() > 256 || !code.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::InvalidRequest(
            "code is not a WeChat code (printable ASCII, at most 256 characters)",
        ));
    }
    Ok(())
}

pub fn code2session_request(cfg: &Config, code: &str) -> HttpRequest {
    HttpRequest {
        method: Method::Get,
        url: format!(
            "{}/sns/jscode2session?{}",
            cfg.api_base,
            query(&[
                ("appid", &cfg.appid),
                ("secret", cfg.app_secret.secret()),
                ("js_code", code),
                ("grant_type", "authorization_code"),
            ])
        ),
        body: None,
    }
}

pub fn parse_code2session(resp: &HttpResponse) -> Result<WxSession, CallError> {
    let r: Code2SessionReply = parse_reply(resp)?;
    if r.openid.is_empty() || !is_session_key(r.session_key.secret()) {
        return Err(CallError::Unparseable);
    }
    Ok(WxSession {
        openid: r.openid,
        unionid: r.unionid.filter(|u| !u.is_empty()),
        session_key: r.session_key,
    })
}

fn is_session_key(k: &str) -> bool {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(k)
        .is_ok_and(|b| b.len() == 16)
}

/// Exchanges a `wx.login` code for the user's openid and session_key.
pub async fn code2session<T: Transport>(
    transport: &T,
    cfg: &Config,
    code: &str,
) -> Result<WxSession, ApiError> {
    validate_code(code)?;
    call_with_retry(
        transport,
        code2session_request(cfg, code),
        parse_code2session,
    )
    .await
    .map_err(api_error)
}

// ---------------------------------------------------------------- stable_token

#[derive(Debug, Clone)]
pub struct StableToken {
    pub access_token: WxAccessToken,
    pub expires_in: u64,
}

#[derive(Deserialize)]
struct StableTokenReply {
    access_token: WxAccessToken,
    expires_in: u64,
}

pub fn stable_token_request(cfg: &Config, force_refresh: bool) -> HttpRequest {
    HttpRequest {
        method: Method::Post,
        url: format!("{}/cgi-bin/stable_token", cfg.api_base),
        body: Some(
            serde_json::json!({
                "grant_type": "client_credential",
                "appid": cfg.appid,
                "secret": cfg.app_secret.secret(),
                "force_refresh": force_refresh,
            })
            .to_string(),
        ),
    }
}

pub fn parse_stable_token(resp: &HttpResponse) -> Result<StableToken, CallError> {
    let r: StableTokenReply = parse_reply(resp)?;
    if r.access_token.secret().is_empty() || r.expires_in == 0 {
        return Err(CallError::Unparseable);
    }
    Ok(StableToken {
        access_token: r.access_token,
        expires_in: r.expires_in,
    })
}

// ---------------------------------------------------------- getuserphonenumber

pub fn phone_number_request(
    cfg: &Config,
    token: &WxAccessToken,
    code: &str,
    openid: &str,
) -> HttpRequest {
    HttpRequest {
        method: Method::Post,
        url: format!(
            "{}/wxa/business/getuserphonenumber?{}",
            cfg.api_base,
            query(&[("access_token", token.secret())])
        ),
        body: Some(serde_json::json!({ "code": code, "openid": openid }).to_string()),
    }
}

#[derive(Deserialize)]
struct PhoneReply {
    phone_info: serde_json::Value,
}

/// The `phone_info` object of a getuserphonenumber reply (not yet checked).
pub fn parse_phone_number(resp: &HttpResponse) -> Result<serde_json::Value, CallError> {
    let r: PhoneReply = parse_reply(resp)?;
    Ok(r.phone_info)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::tests::test_config;
    use std::cell::RefCell;
    use std::collections::VecDeque;

    /// A transport that answers from a script and records what was sent.
    #[derive(Default)]
    pub struct Scripted {
        pub replies: RefCell<VecDeque<Result<HttpResponse, TransportError>>>,
        pub sent: RefCell<Vec<HttpRequest>>,
    }

    impl Scripted {
        pub fn new(replies: Vec<Result<HttpResponse, TransportError>>) -> Self {
            Scripted {
                replies: RefCell::new(replies.into()),
                sent: RefCell::default(),
            }
        }
        pub fn push(&self, r: Result<HttpResponse, TransportError>) {
            self.replies.borrow_mut().push_back(r);
        }
    }

    impl Transport for Scripted {
        async fn send(&self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
            self.sent.borrow_mut().push(req);
            self.replies
                .borrow_mut()
                .pop_front()
                .unwrap_or(Err(TransportError::Network))
        }
        async fn pause(&self, _ms: u32) {
            YieldOnce(false).await
        }
    }

    /// Pending once, then ready: lets other futures of a join run.
    pub struct YieldOnce(pub bool);

    impl std::future::Future for YieldOnce {
        type Output = ();
        fn poll(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<()> {
            if self.0 {
                return std::task::Poll::Ready(());
            }
            self.0 = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }

    pub fn ok(body: &str) -> Result<HttpResponse, TransportError> {
        Ok(HttpResponse {
            status: 200,
            body: body.as_bytes().to_vec(),
        })
    }

    pub const GOOD: &str =
        r#"{"openid":"oUser1","session_key":"tiihtNczf5v6AKRyjwEUhQ==","unionid":"uUnion1"}"#;

    fn run(t: &Scripted, code: &str) -> Result<WxSession, ApiError> {
        pollster::block_on(code2session(t, &test_config(), code))
    }

    #[test]
    fn request_has_the_documented_shape() {
        let mut cfg = test_config();
        cfg.api_base = "http://127.0.0.1:8788".into();
        let req = code2session_request(&cfg, "0a1+b/2=");
        assert_eq!(req.method, Method::Get);
        assert_eq!(
            req.url,
            "http://127.0.0.1:8788/sns/jscode2session?appid=wxd930ea5d5a258f4f\
             &secret=appsecret-value-123&js_code=0a1%2Bb%2F2%3D&grant_type=authorization_code"
        );
        assert!(req.body.is_none());
        assert!(!format!("{req:?}").contains("appsecret-value"));
    }

    #[test]
    fn success_with_and_without_unionid() {
        let s = run(&Scripted::new(vec![ok(GOOD)]), "c").expect("ok");
        assert_eq!(s.openid, "oUser1");
        assert_eq!(s.unionid.as_deref(), Some("uUnion1"));
        assert_eq!(s.session_key.secret(), "tiihtNczf5v6AKRyjwEUhQ==");
        let s = run(
            &Scripted::new(vec![ok(
                r#"{"openid":"o2","session_key":"tiihtNczf5v6AKRyjwEUhQ=="}"#,
            )]),
            "c",
        )
        .expect("ok");
        assert_eq!(s.unionid, None);
        // errcode 0 alongside the payload is success too.
        let s = run(
            &Scripted::new(vec![ok(
                r#"{"errcode":0,"errmsg":"ok","openid":"o3","session_key":"tiihtNczf5v6AKRyjwEUhQ=="}"#,
            )]),
            "c",
        )
        .expect("ok");
        assert_eq!(s.openid, "o3");
    }

    #[test]
    fn errcodes_map_to_the_contract() {
        let cases = [
            (40029, ApiError::InvalidCode { errcode: 40029 }),
            (40163, ApiError::InvalidCode { errcode: 40163 }),
            (40226, ApiError::UserBlocked { errcode: 40226 }),
            (
                45011,
                ApiError::RateLimited {
                    errcode: Some(45011),
                },
            ),
            (
                40125,
                ApiError::ServerMisconfigured {
                    variable: "WX_APPSECRET",
                    problem: "was refused by WeChat (errcode 40125)",
                },
            ),
            (
                99999,
                ApiError::WechatUnavailable {
                    errcode: Some(99999),
                },
            ),
        ];
        for (code, want) in cases {
            let t = Scripted::new(vec![
                ok(&format!(r#"{{"errcode":{code},"errmsg":"x"}}"#)),
                ok(GOOD),
            ]);
            assert_eq!(run(&t, "c").unwrap_err(), want);
            assert_eq!(
                t.sent.borrow().len(),
                1,
                "errcode {code} must not be retried"
            );
        }
    }

    #[test]
    fn busy_5xx_and_network_errors_are_retried_once() {
        for first in [
            ok(r#"{"errcode":-1,"errmsg":"system error"}"#),
            Ok(HttpResponse {
                status: 502,
                body: b"<html>".to_vec(),
            }),
            Err(TransportError::Network),
        ] {
            let t = Scripted::new(vec![first, ok(GOOD)]);
            assert_eq!(run(&t, "c").expect("second try").openid, "oUser1");
            assert_eq!(t.sent.borrow().len(), 2);
        }
        let t = Scripted::new(vec![
            ok(r#"{"errcode":-1,"errmsg":"busy"}"#),
            ok(r#"{"errcode":-1,"errmsg":"busy"}"#),
            ok(GOOD),
        ]);
        assert_eq!(
            run(&t, "c").unwrap_err(),
            ApiError::WechatUnavailable { errcode: Some(-1) }
        );
        assert_eq!(t.sent.borrow().len(), 2, "only one retry");
    }

    #[test]
    fn timeout_and_garbage_are_unavailable_without_retry() {
        for first in [
            Err(TransportError::Timeout),
            ok("<html>not json</html>"),
            ok(r#"{"openid":"o"}"#),
            ok(r#"{"openid":"o","session_key":"not-16-bytes"}"#),
            ok(r#"{"errcode":"weird"}"#),
            Ok(HttpResponse {
                status: 404,
                body: vec![],
            }),
        ] {
            let t = Scripted::new(vec![first, ok(GOOD)]);
            assert_eq!(
                run(&t, "c").unwrap_err(),
                ApiError::WechatUnavailable { errcode: None }
            );
            assert_eq!(t.sent.borrow().len(), 1);
        }
    }

    #[test]
    fn malformed_codes_never_reach_wechat() {
        for code in ["", "has space", &"x".repeat(300), "中文"] {
            let t = Scripted::new(vec![ok(GOOD)]);
            assert!(
                matches!(run(&t, code), Err(ApiError::InvalidRequest(_))),
                "{code}"
            );
            assert!(t.sent.borrow().is_empty());
        }
    }

    #[test]
    fn errors_never_carry_the_body() {
        // A reply with a session_key but no openid is unparseable; the error
        // must not quote it.
        let t = Scripted::new(vec![ok(r#"{"session_key":"tiihtNczf5v6AKRyjwEUhQ=="}"#)]);
        let e = run(&t, "c").unwrap_err();
        assert!(!format!("{e:?} {e}").contains("tiihtN"));
    }

    #[test]
    fn stable_token_and_phone_requests() {
        let cfg = test_config();
        let req = stable_token_request(&cfg, false);
        assert_eq!(req.method, Method::Post);
        assert_eq!(req.url, "https://api.weixin.qq.com/cgi-bin/stable_token");
        let body: serde_json::Value =
            serde_json::from_str(req.body.as_deref().expect("body")).expect("json");
        assert_eq!(body["grant_type"], "client_credential");
        assert_eq!(body["appid"], "wxd930ea5d5a258f4f");
        assert_eq!(body["force_refresh"], false);
        let t = parse_stable_token(&HttpResponse {
            status: 200,
            body: br#"{"access_token":"ACCESS","expires_in":7200}"#.to_vec(),
        })
        .expect("ok");
        assert_eq!(t.access_token.secret(), "ACCESS");
        assert_eq!(t.expires_in, 7200);

        let req = phone_number_request(&cfg, &t.access_token, "pc", "oUser");
        assert_eq!(
            req.url,
            "https://api.weixin.qq.com/wxa/business/getuserphonenumber?access_token=ACCESS"
        );
        let body: serde_json::Value =
            serde_json::from_str(req.body.as_deref().expect("body")).expect("json");
        assert_eq!(body, serde_json::json!({"code": "pc", "openid": "oUser"}));
        let info = parse_phone_number(&HttpResponse {
            status: 200,
            body: br#"{"errcode":0,"errmsg":"ok","phone_info":{"purePhoneNumber":"1"}}"#.to_vec(),
        })
        .expect("ok");
        assert_eq!(info["purePhoneNumber"], "1");
        let e = parse_phone_number(&HttpResponse {
            status: 200,
            body: br#"{"errcode":40001,"errmsg":"invalid credential"}"#.to_vec(),
        })
        .unwrap_err();
        assert!(e.is_token_error());
    }
}
