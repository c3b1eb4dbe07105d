/*
 * The agent's enrollments: each section of the configuration file, checked
 * whole at load, with its schedule policy and what its state file
 * (STATE_DIR/NAME.agent) kept across a restart.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "agent/track.h"

void track_free(track *t)
{
	if (t == NULL)
		return;
	free(t->last_error);
	track_set_pin_latch(t, NULL);
	conf_enrollment_clear(&t->e); /* t->name too */
	free(t);
}

static int policy_of(track *t, char *err, size_t errlen)
{
	long v;

	sched_policy_default(&t->pol);
	if (t->e.renew_at != NULL && sched_parse_renew_at(t->e.renew_at, &t->pol) < 0) {
		snprintf(err, errlen,
			 "%s: renew_at '%.40s' is neither a percentage (66%%) nor a duration "
			 "(30d, 12h)",
			 t->name, t->e.renew_at);
		return -1;
	}
	if (t->e.retry_min != NULL) {
		if (sched_parse_duration(t->e.retry_min, &v) < 0)
			goto bad;
		t->pol.backoff_min = v;
	}
	if (t->e.retry_max != NULL) {
		if (sched_parse_duration(t->e.retry_max, &v) < 0)
			goto bad;
		t->pol.backoff_max = v;
	}
	return 0;
bad:
	snprintf(err, errlen, "%s: retry_min/retry_max must be durations such as 60s, 5m, 4h",
		 t->name);
	return -1;
}

/* One enrollment of the file; on failure, why in err. */
static track *track_new(const conf_file *cf, const char *name, const char *state_dir, char *err,
			size_t errlen)
{
	track *t = calloc(1, sizeof(*t));

	snprintf(err, errlen, "out of memory");
	if (t == NULL)
		return NULL;
	conf_enrollment_init(&t->e);
	if ((t->name = t->e.name = strdup(name)) == NULL)
		goto fail;
	if (state_dir != NULL && (t->e.state_dir = strdup(state_dir)) == NULL)
		goto fail;
	if (conf_file_get(cf, name, &t->e, err, errlen) < 0 || policy_of(t, err, errlen) < 0)
		goto fail;
	t->waiter_fd = -1;
	t->token_serial_unique = -1;
	t->need_recover = 1;
	t->st = T_START;
	(void)track_load(t);
	if (t->st == T_STOPPED)
		log_msg(LOG_NOTICE, "%s: stopped before the restart (%s); `p11enroll clear %s` lets the "
				    "agent try again",
			name, track_error(t), name);
	else if (t->st == T_LOCKED)
		log_msg(LOG_NOTICE, "%s: the PIN was locked before the restart (%s): no login is "
				    "tried until `p11enroll clear %s`",
			name, track_error(t), name);
	else if (t->st == T_PIN)
		log_msg(LOG_NOTICE, "%s: the PIN was refused before the restart: not trying it again "
				    "until the PIN source changes or `p11enroll clear %s`",
			name, name);
	if (t->seed == 0 && getrandom(&t->seed, sizeof(t->seed), 0) != (ssize_t)sizeof(t->seed))
		t->seed = (uint32_t)time(NULL) ^ (uint32_t)getpid();
	return t;
fail:
	track_free(t);
	return NULL;
}

int track_load_all(const char *config, const char *state_dir, track ***ret, size_t *ret_n,
		   conf_diag *d)
{
	conf_file *cf = NULL;
	size_t n, i, k = 0;
	char err[1024];
	track **ts;

	if (conf_file_load(config, CONF_CHECK_ACCESS, &cf, d) < 0 || conf_file_check_required(cf, NULL, d) < 0) {
		conf_file_free(cf);
		return -1;
	}
	n = conf_file_count(cf);
	if ((ts = calloc(n + 1, sizeof(*ts))) == NULL) {
		conf_diag_add(d, 1, "out of memory");
		conf_file_free(cf);
		return -1;
	}
	for (i = 0; i < n; i++) {
		if ((ts[k] = track_new(cf, conf_file_name(cf, i), state_dir, err, sizeof(err))) == NULL) {
			conf_diag_add(d, 1, "%s", err);
			break;
		}
		k++;
	}
	conf_file_free(cf);
	if (k < n) {
		for (i = 0; i < k; i++)
			track_free(ts[i]);
		free(ts);
		return -1;
	}
	*ret = ts;
	*ret_n = k;
	return 0;
}

