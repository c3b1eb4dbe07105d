/*
 * tokwatch: drives the token layer's watcher and token initialization for
 * tests/tokwatch.sh, and measures a poll.
 *
 * usage: tokwatch watch --module PATH [--pattern URI] [--interval MS] [--blank]
 *                       [--no-present] [--poll] [--count N] [--timeout MS]
 *                       [--open-first URI] [--open-each PIN_FILE [--unsuspended]]
 *                       [--init-each N --so-pin-file FILE --pin-file FILE]
 *        tokwatch init --module PATH --uri URI --label LABEL --so-pin-file FILE
 *                      --pin-file FILE
 *        tokwatch bench --module PATH [--pattern URI] --polls N
 *
 * watch prints "ready events=0|1" once the watcher has made its first poll,
 * then one line per event, flushed at once:
 *     appeared|removed uri=URI label=L serial=S model=M initialized=0|1
 * and stops after --count events (exit 0) or --timeout ms (exit 3: a hang
 * guard).  --open-first opens URI with tok_open before the watcher starts
 * and keeps it open (the watcher must refuse).  --open-each: after each
 * appeared event the watcher is suspended, the event's URI opened with
 * tok_open and logged in to with the PIN of the file, the token freed and
 * the watcher resumed ("opened uri=URI label=L login=ok|<error>", or
 * "opened uri=URI failed=<error>"); with --unsuspended the watcher is not
 * suspended (tok_open must refuse).  --init-each N: the first N blank
 * tokens that appear are initialized while the watcher is suspended, as
 * "badge-1", "badge-2"... ("init uri=URI label=L result=ok|<error>").
 *
 * init initializes the blank token URI selects (tok_init_token) and then
 * opens it by its new serial and logs in with the new user PIN:
 *     initialized label=L serial=S
 *     login ok
 *
 * bench: N polls (tok_watch_poll), each timed: "poll_us median=U min=U
 * max=U tokens=T" (the tokens the pattern matches).
 *
 * PINs come from files (first line), never argv.  On failure the token
 * layer's message goes to stderr and the exit code is 3.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "pkcs11/tok.h"
#include "tests/pinfile.h"

#define PIN_MAX 256

struct opts {
	const char *cmd, *module, *pattern, *open_first, *open_each, *uri, *label, *so_pin_file,
	    *pin_file;
	long init_each; /* blank tokens to initialize while watching */
	long interval, count, timeout, polls;
	unsigned flags;
	int held;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: tokwatch watch --module PATH [--pattern URI] [--interval MS] "
		   "[--blank] [--no-present] [--poll] [--count N] [--timeout MS] "
		   "[--open-first URI] [--open-each PIN_FILE [--unsuspended]] "
		   "[--init-each N --so-pin-file FILE --pin-file FILE]\n"
		   "       tokwatch init --module PATH --uri URI --label LABEL --so-pin-file FILE "
		   "--pin-file FILE\n"
		   "       tokwatch bench --module PATH [--pattern URI] --polls N\n");
}

static int parse_long(const char *what, const char *s, long *ret)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 0) {
		fprintf(stderr, "tokwatch: --%s wants a number >= 0, not '%s'\n", what, s);
		return -1;
	}
	*ret = v;
	return 0;
}

static void print_event(const tok_watch_event *e)
{
	printf("%s uri=%s label=%s serial=%s model=%s initialized=%d\n",
	       e->kind == TOK_WATCH_APPEARED ? "appeared" : "removed", e->uri, e->info.label,
	       e->info.serial, e->info.model, e->initialized);
	fflush(stdout);
}

/* Suspends w (unless held), opens the token uri and logs in, frees it,
 * resumes w. */
static int open_between(tok_watch *w, const char *module, const char *uri, const char *pin_file,
			int held)
{
	tok_ctx *ctx = NULL;
	tok_info info;
	char pin[PIN_MAX];
	tok_rv rv;

	if (!held && (rv = tok_watch_suspend(w)) != TOK_OK) {
		fprintf(stderr, "tokwatch: %s\n", tok_watch_errmsg(w));
		return -1;
	}
	rv = tok_open(module, uri, &ctx);
	if (rv == TOK_OK)
		rv = tok_get_info(ctx, &info);
	if (rv == TOK_OK) {
		if (pinfile_read("tokwatch", pin_file, pin, sizeof(pin)) != 0) {
			tok_free(ctx);
			return -1;
		}
		rv = tok_login(ctx, pin);
		OPENSSL_cleanse(pin, sizeof(pin));
		printf("opened uri=%s label=%s login=%s\n", uri, info.label,
		       rv == TOK_OK ? "ok" : tok_errmsg(ctx));
	} else {
		printf("opened uri=%s failed=%s\n", uri, tok_errmsg(ctx));
	}
	fflush(stdout);
	tok_free(ctx);
	if (!held && tok_watch_resume(w) != TOK_OK) {
		fprintf(stderr, "tokwatch: %s\n", tok_watch_errmsg(w));
		return -1;
	}
	return 0;
}

