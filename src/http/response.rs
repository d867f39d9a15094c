//! Response heads and short responses, written into a caller's buffer.
//!
//! Every response carries `Access-Control-Allow-Origin: *`. Errors are a
//! status, `text/plain; charset=utf-8`, and one line starting `[ERROR] `.

use std::io::Write;

/// Headers every streamed response carries so that reverse proxies neither
/// buffer nor cache it.
pub const NO_BUFFERING: &str = "X-Accel-Buffering: no\r\nCache-Control: no-store\r\n";

/// The headers a receiver may read from JavaScript.
pub const EXPOSE_HEADERS: &str =
    "Access-Control-Expose-Headers: Content-Length, Content-Type, Content-Disposition, X-Piping\r\n";

/// Methods the relay answers, for `Allow` and preflight responses.
pub const ALLOW: &str = "GET, HEAD, POST, PUT, OPTIONS";

/// The reason phrase for a status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Start a response head: status line and the CORS header. The caller adds
/// headers and ends the head with `\r\n`.
pub fn status_line(out: &mut Vec<u8>, minor: u8, status: u16) {
    let _ = write!(
        out,
        "HTTP/1.{} {} {}\r\nAccess-Control-Allow-Origin: *\r\n",
        minor.min(1),
        status,
        reason(status)
    );
}

/// A status line alone, for responses that write their own CORS headers
/// (SockJS echoes the `Origin`; a second `Access-Control-Allow-Origin`
/// would make browsers refuse the response).
pub fn status_line_bare(out: &mut Vec<u8>, minor: u8, status: u16) {
    let _ = write!(
        out,
        "HTTP/1.{} {} {}\r\n",
        minor.min(1),
        status,
        reason(status)
    );
}

/// A complete short response with a text body.
#[derive(Clone, Copy, Debug)]
pub struct Short<'a> {
    /// Minor HTTP version of the request.
    pub minor: u8,
    /// Status code.
    pub status: u16,
    /// `Content-Type` value.
    pub content_type: &'a str,
    /// Extra header lines, each ending in `\r\n`.
    pub extra: &'a str,
    /// The body.
    pub body: &'a [u8],
    /// Whether the connection stays open afterwards.
    pub keep_alive: bool,
    /// Leave the body out (for `HEAD`), keeping its length.
    pub head_only: bool,
}

impl Short<'_> {
    /// Append the response to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        status_line(out, self.minor, self.status);
        let _ = write!(
            out,
            "Content-Type: {}\r\nContent-Length: {}\r\n{}",
            self.content_type,
            self.body.len(),
            self.extra
        );
        connection_header(out, self.minor, self.keep_alive);
        out.extend_from_slice(b"\r\n");
        if !self.head_only {
            out.extend_from_slice(self.body);
        }
    }
}

/// An error response: status and the line `[ERROR] message`.
pub fn error(
    out: &mut Vec<u8>,
    minor: u8,
    status: u16,
    message: &str,
    extra: &str,
    keep_alive: bool,
) {
    error_to(out, minor, status, message, extra, keep_alive, false);
}

/// [`error`], for a request that may be `HEAD` (`head_only`: the head
/// alone, with the length the body would have had).
pub fn error_to(
    out: &mut Vec<u8>,
    minor: u8,
    status: u16,
    message: &str,
    extra: &str,
    keep_alive: bool,
    head_only: bool,
) {
    let body = format!("[ERROR] {message}\n");
    Short {
        minor,
        status,
        content_type: "text/plain; charset=utf-8",
        extra,
        body: body.as_bytes(),
        keep_alive,
        head_only,
    }
    .write(out);
}

/// `Connection:` as needed: HTTP/1.1 closes say so, HTTP/1.0 keep-alives
/// say so; the defaults need nothing.
pub fn connection_header(out: &mut Vec<u8>, minor: u8, keep_alive: bool) {
    match (minor, keep_alive) {
        (0, true) => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        (_, false) => out.extend_from_slice(b"Connection: close\r\n"),
        _ => {}
    }
}

/// One line as a chunk (HTTP/1.1 streams) or as raw bytes (HTTP/1.0
/// streams, delimited by close).
pub fn stream_line(out: &mut Vec<u8>, chunked: bool, line: &str) {
    if chunked {
        let _ = write!(out, "{:x}\r\n{}\n\r\n", line.len() + 1, line);
    } else {
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
}

/// Text as it is (one chunk, or raw bytes); empty text writes nothing, as
/// an empty chunk would end the body.
pub fn stream_text(out: &mut Vec<u8>, chunked: bool, text: &str) {
    if text.is_empty() {
        return;
    }
    if chunked {
        let _ = write!(out, "{:x}\r\n{}\r\n", text.len(), text);
    } else {
        out.extend_from_slice(text.as_bytes());
    }
}

/// The last-chunk that ends a chunked body with no trailers.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_response_shape() {
        let mut out = Vec::new();
        error(&mut out, 1, 409, "busy", "", false);
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("HTTP/1.1 409 Conflict\r\n"));
        assert!(s.contains("Access-Control-Allow-Origin: *\r\n"));
        assert!(s.contains("Content-Type: text/plain; charset=utf-8\r\n"));
        assert!(s.contains("Content-Length: 13\r\n"));
        assert!(s.contains("Connection: close\r\n"));
        assert!(s.ends_with("\r\n\r\n[ERROR] busy\n"));
    }

    #[test]
    fn head_only_keeps_length() {
        let mut out = Vec::new();
        Short {
            minor: 0,
            status: 200,
            content_type: "text/plain",
            extra: "",
            body: b"hello",
            keep_alive: true,
            head_only: true,
        }
        .write(&mut out);
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("HTTP/1.0 200 OK\r\n"));
        assert!(s.contains("Content-Length: 5\r\n"));
        assert!(s.contains("Connection: keep-alive\r\n"));
        assert!(s.ends_with("\r\n\r\n"));
    }

    #[test]
    fn stream_lines() {
        let mut out = Vec::new();
        stream_line(&mut out, true, "[INFO] hi");
        assert_eq!(out, b"a\r\n[INFO] hi\n\r\n");
        out.clear();
        stream_line(&mut out, false, "x");
        assert_eq!(out, b"x\n");
    }
}
