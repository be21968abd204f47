//! UTC time on the wire and in the API: integer milliseconds since the Unix epoch, and
//! RFC 3339 text that always ends in `Z`. No time zones other than UTC exist here.

use alloc::format;
use alloc::string::String;

/// A UTC instant in integer milliseconds since the Unix epoch: the one time type of the
/// wire and of storage. APIs show it as RFC 3339 with `Z` ([`UtcMs::rfc3339`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(
    feature = "full",
    derive(serde::Serialize, serde::Deserialize),
    serde(transparent)
)]
pub struct UtcMs(pub i64);

impl UtcMs {
    pub const fn ms(self) -> i64 {
        self.0
    }

    /// This instant moved by `delta_ms`, saturating instead of overflowing.
    pub const fn offset(self, delta_ms: i64) -> UtcMs {
        UtcMs(self.0.saturating_add(delta_ms))
    }

    /// RFC 3339 with `Z` and milliseconds when they are not zero.
    pub fn rfc3339(self) -> String {
        format_rfc3339(self.0)
    }
}

pub const MS_PER_SECOND: i64 = 1_000;
pub const MS_PER_MINUTE: i64 = 60 * MS_PER_SECOND;
pub const MS_PER_HOUR: i64 = 60 * MS_PER_MINUTE;
pub const MS_PER_DAY: i64 = 24 * MS_PER_HOUR;

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`]: (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Milliseconds since the epoch of a UTC calendar date and `[hour, minute, second]`;
/// `None` for an impossible date or time (a leap second counts as :59).
pub fn utc_ms(year: i64, month: u32, day: u32, [h, mi, sec]: [u64; 3]) -> Option<i64> {
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let clock_ms = (h * 3_600 + mi * 60 + sec.min(59)) as i64 * MS_PER_SECOND;
    Some(days_from_civil(year, month, day) * MS_PER_DAY + clock_ms)
}

/// Formats milliseconds since the epoch as RFC 3339 in UTC, such as
/// `2026-11-22T07:00:00Z`; milliseconds appear only when they are not zero.
pub fn format_rfc3339(ms: i64) -> String {
    let days = ms.div_euclid(MS_PER_DAY);
    let in_day = ms.rem_euclid(MS_PER_DAY);
    let (y, mo, d) = civil_from_days(days);
    let h = in_day / MS_PER_HOUR;
    let mi = (in_day % MS_PER_HOUR) / MS_PER_MINUTE;
    let s = (in_day % MS_PER_MINUTE) / MS_PER_SECOND;
    let frac = in_day % MS_PER_SECOND;
    if frac == 0 {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    } else {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{frac:03}Z")
    }
}

/// The decimal number in `s[at..at + len]` (digits only).
pub(crate) fn digits(s: &[u8], at: usize, len: usize) -> Option<i64> {
    let part = s.get(at..at + len)?;
    part.iter().try_fold(0i64, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

/// Parses RFC 3339 (`2026-11-22T07:00:00Z`, `...T07:00:00.250+01:00`) or a bare UTC
/// date (`2026-11-22`) into milliseconds since the epoch. Returns `None` for anything else.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let s = text.as_bytes();
    let year = digits(s, 0, 4)?;
    if s.get(4) != Some(&b'-') || s.get(7) != Some(&b'-') {
        return None;
    }
    let month = u32::try_from(digits(s, 5, 2)?).ok()?;
    let day = u32::try_from(digits(s, 8, 2)?).ok()?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let date_ms = days_from_civil(year, month, day) * MS_PER_DAY;
    if s.len() == 10 {
        return Some(date_ms);
    }
    if !matches!(s.get(10), Some(b'T' | b't' | b' '))
        || s.get(13) != Some(&b':')
        || s.get(16) != Some(&b':')
    {
        return None;
    }
    let (h, mi, sec) = (digits(s, 11, 2)?, digits(s, 14, 2)?, digits(s, 17, 2)?);
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut at = 19;
    let mut frac_ms = 0;
    if s.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while s.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        if at == start {
            return None;
        }
        // Keep millisecond precision; finer digits are truncated.
        let mut scale = 100;
        for &c in &s[start..at.min(start + 3)] {
            frac_ms += i64::from(c - b'0') * scale;
            scale /= 10;
        }
    }
    let offset_ms = match s.get(at) {
        Some(b'Z' | b'z') if s.len() == at + 1 => 0,
        Some(sign @ (b'+' | b'-')) if s.len() == at + 6 && s.get(at + 3) == Some(&b':') => {
            let (oh, om) = (digits(s, at + 1, 2)?, digits(s, at + 4, 2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let off = oh * MS_PER_HOUR + om * MS_PER_MINUTE;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    Some(
        date_ms + h * MS_PER_HOUR + mi * MS_PER_MINUTE + sec.min(59) * MS_PER_SECOND + frac_ms
            - offset_ms,
    )
}

/// The earliest and latest instants an API accepts: the years 0000 to 9999 that RFC 3339
/// can write. Bounding every input time keeps all time arithmetic far from overflow.
pub const MIN_API_MS: i64 = -62_167_219_200_000;
pub const MAX_API_MS: i64 = 253_402_300_799_999;

/// Parses an API time: integer milliseconds or RFC 3339, within the years 0000 to 9999.
pub fn parse_api_time(text: &str) -> Option<i64> {
    let t = text.trim();
    let ms = if !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit()) {
        t.parse().ok()?
    } else {
        parse_rfc3339(t)?
    };
    (MIN_API_MS..=MAX_API_MS).contains(&ms).then_some(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_times_are_bounded() {
        assert_eq!(parse_api_time("9223372036854775807"), None);
        assert_eq!(parse_api_time("253402300800000"), None);
        assert_eq!(parse_api_time("253402300799999"), Some(MAX_API_MS));
        assert_eq!(format_rfc3339(MAX_API_MS), "9999-12-31T23:59:59.999Z");
        assert_eq!(format_rfc3339(MIN_API_MS), "0000-01-01T00:00:00Z");
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(
            format_rfc3339(1_795_849_200_250),
            "2026-11-28T07:00:00.250Z"
        );
    }

    #[test]
    fn parses_what_it_formats() {
        for ms in [
            0,
            86_399_999,
            951_782_400_000,
            1_795_849_200_250,
            4_102_444_800_000,
        ] {
            assert_eq!(parse_rfc3339(&format_rfc3339(ms)), Some(ms));
        }
    }

    #[test]
    fn parses_offsets_dates_and_fractions() {
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_rfc3339("1969-12-31T19:00:00-05:00"), Some(0));
        assert_eq!(parse_rfc3339("1970-01-02"), Some(MS_PER_DAY));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00.1234Z"), Some(123));
        assert_eq!(parse_api_time("1234"), Some(1234));
    }

    #[test]
    fn rejects_malformed_times() {
        for bad in [
            "",
            "2026",
            "2026-13-01",
            "2026-02-30",
            "2026-02-29",
            "2026-01-01T25:00:00Z",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00.Z",
            "2026-01-01T00:00:00+0100",
            "yesterday",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        assert_eq!(parse_api_time("-5"), None);
    }
}
