/*
 * The agent (p11enroll agent): one tracked enrollment, its state machine
 * (agent/STATE-MACHINE.md) and what survives a restart.  Shared by the
 * loop (agentd.c), the transitions (fsm.c), the step processes (child.c),
 * track.c (state file, status JSON, metrics) and the control socket
 * (ctl.c, ctl_serve.c).
 */
#ifndef P11ENROLL_TRACK_H
#define P11ENROLL_TRACK_H

#include <poll.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent/agent-cmd.h"
#include "agent/daemon.h"
#include "agent/sched.h"

typedef enum {
	T_START,     /* recovery and first look at the token pending */
	T_VALID,     /* certificate on the token; renewal scheduled */
	T_BUSY,      /* a child process works on it */
	T_POLLING,   /* the CA answered "waiting": resume at its checkAfter */
	T_BACKOFF,   /* the last attempt failed: retry later */
	T_NO_TOKEN,  /* the token is absent (or another one is inserted) */
	T_PIN,       /* the token rejected the PIN: latched until the source changes */
	T_LOCKED,    /* the PIN is locked (the token's or the TPM's lockout): until clear */
	T_STOPPED,   /* needs an operator: expired or refused without bootstrap, bad config */
	T_NSTATES
} track_state;

typedef enum { OP_NONE, OP_RECOVER, OP_CHECK, OP_RENEW, OP_ENROLL, OP_RESUME } track_op;

/* The whole error a step's record carries (its "error" field), with the
 * NUL: agent.h's bound of every error message. */
#define TRACK_ERROR_MAX AGENT_ERROR_MAX
/* The longest PIN source fingerprint kept (track_pin_fingerprint()). */
#define TRACK_PIN_LATCH_MAX 512

struct child_run;   /* child.h: a running step's process, pipes and output */
struct token_group; /* agentd.c: the enrollments of one token */

typedef struct track {
	const char *name; /* e.name */
	conf_enrollment e;
	sched_policy pol;
	track_state st;
	/* what the token showed last: its identity (escaped, as the step's
	 * record has it; the serial alone repeats on some tokens, on every
	 * tpm2-pkcs11 token of one TPM) and whether its serial names it
	 * alone (-1 not known) */
	char token_serial[17];
	char token_label[132], token_manufacturer[132], token_model[68];
	int token_serial_unique;
	/* hex; RFC 5280 allows 20 octets, real CAs have sent 40 (hostile.sh) */
	char cert_serial[2 * 64 + 1];
	long long not_before, not_after;
	int have_cert, pending;
	long long pending_due;
	/* scheduling, kept in STATE_DIR/NAME.agent */
	uint32_t seed;
	long long next, last_success, last_attempt;
	long long due_logged; /* the renewal time last logged (once per change) */
	int failures;
	long renewals;
	/* when the CA last answered a step (it issued, refused or said
	 * "waiting"; agent seconds, saved; 0: never) */
	long long ca_contact;
	/* revoke_replaced: the consecutive failures to revoke the certificate
	 * a successful step replaced (its pair waits as "LABEL (to revoke)"),
	 * and when a recovery look, which retries it, is due (0: none; after
	 * a restart the first look retries it) */
	int revoke_failures;
	long long revoke_at;
	/* Whole (up to TRACK_ERROR_MAX - 1 bytes), allocated to its length:
	 * most enrollments have none, and the agent keeps thousands.
	 * track_error() and track_set_error(). */
	char *last_error;
	/* when it was set (agent seconds; 0: none or not known), and how
	 * often (error_seq: fsm_step() stamps last_error_at when it moved) */
	long long last_error_at;
	unsigned error_seq;
	/* the CA's rejection the last error reports: its PKIStatus and
	 * failInfo names (agent_result.ca_status, ca_fail_info); "" none */
	char ca_status[32];
	char ca_fail_info[600];
	/* the fingerprint of the PIN source that was rejected (up to
	 * TRACK_PIN_LATCH_MAX - 1 bytes), or NULL: track_pin_latch() and
	 * track_set_pin_latch() */
	char *pin_latch;
	/* T_LOCKED: whose lockout latched it, as the step's record said
	 * (agent_result.pin_locked: "token" or "tpm"); "" none */
	char pin_locked[8];
	/* what to do next regardless of the time */
	int need_recover, need_refresh, hook_due;
	int hook_enrolled; /* the success hook's event: "enrolled" (1) or "renewed" */
	track_op bootstrap_next; /* OP_ENROLL after a refused kur */
	/* the running step (OP_NONE: none) and its process, pipes and output,
	 * allocated only while it runs */
	track_op op;
	struct child_run *run;
	int waiter_fd; /* control client waiting for a requested renewal */
	int exit_code;
	long long forced_at; /* when a client last made a step skip the backoff (not saved) */
	/* the loop's index (agentd.c): the token's group, when the state
	 * machine wants the next EV_TICK (agent seconds), and whether the
	 * enrollment has had a look since the agent started */
	struct token_group *grp;
	long long tick_at;
	int looked;
	int save_due; /* its state file is behind (saved at the end of the round) */
} track;

