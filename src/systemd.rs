//! The systemd notify protocol, spoken directly: a datagram to `$NOTIFY_SOCKET` per state
//! change. `READY=1` only once config, migrations and the actor tree are up; `WATCHDOG=1`
//! only while the poller and the status writer prove they are alive; `STOPPING=1` when
//! the drain begins. Without `$NOTIFY_SOCKET` every call is a no-op.

use crate::actors::Ctx;
use crate::actors::status::StatusMsg;
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::time::Duration;

/// Sends `state` (newline-separated `KEY=VALUE` lines) to the service manager.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let Ok(sock) = UnixDatagram::unbound() else { return };
    let bytes = path.as_encoded_bytes();
    let result = if let Some(name) = bytes.strip_prefix(b"@") {
        // Abstract namespace socket.
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name).and_then(|a| sock.send_to_addr(state.as_bytes(), &a))
    } else {
        sock.send_to(state.as_bytes(), std::path::Path::new(&path))
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}

/// The watchdog interval systemd asked for, if any (`WATCHDOG_USEC`, for this process).
pub fn watchdog_interval() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Whether the actor tree is making progress: the poller went round recently and the
/// status writer answers a flush.
pub async fn healthy(ctx: &Ctx, within: Duration) -> bool {
    if ctx.since_progress(&ctx.poller_progress) > within {
        return false;
    }
    let Some(status) = ctx.lookup::<StatusMsg>("status") else { return false };
    matches!(status.call(StatusMsg::Sync, Some(within)).await, Ok(ractor::rpc::CallResult::Success(())))
}

/// Pings the watchdog at half its interval while the daemon is healthy.
pub fn spawn_watchdog(ctx: Arc<Ctx>) -> Option<tokio::task::JoinHandle<()>> {
    let interval = watchdog_interval()? / 2;
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        loop {
            tick.tick().await;
            if healthy(&ctx, interval).await {
                notify("WATCHDOG=1");
            } else {
                tracing::error!("actor tree is not making progress; withholding the watchdog ping");
            }
        }
    }))
}
