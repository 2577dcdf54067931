//! Values formatted for a locale with ICU4X and its compiled CLDR data: numbers (grouping and
//! decimal separators), currency amounts (symbol and its place), dates and date-times
//! (Gregorian, medium length, UTC).

use fixed_decimal::Decimal;
use icu_calendar::Gregorian;
use icu_datetime::FixedCalendarDateTimeFormatter;
use icu_datetime::fieldsets::{YMD, YMDT};
use icu_datetime::input::{Date, DateTime, Time};
use icu_decimal::DecimalFormatter;
use icu_experimental::dimension::currency::CurrencyCode;
use icu_experimental::dimension::currency::formatter::CurrencyFormatter;
use icu_locale_core::Locale;
use serde::Deserialize;
use serde_json::Value;
use wasmgate_plugin_sdk::time::{DAY_MS, civil, days_from_civil};
use writeable::Writeable;

/// What a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `1234.5` → `1.234,5` (de).
    Number,
    /// `1234.5` EUR → `1.234,50 €` (de), `€1,234.50` (en).
    Currency,
    /// `2024-03-01` or an RFC 3339 time or Unix ms → `01.03.2024` (de), `Mar 1, 2024` (en).
    Date,
    /// An RFC 3339 time or Unix ms → `01.03.2024, 10:05:00` (de).
    Datetime,
}

/// One locale's formatters, made once at load for the kinds the config uses.
pub struct Formatters {
    number: Option<DecimalFormatter>,
    currency: Option<CurrencyFormatter>,
    date: Option<FixedCalendarDateTimeFormatter<Gregorian, YMD>>,
    datetime: Option<FixedCalendarDateTimeFormatter<Gregorian, YMDT>>,
}

impl Formatters {
    pub fn new(locale: &Locale, kinds: &[Kind]) -> Result<Formatters, String> {
        let has = |k| kinds.contains(&k);
        let failed = |e: &dyn std::fmt::Display| format!("no formatting data for `{locale}`: {e}");
        Ok(Formatters {
            number: has(Kind::Number)
                .then(|| DecimalFormatter::try_new(locale.into(), Default::default()))
                .transpose()
                .map_err(|e| failed(&e))?,
            currency: has(Kind::Currency)
                .then(|| CurrencyFormatter::try_new(locale.into(), Default::default()))
                .transpose()
                .map_err(|e| failed(&e))?,
            date: has(Kind::Date)
                .then(|| FixedCalendarDateTimeFormatter::try_new(locale.into(), YMD::medium()))
                .transpose()
                .map_err(|e| failed(&e))?,
            datetime: has(Kind::Datetime)
                .then(|| FixedCalendarDateTimeFormatter::try_new(locale.into(), YMDT::medium()))
                .transpose()
                .map_err(|e| failed(&e))?,
        })
    }

    /// `value` as text for this locale; `None` when it is not what `kind` formats (the field is
    /// then left as it was).
    pub fn format(
        &self,
        kind: Kind,
        value: &Value,
        currency: Option<&CurrencyCode>,
        digits: Option<i16>,
    ) -> Option<String> {
        match kind {
            Kind::Number => {
                let d = decimal(value, digits)?;
                Some(
                    self.number
                        .as_ref()?
                        .format(&d)
                        .write_to_string()
                        .into_owned(),
                )
            }
            Kind::Currency => {
                let d = decimal(value, digits.or(Some(2)))?;
                let f = self.currency.as_ref()?;
                Some(
                    f.format_fixed_decimal(&d, currency?)
                        .write_to_string()
                        .into_owned(),
                )
            }
            Kind::Date => {
                let (date, _) = moment(value)?;
                Some(
                    self.date
                        .as_ref()?
                        .format(&date)
                        .write_to_string()
                        .into_owned(),
                )
            }
            Kind::Datetime => {
                let (date, time) = moment(value)?;
                let dt = DateTime { date, time };
                Some(
                    self.datetime
                        .as_ref()?
                        .format(&dt)
                        .write_to_string()
                        .into_owned(),
                )
            }
        }
    }
}

/// A three-letter ISO 4217 code.
pub fn currency_code(code: &str) -> Option<CurrencyCode> {
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    code.parse().ok().map(CurrencyCode)
}

/// A JSON number or numeric string, rounded and padded to `digits` fraction digits if given.
fn decimal(value: &Value, digits: Option<i16>) -> Option<Decimal> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return None,
    };
    let mut d = Decimal::try_from_str(&text).ok()?;
    if let Some(digits) = digits {
        d.round(-digits);
        d.pad_end(-digits);
    }
    Some(d)
}

