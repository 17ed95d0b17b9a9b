//! `posture-server`: run the service, or administer it (tokens, devices, policy).
//!
//! Exit codes: 0 success, 1 a refusal (`policy check` on an invalid policy, an unknown
//! device), 2 an error (bad usage, bad config, database unavailable).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use clap::{CommandFactory, Parser, Subcommand};
use posture_server::config::{default_state_dir, Config};
use posture_server::store::{self, Role, Store};
use posture_server::{domain, Server};

/// The posture fleet verifier service.
#[derive(Debug, Parser)]
#[command(name = "posture-server", version)]
struct Cli {
    /// Config file (TOML). Default: /etc/posture-server/config.toml when it exists.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// State directory (the embedded database). Overrides the config's state_dir.
    #[arg(long, global = true, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// JSON output for the admin commands.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service (the default).
    Serve,
    /// Enrollment tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// API tokens for admins and for consumers of the decision API.
    #[command(subcommand, name = "api-token")]
    ApiToken(ApiTokenCommand),
    /// Print a one-time dashboard sign-in link (valid 15 minutes).
    LoginLink,
    /// Enrolled devices.
    #[command(subcommand)]
    Devices(DevicesCommand),
    /// The policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Print the man page (roff) to stdout; the package installs it as posture-server(1).
    #[command(hide = true)]
    Man,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a single-use enrollment token for a device of OWNER.
    Create {
        /// E-mail of the person the device belongs to.
        #[arg(long)]
        owner: String,
        /// How long the token is valid (default: [enrollment] token_ttl, 24h).
        #[arg(long, value_parser = humantime::parse_duration)]
        ttl: Option<Duration>,
    },
    /// List enrollment tokens (never their secrets).
    List,
}

#[derive(Debug, Subcommand)]
enum ApiTokenCommand {
    /// Create an API token (shown once).
    Create {
        /// A label.
        #[arg(long)]
        name: String,
        /// admin (everything) or reader (devices and decisions).
        #[arg(long, default_value = "reader")]
        role: String,
    },
}

