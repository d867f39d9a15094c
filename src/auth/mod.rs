//! Access control: who may send and who may receive on which paths.
//!
//! A relay started with `--auth FILE` refuses every request that touches a
//! transfer (a pipe, an ephemeral socket, a swarm, a topic, a WebSocket or
//! SockJS channel) unless the rules file allows it; the relay's own pages
//! stay public. docs/auth.md is the operator's guide; this module is the
//! sans-io half: the rules file's parser ([`Rules::parse`]), the decision
//! for one request ([`Rules::check`]), and signed links ([`link`]).
//!
//! Rules that hold here:
//!
//! - Default deny: a path that no `allow` prefix covers is refused.
//! - The longest matching prefix decides alone; its lines are or-ed.
//! - Secrets are never stored or compared in the clear: the file holds
//!   SHA-256 digests, a presented secret is hashed and compared in constant
//!   time against every candidate (no early exit on the first match). A
//!   fast hash is right because the secrets are generated (`weir
//!   new-token`: 256 random bits, no dictionary to try); a slow KDF would
//!   only protect weak human passwords, and would stall the relay's one
//!   thread on every request.
//! - A presented credential that is wrong (unknown user, wrong password or
//!   token, a changed or expired link) is `401` whatever the rules say, so
//!   a typo never silently falls back to anonymous access.
//! - Nothing here logs, and [`Rules`]' `Debug` shows counts, not digests.
//!
//! It takes strings and `now` (Unix seconds) in and gives a [`Decision`]
//! out: no socket, no clock, no file. `src/main.rs` reads the files.

pub mod link;

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use crate::encoding::{base64url, hex};

/// Largest rules file accepted, in bytes.
pub const MAX_RULES_BYTES: usize = 1 << 20;

/// What a request does on its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Actions(u8);

impl Actions {
    /// Put bytes or messages in: a pipe upload, a publish, a signal post,
    /// a SockJS send.
    pub const SEND: Actions = Actions(1);
    /// Take them out: a pipe download, a subscription, a swarm stream, a
    /// SockJS receiving transport.
    pub const RECEIVE: Actions = Actions(2);
    /// Both at once: a WebSocket.
    pub const BOTH: Actions = Actions(3);

    /// Whether every action of `other` is in `self`.
    pub fn covers(self, other: Actions) -> bool {
        self.0 & other.0 == other.0
    }

    fn union(self, other: Actions) -> Actions {
        Actions(self.0 | other.0)
    }

    /// `send`, `receive` or `send and receive`, for messages.
    pub fn words(self) -> &'static str {
        match self.0 {
            1 => "send",
            2 => "receive",
            3 => "send and receive",
            _ => "do nothing",
        }
    }

    /// The short form a signed link carries: `s`, `r` or `sr`.
    pub fn link_code(self) -> &'static str {
        match self.0 {
            1 => "s",
            2 => "r",
            _ => "sr",
        }
    }

    /// Parse a link's `allow=` value (exactly `s`, `r` or `sr`).
    pub fn from_link_code(v: &str) -> Option<Actions> {
        match v {
            "s" => Some(Actions::SEND),
            "r" => Some(Actions::RECEIVE),
            "sr" => Some(Actions::BOTH),
            _ => None,
        }
    }

    /// Parse `send`, `receive`, `both`, or a comma list of them.
    pub fn parse(v: &str) -> Option<Actions> {
        let mut a = Actions(0);
        for part in v.split(',') {
            a = a.union(match part {
                "send" => Actions::SEND,
                "receive" => Actions::RECEIVE,
                "both" => Actions::BOTH,
                _ => return None,
            });
        }
        Some(a)
    }
}

/// Who an `allow` line names.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Who {
    /// `anyone`: no credentials needed.
    Anyone,
    /// `*`: any user or token of the file.
    Authenticated,
    /// One name (a user, a token, or both under one name).
    Name(String),
}

#[derive(Clone, Debug)]
struct Grant {
    prefix: String,
    who: Vec<Who>,
    actions: Actions,
}

