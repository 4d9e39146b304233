//! The HTTP classifier: retryable status codes, connection errors, idempotency, `Retry-After`.

use super::error_class::ErrorClass;
use super::retry_after::parse_retry_after;
use super::{Auto, Classify, Decision, InspectError, RetryReason, Typed};
use http::{HeaderName, Method, Request, Response, StatusCode, header};
use std::fmt;
use std::marker::PhantomData;
use std::time::SystemTime;

/// A set of HTTP status codes (100–999), as a bitset: `Copy`, no allocation.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
struct StatusSet([u64; 16]);

impl StatusSet {
    fn insert(&mut self, code: u16) {
        if code < 1000 {
            self.0[usize::from(code / 64)] |= 1 << (code % 64);
        }
    }
    fn remove(&mut self, code: u16) {
        if code < 1000 {
            self.0[usize::from(code / 64)] &= !(1 << (code % 64));
        }
    }
    fn contains(&self, code: u16) -> bool {
        code < 1000 && self.0[usize::from(code / 64)] & (1 << (code % 64)) != 0
    }
    fn codes(&self) -> impl Iterator<Item = u16> + '_ {
        (100..1000).filter(|c| self.contains(*c))
    }
}

/// Which methods may be retried.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Methods {
    /// GET, HEAD, OPTIONS, PUT, DELETE, TRACE (RFC 9110 §9.2.2), and any request carrying
    /// this header (`Idempotency-Key` by default).
    IdempotentOrHeader(HeaderName),
    /// Only the idempotent methods, whatever the headers.
    Idempotent,
    /// Every method.
    All,
}

/// Classifies HTTP exchanges, in the spirit of Envoy's `retry_on` and reqwest-retry.
///
/// Defaults (`HttpClassifier::new()`):
///
/// - Retryable statuses: **502, 503, 504** (gateway errors), **429** (throttled) and **408**
///   (request timeout). Every other status, 5xx included, is returned as it is:
///   [`Decision::Success`] below 400, [`Decision::Fail`] from 400.
/// - Transport errors (`Err`): retried, except load-shed rejections. A refused connection
///   (nothing was sent) is retried for every method; other errors (reset, timeout) only for
///   retryable methods. Use [`HttpClassifier::typed_errors`] when the error is a concrete
///   type (hyper-util's client, tonic's transport) so the classifier can see a refused
///   connection deep in its `source()` chain.
/// - Methods: idempotent ones (GET, HEAD, OPTIONS, PUT, DELETE, TRACE), and any request that
///   carries an `Idempotency-Key` header (the server deduplicates by it; an empty, blank or
///   non-ASCII key gives it nothing to deduplicate by and does not count). Change this with
///   [`retry_non_idempotent_with_header`](Self::retry_non_idempotent_with_header),
///   [`retry_only_idempotent_methods`](Self::retry_only_idempotent_methods) or
///   [`retry_all_methods`](Self::retry_all_methods).
/// - `Retry-After` on a retryable response (seconds or HTTP-date) replaces the backoff and is
///   waited in full; malformed values and dates in the past are ignored (the backoff applies).
///   An HTTP-date is measured against the response's `Date` header when it has one (the
///   server's clock), so clock skew between client and server changes nothing.
///   A value longer than `max_delay`, or past the deadline, ends the retries (see
///   [`Pushback`](crate::Pushback)).
///
/// It classifies `http::Request<B>` for any body `B`, so it works with
/// [`CloneRequest`](crate::replay::CloneRequest) and with
/// [`ReplayHttp`](crate::replay::ReplayHttp) alike.
///
/// ```
/// use http::{Method, Request, Response, StatusCode};
/// use tower_retrier::classify::{Classify, Decision, HttpClassifier, RetryReason};
///
/// let c = HttpClassifier::new();
/// let get = Request::get("/users/1").body(()).unwrap();
/// let post = Request::post("/orders").body(()).unwrap();
/// let unavailable = || Ok::<_, std::io::Error>(Response::builder().status(503).body(()).unwrap());
///
/// assert_eq!(c.classify(&get, &unavailable()), Decision::retry(RetryReason::ServerError));
/// assert_eq!(c.classify(&post, &unavailable()), Decision::Fail); // POST is not idempotent
///
/// let keyed = Request::post("/orders").header("idempotency-key", "abc").body(()).unwrap();
/// assert!(c.classify(&keyed, &unavailable()).is_retry());
/// ```
pub struct HttpClassifier<V = Auto> {
    statuses: StatusSet,
    methods: Methods,
    retry_errors: bool,
    honor_retry_after: bool,
    _view: PhantomData<fn() -> V>,
}

