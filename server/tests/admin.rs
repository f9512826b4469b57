//! The admin APIs against the real `corelog` binary: Kafka's own CLI tools (`kafka-topics`,
//! `kafka-configs`) exactly as the seed uses them, and raw-protocol requests for what the tools
//! do not show (validate_only, error codes, DeleteRecords).

mod admin_support;

use std::collections::BTreeMap;

use admin_support::Broker;
use corelog_engine::batch::BatchBuilder;
use corelog_engine::log::LogConfig;
use corelog_engine::partition::AckPoint;
use corelog_engine::runtime;
use corelog_engine::storage::ShardStorage;
use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource as IncResource, AlterableConfig as IncConfig,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const NONE: i16 = 0;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const TOPIC_ALREADY_EXISTS: i16 = 36;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_REPLICATION_FACTOR: i16 = 38;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;
const UNKNOWN_TOPIC_ID: i16 = 100;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn topic_name(v: &str) -> TopicName {
    TopicName(s(v))
}

fn new_topic(name: &str, partitions: i32, rf: i16, configs: &[(&str, &str)]) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(topic_name(name))
        .with_num_partitions(partitions)
        .with_replication_factor(rf)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(s(k))
                        .with_value(Some(s(v)))
                })
                .collect(),
        )
}

fn partition_dirs(broker: &Broker, topic: &str) -> Vec<String> {
    let mut dirs: Vec<String> = std::fs::read_dir(broker.data_dir())
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| {
                    n.rsplit_once('-')
                        .is_some_and(|(t, p)| t == topic && p.parse::<u32>().is_ok())
                })
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

/// The describe line of a topic from `kafka-topics --describe`.
fn topic_line<'a>(describe: &'a str, topic: &str) -> &'a str {
    describe
        .lines()
        .find(|l| l.starts_with(&format!("Topic: {topic}\t")))
        .unwrap_or_else(|| panic!("no topic line for {topic} in:\n{describe}"))
}

#[test]
fn kafka_topics_create_describe_alter_delete_as_the_seed_does() {
    let broker = Broker::start(&[]);
    let out = broker
        .tool(
            "TopicCommand",
            &[
                "--create",
                "--topic",
                "my-topic",
                "--config",
                "unclean.leader.election.enable=false",
            ],
        )
        .expect_ok("kafka-topics --create");
    assert!(out.contains("Created topic my-topic."), "{out}");
    assert_eq!(partition_dirs(&broker, "my-topic"), vec!["my-topic-0"]);

    let out = broker
        .tool("TopicCommand", &["--describe", "--topic", "my-topic"])
        .expect_ok("kafka-topics --describe");
    let line = topic_line(&out, "my-topic");
    assert!(line.contains("PartitionCount: 1"), "{line}");
    assert!(line.contains("ReplicationFactor: 1"), "{line}");
    // Exactly what Apache Kafka 4.4 prints for this topic (checked against the reference broker).
    assert!(
        line.ends_with("Configs: min.insync.replicas=1,unclean.leader.election.enable=false"),
        "{line}"
    );
    assert!(
        out.contains("Topic: my-topic\tPartition: 0\tLeader: 1\tReplicas: 1\tIsr: 1"),
        "{out}"
    );

    // Creating it again fails with Kafka's message.
    let again = broker.tool("TopicCommand", &["--create", "--topic", "my-topic"]);
    assert!(!again.ok);
    assert!(
        again.stdout.contains("already exists") || again.stderr.contains("already exists"),
        "{again:?}"
    );

    broker
        .tool(
            "TopicCommand",
            &["--alter", "--topic", "my-topic", "--partitions", "3"],
        )
        .expect_ok("kafka-topics --alter --partitions 3");
    let out = broker
        .tool("TopicCommand", &["--describe", "--topic", "my-topic"])
        .expect_ok("kafka-topics --describe");
    assert!(
        topic_line(&out, "my-topic").contains("PartitionCount: 3"),
        "{out}"
    );
    for p in 0..3 {
        assert!(
            out.contains(&format!("Topic: my-topic\tPartition: {p}\tLeader: 1")),
            "{out}"
        );
    }
    assert_eq!(
        partition_dirs(&broker, "my-topic"),
        vec!["my-topic-0", "my-topic-1", "my-topic-2"]
    );
    // Fewer partitions than now: refused (INVALID_PARTITIONS), nothing changes.
    let shrink = broker.tool(
        "TopicCommand",
        &["--alter", "--topic", "my-topic", "--partitions", "2"],
    );
    assert!(!shrink.ok, "{shrink:?}");
    assert_eq!(partition_dirs(&broker, "my-topic").len(), 3);

    broker
        .tool("TopicCommand", &["--delete", "--topic", "my-topic"])
        .expect_ok("kafka-topics --delete");
    let list = broker
        .tool("TopicCommand", &["--list"])
        .expect_ok("kafka-topics --list");
    assert!(!list.lines().any(|l| l == "my-topic"), "{list}");
    assert!(partition_dirs(&broker, "my-topic").is_empty());
    let gone = broker.tool("TopicCommand", &["--describe", "--topic", "my-topic"]);
    assert!(!gone.ok, "{gone:?}");
}

