//! `reseal inspect`: the header as JSON, from a file or stdin, raw or base64.

use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine as _;
use reseal::esdk::{self, AlgorithmSuite, EncryptCommitment, EncryptOptions, EncryptionContext};

use crate::common::*;

fn connect_bytes() -> Vec<u8> {
    let k = connect_keyring();
    let ctx: EncryptionContext = [("purpose", "card")].into_iter().collect();
    esdk::encrypt(
        b"4111111111111111",
        &[&k],
        &ctx,
        &EncryptOptions {
            suite: AlgorithmSuite::Aes256GcmIv12Tag16HkdfSha384EcdsaP384,
            frame_length: 4096,
            commitment: EncryptCommitment::Forbid,
            ..Default::default()
        },
    )
    .unwrap()
}

fn inspect(arg: &str, stdin: Option<&[u8]>) -> (bool, serde_json::Value, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reseal"))
        .args(["inspect", arg])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (
        out.status.success(),
        serde_json::from_str(&stdout).unwrap_or_default(),
        stdout + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn prints_the_header_from_file_or_stdin_raw_or_base64() {
    let bytes = connect_bytes();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("msg.bin");
    std::fs::write(&file, &bytes).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
    let runs = [
        inspect(file.to_str().unwrap(), None),
        inspect("-", Some(&bytes)),
        inspect("-", Some(format!("{b64}\n").as_bytes())),
    ];
    for (ok, v, raw) in runs {
        assert!(ok, "{raw}");
        assert_eq!(v["format_version"], 1);
        assert_eq!(v["algorithm_suite"]["id"], "0x0378");
        assert_eq!(v["algorithm_suite"]["signed"], true);
        assert_eq!(v["message_id"].as_str().unwrap().len(), 32);
        assert_eq!(v["encryption_context"]["purpose"], "card");
        assert!(v["encryption_context"]["aws-crypto-public-key"].is_string());
        assert_eq!(v["encrypted_data_keys"][0]["provider_id"], "AmazonConnect");
        assert_eq!(v["encrypted_data_keys"][0]["key_name"], CONNECT_KEY_ID);
        assert_eq!(
            v["encrypted_data_keys"][0]["encrypted_data_key_length"],
            256
        );
        assert_eq!(v["content_type"], "framed");
        assert_eq!(v["frame_length"], 4096);
        assert_eq!(v["body"]["valid_structure"], true);
        assert_eq!(v["body"]["plaintext_length"], 16);
        // The wrapped data key itself is never printed.
        let edk = esdk::Message::parse(&bytes, &Default::default())
            .unwrap()
            .header
            .encrypted_data_keys[0]
            .ciphertext
            .clone();
        assert!(!raw.contains(&hex::encode(&edk[..16])));
        assert!(!raw.contains(&base64::engine::general_purpose::STANDARD.encode(&edk[..12])));
    }
    // A truncated body still shows its header, and says what is wrong with the rest.
    let (ok, v, _) = inspect("-", Some(&bytes[..bytes.len() - 10]));
    assert!(ok);
    assert_eq!(v["body"]["valid_structure"], false);
    assert!(v["body"]["error"].as_str().unwrap().contains("truncated"));
    // Not an ESDK message at all: a clear error and a failing exit status.
    let (ok, _, raw) = inspect("-", Some(b"\x02garbage"));
    assert!(!ok);
    assert!(raw.contains("not a readable ESDK message"), "{raw}");
}
