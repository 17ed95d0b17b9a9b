//! Resume from suspend: logind's `PrepareForSleep(false)` on the system bus means the
//! machine just woke up, and anything may have changed while it slept (a different
//! network, a docking station's disks, updates applied by another OS). A full collection
//! follows.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::scheduler::Trigger;
use super::Shared;

/// Listens for resume until the trigger channel closes. Without a system bus (containers,
/// minimal systems) it logs once and returns: the interval still keeps posture fresh.
#[cfg(target_os = "linux")]
pub async fn run(shared: Arc<Shared>, triggers: mpsc::Sender<Trigger>) {
    use futures_util::StreamExt as _;

    let connection = match zbus::Connection::system().await {
        Ok(connection) => connection,
        Err(e) => {
            tracing::info!(error = %e, "no system bus: resume from suspend is not watched");
            return;
        }
    };
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .sender("org.freedesktop.login1")
        .and_then(|b| b.interface("org.freedesktop.login1.Manager"))
        .and_then(|b| b.member("PrepareForSleep"))
        .and_then(|b| b.path("/org/freedesktop/login1"))
        .map(|b| b.build());
    let rule = match rule {
        Ok(rule) => rule,
        Err(e) => {
            tracing::warn!(error = %e, "cannot build the logind match rule");
            return;
        }
    };
    let mut stream = match zbus::MessageStream::for_match_rule(rule, &connection, None).await {
        Ok(stream) => stream,
        Err(e) => {
            tracing::info!(error = %e, "cannot subscribe to logind: resume is not watched");
            return;
        }
    };
    tracing::info!("watching logind for resume from suspend");
    shared.activity.watching_logind();
    while let Some(message) = stream.next().await {
        let Ok(message) = message else { continue };
        // The argument is true before sleeping and false after waking.
        match message.body().deserialize::<bool>() {
            Ok(false) => {
                if triggers
                    .send(Trigger::full("resumed from suspend"))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Ok(true) => tracing::debug!("going to sleep"),
            Err(e) => tracing::debug!(error = %e, "unexpected PrepareForSleep signal"),
        }
    }
}

/// Resume is not watched on this OS yet.
#[cfg(not(target_os = "linux"))]
pub async fn run(_shared: Arc<Shared>, _triggers: mpsc::Sender<Trigger>) {}
