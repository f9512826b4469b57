//! The group coordinator (Kafka's classic consumer-group protocol) and committed offsets.
//!
//! A group lives on one shard: the owner of its `__consumer_offsets` partition
//! (`abs(javaHashCode(group)) % offsets.topic.num.partitions`, as Kafka places it), so groups
//! spread over the shards the way partitions do, and a group's state is touched by one thread
//! only. Group APIs are routed there ([`on_coordinator`]); the state machine is in
//! [`group`], persistence in [`store`], the operations the handlers call in [`coordinator`].
//!
//! Durability: committed offsets and group metadata are records of `__consumer_offsets` (Kafka's
//! record layout, [`records`]), written through the engine before the request is answered, and
//! replayed when the shard starts. The topic is created on first use as Kafka creates it:
//! `cleanup.policy=compact`, `segment.bytes` from `offsets.topic.segment.bytes`,
//! `compression.type=producer` ([`offsets_topic_configs`]).

pub mod consumer_protocol;
pub mod coordinator;
pub mod group;
mod oneshot;
pub mod records;
pub mod store;
pub mod txn_offsets;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

use corelog_engine::partition::now_ms;
use corelog_engine::runtime;

use crate::broker::{on_owner, shard, BrokerContext, ShardState};
use crate::internal_topic::InternalTopic;
use group::{Group, GroupState};

/// Kafka's internal topic of committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// How often each shard looks for expired sessions and ended rebalance delays: the resolution
/// of session timeouts (Kafka's minimum is 6 s) and of group.initial.rebalance.delay.ms.
pub const GROUP_TICK: Duration = Duration::from_millis(50);

/// Kafka's placement of a group: `Utils.abs(groupId.hashCode) % partitions`, where hashCode is
/// Java's `String.hashCode` over UTF-16 code units and abs masks the sign bit.
pub fn partition_for(group_id: &str, partitions: u32) -> u32 {
    let mut h: i32 = 0;
    for unit in group_id.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    ((h & 0x7fff_ffff) as u32) % partitions.max(1)
}

/// Partitions of `__consumer_offsets` (the existing topic's count wins over the config, as in
/// Kafka, where the topic is created once).
pub fn offsets_partitions(broker: &BrokerContext) -> u32 {
    broker
        .metadata
        .snapshot()
        .topic(OFFSETS_TOPIC)
        .map_or(broker.config.groups.offsets_topic_partitions, |t| {
            t.partitions
        })
}

/// `__consumer_offsets` as an internal topic: created on first use, as Kafka does (a broker that
/// never saw a group has no such topic).
pub const OFFSETS: InternalTopic = InternalTopic {
    name: OFFSETS_TOPIC,
    ready: |b| &b.offsets_topic_ready,
    partitions: |b| b.config.groups.offsets_topic_partitions,
    configs: offsets_topic_configs,
};

/// Creates `__consumer_offsets` on first use, and waits while another request is creating it.
pub async fn ensure_offsets_topic() -> Result<(), String> {
    OFFSETS.ensure().await
}

/// The configs `__consumer_offsets` is created with: those Kafka's group coordinator gives it
/// (`GroupCoordinatorService.groupMetadataTopicConfigs`).
pub fn offsets_topic_configs(broker: &BrokerContext) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        (
            "segment.bytes".to_string(),
            broker.config.groups.offsets_topic_segment_bytes.to_string(),
        ),
        ("compression.type".to_string(), "producer".to_string()),
    ])
}

/// Runs `f` on the coordinator shard of `group_id`.
pub async fn on_coordinator<F, Fut, T>(group_id: &str, f: F) -> T
where
    F: FnOnce(Rc<ShardState>) -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    if let Err(e) = ensure_offsets_topic().await {
        // The operation runs anyway; what needs the topic answers COORDINATOR_NOT_AVAILABLE.
        tracing::error!(error = %e, "cannot create {OFFSETS_TOPIC}");
    }
    let partitions = offsets_partitions(&shard().broker);
    on_owner(OFFSETS_TOPIC, partition_for(group_id, partitions), f).await
}

