//! Where a record lives in a store: its key's token, then the key.
//!
//! Invariant: [`StoreKey`]s order by token first, then by key bytes, in memory and
//! in their byte encoding alike (the token is 8 big-endian bytes of fixed
//! length), so one token range of the ring is one contiguous scan in every
//! engine. Pure.

use crate::ring::hash::{token, Token};

/// A key placed on the ring: `(token, key)`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StoreKey {
    /// The key's token (murmur3 of its bytes).
    pub token: Token,
    /// The key.
    pub key: String,
}

impl StoreKey {
    /// The place of `key`: its own token.
    pub fn of(key: &str) -> StoreKey {
        StoreKey {
            token: token(key.as_bytes()),
            key: key.to_string(),
        }
    }

    /// The smallest place at `token` (before every key there).
    pub fn first_at(token: Token) -> StoreKey {
        StoreKey {
            token,
            key: String::new(),
        }
    }

    /// The byte encoding: 8 big-endian token bytes, then the key's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.key.len());
        out.extend_from_slice(&self.token.to_be_bytes());
        out.extend_from_slice(self.key.as_bytes());
        out
    }

    /// Decodes [`StoreKey::encode`]'s bytes; `None` for anything else.
    pub fn decode(bytes: &[u8]) -> Option<StoreKey> {
        let (token, key) = bytes.split_first_chunk::<8>()?;
        Some(StoreKey {
            token: u64::from_be_bytes(*token),
            key: String::from_utf8(key.to_vec()).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    #[test]
    fn byte_order_is_store_key_order() {
        let mut rng = StdRng::seed_from_u64(7);
        let keys: Vec<StoreKey> = (0..2_000)
            .map(|_| StoreKey {
                token: rng.gen_range(0..4u64) << 62 | rng.gen_range(0..3),
                key: (0..rng.gen_range(0..4))
                    .map(|_| char::from(rng.gen_range(b'a'..=b'c')))
                    .collect(),
            })
            .collect();
        for pair in keys.windows(2) {
            assert_eq!(
                pair[0].cmp(&pair[1]),
                pair[0].encode().cmp(&pair[1].encode()),
                "{pair:?}"
            );
        }
    }

    #[test]
    fn encodings_decode_back_and_garbage_is_refused() {
        let k = StoreKey::of("hello");
        assert_eq!(StoreKey::decode(&k.encode()), Some(k));
        assert_eq!(StoreKey::decode(&[1, 2, 3]), None, "shorter than a token");
        let mut bad = StoreKey::of("x").encode();
        bad.push(0xff);
        assert_eq!(StoreKey::decode(&bad), None, "not UTF-8");
    }
}
