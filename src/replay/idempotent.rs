//! [`Idempotent`]: whether a request may be sent again after it may have reached the server.

/// Whether a request may be sent again after an attempt that may have reached the server.
///
/// Retrying a request the server may already have processed is only safe when processing it
/// twice does no harm. The layer asks this of every request before a retry (unless the
/// classifier judges idempotency itself, like `HttpClassifier`, or the failure proves nothing
/// was sent: [`RetryReason::NotSent`](crate::classify::RetryReason::NotSent)); a request that
/// answers `false` is sent once, and the call ends with stop reason `not_idempotent`.
///
/// - `http::Request<B>` (feature `http`): `true` for RFC 9110's idempotent methods (GET,
///   HEAD, OPTIONS, PUT, DELETE, TRACE) and for requests carrying an `Idempotency-Key`
///   header; `false` for POST, PATCH, CONNECT and any other method.
/// - Plain data (numbers, strings, `()`, tuples, `Vec`, `Box`, `Arc`, `Option`, `Bytes`):
///   `true`.
/// - Your own request type: implement it. An empty impl means "always safe to resend"; return
///   `false` for requests that must not run twice. To resend every request whatever it says,
///   use [`RetryLayer::retry_non_idempotent`](crate::RetryLayer::retry_non_idempotent).
///
/// ```
/// use tower_retrier::replay::Idempotent;
///
/// enum Command { Get(u64), Charge { cents: u64 } }
///
/// impl Idempotent for Command {
///     fn is_idempotent(&self) -> bool {
///         matches!(self, Command::Get(_)) // a charge must never run twice
///     }
/// }
///
/// /// A read-only query: every request may be resent.
/// struct Lookup(String);
/// impl Idempotent for Lookup {}
///
/// assert!(Command::Get(7).is_idempotent());
/// assert!(!Command::Charge { cents: 100 }.is_idempotent());
/// assert!(Lookup("k".into()).is_idempotent());
/// ```
#[diagnostic::on_unimplemented(
    message = "the retry layer does not know whether `{Self}` is safe to send twice",
    label = "`{Self}` does not implement `Idempotent`",
    note = "add `impl tower_retrier::replay::Idempotent for {Self} {{}}` if every such request may be resent, or implement `is_idempotent` to refuse the ones that must not run twice",
    note = "for HTTP requests use `RetryLayer::new_for_http(config)` (feature `http`), which knows the methods"
)]
pub trait Idempotent {
    /// Whether this request may be sent again after it may have reached the server.
    /// Defaults to `true`.
    ///
    /// See [`Idempotent`] for an example.
    fn is_idempotent(&self) -> bool {
        true
    }
}

macro_rules! always_idempotent {
    ($($t:ty),* $(,)?) => { $(impl Idempotent for $t {})* };
}

always_idempotent!(
    (),
    bool,
    char,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    String,
    str,
    std::time::Duration,
);

impl<T: Idempotent + ?Sized> Idempotent for &T {
    fn is_idempotent(&self) -> bool {
        (**self).is_idempotent()
    }
}

impl<T: Idempotent + ?Sized> Idempotent for Box<T> {
    fn is_idempotent(&self) -> bool {
        (**self).is_idempotent()
    }
}

impl<T: Idempotent + ?Sized> Idempotent for std::sync::Arc<T> {
    fn is_idempotent(&self) -> bool {
        (**self).is_idempotent()
    }
}

impl<T: Idempotent + ?Sized> Idempotent for std::rc::Rc<T> {
    fn is_idempotent(&self) -> bool {
        (**self).is_idempotent()
    }
}

impl<T: Idempotent> Idempotent for Option<T> {
    fn is_idempotent(&self) -> bool {
        self.as_ref().is_none_or(Idempotent::is_idempotent)
    }
}

impl<T: Idempotent> Idempotent for Vec<T> {
    fn is_idempotent(&self) -> bool {
        self.iter().all(Idempotent::is_idempotent)
    }
}

impl<T: Idempotent> Idempotent for [T] {
    fn is_idempotent(&self) -> bool {
        self.iter().all(Idempotent::is_idempotent)
    }
}

impl<T: Idempotent, const N: usize> Idempotent for [T; N] {
    fn is_idempotent(&self) -> bool {
        self.iter().all(Idempotent::is_idempotent)
    }
}

macro_rules! tuple_idempotent {
    ($($name:ident)+) => {
        impl<$($name: Idempotent),+> Idempotent for ($($name,)+) {
            #[allow(non_snake_case)]
            fn is_idempotent(&self) -> bool {
                let ($($name,)+) = self;
                true $(&& $name.is_idempotent())+
            }
        }
    };
}

tuple_idempotent!(A);
tuple_idempotent!(A B);
tuple_idempotent!(A B C);
tuple_idempotent!(A B C D);

#[cfg(feature = "http")]
impl Idempotent for bytes::Bytes {}

/// RFC 9110's idempotent methods, or a request that carries an `Idempotency-Key`.
#[cfg(feature = "http")]
impl<B> Idempotent for http::Request<B> {
    fn is_idempotent(&self) -> bool {
        crate::classify::is_idempotent_request(self.method(), self.headers())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_data_is_idempotent() {
        assert!(().is_idempotent());
        assert!(42u32.is_idempotent());
        assert!("get".is_idempotent());
        assert!((1u8, String::new()).is_idempotent());
        assert!(vec![Some(1i64), None].is_idempotent());
    }

    #[cfg(feature = "http")]
    #[test]
    fn http_methods_and_the_idempotency_key() {
        for m in ["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"] {
            let req = http::Request::builder().method(m).body(()).unwrap();
            assert!(req.is_idempotent(), "{m}");
        }
        for m in ["POST", "PATCH", "CONNECT", "PURGE"] {
            let req = http::Request::builder().method(m).body(()).unwrap();
            assert!(!req.is_idempotent(), "{m}");
            let keyed = http::Request::builder()
                .method(m)
                .header("idempotency-key", "k")
                .body(())
                .unwrap();
            assert!(keyed.is_idempotent(), "{m} with a key");
        }
    }
}
