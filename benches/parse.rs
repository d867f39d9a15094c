//! Request-head parsing throughput (`weir::http::parse_head`) on three
//! realistic heads: what curl sends for a download, what `curl -T` sends for
//! an upload (with `Expect: 100-continue`), and a browser's header-heavy GET.
//!
//! Reported as bytes of head per second, like httparse's own benches, so the
//! figures compare across heads of different sizes.

use criterion::{criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;
use weir::http::{parse_head, Limits};

const CURL_GET: &[u8] = b"GET /some/path HTTP/1.1\r\n\
Host: relay.example.org\r\n\
User-Agent: curl/8.5.0\r\n\
Accept: */*\r\n\r\n";

const CURL_PUT: &[u8] = b"PUT /some/path HTTP/1.1\r\n\
Host: relay.example.org\r\n\
User-Agent: curl/8.5.0\r\n\
Accept: */*\r\n\
Content-Length: 1073741824\r\n\
Expect: 100-continue\r\n\r\n";

const BROWSER_GET: &[u8] = b"GET /some/path?n=2 HTTP/1.1\r\n\
Host: relay.example.org\r\n\
Connection: keep-alive\r\n\
sec-ch-ua: \"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", \"Not-A.Brand\";v=\"99\"\r\n\
sec-ch-ua-mobile: ?0\r\n\
sec-ch-ua-platform: \"Linux\"\r\n\
Upgrade-Insecure-Requests: 1\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7\r\n\
Sec-Fetch-Site: same-origin\r\n\
Sec-Fetch-Mode: navigate\r\n\
Sec-Fetch-User: ?1\r\n\
Sec-Fetch-Dest: document\r\n\
Referer: https://relay.example.org/\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-GB,en-US;q=0.9,en;q=0.8,de;q=0.7\r\n\
Cookie: _ga=GA1.1.123456789.1700000000; theme=dark; session=6f1c2a9e0b7d4e3f\r\n\
If-None-Match: \"5f3c-61a2b3c4d5e6f\"\r\n\
If-Modified-Since: Tue, 14 May 2024 09:30:00 GMT\r\n\r\n";

/// The server's defaults (16 KiB head, 4 KiB target).
const LIMITS: Limits = Limits {
    max_head: 16 * 1024,
    max_target: 4 * 1024,
};

fn heads(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_head");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (name, head) in [
        ("curl_get", CURL_GET),
        ("curl_put_expect", CURL_PUT),
        ("browser_get", BROWSER_GET),
    ] {
        // A head that does not parse would make the figure meaningless.
        let (_, len) = parse_head(head, LIMITS)
            .expect("bench head is valid")
            .expect("bench head is complete");
        assert_eq!(len, head.len(), "{name}: whole input is the head");
        g.throughput(Throughput::Bytes(head.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| parse_head(black_box(head), LIMITS));
        });
    }
    g.finish();
}

/// Every bench in this file, configured from the command line.
fn benches() {
    let mut c = Criterion::default().configure_from_args();
    heads(&mut c);
}

criterion_main!(benches);
