//! Overload simulation: what a client fleet's retry set-up does to a downstream whose capacity
//! drops, and to one that fails outright (model in `examples/common/overload_sim.rs`).
//!
//! ```text
//! cargo run --release -p tower-retrier-integration --example overload -- [--quick] [--out DIR] [--only capacity|server-half|outage|failures|fleet|one-bad]
//! ```
//!
//! Everything runs in paused tokio time (virtual, deterministic, seeded): a full run takes
//! seconds, not the 90 s it simulates. Each set-up is one row; each instance has its own client
//! stack `set-up's layer → tower::timeout::Timeout(100 ms per attempt) → downstream`.
//!
//! **Capacity drop** (run with a 500- and a 2,000-deep queue). 16 instances × 50 original
//! requests/s, open loop; the downstream has 10 workers × 10 ms (1,000/s) behind a bounded
//! FIFO queue, sheds (503) what arrives to a full queue, and never cancels work (a timed-out
//! request still costs a worker). 20 s healthy (80 % utilisation), 10 s with the service time
//! tripled (333/s), then 60 s. Measured: good calls/s during the trigger (calls sent then that
//! succeeded) and good answers/s received during it (the 4.8 quoted for today: it also counts the calls
//! sent in the last 10 ms before the trigger, answered after it began); recovery = from the trigger's end until ≥ 95 % of the calls sent succeed, 100 ms
//! bucket by bucket, for 5 s in a row; local rejections in the healthy phase; attempts
//! reaching the downstream per original during the trigger and after it.
//!
//! **Capacity drop with the server half** (the same, for a plain client, ours with admission
//! control off and ours as it ships): each attempt carries its 100 ms timeout as its deadline
//! (`x-envoy-expected-rq-timeout-ms`), and the downstream puts the crate's `DropExpiredLayer`
//! in front of its workers' FIFO queue, so a request whose deadline has passed when it reaches
//! the front is answered 503 at once instead of costing a worker
//! (`examples/common/overload_server_half.rs`). Each row is printed without and with it; also
//! measured: jobs served for callers that had gone, requests dropped at the front.
//!
//! **Total outage** (the retry storm's 16 × 100/s; the downstream answers at once, fails every
//! attempt for 30 s after 10 s healthy, then 10 s healthy; outside the outage one call in a
//! hundred has its first attempt fail). Measured: attempts reaching the downstream per
//! original after the outage's first 2 s, the latency of a locally rejected call, the time
//! from the downstream's return until every call succeeds.
//!
//! **Independent failures** 10 % and 50 % (brown-out), same fleet: success of the calls sent
//! during the 30 s, local rejections, load (attempts per original).
//!
//! **Low-traffic fleet**: 64 instances × 2/s in the total outage: share of originals rejected
//! locally (never sent) after the first 2 s. **One bad instance**: instance 0's calls fail
//! 100 % during the outage, the other 15 stay healthy: local rejections on each side.
//!
//! Writes `capacity_drop.csv` (summary), `capacity_drop_buckets.csv` (per 100 ms bucket),
//! `capacity_drop_server_half.csv`, `total_outage.csv`, `failures.csv`, `low_traffic_fleet.csv` and `one_bad_instance.csv`
//! into `--out` (default `bench-results/overload/`) and prints one markdown table per
//! scenario. `--quick` shortens the phases (smoke run; the figures are not the reference ones).
//!
//! Rows: [`setups`] (`Setup::baseline()`, the six baselines); an admission-control variant is
//! one more `Setup` there (see the model's module docs).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant as WallClock};

#[path = "common/overload_sim.rs"]
mod sim;

use sim::{
    CapacityDropReport, FailureReport, Front, OutageReport, Scenario, Setup, capacity_drop,
    failure_rate, low_traffic_fleet, one_bad_instance, secs, total_outage,
};

const PARTS: [&str; 6] = [
    "capacity",
    "server-half",
    "outage",
    "failures",
    "fleet",
    "one-bad",
];

struct Args {
    quick: bool,
    out: PathBuf,
    only: Option<String>,
}

impl Args {
    fn wants(&self, part: &str) -> bool {
        self.only.as_deref().is_none_or(|o| o == part)
    }

    fn scenario(&self, s: Scenario) -> Scenario {
        if self.quick { s.quick() } else { s }
    }
}

fn args() -> Args {
    let mut a = Args {
        quick: false,
        out: PathBuf::from("bench-results/overload"),
        only: None,
    };
    let usage = "[--quick] [--out DIR] [--only capacity|server-half|outage|failures|fleet|one-bad]";
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--out" => a.out = it.next().expect("--out DIR").into(),
            "--only" => {
                let part = it.next().expect(usage);
                assert!(PARTS.contains(&part.as_str()), "--only takes {usage}");
                a.only = Some(part);
            }
            other => panic!("unknown argument {other:?}; use {usage}"),
        }
    }
    a
}

