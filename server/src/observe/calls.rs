//! A tower layer around the gRPC server: every call gets a request id (the client's
//! `x-request-id`, else a new one) carried by a tracing span — through the handler and
//! the jobs it starts — and echoed in the response headers; every call is counted by
//! method and final status, and timed until it is answered.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::{Body, Frame};
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument;

use super::metrics::metrics;

/// The request id header (read and echoed).
pub(crate) const REQUEST_ID: &str = "x-request-id";

/// Wraps a service in [`CallService`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CallLayer;

impl<S> Layer<S> for CallLayer {
    type Service = CallService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallService { inner }
    }
}

/// See the module docs.
#[derive(Debug, Clone)]
pub(crate) struct CallService<S> {
    inner: S,
}

/// A client's request id if it is short and printable, else a new one.
fn request_id<B>(request: &http::Request<B>) -> String {
    request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}

/// "DoGet" from "/arrow.flight.protocol.FlightService/DoGet".
fn method_of(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

/// The gRPC status name of a `grpc-status` header value.
fn code_name(value: Option<&http::HeaderValue>) -> Option<&'static str> {
    let code: i32 = value?.to_str().ok()?.parse().ok()?;
    Some(lakehouse_flight_ext::names::code_name(code))
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B, R> Service<http::Request<B>> for CallService<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    R: Body + Unpin + Send + 'static,
{
    type Response = http::Response<CallBody<R>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let id = request_id(&request);
        let method = method_of(request.uri().path());
        // A client's W3C trace context: the call's span joins its trace (see `otel`).
        let traceparent = request
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .filter(|v| super::otel::parse_traceparent(v).is_some());
        let span = tracing::info_span!(
            super::otel::CALL_SPAN,
            request_id = %id,
            method = %method,
            traceparent
        );
        let started = Instant::now();
        let future = self.inner.call(request).instrument(span);
        Box::pin(async move {
            let mut response = future.await?;
            metrics().call_answered(&method, started.elapsed().as_secs_f64());
            if let Ok(value) = http::HeaderValue::from_str(&id) {
                response.headers_mut().insert(REQUEST_ID, value);
            }
            // An error answered at once comes as "trailers only": the status is
            // already in the headers.
            let ended = code_name(response.headers().get("grpc-status"));
            if let Some(code) = ended {
                metrics().call_ended(&method, code);
            }
            Ok(response.map(|inner| CallBody {
                inner,
                method,
                counted: ended.is_some(),
            }))
        })
    }
}

/// A response body that counts the call when its trailers (the final status) pass,
/// or as CANCELLED when the client goes away first.
pub(crate) struct CallBody<R> {
    inner: R,
    method: String,
    counted: bool,
}

impl<R: Body + Unpin> Body for CallBody<R> {
    type Data = R::Data;
    type Error = R::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(trailers) = frame.trailers_ref()
            && !self.counted
        {
            let code = code_name(trailers.get("grpc-status")).unwrap_or("UNKNOWN");
            metrics().call_ended(&self.method, code);
            self.counted = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl<R> Drop for CallBody<R> {
    fn drop(&mut self) {
        if !self.counted {
            metrics().call_ended(&self.method, "CANCELLED");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_kept_only_when_sane() {
        let with = |value: &str| {
            http::Request::builder()
                .header(REQUEST_ID, value)
                .body(())
                .unwrap()
        };
        assert_eq!(request_id(&with("abc-123_x.y:z")), "abc-123_x.y:z");
        let replaced = request_id(&with("bad id\twith spaces"));
        assert_eq!(replaced.len(), 32);
        assert_eq!(request_id(&with(&"x".repeat(65))).len(), 32);
        assert_eq!(
            method_of("/arrow.flight.protocol.FlightService/DoGet"),
            "DoGet"
        );
        let five = http::HeaderValue::from_static("5");
        assert_eq!(code_name(Some(&five)), Some("NOT_FOUND"));
    }
}
