//! Timestamp parsing without a date crate: RFC 3339 (HAR `startedDateTime`) and the
//! Common Log Format's `01/Aug/1995:00:00:01 -0400`. Both give microseconds since the
//! Unix epoch, UTC.

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        _ => 28,
    }
}

/// A calendar date and time of day, checked, with an offset from UTC in seconds.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    micros: u32,
    offset_secs: i64,
}

impl Civil {
    fn to_unix_micros(&self) -> Result<u64, String> {
        if !(1..=12).contains(&self.month) {
            return Err(format!("month {} out of range", self.month));
        }
        if self.day == 0 || self.day > days_in_month(self.year, self.month) {
            return Err(format!("day {} out of range", self.day));
        }
        if self.hour > 23 || self.minute > 59 || self.second > 60 {
            return Err("time of day out of range".to_string());
        }
        let days = days_from_civil(self.year, self.month, self.day);
        let secs = days * 86_400
            + i64::from(self.hour) * 3_600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
            - self.offset_secs;
        let micros = i128::from(secs) * 1_000_000 + i128::from(self.micros);
        u64::try_from(micros).map_err(|_| "before 1970-01-01T00:00:00Z".to_string())
    }
}

/// Parses exactly `n` ASCII digits at the start of `s`.
fn digits(s: &[u8], n: usize) -> Option<u32> {
    if s.len() < n {
        return None;
    }
    let mut v: u32 = 0;
    for &b in &s[..n] {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(b - b'0');
    }
    Some(v)
}

