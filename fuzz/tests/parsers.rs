//! Header parsers never panic, whatever the bytes: `Retry-After` (seconds or HTTP-date),
//! `grpc-retry-pushback-ms`, and the classifiers that read `Retry-After`, `Date`,
//! `Idempotency-Key`, `grpc-status` and `grpc-retry-pushback-ms` from real header maps.
//! `cargo test -p tower-retrier-fuzz` runs each target for about a second of random inputs;
//! `BOLERO_RANDOM_TEST_TIME_MS=60000` (or `cargo bolero test`) runs longer.

mod support;

use std::time::{Duration, SystemTime};
use support::Runs;
use tower_retrier::classify::{
    Classify, Decision, GrpcClassifier, HttpClassifier, parse_grpc_pushback, parse_retry_after,
};

#[test]
fn retry_after_and_grpc_pushback_never_panic() {
    static RUNS: Runs = Runs::new("retry_after_and_grpc_pushback");
    bolero::check!().for_each(|bytes: &[u8]| {
        RUNS.one();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_000);
        if let Some(d) = parse_retry_after(bytes, now) {
            // Only digits (maybe padded) or an HTTP-date parse; a date is in the future.
            let trimmed = bytes.trim_ascii();
            assert!(!trimmed.is_empty());
            let _ = d;
        }
        if parse_grpc_pushback(bytes).is_ok() {
            assert!(bytes.trim_ascii().iter().all(u8::is_ascii_digit));
        }
        // Far ends of the clock.
        let _ = parse_retry_after(bytes, SystemTime::UNIX_EPOCH);
        let _ = parse_retry_after(
            bytes,
            SystemTime::UNIX_EPOCH + Duration::from_secs(u32::MAX as u64 * 64),
        );
    });
    RUNS.report();
}

/// Splits fuzz bytes into up to `n` header values.
fn values(bytes: &[u8], n: usize) -> Vec<&[u8]> {
    bytes.splitn(n, |b| *b == 0).collect()
}

#[test]
fn the_http_classifier_never_panics_on_hostile_headers() {
    static RUNS: Runs = Runs::new("http_classifier_headers");
    bolero::check!().for_each(|bytes: &[u8]| {
        RUNS.one();
        let v = values(bytes, 4);
        let mut res = http::Response::builder().status(503);
        let mut req = http::Request::post("/charges");
        let mut key_values = Vec::new();
        for (i, value) in v.iter().enumerate() {
            let Ok(value) = http::HeaderValue::from_bytes(value) else {
                continue;
            };
            match i {
                0 => res = res.header("retry-after", value),
                1 => res = res.header("date", value),
                _ => {
                    key_values.push(value.clone());
                    req = req.header("idempotency-key", value);
                }
            }
        }
        let (Ok(res), Ok(req)) = (res.body(()), req.body(())) else {
            return;
        };
        let c = HttpClassifier::new();
        let decision = c.classify(&req, &Ok::<_, std::io::Error>(res));
        // A POST is retried only with a key that has something in it.
        if decision != Decision::Fail {
            assert!(!key_values.is_empty());
            assert!(key_values.iter().all(|k| {
                let t = k.as_bytes().trim_ascii();
                let t = t
                    .strip_prefix(b"\"")
                    .and_then(|t| t.strip_suffix(b"\""))
                    .unwrap_or(t);
                !t.trim_ascii().is_empty()
            }));
        }
    });
    RUNS.report();
}

#[test]
fn the_grpc_classifier_never_panics_on_hostile_headers() {
    static RUNS: Runs = Runs::new("grpc_classifier_headers");
    bolero::check!().for_each(|bytes: &[u8]| {
        RUNS.one();
        let v = values(bytes, 2);
        let mut res = http::Response::builder();
        if let Ok(status) = http::HeaderValue::from_bytes(v[0]) {
            res = res.header("grpc-status", status);
        }
        if let Some(Ok(pushback)) = v.get(1).map(|p| http::HeaderValue::from_bytes(p)) {
            res = res.header("grpc-retry-pushback-ms", pushback);
        }
        let Ok(res) = res.body(()) else {
            return;
        };
        let _ = GrpcClassifier::new().classify(&(), &Ok::<_, std::io::Error>(res));
    });
    RUNS.report();
}
