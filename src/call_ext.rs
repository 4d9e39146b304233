//! `oneshot` and `ready` as inherent methods of the retry and hedge services, so that
//! the usual way of calling a service names the request type when the layer cannot serve it.
//!
//! Called through `tower::ServiceExt`, a request type the layer cannot retry (most often one
//! that does not implement [`Idempotent`](crate::replay::Idempotent)) gives only "the method
//! `oneshot` exists for struct `RetryService<..>`, but its trait bounds were not satisfied":
//! the request type is not known yet when the method is looked up. These inherent methods are
//! found first, learn the request type from their argument and fail with the crate's own
//! message, which says what to implement. They behave exactly as tower's.

use crate::hedge::HedgeService;
use crate::service::RetryService;
use std::future::{Future, poll_fn};
use tower_service::Service;

macro_rules! usual_calls {
    ($service:ident) => {
        impl<S, K, C, B, R, H, A> $service<S, K, C, B, R, H, A>
        where
            (K, C, B, R, H, A): 'static,
        {
            /// Waits until the service is ready, then calls it with `req`: what
            /// `tower::ServiceExt::oneshot` does.
            ///
            /// ```
            /// use tower::{Layer, service_fn};
            /// use tower_retrier::{RetryConfig, RetryLayer};
            ///
            /// # #[tokio::main(flavor = "current_thread")] async fn main() {
            /// let svc = RetryLayer::new(RetryConfig::default())
            ///     .layer(service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x + 1) }));
            /// assert_eq!(svc.oneshot(1).await.unwrap(), 2);
            /// # }
            /// ```
            pub fn oneshot<Req>(
                mut self,
                req: Req,
            ) -> impl Future<
                Output = Result<<Self as Service<Req>>::Response, <Self as Service<Req>>::Error>,
            >
            where
                Self: Service<Req>,
            {
                async move {
                    poll_fn(|cx| Service::poll_ready(&mut self, cx)).await?;
                    Service::call(&mut self, req).await
                }
            }

            /// Waits until the service is ready and yields it: what
            /// `tower::ServiceExt::ready` does.
            ///
            /// ```
            /// use tower::{Layer, service_fn};
            /// use tower_retrier::{RetryConfig, RetryLayer};
            ///
            /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), std::io::Error> {
            /// let mut svc = RetryLayer::new(RetryConfig::default())
            ///     .layer(service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x + 1) }));
            /// use tower::Service;
            /// assert_eq!(svc.ready().await?.call(1).await?, 2);
            /// # Ok(()) }
            /// ```
            pub fn ready<Req>(
                &mut self,
            ) -> impl Future<Output = Result<&mut Self, <Self as Service<Req>>::Error>>
            where
                Self: Service<Req>,
            {
                async move {
                    poll_fn(|cx| Service::poll_ready(&mut *self, cx)).await?;
                    Ok(self)
                }
            }
        }
    };
}

usual_calls!(RetryService);
usual_calls!(HedgeService);
