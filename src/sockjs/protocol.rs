//! SockJS, the protocol part: routing under `/sockjs/<channel>`, framing,
//! transport wrapping, send-body parsing, the info and iframe documents,
//! the header sets the protocol's reference test suite checks, and the
//! per-session state machine ([`Session`]).
//!
//! Everything here is sans-io. Functions take strings, byte slices and
//! `now`; they never touch a socket or read the clock. The server owns
//! sockets, timers and the WebSocket codec, and asks this module what to
//! write and when.
//!
//! Rules that hold:
//!
//! - Nothing here panics on client input.
//! - Frames follow the protocol: `o` open, `h` heartbeat, `a[...]` messages,
//!   `c[code,"reason"]` close. Strings in frames are JSON with the extra
//!   escapes sockjs-node applies ([`ESCAPED_RANGES`]), so a frame never
//!   holds a raw control character, U+2028/2029 or a byte that browsers
//!   mangle in transit.
//! - Every buffer is bounded: a session's outbox by
//!   [`SessionOpts::outbox_bytes`] and [`SessionOpts::outbox_messages`] (the
//!   batched `a[...]` frame is at most six times the queued bytes plus three
//!   per message), callbacks by [`MAX_CALLBACK_LEN`], server and session ids
//!   by [`MAX_ID_LEN`], a `JSESSIONID` echo by [`MAX_COOKIE_LEN`]. Send
//!   bodies are as large as the caller's body limit lets them be.
//! - Time is passed in. A deadline fires when `now >= deadline`, never
//!   before.
//!
//! The behaviours the reference test suite (`sockjs-protocol.py`) leaves
//! open are chosen here and written down where they are implemented: an
//! interrupted HTTP receiver closes its session with
//! `c[1002,"Connection interrupted"]`; a full outbox closes the session with
//! [`CLOSE_OUTBOX_FULL`]; heartbeats are `h` frames on every transport, due
//! [`SessionOpts::heartbeat`] after the last frame written.

use std::fmt::{self, Write as _};
use std::time::{Duration, Instant};

use crate::http::Method;
use crate::json;

/// The greeting served at the channel's base URL.
pub const GREETING: &str = "Welcome to SockJS!\n";

/// `500` body when a `jsonp` or `htmlfile` request has no `c` parameter.
pub const ERR_CALLBACK_REQUIRED: &str = "\"callback\" parameter required";

/// `500` body when the `c` parameter has characters outside
/// `[a-zA-Z0-9_.-]`, is empty, or is longer than [`MAX_CALLBACK_LEN`].
pub const ERR_CALLBACK_INVALID: &str = "invalid \"callback\" parameter";

/// `400` body for a `GET .../websocket` that is not a WebSocket upgrade.
pub const ERR_NOT_WEBSOCKET: &str = "Not a valid websocket request";

/// `400` body for a raw `/websocket` upgrade with a version other than 13
/// (or 8).
pub const ERR_WEBSOCKET_VERSION: &str = "Only supported WebSocket protocol is RFC 6455.";

/// `Content-Type` of the greeting and of text answers.
pub const TEXT_PLAIN: &str = "text/plain; charset=UTF-8";
/// `Content-Type` of `/info`.
pub const APPLICATION_JSON: &str = "application/json; charset=UTF-8";
/// `Content-Type` of the iframe page and of `htmlfile`.
pub const TEXT_HTML: &str = "text/html; charset=UTF-8";
/// `Content-Type` of `xhr`, `xhr_streaming` and `jsonp`.
pub const APPLICATION_JAVASCRIPT: &str = "application/javascript; charset=UTF-8";
/// `Content-Type` of `eventsource`.
pub const TEXT_EVENT_STREAM: &str = "text/event-stream";

/// The `Cache-Control` value for responses that must never be cached.
pub const NO_CACHE: &str = "no-store, no-cache, no-transform, must-revalidate, max-age=0";

/// One year in seconds: how long the iframe page and preflights are cached.
pub const CACHE_SECS: u64 = 365 * 24 * 60 * 60;

/// The SockJS client script the iframe page loads by default.
pub const DEFAULT_CLIENT_URL: &str =
    "https://cdn.jsdelivr.net/npm/sockjs-client@1/dist/sockjs.min.js";

/// Longest accepted `c`/`callback` parameter (sockjs-node's limit for
/// `jsonp`; clients send about a dozen characters).
pub const MAX_CALLBACK_LEN: usize = 32;

/// Longest accepted server or session id, in bytes. Clients send 3 and 8;
/// the bound keeps the session table's keys small.
pub const MAX_ID_LEN: usize = 128;

/// Longest `JSESSIONID` value echoed back; longer or odd values become
/// `dummy`.
pub const MAX_COOKIE_LEN: usize = 256;

/// Close frame for a second receiving request on a session.
pub const CLOSE_ANOTHER_CONNECTION: (u16, &str) = (2010, "Another connection still open");

/// Close frame of a session whose receiving request was cut by the network.
pub const CLOSE_INTERRUPTED: (u16, &str) = (1002, "Connection interrupted");

/// Close frame of a session whose outbox overflowed (the client reads
/// slower than its peers write).
pub const CLOSE_OUTBOX_FULL: (u16, &str) = (3001, "Receiver too slow: outbox full");

/// The close the reference `close` service sends, and a good default for
/// a server-side close.
pub const CLOSE_GO_AWAY: (u16, &str) = (3000, "Go away!");

/// WebSocket close (code, reason) for a SockJS WebSocket that sent a
/// message that is not a JSON string or array of strings.
pub const WS_BROKEN_FRAMING: (u16, &str) = (3000, "Broken framing.");

/// Code points escaped as `\uXXXX` in every quoted string, besides `"` and
/// `\` and the short escapes `\b \f \n \r \t`. This is sockjs-node's list
/// (`lib/utils.js`) minus the surrogates, which a Rust string cannot hold.
pub const ESCAPED_RANGES: &[(u32, u32)] = &[
    (0x0000, 0x001f),
    (0x200c, 0x200f),
    (0x2028, 0x202f),
    (0x2060, 0x206f),
    (0xfff0, 0xffff),
];

// ---------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------

/// A SockJS session transport, named by the last path segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// `websocket`: the SockJS-framed WebSocket.
    Websocket,
    /// `xhr`: XHR polling (receiving).
    Xhr,
    /// `xhr_send`: messages from the client for the XHR transports.
    XhrSend,
    /// `xhr_streaming`: XHR streaming (receiving).
    XhrStreaming,
    /// `eventsource`: Server-Sent Events (receiving).
    EventSource,
    /// `htmlfile`: a forever-loading HTML page of `<script>` tags
    /// (receiving).
    HtmlFile,
    /// `jsonp`: JSONP polling (receiving).
    Jsonp,
    /// `jsonp_send`: messages from the client for the JSONP transport.
    JsonpSend,
}

/// How a receiving transport delivers frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Receiver {
    /// One frame per response, then the response ends (`xhr`, `jsonp`).
    Polling,
    /// Frames until the response limit, then the response ends and the
    /// client reconnects (`xhr_streaming`, `eventsource`, `htmlfile`).
    Streaming,
    /// Frames as WebSocket text messages for the socket's life.
    WebSocket,
}

impl Transport {
    /// Every transport, in routing order.
    pub const ALL: [Transport; 8] = [
        Transport::Websocket,
        Transport::Xhr,
        Transport::XhrSend,
        Transport::XhrStreaming,
        Transport::EventSource,
        Transport::HtmlFile,
        Transport::Jsonp,
        Transport::JsonpSend,
    ];

    /// The path segment naming the transport.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Websocket => "websocket",
            Transport::Xhr => "xhr",
            Transport::XhrSend => "xhr_send",
            Transport::XhrStreaming => "xhr_streaming",
            Transport::EventSource => "eventsource",
            Transport::HtmlFile => "htmlfile",
            Transport::Jsonp => "jsonp",
            Transport::JsonpSend => "jsonp_send",
        }
    }

    /// The transport a path segment names.
    pub fn from_name(name: &str) -> Option<Transport> {
        Transport::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The method the transport is used with.
    pub fn method(self) -> Method {
        match self {
            Transport::Websocket
            | Transport::EventSource
            | Transport::HtmlFile
            | Transport::Jsonp => Method::Get,
            Transport::Xhr
            | Transport::XhrSend
            | Transport::XhrStreaming
            | Transport::JsonpSend => Method::Post,
        }
    }

    /// Whether `OPTIONS` is a CORS preflight for this transport (the XHR
    /// family); elsewhere it is `405`.
    pub fn has_preflight(self) -> bool {
        matches!(
            self,
            Transport::Xhr | Transport::XhrSend | Transport::XhrStreaming
        )
    }

    /// The `Allow` value for a `405` on this transport.
    pub fn allow(self) -> &'static str {
        match (self.method(), self.has_preflight()) {
            (Method::Post, true) => "OPTIONS, POST",
            (Method::Post, false) => "POST",
            _ => "GET",
        }
    }

    /// How the transport receives frames; `None` for the send transports.
    pub fn receiver(self) -> Option<Receiver> {
        match self {
            Transport::Xhr | Transport::Jsonp => Some(Receiver::Polling),
            Transport::XhrStreaming | Transport::EventSource | Transport::HtmlFile => {
                Some(Receiver::Streaming)
            }
            Transport::Websocket => Some(Receiver::WebSocket),
            Transport::XhrSend | Transport::JsonpSend => None,
        }
    }

    /// Whether the transport needs the `c` callback parameter.
    pub fn needs_callback(self) -> bool {
        matches!(self, Transport::HtmlFile | Transport::Jsonp)
    }

    /// The response `Content-Type`; `None` for `websocket`.
    pub fn content_type(self) -> Option<&'static str> {
        match self {
            Transport::Websocket => None,
            Transport::Xhr | Transport::XhrStreaming | Transport::Jsonp => {
                Some(APPLICATION_JAVASCRIPT)
            }
            Transport::EventSource => Some(TEXT_EVENT_STREAM),
            Transport::HtmlFile => Some(TEXT_HTML),
            Transport::XhrSend | Transport::JsonpSend => Some(TEXT_PLAIN),
        }
    }
}

