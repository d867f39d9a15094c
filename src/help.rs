//! The help text (`/help`, and `/` for clients that are not browsers):
//! examples that run as shown, with this relay's own URLs.
//!
//! The URLs are built from the request: its `Host` and the scheme of the
//! listener it came in on, or, behind a trusted proxy (`--trust-proxy`),
//! what the proxy says the client used ([`Forwarded`]). A host that does
//! not look like one is replaced, so a client cannot make the relay print
//! arbitrary text as a URL.
//!
//! The text has a shape `tests/it/help.rs` relies on to run every example:
//! a title line (unindented, ending in `:`) and the example's commands
//! below it, each on a line starting with `  $ `. A title that says "at
//! the same time" means each command is one party, run concurrently;
//! otherwise the commands run in order in one shell. Other indented lines
//! are comments.

use crate::http::forwarded::{valid_host, Forwarded};
use crate::http::Head;

/// [`base_url`] for a connection that came over TLS (`tls`) or not.
pub fn origin(head: &Head<'_>, trust_proxy: bool, tls: bool) -> String {
    base_url(head, trust_proxy, if tls { "https" } else { "http" })
}

/// The base URL clients used to reach us (`http://host:port`, no trailing
/// slash). `scheme` is the listener's (`http`, or `https` for a TLS one);
/// with `trust_proxy` the proxy's `Forwarded` or `X-Forwarded-*` headers
/// override it and `Host`.
pub fn base_url(head: &Head<'_>, trust_proxy: bool, scheme: &'static str) -> String {
    let mut scheme = scheme;
    let mut host = head.host().filter(|h| valid_host(h));
    if trust_proxy {
        let f = Forwarded::from_head(head);
        scheme = f.proto.unwrap_or(scheme);
        host = f.host.or(host);
    }
    format!("{scheme}://{}", host.unwrap_or("localhost"))
}

/// What the help text needs to know about the relay's configuration.
#[derive(Clone, Copy, Debug)]
pub struct Options<'a> {
    /// `/reserve` is on.
    pub reservations: bool,
    /// `/reserve` is limited to pages of this origin.
    pub required_referer: Option<&'a str>,
}

