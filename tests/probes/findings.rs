//! Hygiene findings (`observe::findings`) from real account syncs: each
//! test creates accounts that trigger a finding, under unique names, syncs
//! as the monitoring login (and, where a check needs more, as a superuser),
//! and looks only at the findings about its own accounts: other tests run
//! on the same servers at the same time.

use anyhow::Result;
use dbfleet::crd::instance::DbType;
use dbfleet::observe::findings::{self, Code, Evaluation};
use dbfleet::probe::{self, AccountKey, Checked};

use crate::fixtures::{Mysql, Postgres};

/// The codes found for `key`, sorted.
fn codes_of(evaluation: &Evaluation, key: &AccountKey) -> Vec<Code> {
    let mut codes: Vec<Code> = evaluation
        .findings
        .iter()
        .filter(|f| f.account.as_ref() == Some(key))
        .map(|f| f.code)
        .collect();
    codes.sort();
    codes
}

fn role(name: &str) -> AccountKey {
    AccountKey {
        name: name.into(),
        host: None,
    }
}

fn account(name: &str, host: &str) -> AccountKey {
    AccountKey {
        name: name.into(),
        host: Some(host.into()),
    }
}

#[tokio::test]
async fn postgres_findings_come_from_real_roles() -> Result<()> {
    Postgres::run(async |pg| {
        let md5 = pg.create_role("LOGIN").await?;
        // The hash is made by the server under md5 for this one statement.
        pg.exec(&format!(
            "BEGIN; SET LOCAL password_encryption = 'md5'; ALTER ROLE {} PASSWORD '{}'; COMMIT",
            md5.user, md5.password
        ))
        .await?;
        let expired = pg.create_role("LOGIN VALID UNTIL '2001-01-01'").await?;
        let root = pg.create_role("LOGIN SUPERUSER").await?;
        let dated_root = pg.create_role("LOGIN SUPERUSER VALID UNTIL 'infinity'").await?;
        let group = pg.create_role("NOLOGIN SUPERUSER VALID UNTIL '2001-01-01'").await?;
        let monitor = pg.monitor().await?;
        // A setting per role is what this login's sessions see.
        pg.exec(&format!("ALTER ROLE {} SET password_encryption = 'md5'", monitor.user))
            .await?;

        // The monitoring login: pg_authid is not for it, so MD5 is not
        // checked, and says so.
        let synced = probe::collect_accounts(&pg.target(&monitor)).await?;
        assert!(
            matches!(&synced.hygiene.md5_password, Checked::NotChecked(why) if why.contains("pg_authid")),
            "{:?}",
            synced.hygiene.md5_password
        );
        let seen = findings::of_accounts(DbType::Postgresql, &synced);
        assert_eq!(codes_of(&seen, &role(&md5.user)), []);
        assert_eq!(codes_of(&seen, &role(&expired.user)), [Code::ExpiredPasswordCanLogin]);
        assert_eq!(
            codes_of(&seen, &role(&root.user)),
            [Code::SuperuserPasswordNeverExpires]
        );
        assert_eq!(
            codes_of(&seen, &role(&dated_root.user)),
            [Code::SuperuserPasswordNeverExpires],
            "VALID UNTIL 'infinity' never expires either"
        );
        assert_eq!(codes_of(&seen, &role(&group.user)), [], "NOLOGIN");
        assert!(
            seen.findings
                .iter()
                .any(|f| f.code == Code::PasswordEncryptionMd5 && f.account.is_none()),
            "{:?}",
            seen.findings
        );
        assert!(seen.not_checked.iter().any(|(code, _)| *code == Code::Md5Password));
        let section = findings::section(&seen, synced.synced_at);
        assert_eq!(section.counts.not_checked, 1);
        let json = serde_json::to_string(&section)?;
        assert!(!json.contains(&md5.password), "no password in the findings");

        // A superuser login may read pg_authid: the MD5 role is found, by
        // the prefix of its hash only.
        let synced = probe::collect_accounts(&pg.admin_target()).await?;
        assert!(synced.hygiene.md5_password.contains(&role(&md5.user)));
        assert!(!synced.hygiene.md5_password.contains(&role(&root.user)), "SCRAM");
        let seen = findings::of_accounts(DbType::Postgresql, &synced);
        assert_eq!(codes_of(&seen, &role(&md5.user)), [Code::Md5Password]);
        assert!(seen.not_checked.is_empty());
        let hash = pg
            .query_string(&format!("SELECT 'md5' || md5('{}' || '{}')", md5.password, md5.user))
            .await?;
        let everything = format!("{synced:?} {seen:?}");
        assert!(!everything.contains(&hash[3..]), "names only, never the hash");
        assert!(!everything.contains(&md5.password));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn mysql_findings_come_from_real_accounts() -> Result<()> {
    Mysql::run(async |my| {
        let empty = my.create_account("").await?;
        my.exec(&format!("ALTER USER {} IDENTIFIED BY ''", empty.sql())).await?;
        let anonymous_host = my.create_anonymous().await?;
        let admin = my.create_account_at("%", "").await?;
        my.exec(&format!("GRANT SUPER ON *.* TO {}", admin.sql())).await?;
        let locked_admin = my.create_account_at("%", "ACCOUNT LOCK").await?;
        my.exec(&format!("GRANT SUPER ON *.* TO {}", locked_admin.sql()))
            .await?;
        let dated_admin = my.create_account("").await?;
        my.exec(&format!(
            "GRANT SUPER ON *.* TO {0}; ALTER USER {0} PASSWORD EXPIRE INTERVAL 90 DAY",
            dated_admin.sql()
        ))
        .await?;
        let expired = my.create_account("").await?;
        my.exec(&format!("ALTER USER {} PASSWORD EXPIRE", expired.sql()))
            .await?;
        let strong = my.create_account("").await?;
        my.exec(&format!(
            "ALTER USER {} IDENTIFIED VIA ed25519 USING PASSWORD('{}')",
            strong.sql(),
            strong.password
        ))
        .await?;
        let monitor = my.monitor().await?;

        let synced = probe::collect_accounts(&my.target(&monitor)).await?;
        assert!(
            synced.hygiene.strong_plugins.iter().any(|p| p == "ed25519"),
            "scripts/test-env.sh loads ed25519: {:?}",
            synced.hygiene.strong_plugins
        );
        assert!(matches!(synced.hygiene.empty_password, Checked::Accounts(_)));
        let seen = findings::of_accounts(DbType::Mysql, &synced);
        let of = |a: &crate::fixtures::Account| codes_of(&seen, &account(&a.user, &a.host));
        assert_eq!(of(&empty), [Code::EmptyPassword, Code::NativePassword]);
        assert_eq!(
            codes_of(&seen, &account("", &anonymous_host)),
            [Code::EmptyPassword, Code::AnonymousAccount, Code::NativePassword],
            "created without a password, too"
        );
        // The server's default_password_lifetime is 0: SUPER's password
        // never expires unless the account says otherwise.
        assert_eq!(
            of(&admin),
            [
                Code::SuperuserAnyHost,
                Code::NativePassword,
                Code::SuperuserPasswordNeverExpires
            ]
        );
        assert_eq!(of(&locked_admin), [], "a locked account cannot log in");
        assert_eq!(of(&dated_admin), [Code::NativePassword]);
        assert_eq!(of(&expired), [Code::NativePassword, Code::ExpiredPasswordCanLogin]);
        assert_eq!(of(&strong), []);
        assert!(seen.not_checked.is_empty());

        let section = findings::section(&seen, synced.synced_at);
        let json = serde_json::to_string(&section)?;
        for password in [&admin.password, &strong.password, &expired.password] {
            assert!(!json.contains(password.as_str()), "no password in the findings");
        }
        assert!(section.counts.high >= 3, "{:?}", section.counts);
        Ok(())
    })
    .await
}
