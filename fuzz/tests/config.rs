//! Configuration from untrusted text never panics: `RetryConfig` and `HedgeConfig` from JSON
//! (serde, human durations such as "300000000000years"), and Redis budget names.

mod support;

use std::time::Duration;
use support::Runs;
use tower_retrier::RetryConfig;
use tower_retrier::budget::RedisBudget;
use tower_retrier::hedge::HedgeConfig;

#[test]
fn configs_from_json_never_panic() {
    static RUNS: Runs = Runs::new("configs_from_json");
    bolero::check!().for_each(|bytes: &[u8]| {
        RUNS.one();
        let _ = serde_json::from_slice::<RetryConfig>(bytes);
        let _ = serde_json::from_slice::<HedgeConfig>(bytes);
        // The same bytes as a duration field, where human durations are parsed.
        let text = String::from_utf8_lossy(bytes);
        let doc = serde_json::json!({ "max_delay": text, "initial_delay": text, "deadline": text });
        if let Ok(cfg) = serde_json::from_value::<RetryConfig>(doc) {
            assert!(cfg.initial_delay() <= cfg.max_delay());
        }
        let doc = serde_json::json!({ "delay": text, "max_attempts": 3 });
        let _ = serde_json::from_value::<HedgeConfig>(doc);
    });
    RUNS.report();
}

#[test]
fn redis_budget_names_never_panic() {
    static RUNS: Runs = Runs::new("redis_budget_names");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    bolero::check!().for_each(|bytes: &[u8]| {
        RUNS.one();
        let name = String::from_utf8_lossy(bytes).into_owned();
        // Not a URL: the name is checked first, then the URL fails; nothing connects.
        let built = rt.block_on(
            RedisBudget::adaptive(name)
                .connect_timeout(Duration::from_millis(1))
                .build_from_url("not a url"),
        );
        assert!(built.is_err());
    });
    RUNS.report();
}
