# Shared by the guest tests (tests/vm/run.sh, storage.sh, secure-boot.sh): the cached
# guest image and local package repositories for the guest. Sourced, not run.

vm_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
vm_cache=${POSTURE_VM_CACHE:-/var/cache/posture-test}

# Fails (never skips) when a tool is missing: scripts/setup.sh installs them all.
vm_require() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "vm: FAIL: $tool is missing (scripts/setup.sh installs it)" >&2; exit 1; }
  done
}

# Prints the directory of the cached guest image (rootfs.img, vmlinuz, initrd.img),
# building it first when the cache has none (tests/vm/build-image.sh, ~14 min).
vm_image() {
  # Called as $(vm_image): command substitution does not inherit errexit, and a failed
  # build must not be moved into the cache.
  set -e
  local key image start
  key=$(sha256sum "$vm_here/build-image.sh" | cut -c1-16)
  image=$vm_cache/vm-$key
  mkdir -p "$vm_cache"
  (
    flock 9
    if [ ! -f "$image/rootfs.img" ]; then
      start=$(date +%s)
      rm -rf "$image.tmp"
      "$vm_here/build-image.sh" "$image.tmp" >&2
      mv "$image.tmp" "$image"
      echo "vm: built the guest image in $(($(date +%s) - start)) s ($image)" >&2
      find "$vm_cache" -maxdepth 1 -name 'vm-*' ! -name "vm-$key" -exec rm -rf {} +
    fi
  ) 9>"$vm_cache/.lock"
  echo "$image"
}

# vm_local_repo NAME IMAGE_DIR PACKAGE...: prints a directory of .debs with a Packages
# index holding PACKAGE... and their dependency closure minus what the image has
# installed in the same version (the guest has no network). Downloaded on the host once
# and cached as $vm_cache/NAME-HASH; older NAME-* caches are deleted.
vm_local_repo() {
  set -e # called as $(vm_local_repo ...), see vm_image
  local name=$1 image=$2 installed closure missing dir
  shift 2
  installed=$(debugfs -R 'cat /var/lib/dpkg/status' "$image/rootfs.img" 2>/dev/null |
    awk '/^Package:/ {p = $2} /^Version:/ {v = $2} /^Status: install ok installed/ {i = 1}
         /^$/ {if (i) print p "=" v; i = 0} END {if (i) print p "=" v}' | sort -u)
  # shellcheck disable=SC2046 # one package name per word
  closure=$(apt-cache show --no-all-versions $(apt-cache depends --recurse --no-recommends \
    --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances "$@" |
    grep -v '^[ <]' | sort -u) | awk '/^Package:/ {p = $2} /^Version:/ {print p "=" $2}' | sort -u)
  missing=$(comm -23 <(echo "$closure") <(echo "$installed"))
  dir=$vm_cache/$name-$(echo "$missing" | sha256sum | cut -c1-16)
  (
    flock 9
    if [ ! -f "$dir/Packages" ]; then
      rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
      # shellcheck disable=SC2086 # one package name per word
      (cd "$dir.tmp" && apt-get download -q $missing >/dev/null)
      (cd "$dir.tmp" && dpkg-scanpackages --multiversion . /dev/null >Packages 2>/dev/null)
      rm -rf "$dir" && mv "$dir.tmp" "$dir"
      find "$vm_cache" -maxdepth 1 -name "$name-*" ! -name "${dir##*/}" -exec rm -rf {} +
    fi
  ) 9>"$vm_cache/.lock-$name"
  echo "$dir"
}

# vm_zfs IMAGE_DIR: prints a directory with OpenZFS kernel modules built for the image's
# kernel (modules/*.ko) and zfsutils-linux with its libraries (debs/*.deb), built on the
# host once by tests/vm/build-zfs.sh and cached as $vm_cache/zfs-HASH (HASH of that
# script and the image's kernel); older zfs-* caches are deleted.
vm_zfs() {
  set -e # called as $(vm_zfs ...), see vm_image
  local image=$1 kernel key dir start
  kernel=$(debugfs -R 'ls -p /lib/modules' "$image/rootfs.img" 2>/dev/null | awk -F/ '$6 ~ /^[0-9]/ {print $6}')
  key=$( (sha256sum <"$vm_here/build-zfs.sh"; echo "$kernel") | sha256sum | cut -c1-16)
  dir=$vm_cache/zfs-$key
  (
    flock 9
    if [ ! -f "$dir/kernel" ]; then
      start=$(date +%s)
      rm -rf "$dir.tmp"
      "$vm_here/build-zfs.sh" "$dir.tmp" "$image" >&2
      mv "$dir.tmp" "$dir"
      echo "vm: built OpenZFS for the guest in $(($(date +%s) - start)) s ($dir)" >&2
      find "$vm_cache" -maxdepth 1 -name 'zfs-*' ! -name "zfs-$key" -exec rm -rf {} +
    fi
  ) 9>"$vm_cache/.lock-zfs"
  echo "$dir"
}

# Puts the posture binary the guest runs into SHARE: from the posture .deb in ARG when ARG
# is the packages directory, else ARG itself (a binary). WORK is scratch space.
vm_share_posture() {
  local arg=$1 work=$2 share=$3 version
  if [ -d "$arg" ]; then
    version=$(cargo pkgid --manifest-path "$vm_here/../../Cargo.toml" -p posture-cli); version=${version##*[#@]}
    dpkg-deb -x "$arg/posture_${version}-1_amd64.deb" "$work/deb"
    install -m 755 "$work/deb/usr/bin/posture" "$share/posture"
  else
    install -m 755 "$arg" "$share/posture"
  fi
}

# QEMU acceleration: TCG by default (this project's machines have a /dev/kvm that QEMU
# aborts on); POSTURE_VM_ACCEL=kvm where KVM works.
vm_accel=(-accel tcg,thread=multi)
if [ "${POSTURE_VM_ACCEL:-tcg}" = kvm ]; then vm_accel=(-accel kvm -cpu host); fi
