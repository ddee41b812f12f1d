//! A stream adapter that reads what a PostgreSQL server says during the
//! login before tokio-postgres does, and fails the read instead of handing
//! over an `AuthenticationCleartextPassword` request the policy forbids. The
//! driver then never answers it, so the password never leaves.
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

use super::guard::{AuthPolicy, InsecureRequest, Refused};

/// Backend message tags and authentication codes (PostgreSQL protocol 3.0).
const AUTHENTICATION: u8 = b'R';
const AUTH_OK: i32 = 0;
const AUTH_CLEARTEXT_PASSWORD: i32 = 3;
/// The one-byte answers to an `SSLRequest`.
const SSL_ACCEPTED: u8 = b'S';
const SSL_DECLINED: u8 = b'N';
/// Tag and length.
const HEADER_LEN: usize = 5;
/// An authentication message's header and its code.
const AUTH_HEADER_LEN: usize = HEADER_LEN + 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The first byte answers our `SSLRequest`.
    SslAnswer,
    /// Login messages, judged one by one.
    Login,
    /// TLS took over (judged above it), or the login succeeded.
    PassThrough,
}

/// The pure part: judges the server's bytes as they arrive.
#[derive(Debug)]
pub(crate) struct LoginWatch {
    policy: AuthPolicy,
    phase: Phase,
    /// Bytes of the current message's body not yet seen.
    body_left: usize,
    /// The current message is `AuthenticationOk`: pass through after it.
    last_login_message: bool,
}

impl LoginWatch {
    /// `ssl_requested`: the client starts with an `SSLRequest`, so the first
    /// byte is the server's answer to it.
    pub(crate) fn new(policy: AuthPolicy, ssl_requested: bool) -> Self {
        LoginWatch {
            policy,
            phase: if ssl_requested { Phase::SslAnswer } else { Phase::Login },
            body_left: 0,
            last_login_message: false,
        }
    }

    /// How many leading bytes of `pending` (what the server sent and the
    /// driver has not seen) may be handed on. Bytes of a message header not
    /// yet complete are held back; a forbidden request is an error.
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
                    if self.body_left == 0 && self.last_login_message {
                        self.phase = Phase::PassThrough;
                    }
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
                    if rest[0] == AUTHENTICATION {
                        if rest.len() < AUTH_HEADER_LEN {
                            return Ok(at);
                        }
                        let code = i32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]);
                        if code == AUTH_CLEARTEXT_PASSWORD && !self.policy.recoverable_password {
                            return Err(InsecureRequest::PostgresCleartext);
                        }
                        self.last_login_message = code == AUTH_OK;
                    }
                    at += HEADER_LEN;
                    self.body_left = body;
                    if body == 0 && self.last_login_message {
                        self.phase = Phase::PassThrough;
                    }
                }
            }
        }
    }
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

    use crate::probe::guard::{STRICT, VERIFIED};

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

    /// A login that succeeds with SCRAM, then a query result.
    fn scram_login() -> Vec<u8> {
        [
            auth(10, b"SCRAM-SHA-256\0\0"),
            auth(11, b"r=nonce,s=salt,i=4096"),
            auth(12, b"v=proof"),
            auth(AUTH_OK, b""),
            message(b'S', b"server_version\x0015.18\0"),
            message(b'Z', b"I"),
        ]
        .concat()
    }

    #[test]
    fn a_scram_login_passes_whole_and_then_everything_passes() {
        let bytes = scram_login();
        let mut watch = LoginWatch::new(STRICT, false);
        assert_eq!(watch.judge(&bytes), Ok(bytes.len()));
        assert_eq!(watch.phase, Phase::PassThrough);
        // Even a cleartext request after the login is no longer judged.
        assert_eq!(watch.judge(&auth(3, b"")), Ok(9));
    }

    #[test]
    fn a_cleartext_request_is_refused_unless_the_server_was_verified() {
        let request = auth(AUTH_CLEARTEXT_PASSWORD, b"");
        assert_eq!(
            LoginWatch::new(STRICT, false).judge(&request),
            Err(InsecureRequest::PostgresCleartext)
        );
        assert_eq!(LoginWatch::new(VERIFIED, false).judge(&request), Ok(request.len()));
    }

    #[test]
    fn md5_and_errors_pass() {
        let bytes = [auth(5, b"salt"), message(b'E', b"SFATAL\0C28P01\0\0")].concat();
        assert_eq!(LoginWatch::new(STRICT, false).judge(&bytes), Ok(bytes.len()));
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
        let first = auth(10, b"SCRAM-SHA-256\0\0");
        let bytes = [first.clone(), auth(AUTH_CLEARTEXT_PASSWORD, b"")].concat();
        for split in 0..bytes.len() {
            let mut watch = LoginWatch::new(STRICT, false);
            let released = watch.judge(&bytes[..split]).unwrap();
            assert!(released <= split);
            // The driver must not see any byte of the refused request's
            // header before the refusal.
            assert!(released <= first.len(), "split {split}: released {released}");
            let result = watch.judge(&bytes[released..]);
            assert_eq!(result, Err(InsecureRequest::PostgresCleartext), "split {split}");
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
            super::super::guard::refusal_in(&err),
            Some(InsecureRequest::PostgresCleartext)
        );
    }

    #[tokio::test]
    async fn the_adapter_hands_on_a_good_login_byte_for_byte() {
        let (mut server, client) = tokio::io::duplex(16);
        let mut guarded = Guarded::new(client, LoginWatch::new(STRICT, false));
        let bytes = scram_login();
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
