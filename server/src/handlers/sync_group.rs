//! SyncGroup (key 14): after a join, the leader sends the assignment it computed and every
//! member gets its own part. Followers wait for the leader; the assignment is written to
//! `__consumer_offsets` (the group metadata record) before anyone is answered.

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::{encode, error, Reply, Request};
use crate::groups::{self, coordinator, group::SyncResult};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 5;

pub async fn handle(mut request: Request) -> Result<Reply, String> {
    let body: SyncGroupRequest = request.decode()?;
    let group_id = body.group_id.to_string();
    let result = if group_id.is_empty() {
        SyncResult::error(error::INVALID_GROUP_ID)
    } else {
        let req = coordinator::SyncRequest {
            member_id: body.member_id.to_string(),
            instance_id: body.group_instance_id.as_ref().map(|s| s.to_string()),
            generation: body.generation_id,
            protocol_type: body.protocol_type.as_ref().map(|s| s.to_string()),
            protocol_name: body.protocol_name.as_ref().map(|s| s.to_string()),
            assignments: body
                .assignments
                .iter()
                .map(|a| (a.member_id.to_string(), a.assignment.clone()))
                .collect(),
        };
        let id = group_id.clone();
        groups::on_coordinator(&group_id, move |state| coordinator::sync(state, id, req)).await
    };
    let mut response = SyncGroupResponse::default();
    response.error_code = result.error;
    response.protocol_type = result.protocol_type.map(StrBytes::from_string);
    response.protocol_name = result.protocol_name.map(StrBytes::from_string);
    response.assignment = result.assignment;
    encode(&response, request.version)
}
