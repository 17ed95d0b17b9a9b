#!/usr/bin/env bash
# TPM benchmark: posture vs the same TPM work done with tpm2-tools, on one swtpm, in one
# run. Wall time with hyperfine, and the TPM commands per operation counted from the
# real traffic (scripts/tpm-count-proxy.py relays the swtpm TCTI and logs every command
# code). Prints the Markdown recorded in BENCHMARKS.md ("TPM").
#
#   sign:    posture report (TPM key)          vs createprimary + load + sign
#   quote:   posture report --nonce (quote+sign) vs createprimary + load x2 + quote + sign
#   enroll:  posture enroll complete            vs createprimary + load x2 + createek +
#            (activate credential + certify)       policy session + activatecredential + certify
#
# swtpm has no resource manager; tpm2-tools relies on one to flush what each tool leaves
# loaded. The counting relay plays /dev/tpmrm0's part: after each program (`$R`, a bash
# builtin connection, no process) it flushes the program's leftovers (uncounted: the
# resource manager's work, not the client's). posture flushes what it loads itself, and
# those flushes are counted.
# Needs: swtpm swtpm-tools tpm2-tools hyperfine python3.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
runs="${BENCH_RUNS:-30}"

cargo build --release -p posture-cli --locked >&2
posture="$root/target/release/posture"

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pair() { # two consecutive free ports
  while :; do
    p=$(free_port)
    if python3 -c "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1',$p+1))" 2>/dev/null; then echo "$p"; return; fi
  done
}

# A manufactured TPM (EK + EK certificate under a local CA), as in the tests.
mkdir -p "$work/state" "$work/ca"
cat > "$work/localca.conf" <<EOF
statedir = $work/ca
signingkey = $work/ca/signkey.pem
issuercert = $work/ca/issuercert.pem
certserial = $work/ca/certserial
EOF
printf -- '--platform-manufacturer Debian\n--platform-version 2.1\n--platform-model QEMU\n' > "$work/localca.options"
cat > "$work/setup.conf" <<EOF
create_certs_tool = /usr/bin/swtpm_localca
create_certs_tool_config = $work/localca.conf
create_certs_tool_options = $work/localca.options
active_pcr_banks = sha256
EOF
swtpm_setup --tpm2 --tpmstate "$work/state" --create-ek-cert --config "$work/setup.conf" \
  --logfile "$work/setup.log" >/dev/null
tpm_port=$(pair)
swtpm socket --tpm2 --tpmstate dir="$work/state" --server type=tcp,port="$tpm_port" \
  --ctrl type=tcp,port=$((tpm_port + 1)) --flags not-need-init,startup-clear &
pids+=($!)
proxy_port=$(pair)
while python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',$proxy_port+2))" 2>/dev/null; [ $? -ne 0 ]; do proxy_port=$(pair); done
log="$work/commands.log"
python3 "$root/scripts/tpm-count-proxy.py" "$proxy_port" "$tpm_port" "$log" &
pids+=($!)
sleep 0.5

export TCTI="swtpm:host=127.0.0.1,port=$proxy_port"   # posture
export TPM2TOOLS_TCTI="$TCTI"                          # tpm2-tools
export TSS2_LOG=all+NONE
cd "$work"
printf '' > config.toml
P() { "$posture" --config "$work/config.toml" "$@"; }
nonce=0011223344556677
evnonce=bench-nonce-0123456789

# posture: keys and an enrollment (its challenge is replayed by the benchmark).
cat ca/issuercert.pem ca/swtpm-localca-rootca-cert.pem > roots.pem
P enroll request --out req.json --key-dir keys
P enrollment begin req.json --ek-roots roots.pem --challenge-out ch.json --pending-out pending.json 2>/dev/null
P report --only os --key-dir keys > /dev/null

# "this program has exited": the relay flushes its leftovers, as a resource manager would.
R="read -r _ <>/dev/tcp/127.0.0.1/$((proxy_port + 2))"

# tpm2-tools: the same key shapes as posture's templates (ECC P-256 SRK, unrestricted
# ECDSA device key, restricted ECDSA AK), and a credential made offline for the AK.
tools_attrs='fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda'
tpm2_createprimary -Q -C o -G ecc256:aes128cfb -a "$tools_attrs|restricted|decrypt" -c srk.ctx; eval "$R"
tpm2_create -Q -C srk.ctx -G ecc256:ecdsa-sha256:null -a "$tools_attrs|sign" -u key.pub -r key.priv; eval "$R"
tpm2_create -Q -C srk.ctx -G ecc256:ecdsa-sha256:null -a "$tools_attrs|restricted|sign" -u ak.pub -r ak.priv; eval "$R"
tpm2_load -Q -C srk.ctx -u ak.pub -r ak.priv -n ak.name -c ak.ctx; eval "$R"
tpm2_createek -Q -c ek.ctx -G rsa -u ek.pub; eval "$R"
head -c 32 /dev/urandom > secret.bin
tpm2_makecredential -Q -T none -e ek.pub -s secret.bin -n "$(python3 -c 'print(open("ak.name","rb").read().hex())')" -o cred.bin
python3 -c 'import hashlib,sys; sys.stdout.buffer.write(hashlib.sha256(b"evidence").digest())' > digest.bin

