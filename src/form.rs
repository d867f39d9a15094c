//! `application/x-www-form-urlencoded` bodies for `POST /signal/<id>`,
//! parsed with the bracket nesting of Node's `qs` (as koa's `co-body`
//! calls it, default options) into a [`Value`] whose leaves are all
//! strings.
//!
//! Rules that hold:
//!
//! - Sans-io and panic-free: the whole body comes in as a byte slice.
//! - At most [`Limits::max_params`] non-empty `&`-separated pairs (default
//!   1000); one more is an error, not a silent truncation as in `qs`.
//!   Empty pairs (`a=1&&b=2`) are skipped and not counted.
//! - A pair splits at its first `=`, unless it contains `]=`: then it
//!   splits there, so `a[x=y]=1` has the key `a[x=y]` (as `qs` does). No
//!   `=` means the value is `""`. Pairs whose key decodes to `""` are
//!   dropped (as `qs` does).
//! - Decoding: `+` is a space, `%XX` a byte. A key or value holding a
//!   malformed `%` sequence is kept entirely undecoded (only `+` becomes a
//!   space), as `qs` does when `decodeURIComponent` throws. Raw or
//!   percent-decoded bytes that are not UTF-8 are an error (`qs` would keep
//!   the text undecoded, and `co-body` would have replaced raw bytes).
//! - Keys nest like `qs`: `a[b][c]`; `a[]` appends; `a[N]` is an array
//!   index when `N` is canonical (`0`, `7`, not `07`) and at most
//!   [`Limits::max_array_index`] (default 20), otherwise an object key.
//!   Arrays are compacted at the end, so `a[1]=x&a[5]=y` gives `["x","y"]`.
//!   Text between or after bracket groups is ignored (`a[b]c` is `a[b]`);
//!   a key without a complete `[...]` group is taken literally (`a[b`).
//! - At most [`Limits::max_depth`] bracket groups nest (default 5); the
//!   rest of the key becomes one literal key (`a[b][c]` at depth 1 is
//!   `{"a":{"b":{"[c]":…}}}`), as `qs` does.
//! - Repeated keys combine into arrays (`a=1&a=2` gives `["1","2"]`); when
//!   an array meets an object for the same key, the array becomes an
//!   object with index keys (`a[0]=x&a[b]=y` gives `{"0":"x","b":"y"}`),
//!   as `qs` does. A plain value meeting an object (`a[b]=1&a=2`) is an
//!   error: `qs` would add the member `"2": true`, which is not a string.
//! - Unlike `qs`, names such as `__proto__` or `toString` are ordinary
//!   keys, and objects keep insertion order (JavaScript moves integer-like
//!   keys first).
//! - Recursion (merging, conversion) goes at most `max_depth + 2` levels.

use crate::json::Value;
use std::collections::HashMap;
use std::fmt;

/// Bounds on what [`parse`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most non-empty `&`-separated pairs (default 1000).
    pub max_params: usize,
    /// Most bracket groups that nest (default 5).
    pub max_depth: usize,
    /// Largest `[N]` that is an array index rather than a key (default 20).
    pub max_array_index: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_params: 1000,
            max_depth: 5,
            max_array_index: 20,
        }
    }
}

/// Why a form body is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormError {
    /// A key or value is not UTF-8, raw or once percent-decoded.
    InvalidUtf8 {
        /// Byte offset of the key or value in the input.
        at: usize,
    },
    /// More pairs than [`Limits::max_params`].
    TooManyParams {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// A plain value and an object were given for the same key.
    MixedForms {
        /// Byte offset of the pair that clashed with an earlier one.
        at: usize,
    },
}

impl fmt::Display for FormError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormError::InvalidUtf8 { at } => write!(f, "invalid UTF-8 in form field at byte {at}"),
            FormError::TooManyParams { limit } => write!(f, "form has more than {limit} fields"),
            FormError::MixedForms { at } => {
                write!(f, "form field at byte {at} mixes a value and an object")
            }
        }
    }
}

impl std::error::Error for FormError {}

