//! The worker shell: wires Workers KV, `fetch`, the clock and the CSPRNG to
//! the pure core, and moves bytes. No decisions are made here that the
//! core could make.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures_util::StreamExt;
use wasm_bindgen::JsValue;
use worker::{console_error, console_log, event, Context, Env, Result};

use crate::config::{Config, ConfigError};
use crate::error::ApiError;
use crate::flows::{Edge, IsolateState};
use crate::http::body::{login_code, parse_object, phone_request, refresh_token, MAX_BODY_BYTES};
use crate::http::headers::{rewrite_in_place, Client, HeaderList};
use crate::http::path::{origin_target, path_of};
use crate::http::router::{route, Route};
use crate::ids::OpenId;
use crate::logs::{self, LogLine};
use crate::random::OsRandom;
use crate::token::identity::jwks;
use crate::token::refresh::ParsedRefresh;

mod authority;
mod fetch;
mod js;
mod kv;
mod limits;
mod webcrypto;

use authority::{DoAuthority, AUTHORITY_BINDING};
use fetch::FetchTransport;
use kv::KvStore;
use limits::WorkerLimits;
use webcrypto::WebCrypto;

pub(crate) const KV_BINDING: &str = "SESSIONS";
const CONFIG_VARS: &[&str] = &[
    "WX_APPID",
    "WX_APPSECRET",
    "WX_API_BASE",
    "ORIGIN_URL",
    "TOKEN_SECRET",
    "IDENTITY_KEY",
    "ACCESS_TOKEN_TTL",
    "REFRESH_TOKEN_TTL",
    "SESSION_CHECK",
    "PUBLIC_PATHS",
    "REQUIRE_PHONE",
    "PHONE_ALLOWLIST",
    "WX_TIMEOUT_MS",
    "SESSION_MAX_AGE",
    "ADMIN_TOKEN",
];

thread_local! {
    /// What concurrent requests of this isolate share (see `IsolateState`).
    static ISOLATE: Rc<IsolateState> = Rc::new(IsolateState::default());
    /// Ed25519 for `X-WX-Identity`, with the key it imported.
    static ED25519: Rc<WebCrypto> = Rc::new(WebCrypto::default());
    /// The bindings, looked up once per isolate.
    static BINDINGS: RefCell<Option<std::result::Result<Rc<Bindings>, ApiError>>> =
        const { RefCell::new(None) };
    /// Configuration, validated once per isolate.
    static CONFIG: RefCell<Option<std::result::Result<Rc<Config>, ConfigError>>> =
        const { RefCell::new(None) };
}

