//! The closed-loop load driver: `concurrency` workers each send one request, wait for the answer,
//! and send the next, so there are always `concurrency` requests in flight. Every latency of the
//! measured window is kept and sorted; nothing is sampled or bucketed.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::machine::CpuSnapshot;

/// One operation's outcome: `Err` carries a short description (status, error text).
pub type OpResult = Result<(), String>;

/// The timing of a run: a warm-up whose requests are not recorded, then the measured window.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub warmup: Duration,
    pub duration: Duration,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Stats {
    pub concurrency: usize,
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// From the start of the measured window to the last recorded completion.
    pub elapsed: Duration,
    /// Latencies of the successful requests started in the measured window, in nanoseconds,
    /// sorted ascending.
    pub latencies_ns: Vec<u64>,
    /// Whole-machine busy share over the measured window (0..=1 of all cores).
    pub machine_busy: Option<f64>,
    /// This process's CPU time over the window, as a share of all cores (0..=1).
    pub process_busy: Option<f64>,
}

impl Stats {
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ok as f64 / secs
        } else {
            0.0
        }
    }

    /// Nearest-rank percentile in milliseconds (`p` in 0..=100).
    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_ns.is_empty() {
            return f64::NAN;
        }
        let n = self.latencies_ns.len();
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        let index = rank.clamp(1, n) - 1;
        self.latencies_ns[index] as f64 / 1e6
    }

    pub fn max_ms(&self) -> f64 {
        self.latencies_ns
            .last()
            .map_or(f64::NAN, |&ns| ns as f64 / 1e6)
    }
}

impl Stats {
    /// One scenario's measurements from several windows of it: every latency, every request, the
    /// windows' lengths added up, and the CPU shares weighted by each window's length.
    pub fn merge(parts: Vec<Stats>) -> Stats {
        let mut merged = Stats {
            concurrency: parts.first().map_or(0, |part| part.concurrency),
            ok: 0,
            errors: 0,
            first_error: None,
            elapsed: Duration::ZERO,
            latencies_ns: Vec::with_capacity(parts.iter().map(|p| p.latencies_ns.len()).sum()),
            machine_busy: None,
            process_busy: None,
        };
        let weighted = |share: fn(&Stats) -> Option<f64>| {
            let mut sum = 0.0;
            let mut seconds = 0.0;
            for part in &parts {
                let secs = part.elapsed.as_secs_f64();
                sum += share(part)? * secs;
                seconds += secs;
            }
            (seconds > 0.0).then(|| sum / seconds)
        };
        merged.machine_busy = weighted(|part| part.machine_busy);
        merged.process_busy = weighted(|part| part.process_busy);
        for part in parts {
            merged.ok += part.ok;
            merged.errors += part.errors;
            if merged.first_error.is_none() {
                merged.first_error = part.first_error;
            }
            merged.elapsed += part.elapsed;
            merged.latencies_ns.extend(part.latencies_ns);
        }
        merged.latencies_ns.sort_unstable();
        merged
    }
}

struct WorkerResult {
    latencies_ns: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
    last_finish: Option<Instant>,
}

