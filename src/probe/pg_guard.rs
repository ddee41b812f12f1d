//! A stream adapter that reads what a PostgreSQL server says during the
//! login before tokio-postgres does. Each authentication message is held
//! until it is whole and judged against the [`AuthPolicy`] and the order
//! of the exchange (method, SASL continue, SASL final, OK); a refused one
//! fails the read instead of reaching the driver, so the driver never
//! answers it and nothing of the password leaves.
//!
//! tokio-postgres negotiates TLS itself on the stream it is given, so the
//! guard sits at two places: around the TCP socket (it judges the plaintext
//! login after the server declined TLS, or when TLS is off) and around the
//! TLS stream (through [`GuardedTls`]). After `AuthenticationOk` it only
//! passes bytes through.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, TlsConnect, TlsStream};

use super::auth_policy::{AuthPolicy, InsecureRequest, Refused};

/// Backend message tags and authentication codes (PostgreSQL protocol 3.0).
const AUTHENTICATION: u8 = b'R';
const AUTH_OK: i32 = 0;
const AUTH_CLEARTEXT_PASSWORD: i32 = 3;
const AUTH_MD5_PASSWORD: i32 = 5;
const AUTH_SASL: i32 = 10;
const AUTH_SASL_CONTINUE: i32 = 11;
const AUTH_SASL_FINAL: i32 = 12;
const SCRAM_SHA_256: &str = "SCRAM-SHA-256";
const SCRAM_SHA_256_PLUS: &str = "SCRAM-SHA-256-PLUS";
/// The one-byte answers to an `SSLRequest`.
const SSL_ACCEPTED: u8 = b'S';
const SSL_DECLINED: u8 = b'N';
/// Tag and length.
const HEADER_LEN: usize = 5;
/// An authentication message's header and its code.
const AUTH_HEADER_LEN: usize = HEADER_LEN + 4;
/// Authentication messages are held whole before they are judged; the
/// largest real one (a SASL mechanism list or server-first-message) is a
/// few hundred bytes.
const MAX_AUTH_BODY: usize = 8 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The first byte answers our `SSLRequest`.
    SslAnswer,
    /// Login messages, judged one by one.
    Login,
    /// TLS took over (judged above it), or the login succeeded.
    PassThrough,
}

/// Which authentication message the exchange has room for next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// The server's first request: a method, or `AuthenticationOk`.
    Method,
    SaslContinue,
    SaslFinal,
    /// `AuthenticationOk` after a completed exchange.
    Ok,
}

/// The pure part: judges the server's bytes as they arrive.
#[derive(Debug)]
pub(crate) struct LoginWatch {
    policy: AuthPolicy,
    phase: Phase,
    expect: Expect,
    /// Bytes of the current (non-authentication) message's body not yet
    /// seen.
    body_left: usize,
}

impl LoginWatch {
    /// `ssl_requested`: the client starts with an `SSLRequest`, so the first
    /// byte is the server's answer to it.
    pub(crate) fn new(policy: AuthPolicy, ssl_requested: bool) -> Self {
        LoginWatch {
            policy,
            phase: if ssl_requested { Phase::SslAnswer } else { Phase::Login },
            expect: Expect::Method,
            body_left: 0,
        }
    }

