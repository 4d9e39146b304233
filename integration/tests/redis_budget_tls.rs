//! RedisBudget over TLS (`rediss://`, feature `redis-tls`) with a private CA and ACL
//! credentials, against a real redis-server with a TLS listener.

mod support;

use fred::types::config::{TlsConfig, TlsConnector};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::time::Duration;
use support::redis::{Leaf, Options, RedisServer, TlsFiles};
use tower_retrier::budget::redis::{RedisBudgetError, TlsRejection};
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

    let budget = RedisBudget::ratio("tls")
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
    let err = RedisBudget::ratio("tls")
        .build_from_url(&url)
        .await
        .expect_err("untrusted certificate");
    assert!(matches!(err, RedisBudgetError::Connect { .. }), "{err:?}");
    assert_eq!(
        err.tls_rejection(),
        Some(TlsRejection::UntrustedIssuer),
        "{err}"
    );
    assert!(
        err.to_string().contains("not signed by a trusted CA"),
        "{err}"
    );
    assert!(!err.to_string().contains("s3cret"), "{err}");
    println!("untrusted CA: {err}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Connects to a TLS server presenting `leaf` (issued by the trusted test CA) and returns the
/// build error.
async fn refused(dir: &std::path::Path, ca: &std::path::Path, leaf: Leaf) -> RedisBudgetError {
    let server = RedisServer::start_with(Options {
        tls: Some(TlsFiles::issue(dir, &format!("{leaf:?}"), leaf)),
        ..Options::default()
    });
    let url = format!("rediss://127.0.0.1:{}", server.tls_port());
    tokio::time::timeout(
        Duration::from_secs(10),
        RedisBudget::adaptive("tls")
            .tls(trusting(ca))
            .build_from_url(&url),
    )
    .await
    .expect("bounded by connect_timeout")
    .expect_err("the certificate must be refused")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_refused_with_a_clear_error() {
    let dir = RedisServer::temp_dir();
    let files = TlsFiles::generate(&dir);
    let err = refused(&dir, &files.ca, Leaf::Expired).await;
    println!("expired: {err}");
    assert!(matches!(err, RedisBudgetError::Connect { .. }), "{err:?}");
    assert_eq!(err.tls_rejection(), Some(TlsRejection::Expired), "{err}");
    assert!(err.to_string().contains("certificate has expired"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_host_is_refused_with_a_clear_error() {
    let dir = RedisServer::temp_dir();
    let files = TlsFiles::generate(&dir);
    let err = refused(&dir, &files.ca, Leaf::WrongName).await;
    println!("wrong name: {err}");
    assert!(matches!(err, RedisBudgetError::Connect { .. }), "{err:?}");
    assert_eq!(err.tls_rejection(), Some(TlsRejection::WrongName), "{err}");
    assert!(
        err.to_string()
            .contains("certificate is not valid for the host name in the URL"),
        "{err}"
    );
    // The details name both sides: the host asked for and the name presented.
    assert!(err.to_string().contains("other.example"), "{err}");
    // A valid certificate from the same CA is accepted: the failures above are the flaws.
    let server = RedisServer::start_with(Options {
        tls: Some(TlsFiles::issue(&dir, "valid", Leaf::Valid)),
        ..Options::default()
    });
    let url = format!("rediss://127.0.0.1:{}", server.tls_port());
    RedisBudget::adaptive("tls")
        .tls(trusting(&files.ca))
        .build_from_url(&url)
        .await
        .expect("a valid certificate");
    let _ = std::fs::remove_dir_all(dir);
}
