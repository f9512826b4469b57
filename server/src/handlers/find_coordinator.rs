//! FindCoordinator (key 10): which broker coordinates a group. On one node it is always this
//! broker; internally the group lives on the shard that owns its `__consumer_offsets` partition,
//! which the client never needs to know. v0–3 ask for one key, v4+ for a batch.
//!
//! A transactional id (key type 1) is coordinated by this broker too (internally: the owner
//! shard of its `__transaction_state` partition), which is created on first use as Kafka does.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::{encode, error, Reply, Request};
use crate::broker::shard;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 6;

/// `key_type` of a consumer group.
const KEY_TYPE_GROUP: i8 = 0;
/// `key_type` of a transactional id.
const KEY_TYPE_TRANSACTION: i8 = 1;
/// First version with batched `coordinator_keys`.
const FIRST_BATCHED_VERSION: i16 = 4;

pub async fn handle(mut request: Request) -> Result<Reply, String> {
    let body: FindCoordinatorRequest = request.decode()?;
    let mut offsets_topic_error = None;
    if body.key_type == KEY_TYPE_GROUP {
        if let Err(e) = crate::groups::ensure_offsets_topic().await {
            tracing::error!(error = %e, "cannot create the offsets topic");
            offsets_topic_error = Some(e);
        }
    }
    let mut txn_topic_error = None;
    if body.key_type == KEY_TYPE_TRANSACTION {
        if let Err(e) = crate::txn::ensure_txn_state_topic().await {
            tracing::error!(error = %e, "cannot create the transaction state topic");
            txn_topic_error = Some(e);
        }
    }
    let broker = shard().broker.clone();
    let answer = |key: StrBytes| {
        let mut c = Coordinator::default();
        c.key = key;
        c.node_id = BrokerId(-1);
        c.port = -1;
        match body.key_type {
            KEY_TYPE_GROUP if offsets_topic_error.is_some() => {
                c.error_code = error::COORDINATOR_NOT_AVAILABLE;
                c.error_message = offsets_topic_error.clone().map(StrBytes::from_string);
            }
            KEY_TYPE_TRANSACTION if txn_topic_error.is_some() => {
                c.error_code = error::COORDINATOR_NOT_AVAILABLE;
                c.error_message = txn_topic_error.clone().map(StrBytes::from_string);
            }
            KEY_TYPE_GROUP | KEY_TYPE_TRANSACTION => {
                c.error_code = error::NONE;
                c.node_id = BrokerId(broker.config.node_id);
                c.host = StrBytes::from_string(broker.config.advertised_host.clone());
                c.port = i32::from(broker.config.advertised_port);
            }
            _ => {
                c.error_code = error::INVALID_REQUEST;
                c.error_message = Some(StrBytes::from_static_str("unknown key type"));
            }
        }
        c
    };
    let mut response = FindCoordinatorResponse::default();
    if request.version >= FIRST_BATCHED_VERSION {
        response.coordinators = body.coordinator_keys.iter().cloned().map(answer).collect();
    } else {
        let c = answer(body.key.clone());
        response.error_code = c.error_code;
        response.error_message = c.error_message;
        response.node_id = c.node_id;
        response.host = c.host;
        response.port = c.port;
    }
    encode(&response, request.version)
}
