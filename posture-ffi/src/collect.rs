//! Agent side: collect this device's posture as a JSON report.

use std::path::Path;

use posture_agent::paths::{Overrides, Paths};
use posture_agent::{Agent, Config};
use posture_checks::{collect, ChecksConfig, CollectOptions};

use crate::boundary::{ffi_status, input_text, into_handle, try_ffi, write_out};
use crate::buf::posture_buf;
use crate::status::posture_status;

/// How long a collection waits for checks cut off by their timeout to end.
const STRAGGLER_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Largest configuration text accepted, in bytes.
pub const POSTURE_MAX_CONFIG_BYTES: usize = 1024 * 1024;

/// Collects this device's posture and returns the report as JSON (the `posture check
/// --json` form, see `schemas/report.schema.json`) in a new buffer at `*out`.
///
/// `config` is the contents of the `[checks]` table of posture's TOML configuration (the
/// same keys as the config file; empty text means the defaults). Checks run concurrently,
/// each bounded by the configured timeout, so this call blocks for at most about that
/// long. Free the buffer with `posture_buf_free`.
///
/// # Safety
/// `config` must be valid for reads of `config_len` bytes; `out` valid for one pointer.
#[no_mangle]
pub unsafe extern "C" fn posture_collect_json(
    config: *const u8,
    config_len: usize,
    out: *mut *mut posture_buf,
) -> posture_status {
    ffi_status(|| {
        if config.is_null() || out.is_null() {
            return posture_status::NullParameter;
        }
        // SAFETY: non-NULL, and the caller promises `config_len` readable bytes.
        let text = try_ffi!(unsafe { input_text(config, config_len, POSTURE_MAX_CONFIG_BYTES) });
        let Ok(config) = ChecksConfig::from_toml(text, Path::new("<posture_collect_json>")) else {
            return posture_status::InvalidConfig;
        };
        // Collect on a thread of our own, joined before returning: the runner blocks on a
        // channel, which gives the blocking thread Rust thread-local state; on a C caller's
        // thread that state is never destroyed. (Not `thread::scope`: it registers the
        // caller's thread with Rust's runtime for the same effect.)
        let mut options = CollectOptions::new(config);
        // The state directory the CLI and the daemon use, so patch_level's memory of
        // pending updates and its list cache are shared.
        options.state_dir = Paths::resolve(&Overrides::default())
            .ok()
            .map(|paths| paths.state_dir);
        let collected = std::thread::Builder::new()
            .name("posture-collect".into())
            .spawn(move || collect(&options))
            .map(|handle| handle.join());
        // Checks cut off by their timeout were cancelled; let them end before returning
        // to C, which may exit (or unload the library) right after.
        posture_checks::wait_for_stragglers(STRAGGLER_GRACE);
        let Ok(Ok(collected)) = collected else {
            return posture_status::CollectFailed;
        };
        let report = match collected {
            Ok(report) => report,
            Err(
                posture_checks::Error::ConfigParse { .. } | posture_checks::Error::UnknownCheck(_),
            ) => return posture_status::InvalidConfig,
            Err(_) => return posture_status::CollectFailed,
        };
        let Ok(json) = serde_json::to_vec(&report) else {
            return posture_status::CollectFailed;
        };
        // SAFETY: `out` is non-NULL and the caller promises it is valid for writes.
        unsafe { write_out(out, into_handle(posture_buf::new(json))) };
        posture_status::Ok
    })
}

/// Collects this device's posture and decides its compliance, exactly as `posture check`
/// and the daemon do: the report JSON (what `posture_evidence_sign` signs) in a new buffer
/// at `*report_out`, and the verdict `{"compliant": bool, "reasons": [...]}` (every
/// failed rule with its finding and remediation) in a new buffer at `*compliance_out`.
///
/// `config` is the text of a whole posture config file (the same TOML as
/// `/etc/posture/config.toml`; empty text means the defaults): `[checks]`, the
/// `[compliance]` policy, `[key]`, and `[daemon] state_dir` / `root`. The verdict is the
/// configured policy's, else "every check passed" (`unknown` is never a pass). Free both
/// buffers with `posture_buf_free`. Checks that outlive their timeout are cancelled and
/// waited for (a few seconds at most) before this returns, so no check thread outlives
/// the call.
///
/// # Safety
/// `config` must be valid for reads of `config_len` bytes; `report_out` and
/// `compliance_out` valid for one pointer each.
#[no_mangle]
pub unsafe extern "C" fn posture_agent_collect_json(
    config: *const u8,
    config_len: usize,
    report_out: *mut *mut posture_buf,
    compliance_out: *mut *mut posture_buf,
) -> posture_status {
    ffi_status(|| {
        if config.is_null() || report_out.is_null() || compliance_out.is_null() {
            return posture_status::NullParameter;
        }
        // SAFETY: non-NULL, and the caller promises `config_len` readable bytes.
        let text = try_ffi!(unsafe { input_text(config, config_len, POSTURE_MAX_CONFIG_BYTES) });
        let Ok(config) = Config::parse(text, Path::new("<posture_agent_collect_json>")) else {
            return posture_status::InvalidConfig;
        };
        let Ok(agent) = Agent::new(config, None) else {
            return posture_status::InvalidConfig;
        };
        // On a thread of our own, joined before returning (see posture_collect_json).
        let collected = std::thread::Builder::new()
            .name("posture-collect".into())
            .spawn(move || {
                let report = agent.collect(&[])?;
                let compliance = agent.assess_device(&report).ok();
                Ok::<_, posture_checks::Error>((report, compliance))
            })
            .map(|handle| handle.join());
        // Checks cut off by their timeout were cancelled; let them end before returning
        // to C, which may exit (or unload the library) right after.
        posture_checks::wait_for_stragglers(STRAGGLER_GRACE);
        let Ok(Ok(collected)) = collected else {
            return posture_status::CollectFailed;
        };
        let (report, compliance) = match collected {
            Ok(collected) => collected,
            Err(
                posture_checks::Error::ConfigParse { .. } | posture_checks::Error::UnknownCheck(_),
            ) => return posture_status::InvalidConfig,
            Err(_) => return posture_status::CollectFailed,
        };
        let Some(compliance) = compliance else {
            return posture_status::KeyError;
        };
        let (Ok(report), Ok(compliance)) =
            (serde_json::to_vec(&report), serde_json::to_vec(&compliance))
        else {
            return posture_status::CollectFailed;
        };
        // SAFETY: both are non-NULL and the caller promises they are valid for writes.
        unsafe {
            write_out(report_out, into_handle(posture_buf::new(report)));
            write_out(compliance_out, into_handle(posture_buf::new(compliance)));
        }
        posture_status::Ok
    })
}
