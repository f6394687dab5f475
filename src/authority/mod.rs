//! The session authority: one per user (a Durable Object named by the
//! openid in the worker), which makes every change to that user's record
//! and sessions, one at a time.
//!
//! - `protocol` — the wire between a worker and an authority: one request
//!   type per operation, each with its own reply type.
//! - `machine` — the pure state machine: state, step, context → new state,
//!   reply, effects on the KV replica.
//! - `server` — one authority's request handling around it: load, gather
//!   what the step needs (allowlist, decryption), apply, save, replicate.
//! - `queue` — its requests one at a time, first come first served, each
//!   dropped unapplied when its worker's deadline passed before its turn.
//! - `timeout` — its clock, and the timeout on each KV call it makes.
//! - this file — [`AuthorityClient`], how the flows reach an authority:
//!   the request's bytes out, the reply's in, within a timeout.

use crate::ids::OpenId;
use crate::store::StoreError;
use timeout::{first, Either};

#[cfg(test)]
mod fixtures;
pub(crate) mod machine;
pub(crate) mod protocol;
pub(crate) mod queue;
pub(crate) mod server;
pub(crate) mod timeout;

pub(crate) use machine::Replica;
pub(crate) use protocol::{
    BindDenied, BindEncrypted, BindPhone, CheckSession, Envelope, Login, Logout, NoLiveSession,
    OpenData, OpenDenied, Operation, ReadUser, Refresh, RefreshDenied, Refreshed, ReplaceKey,
    RevokeAll, SessionEnded, SessionView, SignLatest, Signed, UserSummary,
};
pub(crate) use server::Answered;

/// The longest a worker waits for an authority before answering 503. It
/// is also the request's deadline: an authority does not apply a request
/// whose turn comes later.
pub(crate) const CALL_TIMEOUT_MS: u32 = 5_000;

/// Why a call to an authority failed. The change it asked for may or may
/// not have been made; the flows answer 503, retryable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallFailure {
    /// The authority could not be reached (no stub, the fetch failed).
    Unreachable,
    /// No answer within [`CALL_TIMEOUT_MS`].
    TimedOut,
    /// The authority answered another status than 200 (400: the request
    /// was of a wire version it no longer reads; 503: its storage or KV
    /// failed; 504: the deadline passed before its turn, so it was not
    /// applied).
    Status(u16),
    /// The authority runs an older release than this worker and does not
    /// read this request's wire version yet
    /// ([`protocol::NEWER_WIRE_STATUS`]): a deploy under way; it clears
    /// when the deploy finishes.
    AuthorityOlder,
    /// A 200 whose body is not this request's reply (another version).
    Unreadable,
}

/// How the flows reach a user's authority. The worker's posts to a Durable
/// Object stub; the tests' runs the same server in memory. Everything but
/// moving the bytes and waiting is here, in [`AuthorityClient::call`].
#[allow(async_fn_in_trait)] // used with concrete types only; no Send bound wanted on wasm
pub(crate) trait AuthorityClient {
    /// Posts `body` to `openid`'s authority and reads its answer.
    async fn post(&self, openid: &OpenId, body: String) -> Result<Answered, CallFailure>;

    /// Resolves after `ms` milliseconds.
    async fn sleep(&self, ms: u32);

    /// Now, in ms since the epoch (the clock [`CALL_TIMEOUT_MS`] runs on).
    fn now_ms(&self) -> i64;

    /// Hears why a call failed (the worker logs it).
    fn failed(&self, _why: CallFailure) {}

    /// Sends `op` to `openid`'s authority: its reply, or `Err` when the
    /// authority could not be reached, failed, or took longer than
    /// [`CALL_TIMEOUT_MS`] (the change may or may not have been made; the
    /// authority does not start it once that time has passed).
    async fn call<O: Operation>(&self, openid: &OpenId, op: O) -> Result<O::Reply, StoreError> {
        let deadline_ms = self.now_ms().saturating_add(i64::from(CALL_TIMEOUT_MS));
        let envelope = Envelope::new(openid.clone(), op, deadline_ms);
        let body = serde_json::to_string(&envelope).map_err(|_| StoreError)?;
        let answered = match first(self.post(openid, body), self.sleep(CALL_TIMEOUT_MS)).await {
            Either::Left(answered) => answered,
            Either::Right(()) => Err(CallFailure::TimedOut),
        };
        answered.and_then(|a| read_reply(&a)).map_err(|why| {
            self.failed(why);
            StoreError
        })
    }
}

