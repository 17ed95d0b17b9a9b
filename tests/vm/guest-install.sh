#!/bin/bash
# Runs inside the systemd guest (tests/vm/run.sh shares it as /mnt/host/guest.sh): installs
# the posture .deb and checks, as a user and an administrator would, that the service is
# up, answers, reloads, survives an upgrade with its key, and that remove and purge do
# what they say. Prints `ok - ...` / `not ok - ...` lines and a closing count.
set -u
export PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 SYSTEMD_PAGER= SYSTEMD_COLORS=0
host=/mnt/host
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }
not_ok() { failed=$((failed + 1)); echo "not ok - $*"; }
check() { # description, command...
  local what=$1; shift
  if out=$("$@" 2>&1); then ok "$what"; else not_ok "$what"; echo "$out" | sed 's/^/    /' | tail -20; fi
}
# Waits up to $1 seconds for a command to succeed.
wait_for() { local n=$1; shift; for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done; "$@"; }
# The device key's kid (RFC 7638 thumbprint), as root: the same state directory as the daemon.
kid() { posture key --json 2>/dev/null | sed -n 's/.*"kid": *"\([^"]*\)".*/\1/p' | head -1; }

echo "guest: $(uname -r), $(systemctl --version | head -1), $(nproc) cpu"
wait_for 60 systemctl is-system-running --quiet || systemctl is-system-running || true

# Two users: alice in the `posture` group (after the group exists), bob not.
useradd -m -s /bin/bash bob

# 1. Install: the group, the unit enabled and started, Type=notify ready.
start=$(date +%s)
check "install posture ${POSTURE_V1:-}" apt-get install -y -q "$host/posture_1.deb"
echo "# install took $(($(date +%s) - start)) s"
check "the posture group exists" getent group posture
useradd -m -s /bin/bash -G posture alice
check "posture.service is enabled" systemctl is-enabled posture.service
# Type=notify: `active` only after the daemon sent READY=1 (until then: activating).
check "posture.service is active (READY=1 reached)" systemctl is-active posture.service
check "the unit is Type=notify" sh -c 'systemctl show -p Type --value posture.service | grep -qx notify'
check "the socket is 0660 root:posture" sh -c '[ "$(stat -c "%a %U %G" /run/posture/posture.sock)" = "660 root posture" ]'
check "the state directory is 0700" sh -c '[ "$(stat -c %a /var/lib/posture)" = 700 ]'
check "man page installed" test -s /usr/share/man/man1/posture.1.gz
check "bash completion installed" test -s /usr/share/bash-completion/completions/posture
check "config is a conffile" sh -c 'dpkg-query -W -f="\${Conffiles}" posture | grep -q /etc/posture/config.toml'

# 2. The local API: a member of `posture` gets the daemon's answer, others are refused.
out=$(runuser -u alice -- posture status 2>&1); rc=$?
if { [ $rc = 0 ] || [ $rc = 1 ]; } && echo "$out" | grep -q 'COMPLIANT'; then
  ok "posture status as alice (group posture) answers from the daemon (exit $rc)"
else not_ok "posture status as alice: exit $rc"; echo "$out" | sed 's/^/    /'; fi
out=$(runuser -u bob -- posture status 2>&1); rc=$?
if [ $rc = 2 ] && echo "$out" | grep -q 'you may not use'; then
  ok "posture status as bob (not in posture) is refused (exit 2)"
else not_ok "posture status as bob: exit $rc"; echo "$out" | sed 's/^/    /'; fi

