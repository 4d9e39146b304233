//! Property tests (proptest): the budgets' documented bounds over random traces of deposits,
//! withdrawals, successes and clock jumps (tokio's paused time), the backoffs' bounds, and
//! the header parsers on arbitrary bytes. `PROPTEST_CASES=10000` runs more cases.

use proptest::prelude::*;
use std::time::{Duration, SystemTime};
use tower_retrier::backoff::{
    Backoff, BackoffContext, Constant, DecorrelatedJitter, EqualJitter, Exponential, FullJitter,
    Linear,
};
use tower_retrier::budget::{AdaptiveBudget, Budget, RatioBudget};
use tower_retrier::classify::{parse_grpc_pushback, parse_retry_after};

#[derive(Clone, Debug)]
enum Op {
    /// Original requests (ratio budget) or successes (adaptive budget).
    Earn(u16),
    /// Retries asked for.
    Ask(u8),
    /// The clock moves on (up to 25 s: more than a window).
    Wait(u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u16..300).prop_map(Op::Earn),
        3 => (1u8..40).prop_map(Op::Ask),
        2 => (0u32..25_000).prop_map(Op::Wait),
        1 => (0u32..300).prop_map(Op::Wait),
    ]
}

fn paused() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

proptest! {
    /// `RatioBudget`: for every granted retry at time t, the retries granted in the last
    /// 0.9 × ttl are at most `min_per_sec × ttl + ratio × (requests made in the last ttl)`.
    /// (The window is `SLOTS` = 10 slots, so what it counts spans 0.9 to 1 ttl; requests are
    /// never counted later than they were made.) Exact fixed-point arithmetic, in tenths.
    #[test]
    fn ratio_budget_bound_holds_over_random_traces(
        ttl_s in 1u64..=20,
        min_per_sec in 0u32..3,
        ratio_tenths in 0u64..=15,
        ops in prop::collection::vec(op(), 1..60),
    ) {
        paused().block_on(async {
            let ttl = Duration::from_secs(ttl_s);
            let b = RatioBudget::new(ttl, min_per_sec, ratio_tenths as f64 / 10.0).unwrap();
            let t0 = tokio::time::Instant::now();
            let mut deposits: Vec<Duration> = Vec::new();
            let mut grants: Vec<Duration> = Vec::new();
            for op in ops {
                match op {
                    Op::Earn(n) => {
                        let at = t0.elapsed();
                        for _ in 0..n {
                            b.deposit();
                            deposits.push(at);
                        }
                    }
                    Op::Wait(ms) => tokio::time::advance(Duration::from_millis(ms.into())).await,
                    Op::Ask(n) => {
                        for _ in 0..n {
                            if !b.withdraw().await {
                                continue;
                            }
                            let t = t0.elapsed();
                            grants.push(t);
                            let recent = t.saturating_sub(ttl * 9 / 10);
                            let granted = grants.iter().filter(|g| **g > recent || t < ttl * 9 / 10).count() as u64;
                            let earned = deposits
                                .iter()
                                .filter(|d| **d + ttl > t)
                                .count() as u64;
                            let allowed_tenths =
                                u64::from(min_per_sec) * ttl_s * 10 + ratio_tenths * earned;
                            prop_assert!(
                                granted * 10 <= allowed_tenths,
                                "at {t:?}: {granted} granted in the last 0.9 ttl, {earned} requests in the last ttl"
                            );
                        }
                    }
                }
            }
            Ok(())
        })?;
    }

    /// `AdaptiveBudget`: retries granted never exceed the starting stock plus what successes
    /// and the clock earned, and the stock never exceeds `max_retries`.
    #[test]
    fn adaptive_budget_never_grants_more_than_it_earned(
        max_retries in 1u32..200,
        per_success_tenths in 0u64..=20,
        min_per_sec in 0u32..3,
        ops in prop::collection::vec(op(), 1..60),
    ) {
        prop_assume!(min_per_sec <= max_retries);
        paused().block_on(async {
            let b = AdaptiveBudget::new(max_retries, per_success_tenths as f64 / 10.0, min_per_sec).unwrap();
            let t0 = tokio::time::Instant::now();
            let (mut successes, mut granted) = (0u64, 0u64);
            for op in ops {
                match op {
                    Op::Earn(n) => {
                        for _ in 0..n {
                            b.record_success();
                        }
                        successes += u64::from(n);
                    }
                    Op::Wait(ms) => tokio::time::advance(Duration::from_millis(ms.into())).await,
                    Op::Ask(n) => {
                        for _ in 0..n {
                            granted += u64::from(b.withdraw().await);
                        }
                    }
                }
                prop_assert!(b.remaining() <= u64::from(max_retries));
                // The clock's share, in tenths of a retry, rounded up (the budget rounds down).
                let by_time_tenths =
                    (u64::from(min_per_sec) * t0.elapsed().as_millis() as u64).div_ceil(100);
                let earned_tenths =
                    u64::from(max_retries) * 10 + per_success_tenths * successes + by_time_tenths;
                prop_assert!(granted * 10 <= earned_tenths, "{granted} granted, {successes} successes");
            }
            Ok(())
        })?;
    }

    /// Every backoff stays within its cap, whatever the parameters and the retry number
    /// (no overflow, no panic on huge durations or bases).
    #[test]
    fn backoffs_never_exceed_their_cap(
        initial_ns in any::<u64>(),
        max_ns in any::<u64>(),
        max_secs in prop_oneof![Just(None), any::<u64>().prop_map(Some)],
        base in prop_oneof![Just(1.0f64), 1.0f64..1e6, Just(f64::MAX), Just(f64::INFINITY), Just(f64::NAN)],
        jitter in prop_oneof![Just(0.0f64), 0.0f64..=1.0, Just(f64::NAN), Just(7.0)],
        retry in prop_oneof![1u32..20, any::<u32>()],
        seed in any::<u64>(),
    ) {
        let initial = Duration::from_nanos(initial_ns);
        let max = max_secs.map_or(Duration::from_nanos(max_ns), |s| Duration::new(s, 999_999_999));
        let mut ctx = BackoffContext::new(retry, seed);
        let e = Exponential::new(initial, max, base).with_jitter(jitter);
        prop_assert!(e.delay(&mut ctx) <= max);
        prop_assert!(Exponential::new(initial, max, base).without_jitter().delay(&mut ctx) <= max);
        prop_assert!(FullJitter::new(initial, max).multiplier(base).delay(&mut ctx) <= max);
        prop_assert!(EqualJitter::new(initial, max).delay(&mut ctx) <= max);
        prop_assert!(DecorrelatedJitter::new(initial.min(max), max).delay(&mut ctx) <= max);
        prop_assert!(Linear::new(initial, initial, max).delay(&mut ctx) <= max);
        prop_assert_eq!(Constant::new(initial).delay(&mut ctx), initial);
    }

    /// The pushback parsers return a value or nothing for any bytes, never panic, and a
    /// `Retry-After` date is never in the past.
    #[test]
    fn pushback_parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64), now_s in any::<u32>()) {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(now_s.into());
        let _ = parse_retry_after(&bytes, now);
        let _ = parse_grpc_pushback(&bytes);
    }

    /// HTTP-dates and digit strings specifically (most random bytes are rejected early).
    #[test]
    fn retry_after_dates_and_numbers(
        secs in any::<u64>(),
        date_s in 0u64..253_402_300_799,
        now_s in 0u64..253_402_300_799,
        pad in "[ \t]{0,3}",
    ) {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(now_s);
        let digits = format!("{pad}{secs}{pad}");
        prop_assert_eq!(parse_retry_after(digits.as_bytes(), now), Some(Duration::from_secs(secs)));
        let date = httpdate_of(date_s);
        let parsed = parse_retry_after(date.as_bytes(), now);
        if date_s >= now_s {
            prop_assert_eq!(parsed, Some(Duration::from_secs(date_s - now_s)));
        } else {
            prop_assert_eq!(parsed, None);
        }
    }
}

/// IMF-fixdate for `secs` since the epoch.
fn httpdate_of(secs: u64) -> String {
    httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}
