//! The capacity-history chart of the instance page: where each sample,
//! the fitted growth line, its projection to the limit and the limit
//! itself fall in an SVG, and which ticks the axes carry. Pure; the
//! template `chart.html` only draws what this computes, so every label
//! is escaped like the rest of the page and no style is inline (CSP).
//!
//! Sizes are in binary units on Y, starting at 0 (a size chart that does
//! not start at 0 makes slow growth look steep); times are UTC on X.

use k8s_openapi::jiff::Timestamp;

/// The SVG's own coordinates; CSS scales it to the card's width.
pub const WIDTH: f64 = 720.0;
pub const HEIGHT: f64 = 260.0;
/// Room for the Y labels ("1023 MiB", in the larger type of a narrow
/// window) on the left and the X labels below.
const LEFT: f64 = 84.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 40.0;
/// About this many steps on each axis: more crowd a narrow window.
const Y_STEPS: f64 = 4.0;
const MAX_X_TICKS: i64 = 6;
/// A lone sample gets half a day either side, so it is not on the frame.
const LONE_SAMPLE_MARGIN: i64 = 12 * 3600;
/// The limit is drawn when it is at most this many times the largest size
/// otherwise on the chart; higher, it would squash the samples into the
/// bottom row, and the text below says where it is instead.
const LIMIT_IN_VIEW: f64 = 2.0;
const DAY: i64 = 86_400;

