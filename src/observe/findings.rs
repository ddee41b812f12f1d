//! Hygiene findings: what an account sync says about how a server keeps
//! its logins, each finding with a stable code, a severity and the account
//! it concerns (issue 21; the codes, and what to do about each, are in
//! `docs/probes.md`, "Hygiene findings").
//!
//! Pure: from the accounts and the facts the probe read beside them
//! ([`Hygiene`]: settings, and booleans the server computed, never a
//! password or a hash) to the findings, and from the findings to the
//! DbInventory's `findings` section, bounded in bytes and written only
//! when its content hash changes.

use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::crd::bounds;
use crate::crd::findings::{
    CodeCount, FindingCounts, FindingNotChecked, InventoryFinding, InventoryFindings, MAX_FINDINGS,
};
use crate::crd::instance::DbType;
use crate::probe::{Account, AccountKey, Accounts, Checked, Hygiene, PASSWORD_PLUGINS};

use super::status::time;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    High,
    Medium,
    Low,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::High, Severity::Medium, Severity::Low];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }

    pub fn parse(text: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// The findings dbfleet knows. Codes are stable: alerts, filters and
/// dashboards name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Code {
    /// MySQL/MariaDB: an account that can log in with an empty password.
    EmptyPassword,
    /// MySQL/MariaDB: an anonymous account (`''@host`).
    AnonymousAccount,
    /// MySQL/MariaDB: a superuser-class account (`SUPER`) at host `%`.
    SuperuserAnyHost,
    /// MySQL/MariaDB: a `mysql_native_password` account on a server that
    /// offers a stronger plugin.
    NativePassword,
    /// PostgreSQL: a login role whose password is stored as MD5.
    Md5Password,
    /// PostgreSQL: `password_encryption = md5`.
    PasswordEncryptionMd5,
    /// Both: a superuser that can log in and whose password never expires.
    SuperuserPasswordNeverExpires,
    /// Both: an account whose password expired but that can still log in.
    ExpiredPasswordCanLogin,
}

impl Code {
    pub const ALL: [Code; 8] = [
        Code::EmptyPassword,
        Code::AnonymousAccount,
        Code::SuperuserAnyHost,
        Code::NativePassword,
        Code::Md5Password,
        Code::PasswordEncryptionMd5,
        Code::SuperuserPasswordNeverExpires,
        Code::ExpiredPasswordCanLogin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Code::EmptyPassword => "empty_password",
            Code::AnonymousAccount => "anonymous_account",
            Code::SuperuserAnyHost => "superuser_any_host",
            Code::NativePassword => "native_password",
            Code::Md5Password => "md5_password",
            Code::PasswordEncryptionMd5 => "password_encryption_md5",
            Code::SuperuserPasswordNeverExpires => "superuser_password_never_expires",
            Code::ExpiredPasswordCanLogin => "expired_password_can_login",
        }
    }

    pub fn parse(text: &str) -> Option<Code> {
        Code::ALL.into_iter().find(|c| c.as_str() == text)
    }

    /// What the finding says, in a line.
    pub fn summary(self) -> &'static str {
        match self {
            Code::EmptyPassword => "an account can log in with an empty password",
            Code::AnonymousAccount => "an anonymous account (''@host) exists",
            Code::SuperuserAnyHost => "a superuser-class account may log in from any host ('%')",
            Code::NativePassword => "an account uses mysql_native_password where a stronger plugin is available",
            Code::Md5Password => "a login role's password is stored as an MD5 hash",
            Code::PasswordEncryptionMd5 => "password_encryption is md5",
            Code::SuperuserPasswordNeverExpires => "a superuser can log in and its password never expires",
            Code::ExpiredPasswordCanLogin => "an account's password expired but it can still log in",
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            Code::EmptyPassword | Code::AnonymousAccount | Code::SuperuserAnyHost => Severity::High,
            Code::Md5Password
            | Code::PasswordEncryptionMd5
            | Code::SuperuserPasswordNeverExpires
            | Code::ExpiredPasswordCanLogin => Severity::Medium,
            Code::NativePassword => Severity::Low,
        }
    }
}

/// One finding on one server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub code: Code,
    /// The account it concerns; `None` for a server setting.
    pub account: Option<AccountKey>,
    pub message: String,
}