impl HttpClassifier<Auto> {
    /// The defaults described on [`HttpClassifier`].
    ///
    /// ```
    /// let c = tower_retrier::classify::HttpClassifier::new();
    /// assert!(c.is_retryable_status(http::StatusCode::BAD_GATEWAY));
    /// assert!(!c.is_retryable_status(http::StatusCode::INTERNAL_SERVER_ERROR));
    /// ```
    pub fn new() -> Self {
        let mut statuses = StatusSet::default();
        for code in [408, 429, 502, 503, 504] {
            statuses.insert(code);
        }
        HttpClassifier {
            statuses,
            methods: Methods::IdempotentOrHeader(HeaderName::from_static(IDEMPOTENCY_KEY)),
            retry_errors: true,
            honor_retry_after: true,
            _view: PhantomData,
        }
    }

    /// Only the gateway errors (502, 503, 504) and connection errors, like Envoy's
    /// `gateway-error,connect-failure,reset`.
    ///
    /// ```
    /// let c = tower_retrier::classify::HttpClassifier::gateway_errors();
    /// assert!(!c.is_retryable_status(http::StatusCode::TOO_MANY_REQUESTS));
    /// ```
    pub fn gateway_errors() -> Self {
        Self::new().without_status(408).without_status(429)
    }
}

impl Default for HttpClassifier<Auto> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> HttpClassifier<V> {
    /// Looks into concrete error types (see [`InspectError`]); needed to tell a refused
    /// connection from a reset when the service's error is not boxed.
    ///
    /// ```
    /// let _c = tower_retrier::classify::HttpClassifier::new().typed_errors();
    /// ```
    pub fn typed_errors(self) -> HttpClassifier<Typed> {
        self.with_view()
    }

    /// Looks into boxed errors only (the default).
    ///
    /// ```
    /// let _c = tower_retrier::classify::HttpClassifier::new().typed_errors().auto_errors();
    /// ```
    pub fn auto_errors(self) -> HttpClassifier<Auto> {
        self.with_view()
    }

    fn with_view<V2>(self) -> HttpClassifier<V2> {
        HttpClassifier {
            statuses: self.statuses,
            methods: self.methods,
            retry_errors: self.retry_errors,
            honor_retry_after: self.honor_retry_after,
            _view: PhantomData,
        }
    }

    /// Also retries responses with this status code (codes outside 100–999 are ignored).
    ///
    /// ```
    /// let c = tower_retrier::classify::HttpClassifier::new().with_status(500);
    /// assert!(c.is_retryable_status(http::StatusCode::INTERNAL_SERVER_ERROR));
    /// ```
    pub fn with_status(mut self, code: u16) -> Self {
        self.statuses.insert(code);
        self
    }

    /// Stops retrying responses with this status code.
    ///
    /// ```
    /// let c = tower_retrier::classify::HttpClassifier::new().without_status(429);
    /// assert!(!c.is_retryable_status(http::StatusCode::TOO_MANY_REQUESTS));
    /// ```
    pub fn without_status(mut self, code: u16) -> Self {
        self.statuses.remove(code);
        self
    }

    /// Replaces the retryable status codes with `codes` (Envoy's `retriable-status-codes`).
    ///
    /// ```
    /// let c = tower_retrier::classify::HttpClassifier::new().with_statuses([503, 409]);
    /// assert!(c.is_retryable_status(http::StatusCode::CONFLICT));
    /// assert!(!c.is_retryable_status(http::StatusCode::BAD_GATEWAY));
    /// ```
    pub fn with_statuses(mut self, codes: impl IntoIterator<Item = u16>) -> Self {
        self.statuses = StatusSet::default();
        for code in codes {
            self.statuses.insert(code);
        }
        self
    }