/// A reply from what an authority answered: 200 and this request's reply,
/// or why not.
fn read_reply<R: serde::de::DeserializeOwned>(answered: &Answered) -> Result<R, CallFailure> {
    match answered.status {
        200 => {}
        protocol::NEWER_WIRE_STATUS => return Err(CallFailure::AuthorityOlder),
        status => return Err(CallFailure::Status(status)),
    }
    serde_json::from_str(&answered.body).map_err(|_| CallFailure::Unreadable)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use pollster::block_on;

    use super::*;
    use crate::ids::SessionId;

    /// An authority that answers as told, or never; and a clock that runs
    /// out at once or never.
    struct Scripted {
        answer: Option<Result<Answered, CallFailure>>,
        timer_fires: bool,
        failures: RefCell<Vec<CallFailure>>,
        sent: RefCell<Vec<String>>,
    }

    impl Scripted {
        fn new(answer: Option<Result<Answered, CallFailure>>, timer_fires: bool) -> Self {
            Scripted {
                answer,
                timer_fires,
                failures: RefCell::default(),
                sent: RefCell::default(),
            }
        }
    }

    impl AuthorityClient for Scripted {
        async fn post(&self, _: &OpenId, body: String) -> Result<Answered, CallFailure> {
            self.sent.borrow_mut().push(body);
            match &self.answer {
                Some(a) => a.clone(),
                None => std::future::pending().await,
            }
        }
        async fn sleep(&self, ms: u32) {
            assert_eq!(ms, CALL_TIMEOUT_MS);
            if !self.timer_fires {
                std::future::pending::<()>().await;
            }
        }
        fn now_ms(&self) -> i64 {
            NOW_MS
        }
        fn failed(&self, why: CallFailure) {
            self.failures.borrow_mut().push(why);
        }
    }

    /// The client's clock.
    const NOW_MS: i64 = 1_764_000_000_123;

    fn logout() -> Logout {
        Logout {
            sid: SessionId::parse("AAAAAAAAAAAAAAAAAAAAAA").expect("a session id"),
        }
    }

    fn call(client: &Scripted) -> Result<(), StoreError> {
        block_on(client.call(&OpenId::new("o1"), logout()))
    }

    fn answered(status: u16, body: &str) -> Option<Result<Answered, CallFailure>> {
        Some(Ok(Answered {
            status,
            body: body.into(),
        }))
    }

    #[test]
    fn a_200_with_the_reply_is_the_reply() {
        let client = Scripted::new(answered(200, "null"), false);
        assert_eq!(call(&client), Ok(()));
        assert!(client.failures.borrow().is_empty());
        let sent = client.sent.borrow();
        assert!(sent[0].starts_with(r#"{"v":3,"openid":"o1","request":{"logout""#));
        // The deadline: when this client stops waiting.
        let sent: Envelope = serde_json::from_str(&sent[0]).expect("an envelope");
        assert_eq!(sent.deadline_ms, NOW_MS + i64::from(CALL_TIMEOUT_MS));
    }

    #[test]
    fn an_answer_in_time_wins_over_a_timer_that_is_also_ready() {
        let client = Scripted::new(answered(200, "null"), true);
        assert_eq!(call(&client), Ok(()));
    }

    #[test]
    fn every_failure_is_a_store_error_and_is_reported() {
        let cases = [
            (
                answered(503, "storage unavailable"),
                false,
                CallFailure::Status(503),
            ),
            (
                answered(504, "deadline passed"),
                false,
                CallFailure::Status(504),
            ),
            (
                answered(400, "bad request"),
                false,
                CallFailure::Status(400),
            ),
            (answered(200, r#"{"Ok":1}"#), false, CallFailure::Unreadable),
            (
                answered(501, "wire version newer than this authority"),
                false,
                CallFailure::AuthorityOlder,
            ),
            (
                Some(Err(CallFailure::Unreachable)),
                false,
                CallFailure::Unreachable,
            ),
            (None, true, CallFailure::TimedOut),
        ];
        for (answer, timer_fires, why) in cases {
            let client = Scripted::new(answer, timer_fires);
            assert_eq!(call(&client), Err(StoreError), "{why:?}");
            assert_eq!(*client.failures.borrow(), vec![why]);
        }
    }
}
