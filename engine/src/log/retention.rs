//! Retention: rolling the active segment once it is `segment.ms` old, and deleting whole
//! segments by `retention.ms` and `retention.bytes` under the delete policy.
