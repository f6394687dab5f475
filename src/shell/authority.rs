//! The session authority as a Durable Object (one per user, named by the
//! openid), and the client the worker reaches it with.
//!
//! Both sides only move bytes: the object hands each request's body to
//! `authority::server::Server::answer` and sends back the status and body
//! it decided; the client posts what `authority::AuthorityClient::call`
//! made and hands back what came (the timeout and what a status means are
//! decided there too).
//!
//! The object is exported by hand rather than with workers-rs's
//! `#[durable_object]`, so that its constructor receives the runtime's
//! state as the typed binding declared below: the storage is then called
//! directly (workers-rs's `Storage` passes values through
//! serde-wasm-bindgen and makes two `Date` objects for every alarm, and
//! the first `Date` an isolate makes costs milliseconds) without reaching
//! into workers-rs's internals for it.

use std::time::Duration;

use js_sys::{Object, Promise};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{console_error, Delay, Env, ObjectNamespace, Request};

use super::js::{read_text, settled, written, DelayTimer};
use super::kv::KvStore;
use super::{config, now_ms, now_secs, KV_BINDING};
use crate::authority::queue::Serial;
use crate::authority::server::{Pacing, Server, StateStore};
use crate::authority::{Answered, AuthorityClient, CallFailure};
use crate::config::Config;
use crate::ids::OpenId;
use crate::store::StoreError;

/// The Durable Object binding (`[[durable_objects.bindings]]`).
pub(super) const AUTHORITY_BINDING: &str = "AUTHORITY";
/// The one storage key an authority writes: its whole state, at once.
const STATE_KEY: &str = "state";

// Declared as workers-rs's `worker-sys` declares them; only what is used,
// and `setAlarm` with a number (ms since the epoch), so no `Date` is made.
// `DurableObjectState` is `pub` because the exported constructor takes it.
#[allow(unreachable_pub)]
#[wasm_bindgen]
extern "C" {
    /// `DurableObjectState`: what the runtime passes a Durable Object's
    /// constructor.
    #[wasm_bindgen(extends = Object)]
    pub type DurableObjectState;

    /// `state.storage`.
    #[wasm_bindgen(method, catch, getter)]
    fn storage(this: &DurableObjectState) -> Result<DurableObjectStorage, JsValue>;

    /// `DurableObjectStorage`: the object's own transactional storage.
    #[wasm_bindgen(extends = Object)]
    type DurableObjectStorage;

    /// `storage.get(key)`: the value, or `undefined`.
    #[wasm_bindgen(method, catch)]
    fn get(this: &DurableObjectStorage, key: &str) -> Result<Promise, JsValue>;

    /// `storage.put(key, value)`, with a string value.
    #[wasm_bindgen(method, catch)]
    fn put(this: &DurableObjectStorage, key: &str, value: &str) -> Result<Promise, JsValue>;

    /// `storage.setAlarm(scheduledTime)`, the time in ms since the epoch.
    #[wasm_bindgen(method, catch, js_name = setAlarm)]
    fn set_alarm(this: &DurableObjectStorage, scheduled_ms: f64) -> Result<Promise, JsValue>;
}

impl StateStore for DurableObjectStorage {
    async fn load(&self) -> Result<Option<String>, StoreError> {
        read_text(self.get(STATE_KEY), "authority storage read").await
    }

    async fn save(&self, state: &str, alarm_ms: Option<i64>) -> Result<(), StoreError> {
        written(self.put(STATE_KEY, state), "authority storage write").await?;
        if let Some(at) = alarm_ms {
            // ms since the epoch fit an f64 exactly.
            #[allow(clippy::cast_precision_loss)]
            if let Err(e) = settled(self.set_alarm(at as f64)).await {
                console_error!("authority alarm not set: {e:?}");
            }
        }
        Ok(())
    }
}

/// One user's session authority.
#[wasm_bindgen]
pub struct Authority {
    storage: Option<DurableObjectStorage>,
    env: Env,
    serial: Serial,
    pacing: Pacing,
}