/// Parses a form body into an object whose leaves are strings.
pub fn parse(input: &[u8], limits: Limits) -> Result<Value, FormError> {
    let flat = flatten(input, limits.max_params)?;
    let mut top = Node::Obj(Vec::new());
    for entry in flat {
        let chain = split_key(&entry.key, limits.max_depth);
        let node = build(&chain, entry.value, limits.max_array_index);
        top = merge(top, node, entry.at)?;
    }
    Ok(top.into_value())
}

/// The tree while it is being built. Arrays may have holes, as JavaScript
/// arrays do; they are compacted by [`Node::into_value`].
#[derive(Debug)]
enum Node {
    Str(String),
    Arr(Arr),
    Obj(Vec<(String, Node)>),
}

/// A sparse array: `(index, item)` sorted by index, and the JavaScript
/// `length` (one past the highest index ever set or pushed).
#[derive(Debug, Default)]
struct Arr {
    items: Vec<(usize, Node)>,
    len: usize,
}

impl Arr {
    fn push(&mut self, node: Node) {
        self.items.push((self.len, node));
        self.len += 1;
    }

    fn set(&mut self, index: usize, node: Node) {
        match self.items.binary_search_by_key(&index, |(i, _)| *i) {
            Ok(at) => {
                if let Some(slot) = self.items.get_mut(at) {
                    slot.1 = node;
                }
            }
            Err(at) => self.items.insert(at, (index, node)),
        }
        self.len = self.len.max(index.saturating_add(1));
    }

    fn get_mut(&mut self, index: usize) -> Option<&mut Node> {
        let at = self.items.binary_search_by_key(&index, |(i, _)| *i).ok()?;
        self.items.get_mut(at).map(|(_, node)| node)
    }

    fn keyed(self) -> impl Iterator<Item = (String, Node)> {
        self.items
            .into_iter()
            .map(|(i, node)| (i.to_string(), node))
    }
}

impl Node {
    fn is_container(&self) -> bool {
        !matches!(self, Node::Str(_))
    }

    fn into_value(self) -> Value {
        match self {
            Node::Str(s) => Value::String(s),
            Node::Arr(arr) => {
                Value::Array(arr.items.into_iter().map(|(_, n)| n.into_value()).collect())
            }
            Node::Obj(members) => Value::Object(
                members
                    .into_iter()
                    .map(|(k, n)| (k, n.into_value()))
                    .collect(),
            ),
        }
    }
}

/// One distinct decoded key, its value (a string, or the strings of a
/// repeated key), and where it first appeared.
struct Flat {
    key: String,
    value: Node,
    at: usize,
}

/// First pass, as `qs`: split, decode, and combine repeated keys.
fn flatten(input: &[u8], max_params: usize) -> Result<Vec<Flat>, FormError> {
    let mut flat: Vec<Flat> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut count = 0usize;
    let mut start = 0usize;
    for part in input.split(|&b| b == b'&') {
        let at = start;
        start += part.len() + 1;
        if part.is_empty() {
            continue;
        }
        count += 1;
        if count > max_params {
            return Err(FormError::TooManyParams { limit: max_params });
        }
        let split = match part.windows(2).position(|w| w == b"]=") {
            Some(p) => Some(p + 1),
            None => part.iter().position(|&b| b == b'='),
        };
        let (key, value) = match split {
            Some(p) => {
                let raw_value = part.get(p + 1..).unwrap_or_default();
                let key = decode(part.get(..p).unwrap_or_default(), at)?;
                (key, decode(raw_value, at + p + 1)?)
            }
            None => (decode(part, at)?, String::new()),
        };
        if key.is_empty() {
            continue;
        }
        match index.get(&key).and_then(|&i| flat.get_mut(i)) {
            Some(existing) => {
                let old = std::mem::replace(&mut existing.value, Node::Str(String::new()));
                existing.value = combine(old, value);
            }
            None => {
                index.insert(key.clone(), flat.len());
                flat.push(Flat {
                    key,
                    value: Node::Str(value),
                    at,
                });
            }
        }
    }
    Ok(flat)
}

/// `[].concat(old, value)` for a repeated key.
fn combine(old: Node, value: String) -> Node {
    let mut arr = match old {
        Node::Arr(arr) => arr,
        other => {
            let mut arr = Arr::default();
            arr.push(other);
            arr
        }
    };
    arr.push(Node::Str(value));
    Node::Arr(arr)
}

