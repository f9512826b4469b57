//! Keyless records on compacted topics: refused with INVALID_RECORD, as Kafka's
//! `LogValidator.validateKey` refuses them, whatever the codec, for raw requests, librdkafka and
//! the Java client; keyed records and tombstones go through; a policy changed by
//! IncrementalAlterConfigs applies to the next produce.
//!
//! Each test starts its own corelog (free loopback port, throwaway data dir). With
//! `CORELOG_INTEROP_BOOTSTRAP=HOST:PORT` they run against that broker instead, which is how the
//! expectations here were checked against Apache Kafka 4.4 (`scripts/kafka-reference.sh start`).

mod common;
mod interop_support;

use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use corelog_engine::batch::codec::compress;
use corelog_engine::batch::{BatchBuilder, Compression};
use corelog_engine::partition::now_ms;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use interop_support::{repo_root, unique_topic, Broker};

/// How long any one client operation may take before the test fails.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Produce v9: flexible, with `record_errors` (v8+).
const PRODUCE_V9: i16 = 9;
/// Produce v7: the last version without `record_errors`.
const PRODUCE_V7: i16 = 7;

const NONE: i16 = 0;
const INVALID_RECORD: i16 = 87;

/// The codecs of v2 batches, and librdkafka's name for each.
const CODECS: [(Compression, &str); 5] = [
    (Compression::None, "none"),
    (Compression::Gzip, "gzip"),
    (Compression::Snappy, "snappy"),
    (Compression::Lz4, "lz4"),
    (Compression::Zstd, "zstd"),
];

/// Kafka's per-record message for a keyless record on a compacted topic.
fn keyless_message(topic: &str, partition: i32) -> String {
    format!(
        "Compacted topic cannot accept message without key in topic partition {topic}-{partition}"
    )
}