/// A date (and time, midnight for a bare date) in UTC from `YYYY-MM-DD`, an RFC 3339 time
/// (`T` or a space; any offset is converted to UTC), or a number of Unix milliseconds.
fn moment(value: &Value) -> Option<(Date<Gregorian>, Time)> {
    let (y, mo, d, h, mi, s) = match value {
        Value::Number(n) => {
            let ms = n.as_u64()?;
            let (y, mo, d) = civil(ms / DAY_MS);
            let in_day = ms % DAY_MS / 1000;
            (y, mo, d, in_day / 3600, in_day / 60 % 60, in_day % 60)
        }
        Value::String(text) => rfc3339(text)?,
        _ => return None,
    };
    let date = Date::try_new_gregorian(
        i32::try_from(y).ok()?,
        u8::try_from(mo).ok()?,
        u8::try_from(d).ok()?,
    )
    .ok()?;
    let time = Time::try_new(
        u8::try_from(h).ok()?,
        u8::try_from(mi).ok()?,
        u8::try_from(s).ok()?,
        0,
    )
    .ok()?;
    Some((date, time))
}

/// (year, month, day, hour, minute, second) in UTC.
fn rfc3339(text: &str) -> Option<(u64, u64, u64, u64, u64, u64)> {
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
    };
    let (date, rest) = match text.find(['T', 't', ' ']) {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    };
    let mut parts = date.split('-');
    let (y, mo, d) = (
        num(parts.next()?)?,
        num(parts.next()?)?,
        num(parts.next()?)?,
    );
    if parts.next().is_some() || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let Some(rest) = rest else {
        return Some((y, mo, d, 0, 0, 0));
    };
    // The clock time, then `Z` or `±HH:MM`.
    let zone_at = rest.find(['Z', 'z', '+', '-'])?;
    let (clock, zone) = rest.split_at(zone_at);
    let clock = clock.split('.').next()?;
    let mut hms = clock.split(':');
    let (h, mi, s) = (num(hms.next()?)?, num(hms.next()?)?, num(hms.next()?)?);
    let offset_min: i64 = match zone {
        "Z" | "z" => 0,
        z => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let (oh, om) = z[1..].split_once(':')?;
            sign * i64::try_from(num(oh)? * 60 + num(om)?).ok()?
        }
    };
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    if offset_min == 0 {
        return Some((y, mo, d, h, mi, s.min(59)));
    }
    // Through Unix time to UTC (dates before 1970 with an offset are not formatted).
    let days = i64::try_from(days_from_civil(y, mo).checked_add(d - 1)?).ok()?;
    let secs =
        days * 86_400 + i64::try_from(h * 3600 + mi * 60 + s.min(59)).ok()? - offset_min * 60;
    let secs = u64::try_from(secs).ok()?;
    let (y, mo, d) = civil(secs / 86_400);
    let in_day = secs % 86_400;
    Some((y, mo, d, in_day / 3600, in_day / 60 % 60, in_day % 60))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(locale: &str) -> Formatters {
        let l: Locale = locale.parse().unwrap();
        Formatters::new(
            &l,
            &[Kind::Number, Kind::Currency, Kind::Date, Kind::Datetime],
        )
        .unwrap()
    }

    #[test]
    fn amounts_per_locale() {
        let eur = currency_code("EUR").unwrap();
        let money = |l: &str, v: Value| f(l).format(Kind::Currency, &v, Some(&eur), None).unwrap();
        assert_eq!(money("de", json!(1234.5)), "1.234,50\u{a0}€");
        assert_eq!(money("en", json!(1234.5)), "€1,234.50");
        assert_eq!(money("fr", json!("1234.5")), "1\u{202f}234,50\u{a0}€");
        assert_eq!(
            money("en", json!(0.125)),
            "€0.12",
            "rounded half to even, as ICU does"
        );
        assert_eq!(money("en", json!(0.126)), "€0.13");
        assert_eq!(
            f("de")
                .format(Kind::Number, &json!(1234567.891), None, None)
                .unwrap(),
            "1.234.567,891"
        );
        assert_eq!(
            f("en")
                .format(Kind::Number, &json!(2.5), None, Some(2))
                .unwrap(),
            "2.50"
        );
        assert_eq!(f("en").format(Kind::Number, &json!("x"), None, None), None);
        assert!(currency_code("eur").is_none() && currency_code("EURO").is_none());
    }

    #[test]
    fn dates_per_locale_in_utc() {
        let date = |l: &str, v: Value| f(l).format(Kind::Date, &v, None, None);
        assert_eq!(date("de", json!("2024-03-01")).unwrap(), "01.03.2024");
        assert_eq!(
            date("en", json!("2024-03-01T10:05:00Z")).unwrap(),
            "Mar 1, 2024"
        );
        // 23:30 at -02:00 is the next day in UTC.
        assert_eq!(
            date("en", json!("2024-02-29T23:30:00-02:00")).unwrap(),
            "Mar 1, 2024"
        );
        assert_eq!(
            date("en", json!(1_709_287_500_000u64)).unwrap(),
            "Mar 1, 2024"
        );
        let dt = f("de").format(
            Kind::Datetime,
            &json!("2024-03-01T11:05:00.250+01:00"),
            None,
            None,
        );
        assert_eq!(dt.unwrap(), "01.03.2024, 10:05:00");
        for bad in [
            json!("2024-13-01"),
            json!("yesterday"),
            json!("2024-03-01T25:00:00Z"),
            json!(true),
        ] {
            assert_eq!(date("en", bad.clone()), None, "{bad}");
        }
    }
}
