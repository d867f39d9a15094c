//! The relay's own pages: help text for curl, the no-JavaScript upload form.

use crate::http::Head;

/// The base URL clients used to reach us: from `Host` (`https` when the
/// request came over TLS), or with `trust_proxy` from `X-Forwarded-Proto`
/// and `X-Forwarded-Host`. A host
/// with characters that do not belong in one is replaced, so a client
/// cannot make the relay print arbitrary text as a URL.
pub fn base_url(head: &Head<'_>, trust_proxy: bool, tls: bool) -> String {
    let mut scheme = if tls { "https" } else { "http" };
    let mut host = head.host();
    if trust_proxy {
        if let Some(p) = head.header_str("x-forwarded-proto") {
            match p.split(',').next().unwrap_or("").trim() {
                "https" => scheme = "https",
                "http" => scheme = "http",
                _ => {}
            }
        }
        if let Some(h) = head.header_str("x-forwarded-host") {
            host = Some(h.split(',').next().unwrap_or("").trim());
        }
    }
    let host = host
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
        })
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

/// `/` and `/help`: how to use the relay, with this host's URLs (from
/// `X-Forwarded-*` with `trust_proxy`, as [`base_url`] says).
pub fn help(head: &Head<'_>, trust_proxy: bool, tls: bool) -> String {
    let url = base_url(head, trust_proxy, tls);
    format!(
        "weir {version}: an ephemeral relay. Bytes stream from a sender to its receivers and are never stored.

Send (either side may come first; the first one waits):
  curl -T myfile {url}/mypath
  echo hello | curl -T - {url}/mypath
  curl -F file=@myfile {url}/mypath          (a form: the receiver gets the file)

Receive:
  curl {url}/mypath > myfile

Several receivers (all must use the same n; the transfer starts when all are there):
  curl -T myfile '{url}/mypath?n=3'
  curl '{url}/mypath?n=3' > myfile          (three times)

Other paths:
  {url}/version   {url}/healthz   {url}/metrics   {url}/noscript (an upload form)
",
        version = env!("CARGO_PKG_VERSION"),
    )
}

/// `/noscript`: a form that sends a file with no JavaScript.
pub fn noscript(head: &Head<'_>, trust_proxy: bool, tls: bool) -> String {
    // The path comes from a query parameter the user typed; only a safe
    // character set is kept so it can be placed in the page unescaped.
    let path: String = head
        .query_param("path")
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.~/".contains(*c))
        .take(200)
        .collect();
    let path = path.trim_start_matches('/');
    format!(
        "<!DOCTYPE html>
<html lang=\"en\"><head><meta charset=\"utf-8\"><title>weir: send a file</title></head>
<body>
<h1>Send a file</h1>
<form method=\"get\" action=\"/noscript\">
  <label>Path: <input name=\"path\" value=\"{path}\"></label> <button>Set path</button>
</form>
{form}
<p>The receiver opens the same path, e.g. <code>curl {url}/{shown}</code>.</p>
</body></html>
",
        url = base_url(head, trust_proxy, tls),
        shown = if path.is_empty() { "mypath" } else { path },
        form = if path.is_empty() {
            String::from("<p>Choose a path first.</p>")
        } else {
            format!(
                "<form method=\"post\" action=\"/{path}\" enctype=\"multipart/form-data\">
  <input type=\"file\" name=\"file\" required> <button>Send</button>
</form>"
            )
        },
    )
}