/// Percent-decodes one key or value that starts at byte `at` of the input.
fn decode(raw: &[u8], at: usize) -> Result<String, FormError> {
    let well_formed = raw.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || matches!(raw.get(i + 1..i + 3), Some([h, l]) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit())
    });
    let mut bytes = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        match b {
            b'+' => bytes.push(b' '),
            b'%' if well_formed => {
                let hi = raw.get(i + 1).and_then(|&h| hex(h)).unwrap_or(0);
                let lo = raw.get(i + 2).and_then(|&l| hex(l)).unwrap_or(0);
                bytes.push(hi << 4 | lo);
                i += 2;
            }
            _ => bytes.push(b),
        }
        i += 1;
    }
    String::from_utf8(bytes).map_err(|_| FormError::InvalidUtf8 { at })
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// The next `[...]` group without brackets inside, at or after `from`, as
/// the regular expression `\[[^[\]]*]` finds it: `(start, end)`.
fn next_group(key: &str, from: usize) -> Option<(usize, usize)> {
    let bytes = key.as_bytes();
    let mut open = None;
    for (i, &b) in bytes.iter().enumerate().skip(from) {
        match b {
            b'[' => open = Some(i),
            b']' => {
                if let Some(start) = open {
                    return Some((start, i + 1));
                }
            }
            _ => {}
        }
    }
    None
}

/// The key's segments, as `qs` `parseKeys` cuts them: the parent, up to
/// `depth` bracket groups, then the rest of the key wrapped in one more
/// pair of brackets, which [`build`] strips again to a literal key.
fn split_key(key: &str, depth: usize) -> Vec<String> {
    let mut chain = Vec::new();
    let first = if depth > 0 { next_group(key, 0) } else { None };
    let parent_end = first.map_or(key.len(), |(start, _)| start);
    if parent_end > 0 {
        chain.push(key.get(..parent_end).unwrap_or_default().to_owned());
    }
    if first.is_none() {
        return chain;
    }
    let mut from = 0;
    let mut taken = 0;
    while let Some((start, end)) = next_group(key, from) {
        if taken == depth {
            chain.push(format!("[{}]", key.get(start..).unwrap_or_default()));
            break;
        }
        chain.push(key.get(start..end).unwrap_or_default().to_owned());
        taken += 1;
        from = end;
    }
    chain
}

/// `parseObject`: the nested node for one key's segments around `leaf`.
fn build(chain: &[String], leaf: Node, max_array_index: usize) -> Node {
    let mut node = leaf;
    for root in chain.iter().rev() {
        node = if root == "[]" {
            match node {
                arr @ Node::Arr(_) => arr,
                other => {
                    let mut arr = Arr::default();
                    arr.push(other);
                    Node::Arr(arr)
                }
            }
        } else {
            let clean = root
                .strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .unwrap_or(root);
            // Only a bracketed segment is an index: a top-level `0` is a key.
            match array_index(clean, max_array_index) {
                Some(index) if clean.len() != root.len() => {
                    let mut arr = Arr::default();
                    arr.set(index, node);
                    Node::Arr(arr)
                }
                _ => Node::Obj(vec![(clean.to_owned(), node)]),
            }
        };
    }
    node
}

/// `s` as an array index: canonical decimal, at most `max`.
fn array_index(s: &str, max: usize) -> Option<usize> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse::<usize>().ok().filter(|&i| i <= max)
}

