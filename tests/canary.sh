#!/bin/sh
# /canary: the secrets never leave p11enroll.  The user PIN, the SO PIN the
# token is initialised with, the CMP MAC secret, and a wrong PIN and a wrong
# secret (whose failures produce error text) are random canary values of
# this run.  Every command `p11enroll --help` lists runs with them (-v -v,
# debug), the agent included (an enrollment, a failing enrollment, renew
# through the agent, status, reload, clear, stop), and afterwards every
# output, log, state file, pending file, metrics file, hook argv and
# environment, the agent's command line, ps snapshots taken while the agent
# ran and any core file are searched for the canaries as they are, in hex
# (both cases, with and without colons) and in base64 (all three
# alignments).  The search is shown to work on planted copies first.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
. "$top_srcdir/tests/agent-lib.sh"
need_tools
need_cmd python3
setup
plan 49

RAND=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
USER_PIN=canaryPIN-$RAND
SO_PIN=canarySO-$RAND
CMP_SECRET=canaryMAC-$RAND
WRONG_PIN=canaryBADPIN-$RAND
WRONG_SECRET=canaryBADMAC-$RAND
printf '%s\n' "$USER_PIN" > "$TMP/pin"
printf '%s\n' "$CMP_SECRET" > "$TMP/secret"
printf '%s\n' "$WRONG_PIN" > "$TMP/pin-wrong"
printf '%s\n' "$WRONG_SECRET" > "$TMP/secret-wrong"
EV=$TMP/evidence
mkdir -p "$EV"