/// The rows of every table, in order.
fn setups() -> Vec<Setup> {
    Setup::all()
}

/// Runs `f` for every set-up, logging each run's wall time on stderr.
fn each<T>(what: &str, setups: &[Setup], f: impl Fn(&Setup) -> T) -> Vec<T> {
    setups
        .iter()
        .map(|s| {
            let t = WallClock::now();
            let r = f(s);
            eprintln!("{what}: {} ({:.1} s)", s.name, t.elapsed().as_secs_f64());
            r
        })
        .collect()
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "never".to_owned(),
        |d| format!("{:.1} ms", d.as_secs_f64() * 1e3),
    )
}

fn csv_opt(d: Option<Duration>) -> String {
    d.map_or_else(String::new, |d| format!("{:.3}", d.as_secs_f64()))
}

fn capacity(args: &Args, setups: &[Setup]) -> Result<(), Box<dyn std::error::Error>> {
    let (s500, s2000) = (
        args.scenario(Scenario::capacity_drop(500)),
        args.scenario(Scenario::capacity_drop(2000)),
    );
    let runs: Vec<[CapacityDropReport; 2]> = each("capacity drop", setups, |setup| {
        [capacity_drop(setup, &s500), capacity_drop(setup, &s2000)]
    });
    println!(
        "\n## Capacity drop: 16 × 50/s, 10 workers × 10 ms behind a FIFO queue, {:?} healthy, {:?} at 3× service time, then {:?}\n",
        s500.healthy, s500.event, s500.after
    );
    println!(
        "| set-up | good calls/s during the trigger (queue 500 / 2,000) | good answers/s received during the trigger (500 / 2,000) | recovery, queue 500 | recovery, queue 2,000 | local rejections, healthy (500 / 2,000) | attempts / original during the trigger (500 / 2,000) | after it (500 / 2,000) | the goals |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---|");
    let mut details = Vec::new();
    let mut summary = String::from(
        "setup,queue,good_per_sec_trigger,good_answers_per_sec_trigger,recovery_s,healthy_local_rejections,trigger_local_rejections,attempts_per_original_trigger,attempts_per_original_after,max_busy,served,served_abandoned\n",
    );
    let mut buckets =
        String::from("setup,queue,bucket_start_s,originals,good,local_rejections,attempts,shed\n");
    for [a, b] in &runs {
        let missed = sim::capacity_drop_goals(&[a, b]);
        let verdict = goals(&a.setup, missed, &mut details);
        println!(
            "| {} | {:.1} / {:.1} | {:.1} / {:.1} | {} | {} | {} / {} | {:.2} / {:.2} | {:.2} / {:.2} | {verdict} |",
            a.setup,
            a.good_per_sec_trigger,
            b.good_per_sec_trigger,
            a.good_answers_per_sec_trigger,
            b.good_answers_per_sec_trigger,
            secs(a.recovery),
            secs(b.recovery),
            a.healthy_local_rejections,
            b.healthy_local_rejections,
            a.attempts_per_original_trigger,
            b.attempts_per_original_trigger,
            a.attempts_per_original_after,
            b.attempts_per_original_after,
        );
        for r in [a, b] {
            let c = &r.run.counts;
            writeln!(
                summary,
                "{},{},{:.2},{:.2},{},{},{},{:.4},{:.4},{},{},{}",
                r.setup,
                r.queue,
                r.good_per_sec_trigger,
                r.good_answers_per_sec_trigger,
                csv_opt(r.recovery),
                r.healthy_local_rejections,
                r.trigger_local_rejections,
                r.attempts_per_original_trigger,
                r.attempts_per_original_after,
                c.max_busy,
                c.served,
                c.served_abandoned
            )?;
            for i in 0..c.originals.len() {
                writeln!(
                    buckets,
                    "{},{},{:.1},{},{},{},{},{}",
                    r.setup,
                    r.queue,
                    (sim::BUCKET * i as u32).as_secs_f64(),
                    c.originals[i],
                    c.good[i],
                    c.local_rejections[i],
                    c.attempts[i],
                    c.shed[i]
                )?;
            }
        }
    }
    print_details(&details);
    write(&args.out, "capacity_drop.csv", summary)?;
    write(&args.out, "capacity_drop_buckets.csv", buckets)
}