    /// Retries every 5xx status (Envoy's `5xx`), in addition to the current set.
    ///
    /// ```
    /// let c = tower_retrier::classify::HttpClassifier::new().with_all_5xx();
    /// assert!(c.is_retryable_status(http::StatusCode::INTERNAL_SERVER_ERROR));
    /// ```
    pub fn with_all_5xx(mut self) -> Self {
        for code in 500..600 {
            self.statuses.insert(code);
        }
        self
    }

    /// Also retries non-idempotent methods (POST, PATCH, ...) when the request carries the
    /// header `name`.
    ///
    /// ```
    /// use http::HeaderName;
    /// let _c = tower_retrier::classify::HttpClassifier::new()
    ///     .retry_non_idempotent_with_header(HeaderName::from_static("x-request-id"));
    /// ```
    pub fn retry_non_idempotent_with_header(mut self, name: HeaderName) -> Self {
        self.methods = Methods::IdempotentOrHeader(name);
        self
    }

    /// Also retries non-idempotent methods when the request carries an `Idempotency-Key`
    /// header (the IETF draft's name, used by Stripe and others): the server then
    /// deduplicates repeated requests. This is the default; it undoes
    /// [`retry_only_idempotent_methods`](Self::retry_only_idempotent_methods) or a custom header.
    ///
    /// ```
    /// use tower_retrier::classify::{Classify, HttpClassifier};
    /// let c = HttpClassifier::new().retry_with_idempotency_key();
    /// let post = http::Request::post("/charges").header("idempotency-key", "k1").body(()).unwrap();
    /// let res = Ok::<_, std::io::Error>(http::Response::builder().status(503).body(()).unwrap());
    /// assert!(c.classify(&post, &res).is_retry());
    /// ```
    pub fn retry_with_idempotency_key(self) -> Self {
        self.retry_non_idempotent_with_header(HeaderName::from_static(IDEMPOTENCY_KEY))
    }

    /// Retries only the idempotent methods, even when a request carries an `Idempotency-Key`
    /// (for servers that do not deduplicate).
    ///
    /// ```
    /// use tower_retrier::classify::{Classify, Decision, HttpClassifier};
    /// let c = HttpClassifier::new().retry_only_idempotent_methods();
    /// let post = http::Request::post("/charges").header("idempotency-key", "k1").body(()).unwrap();
    /// let res = Ok::<_, std::io::Error>(http::Response::builder().status(503).body(()).unwrap());
    /// assert_eq!(c.classify(&post, &res), Decision::Fail);
    /// ```
    pub fn retry_only_idempotent_methods(mut self) -> Self {
        self.methods = Methods::Idempotent;
        self
    }

    /// Retries every method. Only for services where you know every request is safe to
    /// repeat.
    ///
    /// ```
    /// use tower_retrier::classify::{Classify, HttpClassifier};
    /// let c = HttpClassifier::new().retry_all_methods();
    /// let post = http::Request::post("/").body(()).unwrap();
    /// let res = Ok::<_, std::io::Error>(http::Response::builder().status(503).body(()).unwrap());
    /// assert!(c.classify(&post, &res).is_retry());
    /// ```
    pub fn retry_all_methods(mut self) -> Self {
        self.methods = Methods::All;
        self
    }

    /// Whether transport errors (`Err`) are retried at all (default true).
    ///
    /// ```
    /// let _c = tower_retrier::classify::HttpClassifier::new().retry_errors(false);
    /// ```
    pub fn retry_errors(mut self, on: bool) -> Self {
        self.retry_errors = on;
        self
    }

    /// Whether `Retry-After` replaces the backoff (default true).
    ///
    /// ```
    /// let _c = tower_retrier::classify::HttpClassifier::new().honor_retry_after(false);
    /// ```
    pub fn honor_retry_after(mut self, on: bool) -> Self {
        self.honor_retry_after = on;
        self
    }

    /// Whether a response with `status` is retried (method rules aside).
    ///
    /// See [`HttpClassifier::new`] for an example.
    pub fn is_retryable_status(&self, status: StatusCode) -> bool {
        self.statuses.contains(status.as_u16())
    }

