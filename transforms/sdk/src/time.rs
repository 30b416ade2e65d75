//! Dates and timestamps for Firebird 2.5: DATE, and TIMESTAMP (no zone, 100 us precision).
//! Parses PostgreSQL's JSON forms and converts an instant to the wall-clock time of a configured
//! IANA zone with the bundled tz database: deterministic, no clock, no host call.

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Timelike};
use chrono_tz::Tz;

/// The zone used when the settings name none: the demo units' local time.
pub const DEFAULT_ZONE: &str = "America/Sao_Paulo";

/// An IANA time zone, e.g. "America/Sao_Paulo".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zone(Tz);

impl Zone {
    /// Looks up an IANA zone name; the error names the bad value.
    pub fn parse(name: &str) -> Result<Zone, String> {
        name.parse::<Tz>()
            .map(Zone)
            .map_err(|_| format!("`{name}` is not an IANA time zone (e.g. \"{DEFAULT_ZONE}\")"))
    }

    /// The zone's name.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

/// Firebird DATE and TIMESTAMP hold years 1..=9999.
fn check_year(date: NaiveDate, text: &str) -> Result<(), String> {
    if (1..=9999).contains(&date.year()) {
        Ok(())
    } else {
        Err(format!(
            "`{text}` is outside the years 1..9999 that Firebird holds"
        ))
    }
}

/// Two or four ASCII digits as a number.
fn num(bytes: &[u8]) -> Option<u32> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    bytes.iter().try_fold(0u32, |acc, b| {
        acc.checked_mul(10)?.checked_add(u32::from(b - b'0'))
    })
}

/// "YYYY-MM-DD" at the start of `b`.
fn parse_date(b: &[u8]) -> Option<NaiveDate> {
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = i32::try_from(num(&b[0..4])?).ok()?;
    NaiveDate::from_ymd_opt(year, num(&b[5..7])?, num(&b[8..10])?)
}

/// "HH:MM:SS[.fraction]" at the start of `b`; returns the time and the bytes after it.
fn parse_time(b: &[u8]) -> Option<(NaiveTime, &[u8])> {
    if b.len() < 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    let (h, m, s) = (num(&b[0..2])?, num(&b[3..5])?, num(&b[6..8])?);
    let mut rest = &b[8..];
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix(b".") {
        let len = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if len == 0 || len > 9 {
            return None;
        }
        nanos = num(&frac[..len])? * 10u32.pow(9 - len as u32);
        rest = &frac[len..];
    }
    Some((NaiveTime::from_hms_nano_opt(h, m, s, nanos)?, rest))
}

/// "YYYY-MM-DD{T| }HH:MM:SS[.f]" and what follows it (the offset, if any).
fn parse_datetime(text: &str) -> Option<(NaiveDateTime, &[u8])> {
    let b = text.as_bytes();
    let date = parse_date(b)?;
    if b.get(10) != Some(&b'T') && b.get(10) != Some(&b' ') {
        return None;
    }
    let (time, rest) = parse_time(b.get(11..)?)?;
    Some((date.and_time(time), rest))
}

/// "Z", "+HH", "+HHMM", "+HH:MM" or "+HH:MM:SS" (PostgreSQL prints seconds for historic
/// offsets) as seconds east of UTC.
fn parse_offset(b: &[u8]) -> Option<i64> {
    if b == b"Z" || b == b"z" {
        return Some(0);
    }
    let (sign, body) = match b.split_first()? {
        (b'+', body) => (1, body),
        (b'-', body) => (-1, body),
        _ => return None,
    };
    let zero: &[u8] = b"00";
    let (h, m, s) = match body.len() {
        2 => (body, zero, zero),
        4 => (&body[0..2], &body[2..4], zero),
        5 if body[2] == b':' => (&body[0..2], &body[3..5], zero),
        8 if body[2] == b':' && body[5] == b':' => (&body[0..2], &body[3..5], &body[6..8]),
        _ => return None,
    };
    let (h, m, s) = (num(h)?, num(m)?, num(s)?);
    (h < 24 && m < 60 && s < 60).then(|| sign * i64::from(h * 3600 + m * 60 + s))
}

/// Firebird TIMESTAMP text: "YYYY-MM-DD HH:MM:SS.ffff", the fraction truncated to 100 us.
fn firebird_timestamp(t: NaiveDateTime) -> String {
    // A leap second shows as nanos >= 1e9 in chrono; Firebird has no 60th second.
    let tenths_of_ms = (t.nanosecond() / 100_000).min(9_999);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{tenths_of_ms:04}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// "YYYY-MM-DD" -> Firebird DATE text.
pub fn date(text: &str) -> Result<String, String> {
    let date = (text.len() == 10)
        .then(|| parse_date(text.as_bytes()))
        .flatten()
        .ok_or_else(|| format!("`{text}` is not a date YYYY-MM-DD"))?;
    check_year(date, text)?;
    Ok(format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        date.month(),
        date.day()
    ))
}

