//! Generates the gRPC code from `proto/` with protox (no system `protoc`),
//! writes the encoded descriptor set for server reflection, and records the
//! commit the binary is built from (`reseal_build_info`).

use std::path::PathBuf;
use std::process::Command;

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
    println!("cargo:rustc-env=RESEAL_BUILD_COMMIT={}", commit());
    Ok(())
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// The commit: from git when building in a checkout, else `RESEAL_COMMIT`
/// (builds without `.git`, such as a container build passing it as a build
/// argument), else `unknown`.
fn commit() -> String {
    println!("cargo:rerun-if-env-changed=RESEAL_COMMIT");
    if let Some(git_dir) = git(&["rev-parse", "--git-dir"]) {
        // Rebuild when HEAD moves: HEAD itself, and the branch it points to.
        // (Only files that exist: a missing one would rerun this every build.)
        let mut watch = vec![format!("{git_dir}/HEAD")];
        if let (Some(branch), Some(common)) = (
            git(&["symbolic-ref", "-q", "HEAD"]),
            git(&["rev-parse", "--git-common-dir"]),
        ) {
            watch.push(format!("{common}/{branch}"));
            watch.push(format!("{common}/packed-refs"));
        }
        for path in watch {
            if std::path::Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    if let Some(c) = git(&["rev-parse", "--short=12", "HEAD"]) {
        return c;
    }
    match std::env::var("RESEAL_COMMIT") {
        Ok(c) if !c.trim().is_empty() => c.trim().to_owned(),
        _ => "unknown".to_owned(),
    }
}
