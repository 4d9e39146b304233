//! The default replay: clone the request.

use super::Replay;

/// Replays `Clone` requests by cloning them. The default.
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

impl<Req: Clone> Replay<Req> for CloneRequest {
    type Request = Req;
    type Saved = Req;

    fn save(&self, req: Req) -> Result<(Req, Req), Req> {
        Ok((req.clone(), req))
    }

    fn replay(&self, saved: &mut Req) -> Option<Req> {
        Some(saved.clone())
    }
}
