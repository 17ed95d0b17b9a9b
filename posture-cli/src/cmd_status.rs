//! `posture status`: asks the running daemon for the latest posture and shows it.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _};
use posture_agent::{Agent, Assessment, Config};
use posture_core::Report;

use crate::output;

/// `posture status` arguments.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Largest response accepted from the daemon.
const MAX_RESPONSE: u64 = 8 * 1024 * 1024;

/// A response from the daemon.
#[derive(Debug)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// The daemon's socket, with read and write deadlines.
#[cfg(unix)]
fn connect(socket: &Path) -> std::io::Result<std::os::unix::net::UnixStream> {
    let stream = std::os::unix::net::UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    Ok(stream)
}

/// The daemon's named pipe, opened so the daemon can identify this process but not act
/// as it (`SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION`), and trusted only when the
/// process serving it runs as SYSTEM (the service) or as this user (a daemon this user
/// started): anything else may have taken the name to answer in the daemon's place.
#[cfg(windows)]
fn connect(socket: &Path) -> std::io::Result<std::fs::File> {
    use std::os::windows::fs::OpenOptionsExt;
    // GENERIC_READ | FILE_WRITE_DATA: writing without FILE_APPEND_DATA (the same bit as
    // FILE_CREATE_PIPE_INSTANCE), which the pipe's DACL does not grant to callers.
    const ACCESS: u32 = 0x8000_0000 | 0x0002;
    const SECURITY_IDENTIFICATION: u32 = 0x0001_0000;
    const ERROR_PIPE_BUSY: i32 = 231;
    let mut attempts = 0;
    let file = loop {
        match std::fs::OpenOptions::new()
            .access_mode(ACCESS)
            .security_qos_flags(SECURITY_IDENTIFICATION)
            .open(socket)
        {
            // Every instance is serving someone: the daemon makes a new one as each
            // connects, so wait a little.
            Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY) && attempts < 100 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => break other?,
        }
    };
    let server = crate::daemon::winpipe::server_sid(&file)?;
    let own = crate::daemon::winpipe::own_sid()?;
    if !crate::daemon::peer::trusted_server(&server, &own) {
        return Err(std::io::Error::other(format!(
            "the process serving {} runs as {server}, neither SYSTEM nor this user ({own}); not trusting its answer",
            socket.display()
        )));
    }
    Ok(file)
}

#[cfg(not(any(unix, windows)))]
fn connect(socket: &Path) -> std::io::Result<std::fs::File> {
    let _ = socket;
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "the posture daemon runs on Linux, macOS and Windows only",
    ))
}

/// One HTTP/1.1 request over the daemon's unix socket or named pipe (the daemon closes
/// after it).
pub fn request(
    socket: &Path,
    method: &str,
    path: &str,
    json_body: Option<&[u8]>,
) -> std::io::Result<Response> {
    if cfg!(windows) {
        // Synchronous pipe I/O has no timeout, and a process that accepts and never
        // answers must not hang the command: the exchange runs on its own thread and is
        // given up after the same 30 s the unix socket allows (the command then ends, and
        // the thread with it).
        let (socket, method, path) = (socket.to_owned(), method.to_owned(), path.to_owned());
        let body = json_body.map(<[u8]>::to_vec);
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = sender.send(exchange(&socket, &method, &path, body.as_deref()));
        });
        return receiver
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the daemon did not answer within 30 s",
                ))
            });
    }
    exchange(socket, method, path, json_body)
}

fn exchange(
    socket: &Path,
    method: &str,
    path: &str,
    json_body: Option<&[u8]>,
) -> std::io::Result<Response> {
    let mut stream = connect(socket)?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some(body) = json_body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    if let Some(body) = json_body {
        stream.write_all(body)?;
    }
    let mut raw = Vec::new();
    stream.take(MAX_RESPONSE).read_to_end(&mut raw)?;
    parse_response(&raw)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed response"))
}

/// Splits a complete `Connection: close` response into status and body.
fn parse_response(raw: &[u8]) -> Option<Response> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(raw.get(..split)?).ok()?;
    let status = head
        .lines()
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let mut body = raw.get(split + 4..)?.to_vec();
    let length = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    });
    if let Some(length) = length {
        body.truncate(length);
    }
    Some(Response { status, body })
}

/// Runs `posture status`: the daemon's latest report and the verdict the daemon reached
/// with its policy (the one it sends to the IdP). Exit codes as `posture check`.
pub fn run(config: Config, args: StatusArgs) -> anyhow::Result<u8> {
    let agent = Agent::new(config, None)?;
    let socket = daemon_socket(&agent)?;
    let report: Report = serde_json::from_slice(&get(&socket, "/v1/report")?)
        .context("the daemon sent an invalid report")?;
    let assessment: Assessment = serde_json::from_slice(&get(&socket, "/v1/compliance")?)
        .context("the daemon sent an invalid verdict")?;
    let heading = format!(
        "Posture collected at {} by the posture daemon",
        report.collected_at
    );
    Ok(output::print_report(
        &report,
        &assessment,
        args.json,
        Some(&heading),
    )?)
}

/// The daemon's socket: the first configured candidate that exists, else the first. On
/// Windows the first, the pipe: asking whether a pipe exists would connect to it (and
/// use up the daemon's waiting instance).
pub fn daemon_socket(agent: &Agent) -> anyhow::Result<std::path::PathBuf> {
    let candidates = agent.paths.client_sockets();
    if cfg!(windows) {
        return candidates
            .first()
            .cloned()
            .context("no pipe to ask: set [daemon] socket in the config");
    }
    match candidates
        .iter()
        .find(|p| p.exists())
        .or(candidates.first())
    {
        Some(socket) => Ok(socket.clone()),
        None => bail!("no socket to ask: set [daemon] socket in the config"),
    }
}

/// GETs `path` from the daemon, turning each failure into what the person should do.
pub fn get(socket: &Path, path: &str) -> anyhow::Result<Vec<u8>> {
    let response = match request(socket, "GET", path, None) {
        Ok(response) => response,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            bail!(
                "the posture daemon is not running (nothing answers at {}); start it with `{}` or `posture daemon`",
                socket.display(),
                if cfg!(windows) { "Start-Service posture" } else { "systemctl start posture" }
            )
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => bail!(
            "you may not use the posture daemon's socket {} (ask an administrator to add you to its group)",
            socket.display()
        ),
        Err(e) => {
            return Err(e).with_context(|| format!("asking the daemon at {}", socket.display()))
        }
    };
    match response.status {
        200 => Ok(response.body),
        403 if cfg!(windows) => {
            bail!("the posture daemon refused this user (not in [daemon] allow_sids)")
        }
        403 => {
            bail!("the posture daemon refused this user (not in [daemon] allow_uids or allow_gids)")
        }
        503 => bail!("the posture daemon is still collecting; try again in a few seconds"),
        status => bail!(
            "the posture daemon answered {status}: {}",
            String::from_utf8_lossy(&response.body)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_body() {
        let raw = b"HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        let response = parse_response(raw).unwrap();
        assert_eq!(response.status, 403);
        assert_eq!(response.body, b"{}");
        assert!(parse_response(b"garbage").is_none());
    }
}
