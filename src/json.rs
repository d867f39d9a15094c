//! JSON (RFC 8259): the strict parser for `POST /signal/<id>` bodies, the
//! [`Value`] tree it builds, the compact writer that re-serialises a value
//! into a Server-Sent Event, and string-literal escaping ([`string`]).
//!
//! Rules that hold:
//!
//! - The parser is sans-io: it takes the whole body as a byte slice and
//!   never panics, whatever the bytes. Errors carry the byte offset.
//! - Strict RFC 8259: one value, then only whitespace (space, tab, CR, LF);
//!   no byte order mark, no comments, no trailing commas, no `NaN`, numbers
//!   by the RFC grammar, raw control characters in strings are errors, the
//!   input must be valid UTF-8.
//! - A `\uXXXX` escape naming a lone surrogate (a high one not followed by
//!   a low one, or a low one on its own) is an error: a Rust `String`
//!   cannot hold it, and replacing it would change the client's data.
//! - Nesting is bounded by [`Limits::max_depth`] (default 64). The parser
//!   keeps its own stack and does not recurse; [`Value::write`] and `Drop`
//!   recurse once per level, so the limit bounds them too. Keep it small.
//! - Numbers are kept as their validated source text and re-emitted as is
//!   (`1.0` stays `1.0`, where JavaScript would print `1`).
//! - Objects keep members in source order, duplicates included;
//!   [`Value::get`] and [`Value::write`] treat the last duplicate as the
//!   winner, as `JSON.parse` does.
//! - Written JSON never contains a raw CR or LF, so it fits on one SSE
//!   `data:` line.

use std::collections::HashMap;
use std::fmt::{self, Write};

/// A parsed JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as its validated source text (re-emitted as is). A value
    /// built by hand must hold valid JSON number text.
    Number(String),
    /// A string, unescaped.
    String(String),
    /// An array.
    Array(Vec<Value>),
    /// An object's members in source order, duplicate keys kept.
    Object(Vec<(String, Value)>),
}

impl Value {
    /// The member named `key` of an object: the last one when the key is
    /// repeated, as `JSON.parse` keeps. `None` for other values.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(members) => members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The text of a string value; `None` for other values.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Appends the value to `out` as compact JSON. A repeated object key is
    /// written once, at the position of its first occurrence and with the
    /// value of its last, like `JSON.stringify(JSON.parse(text))` (which,
    /// unlike this, also moves integer-like keys to the front).
    pub fn write(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(true) => out.push_str("true"),
            Value::Bool(false) => out.push_str("false"),
            Value::Number(text) => out.push_str(text),
            Value::String(s) => write_string(s, out),
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Value::Object(members) => {
                // Index of each key's last occurrence; removing it on first
                // sight writes each key once, in first-occurrence order.
                let mut last: HashMap<&str, usize> = HashMap::with_capacity(members.len());
                for (i, (key, _)) in members.iter().enumerate() {
                    last.insert(key, i);
                }
                out.push('{');
                let mut first = true;
                for (key, _) in members {
                    let Some(winner) = last.remove(key.as_str()) else {
                        continue;
                    };
                    let Some((_, value)) = members.get(winner) else {
                        continue;
                    };
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    write_string(key, out);
                    out.push(':');
                    value.write(out);
                }
                out.push('}');
            }
        }
    }

    /// The value as compact JSON (see [`Value::write`]).
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }
}

/// Bounds on what [`parse`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most arrays and objects nested inside each other (default 64); a
    /// scalar at the top is depth 0, `[]` is depth 1.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_depth: 64 }
    }
}

