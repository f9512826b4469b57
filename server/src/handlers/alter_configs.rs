//! AlterConfigs (key 33): replace a topic's whole set of config overrides (configs not named go
//! back to their defaults), then apply the new log settings to its open partitions on their
//! owner shards. Broker configs are static in corelog: altering them is INVALID_REQUEST.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::describe_configs::{not_alterable, RESOURCE_TOPIC};
use super::{encode, error, Reply, Request};
use crate::broker::shard;
use crate::topics::{self, TopicError};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 2;

pub async fn handle(mut request: Request) -> Result<Reply, String> {
    let body: AlterConfigsRequest = request.decode()?;
    let mut responses = Vec::new();
    for res in &body.resources {
        let name = res.resource_name.to_string();
        let outcome = match res.resource_type {
            RESOURCE_TOPIC => {
                let mut configs = BTreeMap::new();
                let mut dup = None;
                for c in &res.configs {
                    let value = c.value.as_ref().map(|v| v.to_string());
                    if configs.insert(c.name.to_string(), value).is_some() {
                        dup = Some(c.name.to_string());
                    }
                }
                match dup {
                    Some(d) => Err((
                        error::INVALID_REQUEST,
                        format!("Error due to duplicate config keys: {d}"),
                    )),
                    None => replace(&name, configs, body.validate_only).await,
                }
            }
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
    let response = AlterConfigsResponse::default().with_responses(responses);
    encode(&response, request.version)
}

async fn replace(
    name: &str,
    configs: BTreeMap<String, Option<String>>,
    validate_only: bool,
) -> Result<(), TopicError> {
    let broker = shard().broker.clone();
    if broker.metadata.snapshot().topic(name).is_none() {
        return Err((
            error::UNKNOWN_TOPIC_OR_PARTITION,
            format!("Topic {name} does not exist"),
        ));
    }
    let mut set = BTreeMap::new();
    for (k, v) in configs {
        let Some(v) = v else {
            return Err((
                error::INVALID_REQUEST,
                format!("Null value not supported for : {k}"),
            ));
        };
        topics::validate_config(&k, &v)?;
        set.insert(k, v);
    }
    topics::validate_configs(&set)?;
    if validate_only {
        return Ok(());
    }
    topics::set_configs(name, set).await.map(|_| ())
}
