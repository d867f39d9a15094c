//! Streaming `multipart/form-data` scanner (RFC 7578 / RFC 2046 §5.1) that
//! extracts the payload of one part, plus the RFC 6266
//! `Content-Disposition` value the relay gives the receiver.
//!
//! Which part: the first part with a filename ([`MultipartScanner::new`],
//! what ephemeral sockets forward), or the first part of any kind, a form's
//! text field included, a file input left empty skipped
//! ([`MultipartScanner::first_part`], what named pipes
//! forward).
//!
//! Invariants:
//! - Sans-io and panic-free on any input; payload is handed to a sink as
//!   slices of the caller's input (or of the known delimiter), never copied
//!   into a growing buffer.
//! - The payload is exactly the bytes between the file part's header block
//!   and the next `CRLF--boundary`, whatever the feed splits are. Bytes that
//!   may begin a delimiter are held back (at most the delimiter length minus
//!   one, ≤ [`MultipartScanner::MAX_HELD`]) and released once they prove not
//!   to be one. They are held as a match count, since they can only equal a
//!   prefix of the delimiter.
//! - A part's header block is buffered while it is parsed, capped at
//!   [`MAX_HEADER_BLOCK`] bytes (counted separately from `MAX_HELD`).
//! - The boundary holds only RFC 2046 bchars (no CR or LF), so a partial
//!   delimiter match never overlaps a later one; the scanner relies on this
//!   and refuses other boundaries.
//! - The body is read as if preceded by CRLF, so a first delimiter at the
//!   very start of the body is found like any other. A bare-LF delimiter is
//!   not accepted anywhere (curl and browsers always send CRLF).
//! - Once an error is returned, every later call returns the same error.

use std::fmt;

/// Longest boundary RFC 2046 allows.
pub const MAX_BOUNDARY_LEN: usize = 70;

/// Largest part header block (including its closing CRLFCRLF).
pub const MAX_HEADER_BLOCK: usize = 8 * 1024;

/// `CRLF--` before the boundary.
const DELIM_PREFIX: &[u8] = b"\r\n--";

/// Why a multipart body was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultipartError {
    /// The boundary is empty, too long or holds characters RFC 2046 forbids.
    BadBoundary,
    /// The body has no part with a filename.
    NoFilePart,
    /// The body has no part at all (the first-part mode).
    NoPart,
    /// The body ended before the file part's closing delimiter.
    Truncated,
    /// A part's header block is larger than [`MAX_HEADER_BLOCK`].
    HeadersTooLarge,
    /// The body breaks multipart syntax; the text says where.
    Malformed(&'static str),
}

impl fmt::Display for MultipartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadBoundary => f.write_str("The multipart boundary is invalid."),
            Self::NoFilePart => f.write_str("The multipart body has no file part."),
            Self::NoPart => f.write_str("The multipart body has no part."),
            Self::Truncated => f.write_str("The multipart body ended inside the file part."),
            Self::HeadersTooLarge => f.write_str("A multipart part's headers are too large."),
            Self::Malformed(what) => write!(f, "The multipart body is malformed: {what}."),
        }
    }
}

impl std::error::Error for MultipartError {}

/// What the forwarded part says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartInfo {
    /// The filename without directory components (`filename*` wins over
    /// `filename`); `None` when empty or absent (a text field). Not otherwise
    /// sanitised: put it in a header only through
    /// [`content_disposition_attachment`].
    pub filename: Option<String>,
    /// The part's `Content-Type`, trimmed; `None` when absent or when it holds
    /// anything but printable ASCII, SP and HTAB.
    pub content_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Looking for a delimiter; `emit` is true inside the file part's body.
    Scan {
        emit: bool,
    },
    /// Right after a delimiter: `--` closes, else padding and CRLF.
    AfterDelim,
    CloseDash,
    Padding,
    PaddingLf,
    Headers,
    Done,
    Failed(MultipartError),
}

/// Incremental scanner that passes the first file part's payload to a sink.
#[derive(Debug)]
pub struct MultipartScanner {
    /// `CRLF--boundary`.
    delim: Vec<u8>,
    /// Delimiter bytes matched at the end of the input seen so far.
    matched: usize,
    state: State,
    /// The header block being read; at most [`MAX_HEADER_BLOCK`] bytes.
    headers: Vec<u8>,
    file: Option<PartInfo>,
    /// Forward the first part of any kind, not only a file part.
    any_part: bool,
}

/// RFC 2046 bchars, minus the rule about a trailing space (checked apart).
fn is_bchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&b)
}

fn valid_boundary(b: &str) -> bool {
    (1..=MAX_BOUNDARY_LEN).contains(&b.len()) && b.bytes().all(is_bchar) && !b.ends_with(' ')
}

