//! A one-connection relay between mysql_async and a MySQL/MariaDB server
//! that owns the TLS and reads every authentication packet before the
//! driver sees it.
//!
//! mysql_async answers `caching_sha2_password` full authentication with the
//! password in cleartext (over TLS or a Unix socket) or encrypted with an
//! RSA key the server sends, acts on any packet whose second byte asks for
//! it, and offers no hook to refuse. So the driver talks plain MySQL
//! protocol to this relay, and the relay talks to the server: it negotiates
//! TLS itself (with the same rustls configuration as PostgreSQL), follows
//! the authentication exchange with a [`LoginJudge`] that lets through only
//! the packets a safe login has room for, and after the login only copies
//! bytes.
//!
//! The driver reaches the relay over a Unix socket in a directory only this
//! process's user can enter, and the relay takes a connection only from its
//! own process (the peer's credentials say so), so nothing else on the host
//! or in the pod can take the driver's place.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::auth_policy::{AuthPolicy, InsecureRequest};
use super::error::{ErrorKind, describe, transport_kind};

/// The plugins whose answer is a challenge-response that does not reveal
/// the password (residual risk: an impostor can try passwords offline
/// against it; see docs/security.md).
const SAFE_PLUGINS: [&str; 3] = [NATIVE_PASSWORD, CACHING_SHA2, ED25519];
const NATIVE_PASSWORD: &str = "mysql_native_password";
const ED25519: &str = "client_ed25519";

/// Capability flags (MySQL client/server protocol).
const CLIENT_CONNECT_WITH_DB: u32 = 1 << 3;
const CLIENT_SSL: u32 = 1 << 11;
const CLIENT_SECURE_CONNECTION: u32 = 1 << 15;
const CLIENT_PLUGIN_AUTH: u32 = 1 << 19;
const CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA: u32 = 1 << 21;

/// Packet header: 3-byte length, 1-byte sequence id.
const HEADER_LEN: usize = 4;
/// Login packets are small; a larger one is not the protocol.
const MAX_LOGIN_PACKET: usize = 64 * 1024;
/// Capabilities, max packet size, character set and filler: the part of a
/// HandshakeResponse41 that an SSLRequest repeats.
const SSL_REQUEST_LEN: usize = 32;

const CACHING_SHA2: &str = "caching_sha2_password";
/// caching_sha2_password's AuthMoreData answers.
const FAST_AUTH_SUCCESS: u8 = 0x03;
const PERFORM_FULL_AUTHENTICATION: u8 = 0x04;

/// How the relay reaches the server.
pub(crate) enum TlsPlan {
    Off,
    /// Use TLS when the server offers it.
    IfOffered(Arc<ClientConfig>),
    Required(Arc<ClientConfig>),
}

/// How the login went, as far as the relay could see.
#[derive(Debug)]
pub(crate) enum LoginOutcome {
    /// Handed to the driver; `tls` says whether the server link is
    /// encrypted.
    Relayed { tls: bool },
    /// The server asked for a password the policy does not let out; the
    /// driver never saw the request.
    Refused(InsecureRequest),
    /// The relay could not go on; the driver sees the connection close.
    Failed { kind: ErrorKind, detail: String },
}

/// A relay waiting for the driver's connection.
pub(crate) struct Relay {
    /// Where the driver connects: a Unix socket of this process.
    pub(crate) socket: PathBuf,
    pub(crate) outcome: oneshot::Receiver<LoginOutcome>,
    task: JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// This process's private directory for relay sockets: made once, with a
/// random name, only by `create` (never reusing what someone else made),
/// mode 0700.
fn socket_dir() -> std::io::Result<&'static Path> {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    if let Some(dir) = DIR.get() {
        return Ok(dir);
    }
    use std::os::unix::fs::DirBuilderExt;
    let dir = std::env::temp_dir().join(format!("dbfleet-relay-{}", uuid::Uuid::new_v4().simple()));
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    // Another thread may have made one meanwhile; the loser's stays empty.
    Ok(DIR.get_or_init(|| dir))
}