#[derive(Debug, Subcommand)]
enum DevicesCommand {
    /// List devices.
    List,
    /// Show one device: status, decision, failing checks with their remediation.
    Show {
        /// Device id.
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Refuse a device's evidence and deny it.
    Disable {
        /// Device id.
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Undo `disable`.
    Enable {
        /// Device id.
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Delete a device and its history.
    Delete {
        /// Device id.
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Check a policy file (default: the configured one).
    Check {
        /// The policy (TOML or JSON).
        file: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("posture-server: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("posture-server: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn load_config(cli: &Cli) -> Result<Config> {
    let path = match &cli.config {
        Some(path) => Some(path.clone()),
        None => {
            let default = PathBuf::from("/etc/posture-server/config.toml");
            default.exists().then_some(default)
        }
    };
    let mut config = match path {
        Some(path) => Config::load(&path)?,
        None => Config::default(),
    };
    if let Some(dir) = &cli.state_dir {
        config.state_dir = Some(dir.clone());
    }
    Ok(config)
}

async fn open_store(config: &Config) -> Result<Arc<dyn Store>> {
    let url = match &config.database_url {
        Some(url) => url.clone(),
        None => {
            let dir = config
                .state_dir
                .clone()
                .or_else(default_state_dir)
                .context("no state directory: set state_dir or --state-dir")?;
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            #[cfg(unix)]
            let _ =
                std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700));
            format!("sqlite://{}", dir.join("posture.db").display())
        }
    };
    let store = store::open(&url)
        .await
        .context("cannot open the database")?;
    Ok(Arc::from(store))
}

async fn run(cli: Cli) -> Result<u8> {
    if let Some(Command::Man) = cli.command {
        // Needs no config: the package build runs it.
        clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
        return Ok(0);
    }
    let config = load_config(&cli)?;
    match &cli.command {
        None | Some(Command::Serve) => serve(config).await,
        Some(Command::Policy(PolicyCommand::Check { file })) => {
            let path = file
                .clone()
                .or_else(|| config.policy.clone())
                .context("no policy file given and none configured")?;
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            match posture_core::policy::Policy::from_str_auto(&text) {
                Ok(policy) => {
                    if cli.json {
                        println!("{}", serde_json::json!({ "valid": true, "policy": policy }));
                    } else {
                        println!("{}: valid", path.display());
                    }
                    Ok(0)
                }
                Err(e) => {
                    if cli.json {
                        println!(
                            "{}",
                            serde_json::json!({ "valid": false, "error": e.to_string() })
                        );
                    } else {
                        eprintln!("{}: {e}", path.display());
                    }
                    Ok(1)
                }
            }
        }
        Some(command) => admin(&cli, &config, command).await,
    }
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

async fn admin(cli: &Cli, config: &Config, command: &Command) -> Result<u8> {
    let store = open_store(config).await?;
    match command {
        Command::Token(TokenCommand::Create { owner, ttl }) => {
            let ttl = ttl.unwrap_or(config.enrollment.token_ttl);
            let created = domain::create_enrollment_token(store.as_ref(), owner, ttl).await?;
            if cli.json {
                print_json(&created)?;
            } else {
                println!("{}", created.token);
                eprintln!(
                    "single-use enrollment token for {}, valid until {}; on the device run:\n  posture enroll --server {} --token {}",
                    created.owner,
                    domain::rfc3339(created.expires_at),
                    config.public_url(),
                    created.token
                );
            }
        }
        Command::Token(TokenCommand::List) => {
            let tokens = store.enrollment_tokens().await?;
            if cli.json {
                print_json(&tokens)?;
            } else {
                for t in tokens {
                    let state = match t.used_at {
                        Some(at) => format!("used {}", domain::rfc3339(at)),
                        None if t.expires_at <= posture_server::now() => "expired".into(),
                        None => format!("valid until {}", domain::rfc3339(t.expires_at)),
                    };
                    println!("{}  {}  {}", t.id, t.owner, state);
                }
            }
        }
        Command::ApiToken(ApiTokenCommand::Create { name, role }) => {
            let role = Role::parse(role).context("--role is admin or reader")?;
            let token = domain::create_api_token(store.as_ref(), name, role).await?;
            if cli.json {
                print_json(&serde_json::json!({ "token": token, "role": role, "name": name }))?;
            } else {
                println!("{token}");
            }
        }
        Command::LoginLink => {
            let path = domain::create_login_link(store.as_ref()).await?;
            println!("{}{path}", config.public_url());
        }
        Command::Devices(command) => return devices(cli, config, store, command).await,
        Command::Serve | Command::Policy(_) | Command::Man => bail!("not an admin command"),
    }
    Ok(0)
}

async fn devices(
    cli: &Cli,
    config: &Config,
    store: Arc<dyn Store>,
    command: &DevicesCommand,
) -> Result<u8> {
    let server = Server::new(Arc::clone(&store), config.clone()).await?;
    let now = posture_server::now();
    match command {
        DevicesCommand::List => {
            let devices = store.devices().await?;
            if cli.json {
                print_json(&devices)?;
            } else {
                for d in &devices {
                    println!(
                        "{}  {:<28} {:<24} {:<13} {}",
                        d.id,
                        d.owner,
                        d.host.as_deref().unwrap_or("-"),
                        domain::display_status(&server, d, now),
                        d.failing.join(",")
                    );
                }
            }
        }
        DevicesCommand::Show { id } => {
            let Some(device) = store.device(id).await? else {
                eprintln!("no device {id}");
                return Ok(1);
            };
            let decision = domain::decide(&server, &device, now);
            if cli.json {
                print_json(&serde_json::json!({ "device": device, "decision": decision }))?;
            } else {
                println!("device      {}", device.id);
                println!("owner       {}", device.owner);
                println!("host        {}", device.host.as_deref().unwrap_or("-"));
                println!(
                    "status      {}",
                    domain::display_status(&server, &device, now)
                );
                println!("decision    {}", decision.decision);
                println!(
                    "key         {} ({} key, EK trust {})",
                    device.key_assurance, device.key_kind, device.ek_trust
                );
                println!(
                    "last seen   {}",
                    device
                        .last_seen
                        .map_or_else(|| "never".into(), domain::rfc3339)
                );
                for r in &decision.reasons {
                    println!("  ✘ {}: {}", r.rule, r.message);
                    if let Some(fix) = &r.remediation {
                        println!("    → fix: {}", fix.text);
                    }
                }
            }
        }
        DevicesCommand::Disable { id } | DevicesCommand::Enable { id } => {
            let disable = matches!(command, DevicesCommand::Disable { .. });
            if !store.set_disabled(id, disable).await? {
                eprintln!("no device {id}");
                return Ok(1);
            }
            eprintln!("{} {id}", if disable { "disabled" } else { "enabled" });
        }
        DevicesCommand::Delete { id } => {
            if !store.delete_device(id).await? {
                eprintln!("no device {id}");
                return Ok(1);
            }
            eprintln!("deleted {id}");
        }
    }
    Ok(0)
}

async fn serve(config: Config) -> Result<u8> {
    init_logging();
    let store = open_store(&config).await?;
    // Under systemd (the posture-server package) stdout is the journal, which is kept and
    // readable by more people than the admin: no secret goes there. The admin creates the
    // first token and sign-in links with the subcommands instead.
    let journal = stdout_is_journal();
    if store.count_admin_tokens().await? == 0 {
        if journal {
            println!(
                "no admin token yet: create one with `posture-server api-token create --role admin --name NAME`"
            );
        } else {
            let token =
                domain::create_api_token(store.as_ref(), "first admin", Role::Admin).await?;
            println!("admin token (shown once, keep it): {token}");
        }
    }
    let tls = match &config.tls {
        Some(tls) => Some(posture_server::serve::tls_acceptor(tls)?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let local = listener.local_addr()?;
    let mut config = config;
    if config.public_url.is_none() {
        // Port 0 in `listen`: tell the port actually bound.
        config.listen = local;
    }
    let mut server = Server::new(Arc::clone(&store), config.clone()).await?;
    let state_dir = config
        .state_dir
        .clone()
        .or_else(default_state_dir)
        .context("no state directory for the SSF signing keys: set state_dir")?;
    server.ssf = Some(Arc::new(posture_server::ssf::Transmitter::new(
        &server,
        &state_dir.join("ssf"),
    )?));
    if server.config.ssf_issuer().is_none() {
        tracing::info!("Shared Signals transmitter off: no https public_url or [ssf] issuer");
    }
    let server = Arc::new(server);
    posture_server::ssf::spawn(Arc::clone(&server));
    println!(
        "posture-server listening on {} ({:?} database)",
        config.public_url(),
        store.backend()
    );
    if journal {
        println!("dashboard: sign in with an admin token or `posture-server login-link`");
    } else {
        let login = domain::create_login_link(store.as_ref()).await?;
        println!("dashboard: {}{login}", config.public_url());
    }
    println!("evidence audience: {}", server.audience);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(purge_loop(Arc::clone(&server)));
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let router = posture_server::app::router(server);
    posture_server::serve::serve(
        listener,
        router,
        tls,
        config.limits.max_connections,
        stopped,
    )
    .await?;
    Ok(0)
}

async fn purge_loop(server: Arc<Server>) {
    let mut interval = tokio::time::interval(Duration::from_secs(600));
    loop {
        interval.tick().await;
        let now = posture_server::now();
        let before = now - server.config.retention.history.as_secs() as i64;
        match server.store.purge(before, now).await {
            Ok(removed) if removed > 0 => tracing::info!(removed, "history past retention removed"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "purge failed"),
        }
    }
}

#[cfg(not(unix))]
async fn shutdown_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(unix)]
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// No systemd journal off Unix.
#[cfg(not(unix))]
fn stdout_is_journal() -> bool {
    false
}

/// Whether stdout is connected to the systemd journal: systemd sets `JOURNAL_STREAM` to
/// the device and inode of that stream, which a child's redirected stdout does not match.
#[cfg(unix)]
fn stdout_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    // /proc/self/fd/1 resolves to the stream itself (a socket for the journal).
    match std::fs::metadata("/proc/self/fd/1") {
        Ok(meta) => stream.to_str() == Some(format!("{}:{}", meta.dev(), meta.ino()).as_str()),
        Err(_) => false,
    }
}

fn init_logging() {
    let level = std::env::var("POSTURE_SERVER_LOG")
        .ok()
        .and_then(|l| l.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Device ids are random base64url: one in 64 starts with `-`, and it is still an id.
    #[test]
    fn a_device_id_starting_with_a_hyphen_is_an_id_not_an_option() {
        for sub in ["show", "disable", "enable", "delete"] {
            let cli = Cli::try_parse_from(["posture-server", "devices", sub, "-x1Yz"]);
            assert!(cli.is_ok(), "{sub}: {cli:?}");
        }
    }
}