#[test]
fn kafka_topics_refuses_replication_above_one_and_describes_many_topics() {
    let broker = Broker::start(&[]);
    let out = broker.tool(
        "TopicCommand",
        &["--create", "--topic", "rf3", "--replication-factor", "3"],
    );
    assert!(!out.ok, "{out:?}");
    assert!(
        format!("{}{}", out.stdout, out.stderr).contains("InvalidReplicationFactorException"),
        "{out:?}"
    );
    for (t, p) in [("a-topic", "2"), ("b-topic", "5")] {
        broker
            .tool(
                "TopicCommand",
                &[
                    "--create",
                    "--topic",
                    t,
                    "--partitions",
                    p,
                    "--replication-factor",
                    "1",
                ],
            )
            .expect_ok("kafka-topics --create");
    }
    // Every topic, all partitions (DescribeTopicPartitions).
    let out = broker
        .tool("TopicCommand", &["--describe"])
        .expect_ok("kafka-topics --describe");
    assert!(topic_line(&out, "a-topic").contains("PartitionCount: 2"));
    assert!(topic_line(&out, "b-topic").contains("PartitionCount: 5"));
    assert_eq!(out.matches("\tPartition: ").count(), 7, "{out}");
}

#[test]
fn kafka_configs_describe_and_alter_a_topic() {
    let mut broker = Broker::start(&[]);
    broker
        .tool("TopicCommand", &["--create", "--topic", "cfg"])
        .expect_ok("create");
    broker
        .tool(
            "kafka-configs",
            &[
                "--alter",
                "--entity-type",
                "topics",
                "--entity-name",
                "cfg",
                "--add-config",
                "retention.ms=1000,segment.bytes=1048576",
            ],
        )
        .expect_ok("kafka-configs --alter --add-config");
    let out = broker
        .tool(
            "kafka-configs",
            &[
                "--describe",
                "--entity-type",
                "topics",
                "--entity-name",
                "cfg",
            ],
        )
        .expect_ok("kafka-configs --describe");
    assert!(out.contains("Dynamic configs for topic cfg are:"), "{out}");
    assert!(
        out.contains(
            "  retention.ms=1000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=1000, \
             DEFAULT_CONFIG:log.retention.hours=168}"
        ),
        "{out}"
    );
    assert!(out.contains("  segment.bytes=1048576 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:segment.bytes=1048576, DEFAULT_CONFIG:log.segment.bytes=1073741824}"), "{out}");

    // --all lists every config, defaults included.
    let all = broker
        .tool(
            "kafka-configs",
            &[
                "--describe",
                "--all",
                "--entity-type",
                "topics",
                "--entity-name",
                "cfg",
            ],
        )
        .expect_ok("kafka-configs --describe --all");
    assert!(all.contains("  cleanup.policy=delete sensitive=false synonyms={DEFAULT_CONFIG:log.cleanup.policy=delete}"), "{all}");
    assert!(all.contains("  min.insync.replicas=1 sensitive=false synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:min.insync.replicas=1, DEFAULT_CONFIG:min.insync.replicas=1}"), "{all}");

    // Invalid values are refused.
    let bad = broker.tool(
        "kafka-configs",
        &[
            "--alter",
            "--entity-type",
            "topics",
            "--entity-name",
            "cfg",
            "--add-config",
            "segment.bytes=3",
        ],
    );
    assert!(!bad.ok, "{bad:?}");

    broker
        .tool(
            "kafka-configs",
            &[
                "--alter",
                "--entity-type",
                "topics",
                "--entity-name",
                "cfg",
                "--delete-config",
                "retention.ms",
            ],
        )
        .expect_ok("kafka-configs --delete-config");
    // Configs survive a restart.
    broker.restart(&[]);
    let out = broker
        .tool(
            "kafka-configs",
            &[
                "--describe",
                "--entity-type",
                "topics",
                "--entity-name",
                "cfg",
            ],
        )
        .expect_ok("kafka-configs --describe");
    assert!(!out.contains("retention.ms"), "{out}");
    assert!(out.contains("segment.bytes=1048576"), "{out}");
    let desc = broker
        .tool("TopicCommand", &["--describe", "--topic", "cfg"])
        .expect_ok("describe");
    assert!(
        topic_line(&desc, "cfg").ends_with("Configs: min.insync.replicas=1,segment.bytes=1048576"),
        "{desc}"
    );

    // The broker's own configs.
    let out = broker
        .tool(
            "kafka-configs",
            &[
                "--describe",
                "--all",
                "--entity-type",
                "brokers",
                "--entity-name",
                "1",
            ],
        )
        .expect_ok("kafka-configs --describe brokers");
    assert!(out.contains("num.partitions=1"), "{out}");
}

