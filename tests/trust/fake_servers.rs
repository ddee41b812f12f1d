//! Fake database servers on loopback that ask every client for its password
//! in a recoverable form, and record every byte clients send them (after
//! TLS, when they speak it), so a test can prove a password never arrived.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A CA and a server certificate for `127.0.0.1` and `localhost` it signed.
pub struct TestPki {
    pub ca_pem: String,
    pub server: Arc<ServerConfig>,
}

impl TestPki {
    pub fn new() -> TestPki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let server = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        TestPki {
            ca_pem: ca_cert.pem(),
            server: Arc::new(server),
        }
    }
}

/// What the fake MySQL server asks for after the client's first answer.
#[derive(Clone, Copy, Debug)]
pub enum MysqlAsk {
    /// An AuthSwitchRequest to `mysql_clear_password`.
    ClearPassword,
    /// `caching_sha2_password` "perform full authentication".
    FullAuthentication,
}

pub struct FakeServer {
    pub port: u16,
    received: Arc<Mutex<Vec<u8>>>,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeServer {
    /// Answers every login with `AuthenticationCleartextPassword`; with
    /// `tls`, accepts the client's SSLRequest.
    pub async fn postgres(tls: Option<Arc<ServerConfig>>) -> FakeServer {
        FakeServer::start(move |stream| postgres_session(stream, tls.clone())).await
    }

    /// Asks every client for its password as `ask` says; with `tls`, offers
    /// TLS in its greeting.
    pub async fn mysql(ask: MysqlAsk, tls: Option<Arc<ServerConfig>>) -> FakeServer {
        FakeServer::start(move |stream| mysql_session(stream, ask, tls.clone())).await
    }

    /// Serves every connection with `session`, recording what clients send.
    pub async fn start<F, Fut>(session: F) -> FakeServer
    where
        F: Fn(Recording) -> Fut + Send + 'static,
        Fut: Future<Output = std::io::Result<()>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (log, count) = (received.clone(), connections.clone());
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let stream = Recording {
                    inner: Box::new(socket),
                    log: log.clone(),
                };
                tokio::spawn(session(stream));
            }
        });
        FakeServer {
            port,
            received,
            connections,
            task,
        }
    }

    /// How many connections the server accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Whether `secret` appears anywhere in what clients sent.
    pub fn received(&self, secret: &str) -> bool {
        let bytes = self.received.lock().unwrap();
        bytes.windows(secret.len()).any(|w| w == secret.as_bytes())
    }

    /// Everything clients sent, for failure messages.
    pub fn received_bytes(&self) -> Vec<u8> {
        self.received.lock().unwrap().clone()
    }
}

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A stream that appends every byte read from it to a shared log.
pub struct Recording {
    inner: Box<dyn Io>,
    log: Arc<Mutex<Vec<u8>>>,
}

impl Recording {
    /// Continues over TLS, recording the decrypted bytes.
    pub async fn accept_tls(self, config: Arc<ServerConfig>) -> std::io::Result<Recording> {
        let log = self.log.clone();
        let tls = tokio_rustls::TlsAcceptor::from(config).accept(self.inner).await?;
        Ok(Recording {
            inner: Box::new(tls),
            log,
        })
    }
}

impl AsyncRead for Recording {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.log.lock().unwrap().extend_from_slice(&buf.filled()[before..]);
        result
    }
}

impl AsyncWrite for Recording {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

pub const PG_SSL_REQUEST: u32 = 80877103;

pub fn pg_message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A startup-phase message (no tag byte): its body after the length.
pub async fn read_startup_message(stream: &mut Recording) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await?;
    let mut body = vec![0u8; (u32::from_be_bytes(len) as usize).saturating_sub(4)];
    stream.read_exact(&mut body).await?;
    Ok(body)
}

