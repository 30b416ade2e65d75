//! Whether a Firebird character set can hold a text, and which character it cannot: the same
//! encoders the client uses (rsfbclient's, strict), so what passes here is what the server
//! stores. Pure.

use std::str::FromStr;

use rsfbclient::charset::Charset;

/// What a charset makes of one text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// Every character fits.
    All,
    /// This character (the first that does not fit) cannot be stored.
    Not(char),
    /// A charset the host has no encoder for (DOS850, CYRL ...): not checked here; the server's
    /// own error is explained afterwards.
    Unknown,
}

/// Charsets that hold every character (or store bytes as they come).
pub fn holds_everything(charset: &str) -> bool {
    matches!(
        charset.trim().to_ascii_uppercase().as_str(),
        "UTF8" | "UNICODE_FSS" | "UTF16" | "UTF32" | "NONE" | "OCTETS" | "BINARY"
    )
}

/// Whether `charset` can hold `text`; the first character it cannot when not.
pub fn holds(charset: &str, text: &str) -> Held {
    if holds_everything(charset) {
        return Held::All;
    }
    // Every charset the host knows is a superset of ASCII (ASCII itself included).
    if text.is_ascii() {
        return Held::All;
    }
    let Ok(encoder) = Charset::from_str(charset) else {
        return Held::Unknown;
    };
    if encoder.on_rust.is_none() {
        // rsfbclient's UTF8: everything fits.
        return Held::All;
    }
    let mut buf = [0u8; 4];
    for c in text.chars().filter(|c| !c.is_ascii()) {
        if encoder.encode(&*c.encode_utf8(&mut buf)).is_err() {
            return Held::Not(c);
        }
    }
    Held::All
}

/// `'Ł' (U+0141)`.
pub fn describe(c: char) -> String {
    format!("'{c}' (U+{:04X})", u32::from(c))
}

/// The value as a reason quotes it: at most 80 characters.
pub fn quote(text: &str) -> String {
    const MAX: usize = 80;
    if text.chars().count() <= MAX {
        format!("'{text}'")
    } else {
        let head: String = text.chars().take(MAX).collect();
        format!("'{head}...' ({} characters)", text.chars().count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_byte_charsets_hold_their_own_characters_only() {
        assert_eq!(holds("WIN1252", "São Paulo €"), Held::All);
        assert_eq!(holds("WIN1252", "smile 😀 now"), Held::Not('😀'));
        assert_eq!(holds("WIN1252", "Łódź"), Held::Not('Ł'));
        assert_eq!(holds("ISO8859_1", "São Paulo ÿ"), Held::All);
        assert_eq!(holds("ISO8859_1", "preço 10 €"), Held::Not('€'));
        assert_eq!(holds("WIN1250", "Łódź"), Held::All);
        assert_eq!(holds("ASCII", "ação"), Held::Not('ç'));
        assert_eq!(holds("UTF8", "😀"), Held::All);
        assert_eq!(holds("NONE", "😀"), Held::All);
        assert_eq!(holds("DOS850", "ação"), Held::Unknown);
        assert_eq!(holds("DOS850", "plain"), Held::All);
    }

    #[test]
    fn reasons_name_the_character_and_bound_the_value() {
        assert_eq!(describe('😀'), "'😀' (U+1F600)");
        assert_eq!(describe('Ł'), "'Ł' (U+0141)");
        assert_eq!(quote("abc"), "'abc'");
        let long = "x".repeat(200);
        assert!(quote(&long).ends_with("...' (200 characters)"));
    }
}