/// Whether `client` is this process (the driver), not another process that
/// found the socket.
fn is_own_process(client: &UnixStream) -> bool {
    client
        .peer_cred()
        .ok()
        .and_then(|cred| cred.pid())
        .is_some_and(|pid| u32::try_from(pid).ok() == Some(std::process::id()))
}

impl Relay {
    /// Starts relaying the first connection from this process to a fresh
    /// Unix socket to `server` (already connected). `host` names the server
    /// for TLS.
    pub(crate) async fn start(
        server: TcpStream,
        host: &str,
        tls: TlsPlan,
        policy: AuthPolicy,
        accept_within: Duration,
    ) -> std::io::Result<Relay> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let socket = socket_dir()?.join(format!("{}.sock", NEXT.fetch_add(1, Ordering::Relaxed)));
        let listener = UnixListener::bind(&socket)?;
        let (report, outcome) = oneshot::channel();
        let host = host.to_string();
        let path = socket.clone();
        let task = tokio::spawn(async move {
            let accept_own = async {
                loop {
                    match listener.accept().await {
                        Ok((client, _)) if is_own_process(&client) => return Some(client),
                        Ok(_) => continue,
                        Err(_) => return None,
                    }
                }
            };
            // One connection only; the listener closes when it is accepted.
            let Ok(Some(client)) = tokio::time::timeout(accept_within, accept_own).await else {
                return;
            };
            drop(listener);
            let _ = std::fs::remove_file(&path);
            let _ = server.set_nodelay(true);
            relay(client, server, &host, tls, policy, report).await;
        });
        Ok(Relay { socket, outcome, task })
    }
}

fn failure(kind: ErrorKind, detail: impl Into<String>) -> LoginOutcome {
    LoginOutcome::Failed {
        kind,
        detail: detail.into(),
    }
}

fn io_failure(what: &str, err: &std::io::Error) -> LoginOutcome {
    failure(
        transport_kind(err).unwrap_or(ErrorKind::Protocol),
        format!("{what}: {}", describe(err)),
    )
}

async fn read_packet<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<(u8, Vec<u8>)> {
    let mut header = [0u8; HEADER_LEN];
    stream.read_exact(&mut header).await?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
    if len > MAX_LOGIN_PACKET {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a {len}-byte packet during the login"),
        ));
    }
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await?;
    Ok((header[3], payload))
}

async fn write_packet<S: AsyncWrite + Unpin>(stream: &mut S, seq: u8, payload: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX).to_le_bytes();
    let mut packet = Vec::with_capacity(HEADER_LEN + payload.len());
    packet.extend_from_slice(&[len[0], len[1], len[2], seq]);
    packet.extend_from_slice(payload);
    stream.write_all(&packet).await?;
    stream.flush().await
}

/// The parts of the server's greeting (Protocol::HandshakeV10) the relay
/// needs.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Greeting {
    /// Offset of the lower two capability bytes in the payload.
    capabilities_at: usize,
    pub(crate) offers_tls: bool,
    pub(crate) plugin: Option<String>,
}

fn nul_terminated(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = bytes.iter().position(|&b| b == 0)?;
    Some((&bytes[..end], &bytes[end + 1..]))
}

pub(crate) fn parse_greeting(payload: &[u8]) -> Option<Greeting> {
    if payload.first() != Some(&10) {
        return None;
    }
    let (_version, rest) = nul_terminated(&payload[1..])?;
    // Connection id (4), scramble part 1 (8), filler (1).
    let capabilities_at = payload.len() - rest.len() + 13;
    let lower = payload.get(capabilities_at..capabilities_at + 2)?;
    let lower = u32::from(u16::from_le_bytes([lower[0], lower[1]]));
    // Character set (1), status (2), upper capabilities (2), scramble
    // length (1), reserved (10), scramble part 2, plugin name.
    let mut capabilities = lower;
    let mut plugin = None;
    if let Some(upper) = payload.get(capabilities_at + 5..capabilities_at + 7) {
        capabilities |= u32::from(u16::from_le_bytes([upper[0], upper[1]])) << 16;
        let scramble_len = usize::from(*payload.get(capabilities_at + 7)?);
        let part2_at = capabilities_at + 18;
        let part2_len = scramble_len.saturating_sub(8).max(13);
        if capabilities & CLIENT_PLUGIN_AUTH != 0 {
            plugin = payload
                .get(part2_at + part2_len..)
                .map(|name| nul_terminated(name).map_or(name, |(n, _)| n))
                .map(|name| String::from_utf8_lossy(name).into_owned());
        }
    }
    Some(Greeting {
        capabilities_at,
        offers_tls: capabilities & CLIENT_SSL != 0,
        plugin,
    })
}

