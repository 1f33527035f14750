//! HTTPS and mutual TLS on the listener (issue #4, security): certificates
//! made for the test by rcgen, a real rustls client (reqwest).

mod common;

use std::path::{Path, PathBuf};

use alert_ingest::app::App;
use alert_ingest::config::TlsConfig;
use common::{count, fixture, test_config, TestDb};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all
/// signed by the CA, as PEM files in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    ca_pem: String,
    client_pem: String,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();

        let server = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let server_cert = server.signed_by(&server_key, &ca_cert, &ca_key).unwrap();

        let mut client = CertificateParams::new(vec!["alertmanager".into()]).unwrap();
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_key = KeyPair::generate().unwrap();
        let client_cert = client.signed_by(&client_key, &ca_cert, &ca_key).unwrap();

        let write = |file: &str, text: &str| std::fs::write(dir.path().join(file), text).unwrap();
        write("ca.crt", &ca_cert.pem());
        write("server.crt", &server_cert.pem());
        write("server.key", &server_key.serialize_pem());
        Pki {
            ca_pem: ca_cert.pem(),
            client_pem: format!("{}{}", client_cert.pem(), client_key.serialize_pem()),
            dir,
        }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    fn tls(&self, client_ca: Option<&Path>) -> TlsConfig {
        TlsConfig {
            cert_file: self.path("server.crt"),
            key_file: self.path("server.key"),
            client_ca_file: client_ca.map(Path::to_path_buf),
        }
    }
}

/// A client that trusts `pki`'s CA and, if given, presents `identity`.
fn client(pki: &Pki, identity: Option<&str>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap())
        .timeout(std::time::Duration::from_secs(10));
    if let Some(pem) = identity {
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

/// Waits until what `app` acknowledged is in PostgreSQL (see
/// `Client::settled`), asking over HTTPS with `client`.
async fn settled(client: &reqwest::Client, app: &App) {
    let https = common::Client {
        base: format!("https://{}", app.local_addr()),
        http: client.clone(),
    };
    https.settled().await;
}

/// Posts a fixture over HTTPS; the status, or None if TLS or transport failed.
async fn post(client: &reqwest::Client, app: &App) -> Option<u16> {
    client
        .post(format!("https://{}/webhook", app.local_addr()))
        .header("content-type", "application/json")
        .body(fixture("firing-two-alerts.json"))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_webhooks_and_plain_http_gets_nothing() {
    let db = TestDb::create().await;
    let pki = Pki::new("server");
    let mut config = test_config(&db.url);
    config.server.tls = Some(pki.tls(None));
    let app = App::start(config).await.unwrap();
    assert_eq!(post(&client(&pki, None), &app).await, Some(200));
    // Plain HTTP to the TLS port is not served.
    let plain = reqwest::Client::new()
        .post(format!("http://{}/webhook", app.local_addr()))
        .header("content-type", "application/json")
        .body(fixture("firing-two-alerts.json"))
        .send()
        .await;
    assert!(
        plain.as_ref().map_or(true, |r| r.status() != 200),
        "{plain:?}"
    );
    // A client that does not trust our CA refuses the server.
    let stranger = Pki::new("stranger");
    assert_eq!(post(&client(&stranger, None), &app).await, None);
    settled(&client(&pki, None), &app).await;
    assert_eq!(count(&db.client().await, "alerts").await, 2);
    assert!(app.shutdown().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_admits_only_clients_signed_by_the_ca() {
    let db = TestDb::create().await;
    let pki = Pki::new("mtls");
    let mut config = test_config(&db.url);
    config.server.tls = Some(pki.tls(Some(&pki.path("ca.crt"))));
    let app = App::start(config).await.unwrap();
    // No client certificate, or one from another CA: no request gets through.
    assert_eq!(post(&client(&pki, None), &app).await, None);
    let rogue = Pki::new("rogue");
    assert_eq!(
        post(&client(&pki, Some(&rogue.client_pem)), &app).await,
        None
    );
    let trusted = client(&pki, Some(&pki.client_pem));
    settled(&trusted, &app).await;
    assert_eq!(count(&db.client().await, "alerts").await, 0);
    // Signed by the configured CA: served.
    assert_eq!(post(&trusted, &app).await, Some(200));
    settled(&trusted, &app).await;
    assert_eq!(count(&db.client().await, "alerts").await, 2);
    assert!(app.shutdown().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_or_mismatched_files_stop_startup_naming_them() {
    let db = TestDb::create().await;
    let pki = Pki::new("bad");
    let other = Pki::new("other");
    let start = |tls: TlsConfig| {
        let mut config = test_config(&db.url);
        config.server.tls = Some(tls);
        App::start(config)
    };
    let missing = TlsConfig {
        cert_file: pki.path("nope.crt"),
        ..pki.tls(None)
    };
    let err = start(missing).await.err().expect("refused").to_string();
    assert!(err.contains("nope.crt"), "{err}");
    let not_a_key = TlsConfig {
        key_file: pki.path("ca.crt"),
        ..pki.tls(None)
    };
    let err = start(not_a_key).await.err().expect("refused").to_string();
    assert!(err.contains("server.tls.key_file"), "{err}");
    let mismatched = TlsConfig {
        key_file: other.path("server.key"),
        ..pki.tls(None)
    };
    let err = start(mismatched).await.err().expect("refused").to_string();
    assert!(err.contains("do not go together"), "{err}");
}
