//! Why a TLS connection to Redis was refused, told in words an operator can act on.
//!
//! fred turns the TLS library's error into text (`IO Error: ... InvalidCertificate(...)`),
//! so the cause is recognised from that text; an unrecognised one keeps the original text.

use fred::error::Error;
use std::fmt;

/// What was wrong with the server's certificate when a `rediss://` connection failed.
///
/// ```
/// use tower_retrier::budget::redis::TlsRejection;
/// assert_eq!(
///     TlsRejection::Expired.to_string(),
///     "the Redis server's TLS certificate has expired"
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsRejection {
    /// The certificate's validity ended (check the server's certificate, or this machine's
    /// clock).
    Expired,
    /// The certificate is not valid yet (check this machine's clock).
    NotYetValid,
    /// The certificate does not name the host in the URL (connect with the name it was
    /// issued for, or reissue it with that name or IP address).
    WrongName,
    /// The certificate is not signed by a trusted authority (pass your CA with
    /// `RedisBudgetBuilder::tls`).
    UntrustedIssuer,
    /// Another certificate or handshake problem; the message carries the details.
    Other,
}

impl TlsRejection {
    /// Recognises a certificate problem in a fred connection error, if it is one.
    pub(crate) fn of(error: &Error) -> Option<Self> {
        // `ErrorKind::Tls` exists only with fred's TLS features; compare by name instead.
        if !matches!(error.kind().to_str(), "IO Error" | "TLS Error") {
            return None;
        }
        let details = error.details();
        let found = |needles: &[&str]| needles.iter().any(|n| details.contains(n));
        if !found(&[
            "InvalidCertificate",
            "certificate",
            "Certificate",
            "AlertReceived",
        ]) {
            return None;
        }
        Some(if found(&["Expired"]) {
            TlsRejection::Expired
        } else if found(&["NotValidYet"]) {
            TlsRejection::NotYetValid
        } else if found(&["NotValidForName"]) {
            TlsRejection::WrongName
        } else if found(&["UnknownIssuer"]) {
            TlsRejection::UntrustedIssuer
        } else {
            TlsRejection::Other
        })
    }
}

impl fmt::Display for TlsRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsRejection::Expired => "the Redis server's TLS certificate has expired",
            TlsRejection::NotYetValid => "the Redis server's TLS certificate is not valid yet",
            TlsRejection::WrongName => {
                "the Redis server's TLS certificate is not valid for the host name in the URL"
            }
            TlsRejection::UntrustedIssuer => {
                "the Redis server's TLS certificate is not signed by a trusted CA \
                 (pass your CA with RedisBudgetBuilder::tls)"
            }
            TlsRejection::Other => "the TLS handshake with the Redis server failed",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fred::error::ErrorKind;

    fn io(details: &str) -> Error {
        Error::new(ErrorKind::IO, details.to_owned())
    }

    #[test]
    fn recognises_rustls_certificate_errors() {
        let cases = [
            (
                "Custom { kind: InvalidData, error: InvalidCertificate(ExpiredContext { time: UnixTime(1), not_after: UnixTime(0) }) }",
                TlsRejection::Expired,
            ),
            (
                "Custom { kind: InvalidData, error: InvalidCertificate(NotValidForNameContext { expected: IpAddress(V4(Ipv4Addr([127, 0, 0, 1]))), presented: [] }) }",
                TlsRejection::WrongName,
            ),
            (
                "Custom { kind: InvalidData, error: InvalidCertificate(UnknownIssuer) }",
                TlsRejection::UntrustedIssuer,
            ),
            (
                "Custom { kind: InvalidData, error: InvalidCertificate(NotValidYetContext { time: UnixTime(0), not_before: UnixTime(1) }) }",
                TlsRejection::NotYetValid,
            ),
            (
                "Custom { kind: InvalidData, error: InvalidCertificate(BadSignature) }",
                TlsRejection::Other,
            ),
        ];
        for (details, want) in cases {
            assert_eq!(TlsRejection::of(&io(details)), Some(want), "{details}");
        }
    }

    #[test]
    fn other_errors_are_not_tls_rejections() {
        assert_eq!(
            TlsRejection::of(&io("Connection refused (os error 111)")),
            None
        );
        let auth = Error::new(ErrorKind::Auth, "WRONGPASS invalid username-password pair");
        assert_eq!(TlsRejection::of(&auth), None);
    }
}
