# Sourced by tests/allocfail.sh and tests/p11sweep.sh (after tests/lib.sh,
# with TOK set and the test CA's state directory in $TMP/ca): failure
# sweeps over whole commands.  A sweep runs one command (a "flow") again
# and again from the same starting point, each time with one failure
# injected at the next point, and judges every run by the same rule: it
# ends with an exit code (no signal, no sanitizer report), a failure says
# something on stderr, and the token is left as it was, as a successful
# run leaves it, or (resume, abandon) as it was before the request the
# CA held; if not at once, then after `p11enroll check --recover` run as
# the message says.
#
# The flows (sweep_flow sets them up; SW_ARGS is the command line):
#   enroll    ir on an empty token
#   renew     kur of the enrolled pair (--local: no agent)
#   revoke    rr of a fresh enrollment, --delete
#   p10cr     PKCS#10 request
#   genm      CA certificates, stored on the token (--store)
#   root      root CA key update (--root-update)
#   template  request template (--template)
#   crls      CRLs
#   rich      ir with the optional settings set: header names, profile,
#             SANs, server anchors, PBM algorithms, output files
#   cr        cr signed by the enrolled key, for a new label (--label)
#   resume    resume of an ir the CA answered "waiting"
#   abandon   resume --abandon of such an ir

# tokstate: the token's objects as "class|label" lines, sorted (CKA_IDs of
# new keys differ from run to run).
tokstate() {
	objects "$TOK" | awk '/Object;/ { cls = $1 " " $2 }
		/^ *label:/ { sub(/^ *label: */, ""); print cls "|" $0 }' | sort
}

# snapshot NAME / restore NAME: the token store and the state directory.
snapshot() {
	rm -rf "$TMP/snap-$1"
	mkdir -p "$TMP/snap-$1"
	cp -a "$TMP/tokens" "$TMP/snap-$1/tokens"
	[ -d "$TMP/state" ] && cp -a "$TMP/state" "$TMP/snap-$1/state"
	return 0
}
restore() {
	rm -rf "$TMP/tokens" "$TMP/state"
	cp -a "$TMP/snap-$1/tokens" "$TMP/tokens"
	[ -d "$TMP/snap-$1/state" ] && cp -a "$TMP/snap-$1/state" "$TMP/state"
	return 0
}

# sweep_init: the flows' starting points, an empty token (enroll) and an
# enrolled one; $TMP/origin is the empty token's state.
sweep_init() {
	mkdir -p "$TMP/state"
	snapshot enroll
	tokstate > "$TMP/origin"
	"$P11ENROLL" -c "$TMP/p11enroll.conf" -q enroll test > /dev/null 2>&1 || return 1
	snapshot renew
	snapshot revoke
}

# sweep_flow FLOW: a CA for it (a fresh one per sweep: after a renew sweep
# of allocfail's scope all, the next revoke's clean run once got "Empty
# reply from server" from the same CA instance with nothing in its log,
# while a fresh CA served the same command; unexplained), its
# configuration SW_CONF, its command line SW_ARGS and the options
# SW_RECOVER that the recovery advice repeats.
sweep_flow() {
	case $1 in
	root) start_ca --new-root || return 1 ;;
	resume | abandon) start_ca --poll 3600 --deliver-when "$TMP/deliver" || return 1 ;;
	template) start_ca --template "subject=/CN=from template/O=Example;key=ec:P-384" || return 1 ;;
	*) start_ca || return 1 ;;
	esac
	sed -i "s|^server = .*|server = $CA_URL|" "$TMP/p11enroll.conf"
	SW_CONF="$TMP/p11enroll.conf" SW_RECOVER=
	case $1 in
	enroll) SW_ARGS="enroll test" ;;
	renew) SW_ARGS="renew test --local" ;;
	revoke) SW_ARGS="revoke test --reason superseded --delete" ;;
	p10cr) SW_ARGS="p10cr test" ;;
	genm) SW_ARGS="genm test --ca-certs $TMP/sw-out.pem --store" ;;
	root) SW_ARGS="genm test --root-update --out $TMP/sw-out.pem" ;;
	template) SW_ARGS="genm test --template" ;;
	crls) SW_ARGS="genm test --crls $TMP/sw-out.pem" ;;
	rich)
		SW_ARGS="enroll test" SW_CONF="$TMP/rich.conf"
		cat "$TMP/p11enroll.conf" - > "$SW_CONF" <<-EOC
			sender = /CN=sweep client
			recipient = /O=p11enroll test/CN=p11enroll Test CMP Server
			expected_sender = /O=p11enroll test/CN=p11enroll Test CMP Server
			cert_profile = sweep-profile
			san = DNS:client.example, IP:192.0.2.7, email:ops@example.org
			srv_trusted = $TMP/ca/root.pem
			implicit_confirm = yes
			pbm_owf = sha384
			pbm_mac = hmac-sha384
			cert_out = $TMP/sw-cert.pem
			chain_out = $TMP/sw-chain.pem
		EOC
		;;
	cr) SW_ARGS="cr test --signer enrolled-key --label by-token" SW_RECOVER="--label by-token" ;;
	resume) SW_ARGS="resume test" ;;
	abandon) SW_ARGS="resume --abandon test" ;;
	*) bail_out "sweep: no flow $1" ;;
	esac
}

