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
