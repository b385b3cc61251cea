//! TCP sequence numbers: arithmetic and ordering modulo 2^32.

use std::cmp::Ordering;
use std::ops::{Add, Sub};

/// A TCP sequence number.
///
/// Sequence numbers wrap at 2^32, so "before" and "after" only make sense within half
/// the number space: `a < b` means `b` is less than 2^31 bytes ahead of `a`. That is why
/// this type implements [`PartialOrd`] but not [`Ord`]: the relation is not transitive
/// over the whole space, so it must not key a sorted map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNumber(pub u32);

impl Add<usize> for SeqNumber {
    type Output = SeqNumber;

    /// Advances by `n` bytes, wrapping. Only the low 32 bits of `n` matter, as on the wire.
    fn add(self, n: usize) -> SeqNumber {
        SeqNumber(self.0.wrapping_add(n as u32))
    }
}

impl Sub for SeqNumber {
    type Output = i32;

    /// Signed distance from `rhs` to `self`: positive when `self` is ahead.
    fn sub(self, rhs: SeqNumber) -> i32 {
        self.0.wrapping_sub(rhs.0) as i32
    }
}

impl PartialOrd for SeqNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some((*self - *other).cmp(&0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_around_2_pow_32() {
        let near_end = SeqNumber(u32::MAX - 9);
        let wrapped = near_end + 20;
        assert_eq!(wrapped, SeqNumber(10));
        assert_eq!(wrapped - near_end, 20);
        assert_eq!(near_end - wrapped, -20);
        assert!(near_end < wrapped);
        assert!(wrapped > near_end);
    }

    #[test]
    fn half_space_decides_order() {
        let a = SeqNumber(0);
        assert!(a < SeqNumber(0x7fff_ffff));
        assert!(a > SeqNumber(0x8000_0001));
        assert_eq!(a.partial_cmp(&a), Some(Ordering::Equal));
    }
}
