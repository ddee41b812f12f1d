//! No password in a recoverable form to a server nobody verified: fake
//! servers that ask for the password in cleartext (or for caching_sha2
//! full authentication) under every TLS mode, through the probes and
//! through the controller on the real API server.

use std::time::Duration;

use dbfleet::crd::DbInstance;
use dbfleet::crd::instance::{DbType, TlsMode};
use dbfleet::probe::{self, ErrorKind, Password, Target, Timeouts, TlsSettings};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

use crate::fake_servers::{FakeServer, MysqlAsk, TestPki};
use crate::support;
use crate::support::controller::{self, has_condition};

const PASSWORD: &str = "fleet-crown-jewel-7f3a";

fn target(db_type: DbType, port: u16, mode: TlsMode, ca_pem: Option<&str>) -> Target {
    Target::new(db_type, "127.0.0.1", port, "monitor", Password::new(PASSWORD))
        .with_tls(TlsSettings {
            mode,
            ca_pem: ca_pem.map(|pem| pem.as_bytes().to_vec()),
        })
        .with_timeouts(Timeouts {
            connect: Duration::from_secs(3),
            operation: Duration::from_secs(3),
        })
}

/// The probe connected (so the test proves something), refused with
/// `InsecureAuthentication`, and the server never saw the password.
async fn assert_refused(server: &FakeServer, target: Target, case: &str) {
    let error = probe::test_connection(&target)
        .await
        .expect_err("the fake server never lets a login succeed");
    assert_eq!(error.kind, ErrorKind::InsecureAuthentication, "{case}: {error}");
    assert!(error.message.contains("verify-full"), "{case}: {}", error.message);
    assert!(!error.message.contains(PASSWORD), "{case}: {}", error.message);
    assert!(server.connections() >= 1, "{case}: the probe never connected");
    assert!(
        !server.received(PASSWORD),
        "{case}: the fake server received the password: {:?}",
        String::from_utf8_lossy(&server.received_bytes())
    );
}

#[tokio::test]
async fn postgres_cleartext_requests_get_nothing_without_verification() {
    let pki = TestPki::new();
    for (mode, offer_tls) in [
        (TlsMode::Disable, false),
        (TlsMode::Prefer, false),
        (TlsMode::Prefer, true),
        (TlsMode::Require, true),
    ] {
        let server = FakeServer::postgres(offer_tls.then(|| pki.server.clone())).await;
        let case = format!("PostgreSQL, tls {mode:?}, server offers TLS: {offer_tls}");
        assert_refused(&server, target(DbType::Postgresql, server.port, mode, None), &case).await;
    }
}

#[tokio::test]
async fn mysql_recoverable_requests_get_nothing_without_verification() {
    let pki = TestPki::new();
    for ask in [MysqlAsk::ClearPassword, MysqlAsk::FullAuthentication] {
        for (mode, offer_tls) in [
            (TlsMode::Disable, false),
            (TlsMode::Prefer, false),
            (TlsMode::Prefer, true),
            (TlsMode::Require, true),
        ] {
            let server = FakeServer::mysql(ask, offer_tls.then(|| pki.server.clone())).await;
            let case = format!("MySQL {ask:?}, tls {mode:?}, server offers TLS: {offer_tls}");
            assert_refused(&server, target(DbType::Mysql, server.port, mode, None), &case).await;
        }
    }
}

