//! RFC 3339 time stamps (UTC) as the image config and the container records write
//! them, and the civil calendar arithmetic behind them (Howard Hinnant's algorithms).
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the epoch, now (0 if the clock is before 1970).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Now, to the second: `2023-11-14T22:13:20Z`.
pub fn now() -> String {
    format(unix_now())
}

/// Now, to the nanosecond: `2023-11-14T22:13:20.000000005Z`.
pub fn now_nanos() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format_nanos(d.as_secs() as i64, d.subsec_nanos())
}

pub fn format(secs: i64) -> String {
    format!("{}Z", date_time(secs))
}

pub fn format_nanos(secs: i64, nanos: u32) -> String {
    format!("{}.{nanos:09}Z", date_time(secs))
}

/// `YYYY-MM-DDTHH:MM:SS` of a time in seconds since the epoch.
fn date_time(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86400));
    let sod = secs.rem_euclid(86400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// Seconds since the epoch of an RFC 3339 stamp (fractions dropped, offsets honoured).
pub fn parse(s: &str) -> Option<i64> {
    if s.len() < 19 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
    let mut rest = &s[19..];
    if let Some(r) = rest.strip_prefix('.') {
        rest = r.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    if rest.len() >= 6 && (rest.starts_with('+') || rest.starts_with('-')) {
        let oh: i64 = rest.get(1..3)?.parse().ok()?;
        let om: i64 = rest.get(4..6)?.parse().ok()?;
        let off = oh * 3600 + om * 60;
        t += if rest.starts_with('+') { -off } else { off };
    }
    Some(t)
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for t in [0i64, 951782400, 1700000000, 4102444800] {
            assert_eq!(parse(&format(t)), Some(t));
            assert_eq!(parse(&format_nanos(t, 7)), Some(t));
        }
        assert_eq!(format(1700000000), "2023-11-14T22:13:20Z");
        assert_eq!(format_nanos(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            format_nanos(1_700_000_000, 5),
            "2023-11-14T22:13:20.000000005Z"
        );
        assert_eq!(
            format_nanos(951_782_400, 0),
            "2000-02-29T00:00:00.000000000Z"
        );
        assert_eq!(
            parse("2023-11-14T23:13:20.123456789+01:00"),
            Some(1700000000)
        );
        assert_eq!(parse("2023-11-14"), None);
    }
}
