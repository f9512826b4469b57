use super::*;
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;

/// Rewrites the stored CRC so a deliberately malformed batch gets past the checksum and reaches
/// the check under test.
fn fix_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

fn put(buf: &mut [u8], off: usize, bytes: &[u8]) {
    buf[off..off + bytes.len()].copy_from_slice(bytes);
}

fn simple_batch(n: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new(1_700_000_000_000);
    for i in 0..n {
        let v = format!("value-{i}");
        b.push_record(
            Some(b"key"),
            Some(v.as_bytes()),
            &[],
            1_700_000_000_000 + i as i64,
        );
    }
    b.build()
}

#[test]
fn crc32c_is_castagnoli() {
    // The standard check value of CRC-32C; IEEE CRC-32 would give 0xCBF43926.
    assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
}

#[test]
fn builder_produces_known_bytes() {
    let batch = BatchBuilder::new(1000)
        .record(Some(b"k"), Some(b"v"), &[], 1000)
        .build();
    #[rustfmt::skip]
    let mut expected: Vec<u8> = vec![
        0, 0, 0, 0, 0, 0, 0, 0,             // baseOffset 0
        0, 0, 0, 58,                        // batchLength = 70 - 12
        0xff, 0xff, 0xff, 0xff,             // partitionLeaderEpoch -1
        2,                                  // magic
        0, 0, 0, 0,                         // crc (below)
        0, 0,                               // attributes
        0, 0, 0, 0,                         // lastOffsetDelta
        0, 0, 0, 0, 0, 0, 0x03, 0xe8,       // baseTimestamp 1000
        0, 0, 0, 0, 0, 0, 0x03, 0xe8,       // maxTimestamp 1000
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // producerId -1
        0xff, 0xff,                         // producerEpoch -1
        0xff, 0xff, 0xff, 0xff,             // baseSequence -1
        0, 0, 0, 1,                         // recordCount
        // record: length 8 (zigzag 16), attrs, tsDelta 0, offsetDelta 0,
        // key len 1 (zigzag 2) 'k', value len 1 'v', 0 headers
        0x10, 0x00, 0x00, 0x00, 0x02, b'k', 0x02, b'v', 0x00,
    ];
    let crc = crc32c::crc32c(&expected[21..]);
    expected[17..21].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(batch, expected);
    let h = validate_batch(&batch).unwrap();
    assert_eq!(h.total_bytes(), 70);
    assert_eq!(h.crc, crc);
}

#[test]
fn builder_encodes_headers_nulls_and_negative_deltas() {
    let batch = BatchBuilder::new(500)
        .record(None, Some(b""), &[("h", b"x")], 499)
        .build();
    // length 10 (zigzag 20), attrs, tsDelta -1 (zigzag 1), offsetDelta 0, key null (zigzag -1
    // = 1), value len 0, 1 header (2), key len 1 'h', value len 1 'x'
    assert_eq!(
        &batch[61..],
        &[0x14, 0x00, 0x01, 0x00, 0x01, 0x00, 0x02, 0x02, b'h', 0x02, b'x']
    );
    // maxTimestamp is the (only) record's timestamp, below baseTimestamp.
    assert_eq!(validate_batch(&batch).unwrap().max_timestamp, 499);
}