impl Authority {
    fn server<'a>(
        &'a self,
        storage: &'a DurableObjectStorage,
        kv: &'a KvStore,
        cfg: &'a Config,
    ) -> Server<'a, DurableObjectStorage, KvStore, DelayTimer> {
        Server {
            state: storage,
            kv,
            timer: &DelayTimer,
            cfg,
            serial: &self.serial,
            pacing: &self.pacing,
        }
    }

    async fn answer(&self, req: &web_sys::Request) -> Answered {
        let (Ok(cfg), Some(kv)) = (config(&self.env), KvStore::bound(&self.env, KV_BINDING)) else {
            return Answered::error(500, "misconfigured");
        };
        let Some(storage) = &self.storage else {
            return Answered::error(503, "storage unavailable");
        };
        let body = match req.text() {
            Ok(text) => JsFuture::from(text).await.ok().and_then(|t| t.as_string()),
            Err(_) => None,
        };
        let Some(body) = body else {
            return Answered::error(400, "bad request");
        };
        self.server(storage, &kv, &cfg)
            .answer(&body, now_secs())
            .await
    }
}

#[wasm_bindgen(wasm_bindgen_futures = worker::wasm_bindgen_futures)]
impl Authority {
    /// The runtime makes one per user, with its state and the worker's
    /// bindings.
    #[wasm_bindgen(constructor)]
    pub fn new(state: &DurableObjectState, env: Env) -> Authority {
        let storage = state.storage().ok();
        if storage.is_none() {
            console_error!("authority: the object has no storage");
        }
        Authority {
            storage,
            env,
            serial: Serial::default(),
            pacing: Pacing::default(),
        }
    }

    /// A worker's request: the status and body the server decided.
    pub async fn fetch(&self, req: web_sys::Request) -> Result<web_sys::Response, JsValue> {
        let answered = self.answer(&req).await;
        let init = web_sys::ResponseInit::new();
        init.set_status(answered.status);
        web_sys::Response::new_with_opt_str_and_init(Some(&answered.body), &init)
    }

    /// The alarm: forgets expired sessions and retries the replica writes
    /// KV refused. Failures are logged, never thrown (the next request or
    /// alarm tries again).
    pub async fn alarm(&self) {
        let (Ok(cfg), Some(kv)) = (config(&self.env), KvStore::bound(&self.env, KV_BINDING)) else {
            console_error!("authority alarm: misconfigured");
            return;
        };
        let Some(storage) = &self.storage else {
            return;
        };
        if self
            .server(storage, &kv, &cfg)
            .alarm(now_secs())
            .await
            .is_err()
        {
            console_error!("authority alarm: storage or KV unavailable; retry scheduled");
        }
    }
}

/// Reaches users' authorities through the `AUTHORITY` namespace.
pub(super) struct DoAuthority(pub(super) ObjectNamespace);

impl DoAuthority {
    async fn exchange(&self, openid: &OpenId, body: &str) -> worker::Result<Answered> {
        let stub = self.0.id_from_name(openid.as_str())?.get_stub()?;
        let init = web_sys::RequestInit::new();
        init.set_method("POST");
        init.set_body(&JsValue::from_str(body));
        let req = web_sys::Request::new_with_str_and_init("https://authority/", &init)?;
        let mut resp = stub.fetch_with_request(Request::from(req)).await?;
        Ok(Answered {
            status: resp.status_code(),
            body: resp.text().await?,
        })
    }
}

impl AuthorityClient for DoAuthority {
    async fn post(&self, openid: &OpenId, body: String) -> Result<Answered, CallFailure> {
        self.exchange(openid, &body).await.map_err(|e| {
            console_error!("authority unreachable: {e}");
            CallFailure::Unreachable
        })
    }

    async fn sleep(&self, ms: u32) {
        Delay::from(Duration::from_millis(u64::from(ms))).await;
    }

    fn now_ms(&self) -> i64 {
        i64::try_from(now_ms()).unwrap_or(i64::MAX)
    }

    fn failed(&self, why: CallFailure) {
        console_error!("authority call failed: {why:?}");
    }
}