/// What the chart is drawn from: the samples of
/// `GET /instances/{id}/capacity/history`, its rate and forecast.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Input {
    /// `(seconds since the epoch, total bytes)`, oldest first.
    pub samples: Vec<(i64, u64)>,
    /// The fitted rate, when the fit gives one.
    pub bytes_per_day: Option<f64>,
    pub limit: Option<u64>,
    /// When the newest total reaches the limit at that rate.
    pub full_at: Option<i64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Tick {
    /// Pixel position along its axis.
    pub at: f64,
    pub label: String,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Segment {
    pub from: Point,
    pub to: Point,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    pub width: f64,
    pub height: f64,
    /// The plot area.
    pub left: f64,
    pub top: f64,
    pub right: f64,
    pub bottom: f64,
    pub x_ticks: Vec<Tick>,
    pub y_ticks: Vec<Tick>,
    /// What the X axis counts in: `date (UTC)` or `time (UTC)`.
    pub x_title: &'static str,
    /// The samples, as an SVG `points` list, and each as a dot.
    pub line: String,
    pub dots: Vec<Point>,
    /// The fitted line over the samples' span.
    pub fit: Option<Segment>,
    /// From the newest sample to the limit at the fitted rate, when that
    /// is on the chart.
    pub projection: Option<Segment>,
    /// The limit's height and label, when on the chart.
    pub limit: Option<Tick>,
}

/// The chart of `input`; `None` without samples.
pub fn chart(input: &Input) -> Option<Chart> {
    let first = input.samples.iter().map(|s| s.0).min()?;
    let last = input.samples.iter().map(|s| s.0).max()?;
    let (_, newest) = *input.samples.iter().max_by_key(|s| s.0)?;
    let rate = input.bytes_per_day.map(|r| r / DAY as f64);
    // The forecast widens the chart when it falls within as long again as
    // the samples span, so the projection meets the limit on the chart.
    let span = last - first;
    let reach = input
        .full_at
        .filter(|at| *at > last && *at - last <= span.max(DAY))
        .filter(|_| rate.is_some_and(|r| r > 0.0));
    let (start, end) = match (span, reach) {
        (_, Some(at)) => (first, at),
        (0, None) => (first - LONE_SAMPLE_MARGIN, last + LONE_SAMPLE_MARGIN),
        _ => (first, last),
    };
    let largest = input.samples.iter().map(|s| s.1).max().unwrap_or(0) as f64;
    let projected_end = reach.and(input.limit).map(|l| l as f64).unwrap_or(0.0);
    let shown = largest.max(projected_end);
    let limit = input
        .limit
        .map(|l| l as f64)
        .filter(|l| *l <= shown.max(1.0) * LIMIT_IN_VIEW);
    let y_axis = size_axis(shown.max(limit.unwrap_or(0.0)));
    let (left, top, right, bottom) = (LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM);
    let x = |t: f64| round(left + (t - start as f64) / (end - start) as f64 * (right - left));
    let y = |v: f64| round(bottom - v / y_axis.top * (bottom - top));
    let at = |t: i64, v: f64| Point {
        x: x(t as f64),
        y: y(v),
    };
    let dots: Vec<Point> = input.samples.iter().map(|&(t, v)| at(t, v as f64)).collect();
    // A least-squares line passes through the samples' mean point.
    let n = input.samples.len() as f64;
    let mean_t = input.samples.iter().map(|s| s.0 as f64).sum::<f64>() / n;
    let mean_v = input.samples.iter().map(|s| s.1 as f64).sum::<f64>() / n;
    let fit = rate.filter(|_| span > 0).map(|r| {
        let on_line = |t: i64| Point {
            x: x(t as f64),
            y: y(mean_v + r * (t as f64 - mean_t)),
        };
        Segment {
            from: on_line(first),
            to: on_line(last),
        }
    });
    // The forecast counts from the newest total, not the fitted value.
    let projection = reach.zip(input.limit).map(|(at_full, limit)| Segment {
        from: at(last, newest as f64),
        to: at(at_full, limit as f64),
    });
    let x_axis = time_axis(start, end);
    Some(Chart {
        width: WIDTH,
        height: HEIGHT,
        left,
        top,
        right,
        bottom,
        x_ticks: x_axis
            .ticks
            .into_iter()
            .map(|(t, label)| Tick { at: x(t as f64), label })
            .collect(),
        y_ticks: y_axis
            .ticks
            .into_iter()
            .map(|(v, label)| Tick { at: y(v), label })
            .collect(),
        x_title: x_axis.title,
        line: dots
            .iter()
            .map(|p| format!("{},{}", p.x, p.y))
            .collect::<Vec<_>>()
            .join(" "),
        dots,
        fit,
        projection,
        limit: limit.map(|l| Tick {
            at: y(l),
            label: format!("limit {}", super::format::bytes(l as u64)),
        }),
    })
}

/// Pixels to a tenth: enough for a screen, and short in the page.
fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// A Y axis from 0 to `top`, with its ticks `(bytes, label)`.
#[derive(Debug, PartialEq)]
struct SizeAxis {
    top: f64,
    ticks: Vec<(f64, String)>,
}

const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

/// The power of 1024 whose unit writes `bytes` as 1 to 1023.
fn unit_power(bytes: f64) -> i32 {
    let mut power = 0;
    while bytes >= 1024f64.powi(power + 1) && (power as usize) < UNITS.len() - 1 {
        power += 1;
    }
    power
}

/// `bytes` in `unit` (a power of 1024), with at most two decimals.
fn size_label(bytes: f64, unit: f64) -> String {
    let power = unit.log(1024.0).round() as usize;
    let value = format!("{:.2}", bytes / unit);
    let value = value.trim_end_matches('0').trim_end_matches('.');
    format!("{value} {}", UNITS[power.min(UNITS.len() - 1)])
}

/// A step of 1, 2, 2.5 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|step| *step >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude)
}

/// Ticks from 0 past `largest` in one binary unit, about [`Y_STEPS`] of
/// them.
fn size_axis(largest: f64) -> SizeAxis {
    let largest = largest.max(1.0);
    let unit = 1024f64.powi(unit_power(largest));
    // Whole bytes at least.
    let step = (nice_step(largest / unit / Y_STEPS) * unit).max(1.0);
    let steps = (largest / step).ceil().max(1.0) as usize;
    let ticks = (0..=steps)
        .map(|i| {
            let value = i as f64 * step;
            let label = if i == 0 { "0".into() } else { size_label(value, unit) };
            (value, label)
        })
        .collect();
    SizeAxis {
        top: steps as f64 * step,
        ticks,
    }
}