# 3. systemctl reload: the daemon re-reads its config. Take alice off the allow-list,
# reload: she is refused by the daemon (403) although the socket still lets her connect.
cp /etc/posture/config.toml /root/config.toml.orig
sed -i 's/^allow_groups = \["posture"\]/allow_groups = []/' /etc/posture/config.toml
since=$(date '+%Y-%m-%d %H:%M:%S')
check "systemctl reload posture" systemctl reload posture.service
check "the daemon logged the reload" wait_for 30 sh -c "journalctl -u posture.service --since '$since' -o cat | grep -q 'configuration reloaded'"
check "after reload, alice is refused by the daemon's new allow-list" wait_for 30 sh -c 'runuser -u alice -- posture status 2>&1 | grep -q "refused this user"'
cp /root/config.toml.orig /etc/posture/config.toml
systemctl reload posture.service
# (`posture status` exits 1 on a non-compliant device: the answer is what counts.)
check "after reloading the original config, alice is served again" wait_for 30 sh -c 'runuser -u alice -- posture status 2>&1 | grep -q COMPLIANT'
check "still active after reloads" systemctl is-active posture.service

# 4. systemd-analyze security: the exposure score the README records.
expected=$(cat "$host/expected-exposure")
score=$(systemd-analyze security posture.service 2>/dev/null | sed -n 's/.*Overall exposure level for posture.service: \([0-9.]*\).*/\1/p')
echo "# systemd-analyze security posture.service: $score (README: $expected)"
if [ -n "$score" ] && [ "$score" = "$expected" ]; then ok "systemd-analyze security score $score matches the README"
else not_ok "systemd-analyze security score '$score', README says '$expected'"; fi

# 5. Upgrade to a newer package: the service restarts on the new package, the key stays.
kid1=$(kid); pid1=$(systemctl show -p MainPID --value posture.service)
echo "# kid before upgrade: $kid1"
check "device key present before upgrade" test -n "$kid1"
check "upgrade to ${POSTURE_V2:-the newer package}" apt-get install -y -q "$host/posture_2.deb"
check "the newer version is installed" sh -c "dpkg-query -W -f='\${Version}' posture | grep -qx '$(cat "$host/version-2")'"
pid2=$(systemctl show -p MainPID --value posture.service)
check "posture.service restarted by the upgrade and active" sh -c "[ '$pid1' != '$pid2' ] && systemctl is-active --quiet posture.service"
check "the device key (kid) survived the upgrade" sh -c "[ -n '$kid1' ] && [ '$(kid)' = '$kid1' ]"
check "the edited-then-restored conffile was not replaced" cmp /etc/posture/config.toml /root/config.toml.orig

# 6. Remove: the service stops, config and state stay.
check "apt-get remove posture" apt-get remove -y -q posture
check "posture.service is no longer running" sh -c '! systemctl is-active --quiet posture.service'
check "the binary is gone" sh -c '! test -e /usr/bin/posture'
check "config kept after remove" test -f /etc/posture/config.toml
check "state (device key) kept after remove" sh -c 'ls /var/lib/posture/keys/* >/dev/null'
check "dpkg keeps the package as rc (config-files)" sh -c 'dpkg -l posture | grep -q "^rc"'

# 7. Reinstall keeps the identity; purge removes config and state.
check "reinstall" apt-get install -y -q "$host/posture_2.deb"
check "the reinstalled daemon has the same key" sh -c "[ -n '$kid1' ] && [ '$(kid)' = '$kid1' ]"
check "apt-get purge posture" apt-get purge -y -q posture
check "state removed by purge" sh -c '! test -e /var/lib/posture'
check "config removed by purge" sh -c '! test -e /etc/posture'
check "no posture unit left" sh -c '! systemctl cat posture.service >/dev/null 2>&1'

# 8. libposture0: the shared library where the dynamic linker finds it by its SONAME.
check "install libposture0" apt-get install -y -q "$host/libposture0.deb"
check "ldconfig knows libposture.so.0" sh -c 'ldconfig -p | grep -q "libposture.so.0 "'
# libposture-dev through apt, its dependencies from the host's local repository (the
# guest has no network; tests/vm/run.sh made it).
echo "deb [trusted=yes] file:$host/repo ./" >/etc/apt/local-repo.list
local_apt=(-o Dir::Etc::sourcelist=/etc/apt/local-repo.list -o Dir::Etc::sourceparts=-)
check "apt-get update (local repository only)" apt-get "${local_apt[@]}" update -q
check "install libposture-dev (and libtss2-dev from the local repository)" \
  apt-get "${local_apt[@]}" install -y -q "$host/libposture-dev.deb"