    /// How many leading bytes of `pending` (what the server sent and the
    /// driver has not seen) may be handed on. An authentication message is
    /// held back until it is whole, then judged; a refused one is an error.
    pub(crate) fn judge(&mut self, pending: &[u8]) -> Result<usize, InsecureRequest> {
        let mut at = 0;
        loop {
            match self.phase {
                Phase::PassThrough => return Ok(pending.len()),
                Phase::SslAnswer => {
                    let Some(&answer) = pending.get(at) else { return Ok(at) };
                    match answer {
                        SSL_ACCEPTED => self.phase = Phase::PassThrough,
                        SSL_DECLINED => {
                            self.phase = Phase::Login;
                            at += 1;
                        }
                        // An error message from a server that does not know
                        // SSLRequest: judge it as a login message.
                        _ => self.phase = Phase::Login,
                    }
                }
                Phase::Login if self.body_left > 0 => {
                    let take = self.body_left.min(pending.len() - at);
                    if take == 0 {
                        return Ok(at);
                    }
                    at += take;
                    self.body_left -= take;
                }
                Phase::Login => {
                    let rest = &pending[at..];
                    if rest.len() < HEADER_LEN {
                        return Ok(at);
                    }
                    let length = i32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]);
                    let Ok(body) = usize::try_from(length - 4) else {
                        // Not the protocol; the driver reports it.
                        self.phase = Phase::PassThrough;
                        continue;
                    };
                    if rest[0] != AUTHENTICATION {
                        // Errors, notices, protocol negotiation: the driver
                        // reads them, nothing answers them with a secret.
                        at += HEADER_LEN;
                        self.body_left = body;
                        continue;
                    }
                    if body < 4 || body > MAX_AUTH_BODY {
                        return Err(unexpected(format!("an authentication message of {body} bytes")));
                    }
                    if rest.len() < HEADER_LEN + body {
                        return Ok(at);
                    }
                    let code = i32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]);
                    self.judge_authentication(code, &rest[AUTH_HEADER_LEN..HEADER_LEN + body])?;
                    at += HEADER_LEN + body;
                    if code == AUTH_OK {
                        self.phase = Phase::PassThrough;
                    }
                }
            }
        }
    }

    /// One whole authentication message: `code` and what follows it.
    fn judge_authentication(&mut self, code: i32, data: &[u8]) -> Result<(), InsecureRequest> {
        let policy = self.policy;
        if policy.verified {
            // The server proved who it is: it may ask for anything, and the
            // driver keeps the order itself.
            return Ok(());
        }
        self.expect = match (self.expect, code) {
            (_, AUTH_CLEARTEXT_PASSWORD) => return Err(InsecureRequest::PostgresCleartext),
            (Expect::Method, AUTH_MD5_PASSWORD) if policy.allows_md5() => Expect::Ok,
            (Expect::Method, AUTH_MD5_PASSWORD) => return Err(InsecureRequest::PostgresMd5),
            (Expect::Method, AUTH_OK) if policy.channel_binding => {
                return Err(InsecureRequest::PostgresNoChannelBinding {
                    offered: "no authentication at all".into(),
                });
            }
            (Expect::Method | Expect::Ok, AUTH_OK) => Expect::Ok,
            (Expect::Method, AUTH_SASL) => {
                let mechanisms = sasl_mechanisms(data);
                if policy.channel_binding && !mechanisms.iter().any(|m| m == SCRAM_SHA_256_PLUS) {
                    let offered = if mechanisms.is_empty() {
                        "no SASL mechanism".to_string()
                    } else {
                        mechanisms.join(", ")
                    };
                    return Err(InsecureRequest::PostgresNoChannelBinding { offered });
                }
                if !mechanisms.iter().any(|m| m == SCRAM_SHA_256 || m == SCRAM_SHA_256_PLUS) {
                    return Err(unexpected(format!("the SASL mechanisms {}", mechanisms.join(", "))));
                }
                Expect::SaslContinue
            }
            (Expect::SaslContinue, AUTH_SASL_CONTINUE) => match scram_iterations(data) {
                Some(iterations) if policy.allows_scram_iterations(iterations) => Expect::SaslFinal,
                Some(iterations) => return Err(InsecureRequest::PostgresWeakScram { iterations }),
                None => {
                    return Err(unexpected(
                        "a SCRAM server-first-message without an iteration count".into(),
                    ));
                }
            },
            (Expect::SaslFinal, AUTH_SASL_FINAL) => Expect::Ok,
            (expect, code) => return Err(unexpected(format!("{} while expecting {expect:?}", auth_name(code)))),
        };
        Ok(())
    }
}

fn unexpected(what: String) -> InsecureRequest {
    InsecureRequest::UnexpectedMessage { what }
}

fn auth_name(code: i32) -> String {
    match code {
        AUTH_OK => "AuthenticationOk".into(),
        AUTH_SASL => "AuthenticationSASL".into(),
        AUTH_SASL_CONTINUE => "AuthenticationSASLContinue".into(),
        AUTH_SASL_FINAL => "AuthenticationSASLFinal".into(),
        2 => "AuthenticationKerberosV5".into(),
        6 => "AuthenticationSCMCredential".into(),
        7 | 8 => "AuthenticationGSS".into(),
        9 => "AuthenticationSSPI".into(),
        other => format!("authentication request {other}"),
    }
}