/// Why a body is not acceptable JSON. Every variant carries `at`, the byte
/// offset in the input where the problem was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonError {
    /// The input starts with a UTF-8 byte order mark.
    Bom {
        /// Byte offset (always 0).
        at: usize,
    },
    /// The input is not valid UTF-8.
    InvalidUtf8 {
        /// Offset of the first invalid byte.
        at: usize,
    },
    /// The input ended inside a value, or held no value at all.
    UnexpectedEnd {
        /// Offset of the end.
        at: usize,
    },
    /// A byte that cannot start or continue the value here.
    UnexpectedByte {
        /// Offset of the byte.
        at: usize,
    },
    /// A raw control character (below U+0020) inside a string.
    ControlChar {
        /// Offset of the character.
        at: usize,
    },
    /// An unknown escape or a malformed `\u` escape.
    BadEscape {
        /// Offset of the backslash.
        at: usize,
    },
    /// A `\u` escape naming a surrogate without its pair.
    LoneSurrogate {
        /// Offset of the backslash.
        at: usize,
    },
    /// A number outside the RFC 8259 grammar.
    BadNumber {
        /// Offset of the offending byte.
        at: usize,
    },
    /// Arrays and objects nested deeper than [`Limits::max_depth`].
    TooDeep {
        /// Offset of the bracket that went too deep.
        at: usize,
    },
    /// Something other than whitespace after the value.
    TrailingData {
        /// Offset of the first extra byte.
        at: usize,
    },
}

impl JsonError {
    /// Byte offset in the input where the problem was found.
    pub fn offset(&self) -> usize {
        match *self {
            JsonError::Bom { at }
            | JsonError::InvalidUtf8 { at }
            | JsonError::UnexpectedEnd { at }
            | JsonError::UnexpectedByte { at }
            | JsonError::ControlChar { at }
            | JsonError::BadEscape { at }
            | JsonError::LoneSurrogate { at }
            | JsonError::BadNumber { at }
            | JsonError::TooDeep { at }
            | JsonError::TrailingData { at } => at,
        }
    }
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            JsonError::Bom { .. } => "byte order mark",
            JsonError::InvalidUtf8 { .. } => "invalid UTF-8",
            JsonError::UnexpectedEnd { .. } => "unexpected end of JSON",
            JsonError::UnexpectedByte { .. } => "unexpected character",
            JsonError::ControlChar { .. } => "raw control character in string",
            JsonError::BadEscape { .. } => "invalid escape",
            JsonError::LoneSurrogate { .. } => "lone surrogate escape",
            JsonError::BadNumber { .. } => "invalid number",
            JsonError::TooDeep { .. } => "JSON nested too deeply",
            JsonError::TrailingData { .. } => "data after the JSON value",
        };
        write!(f, "{what} at byte {}", self.offset())
    }
}

impl std::error::Error for JsonError {}

/// Parses `input` as exactly one JSON value (RFC 8259, strictly).
pub fn parse(input: &[u8], limits: Limits) -> Result<Value, JsonError> {
    if input.starts_with(b"\xEF\xBB\xBF") {
        return Err(JsonError::Bom { at: 0 });
    }
    let text = std::str::from_utf8(input).map_err(|e| JsonError::InvalidUtf8 {
        at: e.valid_up_to(),
    })?;
    Parser {
        text,
        bytes: input,
        pos: 0,
    }
    .document(limits.max_depth)
}

