//! JoinGroup (key 11): a member joins (or rejoins) a group and waits for the rebalance to
//! complete. The answer comes when every member has joined or the rebalance timeout passed
//! (see `groups::group` for the state machine); the leader's answer lists every member's
//! subscription so that it computes the assignment.

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::{encode, error, Reply, Request};
use crate::broker::shard;
use crate::groups::{self, coordinator, group::JoinRequest, group::JoinResult};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 9;

/// v4+: a new member must first learn its member id (MEMBER_ID_REQUIRED) and join again.
const FIRST_VERSION_REQUIRING_MEMBER_ID: i16 = 4;
/// v9+: skip_assignment for a returning static leader.
const FIRST_VERSION_WITH_SKIP_ASSIGNMENT: i16 = 9;

pub async fn handle(mut request: Request) -> Result<Reply, String> {
    let body: JoinGroupRequest = request.decode()?;
    let version = request.version;
    let group_id = body.group_id.to_string();
    let limits = &shard().broker.config.groups;
    // v0 has no rebalance timeout: it is the session timeout.
    let rebalance_timeout_ms = if version == 0 {
        body.session_timeout_ms
    } else {
        body.rebalance_timeout_ms
    };
    let refused = if group_id.is_empty() {
        Some(error::INVALID_GROUP_ID)
    } else if body.session_timeout_ms < limits.min_session_timeout_ms
        || body.session_timeout_ms > limits.max_session_timeout_ms
    {
        Some(error::INVALID_SESSION_TIMEOUT)
    } else {
        None
    };
    let result = match refused {
        Some(e) => JoinResult::error(e, &body.member_id),
        None => {
            let req = JoinRequest {
                member_id: body.member_id.to_string(),
                instance_id: body.group_instance_id.as_ref().map(|s| s.to_string()),
                client_id: request.client_id.clone(),
                client_host: request.client_host.to_string(),
                rebalance_timeout_ms,
                session_timeout_ms: body.session_timeout_ms,
                protocol_type: body.protocol_type.to_string(),
                protocols: body
                    .protocols
                    .iter()
                    .map(|p| (p.name.to_string(), p.metadata.clone()))
                    .collect(),
                require_known_member_id: version >= FIRST_VERSION_REQUIRING_MEMBER_ID,
                supports_skip_assignment: version >= FIRST_VERSION_WITH_SKIP_ASSIGNMENT,
            };
            let id = group_id.clone();
            groups::on_coordinator(&group_id, move |state| coordinator::join(state, id, req)).await
        }
    };
    let mut response = JoinGroupResponse::default();
    response.error_code = result.error;
    response.generation_id = result.generation;
    response.protocol_type = result.protocol_type.map(StrBytes::from_string);
    response.protocol_name = result.protocol_name.map(StrBytes::from_string);
    response.leader = StrBytes::from_string(result.leader);
    response.skip_assignment = result.skip_assignment;
    response.member_id = StrBytes::from_string(result.member_id);
    response.members = result
        .members
        .into_iter()
        .map(|m| {
            let mut r = JoinGroupResponseMember::default();
            r.member_id = StrBytes::from_string(m.member_id);
            r.group_instance_id = m.instance_id.map(StrBytes::from_string);
            r.metadata = m.metadata;
            r
        })
        .collect();
    if version < 7 && response.protocol_name.is_none() {
        // Before v7 the protocol name is not nullable.
        response.protocol_name = Some(StrBytes::default());
    }
    encode(&response, version)
}
