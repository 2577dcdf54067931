//! Calendar arithmetic on Unix milliseconds (UTC), as plugins need it: calendar months for
//! quotas, RFC 3339 timestamps for added metadata. H. Hinnant's civil-date algorithms.

/// Milliseconds in a day.
pub const DAY_MS: u64 = 86_400_000;

/// Days since 1970-01-01 as (year, month 1..=12, day 1..=31): `civil_from_days`.
pub fn civil(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// The first day of `(year, month)` as days since 1970-01-01: `days_from_civil`.
pub fn days_from_civil(year: u64, month: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `ms` as an RFC 3339 UTC timestamp with milliseconds: `2026-11-26T17:03:09.042Z`.
pub fn rfc3339(ms: u64) -> String {
    let (year, month, day) = civil(ms / DAY_MS);
    let in_day = ms % DAY_MS;
    let (h, m, s, milli) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        // 2024-02-29 is day 19782; 2024-03-01 is 19783.
        assert_eq!(civil(19_782), (2024, 2, 29));
        assert_eq!(civil(19_783), (2024, 3, 1));
        assert_eq!(days_from_civil(2024, 3), 19_783);
        assert_eq!(days_from_civil(2025, 1), 20_089);
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(19_782 * DAY_MS + 45_296_789),
            "2024-02-29T12:34:56.789Z"
        );
    }
}
