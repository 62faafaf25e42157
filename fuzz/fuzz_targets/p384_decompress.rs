//! Fuzz target: reseal's P-384 point decompression against aws-lc's on any
//! 49 bytes. The two must accept and refuse the same inputs; an accepted point
//! must keep the input's x and parity and be a point aws-lc accepts in full.
//! Any disagreement or panic is a bug.
#![no_main]

use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P384_SHA384_ASN1};
use libfuzzer_sys::fuzz_target;
use reseal::esdk::p384::{decompress, COMPRESSED_LEN};

fuzz_target!(|data: &[u8]| {
    let Some(bytes) = data.get(..COMPRESSED_LEN) else {
        return;
    };
    let mut compressed = [0u8; COMPRESSED_LEN];
    compressed.copy_from_slice(bytes);
    // Mostly well-formed tags, so the search spends its time on x.
    if compressed[0] & 0x80 == 0 {
        compressed[0] = 0x02 | (compressed[0] & 1);
    }
    let aws_lc = UnparsedPublicKey::new(&ECDSA_P384_SHA384_ASN1, &compressed[..])
        .parse()
        .is_ok();
    match decompress(&compressed) {
        None => assert!(!aws_lc, "refused a point aws-lc accepts"),
        Some(point) => {
            assert!(aws_lc, "accepted a point aws-lc refuses");
            assert_eq!(point[0], 0x04);
            assert_eq!(&point[1..49], &compressed[1..49], "x changed");
            assert_eq!(point[96] & 1, compressed[0] & 1, "wrong parity");
            let full = UnparsedPublicKey::new(&ECDSA_P384_SHA384_ASN1, &point[..]);
            assert!(full.parse().is_ok(), "aws-lc refuses the full point");
        }
    }
});