/// The greeting as the driver sees it: without TLS on offer, since the
/// relay does the TLS.
pub(crate) fn without_tls_offer(payload: &[u8], greeting: &Greeting) -> Vec<u8> {
    let mut out = payload.to_vec();
    out[greeting.capabilities_at + 1] &= !((CLIENT_SSL >> 8) as u8);
    out
}

fn capabilities(response: &[u8]) -> Option<u32> {
    response.get(..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The client's HandshakeResponse41 with `CLIENT_SSL` set, as sent after
/// TLS is up, and the SSLRequest that goes before it.
pub(crate) fn with_tls(response: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    if response.len() < SSL_REQUEST_LEN {
        return None;
    }
    let mut response = response.to_vec();
    let caps = capabilities(&response)? | CLIENT_SSL;
    response[..4].copy_from_slice(&caps.to_le_bytes());
    Some((response[..SSL_REQUEST_LEN].to_vec(), response))
}

/// The authentication plugin the client's HandshakeResponse41 names.
pub(crate) fn response_plugin(response: &[u8]) -> Option<String> {
    let caps = capabilities(response)?;
    if caps & CLIENT_PLUGIN_AUTH == 0 {
        return None;
    }
    let (_user, mut rest) = nul_terminated(response.get(SSL_REQUEST_LEN..)?)?;
    if caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
        let (len, skip) = match *rest.first()? {
            n @ 0..=0xfa => (usize::from(n), 1),
            0xfc => (usize::from(u16::from_le_bytes([*rest.get(1)?, *rest.get(2)?])), 3),
            _ => return None,
        };
        rest = rest.get(skip + len..)?;
    } else if caps & CLIENT_SECURE_CONNECTION != 0 {
        let len = usize::from(*rest.first()?);
        rest = rest.get(1 + len..)?;
    } else {
        rest = nul_terminated(rest)?.1;
    }
    if caps & CLIENT_CONNECT_WITH_DB != 0 {
        rest = nul_terminated(rest)?.1;
    }
    let name = nul_terminated(rest).map_or(rest, |(n, _)| n);
    Some(String::from_utf8_lossy(name).into_owned())
}

/// What to do with one server packet of the login.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Hand it on; `reply` says whether the client answers it.
    Forward {
        reply: bool,
    },
    /// OK or ERR: the login is over; hand it on and copy from then on.
    LoginOver,
    Refuse(InsecureRequest),
}

/// Where the authentication exchange stands, seen from the relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// The client answered the current plugin's challenge.
    Answered,
    /// caching_sha2 said its fast path succeeded: only OK or ERR may follow.
    FastAuthDone,
}

/// Follows one login's authentication exchange, server packet by server
/// packet. Below `verify-full` it is an allow-list: a packet passes only if
/// a safe login has room for it at that point, judged on the whole packet
/// (so `01 04 00`, a lone `01`, an unasked-for public key or a second
/// switch are refused, not handed to a driver that would act on a prefix).
#[derive(Debug)]
pub(crate) struct LoginJudge {
    policy: AuthPolicy,
    /// The plugin in use (`None` when unknown); follows switch requests.
    plugin: Option<String>,
    switched: bool,
    stage: Stage,
}

impl LoginJudge {
    pub(crate) fn new(policy: AuthPolicy, plugin: Option<String>) -> Self {
        LoginJudge {
            policy,
            plugin,
            switched: false,
            stage: Stage::Answered,
        }
    }

