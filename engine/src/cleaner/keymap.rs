//! The cleaner's key → latest offset map ("offset map" in Kafka), bounded by
//! `log.cleaner.dedupe.buffer.size`.
//!
//! Like Kafka's `SkimpyOffsetMap`, keys are not stored: each is replaced by a 128-bit hash, so an
//! entry costs the same whatever the key's size. Two independently keyed SipHash passes give the
//! 128 bits; a collision (which would drop a record whose key only *hashes* like a newer one) is
//! as unlikely as Kafka's MD5 collisions.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// What one map entry is charged against the dedupe buffer: a 16-byte hash and an 8-byte offset,
/// as in Kafka.
pub const BYTES_PER_ENTRY: u64 = 24;
/// Share of the buffer's entries the map may fill before it counts as full (Kafka's
/// `log.cleaner.io.buffer.load.factor`, 0.9).
pub const LOAD_FACTOR: f64 = 0.9;
/// Entries a map always has room for, so that even a tiny buffer makes progress.
pub const MIN_ENTRIES: usize = 1;

/// The hashes are already uniformly random: the table hashes them by taking their low bits.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u128 keys are hashed (through write_u128); fold anything else in anyway.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

/// Key hash → highest offset seen for that key.
#[derive(Debug)]
pub struct KeyMap {
    entries: HashMap<u128, i64, BuildHasherDefault<PassThrough>>,
    max_entries: usize,
}

impl std::fmt::Debug for PassThrough {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PassThrough")
    }
}

impl KeyMap {
    /// A map that holds as many keys as `buffer_bytes` allows.
    pub fn with_buffer(buffer_bytes: u64) -> KeyMap {
        let slots = buffer_bytes / BYTES_PER_ENTRY;
        let max_entries = ((slots as f64 * LOAD_FACTOR) as usize).max(MIN_ENTRIES);
        KeyMap {
            entries: HashMap::default(),
            max_entries,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// Records that `key` was seen at `offset` (offsets arrive in increasing order). False,
    /// changing nothing, when `key` is new and the map is full.
    pub fn insert(&mut self, key: &[u8], offset: i64) -> bool {
        let hash = hash_key(key);
        if let Some(latest) = self.entries.get_mut(&hash) {
            *latest = (*latest).max(offset);
            return true;
        }
        if self.entries.len() >= self.max_entries {
            return false;
        }
        self.entries.insert(hash, offset);
        true
    }

    /// The highest offset recorded for `key`.
    pub fn latest(&self, key: &[u8]) -> Option<i64> {
        self.entries.get(&hash_key(key)).copied()
    }
}

fn hash_key(key: &[u8]) -> u128 {
    #[allow(deprecated)] // SipHasher is deprecated only as a *stable* hash; this map is in memory.
    fn half(salt: u64, key: &[u8]) -> u64 {
        let mut h = std::hash::SipHasher::new_with_keys(salt, !salt);
        h.write(key);
        h.finish()
    }
    const SALT_HIGH: u64 = 0x9e37_79b9_7f4a_7c15;
    const SALT_LOW: u64 = 0xc2b2_ae3d_27d4_eb4f;
    (u128::from(half(SALT_HIGH, key)) << 64) | u128::from(half(SALT_LOW, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_highest_offset_and_stops_when_full() {
        let mut map = KeyMap::with_buffer(BYTES_PER_ENTRY * 10);
        assert_eq!(map.max_entries(), 9);
        for i in 0..9 {
            assert!(map.insert(format!("k{i}").as_bytes(), i));
        }
        assert!(!map.insert(b"new", 100), "a full map refuses new keys");
        assert!(map.insert(b"k3", 50), "a full map still updates known keys");
        assert_eq!(map.latest(b"k3"), Some(50));
        assert_eq!(map.latest(b"k4"), Some(4));
        assert_eq!(map.latest(b"new"), None);
        assert_eq!(map.len(), 9);
    }
}
