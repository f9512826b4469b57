//! The compression codecs of v2 record batches, and decoding the records of a batch of any codec.
//!
//! The append path never needs these (batches are stored as received). They serve the two places
//! that must see records: the cleaner, which keeps some records of a batch and recompresses them
//! with the batch's own codec, and the record-level checks of compacted topics (every record
//! needs a key). Decompression is always bounded: a small compressed body can claim gigabytes,
//! so every reader stops at a limit the caller gives.
//!
//! Framing follows what Kafka's clients write and read:
//! - gzip: a gzip stream (RFC 1952);
//! - snappy: snappy-java's "xerial" framing (a 16-byte header, then blocks of a 4-byte
//!   big-endian length and a raw snappy block); a body without that header is read as one raw
//!   snappy block, as Kafka's and librdkafka's readers do;
//! - lz4: the LZ4 frame format with independent 64 KiB blocks and no checksums, as Kafka's
//!   `Lz4BlockOutputStream` writes it;
//! - zstd: a zstd frame.

use std::io::{Read, Write};

use super::builder::{decode_record_body, Record};
use super::header::{BatchHeader, Compression, RECORDS_OFFSET};
use super::{validate_batch, BatchError};

/// Largest decompressed body the broker reads when no smaller limit is asked for: Kafka's
/// default `message.max.bytes` is 1 MiB compressed, and codecs rarely reach 64:1 on real data.
pub const MAX_DECOMPRESSED_BATCH_BYTES: usize = 64 * 1024 * 1024;

/// snappy-java's stream header: magic, then version 1 and compatible version 1 (big endian).
const XERIAL_HEADER: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
/// Uncompressed bytes per snappy block, as snappy-java writes them.
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;

/// Decompresses a batch body written with `codec`, failing once the output would pass
/// `limit_bytes`. `Compression::None` returns the input.
pub fn decompress(
    codec: Compression,
    input: &[u8],
    limit_bytes: usize,
) -> Result<Vec<u8>, BatchError> {
    let bad = || BatchError::BadCompressedData(codec);
    match codec {
        Compression::None => {
            if input.len() > limit_bytes {
                return Err(BatchError::DecompressedTooLarge { limit_bytes });
            }
            Ok(input.to_vec())
        }
        Compression::Gzip => read_bounded(flate2::read::GzDecoder::new(input), limit_bytes, codec),
        Compression::Lz4 => {
            let decoder = lz4::Decoder::new(input).map_err(|_| bad())?;
            read_bounded(decoder, limit_bytes, codec)
        }
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(input).map_err(|_| bad())?;
            read_bounded(decoder, limit_bytes, codec)
        }
        Compression::Snappy => snappy_decompress(input, limit_bytes),
    }
}

/// Compresses a batch body with `codec` in the framing Kafka's clients read.
/// `Compression::None` returns the input.
pub fn compress(codec: Compression, input: &[u8]) -> Vec<u8> {
    // Writing into a Vec cannot fail; the codecs' own errors would be bugs in them.
    const INFALLIBLE: &str = "compressing into memory does not fail";
    match codec {
        Compression::None => input.to_vec(),
        Compression::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(input.len() / 2),
                flate2::Compression::default(),
            );
            encoder.write_all(input).expect(INFALLIBLE);
            encoder.finish().expect(INFALLIBLE)
        }
        Compression::Lz4 => {
            let mut encoder = lz4::EncoderBuilder::new()
                .block_size(lz4::BlockSize::Max64KB)
                .block_mode(lz4::BlockMode::Independent)
                .checksum(lz4::ContentChecksum::NoChecksum)
                .build(Vec::with_capacity(input.len() / 2))
                .expect(INFALLIBLE);
            encoder.write_all(input).expect(INFALLIBLE);
            let (out, result) = encoder.finish();
            result.expect(INFALLIBLE);
            out
        }
        Compression::Zstd => {
            zstd::bulk::compress(input, zstd::DEFAULT_COMPRESSION_LEVEL).expect(INFALLIBLE)
        }
        Compression::Snappy => snappy_compress(input),
    }
}

/// Validates `batch` (header and CRC) and decodes every record of it, decompressing the body
/// first when the batch is compressed (at most `limit_bytes` of it).
pub fn decode_batch_records(
    batch: &[u8],
    limit_bytes: usize,
) -> Result<(BatchHeader, Vec<Record>), BatchError> {
    let header = validate_batch(batch)?;
    let body = &batch[RECORDS_OFFSET..header.total_bytes()];
    let codec = header.compression()?;
    let records = if codec == Compression::None {
        decode_record_body(body, &header)?
    } else {
        decode_record_body(&decompress(codec, body, limit_bytes)?, &header)?
    };
    Ok((header, records))
}

