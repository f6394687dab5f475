//! The worker shell: wires Workers KV, `fetch`, the clock and the CSPRNG to
//! the pure core, and moves bytes. No decisions are made here that the
//! core could make.

use std::rc::Rc;
use std::time::Duration;

use worker::{console_error, console_log, event, Context, Env, Result};

use crate::error::ApiError;
use crate::flows::serve::{Reply, Request};
use crate::flows::service::body_to_read;
use crate::flows::{Edge, IsolateState};
use crate::http::headers::Client;
use crate::http::path::path_of;
use crate::http::response::OwnResponse;
use crate::http::router::{route, Route};
use crate::ids::OpenId;
use crate::logs::{self, LogLine};
use crate::random::OsRandom;

mod authority;
mod bindings;
mod fetch;
mod js;
mod kv;
mod limits;
mod webcrypto;
mod wire;

pub(crate) use bindings::config;
pub(crate) use js::{now_ms, now_secs};

use bindings::Worker;
use fetch::FetchTransport;
use webcrypto::WebCrypto;

pub(crate) const KV_BINDING: &str = "SESSIONS";

thread_local! {
    /// What concurrent requests of this isolate share (see `IsolateState`).
    static ISOLATE: Rc<IsolateState> = Rc::new(IsolateState::default());
    /// Ed25519 for `X-WX-Identity`, with the key it imported.
    static ED25519: Rc<WebCrypto> = Rc::new(WebCrypto::default());
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
        return Ok(wire::own(&OwnResponse::of(Err(&ApiError::Internal), None))?);
    };
    let r = route(&method, path);
    let incoming = Incoming {
        req: &req,
        method: &method,
        url: &url,
        path,
        proto,
    };
    let handled = handle(incoming, r, &env).await;
    let event = r.event();
    if logs::worth_logging(event, handled.response.is_ok()) {
        if let Ok(cfg) = config(&env) {
            let request_id = header(&req, "CF-Ray").unwrap_or_else(random_id);
            let line = LogLine::new(
                event,
                handled
                    .response
                    .as_ref()
                    .map(|_| ())
                    .map_err(logs::Failure::from),
                handled.user.as_ref(),
                &cfg.log_salt,
                now_ms().saturating_sub(started),
                &request_id,
            );
            console_log!("{}", line.to_json());
        }
    }
    match handled.response {
        Ok(resp) => Ok(resp),
        Err(e) => Ok(wire::own(&OwnResponse::of(Err(&e), r.allow()))?),
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
    /// The path exactly as the client sent it.
    path: &'a str,
    proto: &'static str,
}

/// What [`handle`] decided: the response, and whom the log line names.
struct Handled {
    response: std::result::Result<web_sys::Response, ApiError>,
    user: Option<OpenId>,
}

fn header(req: &web_sys::Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

/// A request id when Cloudflare gave none (local development).
fn random_id() -> String {
    crate::random::bytes::<8>(&OsRandom)
        .map(|b| crate::random::hex(&b))
        .unwrap_or_default()
}

/// Handles one request, routed as `r`.
async fn handle(incoming: Incoming<'_>, r: Route<'_>, env: &Env) -> Handled {
    let req = incoming.req;
    // Configuration first: a misconfigured worker answers every request
    // with 500, routing errors included.
    let ready = config(env)
        .map_err(ApiError::from)
        .and_then(|cfg| Ok((cfg, bindings::bindings(env)?)));
    let (cfg, bound) = match ready {
        Ok(ready) => ready,
        Err(e) => {
            return Handled {
                response: Err(e),
                user: None,
            }
        }
    };
    let (authorization, client_ip) = (
        header(req, "Authorization"),
        header(req, &cfg.client_ip_header),
    );
    let body = match body_to_read(&cfg, r, authorization.as_deref()) {
        Some(kind) => wire::read_body(req, kind.limit()).await,
        None => Ok(Vec::new()),
    };
    let content_type = header(req, "Content-Type");
    let isolate = ISOLATE.with(Rc::clone);
    let ed25519 = ED25519.with(Rc::clone);
    let edge: Edge<'_, Worker> = Edge {
        cfg: &cfg,
        isolate: &isolate,
        store: &bound.kv,
        wechat: &FetchTransport {
            timeout: Duration::from_millis(cfg.wechat_timeout_ms),
        },
        rng: &OsRandom,
        authority: &bound.authority,
        limits: &bound.limits,
        ed25519: &ed25519,
        now: now_secs(),
    };
    let served = edge
        .serve(Request {
            route: r,
            method: incoming.method,
            url: incoming.url,
            path: incoming.path,
            authorization: authorization.as_deref(),
            client_ip: client_ip.as_deref(),
            content_type: content_type.as_deref(),
            body: body.as_deref().map_err(|e| *e),
        })
        .await;
    let response = match served.reply {
        Ok(Reply::Own(payload)) => {
            wire::own(&OwnResponse::of(Ok(payload), None)).map_err(wire::internal)
        }
        Ok(Reply::Forward(forward)) => {
            let client = Client {
                ip: client_ip.as_deref(),
                proto: incoming.proto,
            };
            wire::to_origin(req, incoming.method, client, forward).await
        }
        Err(e) => Err(e),
    };
    Handled {
        response,
        user: served.user,
    }
}
