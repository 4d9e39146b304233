//! The shipped defaults (admission control on: breaker + concurrency limit) against the
//! overload goals, in the simulation of `examples/overload.rs` (paused time, deterministic,
//! full phases): a capacity drop with a 500- and a 2,000-deep queue, a total outage,
//! independent failures of 10 % and 50 %, and one broken instance among healthy ones.

#[path = "../examples/common/overload_sim.rs"]
mod sim;

use sim::{
    Scenario, Setup, capacity_drop, capacity_drop_goals, failure_rate, one_bad_instance,
    one_bad_instance_goals, partial_failure_goals, total_outage, total_outage_goals,
};
use std::time::Duration;
use tower_retrier::admission::Admission;

fn defaults() -> Setup {
    Setup::ours_admission("ours, defaults", Admission::default)
}

#[test]
fn the_defaults_serve_half_the_degraded_capacity_and_recover_within_a_second() {
    let setup = defaults();
    let small = capacity_drop(&setup, &Scenario::capacity_drop(500));
    let deep = capacity_drop(&setup, &Scenario::capacity_drop(2000));
    assert_eq!(capacity_drop_goals(&[&small, &deep]), Vec::<String>::new());
    for r in [&small, &deep] {
        // Measured (BENCHMARKS.md): 233 good calls/s, recovery 0.1 s; admission off: 4.0
        // good calls/s, recovery 2.4 s / 10.5 s.
        assert!(r.good_per_sec_trigger > 200.0, "{}", r.good_per_sec_trigger);
        assert!(r.recovery.is_some_and(|d| d <= Duration::from_millis(500)));
        assert_eq!(r.healthy_local_rejections, 0);
    }
}

#[test]
fn the_defaults_stop_a_dead_downstreams_load_and_recover_within_a_second() {
    let r = total_outage(&defaults(), &Scenario::total_outage());
    assert_eq!(total_outage_goals(&r), Vec::<String>::new());
    // Four probes a second per instance at 100 calls/s.
    assert!(r.attempts_per_original_after_warmup <= 0.05);
    assert!(
        r.rejection_latency
            .is_some_and(|d| d < Duration::from_millis(1))
    );
    assert!(
        r.full_success_after
            .is_some_and(|d| d <= Duration::from_secs(1))
    );
}

#[test]
fn partial_failures_are_left_to_retries() {
    let ten = failure_rate(&defaults(), &Scenario::failure_rate(0.1));
    assert_eq!(partial_failure_goals(&ten), Vec::<String>::new());
    assert!(ten.success >= 0.998);
    // A brown-out: half the attempts fail, yet half are served; the breaker (80 %) stays
    // closed and the retry budget alone limits the extra load.
    let half = failure_rate(&defaults(), &Scenario::failure_rate(0.5));
    assert_eq!(
        half.event_local_rejections + half.healthy_local_rejections,
        0
    );
    assert!(
        half.attempts_per_original < 1.2,
        "{}",
        half.attempts_per_original
    );
}

#[test]
fn one_broken_instance_never_makes_the_healthy_ones_refuse() {
    let r = one_bad_instance(&defaults(), &Scenario::one_bad_instance());
    assert_eq!(one_bad_instance_goals(&r), Vec::<String>::new());
}