/// Where a request under `/sockjs/<channel>` goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// `GET` base URL: `200`, [`TEXT_PLAIN`], body [`GREETING`].
    Greeting,
    /// `GET /info`: `200` with [`info_json`] and [`push_info_headers`].
    Info,
    /// `GET /iframe.html` or `/iframe-<version>.html`: [`iframe_html`] with
    /// [`push_iframe_headers`], or `304` when `If-None-Match` matches.
    Iframe,
    /// `GET /websocket`: a plain WebSocket, no SockJS framing.
    RawWebsocket,
    /// `/<server>/<session>/<transport>` with the right method.
    Session {
        /// The server id (load-balancer hint; ignored).
        server: &'a str,
        /// The session id, the key of the session table.
        session: &'a str,
        /// The transport.
        transport: Transport,
        /// The decoded, validated callback (`htmlfile` and `jsonp` only).
        callback: Option<String>,
    },
    /// `OPTIONS` on `/info`, `xhr`, `xhr_send` or `xhr_streaming`: `204`
    /// with [`push_preflight_headers`] and this method list.
    Preflight {
        /// The `Access-Control-Allow-Methods` value.
        allow_methods: &'static str,
    },
    /// A known path with the wrong method: `405`, `Allow: <allow>`, no
    /// `Content-Type`, no body (the suite checks all three).
    MethodNotAllowed {
        /// The `Allow` value.
        allow: &'static str,
    },
    /// `htmlfile` or `jsonp` without a usable callback: `500` with the
    /// error's text.
    BadCallback(CallbackError),
    /// Anything else: `404`.
    NotFound,
}

/// Route a request. `rest` is the raw path after `/sockjs/<channel>` (`""`,
/// `"/info"`, `"/000/abc/xhr"`); one trailing `/` is ignored, as
/// sockjs-node does. `query` is the raw query string, used for the
/// callback of `htmlfile` and `jsonp`.
pub fn route<'a>(rest: &'a str, query: Option<&str>, method: Method) -> Route<'a> {
    let path = rest.strip_suffix('/').unwrap_or(rest);
    let get_only = |r: Route<'a>| {
        if method == Method::Get {
            r
        } else {
            Route::MethodNotAllowed { allow: "GET" }
        }
    };
    if path.is_empty() {
        return get_only(Route::Greeting);
    }
    if path == "/info" {
        return match method {
            Method::Get => Route::Info,
            Method::Options => Route::Preflight {
                allow_methods: "OPTIONS, GET",
            },
            _ => Route::MethodNotAllowed {
                allow: "OPTIONS, GET",
            },
        };
    }
    if is_iframe_path(path) {
        return get_only(Route::Iframe);
    }
    if path == "/websocket" {
        return get_only(Route::RawWebsocket);
    }
    let Some(ids) = path.strip_prefix('/') else {
        return Route::NotFound;
    };
    let mut parts = ids.split('/');
    let (Some(server), Some(session), Some(name), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::NotFound;
    };
    let Some(transport) = Transport::from_name(name) else {
        return Route::NotFound;
    };
    if !valid_id(server) || !valid_id(session) {
        return Route::NotFound;
    }
    if method == Method::Options && transport.has_preflight() {
        return Route::Preflight {
            allow_methods: "OPTIONS, POST",
        };
    }
    if method != transport.method() {
        return Route::MethodNotAllowed {
            allow: transport.allow(),
        };
    }
    let callback = if transport.needs_callback() {
        match callback_param(query) {
            Ok(c) => Some(c),
            Err(e) => return Route::BadCallback(e),
        }
    } else {
        None
    };
    Route::Session {
        server,
        session,
        transport,
        callback,
    }
}

/// `/iframe.html`, `/iframe-0.1.2.html`: `/iframe`, then `[0-9a-z._-]*`,
/// then `.html`.
fn is_iframe_path(path: &str) -> bool {
    path.strip_prefix("/iframe")
        .and_then(|p| p.strip_suffix(".html"))
        .is_some_and(|mid| {
            mid.bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'z' | b'.' | b'-' | b'_'))
        })
}

/// A server or session id: non-empty, no `.` (nor `/`, which the split
/// already excludes), at most [`MAX_ID_LEN`] bytes.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && !id.contains(['.', '/'])
}

/// Why a callback parameter was refused. Both are answered `500` with the
/// Display text, which is what the test suite looks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallbackError {
    /// Neither `c` nor `callback` is in the query.
    Missing,
    /// Empty, too long, not UTF-8, or a character outside `[a-zA-Z0-9_.-]`.
    Invalid,
}

impl CallbackError {
    /// The HTTP status to answer with.
    pub fn status(self) -> u16 {
        500
    }
}

impl fmt::Display for CallbackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CallbackError::Missing => ERR_CALLBACK_REQUIRED,
            CallbackError::Invalid => ERR_CALLBACK_INVALID,
        })
    }
}

impl std::error::Error for CallbackError {}

/// Whether `c` may be spliced into JavaScript as a function name:
/// 1 to [`MAX_CALLBACK_LEN`] characters from `[a-zA-Z0-9_.-]`.
pub fn valid_callback(c: &str) -> bool {
    !c.is_empty()
        && c.len() <= MAX_CALLBACK_LEN
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The callback from a raw query string: the first `c=`, else the first
/// `callback=`, percent-decoded and validated.
pub fn callback_param(query: Option<&str>) -> Result<String, CallbackError> {
    let raw = query
        .and_then(|q| form_value(q, "c").or_else(|| form_value(q, "callback")))
        .ok_or(CallbackError::Missing)?;
    // Anything longer cannot decode to a valid callback; skip the work.
    if raw.len() > 3 * MAX_CALLBACK_LEN {
        return Err(CallbackError::Invalid);
    }
    let c = crate::http::percent_decode(raw).ok_or(CallbackError::Invalid)?;
    if valid_callback(&c) {
        Ok(c)
    } else {
        Err(CallbackError::Invalid)
    }
}

/// The raw value of the first `name=` pair of a form/query string (a bare
/// `name` counts as an empty value).
fn form_value<'a>(s: &'a str, name: &str) -> Option<&'a str> {
    s.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

// ---------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------

/// The open frame, `o`.
pub fn open() -> &'static str {
    "o"
}

/// The heartbeat frame, `h`.
pub fn heartbeat() -> &'static str {
    "h"
}

/// A message frame: `a["m1","m2"]`, each message quoted by [`quote`].
pub fn messages<S: AsRef<str>>(msgs: &[S]) -> String {
    let len: usize = msgs.iter().map(|m| m.as_ref().len() + 3).sum();
    let mut out = String::with_capacity(len + 3);
    out.push_str("a[");
    for (i, m) in msgs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_quoted(&mut out, m.as_ref(), false);
    }
    out.push(']');
    out
}

/// A close frame: `c[3000,"Go away!"]`.
pub fn close(code: u16, reason: &str) -> String {
    let mut out = String::with_capacity(reason.len() + 12);
    let _ = write!(out, "c[{code},");
    push_quoted(&mut out, reason, false);
    out.push(']');
    out
}

/// `s` as a JSON string literal with SockJS's escaping: `"` `\`, the short
/// escapes `\b \f \n \r \t`, and `\uXXXX` (lowercase hex) for every code
/// point in [`ESCAPED_RANGES`].
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_quoted(&mut out, s, false);
    out
}

/// Whether [`quote`] writes `c` as `\uXXXX` (or a short escape).
pub fn escaped(c: char) -> bool {
    let u = c as u32;
    ESCAPED_RANGES
        .iter()
        .any(|&(lo, hi)| (lo..=hi).contains(&u))
}

/// Appends `s` quoted. `html` also escapes `<` and `>`, so that the text
/// can sit inside a `<script>` element (`</script>` in a message must not
/// end the element).
fn push_quoted(out: &mut String, s: &str, html: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' if html => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if escaped(c) => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

// ---------------------------------------------------------------------------
// Transport wrapping
// ---------------------------------------------------------------------------

/// What a transport writes right after its response head, before any
/// frame: `xhr_streaming` 2048 `h` and `\n` (IE needs 2 KiB before it
/// hands data to the page), `eventsource` `\r\n` (Opera), `htmlfile` the
/// page that calls `parent.<callback>` (padded past 1 KiB for Safari's
/// sniffer). Empty for the others. The prelude is not counted against the
/// response limit.
pub fn prelude(t: Transport, callback: Option<&str>) -> Vec<u8> {
    match t {
        Transport::XhrStreaming => {
            let mut v = vec![b'h'; 2048];
            v.push(b'\n');
            v
        }
        Transport::EventSource => b"\r\n".to_vec(),
        Transport::HtmlFile => htmlfile_page(safe_callback(callback)).into_bytes(),
        _ => Vec::new(),
    }
}

/// The callback to splice into a script; an invalid one (which [`route`]
/// never yields) becomes empty rather than script text.
fn safe_callback(callback: Option<&str>) -> &str {
    callback.filter(|c| valid_callback(c)).unwrap_or("")
}

/// The `htmlfile` page: at least 1024 bytes before its trailing `\r\n\r\n`.
fn htmlfile_page(callback: &str) -> String {
    let mut page = String::with_capacity(1100);
    page.push_str(
        "\n<!doctype html>\n<html><head>\n  \
         <meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n  \
         <meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n\
         </head><body><h2>Don't panic!</h2>\n  <script>\n    \
         document.domain = document.domain;\n    var c = parent.",
    );
    page.push_str(callback);
    page.push_str(
        ";\n    c.start();\n    function p(d) {c.message(d);};\n    \
         window.onload = function() {c.stop();};\n  </script>\n",
    );
    while page.len() < 1024 {
        page.push(' ');
    }
    page.push_str("\r\n\r\n");
    page
}

/// One frame as the transport writes it: `xhr`/`xhr_streaming`
/// `frame\n`; `eventsource` `data: frame\r\n\r\n` with `%`, CR, LF and NUL
/// percent-escaped (the client runs `decodeURI` on every event);
/// `htmlfile` `<script>\np("frame");\n</script>\r\n`; `jsonp`
/// `/**/cb("frame");\r\n`; `websocket` the frame itself, to be sent as one
/// text message. The send transports carry no frames: empty.
pub fn wrap(t: Transport, frame: &str, callback: Option<&str>) -> Vec<u8> {
    let mut out = String::with_capacity(frame.len() + 48);
    match t {
        Transport::Xhr | Transport::XhrStreaming => {
            out.push_str(frame);
            out.push('\n');
        }
        Transport::EventSource => {
            out.push_str("data: ");
            for c in frame.chars() {
                match c {
                    '%' => out.push_str("%25"),
                    '\r' => out.push_str("%0D"),
                    '\n' => out.push_str("%0A"),
                    '\0' => out.push_str("%00"),
                    c => out.push(c),
                }
            }
            out.push_str("\r\n\r\n");
        }
        Transport::HtmlFile => {
            out.push_str("<script>\np(");
            push_quoted(&mut out, frame, true);
            out.push_str(");\n</script>\r\n");
        }
        Transport::Jsonp => {
            out.push_str("/**/");
            out.push_str(safe_callback(callback));
            out.push('(');
            push_quoted(&mut out, frame, false);
            out.push_str(");\r\n");
        }
        Transport::Websocket => out.push_str(frame),
        Transport::XhrSend | Transport::JsonpSend => {}
    }
    out.into_bytes()
}

// ---------------------------------------------------------------------------
// Send bodies and WebSocket messages
// ---------------------------------------------------------------------------

/// Why messages from the client were refused. HTTP send transports answer
/// `500` with the Display text (the suite looks for the first sentence); a
/// WebSocket is closed with [`WS_BROKEN_FRAMING`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// No body, or no `d` field in a form.
    Empty,
    /// The body (or `d`) is not JSON.
    BrokenJson,
    /// JSON, but not an array of strings.
    NotStringArray,
}

