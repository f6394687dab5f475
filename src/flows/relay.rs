//! The WeChat relay, `/auth/service/wechat/{path}`: the origin's servers
//! call any WeChat API through the worker, which adds its own cached
//! `access_token`, so that one holder keeps the token (an origin fetching
//! its own would invalidate the worker's, and the reverse). Paths that
//! hand out credentials or session keys are refused (see
//! `crate::config::relay`); the AppSecret never leaves the worker: it is
//! only ever sent to `stable_token`, which the relay refuses to call.
//!
//! The body is buffered, so it can always be sent twice: when WeChat
//! refuses the token (40001, 40014, 42001), the token is fetched again
//! (never the refused one) and the call repeated once. Nothing else is
//! retried: a relayed `POST` (a subscribe message, say) must not be sent
//! twice because a connection failed. WeChat's answer goes back as it
//! came: status, content type, bytes.

use serde::Deserialize;

use super::serve::Request;
use super::{Edge, Platform};
use crate::error::ApiError;
use crate::http::response::Relayed;
use crate::secret::WxAccessToken;
use crate::wechat::{CallError, Transport, WireRequest, WireResponse};

impl<P: Platform> Edge<'_, P> {
    /// Relays `req` to `WX_API_BASE/{path}`: admission, then the path
    /// policy (403 `relay_refused`), then the body (413 over 2 MiB).
    pub(crate) async fn service_relay(
        &self,
        req: &Request<'_>,
        path: &str,
    ) -> Result<Relayed, ApiError> {
        self.admit_service(req.authorization, req.client_ip).await?;
        self.cfg
            .service
            .relay_paths
            .check(path)
            .map_err(|_| ApiError::RelayRefused)?;
        let body = req.body?;
        let call = Call {
            method: req.method,
            target: format!("{}/{path}", self.cfg.api_base),
            query: client_query(req.url),
            content_type: req.content_type,
            body,
        };
        let token = self.wx_access_token(None).await?;
        let answer = self.relay_once(&call, &token).await?;
        if !refuses_token(&answer.body) {
            return Ok(relayed(answer));
        }
        let fresh = self.wx_access_token(Some(&token)).await?;
        Ok(relayed(self.relay_once(&call, &fresh).await?))
    }

    async fn relay_once(
        &self,
        call: &Call<'_>,
        token: &WxAccessToken,
    ) -> Result<WireResponse, ApiError> {
        self.wechat
            .send(call.request(token))
            .await
            .map_err(|_| ApiError::WechatUnavailable { errcode: None })
    }
}

/// One relayed call, before a token is added.
struct Call<'a> {
    method: &'a str,
    /// `WX_API_BASE/{path}`.
    target: String,
    /// The client's query without its `access_token`s.
    query: String,
    content_type: Option<&'a str>,
    body: &'a [u8],
}

impl Call<'_> {
    /// The request WeChat is sent with `token`. A `GET` or `HEAD` carries
    /// no body (`fetch` refuses one); any other method the client's bytes
    /// and content type.
    fn request(&self, token: &WxAccessToken) -> WireRequest {
        let with_body = !matches!(self.method, "GET" | "HEAD");
        WireRequest {
            method: self.method.to_string(),
            url: relay_url(&self.target, &self.query, token.secret()),
            content_type: self.content_type.filter(|_| with_body).map(str::to_string),
            body: with_body.then(|| self.body.to_vec()),
        }
    }
}

fn relayed(answer: WireResponse) -> Relayed {
    Relayed {
        status: answer.status,
        content_type: answer.content_type,
        body: answer.body,
    }
}

/// The query of `url` as sent (before any `#`), without every parameter
/// whose name, decoded, is `access_token` in any case: the worker's token
/// is the only one WeChat sees. The other parameters pass as they are.
pub(crate) fn client_query(url: &str) -> String {
    let url = url.split('#').next().unwrap_or_default();
    let Some((_, query)) = url.split_once('?') else {
        return String::new();
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty() && !names_access_token(pair))
        .collect::<Vec<_>>()
        .join("&")
}