/// A timestamp without zone ("2026-11-23T10:15:30.123456") -> Firebird TIMESTAMP text.
pub fn timestamp(text: &str) -> Result<String, String> {
    match parse_datetime(text) {
        Some((t, [])) => {
            check_year(t.date(), text)?;
            Ok(firebird_timestamp(t))
        }
        Some(_) => Err(format!(
            "`{text}` carries a zone offset; map it as timestamptz with a zone"
        )),
        None => Err(format!(
            "`{text}` is not a timestamp YYYY-MM-DDTHH:MM:SS[.f]"
        )),
    }
}

/// An instant with offset ("2026-11-23T10:15:30.123456+00:00", "...Z") -> the wall-clock time
/// in `zone` as Firebird TIMESTAMP text, truncated to 100 us.
pub fn timestamptz(text: &str, zone: Zone) -> Result<String, String> {
    let bad = || format!("`{text}` is not a timestamp with offset YYYY-MM-DDTHH:MM:SS[.f]+HH:MM");
    let (local, rest) = parse_datetime(text).ok_or_else(bad)?;
    let offset = parse_offset(rest).ok_or_else(bad)?;
    let utc = local
        .checked_sub_signed(TimeDelta::seconds(offset))
        .ok_or_else(bad)?
        .and_utc();
    let wall = utc.with_timezone(&zone.0).naive_local();
    check_year(wall.date(), text)?;
    Ok(firebird_timestamp(wall))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp() -> Zone {
        Zone::parse(DEFAULT_ZONE).unwrap()
    }

    #[test]
    fn timestamptz_to_local_wall_clock_truncated_to_100us() {
        let z = sp();
        // São Paulo has been UTC-3 without DST since 2019.
        assert_eq!(
            timestamptz("2026-11-23T10:15:30.123456+00:00", z).unwrap(),
            "2026-11-23 07:15:30.1234"
        );
        assert_eq!(
            timestamptz("2026-11-23T10:15:30Z", z).unwrap(),
            "2026-11-23 07:15:30.0000"
        );
        assert_eq!(
            timestamptz("2026-01-01T01:00:00.99999-03:00", z).unwrap(),
            "2026-01-01 01:00:00.9999"
        );
        assert_eq!(
            timestamptz("2026-01-01 02:30:00+0530", z).unwrap(),
            "2025-12-31 18:00:00.0000"
        );
        // December 2018: São Paulo still had summer time (UTC-2).
        assert_eq!(
            timestamptz("2018-12-01T12:00:00+00", z).unwrap(),
            "2018-12-01 10:00:00.0000"
        );
        let utc = Zone::parse("UTC").unwrap();
        assert_eq!(
            timestamptz("1890-01-01T00:00:00-03:06:28", utc).unwrap(),
            "1890-01-01 03:06:28.0000"
        );
    }

    #[test]
    fn refuses_malformed_and_out_of_range() {
        let z = sp();
        for bad in [
            "2026-11-23T10:15:30",
            "2026-11-23",
            "infinity",
            "2026-13-01T00:00:00Z",
            "2026-11-23T10:15:30+25:00",
            "2026-11-23T10:15:30.Z",
            "0001-01-01T00:00:00+00:00",
        ] {
            assert!(timestamptz(bad, z).is_err(), "{bad}");
        }
        assert!(Zone::parse("Mars/Olympus").is_err());
    }

    #[test]
    fn plain_timestamp_and_date() {
        assert_eq!(
            timestamp("2026-11-23T10:15:30.123456").unwrap(),
            "2026-11-23 10:15:30.1234"
        );
        assert_eq!(
            timestamp("2026-11-23 10:15:30").unwrap(),
            "2026-11-23 10:15:30.0000"
        );
        assert!(timestamp("2026-11-23T10:15:30+00:00")
            .unwrap_err()
            .contains("timestamptz"));
        assert_eq!(date("1980-02-29").unwrap(), "1980-02-29");
        for bad in [
            "1981-02-29",
            "1980-2-29",
            "1980-02-29T00:00:00",
            "infinity",
            "0000-01-01",
        ] {
            assert!(date(bad).is_err(), "{bad}");
        }
    }
}
