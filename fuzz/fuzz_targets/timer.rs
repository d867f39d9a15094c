//! `TimerWheel` under random inserts, cancels and expiries on a virtual
//! clock, checked against a `BTreeMap` model: never early, never late once
//! `expire` has passed a deadline, stale handles are no-ops, and right after
//! `expire(now)` the next deadline is `None` or later than `now` (no spin).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use weir::timer::{Handle, TimerWheel};

#[derive(Arbitrary, Debug)]
enum When {
    /// Microseconds from now: within a few ticks.
    Soon(u16),
    /// Milliseconds from now: several revolutions.
    Later(u16),
    /// Milliseconds before now (already due, maybe before the origin).
    Past(u16),
    /// So far away that `now + after` may not be representable.
    Never,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Insert(When),
    InsertAt(When),
    /// Cancel the entry with this id (stale once fired or cancelled).
    Cancel(u8),
    /// Advance the clock by microseconds, or milliseconds if `far`, then expire.
    Advance {
        amount: u16,
        far: bool,
    },
    /// Move the clock back (the wheel must not move back) and expire.
    Back(u8),
    /// Sleep until `next_deadline()`, as the event loop does, and expire.
    Sleep,
}

#[derive(Arbitrary, Debug)]
struct Input {
    tick_ms: u8,
    slots_log2: u8,
    ops: Vec<Op>,
}

struct Model {
    due: BTreeMap<(Instant, u32), ()>,
    /// By id: deadline and handle while live; the handle once dead.
    entries: Vec<(Instant, Handle, bool)>,
}

fn expire(w: &mut TimerWheel<u32>, m: &mut Model, now: Instant) {
    let mut out = Vec::new();
    w.expire(now, &mut out);
    let mut fired: Vec<u32> = out
        .iter()
        .map(|&(h, id)| {
            let (d, handle, live) = m.entries[id as usize];
            assert!(live, "{id} fired twice or after cancel");
            assert_eq!(h, handle);
            assert!(d <= now, "{id} fired early");
            m.entries[id as usize].2 = false;
            id
        })
        .collect();
    fired.sort_unstable();
    let mut want = Vec::new();
    while let Some((&(d, id), _)) = m.due.first_key_value() {
        if d > now {
            break;
        }
        m.due.pop_first();
        want.push(id);
    }
    want.sort_unstable();
    assert_eq!(fired, want, "late or extra at {now:?}");
    if let Some(d) = w.next_deadline() {
        assert!(d > now, "next_deadline {d:?} <= now {now:?}: would spin");
    }
}

fuzz_target!(|input: Input| {
    let t0 = Instant::now();
    // Room before the origin for deadlines that precede it.
    let origin = t0 + Duration::from_secs(100);
    let tick = Duration::from_millis(u64::from(input.tick_ms % 25));
    let mut w = TimerWheel::new(origin, tick, 1 << (input.slots_log2 % 8));
    let mut m = Model {
        due: BTreeMap::new(),
        entries: Vec::new(),
    };
    let mut now = origin;
    for op in input.ops {
        match op {
            Op::Insert(when) | Op::InsertAt(when) if m.entries.len() >= 4096 => {
                let _ = when;
            }
            Op::Insert(when) => {
                let id = m.entries.len() as u32;
                let after = match when {
                    When::Soon(us) => Duration::from_micros(u64::from(us)),
                    When::Later(ms) => Duration::from_millis(u64::from(ms) * 16),
                    When::Past(_) => Duration::ZERO,
                    When::Never => Duration::MAX,
                };
                let h = w.insert(now, after, id);
                let d = w.deadline(h).expect("fresh handle");
                match now.checked_add(after) {
                    Some(exact) => assert_eq!(d, exact),
                    None => assert!(d >= now, "absurd delay made early"),
                }
                m.due.insert((d, id), ());
                m.entries.push((d, h, true));
            }
            Op::InsertAt(when) => {
                let id = m.entries.len() as u32;
                let d = match when {
                    When::Soon(us) => now.checked_add(Duration::from_micros(u64::from(us))),
                    When::Later(ms) => now.checked_add(Duration::from_millis(u64::from(ms) * 16)),
                    When::Past(ms) => now.checked_sub(Duration::from_millis(u64::from(ms) * 4)),
                    When::Never => now.checked_add(Duration::from_secs(1 << 40)),
                };
                // After a jump to an absurd deadline `now` is near the end of
                // time; clamp rather than overflow.
                let d = d.unwrap_or(now).max(t0);
                let h = w.insert_at(d, id);
                assert_eq!(w.deadline(h), Some(d));
                m.due.insert((d, id), ());
                m.entries.push((d, h, true));
            }
            Op::Cancel(k) => {
                if m.entries.is_empty() {
                    continue;
                }
                let id = usize::from(k) % m.entries.len();
                let (d, h, live) = m.entries[id];
                if live {
                    assert_eq!(w.get(h), Some(&(id as u32)));
                    assert_eq!(w.cancel(h), Some(id as u32));
                    m.due.remove(&(d, id as u32));
                    m.entries[id].2 = false;
                }
                // Dead now either way: every way of asking is a no-op.
                assert_eq!(w.cancel(h), None);
                assert_eq!(w.get(h), None);
                assert_eq!(w.deadline(h), None);
            }
            Op::Advance { amount, far } => {
                let unit = if far { 1000 } else { 1 };
                let step = Duration::from_micros(u64::from(amount) * unit);
                now = now.checked_add(step).unwrap_or(now);
                expire(&mut w, &mut m, now);
            }
            Op::Back(ms) => {
                now = now
                    .checked_sub(Duration::from_millis(u64::from(ms)))
                    .unwrap_or(now)
                    .max(t0);
                expire(&mut w, &mut m, now);
            }
            Op::Sleep => {
                if let Some(d) = w.next_deadline() {
                    now = now.max(d);
                }
                expire(&mut w, &mut m, now);
            }
        }
        assert_eq!(w.len(), m.due.len());
        match (w.next_deadline(), m.due.first_key_value()) {
            (None, None) => {}
            (Some(d), Some((&(earliest, _), _))) => assert!(d <= earliest, "next_deadline late"),
            (a, b) => panic!("next_deadline {a:?} with earliest {b:?}"),
        }
    }
});