    /// Whether a request with this method and these headers may be retried after it may have
    /// reached the server.
    ///
    /// ```
    /// let c = tower_retrier::classify::HttpClassifier::new();
    /// assert!(c.is_retryable_request(&http::Request::put("/").body(()).unwrap()));
    /// assert!(!c.is_retryable_request(&http::Request::patch("/").body(()).unwrap()));
    /// ```
    pub fn is_retryable_request<B>(&self, req: &Request<B>) -> bool {
        match &self.methods {
            Methods::All => true,
            Methods::Idempotent => is_idempotent(req.method()),
            Methods::IdempotentOrHeader(h) => {
                is_idempotent(req.method()) || has_key(req.headers(), h)
            }
        }
    }

    fn classify_response<B>(&self, res: &Response<B>, now: SystemTime) -> Decision {
        let status = res.status();
        if !self.is_retryable_status(status) {
            return if status.is_client_error() || status.is_server_error() {
                Decision::Fail
            } else {
                Decision::Success
            };
        }
        let reason = match status.as_u16() {
            429 => RetryReason::Throttled,
            408 => RetryReason::Timeout,
            500..=599 => RetryReason::ServerError,
            _ => RetryReason::Response,
        };
        let after = self
            .honor_retry_after
            .then(|| res.headers().get(header::RETRY_AFTER))
            .flatten()
            .and_then(|v| parse_retry_after(v.as_bytes(), response_now(res, now)));
        match after {
            Some(d) => Decision::retry_after(reason, d),
            None => Decision::retry(reason),
        }
    }

    pub(crate) fn classify_at<B, ResB, E>(
        &self,
        req: &Request<B>,
        result: &Result<Response<ResB>, E>,
        now: SystemTime,
    ) -> Decision
    where
        V: InspectError<E>,
    {
        match result {
            Ok(res) => match self.classify_response(res, now) {
                Decision::Retry { .. } if !self.is_retryable_request(req) => Decision::Fail,
                d => d,
            },
            Err(e) => match ErrorClass::of(V::inspect(e)) {
                // The server did not process it (RFC 9113 §8.7): resent whatever the method,
                // even with error retries off.
                ErrorClass::Unprocessed => Decision::retry(RetryReason::Transparent),
                _ if !self.retry_errors => Decision::Fail,
                ErrorClass::Never => Decision::Fail,
                ErrorClass::NotSent => Decision::retry(RetryReason::NotSent),
                _ if !self.is_retryable_request(req) => Decision::Fail,
                ErrorClass::Timeout => Decision::retry(RetryReason::Timeout),
                ErrorClass::Other => Decision::retry(RetryReason::Error),
            },
        }
    }
}

/// The instant an HTTP-date `Retry-After` is measured from: the response's own `Date` when it
/// has a valid one (RFC 9110 §10.2.3: the server's clock, so skew between the two clocks does
/// not shorten or stretch the wait), else the client's clock.
fn response_now<B>(res: &Response<B>, now: SystemTime) -> SystemTime {
    res.headers()
        .get(header::DATE)
        .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
        .and_then(|v| httpdate::parse_http_date(v.trim()).ok())
        .unwrap_or(now)
}

/// The header that makes a non-idempotent request safe to resend: the server deduplicates by
/// its value (IETF draft `Idempotency-Key`, used by Stripe and others).
pub(crate) const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Whether a request may be resent after it may have reached the server: an idempotent
/// method, or an `Idempotency-Key` header. The rule behind
/// [`Idempotent`](crate::replay::Idempotent) for `http::Request`.
pub(crate) fn is_idempotent_request(method: &Method, headers: &http::HeaderMap) -> bool {
    is_idempotent(method) || has_key(headers, IDEMPOTENCY_KEY)
}

/// Whether `headers` carry a usable deduplication key under `name`: at least one value, and
/// every value a non-empty printable-ASCII token once surrounding spaces and one pair of
/// quotes (the draft's `sf-string` form) are removed. An empty, blank, quoted-empty or
/// non-ASCII value gives the server nothing to deduplicate by, so it does not make a request
/// resendable.
pub(crate) fn has_key<K: http::header::AsHeaderName>(headers: &http::HeaderMap, name: K) -> bool {
    let mut values = headers.get_all(name).iter().peekable();
    values.peek().is_some() && values.all(|v| is_key_token(v.as_bytes()))
}

