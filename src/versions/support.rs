//! Whether a server's release is still supported on a given day: the
//! `VersionSupported` condition's status, reason and message.

use std::time::Duration;

use k8s_openapi::jiff::civil::Date;
use k8s_openapi::jiff::{Timestamp, tz::TimeZone};

use super::release::Release;
use super::table::{LifecycleTable, Origin};

/// How the server's release stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Support {
    /// Supported beyond the warning window.
    Supported {
        release: Release,
        until: Date,
        origin: Origin,
    },
    /// Supported, but its end of life falls within the window.
    EndingSoon { release: Release, on: Date, origin: Origin },
    /// Its end of life has passed: no more fixes, security ones included.
    EndOfLife {
        release: Release,
        since: Date,
        origin: Origin,
    },
    /// A release the table does not know (newer than the table, or a fork).
    NotInTable { release: Release },
    /// The version banner names no release dbfleet can read.
    Unrecognised { banner: String },
    /// No connection test has read the version yet.
    NotTested,
}

/// Judges `release` (read from `banner`) on `today`, warning `window`
/// ahead of its end of life.
pub fn judge(
    banner: Option<&str>,
    release: Option<Release>,
    table: &LifecycleTable,
    today: Date,
    window: Duration,
) -> Support {
    let Some(banner) = banner else {
        return Support::NotTested;
    };
    let Some(release) = release else {
        return Support::Unrecognised {
            banner: banner.to_string(),
        };
    };
    let Some((eol, origin)) = table.end_of_life(&release) else {
        return Support::NotInTable { release };
    };
    let window_days = i64::try_from(window.as_secs() / 86_400).unwrap_or(i64::MAX);
    let days_left = today.until(eol).map(|span| i64::from(span.get_days())).unwrap_or(0);
    if days_left <= 0 {
        Support::EndOfLife {
            release,
            since: eol,
            origin,
        }
    } else if days_left <= window_days {
        Support::EndingSoon {
            release,
            on: eol,
            origin,
        }
    } else {
        Support::Supported {
            release,
            until: eol,
            origin,
        }
    }
}

/// The day `at` falls on in UTC: end-of-life dates are days, not moments.
pub fn today(at: std::time::SystemTime) -> Date {
    Timestamp::try_from(at)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_zoned(TimeZone::UTC)
        .date()
}

/// The metric and statistics label of a `VersionSupported` reason.
pub fn state_of(reason: &str) -> &'static str {
    match reason {
        "Supported" => "supported",
        "EndingSoon" => "ending_soon",
        "EndOfLife" => "end_of_life",
        _ => "unknown",
    }
}

/// A condition to set: status, reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub status: &'static str,
    pub reason: &'static str,
    pub message: String,
}