/// Parses an RFC 3339 date-time (`2017-02-11T09:36:22.868Z`,
/// `2015-12-20T14:43:36.694+01:00`) into microseconds since the Unix epoch.
///
/// Accepts `t`/`T`/space as the separator, `z`/`Z`, any number of fractional digits
/// (truncated to microseconds), and, leniently, offsets without a colon (`+0100`).
pub fn parse_rfc3339(s: &str) -> Result<u64, String> {
    let err = |why: &str| format!("invalid RFC 3339 date-time {s:?}: {why}");
    let b = s.trim().as_bytes();
    let field = |at: usize, n: usize| digits(b.get(at..).unwrap_or_default(), n);
    let (Some(year), Some(month), Some(day)) = (field(0, 4), field(5, 2), field(8, 2)) else {
        return Err(err("expected YYYY-MM-DD"));
    };
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return Err(err("expected YYYY-MM-DD"));
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return Err(err("expected T between date and time"));
    }
    let (Some(hour), Some(minute), Some(second)) = (field(11, 2), field(14, 2), field(17, 2))
    else {
        return Err(err("expected hh:mm:ss"));
    };
    if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
        return Err(err("expected hh:mm:ss"));
    }
    let mut i = 19;
    let mut micros = 0u32;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while let Some(d) = b.get(i).filter(|d| d.is_ascii_digit()) {
            if i - start < 6 {
                micros = micros * 10 + u32::from(d - b'0');
            }
            i += 1;
        }
        if i == start {
            return Err(err("expected digits after '.'"));
        }
        for _ in (i - start)..6 {
            micros *= 10;
        }
    }
    let offset_secs = match b.get(i) {
        Some(b'Z' | b'z') => {
            i += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let rest = &b[i + 1..];
            let (h, m, used) = match (
                digits(rest, 2),
                rest.get(2),
                digits(rest.get(3..).unwrap_or_default(), 2),
            ) {
                (Some(h), Some(b':'), Some(m)) => (h, m, 5),
                (Some(h), _, _) => match digits(rest.get(2..).unwrap_or_default(), 2) {
                    Some(m) => (h, m, 4),
                    None => return Err(err("expected offset ±hh:mm")),
                },
                _ => return Err(err("expected offset ±hh:mm")),
            };
            if h > 23 || m > 59 {
                return Err(err("offset out of range"));
            }
            i += 1 + used;
            let secs = i64::from(h * 3_600 + m * 60);
            if sign == b'-' { -secs } else { secs }
        }
        _ => return Err(err("expected Z or an offset ±hh:mm")),
    };
    if i != b.len() {
        return Err(err("trailing characters"));
    }
    Civil {
        year: i64::from(year),
        month,
        day,
        hour,
        minute,
        second,
        micros,
        offset_secs,
    }
    .to_unix_micros()
    .map_err(|why| err(&why))
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// Parses a Common Log Format timestamp, the text between `[` and `]`:
/// `01/Aug/1995:00:00:01 -0400`, into microseconds since the Unix epoch.
pub fn parse_clf(s: &str) -> Result<u64, String> {
    let err = |why: &str| format!("invalid date [{s}]: {why}");
    let b = s.as_bytes();
    if b.len() != 26 {
        return Err(err("expected dd/Mon/yyyy:hh:mm:ss ±hhmm"));
    }
    let month_name = s.get(3..6).map(str::to_ascii_lowercase).unwrap_or_default();
    let Some(month) = MONTHS.iter().position(|m| *m == month_name) else {
        return Err(err("unknown month"));
    };
    let field = |at: usize, n: usize| digits(&b[at..], n);
    let seps = [
        (2, b'/'),
        (6, b'/'),
        (11, b':'),
        (14, b':'),
        (17, b':'),
        (20, b' '),
    ];
    if seps.iter().any(|&(at, c)| b[at] != c) {
        return Err(err("expected dd/Mon/yyyy:hh:mm:ss ±hhmm"));
    }
    let (Some(day), Some(year), Some(hour), Some(minute), Some(second)) = (
        field(0, 2),
        field(7, 4),
        field(12, 2),
        field(15, 2),
        field(18, 2),
    ) else {
        return Err(err("expected dd/Mon/yyyy:hh:mm:ss ±hhmm"));
    };
    let sign = match b[21] {
        b'+' => 1,
        b'-' => -1,
        _ => return Err(err("expected offset ±hhmm")),
    };
    let (Some(oh), Some(om)) = (field(22, 2), field(24, 2)) else {
        return Err(err("expected offset ±hhmm"));
    };
    if oh > 23 || om > 59 {
        return Err(err("offset out of range"));
    }
    Civil {
        year: i64::from(year),
        month: month as u32 + 1,
        day,
        hour,
        minute,
        second,
        micros: 0,
        offset_secs: sign * i64::from(oh * 3_600 + om * 60),
    }
    .to_unix_micros()
    .map_err(|why| err(&why))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_variants() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(
            parse_rfc3339("2017-02-11T09:36:22.868Z"),
            Ok(1_486_805_782_868_000)
        );
        // Same instant with an offset, lower-case separators, more fraction digits.
        assert_eq!(
            parse_rfc3339("2017-02-11t10:36:22.868000999+01:00"),
            Ok(1_486_805_782_868_000)
        );
        assert_eq!(
            parse_rfc3339("2017-02-11T04:06:22.868-05:30"),
            Ok(1_486_805_782_868_000)
        );
        assert_eq!(
            parse_rfc3339("2017-02-11 09:36:22.8z"),
            Ok(1_486_805_782_800_000)
        );
        assert_eq!(
            parse_rfc3339("2017-02-11T10:36:22+0100"),
            Ok(1_486_805_782_000_000)
        );
        assert_eq!(
            parse_rfc3339("2000-02-29T00:00:00.000001Z"),
            Ok(951_782_400_000_001)
        );
    }

    #[test]
    fn rfc3339_rejects() {
        for bad in [
            "",
            "2017-02-11",
            "2017-02-11T09:36:22",
            "2017-02-30T09:36:22Z",
            "2017-13-01T09:36:22Z",
            "2017-02-11T24:00:00Z",
            "2017-02-11T09:36:22.Z",
            "2017-02-11T09:36:22Zx",
            "2017-02-11T09:36:22+25:00",
            "1969-12-31T23:59:59Z",
            "2017/02/11T09:36:22Z",
            "2017-02-11T09:36:22.868é",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn clf_dates() {
        // 1995-08-01T04:00:01Z
        assert_eq!(
            parse_clf("01/Aug/1995:00:00:01 -0400"),
            Ok(807_249_601_000_000)
        );
        assert_eq!(
            parse_clf("01/aug/1995:06:00:01 +0200"),
            Ok(807_249_601_000_000)
        );
        for bad in [
            "01/Aug/1995:00:00:01",
            "32/Aug/1995:00:00:01 -0400",
            "01/Foo/1995:00:00:01 -0400",
            "01/Aug/1995 00:00:01 -0400",
            "01/Aug/1995:00:00:01 0400x",
            "01/Aug/1995:25:00:01 -0400",
            "é1/Aug/1995:00:00:01 -040",
        ] {
            assert!(parse_clf(bad).is_err(), "{bad:?} accepted");
        }
    }
}