    /// Judges the client's first answer (its HandshakeResponse41), before
    /// it reaches the server: the driver only ever answers with a
    /// challenge-response plugin, and this keeps it so.
    pub(crate) fn first_answer(&self) -> Result<(), InsecureRequest> {
        match self.plugin.as_deref() {
            _ if self.policy.verified => Ok(()),
            Some(plugin) if SAFE_PLUGINS.contains(&plugin) => Ok(()),
            Some(plugin) => Err(plugin_request(plugin.as_bytes())),
            None => Err(unexpected("a login answer that names no authentication plugin".into())),
        }
    }

    pub(crate) fn judge(&mut self, payload: &[u8]) -> Verdict {
        if self.policy.verified {
            return self.judge_verified(payload);
        }
        match self.judge_unverified(payload) {
            Ok(verdict) => verdict,
            Err(request) => Verdict::Refuse(request),
        }
    }

    fn judge_unverified(&mut self, payload: &[u8]) -> Result<Verdict, InsecureRequest> {
        match payload {
            [0x00, ..] | [0xff, ..] => Ok(Verdict::LoginOver),
            _ if self.stage == Stage::FastAuthDone => Err(unexpected(describe_packet(payload))),
            // AuthSwitchRequest; one byte is the pre-4.1 switch.
            [0xfe] => Err(InsecureRequest::MysqlOldPassword),
            [0xfe, rest @ ..] => {
                if self.switched {
                    return Err(unexpected("a second authentication switch".into()));
                }
                let name = nul_terminated(rest).map_or(rest, |(name, _)| name);
                let name = String::from_utf8_lossy(name).into_owned();
                if !SAFE_PLUGINS.contains(&name.as_str()) {
                    return Err(plugin_request(name.as_bytes()));
                }
                self.plugin = Some(name);
                self.switched = true;
                Ok(Verdict::Forward { reply: true })
            }
            // AuthMoreData: in caching_sha2 only "fast auth succeeded" is
            // safe; anything with 0x04 second asks for the password.
            [0x01, FAST_AUTH_SUCCESS] if self.plugin.as_deref() == Some(CACHING_SHA2) => {
                self.stage = Stage::FastAuthDone;
                Ok(Verdict::Forward { reply: false })
            }
            [0x01, PERFORM_FULL_AUTHENTICATION, ..] if self.plugin.as_deref() == Some(CACHING_SHA2) => {
                Err(InsecureRequest::MysqlFullAuthentication)
            }
            _ => Err(unexpected(describe_packet(payload))),
        }
    }

    /// A verified server may ask for the password: hand everything on,
    /// tracking only who answers what.
    fn judge_verified(&mut self, payload: &[u8]) -> Verdict {
        match payload.first() {
            Some(0x00) | Some(0xff) => Verdict::LoginOver,
            Some(0xfe) => {
                let name = nul_terminated(&payload[1..]).map_or(&payload[1..], |(n, _)| n);
                self.plugin = Some(String::from_utf8_lossy(name).into_owned());
                Verdict::Forward { reply: true }
            }
            Some(0x01) if payload.get(1..) == Some(&[FAST_AUTH_SUCCESS][..]) => Verdict::Forward { reply: false },
            Some(0x01) => Verdict::Forward { reply: true },
            // Not a login packet: the driver fails on it.
            _ => Verdict::Forward { reply: false },
        }
    }
}

fn unexpected(what: String) -> InsecureRequest {
    InsecureRequest::UnexpectedMessage { what }
}

/// The refusal for a plugin outside [`SAFE_PLUGINS`].
fn plugin_request(name: &[u8]) -> InsecureRequest {
    match name {
        // PAM's `dialog` also sends the password in cleartext.
        b"mysql_clear_password" | b"dialog" => InsecureRequest::MysqlClearPassword,
        b"sha256_password" => InsecureRequest::MysqlSha256Password,
        b"mysql_old_password" => InsecureRequest::MysqlOldPassword,
        _ => InsecureRequest::MysqlOtherPlugin {
            plugin: InsecureRequest::server_text(name),
        },
    }
}

