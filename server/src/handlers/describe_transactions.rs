//! DescribeTransactions (key 65): state, producer id and epoch, timeout, start time and
//! partitions of each transactional id, from its coordinator shard. An unknown id is
//! TRANSACTIONAL_ID_NOT_FOUND, an empty one INVALID_REQUEST, as in Kafka.

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{encode, error, Reply, Request};
use crate::broker::{on_owner, shard};
use crate::txn::{coordinator, state_partition_for, TXN_STATE_TOPIC};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 0;

pub async fn handle(mut request: Request) -> Result<Reply, String> {
    let body: DescribeTransactionsRequest = request.decode()?;
    let broker = shard().broker.clone();
    // Without `__transaction_state` no id was ever initialized here (and describing creates
    // nothing).
    let topic_exists = broker.metadata.snapshot().topic(TXN_STATE_TOPIC).is_some();
    let mut response = DescribeTransactionsResponse::default();
    for id in body.transactional_ids {
        let mut t = TransactionState::default();
        t.transactional_id = id.clone();
        t.producer_id = ProducerId(-1);
        t.producer_epoch = -1;
        t.transaction_start_time_ms = -1;
        let name = id.to_string();
        let found = if name.is_empty() {
            t.error_code = error::INVALID_REQUEST;
            None
        } else if !topic_exists {
            None
        } else {
            let p = state_partition_for(&broker, &name);
            on_owner(TXN_STATE_TOPIC, p, move |state| async move {
                coordinator::describe(&state, &name)
            })
            .await
        };
        match found {
            None if t.error_code == error::NONE => t.error_code = error::TRANSACTIONAL_ID_NOT_FOUND,
            None => {}
            Some(d) => {
                t.error_code = error::NONE;
                t.transaction_state = StrBytes::from_static_str(d.state);
                t.transaction_timeout_ms = d.timeout_ms;
                t.transaction_start_time_ms = d.start_ms;
                t.producer_id = ProducerId(d.producer_id);
                t.producer_epoch = d.producer_epoch;
                t.topics = d
                    .topics
                    .into_iter()
                    .map(|(topic, partitions)| {
                        let mut td = TopicData::default();
                        td.topic = TopicName(StrBytes::from_string(topic));
                        td.partitions = partitions;
                        td
                    })
                    .collect();
            }
        }
        response.transaction_states.push(t);
    }
    encode(&response, request.version)
}
