//! Transaction markers: a commit or abort control batch appended to one partition of a
//! transaction, on the partition's owner shard (what Kafka's coordinator asks partition leaders
//! for with WriteTxnMarkers).
//!
//! Contract (filled in by the partition-side work of issue 7).

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
    let _ = (topic, partition, marker);
    Err((
        crate::handlers::error::UNKNOWN_SERVER_ERROR,
        "transaction markers are not written yet".to_string(),
    ))
}

/// [`write_marker`] to every partition in `partitions`, concurrently; the results in the same
/// order.
pub async fn write_markers(
    partitions: Vec<(String, u32)>,
    marker: Marker,
) -> Vec<Result<(), (i16, String)>> {
    let mut out = Vec::with_capacity(partitions.len());
    for (t, p) in partitions {
        out.push(write_marker(t, p, marker).await);
    }
    out
}
