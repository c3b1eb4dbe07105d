/*
 * tok: watching a PKCS#11 module for tokens that appear and disappear
 * (a badge station waits for cards this way).
 *
 * Why the module is re-initialized on every poll: SoftHSM2, p11-kit's proxy
 * and tpm2-pkcs11 show a token made or deleted by another process only to a
 * new C_Initialize, and none delivers slot events (shared/STACK-NOTES.md).
 * libp11 is not used: its PKCS11_update_slots (0.4.12) sees nothing new and
 * crashes after a token was deleted; the watcher keeps its own function
 * list and asks nothing but the slot list and the token information, so
 * that no token it watches is logged in to or opened.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "pkcs11/tok-int.h"

#define DEFAULT_INTERVAL_MS 500
/* Slot events read per poll at most: a module that always answers one
 * would otherwise never let the watcher look at the slots. */
#define MAX_EVENTS_PER_POLL 64
/* A token that a new C_Initialize does not list is looked for this many
 * times more, CONFIRM_PAUSE_MS apart, before it counts as removed: SoftHSM2
 * leaves a token out of the slot list while another process writes it
 * (one look in 25 missed a token that another process logged in to and
 * listed; a watcher at 50 ms saw 16 removals in 20 s). */
#define REMOVAL_CONFIRM 2
#define CONFIRM_PAUSE_MS 20

struct known {
	CK_SLOT_ID slot;
	CK_TOKEN_INFO ti;
	char uri[TOK_URI_MAX];
	int seen; /* matched during a diff */
};

