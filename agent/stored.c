/*
 * rr and genm by a store-and-forward transport (server = file:///DIR, or
 * --request-out FILE).  They make no key, so nothing waits on the token:
 * what waits is the message's transactionID and senderNonce, which the
 * CA's answer must carry back.  They are saved in STATE_DIR/NAME.rr (or
 * NAME.genm) when the message was stored and no answer came, and the same
 * command reads the answer later: `revoke --response-in ANSWER NAME` for a
 * file carried by hand, `revoke NAME` again for a spool directory (which
 * then sends nothing new).  The answer gets every check a network answer
 * gets, through cmpc_set_stored_answer; one that is not the CA's answer to the
 * saved message changes nothing, and the record goes only when the CA's
 * verified answer ended the exchange, or with --abandon.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent-cmd.h"

/* The command that reads the answer to a stored exchange that asks asks:
 * "revoke", or the genm with its question. */
static const char *reader(const agent_stored *st, const char *asks, char *buf, size_t len)
{
	if (strcmp(st->kind, "genm") != 0)
		return st->cmd;
	snprintf(buf, len, "genm --%s%s", asks,
		 strcmp(asks, "ca-certs") == 0 || strcmp(asks, "crls") == 0 ? " FILE" : "");
	return buf;
}

struct rec_out {
	const agent_stored *st;
	const char *name;
};

static int put_rec(FILE *f, void *arg)
{
	const struct rec_out *o = arg;
	const agent_stored *st = o->st;
	char hex[2 * CMPC_ID_MAX + 1];
	char how[96];

	fprintf(f, "# p11enroll: a message (%s) stored for the CA, waiting for its answer.\n"
		   "# Read the answer with `p11enroll %s %s` (--response-in ANSWER for a\n"
		   "# file carried by hand), or forget it with --abandon.  Do not edit.\n",
		st->kind, reader(st, st->asks, how, sizeof(how)), o->name);
	fprintf(f, "version 1\nexchange %s\nasks %s\n", st->kind, st->asks);
	agent_hex(st->ap.p.tid, st->ap.p.tid_len, hex, sizeof(hex));
	fprintf(f, "transaction_id %s\n", hex);
	agent_hex(st->ap.p.sent_nonce, st->ap.p.sent_nonce_len, hex, sizeof(hex));
	fprintf(f, "sent_nonce %s\nstore_seq %d\nsaved %lld\n", hex, st->ap.store_seq,
		(long long)st->ap.saved);
	return 0;
}

/* 1 read, 0 no file, -1 unreadable (err says why). */
static int load(const char *path, agent_stored *st, char *err, size_t errlen)
{
	char line[512], *v, *end;
	unsigned seen = 0;
	long n;
	FILE *f = fopen(path, "re");

	if (f == NULL) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		if ((v = strchr(line, ' ')) == NULL)
			break;
		*v++ = '\0';
		if (strcmp(line, "version") == 0 && strcmp(v, "1") == 0) {
			seen |= 1;
		} else if (strcmp(line, "exchange") == 0 && strcmp(v, st->kind) == 0) {
			seen |= 2;
		} else if (strcmp(line, "asks") == 0 && strlen(v) < sizeof(st->saved_asks)) {
			memcpy(st->saved_asks, v, strlen(v) + 1);
			seen |= 4;
		} else if (strcmp(line, "transaction_id") == 0 &&
			   conf_parse_hex(v, st->ap.p.tid, sizeof(st->ap.p.tid),
					  &st->ap.p.tid_len) == 0 &&
			   st->ap.p.tid_len > 0) {
			seen |= 8;
		} else if (strcmp(line, "sent_nonce") == 0 &&
			   conf_parse_hex(v, st->ap.p.sent_nonce, sizeof(st->ap.p.sent_nonce),
					  &st->ap.p.sent_nonce_len) == 0 &&
			   st->ap.p.sent_nonce_len > 0) {
			seen |= 16;
		} else if (strcmp(line, "store_seq") == 0 && (n = strtol(v, &end, 10)) >= 0 &&
			   n < 1000000 && *end == '\0' && end != v) {
			st->ap.store_seq = (int)n;
			seen |= 32;
		} else if (strcmp(line, "saved") == 0) {
			st->ap.saved = (time_t)strtoll(v, &end, 10);
		} else {
			break;
		}
	}
	fclose(f);
	if (seen != 63) {
		snprintf(err, errlen, "%s is not a record of a stored %s written by p11enroll; "
				      "remove it with `p11enroll %s --abandon`",
			 path, st->kind, st->cmd);
		return -1;
	}
	return 1;
}