/// A packet the exchange had no room for, named by its first bytes.
fn describe_packet(payload: &[u8]) -> String {
    const SHOWN: usize = 4;
    let head: Vec<String> = payload.iter().take(SHOWN).map(|b| format!("{b:02x}")).collect();
    let more = if payload.len() > SHOWN { " …" } else { "" };
    format!("a {}-byte login packet ({}{more})", payload.len(), head.join(" "))
}

async fn relay(
    mut client: UnixStream,
    mut server: TcpStream,
    host: &str,
    tls: TlsPlan,
    policy: AuthPolicy,
    report: oneshot::Sender<LoginOutcome>,
) {
    let (seq, greeting_bytes) = match read_packet(&mut server).await {
        Ok(packet) => packet,
        Err(e) => {
            let _ = report.send(io_failure("reading the server greeting", &e));
            return;
        }
    };
    let Some(greeting) = parse_greeting(&greeting_bytes) else {
        if greeting_bytes.first() == Some(&0xff) {
            // An ERR packet (too many connections, host blocked): the
            // driver reports it, and the connection ends there.
            let _ = report.send(LoginOutcome::Relayed { tls: false });
            let _ = write_packet(&mut client, seq, &greeting_bytes).await;
            return;
        }
        let detail = format!(
            "the server's first packet is not a MySQL greeting: {}",
            describe_packet(&greeting_bytes)
        );
        let _ = report.send(failure(ErrorKind::Protocol, detail));
        return;
    };
    let tls_config = match tls {
        TlsPlan::Off => None,
        TlsPlan::IfOffered(config) => Some(config).filter(|_| greeting.offers_tls),
        TlsPlan::Required(_) if !greeting.offers_tls => {
            let _ = report.send(failure(ErrorKind::TlsError, "the server does not offer TLS"));
            return;
        }
        TlsPlan::Required(config) => Some(config),
    };
    let handed_on = without_tls_offer(&greeting_bytes, &greeting);
    if let Err(e) = write_packet(&mut client, seq, &handed_on).await {
        let _ = report.send(io_failure("relaying the greeting", &e));
        return;
    }
    let (seq, response) = match read_packet(&mut client).await {
        Ok(packet) => packet,
        Err(e) => {
            let _ = report.send(io_failure("reading the driver's login", &e));
            return;
        }
    };
    let judge = LoginJudge::new(policy, response_plugin(&response).or(greeting.plugin));
    if let Err(request) = judge.first_answer() {
        let _ = report.send(LoginOutcome::Refused(request));
        return;
    }
    match tls_config {
        None => finish_login(client, server, response, seq, 0, judge, false, report).await,
        Some(config) => {
            let Some((ssl_request, response)) = with_tls(&response) else {
                let _ = report.send(failure(ErrorKind::Protocol, "the driver's login packet is too short"));
                return;
            };
            if let Err(e) = write_packet(&mut server, seq, &ssl_request).await {
                let _ = report.send(io_failure("asking the server for TLS", &e));
                return;
            }
            let name = match ServerName::try_from(host.to_string()) {
                Ok(name) => name,
                Err(e) => {
                    let detail = format!("\"{host}\" is not a valid TLS server name: {e}");
                    let _ = report.send(failure(ErrorKind::TlsError, detail));
                    return;
                }
            };
            match tokio_rustls::TlsConnector::from(config).connect(name, server).await {
                Ok(server) => {
                    let seq = seq.wrapping_add(1);
                    finish_login(client, server, response, seq, 1, judge, true, report).await
                }
                Err(e) => {
                    let detail = format!("TLS handshake failed: {}", describe(&e));
                    let _ = report.send(failure(ErrorKind::TlsError, detail));
                }
            }
        }
    }
}

