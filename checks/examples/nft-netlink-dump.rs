//! Writes the raw nftables netlink dump (tables, chains, rules) of the current network
//! namespace to stdout: how the `tests/fixtures/firewall/*.nlmsg` fixtures were captured.
//!
//! ```sh
//! unshare --net sh -c 'nft -f rules.nft && nft-netlink-dump > rules.nlmsg'
//! ```

#[cfg(target_os = "linux")]
use std::io::Write;

fn main() -> std::process::ExitCode {
    #[cfg(target_os = "linux")]
    match posture_checks::firewall::netlink::dump(&|| false) {
        Ok(bytes) => {
            if std::io::stdout().write_all(&bytes).is_ok() {
                return std::process::ExitCode::SUCCESS;
            }
        }
        Err(e) => eprintln!("nft-netlink-dump: {e}"),
    }
    std::process::ExitCode::FAILURE
}
