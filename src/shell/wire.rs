//! Bytes between the runtime and the core: a request's body in, the
//! worker's own responses out, and a proxied request to the origin and
//! its answer back, each as the core decided it.

use futures_util::StreamExt;
use wasm_bindgen::JsValue;
use worker::console_error;

use super::fetch;
use crate::error::ApiError;
use crate::flows::serve::Forward;
use crate::http::body::{BodyBuffer, BodyError};
use crate::http::headers::{rewrite_in_place, withheld_from_answer, Client, HeaderList};
use crate::http::response::OwnResponse;

/// Reads the body as it arrives, no further than `limit` bytes (the
/// route's) allow: refused at once when `Content-Length` says more.
pub(super) async fn read_body(req: &web_sys::Request, limit: usize) -> Result<Vec<u8>, BodyError> {
    let content_length = req.headers().get("Content-Length").ok().flatten();
    let mut buffer = BodyBuffer::new(content_length.as_deref(), limit)?;
    if let Some(stream) = req.body() {
        let mut stream = worker::ByteStream::from(stream);
        while let Some(chunk) = stream.next().await {
            buffer.push(&chunk.map_err(|_| BodyError::Unreadable)?)?;
        }
    }
    Ok(buffer.into_bytes())
}

/// The runtime's `Response` for one of the worker's own.
pub(super) fn own(r: &OwnResponse) -> Result<web_sys::Response, JsValue> {
    let headers = web_sys::Headers::new()?;
    for (name, value) in &r.headers {
        headers.set(name, value)?;
    }
    let init = web_sys::ResponseInit::new();
    init.set_status(r.status);
    init.set_headers(&headers);
    // An empty body is none: a relayed 204 or 304 may not have one.
    let body = r
        .body
        .as_deref()
        .filter(|b| !b.is_empty())
        .map(js_sys::Uint8Array::from);
    web_sys::Response::new_with_opt_buffer_source_and_init(body.as_ref().map(AsRef::as_ref), &init)
}

/// A failure of the runtime's own, as the client sees it.
// By value: it is passed to `map_err`.
#[allow(clippy::needless_pass_by_value)]
pub(super) fn internal(e: JsValue) -> ApiError {
    console_error!("internal error: {}", worker::Error::from(e));
    ApiError::Internal
}

/// The runtime's `Headers` as the core's [`HeaderList`].
struct RuntimeHeaders(web_sys::Headers);

impl HeaderList for RuntimeHeaders {
    type Error = JsValue;
    fn names(&self) -> Vec<String> {
        worker::Headers(self.0.clone()).keys().collect()
    }
    fn delete(&mut self, name: &str) -> Result<(), JsValue> {
        self.0.delete(name)
    }
    fn set(&mut self, name: &str, value: &str) -> Result<(), JsValue> {
        self.0.set(name, value)
    }
}

/// Sends `req` on to the origin as `forward` says, with trusted identity
/// headers, and hands the origin's answer back as [`answer`] makes it.
pub(super) async fn to_origin(
    req: &web_sys::Request,
    method: &str,
    client: Client<'_>,
    forward: Forward,
) -> Result<web_sys::Response, ApiError> {
    let (identity, assertion) = match forward.passed {
        Some(p) => (Some(p.identity), p.assertion),
        None => (None, None),
    };
    // The incoming headers, copied on the JS side in one call, fixed up in
    // place: only the names cross into wasm, never the values.
    let mut headers =
        RuntimeHeaders(web_sys::Headers::new_with_headers(&req.headers()).map_err(internal)?);
    rewrite_in_place(
        &mut headers,
        client,
        identity.as_ref(),
        assertion.as_deref(),
    )
    .map_err(internal)?;
    let outgoing = forward.outgoing;
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    init.set_headers(&headers.0);
    if !outgoing.follow_redirects {
        init.set_redirect(web_sys::RequestRedirect::Manual);
    }
    if !outgoing.cached {
        init.set_cache(web_sys::RequestCache::NoStore);
    }
    if outgoing.with_body {
        if let Some(body) = req.body() {
            init.set_body(&body);
        }
    }
    let request =
        web_sys::Request::new_with_str_and_init(&outgoing.url, &init).map_err(internal)?;
    let response = fetch::send(&request).await.map_err(|e| {
        console_error!("origin fetch failed: {}", worker::Error::from(e));
        ApiError::OriginUnavailable
    })?;
    answer(response).map_err(internal)
}

/// The origin's answer as the client gets it: the runtime's own `Response`
/// as it is, unless it carries a header only the worker may send
/// (`X-WX-Edge-Error`, any `x-wx-*`: see [`withheld_from_answer`]); then a
/// new one with the same status, status text, the other headers (copied on
/// the JS side) and the same body stream, never read here.
fn answer(response: web_sys::Response) -> Result<web_sys::Response, JsValue> {
    let names: Vec<String> = worker::Headers(response.headers()).keys().collect();
    let withheld = withheld_from_answer(&names);
    if withheld.is_empty() {
        return Ok(response);
    }
    let headers = web_sys::Headers::new_with_headers(&response.headers())?;
    for name in &withheld {
        headers.delete(name)?;
    }
    let init = web_sys::ResponseInit::new();
    init.set_status(response.status());
    init.set_status_text(&response.status_text());
    init.set_headers(&headers);
    web_sys::Response::new_with_opt_readable_stream_and_init(response.body().as_ref(), &init)
}
