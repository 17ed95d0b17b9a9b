//! `posture daemon --service`: the daemon under the Windows Service Control Manager.
//!
//! `StartServiceCtrlDispatcherW` connects this process to the SCM and calls
//! [`service_main`] on a thread of its own; that reports `SERVICE_START_PENDING`, runs
//! the daemon (the same code as in the foreground) and reports `SERVICE_STOPPED` with
//! the daemon's result. Stop and shutdown controls become the daemon's graceful stop
//! (as SIGTERM on Unix), `paramchange` (`sc.exe control posture paramchange`) a config
//! reload (as SIGHUP). The daemon reports `SERVICE_RUNNING` once it serves.
//!
//! Raw `windows-sys` calls (a handful) rather than the `windows-service` crate: it would
//! add a crate and its own `windows-sys` version for what is about 150 lines here.

use std::sync::{Mutex, OnceLock, PoisonError};

use tokio::sync::Notify;
use windows_sys::Win32::Foundation::{
    ERROR_CALL_NOT_IMPLEMENTED, ERROR_SERVICE_SPECIFIC_ERROR, NO_ERROR,
};
use windows_sys::Win32::System::Services::{
    RegisterServiceCtrlHandlerExW, SetServiceStatus, StartServiceCtrlDispatcherW,
    SERVICE_ACCEPT_PARAMCHANGE, SERVICE_ACCEPT_SHUTDOWN, SERVICE_ACCEPT_STOP,
    SERVICE_CONTROL_INTERROGATE, SERVICE_CONTROL_PARAMCHANGE, SERVICE_CONTROL_SHUTDOWN,
    SERVICE_CONTROL_STOP, SERVICE_RUNNING, SERVICE_START_PENDING, SERVICE_STATUS,
    SERVICE_STATUS_CURRENT_STATE, SERVICE_STOPPED, SERVICE_STOP_PENDING, SERVICE_TABLE_ENTRYW,
    SERVICE_WIN32_OWN_PROCESS,
};

use super::DaemonError;

/// The service name `packaging/windows/install.ps1` registers. An own-process service
/// may use any name in its table; this one shows up in the SCM's messages.
pub const SERVICE_NAME: &str = "posture";

/// What the SCM asks of the running daemon.
#[derive(Debug, Default)]
pub struct Events {
    /// Stop or system shutdown.
    pub stop: Notify,
    /// Reload the configuration.
    pub reload: Notify,
}

type Start = Box<dyn FnOnce(&'static Events) -> Result<(), DaemonError> + Send>;

static EVENTS: OnceLock<Events> = OnceLock::new();
/// The daemon, handed from [`run`] to [`service_main`] (which the SCM calls on its own
/// thread, without arguments of ours).
static START: Mutex<Option<Start>> = Mutex::new(None);
/// The daemon's result, handed back from [`service_main`] to [`run`].
static RESULT: Mutex<Option<Result<(), DaemonError>>> = Mutex::new(None);
/// The status handle (a `SERVICE_STATUS_HANDLE`, kept as an address: raw pointers are
/// not `Sync`).
static STATUS: OnceLock<usize> = OnceLock::new();

fn wide(text: &str) -> Vec<u16> {
    text.encode_utf16().chain(std::iter::once(0)).collect()
}

/// Runs `start` as the service's body under the SCM; returns when the service stopped.
/// Fails at once when this process was not started by the SCM (error 1063).
pub fn run(
    start: impl FnOnce(&'static Events) -> Result<(), DaemonError> + Send + 'static,
) -> Result<(), DaemonError> {
    *START.lock().unwrap_or_else(PoisonError::into_inner) = Some(Box::new(start));
    let mut name = wide(SERVICE_NAME);
    let table = [
        SERVICE_TABLE_ENTRYW {
            lpServiceName: name.as_mut_ptr(),
            lpServiceProc: Some(service_main),
        },
        SERVICE_TABLE_ENTRYW {
            lpServiceName: std::ptr::null_mut(),
            lpServiceProc: None,
        },
    ];
    // SAFETY: a table ending in a null entry; `name` outlives the call, which returns
    // only after the service has stopped.
    if unsafe { StartServiceCtrlDispatcherW(table.as_ptr()) } == 0 {
        return Err(DaemonError::Service(std::io::Error::last_os_error()));
    }
    RESULT
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .unwrap_or(Ok(()))
}

/// Reports the service running (the daemon serves).
pub fn running() {
    set_status(SERVICE_RUNNING, NO_ERROR, 0);
}

fn set_status(state: SERVICE_STATUS_CURRENT_STATE, exit_code: u32, wait_hint_ms: u32) {
    let Some(&handle) = STATUS.get() else {
        return;
    };
    let accepted = if state == SERVICE_START_PENDING || state == SERVICE_STOPPED {
        0
    } else {
        SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN | SERVICE_ACCEPT_PARAMCHANGE
    };
    let status = SERVICE_STATUS {
        dwServiceType: SERVICE_WIN32_OWN_PROCESS,
        dwCurrentState: state,
        dwControlsAccepted: accepted,
        dwWin32ExitCode: exit_code,
        dwServiceSpecificExitCode: u32::from(exit_code == ERROR_SERVICE_SPECIFIC_ERROR),
        dwCheckPoint: 0,
        dwWaitHint: wait_hint_ms,
    };
    // SAFETY: `handle` came from RegisterServiceCtrlHandlerExW; `status` is a live local.
    if unsafe { SetServiceStatus(handle as *mut core::ffi::c_void, &status) } == 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), state, "SetServiceStatus failed");
    }
}

unsafe extern "system" fn service_main(_argc: u32, _argv: *mut windows_sys::core::PWSTR) {
    let events = EVENTS.get_or_init(Events::default);
    let name = wide(SERVICE_NAME);
    // SAFETY: a NUL-terminated name and a handler that uses no context pointer.
    let handle =
        unsafe { RegisterServiceCtrlHandlerExW(name.as_ptr(), Some(handler), std::ptr::null()) };
    if handle.is_null() {
        *RESULT.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(Err(DaemonError::Service(std::io::Error::last_os_error())));
        return;
    }
    let _ = STATUS.set(handle as usize);
    // Starting (key, outbox, first collection) may take a while on a slow disk.
    set_status(SERVICE_START_PENDING, NO_ERROR, 60_000);
    let start = START.lock().unwrap_or_else(PoisonError::into_inner).take();
    let result = match start {
        Some(start) => start(events),
        None => Ok(()),
    };
    if let Err(e) = &result {
        tracing::error!(error = %e, "the posture service stopped with an error");
    }
    let code = if result.is_ok() {
        NO_ERROR
    } else {
        ERROR_SERVICE_SPECIFIC_ERROR
    };
    *RESULT.lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
    set_status(SERVICE_STOPPED, code, 0);
}

unsafe extern "system" fn handler(
    control: u32,
    _event_type: u32,
    _event_data: *mut core::ffi::c_void,
    _context: *mut core::ffi::c_void,
) -> u32 {
    let events = EVENTS.get_or_init(Events::default);
    match control {
        SERVICE_CONTROL_STOP | SERVICE_CONTROL_SHUTDOWN => {
            // The outbox gets a few seconds to flush (as after SIGTERM).
            set_status(SERVICE_STOP_PENDING, NO_ERROR, 15_000);
            events.stop.notify_one();
            NO_ERROR
        }
        SERVICE_CONTROL_PARAMCHANGE => {
            events.reload.notify_one();
            NO_ERROR
        }
        SERVICE_CONTROL_INTERROGATE => NO_ERROR,
        _ => ERROR_CALL_NOT_IMPLEMENTED,
    }
}
