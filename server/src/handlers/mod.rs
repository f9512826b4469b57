//! One file per Kafka API; this module holds what they share: the request and reply types, the
//! dispatch table and the versions advertised in ApiVersions.
//!
//! A handler decodes its own request body (`kafka-protocol`), does the work (fanning partitions
//! out to their owner shards), and returns a [`Reply`]. An `Err` closes the connection: that is
//! what Kafka does with a request it cannot parse.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable};

use corelog_engine::log::FileRange;

pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod alter_configs;
pub mod api_versions;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_producers;
pub mod describe_topic_partitions;
pub mod describe_transactions;
pub mod end_txn;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod produce;
pub mod sync_group;
pub mod txn_offset_commit;

/// A decoded request header and the still-encoded body.
pub struct Request {
    pub key: ApiKey,
    pub version: i16,
    pub body: Bytes,
    /// The request header's client id ("" when null).
    pub client_id: String,
    /// The peer's address as Kafka shows it in group descriptions ("/127.0.0.1").
    pub client_host: std::rc::Rc<str>,
}

impl Request {
    /// Decodes the body as `T` at the request's version.
    pub fn decode<T: Decodable>(&mut self) -> Result<T, String> {
        T::decode(&mut self.body, self.version)
            .map_err(|e| format!("{:?} v{}: {e}", self.key, self.version))
    }
}

/// A piece of a response body: bytes, or a range of a segment file sent with splice.
pub enum Part {
    Bytes(Bytes),
    File(FileRange),
}

impl Part {
    pub fn len(&self) -> usize {
        match self {
            Part::Bytes(b) => b.len(),
            Part::File(r) => r.len as usize,
        }
    }
}

/// What a handler answers.
pub enum Reply {
    /// No response (Produce with acks=0).
    None,
    /// An encoded response body.
    Body(BytesMut),
    /// A response body made of bytes and zero-copy file ranges.
    Parts(Vec<Part>),
}

/// Encodes a response body at `version`.
pub fn encode<T: Encodable>(response: &T, version: i16) -> Result<Reply, String> {
    let mut buf = BytesMut::new();
    response
        .encode(&mut buf, version)
        .map_err(|e| format!("encoding response v{version}: {e}"))?;
    Ok(Reply::Body(buf))
}

