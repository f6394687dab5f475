//! `fetch` as the core's WeChat [`Transport`], with a timeout.

use std::time::Duration;

use futures_util::future::{select, Either};
use worker::{AbortController, Delay, Fetch, Headers, Method, Request, RequestInit};

use crate::wechat::{self, HttpRequest, HttpResponse, Transport, TransportError};

/// Sends WeChat calls, each bounded by `WX_TIMEOUT_MS`.
pub(super) struct FetchTransport {
    pub(super) timeout: Duration,
}

impl Transport for FetchTransport {
    async fn pause(&self, ms: u32) {
        Delay::from(Duration::from_millis(u64::from(ms))).await;
    }

    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
        let mut init = RequestInit::new();
        let headers = Headers::new();
        match req.method {
            wechat::Method::Get => {
                init.with_method(Method::Get);
            }
            wechat::Method::Post => {
                init.with_method(Method::Post);
                headers
                    .set("Content-Type", "application/json")
                    .map_err(|_| TransportError::Network)?;
                init.with_body(req.body.map(Into::into));
            }
        }
        init.with_headers(headers);
        let request =
            Request::new_with_init(&req.url, &init).map_err(|_| TransportError::Network)?;
        let controller = AbortController::default();
        let signal = controller.signal();
        let work = async move {
            let fetch = Fetch::Request(request);
            let mut resp = fetch
                .send_with_signal(&signal)
                .await
                .map_err(|_| TransportError::Network)?;
            let status = resp.status_code();
            let body = resp.bytes().await.map_err(|_| TransportError::Network)?;
            Ok(HttpResponse { status, body })
        };
        let delay = Delay::from(self.timeout);
        futures_util::pin_mut!(work);
        match select(work, delay).await {
            Either::Left((result, _)) => result,
            Either::Right(((), _)) => {
                controller.abort();
                Err(TransportError::Timeout)
            }
        }
    }
}
