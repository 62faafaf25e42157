//! Generates the gRPC code from `proto/` with protox (no system `protoc`), and
//! writes the encoded descriptor set for server reflection.

use std::path::PathBuf;

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=Cargo.lock");
    // The aws-lc-rs version, for benchmark reports.
    if let Ok(lock) = std::fs::read_to_string("Cargo.lock") {
        if let Some(v) = lock
            .split("[[package]]")
            .find(|p| p.contains("name = \"aws-lc-rs\""))
            .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
        {
            println!(
                "cargo:rustc-env=RESEAL_AWS_LC_RS_VERSION={}",
                v.trim_matches('"')
            );
        }
    }
    let fds = protox::compile(["reseal/v1/reseal.proto"], ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("reseal_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