/// Creates `topic` with `configs` and waits until its partitions are led.
fn create_topic(bootstrap: &str, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("rdkafka admin client");
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        new = new.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let results = futures_executor::block_on(admin.create_topics([&new], &opts))
        .unwrap_or_else(|e| panic!("CreateTopics {topic}: {e}"));
    for r in results {
        r.unwrap_or_else(|(name, code)| panic!("CreateTopics {name}: {code:?}"));
    }
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let md = admin
            .inner()
            .fetch_metadata(Some(topic), Duration::from_secs(5));
        let ready = md.ok().is_some_and(|md| {
            md.topics().iter().any(|t| {
                t.name() == topic
                    && t.error().is_none()
                    && t.partitions().len() == partitions as usize
                    && t.partitions().iter().all(|p| p.leader() >= 0)
            })
        });
        if ready {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{topic} not led within {TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One raw client connection to the broker under test.
fn raw_client(broker: &Broker) -> common::Client {
    common::Client::connect(broker.addr().port())
}

/// An uncompressed batch of records with these keys (values are distinct).
fn batch(keys: &[Option<&[u8]>]) -> Vec<u8> {
    let ts = now_ms();
    let mut b = BatchBuilder::new(ts);
    for (i, key) in keys.iter().enumerate() {
        b.push_record(*key, Some(format!("value-{i}").as_bytes()), &[], ts);
    }
    b.build()
}

/// `uncompressed` rewritten with its records compressed by `codec`: the attributes name the
/// codec, the length and CRC-32C are those of the new body.
fn compressed(uncompressed: &[u8], codec: Compression) -> Vec<u8> {
    const RECORDS_AT: usize = 61;
    const LENGTH_AT: usize = 8;
    const CRC_AT: usize = 17;
    const ATTRIBUTES_AT: usize = 21;
    let mut out = uncompressed[..RECORDS_AT].to_vec();
    out.extend_from_slice(&compress(codec, &uncompressed[RECORDS_AT..]));
    let length = (out.len() - 12) as i32;
    out[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&length.to_be_bytes());
    let attributes = i16::from_be_bytes([out[ATTRIBUTES_AT], out[ATTRIBUTES_AT + 1]]);
    let attributes = (attributes & !0x07) | i16::from(codec.id());
    out[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&out[ATTRIBUTES_AT..]);
    out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    out
}

/// Produces one batch (acks=-1) to partition 0 of `topic` and returns the partition's answer.
fn produce_raw(
    c: &mut common::Client,
    version: i16,
    topic: &str,
    records: Vec<u8>,
) -> PartitionProduceResponse {
    let mut p = PartitionProduceData::default();
    p.index = 0;
    p.records = Some(Bytes::from(records));
    let mut t = TopicProduceData::default();
    t.name = TopicName(StrBytes::from_string(topic.to_string()));
    t.partition_data = vec![p];
    let mut r = ProduceRequest::default();
    r.acks = -1;
    r.timeout_ms = 30_000;
    r.topic_data = vec![t];
    let response = c.call(version, &r);
    assert_eq!(response.responses.len(), 1);
    assert_eq!(response.responses[0].partition_responses.len(), 1);
    response.responses[0].partition_responses[0].clone()
}

/// Asserts Kafka's refusal of a batch whose records at `keyless` have no key.
fn assert_refused(r: &PartitionProduceResponse, version: i16, topic: &str, keyless: &[i32]) {
    let per_record = keyless_message(topic, 0);
    let shown: Vec<String> = keyless
        .iter()
        .take(3)
        .map(|i| format!("RecordError(batchIndex={i}, message='{per_record}')"))
        .collect();
    let expected = format!(
        "One or more records have been rejected due to {} record errors in total, and only \
         showing the first three errors at most: [{}]",
        keyless.len(),
        shown.join(", ")
    );
    assert_eq!(r.error_code, INVALID_RECORD, "v{version}: {r:?}");
    assert_eq!(r.base_offset, -1, "v{version}");
    assert_eq!(
        r.log_start_offset, 0,
        "v{version}: the partition's log start offset"
    );
    // error_message and record_errors exist from v8 on.
    let message = (version >= 8).then_some(expected.as_str());
    assert_eq!(r.error_message.as_deref(), message, "v{version}");
    let errors: Vec<(i32, Option<&str>)> = r
        .record_errors
        .iter()
        .map(|e| (e.batch_index, e.batch_index_error_message.as_deref()))
        .collect();
    if version >= 8 {
        let want: Vec<(i32, Option<&str>)> = keyless
            .iter()
            .map(|&i| (i, Some(per_record.as_str())))
            .collect();
        assert_eq!(errors, want, "v{version} record_errors");
    } else {
        assert!(errors.is_empty(), "v{version} has no record_errors");
    }
}

/// Raw Produce requests: which records are named, the message, v7 against v9, every codec, and
/// that nothing of a refused batch reaches the log (the first accepted batch gets offset 0).
#[test]
fn keyless_records_are_refused_with_kafkas_record_errors() {
    let broker = Broker::start();
    let topic = unique_topic("compacted-raw");
    create_topic(
        &broker.bootstrap(),
        &topic,
        1,
        &[("cleanup.policy", "compact")],
    );
    let mut c = raw_client(&broker);
    let k: &[u8] = b"k";

    // Mixed keys: only the keyless records are named, all of them in record_errors, three in
    // the message.
    let keys = [Some(k), None, Some(k), None, None, None];
    for version in [PRODUCE_V9, PRODUCE_V7] {
        let r = produce_raw(&mut c, version, &topic, batch(&keys));
        assert_refused(&r, version, &topic, &[1, 3, 4, 5]);
    }
    // Every codec: the records are looked at after decompression. An empty key is a key.
    for (codec, name) in CODECS {
        let refused = compressed(&batch(&[None, Some(k), None]), codec);
        let r = produce_raw(&mut c, PRODUCE_V9, &topic, refused);
        assert_refused(&r, PRODUCE_V9, &topic, &[0, 2]);
        let accepted = compressed(&batch(&[Some(k), Some(b"")]), codec);
        let r = produce_raw(&mut c, PRODUCE_V9, &topic, accepted);
        assert_eq!(r.error_code, NONE, "{name}: {r:?}");
        let expected_base = 2 * CODECS.iter().position(|(c, _)| *c == codec).unwrap() as i64;
        assert_eq!(
            r.base_offset, expected_base,
            "{name}: refused batches took no offsets"
        );
    }

    // The same keyless batch is accepted by a topic with the default policy.
    let plain = unique_topic("plain-raw");
    create_topic(&broker.bootstrap(), &plain, 1, &[]);
    let r = produce_raw(&mut c, PRODUCE_V9, &plain, batch(&keys));
    assert_eq!((r.error_code, r.base_offset), (NONE, 0), "{r:?}");
    assert!(r.record_errors.is_empty());
    broker.stop();
}

/// IncrementalAlterConfigs SET of `cleanup.policy` on `topic`.
fn set_cleanup_policy(c: &mut common::Client, topic: &str, policy: &str) {
    let mut config = AlterableConfig::default();
    config.name = StrBytes::from_static_str("cleanup.policy");
    config.config_operation = 0; // SET
    config.value = Some(StrBytes::from_string(policy.to_string()));
    let mut resource = AlterConfigsResource::default();
    resource.resource_type = 2; // TOPIC
    resource.resource_name = StrBytes::from_string(topic.to_string());
    resource.configs = vec![config];
    let mut request = IncrementalAlterConfigsRequest::default();
    request.resources = vec![resource];
    let response = c.call(1, &request);
    assert_eq!(response.responses.len(), 1);
    assert_eq!(
        response.responses[0].error_code, NONE,
        "set cleanup.policy={policy}: {:?}",
        response.responses[0].error_message
    );
}

/// A change of `cleanup.policy` applies to the very next produce, both ways.
#[test]
fn a_policy_change_applies_to_the_next_produce() {
    let broker = Broker::start();
    let topic = unique_topic("compacted-alter");
    create_topic(
        &broker.bootstrap(),
        &topic,
        1,
        &[("cleanup.policy", "compact")],
    );
    let mut c = raw_client(&broker);
    let keyless = || batch(&[None, None]);

    assert_refused(
        &produce_raw(&mut c, PRODUCE_V9, &topic, keyless()),
        9,
        &topic,
        &[0, 1],
    );
    set_cleanup_policy(&mut c, &topic, "delete");
    let r = produce_raw(&mut c, PRODUCE_V9, &topic, keyless());
    assert_eq!(
        (r.error_code, r.base_offset),
        (NONE, 0),
        "after delete: {r:?}"
    );
    set_cleanup_policy(&mut c, &topic, "compact,delete");
    assert_refused(
        &produce_raw(&mut c, PRODUCE_V9, &topic, keyless()),
        9,
        &topic,
        &[0, 1],
    );
    broker.stop();
}

/// Collects librdkafka's delivery reports: (record index, Ok(offset) or the error code).
#[derive(Default)]
struct Reports(Mutex<Vec<(usize, Result<i64, RDKafkaErrorCode>)>>);

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = Box<usize>;

    fn delivery(&self, result: &DeliveryResult<'_>, index: Box<usize>) {
        let r = match result {
            Ok(m) => Ok(m.offset()),
            Err((KafkaError::MessageProduction(code), _)) => Err(*code),
            Err((e, _)) => panic!("record {index}: unexpected delivery error {e}"),
        };
        self.0.lock().unwrap().push((*index, r));
    }
}

/// A key and a value, either possibly null.
type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Produces `records` to partition 0 of `topic` with librdkafka and `compression.type=codec`;
/// returns each record's delivery report, in record order.
fn rd_produce(
    bootstrap: &str,
    topic: &str,
    codec: &str,
    records: &[KeyValue],
) -> Vec<Result<i64, RDKafkaErrorCode>> {
    let producer: BaseProducer<Reports> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("compression.type", codec)
        .set("linger.ms", "20")
        // Far above how long a refusal takes: a retried error would show as a timeout.
        .set("message.timeout.ms", "20000")
        .create_with_context(Reports::default())
        .expect("rdkafka producer");
    for (i, (key, value)) in records.iter().enumerate() {
        let mut record =
            BaseRecord::<[u8], [u8], Box<usize>>::with_opaque_to(topic, Box::new(i)).partition(0);
        if let Some(k) = key {
            record = record.key(&k[..]);
        }
        if let Some(v) = value {
            record = record.payload(&v[..]);
        }
        producer
            .send(record)
            .unwrap_or_else(|(e, _)| panic!("send {i}: {e}"));
    }
    producer.flush(TIMEOUT).expect("flush");
    let mut reports = std::mem::take(&mut *producer.context().0.lock().unwrap());
    reports.sort_by_key(|(i, _)| *i);
    assert_eq!(reports.len(), records.len(), "one report per record");
    reports.into_iter().map(|(_, r)| r).collect()
}

/// Reads partition 0 of `topic` from the start up to `count` records: (offset, key, value).
fn rd_read(bootstrap: &str, topic: &str, count: usize) -> Vec<(i64, KeyValue)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique_topic("compacted-reader"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "error")
        .create()
        .expect("rdkafka consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + TIMEOUT;
    let mut out = Vec::new();
    while out.len() < count {
        assert!(Instant::now() < deadline, "read {} of {count}", out.len());
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.expect("consume");
            out.push((
                m.offset(),
                (m.key().map(<[u8]>::to_vec), m.payload().map(<[u8]>::to_vec)),
            ));
        }
    }
    out
}

/// librdkafka with every codec: keyless records fail at once with INVALID_RECORD (permanent,
/// not retried into a timeout); keyed records and tombstones are stored and read back.
#[test]
fn librdkafka_keyless_records_fail_permanently_with_every_codec() {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    for (_, codec) in CODECS {
        let topic = unique_topic(&format!("compacted-rd-{codec}"));
        create_topic(&bootstrap, &topic, 1, &[("cleanup.policy", "compact")]);
        let keyless: Vec<KeyValue> = (0..20)
            .map(|i| (None, Some(format!("keyless {i} ").repeat(10).into_bytes())))
            .collect();
        let started = Instant::now();
        let reports = rd_produce(&bootstrap, &topic, codec, &keyless);
        for (i, r) in reports.iter().enumerate() {
            assert_eq!(
                *r,
                Err(RDKafkaErrorCode::InvalidRecord),
                "{codec}: record {i}"
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{codec}: the refusal took {:?}, as if retried",
            started.elapsed()
        );

        // Keyed records, overwrites and tombstones (a key with a null value).
        let keyed: Vec<KeyValue> = (0..30)
            .map(|i| {
                let key = Some(format!("key-{}", i % 7).into_bytes());
                let value = (i % 5 != 4).then(|| format!("value {i} ").repeat(10).into_bytes());
                (key, value)
            })
            .collect();
        let reports = rd_produce(&bootstrap, &topic, codec, &keyed);
        let offsets: Vec<i64> = reports
            .into_iter()
            .map(|r| r.unwrap_or_else(|e| panic!("{codec}: keyed record refused: {e:?}")))
            .collect();
        assert_eq!(offsets, (0..30).collect::<Vec<i64>>(), "{codec}: offsets");
        let read = rd_read(&bootstrap, &topic, keyed.len());
        let expected: Vec<(i64, KeyValue)> = (0..).zip(keyed).collect();
        assert_eq!(read, expected, "{codec}: read back");
    }
    broker.stop();
}

/// Kafka's Java client (through its console producer): keyless records to a compacted topic fail
/// with InvalidRecordException carrying the per-record message; keyed ones are written.
#[test]
fn java_console_producer_keyless_records_fail() {
    let broker = Broker::start();
    let topic = unique_topic("compacted-java");
    create_topic(
        &broker.bootstrap(),
        &topic,
        1,
        &[("cleanup.policy", "compact")],
    );
    let console_producer = |stdin: &[u8], extra: &[&str]| {
        let mut child = Command::new("bash")
            .arg(repo_root().join("scripts/kafka-tool.sh"))
            .args(["ConsoleProducer", "--bootstrap-server", &broker.bootstrap()])
            .args(["--topic", &topic])
            .args(extra)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run scripts/kafka-tool.sh (Java and the Kafka jars from install-interop.sh)");
        use std::io::Write;
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let out = child.wait_with_output().expect("console producer");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status, text)
    };
    let (_, text) = console_producer(b"one\ntwo\n", &[]);
    let refusal = format!(
        "org.apache.kafka.common.InvalidRecordException: {}",
        keyless_message(&topic, 0)
    );
    assert_eq!(
        text.matches(&refusal).count(),
        2,
        "each keyless record is refused by name:\n{text}"
    );
    // Keyed lines go through, and the refused ones took no offsets.
    let (status, text) = console_producer(
        b"k1:v1\nk2:v2\n",
        &[
            "--reader-property",
            "parse.key=true",
            "--reader-property",
            "key.separator=:",
        ],
    );
    assert!(status.success(), "keyed produce: {status}\n{text}");
    assert!(!text.contains("ERROR"), "keyed produce:\n{text}");
    let read = rd_read(&broker.bootstrap(), &topic, 2);
    assert_eq!(
        read,
        vec![
            (0, (Some(b"k1".to_vec()), Some(b"v1".to_vec()))),
            (1, (Some(b"k2".to_vec()), Some(b"v2".to_vec()))),
        ]
    );
    broker.stop();
}