pub(crate) fn config(env: &Env) -> std::result::Result<Rc<Config>, ConfigError> {
    CONFIG.with(|cell| {
        cell.borrow_mut()
            .get_or_insert_with(|| {
                let loaded = Config::from_lookup(|name| {
                    debug_assert!(CONFIG_VARS.contains(&name));
                    env.var(name).ok().map(|v| v.to_string())
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

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

// The handler takes and returns the runtime's own `Request` and `Response`:
// workers-rs's wrappers would copy the method, URL and `cf` of every
// incoming request into wasm, and rebuild the origin's response as a new
// `Response` on the way out. Their code is gone from the wasm too.
#[event(fetch)]
async fn fetch(req: web_sys::Request, env: Env, _ctx: Context) -> Result<web_sys::Response> {
    let started = now_ms();
    let url = req.url();
    let method = req.method();
    let Some((path, proto)) = path_of(&url) else {
        console_error!("internal error: the request URL is not absolute");
        return Ok(error_response(&ApiError::Internal)?);
    };
    let r = route(&method, path);
    let event = event_name(r);
    let user = RefCell::new(None);
    let incoming = Incoming {
        req: &req,
        method: &method,
        url: &url,
        path,
        proto,
    };
    let result = handle(incoming, r, &env, &user).await;
    if logs::worth_logging(event, result.is_ok()) {
        if let Ok(cfg) = config(&env) {
            let request_id = req
                .headers()
                .get("CF-Ray")
                .ok()
                .flatten()
                .unwrap_or_else(random_id);
            let line = LogLine::new(
                event,
                result.as_ref().map(|_| ()).map_err(logs::Failure::from),
                user.borrow().as_ref(),
                &cfg.log_salt,
                now_ms().saturating_sub(started),
                &request_id,
            );
            console_log!("{}", line.to_json());
        }
    }
    match result {
        Ok(resp) => Ok(resp),
        Err(e) => Ok(error_response(&e)?),
    }
}

/// The request being handled, with what was already read from it.
#[derive(Clone, Copy)]
struct Incoming<'a> {
    req: &'a web_sys::Request,
    /// As the runtime hands it over: the standard methods upper-cased, any
    /// other (WebDAV's `PROPFIND`, say) exactly as sent.
    method: &'a str,
    url: &'a str,
    /// The path exactly as the client sent it: what is routed, classified
    /// as public or not, and forwarded are one and the same string.
    path: &'a str,
    proto: &'static str,
}

impl Incoming<'_> {
    fn header(&self, name: &str) -> Option<String> {
        self.req.headers().get(name).ok().flatten()
    }
}

/// The clock, in milliseconds since the epoch (`Date.now()`, without the
/// `Date` object workers-rs's `Date::now` makes).
pub(crate) fn now_ms() -> u64 {
    // A time since 1970 in ms is a non-negative integer well within u64.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let ms = js_sys::Date::now().max(0.0) as u64;
    ms
}

/// The `event` of a request's log line.
fn event_name(r: Route<'_>) -> &'static str {
    match r {
        Route::Login => "login",
        Route::Refresh => "refresh",
        Route::Logout => "logout",
        Route::Session => "session",
        Route::Phone => "phone",
        Route::Jwks => "jwks",
        Route::AdminUser(_) => "admin_user",
        Route::AdminRevoke(_) => "revoke",
        Route::Proxy => "proxy",
        Route::NotFound => "not_found",
        Route::MethodNotAllowed(_) => "method_not_allowed",
    }
}

/// A request id when Cloudflare gave none (local development).
fn random_id() -> String {
    crate::random::bytes::<8>(&OsRandom)
        .map(|b| crate::random::hex(&b))
        .unwrap_or_default()
}

fn error_response(e: &ApiError) -> std::result::Result<web_sys::Response, JsValue> {
    let (status, body) = e.to_response();
    let extra = e.extra_headers();
    let extra: Vec<(&str, &str)> = extra.iter().map(|(n, v)| (*n, v.as_str())).collect();
    respond(status, Some(&body), &extra)
}

/// A response of the worker's own: JSON (or nothing), never cached unless
/// `extra` says otherwise.
fn respond(
    status: u16,
    json: Option<&str>,
    extra: &[(&str, &str)],
) -> std::result::Result<web_sys::Response, JsValue> {
    let headers = web_sys::Headers::new()?;
    if json.is_some() {
        headers.set("Content-Type", "application/json; charset=utf-8")?;
    }
    headers.set("Cache-Control", "no-store")?;
    for (name, value) in extra {
        headers.set(name, value)?;
    }
    let init = web_sys::ResponseInit::new();
    init.set_status(status);
    init.set_headers(&headers);
    web_sys::Response::new_with_opt_str_and_init(json, &init)
}

/// Handles one request. `user` learns who it was about, for the log line.
async fn handle(
    incoming: Incoming<'_>,
    r: Route<'_>,
    env: &Env,
    user: &RefCell<Option<OpenId>>,
) -> std::result::Result<web_sys::Response, ApiError> {
    // Configuration first: a misconfigured worker answers every request
    // with 500, routing errors included.
    let cfg = config(env)?;
    let bound = bindings(env)?;
    if let Route::MethodNotAllowed(allow) = r {
        let (status, body) = ApiError::MethodNotAllowed.to_response();
        let mut extra = ApiError::MethodNotAllowed.extra_headers();
        extra.push(("Allow", allow.to_owned()));
        let extra: Vec<(&str, &str)> = extra.iter().map(|(n, v)| (*n, v.as_str())).collect();
        return respond(status, Some(&body), &extra).map_err(internal);
    }
    if r == Route::NotFound {
        return Err(ApiError::NotFound);
    }
    let transport = FetchTransport {
        timeout: Duration::from_millis(cfg.wechat_timeout_ms),
    };
    let isolate = ISOLATE.with(Rc::clone);
    let ed25519 = ED25519.with(Rc::clone);
    let edge = Edge {
        cfg: &cfg,
        isolate: &isolate,
        store: &bound.kv,
        wechat: &transport,
        rng: &OsRandom,
        authority: &bound.authority,
        limits: &bound.limits,
        ed25519: &*ed25519,
        now: i64::try_from(now_ms() / 1000).unwrap_or(i64::MAX),
    };
    let authorization = incoming.header("Authorization");
    let client_ip = incoming.header("CF-Connecting-IP");

    match r {
        Route::Proxy => {
            let client = Client {
                ip: client_ip.as_deref(),
                proto: incoming.proto,
            };
            proxy(incoming, &edge, client, authorization.as_deref()).await
        }
        Route::Jwks => {
            let body = jwks(cfg.identity_key.as_ref(), &*ed25519).await?;
            respond(
                200,
                Some(&body),
                &[("Cache-Control", "public, max-age=300")],
            )
            .map_err(internal)
        }
        Route::Login => {
            let body = read_body(incoming, true).await?;
            let resp = edge.login(login_code(&body)?, client_ip.as_deref()).await?;
            *user.borrow_mut() = Some(OpenId::new(resp.openid.clone()));
            to_json(&resp)
        }
        Route::Refresh => {
            let body = read_body(incoming, false).await?;
            let token = refresh_token(&body)?;
            *user.borrow_mut() = ParsedRefresh::parse(token).map(|p| p.openid);
            to_json(&edge.refresh(token, client_ip.as_deref()).await?)
        }
        Route::Logout => {
            *user.borrow_mut() = edge.subject(authorization.as_deref());
            edge.logout(authorization.as_deref()).await?;
            respond(204, None, &[]).map_err(internal)
        }
        Route::Session => {
            *user.borrow_mut() = edge.subject(authorization.as_deref());
            to_json(&edge.session_info(authorization.as_deref()).await?)
        }
        Route::Phone => {
            *user.borrow_mut() = edge.subject(authorization.as_deref());
            let body = read_body(incoming, true).await?;
            to_json(
                &edge
                    .bind_phone(authorization.as_deref(), phone_request(&body)?)
                    .await?,
            )
        }
        Route::AdminUser(openid) => {
            *user.borrow_mut() = Some(OpenId::new(openid));
            to_json(&edge.admin_user(authorization.as_deref(), openid).await?)
        }
        Route::AdminRevoke(openid) => {
            *user.borrow_mut() = Some(OpenId::new(openid));
            to_json(&edge.admin_revoke(authorization.as_deref(), openid).await?)
        }
        Route::NotFound | Route::MethodNotAllowed(_) => Err(ApiError::NotFound),
    }
}

/// The worker's bindings: KV, the authority and the rate limits.
struct Bindings {
    kv: KvStore,
    authority: DoAuthority,
    limits: WorkerLimits,
}

/// The bindings, looked up once per isolate like the configuration (an
/// isolate's `env` does not change; a missing binding is reported on
/// every request, as a misconfiguration is).
fn bindings(env: &Env) -> std::result::Result<Rc<Bindings>, ApiError> {
    BINDINGS.with(|cell| {
        cell.borrow_mut()
            .get_or_insert_with(|| look_up_bindings(env).map(Rc::new))
            .clone()
    })
}

/// KV, the authority and the rate limits, or the name of what is missing.
fn look_up_bindings(env: &Env) -> std::result::Result<Bindings, ApiError> {
    let kv = KvStore::bound(env, KV_BINDING).ok_or_else(|| {
        console_error!("configuration error: {KV_BINDING} is not bound to a KV namespace");
        ApiError::ServerMisconfigured {
            variable: KV_BINDING,
            problem: "is not bound to a KV namespace",
        }
    })?;
    let authority = DoAuthority(env.durable_object(AUTHORITY_BINDING).map_err(|_| {
        console_error!(
            "configuration error: {AUTHORITY_BINDING} is not bound to the Authority Durable Object"
        );
        ApiError::ServerMisconfigured {
            variable: AUTHORITY_BINDING,
            problem: "is not bound to the Authority Durable Object",
        }
    })?);
    Ok(Bindings {
        kv,
        authority,
        limits: WorkerLimits::from_env(env)?,
    })
}

/// The runtime's `Headers` as the core's [`HeaderList`].
struct RuntimeHeaders(web_sys::Headers);

impl HeaderList for RuntimeHeaders {
    type Error = JsValue;
    fn names(&self) -> Vec<String> {
        worker::Headers(self.0.clone()).keys().collect()
    }
    fn delete(&mut self, name: &str) -> std::result::Result<(), JsValue> {
        self.0.delete(name)
    }
    fn set(&mut self, name: &str, value: &str) -> std::result::Result<(), JsValue> {
        self.0.set(name, value)
    }
}

// By value: it is passed to `map_err`.
#[allow(clippy::needless_pass_by_value)]
fn internal(e: JsValue) -> ApiError {
    console_error!("internal error: {}", worker::Error::from(e));
    ApiError::Internal
}

fn to_json<T: serde::Serialize>(value: &T) -> std::result::Result<web_sys::Response, ApiError> {
    let body = serde_json::to_string(value).map_err(|_| ApiError::Internal)?;
    respond(200, Some(&body), &[]).map_err(internal)
}

/// Reads a body of at most 16 KiB (413 beyond, without reading it all).
async fn read_body(
    incoming: Incoming<'_>,
    allow_form: bool,
) -> std::result::Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    let declared = incoming
        .header("Content-Length")
        .and_then(|v| v.trim().parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(ApiError::PayloadTooLarge);
    }
    let content_type = incoming.header("Content-Type");
    let mut body = Vec::new();
    if let Some(stream) = incoming.req.body() {
        let mut stream = worker::ByteStream::from(stream);
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|_| ApiError::InvalidRequest("the body could not be read"))?;
            body.extend_from_slice(&chunk);
            if body.len() > MAX_BODY_BYTES {
                return Err(ApiError::PayloadTooLarge);
            }
        }
    }
    parse_object(content_type.as_deref(), &body, allow_form)
}

/// Forwards the request to the origin with trusted identity headers and
/// hands the origin's answer back as it is: the runtime's own `Response`,
/// body streamed, nothing rebuilt.
async fn proxy(
    incoming: Incoming<'_>,
    edge: &Edge<'_, KvStore, FetchTransport, OsRandom, DoAuthority, WorkerLimits>,
    client: Client<'_>,
    authorization: Option<&str>,
) -> std::result::Result<web_sys::Response, ApiError> {
    let passed = edge.proxy_pass(incoming.path, authorization).await?;
    let (identity, assertion) = match passed {
        Some(p) => (Some(p.identity), p.assertion),
        None => (None, None),
    };
    // The incoming headers, copied on the JS side in one call, fixed up in
    // place: only the names cross into wasm, never the values.
    let mut headers = RuntimeHeaders(
        web_sys::Headers::new_with_headers(&incoming.req.headers()).map_err(internal)?,
    );
    rewrite_in_place(
        &mut headers,
        client,
        identity.as_ref(),
        assertion.as_deref(),
    )
    .map_err(internal)?;
    let target = origin_target(&edge.cfg.origin_url, incoming.url).ok_or_else(|| {
        console_error!("internal error: the request URL is not absolute");
        ApiError::Internal
    })?;
    let method = incoming.method;
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    init.set_headers(&headers.0);
    init.set_redirect(web_sys::RequestRedirect::Manual);
    // The origin's answers are personal: never into a shared cache.
    init.set_cache(web_sys::RequestCache::NoStore);
    if !matches!(method, "GET" | "HEAD") {
        if let Some(body) = incoming.req.body() {
            init.set_body(&body);
        }
    }
    let outgoing = web_sys::Request::new_with_str_and_init(&target, &init).map_err(internal)?;
    match fetch::send(&outgoing).await {
        Ok(resp) => Ok(resp),
        Err(e) => {
            console_error!("origin fetch failed: {}", worker::Error::from(e));
            Err(ApiError::OriginUnavailable)
        }
    }
}
