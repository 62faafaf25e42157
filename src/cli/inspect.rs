//! `reseal inspect FILE|-`: the header as JSON, no keys involved.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{json, Value};

use super::{read_input, CliResult};
use crate::esdk::{ContentType, Header, Limits, Message};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Message file (raw ESDK bytes or base64 text), or `-` for stdin.
    pub file: PathBuf,
}

pub fn run(args: Args) -> CliResult {
    let raw = read_input(&args.file)?;
    let bytes = crate::input::message_bytes(&raw)?;
    match describe(&bytes) {
        Ok(v) => {
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: not a readable ESDK message: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Header description plus what the body looks like. Never any key or plaintext.
pub fn describe(bytes: &[u8]) -> Result<Value, crate::esdk::Error> {
    let limits = Limits::unbounded();
    let parsed = Header::parse(bytes, &limits)?;
    let mut out = header_json(&parsed.header);
    let body = match Message::parse(bytes, &limits) {
        Ok(m) => json!({
            "valid_structure": true,
            "frames": m.frame_count(),
            "plaintext_length": m.plaintext_len(),
        }),
        Err(e) => json!({"valid_structure": false, "error": e.to_string()}),
    };
    out["header_length"] = json!(parsed.total_len);
    out["message_length"] = json!(bytes.len());
    out["body"] = body;
    Ok(out)
}

fn header_json(h: &Header) -> Value {
    let edks: Vec<Value> = h
        .encrypted_data_keys
        .iter()
        .map(|edk| {
            let summary = edk.summary();
            json!({
                "provider_id": summary.provider_id,
                "key_name": summary.key_name,
                "provider_info": match std::str::from_utf8(&edk.provider_info) {
                    Ok(s) if !s.chars().any(char::is_control) => s.to_owned(),
                    _ => format!("0x{}", hex::encode(&edk.provider_info)),
                },
                "encrypted_data_key_length": edk.ciphertext.len(),
            })
        })
        .collect();
    json!({
        "format_version": match h.version { crate::esdk::FormatVersion::V1 => 1, crate::esdk::FormatVersion::V2 => 2 },
        "algorithm_suite": {
            "id": format!("0x{:04X}", h.suite.id()),
            "name": h.suite.name(),
            "committing": h.suite.is_committing(),
            "signed": h.suite.is_signed(),
        },
        "message_id": hex::encode(&h.message_id),
        "encryption_context": h.encryption_context,
        "encrypted_data_keys": edks,
        "content_type": match h.content_type { ContentType::Framed => "framed", ContentType::NonFramed => "non-framed" },
        "frame_length": h.frame_length,
    })
}
