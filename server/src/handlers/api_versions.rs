//! ApiVersions (key 18): which APIs and versions this broker speaks.
//!
//! Advertises exactly what [`super::supported`] lists. A request at a version the broker does not
//! know is answered anyway, in v0 format with UNSUPPORTED_VERSION and the key list (KIP-511), so
//! that the client can retry with a version both sides speak.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use super::{encode, error, supported, Reply, Request};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 3;

pub async fn handle(mut request: Request) -> Result<Reply, String> {
    let versions: Vec<ApiVersion> = supported()
        .into_iter()
        .map(|(key, min, max)| {
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect();
    if !(MIN_VERSION..=MAX_VERSION).contains(&request.version) {
        let response = ApiVersionsResponse::default()
            .with_error_code(error::UNSUPPORTED_VERSION)
            .with_api_keys(versions);
        return encode(&response, 0);
    }
    let _body: ApiVersionsRequest = request.decode()?;
    let response = ApiVersionsResponse::default()
        .with_error_code(error::NONE)
        .with_api_keys(versions);
    encode(&response, request.version)
}
