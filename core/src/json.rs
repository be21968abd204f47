//! A small JSON reader into [`serde_json::Value`], for the flag engine's wasm build.
//!
//! serde_json's own reader and serde's derived deserializers are most of what the engine
//! would download; this one is a few hundred bytes of wasm. It reads exactly what
//! serde_json reads, into the same values: integers without a fraction or exponent are
//! `u64` (`i64` when negative) while they fit, `-0` and everything else is `f64`
//! (correctly rounded; the workspace builds serde_json with `float_roundtrip`, so both
//! round alike), the last of repeated keys wins, lone surrogates are refused, and nesting
//! stops at 128 levels. `json_reader_agrees_with_serde_json` in the tests holds it to that.

#[allow(unused_imports)]
use crate::prelude::*;
use alloc::borrow::Cow;
use core::fmt;
use serde_json::Map;

/// The values it reads (serde_json's, so that the engine and the collector share them).
pub use serde_json::{Number, Value};

/// Deeper nesting is refused (serde_json's limit), so input cannot exhaust the stack.
const MAX_DEPTH: usize = 128;

/// Why a text is not JSON, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// Byte offset in the text.
    pub offset: usize,
    pub message: &'static str,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.message, self.offset)
    }
}

/// Parses one JSON value (surrounding whitespace allowed, nothing else).
pub fn parse(text: &str) -> Result<Value, JsonError> {
    parse_with(text, |number| number.parse().ok())
}

/// [`parse`], with numbers that have a fraction or an exponent read by `read_float`: the
/// wasm engine passes JavaScript's `parseFloat`, which rounds correctly as Rust's parser
/// does, and so downloads no float parser and none of its tables.
pub fn parse_with(text: &str, read_float: fn(&str) -> Option<f64>) -> Result<Value, JsonError> {
    let mut reader = Reader {
        text,
        at: 0,
        read_float,
    };
    let value = reader.value(0)?;
    reader.skip_whitespace();
    if reader.at < text.len() {
        return Err(reader.error("trailing characters"));
    }
    Ok(value)
}

/// Reads a JSON object member by member, handing each `(key, value)` to `each` (in order,
/// repeated keys too) instead of building a map: the wasm engine reads a context straight
/// into the attributes its rules read. Anything but one object is an error; on an error,
/// some members may have been handed over already.
pub fn read_members(
    text: &str,
    read_float: fn(&str) -> Option<f64>,
    mut each: impl FnMut(Cow<'_, str>, Value),
) -> Result<(), JsonError> {
    let mut reader = Reader {
        text,
        at: 0,
        read_float,
    };
    reader.skip_whitespace();
    if reader.peek() != Some(b'{') {
        return Err(reader.error("expected an object"));
    }
    reader.at += 1;
    reader.members(0, &mut each)?;
    reader.skip_whitespace();
    if reader.at < text.len() {
        return Err(reader.error("trailing characters"));
    }
    Ok(())
}

struct Reader<'a> {
    text: &'a str,
    at: usize,
    read_float: fn(&str) -> Option<f64>,
}

impl<'a> Reader<'a> {
    fn error(&self, message: &'static str) -> JsonError {
        JsonError {
            offset: self.at,
            message,
        }
    }

    // The byte loops count over slices, and the helpers are inlined: the wasm engine is
    // built for size, which otherwise makes a call of every byte (setContext parses a
    // context on every change of user).
    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    #[inline(always)]
    fn rest(&self) -> &[u8] {
        self.text.as_bytes().get(self.at..).unwrap_or_default()
    }

    #[inline(always)]
    fn skip_whitespace(&mut self) {
        let spaces = self.rest().iter();
        self.at += spaces
            .take_while(|b| matches!(b, b' ' | b'\n' | b'\t' | b'\r'))
            .count();
    }

