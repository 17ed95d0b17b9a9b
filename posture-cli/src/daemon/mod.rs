//! `posture daemon`: keeps posture fresh, answers local callers with fresh signed
//! evidence, delivers evidence and compliance-change events without losing any.
//!
//! ## Shape
//! One current-thread tokio runtime. Tasks: the local API ([`api`]), the schedule
//! ([`scheduler`]), delivery of the durable outbox ([`delivery`], [`outbox`]), system-change
//! watchers ([`watch`], [`sleep`]) and, under systemd with `WatchdogSec=`, the watchdog
//! ([`notify`]). Collection (one thread per check) runs in a short-lived child process
//! ([`collector`]); file I/O runs on the blocking pool, whose threads exit after a few
//! idle seconds.
//!
//! Idle means idle: between scheduled collections the process waits on one timer, the
//! inotify fd, the D-Bus socket, the API socket and signals. The only other timer is the
//! watchdog, and only when systemd asks for it.
//!
//! ## Signals
//! SIGHUP reloads the config (and re-collects with it); SIGTERM or SIGINT stop the
//! daemon: the API closes, delivery gets a few seconds to flush the outbox, and whatever
//! is still queued stays on disk for the next start.

//! ## Windows
//! The same daemon runs in the foreground from a console (Ctrl+C stops it) or, with
//! `--service`, under the Service Control Manager (`service`: stop and shutdown stop
//! it, `paramchange` reloads). Its local API is the named pipe `\\.\pipe\posture`
//! (`winpipe`), with the same HTTP protocol and the same kind of peer checks
//! (`[daemon] allow_sids`).

pub mod activity;
pub mod api;
pub mod collector;
pub mod delivery;
pub mod evidence_port;
pub mod log_file;
pub mod memory;
pub mod notify;
pub mod outbox;
pub mod peer;
pub mod scheduler;
#[cfg(windows)]
pub mod service;
pub mod sleep;
pub mod watch;
#[cfg(windows)]
pub mod winpipe;

#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use posture_agent::config::Config;
use posture_agent::daemon_config::{DaemonConfig, SettingsError};
use posture_agent::{Assessment, Compliance};
use posture_core::Report;
#[cfg(unix)]
use tokio::net::UnixListener;
#[cfg(unix)]
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch as channel, Mutex, Notify};

use evidence_port::DeviceEvidence;
use outbox::{Outbox, OutboxError};
use scheduler::Trigger;

/// `posture daemon` arguments.
#[derive(Debug, clap::Args)]
pub struct DaemonArgs {
    /// Log format: text (journald-friendly) or json.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Log level: error, warn, info, debug or trace.
    #[arg(long, default_value = "info", value_name = "LEVEL")]
    log_level: String,
    /// Run under the Windows Service Control Manager (what the service definition of
    /// `packaging/windows/install.ps1` runs); logs go to `daemon.log` in the state
    /// directory. Without it the daemon runs in the foreground until Ctrl+C.
    #[cfg(windows)]
    #[arg(long)]
    service: bool,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line per event; without timestamps under journald, which adds its own.
    Text,
    /// One JSON object per line.
    Json,
}