/// An array or object still open: its items so far (and, for an object,
/// the key of the member whose value is being parsed).
enum Frame {
    Array(Vec<Value>),
    Object(Vec<(String, Value)>, String),
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\r' | b'\n') = self.peek() {
            self.pos += 1;
        }
    }

    fn unexpected(&self) -> JsonError {
        match self.peek() {
            None => JsonError::UnexpectedEnd { at: self.pos },
            Some(_) => JsonError::UnexpectedByte { at: self.pos },
        }
    }

    /// The document, without recursion: open containers live on `stack`.
    fn document(&mut self, max_depth: usize) -> Result<Value, JsonError> {
        let mut stack: Vec<Frame> = Vec::new();
        loop {
            // A value starts here.
            self.skip_ws();
            let mut value = match self.peek() {
                Some(open @ (b'[' | b'{')) => {
                    if stack.len() >= max_depth {
                        return Err(JsonError::TooDeep { at: self.pos });
                    }
                    self.pos += 1;
                    self.skip_ws();
                    if open == b'[' {
                        if self.peek() == Some(b']') {
                            self.pos += 1;
                            Value::Array(Vec::new())
                        } else {
                            stack.push(Frame::Array(Vec::new()));
                            continue;
                        }
                    } else if self.peek() == Some(b'}') {
                        self.pos += 1;
                        Value::Object(Vec::new())
                    } else {
                        let key = self.key()?;
                        stack.push(Frame::Object(Vec::new(), key));
                        continue;
                    }
                }
                Some(b'"') => Value::String(self.string()?),
                Some(b't') => self.literal(b"true", Value::Bool(true))?,
                Some(b'f') => self.literal(b"false", Value::Bool(false))?,
                Some(b'n') => self.literal(b"null", Value::Null)?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                _ => return Err(self.unexpected()),
            };
            // The value is complete: hand it to the enclosing container,
            // closing containers for as long as they end here.
            loop {
                let Some(frame) = stack.pop() else {
                    self.skip_ws();
                    if self.pos < self.bytes.len() {
                        return Err(JsonError::TrailingData { at: self.pos });
                    }
                    return Ok(value);
                };
                self.skip_ws();
                match frame {
                    Frame::Array(mut items) => {
                        items.push(value);
                        match self.peek() {
                            Some(b',') => {
                                self.pos += 1;
                                stack.push(Frame::Array(items));
                                break;
                            }
                            Some(b']') => {
                                self.pos += 1;
                                value = Value::Array(items);
                            }
                            _ => return Err(self.unexpected()),
                        }
                    }
                    Frame::Object(mut members, key) => {
                        members.push((key, value));
                        match self.peek() {
                            Some(b',') => {
                                self.pos += 1;
                                self.skip_ws();
                                let key = self.key()?;
                                stack.push(Frame::Object(members, key));
                                break;
                            }
                            Some(b'}') => {
                                self.pos += 1;
                                value = Value::Object(members);
                            }
                            _ => return Err(self.unexpected()),
                        }
                    }
                }
            }
        }
    }

    /// A member name and its colon.
    fn key(&mut self) -> Result<String, JsonError> {
        if self.peek() != Some(b'"') {
            return Err(self.unexpected());
        }
        let key = self.string()?;
        self.skip_ws();
        if self.peek() != Some(b':') {
            return Err(self.unexpected());
        }
        self.pos += 1;
        Ok(key)
    }

    fn literal(&mut self, word: &[u8], value: Value) -> Result<Value, JsonError> {
        for &want in word {
            match self.peek() {
                Some(got) if got == want => self.pos += 1,
                _ => return Err(self.unexpected()),
            }
        }
        Ok(value)
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(JsonError::BadNumber { at: self.pos });
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(JsonError::BadNumber { at: self.pos }),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(JsonError::BadNumber { at: self.pos });
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(JsonError::BadNumber { at: self.pos });
            }
        }
        Ok(Value::Number(self.slice(start, self.pos).to_owned()))
    }

    /// `text[a..b]`; every caller cuts at ASCII bytes, which are always
    /// char boundaries, so the empty fallback is never taken.
    fn slice(&self, a: usize, b: usize) -> &str {
        self.text.get(a..b).unwrap_or_default()
    }

    /// A string literal; `pos` is at its opening quote.
    fn string(&mut self) -> Result<String, JsonError> {
        self.pos += 1;
        let mut out = String::new();
        let mut run = self.pos;
        loop {
            match self.peek() {
                None => return Err(JsonError::UnexpectedEnd { at: self.pos }),
                Some(b'"') => {
                    out.push_str(self.slice(run, self.pos));
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    out.push_str(self.slice(run, self.pos));
                    out.push(self.escape()?);
                    run = self.pos;
                }
                Some(0..=0x1f) => return Err(JsonError::ControlChar { at: self.pos }),
                Some(_) => self.pos += 1,
            }
        }
    }

    /// One escape sequence; `pos` is at its backslash.
    fn escape(&mut self) -> Result<char, JsonError> {
        let at = self.pos;
        self.pos += 1;
        let c = match self.peek() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                self.pos += 1;
                let unit = self.hex4(at)?;
                return match unit {
                    0xD800..=0xDBFF => {
                        if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                            return Err(JsonError::LoneSurrogate { at });
                        }
                        let low_at = self.pos;
                        self.pos += 2;
                        let low = self.hex4(low_at)?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(JsonError::LoneSurrogate { at });
                        }
                        let code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                        char::from_u32(code).ok_or(JsonError::LoneSurrogate { at })
                    }
                    _ => char::from_u32(unit).ok_or(JsonError::LoneSurrogate { at }),
                };
            }
            None => return Err(JsonError::UnexpectedEnd { at: self.pos }),
            Some(_) => return Err(JsonError::BadEscape { at }),
        };
        self.pos += 1;
        Ok(c)
    }

    /// Four hex digits of a `\u` escape that began at `at`.
    fn hex4(&mut self, at: usize) -> Result<u32, JsonError> {
        let mut unit = 0;
        for _ in 0..4 {
            let digit = match self.peek() {
                None => return Err(JsonError::UnexpectedEnd { at: self.pos }),
                Some(b) => (b as char)
                    .to_digit(16)
                    .ok_or(JsonError::BadEscape { at })?,
            };
            unit = unit * 16 + digit;
            self.pos += 1;
        }
        Ok(unit)
    }
}