tools_sign='tpm2_createprimary -Q -C o -G ecc256:aes128cfb -a "'"$tools_attrs"'|restricted|decrypt" -c srk.ctx && '"$R"' &&
  tpm2_load -Q -C srk.ctx -u key.pub -r key.priv -c key.ctx && '"$R"' &&
  tpm2_sign -Q -c key.ctx -g sha256 -d -o sig.bin digest.bin && '"$R"
tools_quote='tpm2_createprimary -Q -C o -G ecc256:aes128cfb -a "'"$tools_attrs"'|restricted|decrypt" -c srk.ctx && '"$R"' &&
  tpm2_load -Q -C srk.ctx -u ak.pub -r ak.priv -c ak.ctx && '"$R"' &&
  tpm2_load -Q -C srk.ctx -u key.pub -r key.priv -c key.ctx && '"$R"' &&
  tpm2_quote -Q -c ak.ctx -l sha256:0,1,2,3,4,5,6,7 -q '"$nonce"' -m quote.msg -s quote.sig -o pcrs.bin -g sha256 && '"$R"' &&
  tpm2_sign -Q -c key.ctx -g sha256 -d -o sig.bin digest.bin && '"$R"
tools_enroll='tpm2_createprimary -Q -C o -G ecc256:aes128cfb -a "'"$tools_attrs"'|restricted|decrypt" -c srk.ctx && '"$R"' &&
  tpm2_load -Q -C srk.ctx -u ak.pub -r ak.priv -c ak.ctx && '"$R"' &&
  tpm2_load -Q -C srk.ctx -u key.pub -r key.priv -c key.ctx && '"$R"' &&
  tpm2_createek -Q -c ek.ctx -G rsa && '"$R"' &&
  tpm2_startauthsession -Q --policy-session -S session.ctx && '"$R"' &&
  tpm2_policysecret -Q -S session.ctx -c e && '"$R"' &&
  tpm2_activatecredential -Q -c ak.ctx -C ek.ctx -i cred.bin -o out.secret -P "session:session.ctx" && '"$R"' &&
  tpm2_certify -Q -c key.ctx -C ak.ctx -g sha256 -o certify.attest -s certify.sig && '"$R"
posture_sign="$posture --config $work/config.toml report --only os --key-dir $work/keys > /dev/null && $R"
posture_quote="$posture --config $work/config.toml report --only os --nonce $evnonce --key-dir $work/keys > /dev/null && $R"
posture_enroll="$posture --config $work/config.toml enroll complete $work/ch.json --key-dir $work/keys > /dev/null && $R"

# Each sequence once on its own, counting the commands on the wire.
count() { # name, command
  : > "$log"
  bash -c "$2" > /dev/null 2> "$work/count.err" || { echo "failed: $1" >&2; cat "$work/count.err" >&2; exit 1; }
  sleep 0.2
  n=$(wc -l < "$log")
  detail=$(awk '{print $2}' "$log" | sort | uniq -c | sort -rn | awk '{printf "%s%s×%s", sep, $2, $1; sep=", "}')
  echo "| $1 | $n | $detail |"
}
{
  echo "| operation | TPM commands | by command |"
  echo "| --- | ---: | --- |"
  count "posture report (TPM key)" "$posture_sign"
  count "tpm2-tools createprimary + load + sign" "$tools_sign"
  count "posture report --nonce (quote + sign)" "$posture_quote"
  count "tpm2-tools createprimary + load ×2 + quote + sign" "$tools_quote"
  count "posture enroll complete (activate + certify)" "$posture_enroll"
  count "tpm2-tools createprimary + load ×2 + createek + activatecredential + certify" "$tools_enroll"
} > counts.md

# Wall time, same TPM (through the same counting relay), alternating.
hyperfine -N --warmup 3 --runs "$runs" --export-markdown times-sign.md \
  -n "posture report (TPM key)" "bash -c '$posture_sign'" \
  -n "tpm2-tools createprimary+load+sign" "bash -c '$tools_sign'" >&2
hyperfine -N --warmup 3 --runs "$runs" --export-markdown times-quote.md \
  -n "posture report --nonce (quote+sign)" "bash -c '$posture_quote'" \
  -n "tpm2-tools createprimary+load×2+quote+sign" "bash -c '$tools_quote'" >&2
hyperfine -N --warmup 3 --runs "$runs" --export-markdown times-enroll.md \
  -n "posture enroll complete" "bash -c '$posture_enroll'" \
  -n "tpm2-tools activatecredential+certify" "bash -c '$tools_enroll'" >&2

echo "### TPM commands per operation (counted on the wire)"
echo
cat counts.md
echo
echo "### Wall time (hyperfine, $runs runs)"
echo
cat times-sign.md
echo
cat times-quote.md
echo
cat times-enroll.md
