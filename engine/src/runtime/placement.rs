//! Deterministic placement of partitions on shards.
//!
//! A topic's partitions go round-robin over the shards, starting at a shard chosen by a hash
//! of the topic name: partition `p` of topic `t` lands on `(fnv1a(t) + p) mod shards`. So
//! - placement is the same on every run and machine (FNV-1a is fixed, unlike std's randomized
//!   `SipHash` keys), and an operator can compute it by hand;
//! - any topic's partitions are spread within ±1 across shards, whatever the hash does;
//! - different topics start at different shards, so many small topics do not pile onto shard 0.

/// FNV-1a 64-bit offset basis.
const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64-bit prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a (64-bit) of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET_BASIS, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    })
}

/// The shard that owns `partition` of `topic` among `shard_count` shards.
///
/// # Panics
/// If `shard_count` is 0.
pub fn shard_for(topic: &str, partition: u32, shard_count: usize) -> usize {
    assert!(shard_count > 0, "shard_for needs at least one shard");
    let n = shard_count as u64;
    let start = fnv1a64(topic.as_bytes()) % n;
    ((start + u64::from(partition) % n) % n) as usize
}

/// The shard of each of `topic`'s partitions `0..partitions`.
pub fn placement(topic: &str, partitions: u32, shards: usize) -> Vec<usize> {
    (0..partitions)
        .map(|p| shard_for(topic, p, shards))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_published_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn placement_is_fixed() {
        // fnv1a64("a") = 0xaf63dc4c8601ec8c = 12638187200555641996; mod 3 = 1, mod 4 = 0.
        assert_eq!(placement("a", 4, 3), vec![1, 2, 0, 1]);
        assert_eq!(placement("a", 5, 4), vec![0, 1, 2, 3, 0]);
        // fnv1a64("foobar") = 0x85944171f73967e8 = 9625390261332436968; mod 5 = 3.
        assert_eq!(placement("foobar", 6, 5), vec![3, 4, 0, 1, 2, 3]);
        // 1_000_001 mod 5 = 1, so (3 + 1) mod 5.
        assert_eq!(shard_for("foobar", 1_000_001, 5), 4);
        assert_eq!(shard_for("anything", 17, 1), 0);
    }

    #[test]
    fn every_topic_is_balanced_within_one() {
        for shards in 1..=16usize {
            for t in 0..200 {
                let topic = format!("topic-{t}");
                for partitions in [1u32, 3, 7, 16, 50, 101] {
                    let mut counts = vec![0usize; shards];
                    for s in placement(&topic, partitions, shards) {
                        assert!(s < shards);
                        counts[s] += 1;
                    }
                    let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
                    assert!(
                        max - min <= 1,
                        "{topic} x{partitions} on {shards}: {counts:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn topics_start_on_different_shards() {
        let starts: std::collections::HashSet<usize> =
            (0..64).map(|t| shard_for(&format!("t{t}"), 0, 8)).collect();
        assert!(starts.len() >= 6, "topic starts cluster: {starts:?}");
    }
}