impl MultipartScanner {
    /// Most bytes held back between calls: the delimiter `CRLF--boundary`
    /// minus its last byte, for the longest boundary, rounded up by one. A
    /// call emits at most `input.len() + MAX_HELD` payload bytes.
    pub const MAX_HELD: usize = DELIM_PREFIX.len() + MAX_BOUNDARY_LEN;

    /// A scanner that forwards the first part with a filename; parts
    /// before it are skipped. `boundary` is without the leading `--`; an
    /// invalid one makes every [`feed`](Self::feed) fail with `BadBoundary`.
    pub fn new(boundary: &str) -> Self {
        Self::with_mode(boundary, false)
    }

    /// A scanner that forwards the first part, whatever it is (a form's
    /// text field as well as a file).
    pub fn first_part(boundary: &str) -> Self {
        Self::with_mode(boundary, true)
    }

    fn with_mode(boundary: &str, any_part: bool) -> Self {
        let state = if valid_boundary(boundary) {
            State::Scan { emit: false }
        } else {
            State::Failed(MultipartError::BadBoundary)
        };
        let mut delim = DELIM_PREFIX.to_vec();
        delim.extend_from_slice(boundary.as_bytes());
        Self {
            delim,
            // The body reads as if preceded by CRLF, so `--boundary` at its
            // very start is a delimiter.
            matched: 2,
            state,
            headers: Vec::new(),
            file: None,
            any_part,
        }
    }

    /// The forwarded part's info, available once its header block is parsed and
    /// before any of its payload reaches the sink.
    pub fn file_part(&self) -> Option<&PartInfo> {
        self.file.as_ref()
    }

    /// Feed the next body bytes (the whole body, in order, in any split).
    /// Payload bytes of the file part are passed to `sink` in order (possibly
    /// in several calls per feed). Returns `Ok(true)` once the file part's
    /// closing delimiter has been seen (everything after it is to be read and
    /// discarded by the caller; further feeds ignore input and return
    /// `Ok(true)`). A closing delimiter before any file part is `NoFilePart`
    /// (`NoPart` in the first-part mode).
    pub fn feed(
        &mut self,
        input: &[u8],
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<bool, MultipartError> {
        match &self.state {
            State::Done => return Ok(true),
            State::Failed(e) => return Err(e.clone()),
            _ => {}
        }
        match self.run(input, sink) {
            Ok(done) => Ok(done),
            Err(e) => {
                self.state = State::Failed(e.clone());
                self.headers = Vec::new();
                Err(e)
            }
        }
    }

    /// Call at end of body: `Ok(())` if the file part completed; otherwise
    /// `Truncated` when the file part had begun, `NoFilePart` when it had not,
    /// or the error an earlier feed returned.
    pub fn finish(&self) -> Result<(), MultipartError> {
        match &self.state {
            State::Done => Ok(()),
            State::Failed(e) => Err(e.clone()),
            _ if self.file.is_some() => Err(MultipartError::Truncated),
            _ => Err(self.missing()),
        }
    }

    fn missing(&self) -> MultipartError {
        if self.any_part {
            MultipartError::NoPart
        } else {
            MultipartError::NoFilePart
        }
    }

    fn run(&mut self, input: &[u8], sink: &mut dyn FnMut(&[u8])) -> Result<bool, MultipartError> {
        use MultipartError::Malformed;
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Scan { emit } => {
                    let (used, found) = self.scan(&input[i..], emit, sink);
                    i += used;
                    if found {
                        if emit {
                            self.state = State::Done;
                            return Ok(true);
                        }
                        self.state = State::AfterDelim;
                    }
                    continue;
                }
                State::AfterDelim => {
                    self.state = match input[i] {
                        b'-' => State::CloseDash,
                        b' ' | b'\t' => State::Padding,
                        b'\r' => State::PaddingLf,
                        _ => return Err(Malformed("unexpected byte after a boundary")),
                    }
                }
                State::CloseDash => {
                    return Err(if input[i] == b'-' {
                        self.missing()
                    } else {
                        Malformed("unexpected byte after a boundary")
                    });
                }
                State::Padding => match input[i] {
                    b' ' | b'\t' => {}
                    b'\r' => self.state = State::PaddingLf,
                    _ => return Err(Malformed("unexpected byte after a boundary")),
                },
                State::PaddingLf => {
                    if input[i] != b'\n' {
                        return Err(Malformed("boundary line not ended by CRLF"));
                    }
                    self.headers.clear();
                    self.state = State::Headers;
                }
                State::Headers => {
                    let (used, complete) = self.take_headers(&input[i..])?;
                    i += used;
                    if complete {
                        let (info, is_file) = parse_part_headers(&self.headers)?;
                        self.headers = Vec::new();
                        self.matched = 0;
                        // In first-part mode a part with an empty filename is a
                        // form's file input left empty (RFC 7578 §4.2): skipped,
                        // so one form can send either its file or its text.
                        let emit = if self.any_part {
                            !(is_file && info.filename.is_none())
                        } else {
                            is_file
                        };
                        if emit {
                            self.file = Some(info);
                        }
                        self.state = State::Scan { emit };
                    }
                    continue;
                }
                // `feed` returns before running in these states.
                State::Done => return Ok(true),
                State::Failed(ref e) => return Err(e.clone()),
            }
            i += 1;
        }
        Ok(self.state == State::Done)
    }

    /// Append header bytes until the block ends; returns bytes used and
    /// whether the block is complete.
    fn take_headers(&mut self, input: &[u8]) -> Result<(usize, bool), MultipartError> {
        for (k, &b) in input.iter().enumerate() {
            if self.headers.len() == MAX_HEADER_BLOCK {
                return Err(MultipartError::HeadersTooLarge);
            }
            self.headers.push(b);
            // A part with no headers at all has just the empty line.
            if self.headers == b"\r\n" || self.headers.ends_with(b"\r\n\r\n") {
                return Ok((k + 1, true));
            }
        }
        Ok((input.len(), false))
    }

    /// Scan for the delimiter, passing non-delimiter bytes to `sink` when
    /// `emit`. Returns bytes used and whether a delimiter was completed.
    fn scan(&mut self, input: &[u8], emit: bool, sink: &mut dyn FnMut(&[u8])) -> (usize, bool) {
        let mut i = 0;
        loop {
            if self.matched == 0 {
                match input[i..].iter().position(|&b| b == b'\r') {
                    None => {
                        if emit && i < input.len() {
                            sink(&input[i..]);
                        }
                        return (input.len(), false);
                    }
                    Some(off) => {
                        if emit && off > 0 {
                            sink(&input[i..i + off]);
                        }
                        i += off + 1;
                        self.matched = 1;
                    }
                }
            }
            while i < input.len()
                && self.matched < self.delim.len()
                && input[i] == self.delim[self.matched]
            {
                self.matched += 1;
                i += 1;
            }
            if self.matched == self.delim.len() {
                self.matched = 0;
                return (i, true);
            }
            if i == input.len() {
                return (i, false);
            }
            // Not a delimiter. The held bytes equal a delimiter prefix that
            // cannot overlap another match (no CR in the boundary), so they
            // are released as they are and the mismatching byte is looked at
            // afresh.
            if emit {
                sink(&self.delim[..self.matched]);
            }
            self.matched = 0;
        }
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn skip_ows(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_ows(b[i]) {
        i += 1;
    }
    i
}

/// A parsed `value; name=value; ...` header: its leading value and its
/// parameters, names lower-cased, quoted strings unescaped. `None` when the
/// syntax is broken.
type Params<'a> = (&'a str, Vec<(String, String)>);

