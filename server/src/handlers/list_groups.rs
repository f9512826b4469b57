//! ListGroups (key 16): every group of every shard, with its protocol type; v4+ filters by
//! state, v5+ by type (all groups here are "classic").

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{encode, error, Reply, Request};
use crate::broker::{on_every_shard, shard};
use crate::groups::coordinator;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 5;

/// The group type of every group this broker coordinates (KIP-848 names).
const CLASSIC: &str = "classic";

pub async fn handle(mut request: Request) -> Result<Reply, String> {
    let body: ListGroupsRequest = request.decode()?;
    let per_shard = on_every_shard(|| async { coordinator::list(&shard()) }).await;
    // Kafka compares state and type filters case-insensitively.
    let states: Vec<String> = body
        .states_filter
        .iter()
        .map(|s| s.to_lowercase())
        .collect();
    let types: Vec<String> = body.types_filter.iter().map(|s| s.to_lowercase()).collect();
    let mut response = ListGroupsResponse::default();
    response.error_code = error::NONE;
    for listing in per_shard {
        for g in listing {
            if !states.is_empty() && !states.contains(&g.state.to_lowercase()) {
                continue;
            }
            if !types.is_empty() && !types.iter().any(|t| t == CLASSIC) {
                continue;
            }
            let mut l = ListedGroup::default();
            l.group_id = GroupId(StrBytes::from_string(g.group_id));
            l.protocol_type = StrBytes::from_string(g.protocol_type);
            l.group_state = StrBytes::from_static_str(g.state);
            l.group_type = StrBytes::from_static_str(CLASSIC);
            response.groups.push(l);
        }
    }
    response
        .groups
        .sort_by(|a, b| a.group_id.as_str().cmp(b.group_id.as_str()));
    encode(&response, request.version)
}
