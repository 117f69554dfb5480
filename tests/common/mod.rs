//! Helpers shared by the tests that run the `erpsync` binary as a process.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::Child;

pub const BIN: &str = env!("CARGO_BIN_EXE_erpsync");

/// A free loopback port (bound, then released for the process under test to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child process killed and reaped when the test ends, pass or fail.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