/// `s` as a JSON string literal, quotes included.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    write_string(s, &mut out);
    out
}

/// Appends `s` to `out` as a JSON string literal, quotes included.
fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // U+2028/2029 are valid JSON but break JavaScript string
            // literals when a page inlines the text.
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::{parse, JsonError, Limits, Value};

    #[test]
    fn escapes() {
        let table = [
            ("plain", "\"plain\""),
            ("a\"b\\c", "\"a\\\"b\\\\c\""),
            ("l1\nl2\r\t", "\"l1\\nl2\\r\\t\""),
            ("\u{1}\u{2028}é", "\"\\u0001\\u2028é\""),
        ];
        for (input, want) in table {
            assert_eq!(super::string(input), want);
        }
    }

    fn json(input: &str) -> Result<String, JsonError> {
        parse(input.as_bytes(), Limits::default()).map(|v| v.to_json())
    }

    #[test]
    fn valid_round_trips() {
        let deep_ok = format!("{}{}", "[".repeat(64), "]".repeat(64));
        let table: &[(&str, &str)] = &[
            ("null", "null"),
            (" true ", "true"),
            ("\t\r\nfalse\n", "false"),
            ("0", "0"),
            ("-0", "-0"),
            ("12345678901234567890123", "12345678901234567890123"),
            ("-1.5e-10", "-1.5e-10"),
            ("1E+2", "1E+2"),
            ("0.0e0", "0.0e0"),
            ("1.0", "1.0"),
            ("\"\"", "\"\""),
            ("\"caf\u{e9} \u{1F600}\"", "\"caf\u{e9} \u{1F600}\""),
            (r#""\u00e9\u4e2D""#, "\"\u{e9}\u{4e2d}\""),
            (r#""\ud83d\ude00""#, "\"\u{1F600}\""),
            (r#""\uDBFF\uDFFF""#, "\"\u{10FFFF}\""),
            (r#""\"\\\/\b\f\n\r\t""#, r#""\"\\/\u0008\u000c\n\r\t""#),
            (r#""\u0000\u001f""#, r#""\u0000\u001f""#),
            (r#""\u2028""#, r#""\u2028""#),
            ("[]", "[]"),
            ("{}", "{}"),
            ("[ 1 , [ 2 , [ ] ] , { } ]", "[1,[2,[]],{}]"),
            (
                r#" { "a" : { "b" : [ true , null , "x" ] } , "c" : -2 } "#,
                r#"{"a":{"b":[true,null,"x"]},"c":-2}"#,
            ),
            (r#"{"a":1,"b":2,"a":3}"#, r#"{"a":3,"b":2}"#),
            (r#"{"a":{"x":1},"a":{"y":2}}"#, r#"{"a":{"y":2}}"#),
            (r#"{"":0}"#, r#"{"":0}"#),
            (&deep_ok, &deep_ok),
        ];
        for &(input, want) in table {
            assert_eq!(json(input).as_deref(), Ok(want), "input {input:?}");
            // The output is itself valid JSON and a fixed point.
            assert_eq!(json(want).as_deref(), Ok(want), "output {want:?}");
        }
    }

    #[test]
    fn invalid_inputs_are_errors_with_offsets() {
        use JsonError::*;
        let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
        let deep_obj = format!("{}1{}", "{\"a\":".repeat(65), "}".repeat(65));
        let table: &[(&[u8], JsonError)] = &[
            (b"", UnexpectedEnd { at: 0 }),
            (b"   ", UnexpectedEnd { at: 3 }),
            (b"\xEF\xBB\xBF{}", Bom { at: 0 }),
            (b"\"\xFF\"", InvalidUtf8 { at: 1 }),
            (b"[\"\xC3\"]", InvalidUtf8 { at: 2 }),
            (b"\"\xED\xA0\x80\"", InvalidUtf8 { at: 1 }),
            (b"[1,]", UnexpectedByte { at: 3 }),
            (b"{\"a\":1,}", UnexpectedByte { at: 7 }),
            (b"[1 2]", UnexpectedByte { at: 3 }),
            (b"01", BadNumber { at: 1 }),
            (b"-01", BadNumber { at: 2 }),
            (b"+1", UnexpectedByte { at: 0 }),
            (b".5", UnexpectedByte { at: 0 }),
            (b"1.", BadNumber { at: 2 }),
            (b"1.e3", BadNumber { at: 2 }),
            (b"1e", BadNumber { at: 2 }),
            (b"1e+", BadNumber { at: 3 }),
            (b"-", BadNumber { at: 1 }),
            (b"NaN", UnexpectedByte { at: 0 }),
            (b"Infinity", UnexpectedByte { at: 0 }),
            (b"tru", UnexpectedEnd { at: 3 }),
            (b"nul1", UnexpectedByte { at: 3 }),
            (b"\"\\ud800\"", LoneSurrogate { at: 1 }),
            (b"\"\\udc00\"", LoneSurrogate { at: 1 }),
            (b"\"\\ud800\\u0041\"", LoneSurrogate { at: 1 }),
            (b"\"\\ud800x\"", LoneSurrogate { at: 1 }),
            (b"\"a\x01\"", ControlChar { at: 2 }),
            (b"\"a\nb\"", ControlChar { at: 2 }),
            (b"\"\\x\"", BadEscape { at: 1 }),
            (b"\"\\u12G4\"", BadEscape { at: 1 }),
            (b"\"\\u12", UnexpectedEnd { at: 5 }),
            (b"\"abc", UnexpectedEnd { at: 4 }),
            (b"\"\\", UnexpectedEnd { at: 2 }),
            (b"[1", UnexpectedEnd { at: 2 }),
            (b"{\"a\"", UnexpectedEnd { at: 4 }),
            (b"{\"a\" 1}", UnexpectedByte { at: 5 }),
            (b"{a:1}", UnexpectedByte { at: 1 }),
            (b"{'a':1}", UnexpectedByte { at: 1 }),
            (b"{} {}", TrailingData { at: 3 }),
            (b"1 2", TrailingData { at: 2 }),
            (b"\"a\"x", TrailingData { at: 3 }),
            (b"\x0c1", UnexpectedByte { at: 0 }),
            (b"1\x00", TrailingData { at: 1 }),
            (b"/*c*/1", UnexpectedByte { at: 0 }),
            (deep.as_bytes(), TooDeep { at: 64 }),
            (deep_obj.as_bytes(), TooDeep { at: 64 * 5 }),
        ];
        for &(input, want) in table {
            let got = parse(input, Limits::default());
            assert_eq!(got, Err(want), "input {:?}", String::from_utf8_lossy(input));
            assert!(!want.to_string().is_empty());
        }
    }

    #[test]
    fn depth_limit_is_configurable() {
        let scalar = Limits { max_depth: 0 };
        assert_eq!(parse(b"1", scalar), Ok(Value::Number("1".into())));
        assert_eq!(parse(b"[]", scalar), Err(JsonError::TooDeep { at: 0 }));
        let two = Limits { max_depth: 2 };
        assert!(parse(b"[{}]", two).is_ok());
        assert_eq!(
            parse(b"[{\"a\":[]}]", two),
            Err(JsonError::TooDeep { at: 6 })
        );
    }

    #[test]
    fn get_takes_the_last_duplicate() {
        let v = parse(br#"{"a":"1","b":2,"a":"3"}"#, Limits::default()).unwrap();
        assert_eq!(v.get("a").and_then(Value::as_str), Some("3"));
        assert_eq!(v.get("b"), Some(&Value::Number("2".into())));
        assert_eq!(v.get("c"), None);
        assert_eq!(Value::Null.get("a"), None);
        assert_eq!(Value::Null.as_str(), None);
    }

    #[test]
    fn koa_signal_json_body() {
        let body = br#"{"data":{"boom":"boom"},"token":"ab"}"#;
        let v = parse(body, Limits::default()).unwrap();
        assert_eq!(v.get("token").and_then(Value::as_str), Some("ab"));
        assert_eq!(v.get("cid"), None);
        let data = v.get("data").unwrap();
        assert_eq!(data.to_json(), r#"{"boom":"boom"}"#);
    }

    #[test]
    fn written_json_has_no_raw_line_breaks() {
        let v = parse(br#"{"a\n":"x\r\n\u2028\u2029y"}"#, Limits::default()).unwrap();
        let out = v.to_json();
        assert!(!out.contains(['\n', '\r', '\u{2028}', '\u{2029}']), "{out}");
        assert_eq!(out, r#"{"a\n":"x\r\n\u2028\u2029y"}"#);
    }

    #[test]
    fn random_input_never_panics() {
        const SEED: u64 = 0x0dd_ba11_c0ff_ee00;
        let mut state = SEED;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"{}[],:\"\\u0123456789abcdefEe+-.tnlrs \t\n\xc3\xa9\xed\xff";
        let seeds: &[&[u8]] = &[
            br#"{"data":{"boom":"boom"},"token":"ab"}"#,
            br#"[1,-2.5e+3,0,{"a":[true,false,null]},"\ud83d\ude00\n\u00e9"]"#,
            br#"{"a":{"a":{"a":[[[[]]]]}},"b":"x","a":1}"#,
        ];
        let limits = Limits { max_depth: 6 };
        let mut parsed = 0u32;
        for case in 0..20_000u32 {
            let mut input: Vec<u8> = if case % 2 == 0 {
                let len = (next() % 48) as usize;
                (0..len)
                    .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                    .collect()
            } else {
                seeds[(next() % seeds.len() as u64) as usize].to_vec()
            };
            for _ in 0..(next() % 6) {
                let byte = if next() % 2 == 0 {
                    alphabet[(next() % alphabet.len() as u64) as usize]
                } else {
                    next() as u8
                };
                let at = (next() % (input.len() as u64 + 1)) as usize;
                match next() % 3 {
                    0 => input.insert(at, byte),
                    1 if at < input.len() => input[at] = byte,
                    _ if at < input.len() => {
                        input.remove(at);
                    }
                    _ => {}
                }
            }
            let outcome = std::panic::catch_unwind(|| parse(&input, limits));
            let Ok(result) = outcome else {
                panic!("seed {SEED:#x} case {case}: panic on {input:?}");
            };
            match result {
                Ok(value) => {
                    parsed += 1;
                    // What parses re-parses from its own output unchanged.
                    let text = value.to_json();
                    let again = parse(text.as_bytes(), limits).map(|v| v.to_json());
                    assert_eq!(again.as_ref(), Ok(&text), "seed {SEED:#x} case {case}");
                }
                Err(e) => assert!(e.offset() <= input.len(), "seed {SEED:#x} case {case}"),
            }
        }
        // The mutations must leave enough valid inputs to test the writer.
        assert!(parsed > 1000, "only {parsed} inputs parsed");
    }
}