#[test]
fn varint_vectors() {
    let cases: &[(i32, &[u8])] = &[
        (0, &[0x00]),
        (-1, &[0x01]),
        (1, &[0x02]),
        (-64, &[0x7f]),
        (64, &[0x80, 0x01]),
        (300, &[0xd8, 0x04]),
        (i32::MAX, &[0xfe, 0xff, 0xff, 0xff, 0x0f]),
        (i32::MIN, &[0xff, 0xff, 0xff, 0xff, 0x0f]),
    ];
    for &(v, bytes) in cases {
        let mut out = Vec::new();
        builder::put_varint(&mut out, v);
        assert_eq!(out, bytes, "varint {v}");
    }
    let mut out = Vec::new();
    builder::put_varlong(&mut out, i64::MIN);
    assert_eq!(
        out,
        [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
    );
}

#[test]
fn parse_reads_every_field_at_its_offset() {
    let mut b = vec![0u8; 61];
    // Literal offsets, so a wrong constant in header.rs fails this test.
    put(&mut b, 0, &0x0102_0304_0506_0708i64.to_be_bytes());
    put(&mut b, 8, &49i32.to_be_bytes());
    put(&mut b, 12, &7i32.to_be_bytes());
    put(&mut b, 16, &[2]);
    put(&mut b, 17, &0xdead_beefu32.to_be_bytes());
    put(&mut b, 21, &0x003bi16.to_be_bytes()); // lz4 | logAppendTime | txn | control
    put(&mut b, 23, &9i32.to_be_bytes());
    put(&mut b, 27, &11i64.to_be_bytes());
    put(&mut b, 35, &13i64.to_be_bytes());
    put(&mut b, 43, &17i64.to_be_bytes());
    put(&mut b, 51, &19i16.to_be_bytes());
    put(&mut b, 53, &23i32.to_be_bytes());
    put(&mut b, 57, &10i32.to_be_bytes());
    let h = BatchHeader::parse(&b).unwrap();
    assert_eq!(
        h,
        BatchHeader {
            base_offset: 0x0102_0304_0506_0708,
            batch_length: 49,
            partition_leader_epoch: 7,
            magic: 2,
            crc: 0xdead_beef,
            attributes: 0x3b,
            last_offset_delta: 9,
            base_timestamp: 11,
            max_timestamp: 13,
            producer_id: 17,
            producer_epoch: 19,
            base_sequence: 23,
            record_count: 10,
        }
    );
    assert_eq!(h.total_bytes(), 61);
    assert_eq!(h.last_offset(), 0x0102_0304_0506_0708 + 9);
    assert_eq!(h.next_offset(), 0x0102_0304_0506_0708 + 10);
    assert_eq!(h.compression(), Ok(Compression::Lz4));
    assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
    assert!(h.is_transactional() && h.is_control() && h.has_producer_id());
    // Header-only parse does not check the CRC.
    assert_eq!(
        validate_batch(&b),
        Err(BatchError::CrcMismatch {
            stored: 0xdead_beef,
            computed: crc32c::crc32c(&b[21..])
        })
    );
    assert!(!stored_crc_matches(&b));
    assert_eq!(
        BatchHeader::parse(&b[..60]),
        Err(BatchError::Truncated {
            needed: 61,
            available: 60
        })
    );
}

#[test]
fn layout_constants() {
    assert_eq!(BATCH_HEADER_BYTES, 61);
    assert_eq!(LOG_OVERHEAD_BYTES, 12);
    assert_eq!(MIN_BATCH_LENGTH, 49);
    assert_eq!(MIN_RECORD_BYTES, 7);
    // The smallest record really is MIN_RECORD_BYTES long.
    let b = BatchBuilder::new(0).record(None, None, &[], 0).build();
    assert_eq!(b.len(), BATCH_HEADER_BYTES + MIN_RECORD_BYTES);
    assert!(validate_batch(&b).is_ok());
}

#[test]
fn magic_and_length_errors() {
    let mut b = simple_batch(1);
    b[16] = 1;
    let e = validate_batch(&b).unwrap_err();
    assert_eq!(e, BatchError::BadMagic(1));
    assert_eq!(e.kafka_error_code(), error_code::INVALID_RECORD);
    b[16] = 3;
    assert_eq!(
        validate_batch(&b).unwrap_err().kafka_error_code(),
        error_code::CORRUPT_MESSAGE
    );

    // magic is checked even when the buffer is shorter than a v2 header.
    assert_eq!(validate_batch(&b[..20]), Err(BatchError::BadMagic(3)));

    for len in [48, 0, -1, i32::MIN] {
        let mut b = simple_batch(1);
        put(&mut b, 8, &len.to_be_bytes());
        let e = validate_batch(&b).unwrap_err();
        assert_eq!(e, BatchError::BadLength(len));
        assert_eq!(e.kafka_error_code(), error_code::CORRUPT_MESSAGE);
    }
    let mut b = simple_batch(1);
    put(&mut b, 8, &i32::MAX.to_be_bytes());
    assert!(matches!(
        validate_batch(&b),
        Err(BatchError::Truncated { needed, .. }) if needed == i32::MAX as usize + 12
    ));
}

#[test]
fn count_and_offset_errors() {
    // Fewer records than offsets: what compaction leaves in a stored batch, but never what a
    // producer may send.
    let mut b = simple_batch(3);
    put(&mut b, 57, &2i32.to_be_bytes());
    fix_crc(&mut b);
    assert!(validate_batch(&b).is_ok());
    let e = validate_client_batch(&b).unwrap_err();
    assert_eq!(
        e,
        BatchError::CountMismatch {
            record_count: 2,
            last_offset_delta: 2
        }
    );
    assert_eq!(e.kafka_error_code(), error_code::INVALID_RECORD);
    // More records than offsets is invalid anywhere.
    let mut b = simple_batch(3);
    put(&mut b, 23, &1i32.to_be_bytes());
    fix_crc(&mut b);
    assert_eq!(
        validate_batch(&b),
        Err(BatchError::CountMismatch {
            record_count: 3,
            last_offset_delta: 1
        })
    );

    let mut b = simple_batch(1);
    put(&mut b, 57, &0i32.to_be_bytes());
    fix_crc(&mut b);
    assert_eq!(validate_batch(&b), Err(BatchError::NoRecords(0)));

    let mut b = simple_batch(1);
    put(&mut b, 23, &(-1i32).to_be_bytes());
    fix_crc(&mut b);
    assert_eq!(validate_batch(&b), Err(BatchError::BadOffsetDelta(-1)));

    // An empty builder yields such a batch.
    assert_eq!(
        validate_batch(&BatchBuilder::new(0).build()),
        Err(BatchError::BadOffsetDelta(-1))
    );

    // A tiny uncompressed body cannot hold a million records...
    let mut b = simple_batch(1);
    put(&mut b, 23, &999_999i32.to_be_bytes());
    put(&mut b, 57, &1_000_000i32.to_be_bytes());
    fix_crc(&mut b);
    let body_bytes = b.len() - 61;
    assert_eq!(
        validate_batch(&b),
        Err(BatchError::CountExceedsBody {
            record_count: 1_000_000,
            body_bytes
        })
    );
    // ...but a compressed one may (decompression can expand it).
    put(&mut b, 21, &4i16.to_be_bytes());
    fix_crc(&mut b);
    let h = validate_batch(&b).unwrap();
    assert_eq!(h.compression(), Ok(Compression::Zstd));
    assert_eq!(
        decode_records(&b),
        Err(BatchError::Compressed(Compression::Zstd))
    );
}

#[test]
fn compression_codecs() {
    for id in 0u8..8 {
        let mut b = simple_batch(2);
        put(&mut b, 21, &i16::from(id).to_be_bytes());
        fix_crc(&mut b);
        match Compression::from_id(id) {
            Some(c) => {
                assert_eq!(c.id(), id);
                assert_eq!(validate_batch(&b).unwrap().compression(), Ok(c));
            }
            None => {
                assert!(id >= 5);
                assert_eq!(validate_batch(&b), Err(BatchError::BadCompression(id)));
            }
        }
    }
}

#[test]
fn producer_field_rules() {
    let ok = |b: &BatchBuilder| validate_batch(&b.clone().record(None, None, &[], 0).build());
    // No producer: epoch and sequence are not checked (Kafka does not either).
    assert!(ok(&BatchBuilder::new(0).producer(-1, 3, 7)).is_ok());
    assert!(ok(&BatchBuilder::new(0).producer(-5, -1, -1)).is_ok());
    assert!(ok(&BatchBuilder::new(0).producer(42, 0, 0)).is_ok());
    assert!(ok(&BatchBuilder::new(0).producer(42, 0, 0).transactional(true)).is_ok());
    let e = ok(&BatchBuilder::new(0).producer(42, 0, -1)).unwrap_err();
    assert!(matches!(
        e,
        BatchError::BadProducerFields {
            producer_id: 42,
            ..
        }
    ));
    assert_eq!(e.kafka_error_code(), error_code::INVALID_RECORD);
    assert!(matches!(
        ok(&BatchBuilder::new(0).transactional(true)),
        Err(BatchError::BadProducerFields {
            transactional: true,
            ..
        })
    ));
}

#[test]
fn control_batches() {
    let b = control_batch(77, 3, ControlRecordType::Commit, 9, 1234);
    let h = validate_batch(&b).unwrap();
    assert!(h.is_control() && h.is_transactional());
    assert_eq!(
        (h.producer_id, h.producer_epoch, h.base_sequence),
        (77, 3, -1)
    );
    assert_eq!(h.record_count, 1);
    let recs = decode_records(&b).unwrap();
    assert_eq!(recs[0].key.as_deref(), Some(&[0, 0, 0, 1][..]));
    assert_eq!(recs[0].value.as_deref(), Some(&[0, 0, 0, 0, 0, 9][..]));
    assert_eq!(
        ControlRecordType::from_key(recs[0].key.as_deref().unwrap()),
        Some(ControlRecordType::Commit)
    );
    let abort = control_batch(77, 3, ControlRecordType::Abort, 9, 1234);
    let key = decode_records(&abort).unwrap()[0].key.clone().unwrap();
    assert_eq!(
        ControlRecordType::from_key(&key),
        Some(ControlRecordType::Abort)
    );
    assert_eq!(ControlRecordType::from_key(&[0, 0, 0, 2]), None);
    assert_eq!(ControlRecordType::from_key(&[0, 0]), None);

    assert_eq!(
        validate_client_batch(&b),
        Err(BatchError::ControlBatchFromClient)
    );
}

#[test]
fn client_only_rules() {
    let mut b = simple_batch(2);
    assert!(validate_client_batch(&b).is_ok());
    set_base_offset(&mut b, 5).unwrap();
    assert!(validate_batch(&b).is_ok());
    assert_eq!(
        validate_client_batch(&b),
        Err(BatchError::NonZeroBaseOffset(5))
    );
    let mut b = simple_batch(2);
    set_log_append_time(&mut b, 99).unwrap();
    let e = validate_client_batch(&b).unwrap_err();
    assert_eq!(e, BatchError::LogAppendTimeFromClient);
    assert_eq!(e.kafka_error_code(), error_code::INVALID_TIMESTAMP);
}

#[test]
fn record_sets() {
    let a = simple_batch(1);
    let b = simple_batch(4);
    let mut set = a.clone();
    set.extend_from_slice(&b);
    let hs = validate_record_set(&set).unwrap();
    assert_eq!(hs.len(), 2);
    assert_eq!(hs[0].total_bytes() + hs[1].total_bytes(), set.len());
    assert_eq!(hs[1].record_count, 4);

    assert_eq!(validate_record_set(&[]), Err(BatchError::EmptyRecordSet));
    assert_eq!(
        BatchError::EmptyRecordSet.kafka_error_code(),
        error_code::INVALID_RECORD
    );
    set.extend_from_slice(&b[..30]);
    assert_eq!(
        validate_record_set(&set),
        Err(BatchError::Truncated {
            needed: b.len(),
            available: 30
        })
    );
}

#[test]
fn decode_rejects_malformed_records() {
    // Record length prefix larger than the remaining body.
    let mut b = simple_batch(1);
    b[61] = 0x7e; // zigzag 63
    fix_crc(&mut b);
    assert!(matches!(
        decode_records(&b),
        Err(BatchError::BadRecord { index: 0, .. })
    ));
    // Negative record length.
    b[61] = 0x01;
    fix_crc(&mut b);
    assert!(matches!(
        decode_records(&b),
        Err(BatchError::BadRecord { .. })
    ));

    // Key length pointing past the record.
    let mut b = BatchBuilder::new(0)
        .record(Some(b"k"), Some(b"v"), &[], 0)
        .build();
    b[61 + 4] = 0x08; // key length 4 in an 8-byte record
    fix_crc(&mut b);
    assert!(matches!(
        decode_records(&b),
        Err(BatchError::BadRecord { .. })
    ));

    // Overlong varint: six continuation bytes in the offsetDelta of a 10-byte record.
    let mut b = BatchBuilder::new(0)
        .record(Some(b"kkkkkk"), None, &[], 0)
        .build();
    put(&mut b, 64, &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    fix_crc(&mut b);
    assert_eq!(
        decode_records(&b),
        Err(BatchError::BadRecord {
            index: 0,
            reason: "varint is too long"
        })
    );

    // A huge header count is refused before anything is allocated for it.
    let mut b = BatchBuilder::new(0).record(None, None, &[], 0).build();
    let last = b.len() - 1;
    b[last] = 0xfe; // header count 127 in a record with no bytes left
    fix_crc(&mut b);
    assert!(matches!(
        decode_records(&b),
        Err(BatchError::BadRecord { .. })
    ));

    // A record length that covers more bytes than the record's fields use.
    let mut b = BatchBuilder::new(0)
        .record(Some(b"k"), Some(b"v"), &[], 0)
        .build();
    b[61] = 0x12; // 9 instead of 8
    b.push(0);
    let len = (b.len() - 12) as i32;
    put(&mut b, 8, &len.to_be_bytes());
    fix_crc(&mut b);
    assert!(validate_batch(&b).is_ok());
    assert_eq!(
        decode_records(&b),
        Err(BatchError::BadRecord {
            index: 0,
            reason: "record length disagrees with its fields"
        })
    );

    // Trailing bytes after recordCount records (a 2-record body declared as 1 record).
    let mut b = simple_batch(2);
    put(&mut b, 23, &0i32.to_be_bytes());
    put(&mut b, 57, &1i32.to_be_bytes());
    fix_crc(&mut b);
    assert!(validate_batch(&b).is_ok());
    assert!(matches!(
        decode_records(&b),
        Err(BatchError::BadRecord { index: 1, .. })
    ));
}

#[test]
fn decode_keeps_duplicate_and_empty_headers() {
    let b = BatchBuilder::new(0)
        .record(None, None, &[("a", b"1"), ("a", b""), ("", b"z")], 5)
        .build();
    let r = &decode_records(&b).unwrap()[0];
    let hs: Vec<(&[u8], Option<&[u8]>)> = r
        .headers
        .iter()
        .map(|h| (&h.key[..], h.value.as_deref()))
        .collect();
    assert_eq!(
        hs,
        [
            (&b"a"[..], Some(&b"1"[..])),
            (&b"a"[..], Some(&b""[..])),
            (&b""[..], Some(&b"z"[..]))
        ]
    );
    assert_eq!(r.timestamp_delta, 5);
}

#[test]
fn setters_reject_garbage_without_panicking() {
    let mut short = vec![0u8; 10];
    assert!(set_base_offset(&mut short, 1).is_err());
    assert!(set_log_append_time(&mut short, 1).is_err());
    assert!(set_partition_leader_epoch(&mut short, 1).is_err());
    assert_eq!(short, vec![0u8; 10]);
    // A header whose length runs past the buffer: nothing is written.
    let mut b = simple_batch(1);
    let orig = b.clone();
    assert!(set_log_append_time(&mut b[..65], 1).is_err());
    assert_eq!(b, orig);
}

#[test]
fn errors_display() {
    let e = BatchError::CrcMismatch {
        stored: 1,
        computed: 2,
    };
    assert!(e.to_string().contains("CRC"));
    let _: &dyn std::error::Error = &e;
}

// ---------------------------------------------------------------------------------------------
// Property tests

type Header = (String, Vec<u8>);

#[derive(Clone, Debug)]
struct RecSpec {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<Header>,
    ts_delta: i64,
}

#[derive(Clone, Debug)]
struct BatchSpec {
    base_ts: i64,
    producer: Option<(i64, i16, i32)>,
    transactional: bool,
    records: Vec<RecSpec>,
}

fn arb_record() -> impl Strategy<Value = RecSpec> {
    (
        option::of(vec(any::<u8>(), 0..24)),
        option::of(vec(any::<u8>(), 0..160)),
        // Unique keys: the independent decoder keeps headers in a map.
        btree_map("[a-zA-Z0-9._-]{0,10}", vec(any::<u8>(), 0..12), 0..4),
        -100_000i64..100_000,
    )
        .prop_map(|(key, value, headers, ts_delta)| RecSpec {
            key,
            value,
            headers: headers.into_iter().collect(),
            ts_delta,
        })
}

fn arb_batch() -> impl Strategy<Value = BatchSpec> {
    (
        0i64..4_000_000_000_000,
        option::of((0i64..i64::MAX, 0i16..i16::MAX, 0i32..i32::MAX)),
        any::<bool>(),
        vec(arb_record(), 1..10),
    )
        .prop_map(|(base_ts, producer, txn, records)| BatchSpec {
            base_ts,
            transactional: txn && producer.is_some(),
            producer,
            records,
        })
}

fn build(spec: &BatchSpec) -> Vec<u8> {
    let mut b = BatchBuilder::new(spec.base_ts).transactional(spec.transactional);
    if let Some((id, epoch, seq)) = spec.producer {
        b = b.producer(id, epoch, seq);
    }
    for r in &spec.records {
        let headers: Vec<(&str, &[u8])> = r
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        b.push_record(
            r.key.as_deref(),
            r.value.as_deref(),
            &headers,
            spec.base_ts + r.ts_delta,
        );
    }
    b.build()
}

fn expected_records(spec: &BatchSpec) -> Vec<Record> {
    spec.records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            attributes: 0,
            timestamp_delta: r.ts_delta,
            offset_delta: i as i32,
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| RecordHeader {
                    key: k.as_bytes().to_vec(),
                    value: Some(v.clone()),
                })
                .collect(),
        })
        .collect()
}

