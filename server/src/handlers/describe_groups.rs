//! DescribeGroups (key 15): a group's state, protocol and members (client id, host, and while
//! Stable their subscription and assignment: what `kafka-consumer-groups --describe` shows). An
//! unknown group is answered as Kafka does before v6: state "Dead", no error.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{encode, error, Reply, Request};
use crate::groups::{self, coordinator};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 5;

/// "Authorized operations not requested" (no ACLs here).
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

pub async fn handle(mut request: Request) -> Result<Reply, String> {
    let body: DescribeGroupsRequest = request.decode()?;
    let mut response = DescribeGroupsResponse::default();
    for group_id in body.groups {
        let id = group_id.to_string();
        let found = groups::on_coordinator(&id.clone(), move |state| async move {
            coordinator::describe(&state, &id)
        })
        .await;
        let mut g = DescribedGroup::default();
        g.group_id = group_id;
        g.error_code = error::NONE;
        g.authorized_operations = AUTHORIZED_OPERATIONS_OMITTED;
        match found {
            None => g.group_state = StrBytes::from_static_str("Dead"),
            Some(d) => {
                g.group_state = StrBytes::from_static_str(d.state);
                g.protocol_type = StrBytes::from_string(d.protocol_type);
                g.protocol_data = StrBytes::from_string(d.protocol);
                g.members = d
                    .members
                    .into_iter()
                    .map(|m| {
                        let mut r = DescribedGroupMember::default();
                        r.member_id = StrBytes::from_string(m.member_id);
                        r.group_instance_id = m.instance_id.map(StrBytes::from_string);
                        r.client_id = StrBytes::from_string(m.client_id);
                        r.client_host = StrBytes::from_string(m.client_host);
                        r.member_metadata = m.metadata;
                        r.member_assignment = m.assignment;
                        r
                    })
                    .collect();
            }
        }
        response.groups.push(g);
    }
    encode(&response, request.version)
}
