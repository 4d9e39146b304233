//! Replay: how a request is made available again for a retry.
//!
//! Retrying means sending the same request twice, but a `tower::Service` consumes its request.
//! A [`Replay`] keeps what is needed to rebuild it. [`CloneRequest`] (the default) clones
//! `Clone` requests; [`replay_fn`] lets you rebuild non-`Clone` ones; `ReplayHttp` (feature
//! `http`) records streamed HTTP bodies. A request that cannot be replayed is sent once and not
//! retried, and a `tracing` event says so. A request that is not [`Idempotent`] (an HTTP POST)
//! is kept but only resent when nothing reached the server.

mod attempt;
mod clone;
mod function;
mod idempotent;

pub use attempt::AttemptInfo;
pub use clone::CloneRequest;
pub use function::{ReplayFn, replay_fn};
pub use idempotent::Idempotent;

// Recording and replaying HTTP bodies (feature `http`).
#[cfg(feature = "http")]
mod http_body;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use http_body::{
    AsReplayBody, DEFAULT_MAX_REPLAY_BYTES, Recorded, ReplayBody, ReplayHttp, ReplayStats, WrapBody,
};
#[cfg(feature = "tonic")]
mod tonic_body;
#[cfg(feature = "tonic")]
#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
pub use tonic_body::AsTonicBody;

/// Keeps a request available for retries.
///
/// `Request` is what the inner service receives; `Saved` is what is kept between attempts and
/// what the classifier sees.
///
/// ```
/// use std::sync::Arc;
/// use tower_retrier::replay::Replay;
///
/// /// A request holding a one-shot payload; we keep an `Arc` copy so it can be rebuilt.
/// struct Upload { payload: Vec<u8> }
///
/// #[derive(Clone, Debug)]
/// struct ShareUploads;
///
/// impl Replay<Upload> for ShareUploads {
///     type Request = Upload;
///     type Saved = Arc<Vec<u8>>;
///
///     fn save(&self, req: Upload) -> Result<(Upload, Self::Saved), Upload> {
///         if req.payload.len() > 1 << 20 {
///             return Err(req); // too large to keep: send once
///         }
///         let saved = Arc::new(req.payload.clone());
///         Ok((req, saved))
///     }
///
///     fn replay(&self, saved: &mut Self::Saved) -> Option<Upload> {
///         Some(Upload { payload: saved.to_vec() })
///     }
/// }
///
/// let (first, mut saved) = ShareUploads.save(Upload { payload: vec![1, 2] }).ok().unwrap();
/// assert_eq!(first.payload, [1, 2]);
/// assert_eq!(ShareUploads.replay(&mut saved).unwrap().payload, [1, 2]);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot replay requests of type `{Req}`",
    label = "no `Replay<{Req}>` implementation",
    note = "`CloneRequest` (the default) needs `{Req}: Clone + Idempotent`; for a body that is not `Clone` (hyper's `Incoming`, `tonic::body::Body`) use `ReplayHttp` or the `RetryLayer::new_for_http` / `new_for_grpc` presets; for other types, `replay_fn`"
)]
pub trait Replay<Req> {
    /// The request type the inner service receives.
    type Request;
    /// What is kept between attempts (and shown to the classifier).
    type Saved;

    /// Prepares the first attempt and keeps what a retry needs. Returns `Err(request)` when
    /// the request cannot be replayed: it is then sent once and never retried.
    fn save(&self, req: Req) -> Result<(Self::Request, Self::Saved), Self::Request>;

    /// Builds the next attempt, or `None` when the request can no longer be replayed (for
    /// example a streamed body that outgrew its buffer): the last result is then returned.
    fn replay(&self, saved: &mut Self::Saved) -> Option<Self::Request>;

    /// Whether the saved request may be sent again after an attempt that may have reached the
    /// server (see [`Idempotent`]). The layer asks before every retry unless the classifier
    /// judges idempotency itself or nothing was sent. Defaults to `true`; the built-in replays
    /// ask the request's [`Idempotent`] impl.
    ///
    /// ```
    /// use tower_retrier::replay::{CloneRequest, Idempotent, Replay};
    ///
    /// #[derive(Clone)]
    /// struct Charge;
    /// impl Idempotent for Charge {
    ///     fn is_idempotent(&self) -> bool { false }
    /// }
    /// let (_, saved) = CloneRequest::new().save(Charge).ok().unwrap();
    /// assert!(!CloneRequest::new().may_resend(&saved));
    /// ```
    fn may_resend(&self, saved: &Self::Saved) -> bool {
        let _ = saved;
        true
    }

    /// Whether a copy built now would be whole even though the first attempt may still be
    /// sending (a hedge goes out while the first attempt is in flight). `ReplayHttp` says
    /// `false` until a streamed body has been fully recorded, so a hedge never carries a
    /// truncated body; the hedging layer asks again at its next hedge time. Defaults to
    /// `true` (a cloned request is always whole).
    ///
    /// ```
    /// use tower_retrier::replay::{CloneRequest, Replay};
    /// let (_, saved) = CloneRequest::new().save(7u32).unwrap();
    /// assert!(CloneRequest::new().is_complete(&saved));
    /// ```
    fn is_complete(&self, saved: &Self::Saved) -> bool {
        let _ = saved;
        true
    }

    /// Prepares `request` for the attempt it is about to be sent as, the first included:
    /// called just before the inner service gets it. The default does nothing; `ReplayHttp`
    /// writes the propagated deadline (`grpc-timeout`, or the header it was given) from
    /// [`AttemptInfo::time_left`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_retrier::replay::{AttemptInfo, CloneRequest, Replay};
    ///
    /// /// Requests that carry their own time budget, in milliseconds.
    /// #[derive(Clone, Debug, Default)]
    /// struct Query { budget_ms: Option<u128> }
    /// impl tower_retrier::replay::Idempotent for Query {}
    ///
    /// #[derive(Clone, Debug)]
    /// struct StampBudget;
    /// impl Replay<Query> for StampBudget {
    ///     type Request = Query;
    ///     type Saved = Query;
    ///     fn save(&self, q: Query) -> Result<(Query, Query), Query> { Ok((q.clone(), q)) }
    ///     fn replay(&self, saved: &mut Query) -> Option<Query> { Some(saved.clone()) }
    ///     fn before_send(&self, q: &mut Query, attempt: &AttemptInfo) {
    ///         q.budget_ms = attempt.time_left.map(|d| d.as_millis());
    ///     }
    /// }
    ///
    /// let mut q = Query::default();
    /// StampBudget.before_send(&mut q, &AttemptInfo::new(1).with_time_left(Duration::from_millis(300)));
    /// assert_eq!(q.budget_ms, Some(300));
    /// ```
    #[inline]
    fn before_send(&self, request: &mut Self::Request, attempt: &AttemptInfo) {
        let _ = (request, attempt);
    }
}
