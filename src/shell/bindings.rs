//! What an isolate reads from `env` once: the configuration and the
//! bindings (KV, the authority and the rate limits). An isolate's `env`
//! does not change; a misconfiguration or a missing binding is reported on
//! every request.

use std::cell::RefCell;
use std::rc::Rc;

use worker::{console_error, Env};

use super::authority::{DoAuthority, AUTHORITY_BINDING};
use super::fetch::FetchTransport;
use super::js::DelayTimer;
use super::kv::KvStore;
use super::limits::WorkerLimits;
use super::webcrypto::WebCrypto;
use super::KV_BINDING;
use crate::config::{Config, ConfigError};
use crate::error::ApiError;
use crate::flows::Platform;
use crate::random::OsRandom;
use crate::time::{Timed, KV_TIMEOUT_MS};

const CONFIG_VARS: &[&str] = &[
    "WX_APPID",
    "WX_APPSECRET",
    "WX_API_BASE",
    "ORIGIN_URL",
    "TOKEN_SECRET",
    "TOKEN_SECRET_PREVIOUS",
    "REFRESH_SECRET",
    "REFRESH_SECRET_PREVIOUS",
    "IDENTITY_KEY",
    "IDENTITY_KEY_NEXT",
    "IDENTITY_KEY_PREVIOUS",
    "ACCESS_TOKEN_TTL",
    "REFRESH_TOKEN_TTL",
    "SESSION_CHECK",
    "PUBLIC_PATHS",
    "REQUIRE_PHONE",
    "PHONE_ALLOWLIST",
    "WX_TIMEOUT_MS",
    "CLIENT_IP_HEADER",
    "SESSION_MAX_AGE",
    "ADMIN_TOKEN",
    "ADMIN_TOKEN_PREVIOUS",
    "PHONE_DATA_MAX_AGE",
    "SERVICE_TOKEN",
    "SERVICE_TOKEN_PREVIOUS",
    "WX_RELAY_PATHS",
    "REPLICA_CACHE_SECS",
    "CORS_ORIGINS",
];

/// The runtime's ports, as the core's [`Platform`].
pub(super) struct Worker;

impl Platform for Worker {
    type Store = Timed<KvStore, DelayTimer>;
    type WeChat = FetchTransport;
    type Rng = OsRandom;
    type Authority = DoAuthority;
    type Limits = WorkerLimits;
    type Signer = WebCrypto;
}

/// The worker's bindings.
pub(super) struct Bindings {
    /// KV, every call timed out after [`KV_TIMEOUT_MS`].
    pub(super) kv: Timed<KvStore, DelayTimer>,
    pub(super) authority: DoAuthority,
    pub(super) limits: WorkerLimits,
}

/// A binding `wrangler.toml` promises and `env` lacks.
#[derive(Debug, Clone, Copy)]
pub(super) struct Unbound {
    pub(super) binding: &'static str,
    pub(super) problem: &'static str,
}

impl From<Unbound> for ApiError {
    fn from(u: Unbound) -> Self {
        ApiError::ServerMisconfigured {
            variable: u.binding,
            problem: u.problem,
        }
    }
}

thread_local! {
    /// Configuration, validated once per isolate.
    static CONFIG: RefCell<Option<Result<Rc<Config>, ConfigError>>> = const { RefCell::new(None) };
    static BINDINGS: RefCell<Option<Result<Rc<Bindings>, Unbound>>> = const { RefCell::new(None) };
}

/// The configuration, or what is wrong with it (logged by name, never by
/// value).
pub(crate) fn config(env: &Env) -> Result<Rc<Config>, ConfigError> {
    CONFIG.with(|cell| {
        cell.borrow_mut()
            .get_or_insert_with(|| {
                let loaded = Config::from_lookup(|name| {
                    debug_assert!(CONFIG_VARS.contains(&name));
                    // A string or nothing: workerd binds an unset
                    // `fromEnvironment` variable as `null`, on which
                    // `Env::var` throws inside the wasm.
                    js_sys::Reflect::get(env, &name.into()).ok()?.as_string()
                });
                if let Err(e) = &loaded {
                    // Names the variable, never its value.
                    console_error!("configuration error: {e}");
                }
                loaded.map(Rc::new)
            })
            .clone()
    })
}

/// The bindings, or the first one missing (logged by name).
pub(super) fn bindings(env: &Env) -> Result<Rc<Bindings>, Unbound> {
    BINDINGS.with(|cell| {
        cell.borrow_mut()
            .get_or_insert_with(|| {
                let found = look_up(env).map(Rc::new);
                if let Err(u) = &found {
                    console_error!("configuration error: {} {}", u.binding, u.problem);
                }
                found
            })
            .clone()
    })
}

fn look_up(env: &Env) -> Result<Bindings, Unbound> {
    let kv = KvStore::bound(env, KV_BINDING).ok_or(Unbound {
        binding: KV_BINDING,
        problem: "is not bound to a KV namespace",
    })?;
    let authority = env
        .durable_object(AUTHORITY_BINDING)
        .map(DoAuthority)
        .map_err(|_| Unbound {
            binding: AUTHORITY_BINDING,
            problem: "is not bound to the Authority Durable Object",
        })?;
    Ok(Bindings {
        kv: Timed {
            kv,
            timer: DelayTimer,
            ms: KV_TIMEOUT_MS,
        },
        authority,
        limits: WorkerLimits::from_env(env)?,
    })
}