#[derive(Clone)]
struct Secret {
    name: String,
    digest: [u8; 32],
}

/// The parsed rules file.
#[derive(Clone)]
pub struct Rules {
    users: Vec<Secret>,
    tokens: Vec<Secret>,
    grants: Vec<Grant>,
    link_key_file: Option<String>,
    link_key: Option<Vec<u8>>,
}

impl fmt::Debug for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rules")
            .field("users", &self.users.len())
            .field("tokens", &self.tokens.len())
            .field("grants", &self.grants.len())
            .field("signed_links", &self.link_key.is_some())
            .finish()
    }
}

/// A line of the rules file that cannot work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RulesError {
    /// 1-based line number (0 for the file as a whole).
    pub line: usize,
    /// What is wrong and what to write instead.
    pub message: String,
}

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

impl std::error::Error for RulesError {}

/// What one request presents and asks for.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// The path the rules' prefixes are matched against.
    pub resource: &'a str,
    /// The path a signed link must name exactly.
    pub link_path: &'a str,
    /// What the request would do.
    pub action: Actions,
    /// The `Authorization` header's value, if any.
    pub authorization: Option<&'a [u8]>,
    /// The query string, without `?` (a signed link's parameters).
    pub query: Option<&'a str>,
    /// Seconds since the Unix epoch.
    pub now: u64,
}

/// The answer for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go on; `who` names the identity that was allowed (for the log:
    /// a name, `anyone` or `signed link`, never a secret).
    Allow {
        /// Who was let in.
        who: String,
    },
    /// `401`: credentials missing or wrong.
    Unauthenticated(&'static str),
    /// `403`: valid credentials that the rules do not allow here.
    Forbidden(String),
}

/// Who the `Authorization` header says the client is.
enum Identity<'r> {
    Anonymous,
    Known(&'r str),
    Wrong,
}

/// The message for a request without credentials.
pub const MSG_MISSING: &str = "Authentication required: use a signed link, or send a token \
     (Authorization: Bearer TOKEN) or a user and password (curl -u NAME).";
/// The message for a wrong user, password or token.
pub const MSG_WRONG: &str = "Wrong user name, password or token: check them, \
     or ask the relay's operator for new ones.";

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n != "anyone"
        && n != "nobody"
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
}

fn valid_prefix(p: &str) -> bool {
    p.starts_with('/')
        && p.len() <= 1024
        && p.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#')
}