/// The mechanism names of an `AuthenticationSASL` message: NUL-terminated
/// strings ending with an empty one.
fn sasl_mechanisms(data: &[u8]) -> Vec<String> {
    data.split(|&b| b == 0)
        .take_while(|name| !name.is_empty())
        .map(InsecureRequest::server_text)
        .collect()
}

/// The `i=` attribute of a SCRAM server-first-message (`r=…,s=…,i=4096`).
fn scram_iterations(data: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(data).ok()?;
    let mut found = None;
    for attribute in text.split(',') {
        if let Some(value) = attribute.strip_prefix("i=") {
            if found.is_some() {
                return None;
            }
            found = Some(value.parse().ok()?);
        }
    }
    found
}

/// A stream whose reads pass through a [`LoginWatch`].
pub(crate) struct Guarded<S> {
    inner: S,
    watch: LoginWatch,
    /// Read from `inner`, not yet handed on.
    pending: Vec<u8>,
    /// How many bytes at the start of `pending` were judged safe.
    released: usize,
}

impl<S> Guarded<S> {
    pub(crate) fn new(inner: S, watch: LoginWatch) -> Self {
        Guarded {
            inner,
            watch,
            pending: Vec::new(),
            released: 0,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // Once nothing is held back, reads go straight to the inner stream.
        if this.pending.is_empty() && this.watch.phase == Phase::PassThrough {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        loop {
            if this.released > 0 {
                let n = this.released.min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.drain(..n);
                this.released -= n;
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 4096];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                // End of stream: whatever is held back is an incomplete
                // header the driver will fail on anyway.
                this.released = this.pending.len();
                if this.released == 0 {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            this.pending.extend_from_slice(read.filled());
            let judged = this
                .watch
                .judge(&this.pending[this.released..])
                .map_err(|request| io::Error::new(io::ErrorKind::PermissionDenied, Refused(request)))?;
            this.released += judged;
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: TlsStream + Unpin> TlsStream for Guarded<S> {
    fn channel_binding(&self) -> ChannelBinding {
        self.inner.channel_binding()
    }
}

/// Wraps a TLS connector so the login inside TLS is judged too.
pub(crate) struct GuardedTls<T> {
    pub(crate) inner: T,
    pub(crate) policy: AuthPolicy,
}

impl<S, T> TlsConnect<S> for GuardedTls<T>
where
    T: TlsConnect<S>,
    T::Future: Send + 'static,
{
    type Stream = Guarded<T::Stream>;
    type Error = T::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Stream, T::Error>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let policy = self.policy;
        let handshake = self.inner.connect(stream);
        Box::pin(async move {
            let stream = handshake.await?;
            Ok(Guarded::new(stream, LoginWatch::new(policy, false)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::probe::auth_policy::{REQUIRE, STRICT, VERIFIED};

    fn message(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn auth(code: i32, extra: &[u8]) -> Vec<u8> {
        let mut body = code.to_be_bytes().to_vec();
        body.extend_from_slice(extra);
        message(AUTHENTICATION, &body)
    }

    fn sasl(mechanisms: &[&str]) -> Vec<u8> {
        let mut list = Vec::new();
        for m in mechanisms {
            list.extend_from_slice(m.as_bytes());
            list.push(0);
        }
        list.push(0);
        auth(AUTH_SASL, &list)
    }

    /// A login that succeeds with SCRAM (`-PLUS` on offer), then a query
    /// result.
    fn scram_login(iterations: u32) -> Vec<u8> {
        [
            sasl(&[SCRAM_SHA_256_PLUS, SCRAM_SHA_256]),
            auth(
                AUTH_SASL_CONTINUE,
                format!("r=nonce,s=c2FsdA==,i={iterations}").as_bytes(),
            ),
            auth(AUTH_SASL_FINAL, b"v=proof"),
            auth(AUTH_OK, b""),
            message(b'S', b"server_version\x0015.18\0"),
            message(b'Z', b"I"),
        ]
        .concat()
    }

    fn judge_all(policy: AuthPolicy, bytes: &[u8]) -> Result<usize, InsecureRequest> {
        LoginWatch::new(policy, false).judge(bytes)
    }

    #[test]
    fn a_scram_login_passes_whole_and_then_everything_passes() {
        let bytes = scram_login(4096);
        for policy in [STRICT, REQUIRE, VERIFIED] {
            let mut watch = LoginWatch::new(policy, false);
            assert_eq!(watch.judge(&bytes), Ok(bytes.len()));
            assert_eq!(watch.phase, Phase::PassThrough);
            // Even a cleartext request after the login is no longer judged.
            assert_eq!(watch.judge(&auth(3, b"")), Ok(9));
        }
    }

    #[test]
    fn a_cleartext_request_is_refused_unless_the_server_was_verified() {
        let request = auth(AUTH_CLEARTEXT_PASSWORD, b"");
        assert_eq!(judge_all(STRICT, &request), Err(InsecureRequest::PostgresCleartext));
        assert_eq!(judge_all(REQUIRE, &request), Err(InsecureRequest::PostgresCleartext));
        assert_eq!(judge_all(VERIFIED, &request), Ok(request.len()));
    }

    #[test]
    fn md5_is_refused_unless_verified_or_opted_in() {
        let bytes = [auth(AUTH_MD5_PASSWORD, b"salt"), auth(AUTH_OK, b"")].concat();
        assert_eq!(judge_all(STRICT, &bytes), Err(InsecureRequest::PostgresMd5));
        assert_eq!(judge_all(REQUIRE, &bytes), Err(InsecureRequest::PostgresMd5));
        assert_eq!(judge_all(VERIFIED, &bytes), Ok(bytes.len()));
        let opted_in = AuthPolicy {
            md5_opted_in: true,
            ..STRICT
        };
        assert_eq!(judge_all(opted_in, &bytes), Ok(bytes.len()));
    }

    #[test]
    fn scram_needs_enough_iterations_below_verify_full() {
        let weak = scram_login(1);
        assert_eq!(
            judge_all(STRICT, &weak),
            Err(InsecureRequest::PostgresWeakScram { iterations: 1 })
        );
        assert_eq!(
            judge_all(STRICT, &scram_login(4095)),
            Err(InsecureRequest::PostgresWeakScram { iterations: 4095 })
        );
        assert_eq!(judge_all(VERIFIED, &weak), Ok(weak.len()));
        // The refusal comes before the driver sees the server-first-message,
        // so it never computes (or sends) a proof.
        let first = sasl(&[SCRAM_SHA_256]);
        let mut watch = LoginWatch::new(STRICT, false);
        let bytes = [first.clone(), auth(AUTH_SASL_CONTINUE, b"r=n,s=c2FsdA==,i=1")].concat();
        assert_eq!(watch.judge(&bytes[..first.len() + 3]), Ok(first.len()));
        assert!(watch.judge(&bytes[first.len()..]).is_err());
    }

    #[test]
    fn a_server_first_message_without_one_clear_count_is_refused() {
        for body in [
            &b"r=n,s=c2FsdA=="[..],
            b"r=n,s=x,i=4096,i=1",
            b"r=n,s=x,i=lots",
            b"\xff\xfe",
        ] {
            let bytes = [sasl(&[SCRAM_SHA_256]), auth(AUTH_SASL_CONTINUE, body)].concat();
            assert!(
                matches!(
                    judge_all(STRICT, &bytes),
                    Err(InsecureRequest::UnexpectedMessage { .. })
                ),
                "{body:?}"
            );
        }
    }

    #[test]
    fn require_needs_channel_binding() {
        let plain = [sasl(&[SCRAM_SHA_256]), auth(AUTH_SASL_CONTINUE, b"r=n,s=x,i=4096")].concat();
        assert_eq!(
            judge_all(REQUIRE, &plain),
            Err(InsecureRequest::PostgresNoChannelBinding {
                offered: SCRAM_SHA_256.into()
            })
        );
        // Under prefer the TLS may be stripped anyway: plain SCRAM is the best there is.
        assert!(judge_all(STRICT, &plain).is_ok());
        // A server that skips authentication proves nothing about the channel.
        assert!(matches!(
            judge_all(REQUIRE, &auth(AUTH_OK, b"")),
            Err(InsecureRequest::PostgresNoChannelBinding { .. })
        ));
        assert!(judge_all(STRICT, &auth(AUTH_OK, b"")).is_ok());
    }

    #[test]
    fn messages_out_of_order_are_refused() {
        let cases = [
            // SASLContinue before SASL.
            auth(AUTH_SASL_CONTINUE, b"r=n,s=x,i=4096"),
            // A second SASL offer instead of the server-first-message.
            [sasl(&[SCRAM_SHA_256]), sasl(&[SCRAM_SHA_256])].concat(),
            // Final without continue.
            [sasl(&[SCRAM_SHA_256]), auth(AUTH_SASL_FINAL, b"v=x")].concat(),
            // MD5 in the middle of SCRAM (asking twice).
            [sasl(&[SCRAM_SHA_256]), auth(AUTH_MD5_PASSWORD, b"salt")].concat(),
            // GSSAPI, which the driver cannot do.
            auth(7, b""),
            // An unknown SASL mechanism only.
            sasl(&["OAUTHBEARER"]),
            // A padded or truncated authentication message.
            message(AUTHENTICATION, &[0, 0]),
            auth(AUTH_SASL, &[b'x'; MAX_AUTH_BODY]),
        ];
        for bytes in cases {
            assert!(
                matches!(
                    judge_all(STRICT, &bytes),
                    Err(InsecureRequest::UnexpectedMessage { .. })
                ),
                "{bytes:?}"
            );
        }
        let cleartext_after_scram = [sasl(&[SCRAM_SHA_256]), auth(AUTH_CLEARTEXT_PASSWORD, b"")].concat();
        assert_eq!(
            judge_all(STRICT, &cleartext_after_scram),
            Err(InsecureRequest::PostgresCleartext)
        );
    }

    #[test]
    fn errors_and_notices_pass() {
        let bytes = [
            message(b'N', b"SNOTICE\0Mhello\0\0"),
            message(b'E', b"SFATAL\0C28P01\0\0"),
        ]
        .concat();
        assert_eq!(judge_all(STRICT, &bytes), Ok(bytes.len()));
    }

    #[test]
    fn the_ssl_answer_decides_who_judges_the_login() {
        let declined = [vec![SSL_DECLINED], auth(AUTH_CLEARTEXT_PASSWORD, b"")].concat();
        assert_eq!(
            LoginWatch::new(STRICT, true).judge(&declined),
            Err(InsecureRequest::PostgresCleartext)
        );
        // Accepted: what follows is TLS, judged by the guard above it.
        let accepted = [vec![SSL_ACCEPTED], vec![0x16, 0x03, 0x03]].concat();
        assert_eq!(LoginWatch::new(STRICT, true).judge(&accepted), Ok(accepted.len()));
    }

    #[test]
    fn a_request_split_anywhere_is_still_caught() {
        let first = sasl(&[SCRAM_SHA_256]);
        for (refused, request) in [
            (auth(AUTH_CLEARTEXT_PASSWORD, b""), InsecureRequest::PostgresCleartext),
            (
                auth(AUTH_SASL_CONTINUE, b"r=n,s=x,i=1"),
                InsecureRequest::PostgresWeakScram { iterations: 1 },
            ),
        ] {
            let bytes = [first.clone(), refused].concat();
            for split in 0..bytes.len() {
                let mut watch = LoginWatch::new(STRICT, false);
                let released = watch.judge(&bytes[..split]).unwrap();
                assert!(released <= split);
                // The driver must not see any byte of the refused request
                // before the refusal.
                assert!(released <= first.len(), "split {split}: released {released}");
                let result = watch.judge(&bytes[released..]);
                assert_eq!(result, Err(request.clone()), "split {split}");
            }
        }
    }

    #[tokio::test]
    async fn the_adapter_fails_the_read_instead_of_handing_the_request_on() {
        let (mut server, client) = tokio::io::duplex(64);
        let mut guarded = Guarded::new(client, LoginWatch::new(STRICT, false));
        server.write_all(&auth(AUTH_CLEARTEXT_PASSWORD, b"")).await.unwrap();
        let mut buf = [0u8; 64];
        let err = guarded.read(&mut buf).await.unwrap_err();
        assert_eq!(
            super::super::auth_policy::refusal_in(&err),
            Some(InsecureRequest::PostgresCleartext)
        );
    }

    #[tokio::test]
    async fn the_adapter_hands_on_a_good_login_byte_for_byte() {
        let (mut server, client) = tokio::io::duplex(16);
        let mut guarded = Guarded::new(client, LoginWatch::new(STRICT, false));
        let bytes = scram_login(4096);
        let sent = bytes.clone();
        let writer = tokio::spawn(async move {
            server.write_all(&sent).await.unwrap();
            drop(server);
        });
        let mut received = Vec::new();
        guarded.read_to_end(&mut received).await.unwrap();
        writer.await.unwrap();
        assert_eq!(received, bytes);
    }
}
