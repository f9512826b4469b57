//! DescribeCluster (key 60): the cluster id, the controller and the brokers. On one node this
//! broker is all of them. Asking for controller endpoints (v1 `endpoint_type` 2) of a broker is
//! UNSUPPORTED_ENDPOINT_TYPE, as in Kafka.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use super::{encode, error, Reply, Request};
use crate::broker::shard;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 2;

/// Kafka's "authorized operations not requested" marker.
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;
/// Cluster ACL operations allowed without an authorizer: CREATE 5, ALTER 7, DESCRIBE 8,
/// CLUSTER_ACTION 9, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12.
const CLUSTER_OPERATIONS: i32 =
    (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);

pub async fn handle(mut request: Request) -> Result<Reply, String> {
    let body: DescribeClusterRequest = request.decode()?;
    let broker = shard().broker.clone();
    let node = BrokerId(broker.config.node_id);
    let mut response = DescribeClusterResponse::default();
    response.endpoint_type = body.endpoint_type;
    response.cluster_id = StrBytes::from_string(broker.cluster_id.clone());
    response.controller_id = node;
    response.cluster_authorized_operations = if body.include_cluster_authorized_operations {
        CLUSTER_OPERATIONS
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    };
    if request.version >= 1 && body.endpoint_type != 1 {
        response.error_code = error::UNSUPPORTED_ENDPOINT_TYPE;
        response.error_message = Some(StrBytes::from_static_str(
            "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER",
        ));
        response.controller_id = BrokerId(-1);
    } else {
        let b = DescribeClusterBroker::default()
            .with_broker_id(node)
            .with_host(StrBytes::from_string(broker.config.advertised_host.clone()))
            .with_port(broker.config.advertised_port as i32);
        response.brokers = vec![b];
    }
    encode(&response, request.version)
}
