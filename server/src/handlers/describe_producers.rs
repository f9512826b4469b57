//! DescribeProducers (key 61): the producers of partitions and their open transactions.
//!
//! Stub of issue 7's skeleton: filled in by the part that owns it.

use super::{Reply, Request};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 0;

pub async fn handle(request: Request) -> Result<Reply, String> {
    Err(format!("{:?} is not served yet", request.key))
}
