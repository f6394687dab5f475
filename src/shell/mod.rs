//! The worker shell: wires Workers KV, `fetch`, the clock and the CSPRNG to
//! the pure core, and moves bytes. No decisions are made here that the
//! core could make.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures_util::StreamExt;
use worker::{
    console_error, console_log, event, CacheMode, Context, Date, Env, Fetch, Headers, Method,
    Request, RequestInit, RequestRedirect, Response, Result,
};

use crate::config::{Config, ConfigError};
use crate::error::ApiError;
use crate::flows::{Edge, IsolateState, Readied};
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

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let started = Date::now().as_millis();
    let method = req.method().to_string();
    let url = req.inner().url();
    let event = path_of(&url).map_or("bad_request", |(p, _)| event_name(route(&method, p)));
    let request_id = req
        .headers()
        .get("CF-Ray")
        .ok()
        .flatten()
        .unwrap_or_else(random_id);
    let user = RefCell::new(None);
    let result = handle(req, &env, &user).await;
    if logs::worth_logging(event, result.is_ok()) {
        if let Ok(cfg) = config(&env) {
            let line = LogLine::new(
                event,
                result.as_ref().map(|_| ()),
                user.borrow().as_ref(),
                &cfg.log_salt,
                Date::now().as_millis().saturating_sub(started),
                &request_id,
            );
            console_log!("{}", line.to_json());
        }
    }
    match result {
        Ok(resp) => Ok(resp),
        Err(e) => error_response(&e),
    }
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

fn error_response(e: &ApiError) -> Result<Response> {
    let (status, body) = e.to_response();
    let resp = json_response(status, &body)?;
    for (name, value) in e.extra_headers() {
        resp.headers().set(name, &value)?;
    }
    Ok(resp)
}

fn json_response(status: u16, body: &str) -> Result<Response> {
    let headers = Headers::new();
    headers.set("Content-Type", "application/json; charset=utf-8")?;
    headers.set("Cache-Control", "no-store")?;
    Ok(Response::ok(body)?
        .with_status(status)
        .with_headers(headers))
}

