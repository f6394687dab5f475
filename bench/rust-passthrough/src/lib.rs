//! Forwards every request to `ORIGIN_URL` (same path and query, method,
//! headers and body, redirects not followed) and returns the origin's
//! answer as it comes: what `bench/workers/passthrough.mjs` does, in Rust.

use wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{event, Context, Env, Result};

#[event(fetch)]
async fn fetch(req: web_sys::Request, env: Env, _ctx: Context) -> Result<web_sys::Response> {
    let origin = env.var("ORIGIN_URL")?.to_string();
    let url = req.url();
    // The path and query: everything after the authority.
    let rest = url.split_once("://").map_or("", |(_, r)| r);
    let tail = rest.find('/').map_or("/", |i| &rest[i..]);
    let init = web_sys::RequestInit::new();
    let method = req.method();
    init.set_method(&method);
    init.set_headers(&req.headers());
    init.set_redirect(web_sys::RequestRedirect::Manual);
    if method != "GET" && method != "HEAD" {
        if let Some(body) = req.body() {
            init.set_body(&body);
        }
    }
    let outgoing = web_sys::Request::new_with_str_and_init(&format!("{origin}{tail}"), &init)?;
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let resp: JsValue = JsFuture::from(global.fetch_with_request(&outgoing)).await?;
    Ok(resp.dyn_into()?)
}