#[test]
fn create_topics_validate_only_defaults_and_errors() {
    let broker = Broker::start(&["num.partitions=3", "log.segment.bytes=2097152"]);
    let mut c = broker.client();
    // validate_only: answered like a create, nothing created.
    let req = CreateTopicsRequest::default()
        .with_topics(vec![new_topic(
            "v",
            -1,
            -1,
            &[("cleanup.policy", "compact")],
        )])
        .with_validate_only(true)
        .with_timeout_ms(5000);
    let resp = c.send(&req, 7);
    let r = &resp.topics[0];
    assert_eq!(r.error_code, NONE, "{r:?}");
    assert_eq!(r.num_partitions, 3);
    assert_eq!(r.replication_factor, 1);
    assert!(partition_dirs(&broker, "v").is_empty());
    let md = c.send(
        &MetadataRequest::default()
            .with_topics(None)
            .with_allow_auto_topic_creation(false),
        12,
    );
    assert!(md.topics.is_empty(), "{md:?}");

    // A real create: -1 partitions → num.partitions, configs echoed with sources (v5+), id (v7).
    let req = CreateTopicsRequest::default()
        .with_topics(vec![
            new_topic("t", -1, -1, &[("cleanup.policy", "compact")]),
            new_topic("rf2", 1, 2, &[]),
            new_topic("rf0", 1, 0, &[]),
            new_topic("p0", 0, 1, &[]),
            new_topic("badcfg", 1, 1, &[("no.such.config", "1")]),
            new_topic("badval", 1, 1, &[("retention.ms", "soon")]),
            new_topic("bad/name", 1, 1, &[]),
            new_topic("dup", 1, 1, &[]),
            new_topic("dup", 1, 1, &[]),
        ])
        .with_timeout_ms(5000);
    let resp = c.send(&req, 7);
    let codes: Vec<(String, i16)> = resp
        .topics
        .iter()
        .map(|t| (t.name.to_string(), t.error_code))
        .collect();
    assert_eq!(
        codes,
        vec![
            ("t".to_string(), NONE),
            ("rf2".to_string(), INVALID_REPLICATION_FACTOR),
            ("rf0".to_string(), INVALID_REPLICATION_FACTOR),
            ("p0".to_string(), INVALID_PARTITIONS),
            ("badcfg".to_string(), INVALID_CONFIG),
            ("badval".to_string(), INVALID_CONFIG),
            ("bad/name".to_string(), 17),
            ("dup".to_string(), INVALID_REQUEST),
            ("dup".to_string(), INVALID_REQUEST),
        ]
    );
    let t = &resp.topics[0];
    assert_eq!(t.num_partitions, 3);
    assert!(!t.topic_id.is_nil());
    let configs = t.configs.as_ref().expect("configs in v5+");
    let cp = configs
        .iter()
        .find(|c| c.name.as_str() == "cleanup.policy")
        .unwrap();
    assert_eq!(cp.value.as_deref(), Some("compact"));
    assert_eq!(cp.config_source, 1, "DYNAMIC_TOPIC_CONFIG");
    let rm = configs
        .iter()
        .find(|c| c.name.as_str() == "retention.ms")
        .unwrap();
    assert_eq!(rm.config_source, 5, "DEFAULT_CONFIG");
    // A default changed in server.properties is STATIC_BROKER_CONFIG, with the broker's value.
    let sb = configs
        .iter()
        .find(|c| c.name.as_str() == "segment.bytes")
        .unwrap();
    assert_eq!(sb.value.as_deref(), Some("2097152"));
    assert_eq!(sb.config_source, 4, "STATIC_BROKER_CONFIG");
    assert!(resp.topics[1]
        .error_message
        .as_deref()
        .unwrap()
        .contains("only 1 broker"));
    assert_eq!(partition_dirs(&broker, "t"), vec!["t-0", "t-1", "t-2"]);
    assert!(partition_dirs(&broker, "rf2").is_empty());

    // Exists (also under validate_only); older versions decode too.
    let again = CreateTopicsRequest::default()
        .with_topics(vec![new_topic("t", 1, 1, &[])])
        .with_validate_only(true);
    assert_eq!(c.send(&again, 7).topics[0].error_code, TOPIC_ALREADY_EXISTS);
    assert_eq!(c.send(&again, 2).topics[0].error_code, TOPIC_ALREADY_EXISTS);

    // A manual assignment naming this broker works; another broker does not.
    let mut manual = new_topic("manual", -1, -1, &[]);
    manual.assignments = (0..2)
        .map(|i| {
            create_topics_request::CreatableReplicaAssignment::default()
                .with_partition_index(i)
                .with_broker_ids(vec![BrokerId(1)])
        })
        .collect();
    let mut other = new_topic("other", -1, -1, &[]);
    other.assignments = vec![create_topics_request::CreatableReplicaAssignment::default()
        .with_partition_index(0)
        .with_broker_ids(vec![BrokerId(7)])];
    let resp = c.send(
        &CreateTopicsRequest::default().with_topics(vec![manual, other]),
        5,
    );
    assert_eq!(resp.topics[0].error_code, NONE);
    assert_eq!(resp.topics[0].num_partitions, 2);
    assert_eq!(resp.topics[1].error_code, INVALID_REPLICA_ASSIGNMENT);
}