/* Suspends w, initializes the blank token uri as "badge-N" with the PINs
 * of --so-pin-file and --pin-file, resumes w.  Prints "init uri=URI
 * label=L result=ok|<error>". */
static int init_between(tok_watch *w, const struct opts *o, const char *uri, long n)
{
	char so_pin[PIN_MAX], pin[PIN_MAX], err[768], label[32];
	tok_info info;
	tok_rv rv;
	int rc = -1;

	if (tok_watch_suspend(w) != TOK_OK) {
		fprintf(stderr, "tokwatch: %s\n", tok_watch_errmsg(w));
		return -1;
	}
	if (pinfile_read("tokwatch", o->so_pin_file, so_pin, sizeof(so_pin)) != 0)
		goto out;
	if (pinfile_read("tokwatch", o->pin_file, pin, sizeof(pin)) != 0)
		goto out;
	snprintf(label, sizeof(label), "badge-%ld", n);
	rv = tok_init_token(o->module, uri, so_pin, label, pin, &info, err, sizeof(err));
	printf("init uri=%s label=%s result=%s\n", uri, label, rv == TOK_OK ? "ok" : err);
	fflush(stdout);
	if (tok_watch_resume(w) != TOK_OK) {
		fprintf(stderr, "tokwatch: %s\n", tok_watch_errmsg(w));
		goto out;
	}
	rc = 0;
out:
	OPENSSL_cleanse(so_pin, sizeof(so_pin));
	OPENSSL_cleanse(pin, sizeof(pin));
	return rc;
}

static int do_watch(const struct opts *o)
{
	tok_watch *w = NULL;
	tok_ctx *first = NULL;
	tok_watch_event e;
	long seen = 0, inits = 0;
	struct timespec start, t;
	tok_rv rv;
	int rc = 3;

	if (o->open_first != NULL && tok_open(o->module, o->open_first, &first) != TOK_OK) {
		fprintf(stderr, "tokwatch: --open-first: %s\n", tok_errmsg(first));
		tok_free(first);
		return 3;
	}
	rv = tok_watch_new(o->module, o->pattern, (int)o->interval, o->flags, &w);
	if (rv != TOK_OK) {
		fprintf(stderr, "tokwatch: %s (%s)\n", w != NULL ? tok_watch_errmsg(w) : "",
			tok_strerror(rv));
		goto out;
	}
	printf("ready events=%d\n", tok_watch_uses_events(w));
	fflush(stdout);
	clock_gettime(CLOCK_MONOTONIC, &start);
	while (o->count == 0 || seen < o->count) {
		long left = -1;

		if (o->timeout > 0) {
			clock_gettime(CLOCK_MONOTONIC, &t);
			left = o->timeout - ((t.tv_sec - start.tv_sec) * 1000 +
					     (t.tv_nsec - start.tv_nsec) / 1000000);
			if (left <= 0) {
				fprintf(stderr, "tokwatch: timeout after %ld events\n", seen);
				goto out;
			}
		}
		if ((rv = tok_watch_next(w, (int)left, &e)) != TOK_OK) {
			fprintf(stderr, "tokwatch: %s\n", tok_watch_errmsg(w));
			goto out;
		}
		if (e.kind == TOK_WATCH_NONE)
			continue;
		print_event(&e);
		seen++;
		if (o->open_each != NULL && e.kind == TOK_WATCH_APPEARED && e.initialized &&
		    open_between(w, o->module, e.uri, o->open_each, o->held) != 0)
			goto out;
		if (inits < o->init_each && e.kind == TOK_WATCH_APPEARED && !e.initialized &&
		    init_between(w, o, e.uri, ++inits) != 0)
			goto out;
	}
	rc = 0;
out:
	tok_watch_free(w);
	tok_free(first);
	return rc;
}

static int do_init(const struct opts *o)
{
	char so_pin[PIN_MAX], pin[PIN_MAX], err[768], uri[128];
	tok_info info;
	tok_ctx *ctx = NULL;
	tok_rv rv;
	int rc = 3;

	if (pinfile_read("tokwatch", o->so_pin_file, so_pin, sizeof(so_pin)) != 0)
		return 3;
	if (pinfile_read("tokwatch", o->pin_file, pin, sizeof(pin)) != 0)
		goto out;
	rv = tok_init_token(o->module, o->uri, so_pin, o->label, pin, &info, err, sizeof(err));
	OPENSSL_cleanse(so_pin, sizeof(so_pin));
	if (rv != TOK_OK) {
		fprintf(stderr, "tokwatch: %s (%s)\n", err, tok_strerror(rv));
		goto out;
	}
	printf("initialized label=%s serial=%s flags=0x%lx\n", info.label, info.serial,
	       info.flags);
	fflush(stdout);
	snprintf(uri, sizeof(uri), "pkcs11:serial=%s", info.serial);
	if ((rv = tok_open(o->module, uri, &ctx)) != TOK_OK ||
	    (rv = tok_login(ctx, pin)) != TOK_OK) {
		fprintf(stderr, "tokwatch: %s\n", tok_errmsg(ctx));
		goto out;
	}
	printf("login ok\n");
	rc = 0;
out:
	tok_free(ctx);
	OPENSSL_cleanse(so_pin, sizeof(so_pin));
	OPENSSL_cleanse(pin, sizeof(pin));
	return rc;
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return x < y ? -1 : x > y;
}

