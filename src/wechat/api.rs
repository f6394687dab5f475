//! The WeChat calls the worker makes: code2Session (login and re-key),
//! `stable_token` (the API access_token), getuserphonenumber (phone), and
//! the session-key APIs `checksession` and `resetusersessionkey`.
//! Request building and reply parsing only; sending is the transport's.

use serde::Deserialize;

use super::{
    call_with_retry, parse_reply, query, CallError, HttpRequest, HttpResponse, Method, Transport,
};
use crate::config::Config;
use crate::ids::{OpenId, UnionId, WxCode};
use crate::secret::{SessionKey, WxAccessToken};

// ---------------------------------------------------------------- code2Session

/// What code2Session gives for a valid code.
#[derive(Debug, Clone)]
pub(crate) struct WxSession {
    pub(crate) openid: OpenId,
    pub(crate) unionid: Option<UnionId>,
    pub(crate) session_key: SessionKey,
}

#[derive(Deserialize)]
struct Code2SessionReply {
    openid: OpenId,
    /// Decoded here, once: a reply whose session_key is not base64 of 16
    /// bytes does not parse.
    session_key: SessionKey,
    #[serde(default)]
    unionid: Option<UnionId>,
}

pub(crate) fn code2session_request(cfg: &Config, code: &WxCode) -> HttpRequest {
    HttpRequest {
        method: Method::Get,
        url: format!(
            "{}/sns/jscode2session?{}",
            cfg.api_base,
            query(&[
                ("appid", cfg.appid.as_str()),
                ("secret", cfg.app_secret.secret()),
                ("js_code", code.as_str()),
                ("grant_type", "authorization_code"),
            ])
        ),
        body: None,
    }
}

pub(crate) fn parse_code2session(resp: &HttpResponse) -> Result<WxSession, CallError> {
    let r: Code2SessionReply = parse_reply(resp)?;
    if r.openid.as_str().is_empty() {
        return Err(CallError::Unparseable);
    }
    Ok(WxSession {
        openid: r.openid,
        unionid: r.unionid.filter(|u| !u.as_str().is_empty()),
        session_key: r.session_key,
    })
}

/// Exchanges a `wx.login` code for the user's openid and session_key.
pub(crate) async fn code2session<T: Transport>(
    transport: &T,
    cfg: &Config,
    code: &WxCode,
) -> Result<WxSession, CallError> {
    call_with_retry(
        transport,
        code2session_request(cfg, code),
        parse_code2session,
    )
    .await
}

// ---------------------------------------------------------------- stable_token

#[derive(Debug, Clone)]
pub(crate) struct StableToken {
    pub(crate) access_token: WxAccessToken,
    pub(crate) expires_in: u64,
}

#[derive(Deserialize)]
struct StableTokenReply {
    access_token: WxAccessToken,
    expires_in: u64,
}

pub(crate) fn stable_token_request(cfg: &Config, force_refresh: bool) -> HttpRequest {
    HttpRequest {
        method: Method::Post,
        url: format!("{}/cgi-bin/stable_token", cfg.api_base),
        body: Some(
            serde_json::json!({
                "grant_type": "client_credential",
                "appid": cfg.appid.as_str(),
                "secret": cfg.app_secret.secret(),
                "force_refresh": force_refresh,
            })
            .to_string(),
        ),
    }
}

pub(crate) fn parse_stable_token(resp: &HttpResponse) -> Result<StableToken, CallError> {
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

pub(crate) fn phone_number_request(
    cfg: &Config,
    token: &WxAccessToken,
    code: &WxCode,
    openid: &OpenId,
) -> HttpRequest {
    HttpRequest {
        method: Method::Post,
        url: format!(
            "{}/wxa/business/getuserphonenumber?{}",
            cfg.api_base,
            query(&[("access_token", token.secret())])
        ),
        body: Some(
            serde_json::json!({ "code": code.as_str(), "openid": openid.as_str() }).to_string(),
        ),
    }
}

#[derive(Deserialize)]
struct PhoneReply {
    phone_info: serde_json::Value,
}

/// The `phone_info` object of a getuserphonenumber reply (not yet checked).
pub(crate) fn parse_phone_number(resp: &HttpResponse) -> Result<serde_json::Value, CallError> {
    let r: PhoneReply = parse_reply(resp)?;
    Ok(r.phone_info)
}

// ------------------------------------------- checksession, resetusersessionkey

/// WeChat's session-key APIs, both `GET` with the same parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionKeyApi {
    /// `/wxa/checksession`: is this the user's current key?
    Check,
    /// `/wxa/resetusersessionkey`: a new key for the user.
    Reset,
}