agent_rc agent_stored_begin(const conf_enrollment *e, const agent_cmd_opts *o, agent_stored *st,
			    cmpc_ctx *cmp)
{
	const char *name = e->name != NULL ? e->name : "NAME";
	char err[1200], how[96];
	int r;

	st->used = 0;
	/* Looked for over HTTP too: a new rr or genm there would leave the
	 * stored one's answer to be refused later. */
	if (pending_name_path(e, st->kind, st->path, sizeof(st->path)) < 0) {
		st->path[0] = '\0';
		if (o->request_out == NULL && o->response_in == NULL)
			return EXIT_OK; /* the answer must come within store_wait */
		log_msg(LOG_ERR, "a %s written to a file needs an enrollment NAME from the "
				 "configuration file: its answer is matched by what is saved under "
				 "that name",
			st->kind);
		return EXIT_USAGE;
	}
	if ((r = load(st->path, st, err, sizeof(err))) < 0) {
		log_msg(LOG_ERR, "%s", err);
		return EXIT_USAGE;
	}
	if (o->request_out != NULL || (r == 0 && o->response_in == NULL)) {
		if (r == 0)
			return EXIT_OK;
		log_msg(LOG_ERR, "a %s of '%s' (%s) is stored for the CA and waits for its "
				 "answer: read it with `p11enroll %s %s%s`, or forget it with "
				 "`p11enroll %s --abandon %s`",
			st->kind, name, st->saved_asks, reader(st, st->saved_asks, how, sizeof(how)),
			st->ap.store_seq > 0 ? "" : "--response-in ANSWER ", name, st->cmd, name);
		return EXIT_USAGE;
	}
	if (r == 0) {
		log_msg(LOG_ERR, "no %s of '%s' waits for an answer (none saved in %s): %s is not "
				 "read; the answer belongs to a message never stored here, or to "
				 "one already finished or abandoned",
			st->kind, name, st->path, o->response_in);
		return EXIT_USAGE;
	}
	if ((o->response_in != NULL) != (st->ap.store_seq == 0)) {
		log_msg(LOG_ERR, "the stored %s of '%s' %s: run `p11enroll %s %s%s` (or `p11enroll "
				 "%s --abandon %s`)",
			st->kind, name,
			st->ap.store_seq > 0 ? "is in the spool directory, where its answer is read"
					     : "was written to a file carried by hand",
			reader(st, st->saved_asks, how, sizeof(how)),
			st->ap.store_seq > 0 ? "" : "--response-in ANSWER ", name, st->cmd, name);
		return EXIT_USAGE;
	}
	if (strcmp(st->saved_asks, st->asks) != 0) {
		log_msg(LOG_ERR, "the stored %s of '%s' asks %s, not %s: run it with what it asks, "
				 "or forget it with `p11enroll %s --abandon %s`",
			st->kind, name, st->saved_asks, st->asks, st->cmd, name);
		return EXIT_USAGE;
	}
	if (st->ap.store_seq > 0)
		agent_spool_resume(&st->ap);
	cmpc_set_stored_answer(cmp, &st->ap.p);
	st->used = 1;
	log_msg(LOG_INFO, "reading the CA's answer to the %s stored %s", st->kind,
		st->ap.store_seq > 0 ? "in the spool directory" : "in a file");
	return EXIT_OK;
}

