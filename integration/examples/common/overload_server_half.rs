//! The queued downstream with the server half of a propagated deadline in place: the same
//! workers, bounded FIFO queue and uncancelled work as [`Server`](super::Server), rebuilt so
//! that the queue is where the crate's real `DropExpiredLayer` can see it.
//!
//! Each attempt arrives as an `http::Request<u64>` carrying what our client sends with it,
//! `x-envoy-expected-rq-timeout-ms` = the attempt's timeout (the client stack's
//! `tower::timeout`, 100 ms; `RetryConfig::default()` sets no overall deadline to cap it). The
//! server's stack is `DropExpiredLayer → GlobalConcurrencyLimit(workers) → job`: the limit's
//! semaphore is the FIFO queue, the layer waits on it and drops at the front a request whose
//! deadline has passed, or has no more than `min_time_left` left (503), and the job takes the service time when it starts (× slowdown
//! during the event). The queue's bound is a second semaphore of `queue + workers` permits
//! held from arrival to answer: a request finding none is shed at once, as before. Every
//! admitted request runs in a task of its own, so a caller that gives up cancels nothing.
//!
//! With the layer left out ([`ServerHalf::start`] with `drop_expired: None`) this is the
//! original model again, and gives the original rows' figures.

use super::{BoxError, ReplyFuture, ServerConfig, ServerStats, Shared, Shed};
use http::{Request, Response, StatusCode};
use std::convert::Infallible;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{Semaphore, oneshot};
use tokio::time::Instant;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_retrier::deadline::{DeadlineHeader, DropExpiredLayer};

/// The server half's answer to a request dropped at the front of the queue (a 503 with
/// `Retry-After`): its caller has given up by then, unless `min_time_left` dropped it early.
#[derive(Debug, Clone, Copy)]
pub struct Expired;

impl fmt::Display for Expired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("503 service unavailable: the deadline passed in the queue")
    }
}

impl std::error::Error for Expired {}

type Stack = BoxCloneSyncService<Request<u64>, Response<u64>, Infallible>;

#[derive(Default)]
struct Jobs {
    busy: usize,
    max_busy: usize,
    served: u64,
    served_abandoned: u64,
}

struct Inner {
    attempt_timeout: Duration,
    /// Admitted requests, queued or served: `queue + workers` permits.
    room: Arc<Semaphore>,
    capacity: usize,
    stack: Stack,
    layer: Option<DropExpiredLayer>,
    jobs: Arc<Mutex<Jobs>>,
    shared: Arc<Shared>,
}

/// The handle every instance calls (cheap clone).
#[derive(Clone)]
pub struct ServerHalf(Arc<Inner>);

impl ServerHalf {
    /// The downstream of `config`, its requests carrying `attempt_timeout` as their deadline;
    /// `drop_expired` puts `DropExpiredLayer` (with this `min_time_left`) in front of the
    /// workers' queue.
    pub(super) fn start(
        config: ServerConfig,
        start: Instant,
        attempt_timeout: Duration,
        drop_expired: Option<Duration>,
        shared: Arc<Shared>,
    ) -> ServerHalf {
        assert!(config.workers > 0, "a server needs a worker");
        let jobs = Arc::new(Mutex::new(Jobs::default()));
        let job = {
            let jobs = jobs.clone();
            tower::service_fn(move |req: Request<u64>| {
                let since = start.elapsed();
                let service = match config.slow {
                    Some((from, to, factor)) if since >= from && since < to => {
                        config.service * factor
                    }
                    _ => config.service,
                };
                let jobs = jobs.clone();
                {
                    let mut j = jobs.lock().unwrap();
                    j.busy += 1;
                    j.max_busy = j.max_busy.max(j.busy);
                }
                async move {
                    tokio::time::sleep(service).await;
                    let mut j = jobs.lock().unwrap();
                    j.busy -= 1;
                    j.served += 1;
                    Ok::<_, Infallible>(Response::new(*req.body()))
                }
            })
        };
        let workers = GlobalConcurrencyLimitLayer::new(config.workers);
        let layer = drop_expired
            .map(|left| DropExpiredLayer::new(DeadlineHeader::envoy()).min_time_left(left));
        let stack = ServiceBuilder::new()
            .option_layer(layer.clone())
            .layer(workers)
            .service(job);
        ServerHalf(Arc::new(Inner {
            attempt_timeout,
            room: Arc::new(Semaphore::new(config.queue + config.workers)),
            capacity: config.queue + config.workers,
            stack: BoxCloneSyncService::new(stack),
            layer,
            jobs,
            shared,
        }))
    }

    /// The server's figures, and how many requests the layer dropped.
    pub fn stats(&self) -> (ServerStats, u64) {
        let j = self.0.jobs.lock().unwrap();
        let admitted = self.0.capacity - self.0.room.available_permits();
        let stats = ServerStats {
            queued: admitted.saturating_sub(j.busy),
            busy: j.busy,
            max_busy: j.max_busy,
            served: j.served,
            served_abandoned: j.served_abandoned,
        };
        let dropped = self.0.layer.as_ref().map_or(0, |l| {
            let s = l.stats();
            s.expired_in_queue + s.expired_on_arrival
        });
        (stats, dropped)
    }
}

impl Service<u64> for ServerHalf {
    type Response = u64;
    type Error = BoxError;
    type Future = ReplyFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u64) -> Self::Future {
        let inner = &self.0;
        let admitted = inner.room.clone().try_acquire_owned().ok();
        {
            let sh = &inner.shared;
            let b = sh.scenario.bucket_of(sh.now());
            let mut c = sh.counts.lock().unwrap();
            c.attempts[b] += 1;
            c.shed[b] += u64::from(admitted.is_none());
        }
        let Some(admitted) = admitted else {
            return Box::pin(std::future::ready(Err(Shed.into())));
        };
        // What our client sends with an attempt: its timeout (no overall deadline to cap it).
        let mut http = Request::new(req);
        DeadlineHeader::envoy().write(http.headers_mut(), inner.attempt_timeout);
        let (reply, rx) = oneshot::channel();
        let stack = inner.stack.clone();
        let jobs = inner.jobs.clone();
        // Its own task: the caller giving up cancels nothing.
        tokio::spawn(async move {
            let res = match stack.oneshot(http).await {
                Ok(res) => res,
                Err(never) => match never {},
            };
            let served = res.status() == StatusCode::OK;
            let answer = if served {
                Ok(*res.body())
            } else {
                Err(Expired)
            };
            let abandoned = reply.send(answer).is_err();
            jobs.lock().unwrap().served_abandoned += u64::from(served && abandoned);
            drop(admitted);
        });
        Box::pin(async move {
            match rx.await {
                Ok(answer) => answer.map_err(Into::into),
                Err(_) => Err(BoxError::from("server gone")),
            }
        })
    }
}