/// All findings of one account sync, most severe first, and the checks
/// that could not run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evaluation {
    pub findings: Vec<Finding>,
    pub not_checked: Vec<(Code, String)>,
}

impl Evaluation {
    pub fn counts(&self) -> FindingCounts {
        let of = |severity| count(self.findings.iter().filter(|f| f.code.severity() == severity).count());
        let mut by_code: Vec<CodeCount> = Code::ALL
            .into_iter()
            .map(|code| CodeCount {
                code: code.as_str().into(),
                count: count(self.findings.iter().filter(|f| f.code == code).count()),
            })
            .filter(|c| c.count > 0)
            .collect();
        by_code.sort_by(|a, b| a.code.cmp(&b.code));
        FindingCounts {
            high: of(Severity::High),
            medium: of(Severity::Medium),
            low: of(Severity::Low),
            not_checked: count(self.not_checked.len()),
            by_code,
        }
    }
}

/// An account that may open a session: a login (not a role), not locked.
fn logs_in(account: &Account) -> bool {
    account.can_login && !account.locked
}

/// Whether the account authenticates with a stored password (an empty
/// `authentication_string` under `unix_socket` is no password at all).
fn uses_password(account: &Account) -> bool {
    PASSWORD_PLUGINS.contains(&account.auth_plugin.as_deref().unwrap_or_default())
}

/// The findings for one server's accounts.
pub fn evaluate(db_type: DbType, accounts: &[Account], hygiene: &Hygiene) -> Evaluation {
    let mut findings = Vec::new();
    let mut found = |code: Code, account: Option<&Account>, message: String| {
        findings.push(Finding {
            code,
            account: account.map(Account::key),
            message: bounds::message(&message),
        });
    };
    let mut not_checked = Vec::new();
    match db_type {
        DbType::Mysql => {
            if let Checked::NotChecked(reason) = &hygiene.empty_password {
                not_checked.push((Code::EmptyPassword, reason.clone()));
            }
            for a in accounts.iter().filter(|a| a.host.is_some()) {
                let key = a.key();
                if logs_in(a) && uses_password(a) && hygiene.empty_password.contains(&key) {
                    found(
                        Code::EmptyPassword,
                        Some(a),
                        format!("{key} can log in with an empty password"),
                    );
                }
                if a.name.is_empty() {
                    found(
                        Code::AnonymousAccount,
                        Some(a),
                        format!("{key} is an anonymous account: any user name matches it"),
                    );
                }
                if a.superuser && a.host.as_deref() == Some("%") && logs_in(a) {
                    found(
                        Code::SuperuserAnyHost,
                        Some(a),
                        format!("{key} holds SUPER and may log in from any host"),
                    );
                }
                if logs_in(a)
                    && a.auth_plugin.as_deref() == Some("mysql_native_password")
                    && !hygiene.strong_plugins.is_empty()
                {
                    found(
                        Code::NativePassword,
                        Some(a),
                        format!(
                            "{key} uses mysql_native_password; the server offers {}",
                            hygiene.strong_plugins.join(", ")
                        ),
                    );
                }
                let never_expires = hygiene.password_never_expires.binary_search(&key).is_ok();
                if a.superuser && logs_in(a) && uses_password(a) && never_expires && !a.expired {
                    found(
                        Code::SuperuserPasswordNeverExpires,
                        Some(a),
                        format!("{key} holds SUPER and its password never expires"),
                    );
                }
                if a.expired && logs_in(a) {
                    found(
                        Code::ExpiredPasswordCanLogin,
                        Some(a),
                        format!("{key} has an expired password and is not locked"),
                    );
                }
            }
        }
        DbType::Postgresql => {
            if let Checked::NotChecked(reason) = &hygiene.md5_password {
                not_checked.push((Code::Md5Password, reason.clone()));
            }
            if hygiene
                .password_encryption
                .as_deref()
                .is_some_and(|p| p.eq_ignore_ascii_case("md5"))
            {
                found(
                    Code::PasswordEncryptionMd5,
                    None,
                    "password_encryption is md5: every new password is stored as an MD5 hash".into(),
                );
            }
            for a in accounts {
                let key = a.key();
                if a.can_login && hygiene.md5_password.contains(&key) {
                    found(
                        Code::Md5Password,
                        Some(a),
                        format!("role {key} can log in with a password stored as MD5"),
                    );
                }
                if a.superuser && a.can_login && a.valid_until.is_none() && !a.expired {
                    found(
                        Code::SuperuserPasswordNeverExpires,
                        Some(a),
                        format!("superuser {key} can log in and has no VALID UNTIL"),
                    );
                }
                if a.expired && a.can_login {
                    found(
                        Code::ExpiredPasswordCanLogin,
                        Some(a),
                        format!("role {key} is past its VALID UNTIL but still has LOGIN"),
                    );
                }
            }
        }
    }
    findings.sort_by(|a, b| (a.code.severity(), a.code, &a.account).cmp(&(b.code.severity(), b.code, &b.account)));
    Evaluation { findings, not_checked }
}

