//! systemd notifications (`Type=notify`): READY, RELOADING, STOPPING, STATUS and the
//! watchdog. Without `NOTIFY_SOCKET` (not under systemd) every call is a no-op; off Linux
//! there is no systemd and every call is a no-op too (the Windows service reports its
//! state to the service control manager itself, see `service`).

use std::time::Duration;

#[cfg(target_os = "linux")]
use sd_notify::NotifyState;
use tokio::sync::watch;

use super::stopped;

#[cfg(target_os = "linux")]
fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

/// Start-up is finished: the socket is listening and the first report is available.
pub fn ready(status: &str) {
    #[cfg(target_os = "linux")]
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
    #[cfg(not(target_os = "linux"))]
    let _ = status;
}

/// The configuration is being reloaded (followed by [`ready`]).
pub fn reloading() {
    #[cfg(target_os = "linux")]
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// Shutting down.
pub fn stopping() {
    #[cfg(target_os = "linux")]
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// The watchdog interval systemd asked for (`WatchdogSec=`), if any.
pub fn watchdog_interval() -> Option<Duration> {
    #[cfg(target_os = "linux")]
    {
        let mut usec = 0u64;
        sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec))
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// Pets the watchdog at half its interval until shutdown. The runtime answering this
/// timer is the liveness systemd checks. Only started when `WATCHDOG_USEC` is set.
pub async fn watchdog(interval: Duration, mut shutdown: watch::Receiver<bool>) {
    let period = (interval / 2).max(Duration::from_millis(500));
    loop {
        tokio::select! {
            () = tokio::time::sleep(period) => {
                #[cfg(target_os = "linux")]
                send(&[NotifyState::Watchdog]);
            }
            () = stopped(&mut shutdown) => return,
        }
    }
}
