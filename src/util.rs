//! Small helpers shared across modules.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch: the time unit stored in the database.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Turns Nagle's algorithm off on every TCP socket this process holds.
///
/// sqlx 0.9.0 does not set TCP_NODELAY on its database sockets (sqlx#4335), so a batched
/// statement written in two pieces waits for the server's delayed ACK (tens of
/// milliseconds per status transaction over TCP). The pool calls this after each new
/// connection; every socket here wants NODELAY anyway (hyper sets it on its own). Remove
/// once a released sqlx sets it again.
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

/// Keeps this process's heap on 4 KiB pages (`PR_SET_THP_DISABLE`).
///
/// mimalloc asks for transparent huge pages on its arenas, and the daemon's heap churns: a
/// fault then zeroes a whole 2 MiB page, and freed memory goes back to the kernel and comes
/// again, so zeroing pages costs CPU and the resident set grows; on small pages the drain
/// is faster and smaller (BENCHMARKS.md). Called first thing in `main`; the setting holds
/// for every later page fault of the process.
pub fn no_transparent_huge_pages() {
    // SAFETY: prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) takes integer arguments only and
    // changes a flag of this process; failure (an old kernel) leaves the default.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_THP_DISABLE,
            1 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "could not turn transparent huge pages off");
    }
}
