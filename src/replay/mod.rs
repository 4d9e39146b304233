//! Replay: how a request is made available again for a retry.
//!
//! Retrying means sending the same request twice, but a `tower::Service` consumes its request.
//! A [`Replay`] keeps what is needed to rebuild it. [`CloneRequest`] (the default) clones
//! `Clone` requests; [`replay_fn`] lets you rebuild non-`Clone` ones. A request that cannot be
//! replayed is sent once and not retried, and a `tracing` event says so.

mod clone;
mod function;

pub use clone::CloneRequest;
pub use function::{ReplayFn, replay_fn};

// Replayable HTTP bodies, behind feature `http`.
#[cfg(feature = "http")]
mod http_body;
#[cfg(feature = "http")]
pub use http_body::{DEFAULT_MAX_REPLAY_BYTES, Recorded, ReplayBody, ReplayHttp, ReplayStats};

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
}