async fn postgres_session(mut stream: Recording, tls: Option<Arc<ServerConfig>>) -> std::io::Result<()> {
    let first = read_startup_message(&mut stream).await?;
    if first[..] == PG_SSL_REQUEST.to_be_bytes() {
        match tls {
            Some(config) => {
                stream.write_all(b"S").await?;
                stream = stream.accept_tls(config).await?;
            }
            None => stream.write_all(b"N").await?,
        }
        read_startup_message(&mut stream).await?;
    }
    // AuthenticationCleartextPassword.
    stream.write_all(&pg_message(b'R', &3u32.to_be_bytes())).await?;
    stream.flush().await?;
    // The password message, if the client sends one.
    let mut header = [0u8; 5];
    stream.read_exact(&mut header).await?;
    let mut body =
        vec![0u8; (u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize).saturating_sub(4)];
    stream.read_exact(&mut body).await?;
    let error = b"SFATAL\0C28P01\0Mpassword authentication failed (fake server)\0\0";
    stream.write_all(&pg_message(b'E', error)).await?;
    stream.shutdown().await
}

pub async fn read_mysql_packet(stream: &mut Recording) -> std::io::Result<(u8, Vec<u8>)> {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).await?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await?;
    Ok((header[3], payload))
}

pub async fn write_mysql_packet(stream: &mut Recording, seq: u8, payload: &[u8]) -> std::io::Result<()> {
    let len = (payload.len() as u32).to_le_bytes();
    stream.write_all(&[len[0], len[1], len[2], seq]).await?;
    stream.write_all(payload).await?;
    stream.flush().await
}

pub const CLIENT_SSL: u32 = 0x800;

pub fn mysql_greeting(plugin: &str, offer_tls: bool) -> Vec<u8> {
    // LONG_PASSWORD, CONNECT_WITH_DB, PROTOCOL_41, TRANSACTIONS,
    // SECURE_CONNECTION, PLUGIN_AUTH.
    let mut caps: u32 = 0x1 | 0x8 | 0x200 | 0x2000 | 0x8000 | 0x80000;
    if offer_tls {
        caps |= CLIENT_SSL;
    }
    let mut out = vec![10];
    out.extend_from_slice(b"8.0.36-fake\0");
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(b"abcdefgh");
    out.push(0);
    out.extend_from_slice(&(caps as u16).to_le_bytes());
    out.push(45);
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
    out.push(21);
    out.extend_from_slice(&[0; 10]);
    out.extend_from_slice(b"ijklmnopqrst\0");
    out.extend_from_slice(plugin.as_bytes());
    out.push(0);
    out
}

async fn mysql_session(mut stream: Recording, ask: MysqlAsk, tls: Option<Arc<ServerConfig>>) -> std::io::Result<()> {
    let plugin = match ask {
        MysqlAsk::ClearPassword => "mysql_native_password",
        MysqlAsk::FullAuthentication => "caching_sha2_password",
    };
    write_mysql_packet(&mut stream, 0, &mysql_greeting(plugin, tls.is_some())).await?;
    let (mut seq, mut response) = read_mysql_packet(&mut stream).await?;
    let caps = u32::from_le_bytes([response[0], response[1], response[2], response[3]]);
    if let Some(config) = tls.filter(|_| caps & CLIENT_SSL != 0 && response.len() == 32) {
        stream = stream.accept_tls(config).await?;
        (seq, response) = read_mysql_packet(&mut stream).await?;
    }
    drop(response);
    let request: &[u8] = match ask {
        MysqlAsk::ClearPassword => b"\xfemysql_clear_password\0",
        MysqlAsk::FullAuthentication => b"\x01\x04",
    };
    write_mysql_packet(&mut stream, seq.wrapping_add(1), request).await?;
    // The client's answer: the password, a request for the RSA key, or
    // nothing.
    let (seq, _answer) = read_mysql_packet(&mut stream).await?;
    let error = b"\xff\x15\x04#28000Access denied (fake server)";
    write_mysql_packet(&mut stream, seq.wrapping_add(1), error).await?;
    stream.shutdown().await
}
