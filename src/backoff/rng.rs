//! A tiny, fast, seedable random source for jitter (SplitMix64). Not for cryptography.

/// A per-request random source for jitter.
///
/// SplitMix64: a few instructions per draw, good statistical quality for spreading delays,
/// and fully determined by its seed (so tests can replay a schedule).
///
/// ```
/// use tower_retrier::backoff::JitterRng;
///
/// let mut a = JitterRng::new(9);
/// let mut b = JitterRng::new(9);
/// assert_eq!(a.next_u64(), b.next_u64());
/// assert!((0.0..1.0).contains(&a.next_f64()));
/// ```
#[derive(Clone, Debug)]
pub struct JitterRng {
    state: u64,
}

impl JitterRng {
    /// A generator whose whole sequence is determined by `seed`.
    ///
    /// ```
    /// let _ = tower_retrier::backoff::JitterRng::new(0);
    /// ```
    pub fn new(seed: u64) -> Self {
        JitterRng { state: seed }
    }

    /// The next 64 random bits.
    ///
    /// ```
    /// let mut r = tower_retrier::backoff::JitterRng::new(1);
    /// assert_ne!(r.next_u64(), r.next_u64());
    /// ```
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.state)
    }

    /// A uniform number in `[0, 1)`.
    ///
    /// ```
    /// let mut r = tower_retrier::backoff::JitterRng::new(1);
    /// let x = r.next_f64();
    /// assert!(x >= 0.0 && x < 1.0);
    /// ```
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform number in `[low, high)` (or `low` when the range is empty).
    ///
    /// ```
    /// let mut r = tower_retrier::backoff::JitterRng::new(1);
    /// let x = r.uniform(2.0, 3.0);
    /// assert!((2.0..3.0).contains(&x));
    /// ```
    pub fn uniform(&mut self, low: f64, high: f64) -> f64 {
        if high <= low {
            return low;
        }
        low + (high - low) * self.next_f64()
    }
}

/// The SplitMix64 finaliser; also used to derive per-request seeds from a shared one.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_is_roughly_uniform() {
        let mut r = JitterRng::new(123);
        let mut buckets = [0u32; 10];
        for _ in 0..100_000 {
            buckets[(r.next_f64() * 10.0) as usize] += 1;
        }
        for b in buckets {
            assert!((9_000..11_000).contains(&b), "{buckets:?}");
        }
    }
}

/// Hands every request its own seed: a base (random, or the user's for determinism) mixed
/// with a counter. Only touched when a request needs its first retry.
#[derive(Debug)]
pub(crate) struct SeedSource {
    base: u64,
    counter: std::sync::atomic::AtomicU64,
}

impl SeedSource {
    pub(crate) fn new(base: u64) -> Self {
        SeedSource {
            base,
            counter: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub(crate) fn random() -> Self {
        SeedSource::new(rand::random())
    }

    pub(crate) fn next(&self) -> u64 {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        mix(self.base ^ mix(n))
    }
}
