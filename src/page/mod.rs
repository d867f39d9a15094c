//! The browser page on `/`, the no-JavaScript form on `/noscript`, and the
//! QR code of a receive link on `/qr`.
//!
//! The page is one self-contained HTML document: its style and script are
//! `include_str!` assets from this directory, inlined into `index.html` with
//! a fresh nonce per response, and the `Content-Security-Policy` lets only
//! that nonce run or style (no `unsafe-inline`, nothing from elsewhere).
//! `/` goes to a client whose `Accept` names `text/html` (a browser); curl
//! and every other client keep the text help of [`crate::help`].
//! Sans-io: a head in, a body and headers out.

pub mod qr;

use crate::http::Head;

const INDEX: &str = include_str!("index.html");
const STYLE: &str = include_str!("page.css");
const SCRIPT: &str = include_str!("page.js");
const NOSCRIPT: &str = include_str!("noscript.html");

/// Whether the request comes from a browser navigating to the page: its
/// `Accept` names `text/html`.
pub fn wants_html(head: &Head<'_>) -> bool {
    head.headers("accept").any(|v| {
        v.split(|&b| b == b',').any(|item| {
            let media = item.split(|&b| b == b';').next().unwrap_or(b"");
            media.trim_ascii().eq_ignore_ascii_case(b"text/html")
        })
    })
}

/// A page and the headers that go with it (each line ends in `\r\n`).
#[derive(Debug)]
pub struct Page {
    /// The HTML.
    pub body: String,
    /// `Content-Security-Policy` and the other headers of the page.
    pub headers: String,
}

/// Headers every page carries besides its policy.
const PAGE_HEADERS: &str = "X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n\
     X-Frame-Options: DENY\r\nCache-Control: no-store\r\n";

fn policy(nonce: &str, scripts: bool) -> String {
    let script = if scripts {
        format!("script-src 'nonce-{nonce}'; connect-src 'self'; ")
    } else {
        String::new()
    };
    format!(
        "Content-Security-Policy: default-src 'none'; {script}style-src 'nonce-{nonce}'; \
         img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'\r\n{PAGE_HEADERS}"
    )
}

/// `/` for a browser. `nonce` is fresh for each response (128 random bits
/// from [`crate::ids::new_token`]).
pub fn index(nonce: &str) -> Page {
    let body = INDEX
        .replace("{{NONCE}}", nonce)
        .replace("{{VERSION}}", env!("CARGO_PKG_VERSION"))
        // Last, so the assets themselves are never searched for placeholders.
        .replacen("{{STYLE}}", STYLE, 1)
        .replacen("{{SCRIPT}}", SCRIPT, 1);
    Page {
        body,
        headers: policy(nonce, true),
    }
}

/// `/noscript`: one form that sends a file or a text to a path, with no
/// JavaScript. The path is `?path=` (safe characters only) or `fresh`, a
/// random one the caller made; `tls` says the request came over TLS (for
/// the URL shown).
pub fn noscript(head: &Head<'_>, trust_proxy: bool, tls: bool, nonce: &str, fresh: &str) -> Page {
    let asked: String = head
        .query_param("path")
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.~/".contains(*c))
        .take(200)
        .collect();
    let asked = asked.trim_matches('/');
    let path = if asked.is_empty() { fresh } else { asked };
    let body = NOSCRIPT
        .replace("{{NONCE}}", nonce)
        .replace("{{VERSION}}", env!("CARGO_PKG_VERSION"))
        .replace("{{PATH}}", path)
        .replace("{{BASE}}", &crate::help::origin(head, trust_proxy, tls))
        .replacen("{{STYLE}}", STYLE, 1);
    Page {
        body,
        headers: policy(nonce, false),
    }
}

/// `/qr?t=<percent-encoded text>`: the text as a QR code in SVG, or why not.
pub fn qr_svg(head: &Head<'_>) -> Result<String, &'static str> {
    let raw = head
        .query_param("t")
        .ok_or("Give the text to encode: /qr?t=<percent-encoded text>.")?;
    qr_for_query(raw)
}

/// [`qr_svg`] for the raw (still percent-encoded) value of `?t=`.
pub fn qr_for_query(raw: &str) -> Result<String, &'static str> {
    let text = percent_decode(raw).ok_or("Bad percent-encoding in ?t=.")?;
    qr::Qr::encode(&text)
        .map(|q| q.svg())
        .map_err(|_| "Too long for a QR code here: 213 bytes at most.")
}

/// Headers of the QR code's SVG: an image, nothing in it may run.
pub const QR_HEADERS: &str = "Content-Security-Policy: default-src 'none'\r\n\
     X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n";

/// `%XX` and `+` (a space, as forms send it) decoded; `None` on a bad escape.
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb+c").as_deref(), Some(&b"a/b c"[..]));
        assert_eq!(percent_decode("%E2%82%AC").as_deref(), Some("€".as_bytes()));
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%zz"), None);
    }

    #[test]
    fn only_an_accept_naming_text_html_gets_the_page() {
        let cases: &[(&str, bool)] = &[
            ("", false),
            ("Accept: */*\r\n", false),
            (
                "Accept: text/html,application/xhtml+xml;q=0.9,*/*;q=0.8\r\n",
                true,
            ),
            ("Accept: application/json, TEXT/HTML ;q=0.5\r\n", true),
            ("Accept: text/htmlx\r\n", false),
            ("Accept: text/plain\r\nAccept: text/html\r\n", true),
        ];
        for (headers, want) in cases {
            let raw = format!("GET / HTTP/1.1\r\nHost: t\r\n{headers}\r\n");
            let head = crate::http::request::parse_again(raw.as_bytes()).expect("a head");
            assert_eq!(wants_html(&head), *want, "{headers:?}");
        }
    }

    #[test]
    fn the_page_has_its_assets_and_one_nonce() {
        let p = index("abc123");
        assert!(p.body.contains("<script nonce=\"abc123\">"));
        assert!(p.body.contains("<style nonce=\"abc123\">"));
        assert!(!p.body.contains("{{"), "a placeholder is left");
        assert!(p.headers.contains("script-src 'nonce-abc123'"));
        assert!(!p.headers.contains("unsafe"));
    }
}