# The search: every needle form of every canary, over every file under the
# given directories (binary-safe); prints one line per hit, FILE: NEEDLE-KIND.
cat > "$TMP/search.py" << 'EOF'
import base64, os, sys
secrets = [l.rstrip("\n") for l in open(sys.argv[1])]
skip = set(os.path.realpath(p) for p in sys.argv[2].split(":") if p)
needles = []
for s in secrets:
    b = s.encode()
    needles.append((b, "raw"))
    h = b.hex()
    needles += [(h.encode(), "hex"), (h.upper().encode(), "HEX"),
                (":".join(h[i:i+2] for i in range(0, len(h), 2)).encode(), "hex:"),
                (":".join(h[i:i+2] for i in range(0, len(h), 2)).upper().encode(), "HEX:")]
    # base64 of the secret at each of the three offsets a larger encoded
    # stream can put it: only the characters that depend on nothing else.
    for k in range(3):
        enc = base64.b64encode(b"\0" * k + b).rstrip(b"=")
        first = -(-4 * k // 3)
        last = (8 * (k + len(b))) // 6
        needles.append((enc[first:last], "base64+%d" % k))
hits = 0
files = 0
for top in sys.argv[3:]:
    for root, dirs, names in os.walk(top):
        for n in names:
            p = os.path.join(root, n)
            if os.path.realpath(p) in skip or os.path.islink(p) or not os.path.isfile(p):
                continue
            try:
                data = open(p, "rb").read()
            except OSError as e:
                print("%s: unreadable: %s" % (p, e))
                hits += 1
                continue
            files += 1
            for needle, kind in needles:
                if needle in data:
                    print("%s: %s %s" % (p, kind, needle.decode(errors="replace")))
                    hits += 1
print("# searched %d files for %d needles: %d hits" % (files, len(needles), hits), file=sys.stderr)
sys.exit(1 if hits else 0)
EOF
printf '%s\n' "$USER_PIN" "$SO_PIN" "$CMP_SECRET" "$WRONG_PIN" "$WRONG_SECRET" > "$TMP/needles"
# the files that hold the canaries on purpose: the secret sources and the search's input
SECRET_FILES="$TMP/pin:$TMP/secret:$TMP/pin-wrong:$TMP/secret-wrong:$TMP/needles"

# search DIR...: no canary in any form; the hits as TAP comments.
search() {
	python3 "$TMP/search.py" "$TMP/needles" "$SECRET_FILES" "$@" > "$TMP/hits" 2> "$TMP/search.err"
	_s_rc=$?
	sed 's/^/#   /' "$TMP/search.err"
	[ $_s_rc -eq 0 ] || { echo "# canary found:"; sed 's/^/#   /' "$TMP/hits"; }
	return $_s_rc
}

# --- the search can fail: planted copies in each form are found -------------
mkdir -p "$TMP/plant"
plant_found() {
	rm -f "$TMP/plant/"*
	"$@" > "$TMP/plant/planted"
	! python3 "$TMP/search.py" "$TMP/needles" "" "$TMP/plant" > /dev/null 2>&1
}
check "/canary/search-finds/raw-pin" plant_found printf 'x %s y' "$USER_PIN"
check "/canary/search-finds/raw-so-pin" plant_found printf '%s' "$SO_PIN"
check "/canary/search-finds/raw-secret" plant_found printf '(%s)' "$CMP_SECRET"
check "/canary/search-finds/hex" plant_found sh -c "printf '%s' '$CMP_SECRET' | od -An -tx1 | tr -d ' \n'"
check "/canary/search-finds/hex-upper" plant_found sh -c "printf '%s' '$USER_PIN' | od -An -tx1 | tr -d ' \n' | tr a-f A-F"
check "/canary/search-finds/base64-0" plant_found sh -c "printf '%s' '$USER_PIN' | base64 -w0"
check "/canary/search-finds/base64-1" plant_found sh -c "printf 'A%s' '$USER_PIN' | base64 -w0"
check "/canary/search-finds/base64-2" plant_found sh -c "printf 'AB%s' '$CMP_SECRET' | base64 -w0"
check "/canary/search-finds/binary" plant_found sh -c "head -c 100 /dev/urandom; printf '%s' '$USER_PIN'; head -c 100 /dev/urandom"
rm -f "$TMP/plant/"*
echo "no canary here: $RAND" > "$TMP/plant/clean"
check "/canary/search-passes-clean-file" python3 "$TMP/search.py" "$TMP/needles" "" "$TMP/plant"
rm -rf "$TMP/plant"

# --- one-shot commands ---------------------------------------------------------
make_token canary || exit 1
make_token canary-bad || exit 1
start_ca || exit 1
write_conf canary "cert_out = $TMP/cert.pem
chain_out = $TMP/chain.pem"
N_CMDS=0
# run TAG ARGS...: p11enroll -v -v ARGS with this test's configuration; its
# stdout, stderr and the state directory are kept in the evidence.
run() {
	_r_tag=$1
	shift
	p11e -v -v "$@"
	N_CMDS=$((N_CMDS + 1))
	cp "$TMP/out" "$EV/$_r_tag.out"
	cp "$TMP/err" "$EV/$_r_tag.err"
	echo "$RC" > "$EV/$_r_tag.rc"
	[ -d "$TMP/state" ] && cp -r "$TMP/state" "$EV/$_r_tag.state"
	return 0
}
ran() {
	[ "$(cat "$EV/$1.rc")" = "$2" ] ||
		{ echo "# $1: exit $(cat "$EV/$1.rc"), expected $2"; sed 's/^/#   /' "$EV/$1.err"; return 1; }
}
"$P11ENROLL" --help > "$EV/help.out" 2>&1
N_CMDS=$((N_CMDS + 1))
"$P11ENROLL" --version > "$EV/version.out" 2>&1
N_CMDS=$((N_CMDS + 1))
run enroll enroll test
check "/canary/enroll/exit-0" ran enroll 0
run renew renew test --local
check "/canary/renew/exit-0" ran renew 0
run cr cr test --signer enrolled-key --label by-cr
check "/canary/cr/exit-0" ran cr 0
run p10cr p10cr test --label by-p10cr
check "/canary/p10cr/exit-0" ran p10cr 0
run genm-certs genm test --ca-certs "$TMP/cacerts.pem" --store
check "/canary/genm-ca-certs/exit-0" ran genm-certs 0
run genm-template genm test --template
check "/canary/genm-template/exit-0" ran genm-template 0
run genm-root genm test --root-update --out "$TMP/newroot.pem"
check "/canary/genm-root-update/exit-0" ran genm-root 0
run genm-crls genm test --crls "$TMP/crls.pem"
check "/canary/genm-crls/exit-0" ran genm-crls 0
run list list test
check "/canary/list/exit-0" ran list 0
run check check test
check "/canary/check/exit-0" ran check 0
run check-recover check test --recover
check "/canary/check-recover/exit-0" ran check-recover 0
# the JSON documents and the views without a PIN or an agent: searched too
run list-json list test --json
run check-json check test --json
run tokens tokens --json
run tracked status --all --json
run revoke revoke test --label by-p10cr --reason superseded --delete
check "/canary/revoke/exit-0" ran revoke 0
# without PBM: the certificate's own key protects the rr
run revoke-own revoke test --label by-cr --reason 4 --secret-source file:/nonexistent --reference ""
# status, reload and clear without an agent: refused (no agent), their text searched
run status-none status
run reload-none reload
run clear-none clear test

# Failures: their error text must not carry what was tried.
run wrong-pin enroll test --label wrong --pin-source "file:$TMP/pin-wrong"
check "/canary/wrong-pin/refused" sh -c "! grep -q '^0$' '$EV/wrong-pin.rc'"
run wrong-secret enroll test --label wrong --secret-source "file:$TMP/secret-wrong"
check "/canary/wrong-secret/refused" sh -c "! grep -q '^0$' '$EV/wrong-secret.rc'"
CANARY_ENV_PIN=$USER_PIN
export CANARY_ENV_PIN
run env-pin enroll test --label env-pin --pin-source env:CANARY_ENV_PIN
check "/canary/env-pin/exit-0" ran env-pin 0

# resume and abandon: the CA answers "waiting", the pending file is kept.
# The CA holds the certificate until the test creates $TMP/deliver and
# asks to poll again in an hour, past the total timeout: exit 9 by the
# client's decision, however slow the machine (not a 1 s total timeout
# racing a CA that delivers after 3 s).
start_ca --poll 3600 --deliver-when "$TMP/deliver" || exit 1
write_conf canary
run pending-1 enroll test --label pend
check "/canary/pending/exit-9" ran pending-1 9
check "/canary/pending/state-saved" test "$(pending_count "$EV/pending-1.state")" -eq 1
: > "$TMP/deliver"
run resume resume test
check "/canary/resume/exit-0" ran resume 0
rm -f "$TMP/deliver"
run pending-2 enroll test --label pend2
check "/canary/pending-2/exit-9" ran pending-2 9
run abandon resume test --abandon
check "/canary/abandon/exit-0" ran abandon 0

# --- the agent -------------------------------------------------------------------
# [test] is enrolled by the agent (bootstrap, empty token, PIN from its
# environment), renewed through it; [bad], added by reload, fails against a
# dead server: the failure hook runs.  The hooks record their argv, environment, their
# parent's command line and what ps shows.
make_token canary-agent || exit 1
start_ca || exit 1
cat > "$TMP/hook.sh" << EOF
#!/bin/sh
n=\$\$
{ echo "argv: \$0 \$*"; echo "--- env"; env; echo "--- parent cmdline";
  tr '\\0' ' ' < /proc/\$PPID/cmdline; echo; echo "--- ps"; ps -eo args; } > "$EV/hook.\$n" 2>&1
EOF
chmod 700 "$TMP/hook.sh"
AST=$TMP/state-agent
# write_conf's configuration with the agent's own state directory, metrics
# file and hooks (for every enrollment), and the PIN from the environment;
# $TMP/p11enroll.conf, which write_conf writes, stays as it was.
mv "$TMP/p11enroll.conf" "$TMP/p11enroll.conf.keep"
write_conf canary-agent "bootstrap = yes"
sed "s|^state_dir = .*|state_dir = $AST\\
metrics_file = $TMP/metrics.prom\\
hook_success = $TMP/hook.sh success-arg\\
hook_failure = $TMP/hook.sh failure-arg|
s|^pin_source = .*|pin_source = env:CANARY_ENV_PIN|
s|^label = .*|label = agent-key|
s|^subject = .*|subject = /CN=p11enroll canary|" "$TMP/p11enroll.conf" > "$TMP/agent.conf"
mv "$TMP/p11enroll.conf.keep" "$TMP/p11enroll.conf"
# added by reload once [test] is enrolled: alone, its attempt reaches the
# dead server (beside a running enrollment on the same SoftHSM2 store, the
# look at its token can fail first, and then no failure hook runs)
cat > "$TMP/agent-bad.conf" << EOC

[bad]
token = pkcs11:token=canary-bad
pin_source = file:$TMP/pin
label = bad-key
subject = /CN=p11enroll canary bad
server = http://127.0.0.1:1/.well-known/cmp
bootstrap = yes
EOC
hooks_ran() {
	ls "$EV"/hook.* > /dev/null 2>&1
}
agent_cmd() {
	_ac_tag=$1
	shift
	"$P11ENROLL" -c "$TMP/agent.conf" -v -v "$@" > "$EV/agent-$_ac_tag.out" 2> "$EV/agent-$_ac_tag.err"
	echo $? > "$EV/agent-$_ac_tag.rc"
	N_CMDS=$((N_CMDS + 1))
}
"$P11ENROLL" -c "$TMP/agent.conf" -v -v agent > "$EV/agent.log" 2>&1 &
APID=$!
N_CMDS=$((N_CMDS + 1))
trap 'kill "$APID" "$PSPID" 2> /dev/null; cleanup' EXIT
# ps snapshots and the agent's command line while it runs
(
	i=0
	while kill -0 "$APID" 2> /dev/null; do
		ps -eo args > "$EV/ps.$i" 2>&1
		{ tr '\0' ' ' < "/proc/$APID/cmdline"; } > "$EV/agent-cmdline.$i" 2> /dev/null
		i=$((i + 1))
		sleep 0.3
	done
) &
PSPID=$!
check "/canary/agent/enrolled" wait_for 30 is "$TMP/agent.conf" test state valid
agent_cmd renew renew test
check "/canary/agent/renew-exit-0" test "$(cat "$EV/agent-renew.rc")" = 0
check "/canary/agent/renewals" is "$TMP/agent.conf" test renewals 2
agent_cmd status status
agent_cmd status-json status --json
check "/canary/agent/status-exit-0" test "$(cat "$EV/agent-status.rc")" = 0
cat "$TMP/agent-bad.conf" >> "$TMP/agent.conf"
agent_cmd reload reload
check "/canary/agent/reload-exit-0" test "$(cat "$EV/agent-reload.rc")" = 0
# The look at canary-bad shares the SoftHSM2 store with [test]: SoftHSM2
# answers C_GetTokenInfo with CKR_GENERAL_ERROR for a token another process
# is writing, and libp11 then fails the whole listing (1 run in 4 before
# the token layer listed up to 4 times, 0.5 s in all: tests/tokfail.sh
# /tokfail/listing/*).  Should all 4 fail on a loaded machine, the look is
# retried after 60 s and runs no hook: a listed skip, with the agent's lines.
if wait_for 30 sh -c "cat '$EV'/hook.* | grep -q '^P11ENROLL_EVENT=failed'"; then
	ok "/canary/agent/bad-failed"
elif grep -q 'bad: looking at the token failed' "$EV/agent.log"; then
	grep -E 'bad:|canary-bad' "$EV/agent.log" | sed 's/^/# /'
	ok "/canary/agent/bad-failed # SKIP the look at the token failed first: no failure hook"
else
	not_ok "/canary/agent/bad-failed"
fi
agent_cmd clear clear bad
check "/canary/agent/success-hook" sh -c "cat '$EV'/hook.* | grep -q '^P11ENROLL_EVENT=renewed'"
check "/canary/agent/metrics" test -s "$TMP/metrics.prom"
kill -TERM "$APID"
wait_for 30 sh -c "! kill -0 $APID"
wait "$APID"
check "/canary/agent/stopped-0" test $? -eq 0
kill "$PSPID" 2> /dev/null
wait "$PSPID" 2> /dev/null
check "/canary/agent/ps-snapshots" test -s "$EV/ps.0"
check "/canary/agent/hook-saw-parent" sh -c "grep -h -A1 -- '--- parent cmdline' '$EV'/hook.* | grep -q 'agent'"

# --- core dumps ---------------------------------------------------------------------
# p11enroll makes itself non-dumpable: SIGABRT or SIGSEGV while it holds the PIN (it
# waits for a CA that never answers) leaves no core, where a control
# process with the same limit dumps one.
mkdir -p "$EV/control"
# the agent's PIN variable is not this test's to give to the control process
unset CANARY_ENV_PIN
CORE_PATTERN=$(cat /proc/sys/kernel/core_pattern 2> /dev/null)
# a CMP server that accepts and never answers; it says when it has a client
cat > "$TMP/hang.py" << 'EOF'
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(5)
print(s.getsockname()[1], flush=True)
c = []
while True:
    a, _ = s.accept(); c.append(a)
    open(sys.argv[1], "w").write("accepted\n")
EOF
python3 "$TMP/hang.py" "$TMP/hang.accepted" > "$TMP/hang.port" &
HPID=$!
wait_for 5 test -s "$TMP/hang.port"
(ulimit -c unlimited 2> /dev/null; cd "$EV/control" && sh -c 'kill -ABRT $$') > /dev/null 2>&1
for sig in ABRT SEGV; do
	rm -f "$TMP/hang.accepted"
	mkdir -p "$EV/cores-$sig"
	(
		ulimit -c unlimited 2> /dev/null
		# a sanitizer build dies of the signal as the release build does
		ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}handle_segv=0:handle_abort=0"
		export ASAN_OPTIONS
		cd "$EV/cores-$sig" || exit 1
		"$P11ENROLL" -c "$TMP/p11enroll.conf" -v -v enroll test --label core \
			--server "http://127.0.0.1:$(cat "$TMP/hang.port")/.well-known/cmp" \
			> "$EV/core-run-$sig.out" 2>&1 &
		RPID=$!
		# logged in, key generated, request sent: it waits for the answer
		wait_for 30 test -s "$TMP/hang.accepted"
		kill -"$sig" "$RPID"
		wait "$RPID"
		echo $? > "$TMP/core-run.rc"
	) > /dev/null 2>&1
	N_CMDS=$((N_CMDS + 1))
	check "/canary/core/$sig/request-was-sent" test -s "$TMP/hang.accepted"
	case $sig in ABRT) signo=6 ;; SEGV) signo=11 ;; esac
	check "/canary/core/$sig/killed" test "$(cat "$TMP/core-run.rc")" -eq $((128 + signo))
	check "/canary/core/$sig/p11enroll-did-not-dump" sh -c "! ls '$EV/cores-$sig/'core* > /dev/null 2>&1"
done
kill "$HPID"
wait "$HPID" 2> /dev/null
# the same limit lets an ordinary process dump core here: the check above can fail
if ls "$EV/control/"core* > /dev/null 2>&1; then
	ok "/canary/core/control-dumped"
else
	ok "/canary/core/control-dumped # SKIP core_pattern '$CORE_PATTERN': no core in the cwd even from a control process"
fi

# --- the search ------------------------------------------------------------------
# Everything this test's directory holds, beside the secret sources: the
# evidence (outputs, hook records, ps snapshots, cores), the state
# directories, logs, metrics, certificates, the CA's files and the tokens.
check "/canary/no-canary-anywhere" search "$TMP"
echo "# $N_CMDS p11enroll runs; $(sed -n 's/^# searched \([0-9]*\) files.*/\1/p' "$TMP/search.err") files searched"
finish
