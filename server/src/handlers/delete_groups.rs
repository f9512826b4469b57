//! DeleteGroups (key 42): removes empty groups and their committed offsets (tombstones in
//! `__consumer_offsets`). A group with members is NON_EMPTY_GROUP, an unknown one
//! GROUP_ID_NOT_FOUND.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::{encode, Reply, Request};
use crate::groups::{self, coordinator};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 2;

pub async fn handle(mut request: Request) -> Result<Reply, String> {
    let body: DeleteGroupsRequest = request.decode()?;
    let mut response = DeleteGroupsResponse::default();
    for group_id in body.groups_names {
        let id = group_id.to_string();
        let error_code =
            groups::on_coordinator(&id.clone(), move |state| coordinator::delete(state, id)).await;
        let mut r = DeletableGroupResult::default();
        r.group_id = group_id;
        r.error_code = error_code;
        response.results.push(r);
    }
    encode(&response, request.version)
}
