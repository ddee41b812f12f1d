//! The instance page's capacity-history panel: the chart and what the fit
//! and the forecast say, from the answer of
//! `GET /api/v1/instances/{id}/capacity/history` (`CapacityHistoryView`,
//! built by the same function from the same DbHistory). Pure.

use k8s_openapi::jiff::Timestamp;

use super::chart::{self, Chart};
use super::format::{When, bytes, when};
use crate::api::history::views::CapacityHistoryView;

pub struct CapacityPanel {
    /// With two samples or more: one alone is a dot in an empty frame.
    pub chart: Option<Chart>,
    /// The only sample's size, when there is one.
    pub lone: Option<String>,
    pub samples: usize,
    pub first: Option<When>,
    pub last: Option<When>,
    /// `+12 MiB/day`, or why there is no rate.
    pub growth: String,
    pub has_rate: bool,
    /// `R² 0.982`, when the fit has one.
    pub r_squared: Option<String>,
    /// Days until full, or why there is no forecast.
    pub forecast: String,
    /// At or over its limit already: shown as a warning.
    pub limit_reached: bool,
}

/// `+12 MiB/day`, `-3.0 KiB/day`, `0 B/day`.
pub fn rate(bytes_per_day: i64) -> String {
    let sign = match bytes_per_day.signum() {
        1 => "+",
        -1 => "−",
        _ => "",
    };
    format!("{sign}{}/day", bytes(bytes_per_day.unsigned_abs()))
}

/// Days to the limit as people read them: tenths under ten, whole days above.
pub fn days(days: f64) -> String {
    if days < 10.0 {
        format!("{days:.1} days")
    } else {
        format!("{days:.0} days")
    }
}

fn forecast(view: &CapacityHistoryView) -> (String, bool) {
    let f = &view.forecast;
    let Some(limit) = f.limit_bytes else {
        return (
            "No limit set (spec.capacity.limitBytes), so no days until full.".into(),
            false,
        );
    };
    let limit = bytes(limit);
    match (f.days_until_full, view.fit.bytes_per_day) {
        (Some(d), _) if d <= 0.0 => (format!("At or over its limit of {limit}."), true),
        (Some(d), _) => {
            let on = f
                .full_at
                .as_deref()
                .and_then(|t| t.parse::<Timestamp>().ok())
                .map(|t| format!(", around {}", t.strftime("%Y-%m-%d")))
                .unwrap_or_default();
            (format!("Full in {}{on} (limit {limit})", days(d)), false)
        }
        (None, Some(r)) if r <= 0 => (format!("Not growing: it does not reach its limit of {limit}."), false),
        _ => (
            format!("No forecast against its limit of {limit} without a growth rate."),
            false,
        ),
    }
}

/// The panel of `view`.
pub fn panel(view: &CapacityHistoryView) -> CapacityPanel {
    let samples: Vec<(i64, u64)> = view
        .samples
        .iter()
        .filter_map(|s| Some((s.at.parse::<Timestamp>().ok()?.as_second(), s.total_size_bytes)))
        .collect();
    let full_at = view
        .forecast
        .full_at
        .as_deref()
        .and_then(|t| t.parse::<Timestamp>().ok())
        .map(|t| t.as_second());
    let input = chart::Input {
        samples,
        bytes_per_day: view.fit.bytes_per_day.map(|r| r as f64),
        limit: view.forecast.limit_bytes,
        full_at,
    };
    let growth = match (view.fit.bytes_per_day, &view.fit.message) {
        (Some(r), _) => rate(r),
        (None, Some(message)) => format!("No growth rate: {message}."),
        (None, None) => "No growth rate.".into(),
    };
    let (forecast, reached) = forecast(view);
    let several = input.samples.len() > 1;
    CapacityPanel {
        lone: (view.samples.len() == 1).then(|| bytes(view.samples[0].total_size_bytes)),
        chart: chart::chart(&input).filter(|_| several),
        has_rate: view.fit.bytes_per_day.is_some(),
        limit_reached: reached,
        samples: view.samples.len(),
        first: when(view.samples.first().map(|s| s.at.as_str())),
        last: when(view.samples.last().map(|s| s.at.as_str())),
        growth,
        r_squared: view.fit.r_squared.map(|r| format!("R² {r:.3}")),
        forecast,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::history::views::{FitView, ForecastView, SampleView};

    fn view(samples: usize, rate: Option<i64>, limit: Option<u64>, days: Option<f64>) -> CapacityHistoryView {
        CapacityHistoryView {
            samples: (0..samples)
                .map(|d| SampleView {
                    at: format!("2026-03-{:02}T00:00:00Z", d + 1),
                    total_size_bytes: 1 << 30,
                    database_count: 3,
                    databases: vec![],
                })
                .collect(),
            fit: FitView {
                samples,
                bytes_per_day: rate,
                r_squared: rate.map(|_| 0.98),
                reason: rate.is_none().then(|| "TooFewSamples".into()),
                message: rate
                    .is_none()
                    .then(|| format!("{samples} capacity samples; a growth rate needs 7")),
            },
            forecast: ForecastView {
                limit_bytes: limit,
                current_bytes: Some(1 << 30),
                days_until_full: days,
                full_at: days.map(|_| "2026-04-20T00:00:00Z".into()),
            },
        }
    }

    #[test]
    fn rates_are_signed_binary_sizes_per_day() {
        assert_eq!(rate(12 << 20), "+12 MiB/day");
        assert_eq!(rate(-3 * 1024), "−3.0 KiB/day");
        assert_eq!(rate(0), "0 B/day");
        assert_eq!(days(3.24), "3.2 days");
        assert_eq!(days(42.4), "42 days");
    }

    #[test]
    fn each_forecast_says_what_it_is_or_why_there_is_none() {
        let p = panel(&view(10, Some(1 << 20), Some(2 << 30), Some(1024.0)));
        assert_eq!(p.growth, "+1.0 MiB/day");
        assert_eq!(p.r_squared.as_deref(), Some("R² 0.980"));
        assert_eq!(p.forecast, "Full in 1024 days, around 2026-04-20 (limit 2.0 GiB)");
        assert!(!p.limit_reached);
        assert_eq!(p.chart.as_ref().map(|c| c.dots.len()), Some(10));

        let p = panel(&view(2, None, None, None));
        assert_eq!(p.growth, "No growth rate: 2 capacity samples; a growth rate needs 7.");
        assert!(p.forecast.starts_with("No limit set"), "{}", p.forecast);
        assert_eq!(p.r_squared, None);

        let p = panel(&view(10, Some(0), Some(2 << 30), None));
        assert_eq!(p.forecast, "Not growing: it does not reach its limit of 2.0 GiB.");
        let p = panel(&view(10, None, Some(2 << 30), None));
        assert!(p.forecast.starts_with("No forecast"), "{}", p.forecast);
        let p = panel(&view(10, Some(5), Some(1 << 30), Some(0.0)));
        assert_eq!(p.forecast, "At or over its limit of 1.0 GiB.");
        assert!(p.limit_reached);
        assert!(panel(&view(0, None, None, None)).chart.is_none());
        let lone = panel(&view(1, None, None, None));
        assert_eq!((lone.chart.is_none(), lone.lone.as_deref()), (true, Some("1.0 GiB")));
    }
}
