//! Parsing server pushback headers (`Retry-After`, `grpc-retry-pushback-ms`) defensively.
//!
//! Whatever bytes a server sends, these functions return a delay or nothing and never panic.
//! They do not bound the delay: the engine compares it with `max_delay` and the deadline, and
//! a delay it cannot honour ends the retries (see [`Pushback`](crate::Pushback)), so a hostile
//! server can stop retries but never make a client sleep past its bounds.

use std::time::{Duration, SystemTime};

/// Parses a `Retry-After` value (RFC 9110 §10.2.3): delta-seconds (`120`) or an HTTP-date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`), relative to `now`.
///
/// Returns `None`, meaning "ignore the header and use the backoff", for anything malformed
/// (signs, fractions, spaces inside, non-ASCII) and for a date already in the past (clock
/// skew makes it meaningless). A number of seconds too large for a `u64` is a valid (absurdly
/// long) request and reads as `Duration::MAX`.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_retrier::classify::parse_retry_after;
///
/// let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_000);
/// assert_eq!(parse_retry_after(b"2", now), Some(Duration::from_secs(2)));
/// assert_eq!(parse_retry_after(b"Wed, 21 Oct 2015 07:21:00 GMT", now), Some(Duration::from_secs(60)));
/// assert_eq!(parse_retry_after(b"-1", now), None);
/// assert_eq!(parse_retry_after(b"3600", now), Some(Duration::from_secs(3600)));
/// ```
pub fn parse_retry_after(value: &[u8], now: SystemTime) -> Option<Duration> {
    let value = trim(value);
    if value.is_empty() {
        return None;
    }
    if value.iter().all(u8::is_ascii_digit) {
        return Some(parse_digits(value).map_or(Duration::MAX, Duration::from_secs));
    }
    let text = std::str::from_utf8(value).ok()?;
    let at = httpdate::parse_http_date(text).ok()?;
    at.duration_since(now).ok()
}

/// Parses `grpc-retry-pushback-ms` (gRFC A6): a non-negative decimal number of milliseconds.
///
/// `Ok(d)`: wait `d`, then retry. `Err(())`: negative or unparsable, which gRFC A6 defines as
/// "do not retry". A number too large for a `u64` is valid and reads as `Duration::MAX`.
///
/// ```
/// use std::time::Duration;
/// use tower_retrier::classify::parse_grpc_pushback;
///
/// assert_eq!(parse_grpc_pushback(b"250"), Ok(Duration::from_millis(250)));
/// assert_eq!(parse_grpc_pushback(b"-1"), Err(()));
/// assert_eq!(parse_grpc_pushback(b"soon"), Err(()));
/// assert_eq!(parse_grpc_pushback(b"3600000"), Ok(Duration::from_secs(3600)));
/// ```
#[allow(clippy::result_unit_err)]
pub fn parse_grpc_pushback(value: &[u8]) -> Result<Duration, ()> {
    let value = trim(value);
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(());
    }
    // All digits but too long for u64: a huge positive number, i.e. absurd, not malformed.
    Ok(parse_digits(value).map_or(Duration::MAX, Duration::from_millis))
}

fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// Decimal digits to a number; `None` on overflow.
fn parse_digits(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |acc, d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> SystemTime {
        // Wed, 21 Oct 2015 07:20:00 GMT
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_000)
    }

    #[test]
    fn delta_seconds() {
        assert_eq!(parse_retry_after(b"0", now()), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after(b" 7 ", now()),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_retry_after(b"3600", now()),
            Some(Duration::from_secs(3600))
        );
        // Valid but absurd: the engine will refuse to wait that long and stop retrying.
        assert_eq!(
            parse_retry_after(b"99999999999999999999999", now()),
            Some(Duration::MAX)
        );
    }

    #[test]
    fn http_dates_in_all_three_formats() {
        let in_90s = Some(Duration::from_secs(90));
        for v in [
            "Wed, 21 Oct 2015 07:21:30 GMT",
            "Wednesday, 21-Oct-15 07:21:30 GMT",
            "Wed Oct 21 07:21:30 2015",
        ] {
            assert_eq!(parse_retry_after(v.as_bytes(), now()), in_90s, "{v}");
        }
        // In the past: ignored rather than "retry now".
        assert_eq!(
            parse_retry_after(b"Wed, 21 Oct 2015 07:19:00 GMT", now()),
            None
        );
        // An hour ahead: taken at its word (the engine decides whether it can wait).
        assert_eq!(
            parse_retry_after(b"Wed, 21 Oct 2015 08:20:00 GMT", now()),
            Some(Duration::from_secs(3600))
        );
    }

    #[test]
    fn malformed_values_are_ignored() {
        for v in [
            &b""[..],
            b"   ",
            b"-1",
            b"+5",
            b"1.5",
            b"1e3",
            b"0x10",
            b"5 s",
            b"Thu, 32 Oct 2015 07:21:30 GMT",
            b"\xff\xfe",
            b"\0",
            "٣".as_bytes(),
        ] {
            assert_eq!(parse_retry_after(v, now()), None, "{v:?}");
        }
    }

    #[test]
    fn grpc_pushback() {
        assert_eq!(parse_grpc_pushback(b"0"), Ok(Duration::ZERO));
        assert_eq!(
            parse_grpc_pushback(b"1500"),
            Ok(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_grpc_pushback(b"300001"),
            Ok(Duration::from_millis(300_001))
        );
        assert_eq!(
            parse_grpc_pushback(b"184467440737095516150"),
            Ok(Duration::MAX)
        );
        for bad in [&b""[..], b"-5", b"1.5", b"abc", b"\xff", b"1 2"] {
            assert_eq!(parse_grpc_pushback(bad), Err(()), "{bad:?}");
        }
    }

    /// Property-style: no byte string of up to 4 bytes from a hostile alphabet, nor any of
    /// many random byte strings, panics; a delay comes only from digits or a future date.
    #[test]
    fn never_panics_and_never_exceeds_the_bound() {
        let alphabet = b"09 -+.,:GMTWed\xff\0\t";
        let mut checked = 0u32;
        let mut buf = Vec::new();
        fn go(buf: &mut Vec<u8>, alphabet: &[u8], depth: usize, checked: &mut u32) {
            let digits = {
                let t = trim(buf);
                !t.is_empty() && t.iter().all(u8::is_ascii_digit)
            };
            // Four bytes cannot hold an HTTP date: only digits give a delay.
            assert_eq!(parse_retry_after(buf, now()).is_some(), digits, "{buf:?}");
            assert_eq!(parse_grpc_pushback(buf).is_ok(), digits, "{buf:?}");
            *checked += 1;
            if depth == 4 {
                return;
            }
            for &b in alphabet {
                buf.push(b);
                go(buf, alphabet, depth + 1, checked);
                buf.pop();
            }
        }
        go(&mut buf, alphabet, 0, &mut checked);
        assert!(checked > 20_000);

        // Random lengths and bytes (xorshift, fixed seed).
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let _ = parse_retry_after(&bytes, now());
            let _ = parse_grpc_pushback(&bytes);
        }
    }
}
