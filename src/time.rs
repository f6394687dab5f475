//! Time as the core takes it: a clock and sleeps passed in ([`Timer`]),
//! and the timeout every call to storage gets, in the worker and in each
//! session authority.
//!
//! KV (or a Durable Object's storage) that never answers would otherwise
//! hold a request — and in an authority, the user's turn — for as long as
//! the runtime lets it. Each such call is raced against the [`Timer`]: no
//! answer within its timeout is a [`StoreError`], as a failure is.

use std::future::Future;
use std::pin::pin;
use std::task::Poll;

use crate::store::{Store, StoreError};

/// The longest one KV call may take, in the worker or an authority:
/// 2 s. A request makes at most two on its way to an answer in the common
/// case (a login or refresh reads the allowlist, then writes its replica),
/// so both fit inside the worker's 5 s (`authority::CALL_TIMEOUT_MS`) with a
/// second left for the authority's own storage and the round trip. KV
/// answers in tens to hundreds of ms when it is well; a call that takes
/// seconds is failing.
pub(crate) const KV_TIMEOUT_MS: u32 = 2_000;

/// A clock and sleeps (`setTimeout` and `Date.now()` in the runtime).
#[allow(async_fn_in_trait)] // used with concrete types only; no Send bound wanted on wasm
pub(crate) trait Timer {
    /// Resolves after `ms` milliseconds (dropping it cancels the sleep).
    async fn sleep(&self, ms: u32);

    /// Now, in ms since the epoch: what deadlines are compared with.
    fn now_ms(&self) -> i64;

    /// Hears that a call was given up after `ms` (the shell logs it).
    fn gave_up(&self, _ms: u32) {}
}

/// `call`'s result, or [`StoreError`] when `ms` pass first. The call is
/// dropped then: a write may still land later, as any write whose answer
/// was lost may.
pub(crate) async fn with_timeout<T>(
    timer: &impl Timer,
    ms: u32,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match first(call, timer.sleep(ms)).await {
        Either::Left(result) => result,
        Either::Right(()) => {
            timer.gave_up(ms);
            Err(StoreError)
        }
    }
}

/// A store whose every call times out after `ms`: the KV the worker and
/// each authority use (with [`KV_TIMEOUT_MS`]).
pub(crate) struct Timed<K, Tm> {
    pub(crate) kv: K,
    pub(crate) timer: Tm,
    pub(crate) ms: u32,
}

impl<K: Store, Tm: Timer> Store for Timed<K, Tm> {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        with_timeout(&self.timer, self.ms, self.kv.get(key)).await
    }
    async fn put(&self, key: &str, value: &str, ttl: Option<u64>) -> Result<(), StoreError> {
        with_timeout(&self.timer, self.ms, self.kv.put(key, value, ttl)).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        with_timeout(&self.timer, self.ms, self.kv.delete(key)).await
    }
}

impl<T: Timer + ?Sized> Timer for &T {
    async fn sleep(&self, ms: u32) {
        (**self).sleep(ms).await;
    }
    fn now_ms(&self) -> i64 {
        (**self).now_ms()
    }
    fn gave_up(&self, ms: u32) {
        (**self).gave_up(ms);
    }
}

/// Which of two futures finished first.
pub(crate) enum Either<A, B> {
    Left(A),
    Right(B),
}

/// Whichever of `a` and `b` finishes first (`a` when both are ready).
pub(crate) async fn first<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let mut a = pin!(a);
    let mut b = pin!(b);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(x) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(x));
        }
        if let Poll::Ready(y) = b.as_mut().poll(cx) {
            return Poll::Ready(Either::Right(y));
        }
        Poll::Pending
    })
    .await
}
