//! The database probes (`dbfleet::probe`) against the real PostgreSQL and
//! MariaDB that `scripts/test-env.sh` starts. Every test creates its own
//! databases and accounts under unique names, probes as a monitoring account
//! holding exactly the grants in docs/probes.md, and drops what it created.

mod failures;
mod fixtures;
mod lifecycle;
mod mysql;
mod postgres;
mod secrets;

/// A CA certificate that signed none of the local servers' certificates.
fn unrelated_ca() -> Vec<u8> {
    UNRELATED_CA.as_bytes().to_vec()
}

const UNRELATED_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBljCCATugAwIBAgIUYGnNpsCu3w+Y13GVb+p+2uAZiWowCgYIKoZIzj0EAwIw
HzEdMBsGA1UEAwwUZGJmbGVldCB1bml0LXRlc3QgQ0EwIBcNMjYxMTIyMTExMDI4
WhgPMjEyNjEwMjkxMTEwMjhaMB8xHTAbBgNVBAMMFGRiZmxlZXQgdW5pdC10ZXN0
IENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE9dACoBQBmPuvky/SksQo7m/t
yrnGAcKs+VssoPNR0SMZSj15Wg/0rKuRPSGjktWpNXlIhmnK/ltj86RtoJy4yKNT
MFEwHQYDVR0OBBYEFE4qiu8dQSrAAfesBJsNp46I0A75MB8GA1UdIwQYMBaAFE4q
iu8dQSrAAfesBJsNp46I0A75MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwID
SQAwRgIhAMJFZwZMgtl+32hKldWKnAh2af5JnjpkZiWJtHAOr3AOAiEA7HEA6rpx
5BK0mSQ0oUXn8Tywryl+mpiwbXBMo3pqtDs=
-----END CERTIFICATE-----
";
