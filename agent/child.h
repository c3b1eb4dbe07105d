/*
 * The agent's child processes (child.c): each step is this program's
 * one-shot command in a process of its own (stdout kept for a waiting
 * client, stderr to the log, the result record on descriptor 3), and each
 * hook is waited for by a process of its own.
 */
#ifndef P11ENROLL_CHILD_H
#define P11ENROLL_CHILD_H

#include "agent/result.h"
#include "agent/track.h"

/* How the agent runs its steps: this program, its configuration file and
 * --state-dir (NULL: none). */
typedef struct {
	const char *self, *config, *state_dir;
} child_cmd;

/* Starts the step of op for t: 0, or -1 (logged). */
int child_launch(const child_cmd *cmd, track *t, track_op op);
/* What the running step wrote so far. */
void child_drain_out(track *t);
void child_drain_err(track *t, int final);
/* After the child ended: the rest of its output, and its result record
 * (0), or -1 with why there is none. */
int child_finish(track *t, agent_result *res, char *why, size_t whylen);
/* The success (ok) or failure hook, in a process of its own. */
void child_hook(const track *t, int ok);

#endif