/// The APIs this broker speaks and the version range it advertises for each.
pub fn supported() -> Vec<(ApiKey, i16, i16)> {
    vec![
        (
            ApiKey::ApiVersions,
            api_versions::MIN_VERSION,
            api_versions::MAX_VERSION,
        ),
        (
            ApiKey::Metadata,
            metadata::MIN_VERSION,
            metadata::MAX_VERSION,
        ),
        (ApiKey::Produce, produce::MIN_VERSION, produce::MAX_VERSION),
        (
            ApiKey::InitProducerId,
            init_producer_id::MIN_VERSION,
            init_producer_id::MAX_VERSION,
        ),
        (ApiKey::Fetch, fetch::MIN_VERSION, fetch::MAX_VERSION),
        (
            ApiKey::ListOffsets,
            list_offsets::MIN_VERSION,
            list_offsets::MAX_VERSION,
        ),
        (
            ApiKey::CreateTopics,
            create_topics::MIN_VERSION,
            create_topics::MAX_VERSION,
        ),
        (
            ApiKey::DeleteTopics,
            delete_topics::MIN_VERSION,
            delete_topics::MAX_VERSION,
        ),
        (
            ApiKey::DeleteRecords,
            delete_records::MIN_VERSION,
            delete_records::MAX_VERSION,
        ),
        (
            ApiKey::DescribeConfigs,
            describe_configs::MIN_VERSION,
            describe_configs::MAX_VERSION,
        ),
        (
            ApiKey::AlterConfigs,
            alter_configs::MIN_VERSION,
            alter_configs::MAX_VERSION,
        ),
        (
            ApiKey::CreatePartitions,
            create_partitions::MIN_VERSION,
            create_partitions::MAX_VERSION,
        ),
        (
            ApiKey::IncrementalAlterConfigs,
            incremental_alter_configs::MIN_VERSION,
            incremental_alter_configs::MAX_VERSION,
        ),
        (
            ApiKey::DescribeCluster,
            describe_cluster::MIN_VERSION,
            describe_cluster::MAX_VERSION,
        ),
        (
            ApiKey::DescribeTopicPartitions,
            describe_topic_partitions::MIN_VERSION,
            describe_topic_partitions::MAX_VERSION,
        ),
        (
            ApiKey::FindCoordinator,
            find_coordinator::MIN_VERSION,
            find_coordinator::MAX_VERSION,
        ),
        (
            ApiKey::JoinGroup,
            join_group::MIN_VERSION,
            join_group::MAX_VERSION,
        ),
        (
            ApiKey::SyncGroup,
            sync_group::MIN_VERSION,
            sync_group::MAX_VERSION,
        ),
        (
            ApiKey::Heartbeat,
            heartbeat::MIN_VERSION,
            heartbeat::MAX_VERSION,
        ),
        (
            ApiKey::LeaveGroup,
            leave_group::MIN_VERSION,
            leave_group::MAX_VERSION,
        ),
        (
            ApiKey::OffsetCommit,
            offset_commit::MIN_VERSION,
            offset_commit::MAX_VERSION,
        ),
        (
            ApiKey::OffsetFetch,
            offset_fetch::MIN_VERSION,
            offset_fetch::MAX_VERSION,
        ),
        (
            ApiKey::DescribeGroups,
            describe_groups::MIN_VERSION,
            describe_groups::MAX_VERSION,
        ),
        (
            ApiKey::ListGroups,
            list_groups::MIN_VERSION,
            list_groups::MAX_VERSION,
        ),
        (
            ApiKey::DeleteGroups,
            delete_groups::MIN_VERSION,
            delete_groups::MAX_VERSION,
        ),
        (
            ApiKey::OffsetDelete,
            offset_delete::MIN_VERSION,
            offset_delete::MAX_VERSION,
        ),
        (
            ApiKey::AddPartitionsToTxn,
            add_partitions_to_txn::MIN_VERSION,
            add_partitions_to_txn::MAX_VERSION,
        ),
        (
            ApiKey::AddOffsetsToTxn,
            add_offsets_to_txn::MIN_VERSION,
            add_offsets_to_txn::MAX_VERSION,
        ),
        (ApiKey::EndTxn, end_txn::MIN_VERSION, end_txn::MAX_VERSION),
        (
            ApiKey::TxnOffsetCommit,
            txn_offset_commit::MIN_VERSION,
            txn_offset_commit::MAX_VERSION,
        ),
        (
            ApiKey::DescribeProducers,
            describe_producers::MIN_VERSION,
            describe_producers::MAX_VERSION,
        ),
        (
            ApiKey::DescribeTransactions,
            describe_transactions::MIN_VERSION,
            describe_transactions::MAX_VERSION,
        ),
        (
            ApiKey::ListTransactions,
            list_transactions::MIN_VERSION,
            list_transactions::MAX_VERSION,
        ),
    ]
}

/// Whether the response to this request must use response header v0 regardless of the
/// version: ApiVersions always does (KIP-511: a client may not yet know the broker's versions).
pub fn answers_in_v0(key: ApiKey, _version: i16) -> bool {
    key == ApiKey::ApiVersions
}