fn server_half(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let setups = Setup::server_half_rows();
    let scenarios = [500, 2000].map(|q| args.scenario(Scenario::capacity_drop(q)));
    let floor = |s: Scenario| s.with_front(Front::DropExpired(Duration::from_millis(30)));
    let runs: Vec<[CapacityDropReport; 6]> = each("capacity drop, server half", &setups, |setup| {
        let [a, b] = scenarios;
        [
            capacity_drop(setup, &a),
            capacity_drop(setup, &b),
            capacity_drop(setup, &a.with_server_half()),
            capacity_drop(setup, &b.with_server_half()),
            capacity_drop(setup, &floor(a)),
            capacity_drop(setup, &floor(b)),
        ]
    });
    let s = scenarios[0];
    println!(
        "\n## Capacity drop with the server half: each attempt carries its {:?} timeout as its deadline; the downstream drops at the front of its queue what has outlived it ({:?} healthy, {:?} at 3× service time, then {:?})\n",
        s.attempt_timeout, s.healthy, s.event, s.after
    );
    println!(
        "| set-up | server half | good calls/s during the trigger (queue 500 / 2,000) | recovery, queue 500 | recovery, queue 2,000 | attempts / original during the trigger (500 / 2,000) | jobs served for callers gone (500 / 2,000) | dropped at the front (500 / 2,000) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    let mut csv = String::from(
        "setup,server_half,queue,good_per_sec_trigger,good_answers_per_sec_trigger,recovery_s,healthy_local_rejections,trigger_local_rejections,attempts_per_original_trigger,attempts_per_original_after,served,served_abandoned,expired_dropped\n",
    );
    for [a, b, c, d, e, f] in &runs {
        for ([r500, r2000], (on, csv_on)) in [
            ([a, b], ("off", "off")),
            ([c, d], ("**on**", "on")),
            (
                [e, f],
                ("on, `min_time_left(30 ms)`", "on_min_time_left_30ms"),
            ),
        ] {
            println!(
                "| {} | {} | {:.1} / {:.1} | {} | {} | {:.2} / {:.2} | {} / {} | {} / {} |",
                r500.setup,
                on,
                r500.good_per_sec_trigger,
                r2000.good_per_sec_trigger,
                secs(r500.recovery),
                secs(r2000.recovery),
                r500.attempts_per_original_trigger,
                r2000.attempts_per_original_trigger,
                r500.run.counts.served_abandoned,
                r2000.run.counts.served_abandoned,
                r500.run.counts.expired_dropped,
                r2000.run.counts.expired_dropped,
            );
            for r in [r500, r2000] {
                let c = &r.run.counts;
                writeln!(
                    csv,
                    "{},{},{},{:.2},{:.2},{},{},{},{:.4},{:.4},{},{},{}",
                    r.setup,
                    csv_on,
                    r.queue,
                    r.good_per_sec_trigger,
                    r.good_answers_per_sec_trigger,
                    csv_opt(r.recovery),
                    r.healthy_local_rejections,
                    r.trigger_local_rejections,
                    r.attempts_per_original_trigger,
                    r.attempts_per_original_after,
                    c.served,
                    c.served_abandoned,
                    c.expired_dropped
                )?;
            }
        }
    }
    write(&args.out, "capacity_drop_server_half.csv", csv)
}

fn outage_table(
    args: &Args,
    file: &str,
    heading: String,
    reports: &[OutageReport],
    check: fn(&OutageReport) -> Vec<String>,
) -> Result<(), Box<dyn std::error::Error>> {
    println!("\n## {heading}\n");
    println!(
        "| set-up | attempts / original after the first 2 s | originals rejected locally after the first 2 s | local rejection latency (max) | 100 % success after the return | local rejections, healthy phase | local rejections, unaffected instances | local rejections, affected instances | the goals |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---|");
    let mut details = Vec::new();
    let mut csv = String::from(
        "setup,attempts_per_original_after_2s,shed_after_2s,rejection_latency_max_s,full_success_after_s,healthy_local_rejections,unaffected_local_rejections,affected_local_rejections\n",
    );
    for r in reports {
        let verdict = goals(&r.setup, check(r), &mut details);
        println!(
            "| {} | {:.3} | {:.1} % | {} | {} | {} | {} | {} | {verdict} |",
            r.setup,
            r.attempts_per_original_after_warmup,
            r.shed_after_warmup * 100.0,
            r.rejection_latency
                .map_or_else(|| "–".to_owned(), |d| ms(Some(d))),
            secs(r.full_success_after),
            r.healthy_local_rejections,
            r.unaffected_local_rejections,
            r.affected_local_rejections
        );
        writeln!(
            csv,
            "{},{:.4},{:.4},{},{},{},{},{}",
            r.setup,
            r.attempts_per_original_after_warmup,
            r.shed_after_warmup,
            csv_opt(r.rejection_latency),
            csv_opt(r.full_success_after),
            r.healthy_local_rejections,
            r.unaffected_local_rejections,
            r.affected_local_rejections
        )?;
    }
    print_details(&details);
    write(&args.out, file, csv)
}

