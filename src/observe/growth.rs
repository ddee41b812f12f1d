//! How fast a server grows, and when it is full (issue 21): a least-squares
//! line through the capacity samples, judged by its R², and the days until
//! the user's limit (`spec.capacity.limitBytes`) at that rate. Pure.
//!
//! No answer is better than a wrong one: with fewer than [`MIN_SAMPLES`]
//! samples, or a fit that explains less than [`MIN_R_SQUARED`] of the
//! variation, there is no rate, and the reason says why.

use std::time::{Duration, SystemTime};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::status::{Stamp, time};
use crate::crd::instance::CapacityGrowth;

/// Samples a rate needs: a week of daily samples.
pub const MIN_SAMPLES: usize = 7;
/// Below this R² the line explains too little to forecast from.
pub const MIN_R_SQUARED: f64 = 0.7;
/// The condition that says whether the server fills up soon.
pub const CAPACITY_OK: &str = "CapacityOK";

const SECONDS_PER_DAY: f64 = 86_400.0;

/// A least-squares line through the samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fit {
    pub bytes_per_day: f64,
    pub r_squared: f64,
}

/// Why there is no rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NoRate {
    TooFewSamples { have: usize },
    PoorFit { r_squared: f64 },
}

impl NoRate {
    pub fn reason(&self) -> &'static str {
        match self {
            NoRate::TooFewSamples { .. } => "TooFewSamples",
            NoRate::PoorFit { .. } => "PoorFit",
        }
    }

    pub fn message(&self) -> String {
        match self {
            NoRate::TooFewSamples { have } => format!("{have} capacity samples; a growth rate needs {MIN_SAMPLES}"),
            NoRate::PoorFit { r_squared } => {
                format!("sizes do not follow a line (R² {r_squared:.2} < {MIN_R_SQUARED}); no growth rate")
            }
        }
    }
}

/// The least-squares line through `(when, total bytes)` samples. A flat
/// series is a perfect line with no growth (R² 1).
pub fn fit(samples: &[(SystemTime, u64)]) -> Result<Fit, NoRate> {
    let have = samples.len();
    if have < MIN_SAMPLES {
        return Err(NoRate::TooFewSamples { have });
    }
    let origin = samples
        .iter()
        .map(|(at, _)| *at)
        .min()
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let points: Vec<(f64, f64)> = samples
        .iter()
        .map(|(at, bytes)| {
            let days = at.duration_since(origin).unwrap_or_default().as_secs_f64() / SECONDS_PER_DAY;
            (days, *bytes as f64)
        })
        .collect();
    let n = have as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let syy: f64 = points.iter().map(|p| (p.1 - mean_y).powi(2)).sum();
    if sxx == 0.0 {
        // Every sample at the same moment: no time to grow in.
        return Err(NoRate::TooFewSamples { have: 1 });
    }
    let slope = sxy / sxx;
    let intercept = mean_y - slope * mean_x;
    let residual: f64 = points.iter().map(|p| (p.1 - (intercept + slope * p.0)).powi(2)).sum();
    let r_squared = if syy == 0.0 {
        1.0
    } else {
        (1.0 - residual / syy).clamp(0.0, 1.0)
    };
    if r_squared < MIN_R_SQUARED {
        return Err(NoRate::PoorFit { r_squared });
    }
    Ok(Fit {
        bytes_per_day: slope,
        r_squared,
    })
}

/// Days from `current` to `limit` at `bytes_per_day`: 0 when the limit is
/// reached already, `None` when the server is not growing.
pub fn days_until_full(limit: u64, current: u64, bytes_per_day: f64) -> Option<f64> {
    if current >= limit {
        return Some(0.0);
    }
    (bytes_per_day > 0.0).then(|| (limit - current) as f64 / bytes_per_day)
}

/// The fit over the samples (oldest first), as the status keeps it; the
/// forecast is added by [`with_limit`]. `None` without samples.
pub fn growth(samples: &[(SystemTime, u64)]) -> Option<CapacityGrowth> {
    let &(last_at, last_total) = samples.iter().max_by_key(|(at, _)| *at)?;
    let fitted = fit(samples);
    Some(CapacityGrowth {
        samples: u32::try_from(samples.len()).unwrap_or(u32::MAX),
        last_sample_at: time(last_at),
        last_total_bytes: last_total,
        bytes_per_day: fitted.ok().map(|f| f.bytes_per_day.round() as i64),
        r_squared: match fitted {
            Ok(f) => Some(thousandths(f.r_squared)),
            Err(NoRate::PoorFit { r_squared }) => Some(thousandths(r_squared)),
            Err(NoRate::TooFewSamples { .. }) => None,
        },
        reason: fitted.err().map(|e| e.reason().to_string()),
        limit_bytes: None,
        days_until_full: None,
        full_at: None,
    })
}

