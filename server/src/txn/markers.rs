//! Transaction markers: a commit or abort control batch appended to one partition of a
//! transaction, on the partition's owner shard (what Kafka's coordinator asks partition leaders
//! for with WriteTxnMarkers).
//!
//! One marker, on the owner shard:
//! 1. the producer's state takes it at the offset the append is about to assign
//!    ([`crate::producer_state::PartitionProducers::begin_marker`]): its epoch becomes the
//!    marker's at once (an older marker is refused INVALID_PRODUCER_EPOCH), its open
//!    transaction starts closing;
//! 2. the control batch ([`corelog_engine::batch::control_batch`]) is appended — nothing is
//!    awaited between step 1 and the append's offset assignment, so the predicted offset is the
//!    real one and markers of a partition are taken in append order;
//! 3. once it is written (readable), the state finishes it
//!    ([`crate::producer_state::PartitionProducers::finish_marker`]) with no await between the
//!    write's end and this step: the LSO moves together with the high watermark, so a
//!    read_committed long poll woken by the write sees the new LSO. An abort is indexed
//!    ([`corelog_engine::partition::Partition::record_aborted_txn`]) in marker order; on a
//!    `__consumer_offsets` partition the group coordinator applies or drops the transaction's
//!    offsets;
//! 4. the caller is answered once the marker is durable (`AckPoint::Durable` when
//!    `acks_all_durable`, as every coordinator write).

use corelog_engine::batch::{control_batch, ControlRecordType};
use corelog_engine::partition::{now_ms, AckPoint};
use corelog_engine::runtime;

use crate::broker::on_owner;
use crate::handlers::error;

/// What the coordinator asks a partition to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The coordinator's epoch (always 0 on one node; kept in the control record as Kafka does).
    pub coordinator_epoch: i32,
    /// Commit (true) or abort (false).
    pub commit: bool,
}

/// Appends `marker` to `topic`-`partition` on its owner shard (from any shard) and answers once
/// it reached the broker's acks=all point. Ends the producer's open transaction on the
/// partition (moving its last stable offset, indexing an abort) and, on a `__consumer_offsets`
/// partition, lets the group coordinator apply or drop the transaction's offsets
/// ([`crate::groups::txn_offsets::on_marker`]). Err: a Kafka error code and message.
pub async fn write_marker(
    topic: String,
    partition: u32,
    marker: Marker,
) -> Result<(), (i16, String)> {
    let owner_topic = topic.clone();
    on_owner(&owner_topic, partition, move |state| async move {
        let unknown = || {
            (
                error::UNKNOWN_TOPIC_OR_PARTITION,
                format!("This server does not host {topic}-{partition}."),
            )
        };
        let part = state.local_partition(&topic, partition).ok_or_else(unknown)?;
        let producers = state.producers.get(&topic, partition).ok_or_else(unknown)?;
        let kind = if marker.commit {
            ControlRecordType::Commit
        } else {
            ControlRecordType::Abort
        };
        let now = now_ms();
        let batch = control_batch(
            marker.producer_id,
            marker.producer_epoch,
            kind,
            marker.coordinator_epoch,
            now,
        );
        // Step 1: the offset the append below assigns at its first poll.
        let predicted = part.log().next_offset();
        producers.borrow_mut().begin_marker(
            marker.producer_id,
            marker.producer_epoch,
            marker.coordinator_epoch,
            marker.commit,
            predicted,
            now,
        )?;
        // Step 2: written (readable) first; durability is waited for after step 3.
        let appended = part.append(batch, AckPoint::Written).await;
        // Step 3, with no await since the write ended.
        let written = appended.is_ok();
        let hw = part.log().high_watermark();
        let aborted = producers
            .borrow_mut()
            .finish_marker(predicted, written, hw);
        let info = match appended {
            Ok(info) => info,
            Err(e) => {
                tracing::error!(topic = %topic, partition, error = %e, "writing a transaction marker failed");
                return Err((error::KAFKA_STORAGE_ERROR, e.to_string()));
            }
        };
        assert_eq!(
            info.base_offset, predicted,
            "a marker's offset is the one predicted"
        );
        for txn in aborted {
            if let Err(e) = part.record_aborted_txn(txn) {
                tracing::error!(topic = %topic, partition, error = %e, "indexing an aborted transaction failed");
                return Err((error::KAFKA_STORAGE_ERROR, e.to_string()));
            }
        }
        if topic == crate::groups::OFFSETS_TOPIC {
            crate::groups::txn_offsets::on_marker(
                &state,
                partition,
                marker.producer_id,
                marker.commit,
                info.base_offset,
            );
        }
        producers.borrow_mut().snapshot_if_rolled(&part);
        // Step 4.
        if state.broker.config.acks_all_durable {
            part.wait_durable(info.last_offset + 1)
                .await
                .map_err(|e| (error::KAFKA_STORAGE_ERROR, e.to_string()))?;
        }
        Ok(())
    })
    .await
}

