//! The records of `__consumer_offsets`, in Kafka's own layout, so that the topic reads the same
//! as a Kafka broker's (tools that decode it, a `kafka-console-consumer` with Kafka's formatters):
//!
//! - offset commit: key `{version: i16 = 1, group: string, topic: string, partition: i32}`,
//!   value `{version: i16 = 3, offset: i64, leader_epoch: i32, metadata: string,
//!   commit_timestamp: i64}`;
//! - group metadata: key `{version: i16 = 2, group: string}`, value `{version: i16 = 3,
//!   protocol_type: string, generation: i32, protocol: string?, leader: string?,
//!   current_state_timestamp: i64, members: [{member_id, group_instance_id?, client_id,
//!   client_host, rebalance_timeout: i32, session_timeout: i32, subscription: bytes,
//!   assignment: bytes}]}`;
//!
//! A null value (tombstone) deletes the key. Decoding goes through [`crate::wire::Reader`]: a
//! damaged record is an error, not a panic or a huge allocation.

use bytes::Bytes;

use crate::wire::{put_bytes, put_i16, put_nullable_string, put_string, Reader};

const OFFSET_KEY_VERSION: i16 = 1;
const LEGACY_OFFSET_KEY_VERSION: i16 = 0;
const GROUP_KEY_VERSION: i16 = 2;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_VALUE_VERSION: i16 = 3;
/// Bytes of one member's fixed-size fields: a lower bound used to check an array length.
const MIN_MEMBER_BYTES: usize = 2 + 2 + 2 + 2 + 4 + 4 + 4 + 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub state_timestamp_ms: i64,
    pub members: Vec<MemberValue>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberValue {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

impl Key {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Key::Offset {
                group,
                topic,
                partition,
            } => {
                put_i16(&mut out, OFFSET_KEY_VERSION);
                put_string(&mut out, group);
                put_string(&mut out, topic);
                out.extend_from_slice(&partition.to_be_bytes());
            }
            Key::Group { group } => {
                put_i16(&mut out, GROUP_KEY_VERSION);
                put_string(&mut out, group);
            }
        }
        out
    }

    pub fn decode(buf: &[u8]) -> Result<Key, String> {
        let mut r = Reader::new(buf);
        let version = r.i16()?;
        let key = match version {
            LEGACY_OFFSET_KEY_VERSION | OFFSET_KEY_VERSION => Key::Offset {
                group: r.string()?,
                topic: r.string()?,
                partition: r.i32()?,
            },
            GROUP_KEY_VERSION => Key::Group { group: r.string()? },
            v => return Err(format!("unknown key version {v}")),
        };
        Ok(key)
    }
}

impl OffsetValue {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_i16(&mut out, OFFSET_VALUE_VERSION);
        out.extend_from_slice(&self.offset.to_be_bytes());
        out.extend_from_slice(&self.leader_epoch.to_be_bytes());
        put_string(&mut out, &self.metadata);
        out.extend_from_slice(&self.commit_timestamp_ms.to_be_bytes());
        out
    }

    /// Decodes versions 1 and 3 (the ones Kafka writes today; 1 carries an expire timestamp
    /// after the commit timestamp and no leader epoch).
    pub fn decode(buf: &[u8]) -> Result<OffsetValue, String> {
        let mut r = Reader::new(buf);
        match r.i16()? {
            1 => {
                let offset = r.i64()?;
                let metadata = r.string()?;
                let commit_timestamp_ms = r.i64()?;
                Ok(OffsetValue {
                    offset,
                    leader_epoch: -1,
                    metadata,
                    commit_timestamp_ms,
                })
            }
            3 => Ok(OffsetValue {
                offset: r.i64()?,
                leader_epoch: r.i32()?,
                metadata: r.string()?,
                commit_timestamp_ms: r.i64()?,
            }),
            v => Err(format!("unsupported offset value version {v}")),
        }
    }
}