/// `growth` with the forecast against `limit` (replacing any earlier one).
pub fn with_limit(growth: &CapacityGrowth, limit: Option<u64>) -> CapacityGrowth {
    let days = match (limit, growth.bytes_per_day) {
        (Some(limit), Some(rate)) => days_until_full(limit, growth.last_total_bytes, rate as f64),
        (Some(limit), None) if growth.last_total_bytes >= limit => Some(0.0),
        _ => None,
    };
    let full_at = days.and_then(|days| {
        let seconds = days * SECONDS_PER_DAY;
        // Beyond a thousand years is not a date worth writing.
        (seconds < 1000.0 * 365.0 * SECONDS_PER_DAY).then(|| {
            let from = SystemTime::from(growth.last_sample_at.0);
            time(from + Duration::from_secs_f64(seconds))
        })
    });
    CapacityGrowth {
        limit_bytes: limit,
        days_until_full: days.map(tenths),
        full_at,
        ..growth.clone()
    }
}

/// `CapacityOK` for a forecast: False/`FullSoon` when the limit is
/// reached within `full_soon`; `None` (no condition) without a limit.
pub fn capacity_ok(
    growth: Option<&CapacityGrowth>,
    full_soon: Duration,
) -> Option<(&'static str, &'static str, String)> {
    let growth = growth?;
    let limit = growth.limit_bytes?;
    let soon_days = full_soon.as_secs_f64() / SECONDS_PER_DAY;
    Some(match (growth.days_until_full, growth.bytes_per_day) {
        (Some(days), _) if days < soon_days => (
            "False",
            "FullSoon",
            format!(
                "{} of {} used; full in {days:.1} days at this rate",
                super::status::human_size(growth.last_total_bytes),
                super::status::human_size(limit)
            ),
        ),
        (Some(days), _) => ("True", "NotFullSoon", format!("full in {days:.1} days at this rate")),
        (None, Some(_)) => ("True", "NotGrowing", "the server is not growing".to_string()),
        (None, None) => (
            "Unknown",
            growth.reason.as_deref().map_or("NoForecast", reason_name),
            "no growth rate yet, so no forecast".to_string(),
        ),
    })
}

/// A reason from the status as a `'static` condition reason.
fn reason_name(reason: &str) -> &'static str {
    match reason {
        "TooFewSamples" => "TooFewSamples",
        "PoorFit" => "PoorFit",
        _ => "NoForecast",
    }
}

/// Puts the forecast against `limit` into `growth` and sets (or, without a
/// limit, removes) `CapacityOK` accordingly.
pub fn apply(
    growth: &mut Option<CapacityGrowth>,
    conditions: &mut Vec<Condition>,
    limit: Option<u64>,
    full_soon: Duration,
    at: Stamp,
) {
    *growth = growth.as_ref().map(|g| with_limit(g, limit));
    match capacity_ok(growth.as_ref(), full_soon) {
        Some((status, reason, message)) => super::status::set(conditions, CAPACITY_OK, status, reason, &message, at),
        None => conditions.retain(|c| c.type_ != CAPACITY_OK),
    }
}