/// Errors that stop the daemon from starting.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A `[daemon]` setting.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// A directory could not be created.
    #[error("cannot create {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The socket could not be set up.
    #[error("socket {path}: {source}")]
    Socket {
        /// The socket path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Another daemon answers on the socket.
    #[cfg(unix)]
    #[error("another posture daemon is already listening on {0}")]
    AlreadyRunning(PathBuf),
    /// Another process already owns the named pipe (Windows).
    #[cfg(windows)]
    #[error("another process already owns the pipe {0} (a posture daemon, or a process squatting its name); not starting")]
    PipeTaken(PathBuf),
    /// The Service Control Manager.
    #[cfg(windows)]
    #[error("service control manager: {0}")]
    Service(std::io::Error),
    /// `socket_group` names no group.
    #[cfg(unix)]
    #[error("daemon.socket_group: no group named {0:?} in /etc/group")]
    NoGroup(String),
    /// No place for state, key or socket.
    #[error(transparent)]
    Paths(#[from] posture_agent::paths::NoHome),
    /// No socket path: set one.
    #[error("daemon.socket is not set and XDG_RUNTIME_DIR is not set")]
    NoSocket,
    /// The device key.
    #[error("device key: {0}")]
    Key(#[from] posture_agent::key::DeviceKeyError),
    /// The compliance policy.
    #[error(transparent)]
    Policy(#[from] posture_agent::compliance::PolicyFileError),
    /// The outbox.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// The runtime or signal handlers could not be set up.
    #[error("cannot start: {0}")]
    Start(std::io::Error),
    /// `--log-level` is not a level.
    #[error("invalid --log-level {0:?} (use error, warn, info, debug or trace)")]
    LogLevel(String),
}

/// What the tasks share.
#[derive(Debug)]
pub struct Shared {
    /// The current configuration (replaced on SIGHUP).
    pub settings: channel::Sender<Arc<Config>>,
    /// The latest report.
    pub report: channel::Sender<Option<Arc<Report>>>,
    /// The latest report's compliance under the policy (what `posture status` shows and
    /// what compliance events say).
    pub assessment: channel::Sender<Option<Arc<Assessment>>>,
    /// Evidence signing, policy and CAEP.
    pub evidence: DeviceEvidence,
    /// The durable outbox.
    pub outbox: Arc<Outbox>,
    /// Woken when an item is queued.
    pub outbox_wake: Notify,
    /// The last known overall compliance (persisted in the state directory).
    pub compliance: Mutex<Option<bool>>,
    /// The state directory.
    pub state_dir: PathBuf,
    /// What the daemon has done since start (reported by `/v1/health`).
    pub activity: activity::Recorder,
    /// Notified on every local API connection (memory is released when it goes quiet).
    pub api_activity: Arc<Notify>,
    /// Runs collections in child processes.
    pub collector: collector::Collector,
    /// Kept so the trigger channel never closes.
    pub triggers: mpsc::Sender<Trigger>,
}

/// Runs the daemon until SIGTERM/SIGINT (Ctrl+C, or the service's stop on Windows).
pub fn run(
    config_path: Option<PathBuf>,
    config: Config,
    args: DaemonArgs,
) -> Result<(), DaemonError> {
    #[cfg(windows)]
    if args.service {
        let paths = config.paths(None)?;
        create_state_dir(&paths.state_dir)?;
        let log = paths.state_dir.join("daemon.log");
        let file = log_file::RotatingLog::open(&log, log_file::MAX_BYTES)
            .map_err(|source| DaemonError::Dir { path: log, source })?;
        init_logging(args.log_format, &args.log_level, Some(file))?;
        config.daemon.validate()?;
        return service::run(move |events| run_runtime(config_path, config, Some(events)));
    }
    init_logging(args.log_format, &args.log_level, None)?;
    config.daemon.validate()?;
    run_runtime(config_path, config, None)
}

/// How the SCM talks to the daemon (Windows; never on Unix).
#[cfg(windows)]
type ServiceEvents = Option<&'static service::Events>;
#[cfg(not(windows))]
type ServiceEvents = Option<std::convert::Infallible>;

fn run_runtime(
    config_path: Option<PathBuf>,
    config: Config,
    service: ServiceEvents,
) -> Result<(), DaemonError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        // Collections are rare and short; idle blocking threads go away quickly.
        .max_blocking_threads(4)
        .thread_keep_alive(Duration::from_secs(5))
        .build()
        .map_err(DaemonError::Start)?;
    let result = runtime.block_on(main_loop(config_path, config, service));
    // A check stuck past its timeout must not hold up the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// What stops or reloads the daemon.
enum Event {
    Reload,
    Stop,
}

/// SIGHUP reloads; SIGTERM and SIGINT stop.
#[cfg(unix)]
struct Signals {
    hangup: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn new(_service: ServiceEvents) -> Result<Self, DaemonError> {
        Ok(Signals {
            hangup: signal(SignalKind::hangup()).map_err(DaemonError::Start)?,
            terminate: signal(SignalKind::terminate()).map_err(DaemonError::Start)?,
            interrupt: signal(SignalKind::interrupt()).map_err(DaemonError::Start)?,
        })
    }

    async fn next(&mut self) -> Event {
        tokio::select! {
            _ = self.hangup.recv() => Event::Reload,
            _ = self.terminate.recv() => Event::Stop,
            _ = self.interrupt.recv() => Event::Stop,
        }
    }
}

/// Ctrl+C (or Ctrl+Break, closing the console) stops; under the SCM its stop and
/// shutdown stop and `paramchange` reloads.
#[cfg(windows)]
struct Signals {
    ctrl_c: tokio::signal::windows::CtrlC,
    ctrl_break: tokio::signal::windows::CtrlBreak,
    service: ServiceEvents,
}

#[cfg(windows)]
impl Signals {
    fn new(service: ServiceEvents) -> Result<Self, DaemonError> {
        Ok(Signals {
            ctrl_c: tokio::signal::windows::ctrl_c().map_err(DaemonError::Start)?,
            ctrl_break: tokio::signal::windows::ctrl_break().map_err(DaemonError::Start)?,
            service,
        })
    }

    async fn next(&mut self) -> Event {
        let service = self.service;
        let stop = async {
            match service {
                Some(events) => events.stop.notified().await,
                None => std::future::pending().await,
            }
        };
        let reload = async {
            match service {
                Some(events) => events.reload.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.ctrl_c.recv() => Event::Stop,
            _ = self.ctrl_break.recv() => Event::Stop,
            () = stop => Event::Stop,
            () = reload => Event::Reload,
        }
    }
}

async fn main_loop(
    config_path: Option<PathBuf>,
    config: Config,
    service: ServiceEvents,
) -> Result<(), DaemonError> {
    let mut signals = Signals::new(service)?;

    let paths = config.paths(None)?;
    let state_dir = paths.state_dir.clone();
    create_state_dir(&state_dir)?;
    // The TPM key (with its attestation key, for quotes) where there is a usable TPM,
    // else the software key as `[key]` allows; the same key `posture report` uses.
    let key = posture_agent::key::open(&config.key, &paths.key_dir, true)?;
    if let Some(reason) = &key.fallback_reason {
        tracing::warn!(
            reason = %reason,
            fix = key.fallback_fix.as_deref().unwrap_or(""),
            "signing with a software key: the TPM is not usable"
        );
    }
    let compliance = Compliance::load(config.policy_file())?;
    let evidence = DeviceEvidence::new(
        key,
        config.key.quote_pcrs.clone(),
        config.daemon.evidence_ttl,
        compliance,
    );
    let outbox = Outbox::open(
        &state_dir.join("outbox"),
        config.daemon.outbox_max_items,
        config.daemon.outbox_max_bytes,
    )?;
    let socket_path = paths.socket.clone().ok_or(DaemonError::NoSocket)?;
    #[cfg(unix)]
    let (listener, socket_path) = bind(&config.daemon, socket_path)?;
    #[cfg(windows)]
    let (first_instance, own_sid) = bind_pipe(&config.daemon, &socket_path)?;
    tracing::info!(
        socket = %socket_path.display(),
        state = %state_dir.display(),
        pid = std::process::id(),
        "posture daemon starting"
    );

    let (triggers, trigger_rx) = mpsc::channel(64);
    let (shutdown, shutdown_rx) = channel::channel(false);
    let watch_root = config
        .daemon
        .root
        .clone()
        .unwrap_or_else(|| PathBuf::from("/"));
    let watching = config.daemon.watch;
    let shared = Arc::new(Shared {
        settings: channel::Sender::new(Arc::new(config)),
        report: channel::Sender::new(None),
        assessment: channel::Sender::new(None),
        evidence,
        outbox: Arc::new(outbox),
        outbox_wake: Notify::new(),
        compliance: Mutex::new(scheduler::load_compliance(&state_dir)),
        api_activity: Arc::new(Notify::new()),
        collector: collector::Collector::new(state_dir.clone()),
        state_dir,
        activity: activity::Recorder::default(),
        triggers: triggers.clone(),
    });

    #[cfg(unix)]
    let api = tokio::spawn(api::serve(
        listener,
        Arc::clone(&shared),
        shutdown_rx.clone(),
    ));
    #[cfg(windows)]
    let api = tokio::spawn(api::serve_pipe(
        first_instance,
        socket_path.clone(),
        own_sid,
        Arc::clone(&shared),
        shutdown_rx.clone(),
    ));
    tokio::spawn(memory::release_when_api_is_quiet(
        Arc::clone(&shared.api_activity),
        shutdown_rx.clone(),
    ));
    if watching {
        // Watchers start before the first collection so no change slips between them.
        tokio::spawn(watch::run(watch_root, triggers.clone()));
        tokio::spawn(sleep::run(Arc::clone(&shared), triggers.clone()));
    }
    scheduler::collect(&shared, None, "start").await;
    let schedule = tokio::spawn(scheduler::run(
        Arc::clone(&shared),
        trigger_rx,
        shutdown_rx.clone(),
    ));
    let delivery = tokio::spawn(delivery::run(Arc::clone(&shared), shutdown_rx.clone()));
    if let Some(interval) = notify::watchdog_interval() {
        tokio::spawn(notify::watchdog(interval, shutdown_rx.clone()));
    }
    notify::ready("serving");
    #[cfg(windows)]
    if service.is_some() {
        service::running();
    }
    tracing::info!("posture daemon ready");

    // Reloads until a stop.
    while let Event::Reload = signals.next().await {
        reload(&shared, config_path.as_deref());
    }

    tracing::info!("stopping");
    notify::stopping();
    let _ = shutdown.send(true);
    let _ = api.await;
    let _ = schedule.await;
    let _ = delivery.await;
    #[cfg(unix)]
    if let Err(e) = std::fs::remove_file(&socket_path) {
        tracing::debug!(error = %e, "socket already gone");
    }
    tracing::info!(queued = shared.outbox.len(), "stopped");
    Ok(())
}

fn reload(shared: &Shared, config_path: Option<&Path>) {
    notify::reloading();
    match Config::load(config_path) {
        Ok(new) => {
            // Cloned: holding the channel's read guard across `send_replace` would deadlock.
            let old = shared.settings.borrow().daemon.clone();
            if new.daemon.socket != old.socket
                || new.daemon.state_dir != old.state_dir
                || new.daemon.max_connections != old.max_connections
                || new.daemon.outbox_max_items != old.outbox_max_items
                || new.daemon.outbox_max_bytes != old.outbox_max_bytes
                || new.daemon.root != old.root
                || new.daemon.watch != old.watch
            {
                tracing::warn!("socket, state, connection, outbox and watch settings take effect at the next restart");
            }
            // A policy that does not load keeps the old one: a typo must not turn
            // compliance events off.
            match Compliance::load(new.policy_file()) {
                Ok(compliance) => shared.evidence.set_compliance(compliance),
                Err(e) => {
                    tracing::error!(error = %e, "reload failed; keeping the previous configuration");
                    return;
                }
            }
            shared.settings.send_replace(Arc::new(new));
            tracing::info!("configuration reloaded");
            if shared
                .triggers
                .try_send(Trigger::full("configuration reloaded"))
                .is_err()
            {
                tracing::debug!("a collection is already pending");
            }
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "reload failed; keeping the previous configuration")
        }
    }
    notify::ready("serving");
}

/// Binds the API socket: removes a stale one, refuses to start when another daemon
/// answers, and restricts access (0600, or 0660 with `socket_group`).
#[cfg(unix)]
fn bind(daemon: &DaemonConfig, path: PathBuf) -> Result<(UnixListener, PathBuf), DaemonError> {
    let socket_err = |source| DaemonError::Socket {
        path: path.clone(),
        source,
    };
    let group = match &daemon.socket_group {
        Some(name) => Some(peer::group_id(name).ok_or_else(|| DaemonError::NoGroup(name.clone()))?),
        None => None,
    };
    if let Some(parent) = path.parent() {
        if !parent.exists() {
            create_dir(parent, if group.is_some() { 0o755 } else { 0o700 })?;
        }
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            return Err(DaemonError::AlreadyRunning(path));
        }
        std::fs::remove_file(&path).map_err(socket_err)?;
    }
    let listener = UnixListener::bind(&path).map_err(socket_err)?;
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).map_err(socket_err)?;
    if let Some(gid) = group {
        // Under systemd with `Group=` the socket already has the group; chown(2) then
        // is not needed (and the unit's system call filter refuses it).
        let current =
            std::os::unix::fs::MetadataExt::gid(&std::fs::metadata(&path).map_err(socket_err)?);
        if current != gid {
            std::os::unix::fs::chown(&path, None, Some(gid)).map_err(socket_err)?;
        }
    }
    Ok((listener, path))
}

/// The state directory, owner-only (0700 on Unix; on Windows a protected DACL for the
/// daemon's user, SYSTEM and Administrators).
fn create_state_dir(path: &Path) -> Result<(), DaemonError> {
    #[cfg(unix)]
    {
        create_dir(path, 0o700)
    }
    #[cfg(not(unix))]
    {
        posture_core::files::create_private_dir(path).map_err(|source| DaemonError::Dir {
            path: path.to_owned(),
            source,
        })
    }
}

/// Creates the pipe's first instance: `FILE_FLAG_FIRST_PIPE_INSTANCE` makes this fail
/// when any process (another daemon, or one squatting the name) already owns the name.
/// Returns it with the daemon's own SID (which the allow-list defaults to).
#[cfg(windows)]
fn bind_pipe(
    daemon: &DaemonConfig,
    pipe: &Path,
) -> Result<(tokio::net::windows::named_pipe::NamedPipeServer, String), DaemonError> {
    let socket_err = |source| DaemonError::Socket {
        path: pipe.to_owned(),
        source,
    };
    if posture_agent::daemon_config::pipe_name(pipe).is_none() {
        return Err(socket_err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a named pipe path (\\\\.\\pipe\\<name>)",
        )));
    }
    if winpipe::exists(pipe) {
        return Err(DaemonError::PipeTaken(pipe.to_owned()));
    }
    let own_sid = winpipe::own_sid().map_err(socket_err)?;
    let sddl = peer::pipe_sddl(daemon, &own_sid);
    match winpipe::create(pipe, true, &sddl) {
        Ok(first) => Ok((first, own_sid)),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            Err(DaemonError::PipeTaken(pipe.to_owned()))
        }
        Err(e) => Err(socket_err(e)),
    }
}

