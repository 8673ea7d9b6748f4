//! Anti-entropy digests kept up to date on every write.
//!
//! The token space is cut into [`SEGMENTS`] equal segments (the top 16 bits of a
//! token). Each segment holds the XOR of the hashes of `(key, version)` of every
//! record in it; a write toggles the old record's hash out and the new one's in,
//! so a digest over whole segments costs 65,536 XORs, not a scan of the store.
//! A digest bucket is a run of whole segments (its token prefix); only the ends
//! of a token range that cut through a segment are scanned.
//!
//! Invariant: `xor[s]` equals the XOR of [`item_hash`] over the records of
//! segment `s` (a conformance test recomputes it from scratch after random
//! writes). Pure.

use super::record::Version;
use crate::ring::hash::{token, Token};

/// Bits of a token that name its segment.
pub const SEGMENT_BITS: u32 = 16;

/// Number of segments (and the most digest buckets).
pub const SEGMENTS: usize = 1 << SEGMENT_BITS;

/// The hash of one record's `(key, version)` in a digest.
pub fn item_hash(key: &str, version: Version) -> u64 {
    let mut bytes = Vec::with_capacity(key.len() + 16);
    bytes.extend_from_slice(key.as_bytes());
    bytes.extend_from_slice(&version.ts.to_be_bytes());
    bytes.extend_from_slice(&version.node.to_be_bytes());
    token(&bytes)
}

/// The segment of a token.
pub fn segment_of(t: Token) -> usize {
    (t >> (64 - SEGMENT_BITS)) as usize
}

/// The first and last token of segment `s`.
pub fn segment_span(s: usize) -> (Token, Token) {
    let first = (s as u64) << (64 - SEGMENT_BITS);
    (first, first | (Token::MAX >> SEGMENT_BITS))
}

/// Bits of a token that name its bucket when a digest has `buckets` buckets:
/// the largest power of two not above `buckets`, clamped to 1..=[`SEGMENTS`].
pub fn bucket_bits(buckets: u32) -> u32 {
    let b = buckets.clamp(1, SEGMENTS as u32);
    31 - b.leading_zeros()
}

/// The bucket of token `t` among `1 << bits` buckets (its top `bits` bits).
pub fn bucket_of(t: Token, bits: u32) -> usize {
    if bits == 0 {
        0
    } else {
        (t >> (64 - bits)) as usize
    }
}

/// Ring ranges `(start, end]` (sorted; a range starting at 0 also holds 0, the
/// other half of a split wrapping range) as inclusive token intervals.
pub fn intervals(ranges: &[(Token, Token)]) -> Vec<(Token, Token)> {
    let mut out = Vec::with_capacity(ranges.len() + 1);
    for &(s, e) in ranges {
        if s == 0 {
            out.push((0, e));
        } else if s < e {
            out.push((s + 1, e));
        } else if s > e {
            // A wrapping range given whole: past `s` to the end, then up to `e`.
            if let Some(first) = s.checked_add(1) {
                out.push((first, Token::MAX));
            }
            out.push((0, e));
        }
    }
    out.sort_unstable();
    out
}

/// The per-segment XOR digests of one store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segments {
    xor: Vec<u64>,
}

impl Default for Segments {
    fn default() -> Self {
        Segments {
            xor: vec![0; SEGMENTS],
        }
    }
}

impl Segments {
    /// Digests of an empty store.
    pub fn new() -> Segments {
        Segments::default()
    }

    /// Toggles the record `(key, version)` at token `t` in (or out).
    pub fn toggle(&mut self, t: Token, key: &str, version: Version) {
        self.xor[segment_of(t)] ^= item_hash(key, version);
    }

    /// Toggles an item hash (of [`item_hash`]) at token `t` in (or out).
    pub fn toggle_hash(&mut self, t: Token, hash: u64) {
        self.xor[segment_of(t)] ^= hash;
    }

    /// The digest of segment `s`.
    pub fn get(&self, s: usize) -> u64 {
        self.xor[s]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_token_prefixes_and_round_down_to_powers_of_two() {
        assert_eq!(bucket_bits(0), 0);
        assert_eq!(bucket_bits(1), 0);
        assert_eq!(bucket_bits(256), 8);
        assert_eq!(bucket_bits(300), 8);
        assert_eq!(bucket_bits(u32::MAX), 16);
        assert_eq!(bucket_of(Token::MAX, 8), 255);
        assert_eq!(bucket_of(Token::MAX, 0), 0);
        let (first, last) = segment_span(SEGMENTS - 1);
        assert_eq!((segment_of(first), last), (SEGMENTS - 1, Token::MAX));
    }

    #[test]
    fn ranges_become_inclusive_intervals_with_wrapping_split() {
        assert_eq!(intervals(&[(0, 10), (20, 30)]), [(0, 10), (21, 30)]);
        assert_eq!(intervals(&[(50, 10)]), [(0, 10), (51, Token::MAX)]);
        assert!(intervals(&[(5, 5)]).is_empty());
        assert_eq!(intervals(&[(Token::MAX, 3)]), [(0, 3)]);
    }
}