/// The same requests from a server verified under `verify-full` get the
/// password: the guards cannot pass by never sending anything.
#[tokio::test]
async fn a_verified_server_receives_the_password() {
    let pki = TestPki::new();
    let postgres = FakeServer::postgres(Some(pki.server.clone())).await;
    let result = probe::test_connection(&target(
        DbType::Postgresql,
        postgres.port,
        TlsMode::VerifyFull,
        Some(&pki.ca_pem),
    ))
    .await;
    assert_eq!(result.unwrap_err().kind, ErrorKind::AuthenticationFailed);
    assert!(
        postgres.received(PASSWORD),
        "PostgreSQL verify-full: the password was not sent"
    );

    let mysql = FakeServer::mysql(MysqlAsk::ClearPassword, Some(pki.server.clone())).await;
    let result = probe::test_connection(&target(
        DbType::Mysql,
        mysql.port,
        TlsMode::VerifyFull,
        Some(&pki.ca_pem),
    ))
    .await;
    assert_eq!(result.unwrap_err().kind, ErrorKind::AuthenticationFailed);
    assert!(mysql.received(PASSWORD), "MySQL verify-full: the password was not sent");

    // Full authentication goes on too: the driver, on the relay's private
    // socket, sends the password, which the relay carries inside the
    // verified TLS.
    let full = FakeServer::mysql(MysqlAsk::FullAuthentication, Some(pki.server.clone())).await;
    let result = probe::test_connection(&target(
        DbType::Mysql,
        full.port,
        TlsMode::VerifyFull,
        Some(&pki.ca_pem),
    ))
    .await;
    assert_ne!(result.unwrap_err().kind, ErrorKind::InsecureAuthentication);
    assert!(full.received(PASSWORD), "{:?}", full.received_bytes());
}

/// A verify-full server whose certificate the CA did not sign is a TLS
/// error, and gets nothing either.
#[tokio::test]
async fn an_unverifiable_server_gets_nothing_under_verify_full() {
    let (ours, theirs) = (TestPki::new(), TestPki::new());
    let server = FakeServer::postgres(Some(theirs.server.clone())).await;
    let error = probe::test_connection(&target(
        DbType::Postgresql,
        server.port,
        TlsMode::VerifyFull,
        Some(&ours.ca_pem),
    ))
    .await
    .unwrap_err();
    assert_eq!(error.kind, ErrorKind::TlsError, "{error}");
    assert!(!server.received(PASSWORD));
    let server = FakeServer::mysql(MysqlAsk::ClearPassword, Some(theirs.server.clone())).await;
    let error = probe::test_connection(&target(
        DbType::Mysql,
        server.port,
        TlsMode::VerifyFull,
        Some(&ours.ca_pem),
    ))
    .await
    .unwrap_err();
    assert_eq!(error.kind, ErrorKind::TlsError, "{error}");
    assert!(!server.received(PASSWORD));
}

/// Through the controller: an instance pointing at a fake server shows
/// `Connected=False` with reason `InsecureAuthentication`, and the fake
/// server never sees the Secret's password.
#[tokio::test]
async fn the_controller_records_the_refusal_and_sends_nothing() {
    let (client, namespace) = support::admin_in_fresh_namespace("trust-cleartext").await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "login", "labels": {"dbfleet.io/credential": "true"}},
        "stringData": {"username": "monitor", "password": PASSWORD},
    }))
    .unwrap();
    secrets.create(&PostParams::default(), &secret).await.unwrap();
    let postgres = FakeServer::postgres(None).await;
    let mysql = FakeServer::mysql(MysqlAsk::FullAuthentication, None).await;
    let instances: Api<DbInstance> = Api::namespaced(client.clone(), &namespace);
    for (name, db_type, port, mode) in [
        ("fake-pg", "postgresql", postgres.port, "prefer"),
        ("fake-my", "mysql", mysql.port, "disable"),
    ] {
        let instance: DbInstance = serde_json::from_value(json!({
            "apiVersion": "dbfleet.io/v1alpha1", "kind": "DbInstance",
            "metadata": {"name": name},
            "spec": {"dbType": db_type, "host": "127.0.0.1", "port": port,
                     "credentialsSecretRef": {"name": "login"}, "tls": {"mode": mode}},
        }))
        .unwrap();
        instances.create(&PostParams::default(), &instance).await.unwrap();
    }
    let _controllers = controller::start(&client, &namespace, |_| {});
    for name in ["fake-pg", "fake-my"] {
        let instance = controller::instance_where(&instances, name, "Connected=False InsecureAuthentication", |i| {
            has_condition(i, "Connected", "False", "InsecureAuthentication")
        })
        .await;
        let status = serde_json::to_string(&instance.status).unwrap();
        assert!(!status.contains(PASSWORD));
    }
    for server in [&postgres, &mysql] {
        assert!(server.connections() >= 1);
        assert!(!server.received(PASSWORD));
    }
    for name in ["fake-pg", "fake-my"] {
        instances.delete(name, &Default::default()).await.unwrap();
    }
}