fn parse_params(s: &str) -> Option<Params<'_>> {
    let b = s.as_bytes();
    let mut i = skip_ows(b, 0);
    let start = i;
    while i < b.len() && b[i] != b';' && !is_ows(b[i]) {
        i += 1;
    }
    let head = &s[start..i];
    if head.is_empty() {
        return None;
    }
    let mut params = Vec::new();
    loop {
        i = skip_ows(b, i);
        if i == b.len() {
            return Some((head, params));
        }
        if b[i] != b';' {
            return None;
        }
        i = skip_ows(b, i + 1);
        // Tolerate empty parameters (`;;` or a trailing `;`).
        if i == b.len() || b[i] == b';' {
            continue;
        }
        let name_start = i;
        while i < b.len() && is_tchar(b[i]) {
            i += 1;
        }
        if i == name_start {
            return None;
        }
        let name = s[name_start..i].to_ascii_lowercase();
        i = skip_ows(b, i);
        if i == b.len() || b[i] != b'=' {
            return None;
        }
        i = skip_ows(b, i + 1);
        let value = if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut v = String::new();
            let mut seg = i;
            let mut closed = false;
            while i < b.len() {
                match b[i] {
                    b'"' => {
                        v.push_str(&s[seg..i]);
                        i += 1;
                        closed = true;
                        break;
                    }
                    b'\\' if i + 1 < b.len() => {
                        v.push_str(&s[seg..i]);
                        let ch = s[i + 1..].chars().next()?;
                        v.push(ch);
                        i += 1 + ch.len_utf8();
                        seg = i;
                    }
                    _ => i += 1,
                }
            }
            if !closed {
                return None;
            }
            v
        } else {
            // Lenient token: browsers have sent unquoted values with
            // non-tchar bytes, and nothing here depends on the token grammar.
            let vs = i;
            while i < b.len() && b[i] != b';' && !is_ows(b[i]) {
                i += 1;
            }
            s[vs..i].to_string()
        };
        params.push((name, value));
    }
}

