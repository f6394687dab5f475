//! The session authority as a Durable Object (one per user, named by the
//! openid), and the client the worker reaches it with.
//!
//! Both sides only move bytes: the object hands each request to
//! `authority::server::Server`, the client sends an `authority::Envelope`
//! and reads back an `authority::Answer`.

use std::time::Duration;

use futures_util::future::{select, Either};
use js_sys::Object;
use wasm_bindgen::{JsCast, JsValue};
use worker::{
    console_error, durable_object, wasm_bindgen, Delay, DurableObject, Env, ObjectNamespace,
    Request, Response, Result, State,
};

use super::js::{method, settle};
use super::kv::KvStore;
use super::{config, now_ms, KV_BINDING};
use crate::authority::server::{Serial, Server, StateStore, Timer};
use crate::authority::{Answer, AuthorityClient, Envelope, Op};
use crate::config::Config;
use crate::ids::OpenId;
use crate::store::StoreError;

/// The Durable Object binding (`[[durable_objects.bindings]]`).
pub(super) const AUTHORITY_BINDING: &str = "AUTHORITY";
/// The one storage key an authority writes: its whole state, at once.
const STATE_KEY: &str = "state";
/// The longest a worker waits for an authority before answering 503.
const AUTHORITY_TIMEOUT: Duration = Duration::from_secs(5);

fn now_secs() -> i64 {
    i64::try_from(now_ms() / 1000).unwrap_or(i64::MAX)
}

/// One user's session authority.
#[durable_object]
pub struct Authority {
    /// The object's storage (`state.storage`), called directly: workers-rs's
    /// `Storage` passes values through serde-wasm-bindgen and makes two
    /// `Date` objects for every alarm (the first `Date` an isolate makes
    /// costs milliseconds).
    storage: Option<Object>,
    env: Env,
    serial: Serial,
}

struct DoStorage<'a>(&'a Object);

impl DoStorage<'_> {
    /// `storage[method](...args)`, awaited.
    async fn call(&self, name: &str, args: &[JsValue]) -> std::result::Result<JsValue, JsValue> {
        let f = method(self.0, name)
            .ok_or_else(|| JsValue::from_str(&format!("storage has no {name}()")))?;
        settle(match args {
            [a] => f.call1(self.0, a),
            [a, b] => f.call2(self.0, a, b),
            _ => f.call0(self.0),
        })
        .await
    }
}

impl StateStore for DoStorage<'_> {
    async fn load(&self) -> std::result::Result<Option<String>, StoreError> {
        let value = self
            .call("get", &[JsValue::from_str(STATE_KEY)])
            .await
            .map_err(|e| {
                console_error!("authority storage read failed: {e:?}");
                StoreError
            })?;
        if value.is_undefined() || value.is_null() {
            return Ok(None);
        }
        value.as_string().map(Some).ok_or_else(|| {
            console_error!("authority storage holds something other than text");
            StoreError
        })
    }

    async fn save(
        &self,
        state: &str,
        alarm_at: Option<i64>,
    ) -> std::result::Result<(), StoreError> {
        self.call(
            "put",
            &[JsValue::from_str(STATE_KEY), JsValue::from_str(state)],
        )
        .await
        .map_err(|e| {
            console_error!("authority storage write failed: {e:?}");
            StoreError
        })?;
        if let Some(at) = alarm_at {
            // Best effort: a missed alarm only delays forgetting what has
            // already expired. One second late, never in the past; ms since
            // the epoch fit an f64 exactly.
            let now = i64::try_from(now_ms()).unwrap_or(i64::MAX);
            let when = at.saturating_mul(1000).max(now) + 1000;
            #[allow(clippy::cast_precision_loss)]
            let when = when as f64;
            if let Err(e) = self.call("setAlarm", &[JsValue::from_f64(when)]).await {
                console_error!("authority alarm not set: {e:?}");
            }
        }
        Ok(())
    }
}

struct DelayTimer;