/// An X axis: ticks `(seconds, label)` and what they count in.
#[derive(Debug, PartialEq)]
struct TimeAxis {
    ticks: Vec<(i64, String)>,
    title: &'static str,
}

/// Tick steps, in seconds: round minutes and hours, then days, weeks and
/// about months.
const TIME_STEPS: [i64; 17] = [
    60,
    5 * 60,
    15 * 60,
    30 * 60,
    3600,
    3 * 3600,
    6 * 3600,
    12 * 3600,
    DAY,
    2 * DAY,
    7 * DAY,
    14 * DAY,
    30 * DAY,
    61 * DAY,
    91 * DAY,
    182 * DAY,
    365 * DAY,
];

/// At most [`MAX_X_TICKS`] ticks between `start` and `end`, on multiples
/// of a round step (UTC midnights for days).
fn time_axis(start: i64, end: i64) -> TimeAxis {
    let span = (end - start).max(1);
    let step = TIME_STEPS
        .into_iter()
        .find(|step| span / step < MAX_X_TICKS)
        .unwrap_or(365 * DAY);
    let first = start.div_euclid(step) * step + if start.rem_euclid(step) == 0 { 0 } else { step };
    let year = |t: i64| Timestamp::from_second(t).map(|t| t.strftime("%Y").to_string()).ok();
    let format = if step < DAY {
        "%H:%M"
    } else if year(start) == year(end) {
        "%b %-d"
    } else {
        "%b %-d %Y"
    };
    let ticks = (0..)
        .map(|i| first + i * step)
        .take_while(|t| *t <= end)
        .filter_map(|t| Some((t, Timestamp::from_second(t).ok()?.strftime(format).to_string())))
        .collect();
    TimeAxis {
        ticks,
        title: if step < DAY { "time (UTC)" } else { "date (UTC)" },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;
    /// 2026-03-01T00:00:00Z.
    const MARCH: i64 = 1_772_323_200;

    fn labels(ticks: &[Tick]) -> Vec<&str> {
        ticks.iter().map(|t| t.label.as_str()).collect()
    }

    fn daily(days: i64, start: u64, per_day: u64) -> Vec<(i64, u64)> {
        (0..days)
            .map(|d| (MARCH + d * DAY, start + d as u64 * per_day))
            .collect()
    }

    #[test]
    fn steps_are_one_two_two_and_a_half_or_five_times_ten() {
        assert_eq!(nice_step(0.3), 0.5);
        assert_eq!(nice_step(1.0), 1.0);
        assert_eq!(nice_step(1.1), 2.0);
        assert_eq!(nice_step(2.2), 2.5);
        assert_eq!(nice_step(40.0), 50.0);
        assert_eq!(nice_step(260.0), 500.0);
    }

    #[test]
    fn sizes_tick_in_one_binary_unit_from_zero() {
        let axis = size_axis(1.3 * GIB as f64);
        let labels: Vec<&str> = axis.ticks.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels, ["0", "0.5 GiB", "1 GiB", "1.5 GiB"]);
        assert_eq!(axis.top, 1.5 * GIB as f64);
        let axis = size_axis(700.0 * MIB as f64);
        let labels: Vec<&str> = axis.ticks.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels, ["0", "200 MiB", "400 MiB", "600 MiB", "800 MiB"]);
        // Tiny and empty servers still get an axis of whole bytes.
        let axis = size_axis(3.0);
        assert_eq!(axis.ticks.last().unwrap().1, "3 B");
        assert_eq!(size_axis(0.0).top, 1.0);
        assert_eq!(size_label(1.25 * GIB as f64, GIB as f64), "1.25 GiB");
    }

    #[test]
    fn dates_tick_on_round_days_and_times_on_round_hours() {
        let axis = time_axis(MARCH, MARCH + 60 * DAY);
        assert_eq!(axis.title, "date (UTC)");
        assert!(axis.ticks.len() <= MAX_X_TICKS as usize, "{axis:?}");
        assert!(axis.ticks.iter().all(|(t, _)| t % DAY == 0));
        assert_eq!(axis.ticks[0].1, "Mar 12", "the first 14-day multiple after the start");
        let axis = time_axis(MARCH + 600, MARCH + 5 * 3600);
        assert_eq!(axis.title, "time (UTC)");
        let labels: Vec<&str> = axis.ticks.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels, ["01:00", "02:00", "03:00", "04:00", "05:00"]);
        let axis = time_axis(MARCH - 100 * DAY, MARCH + 300 * DAY);
        assert!(
            axis.ticks[0].1.ends_with(" 2026") || axis.ticks[0].1.ends_with(" 2025"),
            "{axis:?}"
        );
    }

    #[test]
    fn no_samples_no_chart() {
        assert_eq!(chart(&Input::default()), None);
    }

    #[test]
    fn samples_run_left_to_right_and_bottom_to_top() {
        let input = Input {
            samples: daily(30, GIB, 10 * MIB),
            bytes_per_day: Some((10 * MIB) as f64),
            limit: None,
            full_at: None,
        };
        let c = chart(&input).unwrap();
        assert_eq!(c.dots.len(), 30);
        assert_eq!(c.dots[0].x, c.left);
        assert_eq!(c.dots[29].x, c.right);
        assert!(c.dots.windows(2).all(|w| w[1].y < w[0].y), "growing goes up");
        assert!(c.dots.iter().all(|p| p.y >= c.top && p.y <= c.bottom));
        assert_eq!(c.y_ticks[0].label, "0");
        assert_eq!(c.y_ticks[0].at, c.bottom);
        // An exact line: the fit runs through the first and last samples.
        let fit = c.fit.unwrap();
        assert!(
            (fit.from.y - c.dots[0].y).abs() < 0.2 && (fit.to.y - c.dots[29].y).abs() < 0.2,
            "{fit:?}"
        );
        assert_eq!((c.projection, c.limit.clone()), (None, None));
        assert_eq!(c.line.split(' ').count(), 30);
    }

    #[test]
    fn a_near_forecast_widens_the_chart_to_meet_the_limit() {
        let samples = daily(30, GIB, 10 * MIB);
        let newest = samples[29];
        // 20 days to go at 10 MiB a day.
        let limit = newest.1 + 200 * MIB;
        let input = Input {
            samples,
            bytes_per_day: Some((10 * MIB) as f64),
            limit: Some(limit),
            full_at: Some(newest.0 + 20 * DAY),
        };
        let c = chart(&input).unwrap();
        let projection = c.projection.unwrap();
        assert_eq!(projection.to.x, c.right);
        let limit_line = c.limit.unwrap();
        assert_eq!(projection.to.y, limit_line.at);
        assert!(limit_line.label.starts_with("limit 1."), "{}", limit_line.label);
        assert!(c.dots[29].x < c.right);
    }

    #[test]
    fn a_far_limit_stays_off_the_chart() {
        let input = Input {
            samples: daily(10, GIB, MIB),
            bytes_per_day: Some(MIB as f64),
            limit: Some(1000 * GIB),
            full_at: Some(MARCH + 900_000 * DAY),
        };
        let c = chart(&input).unwrap();
        assert_eq!((c.limit, c.projection), (None, None));
        assert_eq!(labels(&c.y_ticks).last(), Some(&"1.5 GiB"));
    }

    #[test]
    fn a_lone_sample_sits_in_the_middle_without_a_line() {
        let input = Input {
            samples: vec![(MARCH, 5 * MIB)],
            ..Input::default()
        };
        let c = chart(&input).unwrap();
        assert_eq!(c.dots[0].x, round((c.left + c.right) / 2.0));
        assert_eq!(c.fit, None);
        assert_eq!(c.x_title, "time (UTC)");
    }
}
