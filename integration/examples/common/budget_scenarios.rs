//! The budget scenarios of `retry_storm`: a fleet of instances, each through its own
//! `RetryLayer`, against one downstream that fails in a scripted way.
//!
//! Scenarios (16 instances × 100 original requests/s, 10 s healthy first):
//! - total outage: every attempt fails for 30 s, then 10 s healthy;
//! - partial failure: 10 % of attempts fail independently for 30 s;
//! - brown-out: 50 % of attempts fail independently for 30 s.
//!
//! Outside the event the first attempt of one call in a hundred fails (a blip a retry always
//! fixes), so that retries are asked for all the time and a budget left empty after the outage
//! shows up as failed calls and denied retries.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::future::{Future, Ready, ready};
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::{Layer, Service};
use tower_retrier::budget::Budget;
use tower_retrier::{RetryConfig, RetryLayer};

/// Instances in the fleet.
pub const FLEET: usize = 16;
/// Original requests per second per instance.
pub const RATE: u32 = 100;
/// Width of a counting bucket.
pub const BUCKET: Duration = Duration::from_millis(100);

/// How the downstream fails during the event.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    /// Every attempt fails.
    Outage,
    /// Each attempt fails independently with this probability.
    Failing(f64),
}

/// One scenario's timeline.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    pub name: &'static str,
    pub fault: Fault,
    pub healthy: Duration,
    pub event: Duration,
    pub after: Duration,
}

impl Scenario {
    pub fn all(quick: bool) -> [Scenario; 3] {
        let (healthy, event, after) = if quick {
            (
                Duration::from_secs(10),
                Duration::from_secs(5),
                Duration::from_secs(5),
            )
        } else {
            (
                Duration::from_secs(10),
                Duration::from_secs(30),
                Duration::from_secs(10),
            )
        };
        [
            Scenario {
                name: "total outage",
                fault: Fault::Outage,
                healthy,
                event,
                after,
            },
            Scenario {
                name: "partial failure 10 %",
                fault: Fault::Failing(0.1),
                healthy,
                event,
                after: Duration::from_secs(2),
            },
            Scenario {
                name: "brown-out 50 %",
                fault: Fault::Failing(0.5),
                healthy,
                event,
                after: Duration::from_secs(2),
            },
        ]
    }

    pub fn total(&self) -> Duration {
        self.healthy + self.event + self.after
    }

    pub fn event_end(&self) -> Duration {
        self.healthy + self.event
    }

    pub fn buckets(&self) -> usize {
        (self.total().as_nanos() / BUCKET.as_nanos()) as usize
    }

    pub fn bucket_of(&self, t: Duration) -> usize {
        ((t.as_nanos() / BUCKET.as_nanos()) as usize).min(self.buckets() - 1)
    }
}

/// Per-bucket counts of one run.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    /// Original requests sent (by send time).
    pub originals: Vec<u64>,
    /// Attempts reaching the downstream (by attempt time).
    pub attempts: Vec<u64>,
    /// Calls that finally succeeded (by send time).
    pub succeeded: Vec<u64>,
    /// Retries granted and denied by the budget (by decision time).
    pub granted: Vec<u64>,
    pub denied: Vec<u64>,
}

impl Counts {
    fn new(n: usize) -> Self {
        Counts {
            originals: vec![0; n],
            attempts: vec![0; n],
            succeeded: vec![0; n],
            granted: vec![0; n],
            denied: vec![0; n],
        }
    }
}

struct Shared {
    start: Instant,
    scenario: Scenario,
    counts: Mutex<Counts>,
    faults: Mutex<Faults>,
}

impl Shared {
    fn bucket_now(&self) -> usize {
        self.scenario.bucket_of(self.start.elapsed())
    }
}

struct Faults {
    rng: u64,
    /// Calls whose first attempt already failed as a background blip.
    blipped: HashSet<u64>,
}