/// Runs `op` from `concurrency` workers for the warm-up plus the measured window. `op` gets the
/// worker's index and the worker's request counter (to vary inputs, e.g. which account logs in).
pub async fn drive<F, Fut>(concurrency: usize, window: Window, op: F) -> Stats
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = OpResult> + Send + 'static,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let measure_from = start + window.warmup;
    let end = measure_from + window.duration;
    let mut workers = JoinSet::new();
    for worker in 0..concurrency {
        let op = Arc::clone(&op);
        workers.spawn(async move {
            let mut result = WorkerResult {
                latencies_ns: Vec::with_capacity(16 * 1024),
                errors: 0,
                first_error: None,
                last_finish: None,
            };
            let mut n = 0u64;
            loop {
                let started = Instant::now();
                if started >= end {
                    break;
                }
                let outcome = op(worker, n).await;
                n += 1;
                let finished = Instant::now();
                if started < measure_from {
                    continue;
                }
                result.last_finish = Some(finished);
                match outcome {
                    Ok(()) => {
                        let ns = u64::try_from((finished - started).as_nanos()).unwrap_or(u64::MAX);
                        result.latencies_ns.push(ns);
                    }
                    Err(error) => {
                        result.errors += 1;
                        result.first_error.get_or_insert(error);
                    }
                }
            }
            result
        });
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu_before = CpuSnapshot::take();
    tokio::time::sleep_until(end.into()).await;
    let cpu_after = CpuSnapshot::take();

    let mut stats = Stats {
        concurrency,
        ok: 0,
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
        latencies_ns: Vec::new(),
        machine_busy: None,
        process_busy: None,
    };
    if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
        stats.machine_busy = after.machine_busy_since(&before);
        stats.process_busy = after.process_busy_since(&before);
    }
    let mut last_finish = measure_from;
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(result) => {
                stats.errors += result.errors;
                if stats.first_error.is_none() {
                    stats.first_error = result.first_error;
                }
                if let Some(t) = result.last_finish {
                    last_finish = last_finish.max(t);
                }
                stats.latencies_ns.extend(result.latencies_ns);
            }
            Err(error) => {
                stats.errors += 1;
                stats
                    .first_error
                    .get_or_insert_with(|| format!("worker failed: {error}"));
            }
        }
    }
    stats.latencies_ns.sort_unstable();
    stats.ok = stats.latencies_ns.len() as u64;
    stats.elapsed = last_finish - measure_from;
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(latencies_ms: &[u64]) -> Stats {
        let mut latencies_ns: Vec<u64> = latencies_ms.iter().map(|ms| ms * 1_000_000).collect();
        latencies_ns.sort_unstable();
        Stats {
            concurrency: 1,
            ok: latencies_ns.len() as u64,
            errors: 0,
            first_error: None,
            elapsed: Duration::from_secs(2),
            latencies_ns,
            machine_busy: None,
            process_busy: None,
        }
    }

    #[test]
    fn merged_windows_keep_every_latency_and_weigh_cpu_by_length() {
        let mut short = stats(&[1, 3]);
        short.elapsed = Duration::from_secs(1);
        short.machine_busy = Some(1.0);
        short.process_busy = Some(0.5);
        short.errors = 1;
        short.first_error = Some("first".to_owned());
        let mut long = stats(&[2, 4, 5]);
        long.elapsed = Duration::from_secs(3);
        long.machine_busy = Some(0.6);
        long.process_busy = None;
        long.first_error = Some("second".to_owned());
        let merged = Stats::merge(vec![short, long]);
        assert_eq!(merged.ok, 5);
        assert_eq!(merged.errors, 1);
        assert_eq!(merged.first_error.as_deref(), Some("first"));
        assert_eq!(merged.elapsed, Duration::from_secs(4));
        assert_eq!(merged.percentile_ms(60.0), 3.0);
        assert_eq!(merged.max_ms(), 5.0);
        assert_eq!(merged.rate(), 1.25);
        let busy = merged
            .machine_busy
            .expect("both windows measured the machine");
        assert!((busy - 0.7).abs() < 1e-9, "{busy}");
        assert_eq!(merged.process_busy, None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let s = stats(&(1..=100).collect::<Vec<_>>());
        assert_eq!(s.percentile_ms(50.0), 50.0);
        assert_eq!(s.percentile_ms(95.0), 95.0);
        assert_eq!(s.percentile_ms(99.0), 99.0);
        assert_eq!(s.percentile_ms(100.0), 100.0);
        assert_eq!(s.max_ms(), 100.0);
        assert_eq!(s.rate(), 50.0);
        let one = stats(&[7]);
        assert_eq!(one.percentile_ms(0.0), 7.0);
        assert_eq!(one.percentile_ms(99.0), 7.0);
        assert!(stats(&[]).percentile_ms(50.0).is_nan());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn drives_the_requested_concurrency() {
        let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (f, p) = (Arc::clone(&in_flight), Arc::clone(&peak));
        let s = drive(
            4,
            Window {
                warmup: Duration::from_millis(20),
                duration: Duration::from_millis(200),
            },
            move |_, _| {
                let (f, p) = (Arc::clone(&f), Arc::clone(&p));
                async move {
                    let now = f.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    p.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    f.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    Ok(())
                }
            },
        )
        .await;
        assert_eq!(peak.load(std::sync::atomic::Ordering::SeqCst), 4);
        assert!(s.ok > 0);
        assert_eq!(s.errors, 0);
    }
}
