/*
 * The agent's child processes (child.c): each step is this program's
 * one-shot command in a process of its own (stdout kept for a waiting
 * client, stderr to the log, the result record on descriptor 3), and each
 * hook is waited for by a process of its own.  A look is a pass: one
 * `check [--recover] NAME...` for several enrollments of a token, with one
 * record per enrollment, read as they come.
 */
#ifndef P11ENROLL_CHILD_H
#define P11ENROLL_CHILD_H

#include <time.h>

#include "agent/result.h"
#include "agent/track.h"

/* How the agent runs its steps: this program, its configuration file and
 * --state-dir (NULL: none). */
typedef struct {
	const char *self, *config, *state_dir;
} child_cmd;

/* The most enrollments one pass looks at, and the bytes of their names
 * (argv stays a quarter of Linux's usual 2 MiB ARG_MAX); more go to the
 * next pass.  Each pass lists the whole token once, so a pass takes as
 * many as it can: 10,000 enrollments of 8-byte names are one pass. */
#define CHILD_PASS_MAX 10000
#define CHILD_PASS_MAX_BYTES (512 * 1024)

/* The most of a step's stderr a waiting client gets: every message of a
 * step, many times over; the rest is in the agent's log. */
#define CHILD_ERR_KEEP (64 * 1024)

/* One running step: allocated while it runs, so that an idle enrollment
 * costs no pipes and no buffers. */
typedef struct child_run {
	pid_t pid;
	track_op op;
	struct timespec started; /* CLOCK_MONOTONIC: the metrics' step duration */
	int pass; /* a look: records named and read as they come */
	int out_fd, err_fd, res_fd;
	/* the enrollments, in the order of their records; done: how many
	 * have theirs */
	track **members;
	size_t n, done;
	char out[8192]; /* stdout, for a waiting client (not kept for a look) */
	size_t outlen;
	/* a line of stderr: the child's longest (its prefix and an error
	 * of AGENT_ERROR_MAX) fits whole */
	char errbuf[AGENT_ERROR_MAX + 64];
	size_t errlen;
	/* stderr whole (up to CHILD_ERR_KEEP bytes, then errcut more), for a
	 * waiting client (not kept for a look) */
	char *errall;
	size_t erralllen, errcut;
	char *res; /* the records' bytes not yet taken */
	size_t reslen;
	int res_bad;	   /* the rest of the records is dropped ... */
	char res_why[256]; /* ... for this reason */
} child_run;

/* Starts the step of op for members[0..n) (n > 1 only for a look), sets
 * their run and op: the run, or NULL (logged). */
child_run *child_launch(const child_cmd *cmd, track *const *members, size_t n, track_op op);
/* What the running step wrote so far. */
void child_drain_out(child_run *c);
void child_drain_err(child_run *c, int final);
/* The records of a pass that have come: done(member, record, arg) for each,
 * in order (c->done counts them).  A record that is invalid, names another
 * enrollment than the next, or comes after the last is logged, and the
 * rest of the output is read and dropped: those enrollments have no
 * record. */
void child_drain_res(child_run *c, void (*done)(track *, const agent_result *, void *),
		     void *arg);
/* After a single step's child ended: the rest of its output, and its
 * result record (0), or -1 with why there is none. */
int child_finish(child_run *c, agent_result *res, char *why, size_t whylen);
/* Closes the pipes, detaches the members, frees c. */
void child_free(child_run *c);
/* The success (ok) or failure hook, in a process of its own. */
void child_hook(const track *t, int ok);

#endif