# sweep_prepare FLOW: the token and state directory as the flow starts
# from; revoke needs a new certificate each time (the CA refuses to revoke
# one twice); resume and abandon an ir the CA holds (exit 9, the
# transaction saved), released, so that a resume gets the certificate.
sweep_prepare() {
	case $1 in
	renew | revoke) restore "$1" ;;
	cr) restore renew ;;
	*) restore enroll ;;
	esac
	rm -f "$TMP/sw-out.pem" "$TMP/sw-cert.pem" "$TMP/sw-chain.pem" "$TMP/now"
	if [ "$1" = revoke ]; then
		# a fresh certificate over the snapshot's valid one: --replace
		"$P11ENROLL" -c "$TMP/p11enroll.conf" -q enroll test --replace > /dev/null 2>&1 ||
			{ echo "# revoke: setup enroll failed"; return 1; }
	fi
	if [ "$1" = resume ] || [ "$1" = abandon ]; then
		rm -f "$TMP/deliver"
		"$P11ENROLL" -c "$TMP/p11enroll.conf" -q enroll test > /dev/null 2>&1
		[ $? -eq 9 ] || { echo "# $1: setup enroll did not wait"; return 1; }
		: > "$TMP/deliver"
	fi
	return 0
}

# sweep_judge FLOW: the verdict on the run just made (RC, $TMP/err) against
# $TMP/before and $TMP/after (the token before and after a clean run; a
# run that exits 0 must leave it as after):
# SW_WHY empty when it is good, else why not.  Counts SW_RECOVERED (runs
# that needed check --recover) and SW_ABSORBED (runs that succeeded).
sweep_judge() {
	SW_WHY=
	if [ "$RC" -ge 128 ]; then
		SW_WHY="killed by signal $((RC - 128))"
	elif [ "$RC" -eq 86 ] || grep -q -E 'Sanitizer|runtime error' "$TMP/err"; then
		SW_WHY="sanitizer report"
	elif [ "$RC" -ne 0 ] && [ ! -s "$TMP/err" ]; then
		SW_WHY="exit $RC without a message"
	fi
	[ -n "$SW_WHY" ] && return 0
	tokstate > "$TMP/now"
	# success means the work was done: not a failure that exits 0
	if [ "$RC" -eq 0 ] && ! cmp -s "$TMP/now" "$TMP/after"; then
		SW_WHY="exit 0, but the token is not as a successful run leaves it"
		return 0
	fi
	if ! sweep_state_ok "$1"; then
		"$P11ENROLL" -c "$SW_CONF" -q check test $SW_RECOVER --recover > /dev/null 2>&1
		tokstate > "$TMP/now"
		if sweep_state_ok "$1"; then
			SW_RECOVERED=$((SW_RECOVERED + 1))
		else
			SW_WHY="token neither as before nor as after success, even after check --recover"
		fi
	fi
	[ -z "$SW_WHY" ] && [ "$RC" -eq 0 ] && SW_ABSORBED=$((SW_ABSORBED + 1))
	return 0
}

# sweep_state_ok FLOW: $TMP/now is as before or as after; for resume and
# abandon also as before the held request was made, with no transaction
# left pending (the request ended: a resume that failed once the
# certificate had come removes the new key).
sweep_state_ok() {
	cmp -s "$TMP/now" "$TMP/before" || cmp -s "$TMP/now" "$TMP/after" ||
		{ { [ "$1" = resume ] || [ "$1" = abandon ]; } &&
			cmp -s "$TMP/now" "$TMP/origin" && [ "$(pending_count)" -eq 0 ]; }
}

# sweep_report NAME: the details of a bad run, as TAP comments.
sweep_report() {
	not_ok "$1: $SW_WHY"
	sed 's/^/#   err: /' "$TMP/err" | head -20
	[ -f "$TMP/now" ] && diff "$TMP/before" "$TMP/now" | sed 's/^/#   token: /'
	return 0
}