fn read_bounded(
    reader: impl Read,
    limit_bytes: usize,
    codec: Compression,
) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::new();
    // One byte past the limit tells "exactly at the limit" from "over it".
    reader
        .take(limit_bytes as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| BatchError::BadCompressedData(codec))?;
    if out.len() > limit_bytes {
        return Err(BatchError::DecompressedTooLarge { limit_bytes });
    }
    Ok(out)
}

fn snappy_decompress(input: &[u8], limit_bytes: usize) -> Result<Vec<u8>, BatchError> {
    let bad = || BatchError::BadCompressedData(Compression::Snappy);
    let too_large = || BatchError::DecompressedTooLarge { limit_bytes };
    let mut decoder = snap::raw::Decoder::new();
    let mut raw_block = |block: &[u8], out: &mut Vec<u8>| -> Result<(), BatchError> {
        let len = snap::raw::decompress_len(block).map_err(|_| bad())?;
        if out.len() + len > limit_bytes {
            return Err(too_large());
        }
        let at = out.len();
        out.resize(at + len, 0);
        let n = decoder
            .decompress(block, &mut out[at..])
            .map_err(|_| bad())?;
        out.truncate(at + n);
        Ok(())
    };
    let mut out = Vec::new();
    // snappy-java's header is 8 magic bytes and two versions; only the magic is checked.
    let Some(mut rest) = input
        .strip_prefix(&XERIAL_HEADER[..8])
        .and_then(|r| r.get(8..))
    else {
        raw_block(input, &mut out)?;
        return Ok(out);
    };
    while !rest.is_empty() {
        let len_bytes: [u8; 4] = rest.get(..4).ok_or_else(bad)?.try_into().expect("4 bytes");
        let len = u32::from_be_bytes(len_bytes) as usize;
        let block = rest.get(4..4 + len).ok_or_else(bad)?;
        raw_block(block, &mut out)?;
        rest = &rest[4 + len..];
    }
    Ok(out)
}

fn snappy_compress(input: &[u8]) -> Vec<u8> {
    let mut encoder = snap::raw::Encoder::new();
    let mut out = Vec::with_capacity(XERIAL_HEADER.len() + input.len() / 2);
    out.extend_from_slice(XERIAL_HEADER);
    for chunk in input.chunks(XERIAL_BLOCK_BYTES) {
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        out.resize(at + 4 + snap::raw::max_compress_len(chunk.len()), 0);
        let n = encoder
            .compress(chunk, &mut out[at + 4..])
            .expect("a block within snappy's limits compresses");
        out.truncate(at + 4 + n);
        out[at..at + 4].copy_from_slice(&(n as u32).to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8 ^ (i / 7) as u8).collect()
    }

    #[test]
    fn every_codec_round_trips_across_block_boundaries() {
        for codec in CODECS {
            for len in [
                0,
                1,
                100,
                XERIAL_BLOCK_BYTES,
                3 * XERIAL_BLOCK_BYTES + 17,
                200_000,
            ] {
                let input = sample(len);
                let packed = compress(codec, &input);
                let back = decompress(codec, &packed, MAX_DECOMPRESSED_BATCH_BYTES)
                    .unwrap_or_else(|e| panic!("{codec:?} {len}: {e}"));
                assert_eq!(back, input, "{codec:?} with {len} bytes");
            }
        }
    }

    #[test]
    fn decompression_stops_at_the_limit() {
        let input = vec![0u8; 1 << 20];
        for codec in CODECS {
            let packed = compress(codec, &input);
            assert_eq!(
                decompress(codec, &packed, 1000),
                Err(BatchError::DecompressedTooLarge { limit_bytes: 1000 }),
                "{codec:?}"
            );
            assert_eq!(
                decompress(codec, &packed, input.len()).map(|v| v.len()),
                Ok(input.len()),
                "{codec:?} exactly at the limit"
            );
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for codec in CODECS[1..].iter().copied() {
            for garbage in [&b""[..], b"\x00", b"not compressed at all", &[0xff; 64]] {
                let r = decompress(codec, garbage, 1 << 16);
                if let Ok(out) = r {
                    // Some codecs read an empty input as an empty stream; nothing else decodes.
                    assert!(out.is_empty(), "{codec:?} decoded garbage {garbage:?}");
                }
            }
            // A xerial header whose block length runs past the input.
            let mut cut = XERIAL_HEADER.to_vec();
            cut.extend_from_slice(&1000u32.to_be_bytes());
            cut.extend_from_slice(b"short");
            assert!(decompress(Compression::Snappy, &cut, 1 << 16).is_err());
        }
    }

    #[test]
    fn raw_snappy_without_the_xerial_header_is_read() {
        let input = sample(5000);
        let raw = snap::raw::Encoder::new().compress_vec(&input).unwrap();
        assert_eq!(
            decompress(Compression::Snappy, &raw, 1 << 20).unwrap(),
            input
        );
    }
}
