//! WeChat from a script.

use std::cell::RefCell;
use std::collections::VecDeque;

use super::YieldOnce;
use crate::wechat::{HttpRequest, HttpResponse, Transport, TransportError};

/// A transport that answers from a script and records what was sent; once
/// the script runs out, every call is a network error.
#[derive(Default)]
pub(crate) struct Scripted {
    pub(crate) replies: RefCell<VecDeque<Result<HttpResponse, TransportError>>>,
    pub(crate) sent: RefCell<Vec<HttpRequest>>,
}

impl Scripted {
    pub(crate) fn new(replies: Vec<Result<HttpResponse, TransportError>>) -> Self {
        Scripted {
            replies: RefCell::new(replies.into()),
            sent: RefCell::default(),
        }
    }
    pub(crate) fn push(&self, r: Result<HttpResponse, TransportError>) {
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

/// A 200 with `body`.
pub(crate) fn ok(body: &str) -> Result<HttpResponse, TransportError> {
    Ok(HttpResponse {
        status: 200,
        body: body.as_bytes().to_vec(),
    })
}

/// The session_key of [`GOOD`].
pub(crate) const GOOD_KEY: &str = "tiihtNczf5v6AKRyjwEUhQ==";

/// A `jscode2session` reply for user `oUser1` (session key [`GOOD_KEY`])
/// with a union id.
pub(crate) const GOOD: &str =
    r#"{"openid":"oUser1","session_key":"tiihtNczf5v6AKRyjwEUhQ==","unionid":"uUnion1"}"#;