/// "met", or "missed k" with the details kept for after the table.
fn goals(setup: &str, missed: Vec<String>, details: &mut Vec<String>) -> String {
    if missed.is_empty() {
        return "met".to_owned();
    }
    let verdict = format!("missed {}", missed.len());
    details.push(format!("- {setup}: {}", missed.join("; ")));
    verdict
}

fn print_details(details: &[String]) {
    if !details.is_empty() {
        println!("\nGoals missed:\n");
        for d in details {
            println!("{d}");
        }
    }
}

fn describe(s: &Scenario, what: &str) -> String {
    format!(
        "{}: {} × {}/s, downstream answering at once, {:?} healthy, {:?} {what}, then {:?}",
        s.name, s.instances, s.rate, s.healthy, s.event, s.after
    )
}

fn failures(args: &Args, setups: &[Setup]) -> Result<(), Box<dyn std::error::Error>> {
    let (s10, s50) = (
        args.scenario(Scenario::failure_rate(0.1)),
        args.scenario(Scenario::failure_rate(0.5)),
    );
    let runs: Vec<[FailureReport; 2]> = each("failures", setups, |setup| {
        [failure_rate(setup, &s10), failure_rate(setup, &s50)]
    });
    println!(
        "\n## {}\n",
        describe(&s10, "of 10 % (or 50 %) of attempts failing independently")
    );
    println!(
        "| set-up | 10 %: success | 10 %: local rejections (event / healthy) | 10 %: attempts / original | 50 %: success | 50 %: local rejections (event / healthy) | 50 %: attempts / original | the goals (10 %) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---|");
    let mut details = Vec::new();
    let mut csv = String::from(
        "setup,failure_rate,success,event_local_rejections,healthy_local_rejections,attempts_per_original\n",
    );
    for [a, b] in &runs {
        let verdict = goals(&a.setup, sim::partial_failure_goals(a), &mut details);
        println!(
            "| {} | {:.2} % | {} / {} | {:.3} | {:.2} % | {} / {} | {:.3} | {verdict} |",
            a.setup,
            a.success * 100.0,
            a.event_local_rejections,
            a.healthy_local_rejections,
            a.attempts_per_original,
            b.success * 100.0,
            b.event_local_rejections,
            b.healthy_local_rejections,
            b.attempts_per_original
        );
        for r in [a, b] {
            writeln!(
                csv,
                "{},{},{:.5},{},{},{:.4}",
                r.setup,
                r.failure_rate,
                r.success,
                r.event_local_rejections,
                r.healthy_local_rejections,
                r.attempts_per_original
            )?;
        }
    }
    print_details(&details);
    write(&args.out, "failures.csv", csv)
}

fn write(dir: &Path, file: &str, text: String) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::write(dir.join(file), text)?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args();
    std::fs::create_dir_all(&args.out)?;
    let setups = setups();
    let started = WallClock::now();
    if args.wants("capacity") {
        capacity(&args, &setups)?;
    }
    if args.wants("server-half") {
        server_half(&args)?;
    }
    if args.wants("outage") {
        let s = args.scenario(Scenario::total_outage());
        let reports = each("total outage", &setups, |setup| total_outage(setup, &s));
        outage_table(
            &args,
            "total_outage.csv",
            describe(&s, "of every attempt failing"),
            &reports,
            sim::total_outage_goals,
        )?;
    }
    if args.wants("failures") {
        failures(&args, &setups)?;
    }
    if args.wants("fleet") {
        // Local state only; a fleet-wide (Redis) row is a `Setup::fleet` run in real time.
        let s = args.scenario(Scenario::low_traffic_fleet());
        let reports = each("low-traffic fleet", &setups, |setup| {
            low_traffic_fleet(setup, &s)
        });
        outage_table(
            &args,
            "low_traffic_fleet.csv",
            describe(&s, "of every attempt failing"),
            &reports,
            sim::low_traffic_fleet_goals,
        )?;
    }
    if args.wants("one-bad") {
        let s = args.scenario(Scenario::one_bad_instance());
        let reports = each("one bad instance", &setups, |setup| {
            one_bad_instance(setup, &s)
        });
        outage_table(
            &args,
            "one_bad_instance.csv",
            describe(
                &s,
                "of instance 0's attempts failing (the other 15 healthy)",
            ),
            &reports,
            sim::one_bad_instance_goals,
        )?;
    }
    eprintln!(
        "\nwrote {} ({:.1} s in all)",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
