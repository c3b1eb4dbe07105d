#!/bin/sh
# /user: `p11enroll --user`, the per-user agent's defaults (agent/userdirs.c,
# systemd/p11enroll-user.service): the configuration under
# $XDG_CONFIG_HOME (else ~/.config), the state under $XDG_STATE_HOME (else
# ~/.local/state), made when missing, and the control socket in
# $XDG_RUNTIME_DIR/p11enroll, where `p11enroll --user status` finds the
# agent; the agent's steps keep their state there too.  -c and the file's
# control_socket still win; without HOME there are no defaults (exit 2).
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
. "$top_srcdir/tests/agent-lib.sh"
need_tools
need_cmd python3
setup
plan 18
trap 'kill_agents; cleanup' EXIT
trap 'exit 1' HUP PIPE

H=$TMP/home
RUN=$TMP/run
mkdir -p "$H" "$RUN" && chmod 700 "$RUN" || bail_out "cannot make $H"
CONFDIR=$H/.config/p11enroll
STATE=$H/.local/state/p11enroll

# pu ARGS...: p11enroll --user as the user of $H in a login session
# (XDG_RUNTIME_DIR), none of the XDG variables from the caller; RC,
# $TMP/out, $TMP/err.
pu() {
	$GUARD env -u XDG_CONFIG_HOME -u XDG_STATE_HOME -u P11ENROLL_CONF HOME="$H" \
		XDG_RUNTIME_DIR="$RUN" "$P11ENROLL" --user "$@" > "$TMP/out" 2> "$TMP/err"
	RC=$?
	return 0
}

# ustate NAME: the enrollment's state from `p11enroll --user status --json`.
ustate() {
	pu status --json
	[ "$RC" = 0 ] && python3 -c '
import json, sys
for e in json.load(open(sys.argv[1]))["enrollments"]:
    if e["name"] == sys.argv[2]:
        print(e["state"])' "$TMP/out" "$1"
}
valid() {
	[ "$(ustate test)" = valid ]
}

make_token user-tok || exit 1
start_ca || exit 1
# write_conf's file without state_dir: --user's default applies
write_conf user-tok
mkdir -p "$CONFDIR" || bail_out "cannot make $CONFDIR"
grep -v '^state_dir = ' "$TMP/p11enroll.conf" > "$CONFDIR/p11enroll.conf"

# No home, no defaults.
$GUARD env -u HOME -u XDG_CONFIG_HOME -u XDG_STATE_HOME "$P11ENROLL" --user check-config \
	> "$TMP/out" 2> "$TMP/err"
RC=$?
check "/user/no-home/exit-2" expect_rc 2
check "/user/no-home/says-so" grep_err "neither XDG_CONFIG_HOME nor HOME"

pu check-config
check "/user/config/home-default" grep -q -F "$CONFDIR/p11enroll.conf: ok, 1 enrollment" "$TMP/out"
# XDG_CONFIG_HOME wins over HOME; a relative one is ignored (XDG spec).
mkdir -p "$TMP/xdg/p11enroll" && printf '' > "$TMP/xdg/p11enroll/p11enroll.conf"
$GUARD env HOME="$H" XDG_CONFIG_HOME="$TMP/xdg" "$P11ENROLL" --user check-config > "$TMP/out" 2>&1
check "/user/config/xdg-config-home" grep -q -F "$TMP/xdg/p11enroll/p11enroll.conf: ok" "$TMP/out"
(cd "$TMP" && $GUARD env HOME="$H" XDG_CONFIG_HOME=xdg "$P11ENROLL" --user check-config) \
	> "$TMP/out" 2>&1
check "/user/config/relative-ignored" grep -q -F "$CONFDIR/p11enroll.conf: ok" "$TMP/out"
# -c still names the file.
pu -c "$TMP/xdg/p11enroll/p11enroll.conf" check-config
check "/user/config/c-wins" grep -q -F "$TMP/xdg/p11enroll/p11enroll.conf: ok, 0" "$TMP/out"

pu enroll test
check "/user/enroll" expect_rc 0
check "/user/state-dir-made-0700" test "$(stat -c %a "$STATE" 2> /dev/null)" = 700
# the label's lock, from the enroll above: only the agent's steps make it again
rm -f "$STATE/pending/"*.lock

# The agent of the user unit, and the commands that talk to it.
$GUARD env -u XDG_CONFIG_HOME -u XDG_STATE_HOME -u P11ENROLL_CONF HOME="$H" \
	XDG_RUNTIME_DIR="$RUN" "$P11ENROLL" --user -v agent >> "$TMP/agent.log" 2>&1 &
APID=$!
AGENTS="$AGENTS $APID"
check "/user/agent/answers" wait_for 20 valid
check "/user/agent/socket-in-runtime-dir" test -S "$RUN/p11enroll/control"
check "/user/agent/state-in-xdg-state" test -f "$STATE/test.agent"
# A renewal through the agent: its steps keep the label's lock in the
# user's state directory, as --user makes it.
pu renew test
check "/user/agent/renew" expect_rc 0
check "/user/agent/step-state-in-xdg-state" sh -c "ls '$STATE/pending/'*.lock > /dev/null 2>&1"
agent_stop "$APID"
check "/user/agent/stopped" test "$ARC" = 0

pu status
check "/user/no-agent/exit-5" expect_rc 5
check "/user/no-agent/names-socket-and-unit" \
	grep_err "no agent answers on $RUN/p11enroll/control: start it \\(p11enroll --user agent, or systemctl --user start p11enroll-user\\)"
# Outside a login session the socket is the state directory's.
$GUARD env -u XDG_RUNTIME_DIR -u XDG_CONFIG_HOME -u XDG_STATE_HOME HOME="$H" "$P11ENROLL" --user \
	status > "$TMP/out" 2> "$TMP/err"
check "/user/no-runtime-dir/state-dir-socket" grep_err "no agent answers on $STATE/control"
# The file's control_socket wins over the runtime directory.
sed -i "1i control_socket = $TMP/other.sock" "$CONFDIR/p11enroll.conf"
pu status
check "/user/control-socket-wins" grep_err "no agent answers on $TMP/other.sock"
finish
