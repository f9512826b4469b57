//! The few bytes of the consumer protocol the coordinator reads: the topics a member subscribed
//! to (OffsetDelete refuses to delete offsets of a topic an active group consumes). Every version
//! of `ConsumerProtocolSubscription` starts `version: i16, topics: [string]` (i32 count, i16
//! lengths; it is not a flexible struct).

/// Most topics read from one subscription (a bound on what a lying count can make us allocate).
const MAX_SUBSCRIBED_TOPICS: usize = 100_000;

/// The subscribed topics, or None if the bytes are not a consumer subscription.
pub fn subscription_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut pos = 2usize; // version
    let count = i32::from_be_bytes(metadata.get(pos..pos + 4)?.try_into().ok()?);
    pos += 4;
    if count < 0 || count as usize > MAX_SUBSCRIBED_TOPICS {
        return None;
    }
    let mut topics = Vec::new();
    for _ in 0..count {
        let len = i16::from_be_bytes(metadata.get(pos..pos + 2)?.try_into().ok()?);
        pos += 2;
        let len = usize::try_from(len).ok()?;
        let name = std::str::from_utf8(metadata.get(pos..pos + len)?).ok()?;
        pos += len;
        topics.push(name.to_string());
    }
    Some(topics)
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
