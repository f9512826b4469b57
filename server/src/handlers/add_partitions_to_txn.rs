//! AddPartitionsToTxn (key 24), client versions 0-3 (v4+ are broker-to-broker and not
//! advertised): adds partitions to the producer's transaction before it produces to them.
//!
//! As in Kafka: if any partition is unknown, nothing is added: those partitions get
//! UNKNOWN_TOPIC_OR_PARTITION and the others OPERATION_NOT_ATTEMPTED. Otherwise the
//! coordinator's verdict ([`crate::txn::coordinator::add_partitions`]) is every partition's
//! error, answered once the new transaction state is stored.

use std::collections::BTreeSet;

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};

use super::{encode, error, Reply, Request};
use crate::broker::shard;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 3;

/// First version that knows PRODUCER_FENCED (KIP-588); older clients get INVALID_PRODUCER_EPOCH.
const FIRST_PRODUCER_FENCED_VERSION: i16 = 2;

pub async fn handle(mut request: Request) -> Result<Reply, String> {
    let body: AddPartitionsToTxnRequest = request.decode()?;
    let id = body.v3_and_below_transactional_id.to_string();
    let snapshot = shard().broker.metadata.snapshot();
    let mut unknown = BTreeSet::new();
    let mut partitions = BTreeSet::new();
    for t in &body.v3_and_below_topics {
        let topic = t.name.to_string();
        let count = snapshot.topic(&topic).map(|m| m.partitions);
        for &p in &t.partitions {
            if count.is_some_and(|c| p >= 0 && (p as u32) < c) {
                partitions.insert((topic.clone(), p));
            } else {
                unknown.insert((topic.clone(), p));
            }
        }
    }
    let verdict = if id.is_empty() {
        error::INVALID_REQUEST
    } else if !unknown.is_empty() {
        error::OPERATION_NOT_ATTEMPTED
    } else {
        let pid = body.v3_and_below_producer_id.0;
        let epoch = body.v3_and_below_producer_epoch;
        let to_add = partitions.clone();
        let routed = crate::txn::on_coordinator(&id.clone(), move |state| {
            crate::txn::coordinator::add_partitions(state, id, pid, epoch, to_add)
        })
        .await;
        let code = routed.unwrap_or_else(|e| {
            tracing::error!(error = %e, "no transaction coordinator");
            error::COORDINATOR_NOT_AVAILABLE
        });
        if code == error::PRODUCER_FENCED && request.version < FIRST_PRODUCER_FENCED_VERSION {
            error::INVALID_PRODUCER_EPOCH
        } else {
            code
        }
    };
    let mut response = AddPartitionsToTxnResponse::default();
    // Topics in request order, each partition once.
    for t in &body.v3_and_below_topics {
        let mut result = AddPartitionsToTxnTopicResult::default();
        result.name = t.name.clone();
        let mut seen = BTreeSet::new();
        for &p in &t.partitions {
            if !seen.insert(p) {
                continue;
            }
            let key = (t.name.to_string(), p);
            let mut r = AddPartitionsToTxnPartitionResult::default();
            r.partition_index = p;
            r.partition_error_code = if unknown.contains(&key) {
                error::UNKNOWN_TOPIC_OR_PARTITION
            } else {
                verdict
            };
            result.results_by_partition.push(r);
        }
        match response
            .results_by_topic_v3_and_below
            .iter_mut()
            .find(|r| r.name == t.name)
        {
            Some(existing) => existing
                .results_by_partition
                .extend(result.results_by_partition),
            None => response.results_by_topic_v3_and_below.push(result),
        }
    }
    encode(&response, request.version)
}