/// [`write_marker`] to every partition in `partitions`, concurrently; the results in the same
/// order.
pub async fn write_markers(
    partitions: Vec<(String, u32)>,
    marker: Marker,
) -> Vec<Result<(), (i16, String)>> {
    let pending: Vec<_> = partitions
        .into_iter()
        .map(|(t, p)| runtime::spawn(write_marker(t, p, marker)))
        .collect();
    let mut out = Vec::with_capacity(pending.len());
    for handle in pending {
        out.push(handle.await);
    }
    out
}

#[cfg(test)]
mod tests {
    use corelog_engine::batch::BatchBuilder;
    use uuid::Uuid;

    use super::*;
    use crate::broker::{owner_of, shard};
    use crate::producer_state::{BatchMeta, ProducerInfo, SNAPSHOT_FILE};

    const TOPIC: &str = "txn";
    const PARTITIONS: u32 = 4;

    fn broker_on(
        dir: &std::path::Path,
    ) -> (
        corelog_engine::runtime::ShardSet,
        std::sync::Arc<crate::broker::BrokerContext>,
    ) {
        let config = crate::config::BrokerConfig {
            data_dir: dir.into(),
            listener: "127.0.0.1:0".parse().unwrap(),
            shards: 2,
            ..Default::default()
        };
        crate::broker::start(config).unwrap()
    }

    /// On the owner shard: appends a transactional (or not) batch of `pid` as the produce path
    /// does (producer state first, then the append); returns its offset.
    async fn produce(partition: u32, pid: i64, seq: i32, transactional: bool) -> i64 {
        let state = shard();
        let part = state.local_partition(TOPIC, partition).unwrap();
        let producers = state.producers.get(TOPIC, partition).unwrap();
        let batch = BatchBuilder::new(0)
            .producer(pid, 0, seq)
            .transactional(transactional)
            .record(Some(b"k"), Some(b"v"), &[], 0)
            .build();
        let at = part.log().next_offset();
        producers.borrow_mut().record_batch(
            pid,
            0,
            BatchMeta {
                first_seq: seq,
                last_seq: seq,
                base_offset: at,
                last_offset: at,
                log_append_time: -1,
            },
            transactional,
            0,
        );
        part.append(batch, AckPoint::Written).await.unwrap();
        at
    }

    /// The aborted transactions indexed on `partition`: (producer, first offset, marker offset).
    fn aborted(partition: u32) -> Vec<(i64, i64, i64)> {
        let part = shard().local_partition(TOPIC, partition).unwrap();
        let txns = part.aborted_txns(0, i64::MAX);
        txns.iter()
            .map(|a| (a.producer_id, a.first_offset, a.last_offset))
            .collect()
    }

    fn lso_and_producers(partition: u32) -> (i64, i64, Vec<ProducerInfo>) {
        let state = shard();
        let part = state.local_partition(TOPIC, partition).unwrap();
        let producers = state.producers.get(TOPIC, partition).unwrap();
        let hw = part.log().high_watermark();
        let p = producers.borrow();
        (hw, p.last_stable_offset(hw), p.describe())
    }