struct tok_watch {
	tok_ctx *ectx; /* holds only the error text */
	tok_raw raw;
	P11KitUri *pattern;
	int interval_ms;
	unsigned flags;
	int events;    /* waiting on C_WaitForSlotEvent(CKF_DONT_BLOCK) */
	int suspended; /* tok_watch_suspend: the module is finalized */
	int module_ok; /* the module matches the pattern's module attributes */
	struct known *known;
	size_t nknown;
	tok_watch_event *queue;
	size_t qhead, qlen, qcap;
	int64_t next_poll_ms;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int same_identity(const CK_TOKEN_INFO *a, const CK_TOKEN_INFO *b)
{
	return memcmp(a->serialNumber, b->serialNumber, sizeof(a->serialNumber)) == 0 &&
	       memcmp(a->label, b->label, sizeof(a->label)) == 0 &&
	       memcmp(a->model, b->model, sizeof(a->model)) == 0 &&
	       memcmp(a->manufacturerID, b->manufacturerID, sizeof(a->manufacturerID)) == 0;
}

/*
 * The URI of token ti in slot s that selects it among all the tokens
 * present (all: every slot with a token, initialized or not, matching the
 * pattern or not: tok_open chooses among all of them); slot-id is added
 * only when the rest selects more than this token.
 */
static int make_uri(const CK_TOKEN_INFO *ti, CK_SLOT_ID s, const tok_raw_token *all, size_t n,
		    char *out, size_t outsize)
{
	P11KitUri *u = p11_kit_uri_new();
	CK_TOKEN_INFO *ut;
	char *text = NULL;
	size_t i, matches = 0;
	int ok = 0;

	if (u == NULL)
		return 0;
	/* All four, blank ones too: "token=" selects only tokens without a
	 * label, which a blank token needs more than a slot ID that p11-kit
	 * renumbers. */
	ut = p11_kit_uri_get_token_info(u);
	memcpy(ut->label, ti->label, sizeof(ut->label));
	memcpy(ut->manufacturerID, ti->manufacturerID, sizeof(ut->manufacturerID));
	memcpy(ut->model, ti->model, sizeof(ut->model));
	memcpy(ut->serialNumber, ti->serialNumber, sizeof(ut->serialNumber));
	for (i = 0; i < n; i++)
		if (all[i].rv == CKR_OK && tok_match_token_info(u, &all[i].ti))
			matches++;
	if (matches != 1)
		p11_kit_uri_set_slot_id(u, s);
	if (p11_kit_uri_format(u, P11_KIT_URI_FOR_TOKEN | P11_KIT_URI_FOR_SLOT, &text) ==
		P11_KIT_URI_OK &&
	    strlen(text) < outsize) {
		memcpy(out, text, strlen(text) + 1);
		ok = 1;
	}
	free(text);
	p11_kit_uri_free(u);
	return ok;
}

static tok_rv enqueue(tok_watch *w, tok_watch_kind kind, const struct known *k)
{
	tok_watch_event *e;

	if (w->qhead + w->qlen == w->qcap) {
		if (w->qhead > 0) {
			memmove(w->queue, w->queue + w->qhead, w->qlen * sizeof(*w->queue));
			w->qhead = 0;
		} else {
			size_t cap = w->qcap ? w->qcap * 2 : 8;
			tok_watch_event *q = OPENSSL_realloc(w->queue, cap * sizeof(*q));

			if (q == NULL)
				return tok_fail(w->ectx, TOK_ERR_NOMEM, "out of memory");
			w->queue = q;
			w->qcap = cap;
		}
	}
	e = &w->queue[w->qhead + w->qlen++];
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	tok_info_from_ck(&k->ti, &e->info);
	e->slot_id = k->slot;
	e->initialized = (k->ti.flags & CKF_TOKEN_INITIALIZED) != 0;
	memcpy(e->uri, k->uri, sizeof(e->uri));
	return TOK_OK;
}

/* A C_GetTokenInfo failure that says the token is gone, not that it did not
 * answer this once (SoftHSM2 answers CKR_GENERAL_ERROR while another
 * process writes the token). */
static int gone_ckr(CK_RV rv)
{
	return rv == CKR_TOKEN_NOT_PRESENT || rv == CKR_DEVICE_REMOVED ||
	       rv == CKR_TOKEN_NOT_RECOGNIZED || rv == CKR_SLOT_ID_INVALID;
}

static void pause_ms(int ms)
{
	struct timespec ts = {0, (long)ms * 1000000L};

	/* a signal cuts it short: the look is only made sooner */
	(void)nanosleep(&ts, NULL);
}

/* The slots as they are now against what the watcher knew: events for the
 * difference (removals first), and the new state kept.  confirm: looks
 * left (re-initializing the module) for a known token that is missing. */
static tok_rv scan_confirm(tok_watch *w, int confirm)
{
	tok_raw_token *all;
	struct known *now = NULL;
	size_t n, i, j, nnow = 0;
	CK_RV ckr;
	tok_rv rv = TOK_OK;

	if ((ckr = tok_raw_tokens(w->raw.f, &all, &n)) != CKR_OK)
		return tok_fail(w->ectx, tok_rv_from_ckr(ckr) == TOK_ERR_NOMEM ? TOK_ERR_NOMEM
									       : TOK_ERR_DEVICE,
				"watching PKCS#11 module '%s' failed: C_GetSlotList: %s: check "
				"the module's device or service",
				w->raw.path, tok_ckr_name(ckr));
	/* n tokens present, plus the known ones a failed C_GetTokenInfo keeps */
	if (n + w->nknown > 0 &&
	    (now = OPENSSL_zalloc((n + w->nknown) * sizeof(*now))) == NULL) {
		OPENSSL_free(all);
		return tok_fail(w->ectx, TOK_ERR_NOMEM, "out of memory");
	}
	for (i = 0; i < n && w->module_ok; i++) {
		if (all[i].rv != CKR_OK) {
			if (gone_ckr(all[i].rv))
				continue;
			/* Did not answer this time: what was there stays. */
			for (j = 0; j < w->nknown; j++)
				if (w->known[j].slot == all[i].slot)
					now[nnow++] = w->known[j];
			continue;
		}
		if (!(all[i].ti.flags & CKF_TOKEN_INITIALIZED) && !(w->flags & TOK_WATCH_BLANK))
			continue;
		if (!tok_raw_match(w->raw.f, w->pattern, all[i].slot, &all[i].ti))
			continue;
		now[nnow].slot = all[i].slot;
		now[nnow].ti = all[i].ti;
		if (!make_uri(&all[i].ti, all[i].slot, all, n, now[nnow].uri,
			      sizeof(now[nnow].uri)))
			now[nnow].uri[0] = '\0';
		nnow++;
	}
	OPENSSL_free(all);

	/* Pair what is there with what was: same identity, the same slot
	 * first (twins), then any. */
	for (j = 0; j < w->nknown; j++)
		w->known[j].seen = 0;
	for (i = 0; i < nnow; i++) {
		size_t pick = w->nknown;

		for (j = 0; j < w->nknown; j++) {
			if (w->known[j].seen || !same_identity(&w->known[j].ti, &now[i].ti))
				continue;
			if (pick == w->nknown || w->known[j].slot == now[i].slot)
				pick = j;
		}
		if (pick < w->nknown) {
			w->known[pick].seen = 1;
			now[i].seen = 1;
		}
	}
	for (j = 0; j < w->nknown && confirm > 0; j++)
		if (!w->known[j].seen) {
			OPENSSL_free(now);
			pause_ms(CONFIRM_PAUSE_MS);
			tok_raw_fini(&w->raw);
			if ((rv = tok_raw_init(w->ectx, &w->raw)) != TOK_OK)
				return rv;
			return scan_confirm(w, confirm - 1);
		}
	for (j = 0; j < w->nknown && rv == TOK_OK; j++)
		if (!w->known[j].seen)
			rv = enqueue(w, TOK_WATCH_REMOVED, &w->known[j]);
	for (i = 0; i < nnow && rv == TOK_OK; i++)
		if (!now[i].seen)
			rv = enqueue(w, TOK_WATCH_APPEARED, &now[i]);
	if (rv != TOK_OK) {
		OPENSSL_free(now);
		return rv;
	}
	OPENSSL_free(w->known);
	w->known = now;
	w->nknown = nnow;
	return TOK_OK;
}

/* Only a module re-initialized for each look needs a missing token looked
 * for again: one with slot events reports a removal when it happens. */
static tok_rv scan(tok_watch *w)
{
	return scan_confirm(w, w->events ? 0 : REMOVAL_CONFIRM);
}

/* Whether the module may report slot changes through events. */
static int changes_by_event(tok_watch *w)
{
	CK_SLOT_ID s;
	CK_RV rv;
	CK_INFO info;
	static const char *const silent[] = {
	    /* They answer CKR_NO_EVENT without ever having an event: a token
	     * made or deleted by another process shows only after
	     * C_Finalize + C_Initialize (shared/STACK-NOTES.md). */
	    "SoftHSM",
	    "PKCS#11 Kit",
	    "tpm2-software",
	};
	size_t i;

	if (w->flags & TOK_WATCH_POLL)
		return 0;
	rv = w->raw.f->C_WaitForSlotEvent(CKF_DONT_BLOCK, &s, NULL);
	if (rv != CKR_OK && rv != CKR_NO_EVENT)
		return 0;
	if (w->raw.f->C_GetInfo(&info) != CKR_OK)
		return 0;
	for (i = 0; i < sizeof(silent) / sizeof(silent[0]); i++)
		if (memcmp(info.manufacturerID, silent[i], strlen(silent[i])) == 0)
			return 0;
	return 1;
}

tok_rv tok_watch_poll(tok_watch *w)
{
	CK_SLOT_ID s;
	CK_RV ckr = CKR_OK;
	tok_rv rv;
	int n;

	if (w == NULL)
		return TOK_ERR_CONFIG;
	tok_clear_err(w->ectx);
	if (w->raw.f == NULL)
		return tok_fail(w->ectx, TOK_ERR_MODULE,
				"watching for tokens failed: the watcher did not start: create a "
				"new one");
	if (w->suspended)
		return tok_fail(w->ectx, TOK_ERR_CONFIG,
				"watching PKCS#11 module '%s' failed: the watcher is suspended: "
				"resume it first",
				w->raw.path);
	w->next_poll_ms = now_ms() + w->interval_ms;
	if (w->events) {
		for (n = 0; n < MAX_EVENTS_PER_POLL; n++)
			if ((ckr = w->raw.f->C_WaitForSlotEvent(CKF_DONT_BLOCK, &s, NULL)) !=
			    CKR_OK)
				break;
		if (ckr != CKR_OK && ckr != CKR_NO_EVENT)
			return tok_fail(w->ectx, TOK_ERR_DEVICE,
					"waiting for slot events of PKCS#11 module '%s' failed: "
					"%s: check the module's device or service",
					w->raw.path, tok_ckr_name(ckr));
		return n > 0 ? scan(w) : TOK_OK;
	}
	tok_raw_fini(&w->raw);
	if ((rv = tok_raw_init(w->ectx, &w->raw)) != TOK_OK)
		return rv;
	return scan(w);
}

tok_rv tok_watch_new(const char *module, const char *pattern, int interval_ms, unsigned flags,
		     tok_watch **ret_w)
{
	tok_watch *w;
	char *path = NULL;
	CK_INFO info;
	tok_rv rv;

	if (ret_w == NULL)
		return TOK_ERR_CONFIG;
	*ret_w = NULL;
	if ((w = OPENSSL_zalloc(sizeof(*w))) == NULL)
		return TOK_ERR_NOMEM;
	if ((w->ectx = OPENSSL_zalloc(sizeof(*w->ectx))) == NULL ||
	    (w->pattern = p11_kit_uri_new()) == NULL) {
		tok_watch_free(w);
		return TOK_ERR_NOMEM;
	}
	w->interval_ms = interval_ms > 0 ? interval_ms : DEFAULT_INTERVAL_MS;
	w->flags = flags;
	*ret_w = w;
	if (pattern == NULL || pattern[0] == '\0')
		pattern = "pkcs11:";
	if ((rv = tok_uri_parse(w->ectx, pattern, w->pattern, "token pattern",
				"pkcs11:model=NAME")) != TOK_OK)
		return rv;
	if ((rv = tok_module_file(w->ectx, module, w->pattern, &path)) != TOK_OK)
		return rv;
	rv = tok_raw_load(w->ectx, path, &w->raw);
	OPENSSL_free(path);
	if (rv != TOK_OK)
		return rv;
	if ((rv = tok_raw_init(w->ectx, &w->raw)) != TOK_OK)
		return rv;
	w->module_ok =
	    w->raw.f->C_GetInfo(&info) == CKR_OK && p11_kit_uri_match_module_info(w->pattern, &info);
	w->events = changes_by_event(w);
	w->next_poll_ms = now_ms() + w->interval_ms;
	if ((rv = scan(w)) != TOK_OK)
		return rv;
	if (flags & TOK_WATCH_NO_PRESENT)
		w->qhead = w->qlen = 0;
	return TOK_OK;
}

tok_rv tok_watch_next(tok_watch *w, int timeout_ms, tok_watch_event *ret_event)
{
	int64_t deadline, t, until;
	tok_rv rv;

	if (w == NULL || ret_event == NULL)
		return TOK_ERR_CONFIG;
	tok_clear_err(w->ectx);
	deadline = timeout_ms < 0 ? INT64_MAX : now_ms() + timeout_ms;
	for (;;) {
		if (w->qlen > 0) {
			*ret_event = w->queue[w->qhead++];
			if (--w->qlen == 0)
				w->qhead = 0;
			return TOK_OK;
		}
		t = now_ms();
		if (t >= w->next_poll_ms) {
			if ((rv = tok_watch_poll(w)) != TOK_OK)
				return rv;
			continue;
		}
		if (t >= deadline)
			break;
		until = w->next_poll_ms < deadline ? w->next_poll_ms : deadline;
		{
			struct timespec ts = {(time_t)((until - t) / 1000),
					      (long)((until - t) % 1000) * 1000000L};

			/* A signal (the operator's Ctrl-C) ends the wait. */
			if (nanosleep(&ts, NULL) != 0 && errno == EINTR)
				break;
		}
	}
	memset(ret_event, 0, sizeof(*ret_event));
	ret_event->kind = TOK_WATCH_NONE;
	return TOK_OK;
}

tok_rv tok_watch_suspend(tok_watch *w)
{
	if (w == NULL)
		return TOK_ERR_CONFIG;
	tok_raw_fini(&w->raw);
	w->suspended = 1;
	return TOK_OK;
}

tok_rv tok_watch_resume(tok_watch *w)
{
	tok_rv rv;

	if (w == NULL)
		return TOK_ERR_CONFIG;
	tok_clear_err(w->ectx);
	if (!w->suspended)
		return TOK_OK;
	if (w->raw.f == NULL)
		return tok_fail(w->ectx, TOK_ERR_MODULE,
				"resuming the token watcher failed: it did not start: create a "
				"new one");
	if ((rv = tok_raw_init(w->ectx, &w->raw)) != TOK_OK)
		return rv;
	w->suspended = 0;
	w->next_poll_ms = now_ms() + w->interval_ms;
	/* Events or not: what happened meanwhile is not in any event queue. */
	return scan(w);
}

int tok_watch_uses_events(const tok_watch *w)
{
	return w != NULL && w->events;
}

const char *tok_watch_errmsg(const tok_watch *w)
{
	return w != NULL && w->ectx != NULL ? w->ectx->errmsg : "";
}

void tok_watch_free(tok_watch *w)
{
	if (w == NULL)
		return;
	tok_raw_unload(&w->raw);
	if (w->pattern != NULL)
		p11_kit_uri_free(w->pattern);
	OPENSSL_free(w->known);
	OPENSSL_free(w->queue);
	OPENSSL_free(w->ectx);
	OPENSSL_free(w);
}