int agent_stored_end(const conf_enrollment *e, agent_stored *st, cmpc_ctx *cmp, agent_rc ex,
		     agent_rc *ret_rc)
{
	const char *name = e->name != NULL ? e->name : "NAME";
	const char *out = agent_offline_request_out();
	struct rec_out ro = { st, name };
	char err[1200], how[96];

	if (ex == EXIT_WAITING) {
		if (!st->used) {
			if (st->path[0] == '\0' || !cmpc_stored_ids(cmp, &st->ap.p)) {
				log_msg(LOG_ERR, "the %s was stored for the CA and its answer did "
						 "not come in time; without an enrollment NAME it "
						 "cannot be read later: %s",
					st->kind, cmpc_errmsg(cmp));
				*ret_rc = EXIT_WAITING;
				return 1;
			}
			st->ap.store_seq = agent_spool_seq();
			st->ap.saved = time(NULL);
			if (agent_atomic_write(st->path, 0600, put_rec, &ro, err, sizeof(err)) < 0) {
				log_msg(LOG_ERR, "the %s was stored for the CA, but what its answer "
						 "must match could not be saved: %s; its answer cannot "
						 "be read: send it again later",
					st->kind, err);
				*ret_rc = EXIT_INTERNAL;
				return 1;
			}
		}
		if (out != NULL)
			log_msg(LOG_NOTICE, "the %s for the CA is in %s (saved in %s): carry it to "
					    "the CA, bring back its answer and run `p11enroll %s "
					    "--response-in ANSWER %s` (or `p11enroll %s --abandon %s`)",
				st->kind, out, st->path, reader(st, st->asks, how, sizeof(how)),
				name, st->cmd, name);
		else
			log_msg(LOG_NOTICE, "%s; the %s is saved (%s): `p11enroll %s %s` reads the "
					    "CA's answer once it is there (`p11enroll %s --abandon "
					    "%s` forgets it)",
				cmpc_errmsg(cmp), st->kind, st->path,
				reader(st, st->asks, how, sizeof(how)), name, st->cmd, name);
		*ret_rc = EXIT_WAITING;
		return 1;
	}
	if (!st->used)
		return 0;
	/* The CA's verified answer ended the exchange, whatever it said. */
	if (ex == EXIT_OK || ex == EXIT_REJECTED || ex == EXIT_CERT) {
		if (unlink(st->path) != 0 && errno != ENOENT)
			log_msg(LOG_WARNING, "cannot remove %s: %s; remove it by hand", st->path,
				strerror(errno));
		return 0;
	}
	log_msg(LOG_NOTICE, "the stored %s of '%s' is kept, still waiting for the CA's answer "
			    "(`p11enroll %s --abandon %s` forgets it)",
		st->kind, name, st->cmd, name);
	return 0;
}

agent_rc agent_stored_abandon(const conf_enrollment *e, agent_stored *st)
{
	const char *name = e->name != NULL ? e->name : "NAME";

	if (pending_name_path(e, st->kind, st->path, sizeof(st->path)) < 0) {
		log_msg(LOG_ERR, "--abandon needs the name of an enrollment in the configuration "
				 "file");
		return EXIT_USAGE;
	}
	if (unlink(st->path) != 0) {
		if (errno != ENOENT) {
			log_msg(LOG_ERR, "cannot remove %s: %s", st->path, strerror(errno));
			return EXIT_INTERNAL;
		}
		log_msg(LOG_ERR, "no %s of '%s' is stored (none in %s): nothing to abandon",
			st->kind, name, st->path);
		return EXIT_USAGE;
	}
	log_msg(LOG_NOTICE, "the stored %s of '%s' is forgotten: nothing is sent; a late answer "
			    "of the CA is refused",
		st->kind, name);
	if (log_verbosity() >= 0)
		printf("abandoned %s: the stored %s\n", name, st->kind);
	return EXIT_OK;
}
