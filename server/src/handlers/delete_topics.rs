//! DeleteTopics (key 20): delete topics by name (v1-v5) or by name or topic id (v6), with their
//! data: the metadata first, so that no new request finds the topic, then every partition's
//! directory on its owner shard.

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{encode, error, Reply, Request};
use crate::broker::shard;
use crate::topics;

/// Kafka 4 accepts v1-v6 (v0 was removed in 4.0).
pub const MIN_VERSION: i16 = 1;
pub const MAX_VERSION: i16 = 6;

pub async fn handle(mut request: Request) -> Result<Reply, String> {
    let body: DeleteTopicsRequest = request.decode()?;
    // (name, topic id) as asked; v6 names topics in `topics`, earlier versions in `topic_names`.
    let wanted: Vec<(Option<TopicName>, uuid::Uuid)> = if request.version >= 6 {
        body.topics
            .iter()
            .map(|t| (t.name.clone(), t.topic_id))
            .collect()
    } else {
        body.topic_names
            .iter()
            .map(|n| (Some(n.clone()), uuid::Uuid::nil()))
            .collect()
    };
    let broker = shard().broker.clone();
    let mut responses = Vec::new();
    for (name, id) in wanted {
        let mut r = DeletableTopicResult::default();
        r.name = name.clone();
        r.topic_id = id;
        let snapshot = broker.metadata.snapshot();
        let found = match &name {
            Some(n) => snapshot.topic(n.as_str()).cloned(),
            None => snapshot.topic_by_id(&id).cloned(),
        };
        let outcome = match found {
            Some(t) if !id.is_nil() && t.id != id => Err((
                error::UNKNOWN_TOPIC_ID,
                "The topic id does not match the topic name.".to_string(),
            )),
            Some(t) => topics::delete(&t.name).await.map(|_| t),
            None if name.is_none() => Err((
                error::UNKNOWN_TOPIC_ID,
                "This server does not host this topic ID.".to_string(),
            )),
            None => Err((
                error::UNKNOWN_TOPIC_OR_PARTITION,
                "This server does not host this topic-partition.".to_string(),
            )),
        };
        match outcome {
            Ok(t) => {
                r.name = Some(TopicName(StrBytes::from_string(t.name.clone())));
                if request.version >= 6 {
                    r.topic_id = t.id;
                }
            }
            Err((code, message)) => {
                r.error_code = code;
                if request.version >= 5 {
                    r.error_message = Some(StrBytes::from_string(message));
                }
            }
        }
        responses.push(r);
    }
    let response = DeleteTopicsResponse::default().with_responses(responses);
    encode(&response, request.version)
}