fn param<'p>(params: &'p [(String, String)], name: &str) -> Option<&'p str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The boundary of a `multipart/form-data` Content-Type: case-insensitive
/// type and parameter name, quoted or token value, 1..=70 RFC 2046 bchars,
/// not ending in a space. Anything else gives `None`.
pub fn boundary_from_content_type(content_type: &str) -> Option<String> {
    let (ty, params) = parse_params(content_type)?;
    if !ty.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    let b = param(&params, "boundary")?;
    valid_boundary(b).then(|| b.to_string())
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = hex_digit(*b.get(i + 1)?)?;
            let lo = hex_digit(*b.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Decode an RFC 8187 (5987) ext-value `charset'lang'pct-encoded`; UTF-8 and
/// ISO-8859-1 only. `None` makes the caller fall back to plain `filename`.
fn decode_ext_value(v: &str) -> Option<String> {
    let mut it = v.splitn(3, '\'');
    let charset = it.next()?;
    let _language = it.next()?;
    let bytes = percent_decode(it.next()?)?;
    if charset.eq_ignore_ascii_case("utf-8") {
        String::from_utf8(bytes).ok()
    } else if charset.eq_ignore_ascii_case("iso-8859-1") {
        Some(bytes.iter().map(|&b| char::from(b)).collect())
    } else {
        None
    }
}

/// Parse a part's header block (ending in CRLFCRLF, or just CRLF when
/// empty): what it says of itself, and whether it is a file part (its
/// `Content-Disposition` has a `filename` or `filename*`).
fn parse_part_headers(block: &[u8]) -> Result<(PartInfo, bool), MultipartError> {
    use MultipartError::Malformed;
    let body = block.strip_suffix(b"\r\n\r\n").unwrap_or(&[]);
    let mut disposition = None;
    let mut content_type = None;
    let mut rest = body;
    while !rest.is_empty() {
        let (line, next) = match rest.windows(2).position(|w| w == b"\r\n") {
            Some(p) => (&rest[..p], &rest[p + 2..]),
            None => (rest, &[][..]),
        };
        rest = next;
        if line.contains(&b'\r') || line.contains(&b'\n') {
            return Err(Malformed("bare CR or LF in part headers"));
        }
        // The block ends at its first empty line, so one here means a bug
        // upstream; refuse rather than guess.
        let Some(&first) = line.first() else {
            return Err(Malformed("empty line in part headers"));
        };
        if is_ows(first) {
            return Err(Malformed("folded part header"));
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(Malformed("part header without a colon"))?;
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(Malformed("bad part header name"));
        }
        if name.eq_ignore_ascii_case(b"content-disposition") {
            disposition.get_or_insert(value);
        } else if name.eq_ignore_ascii_case(b"content-type") {
            content_type.get_or_insert(value);
        }
    }
    let content_type = content_type
        .map(|v| v.trim_ascii())
        .filter(|v| !v.is_empty() && v.iter().all(|&b| (0x20..0x7f).contains(&b) || b == b'\t'))
        .map(|v| String::from_utf8_lossy(v).into_owned());
    let field = PartInfo {
        filename: None,
        content_type: content_type.clone(),
    };
    let Some(disposition) = disposition else {
        return Ok((field, false));
    };
    let disposition = String::from_utf8_lossy(disposition);
    let (_, params) =
        parse_params(&disposition).ok_or(Malformed("bad Content-Disposition in a part"))?;
    let plain = param(&params, "filename");
    let extended = param(&params, "filename*");
    if plain.is_none() && extended.is_none() {
        return Ok((field, false));
    }
    let name = extended
        .and_then(decode_ext_value)
        .or_else(|| plain.map(str::to_string))
        .unwrap_or_default();
    // Clients may send a path; only its last component is the name.
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    Ok((
        PartInfo {
            filename: (!base.is_empty()).then(|| base.to_string()),
            content_type,
        },
        true,
    ))
}

/// RFC 5987 attr-char: the bytes `filename*` may carry unencoded.
fn is_attr_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b)
}

