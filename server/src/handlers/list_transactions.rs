//! ListTransactions (key 66): every transactional id of every coordinator shard, with its
//! producer id and state; filters by state (unknown state names are echoed back in
//! `unknown_state_filters`), by producer id, and (v1, KIP-994) by duration: only transactions
//! running longer than `duration_filter` ms.

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use super::{encode, error, Reply, Request};
use crate::broker::{on_every_shard, shard};
use crate::txn::coordinator::{list, ListFilter};
use crate::txn::metadata::TxnState as State;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 1;

pub async fn handle(mut request: Request) -> Result<Reply, String> {
    let body: ListTransactionsRequest = request.decode()?;
    let mut response = ListTransactionsResponse::default();
    response.error_code = error::NONE;
    let mut filter = ListFilter {
        states: Vec::new(),
        producer_ids: body.producer_id_filters.iter().map(|p| p.0).collect(),
        // v0 has no duration filter (the field decodes as its default, -1).
        min_duration_ms: if request.version >= 1 {
            body.duration_filter
        } else {
            -1
        },
    };
    for name in &body.state_filters {
        match State::from_name(name.as_str()) {
            Some(s) => filter.states.push(s),
            None => response.unknown_state_filters.push(name.clone()),
        }
    }
    // Only unknown state names were asked for: nothing can match (Kafka answers the same).
    if filter.states.is_empty() && !body.state_filters.is_empty() {
        return encode(&response, request.version);
    }
    let per_shard = on_every_shard(move || async move { list(&shard(), &filter) }).await;
    for listing in per_shard.into_iter().flatten() {
        let mut t = TransactionState::default();
        t.transactional_id = TransactionalId(StrBytes::from_string(listing.transactional_id));
        t.producer_id = ProducerId(listing.producer_id);
        t.transaction_state = StrBytes::from_static_str(listing.state);
        response.transaction_states.push(t);
    }
    response
        .transaction_states
        .sort_by(|a, b| a.transactional_id.as_str().cmp(b.transactional_id.as_str()));
    encode(&response, request.version)
}
