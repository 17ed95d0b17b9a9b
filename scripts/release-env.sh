# Sourced by scripts/package.sh and scripts/release-check.sh: the environment of a release
# build that does not depend on where it runs. The repository, the target directory and
# cargo's home are mapped to fixed names in everything rustc writes (panic locations,
# debug info), so two builds of one commit at different paths give the same bytes.
# RUSTFLAGS is not part of cargo's -Cmetadata hash (cargo >= 1.85), so the differing
# left-hand sides do not change symbol names.
repo_dir=$(git rev-parse --show-toplevel)
target_dir=$(realpath -m "${CARGO_TARGET_DIR:-$repo_dir/target}")
cargo_home=$(realpath -m "${CARGO_HOME:-$HOME/.cargo}")
# rustc applies the last matching mapping: the target directory may be inside the repository.
RUSTFLAGS="--remap-path-prefix=$cargo_home=/cargo --remap-path-prefix=$repo_dir=/posture --remap-path-prefix=$target_dir=/target"
export RUSTFLAGS