impl Support {
    /// A bounded label for metrics and counts: `supported`, `ending_soon`,
    /// `end_of_life`, `unknown`.
    pub fn state(&self) -> &'static str {
        match self {
            Support::Supported { .. } => "supported",
            Support::EndingSoon { .. } => "ending_soon",
            Support::EndOfLife { .. } => "end_of_life",
            Support::NotInTable { .. } | Support::Unrecognised { .. } | Support::NotTested => "unknown",
        }
    }

    /// Every value [`Support::state`] takes.
    pub const STATES: [&'static str; 4] = ["supported", "ending_soon", "end_of_life", "unknown"];

    pub fn release(&self) -> Option<&Release> {
        match self {
            Support::Supported { release, .. }
            | Support::EndingSoon { release, .. }
            | Support::EndOfLife { release, .. }
            | Support::NotInTable { release } => Some(release),
            Support::Unrecognised { .. } | Support::NotTested => None,
        }
    }

    pub fn end_of_life(&self) -> Option<Date> {
        match self {
            Support::Supported { until: date, .. }
            | Support::EndingSoon { on: date, .. }
            | Support::EndOfLife { since: date, .. } => Some(*date),
            _ => None,
        }
    }

    /// The `VersionSupported` condition. Ending soon stays `True`: the
    /// release still gets fixes, and a DBA's alert on `False` should mean
    /// "unpatched now"; the reason carries the warning. Messages name dates,
    /// never a count of days left, so they change only with the facts.
    /// `configmap` is where a site adds or corrects a date.
    pub fn verdict(&self, table: &LifecycleTable, configmap: &str) -> Verdict {
        let from = |origin: Origin| match origin {
            Origin::BuiltIn => format!("dbfleet's table, checked {}", table.checked),
            Origin::Site => format!("ConfigMap {configmap}"),
        };
        match self {
            Support::Supported { release, until, origin } => Verdict {
                status: "True",
                reason: "Supported",
                message: format!("{release} is supported until {until} ({})", from(*origin)),
            },
            Support::EndingSoon { release, on, origin } => Verdict {
                status: "True",
                reason: "EndingSoon",
                message: format!(
                    "{release} reaches end of life on {on} ({}): plan the upgrade to a supported release",
                    from(*origin)
                ),
            },
            Support::EndOfLife { release, since, origin } => Verdict {
                status: "False",
                reason: "EndOfLife",
                message: format!(
                    "{release} reached end of life on {since} ({}): it gets no fixes, security fixes included; \
                     upgrade to a supported release",
                    from(*origin)
                ),
            },
            Support::NotInTable { release } => Verdict {
                status: "Unknown",
                reason: "NotInTable",
                message: format!(
                    "no end-of-life date is known for {release}: add `{}: YYYY-MM-DD` to the ConfigMap {configmap}",
                    release.key()
                ),
            },
            Support::Unrecognised { banner } => Verdict {
                status: "Unknown",
                reason: "UnrecognisedVersion",
                message: format!("the server's version {banner:?} names no release line dbfleet can read"),
            },
            Support::NotTested => Verdict {
                status: "Unknown",
                reason: "NotTested",
                message: "the server version is not known yet".into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::instance::DbType;
    use crate::versions::release::release_of;
    use crate::versions::table::Overrides;

    const WINDOW: Duration = Duration::from_secs(180 * 86_400);

    fn date(text: &str) -> Date {
        text.parse().unwrap()
    }

    fn judge_pg(banner: &str, today: &str) -> Support {
        judge(
            Some(banner),
            release_of(DbType::Postgresql, banner),
            LifecycleTable::built_in(),
            date(today),
            WINDOW,
        )
    }

    #[test]
    fn patch_releases_share_their_line_s_verdict() {
        let a = judge_pg("15.18 (Debian 15.18-0+deb12u1)", "2026-12-06");
        let b = judge_pg("PostgreSQL 15.2 on x86_64-pc-linux-gnu", "2026-12-06");
        assert_eq!(a, b);
        assert_eq!(a.state(), "supported");
        assert_eq!(a.end_of_life(), Some(date("2027-11-11")));
    }

    #[test]
    fn the_window_warns_ahead_and_the_day_itself_is_the_end() {
        // PostgreSQL 15 ends on 2027-11-11; the window is 180 days.
        for (today, state) in [
            ("2027-05-14", "supported"),   // 181 days left
            ("2027-05-15", "ending_soon"), // 180 days left
            ("2027-11-10", "ending_soon"),
            ("2027-11-11", "end_of_life"),
            ("2030-01-01", "end_of_life"),
        ] {
            assert_eq!(judge_pg("15.18", today).state(), state, "{today}");
        }
        let short = judge(
            Some("15.18"),
            release_of(DbType::Postgresql, "15.18"),
            LifecycleTable::built_in(),
            date("2027-11-01"),
            Duration::from_secs(86_400),
        );
        assert_eq!(short.state(), "supported", "a one-day window");
    }

    #[test]
    fn verdicts_read_as_a_dba_expects_and_stay_put_from_day_to_day() {
        let table = LifecycleTable::built_in();
        let soon = judge_pg("15.18", "2027-06-01").verdict(table, "dbfleet-version-lifecycle");
        assert_eq!((soon.status, soon.reason), ("True", "EndingSoon"));
        assert_eq!(
            soon,
            judge_pg("15.19", "2027-06-02").verdict(table, "dbfleet-version-lifecycle"),
            "the next day and the next patch release write the same condition"
        );
        assert!(
            soon.message.contains("PostgreSQL 15 reaches end of life on 2027-11-11"),
            "{}",
            soon.message
        );
        let ended = judge_pg("12.22", "2026-12-06").verdict(table, "cm");
        assert_eq!((ended.status, ended.reason), ("False", "EndOfLife"));
        assert!(
            ended.message.contains("reached end of life on 2024-11-21"),
            "{}",
            ended.message
        );
        assert!(
            ended.message.contains("dbfleet's table, checked 2026-12-06"),
            "{}",
            ended.message
        );
    }

    #[test]
    fn a_site_override_decides_and_is_named() {
        let overrides =
            Overrides::from_data(&[("mariadb-10.11".to_string(), "2026-01-01".to_string())].into()).unwrap();
        let table = LifecycleTable::built_in().with_overrides(&overrides);
        let banner = "10.11.19-MariaDB-0+deb12u1";
        let support = judge(
            Some(banner),
            release_of(DbType::Mysql, banner),
            &table,
            date("2026-12-06"),
            WINDOW,
        );
        let verdict = support.verdict(&table, "site-eol");
        assert_eq!((verdict.status, verdict.reason), ("False", "EndOfLife"));
        assert!(verdict.message.contains("(ConfigMap site-eol)"), "{}", verdict.message);
    }

    #[test]
    fn unknown_versions_are_unknown_with_a_reason() {
        let table = LifecycleTable::built_in();
        let today = date("2026-12-06");
        let cases = [
            (None, "NotTested"),
            (Some("99.1"), "NotInTable"),
            (Some("devel"), "UnrecognisedVersion"),
        ];
        for (banner, reason) in cases {
            let release = banner.and_then(|b| release_of(DbType::Postgresql, b));
            let support = judge(banner, release, table, today, WINDOW);
            let verdict = support.verdict(table, "cm");
            assert_eq!((verdict.status, verdict.reason), ("Unknown", reason), "{banner:?}");
            assert_eq!(support.state(), "unknown");
        }
        let missing = judge(
            Some("99.1"),
            release_of(DbType::Postgresql, "99.1"),
            table,
            today,
            WINDOW,
        );
        assert!(
            missing
                .verdict(table, "cm")
                .message
                .contains("add `postgresql-99: YYYY-MM-DD` to the ConfigMap cm")
        );
    }

    #[test]
    fn today_is_the_utc_day() {
        let at = std::time::UNIX_EPOCH + Duration::from_secs(1_796_601_599); // 2026-12-06T23:59:59Z
        assert_eq!(today(at), date("2026-12-06"));
        assert_eq!(today(at + Duration::from_secs(1)), date("2026-12-07"));
    }
}
