//! OffsetDelete (key 47): deletes committed offsets of some partitions of a group. Refused per
//! partition (GROUP_SUBSCRIBED_TO_TOPIC) while an active group consumes the topic, as in Kafka.

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::{encode, error, Reply, Request};
use crate::groups::{self, coordinator};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 0;

pub async fn handle(mut request: Request) -> Result<Reply, String> {
    let body: OffsetDeleteRequest = request.decode()?;
    let partitions: Vec<(String, i32)> = body
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.to_string(), p.partition_index))
        })
        .collect();
    let id = body.group_id.to_string();
    let (group_error, errors) = groups::on_coordinator(&id.clone(), move |state| {
        coordinator::delete_offsets(state, id, partitions)
    })
    .await;
    let mut response = OffsetDeleteResponse::default();
    response.error_code = group_error;
    if group_error == error::NONE {
        let mut errors = errors.into_iter();
        response.topics = body
            .topics
            .iter()
            .map(|t| {
                let mut out = OffsetDeleteResponseTopic::default();
                out.name = t.name.clone();
                out.partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let mut r = OffsetDeleteResponsePartition::default();
                        r.partition_index = p.partition_index;
                        r.error_code = errors.next().unwrap_or(error::UNKNOWN_SERVER_ERROR);
                        r
                    })
                    .collect();
                out
            })
            .collect();
    }
    encode(&response, request.version)
}
