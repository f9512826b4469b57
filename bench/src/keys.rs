//! Record keys, their partitions, and record payloads.
//!
//! Keyed records are placed as Kafka's default partitioner places them (murmur2 of the key bytes,
//! made positive, modulo the partition count), so a skewed key distribution loads the same
//! partitions on every broker. Null-keyed records stick to one partition until its batch is full,
//! as Kafka's sticky partitioner (KIP-480/794) does.

use crate::spec::KeyDistribution;

/// Kafka's murmur2 (the Java client's `Utils.murmur2`), seed 0x9747b28c.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h = SEED ^ len as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner gives a keyed record.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    ((murmur2(key) & 0x7fff_ffff) as u32) % partitions
}

/// xorshift64*: fast, and good enough to pick keys (not for anything secret).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// The largest key space a skewed distribution tabulates (8 bytes per key).
pub const MAX_SKEWED_KEYS: u64 = 10_000_000;

/// Draws keys from a distribution.
pub enum KeyPicker {
    None,
    Uniform {
        count: u64,
    },
    /// Cumulative Zipf weights, normalised to end at 1.0.
    Skewed {
        cdf: Vec<f64>,
    },
}

impl KeyPicker {
    pub fn new(dist: KeyDistribution) -> KeyPicker {
        match dist {
            KeyDistribution::None => KeyPicker::None,
            KeyDistribution::Uniform { count } => KeyPicker::Uniform { count },
            KeyDistribution::Skewed { count, exponent } => {
                let n = count.clamp(1, MAX_SKEWED_KEYS) as usize;
                let mut cdf = Vec::with_capacity(n);
                let mut total = 0.0;
                for rank in 1..=n {
                    total += 1.0 / (rank as f64).powf(exponent);
                    cdf.push(total);
                }
                for c in &mut cdf {
                    *c /= total;
                }
                KeyPicker::Skewed { cdf }
            }
        }
    }

    /// The next key index, or `None` for a null key.
    pub fn pick(&self, rng: &mut Rng) -> Option<u64> {
        match self {
            KeyPicker::None => None,
            KeyPicker::Uniform { count } => Some(rng.below(*count)),
            KeyPicker::Skewed { cdf } => {
                let u = rng.next_f64();
                Some(cdf.partition_point(|&c| c < u).min(cdf.len() - 1) as u64)
            }
        }
    }
}

/// The bytes of key number `index` (decimal, like the keys people type).
pub fn key_bytes(index: u64, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(b"key-");
    out.extend_from_slice(index.to_string().as_bytes());
}

/// Random uppercase letters to fill values from, as Kafka's perf-test does: compressible about as
/// much as text, unlike zeros (which any codec erases) or random bytes (which none can shrink).
pub struct Payload {
    pool: Vec<u8>,
}

/// Payload pool size: large enough that consecutive records differ.
const PAYLOAD_POOL_BYTES: usize = 1 << 20;

impl Payload {
    pub fn new(seed: u64, max_value_bytes: usize) -> Payload {
        let mut rng = Rng::new(seed);
        let len = PAYLOAD_POOL_BYTES + max_value_bytes;
        let pool = (0..len).map(|_| b'A' + (rng.below(26) as u8)).collect();
        Payload { pool }
    }

    /// `len` bytes of filler starting at a position chosen by `rng`.
    pub fn slice(&self, rng: &mut Rng, len: usize) -> &[u8] {
        let start = rng.below(PAYLOAD_POOL_BYTES as u64) as usize;
        &self.pool[start..start + len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_client() {
        // Values from org.apache.kafka.common.utils.Utils.murmur2 (Kafka's own unit test
        // UtilsTest.testMurmur2 lists these pairs).
        let cases: [(&[u8], i32); 5] = [
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
        ];
        for (key, expected) in cases {
            assert_eq!(murmur2(key), expected, "{:?}", std::str::from_utf8(key));
        }
    }

    #[test]
    fn skewed_keys_favour_the_first_ranks_and_uniform_ones_do_not() {
        let mut rng = Rng::new(7);
        let skewed = KeyPicker::new(KeyDistribution::Skewed {
            count: 1000,
            exponent: 1.0,
        });
        let uniform = KeyPicker::new(KeyDistribution::Uniform { count: 1000 });
        let draws = 100_000;
        let hot = |p: &KeyPicker, rng: &mut Rng| {
            (0..draws).filter(|_| p.pick(rng).unwrap() < 10).count() as f64 / draws as f64
        };
        // Zipf(1) over 1000 keys puts ~39% of the mass on the first 10; uniform puts 1%.
        let s = hot(&skewed, &mut rng);
        let u = hot(&uniform, &mut rng);
        assert!((0.35..0.43).contains(&s), "skewed top-10 share {s}");
        assert!((0.005..0.02).contains(&u), "uniform top-10 share {u}");
        assert!(KeyPicker::new(KeyDistribution::None)
            .pick(&mut rng)
            .is_none());
    }

    #[test]
    fn keyed_partitions_stay_in_range() {
        let mut key = Vec::new();
        for i in 0..1000 {
            key_bytes(i, &mut key);
            assert!(partition_for_key(&key, 7) < 7);
        }
    }
}
