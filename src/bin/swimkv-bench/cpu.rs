//! Server CPU time: the user plus system time of the server processes
//! (`--cpu-pids`), read from `/proc/<pid>/stat` at the start and the end of the
//! measured phase, so a run reports CPU time per request beside its req/s.
//!
//! Invariant: a sample covers every thread of each process (the process totals
//! of `/proc/<pid>/stat`); any process that cannot be read makes the sample
//! `None` (never a partial sum). Linux only; elsewhere always `None`.

/// Clock ticks per second of `/proc` times (USER_HZ, fixed at 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// User plus system CPU seconds of one process so far.
fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields follow the last ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name come state (field 3), ..., utime (14), stime (15).
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// CPU seconds of all of `pids` so far; `None` when there are none or one is unreadable.
pub(crate) fn cpu_seconds(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&p| process_cpu_seconds(p)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_cpu_time_and_an_unknown_pid_has_none() {
        // Burn a little CPU so the reading is not zero at 10 ms resolution.
        let mut x = 0u64;
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_millis(50) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        assert!(x != 1);
        let me = std::process::id();
        if std::path::Path::new("/proc/self/stat").exists() {
            assert!(cpu_seconds(&[me]).is_some_and(|s| s > 0.0));
            assert_eq!(cpu_seconds(&[me, u32::MAX]), None, "one unreadable: no sum");
        }
        assert_eq!(cpu_seconds(&[]), None);
    }
}
