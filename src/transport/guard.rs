//! HTTP/2 frame accounting on a connection's incoming bytes: what h2 itself
//! does not rate-limit. The guard reads the frame headers as the bytes pass
//! (it never changes them) and says when the client resets more streams per
//! second than `server.http2.max_resets_per_second`, or sends more control
//! frames (SETTINGS, PING, PRIORITY, RST_STREAM, empty DATA or CONTINUATION)
//! per second than `server.http2.max_control_frames_per_second`. A
//! connection that does not start with the HTTP/2 preface (HTTP/1.1) is
//! not looked at.

use std::time::{Duration, Instant};

const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const DATA: u8 = 0x0;
const PRIORITY: u8 = 0x2;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;

/// Why the guard closed a connection (a metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flood {
    Resets,
    ControlFrames,
}

impl Flood {
    pub fn as_str(self) -> &'static str {
        match self {
            Flood::Resets => "reset_flood",
            Flood::ControlFrames => "control_flood",
        }
    }
}

#[derive(Debug)]
enum State {
    /// Matching the client preface; `usize` bytes of it seen.
    Preface(usize),
    /// Reading a 9-byte frame header.
    Header { have: usize, bytes: [u8; 9] },
    /// Skipping a frame's payload.
    Payload(usize),
    /// Not HTTP/2, or already over a limit.
    Off,
}

/// The frame accounting of one connection.
#[derive(Debug)]
pub struct FrameGuard {
    state: State,
    max_resets: u32,
    max_control: u32,
    window: Instant,
    resets: u32,
    control: u32,
    tripped: Option<Flood>,
}

impl FrameGuard {
    pub fn new(max_resets_per_second: u32, max_control_frames_per_second: u32) -> Self {
        FrameGuard {
            state: State::Preface(0),
            max_resets: max_resets_per_second.max(1),
            max_control: max_control_frames_per_second.max(1),
            window: Instant::now(),
            resets: 0,
            control: 0,
            tripped: None,
        }
    }

    /// A guard that never looks (HTTP/1.1-only listeners).
    pub fn off() -> Self {
        FrameGuard {
            state: State::Off,
            ..FrameGuard::new(1, 1)
        }
    }

    /// Accounts for bytes read from the client; the flood, once one is seen.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Option<Flood> {
        while !bytes.is_empty() && self.tripped.is_none() {
            match &mut self.state {
                State::Off => break,
                State::Preface(seen) => {
                    let n = (PREFACE.len() - *seen).min(bytes.len());
                    if bytes[..n] != PREFACE[*seen..*seen + n] {
                        self.state = State::Off;
                        break;
                    }
                    *seen += n;
                    bytes = &bytes[n..];
                    if *seen == PREFACE.len() {
                        self.state = State::Header {
                            have: 0,
                            bytes: [0; 9],
                        };
                    }
                }
                State::Header { have, bytes: hdr } => {
                    let n = (9 - *have).min(bytes.len());
                    hdr[*have..*have + n].copy_from_slice(&bytes[..n]);
                    *have += n;
                    bytes = &bytes[n..];
                    if *have == 9 {
                        let h = *hdr;
                        let len =
                            usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
                        self.frame(h[3], h[4], len);
                        self.state = if len == 0 {
                            State::Header {
                                have: 0,
                                bytes: [0; 9],
                            }
                        } else {
                            State::Payload(len)
                        };
                    }
                }
                State::Payload(left) => {
                    let n = (*left).min(bytes.len());
                    *left -= n;
                    bytes = &bytes[n..];
                    if *left == 0 {
                        self.state = State::Header {
                            have: 0,
                            bytes: [0; 9],
                        };
                    }
                }
            }
        }
        self.tripped
    }

    fn frame(&mut self, kind: u8, flags: u8, len: usize) {
        let now = Instant::now();
        if now.duration_since(self.window) >= Duration::from_secs(1) {
            self.window = now;
            self.resets = 0;
            self.control = 0;
        }
        let control = match kind {
            RST_STREAM => {
                self.resets += 1;
                true
            }
            SETTINGS | PING | PRIORITY => true,
            DATA => len == 0 && flags & END_STREAM == 0,
            CONTINUATION => len == 0,
            _ => false,
        };
        if control {
            self.control += 1;
        }
        if self.resets > self.max_resets {
            self.tripped = Some(Flood::Resets);
        } else if self.control > self.max_control {
            self.tripped = Some(Flood::ControlFrames);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn counts_resets_per_second_across_any_split_of_the_bytes() {
        let mut bytes = PREFACE.to_vec();
        bytes.extend(frame(SETTINGS, 0, 0, &[]));
        for id in 0..12u32 {
            bytes.extend(frame(0x1, 0x4, id * 2 + 1, &[0x82, 0x86]));
            bytes.extend(frame(RST_STREAM, 0, id * 2 + 1, &[0, 0, 0, 8]));
        }
        // Fed one byte at a time: the same answer.
        let mut g = FrameGuard::new(10, 1000);
        let tripped = bytes.iter().find_map(|b| g.feed(std::slice::from_ref(b)));
        assert_eq!(tripped, Some(Flood::Resets));
        let mut g = FrameGuard::new(12, 1000);
        assert_eq!(g.feed(&bytes), None, "12 resets are within 12 per second");
    }

    #[test]
    fn counts_control_frames_and_skips_payloads() {
        let mut bytes = PREFACE.to_vec();
        // A DATA frame whose payload looks like frame headers is skipped whole.
        bytes.extend(frame(
            DATA,
            END_STREAM,
            1,
            &frame(PING, 0, 0, &[0; 8]).repeat(50),
        ));
        let mut g = FrameGuard::new(100, 5);
        assert_eq!(g.feed(&bytes), None);
        for _ in 0..6 {
            bytes = frame(PING, 0, 0, &[0; 8]);
            if let Some(f) = g.feed(&bytes) {
                assert_eq!(f, Flood::ControlFrames);
                return;
            }
        }
        panic!("six PINGs in a second with a limit of five");
    }

    #[test]
    fn http1_is_not_looked_at() {
        let mut g = FrameGuard::new(1, 1);
        let req = b"POST /v1/reencrypt HTTP/1.1\r\nHost: x\r\n\r\n".repeat(100);
        assert_eq!(g.feed(&req), None);
    }
}
