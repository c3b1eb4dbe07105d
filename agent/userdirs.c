/*
 * --user: the defaults of a workstation user's own agent (the systemd user
 * unit p11enroll-user.service) and of the commands that talk to it, under
 * the XDG base directories instead of /etc and /var: the configuration
 * $XDG_CONFIG_HOME/p11enroll/p11enroll.conf, the state $XDG_STATE_HOME/
 * p11enroll and the control socket $XDG_RUNTIME_DIR/p11enroll/control.  They
 * replace the built-in defaults only: -c, $P11ENROLL_CONF, --state-dir and
 * the file's state_dir and control_socket still win.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agent/agent.h"

static struct {
	int on;
	char conf[1024], state[1024], sock[1024];
} U;

/* $var, or $HOME/fallback; the XDG base directory specification ignores a
 * relative value.  -1 when neither is an absolute path. */
static int base_dir(const char *var, const char *fallback, char *out, size_t len)
{
	const char *v = getenv(var), *home = getenv("HOME");
	int n;

	if (v != NULL && v[0] == '/')
		n = snprintf(out, len, "%s", v);
	else if (home != NULL && home[0] == '/')
		n = snprintf(out, len, "%s/%s", home, fallback);
	else
		return -1;
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* mkdir -p, mode 0700 (the specification's mode for what it creates);
 * errors are left to whoever uses the directory, which names it. */
static void make_dirs(char *path)
{
	char *p;

	for (p = path + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		(void)mkdir(path, 0700);
		*p = '/';
	}
	(void)mkdir(path, 0700);
}

int agent_user_init(char *err, size_t errlen)
{
	char base[900], dir[1000];
	const char *run = getenv("XDG_RUNTIME_DIR");

	if (base_dir("XDG_CONFIG_HOME", ".config", base, sizeof(base)) < 0) {
		snprintf(err, errlen, "--user: neither XDG_CONFIG_HOME nor HOME is an absolute "
				      "path (or it is too long); set HOME");
		return -1;
	}
	snprintf(U.conf, sizeof(U.conf), "%s/p11enroll/p11enroll.conf", base);
	if (base_dir("XDG_STATE_HOME", ".local/state", base, sizeof(base)) < 0) {
		snprintf(err, errlen, "--user: neither XDG_STATE_HOME nor HOME is an absolute "
				      "path (or it is too long); set HOME");
		return -1;
	}
	snprintf(U.state, sizeof(U.state), "%s/p11enroll", base);
	/* Without a runtime directory (no login session: cron, su) the socket
	 * stays in the state directory, the system agent's default. */
	U.sock[0] = '\0';
	if (run != NULL && run[0] == '/' && strlen(run) < sizeof(base)) {
		snprintf(dir, sizeof(dir), "%s/p11enroll", run);
		make_dirs(dir);
		snprintf(U.sock, sizeof(U.sock), "%s/control", dir);
	}
	make_dirs(U.state);
	U.on = 1;
	return 0;
}

int agent_user_mode(void)
{
	return U.on;
}

const char *agent_user_conf(void)
{
	return U.on ? U.conf : NULL;
}

const char *agent_user_state_dir(void)
{
	return U.on ? U.state : NULL;
}

const char *agent_user_socket(void)
{
	return U.on && U.sock[0] != '\0' ? U.sock : NULL;
}
