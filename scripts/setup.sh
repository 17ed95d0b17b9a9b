#!/usr/bin/env bash
# Installs everything posture needs to build, run and test on Debian/Ubuntu.
# Idempotent: packages already present are not reinstalled.
set -euo pipefail

packages=(
  build-essential pkg-config      # C compiler for the C ABI tests and -sys crates
  libtss2-dev                     # tss-esapi links Debian's tpm2-tss
  libssl-dev                      # webauthn-rs (dev-dependency of the WebAuthn tests) links OpenSSL
  swtpm swtpm-tools               # TPM 2.0 simulator used by the TPM tests
  softhsm2                        # PKCS#11 token for the attestation CA's token-key tests
  tpm2-tools                      # independent verifier (tpm2_checkquote) and benchmarks
  dconf-cli                       # `dconf compile` builds the GVDB fixtures of the screen_lock tests
  valgrind                        # leak checking of the C test programs
  hyperfine time                  # benchmarks (hyperfine, /usr/bin/time -v)
  python3 python3-venv            # interop tests with independent JOSE / ctypes
  nftables iptables              # firewall netns tests load rulesets with nft / iptables-nft / -legacy (the check itself reads netlink)
  python3-jwcrypto                # independent JOSE verifier/signer for evidence interop tests
  ca-certificates curl             # curl: daemon tests talk to the socket as another user
  util-linux                      # setpriv: tests start processes as `nobody`
  dbus-daemon                     # private bus for the daemon's resume-from-suspend test
  lintian rpmlint rpm             # package lints (scripts/lint-packages.sh)
  qemu-system-x86 debootstrap     # the real-systemd install test (tests/vm/run.sh)
  e2fsprogs binutils              # mkfs.ext4 -d builds the guest image; objcopy reads .dep-v0
  postgresql                      # posture-server tests: a real PostgreSQL (initdb/pg_ctl in a temp dir)
  chromium fonts-dejavu-core      # posture-server dashboard tests in headless Chromium (with screenshots)
  btrfs-progs                     # disk_encryption live test: btrfs raid1 on loop devices
  cryptsetup-bin                  # regenerates the LUKS header fixtures (tests/fixtures/disk_encryption)
  nginx                           # posture-server forward-auth test: a real nginx (mTLS, auth_request) started by the test
  tpm2-openssl                    # curl with a TPM-held device key through the tpm2 OpenSSL provider (device-certificate test)
  openssl                         # posture-server Cloudflare tests: an independent RSA key and RS256 signer for Access tokens
  mingw-w64 wine64 wine           # scripts/cross.sh: builds for x86_64-pc-windows-gnu and runs the Windows tests under Wine
  clang                           # scripts/cross.sh: ring's C for the macOS type-check (cargo check --target *-apple-darwin)
)
# Node.js and npm run Ajv 8, the strict JSON Schema validator of the schema tests. A
# machine may already have Node.js from another source (e.g. NodeSource's nodejs, which
# bundles npm and conflicts with Debian's npm package): use it when npm is there.
if ! command -v npm >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # Debian starts nginx (on port 80) and a PostgreSQL cluster as system services on
  # install; the tests start their own in temp dirs. A machine that runs this script
  # (the README's first command, on a laptop) should not begin serving HTTP, so the
  # services of packages this run installed are stopped and disabled. One that was
  # installed before is left as it was.
  if [ -d /run/systemd/system ]; then
    for pair in nginx:nginx.service postgresql:postgresql.service; do
      if [[ " ${missing[*]} " == *" ${pair%%:*} "* ]]; then
        "${sudo_cmd[@]}" systemctl disable --now "${pair#*:}" >/dev/null 2>&1 || true
      fi
    done
  fi
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found; install Rust (https://rustup.rs) and re-run" >&2
  exit 2
fi
# The cross targets of scripts/cross.sh (Windows build + Wine tests, macOS type-check).
for target in x86_64-pc-windows-gnu aarch64-apple-darwin x86_64-apple-darwin; do
  rustup target list --installed | grep -qx "$target" || rustup target add "$target"
done
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz   # fuzz targets (scripts/fuzz.sh)
fi

# Packaging and release hygiene (scripts/package.sh, scripts/release-check.sh), pinned.
# `cargo install --list` says what is installed (cargo-auditable has no --version of its own).
cargo_tools=(cargo-deb@3.8.0 cargo-generate-rpm@0.21.1 cargo-auditable@0.7.7 cargo-cyclonedx@0.5.9 cargo-deny@0.20.2)
installed=$(cargo install --list)
for tool in "${cargo_tools[@]}"; do
  if ! grep -qx "${tool%@*} v${tool#*@}:" <<<"$installed"; then
    cargo install --locked "$tool"
  fi
done

# Ajv 8 for the schema tests, pinned by package-lock.json, into the project (not globally).
ajv_dir="$(dirname "$0")/../posture-core/tests/ajv"
if [ ! -d "$ajv_dir/node_modules/ajv" ] || [ ! -d "$ajv_dir/node_modules/ajv-formats" ]; then
  npm ci --prefix "$ajv_dir" --no-audit --no-fund
fi

# py_webauthn, the independent WebAuthn relying party of the `tpm` attestation tests,
# pinned by tests/rp/requirements.txt, into the project (not globally). Re-installed when
# the requirements change.
rp_dir="$(dirname "$0")/../tests/rp"
if ! cmp -s "$rp_dir/requirements.txt" "$rp_dir/.venv/requirements.installed" 2>/dev/null; then
  rm -rf "$rp_dir/.venv"
  python3 -m venv "$rp_dir/.venv"
  "$rp_dir/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$rp_dir/requirements.txt"
  cp "$rp_dir/requirements.txt" "$rp_dir/.venv/requirements.installed"
fi

# SimpleWebAuthn, the second independent relying party of those tests, pinned by its
# package-lock.json, into the project.
swa_dir="$(dirname "$0")/../tests/rp/simplewebauthn"
if [ ! -d "$swa_dir/node_modules/@simplewebauthn/server" ]; then
  npm ci --prefix "$swa_dir" --no-audit --no-fund
fi
