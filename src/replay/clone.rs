//! The default replay: clone the request.

use super::{Idempotent, Replay};

/// Replays `Clone` requests by cloning them. The default.
///
/// The request type must say whether it is safe to send twice ([`Idempotent`]): a request
/// that is not (an HTTP POST without `Idempotency-Key`) is still kept, but only resent when
/// nothing reached the server.
///
/// The clone is made before the first attempt is sent (the original is consumed by it); for
/// cheap-to-clone requests such as `http::Request<Full<Bytes>>` or `Arc`-backed payloads that
/// costs a reference-count increment.
///
/// ```
/// use tower_retrier::replay::{CloneRequest, Replay};
///
/// let (sent, mut kept) = CloneRequest::new().save("hello".to_string()).unwrap();
/// assert_eq!(sent, "hello");
/// assert_eq!(CloneRequest::new().replay(&mut kept).as_deref(), Some("hello"));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct CloneRequest {
    _priv: (),
}

impl CloneRequest {
    /// The clone-based replay.
    ///
    /// ```
    /// let _ = tower_retrier::replay::CloneRequest::new();
    /// ```
    pub fn new() -> Self {
        CloneRequest { _priv: () }
    }
}

impl<Req: Clone + Idempotent> Replay<Req> for CloneRequest {
    type Request = Req;
    type Saved = Req;

    fn save(&self, req: Req) -> Result<(Req, Req), Req> {
        Ok((req.clone(), req))
    }

    fn replay(&self, saved: &mut Req) -> Option<Req> {
        Some(saved.clone())
    }

    fn may_resend(&self, saved: &Req) -> bool {
        saved.is_idempotent()
    }
}
