//! An in-process service that fails a scripted number of times, recording every call.

use std::future::{Ready, ready};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::time::Instant;
use tower::Service;

/// One recorded call: the request and when it arrived (tokio time: paused in tests).
#[derive(Clone, Debug)]
pub struct Call {
    pub req: u32,
    pub at: Instant,
}

/// Fails the first `failures` calls *per request value* with an `io::Error` naming the attempt,
/// then answers `req * 10`.
#[derive(Clone, Debug)]
pub struct Flaky {
    failures: u32,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Flaky {
    pub fn failing(failures: u32) -> Self {
        Flaky {
            failures,
            calls: Arc::default(),
        }
    }

    pub fn always_failing() -> Self {
        Flaky::failing(u32::MAX)
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    /// Gaps between consecutive calls of request `req`, in milliseconds.
    pub fn gaps_ms(&self, req: u32) -> Vec<f64> {
        let times: Vec<Instant> = self
            .calls()
            .into_iter()
            .filter(|c| c.req == req)
            .map(|c| c.at)
            .collect();
        times
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs_f64() * 1e3)
            .collect()
    }
}

impl Service<u32> for Flaky {
    type Response = u32;
    type Error = std::io::Error;
    type Future = Ready<Result<u32, std::io::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u32) -> Self::Future {
        let mut calls = self.calls.lock().unwrap();
        calls.push(Call {
            req,
            at: Instant::now(),
        });
        let attempt = calls.iter().filter(|c| c.req == req).count() as u32;
        ready(if attempt <= self.failures {
            Err(std::io::Error::other(format!("attempt {attempt} failed")))
        } else {
            Ok(req * 10)
        })
    }
}
