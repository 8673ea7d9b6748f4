//! What each connection asks for: the operation types ([`Op`]), the get/put/delete mix
//! ([`OpMix`]), the key distribution (uniform or [`Zipf`]) and the per-connection
//! generator ([`Workload`]) that draws the next (operation, key index) pair.
//!
//! Invariants: an `OpMix` always sums to 100 (it is only ever built by `from_flags`);
//! keys are indices in `0..keys` and a `Zipf` is only built for `n >= 1` and
//! θ in (0, 1), so every draw is in range. Everything random comes from the
//! connection's own seeded `SmallRng` (seed derived with [`splitmix64`]), so a run's
//! request sequence is reproducible; the order of RNG calls is part of that contract.

use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::Rng;

/// The three operation types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Get = 0,
    Put = 1,
    Delete = 2,
}

impl Op {
    /// All operation types, in report order.
    pub(crate) const ALL: [Op; 3] = [Op::Get, Op::Put, Op::Delete];

    /// Name used in reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Put => "put",
            Op::Delete => "delete",
        }
    }
}

/// Operation mix in percent; always sums to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OpMix {
    pub(crate) get: u32,
    pub(crate) put: u32,
    pub(crate) delete: u32,
}

impl OpMix {
    /// Builds a mix from the optional `--get/--put/--delete` flags: none given means
    /// 90/10/0, otherwise missing ones are 0; rejects any mix not summing to 100.
    pub(crate) fn from_flags(
        get: Option<u32>,
        put: Option<u32>,
        delete: Option<u32>,
    ) -> Result<Self, String> {
        let mix = if get.is_none() && put.is_none() && delete.is_none() {
            OpMix {
                get: 90,
                put: 10,
                delete: 0,
            }
        } else {
            OpMix {
                get: get.unwrap_or(0),
                put: put.unwrap_or(0),
                delete: delete.unwrap_or(0),
            }
        };
        let sum = u64::from(mix.get) + u64::from(mix.put) + u64::from(mix.delete);
        if sum != 100 {
            return Err(format!(
                "--get {} --put {} --delete {} sums to {sum}, must be 100",
                mix.get, mix.put, mix.delete
            ));
        }
        Ok(mix)
    }

    /// Maps a uniform draw in `0..100` to an operation.
    fn pick(&self, draw: u32) -> Op {
        if draw < self.get {
            Op::Get
        } else if draw < self.get + self.put {
            Op::Put
        } else {
            Op::Delete
        }
    }
}

/// Zipfian generator over ranks `0..n` (Gray et al., "Quickly generating billion-record
/// synthetic databases", SIGMOD 1994; the `ZipfianGenerator` of YCSB). Rank 0 is the most
/// frequent; P(rank i) ∝ 1 / (i + 1)^θ. The O(n) zeta sum is computed once and the struct
/// is `Copy`, so every connection shares it and only owns its RNG.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Zipf {
    n: u64,
    alpha: f64,
    zetan: f64,
    eta: f64,
    /// `1 + 0.5^θ`: the draw threshold below which rank 1 is returned.
    two_threshold: f64,
}

impl Zipf {
    /// Precomputes the constants for `n` items with skew `theta` in (0, 1).
    pub(crate) fn new(n: u64, theta: f64) -> Result<Self, String> {
        if n == 0 {
            return Err("zipf needs at least one key".into());
        }
        if !(theta > 0.0 && theta < 1.0) {
            return Err(format!(
                "--zipf-s must be strictly between 0 and 1 (got {theta})"
            ));
        }
        let zetan = zeta(n, theta);
        let zeta2 = 1.0 + 0.5f64.powf(theta);
        let eta = if n > 2 {
            (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan)
        } else {
            0.0
        };
        Ok(Zipf {
            n,
            alpha: 1.0 / (1.0 - theta),
            zetan,
            eta,
            two_threshold: zeta2,
        })
    }

    /// Draws one rank in `0..n`.
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        let u: f64 = rng.gen();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < self.two_threshold {
            return 1.min(self.n - 1);
        }
        let rank = (self.n as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        rank.min(self.n - 1)
    }
}