/// Whether rule prefix `prefix` covers `path`: `/a/` covers everything
/// that starts with it; `/a` covers `/a` and what is below it (`/a/b`),
/// never a look-alike (`/ab`).
pub fn prefix_covers(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The digest of a secret as the rules file spells it: `sha256:` and 64
/// lowercase hex digits.
pub fn hash_secret(secret: &[u8]) -> String {
    format!("sha256:{}", hex::encode(&Sha256::digest(secret)))
}

fn parse_digest(v: &str) -> Option<[u8; 32]> {
    let hexd = v.strip_prefix("sha256:")?;
    let bytes = hex::decode(hexd)?;
    bytes.try_into().ok()
}

impl Rules {
    /// Parse a rules file. Every line is checked; the first error is
    /// returned with its line number.
    pub fn parse(text: &str) -> Result<Rules, RulesError> {
        if text.len() > MAX_RULES_BYTES {
            return Err(RulesError {
                line: 0,
                message: format!("the rules file is larger than {MAX_RULES_BYTES} bytes"),
            });
        }
        let mut r = Rules {
            users: Vec::new(),
            tokens: Vec::new(),
            grants: Vec::new(),
            link_key_file: None,
            link_key: None,
        };
        let mut denied: Vec<(String, usize)> = Vec::new();
        let mut named: Vec<(String, usize)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let err = |m: String| RulesError { line, message: m };
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let words: Vec<&str> = content.split_ascii_whitespace().collect();
            match words.as_slice() {
                [kind @ ("user" | "token"), name, digest] => {
                    if !valid_name(name) {
                        return Err(err(format!(
                            "'{name}' is not a name: 1 to 64 of A-Z a-z 0-9 . _ - @, not 'anyone' or 'nobody'"
                        )));
                    }
                    let Some(d) = parse_digest(digest) else {
                        return Err(err(
                            "the secret must be stored as sha256:<64 hex digits>; make it with `weir hash-secret` or `weir new-token`".into(),
                        ));
                    };
                    let s = Secret {
                        name: name.to_string(),
                        digest: d,
                    };
                    if *kind == "user" {
                        if r.users.iter().any(|u| u.name == *name) {
                            return Err(err(format!("user '{name}' is defined twice")));
                        }
                        r.users.push(s);
                    } else {
                        // Several tokens may share a name: rotation.
                        r.tokens.push(s);
                    }
                }
                ["allow", who, actions, prefix] => {
                    let mut list = Vec::new();
                    for w in who.split(',') {
                        list.push(match w {
                            "anyone" => Who::Anyone,
                            "*" => Who::Authenticated,
                            n if valid_name(n) => {
                                named.push((n.to_string(), line));
                                Who::Name(n.to_string())
                            }
                            n => {
                                return Err(err(format!(
                                    "'{n}' is not a name, '*' (any user or token) or 'anyone'"
                                )))
                            }
                        });
                    }
                    let Some(actions) = Actions::parse(actions) else {
                        return Err(err(format!(
                            "'{actions}' is not send, receive or send,receive"
                        )));
                    };
                    if !valid_prefix(prefix) {
                        return Err(err(format!(
                            "'{prefix}' is not a path prefix: it starts with '/', has no spaces, '?' or '#'"
                        )));
                    }
                    r.grants.push(Grant {
                        prefix: prefix.to_string(),
                        who: list,
                        actions,
                    });
                }
                ["deny", prefix] => {
                    if !valid_prefix(prefix) {
                        return Err(err(format!(
                            "'{prefix}' is not a path prefix: it starts with '/', has no spaces, '?' or '#'"
                        )));
                    }
                    denied.push((prefix.to_string(), line));
                }
                ["signed-links", path] => {
                    if r.link_key_file.is_some() {
                        return Err(err("signed-links is given twice".into()));
                    }
                    r.link_key_file = Some(path.to_string());
                }
                [kind, ..] => {
                    let known =
                        matches!(*kind, "user" | "token" | "allow" | "deny" | "signed-links");
                    let m = if known {
                        format!("wrong number of words for '{kind}'; {}", usage(kind))
                    } else {
                        format!(
                            "unknown rule '{kind}'; lines are user, token, allow, deny or signed-links"
                        )
                    };
                    return Err(err(m));
                }
                [] => {}
            }
        }
        for (prefix, line) in denied {
            if r.grants.iter().any(|g| g.prefix == prefix) {
                return Err(RulesError {
                    line,
                    message: format!("'{prefix}' is both denied and allowed; keep one"),
                });
            }
            r.grants.push(Grant {
                prefix,
                who: Vec::new(),
                actions: Actions(0),
            });
        }
        for (name, line) in named {
            let known =
                r.users.iter().any(|u| u.name == name) || r.tokens.iter().any(|t| t.name == name);
            if !known {
                return Err(RulesError {
                    line,
                    message: format!("'{name}' is neither a user nor a token of this file"),
                });
            }
        }
        Ok(r)
    }

    /// The key file the `signed-links` line names, as written.
    pub fn link_key_file(&self) -> Option<&str> {
        self.link_key_file.as_deref()
    }

    /// Accept signed links made with `key` (see [`link::parse_key`]).
    pub fn set_link_key(&mut self, key: Vec<u8>) {
        self.link_key = Some(key);
    }

    /// Whether the rules let `who` (`None`: anonymous) do `action` on
    /// `resource`.
    fn grants(&self, who: Option<&str>, resource: &str, action: Actions) -> bool {
        let best = self
            .grants
            .iter()
            .filter(|g| prefix_covers(&g.prefix, resource))
            .map(|g| g.prefix.len())
            .max();
        let Some(best) = best else {
            return false;
        };
        let mut got = Actions(0);
        for g in &self.grants {
            if g.prefix.len() != best || !prefix_covers(&g.prefix, resource) {
                continue;
            }
            let ok = g.who.iter().any(|w| match w {
                Who::Anyone => true,
                Who::Authenticated => who.is_some(),
                Who::Name(n) => who == Some(n.as_str()),
            });
            if ok {
                got = got.union(g.actions);
            }
        }
        got.covers(action)
    }

    fn identify(&self, authorization: Option<&[u8]>) -> Identity<'_> {
        let Some(value) = authorization else {
            return Identity::Anonymous;
        };
        let Ok(value) = std::str::from_utf8(value) else {
            return Identity::Wrong;
        };
        let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            let Some(decoded) = crate::encoding::base64_decode(rest) else {
                return Identity::Wrong;
            };
            let Some(colon) = decoded.iter().position(|&b| b == b':') else {
                return Identity::Wrong;
            };
            let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
            let digest: [u8; 32] = Sha256::digest(password).into();
            // User names are not secret; the password's digest is compared
            // in constant time.
            match self.users.iter().find(|u| u.name.as_bytes() == user) {
                Some(u) if bool::from(u.digest.ct_eq(&digest)) => Identity::Known(&u.name),
                _ => Identity::Wrong,
            }
        } else if scheme.eq_ignore_ascii_case("bearer") {
            if rest.is_empty() {
                return Identity::Wrong;
            }
            let digest: [u8; 32] = Sha256::digest(rest.as_bytes()).into();
            // Every token is compared, so the time does not tell which
            // (or whether one) matched.
            let mut found = None;
            for t in &self.tokens {
                if bool::from(t.digest.ct_eq(&digest)) {
                    found = Some(t.name.as_str());
                }
            }
            found.map_or(Identity::Wrong, Identity::Known)
        } else {
            Identity::Wrong
        }
    }

    /// Decide one request.
    pub fn check(&self, req: &Request<'_>) -> Decision {
        let who = match self.identify(req.authorization) {
            Identity::Wrong => return Decision::Unauthenticated(MSG_WRONG),
            Identity::Anonymous => None,
            Identity::Known(n) => Some(n),
        };
        let link = link::Presented::find(req.query);
        let link_grants =
            match (&link, &self.link_key) {
                (None, _) => None,
                (Some(_), None) => return Decision::Unauthenticated(
                    "This relay does not accept signed links; ask its operator for credentials.",
                ),
                (Some(l), Some(key)) => match l.verify(key, req.link_path, req.now) {
                    Ok(a) => Some(a),
                    Err(e) => return Decision::Unauthenticated(e.message()),
                },
            };
        if link_grants.is_some_and(|a| a.covers(req.action)) {
            return Decision::Allow {
                who: "signed link".into(),
            };
        }
        if self.grants(who, req.resource, req.action) {
            return Decision::Allow {
                who: who.unwrap_or("anyone").to_string(),
            };
        }
        match (who, link_grants) {
            (None, None) => Decision::Unauthenticated(MSG_MISSING),
            (_, Some(a)) => Decision::Forbidden(format!(
                "Not allowed: this link lets you {}, not {}; ask for a link that does.",
                a.words(),
                req.action.words()
            )),
            (Some(n), None) => Decision::Forbidden(format!(
                "Not allowed: '{n}' may not {} on this path; ask the relay's operator.",
                req.action.words()
            )),
        }
    }
}

fn usage(kind: &str) -> &'static str {
    match kind {
        "user" => "write: user NAME sha256:HEX",
        "token" => "write: token NAME sha256:HEX",
        "allow" => "write: allow WHO send|receive|send,receive /prefix",
        "deny" => "write: deny /prefix",
        _ => "write: signed-links /path/to/key",
    }
}

#[cfg(test)]
mod tests;