    /// Markers written from another shard end transactions on two partitions concurrently:
    /// the LSO moves to the high watermark, an older-epoch marker is refused, an unknown
    /// partition is UNKNOWN_TOPIC_OR_PARTITION. After a restart without a snapshot the replay
    /// of the log (control records included) rebuilds the same state, and an open
    /// transaction still holds the LSO.
    #[test]
    fn markers_end_transactions_and_replay_rebuilds_them() {
        let dir = tempfile::tempdir().unwrap();
        let topic = crate::metadata::TopicMeta {
            name: TOPIC.into(),
            id: Uuid::new_v4(),
            partitions: PARTITIONS,
            configs: Default::default(),
        };
        std::fs::write(
            dir.path().join(crate::metadata::TOPICS_FILE),
            serde_json::to_vec(&vec![topic]).unwrap(),
        )
        .unwrap();
        let (shards, broker) = broker_on(dir.path());
        let on_shard = |s: usize| {
            (0..PARTITIONS)
                .find(|&p| owner_of(&broker, TOPIC, p) == s)
                .unwrap()
        };
        let (p0, p1) = (on_shard(0), on_shard(1));
        // pid 7 writes to both partitions in a transaction, pid 8 opens one on p1 only.
        let first0 = shards
            .spawn_on(0, move || async move {
                produce(p0, 1, 0, false).await;
                produce(p0, 7, 0, true).await
            })
            .wait();
        let first1 = shards
            .spawn_on(1, move || async move {
                let f = produce(p1, 7, 1, true).await;
                produce(p1, 7, 2, true).await;
                produce(p1, 8, 0, true).await;
                f
            })
            .wait();
        let (hw0, lso0, _) = shards
            .spawn_on(0, move || async move { lso_and_producers(p0) })
            .wait();
        assert_eq!((hw0, lso0), (2, first0));

        let marker = Marker {
            producer_id: 7,
            producer_epoch: 0,
            coordinator_epoch: 4,
            commit: false,
        };
        let results = shards
            .spawn_on(0, move || async move {
                write_markers(
                    vec![
                        (TOPIC.to_string(), p0),
                        (TOPIC.to_string(), p1),
                        (TOPIC.to_string(), PARTITIONS + 1),
                    ],
                    marker,
                )
                .await
            })
            .wait();
        assert!(results[0].is_ok() && results[1].is_ok(), "{results:?}");
        assert_eq!(
            results[2].as_ref().unwrap_err().0,
            error::UNKNOWN_TOPIC_OR_PARTITION
        );
        let (hw0, lso0, d0) = shards
            .spawn_on(0, move || async move { lso_and_producers(p0) })
            .wait();
        assert_eq!(
            (hw0, lso0),
            (3, 3),
            "the abort marker released partition {p0}"
        );
        let pid7 = d0.iter().find(|p| p.producer_id == 7).unwrap();
        assert_eq!(
            (pid7.coordinator_epoch, pid7.current_txn_start_offset),
            (4, -1)
        );
        let (hw1, lso1, before) = shards
            .spawn_on(1, move || async move { lso_and_producers(p1) })
            .wait();
        let pid8_start = first1 + 2;
        assert_eq!(
            (hw1, lso1),
            (4, pid8_start),
            "pid 8's transaction still holds it"
        );
        // A marker of an older epoch than the partition has seen is refused.
        let stale = shards
            .spawn_on(1, move || async move {
                write_marker(
                    TOPIC.to_string(),
                    p1,
                    Marker {
                        producer_epoch: 1,
                        ..marker
                    },
                )
                .await?;
                write_marker(
                    TOPIC.to_string(),
                    p1,
                    Marker {
                        producer_epoch: 0,
                        ..marker
                    },
                )
                .await
            })
            .wait();
        assert_eq!(stale.unwrap_err().0, error::INVALID_PRODUCER_EPOCH);
        let (_, _, before_restart) = shards
            .spawn_on(1, move || async move { lso_and_producers(p1) })
            .wait();
        // Both aborts are indexed: the transaction from its first offset, the marker with no
        // open transaction from its own offset.
        let indexed = vec![(7, first1, first1 + 3), (7, first1 + 4, first1 + 4)];
        let got = shards
            .spawn_on(1, move || async move { aborted(p1) })
            .wait();
        assert_eq!(got, indexed);
        let got = shards
            .spawn_on(0, move || async move { aborted(p0) })
            .wait();
        assert_eq!(got, vec![(7, first0, 2)]);
        assert_ne!(before, before_restart);
        shards.shutdown();
        drop(broker);

        // No graceful snapshot was taken: the whole log is replayed.
        for p in [p0, p1] {
            let snapshot = dir.path().join(format!("{TOPIC}-{p}")).join(SNAPSHOT_FILE);
            assert!(!snapshot.exists(), "{snapshot:?}");
        }
        let (shards, broker) = broker_on(dir.path());
        let p1 = (0..PARTITIONS)
            .find(|&p| owner_of(&broker, TOPIC, p) == 1)
            .unwrap();
        let (hw1, lso1, after) = shards
            .spawn_on(1, move || async move { lso_and_producers(p1) })
            .wait();
        assert_eq!((hw1, lso1), (5, pid8_start));
        assert_eq!(after, before_restart);
        let got = shards
            .spawn_on(1, move || async move { aborted(p1) })
            .wait();
        assert_eq!(got, indexed, "the replay indexed the aborts again, once");
        // Ending pid 8's transaction after the restart releases the LSO.
        let done = shards
            .spawn_on(0, move || async move {
                write_marker(
                    TOPIC.to_string(),
                    p1,
                    Marker {
                        producer_id: 8,
                        ..marker
                    },
                )
                .await
            })
            .wait();
        assert!(done.is_ok(), "{done:?}");
        let (hw1, lso1, _) = shards
            .spawn_on(1, move || async move { lso_and_producers(p1) })
            .wait();
        assert_eq!((hw1, lso1), (6, 6));
        shards.shutdown();
    }
}
