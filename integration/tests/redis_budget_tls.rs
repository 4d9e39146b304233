//! RedisBudget over TLS (`rediss://`, feature `redis-tls`) with a private CA and ACL
//! credentials, against a real redis-server with a TLS listener.

mod support;

use fred::types::config::{TlsConfig, TlsConnector};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::time::Duration;
use support::redis::{Options, RedisServer, TlsFiles};
use tower_retrier::budget::redis::RedisBudgetError;
use tower_retrier::budget::{Budget, RedisBudget};

fn trusting(ca: &std::path::Path) -> TlsConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("read CA") {
        roots.add(cert.expect("CA pem")).expect("add CA");
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConfig::from(TlsConnector::from(config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_private_ca_and_acl_credentials() {
    let dir = RedisServer::temp_dir();
    let files = TlsFiles::generate(&dir);
    let server = RedisServer::start_with(Options {
        tls: Some(files.clone()),
        ..Options::default()
    });
    assert_eq!(
        server.command(&[
            "ACL",
            "SETUSER",
            "tlsuser",
            "on",
            ">tls-s3cret",
            "~{rb:*",
            "+@all"
        ]),
        "OK"
    );
    let url = format!(
        "rediss://tlsuser:tls-s3cret@127.0.0.1:{}",
        server.tls_port()
    );

    let budget = RedisBudget::builder("tls")
        .min_per_sec(1)
        .ratio(0.0)
        .lease_size(1)
        .command_timeout(Duration::from_millis(500))
        .tls(trusting(&files.ca))
        .build_from_url(&url)
        .await
        .expect("TLS + ACL");
    let mut granted = 0;
    for _ in 0..20 {
        granted += usize::from(budget.withdraw().await);
    }
    assert_eq!(granted, 10, "floor of 1/s × 10 s through Redis");
    assert_eq!(budget.stats().fallback_decisions, 0);
    assert!(!format!("{budget:?}").contains("s3cret"));

    // The certificate is really checked: the system roots do not trust the test CA.
    let err = RedisBudget::builder("tls")
        .build_from_url(&url)
        .await
        .expect_err("untrusted certificate");
    assert!(matches!(err, RedisBudgetError::Connect { .. }), "{err:?}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
    println!("untrusted CA: {err}");
    let _ = std::fs::remove_dir_all(dir);
}
