#!/bin/sh
# posture: discovery script for Microsoft Intune custom compliance on Linux.
#
# Upload it in the Intune admin center (Endpoint security > Device compliance > Scripts >
# Add > Linux) with the rules file `posture export intune --rules` writes; docs/intune.md
# has the steps. Intune runs it as the signed-in user, who cannot read what the firewall,
# disk-encryption and Secure Boot checks need, so it does not collect anything itself:
# it asks the posture daemon (root, systemd unit `posture`) over its socket, which
# members of the `posture` group may use (`sudo usermod -aG posture USER`).
#
# Prints one line of JSON (Intune's discovery output) and exits 0. When the daemon
# cannot be asked, `posture_daemon` is "unreachable" and the device is not compliant;
# the rules file tells the person how to fix that.

# Intune may start it with a minimal PATH; the caller's PATH comes first. (The answer is
# the user's own claim either way: what a device cannot forge is its signed evidence,
# which posture-server verifies.)
PATH="${PATH:+$PATH:}/usr/bin:/bin"
export PATH

if out=$(posture export intune --daemon 2>/dev/null) && [ -n "$out" ]; then
    printf '%s\n' "$out"
else
    # posture is not installed, or failed before it could answer.
    printf '%s\n' '{"posture_daemon":"unreachable","posture_compliant":false,"key_assurance":"unknown"}'
fi
exit 0