/// The groups a shard coordinates.
#[derive(Default)]
pub struct ShardGroups {
    groups: RefCell<HashMap<String, Rc<RefCell<Group>>>>,
}

impl ShardGroups {
    pub fn get(&self, id: &str) -> Option<Rc<RefCell<Group>>> {
        self.groups.borrow().get(id).cloned()
    }

    pub fn get_or_create(&self, id: &str, now: Instant, now_ms: i64) -> Rc<RefCell<Group>> {
        self.groups
            .borrow_mut()
            .entry(id.to_string())
            .or_insert_with(|| Rc::new(RefCell::new(Group::new(id, now, now_ms))))
            .clone()
    }

    /// Forgets a group (deleted, or expired with no offsets left); it becomes Dead for anyone
    /// still holding it.
    pub fn remove(&self, id: &str) {
        if let Some(g) = self.groups.borrow_mut().remove(id) {
            g.borrow_mut().state = GroupState::Dead;
        }
    }

    pub fn all(&self) -> Vec<Rc<RefCell<Group>>> {
        self.groups.borrow().values().cloned().collect()
    }

    pub fn count(&self) -> usize {
        self.groups.borrow().len()
    }
}

/// A group's committed offset of one partition (what the lag metrics report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// Every committed offset of every group, from all shards.
pub async fn committed_offsets() -> Vec<CommittedOffset> {
    let per_shard = crate::broker::on_every_shard(|| async {
        let mut out = Vec::new();
        for g in shard().groups.all() {
            let g = g.borrow();
            for ((topic, partition), c) in &g.offsets {
                out.push(CommittedOffset {
                    group: g.id.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                    offset: c.offset,
                });
            }
        }
        out
    })
    .await;
    let mut all: Vec<CommittedOffset> = per_shard.into_iter().flatten().collect();
    all.sort_by(|a, b| (&a.group, &a.topic, a.partition).cmp(&(&b.group, &b.topic, b.partition)));
    all
}

/// A shard's group housekeeping, forever: expired sessions, ended delays and rebalance timeouts
/// every [`GROUP_TICK`]; offsets retention every `offsets.retention.check.interval.ms`.
pub async fn housekeeping() {
    let state = shard();
    let retention_check = Duration::from_millis(
        state
            .broker
            .config
            .groups
            .offsets_retention_check_interval_ms,
    );
    let mut next_retention_check = Instant::now() + retention_check;
    loop {
        runtime::sleep(GROUP_TICK).await;
        if state
            .broker
            .shutting_down
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        let now = Instant::now();
        let timers = state.broker.config.groups.timers();
        for g in state.groups.all() {
            let store = {
                let mut group = g.borrow_mut();
                group.tick(now, now_ms(), &timers);
                group.take_store_needed()
            };
            if store {
                coordinator::store_in_background(&state, g);
            }
        }
        if now >= next_retention_check {
            next_retention_check = now + retention_check;
            coordinator::expire_offsets(&state).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_placed_as_kafka_places_them() {
        // Java: "hello".hashCode() == 99162322; "polygenelubricants".hashCode() ==
        // Integer.MIN_VALUE, which Kafka's Utils.abs masks to 0.
        assert_eq!(partition_for("hello", 50), 99_162_322 % 50);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(partition_for("", 50), 0);
        // UTF-16 code units, not bytes: "é" is one unit (0xE9).
        assert_eq!(partition_for("é", 1000), 0xE9);
        // Negative hashes: "Aa-negative".hashCode() computed with wrapping i32 arithmetic.
        let h = "Aa-negative"
            .encode_utf16()
            .fold(0i32, |h, u| h.wrapping_mul(31).wrapping_add(i32::from(u)));
        assert_eq!(
            partition_for("Aa-negative", 7),
            ((h & 0x7fff_ffff) as u32) % 7
        );
    }
}
