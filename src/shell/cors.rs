//! CORS in the shell (`CORS_ORIGINS`): a preflight is routed to the worker
//! itself, and every answer, the worker's own and the origin's, gets the
//! headers `http::cors` decides. With `CORS_ORIGINS` empty, both are
//! no-ops: the route is the router's and the answer is passed on as it is.

use worker::Env;

use super::bindings::config;
use super::wire;
use crate::error::ApiError;
use crate::http::cors::{answer, is_cors_header, is_preflight, preflight_headers};
use crate::http::response::OwnResponse;
use crate::http::router::{self, Route};

fn header(req: &web_sys::Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

/// The route: [`Route::Preflight`] for a preflight the worker answers,
/// else the router's.
pub(super) fn route<'a>(
    env: &Env,
    req: &web_sys::Request,
    method: &str,
    path: &'a str,
) -> Route<'a> {
    if preflight(env, req, method, path) {
        Route::Preflight
    } else {
        router::route(method, path)
    }
}

fn preflight(env: &Env, req: &web_sys::Request, method: &str, path: &str) -> bool {
    // Only an OPTIONS can be one: no header is read for any other request.
    if method != "OPTIONS" {
        return false;
    }
    let Ok(cfg) = config(env) else {
        return false;
    };
    is_preflight(
        &cfg.cors_origins,
        method,
        path,
        header(req, "Origin").as_deref(),
        header(req, "Access-Control-Request-Method").as_deref(),
    )
}

/// The answer to `req`: `handled`, an error made the worker's own answer
/// (with `allow`, the route's `Allow`), then with its CORS headers: the
/// origin's `Access-Control-*` removed, `Vary: Origin`, and for an origin
/// on the list the worker's own (a preflight's, or an answer's). The same
/// status, status text and body (a stream, never read here).
pub(super) fn finish(
    env: &Env,
    req: &web_sys::Request,
    method: &str,
    path: &str,
    handled: Result<web_sys::Response, ApiError>,
    allow: Option<&'static str>,
) -> worker::Result<web_sys::Response> {
    let response = match handled {
        Ok(response) => response,
        Err(e) => wire::own(&OwnResponse::of(Err(&e), allow))?,
    };
    let Ok(cfg) = config(env) else {
        return Ok(response);
    };
    let origin = header(req, "Origin");
    let vary = response.headers().get("Vary").ok().flatten();
    let Some(mut change) = answer(&cfg.cors_origins, origin.as_deref(), vary.as_deref()) else {
        return Ok(response);
    };
    if preflight(env, req, method, path) {
        change.set = preflight_headers(&cfg.cors_origins, origin.as_deref());
    }
    let headers = web_sys::Headers::new_with_headers(&response.headers())?;
    let names: Vec<String> = worker::Headers(headers.clone()).keys().collect();
    for name in names.iter().filter(|n| is_cors_header(n)) {
        headers.delete(name)?;
    }
    headers.set("Vary", &change.vary)?;
    for (name, value) in change.set.iter().filter(|(n, _)| *n != "Vary") {
        headers.set(name, value)?;
    }
    let init = web_sys::ResponseInit::new();
    init.set_status(response.status());
    init.set_status_text(&response.status_text());
    init.set_headers(&headers);
    Ok(web_sys::Response::new_with_opt_readable_stream_and_init(
        response.body().as_ref(),
        &init,
    )?)
}