/// `utils.merge` of `qs`, for the pair at byte `at`.
fn merge(target: Node, source: Node, at: usize) -> Result<Node, FormError> {
    Ok(match (target, source) {
        // `qs` ignores a falsy source: the empty string.
        (target, Node::Str(s)) if s.is_empty() => target,
        (Node::Arr(mut arr), Node::Str(s)) => {
            arr.push(Node::Str(s));
            Node::Arr(arr)
        }
        (Node::Obj(_), Node::Str(_)) => return Err(FormError::MixedForms { at }),
        (Node::Str(t), Node::Str(s)) => {
            let mut arr = Arr::default();
            arr.push(Node::Str(t));
            arr.push(Node::Str(s));
            Node::Arr(arr)
        }
        (Node::Str(t), Node::Arr(source)) => {
            // `[t].concat(source)`: holes shift along with the items.
            let mut arr = Arr::default();
            arr.push(Node::Str(t));
            for (i, item) in source.items {
                arr.set(i.saturating_add(1), item);
            }
            arr.len = arr.len.max(source.len.saturating_add(1));
            Node::Arr(arr)
        }
        (Node::Str(t), source @ Node::Obj(_)) => {
            let mut arr = Arr::default();
            arr.push(Node::Str(t));
            arr.push(source);
            Node::Arr(arr)
        }
        (Node::Arr(mut target), Node::Arr(source)) => {
            for (i, item) in source.items {
                match target.get_mut(i) {
                    Some(existing) if existing.is_container() && item.is_container() => {
                        let old = std::mem::replace(existing, Node::Str(String::new()));
                        *existing = merge(old, item, at)?;
                    }
                    Some(_) => target.push(item),
                    None => target.set(i, item),
                }
            }
            Node::Arr(target)
        }
        (Node::Arr(target), Node::Obj(source)) => {
            Node::Obj(merge_keys(target.keyed().collect(), source, at)?)
        }
        (Node::Obj(target), Node::Arr(source)) => {
            Node::Obj(merge_keys(target, source.keyed(), at)?)
        }
        (Node::Obj(target), Node::Obj(source)) => Node::Obj(merge_keys(target, source, at)?),
    })
}

/// Merges `source` members into `acc` key by key.
fn merge_keys(
    mut acc: Vec<(String, Node)>,
    source: impl IntoIterator<Item = (String, Node)>,
    at: usize,
) -> Result<Vec<(String, Node)>, FormError> {
    for (key, value) in source {
        match acc.iter_mut().find(|(k, _)| *k == key) {
            Some((_, existing)) => {
                let old = std::mem::replace(existing, Node::Str(String::new()));
                *existing = merge(old, value, at)?;
            }
            None => acc.push((key, value)),
        }
    }
    Ok(acc)
}

#[cfg(test)]
mod tests {
    use super::{parse, FormError, Limits};
    use crate::json::Value;

    fn form(input: &str) -> Result<String, FormError> {
        parse(input.as_bytes(), Limits::default()).map(|v| v.to_json())
    }