impl GroupValue {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_i16(&mut out, GROUP_VALUE_VERSION);
        put_string(&mut out, &self.protocol_type);
        out.extend_from_slice(&self.generation.to_be_bytes());
        put_nullable_string(&mut out, self.protocol.as_deref());
        put_nullable_string(&mut out, self.leader.as_deref());
        out.extend_from_slice(&self.state_timestamp_ms.to_be_bytes());
        out.extend_from_slice(&(self.members.len() as i32).to_be_bytes());
        for m in &self.members {
            put_string(&mut out, &m.member_id);
            put_nullable_string(&mut out, m.instance_id.as_deref());
            put_string(&mut out, &m.client_id);
            put_string(&mut out, &m.client_host);
            out.extend_from_slice(&m.rebalance_timeout_ms.to_be_bytes());
            out.extend_from_slice(&m.session_timeout_ms.to_be_bytes());
            put_bytes(&mut out, &m.subscription);
            put_bytes(&mut out, &m.assignment);
        }
        out
    }

    pub fn decode(buf: &[u8]) -> Result<GroupValue, String> {
        let mut r = Reader::new(buf);
        let version = r.i16()?;
        if version != GROUP_VALUE_VERSION {
            return Err(format!("unsupported group value version {version}"));
        }
        let protocol_type = r.string()?;
        let generation = r.i32()?;
        let protocol = r.nullable_string()?;
        let leader = r.nullable_string()?;
        let state_timestamp_ms = r.i64()?;
        let count = r.array_len(MIN_MEMBER_BYTES)?;
        let mut members = Vec::with_capacity(count);
        for _ in 0..count {
            members.push(MemberValue {
                member_id: r.string()?,
                instance_id: r.nullable_string()?,
                client_id: r.string()?,
                client_host: r.string()?,
                rebalance_timeout_ms: r.i32()?,
                session_timeout_ms: r.i32()?,
                subscription: r.bytes()?,
                assignment: r.bytes()?,
            });
        }
        Ok(GroupValue {
            protocol_type,
            generation,
            protocol,
            leader,
            state_timestamp_ms,
            members,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip() {
        let key = Key::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 7,
        };
        assert_eq!(Key::decode(&key.encode()).unwrap(), key);
        let key = Key::Group { group: "g".into() };
        assert_eq!(Key::decode(&key.encode()).unwrap(), key);
        let value = OffsetValue {
            offset: 42,
            leader_epoch: 3,
            metadata: "m".into(),
            commit_timestamp_ms: 1_700_000_000_000,
        };
        assert_eq!(OffsetValue::decode(&value.encode()).unwrap(), value);
        let group = GroupValue {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            state_timestamp_ms: 9,
            members: vec![MemberValue {
                member_id: "m1".into(),
                instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        assert_eq!(GroupValue::decode(&group.encode()).unwrap(), group);
    }

    #[test]
    fn offset_key_layout_is_kafkas() {
        let key = Key::Offset {
            group: "ab".into(),
            topic: "t".into(),
            partition: 1,
        }
        .encode();
        assert_eq!(key, [0, 1, 0, 2, b'a', b'b', 0, 1, b't', 0, 0, 0, 1]);
    }

    #[test]
    fn damaged_records_are_errors_not_panics() {
        let group = GroupValue {
            protocol_type: "consumer".into(),
            members: vec![MemberValue::default()],
            ..Default::default()
        }
        .encode();
        for cut in 0..group.len() {
            assert!(GroupValue::decode(&group[..cut]).is_err(), "cut at {cut}");
        }
        // A member count claiming billions of members.
        let mut lying = GroupValue::default().encode();
        let n = lying.len();
        lying[n - 4..].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(GroupValue::decode(&lying).is_err());
        assert!(Key::decode(&[0, 9]).is_err());
        assert!(OffsetValue::decode(&[0, 3, 1]).is_err());
    }
}
