//! What the benchmark ran on (cores, CPU model, memory) and CPU use during a run, read from
//! `/proc` (Linux). Everything here degrades to "unknown" elsewhere.

use std::time::Instant;

/// Linux reports process CPU times in clock ticks of 1/100 s (`USER_HZ`) on every mainstream
/// architecture.
const TICKS_PER_SECOND: f64 = 100.0;

pub struct Machine {
    /// Cores this process may use (`nproc`: affinity and cgroup quota aware).
    pub nproc: usize,
    /// Processors listed in /proc/cpuinfo.
    pub listed_cpus: usize,
    pub cpu_model: String,
    pub memory: String,
    pub kernel: String,
}

impl Machine {
    pub fn probe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                matches!(key.trim(), "model name" | "Model" | "cpu model")
                    .then(|| value.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let listed_cpus = cpuinfo
            .lines()
            .filter(|line| {
                line.split(':')
                    .next()
                    .is_some_and(|k| k.trim() == "processor")
            })
            .count();
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| {
                let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
                let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(format!("{:.1} GiB", kib / 1024.0 / 1024.0))
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        Machine {
            nproc: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            listed_cpus,
            cpu_model,
            memory,
            kernel,
        }
    }
}

/// CPU counters at one instant: the machine's (from /proc/stat) and this process's.
pub struct CpuSnapshot {
    at: Instant,
    machine_busy: u64,
    machine_total: u64,
    process_ticks: Option<u64>,
}

impl CpuSnapshot {
    pub fn take() -> Option<CpuSnapshot> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let fields: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal (guest time is counted in user).
        let total: u64 = fields.iter().take(8).sum();
        let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
        Some(CpuSnapshot {
            at: Instant::now(),
            machine_busy: total.saturating_sub(idle),
            machine_total: total,
            process_ticks: process_ticks(),
        })
    }

    /// Share of all cores busy between `before` and `self`.
    pub fn machine_busy_since(&self, before: &CpuSnapshot) -> Option<f64> {
        let total = self.machine_total.checked_sub(before.machine_total)?;
        let busy = self.machine_busy.checked_sub(before.machine_busy)?;
        (total > 0).then(|| busy as f64 / total as f64)
    }

    /// This process's CPU time between `before` and `self`, as a share of all cores.
    pub fn process_busy_since(&self, before: &CpuSnapshot) -> Option<f64> {
        let ticks = self.process_ticks?.checked_sub(before.process_ticks?)?;
        let wall = (self.at - before.at).as_secs_f64();
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1) as f64;
        (wall > 0.0).then(|| ticks as f64 / TICKS_PER_SECOND / wall / cores)
    }
}

/// utime + stime of this process, in clock ticks.
fn process_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may contain spaces; the fields after it are plain.
    let after_comm = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields 14 and 15 of the whole line are the 12th and 13th after the command name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}