pub async fn dispatch(request: Request) -> Result<Reply, String> {
    let (key, version) = (request.key, request.version);
    if key != ApiKey::ApiVersions {
        let advertised = supported().into_iter().find(|(k, _, _)| *k == key);
        match advertised {
            Some((_, min, max)) if (min..=max).contains(&version) => {}
            _ => return Err(format!("{key:?} v{version} is not supported")),
        }
    }
    match key {
        ApiKey::ApiVersions => api_versions::handle(request).await,
        ApiKey::Metadata => metadata::handle(request).await,
        ApiKey::Produce => produce::handle(request).await,
        ApiKey::InitProducerId => init_producer_id::handle(request).await,
        ApiKey::Fetch => fetch::handle(request).await,
        ApiKey::ListOffsets => list_offsets::handle(request).await,
        ApiKey::CreateTopics => create_topics::handle(request).await,
        ApiKey::DeleteTopics => delete_topics::handle(request).await,
        ApiKey::DeleteRecords => delete_records::handle(request).await,
        ApiKey::DescribeConfigs => describe_configs::handle(request).await,
        ApiKey::AlterConfigs => alter_configs::handle(request).await,
        ApiKey::CreatePartitions => create_partitions::handle(request).await,
        ApiKey::IncrementalAlterConfigs => incremental_alter_configs::handle(request).await,
        ApiKey::DescribeCluster => describe_cluster::handle(request).await,
        ApiKey::DescribeTopicPartitions => describe_topic_partitions::handle(request).await,
        ApiKey::FindCoordinator => find_coordinator::handle(request).await,
        ApiKey::JoinGroup => join_group::handle(request).await,
        ApiKey::SyncGroup => sync_group::handle(request).await,
        ApiKey::Heartbeat => heartbeat::handle(request).await,
        ApiKey::LeaveGroup => leave_group::handle(request).await,
        ApiKey::OffsetCommit => offset_commit::handle(request).await,
        ApiKey::OffsetFetch => offset_fetch::handle(request).await,
        ApiKey::DescribeGroups => describe_groups::handle(request).await,
        ApiKey::ListGroups => list_groups::handle(request).await,
        ApiKey::DeleteGroups => delete_groups::handle(request).await,
        ApiKey::OffsetDelete => offset_delete::handle(request).await,
        ApiKey::AddPartitionsToTxn => add_partitions_to_txn::handle(request).await,
        ApiKey::AddOffsetsToTxn => add_offsets_to_txn::handle(request).await,
        ApiKey::EndTxn => end_txn::handle(request).await,
        ApiKey::TxnOffsetCommit => txn_offset_commit::handle(request).await,
        ApiKey::DescribeProducers => describe_producers::handle(request).await,
        ApiKey::DescribeTransactions => describe_transactions::handle(request).await,
        ApiKey::ListTransactions => list_transactions::handle(request).await,
        _ => Err(format!("{key:?} is not supported")),
    }
}

/// Kafka error codes used by the handlers.
pub mod error {
    pub const NONE: i16 = 0;
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub const INVALID_PARTITIONS: i16 = 37;
    pub const INVALID_REPLICATION_FACTOR: i16 = 38;
    pub const INVALID_REQUIRED_ACKS: i16 = 21;
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    pub const NOT_ENOUGH_REPLICAS: i16 = 19;
    pub const INVALID_TIMESTAMP: i16 = 32;
    pub const INVALID_CONFIG: i16 = 40;
    pub const INVALID_REQUEST: i16 = 42;
    pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
    pub const UNSUPPORTED_ENDPOINT_TYPE: i16 = 115;
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    pub const INVALID_TXN_STATE: i16 = 48;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
    pub const UNKNOWN_TOPIC_ID: i16 = 100;
    pub const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
    pub const INVALID_RECORD: i16 = 87;
    pub const UNKNOWN_SERVER_ERROR: i16 = -1;
    pub const RECORD_BATCH_TOO_LARGE: i16 = 18;
    pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    pub const INVALID_GROUP_ID: i16 = 24;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const INVALID_SESSION_TIMEOUT: i16 = 26;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const NON_EMPTY_GROUP: i16 = 68;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
    pub const FENCED_INSTANCE_ID: i16 = 82;
    pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
    pub const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
    pub const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
    pub const CONCURRENT_TRANSACTIONS: i16 = 51;
    pub const OPERATION_NOT_ATTEMPTED: i16 = 55;
    pub const PRODUCER_FENCED: i16 = 90;
    pub const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;
    pub const UNSTABLE_OFFSET_COMMIT: i16 = 88;
}