fn names_access_token(pair: &str) -> bool {
    form_urlencoded::parse(pair.as_bytes())
        .next()
        .is_some_and(|(name, _)| name.trim().eq_ignore_ascii_case("access_token"))
}

/// `target?access_token=TOKEN` followed by the client's other parameters.
pub(crate) fn relay_url(target: &str, query: &str, token: &str) -> String {
    let token: String = form_urlencoded::byte_serialize(token.as_bytes()).collect();
    if query.is_empty() {
        format!("{target}?access_token={token}")
    } else {
        format!("{target}?access_token={token}&{query}")
    }
}

/// Whether WeChat's answer refuses the access_token: a JSON object (read
/// whatever the content type says) with errcode 40001, 40014 or 42001.
pub(crate) fn refuses_token(body: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Errcode {
        errcode: Option<i64>,
    }
    if !body.trim_ascii_start().starts_with(b"{") {
        return false;
    }
    serde_json::from_slice::<Errcode>(body)
        .ok()
        .and_then(|e| e.errcode)
        .is_some_and(|code| CallError::Errcode(code).is_token_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_s_access_tokens_are_dropped_in_any_case_and_spelling() {
        for (url, want) in [
            ("https://e.x/p", ""),
            ("https://e.x/p?", ""),
            ("https://e.x/p?a=1&b=2", "a=1&b=2"),
            ("https://e.x/p?access_token=mine", ""),
            ("https://e.x/p?ACCESS_TOKEN=mine&a=1", "a=1"),
            (
                "https://e.x/p?a=1&Access_Token=x&b=2&access_token=y",
                "a=1&b=2",
            ),
            ("https://e.x/p?access_token&a=1", "a=1"),
            ("https://e.x/p?access_token=&a=1", "a=1"),
            ("https://e.x/p?access%5Ftoken=x&a=1", "a=1"),
            ("https://e.x/p?%61ccess_token=x", ""),
            ("https://e.x/p?access_token+=x", ""),
            ("https://e.x/p?a=1&&b=2#frag", "a=1&b=2"),
            ("https://e.x/p?access_tokens=x", "access_tokens=x"),
            ("https://e.x/p?x_access_token=1", "x_access_token=1"),
            ("https://e.x/p?q=access_token", "q=access_token"),
            ("https://e.x/p?a=%E4%B8%AD&b=x+y", "a=%E4%B8%AD&b=x+y"),
        ] {
            assert_eq!(client_query(url), want, "{url}");
        }
    }

    #[test]
    fn the_worker_s_token_comes_first_and_once() {
        assert_eq!(
            relay_url("https://api.weixin.qq.com/wxa/x", "", "T1"),
            "https://api.weixin.qq.com/wxa/x?access_token=T1"
        );
        assert_eq!(
            relay_url("https://w/wxa/x", "a=1&b=2", "T+/="),
            "https://w/wxa/x?access_token=T%2B%2F%3D&a=1&b=2"
        );
    }

    #[test]
    fn only_a_json_token_error_asks_for_a_new_token() {
        for body in [
            &br#"{"errcode":40001,"errmsg":"invalid credential"}"#[..],
            br#"  {"errcode":40014}"#,
            b"\n{\"errmsg\":\"expired\",\"errcode\":42001}",
        ] {
            assert!(refuses_token(body), "{}", String::from_utf8_lossy(body));
        }
        for body in [
            &br#"{"errcode":0,"errmsg":"ok"}"#[..],
            br#"{"errcode":40013}"#,
            br#"{"errcode":"40001"}"#,
            br#"{"data":{"errcode":40001}}"#,
            br#"[{"errcode":40001}]"#,
            br#"{"errcode":40001"#,
            b"\x89PNG\r\n\x1a\n",
            b"",
            b"errcode 40001",
        ] {
            assert!(!refuses_token(body), "{}", String::from_utf8_lossy(body));
        }
    }
}
