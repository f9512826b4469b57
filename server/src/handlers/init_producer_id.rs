//! InitProducerId (key 22): a producer id and epoch for an idempotent producer.
//!
//! Without a transactional id Kafka hands out a fresh producer id with epoch 0, whatever
//! producer id and epoch the request carries (v3+ sends them to bump an epoch, which only a
//! transaction coordinator does). Ids come from the broker-wide block allocator
//! ([`crate::producer_ids`]) and are never reused, across restarts too.
//!
//! An empty transactional id is INVALID_REQUEST, as Kafka's coordinator answers. Transactions
//! are not served yet: a request with a transactional id is answered
//! NOT_COORDINATOR, what a Kafka broker answers when it is not the coordinator of that id (and
//! FindCoordinator is not advertised, so a client never learns of another one).

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::{encode, error, Reply, Request};
use crate::broker::shard;

pub const MIN_VERSION: i16 = 0;
/// v5 is the newest the protocol crate knows (Kafka 4.0's newest too; librdkafka uses up to v4).
pub const MAX_VERSION: i16 = 5;

/// Epoch of a newly issued producer id.
const FIRST_EPOCH: i16 = 0;

pub async fn handle(mut request: Request) -> Result<Reply, String> {
    let body: InitProducerIdRequest = request.decode()?;
    let mut response = InitProducerIdResponse::default();
    response.producer_id = ProducerId(-1);
    response.producer_epoch = -1;
    match body.transactional_id {
        None => {}
        // Kafka's coordinator refuses an empty transactional id as an invalid request.
        Some(id) if id.is_empty() => {
            response.error_code = error::INVALID_REQUEST;
            return encode(&response, request.version);
        }
        Some(_) => {
            response.error_code = error::NOT_COORDINATOR;
            return encode(&response, request.version);
        }
    }
    match shard().broker.producer_ids.next_id() {
        Ok(id) => {
            response.error_code = error::NONE;
            response.producer_id = ProducerId(id);
            response.producer_epoch = FIRST_EPOCH;
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot reserve a producer id block");
            response.error_code = error::UNKNOWN_SERVER_ERROR;
        }
    }
    encode(&response, request.version)
}
