//! EndTxn (key 26): commits or aborts a producer's transaction.
//!
//! Answered once PrepareCommit/PrepareAbort is stored, the markers are written to every
//! partition of the transaction and CompleteCommit/CompleteAbort is stored (if a marker cannot be
//! written yet, once the outcome is stored: the coordinator finishes in the background). Retries
//! of a finished EndTxn are NONE; the other ending of a finished transaction, or ending a
//! transaction that never started, is INVALID_TXN_STATE; one being finished is
//! CONCURRENT_TRANSACTIONS ([`crate::txn::coordinator::end_txn`]).

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};

use super::{encode, error, Reply, Request};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 4;

/// First version that knows PRODUCER_FENCED (KIP-588); older clients get INVALID_PRODUCER_EPOCH.
const FIRST_PRODUCER_FENCED_VERSION: i16 = 2;

pub async fn handle(mut request: Request) -> Result<Reply, String> {
    let body: EndTxnRequest = request.decode()?;
    let id = body.transactional_id.to_string();
    let pid = body.producer_id.0;
    let epoch = body.producer_epoch;
    let commit = body.committed;
    let code = if id.is_empty() {
        error::INVALID_REQUEST
    } else {
        let routed = crate::txn::on_coordinator(&id.clone(), move |state| {
            crate::txn::coordinator::end_txn(state, id, pid, epoch, commit)
        })
        .await;
        routed.unwrap_or_else(|e| {
            tracing::error!(error = %e, "no transaction coordinator");
            error::COORDINATOR_NOT_AVAILABLE
        })
    };
    let mut response = EndTxnResponse::default();
    response.error_code =
        if code == error::PRODUCER_FENCED && request.version < FIRST_PRODUCER_FENCED_VERSION {
            error::INVALID_PRODUCER_EPOCH
        } else {
            code
        };
    // v5+ (KIP-890) returns the producer id and epoch; not advertised, kept at "none".
    response.producer_id = ProducerId(-1);
    response.producer_epoch = -1;
    encode(&response, request.version)
}