static int do_bench(const struct opts *o)
{
	tok_watch *w = NULL;
	tok_watch_event e;
	long *us = NULL, i, tokens = 0;
	struct timespec a, b;
	int rc = 3;

	if (o->polls < 1 || (us = calloc((size_t)o->polls, sizeof(*us))) == NULL) {
		fprintf(stderr, "tokwatch: --polls wants a number >= 1\n");
		return 3;
	}
	if (tok_watch_new(o->module, o->pattern, 0, o->flags | TOK_WATCH_POLL, &w) != TOK_OK) {
		fprintf(stderr, "tokwatch: %s\n", tok_watch_errmsg(w));
		goto out;
	}
	while (tok_watch_next(w, 0, &e) == TOK_OK && e.kind == TOK_WATCH_APPEARED)
		tokens++;
	for (i = 0; i < o->polls; i++) {
		clock_gettime(CLOCK_MONOTONIC, &a);
		if (tok_watch_poll(w) != TOK_OK) {
			fprintf(stderr, "tokwatch: %s\n", tok_watch_errmsg(w));
			goto out;
		}
		clock_gettime(CLOCK_MONOTONIC, &b);
		us[i] = (b.tv_sec - a.tv_sec) * 1000000 + (b.tv_nsec - a.tv_nsec) / 1000;
	}
	qsort(us, (size_t)o->polls, sizeof(*us), cmp_long);
	printf("poll_us median=%ld min=%ld max=%ld tokens=%ld\n", us[o->polls / 2], us[0],
	       us[o->polls - 1], tokens);
	rc = 0;
out:
	tok_watch_free(w);
	free(us);
	return rc;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
	    {"module", required_argument, NULL, 'm'},
	    {"pattern", required_argument, NULL, 'P'},
	    {"interval", required_argument, NULL, 'i'},
	    {"blank", no_argument, NULL, 'b'},
	    {"no-present", no_argument, NULL, 'n'},
	    {"poll", no_argument, NULL, 'p'},
	    {"count", required_argument, NULL, 'c'},
	    {"timeout", required_argument, NULL, 't'},
	    {"open-first", required_argument, NULL, 'o'},
	    {"open-each", required_argument, NULL, 'e'},
	    {"unsuspended", no_argument, NULL, 'H'},
	    {"init-each", required_argument, NULL, 'I'},
	    {"uri", required_argument, NULL, 'u'},
	    {"label", required_argument, NULL, 'l'},
	    {"so-pin-file", required_argument, NULL, 's'},
	    {"pin-file", required_argument, NULL, 'f'},
	    {"polls", required_argument, NULL, 'N'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	if (argc < 2) {
		usage(stderr);
		return -1;
	}
	o->cmd = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'm': o->module = optarg; break;
		case 'P': o->pattern = optarg; break;
		case 'b': o->flags |= TOK_WATCH_BLANK; break;
		case 'n': o->flags |= TOK_WATCH_NO_PRESENT; break;
		case 'p': o->flags |= TOK_WATCH_POLL; break;
		case 'o': o->open_first = optarg; break;
		case 'e': o->open_each = optarg; break;
		case 'H': o->held = 1; break;
		case 'u': o->uri = optarg; break;
		case 'l': o->label = optarg; break;
		case 's': o->so_pin_file = optarg; break;
		case 'f': o->pin_file = optarg; break;
		case 'i':
			if (parse_long("interval", optarg, &o->interval) != 0)
				return -1;
			break;
		case 'c':
			if (parse_long("count", optarg, &o->count) != 0)
				return -1;
			break;
		case 't':
			if (parse_long("timeout", optarg, &o->timeout) != 0)
				return -1;
			break;
		case 'N':
			if (parse_long("polls", optarg, &o->polls) != 0)
				return -1;
			break;
		case 'I':
			if (parse_long("init-each", optarg, &o->init_each) != 0)
				return -1;
			break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (optind != argc || o->module == NULL) {
		usage(stderr);
		return -1;
	}
	if (o->init_each > 0 && (o->so_pin_file == NULL || o->pin_file == NULL)) {
		usage(stderr);
		return -1;
	}
	if (strcmp(o->cmd, "init") == 0 &&
	    (o->uri == NULL || o->label == NULL || o->so_pin_file == NULL || o->pin_file == NULL)) {
		usage(stderr);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = {0};

	if (parse_args(argc, argv, &o) != 0)
		return 2;
	if (strcmp(o.cmd, "watch") == 0)
		return do_watch(&o);
	if (strcmp(o.cmd, "init") == 0)
		return do_init(&o);
	if (strcmp(o.cmd, "bench") == 0)
		return do_bench(&o);
	usage(stderr);
	return 2;
}
