//! Small helpers shared across modules.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch: the time unit stored in the database.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Turns Nagle's algorithm off on every TCP socket this process holds.
///
/// sqlx 0.9.0 stopped setting TCP_NODELAY on its database sockets (sqlx#4335, fixed
/// upstream but not yet released), so a batched statement written in two pieces waits for
/// the server's delayed ACK: 40 ms per status transaction over TCP, 14× slower than over
/// the Unix socket on the same machine. The pool calls this after each new connection;
/// every socket here wants NODELAY anyway (hyper sets it on its own). Remove once sqlx
/// sets it again.
pub fn set_tcp_nodelay_on_all_sockets() {
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else { return };
    for entry in fds.flatten() {
        let is_socket = std::fs::read_link(entry.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:"));
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse::<libc::c_int>().ok()) else { continue };
        if !is_socket {
            continue;
        }
        let one: libc::c_int = 1;
        // SAFETY: setsockopt on a descriptor of this process with a valid pointer to an int
        // and its size; on a non-TCP socket it fails with EOPNOTSUPP, which is ignored.
        unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}
