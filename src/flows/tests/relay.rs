//! The WeChat relay end to end: the path policy, the worker's token in
//! place of the client's, the refused-token retry, bytes both ways, and
//! the AppSecret staying home.

use super::service::{
    call, error, relayed, service_bearer, service_world, service_world_with, EDGE,
};
use super::*;
use crate::http::body::{BodyBuffer, BodyError, MAX_RELAY_BODY_BYTES};
use crate::wechat::{TransportError, WireRequest, WireResponse};

fn relay_url(path_and_query: &str) -> String {
    format!("{EDGE}/auth/service/wechat/{path_and_query}")
}

/// A relayed call of `method` to `path_and_query` with the service token.
fn relay(w: &World, method: &str, path_and_query: &str, body: &[u8]) -> Served {
    let auth = service_bearer();
    call(
        w,
        method,
        &relay_url(path_and_query),
        Some(&auth),
        None,
        Ok(body),
    )
}

use crate::flows::serve::Served;

/// What WeChat was sent, in order.
fn sent(w: &World) -> Vec<WireRequest> {
    w.wx.sent.borrow().clone()
}

/// The requests that were relayed (not the worker's own token fetches).
fn relayed_requests(w: &World) -> Vec<WireRequest> {
    sent(w)
        .into_iter()
        .filter(|r| !r.url.contains("/cgi-bin/stable_token"))
        .collect()
}

fn wire(
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<WireResponse, TransportError> {
    Ok(WireResponse {
        status,
        content_type: content_type.map(str::to_string),
        body: body.to_vec(),
    })
}

/// No relayed request ever carries the AppSecret, in its URL or body.
fn assert_no_app_secret(w: &World) {
    for r in relayed_requests(w) {
        assert!(!r.url.contains(APP_SECRET), "{r:?}");
        let body = r.body.clone().unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&body).contains(APP_SECRET),
            "{r:?}"
        );
    }
}

#[test]
fn a_call_goes_to_wx_api_base_with_the_worker_s_token_and_comes_back_unchanged() {
    let w = service_world();
    w.reply(STABLE_T1);
    w.wx.push_wire(wire(
        200,
        Some("application/json; charset=utf-8"),
        br#"{"errcode":0,"errmsg":"ok","x":1}"#,
    ));
    let s = relay(
        &w,
        "GET",
        "wxa/getpaidunionid?openid=o1&transaction_id=t",
        b"ignored",
    );
    assert_eq!(s.user, None, "the relay names nobody");
    let answer = relayed(s);
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.content_type.as_deref(),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(answer.body, br#"{"errcode":0,"errmsg":"ok","x":1}"#);
    let out = relayed_requests(&w);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].method, "GET");
    assert_eq!(
        out[0].url,
        format!("{API}/wxa/getpaidunionid?access_token=T1&openid=o1&transaction_id=t")
    );
    // A GET carries no body and so no content type.
    assert_eq!(
        (out[0].body.as_ref(), out[0].content_type.as_ref()),
        (None, None)
    );
    // The token is the cached one: a second call fetches none.
    w.wx.push_wire(wire(200, None, b"{}"));
    relayed(relay(&w, "POST", "wxa/msg_sec_check", b"{}"));
    assert_eq!(sent(&w).len(), 3, "one stable_token, two relayed calls");
    assert_no_app_secret(&w);
    // What is logged or printed of a sent request hides the token.
    let shown = format!("{:?}", sent(&w));
    assert!(
        !shown.contains("T1") && !shown.contains(APP_SECRET),
        "{shown}"
    );
}

#[test]
fn wechat_s_failures_and_other_statuses_pass_through_as_they_are() {
    let w = service_world();
    w.reply(STABLE_T1);
    for (status, ct, body) in [
        (
            200,
            Some("text/plain"),
            &br#"{"errcode":87014,"errmsg":"risky content"}"#[..],
        ),
        (404, Some("text/html"), b"<html>not found</html>"),
        (503, None, b""),
    ] {
        w.wx.push_wire(wire(status, ct, body));
        let answer = relayed(relay(&w, "POST", "wxa/msg_sec_check", b"{}"));
        assert_eq!(
            (
                answer.status,
                answer.content_type.as_deref(),
                answer.body.as_slice()
            ),
            (status, ct, body)
        );
    }
    // None of them was retried.
    assert_eq!(relayed_requests(&w).len(), 3);
}