/// The findings of an account sync.
pub fn of_accounts(db_type: DbType, accounts: &Accounts) -> Evaluation {
    evaluate(db_type, &accounts.accounts, &accounts.hygiene)
}

/// Bytes the list of findings may take in the DbInventory: the accounts
/// (384 KiB) and databases (128 KiB) budgets leave room for it well below
/// the API server's 1.5 MiB object limit.
pub const FINDINGS_BUDGET: usize = 64 * 1024;

/// JSON bytes of one finding, roughly.
fn finding_bytes(f: &InventoryFinding) -> usize {
    f.code.len()
        + f.severity.len()
        + f.message.len()
        + f.account.as_ref().map_or(0, String::len)
        + f.host.as_ref().map_or(0, String::len)
        + 72
}

/// The DbInventory's `findings` section for `evaluation`, checked at `at`:
/// the most severe first, cut at [`FINDINGS_BUDGET`] bytes and
/// [`MAX_FINDINGS`] items, with everything counted.
pub fn section(evaluation: &Evaluation, at: SystemTime) -> InventoryFindings {
    let mut used = 0;
    let items: Vec<InventoryFinding> = evaluation
        .findings
        .iter()
        .map(|f| InventoryFinding {
            code: f.code.as_str().into(),
            severity: f.code.severity().as_str().into(),
            account: f.account.as_ref().map(|k| k.name.clone()),
            host: f.account.as_ref().and_then(|k| k.host.clone()),
            message: f.message.clone(),
        })
        .take(MAX_FINDINGS)
        .take_while(|f| {
            used += finding_bytes(f);
            used <= FINDINGS_BUDGET
        })
        .collect();
    let omitted = count(evaluation.findings.len() - items.len());
    let not_checked: Vec<FindingNotChecked> = evaluation
        .not_checked
        .iter()
        .map(|(code, reason)| FindingNotChecked {
            code: code.as_str().into(),
            reason: bounds::message(reason),
        })
        .collect();
    let counts = evaluation.counts();
    let content_hash = hash(&(&items, &not_checked, &counts));
    InventoryFindings {
        checked_at: time(at),
        counts,
        items,
        not_checked,
        truncated: omitted > 0,
        omitted,
        content_hash,
    }
}

