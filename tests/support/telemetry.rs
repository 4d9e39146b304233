//! Shared helpers of the telemetry tests: a scripted inner service, a classifier that
//! understands its script, budgets, and a paused current-thread runtime.
//!
//! Included with `#[path = "support/telemetry.rs"] mod telemetry_support;`.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::future::{Ready, ready};
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{Service, ServiceExt};
use tower_retrier::backoff::Exponential;
use tower_retrier::budget::Budget;
use tower_retrier::budget::Unlimited;
use tower_retrier::classify::{Classify, Decision, RetryReason, classify_fn};
use tower_retrier::{RetryConfig, RetryLayer};

/// What the scripted service answers to one attempt.
#[derive(Clone, Debug)]
pub enum Step {
    /// `Ok("ok")`.
    Ok,
    /// A retryable `Err` with this message.
    Fail(String),
    /// A non-retryable `Err` (`PermissionDenied`).
    Fatal,
    /// `Ok("throttled:<ms>")`: the server asks to retry after `ms` milliseconds.
    Throttled(u64),
}

/// An inner service answering attempts from a script (then `Ok` once the script is used up).
#[derive(Clone, Debug, Default)]
pub struct Scripted {
    steps: Arc<Mutex<VecDeque<Step>>>,
    calls: Arc<AtomicU32>,
}

impl Scripted {
    pub fn new(steps: impl IntoIterator<Item = Step>) -> Self {
        Scripted {
            steps: Arc::new(Mutex::new(steps.into_iter().collect())),
            calls: Arc::default(),
        }
    }

    /// Appends steps (for the next calls).
    pub fn push(&self, steps: impl IntoIterator<Item = Step>) {
        self.steps.lock().unwrap().extend(steps);
    }

    /// Attempts received so far.
    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Service<u32> for Scripted {
    type Response = String;
    type Error = io::Error;
    type Future = Ready<Result<String, io::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: u32) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let step = self.steps.lock().unwrap().pop_front().unwrap_or(Step::Ok);
        ready(match step {
            Step::Ok => Ok("ok".to_owned()),
            Step::Fail(msg) => Err(io::Error::other(msg)),
            Step::Fatal => Err(io::Error::from(io::ErrorKind::PermissionDenied)),
            Step::Throttled(ms) => Ok(format!("throttled:{ms}")),
        })
    }
}

/// Retries `Err`s except `PermissionDenied`, and honours `throttled:<ms>` as pushback.
pub fn classifier() -> impl Classify<u32, String, io::Error> + Clone {
    classify_fn(|_req: &u32, res: &Result<String, io::Error>| match res {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Decision::Fail,
        Err(_) => Decision::retry(RetryReason::Error),
        Ok(s) => match s.strip_prefix("throttled:") {
            Some(ms) => Decision::retry_after(
                RetryReason::Throttled,
                Duration::from_millis(ms.parse().unwrap()),
            ),
            None => Decision::Success,
        },
    })
}

/// A budget that refuses every retry.
#[derive(Clone, Copy, Debug, Default)]
pub struct DenyAll;

impl Budget for DenyAll {
    type Withdraw = Ready<bool>;

    fn deposit(&self) {}

    fn withdraw(&self) -> Ready<bool> {
        ready(false)
    }
}

/// A current-thread runtime with paused time, so backoff sleeps complete at once (and the
/// thread-local metrics recorder of `with_local_recorder` sees every call).
pub fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

/// A retryable failure with a distinct message.
pub fn fail(n: u32) -> Step {
    Step::Fail(format!("connection reset #{n}"))
}

/// The layer most telemetry tests use: default config, the script-aware classifier, no
/// budget, labelled `billing` / `charge`.
pub fn billing_layer()
-> RetryLayer<Exponential, impl Classify<u32, String, io::Error> + Clone, Unlimited> {
    RetryLayer::new(RetryConfig::default())
        .with_classifier(classifier())
        .with_budget(Unlimited::new())
        .service_name("billing")
        .operation_name("charge")
}

/// A script for three calls: fail then succeed; exhausted after three failures; succeed.
pub fn three_calls_script() -> Vec<Step> {
    vec![fail(1), Step::Ok, fail(2), fail(3), fail(4)]
}

/// Sends three calls through `svc` and returns their results, errors as text.
pub async fn three_calls<S>(svc: S) -> Vec<Result<String, String>>
where
    S: Service<u32, Response = String, Error = io::Error> + Clone,
{
    let mut results = Vec::new();
    for i in 0..3 {
        results.push(svc.clone().oneshot(i).await.map_err(|e| e.to_string()));
    }
    results
}

/// What [`three_calls`] returns over [`three_calls_script`] when telemetry stays out of the way.
pub fn three_calls_expected() -> Vec<Result<String, String>> {
    vec![
        Ok("ok".to_owned()),
        Err("connection reset #4".to_owned()),
        Ok("ok".to_owned()),
    ]
}

/// [`Scripted`], but its `poll_ready` fails (a closed connection pool) once it has been called
/// `calls` times: the retry after that ends with stop reason `not_ready`.
#[derive(Clone, Debug)]
pub struct NotReadyAfter {
    pub inner: Scripted,
    pub calls: u32,
}

impl Service<u32> for NotReadyAfter {
    type Response = String;
    type Error = io::Error;
    type Future = Ready<Result<String, io::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        if self.inner.calls() >= self.calls {
            return Poll::Ready(Err(io::Error::other("connection pool closed")));
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: u32) -> Self::Future {
        self.inner.call(req)
    }
}