#[test]
fn paths_that_hand_out_credentials_or_session_keys_are_403_and_call_nothing() {
    let w = service_world();
    for path in [
        "cgi-bin/token?grant_type=client_credential",
        "CGI-BIN/Token",
        "cgi-bin/stable_token",
        "Cgi-Bin/Stable_Token",
        "cgi-bin/ticket/getticket",
        "cgi-bin/component/api_component_token",
        "sns/jscode2session?appid=wx&js_code=c",
        "SNS/JsCode2Session",
        "sns/oauth2/access_token",
        "wxa/checksession",
        "wxa/ResetUserSessionKey",
        // Tricks that would reach one of them somewhere.
        "sns/../cgi-bin/token",
        "wxa/%2e%2e/sns/jscode2session",
        "%2e%2e/cgi-bin/token",
        "cgi-bin//token",
        "cgi-bin/token/",
        "cgi-bin/%74oken",
        "./cgi-bin/token",
        "cgi-bin/./stable_token",
        "cgi-bin\\token",
        "cgi-bin/token;x",
        "/cgi-bin/token",
        "",
    ] {
        for method in ["GET", "POST", "PUT"] {
            let s = relay(&w, method, path, b"{}");
            assert_eq!(error(s), ApiError::RelayRefused, "{method} {path}");
        }
    }
    assert_eq!(w.sent_len(), 0, "not even a token was fetched");
    let (status, body) = ApiError::RelayRefused.to_response();
    assert_eq!(status, 403);
    assert!(body.contains(r#""error":"relay_refused""#), "{body}");
}

#[test]
fn a_raw_path_with_a_query_in_it_is_judged_before_the_query_is_split() {
    // The shell hands over the path up to `?`; the route's `{path}` can
    // still hold what a client tried to smuggle.
    let w = service_world();
    for raw in [
        "cgi-bin/stable_token?x",
        "cgi-bin/stable_token#x",
        "wxa/x y",
    ] {
        let auth = service_bearer();
        let s = block_on(w.at(NOW).serve(crate::flows::serve::Request {
            route: crate::http::router::Route::ServiceRelay(raw),
            method: "GET",
            url: "https://edge.example/auth/service/wechat/x",
            path: "/auth/service/wechat/x",
            authorization: Some(&auth),
            client_ip: Some(IP),
            content_type: None,
            body: Ok(b""),
        }));
        assert_eq!(error(s), ApiError::RelayRefused, "{raw}");
    }
    assert_eq!(w.sent_len(), 0);
}

#[test]
fn wx_relay_paths_narrows_by_whole_segments() {
    let w = service_world_with(&[(
        "WX_RELAY_PATHS",
        "wxa/msg_sec_check, cgi-bin/message/subscribe",
    )]);
    w.reply(STABLE_T1);
    for path in [
        "wxa/msg_sec_check",
        "WXA/MSG_SEC_CHECK",
        "cgi-bin/message/subscribe/send",
    ] {
        w.wx.push_wire(wire(200, None, b"{}"));
        assert_eq!(
            relayed(relay(&w, "POST", path, b"{}")).status,
            200,
            "{path}"
        );
    }
    let sent = w.sent_len();
    for path in [
        "wxa/msg_sec_checkX",
        "wxa/msg_sec_check_v2",
        "wxa/msg_sec",
        "wxa/media_check_async",
        "cgi-bin/message/subscribed/send",
        "cgi-bin/message",
        "cgi-bin/token",
    ] {
        assert_eq!(
            error(relay(&w, "POST", path, b"{}")),
            ApiError::RelayRefused,
            "{path}"
        );
    }
    assert_eq!(w.sent_len(), sent);
}

#[test]
fn the_client_s_access_token_is_replaced_in_any_case_however_often_it_comes() {
    let w = service_world();
    w.reply(STABLE_T1);
    for query in [
        "access_token=mine&openid=o1",
        "ACCESS_TOKEN=mine&openid=o1",
        "Access_Token=a&openid=o1&access_token=b&aCCESS_tOKEN=c",
        "access%5Ftoken=mine&openid=o1",
        "openid=o1&access_token",
    ] {
        w.wx.push_wire(wire(200, None, b"{}"));
        relayed(relay(&w, "GET", &format!("wxa/x?{query}"), b""));
        let last = relayed_requests(&w).pop().expect("relayed");
        assert_eq!(
            last.url,
            format!("{API}/wxa/x?access_token=T1&openid=o1"),
            "{query}"
        );
    }
}

/// The sequence of one refused token: the relayed call with T1, refused
/// with `code`; `stable_token` hands T1 back again, so it is asked with
/// `force_refresh` and hands out T2; the call is repeated with T2.
fn refused_then(w: &World, code: i64, second: Result<WireResponse, TransportError>) -> Served {
    w.reply(STABLE_T1);
    w.wx.push_wire(wire(200, Some("text/plain"), errcode(code).as_bytes()));
    w.reply(STABLE_T1);
    w.reply(STABLE_T2);
    w.wx.push_wire(second);
    relay(
        w,
        "POST",
        "cgi-bin/message/subscribe/send?x=1",
        br#"{"touser":"o1"}"#,
    )
}

#[test]
fn a_refused_token_is_fetched_again_never_the_same_and_the_call_repeated_once() {
    for code in [40001, 40014, 42001] {
        let w = service_world();
        let answer = relayed(refused_then(
            &w,
            code,
            wire(200, Some("application/json"), br#"{"errcode":0,"msgid":7}"#),
        ));
        assert_eq!(answer.body, br#"{"errcode":0,"msgid":7}"#, "{code}");
        let all = sent(&w);
        assert_eq!(all.len(), 5, "{code}: {all:?}");
        assert!(all[0].url.ends_with("/cgi-bin/stable_token"));
        assert!(all[1].url.contains("access_token=T1&x=1"));
        assert!(all[2].url.ends_with("/cgi-bin/stable_token"));
        assert_eq!(w.sent_body(2)["force_refresh"], false);
        assert_eq!(
            w.sent_body(3)["force_refresh"],
            true,
            "T1 came back: forced"
        );
        assert_eq!(
            all[4].url,
            format!("{API}/cgi-bin/message/subscribe/send?access_token=T2&x=1")
        );
        // The same bytes both times: the body was buffered.
        assert_eq!(all[1].body, all[4].body);
        assert_eq!(all[4].body.as_deref(), Some(&br#"{"touser":"o1"}"#[..]));
        assert_no_app_secret(&w);
        // The new token is the one kept.
        w.wx.push_wire(wire(200, None, b"{}"));
        relayed(relay(&w, "GET", "wxa/x", b""));
        assert!(relayed_requests(&w)
            .pop()
            .expect("sent")
            .url
            .contains("access_token=T2"));
    }
}

#[test]
fn a_second_refusal_is_wechat_s_answer_not_a_third_try() {
    let w = service_world();
    let refusal = errcode(40001);
    let answer = relayed(refused_then(
        &w,
        40001,
        wire(200, Some("text/plain"), refusal.as_bytes()),
    ));
    assert_eq!(
        (answer.status, answer.body.as_slice()),
        (200, refusal.as_bytes())
    );
    assert_eq!(w.sent_len(), 5, "no third fetch, no third call");
}

#[test]
fn a_token_error_inside_binary_or_non_object_bodies_asks_for_nothing() {
    let w = service_world();
    w.reply(STABLE_T1);
    for body in [
        &b"\x89PNG 40001"[..],
        br#"[{"errcode":40001}]"#,
        br#"{"errcode":"40001"}"#,
    ] {
        w.wx.push_wire(wire(200, None, body));
        assert_eq!(relayed(relay(&w, "POST", "wxa/x", b"")).body, body);
    }
    assert_eq!(w.sent_len(), 4, "one token fetch, three calls");
}

#[test]
fn binary_bodies_go_and_come_back_byte_for_byte_with_their_content_type() {
    let w = service_world();
    w.reply(STABLE_T1);
    let upload: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let png: Vec<u8> = [&b"\x89PNG\r\n\x1a\n"[..], &[0, 0xff, 0xfe, 0x80, 0]].concat();
    w.wx.push_wire(wire(200, Some("image/png"), &png));
    let auth = service_bearer();
    let s = call(
        &w,
        "POST",
        &relay_url("wxa/getwxacodeunlimit"),
        Some(&auth),
        Some("multipart/form-data; boundary=xYz"),
        Ok(&upload),
    );
    let answer = relayed(s);
    assert_eq!(answer.content_type.as_deref(), Some("image/png"));
    assert_eq!(answer.body, png);
    let out = relayed_requests(&w);
    assert_eq!(out[0].body.as_deref(), Some(upload.as_slice()));
    assert_eq!(
        out[0].content_type.as_deref(),
        Some("multipart/form-data; boundary=xYz")
    );
    // Other methods pass as they came, with their bodies.
    w.wx.push_wire(wire(200, None, b"{}"));
    relayed(call(
        &w,
        "PUT",
        &relay_url("wxa/x"),
        Some(&auth),
        Some("text/plain"),
        Ok(b"\x00\x01"),
    ));
    let last = relayed_requests(&w).pop().expect("sent");
    assert_eq!(
        (last.method.as_str(), last.body.as_deref()),
        ("PUT", Some(&b"\x00\x01"[..]))
    );
    assert_no_app_secret(&w);
}

#[test]
fn a_body_over_2_mib_is_413_and_wechat_is_not_called() {
    let kind = crate::http::router::route("POST", "/auth/service/wechat/wxa/x")
        .body()
        .expect("the relay reads a body");
    assert_eq!(kind.limit(), MAX_RELAY_BODY_BYTES);
    assert_eq!(MAX_RELAY_BODY_BYTES, 2 * 1024 * 1024);
    // As the shell reads it: declared, or as it arrives.
    assert_eq!(
        BodyBuffer::new(Some("2097153"), kind.limit()).map(BodyBuffer::into_bytes),
        Err(BodyError::TooLarge)
    );
    let mut buffer = BodyBuffer::new(None, kind.limit()).expect("none declared");
    buffer
        .push(&vec![7u8; MAX_RELAY_BODY_BYTES])
        .expect("exactly 2 MiB");
    let exactly = buffer.into_bytes();
    let mut buffer = BodyBuffer::new(None, kind.limit()).expect("none declared");
    let over = buffer
        .push(&vec![7u8; MAX_RELAY_BODY_BYTES + 1])
        .map(|()| buffer.into_bytes());
    assert_eq!(over, Err(BodyError::TooLarge));

    let w = service_world();
    let auth = service_bearer();
    let url = relay_url("wxa/img_sec_check");
    let s = call(
        &w,
        "POST",
        &url,
        Some(&auth),
        Some("image/jpeg"),
        Err(BodyError::TooLarge),
    );
    assert_eq!(error(s), ApiError::PayloadTooLarge);
    assert_eq!(w.sent_len(), 0);
    // Exactly 2 MiB is relayed.
    w.reply(STABLE_T1);
    w.wx.push_wire(wire(200, None, b"{}"));
    relayed(call(
        &w,
        "POST",
        &url,
        Some(&auth),
        Some("image/jpeg"),
        Ok(&exactly),
    ));
    assert_eq!(
        relayed_requests(&w)[0].body.as_ref().map(Vec::len),
        Some(MAX_RELAY_BODY_BYTES)
    );
}

#[test]
fn a_transport_failure_is_502_and_is_not_retried() {
    for failure in [TransportError::Timeout, TransportError::Network] {
        let w = service_world();
        w.reply(STABLE_T1);
        w.wx.push_wire(Err(failure));
        w.wx.push_wire(wire(200, None, b"{}"));
        assert_eq!(
            error(relay(&w, "POST", "cgi-bin/message/subscribe/send", b"{}")),
            ApiError::WechatUnavailable { errcode: None },
            "{failure:?}"
        );
        assert_eq!(relayed_requests(&w).len(), 1, "a POST is never sent twice");
    }
    // The retried call failing after a refused token: 502 too.
    let w = service_world();
    assert_eq!(
        error(refused_then(&w, 40001, Err(TransportError::Timeout))),
        ApiError::WechatUnavailable { errcode: None }
    );
}

#[test]
fn no_token_to_be_had_is_the_token_fetch_s_error_and_nothing_is_relayed() {
    let w = service_world();
    w.reply(&errcode(-1));
    w.reply(&errcode(-1));
    assert_eq!(
        error(relay(&w, "GET", "wxa/x", b"")),
        ApiError::WechatUnavailable { errcode: Some(-1) }
    );
    assert!(relayed_requests(&w).is_empty());
}
