//! The WeChat API access_token (for getuserphonenumber), cached per isolate
//! and across isolates in KV.
//!
//! `stable_token` in normal mode hands every caller the same token and its
//! remaining life, so edge locations fetching independently do not
//! invalidate each other (`cgi-bin/token` would). The cache refreshes
//! [`WX_TOKEN_EARLY`] seconds before expiry, and concurrent requests of one
//! isolate share a single fetch.

use std::cell::RefCell;

use serde::{Deserialize, Serialize};

use super::{api, call_with_retry, CallError, Transport};
use crate::config::Config;
use crate::secret::{ct_eq, WxAccessToken};
use crate::store::{get_json, put_json, Store, StoreError, WX_TOKEN_KEY};

/// Refresh the cached token this long before it expires.
pub(crate) const WX_TOKEN_EARLY: i64 = 300;
/// How often a request waiting for another's fetch looks again.
const POLL_MS: u32 = 20;

/// Why no WeChat API token could be had; `crate::error` maps it onto the
/// contract's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WxTokenError {
    /// KV failed reading or writing the shared copy.
    Store(StoreError),
    /// `stable_token` failed (after its retry).
    Call(CallError),
}

impl From<StoreError> for WxTokenError {
    fn from(e: StoreError) -> Self {
        WxTokenError::Store(e)
    }
}

impl From<CallError> for WxTokenError {
    fn from(e: CallError) -> Self {
        WxTokenError::Call(e)
    }
}

/// The token as KV keeps it, shared by every isolate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CachedWxToken {
    pub(crate) access_token: WxAccessToken,
    pub(crate) expires_at: i64,
}

/// One isolate's view of the token.
#[derive(Default)]
pub(crate) struct WxTokenCache(RefCell<Memo>);

#[derive(Default)]
struct Memo {
    token: Option<CachedWxToken>,
    in_flight: bool,
}

impl WxTokenCache {
    /// The token: from this isolate's memo, else KV, else `stable_token`.
    /// `refused` is one WeChat just rejected (40001 and kin): it is never
    /// handed out again, and if `stable_token` returns it anyway the fetch is
    /// repeated with `force_refresh`.
    pub(crate) async fn get<S: Store, T: Transport>(
        &self,
        store: &S,
        wechat: &T,
        cfg: &Config,
        now: i64,
        refused: Option<&WxAccessToken>,
    ) -> Result<WxAccessToken, WxTokenError> {
        let want = Want {
            store,
            wechat,
            cfg,
            now,
            refused,
        };
        // Another request of this isolate is fetching: wait for its result
        // by polling, not by being woken from that request (workerd forbids
        // one request's I/O from running in another's context).
        let mut waited_ms = 0;
        let limit_ms = cfg.wechat_timeout_ms.saturating_mul(3);
        loop {
            {
                let mut memo = self.0.borrow_mut();
                if let Some(t) = memo.token.as_ref().filter(|t| want.usable(t)) {
                    return Ok(t.access_token.clone());
                }
                if !memo.in_flight || waited_ms >= limit_ms {
                    memo.in_flight = true;
                    break;
                }
            }
            wechat.pause(POLL_MS).await;
            waited_ms += u64::from(POLL_MS);
        }
        let guard = InFlight(self);
        let result = want.fetch().await;
        guard.finish(&result);
        result.map(|t| t.access_token)
    }
}

/// One caller's want of the token: where to look, when, and which token
/// WeChat has just refused.
struct Want<'a, S, T> {
    store: &'a S,
    wechat: &'a T,
    cfg: &'a Config,
    now: i64,
    refused: Option<&'a WxAccessToken>,
}

impl<S: Store, T: Transport> Want<'_, S, T> {
    /// Is `token` the one WeChat refused? (Compared in constant time.)
    fn is_refused(&self, token: &WxAccessToken) -> bool {
        self.refused
            .is_some_and(|bad| ct_eq(token.secret().as_bytes(), bad.secret().as_bytes()))
    }

    /// Good for more than [`WX_TOKEN_EARLY`] seconds, and not refused.
    fn usable(&self, t: &CachedWxToken) -> bool {
        t.expires_at - self.now > WX_TOKEN_EARLY && !self.is_refused(&t.access_token)
    }

    /// KV's copy (not when a token was refused: KV's is likely that one), else
    /// `stable_token`, whose answer KV keeps for the other isolates.
    async fn fetch(&self) -> Result<CachedWxToken, WxTokenError> {
        if self.refused.is_none() {
            if let Some(c) = get_json::<S, CachedWxToken>(self.store, WX_TOKEN_KEY).await? {
                if self.usable(&c) {
                    return Ok(c);
                }
            }
        }
        let call = |force: bool| {
            call_with_retry(
                self.wechat,
                api::stable_token_request(self.cfg, force),
                api::parse_stable_token,
            )
        };
        let mut t = call(false).await?;
        if self.is_refused(&t.access_token) {
            // Normal mode handed back the token WeChat just refused.
            t = call(true).await?;
        }
        let cached = CachedWxToken {
            access_token: t.access_token,
            expires_at: self
                .now
                .saturating_add(i64::try_from(t.expires_in).unwrap_or(i64::MAX)),
        };
        put_json(
            self.store,
            WX_TOKEN_KEY,
            &cached,
            Some(t.expires_in.max(60)),
        )
        .await?;
        Ok(cached)
    }
}

/// Marks a fetch in flight; cleared however the fetch ends, even if the
/// fetching request is dropped midway (the waiters then fetch themselves).
struct InFlight<'a>(&'a WxTokenCache);

impl InFlight<'_> {
    fn finish(self, result: &Result<CachedWxToken, WxTokenError>) {
        if let Ok(t) = result {
            self.0 .0.borrow_mut().token = Some(t.clone());
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0 .0.borrow_mut().in_flight = false;
    }
}