fn is_key_token(value: &[u8]) -> bool {
    fn trim(v: &[u8]) -> &[u8] {
        let start = v.iter().position(|b| !matches!(b, b' ' | b'\t'));
        let end = v.iter().rposition(|b| !matches!(b, b' ' | b'\t'));
        match (start, end) {
            (Some(s), Some(e)) => &v[s..=e],
            _ => &[],
        }
    }
    let mut v = trim(value);
    if let [b'"', inner @ .., b'"'] = v {
        v = trim(inner);
    }
    !v.is_empty() && v.iter().all(|b| (0x20..=0x7e).contains(b) && *b != b'"')
}

/// RFC 9110 §9.2.2: GET, HEAD, OPTIONS, PUT, DELETE and TRACE.
fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

impl<B, ResB, E, V: InspectError<E>> Classify<Request<B>, Response<ResB>, E> for HttpClassifier<V> {
    fn classify(&self, req: &Request<B>, result: &Result<Response<ResB>, E>) -> Decision {
        self.classify_at(req, result, SystemTime::now())
    }

    /// Its own method rules decide (see [`HttpClassifier`]), so the layer's guard steps aside.
    fn handles_idempotency(&self) -> bool {
        true
    }

    /// A timed-out attempt is retried like a timeout error: only for requests that may be
    /// resent (idempotent methods, an `Idempotency-Key`, or `retry_all_methods`).
    fn classify_timeout(&self, req: &Request<B>) -> Decision {
        if self.retry_errors && self.is_retryable_request(req) {
            Decision::retry(RetryReason::Timeout)
        } else {
            Decision::Fail
        }
    }

    /// Hedges follow the same method rules as retries.
    fn allows_resend(&self, req: &Request<B>) -> bool {
        self.is_retryable_request(req)
    }

    /// A retryable status or a transport error the method kept from a retry (a 503 to a
    /// POST) was still not served.
    fn is_final_answer(&self, _req: &Request<B>, result: &Result<Response<ResB>, E>) -> bool {
        match result {
            Ok(res) => !self.classify_response(res, SystemTime::now()).is_retry(),
            Err(_) => false,
        }
    }
}

impl<V> Clone for HttpClassifier<V> {
    fn clone(&self) -> Self {
        HttpClassifier {
            statuses: self.statuses,
            methods: self.methods.clone(),
            retry_errors: self.retry_errors,
            honor_retry_after: self.honor_retry_after,
            _view: PhantomData,
        }
    }
}

