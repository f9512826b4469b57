//! Kafka v2 record batch headers: validation without decoding records.
