//! The relay's own pages: the no-JavaScript upload form (the help text is
//! [`crate::help`]).

use crate::http::Head;

/// The base URL clients used to reach us (`https` when the request came
/// over TLS); see [`crate::help::base_url`].
pub fn base_url(head: &Head<'_>, trust_proxy: bool, tls: bool) -> String {
    crate::help::base_url(head, trust_proxy, if tls { "https" } else { "http" })
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
