//! A small, fast, non-cryptographic hasher for the agent's tables (TCP flows, dedup).
//!
//! The standard SipHash resists hash flooding but costs several times more than the
//! rest of a per-segment lookup. Flow keys come from captured traffic, which an
//! attacker could shape, so every table using it is bounded instead (flows, dedup entries):
//! collisions can slow lookups down but cannot grow memory.

use std::hash::{BuildHasher, Hasher};

/// Multiplier from the golden ratio (2^64 / phi, rounded to odd): spreads input bits
/// over the whole word.
const SPREAD: u64 = 0x9e37_79b9_7f4a_7c15;

/// Builds [`MixHasher`]s. Stateless, so every table hashes the same way (deterministic
/// iteration order for a given input, which keeps replays reproducible).
#[derive(Debug, Clone, Copy, Default)]
pub struct MixBuildHasher;

impl BuildHasher for MixBuildHasher {
    type Hasher = MixHasher;

    fn build_hasher(&self) -> MixHasher {
        MixHasher(0)
    }
}

/// Rotate, xor, multiply per word: enough mixing for addresses and ports.
#[derive(Debug, Clone, Copy)]
pub struct MixHasher(u64);

impl MixHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(23) ^ word).wrapping_mul(SPREAD);
    }
}

impl Hasher for MixHasher {
    #[inline]
    fn finish(&self) -> u64 {
        // Fold the high bits down: hashbrown picks buckets from the low bits.
        self.0 ^ (self.0 >> 29)
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let tail = chunks.remainder();
        if !tail.is_empty() {
            let mut word = [0u8; 8];
            word[..tail.len()].copy_from_slice(tail);
            // The length keeps "ab" and "ab\0" apart.
            self.mix(u64::from_le_bytes(word) ^ ((tail.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.mix(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.mix(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn distinct_ports_hash_apart() {
        let hashes: HashSet<u64> = (0u16..1000).map(|p| MixBuildHasher.hash_one((p, 5060u16))).collect();
        assert_eq!(hashes.len(), 1000);
        assert_ne!(MixBuildHasher.hash_one(b"ab".as_slice()), MixBuildHasher.hash_one(b"ab\0".as_slice()));
    }
}
