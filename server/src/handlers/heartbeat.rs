//! Heartbeat (key 12): a member says it is alive; the answer tells it whether a rebalance is
//! under way (REBALANCE_IN_PROGRESS: rejoin) or it was fenced or forgotten.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::{encode, error, Reply, Request};
use crate::groups::{self, coordinator};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 4;

pub async fn handle(mut request: Request) -> Result<Reply, String> {
    let body: HeartbeatRequest = request.decode()?;
    let group_id = body.group_id.to_string();
    let error_code = if group_id.is_empty() {
        error::INVALID_GROUP_ID
    } else {
        let member = body.member_id.to_string();
        let instance = body.group_instance_id.as_ref().map(|s| s.to_string());
        let generation = body.generation_id;
        let id = group_id.clone();
        groups::on_coordinator(&group_id, move |state| async move {
            coordinator::heartbeat(&state, &id, &member, instance.as_deref(), generation)
        })
        .await
    };
    let mut response = HeartbeatResponse::default();
    response.error_code = error_code;
    encode(&response, request.version)
}
