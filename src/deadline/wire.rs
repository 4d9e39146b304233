//! The wire formats of a propagated deadline: gRPC's `grpc-timeout` and a header of whole
//! milliseconds (Envoy's `x-envoy-expected-rq-timeout-ms`).
//!
//! Both round *up*: a server that believes it has a little more time than the caller does
//! some work in vain, one that believes it has less drops work someone still waits for.

use http::{HeaderName, HeaderValue};
use std::time::Duration;

/// The gRPC header that carries what is left of the caller's deadline.
///
/// ```
/// assert_eq!(tower_retrier::deadline::GRPC_TIMEOUT, "grpc-timeout");
/// ```
pub const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// At most eight digits (gRPC's `TimeoutValue`).
const MAX_VALUE: u128 = 99_999_999;

/// The units of `grpc-timeout`, finest first, with their length in nanoseconds.
const UNITS: [(u8, u128); 6] = [
    (b'n', 1),
    (b'u', 1_000),
    (b'm', 1_000_000),
    (b'S', 1_000_000_000),
    (b'M', 60_000_000_000),
    (b'H', 3_600_000_000_000),
];

/// `d` in `grpc-timeout`'s format: at most eight digits and a unit, in the finest unit that
/// fits, rounded up (as grpc-go does). Durations beyond 99,999,999 hours are capped there.
///
/// ```
/// use std::time::Duration;
/// use tower_retrier::deadline::encode_grpc_timeout;
///
/// assert_eq!(encode_grpc_timeout(Duration::from_nanos(1500)), "1500n");
/// assert_eq!(encode_grpc_timeout(Duration::from_secs(2)), "2000000u");
/// assert_eq!(encode_grpc_timeout(Duration::from_secs(3600)), "3600000m");
/// assert_eq!(encode_grpc_timeout(Duration::ZERO), "0n");
/// ```
pub fn encode_grpc_timeout(d: Duration) -> HeaderValue {
    let nanos = d.as_nanos();
    let (unit, value) = UNITS
        .iter()
        .map(|&(unit, len)| (unit, nanos.div_ceil(len)))
        .find(|&(_, value)| value <= MAX_VALUE)
        .unwrap_or((b'H', MAX_VALUE));
    let mut buf = [0u8; 9];
    let digits = write_digits(&mut buf, value);
    buf[digits] = unit;
    HeaderValue::from_bytes(&buf[..=digits]).expect("digits and a unit letter are a valid header")
}

/// Reads a `grpc-timeout` value; `None` when it is malformed (no unit, more than eight digits,
/// anything but ASCII digits before the unit).
///
/// ```
/// use std::time::Duration;
/// use http::HeaderValue;
/// use tower_retrier::deadline::parse_grpc_timeout;
///
/// assert_eq!(parse_grpc_timeout(&HeaderValue::from_static("250m")), Some(Duration::from_millis(250)));
/// assert_eq!(parse_grpc_timeout(&HeaderValue::from_static("1H")), Some(Duration::from_secs(3600)));
/// assert_eq!(parse_grpc_timeout(&HeaderValue::from_static("123456789S")), None);
/// assert_eq!(parse_grpc_timeout(&HeaderValue::from_static("-1S")), None);
/// ```
pub fn parse_grpc_timeout(value: &HeaderValue) -> Option<Duration> {
    let (&unit, digits) = value.as_bytes().split_last()?;
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let value = parse_digits(digits)?;
    let len = UNITS.iter().find(|&&(u, _)| u == unit)?.1;
    let nanos = u128::from(value) * len;
    Some(Duration::new(
        (nanos / 1_000_000_000) as u64,
        (nanos % 1_000_000_000) as u32,
    ))
}

/// `d` as whole milliseconds, rounded up (the format of Envoy's
/// `x-envoy-expected-rq-timeout-ms`).
///
/// ```
/// use std::time::Duration;
/// use tower_retrier::deadline::encode_millis;
///
/// assert_eq!(encode_millis(Duration::from_micros(1500)), "2");
/// assert_eq!(encode_millis(Duration::from_secs(2)), "2000");
/// ```
pub fn encode_millis(d: Duration) -> HeaderValue {
    let ms = u64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
    HeaderValue::from(ms)
}

/// Reads a header of whole milliseconds; `None` unless it is 1 to 19 ASCII digits.
///
/// ```
/// use std::time::Duration;
/// use http::HeaderValue;
/// use tower_retrier::deadline::parse_millis;
///
/// assert_eq!(parse_millis(&HeaderValue::from_static("300")), Some(Duration::from_millis(300)));
/// assert_eq!(parse_millis(&HeaderValue::from_static("3s")), None);
/// ```
pub fn parse_millis(value: &HeaderValue) -> Option<Duration> {
    let digits = value.as_bytes();
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    parse_digits(digits).map(Duration::from_millis)
}

fn parse_digits(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |acc, &b| {
        let d = (b as char).to_digit(10)?;
        acc.checked_mul(10)?.checked_add(u64::from(d))
    })
}

/// Writes `value` (at most eight digits) into `buf`; returns how many digits.
fn write_digits(buf: &mut [u8; 9], value: u128) -> usize {
    let mut tmp = [0u8; 8];
    let mut n = 0;
    let mut v = value;
    loop {
        tmp[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for i in 0..n {
        buf[i] = tmp[n - 1 - i];
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_in_the_finest_unit_that_fits_rounding_up() {
        let cases = [
            (Duration::from_nanos(1), "1n"),
            (Duration::from_nanos(99_999_999), "99999999n"),
            (Duration::from_nanos(100_000_000), "100000u"),
            (Duration::from_nanos(100_000_001), "100001u"),
            (Duration::from_millis(99_999_999), "99999999m"),
        ];
        for (d, want) in cases {
            assert_eq!(encode_grpc_timeout(d), want, "{d:?}");
        }
        // 100,000 s no longer fits in milliseconds: seconds.
        assert_eq!(encode_grpc_timeout(Duration::from_secs(100_000)), "100000S");
        assert_eq!(encode_grpc_timeout(Duration::MAX), "99999999H");
    }

    #[test]
    fn round_trips_never_shrink() {
        for nanos in [
            1u64,
            999,
            1_000_001,
            123_456_789,
            3_599_999_999_999,
            86_400_000_000_000,
        ] {
            let d = Duration::from_nanos(nanos);
            let back = parse_grpc_timeout(&encode_grpc_timeout(d)).unwrap();
            assert!(back >= d, "{d:?} came back as {back:?}");
            let back = parse_millis(&encode_millis(d)).unwrap();
            assert!(
                back >= d && back - d < Duration::from_millis(1),
                "{d:?} -> {back:?}"
            );
        }
    }

    #[test]
    fn malformed_values_are_none() {
        for bad in [
            "",
            "m",
            "12",
            "1x",
            "123456789n",
            "1.5S",
            " 1S",
            "+1S",
            "１S",
        ] {
            let v = HeaderValue::from_bytes(bad.as_bytes()).unwrap();
            assert_eq!(parse_grpc_timeout(&v), None, "{bad:?}");
        }
        for bad in ["", "-1", "1e3", "12345678901234567890", " 5"] {
            let v = HeaderValue::from_bytes(bad.as_bytes()).unwrap();
            assert_eq!(parse_millis(&v), None, "{bad:?}");
        }
        assert_eq!(
            parse_grpc_timeout(&HeaderValue::from_static("99999999H")),
            Some(Duration::from_secs(99_999_999 * 3600))
        );
    }
}