/// ζ(n, θ) = Σ_{i=1..n} 1 / i^θ.
fn zeta(n: u64, theta: f64) -> f64 {
    (1..=n).map(|i| (i as f64).powf(-theta)).sum()
}

/// SplitMix64 finaliser, used to derive independent per-connection seeds.
pub(crate) fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The per-connection request generator: op mix, key distribution and its RNG.
pub(crate) struct Workload {
    pub(crate) rng: SmallRng,
    pub(crate) mix: OpMix,
    pub(crate) keys: u64,
    pub(crate) zipf: Option<Zipf>,
    /// `--token-aware`: draw only these key indices (uniformly).
    pub(crate) subset: Option<Arc<Vec<u64>>>,
}

impl Workload {
    /// Next operation and key index.
    pub(crate) fn next(&mut self) -> (Op, u64) {
        let op = self.mix.pick(self.rng.gen_range(0..100));
        let key = match (&self.subset, &self.zipf) {
            (Some(subset), _) if !subset.is_empty() => subset[self.rng.gen_range(0..subset.len())],
            (_, Some(z)) => z.sample(&mut self.rng),
            _ => self.rng.gen_range(0..self.keys),
        };
        (op, key)
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    use super::{zeta, Op, OpMix, Zipf};

    #[test]
    fn zipf_rank_zero_most_frequent_and_in_range() {
        let n = 1000;
        let zipf = Zipf::new(n, 0.99).expect("valid");
        let mut rng = SmallRng::seed_from_u64(42);
        let mut counts = vec![0u64; n as usize];
        let samples = 200_000;
        for _ in 0..samples {
            let r = zipf.sample(&mut rng);
            assert!(r < n);
            counts[r as usize] += 1;
        }
        let top = counts.iter().copied().max().unwrap_or(0);
        assert_eq!(counts[0], top);
        assert!(counts[0] > counts[1] && counts[1] > counts[10] && counts[10] > counts[500]);
        // P(rank 0) = 1 / zeta(n): check within 5 %.
        let expected = samples as f64 / zeta(n, 0.99);
        assert!((counts[0] as f64 - expected).abs() < expected * 0.05);
    }

    #[test]
    fn zipf_is_deterministic_for_a_seed() {
        let zipf = Zipf::new(10_000, 0.8).expect("valid");
        let draw = |seed| {
            let mut rng = SmallRng::seed_from_u64(seed);
            (0..1000).map(|_| zipf.sample(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn zipf_edge_cases() {
        let mut rng = SmallRng::seed_from_u64(1);
        let one = Zipf::new(1, 0.99).expect("valid");
        let two = Zipf::new(2, 0.99).expect("valid");
        for _ in 0..1000 {
            assert_eq!(one.sample(&mut rng), 0);
            assert!(two.sample(&mut rng) < 2);
        }
        assert!(Zipf::new(0, 0.5).is_err());
        assert!(Zipf::new(10, 1.0).is_err());
        assert!(Zipf::new(10, 0.0).is_err());
    }

    #[test]
    fn op_mix_must_sum_to_100() {
        assert_eq!(
            OpMix::from_flags(None, None, None),
            Ok(OpMix {
                get: 90,
                put: 10,
                delete: 0
            })
        );
        assert_eq!(
            OpMix::from_flags(Some(100), None, None),
            Ok(OpMix {
                get: 100,
                put: 0,
                delete: 0
            })
        );
        assert!(OpMix::from_flags(Some(80), Some(10), Some(10)).is_ok());
        assert!(OpMix::from_flags(Some(90), Some(20), None).is_err());
        assert!(OpMix::from_flags(Some(90), None, None).is_err());
        assert!(OpMix::from_flags(Some(0), Some(0), Some(0)).is_err());
        let mix = OpMix::from_flags(Some(50), Some(30), Some(20)).expect("valid");
        assert_eq!(mix.pick(0), Op::Get);
        assert_eq!(mix.pick(49), Op::Get);
        assert_eq!(mix.pick(50), Op::Put);
        assert_eq!(mix.pick(79), Op::Put);
        assert_eq!(mix.pick(80), Op::Delete);
        assert_eq!(mix.pick(99), Op::Delete);
    }
}
