//! The hostile-server matrix (issue 18): one fake server per known trick,
//! each tried under `disable`, `prefer`, `require` and `verify-full` (with
//! a certificate the instance's CA did not sign: an impostor). Every fake
//! server plays the attacker to the end: it reads whatever the client
//! answers and tries to recover the password from it — cleartext, an RSA
//! block it decrypts with its own key, an MD5 or SCRAM answer it cracks
//! against a dictionary that holds the real password — and reports what it
//! got. A row passes only if the attacker got nothing it may not have.
//!
//! The control rows run the tricks that would work against a bare driver
//! under `verify-full` with the fake server's real CA: there the server is
//! verified and gets the password, which proves the attackers' recovery
//! works and the matrix can fail. `scripts/mutation-check.sh` turns each
//! guard off in turn and shows the matching rows fail.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use dbfleet::crd::instance::{DbType, TlsMode};
use dbfleet::probe::{self, ErrorKind, Password, Target, Timeouts, TlsSettings};
use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::fake_servers::{
    CLIENT_SSL, FakeServer, PG_SSL_REQUEST, Recording, TestPki, mysql_greeting, pg_message, read_mysql_packet,
    read_startup_message, write_mysql_packet,
};

const USER: &str = "monitor";
const PASSWORD: &str = "hostile-matrix-secret-91c2";
/// How long a fake server waits for the client's next message.
const PATIENCE: Duration = Duration::from_secs(3);
/// The scramble in the fake MySQL greeting (parts 1 and 2).
const SCRAMBLE: &[u8; 20] = b"abcdefghijklmnopqrst";

/// What an attacker recovered from one login.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Loot {
    /// The password itself, as sent.
    Cleartext,
    /// An RSA block the attacker decrypted with its own key.
    RsaDecrypted,
    /// An MD5 answer, cracked offline.
    Md5Cracked,
    /// A SCRAM proof that checks against the password.
    ScramProof {
        iterations: u32,
        /// The proof is bound to the TLS channel (SCRAM-SHA-256-PLUS).
        bound: bool,
        over_tls: bool,
    },
}