impl<V> fmt::Debug for HttpClassifier<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Codes<'a>(&'a StatusSet);
        impl fmt::Debug for Codes<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list().entries(self.0.codes()).finish()
            }
        }
        f.debug_struct("HttpClassifier")
            .field("statuses", &Codes(&self.statuses))
            .field("methods", &self.methods)
            .field("retry_errors", &self.retry_errors)
            .field("honor_retry_after", &self.honor_retry_after)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;
    use std::time::Duration;
    use tower::BoxError;

    fn res(status: u16) -> Result<Response<()>, BoxError> {
        Ok(Response::builder().status(status).body(()).unwrap())
    }

    fn get() -> Request<()> {
        Request::get("/").body(()).unwrap()
    }

    #[test]
    fn default_statuses() {
        let c = HttpClassifier::new();
        for (code, want) in [
            (200, Decision::Success),
            (304, Decision::Success),
            (400, Decision::Fail),
            (404, Decision::Fail),
            (500, Decision::Fail),
            (408, Decision::retry(RetryReason::Timeout)),
            (429, Decision::retry(RetryReason::Throttled)),
            (502, Decision::retry(RetryReason::ServerError)),
            (503, Decision::retry(RetryReason::ServerError)),
            (504, Decision::retry(RetryReason::ServerError)),
        ] {
            assert_eq!(c.classify(&get(), &res(code)), want, "{code}");
        }
    }

    #[test]
    fn methods() {
        let c = HttpClassifier::new();
        for m in ["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"] {
            let req = Request::builder().method(m).body(()).unwrap();
            assert!(c.classify(&req, &res(503)).is_retry(), "{m}");
        }
        for m in ["POST", "PATCH", "CONNECT"] {
            let req = Request::builder().method(m).body(()).unwrap();
            assert_eq!(c.classify(&req, &res(503)), Decision::Fail, "{m}");
            // A refused connection sent nothing: safe for every method.
            let refused: Result<Response<()>, BoxError> = Err(Box::new(std::io::Error::from(
                std::io::ErrorKind::ConnectionRefused,
            )));
            assert!(c.classify(&req, &refused).is_retry(), "{m}");
            let reset: Result<Response<()>, BoxError> = Err(Box::new(std::io::Error::from(
                std::io::ErrorKind::ConnectionReset,
            )));
            assert_eq!(c.classify(&req, &reset), Decision::Fail, "{m}");
        }
    }

    #[test]
    fn errors() {
        let c = HttpClassifier::new();
        let shed: Result<Response<()>, BoxError> =
            Err(Box::new(tower::load_shed::error::Overloaded::new()));
        assert_eq!(c.classify(&get(), &shed), Decision::Fail);
        let elapsed: Result<Response<()>, BoxError> =
            Err(Box::new(tower::timeout::error::Elapsed::new()));
        assert_eq!(
            c.classify(&get(), &elapsed),
            Decision::retry(RetryReason::Timeout)
        );
        // Typed view sees a refused connection inside a concrete error.
        #[derive(Debug)]
        struct Client(std::io::Error);
        impl fmt::Display for Client {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("client error")
            }
        }
        impl Error for Client {
            fn source(&self) -> Option<&(dyn Error + 'static)> {
                Some(&self.0)
            }
        }
        let post = Request::post("/").body(()).unwrap();
        let refused: Result<Response<()>, Client> = Err(Client(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert!(
            c.clone()
                .typed_errors()
                .classify(&post, &refused)
                .is_retry()
        );
        // Opaque with the auto view: only idempotent methods.
        assert_eq!(c.classify(&post, &refused), Decision::Fail);
        assert!(c.classify(&get(), &refused).is_retry());
        assert_eq!(
            c.clone().retry_errors(false).classify(&get(), &refused),
            Decision::Fail
        );
    }

    #[test]
    fn retry_after_overrides_within_bounds() {
        let c = HttpClassifier::new();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_000);
        let with = |v: &[u8]| -> Result<Response<()>, BoxError> {
            Ok(Response::builder()
                .status(429)
                .header("retry-after", v)
                .body(())
                .unwrap())
        };
        assert_eq!(
            c.classify_at(&get(), &with(b"3"), now),
            Decision::retry_after(RetryReason::Throttled, Duration::from_secs(3))
        );
        assert_eq!(
            c.classify_at(&get(), &with(b"Wed, 21 Oct 2015 07:20:10 GMT"), now),
            Decision::retry_after(RetryReason::Throttled, Duration::from_secs(10))
        );
        assert_eq!(
            c.classify_at(&get(), &with(b"3600"), now),
            Decision::retry_after(RetryReason::Throttled, Duration::from_secs(3600))
        );
        for bad in [&b"-3"[..], b"soon", b"\xff"] {
            assert_eq!(
                c.classify_at(&get(), &with(bad), now),
                Decision::retry(RetryReason::Throttled)
            );
        }
        let off = c.clone().honor_retry_after(false);
        assert_eq!(
            off.classify_at(&get(), &with(b"3"), now),
            Decision::retry(RetryReason::Throttled)
        );
        // Retry-After on a non-retryable status changes nothing.
        let teapot: Result<Response<()>, BoxError> = Ok(Response::builder()
            .status(418)
            .header("retry-after", "1")
            .body(())
            .unwrap());
        assert_eq!(c.classify_at(&get(), &teapot, now), Decision::Fail);
    }

    #[test]
    fn status_sets() {
        let c = HttpClassifier::gateway_errors();
        assert_eq!(c.classify(&get(), &res(429)), Decision::Fail);
        let c = HttpClassifier::new().with_statuses([409]).with_status(2000);
        assert_eq!(
            c.classify(&get(), &res(409)),
            Decision::retry(RetryReason::Response)
        );
        assert_eq!(c.classify(&get(), &res(503)), Decision::Fail);
        assert!(format!("{c:?}").contains("[409]"));
    }

    #[test]
    fn an_http_date_retry_after_is_measured_against_the_response_date() {
        // The client's clock reads 07:20:00; the server's Date says otherwise.
        let client_now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_000);
        let c = HttpClassifier::new();
        let answer = |date: Option<&str>, after: &str| -> Result<Response<()>, BoxError> {
            let mut b = Response::builder().status(503).header("retry-after", after);
            if let Some(d) = date {
                b = b.header("date", d);
            }
            Ok(b.body(()).unwrap())
        };
        let in_10s = Decision::retry_after(RetryReason::ServerError, Duration::from_secs(10));
        // Server one hour behind: "06:20:10" is 10 s after its own "06:20:00".
        let behind = answer(
            Some("Wed, 21 Oct 2015 06:20:00 GMT"),
            "Wed, 21 Oct 2015 06:20:10 GMT",
        );
        assert_eq!(c.classify_at(&get(), &behind, client_now), in_10s);
        // Server one hour ahead: still 10 s, not "already past".
        let ahead = answer(
            Some("Wed, 21 Oct 2015 08:20:00 GMT"),
            "Wed, 21 Oct 2015 08:20:10 GMT",
        );
        assert_eq!(c.classify_at(&get(), &ahead, client_now), in_10s);
        // No Date, or a malformed one: the client's clock.
        let none = answer(None, "Wed, 21 Oct 2015 07:20:10 GMT");
        assert_eq!(c.classify_at(&get(), &none, client_now), in_10s);
        let bad = answer(Some("yesterday"), "Wed, 21 Oct 2015 07:20:10 GMT");
        assert_eq!(c.classify_at(&get(), &bad, client_now), in_10s);
        // Delta-seconds do not depend on any clock.
        let secs = answer(Some("Wed, 21 Oct 2015 08:20:00 GMT"), "10");
        assert_eq!(c.classify_at(&get(), &secs, client_now), in_10s);
    }

    #[test]
    fn an_empty_blank_or_non_ascii_idempotency_key_does_not_count() {
        let c = HttpClassifier::new();
        let post = |key: &[u8]| {
            Request::post("/charges")
                .header(
                    "idempotency-key",
                    http::HeaderValue::from_bytes(key).unwrap(),
                )
                .body(())
                .unwrap()
        };
        for bad in [
            &b""[..],
            b" ",
            b"\t \t",
            b"\"\"",
            b"\" \"",
            b"caf\xc3\xa9",
            b"\xff\xfe",
        ] {
            let req = post(bad);
            assert!(!c.is_retryable_request(&req), "{bad:?}");
            assert!(
                !crate::replay::Idempotent::is_idempotent(&req),
                "{bad:?} via Idempotent"
            );
            assert_eq!(c.classify(&req, &res(503)), Decision::Fail, "{bad:?}");
        }
        for good in [&b"k1"[..], b" 8e03978e-40d5 ", b"\"8e03978e-40d5\"", b"a b"] {
            let req = post(good);
            assert!(c.is_retryable_request(&req), "{good:?}");
            assert!(crate::replay::Idempotent::is_idempotent(&req), "{good:?}");
        }
        // Two values, one of them empty: ambiguous, not a key.
        let mut two = post(b"k1");
        two.headers_mut()
            .append("idempotency-key", http::HeaderValue::from_static(""));
        assert!(!c.is_retryable_request(&two));
        // A custom header follows the same rule.
        let custom = HttpClassifier::new()
            .retry_non_idempotent_with_header(HeaderName::from_static("x-request-id"));
        let blank = Request::post("/")
            .header("x-request-id", "  ")
            .body(())
            .unwrap();
        assert!(!custom.is_retryable_request(&blank));
        let set = Request::post("/")
            .header("x-request-id", "r-1")
            .body(())
            .unwrap();
        assert!(custom.is_retryable_request(&set));
    }
}
