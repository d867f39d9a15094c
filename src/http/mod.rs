//! HTTP/1.x framing: request heads, response heads, and body codecs.
//!
//! Everything here is sans-io: functions take byte slices and return values
//! or bytes to write; no socket and no clock is touched.

pub mod chunked;
pub mod multipart;
pub mod request;
pub mod response;

pub use request::{parse_head, Head, HeadError, Limits, Method};