/// Calls every entry point on `bytes`; only a panic can fail.
fn exercise(bytes: &[u8]) {
    let _ = BatchHeader::parse(bytes);
    let _ = validate_batch(bytes);
    let _ = validate_client_batch(bytes);
    let _ = validate_record_set(bytes);
    let _ = decode_records(bytes);
    let _ = stored_crc_matches(bytes);
    let mut copy = bytes.to_vec();
    let _ = set_base_offset(&mut copy, 3);
    let _ = set_partition_leader_epoch(&mut copy, 3);
    let _ = set_log_append_time(&mut copy, 3);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn round_trip(spec in arb_batch()) {
        let bytes = build(&spec);
        let h = validate_batch(&bytes).unwrap();
        let n = spec.records.len() as i32;
        prop_assert_eq!(h.total_bytes(), bytes.len());
        prop_assert_eq!(h.record_count, n);
        prop_assert_eq!(h.last_offset_delta, n - 1);
        prop_assert_eq!(h.base_offset, 0);
        prop_assert_eq!(h.base_timestamp, spec.base_ts);
        let max_ts = spec.records.iter().map(|r| spec.base_ts + r.ts_delta).max().unwrap();
        prop_assert_eq!(h.max_timestamp, max_ts);
        prop_assert_eq!(h.is_transactional(), spec.transactional);
        prop_assert!(!h.is_control());
        prop_assert_eq!(h.compression(), Ok(Compression::None));
        prop_assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
        let (pid, epoch, seq) = spec.producer.unwrap_or((-1, -1, -1));
        prop_assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), (pid, epoch, seq));
        prop_assert!(stored_crc_matches(&bytes));
        prop_assert_eq!(validate_client_batch(&bytes), Ok(h));
        prop_assert_eq!(decode_records(&bytes).unwrap(), expected_records(&spec));
    }

    #[test]
    fn kafka_protocol_decodes_our_batches(spec in arb_batch()) {
        use kafka_protocol::records::{RecordBatchDecoder, TimestampType as KTs};
        let mut bytes = build(&spec);
        set_base_offset(&mut bytes, 1000).unwrap();
        let set = RecordBatchDecoder::decode(&mut &bytes[..]).unwrap();
        prop_assert_eq!(set.version, 2);
        prop_assert_eq!(set.records.len(), spec.records.len());
        let (pid, epoch, seq) = spec.producer.unwrap_or((-1, -1, -1));
        for (i, (k, r)) in set.records.iter().zip(&spec.records).enumerate() {
            prop_assert_eq!(k.offset, 1000 + i as i64);
            prop_assert_eq!(k.timestamp, spec.base_ts + r.ts_delta);
            prop_assert_eq!(k.timestamp_type, KTs::Creation);
            prop_assert_eq!(k.key.as_deref(), r.key.as_deref());
            prop_assert_eq!(k.value.as_deref(), r.value.as_deref());
            prop_assert_eq!(k.producer_id, pid);
            prop_assert_eq!(k.producer_epoch, epoch);
            prop_assert_eq!(k.transactional, spec.transactional);
            prop_assert!(!k.control);
            if seq >= 0 {
                prop_assert_eq!(k.sequence, seq.wrapping_add(i as i32));
            }
            let theirs: Vec<(String, Option<Vec<u8>>)> = k
                .headers
                .iter()
                .map(|(hk, hv)| (hk.to_string(), hv.as_ref().map(|v| v.to_vec())))
                .collect();
            let ours: Vec<(String, Option<Vec<u8>>)> =
                r.headers.iter().map(|(hk, hv)| (hk.clone(), Some(hv.clone()))).collect();
            prop_assert_eq!(theirs, ours);
        }
    }

    #[test]
    fn any_bit_flip_in_crc_region_is_detected(spec in arb_batch(), pick in any::<prop::sample::Index>()) {
        let bytes = build(&spec);
        // Bits of the CRC field itself and of everything it covers (byte 17 to the end).
        let bit = 17 * 8 + pick.index((bytes.len() - 17) * 8);
        let mut flipped = bytes.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(
            matches!(validate_batch(&flipped), Err(BatchError::CrcMismatch { .. })),
            "bit {} not detected", bit
        );
        prop_assert!(!stored_crc_matches(&flipped));
    }

    #[test]
    fn any_bit_flip_anywhere_is_caught_unless_outside_crc(spec in arb_batch(), pick in any::<prop::sample::Index>()) {
        let bytes = build(&spec);
        let bit = pick.index(bytes.len() * 8);
        let mut flipped = bytes.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        let byte = bit / 8;
        // baseOffset and partitionLeaderEpoch are deliberately outside the CRC.
        let uncovered = byte < 8 || (12..16).contains(&byte);
        prop_assert_eq!(validate_batch(&flipped).is_ok(), uncovered, "bit {}", bit);
    }

    #[test]
    fn every_truncation_is_an_error(spec in arb_batch()) {
        let bytes = build(&spec);
        for k in 0..bytes.len() {
            let cut = &bytes[..k];
            let needed = if k < 12 { 12 } else { bytes.len() };
            prop_assert_eq!(
                validate_batch(cut),
                Err(BatchError::Truncated { needed, available: k })
            );
            if k > 0 {
                prop_assert!(validate_record_set(cut).is_err());
            }
            prop_assert!(decode_records(cut).is_err());
            prop_assert!(!stored_crc_matches(cut));
            exercise(cut);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..400)) {
        exercise(&bytes);
        prop_assert!(validate_batch(&bytes).is_err() || bytes.len() >= 61);
    }

    #[test]
    fn framed_garbage_never_panics(mut bytes in vec(any::<u8>(), 61..400), count in 1i32..80) {
        // A frame that passes the length, magic and CRC checks so the record decoder sees
        // arbitrary bodies.
        let len = bytes.len() as i32 - 12;
        put(&mut bytes, 8, &len.to_be_bytes());
        bytes[16] = 2;
        put(&mut bytes, 21, &0i16.to_be_bytes());
        put(&mut bytes, 23, &(count - 1).to_be_bytes());
        put(&mut bytes, 43, &(-1i64).to_be_bytes());
        put(&mut bytes, 57, &count.to_be_bytes());
        fix_crc(&mut bytes);
        exercise(&bytes);
        if let Ok(recs) = decode_records(&bytes) {
            prop_assert_eq!(recs.len(), count as usize);
        }
    }

    #[test]
    fn garbage_body_behind_a_real_header_never_panics(spec in arb_batch(), body in vec(any::<u8>(), 0..300)) {
        let mut bytes = build(&spec);
        bytes.truncate(61);
        bytes.extend_from_slice(&body);
        let len = bytes.len() as i32 - 12;
        put(&mut bytes, 8, &len.to_be_bytes());
        fix_crc(&mut bytes);
        exercise(&bytes);
    }

    #[test]
    fn set_base_offset_keeps_batch_valid(spec in arb_batch(), base in 0i64..(i64::MAX / 2)) {
        let bytes = build(&spec);
        let mut patched = bytes.clone();
        set_base_offset(&mut patched, base).unwrap();
        let h = validate_batch(&patched).unwrap();
        prop_assert_eq!(h.base_offset, base);
        prop_assert_eq!(h.last_offset(), base + spec.records.len() as i64 - 1);
        prop_assert_eq!(h.next_offset(), base + spec.records.len() as i64);
        prop_assert_eq!(&patched[8..], &bytes[8..]);
        set_partition_leader_epoch(&mut patched, 12).unwrap();
        prop_assert_eq!(validate_batch(&patched).unwrap().partition_leader_epoch, 12);
    }

    #[test]
    fn set_log_append_time_keeps_crc_valid(spec in arb_batch(), ts in any::<i64>(), trailer in vec(any::<u8>(), 0..20)) {
        let mut bytes = build(&spec);
        let len = bytes.len();
        bytes.extend_from_slice(&trailer); // bytes after the batch must not enter the CRC
        set_log_append_time(&mut bytes, ts).unwrap();
        prop_assert!(stored_crc_matches(&bytes));
        let h = validate_batch(&bytes).unwrap();
        prop_assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
        prop_assert_eq!(h.max_timestamp, ts);
        prop_assert_eq!(h.is_transactional(), spec.transactional);
        prop_assert_eq!(&bytes[len..], &trailer[..]);
        prop_assert_eq!(decode_records(&bytes[..len]).unwrap(), expected_records(&spec));
        // Idempotent.
        let before = bytes.clone();
        set_log_append_time(&mut bytes, ts).unwrap();
        prop_assert_eq!(bytes, before);
    }

    #[test]
    fn record_set_concatenations(specs in vec(arb_batch(), 1..5)) {
        let batches: Vec<Vec<u8>> = specs.iter().map(build).collect();
        let set: Vec<u8> = batches.concat();
        let hs = validate_record_set(&set).unwrap();
        prop_assert_eq!(hs.len(), batches.len());
        for (h, b) in hs.iter().zip(&batches) {
            prop_assert_eq!(h.total_bytes(), b.len());
        }
        let cut = validate_record_set(&set[..set.len() - 1]);
        prop_assert!(matches!(cut, Err(BatchError::Truncated { .. })), "{:?}", cut);
        let mut extra = set.clone();
        extra.push(0);
        prop_assert!(validate_record_set(&extra).is_err());
    }
}
