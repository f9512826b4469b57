//! AddOffsetsToTxn (key 25): adds the group's `__consumer_offsets` partition to the producer's
//! transaction (before TxnOffsetCommit sends the offsets there), as Kafka does: the partition is
//! `abs(javaHashCode(group)) % partitions of __consumer_offsets`, and the coordinator treats it
//! like an AddPartitionsToTxn of that one partition.

use std::collections::BTreeSet;

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use super::{encode, error, Reply, Request};
use crate::broker::shard;
use crate::groups::{ensure_offsets_topic, offsets_partitions, partition_for, OFFSETS_TOPIC};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 3;

/// First version that knows PRODUCER_FENCED (KIP-588); older clients get INVALID_PRODUCER_EPOCH.
const FIRST_PRODUCER_FENCED_VERSION: i16 = 2;

pub async fn handle(mut request: Request) -> Result<Reply, String> {
    let body: AddOffsetsToTxnRequest = request.decode()?;
    let id = body.transactional_id.to_string();
    let group = body.group_id.to_string();
    let code = if id.is_empty() {
        error::INVALID_REQUEST
    } else if let Err(e) = ensure_offsets_topic().await {
        tracing::error!(error = %e, "cannot create the offsets topic");
        error::COORDINATOR_NOT_AVAILABLE
    } else {
        let partition = partition_for(&group, offsets_partitions(&shard().broker));
        let partitions = BTreeSet::from([(OFFSETS_TOPIC.to_string(), partition as i32)]);
        let pid = body.producer_id.0;
        let epoch = body.producer_epoch;
        let routed = crate::txn::on_coordinator(&id.clone(), move |state| {
            crate::txn::coordinator::add_partitions(state, id, pid, epoch, partitions)
        })
        .await;
        routed.unwrap_or_else(|e| {
            tracing::error!(error = %e, "no transaction coordinator");
            error::COORDINATOR_NOT_AVAILABLE
        })
    };
    let mut response = AddOffsetsToTxnResponse::default();
    response.error_code =
        if code == error::PRODUCER_FENCED && request.version < FIRST_PRODUCER_FENCED_VERSION {
            error::INVALID_PRODUCER_EPOCH
        } else {
            code
        };
    encode(&response, request.version)
}
