//! Lifeguard suspicion timeouts: long at first, shorter with every independent
//! confirmation (the "dogpile" refinement).
//!
//! `timeout(C) = max(min, max - (max - min) * log(C + 1) / log(K + 1))` where C is
//! the number of independent confirmations and K the number expected. Invariant:
//! the timeout never grows as confirmations arrive and never drops below `min`. Pure.

/// The minimum suspicion timeout: `mult * max(1, log10(n)) * period` milliseconds.
pub fn min_timeout_ms(mult: u64, members: usize, period_ms: u64) -> u64 {
    let log = (members.max(1) as f64).log10().max(1.0);
    (mult as f64 * log * period_ms as f64) as u64
}

/// The suspicion timeout after `confirmations` of `expected` independent confirmations.
pub fn timeout_ms(min_ms: u64, max_ms: u64, confirmations: usize, expected: usize) -> u64 {
    if expected == 0 || max_ms <= min_ms {
        return min_ms;
    }
    let frac = ((confirmations + 1) as f64).ln() / ((expected + 1) as f64).ln();
    let t = max_ms as f64 - (max_ms - min_ms) as f64 * frac;
    (t.floor() as u64).clamp(min_ms, max_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeout_shrinks_with_confirmations_down_to_the_minimum() {
        let (min, max) = (4_000, 24_000);
        let ts: Vec<u64> = (0..6).map(|c| timeout_ms(min, max, c, 3)).collect();
        assert_eq!(ts[0], max);
        assert!(ts.windows(2).all(|w| w[1] <= w[0]), "{ts:?}");
        assert_eq!(ts[3], min);
        assert_eq!(ts[5], min);
    }

    #[test]
    fn the_minimum_scales_with_the_log_of_the_cluster() {
        assert_eq!(min_timeout_ms(4, 5, 1000), 4000);
        assert_eq!(min_timeout_ms(4, 100, 1000), 8000);
        assert_eq!(min_timeout_ms(4, 1000, 1000), 12000);
    }
}
