//! DescribeConfigs (key 32): the configs of topics and of the broker.
//!
//! A topic lists every topic config with its effective value and source (see
//! [`crate::config_entries`]): DYNAMIC_TOPIC_CONFIG for the topic's overrides, STATIC_BROKER_CONFIG
//! where `server.properties` changed the default, DEFAULT_CONFIG otherwise, and
//! `min.insync.replicas` as the cluster-wide dynamic default a Kafka 4 controller records. That
//! is what `kafka-topics --describe` and `kafka-configs --describe` print (they hide only
//! DEFAULT_CONFIG entries). Synonyms (v1+) and documentation (v3+) are given when asked for.
//! A broker resource is this node's id (its settings, read-only) or "" (cluster defaults).

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{encode, error, Reply, Request};
use crate::broker::shard;
use crate::config_entries::{self, Entry};

/// Kafka 4 accepts v1-v4 (v0 was removed in 4.0).
pub const MIN_VERSION: i16 = 1;
pub const MAX_VERSION: i16 = 4;

/// Kafka's `ConfigResource.Type` codes.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

/// The answer of AlterConfigs and IncrementalAlterConfigs for a resource other than a topic.
pub fn not_alterable(resource_type: i8) -> crate::topics::TopicError {
    match resource_type {
        RESOURCE_BROKER => (
            super::error::INVALID_REQUEST,
            "corelog's broker configs are static (server.properties); they cannot be altered"
                .to_string(),
        ),
        other => (
            super::error::INVALID_REQUEST,
            format!("Unsupported resource type {other}"),
        ),
    }
}

pub async fn handle(mut request: Request) -> Result<Reply, String> {
    let body: DescribeConfigsRequest = request.decode()?;
    let broker = shard().broker.clone();
    let mut results = Vec::new();
    for res in &body.resources {
        let name = res.resource_name.to_string();
        let keys: Option<Vec<String>> = res
            .configuration_keys
            .as_ref()
            .map(|k| k.iter().map(|s| s.to_string()).collect());
        let entries: Result<Vec<Entry>, (i16, String)> = match res.resource_type {
            RESOURCE_TOPIC => match broker.metadata.snapshot().topic(&name) {
                Some(t) => Ok(config_entries::describe_topic(
                    &broker.config,
                    &t.configs,
                    keys.as_deref(),
                )),
                None if name.is_empty() => Err((
                    error::INVALID_REQUEST,
                    "Topic name must not be empty".to_string(),
                )),
                None => Err((
                    error::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("Topic {name} does not exist"),
                )),
            },
            RESOURCE_BROKER if name.is_empty() => Ok(config_entries::describe_broker(
                &broker.config,
                true,
                keys.as_deref(),
            )),
            RESOURCE_BROKER if name == broker.config.node_id.to_string() => Ok(
                config_entries::describe_broker(&broker.config, false, keys.as_deref()),
            ),
            RESOURCE_BROKER => Err((
                error::INVALID_REQUEST,
                format!("Unexpected broker id, expected {}", broker.config.node_id),
            )),
            other => Err((
                error::INVALID_REQUEST,
                format!("Unsupported resource type {other}"),
            )),
        };
        let mut r = DescribeConfigsResult::default();
        r.resource_type = res.resource_type;
        r.resource_name = res.resource_name.clone();
        match entries {
            Ok(entries) => {
                r.configs = entries
                    .into_iter()
                    .map(|e| to_wire(e, body.include_synonyms, body.include_documentation))
                    .collect();
            }
            Err((code, message)) => {
                r.error_code = code;
                r.error_message = Some(StrBytes::from_string(message));
            }
        }
        results.push(r);
    }
    let response = DescribeConfigsResponse::default().with_results(results);
    encode(&response, request.version)
}

fn to_wire(e: Entry, synonyms: bool, documentation: bool) -> DescribeConfigsResourceResult {
    let mut c = DescribeConfigsResourceResult::default();
    c.name = StrBytes::from_string(e.name);
    c.value = e.value.map(StrBytes::from_string);
    c.read_only = e.read_only;
    c.config_source = e.source;
    c.is_sensitive = e.sensitive;
    c.config_type = e.kind;
    if synonyms {
        c.synonyms = e
            .synonyms
            .into_iter()
            .map(|(name, value, source)| {
                DescribeConfigsSynonym::default()
                    .with_name(StrBytes::from_string(name))
                    .with_value(value.map(StrBytes::from_string))
                    .with_source(source)
            })
            .collect();
    }
    if documentation && !e.doc.is_empty() {
        c.documentation = Some(StrBytes::from_static_str(e.doc));
    }
    c
}
