//! InitProducerId (key 22): a producer id and epoch for an idempotent or transactional producer.
//!
//! Without a transactional id Kafka hands out a fresh producer id with epoch 0, whatever
//! producer id and epoch the request carries (v3+ sends them to bump an epoch, which only a
//! transaction coordinator does). Ids come from the broker-wide block allocator
//! ([`crate::producer_ids`]) and are never reused, across restarts too.
//!
//! With a transactional id the request goes to the id's transaction coordinator
//! ([`crate::txn::coordinator::init_producer_id`]): the id keeps its producer id and every
//! init bumps the epoch, fencing the previous producer (an Ongoing transaction of the id is
//! aborted first). An empty transactional id is INVALID_REQUEST, a timeout outside
//! `1..=transaction.max.timeout.ms` INVALID_TRANSACTION_TIMEOUT, as Kafka's coordinator answers.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::{encode, error, Reply, Request};
use crate::broker::shard;

pub const MIN_VERSION: i16 = 0;
/// v5 is the newest the protocol crate knows (Kafka 4.0's newest too; librdkafka uses up to v4).
pub const MAX_VERSION: i16 = 5;

/// Epoch of a newly issued producer id.
const FIRST_EPOCH: i16 = 0;
/// First version that knows PRODUCER_FENCED (KIP-588); older clients get INVALID_PRODUCER_EPOCH.
const FIRST_PRODUCER_FENCED_VERSION: i16 = 4;

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
        Some(id) => {
            let answer = transactional(
                id.to_string(),
                body.transaction_timeout_ms,
                body.producer_id.0,
                body.producer_epoch,
            )
            .await;
            response.error_code = answer.error;
            if answer.error == error::PRODUCER_FENCED
                && request.version < FIRST_PRODUCER_FENCED_VERSION
            {
                response.error_code = error::INVALID_PRODUCER_EPOCH;
            }
            response.producer_id = ProducerId(answer.producer_id);
            response.producer_epoch = answer.producer_epoch;
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

/// The transactional case, checked as Kafka checks it, then run on the coordinator shard.
async fn transactional(
    id: String,
    timeout_ms: i32,
    producer_id: i64,
    producer_epoch: i16,
) -> crate::txn::coordinator::InitAnswer {
    use crate::txn::coordinator::{init_producer_id, InitAnswer};
    use crate::txn::metadata::{NO_PRODUCER_EPOCH, NO_PRODUCER_ID};
    let failed = |error| InitAnswer {
        error,
        producer_id: -1,
        producer_epoch: -1,
    };
    let max_timeout_ms = shard().broker.config.txn.max_timeout_ms;
    if timeout_ms <= 0 || timeout_ms > max_timeout_ms {
        return failed(error::INVALID_TRANSACTION_TIMEOUT);
    }
    // KIP-360 (v3+): both or neither of the producer id and epoch.
    let expected = match (producer_id, producer_epoch) {
        (NO_PRODUCER_ID, NO_PRODUCER_EPOCH) => None,
        (NO_PRODUCER_ID, _) | (_, NO_PRODUCER_EPOCH) => return failed(error::INVALID_REQUEST),
        (pid, epoch) => Some((pid, epoch)),
    };
    let routed = crate::txn::on_coordinator(&id.clone(), move |state| {
        init_producer_id(state, id, timeout_ms, expected)
    })
    .await;
    routed.unwrap_or_else(|e| {
        tracing::error!(error = %e, "no transaction coordinator");
        failed(error::COORDINATOR_NOT_AVAILABLE)
    })
}
