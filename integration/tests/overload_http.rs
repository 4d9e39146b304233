//! Admission control over real sockets: a hyper server on loopback that serves 8 requests at a
//! time (20 ms each) and sheds the rest with an immediate 503, behind hyper-util's client and
//! `RetryLayer::new_for_http` with a per-attempt timeout.
//!
//! A burst far beyond the server's capacity opens admission control (the sheds are attempts
//! the downstream did not accept), so the server stops receiving the calls it would only
//! shed; once the burst is over, the next probe closes it and every call succeeds again.

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;
use tower::ServiceBuilder;
use tower_retrier::admission::{AdmissionState, Rejected};
use tower_retrier::replay::ReplayBody;
use tower_retrier::{RetryConfig, RetryLayer};

/// Requests the server received, served and shed.
#[derive(Default)]
struct Counts {
    received: AtomicU64,
    served: AtomicU64,
    shed: AtomicU64,
}

/// A server with `capacity` workers that sheds (503) what finds them all busy.
async fn shedding_server(capacity: usize, counts: Arc<Counts>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let workers = Arc::new(Semaphore::new(capacity));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (workers, counts) = (workers.clone(), counts.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |_req: http::Request<hyper::body::Incoming>| {
                    let (workers, counts) = (workers.clone(), counts.clone());
                    async move {
                        counts.received.fetch_add(1, Ordering::Relaxed);
                        let status = match workers.try_acquire() {
                            Ok(_permit) => {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                                counts.served.fetch_add(1, Ordering::Relaxed);
                                200
                            }
                            Err(_) => {
                                counts.shed.fetch_add(1, Ordering::Relaxed);
                                503
                            }
                        };
                        let mut res = http::Response::new(Full::new(Bytes::new()));
                        *res.status_mut() = http::StatusCode::from_u16(status).unwrap();
                        Ok::<_, Infallible>(res)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shedding_server_stops_receiving_what_it_would_shed_and_recovers() {
    let counts = Arc::new(Counts::default());
    let addr = shedding_server(8, counts.clone()).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
    let cfg = RetryConfig::builder()
        .initial_delay(Duration::from_millis(5))
        .max_delay(Duration::from_millis(50))
        .build()
        .unwrap();
    let layer = RetryLayer::new_for_http(cfg);
    let admission = layer.admission().clone();
    let svc = ServiceBuilder::new()
        .layer(layer)
        .timeout(Duration::from_secs(2))
        .service(client);
    let get = || {
        http::Request::get(format!("http://{addr}/"))
            .body(Full::<Bytes>::default())
            .unwrap()
    };

    // A burst: 2,000 calls at once against 8 workers.
    let calls: Vec<_> = (0..2000)
        .map(|_| tokio::spawn(svc.clone().oneshot(get())))
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for c in calls {
        match c.await.unwrap() {
            Ok(res) if res.status() == 200 => ok += 1,
            Ok(_) => {}
            Err(e) if Rejected::find(&*e).is_some() => refused += 1,
            // A loaded machine may hold a call past its per-attempt timeout: a verdict too.
            Err(e) if e.is::<tower::timeout::error::Elapsed>() => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    let received = counts.received.load(Ordering::Relaxed);
    assert!(ok > 0, "some calls were served");
    assert!(
        refused > 0,
        "admission control refused calls during the burst"
    );
    assert!(
        received < 2000,
        "the server received {received} requests for 2,000 calls (up to 6,000 with retries): \
         refused calls never reached it"
    );

    // The burst is over: within a probe interval the downstream is admitted again, and
    // calls one at a time all succeed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut after = 0;
    for _ in 0..50 {
        if svc.clone().oneshot(get()).await.unwrap().status() == 200 {
            after += 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(after, 50, "every call succeeds once the burst is over");
    assert_ne!(admission.state(), AdmissionState::Open);
}