/// WeChat's errcode for a login-state signature it does not accept (the
/// key it was made with is not the user's current one).
pub(crate) const INVALID_SIGNATURE: i64 = 87009;

/// `GET {base}/wxa/checksession` or `/wxa/resetusersessionkey` with
/// `access_token`, `openid`, `signature` (the login-state signature of
/// `""`) and `sig_method=hmac_sha256`. The URL carries the access token
/// and the signature: it is never logged (`HttpRequest`'s `Debug` shows
/// the path only).
pub(crate) fn session_key_request(
    cfg: &Config,
    api: SessionKeyApi,
    token: &WxAccessToken,
    openid: &OpenId,
    signature: &str,
) -> HttpRequest {
    let path = match api {
        SessionKeyApi::Check => "wxa/checksession",
        SessionKeyApi::Reset => "wxa/resetusersessionkey",
    };
    HttpRequest {
        method: Method::Get,
        url: format!(
            "{}/{path}?{}",
            cfg.api_base,
            query(&[
                ("access_token", token.secret()),
                ("openid", openid.as_str()),
                ("signature", signature),
                ("sig_method", "hmac_sha256"),
            ])
        ),
        body: None,
    }
}

/// `checksession`'s verdict: errcode 0 is valid, [`INVALID_SIGNATURE`]
/// is not; any other failure is the call's.
pub(crate) fn parse_check_session(resp: &HttpResponse) -> Result<bool, CallError> {
    match parse_reply::<serde_json::Value>(resp) {
        Ok(_) => Ok(true),
        Err(CallError::Errcode(INVALID_SIGNATURE)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// What `resetusersessionkey` gives: the user's new key.
#[derive(Debug, Clone)]
pub(crate) struct ResetKey {
    pub(crate) openid: OpenId,
    pub(crate) session_key: SessionKey,
}

#[derive(Deserialize)]
struct ResetReply {
    openid: OpenId,
    /// Decoded here: a reply whose session_key is not base64 of 16 bytes
    /// does not parse.
    session_key: SessionKey,
}

/// `{"openid", "session_key"}` (with errcode 0 or none).
pub(crate) fn parse_reset_session_key(resp: &HttpResponse) -> Result<ResetKey, CallError> {
    let r: ResetReply = parse_reply(resp)?;
    if r.openid.as_str().is_empty() {
        return Err(CallError::Unparseable);
    }
    Ok(ResetKey {
        openid: r.openid,
        session_key: r.session_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{ok, test_config, Scripted, GOOD};
    use crate::wechat::TransportError;

    /// A login's WeChat half as the login flow runs it (how each failure
    /// answers the client is `crate::error`'s table, tested there).
    fn run(t: &Scripted, code: &str) -> Result<WxSession, CallError> {
        let code = WxCode::parse(code).expect("a well-formed code");
        pollster::block_on(code2session(t, &test_config(), &code))
    }

    #[test]
    fn request_has_the_documented_shape() {
        let mut cfg = test_config();
        cfg.api_base = "http://127.0.0.1:8788".into();
        let req = code2session_request(&cfg, &WxCode::parse("0a1+b/2=").expect("code"));
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
        assert_eq!(s.unionid.as_ref().map(UnionId::as_str), Some("uUnion1"));
        assert_eq!(
            s.session_key.bytes(),
            SessionKey::from_base64("tiihtNczf5v6AKRyjwEUhQ==")
                .expect("16 bytes")
                .bytes()
        );
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
    fn errcodes_are_reported_without_retry() {
        let cases = [40029, 40163, 40226, 45011, 40125, 99999].map(|c| (c, CallError::Errcode(c)));
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
        assert_eq!(run(&t, "c").unwrap_err(), CallError::Errcode(-1));
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
            let e = run(&t, "c").unwrap_err();
            assert!(
                matches!(
                    e,
                    CallError::Transport(TransportError::Timeout)
                        | CallError::Unparseable
                        | CallError::Http(_)
                ),
                "{e:?}"
            );
            assert_eq!(t.sent.borrow().len(), 1);
        }
    }

    #[test]
    fn malformed_codes_never_reach_wechat() {
        // A call needs a `WxCode`, and none of these is one.
        for code in ["", "has space", &"x".repeat(300), "中文"] {
            assert!(WxCode::parse(code).is_err(), "{code}");
        }
    }

    #[test]
    fn errors_never_carry_the_body() {
        // A reply with a session_key but no openid is unparseable; the error
        // must not quote it.
        let t = Scripted::new(vec![ok(r#"{"session_key":"tiihtNczf5v6AKRyjwEUhQ=="}"#)]);
        let e = run(&t, "c").unwrap_err();
        assert!(!format!("{e:?}").contains("tiihtN"));
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

        let req = phone_number_request(
            &cfg,
            &t.access_token,
            &WxCode::parse("pc").expect("code"),
            &OpenId::new("oUser"),
        );
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

    fn reply(body: &str) -> HttpResponse {
        HttpResponse {
            status: 200,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn session_key_requests_have_the_documented_shape_and_never_print() {
        let cfg = test_config();
        let token: WxAccessToken = serde_json::from_str(r#""TOKEN-value""#).expect("a token");
        let openid = OpenId::new("oUser1");
        let sig = "7154f9f8b4b76b92f541cbf0e37d48840fa06e5e42da92a6f80168a1516a4735";
        let check = session_key_request(&cfg, SessionKeyApi::Check, &token, &openid, sig);
        assert_eq!(check.method, Method::Get);
        assert_eq!(
            check.url,
            format!(
                "https://api.weixin.qq.com/wxa/checksession?access_token=TOKEN-value\
                 &openid=oUser1&signature={sig}&sig_method=hmac_sha256"
            )
        );
        assert!(check.body.is_none());
        let reset = session_key_request(&cfg, SessionKeyApi::Reset, &token, &openid, sig);
        assert_eq!(
            reset.url,
            format!(
                "https://api.weixin.qq.com/wxa/resetusersessionkey?access_token=TOKEN-value\
                 &openid=oUser1&signature={sig}&sig_method=hmac_sha256"
            )
        );
        for req in [check, reset] {
            let shown = format!("{req:?}");
            assert!(!shown.contains("TOKEN-value"), "{shown}");
            assert!(!shown.contains(sig), "{shown}");
        }
        // An openid is encoded, never spliced into the query.
        let odd = session_key_request(
            &cfg,
            SessionKeyApi::Check,
            &token,
            &OpenId::new("o&access_token=x"),
            sig,
        );
        assert!(
            odd.url.contains("openid=o%26access_token%3Dx&"),
            "{}",
            odd.url
        );
    }

    #[test]
    fn checksession_is_valid_on_0_invalid_on_87009_and_fails_otherwise() {
        assert_eq!(
            parse_check_session(&reply(r#"{"errcode":0,"errmsg":"ok"}"#)),
            Ok(true)
        );
        assert_eq!(
            parse_check_session(&reply(r#"{"errcode":87009,"errmsg":"invalid signature"}"#)),
            Ok(false)
        );
        for (body, want) in [
            (
                r#"{"errcode":40001,"errmsg":"x"}"#,
                CallError::Errcode(40001),
            ),
            (r#"{"errcode":-1,"errmsg":"busy"}"#, CallError::Errcode(-1)),
            ("<html>", CallError::Unparseable),
        ] {
            assert_eq!(parse_check_session(&reply(body)), Err(want), "{body}");
        }
        let e = parse_check_session(&HttpResponse {
            status: 503,
            body: vec![],
        });
        assert_eq!(e, Err(CallError::Http(503)));
    }

    #[test]
    fn resetusersessionkey_gives_the_new_key_or_fails() {
        let r = parse_reset_session_key(&reply(
            r#"{"errcode":0,"errmsg":"ok","openid":"oUser1","session_key":"o0q0otL8aEzpcZL/FT9WsQ=="}"#,
        ))
        .expect("a new key");
        assert_eq!(r.openid, "oUser1");
        assert_eq!(r.session_key.to_base64(), "o0q0otL8aEzpcZL/FT9WsQ==");
        assert!(!format!("{r:?}").contains("o0q0ot"));
        for body in [
            r#"{"errcode":87009,"errmsg":"invalid signature"}"#,
            r#"{"openid":"oUser1"}"#,
            r#"{"openid":"","session_key":"o0q0otL8aEzpcZL/FT9WsQ=="}"#,
            r#"{"openid":"oUser1","session_key":"short"}"#,
            r#"{"session_key":"o0q0otL8aEzpcZL/FT9WsQ=="}"#,
        ] {
            let e = parse_reset_session_key(&reply(body)).expect_err(body);
            assert!(!format!("{e:?}").contains("o0q0ot"), "{body}");
        }
    }
}