    #[test]
    fn qs_examples() {
        let table: &[(&str, &str)] = &[
            ("", "{}"),
            ("a=1", r#"{"a":"1"}"#),
            ("a", r#"{"a":""}"#),
            ("a=1&&b=2&", r#"{"a":"1","b":"2"}"#),
            ("=x&b=2", r#"{"b":"2"}"#),
            ("0=foo", r#"{"0":"foo"}"#),
            ("a=b=c", r#"{"a":"b=c"}"#),
            ("a+b=c+d", r#"{"a b":"c d"}"#),
            ("foo=c++", r#"{"foo":"c  "}"#),
            ("a=%41%2B%20%e2%82%ac", r#"{"a":"A+ €"}"#),
            ("a%5Bb%5D=c", r#"{"a":{"b":"c"}}"#),
            ("a[b]=1", r#"{"a":{"b":"1"}}"#),
            ("a[b][c]=1", r#"{"a":{"b":{"c":"1"}}}"#),
            ("a[>=]=23", r#"{"a":{">=":"23"}}"#),
            ("a[<=>]==23", r#"{"a":{"<=>":"=23"}}"#),
            ("a[]=x&a[]=y", r#"{"a":["x","y"]}"#),
            ("a[0]=x&a[1]=y", r#"{"a":["x","y"]}"#),
            ("a[1]=x&a[5]=y", r#"{"a":["x","y"]}"#),
            ("a[5]=y&a[1]=x", r#"{"a":["x","y"]}"#),
            ("a[20]=x", r#"{"a":["x"]}"#),
            ("a[21]=x", r#"{"a":{"21":"x"}}"#),
            ("a[01]=x", r#"{"a":{"01":"x"}}"#),
            ("a[-1]=x", r#"{"a":{"-1":"x"}}"#),
            ("a=1&a=2&a=3", r#"{"a":["1","2","3"]}"#),
            ("a=&a=", r#"{"a":["",""]}"#),
            ("a[b]=1&a[b]=2", r#"{"a":{"b":["1","2"]}}"#),
            ("a[0]=x&a[0]=y", r#"{"a":[["x","y"]]}"#),
            ("a[]=x&a[0]=y", r#"{"a":["x","y"]}"#),
            ("a[0][b]=1&a[0][c]=2", r#"{"a":[{"b":"1","c":"2"}]}"#),
            ("a[][b]=1&a[][b]=2", r#"{"a":[{"b":["1","2"]}]}"#),
            ("a[0]=x&a[b]=y", r#"{"a":{"0":"x","b":"y"}}"#),
            ("a[]=x&a[b]=y", r#"{"a":{"0":"x","b":"y"}}"#),
            ("a[b]=y&a[0]=x", r#"{"a":{"b":"y","0":"x"}}"#),
            ("a=1&a[]=2", r#"{"a":["1","2"]}"#),
            ("a[]=1&a=2", r#"{"a":["1","2"]}"#),
            ("a=1&a[b]=2", r#"{"a":["1",{"b":"2"}]}"#),
            ("a=x&[a]=", r#"{"a":"x"}"#),
            ("a[b]=1&a=", r#"{"a":{"b":"1"}}"#),
            ("[a]=1", r#"{"a":"1"}"#),
            ("[]=1", r#"{"0":"1"}"#),
            ("a[b=1", r#"{"a[b":"1"}"#),
            ("a]=1", r#"{"a]":"1"}"#),
            ("a[x=y]=1", r#"{"a":{"x=y":"1"}}"#),
            ("a[b]c[d]=1", r#"{"a":{"b":{"d":"1"}}}"#),
            ("a[b]c=1", r#"{"a":{"b":"1"}}"#),
            (
                "a[b][c][d][e][f][g][h][i]=j",
                r#"{"a":{"b":{"c":{"d":{"e":{"f":{"[g][h][i]":"j"}}}}}}}"#,
            ),
            ("__proto__[x]=1", r#"{"__proto__":{"x":"1"}}"#),
        ];
        for &(input, want) in table {
            assert_eq!(form(input).as_deref(), Ok(want), "input {input:?}");
        }
    }

    #[test]
    fn malformed_percent_keeps_the_whole_text() {
        let table: &[(&str, &str)] = &[
            ("a=100%&b=%41", r#"{"a":"100%","b":"A"}"#),
            ("a=%41%", r#"{"a":"%41%"}"#),
            ("a=%4", r#"{"a":"%4"}"#),
            ("a=%zz+x", r#"{"a":"%zz x"}"#),
            ("a=%FF%", r#"{"a":"%FF%"}"#),
            ("a%5=1", r#"{"a%5":"1"}"#),
        ];
        for &(input, want) in table {
            assert_eq!(form(input).as_deref(), Ok(want), "input {input:?}");
        }
    }

    #[test]
    fn errors() {
        let table: &[(&[u8], FormError)] = &[
            (b"a=%FF", FormError::InvalidUtf8 { at: 2 }),
            (b"x=1&%C3=1", FormError::InvalidUtf8 { at: 4 }),
            (b"a=\xff", FormError::InvalidUtf8 { at: 2 }),
            (b"a=%ED%A0%80", FormError::InvalidUtf8 { at: 2 }),
            (b"a[b]=1&a=2", FormError::MixedForms { at: 7 }),
            (b"a[b][c]=1&a[b]=2", FormError::MixedForms { at: 10 }),
        ];
        for &(input, want) in table {
            let got = parse(input, Limits::default());
            assert_eq!(got, Err(want), "input {:?}", String::from_utf8_lossy(input));
            assert!(!want.to_string().is_empty());
        }
    }

    #[test]
    fn koa_signal_form_body() {
        let body = b"token=ab&data[greeting]=hello+there&cid=c1";
        let v = parse(body, Limits::default()).unwrap();
        assert_eq!(v.get("token").and_then(Value::as_str), Some("ab"));
        assert_eq!(v.get("cid").and_then(Value::as_str), Some("c1"));
        assert_eq!(
            v.get("data").map(Value::to_json).as_deref(),
            Some(r#"{"greeting":"hello there"}"#)
        );
    }

    #[test]
    fn param_limit_is_an_error_not_a_truncation() {
        let at_limit = vec!["a=1"; 1000].join("&");
        assert!(parse(at_limit.as_bytes(), Limits::default()).is_ok());
        let over = vec!["a=1"; 1001].join("&");
        assert_eq!(
            parse(over.as_bytes(), Limits::default()),
            Err(FormError::TooManyParams { limit: 1000 })
        );
        let one = Limits {
            max_params: 1,
            ..Limits::default()
        };
        assert!(parse(b"&&a=1&&&", one).is_ok());
        assert_eq!(
            parse(b"a=1&b", one),
            Err(FormError::TooManyParams { limit: 1 })
        );
    }

    #[test]
    fn depth_and_array_limits_are_configurable() {
        let cases: &[(Limits, &str, &str)] = &[
            (
                Limits {
                    max_depth: 1,
                    ..Limits::default()
                },
                "a[b][c][d]=1",
                r#"{"a":{"b":{"[c][d]":"1"}}}"#,
            ),
            (
                Limits {
                    max_depth: 0,
                    ..Limits::default()
                },
                "a[b]=1",
                r#"{"a[b]":"1"}"#,
            ),
            (
                Limits {
                    max_array_index: 2,
                    ..Limits::default()
                },
                "a[2]=x&b[3]=y",
                r#"{"a":["x"],"b":{"3":"y"}}"#,
            ),
            (
                Limits {
                    max_array_index: usize::MAX,
                    ..Limits::default()
                },
                "a[18446744073709551615]=x&a[0]=y",
                r#"{"a":["y","x"]}"#,
            ),
        ];
        for &(limits, input, want) in cases {
            let got = parse(input.as_bytes(), limits).map(|v| v.to_json());
            assert_eq!(got.as_deref(), Ok(want), "input {input:?} {limits:?}");
        }
    }

    #[test]
    fn random_input_never_panics() {
        const SEED: u64 = 0x5eed_f0f0_1234_abcd;
        let mut state = SEED;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"ab0129[]=&%+F\xc3\xa9\xff";
        let seeds: &[&[u8]] = &[
            b"token=ab&data[greeting]=hello+there&cid=c1",
            b"a[b][c][d][e][f][g][h]=1&a[]=2&a[0]=3&a=4",
            b"a[1]=x&a[5]=y&a[b]=z&a%5B0%5D=%41%",
        ];
        let mut parsed = 0u32;
        for case in 0..20_000u32 {
            let mut input: Vec<u8> = if case % 2 == 0 {
                let len = (next() % 48) as usize;
                (0..len)
                    .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                    .collect()
            } else {
                seeds[(next() % seeds.len() as u64) as usize].to_vec()
            };
            for _ in 0..(next() % 6) {
                let byte = if next() % 2 == 0 {
                    alphabet[(next() % alphabet.len() as u64) as usize]
                } else {
                    next() as u8
                };
                let at = (next() % (input.len() as u64 + 1)) as usize;
                match next() % 3 {
                    0 => input.insert(at, byte),
                    1 if at < input.len() => input[at] = byte,
                    _ if at < input.len() => {
                        input.remove(at);
                    }
                    _ => {}
                }
            }
            let limits = Limits {
                max_params: 8,
                max_depth: 3,
                max_array_index: 4,
            };
            let outcome = std::panic::catch_unwind(|| parse(&input, limits));
            let Ok(result) = outcome else {
                panic!("seed {SEED:#x} case {case}: panic on {input:?}");
            };
            if let Ok(value) = result {
                parsed += 1;
                let text = value.to_json();
                let again = crate::json::parse(text.as_bytes(), crate::json::Limits::default());
                assert_eq!(
                    again.map(|v| v.to_json()).as_ref(),
                    Ok(&text),
                    "seed {SEED:#x} case {case}"
                );
            }
        }
        // The mutations must leave enough valid inputs to test the writer.
        assert!(parsed > 1000, "only {parsed} inputs parsed");
    }
}