    /// Consumes `byte` after optional whitespace, or fails with `message`.
    fn expect(&mut self, byte: u8, message: &'static str) -> Result<(), JsonError> {
        self.skip_whitespace();
        if self.peek() != Some(byte) {
            return Err(self.error(message));
        }
        self.at += 1;
        Ok(())
    }

    fn literal(&mut self, word: &str, value: Value) -> Result<Value, JsonError> {
        if self.rest().starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(self.error("expected a value"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, JsonError> {
        self.skip_whitespace();
        match self.peek() {
            None => Err(self.error("unexpected end of input")),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'"') => self.string().map(Value::String),
            Some(b'-' | b'0'..=b'9') => self.number().map(Value::Number),
            Some(open @ (b'[' | b'{')) => {
                // serde_json's limit: 127 levels of arrays and objects are read, 128 are not.
                if depth + 1 >= MAX_DEPTH {
                    return Err(self.error("nested too deeply"));
                }
                self.at += 1;
                if open == b'[' {
                    self.array(depth)
                } else {
                    self.object(depth)
                }
            }
            Some(_) => Err(self.error("expected a value")),
        }
    }

    /// After `[`.
    fn array(&mut self, depth: usize) -> Result<Value, JsonError> {
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value(depth + 1)?);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.error("expected `,` or `]`")),
            }
        }
    }

    /// After `{`.
    fn object(&mut self, depth: usize) -> Result<Value, JsonError> {
        let mut map = Map::new();
        self.members(depth, &mut |key, value| {
            map.insert(key.into_owned(), value);
        })?;
        Ok(Value::Object(map))
    }

    /// An object's members, after `{`, through its `}`.
    fn members(
        &mut self,
        depth: usize,
        each: &mut dyn FnMut(Cow<'_, str>, Value),
    ) -> Result<(), JsonError> {
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(());
        }
        loop {
            self.skip_whitespace();
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a key"));
            }
            let key = self.text_of_string()?;
            self.expect(b':', "expected `:`")?;
            let value = self.value(depth + 1)?;
            each(key, value);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return Err(self.error("expected `,` or `}`")),
            }
        }
    }

    /// At the opening quote.
    fn string(&mut self) -> Result<String, JsonError> {
        self.text_of_string().map(Cow::into_owned)
    }

    /// At the opening quote: borrowed from the text when it has no escapes.
    fn text_of_string(&mut self) -> Result<Cow<'a, str>, JsonError> {
        self.at += 1;
        let mut out = String::new();
        loop {
            let start = self.at;
            let plain = self.rest().iter();
            self.at += plain
                .take_while(|&&b| b != b'"' && b != b'\\' && b >= 0x20)
                .count();
            // Runs end only at ASCII bytes, so both ends are character boundaries (`get`
            // rather than indexing keeps the panic machinery out of the wasm engine).
            let run = self.text.get(start..self.at).unwrap_or_default();
            match self.peek() {
                None => return Err(self.error("unterminated string")),
                Some(b'"') => {
                    self.at += 1;
                    if out.is_empty() {
                        return Ok(Cow::Borrowed(run));
                    }
                    out.push_str(run);
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    out.push_str(run);
                    self.at += 1;
                    let escaped = self.escape()?;
                    out.push(escaped);
                }
                Some(_) => return Err(self.error("control character in a string")),
            }
        }
    }

    /// After a backslash.
    fn escape(&mut self) -> Result<char, JsonError> {
        let byte = self
            .peek()
            .ok_or_else(|| self.error("unterminated string"))?;
        self.at += 1;
        Ok(match byte {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let first = self.hex4()?;
                let code = match first {
                    0xD800..=0xDBFF => {
                        if !self.rest().starts_with(b"\\u") {
                            return Err(self.error("lone leading surrogate in a \\u escape"));
                        }
                        self.at += 2;
                        let second = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&second) {
                            return Err(self.error("lone leading surrogate in a \\u escape"));
                        }
                        0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
                    }
                    0xDC00..=0xDFFF => {
                        return Err(self.error("lone trailing surrogate in a \\u escape"))
                    }
                    other => other,
                };
                char::from_u32(code).ok_or_else(|| self.error("invalid \\u escape"))?
            }
            _ => return Err(self.error("invalid escape")),
        })
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits = self
            .text
            .get(self.at..self.at + 4)
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.error("invalid \\u escape"))?;
        self.at += 4;
        u32::from_str_radix(digits, 16).map_err(|_| self.error("invalid \\u escape"))
    }

    #[inline(always)]
    fn digits(&mut self) -> usize {
        let count = self
            .rest()
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        self.at += count;
        count
    }

    /// JSON's number grammar, read into the number serde_json would make.
    fn number(&mut self) -> Result<Number, JsonError> {
        let start = self.at;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.at += 1;
        }
        let integer_start = self.at;
        match self.digits() {
            0 => return Err(self.error("invalid number")),
            n if n > 1 && self.text.as_bytes().get(integer_start) == Some(&b'0') => {
                return Err(self.error("invalid number: leading zero"))
            }
            _ => {}
        }
        let mut integral = true;
        if self.peek() == Some(b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
            integral = false;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
            integral = false;
        }
        let text = self.text.get(start..self.at).unwrap_or_default();
        if integral {
            let integer = self.text.as_bytes().get(integer_start..self.at);
            let magnitude = integer.unwrap_or_default().iter().try_fold(0u64, |n, d| {
                n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            });
            if let Some(magnitude) = magnitude {
                if !negative {
                    return Ok(Number::from(magnitude));
                }
                // As serde_json: `-0` and what i64 cannot hold are floats.
                let value = (magnitude as i64).wrapping_neg();
                if value < 0 {
                    return Ok(Number::from(value));
                }
            }
        }
        (self.read_float)(text)
            .and_then(Number::from_f64)
            .ok_or(JsonError {
                offset: start,
                message: "number out of range",
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_kind_of_value() {
        let text = r#" {"a": [1, -2, 3.5, -0, 1e2, true, false, null, "x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"], "b": {}, "c": [], "a2": "é"} "#;
        assert_eq!(
            parse(text).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
    }

    #[test]
    fn refuses_what_is_not_json() {
        for bad in [
            "",
            " ",
            "{",
            "[1,]",
            "{\"a\":1,}",
            "01",
            "-",
            "1.",
            "1e",
            ".5",
            "+1",
            "\"\\x\"",
            "\"a",
            "\"\u{1}\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\\ud800\\u0041\"",
            "nul",
            "true false",
            "{\"a\" 1}",
            "{1:2}",
            "1e400",
            "-1e400",
            "\"\\u12\"",
            "[1 2]",
        ] {
            assert!(parse(bad).is_err(), "accepted {bad:?}");
            assert!(
                serde_json::from_str::<Value>(bad).is_err(),
                "serde_json reads {bad:?}: the test is wrong"
            );
        }
    }

    #[test]
    fn members_are_the_objects_members_in_order() {
        let text = r#"{"a": 1, "b\u0041": {"c": [true]}, "a": null, "": "x"}"#;
        let mut seen = Vec::new();
        read_members(
            text,
            |n| n.parse().ok(),
            |k, v| seen.push((k.into_owned(), v)),
        )
        .unwrap();
        let expect = [
            ("a", Value::from(1)),
            ("bA", serde_json::json!({"c": [true]})),
            ("a", Value::Null),
            ("", Value::from("x")),
        ];
        assert_eq!(seen.len(), expect.len());
        for ((k, v), (ek, ev)) in seen.iter().zip(expect) {
            assert_eq!((k.as_str(), v), (ek, &ev));
        }
        for not_an_object in ["[1]", "1", "\"a\"", "{\"a\":1} 2", "{", ""] {
            assert!(
                read_members(not_an_object, |_| None, |_, _| {}).is_err(),
                "{not_an_object}"
            );
        }
    }

    #[test]
    fn stops_where_serde_json_stops_nesting() {
        let arrays = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let objects = |n: usize| format!("{}1{}", "{\"k\":".repeat(n), "}".repeat(n));
        for n in [1, 126, 127, 128, 129] {
            for text in [arrays(n), objects(n)] {
                assert_eq!(
                    parse(&text).is_ok(),
                    serde_json::from_str::<Value>(&text).is_ok(),
                    "{n}"
                );
            }
        }
        assert!(parse(&arrays(127)).is_ok());
        assert!(parse(&arrays(128)).is_err());
        assert!(parse(&arrays(100_000)).is_err(), "no stack overflow");
    }

    #[test]
    fn numbers_are_the_numbers_serde_json_makes() {
        for text in [
            "0",
            "-0",
            "7",
            "-7",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "1.0",
            "1e0",
            "1E+2",
            "2.5e-3",
            "0.1",
            "123456789012345678901234567890",
            "1.7976931348623157e308",
            "5e-324",
            "2.2250738585072011e-308",
            "0.30000000000000004",
            "9007199254740993",
            "-9007199254740993.0",
            "4.9406564584124654e-324",
            "1e-400",
        ] {
            let ours = parse(text).unwrap();
            let theirs: Value = serde_json::from_str(text).unwrap();
            assert_eq!(ours, theirs, "{text}");
            let (a, b) = (ours.as_number().unwrap(), theirs.as_number().unwrap());
            assert_eq!(
                (a.is_u64(), a.is_i64(), a.is_f64()),
                (b.is_u64(), b.is_i64(), b.is_f64()),
                "{text}"
            );
            assert_eq!(
                a.as_f64().map(f64::to_bits),
                b.as_f64().map(f64::to_bits),
                "{text}"
            );
        }
    }

    /// Seeded random documents (and every truncation and one-byte corruption of some)
    /// read alike by both readers: same value, or both refuse.
    #[test]
    fn json_reader_agrees_with_serde_json() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        fn document(next: &mut dyn FnMut() -> u64, depth: u32) -> String {
            const ATOMS: [&str; 14] = [
                "null",
                "true",
                "false",
                "0",
                "-0",
                "12",
                "-3.25e2",
                "1e21",
                "\"\"",
                "\"a\\u00e9\\\\\"",
                "\"\\ud83d\\ude00\"",
                "0.1",
                "18446744073709551616",
                "\"k\"",
            ];
            match next() % if depth > 3 { 1 } else { 4 } {
                0 => ATOMS[(next() % ATOMS.len() as u64) as usize].to_string(),
                1 => {
                    let items: Vec<String> =
                        (0..next() % 4).map(|_| document(next, depth + 1)).collect();
                    format!("[{}]", items.join(" , "))
                }
                _ => {
                    let items: Vec<String> = (0..next() % 4)
                        .map(|i| format!("\"k{}\" :{}", i % 2, document(next, depth + 1)))
                        .collect();
                    format!("{{ {} }}", items.join(","))
                }
            }
        }
        for round in 0..400 {
            let text = document(&mut next, 0);
            assert_eq!(
                parse(&text).ok(),
                serde_json::from_str::<Value>(&text).ok(),
                "{text}"
            );
            if round % 10 == 0 {
                for cut in 0..text.len() {
                    if let Some(prefix) = text.get(..cut) {
                        assert_eq!(
                            parse(prefix).ok(),
                            serde_json::from_str(prefix).ok(),
                            "{prefix}"
                        );
                    }
                }
                for at in 0..text.len() {
                    for byte in [b'"', b'\\', b',', b'1', b'}', b' ', b'x'] {
                        let mut bytes = text.clone().into_bytes();
                        bytes[at] = byte;
                        if let Ok(changed) = String::from_utf8(bytes) {
                            assert_eq!(
                                parse(&changed).ok(),
                                serde_json::from_str(&changed).ok(),
                                "{changed}"
                            );
                        }
                    }
                }
            }
        }
    }
}
