//! WeChat from a script.

use std::cell::RefCell;
use std::collections::VecDeque;

use super::YieldOnce;
use crate::wechat::{HttpResponse, Transport, TransportError, WireRequest, WireResponse};

/// A transport that answers from a script and records what was sent; once
/// the script runs out, every call is a network error.
#[derive(Default)]
pub(crate) struct Scripted {
    pub(crate) replies: RefCell<VecDeque<Result<WireResponse, TransportError>>>,
    pub(crate) sent: RefCell<Vec<WireRequest>>,
}

impl Scripted {
    pub(crate) fn new(replies: Vec<Result<HttpResponse, TransportError>>) -> Self {
        Scripted {
            replies: RefCell::new(replies.into_iter().map(|r| r.map(Into::into)).collect()),
            sent: RefCell::default(),
        }
    }
    pub(crate) fn push(&self, r: Result<HttpResponse, TransportError>) {
        self.push_wire(r.map(Into::into));
    }
    /// A reply with a content type (the relay passes it on).
    pub(crate) fn push_wire(&self, r: Result<WireResponse, TransportError>) {
        self.replies.borrow_mut().push_back(r);
    }
}

impl Transport for Scripted {
    async fn send(&self, req: WireRequest) -> Result<WireResponse, TransportError> {
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