impl Faults {
    /// xorshift64*: deterministic under the paused clock (one thread, fixed order).
    fn uniform(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The downstream: answers at once, failing as the scenario says.
#[derive(Clone)]
struct Downstream(Arc<Shared>);

impl Service<u64> for Downstream {
    type Response = u64;
    type Error = std::io::Error;
    type Future = Ready<Result<u64, std::io::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u64) -> Self::Future {
        let s = &self.0;
        let now = s.start.elapsed();
        s.counts.lock().unwrap().attempts[s.scenario.bucket_of(now)] += 1;
        let in_event = now >= s.scenario.healthy && now < s.scenario.event_end();
        let mut faults = s.faults.lock().unwrap();
        let fail = if in_event {
            match s.scenario.fault {
                Fault::Outage => true,
                Fault::Failing(p) => faults.uniform() < p,
            }
        } else {
            req.is_multiple_of(100) && faults.blipped.insert(req)
        };
        ready(if fail {
            Err(std::io::Error::other("503 service unavailable"))
        } else {
            Ok(req)
        })
    }
}

/// A budget that counts its decisions per bucket.
#[derive(Clone)]
struct Counted<B> {
    inner: B,
    shared: Arc<Shared>,
}

impl<B> Budget for Counted<B>
where
    B: Budget,
    B::Withdraw: Send + 'static,
{
    type Withdraw = Pin<Box<dyn Future<Output = bool> + Send>>;

    fn deposit(&self) {
        self.inner.deposit()
    }

    fn withdraw(&self) -> Self::Withdraw {
        let decision = self.inner.withdraw();
        let shared = self.shared.clone();
        Box::pin(async move {
            let granted = decision.await;
            let b = shared.bucket_now();
            let mut c = shared.counts.lock().unwrap();
            if granted {
                c.granted[b] += 1;
            } else {
                c.denied[b] += 1;
            }
            granted
        })
    }

    fn record_success(&self) {
        self.inner.record_success()
    }
}

/// Runs one scenario with one budget per instance.
pub async fn run<B>(budgets: Vec<B>, scenario: Scenario, seed: u64) -> Counts
where
    B: Budget + Clone + Send + Sync + 'static,
    B::Withdraw: Send + 'static,
{
    let n = budgets.len() as u32;
    let shared = Arc::new(Shared {
        start: Instant::now(),
        scenario,
        counts: Mutex::new(Counts::new(scenario.buckets())),
        faults: Mutex::new(Faults {
            rng: seed | 1,
            blipped: HashSet::new(),
        }),
    });
    let start = shared.start;
    let period = Duration::from_secs(1) / RATE;
    let mut instances = JoinSet::new();
    for (i, budget) in budgets.into_iter().enumerate() {
        let budget = Counted {
            inner: budget,
            shared: shared.clone(),
        };
        let svc = RetryLayer::new(RetryConfig::default())
            .with_budget(budget)
            .seed(seed.wrapping_add(i as u64))
            .layer(Downstream(shared.clone()));
        let shared = shared.clone();
        instances.spawn(async move {
            let mut tick = tokio::time::interval_at(start + period * i as u32 / n, period);
            let mut calls = JoinSet::new();
            for seq in 0u64.. {
                let at = tick.tick().await.duration_since(start);
                if at >= scenario.total() {
                    break;
                }
                let b = scenario.bucket_of(at);
                shared.counts.lock().unwrap().originals[b] += 1;
                let call = svc.clone().oneshot(((i as u64) << 32) | seq);
                let shared = shared.clone();
                calls.spawn(async move {
                    if call.await.is_ok() {
                        shared.counts.lock().unwrap().succeeded[b] += 1;
                    }
                });
            }
            while calls.join_next().await.is_some() {}
        });
    }
    while instances.join_next().await.is_some() {}
    shared.counts.lock().unwrap().clone()
}

/// One set-up's results over every scenario.
pub struct Row {
    pub setup: String,
    pub clock: &'static str,
    /// Per scenario (in `Scenario::all` order).
    pub runs: Vec<Counts>,
}

fn sum(v: &[u64], from: usize, to: usize) -> u64 {
    v[from..to].iter().sum()
}

/// Figures of one run.
pub struct Figures {
    /// Attempts per original during the event.
    pub amplification: f64,
    /// Share of the calls sent during the event that finally succeeded.
    pub success: f64,
    /// After the event: time until every later bucket's calls all succeed.
    pub full_success_after: Option<Duration>,
    /// After the event: time until the budget denies nothing in any later bucket.
    pub no_denials_after: Option<Duration>,
    /// Retries granted after the event.
    pub granted_after: u64,
}

pub fn figures(s: &Scenario, c: &Counts) -> Figures {
    let (a, e) = (s.bucket_of(s.healthy), s.bucket_of(s.event_end()));
    let last = s.buckets();
    let settle = |bad: &dyn Fn(usize) -> bool| {
        // Leave the last 400 ms out: calls sent then may not have been answered by the end.
        let tail = last - 4;
        match (e..tail).rev().find(|&b| bad(b)) {
            None => Some(Duration::ZERO),
            Some(b) if b + 1 < tail => Some(BUCKET * (b + 1 - e) as u32),
            Some(_) => None,
        }
    };
    Figures {
        amplification: sum(&c.attempts, a, e) as f64 / sum(&c.originals, a, e) as f64,
        success: sum(&c.succeeded, a, e) as f64 / sum(&c.originals, a, e) as f64,
        full_success_after: settle(&|b| c.succeeded[b] < c.originals[b]),
        no_denials_after: settle(&|b| c.denied[b] > 0),
        granted_after: sum(&c.granted, e, last),
    }
}

fn ms(d: Option<Duration>) -> String {
    match d {
        Some(d) => format!("{} ms", d.as_millis()),
        None => "never".to_owned(),
    }
}

/// Prints the table and writes `budgets.csv`, `budgets_summary.csv` and `budgets.svg`.
pub fn report(
    out: &Path,
    scenarios: &[Scenario; 3],
    rows: &[Row],
) -> Result<(), Box<dyn std::error::Error>> {
    let [outage, partial, brown] = scenarios;
    println!(
        "\n## Retry budgets: {FLEET} instances × {RATE} original requests/s, {:?} healthy, then {:?} of: total outage | 10 % of attempts failing | 50 % failing\n",
        outage.healthy, outage.event
    );
    println!(
        "| set-up | clock | outage: attempts / original | outage, after: 100 % success after | outage, after: no denial after | outage, after: retries granted | 10 %: final success | 10 %: attempts / original | 50 %: final success | 50 %: attempts / original |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut summary = String::from(
        "setup,clock,scenario,attempts_per_original,final_success,full_success_after_ms,no_denials_after_ms,granted_after\n",
    );
    for r in rows {
        let o = figures(outage, &r.runs[0]);
        let p = figures(partial, &r.runs[1]);
        let b = figures(brown, &r.runs[2]);
        println!(
            "| {} | {} | {:.3} | {} | {} | {} | {:.2} % | {:.3} | {:.2} % | {:.3} |",
            r.setup,
            r.clock,
            o.amplification,
            ms(o.full_success_after),
            ms(o.no_denials_after),
            o.granted_after,
            p.success * 100.0,
            p.amplification,
            b.success * 100.0,
            b.amplification
        );
        for (s, f) in [(outage, &o), (partial, &p), (brown, &b)] {
            let opt = |d: Option<Duration>| d.map_or("".to_owned(), |d| d.as_millis().to_string());
            writeln!(
                summary,
                "{},{},{},{:.4},{:.5},{},{},{}",
                r.setup,
                r.clock,
                s.name,
                f.amplification,
                f.success,
                opt(f.full_success_after),
                opt(f.no_denials_after),
                f.granted_after
            )?;
        }
    }
    std::fs::write(out.join("budgets_summary.csv"), summary)?;

    // Per 500 ms (the summary has the 100 ms figures): small enough to keep in the repository.
    const PER_ROW: usize = 5;
    let mut csv =
        String::from("setup,scenario,bucket_start_s,originals,attempts,succeeded,granted,denied\n");
    for r in rows {
        for (s, c) in scenarios.iter().zip(&r.runs) {
            for b in (0..s.buckets()).step_by(PER_ROW) {
                let e = (b + PER_ROW).min(s.buckets());
                writeln!(
                    csv,
                    "{},{},{:.1},{},{},{},{},{}",
                    r.setup,
                    s.name,
                    (BUCKET * b as u32).as_secs_f64(),
                    sum(&c.originals, b, e),
                    sum(&c.attempts, b, e),
                    sum(&c.succeeded, b, e),
                    sum(&c.granted, b, e),
                    sum(&c.denied, b, e)
                )?;
            }
        }
    }
    std::fs::write(out.join("budgets.csv"), csv)?;
    chart(&out.join("budgets.svg"), outage, rows)?;
    println!(
        "\nwrote {}/budgets.csv, budgets_summary.csv, budgets.svg",
        out.display()
    );
    Ok(())
}

/// Attempts per original over time in the total outage, one line per set-up, 500 ms points.
fn chart(path: &Path, s: &Scenario, rows: &[Row]) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    const PER_POINT: usize = 5;
    let root = SVGBackend::new(path, (1200, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let (title, body) = root.split_vertically(40);
    title.draw_text(
        &format!(
            "Total outage, {FLEET} instances × {RATE} req/s: attempts per original request (500 ms points); downstream down in the shaded span"
        ),
        &("sans-serif", 17).into_text_style(&title),
        (20, 12),
    )?;
    let points = |c: &Counts| -> Vec<(f64, f64)> {
        (0..s.buckets() / PER_POINT)
            .map(|p| {
                let (a, b) = (p * PER_POINT, (p + 1) * PER_POINT);
                let o = sum(&c.originals, a, b).max(1) as f64;
                let x = (BUCKET * (a as u32) + BUCKET * PER_POINT as u32 / 2).as_secs_f64();
                (x, sum(&c.attempts, a, b) as f64 / o)
            })
            .collect()
    };
    let y_max = rows
        .iter()
        .flat_map(|r| points(&r.runs[0]))
        .map(|(_, y)| y)
        .fold(1.0f64, f64::max)
        .ceil()
        + 0.2;
    let mut c = ChartBuilder::on(&body)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..s.total().as_secs_f64(), 0.8f64..y_max)?;
    c.configure_mesh()
        .x_desc("time (s)")
        .y_desc("attempts / originals")
        .draw()?;
    c.draw_series(std::iter::once(Rectangle::new(
        [
            (s.healthy.as_secs_f64(), 0.8),
            (s.event_end().as_secs_f64(), y_max),
        ],
        RGBColor(0, 0, 0).mix(0.07).filled(),
    )))?;
    let palette = [
        RGBColor(214, 39, 40),
        RGBColor(31, 119, 180),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(255, 127, 14),
        RGBColor(23, 190, 207),
        RGBColor(140, 86, 75),
    ];
    for (r, color) in rows.iter().zip(palette.iter().cycle()) {
        let color = *color;
        c.draw_series(LineSeries::new(points(&r.runs[0]), color.stroke_width(2)))?
            .label(r.setup.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
