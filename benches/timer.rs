//! Timer wheel costs at 10k and 1M live entries, with the server's shape
//! (10 ms tick, 1024 slots) and its kind of deadlines (spread over a 600 s
//! wait TTL).
//!
//! - `insert`: file N entries into a wheel whose storage is warm (steady
//!   state: the free list is reused, nothing allocates).
//! - `cancel`: cancel N entries in a scattered order.
//! - `expire_all`: N entries due within one revolution (10 s), expired by
//!   a loop that calls `expire` every 10 ms of simulated time.
//! - `expire_turn`: one `expire` call per 10 ms tick while N entries wait,
//!   re-arming the few that fire (the per-turn cost the event loop pays),
//!   reported per call.
//!
//! - `tick`: one `expire` call per 10 ms tick while N parked entries wait an
//!   hour or two (not due during the measurement) and 50 active entries,
//!   re-armed 50 ms ahead as they fire, make 10 come due per tick: the cost
//!   of a tick with a fixed amount of expiry as the stored count grows.
//!   Reported per call; a wheel that rescans stored entries pays for N here.
//!
//! Figures are elements per second; divide one by it for the cost per entry.

use criterion::{criterion_main, BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput};
use std::hint::black_box;
use std::time::{Duration, Instant};
use weir::timer::{Handle, TimerWheel};

const TICK: Duration = Duration::from_millis(10);
const SLOTS: usize = 1024;
const TTL_MS: u64 = 600_000;

/// Deterministic scattered values (xorshift), so runs are comparable.
fn scatter(n: usize, seed: u64) -> Vec<u64> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        })
        .collect()
}

/// Delays in `1..=span_ms` milliseconds.
fn delays(n: usize, span_ms: u64) -> Vec<Duration> {
    scatter(n, 0x5eed)
        .into_iter()
        .map(|x| Duration::from_millis(1 + x % span_ms))
        .collect()
}

/// A wheel holding one entry per delay, with its handles.
fn filled(origin: Instant, delays: &[Duration]) -> (TimerWheel<u64>, Vec<Handle>) {
    let mut w = TimerWheel::new(origin, TICK, SLOTS);
    let handles = delays
        .iter()
        .enumerate()
        .map(|(i, d)| w.insert(origin, *d, i as u64))
        .collect();
    (w, handles)
}

fn wheel(c: &mut Criterion) {
    let origin = Instant::now();
    for n in [10_000usize, 1_000_000] {
        let mut g = c.benchmark_group(format!(
            "timer_{}",
            if n >= 1_000_000 { "1M" } else { "10k" }
        ));
        g.sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(if n >= 1_000_000 { 4 } else { 2 }));
        let ttl = delays(n, TTL_MS);
        let soon = delays(n, 10_000);
        let order: Vec<usize> = {
            let mut idx: Vec<usize> = (0..n).collect();
            // Fisher-Yates with the deterministic stream.
            for (i, r) in scatter(n, 0xc0ffee).into_iter().enumerate().rev() {
                idx.swap(i, (r % (i as u64 + 1)) as usize);
            }
            idx
        };

        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::new("insert", n), |b| {
            b.iter_batched_ref(
                || {
                    // Warm storage: fill and cancel, so the free list has n slots.
                    let (mut w, hs) = filled(origin, &ttl);
                    for h in hs {
                        w.cancel(h);
                    }
                    w
                },
                |w| {
                    for (i, d) in ttl.iter().enumerate() {
                        black_box(w.insert(origin, *d, i as u64));
                    }
                },
                BatchSize::PerIteration,
            );
        });
        g.bench_function(BenchmarkId::new("cancel", n), |b| {
            b.iter_batched_ref(
                || filled(origin, &ttl),
                |(w, hs)| {
                    for &i in &order {
                        black_box(w.cancel(hs[i]));
                    }
                },
                BatchSize::PerIteration,
            );
        });
        g.bench_function(BenchmarkId::new("expire_all", n), |b| {
            b.iter_batched_ref(
                || (filled(origin, &soon).0, Vec::with_capacity(n)),
                |(w, out)| {
                    let mut now = origin;
                    while !w.is_empty() {
                        now += TICK;
                        w.expire(now, out);
                        out.clear();
                    }
                },
                BatchSize::PerIteration,
            );
        });

        // One loop turn: the wheel holds n entries with TTL deadlines and
        // the loop wakes every tick. The few entries that come due are
        // re-armed a TTL later, so the population stays at n however many
        // turns criterion runs.
        let (mut w, _) = filled(origin, &ttl);
        let mut out = Vec::new();
        let mut now = origin;
        let rearm = Duration::from_millis(TTL_MS);
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::new("expire_turn", n), |b| {
            b.iter(|| {
                now += TICK;
                w.expire(black_box(now), &mut out);
                for (_, v) in out.drain(..) {
                    w.insert(now, rearm, v);
                }
            });
        });
        assert_eq!(w.len(), n);

        g.bench_function(BenchmarkId::new("tick", n), |b| {
            b.iter_custom(|iters| tick_run(origin, n, iters));
        });
        g.finish();
    }
}

/// Active entries in the `tick` bench and how far ahead they are re-armed:
/// 50 entries 5 ticks ahead make 10 fire per tick.
const ACTIVE: u64 = 50;
const ACTIVE_AHEAD: Duration = Duration::from_millis(50);
/// Parked deadlines lie in `[1 h, 2 h)`; the first tick that could cascade
/// them is 64^3 ticks (43 min) in, so a wheel serves this many ticks before
/// it is rebuilt (outside the timed region).
const PARKED_FROM_MS: u64 = 3_600_000;
const TICKS_PER_BUILD: u64 = 200_000;

/// Times `iters` ticks of the `tick` bench, rebuilding the wheel untimed
/// every `TICKS_PER_BUILD` ticks so parked entries never come near.
fn tick_run(origin: Instant, n: usize, iters: u64) -> Duration {
    let parked: Vec<Duration> = delays(n, PARKED_FROM_MS)
        .into_iter()
        .map(|d| d + Duration::from_millis(PARKED_FROM_MS))
        .collect();
    let mut total = Duration::ZERO;
    let mut left = iters;
    let mut out = Vec::new();
    while left > 0 {
        let (mut w, _) = filled(origin, &parked);
        for i in 0..ACTIVE {
            w.insert(origin, TICK * (1 + (i % 5) as u32), n as u64 + i);
        }
        let mut now = origin;
        let batch = left.min(TICKS_PER_BUILD);
        let start = Instant::now();
        for _ in 0..batch {
            now += TICK;
            w.expire(black_box(now), &mut out);
            for (_, v) in out.drain(..) {
                w.insert(now, ACTIVE_AHEAD, v);
            }
        }
        total += start.elapsed();
        assert_eq!(w.len(), n + ACTIVE as usize);
        left -= batch;
    }
    total
}

/// Every bench in this file, configured from the command line.
fn benches() {
    let mut c = Criterion::default().configure_from_args();
    wheel(&mut c);
}

criterion_main!(benches);
