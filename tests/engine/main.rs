//! The ESDK engine against itself, the public vectors, and hostile input.

#[path = "../common/mod.rs"]
mod common;

mod inspect;
mod negative;
mod roundtrip;
mod vectors;