/// The help text for `head`, whose URLs name this relay as the client
/// reached it (see [`base_url`]).
pub fn text(head: &Head<'_>, trust_proxy: bool, scheme: &'static str, opts: Options<'_>) -> String {
    let url = base_url(head, trust_proxy, scheme);
    let ws = if url.starts_with("https:") {
        format!("wss{}", &url["https".len()..])
    } else {
        format!("ws{}", &url["http".len()..])
    };
    let mut t = format!(
        "weir {version}: an ephemeral relay. Bytes stream from a sender to its receivers and
are never stored. Either side may come first; the first one waits for the other.

Every example runs as shown, from a shell in a directory that holds a file
myfile and a folder mydir. Where a title says \"at the same time\", run each
$ line in its own terminal (or on its own machine), in any order; otherwise
run its lines one after the other in one shell.

Send a file and receive it, at the same time:
  $ curl -T myfile {url}/mypath
  $ curl {url}/mypath > myfile.copy

Send what a command prints, at the same time:
  $ echo hello | curl -T - {url}/mypath
  $ curl {url}/mypath

Send a folder with tar, at the same time:
  $ tar c mydir | curl -T - {url}/mydir
  $ mkdir -p copy && curl -sS {url}/mydir | tar x -C copy

Encrypt with openssl so the relay sees only ciphertext (both sides know the passphrase), at the same time:
  $ openssl enc -aes-256-cbc -pbkdf2 -pass pass:correct-horse < myfile | curl -T - {url}/secret
  $ curl -sS {url}/secret | openssl enc -d -aes-256-cbc -pbkdf2 -pass pass:correct-horse > myfile.copy

Encrypt with age: the receiver makes a key pair once and gives key.pub to the sender:
  $ age-keygen -o key.txt 2>/dev/null && age-keygen -y key.txt > key.pub

Then send with the public key and decrypt with the private one, at the same time:
  $ age -R key.pub < myfile | curl -T - {url}/secret
  $ curl -sS {url}/secret | age -d -i key.txt > myfile.copy

One sender, several receivers (all use the same n; the transfer starts when all are there), at the same time:
  $ curl -T myfile '{url}/mypath?n=2'
  $ curl '{url}/mypath?n=2' > copy1
  $ curl '{url}/mypath?n=2' > copy2

Let the relay pick the path: a POST to / gets an ephemeral ID, and the answer's
second line is the download link, good for one receiver. Here the sender reads it
and fetches it itself:
  $ curl -sSN -T - {url}/ < myfile | {{ read -r line; read -r link; echo \"$link\"; curl -sS \"$link\" > myfile.copy; cat; }}
",
        version = env!("CARGO_PKG_VERSION"),
    );
    match (opts.reservations, opts.required_referer) {
        (true, None) => t.push_str(&format!(
            "
Reserve an ID before the upload (a web page can show the link first):
  $ id=$(curl -sS {url}/reserve | sed 's/.*\"id\": \"\\([^\"]*\\)\".*/\\1/')
  $ curl -sS {url}/s/$id > myfile.copy &
  $ curl -sS -T myfile {url}/reserve/$id; wait
"
        )),
        (true, Some(r)) => t.push_str(&format!(
            "
Reservations ({url}/reserve) are open to pages of {r} only.
"
        )),
        (false, _) => {}
    }
    t.push_str(&format!(
        "
Events: every subscriber of a topic gets what is published to it (the publisher
prints how many subscribers it reached; the subscriber stays until stopped), at the same time:
  $ curl -sN {url}/events/news
  $ until [ \"$(curl -sS -d hello '{url}/events/news?event=greeting')\" != 0 ]; do sleep 1; done

Signal swarms for WebRTC handshakes: open a swarm, read your id and token, signal:
  $ exec 3< <(curl -sSN {url}/signal)
  $ while read -r line <&3 && [ \"${{line#data: }}\" = \"$line\" ]; do :; done; connect=${{line#data: }}; echo \"$connect\"
  $ id=$(echo \"$connect\" | sed 's/.*\"id\":\"\\([^\"]*\\)\".*/\\1/'); token=$(echo \"$connect\" | sed 's/.*\"token\":\"\\([^\"]*\\)\".*/\\1/')
  $ curl -sS -H 'Content-Type: application/json' -d \"{{\\\"token\\\":\\\"$token\\\",\\\"data\\\":{{\\\"hello\\\":\\\"world\\\"}}}}\" {url}/signal/$id
  $ while read -r line <&3 && [ \"$line\" != 'event: signal' ]; do :; done; read -r line <&3; echo \"$line\"
    Others join with: curl -sN {url}/signal/$id

WebSocket: two peers on one path are bridged (python3 with websocket-client,
Debian's python3-websocket), at the same time:
  $ python3 -c 'import sys, websocket; print(websocket.create_connection(sys.argv[1]).recv())' {ws}/chat
  $ python3 -c 'import sys, websocket; w = websocket.create_connection(sys.argv[1]); w.send(\"hello\"); w.close()' {ws}/chat

More: {url}/version  {url}/healthz  {url}/metrics
A browser gets a page at {url}/ ({url}/noscript works without JavaScript);
SockJS clients connect to {url}/sockjs/<channel>.
"
    ));
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{parse_head, Limits};

    fn url(headers: &str, trust: bool, scheme: &'static str) -> String {
        let raw = format!("GET /help HTTP/1.0\r\n{headers}\r\n");
        let limits = Limits {
            max_head: 16384,
            max_target: 4096,
        };
        let (head, _) = parse_head(raw.as_bytes(), limits).unwrap().unwrap();
        base_url(&head, trust, scheme)
    }

    #[test]
    fn host_and_scheme() {
        assert_eq!(
            url("Host: a.example:81\r\n", false, "http"),
            "http://a.example:81"
        );
        assert_eq!(
            url("Host: a.example\r\n", false, "https"),
            "https://a.example"
        );
        assert_eq!(url("", false, "http"), "http://localhost");
        assert_eq!(
            url("Host: a b<script>\r\n", false, "http"),
            "http://localhost"
        );
    }

    #[test]
    fn proxy_headers_only_when_trusted() {
        let h = "Host: internal:8080\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: relay.example\r\n";
        assert_eq!(url(h, false, "http"), "http://internal:8080");
        assert_eq!(url(h, true, "http"), "https://relay.example");
        let h = "Host: internal:8080\r\nForwarded: proto=https;host=relay.example\r\n";
        assert_eq!(url(h, false, "http"), "http://internal:8080");
        assert_eq!(url(h, true, "http"), "https://relay.example");
        // A proxy that names only the scheme keeps the Host.
        let h = "Host: relay.example\r\nX-Forwarded-Proto: https\r\n";
        assert_eq!(url(h, true, "http"), "https://relay.example");
    }

    #[test]
    fn websocket_scheme_follows() {
        let raw = b"GET /help HTTP/1.1\r\nHost: r.example\r\n\r\n";
        let limits = Limits {
            max_head: 16384,
            max_target: 4096,
        };
        let (head, _) = parse_head(raw, limits).unwrap().unwrap();
        let opts = Options {
            reservations: false,
            required_referer: None,
        };
        assert!(text(&head, false, "https", opts).contains("wss://r.example/chat"));
        assert!(text(&head, false, "http", opts).contains(" ws://r.example/chat"));
        assert!(!text(&head, false, "http", opts).contains("/reserve"));
    }
}