/// Sends the client's login to the server, then judges and relays the
/// authentication exchange in lockstep, then copies. `shift` is how much
/// the server's sequence ids run ahead of the client's (the SSLRequest).
#[allow(clippy::too_many_arguments)]
async fn finish_login<S: AsyncRead + AsyncWrite + Unpin>(
    mut client: UnixStream,
    mut server: S,
    response: Vec<u8>,
    seq: u8,
    shift: u8,
    mut judge: LoginJudge,
    tls: bool,
    report: oneshot::Sender<LoginOutcome>,
) {
    let relay_error = |e: std::io::Error| io_failure("relaying the login", &e);
    if let Err(e) = write_packet(&mut server, seq, &response).await {
        let _ = report.send(relay_error(e));
        return;
    }
    loop {
        let (seq, payload) = match read_packet(&mut server).await {
            Ok(packet) => packet,
            Err(e) => {
                let _ = report.send(relay_error(e));
                return;
            }
        };
        let client_seq = seq.wrapping_sub(shift);
        match judge.judge(&payload) {
            Verdict::Refuse(request) => {
                let _ = report.send(LoginOutcome::Refused(request));
                return;
            }
            Verdict::LoginOver => {
                let _ = report.send(LoginOutcome::Relayed { tls });
                if write_packet(&mut client, client_seq, &payload).await.is_ok() {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
                return;
            }
            Verdict::Forward { reply } => {
                if let Err(e) = write_packet(&mut client, client_seq, &payload).await {
                    let _ = report.send(relay_error(e));
                    return;
                }
                if reply {
                    let forwarded = match read_packet(&mut client).await {
                        Ok((seq, answer)) => write_packet(&mut server, seq.wrapping_add(shift), &answer).await,
                        Err(e) => Err(e),
                    };
                    if let Err(e) = forwarded {
                        let _ = report.send(relay_error(e));
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::probe::auth_policy::{REQUIRE, STRICT, VERIFIED};

    /// A MariaDB-style greeting offering TLS and mysql_native_password.
    pub(crate) fn greeting(offer_tls: bool, plugin: &str) -> Vec<u8> {
        let mut caps: u32 = 0x0000_a200 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH | 0x0001;
        if offer_tls {
            caps |= CLIENT_SSL;
        }
        let mut out = vec![10];
        out.extend_from_slice(b"10.11.19-MariaDB\0");
        out.extend_from_slice(&7u32.to_le_bytes());
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

    fn response(plugin: &str, database: Option<&str>) -> Vec<u8> {
        let mut caps = CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH | 0x0200;
        if database.is_some() {
            caps |= CLIENT_CONNECT_WITH_DB;
        }
        let mut out = caps.to_le_bytes().to_vec();
        out.extend_from_slice(&(16u32 << 20).to_le_bytes());
        out.push(45);
        out.extend_from_slice(&[0; 23]);
        out.extend_from_slice(b"monitor\0");
        out.push(20);
        out.extend_from_slice(&[7; 20]);
        if let Some(db) = database {
            out.extend_from_slice(db.as_bytes());
            out.push(0);
        }
        out.extend_from_slice(plugin.as_bytes());
        out.push(0);
        out
    }

    #[test]
    fn greetings_are_read_and_lose_their_tls_offer() {
        let bytes = greeting(true, "mysql_native_password");
        let parsed = parse_greeting(&bytes).unwrap();
        assert!(parsed.offers_tls);
        assert_eq!(parsed.plugin.as_deref(), Some("mysql_native_password"));
        let handed_on = without_tls_offer(&bytes, &parsed);
        assert!(!parse_greeting(&handed_on).unwrap().offers_tls);
        assert_eq!(handed_on.len(), bytes.len());
        assert!(!parse_greeting(&greeting(false, CACHING_SHA2)).unwrap().offers_tls);
        assert_eq!(parse_greeting(b"\xff\x10\x04Too many connections"), None);
    }

    #[test]
    fn the_clients_plugin_is_read_with_or_without_a_database() {
        assert_eq!(
            response_plugin(&response(CACHING_SHA2, None)).as_deref(),
            Some(CACHING_SHA2)
        );
        assert_eq!(
            response_plugin(&response("mysql_native_password", Some("app"))).as_deref(),
            Some("mysql_native_password")
        );
        assert_eq!(response_plugin(&[1, 2]), None);
    }

    #[test]
    fn the_ssl_request_repeats_the_response_head_with_tls_set() {
        let (ssl_request, response) = with_tls(&response(CACHING_SHA2, None)).unwrap();
        assert_eq!(ssl_request.len(), SSL_REQUEST_LEN);
        assert_eq!(&response[..SSL_REQUEST_LEN], &ssl_request[..]);
        assert_ne!(capabilities(&ssl_request).unwrap() & CLIENT_SSL, 0);
        assert_eq!(with_tls(&[0; 8]), None);
    }

    fn switch(name: &str) -> Vec<u8> {
        [&[0xfe][..], name.as_bytes(), b"\0scramble\0"].concat()
    }

    fn judge_after(policy: AuthPolicy, plugin: &str, packets: &[&[u8]]) -> Vec<Verdict> {
        let mut judge = LoginJudge::new(policy, Some(plugin.to_string()));
        packets.iter().map(|p| judge.judge(p)).collect()
    }

    #[test]
    fn recoverable_requests_are_refused_unless_verified() {
        for (packet, request) in [
            (switch("mysql_clear_password"), InsecureRequest::MysqlClearPassword),
            (switch("dialog"), InsecureRequest::MysqlClearPassword),
            (switch("sha256_password"), InsecureRequest::MysqlSha256Password),
            (switch("mysql_old_password"), InsecureRequest::MysqlOldPassword),
            (vec![0xfe], InsecureRequest::MysqlOldPassword),
            (
                switch("auth_gssapi_client"),
                InsecureRequest::MysqlOtherPlugin {
                    plugin: "auth_gssapi_client".into(),
                },
            ),
        ] {
            for policy in [STRICT, REQUIRE] {
                assert_eq!(
                    judge_after(policy, NATIVE_PASSWORD, &[&packet]),
                    [Verdict::Refuse(request.clone())]
                );
            }
            assert_eq!(
                judge_after(VERIFIED, NATIVE_PASSWORD, &[&packet]),
                [Verdict::Forward { reply: true }]
            );
        }
    }

    #[test]
    fn full_authentication_is_refused_whatever_follows_the_0x04() {
        let full = InsecureRequest::MysqlFullAuthentication;
        for packet in [
            &[0x01, 0x04][..],
            &[0x01, 0x04, 0x00],
            &[0x01, 0x04, 0xff, 0xff],
            b"\x01\x04-----BEGIN",
        ] {
            assert_eq!(
                judge_after(STRICT, CACHING_SHA2, &[packet]),
                [Verdict::Refuse(full.clone())]
            );
            assert_eq!(
                judge_after(VERIFIED, CACHING_SHA2, &[packet]),
                [Verdict::Forward { reply: true }]
            );
        }
        // After a switch to caching_sha2 as well.
        assert_eq!(
            judge_after(STRICT, NATIVE_PASSWORD, &[&switch(CACHING_SHA2), &[0x01, 0x04, 0x00]]),
            [Verdict::Forward { reply: true }, Verdict::Refuse(full)]
        );
    }

    #[test]
    fn packets_a_safe_login_has_no_room_for_are_refused() {
        let refused = |verdicts: Vec<Verdict>| {
            matches!(
                verdicts.last(),
                Some(Verdict::Refuse(InsecureRequest::UnexpectedMessage { .. }))
            )
        };
        let key = b"\x01-----BEGIN PUBLIC KEY-----\n";
        for packets in [
            // A lone 0x01 (the 01 04 split across packets), then the 04.
            vec![&[0x01][..], &[0x04]],
            // A public key nobody asked for.
            vec![&key[..]],
            // Fast auth success padded, or twice.
            vec![&[0x01, 0x03, 0x00][..]],
            vec![&[0x01, 0x03][..], &[0x01, 0x03]],
            // Fast auth success, then a switch.
            vec![&[0x01, 0x03][..], &switch(NATIVE_PASSWORD)],
            // A packet that is no login packet at all.
            vec![&[0x0a, 0x35][..]],
        ] {
            assert!(refused(judge_after(STRICT, CACHING_SHA2, &packets)), "{packets:?}");
        }
        // A second switch, even to a safe plugin.
        let twice = judge_after(
            STRICT,
            CACHING_SHA2,
            &[&switch(NATIVE_PASSWORD), &switch(NATIVE_PASSWORD)],
        );
        assert!(refused(twice));
        // AuthMoreData for a plugin that has none.
        assert!(refused(judge_after(STRICT, NATIVE_PASSWORD, &[&[0x01, 0x03]])));
    }

    #[test]
    fn the_first_answer_must_be_a_challenge_response() {
        assert_eq!(
            LoginJudge::new(STRICT, Some(CACHING_SHA2.into())).first_answer(),
            Ok(())
        );
        assert_eq!(
            LoginJudge::new(STRICT, Some("mysql_clear_password".into())).first_answer(),
            Err(InsecureRequest::MysqlClearPassword)
        );
        assert!(LoginJudge::new(STRICT, None).first_answer().is_err());
        assert_eq!(
            LoginJudge::new(VERIFIED, Some("mysql_clear_password".into())).first_answer(),
            Ok(())
        );
    }

    #[test]
    fn safe_exchanges_pass() {
        assert_eq!(
            judge_after(STRICT, CACHING_SHA2, &[&[0x01, FAST_AUTH_SUCCESS], &[0x00, 0, 0, 2, 0]]),
            [Verdict::Forward { reply: false }, Verdict::LoginOver]
        );
        assert_eq!(
            judge_after(STRICT, CACHING_SHA2, &[b"\xff\x15\x04#28000denied"]),
            [Verdict::LoginOver]
        );
        let ed25519 = [&[0xfe][..], b"client_ed25519\0", &[9; 32]].concat();
        assert_eq!(
            judge_after(REQUIRE, CACHING_SHA2, &[&ed25519, &[0x00, 0, 0, 2, 0]]),
            [Verdict::Forward { reply: true }, Verdict::LoginOver]
        );
        // After a switch away from caching_sha2, 0x04 means nothing: refused as unexpected.
        assert!(matches!(
            judge_after(STRICT, CACHING_SHA2, &[&ed25519, &[0x01, PERFORM_FULL_AUTHENTICATION]])[1],
            Verdict::Refuse(InsecureRequest::UnexpectedMessage { .. })
        ));
    }

    /// Another process that finds the relay's socket is turned away; the
    /// driver's own connection, from this process, is the one relayed.
    #[tokio::test]
    async fn only_this_process_may_take_the_relay() {
        let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let server = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (mut fake_server, _) = listener.accept().await.unwrap();
        let hello = greeting(false, "mysql_native_password");
        write_packet(&mut fake_server, 0, &hello).await.unwrap();
        let relay = Relay::start(server, "127.0.0.1", TlsPlan::Off, STRICT, Duration::from_secs(10))
            .await
            .unwrap();
        let path = relay.socket.to_string_lossy().into_owned();
        // A second process connects first and waits for a byte: it gets the
        // connection closed on it instead.
        let intruder = tokio::process::Command::new("python3")
            .args([
                "-c",
                "import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); print(len(s.recv(64)))",
                &path,
            ])
            .output()
            .await
            .expect("python3 runs");
        assert!(
            intruder.status.success(),
            "{}",
            String::from_utf8_lossy(&intruder.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&intruder.stdout).trim(), "0");
        let mut driver = UnixStream::connect(&path).await.unwrap();
        let (_, relayed) = read_packet(&mut driver).await.unwrap();
        assert_eq!(relayed, hello, "the greeting reaches this process's connection");
        // The directory is this user's alone.
        use std::os::unix::fs::PermissionsExt;
        let dir = std::fs::metadata(relay.socket.parent().unwrap()).unwrap();
        assert_eq!(dir.permissions().mode() & 0o777, 0o700);
    }

    #[test]
    fn packets_are_described_by_their_head() {
        assert_eq!(describe_packet(&[0x01, 0x04, 0x00]), "a 3-byte login packet (01 04 00)");
        assert_eq!(
            describe_packet(&[1, 2, 3, 4, 5]),
            "a 5-byte login packet (01 02 03 04 …)"
        );
    }
}