/// Handles one request. `user` learns who it was about, for the log line.
async fn handle(
    mut req: Request,
    env: &Env,
    user: &RefCell<Option<OpenId>>,
) -> std::result::Result<Response, ApiError> {
    let method = req.method().to_string();
    // The path exactly as the client sent it: what is routed, classified
    // as public or not, and forwarded are one and the same string.
    let url = req.inner().url();
    let Some((path, proto)) = path_of(&url) else {
        console_error!("internal error: the request URL is not absolute");
        return Err(ApiError::Internal);
    };
    // Configuration first: a misconfigured worker answers every request
    // with 500, routing errors included.
    let cfg = config(env)?;
    let (kv, authority, limits) = bindings(env)?;
    let r = route(&method, path);
    if let Route::MethodNotAllowed(allow) = r {
        let resp = error_response(&ApiError::MethodNotAllowed).map_err(internal)?;
        resp.headers().set("Allow", allow).map_err(internal)?;
        return Ok(resp);
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
        store: &kv,
        wechat: &transport,
        rng: &OsRandom,
        authority: &authority,
        limits: &limits,
        ed25519: &*ed25519,
        now: i64::try_from(Date::now().as_millis() / 1000).unwrap_or(i64::MAX),
        readied: Readied::default(),
    };
    let authorization = req.headers().get("Authorization").ok().flatten();
    let client_ip = req.headers().get("CF-Connecting-IP").ok().flatten();

    match r {
        Route::Jwks => {
            let body = jwks(cfg.identity_key.as_ref(), &*ed25519).await?;
            let resp = json_response(200, &body).map_err(internal)?;
            resp.headers()
                .set("Cache-Control", "public, max-age=300")
                .map_err(internal)?;
            Ok(resp)
        }
        Route::Login => {
            let body = read_body(&mut req, true).await?;
            let resp = edge.login(login_code(&body)?, client_ip.as_deref()).await?;
            *user.borrow_mut() = Some(OpenId::new(resp.openid.clone()));
            to_json(&resp)
        }
        Route::Refresh => {
            let body = read_body(&mut req, false).await?;
            let token = refresh_token(&body)?;
            *user.borrow_mut() = ParsedRefresh::parse(token).map(|p| p.openid);
            to_json(&edge.refresh(token, client_ip.as_deref()).await?)
        }
        Route::Logout => {
            *user.borrow_mut() = edge.subject(authorization.as_deref());
            edge.logout(authorization.as_deref()).await?;
            Response::empty()
                .map(|r| r.with_status(204))
                .map_err(internal)
        }
        Route::Session => {
            *user.borrow_mut() = edge.subject(authorization.as_deref());
            to_json(&edge.session_info(authorization.as_deref()).await?)
        }
        Route::Phone => {
            *user.borrow_mut() = edge.subject(authorization.as_deref());
            let body = read_body(&mut req, true).await?;
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
        Route::Proxy => {
            let client = Client {
                ip: client_ip.as_deref(),
                proto,
            };
            proxy(req, &edge, path, client, authorization.as_deref()).await
        }
        Route::NotFound | Route::MethodNotAllowed(_) => Err(ApiError::NotFound),
    }
}

/// KV, the authority and the rate limits, or the name of what is missing.
fn bindings(env: &Env) -> std::result::Result<(KvStore, DoAuthority, WorkerLimits), ApiError> {
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
    Ok((kv, authority, WorkerLimits::from_env(env)?))
}

/// The runtime's `Headers` as the core's [`HeaderList`].
struct RuntimeHeaders(Headers);

impl HeaderList for RuntimeHeaders {
    type Error = worker::Error;
    fn names(&self) -> Vec<String> {
        self.0.keys().collect()
    }
    fn delete(&mut self, name: &str) -> Result<()> {
        self.0.delete(name)
    }
    fn set(&mut self, name: &str, value: &str) -> Result<()> {
        self.0.set(name, value)
    }
}

// By value: it is passed to `map_err`.
#[allow(clippy::needless_pass_by_value)]
fn internal(e: worker::Error) -> ApiError {
    console_error!("internal error: {e}");
    ApiError::Internal
}

fn to_json<T: serde::Serialize>(value: &T) -> std::result::Result<Response, ApiError> {
    let body = serde_json::to_string(value).map_err(|_| ApiError::Internal)?;
    json_response(200, &body).map_err(internal)
}

/// Reads a body of at most 16 KiB (413 beyond, without reading it all).
async fn read_body(
    req: &mut Request,
    allow_form: bool,
) -> std::result::Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    let declared = req
        .headers()
        .get("Content-Length")
        .ok()
        .flatten()
        .and_then(|v| v.trim().parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(ApiError::PayloadTooLarge);
    }
    let content_type = req.headers().get("Content-Type").ok().flatten();
    let mut body = Vec::new();
    if let Ok(mut stream) = req.stream() {
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
/// streams the answer back unchanged.
async fn proxy(
    req: Request,
    edge: &Edge<'_, KvStore, FetchTransport, OsRandom, DoAuthority, WorkerLimits>,
    path: &str,
    client: Client<'_>,
    authorization: Option<&str>,
) -> std::result::Result<Response, ApiError> {
    let identity = edge.proxy_identity(path, authorization).await?;
    let assertion = match &identity {
        Some(id) => edge.identity_assertion(id)?,
        None => None,
    };
    // The incoming headers, copied on the JS side in one call, fixed up in
    // place: only the names cross into wasm, never the values.
    let mut headers = RuntimeHeaders(req.headers().clone());
    rewrite_in_place(
        &mut headers,
        client,
        identity.as_ref(),
        assertion.as_deref(),
    )
    .map_err(internal)?;
    let headers = headers.0;
    let target = origin_target(&edge.cfg.origin_url, &req.inner().url()).ok_or_else(|| {
        console_error!("internal error: the request URL is not absolute");
        ApiError::Internal
    })?;
    let method = req.method();
    let mut init = RequestInit::new();
    init.with_method(method.clone())
        .with_headers(headers)
        .with_redirect(RequestRedirect::Manual)
        // The origin's answers are personal: never into a shared cache.
        .with_cache(CacheMode::NoStore);
    if !matches!(method, Method::Get | Method::Head) {
        init.with_body(req.inner().body().map(Into::into));
    }
    let outgoing = Request::new_with_init(&target, &init).map_err(internal)?;
    match Fetch::Request(outgoing).send().await {
        Ok(resp) => Ok(resp),
        Err(e) => {
            console_error!("origin fetch failed: {e}");
            Err(ApiError::OriginUnavailable)
        }
    }
}