impl SendError {
    /// The HTTP status to answer with.
    pub fn status(self) -> u16 {
        500
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::Empty => "Payload expected.",
            SendError::BrokenJson => "Broken JSON encoding.",
            SendError::NotStringArray => "Payload expected. Send a JSON array of strings.",
        })
    }
}

impl std::error::Error for SendError {}

/// The messages in an `xhr_send` or `jsonp_send` body.
///
/// `xhr_send`: the body is a JSON array of strings, whatever the
/// `Content-Type`. `jsonp_send`: an `application/x-www-form-urlencoded`
/// body carries the array in its first `d` field; any other type is the
/// raw JSON (sockjs-node accepts `text/plain` or none). As in sockjs-node,
/// a JSON string that itself holds JSON is decoded once more. `[]` is
/// valid: no messages. Other transports: [`SendError::Empty`].
pub fn parse_send(t: Transport, content_type: &str, body: &[u8]) -> Result<Vec<String>, SendError> {
    match t {
        Transport::XhrSend => {
            if body.is_empty() {
                return Err(SendError::Empty);
            }
            string_array(parse_json(body)?)
        }
        Transport::JsonpSend => {
            let mime = content_type
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            let value = if mime == "application/x-www-form-urlencoded" {
                let text = std::str::from_utf8(body).map_err(|_| SendError::BrokenJson)?;
                let d = form_value(text, "d").ok_or(SendError::Empty)?;
                let d = crate::http::percent_decode(d).ok_or(SendError::BrokenJson)?;
                if d.is_empty() {
                    return Err(SendError::Empty);
                }
                parse_json(d.as_bytes())?
            } else {
                if body.is_empty() {
                    return Err(SendError::Empty);
                }
                parse_json(body)?
            };
            let value = match value {
                json::Value::String(s) if !s.is_empty() => parse_json(s.as_bytes())?,
                v => v,
            };
            string_array(value)
        }
        _ => Err(SendError::Empty),
    }
}

/// The messages in one WebSocket text message of the `websocket`
/// transport: a JSON array of strings, or one JSON string. An empty
/// message carries none (the suite requires it to be ignored).
pub fn parse_ws_message(text: &str) -> Result<Vec<String>, SendError> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    match parse_json(text.as_bytes())? {
        json::Value::String(s) => Ok(vec![s]),
        v => string_array(v),
    }
}

fn parse_json(bytes: &[u8]) -> Result<json::Value, SendError> {
    json::parse(bytes, json::Limits::default()).map_err(|_| SendError::BrokenJson)
}

fn string_array(v: json::Value) -> Result<Vec<String>, SendError> {
    match v {
        json::Value::Array(items) => items
            .into_iter()
            .map(|i| match i {
                json::Value::String(s) => Ok(s),
                _ => Err(SendError::NotStringArray),
            })
            .collect(),
        _ => Err(SendError::NotStringArray),
    }
}

// ---------------------------------------------------------------------------
// Info, iframe, headers
// ---------------------------------------------------------------------------

/// The `/info` body: `{"websocket":..,"origins":["*:*"],
/// "cookie_needed":..,"entropy":..}`. `entropy` must come from the OS
/// CSPRNG, fresh for every request.
pub fn info_json(websocket: bool, cookie_needed: bool, entropy: u32) -> String {
    format!(
        "{{\"websocket\":{websocket},\"origins\":[\"*:*\"],\"cookie_needed\":{cookie_needed},\"entropy\":{entropy}}}"
    )
}

/// The iframe page, loading the SockJS client from `client_url` (HTML
/// attribute-escaped). Serve it for every `/iframe*.html`.
pub fn iframe_html(client_url: &str) -> String {
    let mut url = String::with_capacity(client_url.len());
    for c in client_url.chars() {
        match c {
            '&' => url.push_str("&amp;"),
            '"' => url.push_str("&quot;"),
            '<' => url.push_str("&lt;"),
            '>' => url.push_str("&gt;"),
            c => url.push(c),
        }
    }
    format!(
        "<!DOCTYPE html>\n<html>\n<head>\n  \
         <meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n  \
         <meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n  \
         <script src=\"{url}\"></script>\n  <script>\n    \
         document.domain = document.domain;\n    SockJS.bootstrap_iframe();\n  \
         </script>\n</head>\n<body>\n  <h2>Don't panic!</h2>\n  \
         <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>\n\
         </body>\n</html>"
    )
}

/// A strong, quoted ETag for `body`: 64-bit FNV-1a in hex, the same across
/// runs and builds.
pub fn etag(body: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in body.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("\"{h:016x}\"")
}

/// Whether an `If-None-Match` value matches `etag` (a list, `*`, and weak
/// `W/` tags compare as RFC 9110's weak comparison says).
pub fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    let etag = etag.trim_start_matches("W/");
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == etag)
}

/// What the header helpers need from the request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestInfo<'a> {
    /// The `Origin` header.
    pub origin: Option<&'a str>,
    /// The `Access-Control-Request-Headers` header.
    pub request_headers: Option<&'a str>,
    /// The `Cookie` header.
    pub cookie: Option<&'a str>,
}

fn header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// A header value we may echo: visible ASCII and spaces only.
fn echoable(v: &str) -> bool {
    v.bytes()
        .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
}

/// CORS as SockJS wants it: with an `Origin`, echo it and allow
/// credentials (so `JSESSIONID` flies); without, `*`. `Vary: Origin`, and
/// `Access-Control-Allow-Headers` echoing a non-empty request list.
/// `null_is_star` maps `Origin: null` to `*` (EventSource does that; the
/// XHR family echoes `null`).
pub fn push_cors(out: &mut Vec<u8>, req: &RequestInfo<'_>, null_is_star: bool) {
    match req.origin.filter(|o| !o.is_empty() && echoable(o)) {
        Some("null") if null_is_star => header(out, "Access-Control-Allow-Origin", "*"),
        Some(o) => {
            header(out, "Access-Control-Allow-Origin", o);
            header(out, "Access-Control-Allow-Credentials", "true");
        }
        None => header(out, "Access-Control-Allow-Origin", "*"),
    }
    header(out, "Vary", "Origin");
    if let Some(h) = req
        .request_headers
        .filter(|h| !h.trim().is_empty() && echoable(h))
    {
        header(out, "Access-Control-Allow-Headers", h);
    }
}

/// `Cache-Control:` [`NO_CACHE`].
pub fn push_no_cache(out: &mut Vec<u8>) {
    header(out, "Cache-Control", NO_CACHE);
}

/// Cacheable for a year: `Cache-Control: public, max-age=31536000` and
/// `Expires` a year after `unix_now` (seconds since the epoch, from the
/// caller's wall clock).
pub fn push_cache_for_year(out: &mut Vec<u8>, unix_now: u64) {
    header(
        out,
        "Cache-Control",
        &format!("public, max-age={CACHE_SECS}"),
    );
    header(
        out,
        "Expires",
        &http_date(unix_now.saturating_add(CACHE_SECS)),
    );
}

/// The `JSESSIONID` value to set: the request's own (first `JSESSIONID=`
/// in `Cookie`, trimmed) when it is a plain cookie value of at most
/// [`MAX_COOKIE_LEN`] bytes, else `dummy`.
pub fn jsessionid(cookie_header: Option<&str>) -> &str {
    cookie_header
        .and_then(|c| {
            c.split(';').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (k.trim() == "JSESSIONID").then(|| v.trim())
            })
        })
        .filter(|v| {
            !v.is_empty()
                && v.len() <= MAX_COOKIE_LEN
                && v.bytes()
                    .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b',' | b';' | b'\\'))
        })
        .unwrap_or("dummy")
}

/// `Set-Cookie: JSESSIONID=<value>; path=/` (see [`jsessionid`]). Only for
/// services with `cookie_needed`; on every session-transport response and
/// preflight, never on `/info` `GET`, the greeting or the iframe.
pub fn push_jsessionid(out: &mut Vec<u8>, cookie_header: Option<&str>) {
    header(
        out,
        "Set-Cookie",
        &format!("JSESSIONID={}; path=/", jsessionid(cookie_header)),
    );
}

/// Headers of a `204` preflight (after the status line; the caller adds
/// `Content-Length: 0` or nothing, and `Connection`): cacheable for a
/// year, `Access-Control-Allow-Methods`, `Access-Control-Max-Age`, CORS,
/// and the cookie when `cookie_needed`.
pub fn push_preflight_headers(
    out: &mut Vec<u8>,
    allow_methods: &str,
    req: &RequestInfo<'_>,
    cookie_needed: bool,
    unix_now: u64,
) {
    push_cache_for_year(out, unix_now);
    header(out, "Access-Control-Allow-Methods", allow_methods);
    header(out, "Access-Control-Max-Age", &CACHE_SECS.to_string());
    push_cors(out, req, false);
    if cookie_needed {
        push_jsessionid(out, req.cookie);
    }
}

/// Headers of the `/info` answer: JSON type, never cached, CORS. No
/// cookie.
pub fn push_info_headers(out: &mut Vec<u8>, req: &RequestInfo<'_>) {
    header(out, "Content-Type", APPLICATION_JSON);
    push_no_cache(out);
    push_cors(out, req, false);
}

/// Headers of the iframe page: HTML, cacheable for a year, `ETag`. For a
/// `304`, write only the cache headers and the ETag: pass
/// `with_type: false`.
pub fn push_iframe_headers(out: &mut Vec<u8>, etag: &str, unix_now: u64, with_type: bool) {
    if with_type {
        header(out, "Content-Type", TEXT_HTML);
    }
    push_cache_for_year(out, unix_now);
    header(out, "ETag", etag);
}