#[test]
fn delete_topics_by_name_and_by_id() {
    let broker = Broker::start(&[]);
    let mut c = broker.client();
    let resp = c.send(
        &CreateTopicsRequest::default().with_topics(vec![
            new_topic("by-name", 2, 1, &[]),
            new_topic("by-id", 2, 1, &[]),
        ]),
        7,
    );
    let id = resp.topics[1].topic_id;
    assert!(!id.is_nil());
    // v6: by id and by name, plus an unknown id and an unknown name.
    let resp = c.send(
        &DeleteTopicsRequest::default().with_topics(vec![
            DeleteTopicState::default().with_topic_id(id),
            DeleteTopicState::default().with_name(Some(topic_name("by-name"))),
            DeleteTopicState::default().with_topic_id(uuid::Uuid::from_u128(42)),
            DeleteTopicState::default().with_name(Some(topic_name("nope"))),
        ]),
        6,
    );
    let got: Vec<_> = resp
        .responses
        .iter()
        .map(|r| (r.name.as_ref().map(|n| n.to_string()), r.error_code))
        .collect();
    assert_eq!(
        got,
        vec![
            (Some("by-id".to_string()), NONE),
            (Some("by-name".to_string()), NONE),
            (None, UNKNOWN_TOPIC_ID),
            (Some("nope".to_string()), UNKNOWN_TOPIC_OR_PARTITION),
        ]
    );
    assert_eq!(resp.responses[0].topic_id, id);
    assert!(partition_dirs(&broker, "by-id").is_empty());
    assert!(partition_dirs(&broker, "by-name").is_empty());
    // v1: names only.
    c.send(
        &CreateTopicsRequest::default().with_topics(vec![new_topic("old", 1, 1, &[])]),
        2,
    );
    let resp = c.send(
        &DeleteTopicsRequest::default().with_topic_names(vec![topic_name("old")]),
        1,
    );
    assert_eq!(resp.responses[0].error_code, NONE);
    assert!(partition_dirs(&broker, "old").is_empty());
}

