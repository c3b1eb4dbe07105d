/*
 * The configuration file is in openssl.cnf syntax and read with OpenSSL's
 * NCONF: one section per enrollment; keys in the unnamed default section
 * apply to every enrollment.  The whole file is checked when it is loaded
 * (conf_file_load): a mistake in an enrollment the command does not use
 * is still a mistake the agent will meet.  NCONF keeps no line numbers and
 * keeps only the last of two equal keys, so the file is also read line by
 * line (scan()) for both.  A client of the agent needs only its control
 * socket: conf_file_load_head() gives NCONF only the sections that decide
 * it, which scan() finds.
 */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/conf.h>
#include <openssl/err.h>

#include "agent/agent.h"
#include "agent/sched.h"
#include "agent/spool.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#ifndef LOCALSTATEDIR
#define LOCALSTATEDIR "/var"
#endif
#define DEFAULT_CONF SYSCONFDIR "/p11enroll/p11enroll.conf"

#define SETTING_ROW(k, fl, ty, sc, rq, mi, ma, ar, de, he)                                       \
	{ #k, fl, ty, sc, rq, mi, ma, ar, de, he, offsetof(conf_enrollment, k) },

const setting conf_settings[] = { P11E_SETTINGS(SETTING_ROW) };
const size_t conf_n_settings = sizeof(conf_settings) / sizeof(conf_settings[0]);

static int is_text(const setting *s)
{
	return s->type != SET_BOOL && s->type != SET_SECONDS && s->type != SET_INT;
}

static int by_key(const void *a, const void *b)
{
	return strcmp((*(const setting *const *)a)->key, (*(const setting *const *)b)->key);
}

/* Every key of every section is looked up (a file may hold thousands of
 * enrollments): by halves in a sorted copy of the table's order. */
const setting *conf_setting(const char *key)
{
	static const setting *sorted[sizeof(conf_settings) / sizeof(conf_settings[0])];
	static int ready;
	setting probe = { .key = key };
	const setting *p = &probe, *const *hit;
	size_t i;

	if (!ready) {
		for (i = 0; i < conf_n_settings; i++)
			sorted[i] = &conf_settings[i];
		qsort(sorted, conf_n_settings, sizeof(sorted[0]), by_key);
		ready = 1;
	}
	hit = bsearch(&p, sorted, conf_n_settings, sizeof(sorted[0]), by_key);
	return hit != NULL ? *hit : NULL;
}

void conf_enrollment_init(conf_enrollment *e)
{
	size_t i;

	memset(e, 0, sizeof(*e));
	for (i = 0; i < conf_n_settings; i++)
		if (!is_text(&conf_settings[i]))
			*(int *)((char *)e + conf_settings[i].off) = CONF_FIELD_UNSET;
}

void conf_enrollment_clear(conf_enrollment *e)
{
	size_t i;

	free(e->name);
	for (i = 0; i < conf_n_settings; i++)
		if (is_text(&conf_settings[i]) && !(e->pooled[i / 8] & (1u << (i % 8))))
			free(*(char **)((char *)e + conf_settings[i].off));
	conf_pool_free(e->pool);
	conf_enrollment_init(e);
}

static int is_set(const conf_enrollment *e, const setting *s)
{
	const char *f = (const char *)e + s->off;

	return is_text(s) ? *(char *const *)f != NULL : *(const int *)f != CONF_FIELD_UNSET;
}

int conf_enrollment_copy(conf_enrollment *dst, const conf_enrollment *src)
{
	size_t i;

	conf_enrollment_init(dst);
	if (src->name != NULL && (dst->name = strdup(src->name)) == NULL)
		goto fail;
	for (i = 0; i < conf_n_settings; i++) {
		const setting *s = &conf_settings[i];
		const char *from = (const char *)src + s->off;
		char *to = (char *)dst + s->off;

		if (!is_text(s))
			*(int *)to = *(const int *)from;
		else if (*(char *const *)from != NULL &&
			 (*(char **)to = strdup(*(char *const *)from)) == NULL)
			goto fail;
	}
	return 0;
fail:
	conf_enrollment_clear(dst);
	return -1;
}

/* ---- the file, line by line ------------------------------------------------ */

typedef struct {
	char *section, *key;
	long line;
} conf_line;

/* A section's header, for a reader that wants only some sections
 * (conf_file_load_head()): its name and the offset of its line. */
typedef struct {
	char *name;
	size_t off;
} conf_head;

typedef struct {
	conf_head *heads;
	size_t n, cap;
	int directives; /* a .include or .pragma line: sections may come from elsewhere */
} conf_heads;

struct conf_file {
	char *path;
	CONF *conf;
	conf_line *lines;
	size_t n_lines;
	char **names;
	size_t n_names;
	conf_pool *pool; /* the values conf_file_get() gives */
	int loaded; /* 0: no file (the default one is absent) */
	int head;   /* conf_file_load_head(): NCONF holds two sections, for the socket */
};

static char *dup_trim(const char *p, size_t n)
{
	char *s;

	while (n > 0 && (*p == ' ' || *p == '\t')) {
		p++;
		n--;
	}
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r'))
		n--;
	if ((s = malloc(n + 1)) == NULL)
		return NULL;
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

/* A header into hs; -1: out of memory. */
static int add_head(conf_heads *hs, const char *name, size_t off)
{
	conf_head *h;

	if (hs->n == hs->cap) {
		size_t cap = hs->cap == 0 ? 64 : 2 * hs->cap;

		if ((h = realloc(hs->heads, cap * sizeof(*h))) == NULL)
			return -1;
		hs->heads = h;
		hs->cap = cap;
	}
	if ((hs->heads[hs->n].name = strdup(name)) == NULL)
		return -1;
	hs->heads[hs->n++].off = off;
	return 0;
}

/* Each "key = value" with its section and line; continuation lines (the
 * one before ends in a backslash) belong to the key before, and a line
 * longer than buf is one line.  With hs, only the section headers, each
 * with its offset, into hs (f must hold no NUL: offsets are counted with
 * strlen).  -1: out of memory. */
static int scan(conf_file *cf, FILE *f, conf_heads *hs)
{
	char buf[4096], *section;
	long n = 0;
	size_t off = 0, line_off = 0;
	int at_start = 1, cont = 0, skip = 0;

	if ((section = strdup("default")) == NULL)
		return -1;
	while (fgets(buf, sizeof(buf), f) != NULL) {
		size_t len = strlen(buf);
		int starts = at_start, ends = (len > 0 && buf[len - 1] == '\n') || feof(f);
		char *p = buf + strspn(buf, " \t"), *end;
		conf_line *l;

		if (starts)
			line_off = off;
		off += len;
		while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
			buf[--len] = '\0';
		if (starts) {
			n++;
			skip = cont;
		}
		at_start = ends;
		if (ends)
			cont = len > 0 && buf[len - 1] == '\\';
		if (starts && !skip && *p == '.' && hs != NULL)
			hs->directives = 1;
		if (!starts || skip || *p == '#' || *p == '\0' || *p == '.')
			continue;
		if (*p == '[' && (end = strchr(p, ']')) != NULL) {
			free(section);
			if ((section = dup_trim(p + 1, (size_t)(end - p - 1))) == NULL ||
			    (hs != NULL && add_head(hs, section, line_off) < 0))
				goto oom;
			continue;
		}
		if (hs != NULL || (end = strchr(p, '=')) == NULL)
			continue;
		if ((l = realloc(cf->lines, (cf->n_lines + 1) * sizeof(*l))) == NULL)
			goto oom;
		cf->lines = l;
		l += cf->n_lines;
		l->line = n;
		if ((l->key = dup_trim(p, (size_t)(end - p))) == NULL)
			goto oom;
		if ((l->section = strdup(section)) == NULL) {
			free(l->key);
			goto oom;
		}
		cf->n_lines++;
	}
	free(section);
	return 0;
oom:
	free(section);
	return -1;
}

/* The line of the n-th (from 0) "key" in section, 0 when unknown (a
 * value from an .include'd file). */
static long line_of(const conf_file *cf, const char *section, const char *key, int nth)
{
	size_t i;

	for (i = 0; i < cf->n_lines; i++)
		if (strcmp(cf->lines[i].section, section) == 0 &&
		    strcmp(cf->lines[i].key, key) == 0 && nth-- == 0)
			return cf->lines[i].line;
	return 0;
}

/* "FILE:LINE: [section] key" into where. */
static void place(const conf_file *cf, const char *section, const char *key, long line,
		  char *where, size_t len)
{
	if (line > 0)
		snprintf(where, len, "%s:%ld: [%s] %s", cf->path, line, section, key);
	else
		snprintf(where, len, "%s: [%s] %s", cf->path, section, key);
}

/* place() for the first "key" of section: only for a message, for
 * line_of() reads the whole index (thousands of enrollments). */
static const char *where_of(const conf_file *cf, const char *section, const char *key,
			    char *where, size_t len)
{
	place(cf, section, key, line_of(cf, section, key, 0), where, len);
	return where;
}

static int is_default(const char *section)
{
	return strcmp(section, "default") == 0;
}

/* ---- the checks --------------------------------------------------------------- */

static void check_key(const conf_file *cf, const char *section, const CONF_VALUE *v, int flags,
		      conf_diag *d)
{
	const setting *s = conf_setting(v->name);
	char where[1200], why[600];
	const char *near;
	int ignored;

	if (s == NULL) {
		/* A misspelt "trusted" must not leave certificates unverified. */
		near = conf_near_key(v->name);
		conf_diag_add(d, 1, "%s: unknown key%s%s%s; see p11enroll.conf(5)",
			      where_of(cf, section, v->name, where, sizeof(where)),
			      near != NULL ? " (did you mean '" : "", near != NULL ? near : "",
			      near != NULL ? "'?)" : "");
		return;
	}
	if (s->scope == SC_GLOBAL && !is_default(section))
		conf_diag_add(d, 1,
			      "%s: is a setting of the whole agent: put it before the first "
			      "[section]",
			      where_of(cf, section, v->name, where, sizeof(where)));
	else if (s->scope == SC_ENROLLMENT && is_default(section))
		conf_diag_add(d, 1,
			      "%s: belongs to one enrollment: put it in the enrollment's "
			      "[section]",
			      where_of(cf, section, v->name, where, sizeof(where)));
	if (conf_check_value(s, v->value, flags, &ignored, why, sizeof(why)) < 0)
		conf_diag_add(d, 1, "%s: %s", where_of(cf, section, v->name, where, sizeof(where)), why);
}

/* Lines by section, key, then position: equal keys of a section side by side. */
static int by_section_key(const void *pa, const void *pb)
{
	const conf_line *a = *(conf_line *const *)pa, *b = *(conf_line *const *)pb;
	int c = strcmp(a->section, b->section);

	if (c == 0)
		c = strcmp(a->key, b->key);
	return c != 0 ? c : (a > b) - (a < b);
}

/* Two equal keys in one section: NCONF keeps the last without a word.  A
 * file of thousands of enrollments is sorted, not compared pairwise. */
static void check_duplicates(const conf_file *cf, conf_diag *d)
{
	const conf_line **sorted;
	long *first;
	size_t i;
	char where[1200];

	if (cf->n_lines < 2)
		return;
	sorted = malloc(cf->n_lines * sizeof(*sorted));
	first = calloc(cf->n_lines, sizeof(*first));
	if (sorted == NULL || first == NULL) {
		conf_diag_add(d, 1, "%s: out of memory", cf->path);
		goto out;
	}
	for (i = 0; i < cf->n_lines; i++)
		sorted[i] = &cf->lines[i];
	qsort(sorted, cf->n_lines, sizeof(*sorted), by_section_key);
	/* first[k]: the line the key of cf->lines[k] was first set on */
	for (i = 1; i < cf->n_lines; i++)
		if (strcmp(sorted[i]->key, sorted[i - 1]->key) == 0 &&
		    strcmp(sorted[i]->section, sorted[i - 1]->section) == 0) {
			size_t k = (size_t)(sorted[i - 1] - cf->lines);

			first[sorted[i] - cf->lines] = first[k] != 0 ? first[k] : cf->lines[k].line;
		}
	/* in the file's order, as people read it */
	for (i = 0; i < cf->n_lines; i++)
		if (first[i] != 0) {
			place(cf, cf->lines[i].section, cf->lines[i].key, cf->lines[i].line, where,
			      sizeof(where));
			conf_diag_add(d, 1,
				      "%s: set again (first on line %ld); one value per key: remove one",
				      where, first[i]);
		}
out:
	free(sorted);
	free(first);
}

int conf_check_required(const conf_enrollment *e, const char *where, conf_diag *d)
{
	char why[1024];
	size_t i;
	int bad = 0;
	long lo, hi;

	for (i = 0; i < conf_n_settings; i++)
		if (conf_settings[i].required && !is_set(e, &conf_settings[i])) {
			conf_diag_add(d, 1,
				      "%s: [%s] lacks %s, which every enrollment needs: set it in "
				      "the section, before the first section, or with --%s",
				      where, e->name != NULL ? e->name : "(command line)",
				      conf_settings[i].key, conf_settings[i].flag);
			bad = 1;
		}
	if (e->server != NULL && strncmp(e->server, "mailto:", 7) == 0 &&
	    agent_spool_mail_conf(e, why, sizeof(why)) < 0) {
		conf_diag_add(d, 1, "%s: [%s] %s", where,
			      e->name != NULL ? e->name : "(command line)", why);
		bad = 1;
	}
	if (e->retry_min != NULL && e->retry_max != NULL &&
	    sched_parse_duration(e->retry_min, &lo) == 0 &&
	    sched_parse_duration(e->retry_max, &hi) == 0 && lo > hi) {
		conf_diag_add(d, 1, "%s: [%s] retry_min %s is longer than retry_max %s", where,
			      e->name != NULL ? e->name : "(command line)", e->retry_min,
			      e->retry_max);
		bad = 1;
	}
	if (spool_remote_check(e, why, sizeof(why)) < 0) {
		conf_diag_add(d, 1, "%s: [%s] server %s: %s", where,
			      e->name != NULL ? e->name : "(command line)", e->server, why);
		bad = 1;
	}
	return bad ? -1 : 0;
}

/* ---- loading ------------------------------------------------------------------- */

const char *conf_default_path(void)
{
	return agent_user_conf() != NULL ? agent_user_conf() : DEFAULT_CONF;
}

void conf_file_free(conf_file *cf)
{
	size_t i;

	if (cf == NULL)
		return;
	for (i = 0; i < cf->n_lines; i++) {
		free(cf->lines[i].section);
		free(cf->lines[i].key);
	}
	for (i = 0; i < cf->n_names; i++)
		free(cf->names[i]);
	free(cf->lines);
	free(cf->names);
	conf_pool_seal(cf->pool);
	conf_pool_free(cf->pool);
	NCONF_free(cf->conf);
	free(cf->path);
	free(cf);
}

const char *conf_file_path(const conf_file *cf)
{
	return cf->path;
}

size_t conf_file_count(const conf_file *cf)
{
	return cf->n_names;
}

const char *conf_file_name(const conf_file *cf, size_t i)
{
	return i < cf->n_names ? cf->names[i] : NULL;
}

/* NCONF, the line index and the section names; -1 with the reason in d. */
static int read_file(conf_file *cf, int explicit, conf_diag *d)
{
	STACK_OF(OPENSSL_CSTRING) *names;
	FILE *f;
	long eline = -1;
	int i;

	if ((cf->conf = NCONF_new(NULL)) == NULL)
		goto oom;
	if ((f = fopen(cf->path, "r")) == NULL) {
		/* A missing default file is fine: the command line says everything. */
		if (errno == ENOENT && !explicit)
			return 0;
		conf_diag_add(d, 1, "cannot read the configuration file %s: %s", cf->path,
			      strerror(errno));
		return -1;
	}
	if (scan(cf, f, NULL) < 0) {
		fclose(f);
		goto oom;
	}
	fclose(f);
	if (NCONF_load(cf->conf, cf->path, &eline) <= 0) {
		const char *why = ERR_reason_error_string(ERR_peek_last_error());

		conf_diag_add(d, 1, "%s:%ld: %s; see p11enroll.conf(5)", cf->path, eline,
			      why != NULL ? why : "syntax error");
		ERR_clear_error();
		return -1;
	}
	names = NCONF_get_section_names(cf->conf);
	if (names == NULL)
		goto oom;
	cf->names = calloc((size_t)sk_OPENSSL_CSTRING_num(names) + 1, sizeof(*cf->names));
	for (i = 0; cf->names != NULL && i < sk_OPENSSL_CSTRING_num(names); i++) {
		const char *s = sk_OPENSSL_CSTRING_value(names, i);

		if (is_default(s))
			continue;
		if ((cf->names[cf->n_names] = strdup(s)) == NULL)
			break;
		cf->n_names++;
	}
	if (cf->names == NULL || i < sk_OPENSSL_CSTRING_num(names)) {
		sk_OPENSSL_CSTRING_free(names);
		goto oom;
	}
	sk_OPENSSL_CSTRING_free(names);
	cf->loaded = 1;
	return 0;
oom:
	conf_diag_add(d, 1, "%s: out of memory", cf->path);
	return -1;
}

static void check_section(const conf_file *cf, const char *section, int flags, conf_diag *d)
{
	STACK_OF(CONF_VALUE) *vals = NCONF_get_section(cf->conf, section);
	int i;

	for (i = 0; i < sk_CONF_VALUE_num(vals); i++)
		check_key(cf, section, sk_CONF_VALUE_value(vals, i), flags, d);
}

/* The path conf_file_load() reads; explicit: named, not the default file. */
static const char *conf_path(const char *path, int *ret_explicit)
{
	*ret_explicit = 1;
	if (path == NULL)
		path = getenv("P11ENROLL_CONF");
	if (path == NULL) {
		path = conf_default_path();
		*ret_explicit = 0;
	}
	return path;
}

int conf_file_load(const char *path, int flags, conf_file **ret_cf, conf_diag *d)
{
	conf_file *cf = calloc(1, sizeof(*cf));
	int explicit, before = d->errors;
	size_t i;

	*ret_cf = NULL;
	path = conf_path(path, &explicit);
	if (cf == NULL || (cf->path = strdup(path)) == NULL || (cf->pool = conf_pool_new()) == NULL) {
		conf_file_free(cf);
		conf_diag_add(d, 1, "out of memory");
		return -1;
	}
	if (read_file(cf, explicit, d) < 0)
		goto fail;
	if (cf->loaded) {
		check_duplicates(cf, d);
		check_section(cf, "default", flags, d);
		for (i = 0; i < cf->n_names; i++)
			check_section(cf, cf->names[i], flags, d);
	}
	if (d->errors > before)
		goto fail;
	/* The line index serves the messages of these checks only: an agent
	 * of thousands of enrollments need not hold it while it builds them. */
	for (i = 0; i < cf->n_lines; i++) {
		free(cf->lines[i].section);
		free(cf->lines[i].key);
	}
	free(cf->lines);
	cf->lines = NULL;
	cf->n_lines = 0;
	*ret_cf = cf;
	return 0;
fail:
	conf_file_free(cf);
	return -1;
}

/* ---- the head only --------------------------------------------------------- */

/* The keys that decide the agent's control socket (ctl_default_path()). */
static int decides_socket(const setting *s)
{
	return strcmp(s->key, "control_socket") == 0 || strcmp(s->key, "state_dir") == 0;
}

/* A section name NCONF reads as scan() does: no variables, escapes, quotes
 * or blanks that the two could read differently. */
static int plain_name(const char *s)
{
	for (; *s != '\0'; s++)
		if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') && !(*s >= '0' && *s <= '9') &&
		    strchr("-_.@+", *s) == NULL)
			return 0;
	return 1;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The whole file into *ret_buf (NUL-terminated) and *ret_len: 0, 1 when it
 * does not exist, -1 with the reason in d. */
static int slurp(const char *path, int explicit, char **ret_buf, size_t *ret_len, conf_diag *d)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL, *p;
	size_t len = 0, cap = 0, n;

	if (f == NULL) {
		if (errno == ENOENT && !explicit)
			return 1;
		conf_diag_add(d, 1, "cannot read the configuration file %s: %s", path, strerror(errno));
		return -1;
	}
	do {
		if (cap - len < 65536) {
			cap = cap == 0 ? 65536 : 2 * cap;
			if ((p = realloc(buf, cap + 1)) == NULL) {
				conf_diag_add(d, 1, "%s: out of memory", path);
				goto fail;
			}
			buf = p;
		}
		len += n = fread(buf + len, 1, cap - len, f);
	} while (n > 0);
	if (ferror(f)) {
		conf_diag_add(d, 1, "cannot read the configuration file %s: %s", path,
			      strerror(errno));
		goto fail;
	}
	fclose(f);
	buf[len] = '\0';
	*ret_buf = buf;
	*ret_len = len;
	return 0;
fail:
	fclose(f);
	free(buf);
	return -1;
}

/*
 * The part of the file that decides the control socket, for
 * conf_file_load_head(): every section's name (the first by NCONF's order,
 * strcmp, is the agent's first enrollment), and into NCONF only the text of
 * the unnamed section and of the first enrollment (each header may stand
 * more than once).  1: this file needs the whole load (a directive, a
 * section name NCONF may read otherwise, text NCONF refuses alone, such as a
 * variable of another section); -1: out of memory.
 */
static int read_head(conf_file *cf, const char *buf, size_t len)
{
	conf_heads hs = { 0 };
	STACK_OF(OPENSSL_CSTRING) *got = NULL;
	const char *first = NULL;
	char *text = NULL;
	size_t i, k, n = 0;
	FILE *f = NULL;
	BIO *bio = NULL;
	long eline;
	int rv = 1;

	if (memchr(buf, '\0', len) != NULL)
		goto out; /* scan() counts offsets with strlen */
	if (len > 0) {
		if ((f = fmemopen((void *)buf, len, "r")) == NULL || scan(cf, f, &hs) < 0) {
			rv = -1;
			goto out;
		}
	}
	if (hs.directives)
		goto out;
	for (i = 0; i < hs.n; i++) {
		if (!plain_name(hs.heads[i].name))
			goto out;
		if (!is_default(hs.heads[i].name) &&
		    (first == NULL || strcmp(hs.heads[i].name, first) < 0))
			first = hs.heads[i].name;
	}
	if ((text = malloc(len + 1)) == NULL) {
		rv = -1;
		goto out;
	}
	for (i = 0; i <= hs.n; i++) {
		size_t from = i == 0 ? 0 : hs.heads[i - 1].off, to = i < hs.n ? hs.heads[i].off : len;

		if (i == 0 || is_default(hs.heads[i - 1].name) ||
		    strcmp(hs.heads[i - 1].name, first) == 0) {
			memcpy(text + n, buf + from, to - from);
			n += to - from;
		}
	}
	if ((cf->conf = NCONF_new(NULL)) == NULL ||
	    (bio = BIO_new_mem_buf(text, (int)n)) == NULL) {
		rv = -1;
		goto out;
	}
	if (n > 0 && NCONF_load_bio(cf->conf, bio, &eline) <= 0) {
		ERR_clear_error();
		goto out;
	}
	/* NCONF read the sections scan() found, and no other */
	if ((got = NCONF_get_section_names(cf->conf)) == NULL) {
		rv = -1;
		goto out;
	}
	for (k = 0; k < (size_t)sk_OPENSSL_CSTRING_num(got); k++) {
		const char *name = sk_OPENSSL_CSTRING_value(got, (int)k);

		if (!is_default(name) && (first == NULL || strcmp(name, first) != 0))
			goto out;
	}
	if (first != NULL && NCONF_get_section(cf->conf, first) == NULL)
		goto out;
	/* the enrollments' names, as NCONF gives them: sorted, each once */
	if ((cf->names = calloc(hs.n + 1, sizeof(*cf->names))) == NULL) {
		rv = -1;
		goto out;
	}
	for (i = 0; i < hs.n; i++)
		if (!is_default(hs.heads[i].name)) {
			cf->names[cf->n_names++] = hs.heads[i].name;
			hs.heads[i].name = NULL;
		}
	qsort(cf->names, cf->n_names, sizeof(*cf->names), by_name);
	for (i = k = 0; i < cf->n_names; i++)
		if (k > 0 && strcmp(cf->names[i], cf->names[k - 1]) == 0)
			free(cf->names[i]);
		else
			cf->names[k++] = cf->names[i];
	cf->n_names = k;
	rv = 0;
out:
	sk_OPENSSL_CSTRING_free(got);
	BIO_free(bio);
	free(text);
	if (f != NULL)
		fclose(f);
	for (i = 0; i < hs.n; i++)
		free(hs.heads[i].name);
	free(hs.heads);
	return rv;
}

/* The keys that decide the socket, checked as conf_file_load() checks
 * them (scope and value). */
static void check_socket_keys(const conf_file *cf, const char *section, conf_diag *d)
{
	STACK_OF(CONF_VALUE) *vals = NCONF_get_section(cf->conf, section);
	int i;

	for (i = 0; i < sk_CONF_VALUE_num(vals); i++) {
		const CONF_VALUE *v = sk_CONF_VALUE_value(vals, i);
		const setting *s = conf_setting(v->name);

		if (s != NULL && decides_socket(s))
			check_key(cf, section, v, 0, d);
	}
}

int conf_file_load_head(const char *path, conf_file **ret_cf, conf_diag *d)
{
	conf_file *cf = calloc(1, sizeof(*cf));
	conf_diag scratch = { 0 };
	char *buf = NULL;
	size_t len = 0;
	int explicit, r;

	*ret_cf = NULL;
	path = conf_path(path, &explicit);
	if (cf == NULL || (cf->path = strdup(path)) == NULL || (cf->pool = conf_pool_new()) == NULL) {
		conf_file_free(cf);
		conf_diag_add(d, 1, "out of memory");
		return -1;
	}
	if ((r = slurp(path, explicit, &buf, &len, d)) < 0)
		goto fail;
	if (r == 1) {
		*ret_cf = cf; /* no default file: an empty configuration */
		return 0;
	}
	cf->head = 1;
	cf->loaded = 1;
	if ((r = read_head(cf, buf, len)) < 0) {
		conf_diag_add(d, 1, "%s: out of memory", path);
		goto fail;
	}
	free(buf);
	if (r == 0) {
		check_socket_keys(cf, "default", &scratch);
		if (cf->n_names > 0)
			check_socket_keys(cf, cf->names[0], &scratch);
	}
	if (r == 0 && scratch.errors == 0) {
		log_msg(LOG_DEBUG, "%s: read [default]%s%s%s of %zu enrollment(s), for the control "
				   "socket",
			path, cf->n_names > 0 ? " and [" : "", cf->n_names > 0 ? cf->names[0] : "",
			cf->n_names > 0 ? "]" : "", cf->n_names);
		*ret_cf = cf;
		return 0;
	}
	/* what the head alone cannot say, the whole load says, with every
	 * message of a check */
	conf_diag_clear(&scratch);
	conf_file_free(cf);
	log_msg(LOG_DEBUG, "%s: reading the whole file, for the control socket", path);
	return conf_file_load(path, 0, ret_cf, d);
fail:
	free(buf);
	conf_file_free(cf);
	return -1;
}

int conf_file_check_required(const conf_file *cf, const char *skip, conf_diag *d)
{
	char err[512];
	size_t i;
	int before = d->errors;

	/* the required keys, once the unnamed section's defaults apply */
	for (i = 0; i < cf->n_names; i++) {
		conf_enrollment e;

		if (skip != NULL && strcmp(skip, cf->names[i]) == 0)
			continue;
		conf_enrollment_init(&e);
		if (conf_file_get(cf, cf->names[i], &e, err, sizeof(err)) < 0)
			conf_diag_add(d, 1, "%s", err);
		else
			(void)conf_check_required(&e, cf->path, d);
		conf_enrollment_clear(&e);
	}
	return d->errors > before ? -1 : 0;
}

/* Sets each field of section's keys that e does not have yet. */
static int apply_section(const conf_file *cf, const char *section, conf_enrollment *e,
			 char *err, size_t errlen)
{
	STACK_OF(CONF_VALUE) *vals = NCONF_get_section(cf->conf, section);
	char why[600];
	int i, v = 0;

	for (i = 0; i < sk_CONF_VALUE_num(vals); i++) {
		CONF_VALUE *cv = sk_CONF_VALUE_value(vals, i);
		const setting *s = conf_setting(cv->name);
		char *field;

		if (s == NULL || is_set(e, s) || (cf->head && !decides_socket(s)))
			continue; /* unknown keys were refused at load */
		field = (char *)e + s->off;
		/* checked at load: only numbers are parsed again */
		if (!is_text(s) && conf_check_value(s, cv->value, 0, &v, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "%s: [%s] %s: %s", cf->path, section, s->key, why);
			return -1;
		}
		if (!is_text(s)) {
			*(int *)field = v;
		} else if (e->pool == NULL || e->pool == cf->pool) {
			size_t k = (size_t)(s - conf_settings);

			/* shared: no one writes through a field */
			if ((*(char **)field = (char *)conf_pool_get0(cf->pool, cv->value)) == NULL) {
				snprintf(err, errlen, "out of memory");
				return -1;
			}
			e->pooled[k / 8] |= (unsigned char)(1u << (k % 8));
			if (e->pool == NULL)
				e->pool = conf_pool_up(cf->pool);
		} else if ((*(char **)field = strdup(cv->value)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	return 0;
}

/* The enrollment to use when none is named: the only one there is. */
static int pick_section(const conf_file *cf, const char **ret, char *err, size_t errlen)
{
	char list[512] = "";
	size_t i;

	if (cf->n_names == 1) {
		*ret = cf->names[0];
		return 0;
	}
	if (cf->n_names == 0) {
		snprintf(err, errlen, "%s defines no enrollment section", cf->path);
		return -1;
	}
	for (i = 0; i < cf->n_names; i++)
		if (strlen(list) + strlen(cf->names[i]) + 3 < sizeof(list)) {
			if (list[0] != '\0')
				strncat(list, ", ", sizeof(list) - strlen(list) - 1);
			strncat(list, cf->names[i], sizeof(list) - strlen(list) - 1);
		}
	snprintf(err, errlen, "%s defines several enrollments (%s): name one", cf->path, list);
	return -1;
}

/* name among the sorted names of a head (conf_file_load_head()) */
static int has_name(const conf_file *cf, const char *name)
{
	return bsearch(&name, cf->names, cf->n_names, sizeof(*cf->names), by_name) != NULL;
}

const char *conf_file_pick(const conf_file *cf, const char *name, char *err, size_t errlen)
{
	if (!cf->loaded) {
		if (name != NULL)
			snprintf(err, errlen, "the configuration file %s does not exist: there is "
					      "no enrollment [%s]",
				 cf->path, name);
		return NULL;
	}
	if (name == NULL && pick_section(cf, &name, err, errlen) < 0)
		return NULL;
	if (is_default(name) || (cf->head ? !has_name(cf, name)
					    : NCONF_get_section(cf->conf, name) == NULL)) {
		snprintf(err, errlen, "%s has no enrollment [%s]", cf->path, name);
		return NULL;
	}
	return name;
}

int conf_file_get(const conf_file *cf, const char *name, conf_enrollment *e, char *err,
		  size_t errlen)
{
	err[0] = '\0';
	if (!cf->loaded && name == NULL)
		return 0; /* no file: the command line alone */
	if ((name = conf_file_pick(cf, name, err, errlen)) == NULL)
		return -1;
	if (e->name == NULL && (e->name = strdup(name)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (apply_section(cf, name, e, err, errlen) < 0)
		return -1;
	/* Defaults from the unnamed section, for keys the enrollment left out. */
	if (NCONF_get_section(cf->conf, "default") != NULL &&
	    apply_section(cf, "default", e, err, errlen) < 0)
		return -1;
	return 0;
}

int conf_load(const char *path, const char *name, conf_enrollment *e, char *err, size_t errlen)
{
	conf_diag d = { 0 };
	conf_file *cf = NULL;
	const char *picked;
	int rc = -1;

	err[0] = '\0';
	if (conf_file_load(path, CONF_CHECK_ACCESS, &cf, &d) < 0)
		goto out;
	picked = cf->loaded && cf->n_names > 0 ? conf_file_pick(cf, name, err, errlen) : name;
	if (conf_file_check_required(cf, picked, &d) < 0 ||
	    conf_file_get(cf, name, e, err, errlen) < 0)
		goto out;
	rc = 0;
out:
	if (rc < 0 && err[0] == '\0') {
		/* the first problem, on one line, as the callers print it */
		snprintf(err, errlen, "%s", d.text != NULL ? d.text : "out of memory");
		err[strcspn(err, "\n")] = '\0';
	}
	conf_file_free(cf);
	conf_diag_clear(&d);
	return rc;
}
