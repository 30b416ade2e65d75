//! Exact decimal text for Firebird NUMERIC(p,s) and integer columns. Works on the digits of the
//! JSON number's own text (serde_json `arbitrary_precision`): a value never goes through an f64,
//! and a value that does not fit is refused, never rounded.

/// Largest precision Firebird 2.5 NUMERIC/DECIMAL supports (stored as a scaled BIGINT).
pub const MAX_PRECISION: u8 = 18;

/// A decimal split into sign and digits, without leading integer or trailing fraction zeros.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Digits {
    negative: bool,
    int: String,
    frac: String,
}

/// Refuses exponents that would expand into absurdly long digit strings.
const MAX_EXPONENT: i64 = 64;

/// Parses `-12.50`, `1e3`, `+0.5E-2`, `007`; `None` when `text` is not a decimal number.
fn parse(text: &str) -> Option<Digits> {
    let (negative, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (&rest[..at], rest[at + 1..].parse::<i64>().ok()?),
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
        return None;
    }
    if exponent.abs() > MAX_EXPONENT {
        // Only zero survives such an exponent within NUMERIC(18); keep it, refuse the rest.
        if int.bytes().chain(frac.bytes()).all(|b| b == b'0') {
            return Some(Digits {
                negative: false,
                int: String::new(),
                frac: String::new(),
            });
        }
        return None;
    }
    // Move the decimal point by the exponent over the concatenated digits.
    let digits = format!("{int}{frac}");
    let point = int.len() as i64 + exponent;
    let (int, frac) = if point <= 0 {
        (
            String::new(),
            format!("{}{digits}", "0".repeat(point.unsigned_abs() as usize)),
        )
    } else if point as usize >= digits.len() {
        (
            format!("{digits}{}", "0".repeat(point as usize - digits.len())),
            String::new(),
        )
    } else {
        (
            digits[..point as usize].to_owned(),
            digits[point as usize..].to_owned(),
        )
    };
    let int = int.trim_start_matches('0').to_owned();
    let frac = frac.trim_end_matches('0').to_owned();
    let negative = negative && !(int.is_empty() && frac.is_empty());
    Some(Digits {
        negative,
        int,
        frac,
    })
}

/// Canonical text of `text` for NUMERIC(`precision`,`scale`): sign, integer digits and exactly
/// `scale` fraction digits ("10" -> "10.00"). The error says why it does not fit.
pub fn numeric_text(text: &str, precision: u8, scale: u8) -> Result<String, String> {
    let d = parse(text).ok_or_else(|| format!("`{text}` is not a decimal number"))?;
    let (precision, scale) = (usize::from(precision), usize::from(scale));
    if d.frac.len() > scale {
        return Err(format!(
            "`{text}` has {} decimal places; NUMERIC({precision},{scale}) holds {scale} \
             (not rounded)",
            d.frac.len()
        ));
    }
    if d.int.len() > precision.saturating_sub(scale) {
        return Err(format!(
            "`{text}` does not fit NUMERIC({precision},{scale})"
        ));
    }
    let mut out = String::with_capacity(precision + 3);
    if d.negative {
        out.push('-');
    }
    out.push_str(if d.int.is_empty() { "0" } else { &d.int });
    if scale > 0 {
        out.push('.');
        out.push_str(&d.frac);
        out.push_str(&"0".repeat(scale - d.frac.len()));
    }
    Ok(out)
}

/// The integer value of `text` ("42", "42.0", "4.2e1"); an error when it has a fraction or
/// leaves `min..=max`.
pub fn integer(text: &str, min: i64, max: i64) -> Result<i64, String> {
    let d = parse(text).ok_or_else(|| format!("`{text}` is not a number"))?;
    if !d.frac.is_empty() {
        return Err(format!("`{text}` is not an integer"));
    }
    let magnitude = if d.int.is_empty() { "0" } else { &d.int };
    let signed = if d.negative {
        format!("-{magnitude}")
    } else {
        magnitude.to_owned()
    };
    match signed.parse::<i64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(format!("`{text}` is outside {min}..={max}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_near_the_top_of_numeric_18_2() {
        assert_eq!(
            numeric_text("999999999999999.99", 18, 2).unwrap(),
            "999999999999999.99"
        );
        assert_eq!(
            numeric_text("-9999999999999999.99", 18, 2).unwrap(),
            "-9999999999999999.99"
        );
        assert!(numeric_text("99999999999999999.99", 18, 2).is_err());
    }

    #[test]
    fn pads_normalises_and_never_rounds() {
        assert_eq!(numeric_text("10", 18, 2).unwrap(), "10.00");
        assert_eq!(numeric_text("0010.5000", 18, 2).unwrap(), "10.50");
        assert_eq!(numeric_text("-0.00", 18, 2).unwrap(), "0.00");
        assert_eq!(numeric_text(".5", 12, 3).unwrap(), "0.500");
        assert_eq!(numeric_text("1.5e2", 18, 2).unwrap(), "150.00");
        assert_eq!(numeric_text("15E-3", 12, 3).unwrap(), "0.015");
        assert_eq!(numeric_text("7", 5, 0).unwrap(), "7");
        assert!(numeric_text("0.125", 18, 2)
            .unwrap_err()
            .contains("not rounded"));
        assert!(numeric_text("1e999", 18, 2).is_err());
        assert_eq!(numeric_text("0e999", 18, 2).unwrap(), "0.00");
        for bad in ["", "-", ".", "1.2.3", "abc", "1e", "NaN", "1,5", " 1"] {
            assert!(numeric_text(bad, 18, 2).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn integers_in_range() {
        assert_eq!(integer("42", i64::MIN, i64::MAX).unwrap(), 42);
        assert_eq!(integer("4.20e1", i64::MIN, i64::MAX).unwrap(), 42);
        assert_eq!(
            integer("-9223372036854775808", i64::MIN, i64::MAX).unwrap(),
            i64::MIN
        );
        assert!(integer("9223372036854775808", i64::MIN, i64::MAX).is_err());
        assert!(integer("32768", -32768, 32767).is_err());
        assert!(integer("1.5", i64::MIN, i64::MAX).is_err());
        assert_eq!(integer("-0", i64::MIN, i64::MAX).unwrap(), 0);
    }
}