#[test]
fn create_partitions_validate_only_and_errors() {
    let broker = Broker::start(&[]);
    let mut c = broker.client();
    c.send(
        &CreateTopicsRequest::default().with_topics(vec![new_topic("g", 2, 1, &[])]),
        7,
    );
    let grow = |name: &str, count: i32| {
        CreatePartitionsTopic::default()
            .with_name(topic_name(name))
            .with_count(count)
            .with_assignments(None)
    };
    let resp = c.send(
        &CreatePartitionsRequest::default()
            .with_topics(vec![grow("g", 4)])
            .with_validate_only(true),
        3,
    );
    assert_eq!(resp.results[0].error_code, NONE);
    assert_eq!(
        partition_dirs(&broker, "g").len(),
        2,
        "validate_only changes nothing"
    );
    let resp = c.send(
        &CreatePartitionsRequest::default().with_topics(vec![
            grow("g", 1),
            grow("nope", 3),
            grow("g", 2).with_name(topic_name("g2")),
        ]),
        3,
    );
    assert_eq!(resp.results[0].error_code, INVALID_PARTITIONS);
    assert_eq!(resp.results[1].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(resp.results[2].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    let resp = c.send(
        &CreatePartitionsRequest::default().with_topics(vec![grow("g", 2)]),
        0,
    );
    assert_eq!(resp.results[0].error_code, INVALID_PARTITIONS);
    // Wrong assignment count / broker.
    let resp = c.send(
        &CreatePartitionsRequest::default().with_topics(vec![grow("g", 4).with_assignments(Some(
            vec![CreatePartitionsAssignment::default().with_broker_ids(vec![BrokerId(1)])],
        ))]),
        3,
    );
    assert_eq!(resp.results[0].error_code, INVALID_REPLICA_ASSIGNMENT);
    let resp = c.send(
        &CreatePartitionsRequest::default().with_topics(vec![grow("g", 4)]),
        3,
    );
    assert_eq!(resp.results[0].error_code, NONE);
    assert_eq!(
        partition_dirs(&broker, "g"),
        vec!["g-0", "g-1", "g-2", "g-3"]
    );
}

fn describe_topic_configs(
    c: &mut admin_support::Client,
    topic: &str,
) -> BTreeMap<String, (String, i8)> {
    let resp = c.send(
        &DescribeConfigsRequest::default()
            .with_resources(vec![DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s(topic))
                .with_configuration_keys(None)])
            .with_include_synonyms(true)
            .with_include_documentation(true),
        4,
    );
    let r = &resp.results[0];
    assert_eq!(r.error_code, NONE, "{r:?}");
    r.configs
        .iter()
        .map(|e| {
            (
                e.name.to_string(),
                (
                    e.value.as_deref().unwrap_or("").to_string(),
                    e.config_source,
                ),
            )
        })
        .collect()
}

#[test]
fn alter_and_incremental_alter_configs() {
    let broker = Broker::start(&[]);
    let mut c = broker.client();
    c.send(
        &CreateTopicsRequest::default().with_topics(vec![new_topic(
            "a",
            1,
            1,
            &[("retention.ms", "5000"), ("flush.messages", "1")],
        )]),
        7,
    );
    let inc = |configs: Vec<(&str, i8, Option<&str>)>, validate_only: bool| {
        IncrementalAlterConfigsRequest::default()
            .with_resources(vec![IncResource::default()
                .with_resource_type(2)
                .with_resource_name(s("a"))
                .with_configs(
                    configs
                        .into_iter()
                        .map(|(k, op, v)| {
                            IncConfig::default()
                                .with_name(s(k))
                                .with_config_operation(op)
                                .with_value(v.map(s))
                        })
                        .collect(),
                )])
            .with_validate_only(validate_only)
    };
    // SET + APPEND (from the default "delete"), validate_only first: nothing changes.
    let r = c.send(
        &inc(
            vec![
                ("segment.ms", 0, Some("60000")),
                ("cleanup.policy", 2, Some("compact")),
            ],
            true,
        ),
        1,
    );
    assert_eq!(r.responses[0].error_code, NONE);
    assert_eq!(
        describe_topic_configs(&mut c, "a")["segment.ms"],
        ("604800000".to_string(), 5),
        "validate_only changes nothing"
    );
    let r = c.send(
        &inc(
            vec![
                ("segment.ms", 0, Some("60000")),
                ("cleanup.policy", 2, Some("compact")),
            ],
            false,
        ),
        1,
    );
    assert_eq!(r.responses[0].error_code, NONE);
    let d = describe_topic_configs(&mut c, "a");
    assert_eq!(d["segment.ms"], ("60000".to_string(), 1));
    assert_eq!(d["cleanup.policy"], ("delete,compact".to_string(), 1));
    assert_eq!(d["retention.ms"], ("5000".to_string(), 1));
    assert_eq!(d["segment.bytes"], ("1073741824".to_string(), 5));
    // SUBTRACT and DELETE.
    let r = c.send(
        &inc(
            vec![
                ("cleanup.policy", 3, Some("delete")),
                ("retention.ms", 1, None),
            ],
            false,
        ),
        0,
    );
    assert_eq!(r.responses[0].error_code, NONE);
    let d = describe_topic_configs(&mut c, "a");
    assert_eq!(d["cleanup.policy"], ("compact".to_string(), 1));
    assert_eq!(d["retention.ms"], ("604800000".to_string(), 5));
    // Errors: APPEND on a non-list, bad value, unknown key, duplicate key, unknown topic.
    for (configs, code) in [
        (vec![("retention.ms", 2, Some("1"))], INVALID_CONFIG),
        (vec![("retention.ms", 0, Some("x"))], INVALID_CONFIG),
        (vec![("no.such", 0, Some("1"))], INVALID_CONFIG),
        (
            vec![("retention.ms", 0, Some("1")), ("retention.ms", 1, None)],
            INVALID_REQUEST,
        ),
    ] {
        let r = c.send(&inc(configs.clone(), false), 1);
        assert_eq!(r.responses[0].error_code, code, "{configs:?}");
    }
    let mut unknown = inc(vec![("retention.ms", 0, Some("1"))], false);
    unknown.resources[0].resource_name = s("nope");
    assert_eq!(
        c.send(&unknown, 1).responses[0].error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );

    // AlterConfigs replaces the whole set: only retention.bytes is left.
    let alter =
        AlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("a"))
            .with_configs(vec![AlterableConfig::default()
                .with_name(s("retention.bytes"))
                .with_value(Some(s("1000000")))])]);
    assert_eq!(c.send(&alter, 2).responses[0].error_code, NONE);
    let d = describe_topic_configs(&mut c, "a");
    let dynamic: Vec<_> = d
        .iter()
        .filter(|(_, v)| v.1 == 1)
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(dynamic, vec!["retention.bytes"]);
    // Broker configs are static.
    let broker_alter =
        AlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(s("1"))
            .with_configs(vec![AlterableConfig::default()
                .with_name(s("num.partitions"))
                .with_value(Some(s("3")))])]);
    assert_eq!(
        c.send(&broker_alter, 0).responses[0].error_code,
        INVALID_REQUEST
    );

    // DescribeConfigs: selected keys, broker resource, unknown topic.
    let resp = c.send(
        &DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("a"))
                .with_configuration_keys(Some(vec![s("retention.bytes"), s("segment.bytes")])),
            DescribeConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(s("1"))
                .with_configuration_keys(None),
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("nope"))
                .with_configuration_keys(None),
        ]),
        1,
    );
    assert_eq!(resp.results[0].configs.len(), 2);
    assert!(resp.results[1]
        .configs
        .iter()
        .any(|e| e.name.as_str() == "num.partitions" && e.read_only));
    assert_eq!(resp.results[2].error_code, UNKNOWN_TOPIC_OR_PARTITION);
}

