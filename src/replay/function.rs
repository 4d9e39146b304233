//! Replaying non-`Clone` requests with a closure that copies them.

use super::{Idempotent, Replay};
use std::fmt;

/// Replays requests with a closure `f(&req) -> Option<req>` that makes a copy, or says it
/// cannot (`None`: the request is sent once, not retried). Build it with [`replay_fn`]. As with
/// [`CloneRequest`](super::CloneRequest), the request type says whether it may be resent
/// ([`Idempotent`]).
///
/// ```
/// use tower_retrier::replay::{Replay, replay_fn};
///
/// // A request type without `Clone` that we know how to copy when it is small.
/// struct Job { id: u32, data: Vec<u8> }
/// impl tower_retrier::replay::Idempotent for Job {} // running a job twice is harmless
///
/// let r = replay_fn(|j: &Job| (j.data.len() <= 16).then(|| Job { id: j.id, data: j.data.clone() }));
/// assert!(r.save(Job { id: 1, data: vec![0; 8] }).is_ok());
/// assert!(r.save(Job { id: 2, data: vec![0; 64] }).is_err());
/// ```
#[derive(Clone)]
pub struct ReplayFn<F> {
    f: F,
}

/// Wraps a copy function as a [`Replay`].
///
/// ```
/// let _r = tower_retrier::replay::replay_fn(|s: &String| Some(s.clone()));
/// ```
pub fn replay_fn<F>(f: F) -> ReplayFn<F> {
    ReplayFn { f }
}

impl<Req, F> Replay<Req> for ReplayFn<F>
where
    Req: Idempotent,
    F: Fn(&Req) -> Option<Req>,
{
    type Request = Req;
    type Saved = Req;

    fn save(&self, req: Req) -> Result<(Req, Req), Req> {
        match (self.f)(&req) {
            Some(copy) => Ok((copy, req)),
            None => Err(req),
        }
    }

    fn replay(&self, saved: &mut Req) -> Option<Req> {
        (self.f)(saved)
    }

    fn may_resend(&self, saved: &Req) -> bool {
        saved.is_idempotent()
    }
}

impl<F> fmt::Debug for ReplayFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayFn").finish_non_exhaustive()
    }
}
