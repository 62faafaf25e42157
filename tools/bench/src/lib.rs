//! Performance tooling for reseal (`reseal-bench`): the crypto floor, the
//! benchmark set-up and the load generator. One library, so the criterion
//! benches, the command line and `scripts/bench.sh` all measure the same work.
//! It uses only reseal's public API and is not part of the product binary.
//!
//! * [`floor`]: the primitive work of one re-encryption done directly with
//!   aws-lc-rs on one thread: what no implementation can go below.
//! * [`setup`]: keys and a configuration with routes of 1, 10 and 100 consumers.
//! * [`load`]: drives a running server over loopback and reports throughput,
//!   HDR latency percentiles, server CPU per request and server RSS.
//! * [`pacer`]: when the open loop's calls are due (uniform or Poisson) and a
//!   timer precise enough to release them then.
//! * [`procfs`]: CPU time and memory of a process or thread, from `/proc`.
//! * [`attack`]: the floods of issue 22 and a legitimate client beside them,
//!   for the attack tests (`tests/attack.rs`) and the soak (`scripts/soak.sh`).

pub mod attack;
pub mod floor;
pub mod load;
pub mod pacer;
pub mod procfs;
pub mod setup;

/// The Amazon Connect key id the benchmark's Connect-shaped inputs carry.
pub const CONNECT_KEY_ID: &str = "6f1f2d3c-5a7b-4c8d-9e0f-1a2b3c4d5e6f";

/// The fan-outs the targets name.
pub const FAN_OUTS: [usize; 3] = [1, 10, 100];

/// An Amazon Connect-shaped message: 0x0378 (format v1, signed, not committed),
/// frame length 4096, empty encryption context, one EDK from `sender`.
pub fn connect_message(
    sender: &reseal::keys::RawRsaKeyring,
    plaintext: &[u8],
) -> Result<Vec<u8>, reseal::esdk::Error> {
    reseal::keys::connect::encrypt(sender, plaintext)
}