impl Loot {
    /// Whether a server nobody verified may have this, under `mode`. The
    /// SCRAM proof at full strength over a link without TLS, or under
    /// `prefer`, is the residual risk SCRAM itself carries (see
    /// docs/security.md).
    fn allowed_unverified(&self, mode: TlsMode) -> bool {
        match self {
            Loot::Cleartext | Loot::RsaDecrypted | Loot::Md5Cracked => false,
            Loot::ScramProof { iterations, bound, .. } => *iterations >= 4096 && (*bound || mode != TlsMode::Require),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trick {
    PgCleartext,
    PgMd5,
    /// Offers only SCRAM-SHA-256 (a man in the middle stripping -PLUS).
    PgScramWithoutPlus,
    /// Offers both SCRAM mechanisms, then asks for one iteration.
    PgScramOneIteration,
    /// Declines TLS, then asks for the password in cleartext.
    PgTlsDowngrade,
    /// Starts SCRAM, then asks for the password in cleartext as well.
    PgAsksTwice,
    /// A SASLContinue before any SASL offer.
    PgOutOfOrder,
    /// caching_sha2 "perform full authentication" with a byte after it.
    MyFullAuthTrailing,
    /// `01` and `04` in two packets.
    MyFullAuthSplitPackets,
    /// `01 04` written a byte at a time.
    MyFullAuthSplitBytes,
    MyClearPassword,
    MySha256Password,
    MyDialog,
    /// An RSA public key nobody asked for.
    MyUnaskedKey,
    /// Offers no TLS, then asks for full authentication.
    MyTlsDowngrade,
}

const TRICKS: [Trick; 15] = [
    Trick::PgCleartext,
    Trick::PgMd5,
    Trick::PgScramWithoutPlus,
    Trick::PgScramOneIteration,
    Trick::PgTlsDowngrade,
    Trick::PgAsksTwice,
    Trick::PgOutOfOrder,
    Trick::MyFullAuthTrailing,
    Trick::MyFullAuthSplitPackets,
    Trick::MyFullAuthSplitBytes,
    Trick::MyClearPassword,
    Trick::MySha256Password,
    Trick::MyDialog,
    Trick::MyUnaskedKey,
    Trick::MyTlsDowngrade,
];

impl Trick {
    fn db_type(self) -> DbType {
        match self {
            Trick::PgCleartext
            | Trick::PgMd5
            | Trick::PgScramWithoutPlus
            | Trick::PgScramOneIteration
            | Trick::PgTlsDowngrade
            | Trick::PgAsksTwice
            | Trick::PgOutOfOrder => DbType::Postgresql,
            _ => DbType::Mysql,
        }
    }

    fn offers_tls(self) -> bool {
        !matches!(self, Trick::PgTlsDowngrade | Trick::MyTlsDowngrade)
    }

    /// How the probe must end under `mode` against an impostor.
    fn expected(self, mode: TlsMode) -> ErrorKind {
        match (self, mode) {
            // Its certificate is not the CA's, or it offers no TLS at all.
            (_, TlsMode::VerifyFull) => ErrorKind::TlsError,
            (Trick::PgTlsDowngrade | Trick::MyTlsDowngrade, TlsMode::Require) => ErrorKind::TlsError,
            // Plain SCRAM is the best there is without channel binding: the
            // login goes on and the fake server turns it down.
            (Trick::PgScramWithoutPlus, TlsMode::Disable | TlsMode::Prefer) => ErrorKind::AuthenticationFailed,
            _ => ErrorKind::InsecureAuthentication,
        }
    }

    /// Under `verify-full` with the right CA, what a bare driver gives
    /// this trick, if anything: the control rows.
    fn loot_when_verified(self) -> Option<Loot> {
        match self {
            Trick::PgCleartext | Trick::MyClearPassword => Some(Loot::Cleartext),
            Trick::MyFullAuthTrailing => Some(Loot::Cleartext),
            Trick::PgMd5 => Some(Loot::Md5Cracked),
            Trick::PgScramOneIteration => Some(Loot::ScramProof {
                iterations: 1,
                bound: true,
                over_tls: true,
            }),
            _ => None,
        }
    }
}

/// A fake server playing `trick`, and what it recovered.
struct Attacker {
    server: FakeServer,
    loot: Arc<Mutex<Vec<Loot>>>,
    /// Sessions that have ended (and reported).
    finished: Arc<AtomicUsize>,
}

impl Attacker {
    async fn start(trick: Trick, pki: &TestPki) -> Attacker {
        let loot = Arc::new(Mutex::new(Vec::new()));
        let tls = trick.offers_tls().then(|| pki.server.clone());
        let finished = Arc::new(AtomicUsize::new(0));
        let (found, done) = (loot.clone(), finished.clone());
        let server = FakeServer::start(move |stream| {
            let (tls, found, done) = (tls.clone(), found.clone(), done.clone());
            async move {
                let recovered = match trick.db_type() {
                    DbType::Postgresql => postgres_attack(stream, trick, tls).await,
                    DbType::Mysql => mysql_attack(stream, trick, tls).await,
                };
                found.lock().unwrap().extend(recovered);
                done.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .await;
        Attacker { server, loot, finished }
    }

    fn loot(&self) -> Vec<Loot> {
        self.loot.lock().unwrap().clone()
    }
}

fn target(db_type: DbType, port: u16, mode: TlsMode, ca_pem: &str) -> Target {
    Target::new(db_type, "127.0.0.1", port, USER, Password::new(PASSWORD))
        .with_tls(TlsSettings {
            mode,
            ca_pem: (mode == TlsMode::VerifyFull).then(|| ca_pem.as_bytes().to_vec()),
        })
        .with_timeouts(Timeouts {
            connect: Duration::from_secs(5),
            operation: Duration::from_secs(3),
        })
}

/// Runs one login against `attacker` and waits for its report: the
/// sessions end within [`PATIENCE`] of the client's last word.
async fn attack(attacker: &Attacker, trick: Trick, mode: TlsMode, ca_pem: &str) -> (probe::ProbeError, Vec<Loot>) {
    let error = probe::test_connection(&target(trick.db_type(), attacker.server.port, mode, ca_pem))
        .await
        .expect_err("a fake server never lets a login succeed");
    let deadline = tokio::time::Instant::now() + PATIENCE * 2;
    while attacker.finished.load(Ordering::SeqCst) < attacker.server.connections()
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (error, attacker.loot())
}

#[tokio::test]
async fn no_hostile_server_recovers_the_password_without_verification() {
    let (pki, other_ca) = (TestPki::new(), TestPki::new());
    let mut failures = Vec::new();
    for trick in TRICKS {
        for mode in [TlsMode::Disable, TlsMode::Prefer, TlsMode::Require, TlsMode::VerifyFull] {
            let attacker = Attacker::start(trick, &pki).await;
            // Under verify-full the instance trusts another CA: the fake
            // server is an impostor.
            let (error, loot) = attack(&attacker, trick, mode, &other_ca.ca_pem).await;
            let row = format!("{trick:?} under {mode:?}");
            assert!(attacker.server.connections() >= 1, "{row}: the probe never connected");
            assert!(!error.message.contains(PASSWORD), "{row}: {}", error.message);
            let forbidden: Vec<_> = loot.iter().filter(|l| !l.allowed_unverified(mode)).collect();
            if !forbidden.is_empty() {
                failures.push(format!("{row}: the fake server recovered {forbidden:?}"));
            }
            if error.kind != trick.expected(mode) {
                failures.push(format!(
                    "{row}: expected {:?}, got {:?}: {}",
                    trick.expected(mode),
                    error.kind,
                    error.message
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The same attackers, verified: the ones a bare driver would answer get
/// the password (or a proof they crack), so the recovery above is real.
#[tokio::test]
async fn verified_servers_get_what_they_ask_for() {
    let pki = TestPki::new();
    for trick in TRICKS {
        let Some(expected) = trick.loot_when_verified() else {
            continue;
        };
        let attacker = Attacker::start(trick, &pki).await;
        let (error, loot) = attack(&attacker, trick, TlsMode::VerifyFull, &pki.ca_pem).await;
        assert_ne!(error.kind, ErrorKind::InsecureAuthentication, "{trick:?}: {error}");
        assert!(
            loot.contains(&expected),
            "{trick:?}: expected {expected:?}, recovered {loot:?}"
        );
    }
}

/// Refusals name what the server asked for and what would allow it.
#[tokio::test]
async fn refusals_say_what_was_asked_and_what_allows_it() {
    let pki = TestPki::new();
    for (trick, mode, words) in [
        (Trick::PgMd5, TlsMode::Prefer, &["MD5", "dbfleet.io/allow-md5"][..]),
        (Trick::PgScramOneIteration, TlsMode::Require, &["1 iterations", "4096"]),
        (
            Trick::PgScramWithoutPlus,
            TlsMode::Require,
            &["SCRAM-SHA-256-PLUS", "channel binding"],
        ),
        (
            Trick::MyFullAuthTrailing,
            TlsMode::Prefer,
            &["full authentication", "verify-full"],
        ),
        (Trick::MyDialog, TlsMode::Disable, &["cleartext", "verify-full"]),
        (Trick::MyUnaskedKey, TlsMode::Prefer, &["no place in the login"]),
    ] {
        let attacker = Attacker::start(trick, &pki).await;
        let (error, _) = attack(&attacker, trick, mode, &pki.ca_pem).await;
        for word in words {
            assert!(
                error.message.contains(word),
                "{trick:?}: {:?} lacks {word:?}",
                error.message
            );
        }
    }
}

// --- PostgreSQL attackers -------------------------------------------------

async fn within<T>(io: impl Future<Output = std::io::Result<T>>) -> Option<T> {
    tokio::time::timeout(PATIENCE, io).await.ok()?.ok()
}

/// A tagged message from the client: its tag and body.
async fn read_pg_message(stream: &mut Recording) -> std::io::Result<(u8, Vec<u8>)> {
    let mut header = [0u8; 5];
    stream.read_exact(&mut header).await?;
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let mut body = vec![0u8; len.saturating_sub(4).min(64 * 1024)];
    stream.read_exact(&mut body).await?;
    Ok((header[0], body))
}

fn pg_auth(code: u32, data: &[u8]) -> Vec<u8> {
    pg_message(b'R', &[&code.to_be_bytes()[..], data].concat())
}

async fn postgres_attack(mut stream: Recording, trick: Trick, tls: Option<Arc<rustls::ServerConfig>>) -> Vec<Loot> {
    let mut over_tls = false;
    let Some(first) = within(read_startup_message(&mut stream)).await else {
        return vec![];
    };
    if first[..] == PG_SSL_REQUEST.to_be_bytes() {
        match tls {
            Some(config) => {
                if stream.write_all(b"S").await.is_err() {
                    return vec![];
                }
                let Some(secured) = within(stream.accept_tls(config)).await else {
                    return vec![];
                };
                stream = secured;
                over_tls = true;
            }
            None => {
                let _ = stream.write_all(b"N").await;
            }
        }
        if within(read_startup_message(&mut stream)).await.is_none() {
            return vec![];
        }
    }
    let loot = postgres_trick(&mut stream, trick, over_tls).await;
    let error = b"SFATAL\0C28P01\0Mpassword authentication failed (fake server)\0\0";
    let _ = stream.write_all(&pg_message(b'E', error)).await;
    let _ = stream.shutdown().await;
    loot
}

async fn postgres_trick(stream: &mut Recording, trick: Trick, over_tls: bool) -> Vec<Loot> {
    let request = match trick {
        Trick::PgCleartext | Trick::PgTlsDowngrade => pg_auth(3, b""),
        Trick::PgMd5 => pg_auth(5, b"salt"),
        Trick::PgScramWithoutPlus | Trick::PgAsksTwice => pg_auth(10, b"SCRAM-SHA-256\0\0"),
        Trick::PgScramOneIteration => pg_auth(10, b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0"),
        Trick::PgOutOfOrder => pg_auth(11, b"r=abc,s=c2FsdA==,i=4096"),
        _ => unreachable!("not a PostgreSQL trick"),
    };
    if stream.write_all(&request).await.is_err() || stream.flush().await.is_err() {
        return vec![];
    }
    let Some((_, answer)) = within(read_pg_message(stream)).await else {
        return vec![];
    };
    match trick {
        Trick::PgCleartext | Trick::PgTlsDowngrade => cleartext_loot(&answer),
        Trick::PgMd5 => (answer.strip_suffix(b"\0") == Some(postgres_md5(b"salt").as_bytes()))
            .then_some(Loot::Md5Cracked)
            .into_iter()
            .collect(),
        Trick::PgOutOfOrder => cleartext_loot(&answer),
        Trick::PgAsksTwice => {
            // After the client's first SCRAM message, ask for cleartext too.
            if stream.write_all(&pg_auth(3, b"")).await.is_err() {
                return vec![];
            }
            let Some((_, answer)) = within(read_pg_message(stream)).await else {
                return vec![];
            };
            cleartext_loot(&answer)
        }
        Trick::PgScramWithoutPlus => scram_attack(stream, &answer, 4096, over_tls).await,
        Trick::PgScramOneIteration => scram_attack(stream, &answer, 1, over_tls).await,
        _ => vec![],
    }
}

fn cleartext_loot(answer: &[u8]) -> Vec<Loot> {
    let found = answer.windows(PASSWORD.len()).any(|w| w == PASSWORD.as_bytes());
    found.then_some(Loot::Cleartext).into_iter().collect()
}

/// What a PostgreSQL client answers to an MD5 challenge with `salt`.
fn postgres_md5(salt: &[u8]) -> String {
    let inner = hex(&Md5::digest([PASSWORD.as_bytes(), USER.as_bytes()].concat()));
    format!("md5{}", hex(&Md5::digest([inner.as_bytes(), salt].concat())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// PBKDF2-HMAC-SHA-256 with one output block: SCRAM's SaltedPassword.
fn salted_password(salt: &[u8], iterations: u32) -> Vec<u8> {
    let mut block = hmac(PASSWORD.as_bytes(), &[salt, &1u32.to_be_bytes()].concat());
    let mut result = block.clone();
    for _ in 1..iterations {
        block = hmac(PASSWORD.as_bytes(), &block);
        result.iter_mut().zip(&block).for_each(|(r, b)| *r ^= b);
    }
    result
}

/// Goes through SCRAM with `iterations` after the client's
/// SASLInitialResponse (`initial`), and checks the client's proof against
/// the password: a proof that checks is one an attacker can brute-force.
async fn scram_attack(stream: &mut Recording, initial: &[u8], iterations: u32, over_tls: bool) -> Vec<Loot> {
    // mechanism NUL, length, client-first-message.
    let Some(end) = initial.iter().position(|&b| b == 0) else {
        return vec![];
    };
    let Ok(client_first) = std::str::from_utf8(&initial[end + 5..]) else {
        return vec![];
    };
    let bound = client_first.starts_with("p=");
    let Some(bare_at) = client_first.match_indices(',').nth(1).map(|(i, _)| i + 1) else {
        return vec![];
    };
    let client_first_bare = &client_first[bare_at..];
    let Some(client_nonce) = client_first_bare.split(',').find_map(|a| a.strip_prefix("r=")) else {
        return vec![];
    };
    let salt = b"attacker-salt";
    let server_first = format!("r={client_nonce}fake,s={},i={iterations}", BASE64.encode(salt));
    if stream.write_all(&pg_auth(11, server_first.as_bytes())).await.is_err() {
        return vec![];
    }
    let Some((_, client_final)) = within(read_pg_message(stream)).await else {
        return vec![];
    };
    let Ok(client_final) = std::str::from_utf8(&client_final) else {
        return vec![];
    };
    let Some((without_proof, proof)) = client_final.rsplit_once(",p=") else {
        return vec![];
    };
    let Ok(proof) = BASE64.decode(proof) else { return vec![] };
    let client_key = hmac(&salted_password(salt, iterations), b"Client Key");
    let stored_key = sha2::Sha256::digest(&client_key);
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let signature = hmac(&stored_key, auth_message.as_bytes());
    let expected: Vec<u8> = client_key.iter().zip(&signature).map(|(k, s)| k ^ s).collect();
    (proof == expected)
        .then_some(Loot::ScramProof {
            iterations,
            bound,
            over_tls,
        })
        .into_iter()
        .collect()
}

// --- MySQL attackers ------------------------------------------------------

/// The attackers' RSA key pair, made once with openssl (installed by
/// scripts/test-env.sh): the private key's path and the public key PEM.
fn rsa_key() -> &'static (PathBuf, Vec<u8>) {
    static KEY: OnceLock<(PathBuf, Vec<u8>)> = OnceLock::new();
    KEY.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("dbfleet-hostile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let private = dir.join("key.pem");
        let made = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
            ])
            .arg(&private)
            .output()
            .expect("openssl runs");
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        let public = std::process::Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&private)
            .output()
            .expect("openssl runs");
        assert!(public.status.success());
        (private, public.stdout)
    })
}

/// Decrypts an RSA-OAEP block (what mysql_async sends for full
/// authentication) with the attackers' key and undoes the scramble XOR.
fn rsa_recover(block: &[u8]) -> Option<Vec<u8>> {
    let (private, _) = rsa_key();
    let file = private.with_file_name(format!("block-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&file, block).ok()?;
    let out = std::process::Command::new("openssl")
        .args(["pkeyutl", "-decrypt", "-pkeyopt", "rsa_padding_mode:oaep", "-inkey"])
        .arg(private)
        .arg("-in")
        .arg(&file)
        .output()
        .ok()?;
    let _ = std::fs::remove_file(&file);
    out.status.success().then(|| {
        out.stdout
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ SCRAMBLE[i % SCRAMBLE.len()])
            .collect()
    })
}

fn switch_to(plugin: &str) -> Vec<u8> {
    [&[0xfe][..], plugin.as_bytes(), b"\0", SCRAMBLE, b"\0"].concat()
}

async fn mysql_attack(mut stream: Recording, trick: Trick, tls: Option<Arc<rustls::ServerConfig>>) -> Vec<Loot> {
    let plugin = match trick {
        Trick::MyClearPassword | Trick::MySha256Password | Trick::MyDialog => "mysql_native_password",
        _ => "caching_sha2_password",
    };
    if write_mysql_packet(&mut stream, 0, &mysql_greeting(plugin, tls.is_some()))
        .await
        .is_err()
    {
        return vec![];
    }
    let Some((mut seq, response)) = within(read_mysql_packet(&mut stream)).await else {
        return vec![];
    };
    let caps = u32::from_le_bytes([response[0], response[1], response[2], response[3]]);
    if let Some(config) = tls.filter(|_| caps & CLIENT_SSL != 0 && response.len() == 32) {
        let Some(secured) = within(stream.accept_tls(config)).await else {
            return vec![];
        };
        stream = secured;
        let Some((next, _)) = within(read_mysql_packet(&mut stream)).await else {
            return vec![];
        };
        seq = next;
    }
    let (_, public_key) = rsa_key();
    let sent = match trick {
        Trick::MyFullAuthTrailing | Trick::MyTlsDowngrade => {
            write_mysql_packet(&mut stream, seq + 1, &[0x01, 0x04, 0x00]).await
        }
        Trick::MyFullAuthSplitPackets => {
            seq += 1;
            write_mysql_packet(&mut stream, seq, &[0x01]).await.ok();
            write_mysql_packet(&mut stream, seq + 1, &[0x04]).await
        }
        Trick::MyFullAuthSplitBytes => {
            let packet = [2, 0, 0, seq + 1, 0x01, 0x04];
            let mut result = Ok(());
            for byte in packet {
                result = stream.write_all(&[byte]).await;
                let _ = stream.flush().await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            result
        }
        Trick::MyClearPassword => write_mysql_packet(&mut stream, seq + 1, &switch_to("mysql_clear_password")).await,
        Trick::MySha256Password => write_mysql_packet(&mut stream, seq + 1, &switch_to("sha256_password")).await,
        Trick::MyDialog => {
            let dialog = [&[0xfe][..], b"dialog\0", b"\x04Password: "].concat();
            write_mysql_packet(&mut stream, seq + 1, &dialog).await
        }
        Trick::MyUnaskedKey => write_mysql_packet(&mut stream, seq + 1, &[&[0x01][..], public_key].concat()).await,
        _ => unreachable!("not a MySQL trick"),
    };
    if sent.is_err() {
        return vec![];
    }
    // Whatever the client answers: hand it a key if it asks for one, and
    // try every answer as cleartext and as an RSA block.
    let mut loot = Vec::new();
    while let Some((seq, answer)) = within(read_mysql_packet(&mut stream)).await {
        loot.extend(cleartext_loot(&answer));
        if answer == [0x02] || answer == [0x01] {
            let key = [&[0x01][..], public_key].concat();
            if write_mysql_packet(&mut stream, seq + 1, &key).await.is_err() {
                break;
            }
            continue;
        }
        if answer.len() == 256 && rsa_recover(&answer).is_some_and(|plain| plain.starts_with(PASSWORD.as_bytes())) {
            loot.push(Loot::RsaDecrypted);
        }
        let error = b"\xff\x15\x04#28000Access denied (fake server)";
        let _ = write_mysql_packet(&mut stream, seq + 1, error).await;
        break;
    }
    let _ = stream.shutdown().await;
    loot
}
