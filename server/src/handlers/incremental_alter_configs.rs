//! IncrementalAlterConfigs (key 44): change single topic configs: SET, DELETE (back to the
//! default), APPEND and SUBTRACT (list configs only, starting from the default when the topic
//! has no override), then apply the new log settings to the topic's open partitions on their
//! owner shards. A key named twice is INVALID_REQUEST; broker configs are static in corelog.

use std::collections::HashSet;

use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::describe_configs::{not_alterable, RESOURCE_TOPIC};
use super::{encode, error, Reply, Request};
use crate::broker::shard;
use crate::config_entries;
use crate::topics::{self, TopicError};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 1;

pub async fn handle(mut request: Request) -> Result<Reply, String> {
    let body: IncrementalAlterConfigsRequest = request.decode()?;
    let mut responses = Vec::new();
    for res in &body.resources {
        let outcome = match res.resource_type {
            RESOURCE_TOPIC => alter(res, body.validate_only).await,
            other => Err(not_alterable(other)),
        };
        let mut r = AlterConfigsResourceResponse::default();
        r.resource_type = res.resource_type;
        r.resource_name = res.resource_name.clone();
        if let Err((code, message)) = outcome {
            r.error_code = code;
            r.error_message = Some(StrBytes::from_string(message));
        }
        responses.push(r);
    }
    let response = IncrementalAlterConfigsResponse::default().with_responses(responses);
    encode(&response, request.version)
}

async fn alter(res: &AlterConfigsResource, validate_only: bool) -> Result<(), TopicError> {
    let broker = shard().broker.clone();
    let name = res.resource_name.to_string();
    let mut seen = HashSet::new();
    for c in &res.configs {
        if !seen.insert(c.name.to_string()) {
            return Err((
                error::INVALID_REQUEST,
                format!("Error due to duplicate config keys: {}", c.name),
            ));
        }
    }
    let Some(topic) = broker.metadata.snapshot().topic(&name).cloned() else {
        return Err((
            error::UNKNOWN_TOPIC_OR_PARTITION,
            format!("Topic {name} does not exist"),
        ));
    };
    let mut configs = topic.configs.clone();
    for c in &res.configs {
        let key = c.name.to_string();
        if c.config_operation != 1
            && config_entries::topic_config_kind(&key).is_none()
            && !topics::TOPIC_CONFIG_KEYS.contains(&key.as_str())
        {
            return Err((
                error::INVALID_CONFIG,
                format!("Unknown topic config name: {key}"),
            ));
        }
        config_entries::apply_incremental(
            &mut configs,
            &key,
            c.config_operation,
            c.value.as_deref(),
        )?;
    }
    topics::validate_configs(&configs)?;
    if validate_only {
        return Ok(());
    }
    topics::set_configs(&name, configs).await.map(|_| ())
}