fn hash(value: &impl serde::Serialize) -> String {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn mysql(name: &str, host: &str) -> Account {
        Account {
            name: name.into(),
            host: Some(host.into()),
            can_login: true,
            auth_plugin: Some("mysql_native_password".into()),
            ..Default::default()
        }
    }

    fn role(name: &str) -> Account {
        Account {
            name: name.into(),
            can_login: true,
            ..Default::default()
        }
    }

    fn key(name: &str, host: Option<&str>) -> AccountKey {
        AccountKey {
            name: name.into(),
            host: host.map(Into::into),
        }
    }

    fn codes(e: &Evaluation) -> Vec<(&'static str, Option<String>)> {
        e.findings
            .iter()
            .map(|f| (f.code.as_str(), f.account.as_ref().map(ToString::to_string)))
            .collect()
    }

    fn answered() -> Hygiene {
        Hygiene {
            empty_password: Checked::Accounts(vec![]),
            ..Hygiene::default()
        }
    }

    #[test]
    fn an_empty_password_on_a_login_is_high() {
        let hygiene = Hygiene {
            empty_password: Checked::Accounts(vec![
                key("app", Some("%")),
                key("locked", Some("%")),
                key("sock", Some("localhost")),
            ]),
            ..Hygiene::default()
        };
        let mut locked = mysql("locked", "%");
        locked.locked = true;
        let mut socket = mysql("sock", "localhost");
        socket.auth_plugin = Some("unix_socket".into());
        let e = evaluate(DbType::Mysql, &[mysql("app", "%"), locked, socket], &hygiene);
        assert_eq!(codes(&e), [("empty_password", Some("'app'@'%'".into()))]);
        assert_eq!(e.counts().high, 1);
        assert!(!e.findings[0].message.is_empty());
    }

    #[test]
    fn an_empty_password_that_could_not_be_checked_says_so() {
        let hygiene = Hygiene {
            empty_password: Checked::NotChecked("no SELECT on mysql.*".into()),
            ..Hygiene::default()
        };
        let e = evaluate(DbType::Mysql, &[mysql("app", "%")], &hygiene);
        assert!(e.findings.is_empty());
        assert_eq!(e.not_checked, [(Code::EmptyPassword, "no SELECT on mysql.*".into())]);
        assert_eq!(e.counts().not_checked, 1);
    }

    #[test]
    fn an_anonymous_account_is_high() {
        let e = evaluate(DbType::Mysql, &[mysql("", "localhost"), mysql("app", "%")], &answered());
        assert_eq!(codes(&e), [("anonymous_account", Some("''@'localhost'".into()))]);
    }

    #[test]
    fn a_superuser_at_any_host_is_high_unless_locked_or_elsewhere() {
        let mut anywhere = mysql("admin", "%");
        anywhere.superuser = true;
        let mut local = mysql("root", "localhost");
        local.superuser = true;
        let mut locked = mysql("old", "%");
        locked.superuser = true;
        locked.locked = true;
        let e = evaluate(DbType::Mysql, &[anywhere, local, locked], &answered());
        assert_eq!(codes(&e), [("superuser_any_host", Some("'admin'@'%'".into()))]);
    }

    #[test]
    fn native_password_is_low_only_where_a_stronger_plugin_is_offered() {
        let mut ed = mysql("new", "%");
        ed.auth_plugin = Some("ed25519".into());
        let accounts = [mysql("app", "%"), ed];
        assert!(evaluate(DbType::Mysql, &accounts, &answered()).findings.is_empty());
        let offered = Hygiene {
            strong_plugins: vec!["ed25519".into()],
            ..answered()
        };
        let e = evaluate(DbType::Mysql, &accounts, &offered);
        assert_eq!(codes(&e), [("native_password", Some("'app'@'%'".into()))]);
        assert_eq!(e.counts().low, 1);
        assert!(e.findings[0].message.contains("ed25519"));
    }

    #[test]
    fn a_superuser_password_that_never_expires_is_medium() {
        let mut root = mysql("root", "localhost");
        root.superuser = true;
        let mut socket = mysql("sock", "localhost");
        socket.superuser = true;
        socket.auth_plugin = Some("unix_socket".into());
        let plain = mysql("app", "%");
        let hygiene = Hygiene {
            password_never_expires: vec![
                key("app", Some("%")),
                key("root", Some("localhost")),
                key("sock", Some("localhost")),
            ],
            ..answered()
        };
        let e = evaluate(DbType::Mysql, &[plain, root, socket], &hygiene);
        assert_eq!(
            codes(&e),
            [("superuser_password_never_expires", Some("'root'@'localhost'".into()))]
        );

        let pg = [
            Account {
                superuser: true,
                ..role("postgres")
            },
            Account {
                superuser: true,
                valid_until: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000)),
                ..role("dated")
            },
            Account {
                superuser: true,
                can_login: false,
                ..role("group")
            },
        ];
        let e = evaluate(DbType::Postgresql, &pg, &Hygiene::default());
        assert_eq!(
            codes(&e),
            [("superuser_password_never_expires", Some("postgres".into()))]
        );
    }

    #[test]
    fn an_expired_password_that_still_logs_in_is_medium() {
        let mut expired = mysql("app", "%");
        expired.expired = true;
        let mut locked = mysql("gone", "%");
        locked.expired = true;
        locked.locked = true;
        let e = evaluate(DbType::Mysql, &[expired, locked], &answered());
        assert_eq!(codes(&e), [("expired_password_can_login", Some("'app'@'%'".into()))]);

        let pg = [
            Account {
                expired: true,
                ..role("late")
            },
            Account {
                expired: true,
                can_login: false,
                ..role("group")
            },
        ];
        let e = evaluate(DbType::Postgresql, &pg, &Hygiene::default());
        assert_eq!(codes(&e), [("expired_password_can_login", Some("late".into()))]);
    }

    #[test]
    fn an_md5_password_is_found_only_where_it_could_be_checked() {
        let accounts = [role("app"), role("other")];
        let found = Hygiene {
            md5_password: Checked::Accounts(vec![key("app", None)]),
            ..Hygiene::default()
        };
        let e = evaluate(DbType::Postgresql, &accounts, &found);
        assert_eq!(codes(&e), [("md5_password", Some("app".into()))]);
        assert!(e.not_checked.is_empty());

        let unreadable = Hygiene {
            md5_password: Checked::NotChecked("pg_authid".into()),
            ..Hygiene::default()
        };
        let e = evaluate(DbType::Postgresql, &accounts, &unreadable);
        assert!(e.findings.is_empty());
        assert_eq!(e.not_checked, [(Code::Md5Password, "pg_authid".into())]);
    }

    #[test]
    fn password_encryption_md5_is_a_server_finding() {
        let md5 = Hygiene {
            password_encryption: Some("md5".into()),
            ..Hygiene::default()
        };
        let e = evaluate(DbType::Postgresql, &[], &md5);
        assert_eq!(codes(&e), [("password_encryption_md5", None)]);
        let scram = Hygiene {
            password_encryption: Some("scram-sha-256".into()),
            ..Hygiene::default()
        };
        assert!(evaluate(DbType::Postgresql, &[], &scram).findings.is_empty());
    }

    #[test]
    fn engines_do_not_share_their_own_checks() {
        // A PostgreSQL role named "" or a MySQL setting is not looked at.
        let md5 = Hygiene {
            password_encryption: Some("md5".into()),
            empty_password: Checked::Accounts(vec![key("", None)]),
            ..Hygiene::default()
        };
        assert!(evaluate(DbType::Mysql, &[], &md5).findings.is_empty());
        assert!(
            evaluate(DbType::Postgresql, &[role("")], &md5)
                .findings
                .iter()
                .all(|f| f.account.is_none())
        );
    }

    #[test]
    fn codes_and_severities_are_stable_and_parse_back() {
        for code in Code::ALL {
            assert_eq!(Code::parse(code.as_str()), Some(code));
        }
        for severity in Severity::ALL {
            assert_eq!(Severity::parse(severity.as_str()), Some(severity));
        }
        assert_eq!(Code::parse("nope"), None);
        assert_eq!(Code::EmptyPassword.as_str(), "empty_password");
        assert_eq!(Code::NativePassword.severity(), Severity::Low);
    }

    #[test]
    fn the_section_lists_the_most_severe_first_within_its_budget() {
        let mut accounts: Vec<Account> = (0..3000).map(|i| mysql(&format!("user_{i:04}"), "%")).collect();
        accounts.push(mysql("", "localhost"));
        let hygiene = Hygiene {
            strong_plugins: vec!["ed25519".into()],
            ..answered()
        };
        let e = evaluate(DbType::Mysql, &accounts, &hygiene);
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let s = section(&e, at);
        assert_eq!(s.counts.total(), 3002, "every finding is counted");
        assert_eq!((s.counts.high, s.counts.low), (1, 3001));
        assert!(s.truncated);
        assert_eq!(s.items.len() as u32 + s.omitted, 3002);
        assert_eq!(s.items[0].code, "anonymous_account", "the most severe first");
        let bytes = serde_json::to_vec(&s.items).unwrap().len();
        assert!(bytes <= FINDINGS_BUDGET, "{bytes} bytes");

        let later = section(&e, at + Duration::from_secs(3600));
        assert_eq!(later.content_hash, s.content_hash, "the time is not content");
        let fewer = section(&evaluate(DbType::Mysql, &accounts[..10], &hygiene), at);
        assert_ne!(fewer.content_hash, s.content_hash);
        assert!(!fewer.truncated);
        assert_eq!(
            fewer.counts.by_code,
            [CodeCount {
                code: "native_password".into(),
                count: 10
            }]
        );
        assert_eq!(s.counts.by_code.len(), 2, "{:?}", s.counts.by_code);
    }
}
