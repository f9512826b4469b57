//! The few bytes of the consumer protocol the coordinator reads: the topics a member subscribed
//! to (OffsetDelete refuses to delete offsets of a topic an active group consumes). Every version
//! of `ConsumerProtocolSubscription` starts `version: i16, topics: [string]` (i32 count, i16
//! lengths; it is not a flexible struct).

use crate::wire::Reader;

/// Smallest encoding of a topic name (its i16 length).
const MIN_TOPIC_BYTES: usize = 2;

/// The subscribed topics, or None if the bytes are not a consumer subscription.
pub fn subscription_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut r = Reader::new(metadata);
    r.i16().ok()?; // version
    let count = r.array_len(MIN_TOPIC_BYTES).ok()?;
    (0..count).map(|_| r.string().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_topics_and_rejects_garbage() {
        let mut sub = vec![0, 1, 0, 0, 0, 2];
        for t in ["ab", "c"] {
            sub.extend_from_slice(&(t.len() as i16).to_be_bytes());
            sub.extend_from_slice(t.as_bytes());
        }
        sub.extend_from_slice(&[0, 0, 0, 0]); // user data, ignored
        assert_eq!(subscription_topics(&sub).unwrap(), ["ab", "c"]);
        assert!(subscription_topics(&sub[..7]).is_none());
        assert!(subscription_topics(&[0, 0, 0x7f, 0xff, 0xff, 0xff]).is_none());
    }
}