fn thousandths(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn tenths(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    fn daily(sizes: &[u64]) -> Vec<(SystemTime, u64)> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &bytes)| {
                (
                    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + i as u64 * DAY),
                    bytes,
                )
            })
            .collect()
    }

    #[test]
    fn a_flat_series_fits_perfectly_and_does_not_grow() {
        let fit = fit(&daily(&[500; 10])).unwrap();
        assert_eq!(fit.bytes_per_day, 0.0);
        assert_eq!(fit.r_squared, 1.0);
        let growth = with_limit(&growth(&daily(&[500; 10])).unwrap(), Some(1000));
        assert_eq!(growth.bytes_per_day, Some(0));
        assert_eq!(growth.days_until_full, None, "never full");
        assert_eq!(
            capacity_ok(Some(&growth), Duration::from_secs(14 * DAY)).unwrap().1,
            "NotGrowing"
        );
    }

    #[test]
    fn a_linear_series_gives_its_slope_and_the_days_left() {
        let sizes: Vec<u64> = (0..10).map(|i| 1_000_000 + i * 50_000).collect();
        let fit = fit(&daily(&sizes)).unwrap();
        assert!((fit.bytes_per_day - 50_000.0).abs() < 1e-6, "{fit:?}");
        assert!((fit.r_squared - 1.0).abs() < 1e-12);
        // 1,450,000 now; 2,000,000 is 550,000 away: 11 days.
        let growth = with_limit(&growth(&daily(&sizes)).unwrap(), Some(2_000_000));
        assert_eq!(growth.bytes_per_day, Some(50_000));
        assert_eq!(growth.days_until_full, Some(11.0));
        let last = SystemTime::from(growth.last_sample_at.0);
        assert_eq!(
            SystemTime::from(growth.full_at.clone().unwrap().0),
            last + Duration::from_secs(11 * DAY)
        );
        let (status, reason, _) = capacity_ok(Some(&growth), Duration::from_secs(14 * DAY)).unwrap();
        assert_eq!((status, reason), ("False", "FullSoon"));
        let (status, reason, _) = capacity_ok(Some(&growth), Duration::from_secs(7 * DAY)).unwrap();
        assert_eq!((status, reason), ("True", "NotFullSoon"));
    }

    #[test]
    fn a_noisy_series_has_no_rate_and_says_why() {
        let noisy = daily(&[100, 900, 150, 800, 120, 950, 90, 870, 130]);
        match fit(&noisy) {
            Err(NoRate::PoorFit { r_squared }) => assert!(r_squared < MIN_R_SQUARED),
            other => panic!("{other:?}"),
        }
        let growth = with_limit(&growth(&noisy).unwrap(), Some(10_000));
        assert_eq!(growth.bytes_per_day, None);
        assert_eq!(growth.reason.as_deref(), Some("PoorFit"));
        assert_eq!(growth.days_until_full, None);
        assert_eq!(
            capacity_ok(Some(&growth), Duration::from_secs(14 * DAY)).unwrap(),
            ("Unknown", "PoorFit", "no growth rate yet, so no forecast".to_string())
        );
    }

    #[test]
    fn a_little_noise_around_a_line_still_fits() {
        let sizes: Vec<u64> = (0..14)
            .map(|i| 10_000 + i * 1_000 + if i % 2 == 0 { 300 } else { 0 })
            .collect();
        let fit = fit(&daily(&sizes)).unwrap();
        assert!((fit.bytes_per_day - 1_000.0).abs() < 50.0, "{fit:?}");
        assert!(fit.r_squared > 0.95);
    }

    #[test]
    fn too_few_samples_give_no_rate() {
        assert_eq!(fit(&daily(&[1, 2, 3, 4, 5, 6])), Err(NoRate::TooFewSamples { have: 6 }));
        assert_eq!(fit(&[]), Err(NoRate::TooFewSamples { have: 0 }));
        let growth = growth(&daily(&[1, 2, 3])).unwrap();
        assert_eq!((growth.bytes_per_day, growth.r_squared), (None, None));
        assert_eq!(growth.reason.as_deref(), Some("TooFewSamples"));
        assert_eq!(growth.samples, 3);
        assert!(super::growth(&[]).is_none());
    }

    #[test]
    fn a_limit_already_exceeded_is_full_now_with_or_without_a_rate() {
        assert_eq!(days_until_full(1000, 1200, 10.0), Some(0.0));
        assert_eq!(days_until_full(1000, 1000, -5.0), Some(0.0));
        let few = with_limit(&growth(&daily(&[1200, 1300])).unwrap(), Some(1000));
        assert_eq!(few.days_until_full, Some(0.0));
        let (status, reason, _) = capacity_ok(Some(&few), Duration::from_secs(14 * DAY)).unwrap();
        assert_eq!((status, reason), ("False", "FullSoon"));
    }

    #[test]
    fn a_shrinking_server_is_never_full_and_without_a_limit_there_is_no_condition() {
        let shrinking: Vec<u64> = (0..8).map(|i| 10_000 - i * 100).collect();
        let growth = growth(&daily(&shrinking)).unwrap();
        assert_eq!(growth.bytes_per_day, Some(-100));
        assert_eq!(with_limit(&growth, Some(20_000)).days_until_full, None);
        assert_eq!(
            capacity_ok(Some(&with_limit(&growth, None)), Duration::from_secs(DAY)),
            None
        );
    }

    #[test]
    fn removing_the_limit_removes_the_condition() {
        let sizes: Vec<u64> = (0..8).map(|i| 1_000 + i * 100).collect();
        let mut growth = super::growth(&daily(&sizes));
        let mut conditions = Vec::new();
        let at = Stamp {
            now: SystemTime::UNIX_EPOCH,
            generation: Some(1),
        };
        apply(
            &mut growth,
            &mut conditions,
            Some(2_000),
            Duration::from_secs(14 * DAY),
            at,
        );
        assert_eq!(conditions[0].reason, "FullSoon");
        apply(&mut growth, &mut conditions, None, Duration::from_secs(14 * DAY), at);
        assert!(conditions.is_empty());
        assert_eq!(growth.unwrap().days_until_full, None);
    }
}