#define TRACK_TOKEN_NAME 1024
/* The token it was last seen on, for log lines: "'LABEL' (serial S)" (the
 * serial alone when the token has no label); before one was seen, the
 * enrollment's token URI (or "(none seen yet)" without one). */
const char *track_token_name(const track *t, char *buf, size_t len);
/* Whether a and b were last seen on the same token (all of its identity). */
int track_same_token(const track *a, const track *b);

/* The last error, or "". */
const char *track_error(const track *t);
/* Sets it (fmt NULL: clears it, with its time and the CA's status); cut
 * at TRACK_ERROR_MAX - 1 bytes before a whole character, marked as cut
 * (AGENT_CUT_MARK).  When out of memory the error becomes "out of
 * memory". */
void track_set_error(track *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The latched fingerprint, or "". */
const char *track_pin_latch(const track *t);
/* Latches fp (NULL or "": none); cut at TRACK_PIN_LATCH_MAX - 1 bytes.  When
 * out of memory the latch becomes "out of memory", which no source matches. */
void track_set_pin_latch(track *t, const char *fp);

const char *track_state_name(track_state st);
const char *track_op_name(track_op op);

/* track_new.c: every enrollment of config (--state-dir: state_dir, or
 * NULL), checked whole (conf_file_load), each with its saved state; or
 * none (-1) and every reason in d. */
int track_load_all(const char *config, const char *state_dir, track ***ret, size_t *ret_n,
		   conf_diag *d);
void track_free(track *t);

/* track.c */
int track_load(track *t);	 /* STATE_DIR/NAME.agent; 0 also when absent */
int track_save(const track *t);	 /* atomic; logs a failure */
/* The same for ts[0..n) with one sync for all (agent_atomic_batch_*): the
 * number that failed (logged). */
int track_save_all(track *const *ts, size_t n);
/* Appends the status document (JSON) of tracks to buf (malloc'ed, *len). */
char *track_status_json(track *const *tracks, size_t n, long long now, long rate, size_t *len);
/* The same as a table, for people. */
char *track_status_text(track *const *tracks, size_t n, long long now, size_t *len);
/* The metrics file: tracks[0..n) and the agent's steps[0..nsteps). */
void track_write_metrics(track *const *tracks, size_t n, const metrics_step *steps,
			 size_t nsteps, const char *path);
/* Not a secret: the source's name, and for a file its inode, size and time. */
void track_pin_fingerprint(const conf_enrollment *e, char *out, size_t len);

/* ctl.c: the control socket.  ctl_listen: the listening socket's descriptor
 * (non-blocking, close-on-exec), or -1 with err. */
int ctl_listen(const char *path, const char *group, char *err, size_t errlen);

/*
 * The agent's side of one connection, served without ever blocking: the
 * loop polls c->fd for ctl_client_events() and calls ctl_client_io() when
 * poll reports any.  A request is one line of at most CTL_LINE_MAX bytes
 * (newline included); the answer is queued whole and sent as the client
 * takes it; then the agent shuts down its side and reads until the client
 * closes, so that nothing the client sent unread turns the close into a
 * reset that loses the answer.  Deadlines are the caller's.
 */
#define CTL_LINE_MAX 512

/* The kinds of frame of an answer (ctl_reply.c). */
typedef enum { CTL_FRAME_OUT, CTL_FRAME_ERR, CTL_FRAME_MSG } ctl_frame;

typedef enum {
	CTL_READ,   /* the request line is arriving */
	CTL_WAIT,   /* the request waits for the agent (a renewal): not polled */
	CTL_WRITE,  /* the answer is being sent */
	CTL_LINGER  /* answered; waiting for the client to close */
} ctl_phase;

typedef struct {
	int fd;
	uid_t uid;
	gid_t gid;
	int privileged;	    /* root or the agent's own user */
	ctl_phase phase;
	long long deadline; /* ctl_now_ms() by which this phase must end */
	int in_eof;	    /* the client shut down its side */
	char line[CTL_LINE_MAX + 1];
	size_t len;
	char *out;
	size_t outlen, outoff;
} ctl_client;

typedef enum {
	CTL_IO_MORE,	 /* nothing to do yet */
	CTL_IO_REQUEST,	 /* c->line holds a request (without its newline) */
	CTL_IO_TOO_LONG, /* the line outgrew CTL_LINE_MAX */
	CTL_IO_DONE	 /* answered and closed by the client, or gone: close it */
} ctl_io;

long long ctl_now_ms(void); /* CLOCK_MONOTONIC */
short ctl_client_events(const ctl_client *c);
ctl_io ctl_client_io(ctl_client *c);
/* Appends to the answer; -1 when out of memory.  ctl_client_frame: a
 * frame of kind (ctl_reply.c), after the answer's first line when it is
 * the first; ctl_client_frame0 takes p (malloc'ed; freed even on failure)
 * and copies it only when the answer has begun. */
int ctl_client_queue(ctl_client *c, const char *s, size_t n);
int ctl_client_frame(ctl_client *c, ctl_frame kind, const char *p, size_t n);
int ctl_client_frame0(ctl_client *c, ctl_frame kind, char *p, size_t n);
/* The answer is complete: sends what the client takes now (CTL_WRITE). */
ctl_io ctl_client_answer(ctl_client *c);
void ctl_client_close(ctl_client *c);
/* The client side: sends line, prints the reply (ctl_reply.c: out on
 * stdout, err on stderr, msg as an error unless the exit is 0); 0 with the
 * reply's exit status in *ret_rc, or -1 when no agent answers on path (no
 * connection, or nothing came).  An answer cut short or malformed is said
 * why and exits EXIT_TRANSPORT or EXIT_INTERNAL. */
int ctl_request(const char *path, const char *line, agent_rc *ret_rc);

/* ctl_reply.c: the framing of an answer (see there).  The *_head/_exit
 * functions format a line into buf like snprintf. */
int ctl_reply_head(char *buf, size_t len);
int ctl_reply_frame_head(char *buf, size_t len, ctl_frame kind, size_t n);
int ctl_reply_exit(char *buf, size_t len, int code);

/* The most msg bytes a client keeps (out and err are passed on). */
#define CTL_REPLY_MSG_MAX (1024 * 1024)

typedef enum {
	CTL_REPLY_START, /* before the first line */
	CTL_REPLY_HEAD,	 /* at a frame's line or the exit line */
	CTL_REPLY_BODY,	 /* within a frame */
	CTL_REPLY_DONE,	 /* after the exit line */
	CTL_REPLY_BAD	 /* malformed: why */
} ctl_reply_state;

typedef struct {
	ctl_reply_state state;
	char line[64];
	size_t linelen;
	ctl_frame kind;
	unsigned long long left; /* of the frame's body */
	char *msg;		 /* the msg frames, joined, NUL-terminated */
	size_t msglen;
	int code; /* the exit status once DONE, else -1 */
	char why[96];
} ctl_reply;
/* sink(arg, kind, p, n): n bytes of an out or err frame, as they come. */
typedef void ctl_reply_sink(void *arg, ctl_frame kind, const char *p, size_t n);
void ctl_reply_init(ctl_reply *r);
void ctl_reply_clear(ctl_reply *r);
/* The next n bytes: 0, or -1 once malformed (r->why; later calls too). */
int ctl_reply_feed(ctl_reply *r, const char *p, size_t n, ctl_reply_sink *sink, void *arg);
/* The connection ended: 0 when the answer was complete, else -1 (why). */
int ctl_reply_end(ctl_reply *r);
const char *ctl_default_path(const conf_enrollment *e);

/*
 * ctl_serve.c: the agent's side of the control socket, over every
 * connection: who may connect (root, the agent's user, members of group),
 * how many at once, their deadlines (timeout seconds for the request line,
 * and again for taking the answer).  Each request line goes to handler.
 */
typedef struct {
	ctl_client *clients;
	size_t n, cap;
	int timeout;
	const char *group; /* control_group, or NULL */
} ctl_server;
typedef void ctl_handler(void *arg, ctl_client *c);

void ctl_serve_accept(ctl_server *s, int fd);
/* The clients to poll, into pf (room for s->n); *first: the earliest of
 * their deadlines (ctl_now_ms()), or -1. */
size_t ctl_serve_pollfds(const ctl_server *s, struct pollfd *pf, long long *first);
/* After poll: the clients of pf[0..np), then the deadlines. */
void ctl_serve(ctl_server *s, const struct pollfd *pf, size_t np, ctl_handler *handler,
	       void *arg);
/* The whole answer of the client on fd: msg (the agent's words; NULL or
 * "" for none), then the exit status. */
void ctl_serve_reply(ctl_server *s, int fd, int code, const char *msg);
/* The same with a step's output first: its stdout and stderr (n bytes
 * each, either may be NULL), then msg. */
void ctl_serve_reply_step(ctl_server *s, int fd, int code, const char *out, size_t outlen,
			  const char *err, size_t errlen, const char *msg);
/* The client on fd waits for a step's outcome: not polled meanwhile. */
void ctl_serve_wait(ctl_server *s, int fd);
void ctl_serve_close_all(ctl_server *s);

typedef enum {
	CTL_UNKNOWN,
	CTL_STATUS_JSON, /* "status [NAME]" */
	CTL_STATUS_TEXT, /* "status-text [NAME]" */
	CTL_RELOAD,	 /* "reload" */
	CTL_RENEW,	 /* "renew NAME" */
	CTL_CLEAR,	 /* "clear NAME" */
} ctl_verb;
/* What a request line (as ctl_client_io framed it: without its newline,
 * cut at a CR) asks for; *ret_name points at NAME within line for renew,
 * clear and a status of one enrollment (else NULL).  Pure: no I/O, no state. */
ctl_verb ctl_parse_request(const char *line, const char **ret_name);

#endif
