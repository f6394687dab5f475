//! The test doubles and fixtures every test module shares: one in-memory
//! or scripted stand-in per port, and the configuration and keys of every
//! test. Tests of a module's own behaviour stay in that module; what is
//! here is what more than one module's tests build on.
//!
//! - [`store`]: Workers KV in memory, with a settable clock.
//! - [`flaky`]: Workers KV that fails chosen writes or keeps KV's write
//!   rate, and a virtual clock (the replica outbox's tests).
//! - [`limits`]: the rate limits, counting per key.
//! - [`wechat`]: a WeChat transport that answers from a script.
//! - [`authority`]: every user's session authority in memory.
//! - [`random`]: seeded, reproducible randomness.
//! - [`config`]: the configuration and secrets of every test.
//! - [`faults`]: wrappers that fail the Nth call, and an authority on them.
//!
//! Every I/O double gives way once per operation ([`YieldOnce`]), as a real
//! round trip would, so the futures of a join interleave and the
//! concurrency tests see the races they are about.

pub(crate) mod authority;
pub(crate) mod config;
pub(crate) mod faults;
pub(crate) mod flaky;
pub(crate) mod limits;
pub(crate) mod random;
pub(crate) mod store;
pub(crate) mod wechat;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

pub(crate) use authority::{KvClock, MemoryAuthority, MemoryState, YieldTimer};
pub(crate) use config::{test_config, APPID, APP_SECRET, TEST_IDENTITY_SEED, TEST_SECRET};
pub(crate) use limits::MemoryLimiter;
pub(crate) use random::SeededRandom;
pub(crate) use store::MemoryStore;
pub(crate) use wechat::{ok, Scripted, GOOD, GOOD_KEY};

/// The request headers issue 18 named: each once reached the origin as the
/// client sent it (the header tests and the boundary properties use them).
pub(crate) const ISSUE_18_NAMES: &[&str] = &[
    "X-Original-Host",
    "X-Host",
    "X-HTTP-Method-Override",
    "X-Method-Override",
    "Client-IP",
    "X-Cluster-Client-IP",
    "X-Original-Forwarded-For",
    "X-ProxyUser-Ip",
    "Fastly-Client-IP",
    "Proxy-Connection",
];

/// Pending once, then ready: lets the other futures of a join run.
pub(crate) struct YieldOnce(pub(crate) bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
