//! DeleteRecords (key 21): move partitions' log start offsets forward. Each partition is handled
//! on its owner shard by the engine (`Partition::delete_records_before`), which checkpoints the
//! new start and deletes the segments wholly below it; reads below it then answer
//! OFFSET_OUT_OF_RANGE. Offset -1 means the high watermark; an offset past it is
//! OFFSET_OUT_OF_RANGE. The answer carries the new low watermark (log start offset).

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::{encode, error, Reply, Request};
use crate::broker::{on_owner, shard};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 2;

/// DeleteRecords' "up to the high watermark" offset.
const HIGH_WATERMARK: i64 = -1;

pub async fn handle(mut request: Request) -> Result<Reply, String> {
    let body: DeleteRecordsRequest = request.decode()?;
    let broker = shard().broker.clone();
    let snapshot = broker.metadata.snapshot();
    let mut topics = Vec::new();
    for t in &body.topics {
        let name = t.name.to_string();
        let count = snapshot.topic(&name).map(|m| m.partitions);
        let mut pending = Vec::new();
        for p in &t.partitions {
            let index = p.partition_index;
            let offset = p.offset;
            let known = count.is_some_and(|c| index >= 0 && (index as u32) < c);
            let topic = name.clone();
            pending.push((index, known, async move {
                if !known {
                    return (-1, error::UNKNOWN_TOPIC_OR_PARTITION);
                }
                let partition = index as u32;
                on_owner(&topic.clone(), partition, move |state| async move {
                    let Some(log) = state.local_partition(&topic, partition) else {
                        return (-1, error::UNKNOWN_TOPIC_OR_PARTITION);
                    };
                    let to = if offset == HIGH_WATERMARK {
                        log.log().high_watermark()
                    } else {
                        offset
                    };
                    match log.delete_records_before(to) {
                        Ok(start) => (start, error::NONE),
                        Err(None) => (-1, error::OFFSET_OUT_OF_RANGE),
                        Err(Some(e)) => {
                            tracing::warn!(topic, partition, error = %e, "DeleteRecords failed");
                            (-1, error::KAFKA_STORAGE_ERROR)
                        }
                    }
                })
                .await
            }));
        }
        let mut partitions = Vec::new();
        for (index, _, fut) in pending {
            let (low_watermark, code) = fut.await;
            partitions.push(
                DeleteRecordsPartitionResult::default()
                    .with_partition_index(index)
                    .with_low_watermark(low_watermark)
                    .with_error_code(code),
            );
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(t.name.clone())
                .with_partitions(partitions),
        );
    }
    let response = DeleteRecordsResponse::default().with_topics(topics);
    encode(&response, request.version)
}
