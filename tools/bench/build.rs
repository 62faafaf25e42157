//! Records the aws-lc-rs version from the workspace's Cargo.lock, for benchmark reports.

fn main() {
    let lock = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock");
    println!("cargo:rerun-if-changed={lock}");
    if let Ok(text) = std::fs::read_to_string(lock) {
        if let Some(v) = text
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
}
