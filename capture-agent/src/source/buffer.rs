//! A large reusable read buffer over any [`Read`], so that packets can be borrowed from it.
//!
//! File readers ask for "at least N bytes at the cursor"; the buffer compacts (moves the
//! unread tail to the front) and refills with large reads only when needed. Memory stays
//! at one allocation of the capacity given to [`ReadBuf::new`] however large the file is.

use std::io::{self, Read};

/// Reads through one fixed-size buffer. `buf[start..end]` holds unread bytes whose first
/// byte sits at file offset `offset`.
#[derive(Debug)]
pub(crate) struct ReadBuf<R> {
    inner: R,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// File offset of `buf[start]`: the bytes consumed so far.
    offset: u64,
    /// The reader returned 0 once; do not ask it again.
    eof: bool,
}

impl<R: Read> ReadBuf<R> {
    /// Wraps `inner` with a buffer of `capacity` bytes (the largest contiguous window a
    /// caller may ask for).
    pub(crate) fn new(inner: R, capacity: usize) -> Self {
        Self {
            inner,
            buf: vec![0; capacity].into_boxed_slice(),
            start: 0,
            end: 0,
            offset: 0,
            eof: false,
        }
    }

    /// File offset of the first unread byte.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// Unread bytes currently buffered (may be fewer than the last `fill` asked for only
    /// if it returned `false`).
    pub(crate) fn available(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Makes at least `n` bytes available at the cursor. Returns `Ok(false)` when the
    /// input ends first (the bytes that do exist stay available). `n` must not exceed
    /// the capacity; callers check wire lengths against their caps first.
    pub(crate) fn fill(&mut self, n: usize) -> io::Result<bool> {
        debug_assert!(n <= self.buf.len());
        if self.end - self.start >= n {
            return Ok(true);
        }
        if self.start + n > self.buf.len() {
            self.compact();
        }
        while self.end - self.start < n && !self.eof {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(got) => self.end += got,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.end - self.start >= n)
    }

    /// Marks `n` buffered bytes as read. `n` must not exceed [`ReadBuf::available`].
    pub(crate) fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.end - self.start);
        self.start += n;
        self.offset += n as u64;
        if self.start == self.end {
            // Empty: restart at the front so the next fill reads a full buffer.
            self.start = 0;
            self.end = 0;
        }
    }

    /// Skips `n` bytes, which may extend beyond the buffer (blocks we do not parse).
    /// Returns how many were skipped: fewer than `n` only at end of input.
    pub(crate) fn skip(&mut self, n: u64) -> io::Result<u64> {
        let mut left = n;
        loop {
            let here = left.min((self.end - self.start) as u64) as usize;
            self.consume(here);
            left -= here as u64;
            if left == 0 || !self.fill(1)? {
                return Ok(n - left);
            }
        }
    }

    fn compact(&mut self) {
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that returns at most 3 bytes per call, to exercise refills.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(out.len()).min(3);
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn fills_across_small_reads_and_compacts() {
        let data: Vec<u8> = (0..100).collect();
        let mut rb = ReadBuf::new(Trickle(&data), 16);
        let mut seen = Vec::new();
        while rb.fill(7).unwrap() {
            seen.extend_from_slice(&rb.available()[..7]);
            rb.consume(7);
        }
        // 100 = 14 * 7 + 2: the last two bytes stay available after the failed fill.
        assert_eq!(rb.available(), &[98, 99]);
        assert_eq!(&seen[..], &data[..98]);
        assert_eq!(rb.offset(), 98);
    }

    #[test]
    fn skip_past_buffer_and_past_end() {
        let data: Vec<u8> = (0..100).collect();
        let mut rb = ReadBuf::new(Trickle(&data), 8);
        assert_eq!(rb.skip(50).unwrap(), 50);
        assert!(rb.fill(1).unwrap());
        assert_eq!(rb.available()[0], 50);
        assert_eq!(rb.skip(80).unwrap(), 50);
        assert_eq!(rb.offset(), 100);
    }
}
