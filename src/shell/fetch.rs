//! `fetch` as the core's WeChat [`Transport`], with a timeout.

use std::time::Duration;

use futures_util::future::{select, Either};
use wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::Delay;

use crate::wechat::{Transport, TransportError, WireRequest, WireResponse};

/// The runtime's `fetch`, on its own `Request` and `Response` (workers-rs's
/// `Fetch` wraps both, and its `RequestInit` builds a `cf` object for every
/// request).
pub(super) async fn send(req: &web_sys::Request) -> Result<web_sys::Response, JsValue> {
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    JsFuture::from(global.fetch_with_request(req))
        .await?
        .dyn_into()
}

/// Sends WeChat calls, each bounded by `WX_TIMEOUT_MS`.
pub(super) struct FetchTransport {
    pub(super) timeout: Duration,
}

async fn call(req: &WireRequest, signal: &web_sys::AbortSignal) -> Result<WireResponse, JsValue> {
    let init = web_sys::RequestInit::new();
    init.set_signal(Some(signal));
    init.set_method(&req.method);
    // WeChat's answers are never for a shared cache (a relayed one may be
    // personal, and its URL carries the access_token).
    init.set_cache(web_sys::RequestCache::NoStore);
    if let Some(content_type) = &req.content_type {
        let headers = web_sys::Headers::new()?;
        headers.set("Content-Type", content_type)?;
        init.set_headers(&headers);
    }
    if let Some(body) = &req.body {
        init.set_body(&js_sys::Uint8Array::from(body.as_slice()));
    }
    let request = web_sys::Request::new_with_str_and_init(&req.url, &init)?;
    let resp = send(&request).await?;
    let status = resp.status();
    let content_type = resp.headers().get("Content-Type")?;
    let body = JsFuture::from(resp.array_buffer()?).await?;
    Ok(WireResponse {
        status,
        content_type,
        body: js_sys::Uint8Array::new(&body).to_vec(),
    })
}

impl Transport for FetchTransport {
    async fn pause(&self, ms: u32) {
        Delay::from(Duration::from_millis(u64::from(ms))).await;
    }

    async fn send(&self, req: WireRequest) -> Result<WireResponse, TransportError> {
        let controller = web_sys::AbortController::new().map_err(|_| TransportError::Network)?;
        let signal = controller.signal();
        let work = call(&req, &signal);
        let delay = Delay::from(self.timeout);
        futures_util::pin_mut!(work);
        match select(work, delay).await {
            Either::Left((result, _)) => result.map_err(|_| TransportError::Network),
            Either::Right(((), _)) => {
                controller.abort();
                Err(TransportError::Timeout)
            }
        }
    }
}