check "posture.h installed where posture.pc says" sh -c '
  inc=$(sed -n "s/^includedir=//p" /usr/lib/x86_64-linux-gnu/pkgconfig/posture.pc) &&
  grep -q POSTURE_VERSION_STRING "$inc/posture.h"'
check "-lposture resolves to the SONAME file" sh -c '
  [ "$(readlink -f /usr/lib/x86_64-linux-gnu/libposture.so)" = /usr/lib/x86_64-linux-gnu/libposture.so.0 ]'
# The C program built against libposture-dev's header and .pc: it loads the installed
# libposture.so.0, collects this guest's posture, signs and verifies it, as a plain user.
install -m 755 "$host/libposture-roundtrip" /usr/local/bin/libposture-roundtrip
check "a C program using the installed libposture signs and verifies (as bob)" \
  runuser -u bob -- /usr/local/bin/libposture-roundtrip /home/bob/posture-key
check "its key directory is owner-only" sh -c '[ "$(stat -c %a /home/bob/posture-key)" = 700 ]'
check "apt-get remove libposture-dev libposture0" apt-get remove -y -q libposture-dev libposture0
check "without libposture0 the program no longer starts (it used the package's library)" \
  sh -c '! /usr/local/bin/libposture-roundtrip /tmp/k 2>/dev/null'

# 9. posture-server: its own user and unit, started on install, no secret in the journal.
check "install posture-server" apt-get install -y -q "$host/posture-server.deb"
check "the posture-server user exists" getent passwd posture-server
check "posture-server.service is enabled" systemctl is-enabled posture-server.service
check "posture-server.service is active" wait_for 30 systemctl is-active posture-server.service
check "posture-server runs as its own user" sh -c '[ "$(ps -o user= -p "$(systemctl show -p MainPID --value posture-server.service)")" = posture-server ]'
check "posture-server answers GET /v1/challenge on 127.0.0.1:8470" wait_for 60 bash -c '
  exec 3<>/dev/tcp/127.0.0.1/8470 &&
  printf "GET /v1/challenge HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" >&3 &&
  head -1 <&3 | grep -q " 200 "'
check "no admin token or sign-in link in the journal" sh -c '! journalctl -u posture-server.service -o cat | grep -q "pst_\|/ui/login/"'
check "the journal says how to create the first admin token" sh -c 'journalctl -u posture-server.service -o cat | grep -q "api-token create"'
check "the first admin token, created as the service user" sh -c 'runuser -u posture-server -- posture-server --config /etc/posture-server/config.toml api-token create --role admin --name vmtest | grep -q "^pst_"'
score=$(systemd-analyze security posture-server.service 2>/dev/null | sed -n 's/.*Overall exposure level for posture-server.service: \([0-9.]*\).*/\1/p')
expected=$(cat "$host/expected-exposure-server")
echo "# systemd-analyze security posture-server.service: $score (README: $expected)"
if [ -n "$score" ] && [ "$score" = "$expected" ]; then ok "posture-server: systemd-analyze security score $score matches the README"
else not_ok "posture-server: systemd-analyze security score '$score', README says '$expected'"; fi
check "apt-get remove posture-server" apt-get remove -y -q posture-server
check "posture-server.service stopped" sh -c '! systemctl is-active --quiet posture-server.service'
check "the server's database kept after remove" test -e /var/lib/posture-server/posture.db
check "apt-get purge posture-server" apt-get purge -y -q posture-server
check "the server's state removed by purge" sh -c '! test -e /var/lib/posture-server'

if [ "$failed" -gt 0 ]; then
  echo "# journal of posture.service:"; journalctl -u posture.service --no-pager -o short-monotonic | tail -40 | sed 's/^/    /'
  echo "# journal of posture-server.service:"; journalctl -u posture-server.service --no-pager -o short-monotonic | tail -20 | sed 's/^/    /'
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
