//! LeaveGroup (key 13): members leave a group (a consumer closing), which rebalances the rest at
//! once instead of after a session timeout. v0–2 name one member; v3+ a batch, by member id or
//! by `group.instance.id` (how an operator removes static members).

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use super::{encode, error, Reply, Request};
use crate::groups::{self, coordinator};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 5;

/// First version with a batch of members.
const FIRST_BATCH_VERSION: i16 = 3;

pub async fn handle(mut request: Request) -> Result<Reply, String> {
    let body: LeaveGroupRequest = request.decode()?;
    let batch = request.version >= FIRST_BATCH_VERSION;
    let group_id = body.group_id.to_string();
    let members: Vec<(String, Option<String>)> = if batch {
        body.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(body.member_id.to_string(), None)]
    };
    let mut response = LeaveGroupResponse::default();
    if group_id.is_empty() {
        response.error_code = error::INVALID_GROUP_ID;
        return encode(&response, request.version);
    }
    let id = group_id.clone();
    let asked = members.clone();
    let errors = groups::on_coordinator(&group_id, move |state| async move {
        coordinator::leave(&state, &id, &asked)
    })
    .await;
    // An unknown group: every member is unknown (Kafka answers the same).
    let errors = errors.unwrap_or_else(|| vec![error::UNKNOWN_MEMBER_ID; members.len()]);
    if batch {
        response.members = members
            .into_iter()
            .zip(errors)
            .map(|((member_id, instance), e)| {
                let mut r = MemberResponse::default();
                r.member_id = member_id.into();
                r.group_instance_id = instance.map(Into::into);
                r.error_code = e;
                r
            })
            .collect();
    } else {
        response.error_code = errors.first().copied().unwrap_or(error::NONE);
    }
    encode(&response, request.version)
}
