//! Generates the gRPC code from `proto/` with protox (no system `protoc`), and
//! writes the encoded descriptor set for server reflection.

use std::path::PathBuf;

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=third_party/googleapis");
    let fds = protox::compile(
        ["reseal/v1/reseal.proto"],
        ["proto", "third_party/googleapis"],
    )?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("reseal_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Broken request bodies are MALFORMED_REQUEST, not INTERNAL.
        .codec_path("crate::grpc::codec::ReasonCodec")
        .compile_fds(fds)?;
    Ok(())
}
