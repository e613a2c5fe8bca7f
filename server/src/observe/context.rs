//! The request id of the call the current code runs for, read from the tracing
//! span tree, so work that leaves the call's task (a worker call, a job) can pass
//! it on. The [`RequestIds`] layer keeps each span's `request_id` field.

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Subscriber, dispatcher};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, Registry};

/// A span's `request_id`, kept in its extensions.
struct RequestIdOf(String);

/// Records the `request_id` field of spans that have one.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestIds;

struct Find(Option<String>);

impl Visit for Find {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "request_id" {
            self.0 = Some(value.to_string());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "request_id" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl<S> Layer<S> for RequestIds
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().fields().field("request_id").is_none() {
            return;
        }
        let mut find = Find(None);
        attrs.record(&mut find);
        if let (Some(value), Some(span)) = (find.0, ctx.span(id)) {
            span.extensions_mut().insert(RequestIdOf(value));
        }
    }
}

/// The request id of the innermost enclosing span that has one.
pub(crate) fn current_request_id() -> Option<String> {
    dispatcher::get_default(|dispatch| {
        let registry = dispatch.downcast_ref::<Registry>()?;
        let id = dispatch.current_span().id()?.clone();
        let span = registry.span(&id)?;
        span.scope()
            .find_map(|s| s.extensions().get::<RequestIdOf>().map(|r| r.0.clone()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn the_innermost_request_id_is_found_through_nested_spans() {
        let subscriber = tracing_subscriber::registry().with(RequestIds);
        tracing::subscriber::with_default(subscriber, || {
            assert_eq!(current_request_id(), None);
            let call = tracing::info_span!("call", request_id = %"r-1");
            let _in_call = call.enter();
            let job = tracing::info_span!("job", id = 7);
            let _in_job = job.enter();
            assert_eq!(current_request_id().as_deref(), Some("r-1"));
            // Carried into another thread with the span, as spawn_blocking callers do
            // (the server's subscriber is global; this test's is per thread).
            let span = tracing::Span::current();
            let dispatch = dispatcher::get_default(|d| d.clone());
            let seen = std::thread::scope(|s| {
                s.spawn(|| {
                    dispatcher::with_default(&dispatch, || span.in_scope(current_request_id))
                })
                .join()
                .ok()
                .flatten()
            });
            assert_eq!(seen.as_deref(), Some("r-1"));
        });
    }
}
