//! Handing replayed bodies to a tonic `Channel`, which takes only `tonic::body::Body`.

use super::{ReplayBody, WrapBody};
use bytes::Bytes;
use http_body::Body;

/// Wraps each attempt's [`ReplayBody`] in `tonic::body::Body`, the one body type a tonic
/// `Channel` accepts (see [`WrapBody`]). The
/// [`RetryLayer::new_for_grpc`](crate::RetryLayer::new_for_grpc) preset uses it, so the layer
/// goes straight onto a `Channel` with no `map_request`.
///
/// ```
/// use tower_retrier::replay::{AsTonicBody, ReplayHttp};
/// let _replay = ReplayHttp::grpc().wrap_body(AsTonicBody);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct AsTonicBody;

impl<B> WrapBody<B> for AsTonicBody
where
    B: Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<crate::BoxError>,
{
    type Body = tonic::body::Body;

    fn wrap(&self, body: ReplayBody<B>) -> tonic::body::Body {
        tonic::body::Body::new(body)
    }
}