/// An RFC 6266 `Content-Disposition` value for `filename`:
/// `attachment; filename="<fallback>"` plus `; filename*=UTF-8''<pct>` when
/// the name is not plain printable ASCII or holds `%` (which some browsers
/// would percent-decode in the plain form). The fallback turns non-ASCII and
/// control characters into `_` and backslash-escapes `"` and `\`; the
/// extended form percent-encodes every UTF-8 byte outside attr-char.
pub fn content_disposition_attachment(filename: &str) -> String {
    let mut out = String::from("attachment; filename=\"");
    let mut plain = true;
    for c in filename.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '%' => {
                plain = false;
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => {
                plain = false;
                out.push('_');
            }
        }
    }
    out.push('"');
    if !plain {
        out.push_str("; filename*=UTF-8''");
        for &b in filename.as_bytes() {
            if is_attr_char(b) {
                out.push(char::from(b));
            } else {
                out.push('%');
                out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
                out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 0xf)]));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    type Outcome = (Result<bool, MultipartError>, Vec<u8>, Option<PartInfo>);

    /// Feed `parts` in order, checking the per-call emission bound and that
    /// the part info is known whenever payload has been emitted.
    fn run_parts(boundary: &str, parts: &[&[u8]]) -> Outcome {
        let mut sc = MultipartScanner::new(boundary);
        let mut out = Vec::new();
        let mut last = Ok(false);
        for part in parts {
            let before = out.len();
            let mut sink = |s: &[u8]| out.extend_from_slice(s);
            last = sc.feed(part, &mut sink);
            assert!(out.len() - before <= part.len() + MultipartScanner::MAX_HELD);
            if !out.is_empty() {
                assert!(sc.file_part().is_some(), "payload before part info");
            }
            if last.is_err() {
                break;
            }
        }
        if last == Ok(true) {
            assert_eq!(sc.finish(), Ok(()));
            assert_eq!(
                sc.feed(b"trailing junk", &mut |_| panic!("emitted after done")),
                Ok(true)
            );
        }
        (last, out, sc.file_part().cloned())
    }

    fn info(filename: Option<&str>, content_type: Option<&str>) -> PartInfo {
        PartInfo {
            filename: filename.map(str::to_string),
            content_type: content_type.map(str::to_string),
        }
    }

    fn valid_cases() -> Vec<(&'static str, Vec<u8>, Vec<u8>, PartInfo)> {
        let binary: Vec<u8> = (0..=255u8)
            .chain(b"\r\n\r\r\n\n-".iter().copied())
            .collect();
        vec![
            (
                // curl -F style.
                "------------------------d74496d66958873e",
                b"--------------------------d74496d66958873e\r\n\
                  Content-Disposition: form-data; name=\"file\"; filename=\"hello.txt\"\r\n\
                  Content-Type: text/plain\r\n\r\n\
                  hello world\n\r\n\
                  --------------------------d74496d66958873e--\r\n"
                    .to_vec(),
                b"hello world\n".to_vec(),
                info(Some("hello.txt"), Some("text/plain")),
            ),
            (
                // Browser style: preamble, a text field first, then the file.
                "----WebKitFormBoundary7MA4YWxkTrZu0gW",
                b"This is a preamble.\r\n\
                  ------WebKitFormBoundary7MA4YWxkTrZu0gW\r\n\
                  Content-Disposition: form-data; name=\"note\"\r\n\r\n\
                  not the file\r\n\
                  ------WebKitFormBoundary7MA4YWxkTrZu0gW  \r\n\
                  content-type: image/png\r\n\
                  CONTENT-DISPOSITION: form-data; name=\"up\"; filename=\"C:\\\\Users\\\\me\\\\p\\\"q.png\"\r\n\r\n\
                  \x89PNG\r\n\
                  ------WebKitFormBoundary7MA4YWxkTrZu0gW\r\n\
                  Content-Disposition: form-data; name=\"other\"; filename=\"second.bin\"\r\n\r\n\
                  ignored\r\n\
                  ------WebKitFormBoundary7MA4YWxkTrZu0gW--\r\n"
                    .to_vec(),
                b"\x89PNG".to_vec(),
                info(Some("p\"q.png"), Some("image/png")),
            ),
            (
                // Payload holding every proper prefix of the delimiter.
                "abc",
                b"--abc\r\nContent-Disposition: form-data; name=f; filename=x\r\n\r\n\
                  \r\r\n\r\n-\r\n--\r\n--a\r\n--ab\r\n--abd--abc\r\n--abc--"
                    .to_vec(),
                b"\r\r\n\r\n-\r\n--\r\n--a\r\n--ab\r\n--abd--abc".to_vec(),
                info(Some("x"), None),
            ),
            (
                // filename* wins, directory parts stripped; two text fields first.
                "b",
                b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n\
                  --b\r\n\r\nno headers at all\r\n\
                  --b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"euro.txt\"; \
                  filename*=UTF-8''dir%2F%E2%82%AC.txt\r\n\r\n\r\n--b--"
                    .to_vec(),
                b"".to_vec(),
                info(Some("€.txt"), None),
            ),
            (
                "xyz",
                [
                    b"--xyz\r\nContent-Disposition: form-data; name=\"bin\"; filename=\"b\"\r\n\
                      Content-Type: application/octet-stream\r\n\r\n"
                        .as_slice(),
                    &binary,
                    b"\r\n--xyz--\r\n",
                ]
                .concat(),
                binary.clone(),
                info(Some("b"), Some("application/octet-stream")),
            ),
        ]
    }

    #[test]
    fn file_part_is_the_same_at_every_split() {
        for (boundary, body, payload, want) in valid_cases() {
            let whole = run_parts(boundary, &[&body]);
            assert_eq!(
                whole,
                (Ok(true), payload.clone(), Some(want.clone())),
                "{boundary}"
            );
            for k in 0..=body.len() {
                let (x, y) = body.split_at(k);
                assert_eq!(run_parts(boundary, &[x, y]), whole, "{boundary} split {k}");
            }
            let bytes: Vec<&[u8]> = body.chunks(1).collect();
            assert_eq!(run_parts(boundary, &bytes), whole, "{boundary} bytewise");
        }
    }

    #[test]
    fn first_part_mode_skips_a_file_input_left_empty() {
        // A form with a file input (no file chosen) before its textarea.
        let body = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n\r\n\
                     --b\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\n\
                     hello\r\n--b--\r\n";
        let mut sc = MultipartScanner::first_part("b");
        let mut out = Vec::new();
        assert_eq!(sc.feed(body, &mut |b| out.extend_from_slice(b)), Ok(true));
        assert_eq!(out, b"hello");
        assert_eq!(sc.file_part().and_then(|p| p.filename.clone()), None);
    }

    #[test]
    fn first_part_mode_forwards_a_text_field_at_every_split() {
        // What `curl -F input_data=hello` and a browser form's text field send.
        let body = b"--b\r\nContent-Disposition: form-data; name=\"input_data\"\r\n\r\n\
                     hello\r\n--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\n\
                     file\r\n--b--\r\n";
        let run = |pieces: &[&[u8]]| {
            let mut sc = MultipartScanner::first_part("b");
            let mut out = Vec::new();
            let mut last = Ok(false);
            for p in pieces {
                last = sc.feed(p, &mut |s: &[u8]| out.extend_from_slice(s));
            }
            (last, out, sc.file_part().cloned(), sc.finish())
        };
        let whole = run(&[body]);
        assert_eq!(
            whole,
            (Ok(true), b"hello".to_vec(), Some(info(None, None)), Ok(()))
        );
        for k in 0..=body.len() {
            let (x, y) = body.split_at(k);
            assert_eq!(run(&[x, y]), whole, "split {k}");
        }
        // A file part first is forwarded as in the file mode, type included.
        let file_first = b"--b\r\nContent-Disposition: form-data; name=f; filename=a.txt\r\n\
                           Content-Type: text/csv\r\n\r\nx,y\r\n--b--";
        assert_eq!(
            run(&[file_first]),
            (
                Ok(true),
                b"x,y".to_vec(),
                Some(info(Some("a.txt"), Some("text/csv"))),
                Ok(())
            )
        );
        // No part at all: its own error, in feed and in finish.
        let (last, out, part, fin) = run(&[b"--b--\r\n"]);
        assert_eq!(
            (last, out, part),
            (Err(MultipartError::NoPart), vec![], None)
        );
        assert_eq!(fin, Err(MultipartError::NoPart));
        let (_, _, _, fin) = run(&[b"preamble only"]);
        assert_eq!(fin, Err(MultipartError::NoPart));
        // The file mode skips the text field and forwards the file.
        assert_eq!(
            run_parts("b", &[body]),
            (Ok(true), b"file".to_vec(), Some(info(Some("x"), None)))
        );
    }

    #[test]
    fn invalid_bodies_are_rejected() {
        use MultipartError as E;
        let cd = "Content-Disposition: form-data; name=f; filename=a";
        let big = format!("--b\r\nX-Big: {}\r\n\r\n", "v".repeat(MAX_HEADER_BLOCK));
        let long = "x".repeat(71);
        let cases: Vec<(&str, String, MultipartError)> = vec![
            ("", String::new(), E::BadBoundary),
            ("a\rb", String::new(), E::BadBoundary),
            ("trailing ", String::new(), E::BadBoundary),
            (&long, String::new(), E::BadBoundary),
            (
                "b",
                "--b\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--b--".into(),
                E::NoFilePart,
            ),
            ("b", "--b--\r\n".into(), E::NoFilePart),
            ("b", big, E::HeadersTooLarge),
            (
                "b",
                "--bX\r\n".into(),
                E::Malformed("unexpected byte after a boundary"),
            ),
            (
                "b",
                "--b-x".into(),
                E::Malformed("unexpected byte after a boundary"),
            ),
            (
                "b",
                "--b \tx".into(),
                E::Malformed("unexpected byte after a boundary"),
            ),
            (
                "b",
                "--b\rx".into(),
                E::Malformed("boundary line not ended by CRLF"),
            ),
            (
                "b",
                format!("--b\r\n{cd}\nX: y\r\n\r\n"),
                E::Malformed("bare CR or LF in part headers"),
            ),
            (
                "b",
                format!("--b\r\nX: a\rb\r\n{cd}\r\n\r\n"),
                E::Malformed("bare CR or LF in part headers"),
            ),
            (
                "b",
                format!("--b\r\n{cd}\r\n folded\r\n\r\n"),
                E::Malformed("folded part header"),
            ),
            (
                "b",
                format!("--b\r\n{cd}\r\nnocolon\r\n\r\n"),
                E::Malformed("part header without a colon"),
            ),
            (
                "b",
                format!("--b\r\n{cd}\r\nBad Name: v\r\n\r\n"),
                E::Malformed("bad part header name"),
            ),
            (
                "b",
                "--b\r\nContent-Disposition: form-data; filename=\"open\r\n\r\n".into(),
                E::Malformed("bad Content-Disposition in a part"),
            ),
            (
                "b",
                "--b\r\nContent-Disposition: ; x\r\n\r\n".into(),
                E::Malformed("bad Content-Disposition in a part"),
            ),
        ];
        for (boundary, body, want) in &cases {
            let (got, out, _) = run_parts(boundary, &[body.as_bytes()]);
            assert_eq!(got, Err(want.clone()), "{boundary:?} {body:?}");
            assert!(out.is_empty());
            let bytes: Vec<&[u8]> = body.as_bytes().chunks(1).collect();
            let (got, _, _) = run_parts(boundary, &bytes);
            // An empty body never reaches the boundary check.
            if !body.is_empty() {
                assert_eq!(got, Err(want.clone()), "bytewise {boundary:?} {body:?}");
            }
        }
    }

    #[test]
    fn errors_are_sticky_and_finish_reports_them() {
        let mut sc = MultipartScanner::new("b");
        assert!(sc.feed(b"--bX", &mut |_| {}).is_err());
        let again = sc.feed(b"\r\n", &mut |_| {});
        assert_eq!(
            again,
            Err(MultipartError::Malformed(
                "unexpected byte after a boundary"
            ))
        );
        assert_eq!(sc.finish(), again.map(|_| ()));
    }

    #[test]
    fn finish_distinguishes_truncated_from_missing() {
        let table: &[(&[u8], MultipartError)] = &[
            (b"", MultipartError::NoFilePart),
            (b"preamble only", MultipartError::NoFilePart),
            (
                b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\nval",
                MultipartError::NoFilePart,
            ),
            (
                b"--b\r\nContent-Disposition: form-data; filename=a\r\n",
                MultipartError::NoFilePart,
            ),
            (
                b"--b\r\nContent-Disposition: form-data; filename=a\r\n\r\nda",
                MultipartError::Truncated,
            ),
            (
                b"--b\r\nContent-Disposition: form-data; filename=a\r\n\r\nda\r\n--",
                MultipartError::Truncated,
            ),
        ];
        for (body, want) in table {
            let mut sc = MultipartScanner::new("b");
            assert_eq!(sc.feed(body, &mut |_| {}), Ok(false), "{body:?}");
            assert_eq!(sc.finish(), Err(want.clone()), "{body:?}");
        }
    }

    #[test]
    fn held_bytes_are_released_on_mismatch() {
        let mut sc = MultipartScanner::new("bound");
        let mut out = Vec::new();
        let head = b"--bound\r\nContent-Disposition: form-data; filename=f\r\n\r\nab\r\n--bou";
        assert_eq!(sc.feed(head, &mut |s| out.extend_from_slice(s)), Ok(false));
        assert_eq!(out, b"ab");
        assert_eq!(sc.feed(b"X", &mut |s| out.extend_from_slice(s)), Ok(false));
        assert_eq!(out, b"ab\r\n--bouX");
    }

    #[test]
    fn boundary_from_content_type_table() {
        let long = "x".repeat(70);
        let too_long = format!("multipart/form-data; boundary={}", "x".repeat(71));
        let ok_long = format!("multipart/form-data; boundary={long}");
        let table: &[(&str, Option<&str>)] = &[
            ("multipart/form-data; boundary=abc", Some("abc")),
            ("Multipart/Form-Data;BOUNDARY=abc", Some("abc")),
            (
                "multipart/form-data; charset=utf-8; boundary=\"a b:c\"",
                Some("a b:c"),
            ),
            ("multipart/form-data ; boundary = \"q\\\"\" ", None),
            (
                "multipart/form-data; boundary=----WebKitFormBoundaryX",
                Some("----WebKitFormBoundaryX"),
            ),
            (&ok_long, Some(&long)),
            (&too_long, None),
            ("multipart/form-data; boundary=\"\"", None),
            ("multipart/form-data; boundary=\"ends \"", None),
            ("multipart/form-data; boundary=a\u{e9}", None),
            ("multipart/form-data", None),
            ("multipart/mixed; boundary=abc", None),
            ("text/plain; boundary=abc", None),
            ("multipart/form-data; boundary=\"open", None),
            ("", None),
        ];
        for (ct, want) in table {
            assert_eq!(boundary_from_content_type(ct).as_deref(), *want, "{ct:?}");
        }
    }

    #[test]
    fn content_disposition_header_parsing_table() {
        let table: &[(&str, Option<PartInfo>)] = &[
            ("form-data; name=\"x\"", None),
            (
                "form-data; name=\"x\"; filename=\"a b.txt\"",
                Some(info(Some("a b.txt"), None)),
            ),
            (
                "form-data; filename=\"a\\\\b\\\"c\"",
                Some(info(Some("b\"c"), None)),
            ),
            (
                "form-data; filename=/etc/passwd",
                Some(info(Some("passwd"), None)),
            ),
            ("form-data; filename=\"\"", Some(info(None, None))),
            ("form-data; filename=\"dir/\"", Some(info(None, None))),
            (
                "form-data; FileName*=utf-8'en'%E6%97%A5%E6%9C%AC.txt",
                Some(info(Some("日本.txt"), None)),
            ),
            (
                "form-data; filename*=iso-8859-1''caf%E9",
                Some(info(Some("café"), None)),
            ),
            (
                "form-data; filename=\"f\"; filename*=UTF-8''%ZZ",
                Some(info(Some("f"), None)),
            ),
            (
                "form-data; filename=\"f\"; filename*=koi8-r''x",
                Some(info(Some("f"), None)),
            ),
            ("form-data; filename*=UTF-8''%FF", Some(info(None, None))),
            (
                "form-data; filename=\"é.txt\"",
                Some(info(Some("é.txt"), None)),
            ),
        ];
        for (cd, want) in table {
            let block = format!("Content-Disposition: {cd}\r\n\r\n");
            let got = parse_part_headers(block.as_bytes()).map(|(i, file)| file.then_some(i));
            assert_eq!(got, Ok(want.clone()), "{cd:?}");
        }
        let ct = |v: &str| {
            let block =
                format!("Content-Disposition: form-data; filename=f\r\nContent-Type:{v}\r\n\r\n");
            parse_part_headers(block.as_bytes()).map(|(p, _)| p.content_type)
        };
        assert_eq!(
            ct(" text/plain; charset=utf-8 "),
            Ok(Some("text/plain; charset=utf-8".into()))
        );
        assert_eq!(ct(""), Ok(None));
        assert_eq!(ct(" a\x01b"), Ok(None));
        assert_eq!(ct(" t\u{e9}"), Ok(None));
    }

    #[test]
    fn content_disposition_attachment_table() {
        let table: &[(&str, &str)] = &[
            ("report.pdf", "attachment; filename=\"report.pdf\""),
            ("a b.txt", "attachment; filename=\"a b.txt\""),
            (
                "say \"hi\"\\.txt",
                "attachment; filename=\"say \\\"hi\\\"\\\\.txt\"",
            ),
            (
                "café.txt",
                "attachment; filename=\"caf_.txt\"; filename*=UTF-8''caf%C3%A9.txt",
            ),
            (
                "日本.txt",
                "attachment; filename=\"__.txt\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt",
            ),
            (
                "a\r\nb\x00\x7f",
                "attachment; filename=\"a__b__\"; filename*=UTF-8''a%0D%0Ab%00%7F",
            ),
            (
                "100%.txt",
                "attachment; filename=\"100%.txt\"; filename*=UTF-8''100%25.txt",
            ),
            ("", "attachment; filename=\"\""),
        ];
        for (name, want) in table {
            assert_eq!(content_disposition_attachment(name), *want, "{name:?}");
        }
    }

    #[test]
    fn random_input_never_panics() {
        const ALPHABET: &[u8] = b"-b\r\n :;=\"\\xfilename*Content-Disposition\xc3\xa9%";
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        for _ in 0..2000 {
            let len = next(120);
            let body: Vec<u8> = (0..len).map(|_| ALPHABET[next(ALPHABET.len())]).collect();
            let cut = next(len + 1);
            let _ = run_parts("b", &[&body[..cut], &body[cut..]]);
            let text = String::from_utf8_lossy(&body);
            let _ = boundary_from_content_type(&text);
            let _ = parse_part_headers(&body);
        }
    }
}