impl Timer for DelayTimer {
    async fn pause(&self, ms: u32) {
        Delay::from(Duration::from_millis(u64::from(ms))).await;
    }
}

impl Authority {
    fn server<'a>(
        &'a self,
        storage: &'a DoStorage<'a>,
        kv: &'a KvStore,
        cfg: &'a Config,
    ) -> Server<'a, DoStorage<'a>, KvStore, DelayTimer> {
        Server {
            state: storage,
            kv,
            timer: &DelayTimer,
            cfg,
            serial: &self.serial,
        }
    }

    fn kv(&self) -> std::result::Result<KvStore, StoreError> {
        KvStore::bound(&self.env, KV_BINDING).ok_or(StoreError)
    }
}

impl DurableObject for Authority {
    fn new(state: State, env: Env) -> Self {
        let storage = state
            ._inner()
            .storage()
            .ok()
            .and_then(|s| JsValue::from(s).dyn_into::<Object>().ok());
        if storage.is_none() {
            console_error!("authority: the object has no storage");
        }
        Authority {
            storage,
            env,
            serial: Serial::default(),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let Ok(cfg) = config(&self.env) else {
            return Response::error("misconfigured", 500);
        };
        let Ok(envelope) = req.json::<Envelope>().await else {
            return Response::error("bad request", 400);
        };
        let Ok(kv) = self.kv() else {
            return Response::error("no KV", 500);
        };
        let Some(storage) = &self.storage else {
            return Response::error("storage unavailable", 503);
        };
        let storage = DoStorage(storage);
        match self
            .server(&storage, &kv, &cfg)
            .handle(&envelope.openid, envelope.op, now_secs())
            .await
        {
            Ok(answer) => Response::from_json(&answer),
            Err(StoreError) => Response::error("storage unavailable", 503),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        let (Ok(cfg), Ok(kv)) = (config(&self.env), self.kv()) else {
            return Response::error("misconfigured", 500);
        };
        let Some(storage) = &self.storage else {
            return Response::error("storage unavailable", 503);
        };
        let storage = DoStorage(storage);
        match self.server(&storage, &kv, &cfg).alarm(now_secs()).await {
            Ok(()) => Response::empty(),
            Err(StoreError) => Response::error("storage unavailable", 503),
        }
    }
}

/// Reaches users' authorities through the `AUTHORITY` namespace.
pub(super) struct DoAuthority(pub(super) ObjectNamespace);

impl AuthorityClient for DoAuthority {
    async fn call(&self, openid: &OpenId, op: Op) -> std::result::Result<Answer, StoreError> {
        let body = serde_json::to_string(&Envelope {
            openid: openid.clone(),
            op,
        })
        .map_err(|_| StoreError)?;
        let stub = self
            .0
            .id_from_name(openid.as_str())
            .and_then(|id| id.get_stub())
            .map_err(|e| {
                console_error!("authority stub failed: {e}");
                StoreError
            })?;
        let init = web_sys::RequestInit::new();
        init.set_method("POST");
        init.set_body(&JsValue::from_str(&body));
        let req = web_sys::Request::new_with_str_and_init("https://authority/", &init)
            .map_err(|_| StoreError)?;
        let req = Request::from(req);
        let work = async move {
            let mut resp = stub.fetch_with_request(req).await?;
            if resp.status_code() != 200 {
                return Err(worker::Error::RustError(format!(
                    "authority answered {}",
                    resp.status_code()
                )));
            }
            resp.json::<Answer>().await
        };
        futures_util::pin_mut!(work);
        match select(work, Delay::from(AUTHORITY_TIMEOUT)).await {
            Either::Left((Ok(answer), _)) => Ok(answer),
            Either::Left((Err(e), _)) => {
                console_error!("authority call failed: {e}");
                Err(StoreError)
            }
            Either::Right(((), _)) => {
                console_error!("authority call timed out");
                Err(StoreError)
            }
        }
    }
}