#[cfg(unix)]
fn create_dir(path: &Path, mode: u32) -> Result<(), DaemonError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(|source| DaemonError::Dir {
            path: path.to_owned(),
            source,
        })
}

/// Logs to standard error, or (the Windows service, which has none) to `file`.
fn init_logging(
    format: LogFormat,
    level: &str,
    file: Option<log_file::RotatingLog>,
) -> Result<(), DaemonError> {
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    let level: tracing::level_filters::LevelFilter = level
        .parse()
        .map_err(|_| DaemonError::LogLevel(level.to_owned()))?;
    // journald timestamps every line itself and shows no colours.
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let writer = match file {
        Some(file) => BoxMakeWriter::new(std::sync::Mutex::new(file)),
        None => BoxMakeWriter::new(std::io::stderr),
    };
    let builder = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_max_level(level)
        .with_ansi(false)
        .with_target(false);
    let result = match (format, journald) {
        (LogFormat::Json, _) => builder.json().flatten_event(true).try_init(),
        (LogFormat::Text, true) => builder.without_time().try_init(),
        (LogFormat::Text, false) => builder.try_init(),
    };
    if let Err(e) = result {
        eprintln!("posture: logging is already set up: {e}");
    }
    Ok(())
}

/// Runs blocking file I/O off the runtime thread.
pub async fn blocking<T, E, F>(f: F) -> Result<T, E>
where
    F: FnOnce() -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static + From<OutboxError>,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => Err(E::from(OutboxError::Io {
            path: PathBuf::new(),
            source: std::io::Error::other(e.to_string()),
        })),
    }
}

/// Resolves when shutdown is requested (or the sender is gone).
pub async fn stopped(shutdown: &mut channel::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// A random duration in `[0, max)`, for jitter.
pub fn random_below(max: Duration) -> Duration {
    let nanos = max.as_nanos().min(u128::from(u64::MAX)) as u64;
    if nanos == 0 {
        return Duration::ZERO;
    }
    let mut bytes = [0u8; 8];
    // Without OS randomness there is simply no jitter.
    if getrandom::getrandom(&mut bytes).is_err() {
        return Duration::ZERO;
    }
    Duration::from_nanos(u64::from_le_bytes(bytes) % nanos)
}