/// Headers of a session-transport response (`xhr`, `xhr_send`,
/// `xhr_streaming`, `eventsource`, `htmlfile`, `jsonp`, `jsonp_send`):
/// `Content-Type`, never cached, CORS, `X-Content-Type-Options: nosniff`
/// for `jsonp`, `X-Accel-Buffering: no` for streaming transports, and the
/// cookie when `cookie_needed`. Nothing for `websocket`.
pub fn push_session_headers(
    out: &mut Vec<u8>,
    t: Transport,
    req: &RequestInfo<'_>,
    cookie_needed: bool,
) {
    let Some(ct) = t.content_type() else {
        return;
    };
    header(out, "Content-Type", ct);
    push_no_cache(out);
    push_cors(out, req, t == Transport::EventSource);
    if t == Transport::Jsonp {
        header(out, "X-Content-Type-Options", "nosniff");
    }
    if t.receiver() == Some(Receiver::Streaming) {
        header(out, "X-Accel-Buffering", "no");
    }
    if cookie_needed {
        push_jsessionid(out, req.cookie);
    }
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) for seconds since the
/// Unix epoch.
pub fn http_date(unix: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix / 86_400;
    let secs = unix % 86_400;
    // Civil date from days since 1970-01-01 (Hinnant's algorithm), in
    // unsigned arithmetic shifted to the era starting 0000-03-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        day,
        MONTHS[((month + 11) % 12) as usize],
        year,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

// ---------------------------------------------------------------------------
// Session
// ---------------------------------------------------------------------------

/// Session tunables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionOpts {
    /// An `h` frame is due this long after the last frame written to an
    /// attached receiver (default 25 s).
    pub heartbeat: Duration,
    /// A session with no receiver expires this long after its last
    /// receiver went (default 5 s).
    pub disconnect_delay: Duration,
    /// A streaming response ends once this many frame bytes (after
    /// wrapping, prelude excluded) were written (default 128 KiB; the
    /// test suite's server uses 4096).
    pub response_limit: usize,
    /// Most message bytes queued for the client (default 256 KiB).
    pub outbox_bytes: usize,
    /// Most messages queued for the client (default 4096).
    pub outbox_messages: usize,
}

impl Default for SessionOpts {
    fn default() -> Self {
        SessionOpts {
            heartbeat: Duration::from_secs(25),
            disconnect_delay: Duration::from_secs(5),
            response_limit: 128 * 1024,
            outbox_bytes: 256 * 1024,
            outbox_messages: 4096,
        }
    }
}

/// Where a session is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Created, no receiver has had the open frame yet.
    New,
    /// The open frame went out; messages flow.
    Open,
    /// Closed by the server or by an interruption: every receiving
    /// request gets the close frame until the session expires.
    Closing {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// Expired; remove it from the session table. A request for its id is
    /// a new session.
    Closed,
}

/// Identifies one attached receiver, so a late report about an old
/// request never detaches a newer one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReceiverId(u64);

/// A frame to write on the attached receiver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The frame (`o`, `h`, `a[...]`, `c[...]`); wrap it with [`wrap`].
    pub text: String,
    /// End the response (or, for a WebSocket after a close frame, close
    /// the socket) once it is written. The session has already let go of
    /// the receiver.
    pub end: bool,
}

/// The answer to a receiving request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attach {
    /// Another receiver is attached: write this frame
    /// (`c[2010,"Another connection still open"]`) and end the response.
    /// The session is unchanged.
    Rejected(String),
    /// Write `frames` in order. If `end`, end the response after them (the
    /// session kept no receiver); else the receiver stays attached under
    /// `id` and gets later frames from [`Session::take_frame`] and
    /// [`Session::on_timer`].
    Attached {
        /// This receiver's id, for [`Session::detach`] and
        /// [`Session::account`].
        id: ReceiverId,
        /// Frames to write now; may be empty.
        frames: Vec<String>,
        /// End the response after `frames`.
        end: bool,
        /// The session just opened (the `o` frame is in `frames`): join it
        /// to its channel now.
        opened: bool,
    },
    /// The session has expired ([`State::Closed`]): drop it and start a
    /// new one for this request.
    Gone,
}

/// Why a receiver went away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detach {
    /// The response ended normally (the server ended it). Starts the
    /// disconnect delay.
    Ended,
    /// The client or the network cut the request before the server ended
    /// it. An open HTTP session closes with [`CLOSE_INTERRUPTED`]; the
    /// disconnect delay starts.
    Interrupted,
}

/// What a timer check asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tick {
    /// Nothing is due.
    Nothing,
    /// Write this heartbeat frame (`h`) on the attached receiver.
    Heartbeat(Frame),
    /// The session expired (no receiver for the disconnect delay): remove
    /// it. Its state is now [`State::Closed`].
    Expire,
}

/// Why [`Session::send`] refused messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendRefused {
    /// The session is not open (not yet, or no longer): messages dropped.
    NotOpen,
    /// The outbox would pass its limits: the messages are dropped and the
    /// session is now closing with [`CLOSE_OUTBOX_FULL`].
    Full,
}

impl fmt::Display for SendRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendRefused::NotOpen => "session is not open",
            SendRefused::Full => "session outbox full: session closed",
        })
    }
}

impl std::error::Error for SendRefused {}

#[derive(Clone, Copy, Debug)]
struct Attached {
    id: ReceiverId,
    kind: Receiver,
    /// Frame bytes written on this response, for the response limit.
    written: usize,
    heartbeat_at: Instant,
}

/// One SockJS session: state, outbox, the attached receiver and the two
/// deadlines (heartbeat while a receiver is attached, expiry while none
/// is). It owns no socket; the server feeds it events and writes what it
/// returns.
#[derive(Debug)]
pub struct Session {
    opts: SessionOpts,
    state: State,
    outbox: Vec<String>,
    outbox_len: usize,
    receiver: Option<Attached>,
    next_receiver: u64,
    /// When the session expires if no receiver attaches.
    expire_at: Option<Instant>,
}

impl Session {
    /// A new session. It expires after the disconnect delay unless a
    /// receiver attaches (the server attaches one at once).
    pub fn new(now: Instant, opts: SessionOpts) -> Self {
        Session {
            opts,
            state: State::New,
            outbox: Vec::new(),
            outbox_len: 0,
            receiver: None,
            next_receiver: 0,
            expire_at: Some(now + opts.disconnect_delay),
        }
    }

    /// The session's state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Whether messages from the client should be delivered (sockjs-node
    /// drops them unless the session is open; `xhr_send` still answers
    /// `204`).
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// Whether a receiver is attached.
    pub fn has_receiver(&self) -> bool {
        self.receiver.is_some()
    }

    /// Messages queued for the client.
    pub fn queued(&self) -> usize {
        self.outbox.len()
    }

    /// A receiving request (`xhr`, `xhr_streaming`, `eventsource`,
    /// `htmlfile`, `jsonp`, `websocket`) arrives.
    pub fn attach(&mut self, now: Instant, kind: Receiver) -> Attach {
        if self.receiver.is_some() {
            let (code, reason) = CLOSE_ANOTHER_CONNECTION;
            return Attach::Rejected(close(code, reason));
        }
        self.next_receiver += 1;
        let id = ReceiverId(self.next_receiver);
        let mut frames = Vec::new();
        let mut opened = false;
        match &self.state {
            State::Closed => return Attach::Gone,
            State::Closing { code, reason } => {
                // Queued messages first; a polling response carries one
                // frame, so it gets the close frame next time.
                let close_frame = close(*code, reason);
                if let Some(a) = self.drain() {
                    frames.push(a);
                }
                if kind != Receiver::Polling || frames.is_empty() {
                    frames.push(close_frame);
                }
                self.expire_at = Some(now + self.opts.disconnect_delay);
                return Attach::Attached {
                    id,
                    frames,
                    end: true,
                    opened,
                };
            }
            State::New => {
                self.state = State::Open;
                opened = true;
                frames.push(open().to_string());
            }
            State::Open => {
                if let Some(a) = self.drain() {
                    frames.push(a);
                }
            }
        }
        let end = kind == Receiver::Polling && !frames.is_empty();
        if end {
            self.expire_at = Some(now + self.opts.disconnect_delay);
        } else {
            self.expire_at = None;
            self.receiver = Some(Attached {
                id,
                kind,
                written: 0,
                heartbeat_at: now + self.opts.heartbeat,
            });
        }
        Attach::Attached {
            id,
            frames,
            end,
            opened,
        }
    }

    /// The receiver `id` went away. Ignored if it is not the attached one.
    /// Starts the disconnect delay; see [`Detach`] for what an
    /// interruption does. A WebSocket session ends with its socket: drop
    /// the session instead.
    pub fn detach(&mut self, now: Instant, id: ReceiverId, how: Detach) {
        if self.receiver.map(|r| r.id) != Some(id) {
            return;
        }
        self.release(now);
        if how == Detach::Interrupted && matches!(self.state, State::New | State::Open) {
            let (code, reason) = CLOSE_INTERRUPTED;
            self.set_closing(code, reason);
        }
    }

    /// Queue messages for the client. All or nothing: a batch that would
    /// pass [`SessionOpts::outbox_bytes`] or
    /// [`SessionOpts::outbox_messages`] is dropped and closes the session
    /// with [`CLOSE_OUTBOX_FULL`], so a slow client cannot make the server
    /// hold unbounded data, and never silently misses messages.
    pub fn send(&mut self, msgs: Vec<String>) -> Result<(), SendRefused> {
        if self.state != State::Open {
            return Err(SendRefused::NotOpen);
        }
        let bytes: usize = msgs.iter().map(String::len).sum();
        let fits = self.outbox.len().saturating_add(msgs.len()) <= self.opts.outbox_messages
            && self.outbox_len.saturating_add(bytes) <= self.opts.outbox_bytes;
        if !fits {
            let (code, reason) = CLOSE_OUTBOX_FULL;
            self.set_closing(code, reason);
            return Err(SendRefused::Full);
        }
        self.outbox_len += bytes;
        self.outbox.extend(msgs);
        Ok(())
    }

    /// The next frame for the attached receiver, if any: every queued
    /// message batched into one `a[...]`, or, once the session is closing
    /// and the outbox is empty, the close frame (with `end`). A polling
    /// receiver's frame always has `end`. Call it after [`Session::send`]
    /// and [`Session::close`] until it returns `None`.
    pub fn take_frame(&mut self, now: Instant) -> Option<Frame> {
        let r = self.receiver?;
        let (text, end) = match &self.state {
            State::Open => (self.drain()?, r.kind == Receiver::Polling),
            State::Closing { code, reason } => {
                let close_frame = close(*code, reason);
                match self.drain() {
                    Some(a) => (a, r.kind == Receiver::Polling),
                    None => (close_frame, true),
                }
            }
            State::New | State::Closed => return None,
        };
        if end {
            self.release(now);
        } else if let Some(r) = self.receiver.as_mut() {
            r.heartbeat_at = now + self.opts.heartbeat;
        }
        Some(Frame { text, end })
    }