#[test]
fn describe_cluster_and_paged_describe_topic_partitions() {
    let broker = Broker::start(&[]);
    let mut c = broker.client();
    let resp = c.send(&DescribeClusterRequest::default(), 1);
    assert_eq!(resp.error_code, NONE);
    assert_eq!(resp.brokers.len(), 1);
    assert_eq!(resp.brokers[0].port, broker.port as i32);
    assert_eq!(resp.controller_id, BrokerId(1));
    assert!(!resp.cluster_id.is_empty());
    c.send(
        &CreateTopicsRequest::default()
            .with_topics(vec![new_topic("x", 3, 1, &[]), new_topic("y", 2, 1, &[])]),
        7,
    );
    // Two partitions a page: x0 x1 | x2 y0 | y1.
    let mut cursor = None;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let resp = c.send(
            &DescribeTopicPartitionsRequest::default()
                .with_response_partition_limit(2)
                .with_cursor(cursor.take()),
            0,
        );
        pages += 1;
        for t in &resp.topics {
            assert_eq!(t.error_code, NONE);
            for p in &t.partitions {
                seen.push(format!(
                    "{}{}",
                    t.name.as_ref().unwrap().as_str(),
                    p.partition_index
                ));
            }
        }
        match resp.next_cursor {
            Some(n) => {
                cursor = Some(
                    Cursor::default()
                        .with_topic_name(n.topic_name)
                        .with_partition_index(n.partition_index),
                )
            }
            None => break,
        }
        assert!(pages < 10);
    }
    assert_eq!(seen, vec!["x0", "x1", "x2", "y0", "y1"]);
    assert_eq!(pages, 3);
    // Named topics, one unknown.
    let resp = c.send(
        &DescribeTopicPartitionsRequest::default()
            .with_topics(vec![
                TopicRequest::default().with_name(topic_name("y")),
                TopicRequest::default().with_name(topic_name("nope")),
            ])
            .with_response_partition_limit(100),
        0,
    );
    let got: Vec<_> = resp
        .topics
        .iter()
        .map(|t| {
            (
                t.name.as_ref().unwrap().to_string(),
                t.error_code,
                t.partitions.len(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("nope".to_string(), UNKNOWN_TOPIC_OR_PARTITION, 0),
            ("y".to_string(), NONE, 2)
        ]
    );
}

#[test]
fn delete_records_moves_the_log_start_offset() {
    let mut broker = Broker::start(&[]);
    let mut c = broker.client();
    let resp = c.send(
        &CreateTopicsRequest::default().with_topics(vec![new_topic(
            "dr",
            1,
            1,
            &[("segment.bytes", "4096")],
        )]),
        7,
    );
    assert_eq!(resp.topics[0].error_code, NONE);
    drop(c);
    broker.stop();
    // Fill the partition with the engine while the broker is down (this branch has no Produce).
    let data = broker.data_dir();
    let config = LogConfig {
        segment_bytes: 4096,
        ..LogConfig::default()
    };
    let end = runtime::block_on(async {
        let storage = ShardStorage::new(&data).unwrap();
        let (p, _) = storage.open_partition("dr", 0, config.clone()).unwrap();
        for i in 0..100i64 {
            let mut b = BatchBuilder::new(1_700_000_000_000 + i);
            b.push_record(Some(b"k"), Some(&[7u8; 200]), &[], 1_700_000_000_000 + i);
            p.append(b.build(), AckPoint::Durable).await.unwrap();
        }
        let end = p.log().log_end_offset();
        end
    });
    assert_eq!(end, 100);
    broker.restart(&[]);
    let mut c = broker.client();
    let req = |partitions: Vec<(i32, i64)>| {
        DeleteRecordsRequest::default()
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(topic_name("dr"))
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(p, o)| {
                            DeleteRecordsPartition::default()
                                .with_partition_index(p)
                                .with_offset(o)
                        })
                        .collect(),
                )])
            .with_timeout_ms(5000)
    };
    let segments = || {
        std::fs::read_dir(data.join("dr-0"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".log")
            })
            .count()
    };
    let before = segments();
    assert!(before > 3, "{before} segments");
    let resp = c.send(&req(vec![(0, 50), (1, 10)]), 2);
    let p = &resp.topics[0].partitions;
    assert_eq!((p[0].error_code, p[0].low_watermark), (NONE, 50));
    assert_eq!(p[1].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    assert!(segments() < before, "whole segments below 50 are deleted");
    // Past the high watermark: out of range; lower than the start: unchanged.
    let resp = c.send(&req(vec![(0, 101)]), 0);
    assert_eq!(resp.topics[0].partitions[0].error_code, OFFSET_OUT_OF_RANGE);
    let resp = c.send(&req(vec![(0, 10)]), 1);
    assert_eq!(resp.topics[0].partitions[0].low_watermark, 50);
    // -1: up to the high watermark.
    let resp = c.send(&req(vec![(0, -1)]), 2);
    assert_eq!(
        (
            resp.topics[0].partitions[0].error_code,
            resp.topics[0].partitions[0].low_watermark
        ),
        (NONE, 100)
    );
    drop(c);
    broker.stop();
    // The new start is persisted.
    let start = runtime::block_on(async {
        let storage = ShardStorage::new(&data).unwrap();
        let (p, _) = storage.open_partition("dr", 0, config).unwrap();
        let start = p.log().log_start_offset();
        start
    });
    assert_eq!(start, 100);
}
