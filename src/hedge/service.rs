//! [`HedgeService`]: hands each call to a [`HedgeFuture`].

use super::future::HedgeFuture;
use super::shared::HedgeShared;
use crate::admission::{AdmitFor, Ticket};
use crate::backoff::Backoff;
use crate::budget::Budget;
use crate::classify::Classify;
use crate::front;
use crate::lifetime::SharedRef;
use crate::replay::Replay;
use crate::shared::CallState;
use crate::telemetry::OnRetry;
use std::fmt;
use std::task::{Context, Poll};
use tower_service::Service;

/// Hedges calls to the inner service; built by [`RetryLayer::hedge`](crate::RetryLayer::hedge).
///
/// `poll_ready` is the inner service's. `call` deposits into the budget, keeps the request
/// for replay and sends it; the [`HedgeFuture`] sends the hedges (each after polling its
/// clone of the inner service ready).
///
/// See [`crate::hedge`] for an example.
pub struct HedgeService<S, K, C, B, R, H, A>
where
    (K, C, B, R, H, A): 'static,
{
    inner: S,
    shared: SharedRef<HedgeShared<K, C, B, R, H, A>>,
}

crate::front::holds_inner!(
    HedgeService,
    HedgeShared<K, C, B, R, H, A>,
    "tower_retrier::RetryLayer::new(Default::default()).hedge(tower_retrier::hedge::HedgeConfig::builder().build().unwrap())"
);

impl<S: fmt::Debug, K, C, B: fmt::Debug, R, H, A> fmt::Debug for HedgeService<S, K, C, B, R, H, A>
where
    (K, C, B, R, H, A): 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeService")
            .field("inner", &self.inner)
            .field("hedge", &self.shared.hedge)
            .field("budget", &self.shared.core.budget)
            .finish_non_exhaustive()
    }
}

impl<Req, S, K, C, B, R, H, A> Service<Req> for HedgeService<S, K, C, B, R, H, A>
where
    (K, C, B, R, H, A): 'static,
    R: Replay<Req>,
    S: Service<R::Request> + Clone,
    K: Backoff,
    C: Classify<R::Saved, S::Response, S::Error>,
    B: Budget,
    H: OnRetry<S::Response, S::Error>,
    A: AdmitFor<S::Error>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = HedgeFuture<Req, S, K, C, B, R, H, A>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let core = &self.shared.core;
        let admitted = front::admit(core);
        let service = front::take_ready(&mut self.inner);
        let ticket = match admitted {
            Ok(ticket) => ticket,
            Err(refused) => {
                let call = CallState::new(None, core.telemetry.start_call(), Ticket::default());
                return HedgeFuture::refused(self.shared.clone(), service, call, refused);
            }
        };
        let call = CallState::new(
            CallState::start_time(&core.config),
            core.telemetry.start_call(),
            ticket,
        );
        HedgeFuture::start(self.shared.clone(), service, call, req)
    }
}