    /// Server-side close: from now on the close frame `c[code,"reason"]`
    /// goes to the attached receiver (after what is queued) and to every
    /// receiving request until the session expires. Returns `false` (and
    /// does nothing) if the session was already closing or closed.
    pub fn close(&mut self, code: u16, reason: &str) -> bool {
        if !matches!(self.state, State::New | State::Open) {
            return false;
        }
        self.set_closing(code, reason);
        true
    }

    /// Fire what is due at `now`.
    pub fn on_timer(&mut self, now: Instant) -> Tick {
        if let Some(r) = self.receiver.as_mut() {
            if now < r.heartbeat_at {
                return Tick::Nothing;
            }
            let end = r.kind == Receiver::Polling;
            r.heartbeat_at = now + self.opts.heartbeat;
            if end {
                self.release(now);
            }
            return Tick::Heartbeat(Frame {
                text: heartbeat().to_string(),
                end,
            });
        }
        match self.expire_at {
            Some(at) if now >= at => {
                self.state = State::Closed;
                self.expire_at = None;
                self.outbox.clear();
                self.outbox_len = 0;
                Tick::Expire
            }
            _ => Tick::Nothing,
        }
    }

    /// When [`Session::on_timer`] next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.receiver {
            Some(r) => Some(r.heartbeat_at),
            None => self.expire_at,
        }
    }

    /// `bytes` of wrapped frames were written on streaming receiver `id`.
    /// `true` when the response limit is reached: end that response (the
    /// session has let go of the receiver; the client reconnects). Always
    /// `false` for polling and WebSocket receivers and for a receiver that
    /// is no longer attached.
    pub fn account(&mut self, now: Instant, id: ReceiverId, bytes: usize) -> bool {
        let limit = self.opts.response_limit;
        let Some(r) = self.receiver.as_mut().filter(|r| r.id == id) else {
            return false;
        };
        if r.kind != Receiver::Streaming {
            return false;
        }
        r.written = r.written.saturating_add(bytes);
        if r.written >= limit {
            self.release(now);
            return true;
        }
        false
    }

    /// Let go of the receiver and start the disconnect delay.
    fn release(&mut self, now: Instant) {
        self.receiver = None;
        self.expire_at = Some(now + self.opts.disconnect_delay);
    }

    fn set_closing(&mut self, code: u16, reason: &str) {
        self.state = State::Closing {
            code,
            reason: reason.to_string(),
        };
    }

    /// The queued messages as one `a[...]` frame, emptying the outbox.
    fn drain(&mut self) -> Option<String> {
        if self.outbox.is_empty() {
            return None;
        }
        let frame = messages(&self.outbox);
        self.outbox.clear();
        self.outbox_len = 0;
        Some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> String {
        x.to_string()
    }

    #[test]
    fn routes() {
        use Method::{Get, Options, Post, Put};
        use Route::*;
        let sess = |server, session, transport, callback: Option<&str>| Session {
            server,
            session,
            transport,
            callback: callback.map(s),
        };
        let table: Vec<(&str, Option<&str>, Method, Route<'_>)> = vec![
            ("", None, Get, Greeting),
            ("/", None, Get, Greeting),
            ("", None, Post, MethodNotAllowed { allow: "GET" }),
            ("//", None, Get, NotFound),
            ("///", None, Get, NotFound),
            ("/a", None, Get, NotFound),
            ("/a.html", None, Get, NotFound),
            ("/a/a", None, Get, NotFound),
            ("/a/a/", None, Get, NotFound),
            ("/info", None, Get, Info),
            ("/info/", None, Get, Info),
            (
                "/info",
                None,
                Options,
                Preflight {
                    allow_methods: "OPTIONS, GET",
                },
            ),
            (
                "/info",
                None,
                Post,
                MethodNotAllowed {
                    allow: "OPTIONS, GET",
                },
            ),
            ("/iframe.html", None, Get, Iframe),
            ("/iframe-a.html", None, Get, Iframe),
            ("/iframe-.html", None, Get, Iframe),
            ("/iframe-0.1.2.html", Some("t=1234"), Get, Iframe),
            ("/iframe-0.1.2abc-dirty.2144.html", None, Get, Iframe),
            (
                "/iframe.html",
                None,
                Post,
                MethodNotAllowed { allow: "GET" },
            ),
            ("/iframe.htm", None, Get, NotFound),
            ("/iframe", None, Get, NotFound),
            ("/IFRAME.HTML", None, Get, NotFound),
            ("/IFRAME", None, Get, NotFound),
            ("/iframe.HTML", None, Get, NotFound),
            ("/iframe.xml", None, Get, NotFound),
            ("/iframe-/.html", None, Get, NotFound),
            ("/websocket", None, Get, RawWebsocket),
            ("/websocket", None, Post, MethodNotAllowed { allow: "GET" }),
            (
                "/000/abc/xhr",
                None,
                Post,
                sess("000", "abc", Transport::Xhr, None),
            ),
            (
                "/000/abc/xhr/",
                None,
                Post,
                sess("000", "abc", Transport::Xhr, None),
            ),
            (
                "/a/a1/xhr",
                None,
                Post,
                sess("a", "a1", Transport::Xhr, None),
            ),
            (
                "/_/_1/xhr",
                None,
                Post,
                sess("_", "_1", Transport::Xhr, None),
            ),
            ("/abcdefgh_i-j%20/abcdefg_i-j%201", None, Post, NotFound),
            (
                "/abcdefgh_i-j%20/abcdefg_i-j%201/xhr",
                None,
                Post,
                sess("abcdefgh_i-j%20", "abcdefg_i-j%201", Transport::Xhr, None),
            ),
            ("///xhr", None, Post, NotFound),
            ("/a./a/xhr", None, Post, NotFound),
            ("/a/a./xhr", None, Get, NotFound),
            ("/./././xhr", None, Post, NotFound),
            ("////xhr", None, Post, NotFound),
            ("/a/a/a/xhr", None, Post, NotFound),
            ("/a/a/xhr_nope", None, Post, NotFound),
            (
                "/000/abc/xhr",
                None,
                Get,
                MethodNotAllowed {
                    allow: "OPTIONS, POST",
                },
            ),
            (
                "/000/abc/xhr",
                None,
                Options,
                Preflight {
                    allow_methods: "OPTIONS, POST",
                },
            ),
            (
                "/abc/abc/xhr_send",
                None,
                Options,
                Preflight {
                    allow_methods: "OPTIONS, POST",
                },
            ),
            (
                "/abc/abc/xhr_streaming",
                None,
                Options,
                Preflight {
                    allow_methods: "OPTIONS, POST",
                },
            ),
            (
                "/0/0/xhr_send",
                None,
                Post,
                sess("0", "0", Transport::XhrSend, None),
            ),
            (
                "/0/0/xhr_streaming",
                None,
                Post,
                sess("0", "0", Transport::XhrStreaming, None),
            ),
            (
                "/0/0/websocket",
                None,
                Get,
                sess("0", "0", Transport::Websocket, None),
            ),
            (
                "/0/0/websocket",
                None,
                Post,
                MethodNotAllowed { allow: "GET" },
            ),
            (
                "/0/0/eventsource",
                None,
                Get,
                sess("0", "0", Transport::EventSource, None),
            ),
            (
                "/0/0/eventsource",
                None,
                Options,
                MethodNotAllowed { allow: "GET" },
            ),
            (
                "/0/0/htmlfile",
                Some("c=%63allback"),
                Get,
                sess("0", "0", Transport::HtmlFile, Some("callback")),
            ),
            (
                "/0/0/htmlfile",
                None,
                Get,
                BadCallback(CallbackError::Missing),
            ),
            (
                "/0/0/jsonp",
                Some("x=1&callback=cb"),
                Get,
                sess("0", "0", Transport::Jsonp, Some("cb")),
            ),
            (
                "/0/0/jsonp",
                Some("c=abc%28"),
                Get,
                BadCallback(CallbackError::Invalid),
            ),
            (
                "/0/0/jsonp",
                Some("c=x"),
                Post,
                MethodNotAllowed { allow: "GET" },
            ),
            (
                "/0/0/jsonp_send",
                None,
                Post,
                sess("0", "0", Transport::JsonpSend, None),
            ),
            (
                "/0/0/jsonp_send",
                None,
                Options,
                MethodNotAllowed { allow: "POST" },
            ),
            (
                "/0/0/xhr",
                None,
                Put,
                MethodNotAllowed {
                    allow: "OPTIONS, POST",
                },
            ),
        ];
        for (rest, query, method, want) in table {
            assert_eq!(
                route(rest, query, method),
                want,
                "{method:?} {rest} {query:?}"
            );
        }
        let long = format!("/0/{}/xhr", "a".repeat(MAX_ID_LEN + 1));
        assert_eq!(route(&long, None, Post), NotFound);
        // Never panics on odd input.
        for rest in [
            "\u{0}",
            "/\u{e9}/\u{e9}/xhr",
            "/a/b/c/d/e",
            "/iframe\u{e9}.html",
            "%",
            "/%2e/a/xhr",
        ] {
            let _ = route(rest, Some("c=%ff&callback"), Get);
        }
    }

    #[test]
    fn callbacks() {
        let table: [(Option<&str>, Result<&str, CallbackError>); 12] = [
            (None, Err(CallbackError::Missing)),
            (Some(""), Err(CallbackError::Missing)),
            (Some("x=1"), Err(CallbackError::Missing)),
            (Some("c=%63allback"), Ok("callback")),
            (Some("c=_jp.a1b2c3"), Ok("_jp.a1b2c3")),
            (Some("c=a-b"), Ok("a-b")),
            (Some("c=%20"), Err(CallbackError::Invalid)),
            (Some("c=*"), Err(CallbackError::Invalid)),
            (Some("c=abc("), Err(CallbackError::Invalid)),
            (Some("c=abc%28"), Err(CallbackError::Invalid)),
            (Some("c="), Err(CallbackError::Invalid)),
            (Some("c=%ff"), Err(CallbackError::Invalid)),
        ];
        for (q, want) in table {
            assert_eq!(callback_param(q), want.map(s), "{q:?}");
        }
        assert!(valid_callback(&"a".repeat(MAX_CALLBACK_LEN)));
        assert!(!valid_callback(&"a".repeat(MAX_CALLBACK_LEN + 1)));
        assert_eq!(
            CallbackError::Missing.to_string(),
            "\"callback\" parameter required"
        );
        assert_eq!(
            CallbackError::Invalid.to_string(),
            "invalid \"callback\" parameter"
        );
        assert_eq!(CallbackError::Invalid.status(), 500);
    }

    #[test]
    fn frames() {
        assert_eq!(open(), "o");
        assert_eq!(heartbeat(), "h");
        assert_eq!(close(3000, "Go away!"), "c[3000,\"Go away!\"]");
        assert_eq!(
            close(2010, "Another connection still open"),
            "c[2010,\"Another connection still open\"]"
        );
        assert_eq!(messages::<String>(&[]), "a[]");
        assert_eq!(messages(&[s("a")]), "a[\"a\"]");
        assert_eq!(messages(&[s("a"), s("b\"c")]), "a[\"a\",\"b\\\"c\"]");
        let table = [
            ("  \u{0}\n\r ", "\"  \\u0000\\n\\r \""),
            ("\u{8}\u{c}\t\\/", "\"\\b\\f\\t\\\\/\""),
            ("\u{1f}\u{7f}\u{ad}", "\"\\u001f\u{7f}\u{ad}\""),
            (
                "\u{200b}\u{200c}\u{200f}\u{2010}",
                "\"\u{200b}\\u200c\\u200f\u{2010}\"",
            ),
            (
                "\u{2028}\u{2029}\u{202f}\u{2030}",
                "\"\\u2028\\u2029\\u202f\u{2030}\"",
            ),
            (
                "\u{205f}\u{2060}\u{206f}\u{2070}",
                "\"\u{205f}\\u2060\\u206f\u{2070}\"",
            ),
            (
                "\u{ffef}\u{fff0}\u{fffe}\u{ffff}",
                "\"\u{ffef}\\ufff0\\ufffe\\uffff\"",
            ),
            ("\u{10000}é", "\"\u{10000}é\""),
        ];
        for (input, want) in table {
            assert_eq!(quote(input), want, "{input:?}");
        }
    }

    /// The suite's `test_xhr_server_encodes`: every code point from 255 up
    /// matching its `escapable_by_server` must come back as `\uXXXX`.
    #[test]
    fn server_killer_string() {
        let in_suite = |u: u32| matches!(u, 0x200c..=0x200f | 0x2028..=0x202f | 0x2060..=0x206f | 0xfff0..=0xffff);
        let mut input = String::new();
        let mut want = String::from("\"");
        for u in 255..65536u32 {
            if in_suite(u) {
                if let Some(c) = char::from_u32(u) {
                    input.push(c);
                    let _ = write!(want, "\\u{u:04x}");
                }
            }
        }
        want.push('"');
        assert_eq!(quote(&input), want);
        // And nothing else is escaped beyond JSON's own rules.
        for u in 0..=0x10ffffu32 {
            let Some(c) = char::from_u32(u) else { continue };
            let q = quote(&c.to_string());
            let plain = q == format!("\"{c}\"");
            let must = u < 0x20 || c == '"' || c == '\\' || in_suite(u);
            assert_eq!(!plain, must, "U+{u:04X}");
        }
    }

    #[test]
    fn wrapping() {
        use Transport::*;
        let cb = Some("callback");
        let table: [(Transport, &str, Option<&str>, &str); 12] = [
            (Xhr, "o", None, "o\n"),
            (XhrStreaming, "a[\"x\"]", None, "a[\"x\"]\n"),
            (EventSource, "o", None, "data: o\r\n\r\n"),
            (EventSource, "a[\"x\"]", None, "data: a[\"x\"]\r\n\r\n"),
            (
                EventSource,
                "a[\"  \\u0000\\n\\r \"]",
                None,
                "data: a[\"  \\u0000\\n\\r \"]\r\n\r\n",
            ),
            (
                EventSource,
                "a[\"100%\"]",
                None,
                "data: a[\"100%25\"]\r\n\r\n",
            ),
            (HtmlFile, "o", cb, "<script>\np(\"o\");\n</script>\r\n"),
            (
                HtmlFile,
                "a[\"x\"]",
                cb,
                "<script>\np(\"a[\\\"x\\\"]\");\n</script>\r\n",
            ),
            (
                HtmlFile,
                "a[\"</script>\"]",
                cb,
                "<script>\np(\"a[\\\"\\u003c/script\\u003e\\\"]\");\n</script>\r\n",
            ),
            (Jsonp, "o", cb, "/**/callback(\"o\");\r\n"),
            (
                Jsonp,
                "c[3000,\"Go away!\"]",
                Some("x"),
                "/**/x(\"c[3000,\\\"Go away!\\\"]\");\r\n",
            ),
            (Websocket, "a[\"a\"]", None, "a[\"a\"]"),
        ];
        for (t, frame, cb, want) in table {
            assert_eq!(
                String::from_utf8(wrap(t, frame, cb)).unwrap(),
                want,
                "{t:?} {frame}"
            );
        }
        assert_eq!(wrap(Jsonp, "o", Some("a(b")), b"/**/(\"o\");\r\n");
        assert!(wrap(XhrSend, "o", None).is_empty());
    }

    #[test]
    fn preludes() {
        let x = prelude(Transport::XhrStreaming, None);
        assert_eq!(x.len(), 2049);
        assert!(x[..2048].iter().all(|&b| b == b'h'));
        assert_eq!(x[2048], b'\n');
        assert_eq!(prelude(Transport::EventSource, None), b"\r\n");
        assert!(prelude(Transport::Xhr, None).is_empty());
        assert!(prelude(Transport::Jsonp, Some("x")).is_empty());
        let page = String::from_utf8(prelude(Transport::HtmlFile, Some("callback"))).unwrap();
        let head = "<!doctype html>\n<html><head>\n  \
<meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n  \
<meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n\
</head><body><h2>Don't panic!</h2>\n  <script>\n    \
document.domain = document.domain;\n    var c = parent.callback;\n    \
c.start();\n    function p(d) {c.message(d);};\n    \
window.onload = function() {c.stop();};\n  </script>";
        assert_eq!(page.trim(), head);
        assert!(page.len() > 1024);
        assert!(page.ends_with("\r\n\r\n"));
        let long = String::from_utf8(prelude(Transport::HtmlFile, Some(&"c".repeat(32)))).unwrap();
        assert!(long.len() > 1024);
    }

    type Parsed = Result<Vec<String>, SendError>;

    #[test]
    fn send_bodies() {
        use Transport::{JsonpSend, XhrSend};
        let form = "application/x-www-form-urlencoded";
        let ok = |v: &[&str]| Ok(v.iter().map(|x| s(x)).collect::<Vec<_>>());
        let table: Vec<(Transport, &str, &[u8], Parsed)> = vec![
            (XhrSend, "", b"[\"a\"]", ok(&["a"])),
            (XhrSend, "T", b"[\"a\"]", ok(&["a"])),
            (
                XhrSend,
                "application/xml",
                b"[\"a\",\"b\"]",
                ok(&["a", "b"]),
            ),
            (XhrSend, "text/plain", b"[]", ok(&[])),
            (XhrSend, "", b"[\"x", Err(SendError::BrokenJson)),
            (XhrSend, "", b"", Err(SendError::Empty)),
            (XhrSend, "", b"{}", Err(SendError::NotStringArray)),
            (XhrSend, "", b"[1]", Err(SendError::NotStringArray)),
            (XhrSend, "", b"\"a\"", Err(SendError::NotStringArray)),
            (XhrSend, "", b"[\"\\ud800\"]", Err(SendError::BrokenJson)),
            (
                XhrSend,
                "",
                b"[\"  \\u0000\\n\\r \"]",
                ok(&["  \u{0}\n\r "]),
            ),
            (XhrSend, "", b"\xff", Err(SendError::BrokenJson)),
            (JsonpSend, form, b"d=%5B%22x%22%5D", ok(&["x"])),
            (
                JsonpSend,
                "Application/X-WWW-Form-Urlencoded; charset=UTF-8",
                b"d=%5B%22x%22%5D",
                ok(&["x"]),
            ),
            (JsonpSend, form, b"d=%5B%5D", ok(&[])),
            (JsonpSend, form, b"d=%5B%22x", Err(SendError::BrokenJson)),
            (JsonpSend, form, b"", Err(SendError::Empty)),
            (JsonpSend, form, b"d=", Err(SendError::Empty)),
            (JsonpSend, form, b"p=p", Err(SendError::Empty)),
            (JsonpSend, form, b"d=%ff", Err(SendError::BrokenJson)),
            (JsonpSend, form, b"d=[\"a+b\"]", ok(&["a b"])),
            (JsonpSend, "text/plain", b"[\"%61bc\"]", ok(&["%61bc"])),
            (JsonpSend, "", b"[\"abc\"]", ok(&["abc"])),
            (JsonpSend, "", b"\"[\\\"abc\\\"]\"", ok(&["abc"])),
            (JsonpSend, "text/plain", b"", Err(SendError::Empty)),
            (JsonpSend, "text/plain", b"[\"x", Err(SendError::BrokenJson)),
            (Transport::Xhr, "", b"[\"a\"]", Err(SendError::Empty)),
        ];
        for (t, ct, body, want) in table {
            assert_eq!(
                parse_send(t, ct, body),
                want,
                "{t:?} {ct} {:?}",
                String::from_utf8_lossy(body)
            );
        }
        assert_eq!(SendError::Empty.to_string(), "Payload expected.");
        assert_eq!(SendError::BrokenJson.to_string(), "Broken JSON encoding.");
        assert!(SendError::NotStringArray
            .to_string()
            .contains("Payload expected."));
        assert_eq!(SendError::BrokenJson.status(), 500);
    }

    #[test]
    fn ws_messages() {
        let table: [(&str, Result<Vec<String>, SendError>); 7] = [
            ("", Ok(vec![])),
            ("[]", Ok(vec![])),
            ("[\"a\"]", Ok(vec![s("a")])),
            ("\"a\"", Ok(vec![s("a")])),
            ("[\"a", Err(SendError::BrokenJson)),
            ("1", Err(SendError::NotStringArray)),
            ("[\"a\",null]", Err(SendError::NotStringArray)),
        ];
        for (text, want) in table {
            assert_eq!(parse_ws_message(text), want, "{text}");
        }
    }

    /// The suite's `test_xhr_server_decodes`: the client escapes a long
    /// list of code points; they all decode.
    #[test]
    fn client_escapes_decode() {
        let mut body = String::from("[\"");
        let mut want = String::new();
        for u in (0u32..0xd800).chain(0xe000..0x10000) {
            let _ = write!(body, "\\u{u:04x}");
            want.push(char::from_u32(u).unwrap());
        }
        body.push_str("\"]");
        assert_eq!(
            parse_send(Transport::XhrSend, "", body.as_bytes()),
            Ok(vec![want.clone()])
        );
        // And the echo comes back as JSON that decodes to the same string.
        let frame = messages(&[want.clone()]);
        let v = json::parse(&frame.as_bytes()[1..], json::Limits::default()).unwrap();
        assert_eq!(v, json::Value::Array(vec![json::Value::String(want)]));
    }

    #[test]
    fn info_and_iframe() {
        let info = info_json(true, false, 4_294_967_295);
        assert_eq!(
            info,
            "{\"websocket\":true,\"origins\":[\"*:*\"],\"cookie_needed\":false,\"entropy\":4294967295}"
        );
        let v = json::parse(
            info_json(false, true, 7).as_bytes(),
            json::Limits::default(),
        )
        .unwrap();
        assert_eq!(v.get("websocket"), Some(&json::Value::Bool(false)));
        assert_eq!(v.get("cookie_needed"), Some(&json::Value::Bool(true)));
        assert_eq!(v.get("entropy"), Some(&json::Value::Number(s("7"))));

        let html = iframe_html("/sockjs.js");
        let want = "<!DOCTYPE html>\n<html>\n<head>\n  \
<meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n  \
<meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n  \
<script src=\"/sockjs.js\"></script>\n  <script>\n    \
document.domain = document.domain;\n    SockJS.bootstrap_iframe();\n  </script>\n\
</head>\n<body>\n  <h2>Don't panic!</h2>\n  \
<p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>\n\
</body>\n</html>";
        assert_eq!(html, want);
        assert!(iframe_html("/a\"><script>").contains("src=\"/a&quot;&gt;&lt;script&gt;\""));

        let e = etag(&html);
        assert_eq!(e, etag(&iframe_html("/sockjs.js")));
        assert_ne!(e, etag(&iframe_html(DEFAULT_CLIENT_URL)));
        assert!(e.starts_with('"') && e.ends_with('"') && e.len() == 18);
        assert_eq!(etag(""), "\"cbf29ce484222325\"");
        assert!(etag_matches(&e, &e));
        assert!(etag_matches(&format!("\"x\", W/{e}"), &e));
        assert!(etag_matches("*", &e));
        assert!(!etag_matches("\"x\"", &e));
        assert!(!etag_matches("", &e));
    }

    #[test]
    fn dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(http_date(1_709_210_096), "Thu, 29 Feb 2024 12:34:56 GMT");
        assert_eq!(http_date(4_102_444_799), "Thu, 31 Dec 2099 23:59:59 GMT");
        let _ = http_date(u64::MAX);
    }

    fn head(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut v = Vec::new();
        f(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn headers() {
        let none = RequestInfo::default();
        let test = RequestInfo {
            origin: Some("test"),
            request_headers: Some("a, b, c"),
            cookie: Some("x=1; JSESSIONID=abcdef"),
        };
        let null = RequestInfo {
            origin: Some("null"),
            ..RequestInfo::default()
        };
        assert_eq!(
            head(|o| push_cors(o, &none, false)),
            "Access-Control-Allow-Origin: *\r\nVary: Origin\r\n"
        );
        assert_eq!(
            head(|o| push_cors(o, &test, false)),
            "Access-Control-Allow-Origin: test\r\nAccess-Control-Allow-Credentials: true\r\n\
Vary: Origin\r\nAccess-Control-Allow-Headers: a, b, c\r\n"
        );
        assert!(head(|o| push_cors(o, &null, false))
            .starts_with("Access-Control-Allow-Origin: null\r\n"));
        assert!(head(|o| push_cors(o, &null, true))
            .starts_with("Access-Control-Allow-Origin: *\r\nVary"));
        let empty_acrh = RequestInfo {
            request_headers: Some(""),
            ..test
        };
        assert!(!head(|o| push_cors(o, &empty_acrh, false)).contains("Allow-Headers"));

        assert_eq!(
            head(|o| push_preflight_headers(o, "OPTIONS, POST", &test, true, 0)),
            "Cache-Control: public, max-age=31536000\r\nExpires: Fri, 01 Jan 1971 00:00:00 GMT\r\n\
Access-Control-Allow-Methods: OPTIONS, POST\r\nAccess-Control-Max-Age: 31536000\r\n\
Access-Control-Allow-Origin: test\r\nAccess-Control-Allow-Credentials: true\r\n\
Vary: Origin\r\nAccess-Control-Allow-Headers: a, b, c\r\n\
Set-Cookie: JSESSIONID=abcdef; path=/\r\n"
        );
        assert_eq!(
            head(|o| push_info_headers(o, &none)),
            "Content-Type: application/json; charset=UTF-8\r\nCache-Control: no-store, no-cache, \
no-transform, must-revalidate, max-age=0\r\nAccess-Control-Allow-Origin: *\r\nVary: Origin\r\n"
        );
        assert_eq!(
            head(|o| push_iframe_headers(o, "\"e\"", 0, true)),
            "Content-Type: text/html; charset=UTF-8\r\nCache-Control: public, max-age=31536000\r\n\
Expires: Fri, 01 Jan 1971 00:00:00 GMT\r\nETag: \"e\"\r\n"
        );
        let jsonp = head(|o| push_session_headers(o, Transport::Jsonp, &none, true));
        assert!(jsonp.starts_with("Content-Type: application/javascript; charset=UTF-8\r\n"));
        assert!(jsonp.contains("X-Content-Type-Options: nosniff\r\n"));
        assert!(jsonp.ends_with("Set-Cookie: JSESSIONID=dummy; path=/\r\n"));
        let es = head(|o| push_session_headers(o, Transport::EventSource, &null, false));
        assert!(es.starts_with("Content-Type: text/event-stream\r\nCache-Control: no-store"));
        assert!(es.contains("X-Accel-Buffering: no\r\n"));
        assert!(!es.contains("Set-Cookie"));
        assert!(head(|o| push_session_headers(o, Transport::Websocket, &none, true)).is_empty());
        let send = head(|o| push_session_headers(o, Transport::XhrSend, &test, false));
        assert!(send.starts_with("Content-Type: text/plain; charset=UTF-8\r\n"));
        assert!(!send.contains("X-Accel"));

        let jar = [
            (None, "dummy"),
            (Some(""), "dummy"),
            (Some("JSESSIONID=abcdef"), "abcdef"),
            (Some("a=b;  JSESSIONID = xyz ; c=d"), "xyz"),
            (Some("JSESSIONID="), "dummy"),
            (Some("JSESSIONID=a\"b"), "dummy"),
            (Some("XJSESSIONID=abc"), "dummy"),
        ];
        for (cookie, want) in jar {
            assert_eq!(jsessionid(cookie), want, "{cookie:?}");
        }
        let long = format!("JSESSIONID={}", "a".repeat(MAX_COOKIE_LEN + 1));
        assert_eq!(jsessionid(Some(&long)), "dummy");
    }

    // --- Session, on a virtual clock ---

    const SEC: Duration = Duration::from_secs(1);

    fn opts() -> SessionOpts {
        SessionOpts {
            heartbeat: 25 * SEC,
            disconnect_delay: 5 * SEC,
            response_limit: 4096,
            outbox_bytes: 1000,
            outbox_messages: 10,
        }
    }

    fn attached(a: Attach) -> (ReceiverId, Vec<String>, bool, bool) {
        match a {
            Attach::Attached {
                id,
                frames,
                end,
                opened,
            } => (id, frames, end, opened),
            other => panic!("not attached: {other:?}"),
        }
    }

    fn frame(text: &str, end: bool) -> Frame {
        Frame { text: s(text), end }
    }

    #[test]
    fn polling_session() {
        let t0 = Instant::now();
        let mut ss = Session::new(t0, opts());
        assert_eq!(ss.state(), &State::New);
        assert_eq!(ss.next_deadline(), Some(t0 + 5 * SEC));
        // First poll: "o", response ends, disconnect delay runs.
        let (_, frames, end, opened) = attached(ss.attach(t0, Receiver::Polling));
        assert_eq!((frames, end, opened), (vec![s("o")], true, true));
        assert!(ss.is_open() && !ss.has_receiver());
        assert_eq!(ss.next_deadline(), Some(t0 + 5 * SEC));
        // xhr_send (echo) queues; the next poll gets the batch at once.
        ss.send(vec![s("a")]).unwrap();
        ss.send(vec![s("b")]).unwrap();
        assert_eq!(ss.take_frame(t0), None, "no receiver: stays queued");
        let (_, frames, end, opened) = attached(ss.attach(t0 + SEC, Receiver::Polling));
        assert_eq!(
            (frames, end, opened),
            (vec![s("a[\"a\",\"b\"]")], true, false)
        );
        // A poll with nothing queued waits.
        let t2 = t0 + 2 * SEC;
        let (id, frames, end, _) = attached(ss.attach(t2, Receiver::Polling));
        assert!(frames.is_empty() && !end);
        assert_eq!(ss.next_deadline(), Some(t2 + 25 * SEC));
        // Waiting poll gets a message and ends.
        ss.send(vec![s("x")]).unwrap();
        assert_eq!(ss.take_frame(t2), Some(frame("a[\"x\"]", true)));
        assert_eq!(ss.take_frame(t2), None);
        assert!(!ss.has_receiver());
        // A stale detach for the finished poll changes nothing.
        ss.detach(t2, id, Detach::Interrupted);
        assert!(ss.is_open());
        // A waiting poll gets a heartbeat after 25 s and ends.
        let (_, _, _, _) = attached(ss.attach(t2, Receiver::Polling));
        assert_eq!(ss.on_timer(t2 + 24 * SEC), Tick::Nothing);
        assert_eq!(
            ss.on_timer(t2 + 25 * SEC),
            Tick::Heartbeat(frame("h", true))
        );
        assert!(!ss.has_receiver());
        // Nobody polls: expiry after the disconnect delay, never early.
        let t3 = t2 + 25 * SEC;
        assert_eq!(ss.next_deadline(), Some(t3 + 5 * SEC));
        assert_eq!(
            ss.on_timer(t3 + 5 * SEC - Duration::from_millis(1)),
            Tick::Nothing
        );
        assert_eq!(ss.on_timer(t3 + 5 * SEC), Tick::Expire);
        assert_eq!(ss.state(), &State::Closed);
        assert_eq!(ss.next_deadline(), None);
        assert_eq!(ss.attach(t3 + 6 * SEC, Receiver::Polling), Attach::Gone);
        assert_eq!(ss.send(vec![s("late")]), Err(SendRefused::NotOpen));
    }

    #[test]
    fn second_receiver_is_rejected() {
        let t0 = Instant::now();
        let mut ss = Session::new(t0, opts());
        attached(ss.attach(t0, Receiver::Polling));
        let (id, _, end, _) = attached(ss.attach(t0, Receiver::Polling));
        assert!(!end);
        for kind in [Receiver::Polling, Receiver::Streaming] {
            assert_eq!(
                ss.attach(t0, kind),
                Attach::Rejected(s("c[2010,\"Another connection still open\"]"))
            );
        }
        assert!(ss.is_open() && ss.has_receiver());
        // The first one is still attached and gets the messages.
        ss.send(vec![s("m")]).unwrap();
        assert_eq!(ss.take_frame(t0), Some(frame("a[\"m\"]", true)));
        let _ = id;
    }

    #[test]
    fn interrupted_poll_closes_with_1002() {
        let t0 = Instant::now();
        let mut ss = Session::new(t0, opts());
        attached(ss.attach(t0, Receiver::Polling));
        let (id, _, _, _) = attached(ss.attach(t0, Receiver::Polling));
        ss.detach(t0 + SEC, id, Detach::Interrupted);
        assert_eq!(
            ss.state(),
            &State::Closing {
                code: 1002,
                reason: s("Connection interrupted")
            }
        );
        let (_, frames, end, _) = attached(ss.attach(t0 + 2 * SEC, Receiver::Polling));
        assert_eq!(
            (frames, end),
            (vec![s("c[1002,\"Connection interrupted\"]")], true)
        );
        assert_eq!(ss.on_timer(t0 + 7 * SEC), Tick::Expire);
    }

    #[test]
    fn server_close() {
        // The `close` service: open, then close at once.
        let t0 = Instant::now();
        let mut ss = Session::new(t0, opts());
        let (_, frames, _, opened) = attached(ss.attach(t0, Receiver::Polling));
        assert!(opened && frames == [s("o")]);
        assert!(ss.close(3000, "Go away!"));
        assert!(!ss.close(3001, "again"));
        assert!(!ss.is_open());
        assert_eq!(ss.send(vec![s("x")]), Err(SendRefused::NotOpen));
        // Every receiving request gets the close frame until expiry, and
        // each one restarts the disconnect delay.
        for i in 1..=3 {
            let t = t0 + i * 4 * SEC;
            assert_eq!(ss.on_timer(t), Tick::Nothing);
            for kind in [Receiver::Polling, Receiver::Streaming] {
                let (_, frames, end, opened) = attached(ss.attach(t, kind));
                assert_eq!(
                    (frames, end, opened),
                    (vec![s("c[3000,\"Go away!\"]")], true, false)
                );
            }
            assert!(!ss.has_receiver());
        }
        assert_eq!(ss.on_timer(t0 + 17 * SEC), Tick::Expire);
    }

    #[test]
    fn close_with_streaming_receiver() {
        let t0 = Instant::now();
        let mut ss = Session::new(t0, opts());
        let (id, frames, end, _) = attached(ss.attach(t0, Receiver::Streaming));
        assert_eq!((frames, end), (vec![s("o")], false));
        ss.send(vec![s("last")]).unwrap();
        ss.close(3000, "Go away!");
        // Queued messages go first, then the close frame ends the response.
        assert_eq!(ss.take_frame(t0), Some(frame("a[\"last\"]", false)));
        assert_eq!(ss.take_frame(t0), Some(frame("c[3000,\"Go away!\"]", true)));
        assert_eq!(ss.take_frame(t0), None);
        assert!(!ss.has_receiver());
        assert!(!ss.account(t0, id, 10));
        // A new request gets the close frame, not "Another connection".
        let (_, frames, end, _) = attached(ss.attach(t0, Receiver::Streaming));
        assert_eq!((frames, end), (vec![s("c[3000,\"Go away!\"]")], true));
    }

    #[test]
    fn closing_poll_gets_queue_then_close() {
        let t0 = Instant::now();
        let mut ss = Session::new(t0, opts());
        attached(ss.attach(t0, Receiver::Polling));
        ss.send(vec![s("a")]).unwrap();
        ss.close(3000, "Go away!");
        let (_, frames, end, _) = attached(ss.attach(t0, Receiver::Polling));
        assert_eq!((frames, end), (vec![s("a[\"a\"]")], true));
        let (_, frames, _, _) = attached(ss.attach(t0, Receiver::Polling));
        assert_eq!(frames, vec![s("c[3000,\"Go away!\"]")]);
    }

    #[test]
    fn streaming_heartbeat_and_response_limit() {
        let t0 = Instant::now();
        let mut ss = Session::new(t0, opts());
        let (id, frames, _, _) = attached(ss.attach(t0, Receiver::Streaming));
        assert!(!ss.account(
            t0,
            id,
            wrap(Transport::XhrStreaming, &frames[0], None).len()
        ));
        // Heartbeat 25 s after the last frame; a frame moves it.
        ss.send(vec![s("x")]).unwrap();
        let t1 = t0 + 10 * SEC;
        assert_eq!(ss.take_frame(t1), Some(frame("a[\"x\"]", false)));
        assert_eq!(ss.on_timer(t0 + 25 * SEC), Tick::Nothing);
        assert_eq!(ss.next_deadline(), Some(t1 + 25 * SEC));
        assert_eq!(
            ss.on_timer(t1 + 25 * SEC),
            Tick::Heartbeat(frame("h", false))
        );
        assert_eq!(ss.next_deadline(), Some(t1 + 50 * SEC));
        assert!(ss.has_receiver());
        // The suite's xhr_streaming limit test: 31 messages of 130 bytes
        // (quoted) after "o\n" pass 4096 bytes on the 31st.
        let mut ss = Session::new(t0, opts());
        let (id, frames, _, _) = attached(ss.attach(t0, Receiver::Streaming));
        let mut written = wrap(Transport::XhrStreaming, &frames[0], None).len();
        assert!(!ss.account(t0, id, written));
        let msg = "x".repeat(128);
        for i in 1..=31 {
            ss.send(vec![msg.clone()]).unwrap();
            let f = ss.take_frame(t0).unwrap();
            assert!(!f.end);
            let bytes = wrap(Transport::XhrStreaming, &f.text, None).len();
            written += bytes;
            assert_eq!(
                ss.account(t0, id, bytes),
                i == 31,
                "message {i}, {written} bytes"
            );
        }
        assert!(!ss.has_receiver() && ss.is_open());
        assert_eq!(ss.next_deadline(), Some(t0 + 5 * SEC));
        // The client reconnects and carries on.
        let (_, frames, end, opened) = attached(ss.attach(t0 + SEC, Receiver::Streaming));
        assert!(frames.is_empty() && !end && !opened);
    }

    #[test]
    fn websocket_receiver() {
        let t0 = Instant::now();
        let mut ss = Session::new(t0, opts());
        let (id, frames, end, opened) = attached(ss.attach(t0, Receiver::WebSocket));
        assert_eq!((frames, end, opened), (vec![s("o")], false, true));
        for _ in 0..100 {
            ss.send(vec![s("a")]).unwrap();
            assert_eq!(ss.take_frame(t0), Some(frame("a[\"a\"]", false)));
            assert!(
                !ss.account(t0, id, 1 << 20),
                "no response limit on a websocket"
            );
        }
        assert_eq!(
            ss.on_timer(t0 + 25 * SEC),
            Tick::Heartbeat(frame("h", false))
        );
        ss.close(3000, "Go away!");
        assert_eq!(ss.take_frame(t0), Some(frame("c[3000,\"Go away!\"]", true)));
    }

    #[test]
    fn outbox_is_bounded() {
        let t0 = Instant::now();
        let mut ss = Session::new(t0, opts());
        attached(ss.attach(t0, Receiver::Polling));
        assert_eq!(ss.send(vec![s(""); 10]), Ok(()));
        assert_eq!(ss.send(vec![s("")]), Err(SendRefused::Full));
        assert_eq!(
            ss.state(),
            &State::Closing {
                code: 3001,
                reason: s("Receiver too slow: outbox full")
            }
        );
        // What was queued before still goes out, then the close frame.
        let (_, frames, _, _) = attached(ss.attach(t0, Receiver::Streaming));
        assert_eq!(frames.len(), 2);
        assert!(frames[1].starts_with("c[3001,"));

        let mut ss = Session::new(t0, opts());
        attached(ss.attach(t0, Receiver::Polling));
        assert_eq!(ss.send(vec!["x".repeat(999)]), Ok(()));
        assert_eq!(ss.send(vec![s("ab")]), Err(SendRefused::Full));
        assert_eq!(ss.queued(), 1, "the refused batch is not queued");
        let mut ss = Session::new(t0, opts());
        attached(ss.attach(t0, Receiver::Polling));
        assert_eq!(ss.send(vec!["x".repeat(1001)]), Err(SendRefused::Full));
        assert_eq!(
            SendRefused::Full.to_string(),
            "session outbox full: session closed"
        );
    }

    #[test]
    fn unattached_new_session_expires() {
        let t0 = Instant::now();
        let mut ss = Session::new(t0, opts());
        assert_eq!(ss.on_timer(t0 + 5 * SEC), Tick::Expire);
    }

    /// Seeded garbage through every parser: no panics.
    #[test]
    fn garbage_never_panics() {
        // Fixed seed: a failure reproduces as is.
        let mut x: u64 = 0x5eed_50c5;
        let alphabet = b"[]\"\\/%.&=+;,ucdx0aF\x00\xff\xc3\xa9 \r\n";
        for _ in 0..20_000 {
            let len = (x % 24) as usize;
            let mut buf = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf.push(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            let text = String::from_utf8_lossy(&buf);
            let _ = parse_send(Transport::XhrSend, "", &buf);
            let _ = parse_send(
                Transport::JsonpSend,
                "application/x-www-form-urlencoded",
                &buf,
            );
            let _ = parse_send(Transport::JsonpSend, "text/plain", &buf);
            let _ = parse_ws_message(&text);
            let _ = callback_param(Some(&text));
            let _ = jsessionid(Some(&text));
            for m in [Method::Get, Method::Post, Method::Options] {
                let _ = route(&text, Some(&text), m);
            }
            let _ = wrap(Transport::EventSource, &text, None);
        }
    }

    #[test]
    fn transport_table() {
        for t in Transport::ALL {
            assert_eq!(Transport::from_name(t.name()), Some(t));
            assert_eq!(
                t.receiver().is_none(),
                matches!(t, Transport::XhrSend | Transport::JsonpSend)
            );
        }
        assert_eq!(Transport::from_name("xhr_polling"), None);
        assert_eq!(Transport::Xhr.receiver(), Some(Receiver::Polling));
        assert_eq!(Transport::HtmlFile.receiver(), Some(Receiver::Streaming));
        assert_eq!(Transport::Websocket.content_type(), None);
        assert_eq!(
            Transport::Xhr.content_type(),
            Some("application/javascript; charset=UTF-8")
        );
    }
}
