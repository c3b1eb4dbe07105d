/*
 * The badge station's blank cards (init_token = yes): C_InitToken with the
 * SO PIN of so_pin_source and a label from the token_label template, then
 * C_InitPIN with the user PIN of pin_source or a new one (pin_length
 * digits: card PIN pads have digits only) that only the PIN mailer gets,
 * or without a mailer the operator's terminal, once.
 *
 * The station process does it itself, its watcher suspended meanwhile
 * (tok_init_token's rule: no two users of the module in one process).  A
 * generated PIN goes to the mailer on its standard input, never in argv
 * or the environment, and the mailer runs after the card was initialised,
 * so that it only ever mails a PIN a card has; a mailer that fails fails
 * the card before any key is made on it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "agent/station_init.h"

/* secret.c's buffer size: secret_free wipes that much. */
#define PIN_BUF 4097

int station_init_check(const conf_enrollment *e, int tty, secret **ret_so_pin)
{
	char err[1024];

	*ret_so_pin = NULL;
	if (e->init_token != 1)
		return EXIT_OK;
	if (e->so_pin_source == NULL) {
		log_msg(LOG_ERR, "station: init_token = yes needs so_pin_source (file:PATH, fd:N "
				 "or env:NAME): the SO PIN that blank cards get");
		return EXIT_USAGE;
	}
	if (e->pin_source == NULL && e->pin_mailer == NULL && !tty) {
		log_msg(LOG_ERR, "station: init_token = yes generates each blank card's user PIN, "
				 "and nobody would get it (standard output is no terminal to show it "
				 "on): set pin_mailer = /path/program (it gets the PIN on its "
				 "standard input), or pin_source for one PIN for all");
		return EXIT_USAGE;
	}
	if (e->pin_source != NULL && strcmp(e->pin_source, "protected") == 0) {
		log_msg(LOG_ERR, "station: init_token = yes cannot give a blank card a protected "
				 "(PIN pad) PIN: set pin_source to file:, fd: or env:, or leave it "
				 "out to generate PINs");
		return EXIT_USAGE;
	}
	/* Read once, as the user PIN: an fd: source gives it once. */
	if (secret_read(e->so_pin_source, "SO PIN", ret_so_pin, err, sizeof(err)) < 0) {
		log_msg(LOG_ERR, "%s", err);
		return EXIT_PIN;
	}
	return EXIT_OK;
}

/* The label from the template: each %s the serial (a random suffix when
 * the card has none: SoftHSM2's blank tokens), %% a percent sign. */
static void make_label(const char *tmpl, const char *serial, char *out, size_t len)
{
	char rnd[9];
	size_t o = 0;

	if (serial[0] == '\0') {
		unsigned char b[4];

		if (RAND_bytes(b, sizeof(b)) != 1)
			memset(b, 0, sizeof(b));
		snprintf(rnd, sizeof(rnd), "%02x%02x%02x%02x", b[0], b[1], b[2], b[3]);
		serial = rnd;
	}
	for (; *tmpl != '\0' && o + 1 < len; tmpl++) {
		if (tmpl[0] == '%' && tmpl[1] == 's') {
			o += (size_t)snprintf(out + o, len - o, "%s", serial);
			if (o >= len)
				o = len - 1;
			tmpl++;
		} else if (tmpl[0] == '%' && tmpl[1] == '%') {
			out[o++] = '%';
			tmpl++;
		} else
			out[o++] = *tmpl;
	}
	out[o] = '\0';
}

/* A pkcs11: URI attribute value, percent-encoded (RFC 7512). */
static size_t uri_attr(char *out, size_t o, size_t len, const char *name, const char *v,
		       int last)
{
	static const char hex[] = "0123456789ABCDEF";

	o += (size_t)snprintf(out + o, o < len ? len - o : 0, "%s=", name);
	for (; *v != '\0' && o + 4 < len; v++) {
		unsigned char c = (unsigned char)*v;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~')
			out[o++] = (char)c;
		else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	if (!last && o + 1 < len)
		out[o++] = ';';
	if (o < len)
		out[o] = '\0';
	return o;
}

/* Without a mailer: the PIN on the operator's terminal, once, written
 * past stdio so that no copy of it stays in a buffer. */
static int show_pin(const tok_info *ti, const secret *pin, char *why, size_t whylen)
{
	char line[256];
	int n;

	fflush(stdout);
	n = snprintf(line, sizeof(line),
		     "\r\033[Kcard %s: its user PIN is %s (shown only now): give it to the "
		     "card's holder\n",
		     ti->serial, pin->buf);
	if (n <= 0 || (size_t)n >= sizeof(line) || write(STDOUT_FILENO, line, (size_t)n) != n) {
		OPENSSL_cleanse(line, sizeof(line));
		snprintf(why, whylen, "cannot show the PIN on the terminal: %s", strerror(errno));
		return -1;
	}
	OPENSSL_cleanse(line, sizeof(line));
	return 0;
}

/* Runs the PIN mailer with pin on its standard input.  0, or -1 with why. */
static int mail_pin(const char *prog, const tok_info *ti, const char *subject, const secret *pin,
		    char *why, size_t whylen)
{
	char env_serial[128], env_label[128], env_subject[1100];
	static char path[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
	char *envp[] = { path, env_serial, env_label, env_subject, NULL };
	char *argv[] = { (char *)prog, NULL };
	int p[2], status;
	pid_t pid;

	snprintf(env_serial, sizeof(env_serial), "P11ENROLL_TOKEN_SERIAL=%s", ti->serial);
	snprintf(env_label, sizeof(env_label), "P11ENROLL_TOKEN_LABEL=%s", ti->label);
	snprintf(env_subject, sizeof(env_subject), "P11ENROLL_SUBJECT=%s",
		 subject != NULL ? subject : "");
	if (pipe2(p, O_CLOEXEC) < 0) {
		snprintf(why, whylen, "cannot run the PIN mailer: pipe: %s", strerror(errno));
		return -1;
	}
	/* The PIN and its newline fit in the pipe: written before the mailer
	 * runs, so that one that never reads cannot block the station. */
	if (write(p[1], pin->buf, pin->len) != (ssize_t)pin->len || write(p[1], "\n", 1) != 1) {
		snprintf(why, whylen, "cannot pass the PIN to the PIN mailer: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	close(p[1]);
	fflush(NULL);
	if ((pid = fork()) < 0) {
		snprintf(why, whylen, "cannot run the PIN mailer: fork: %s", strerror(errno));
		close(p[0]);
		return -1;
	}
	if (pid == 0) {
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		/* its output is no operator line */
		if (dup2(p[0], STDIN_FILENO) < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
			P11E_EXIT(127);
		execve(prog, argv, envp);
		P11E_EXIT(127);
	}
	close(p[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFSIGNALED(status))
		snprintf(why, whylen, "the PIN mailer %s died (signal %d)", prog, WTERMSIG(status));
	else if (WEXITSTATUS(status) == 127)
		snprintf(why, whylen, "the PIN mailer %s failed (exit 127: not found or not "
				      "executable?)", prog);
	else
		snprintf(why, whylen, "the PIN mailer %s failed (exit %d)", prog,
			 WEXITSTATUS(status));
	return -1;
}

int station_init_card(const conf_enrollment *e, const secret *so_pin, const secret *user_pin,
		      tok_watch *w, tok_watch_event *ev, const char *label_tmpl, const char *subject,
		      secret **ret_pin, char *why, size_t whylen)
{
	char label[128], err[1024], mail_why[600];
	secret *pin = NULL;
	tok_info ti;
	tok_rv rv;
	size_t o;
	int rc;

	*ret_pin = NULL;
	if (label_tmpl == NULL)
		label_tmpl = e->token_label != NULL ? e->token_label : "badge-%s";
	make_label(label_tmpl, ev->info.serial, label, sizeof(label));
	if (user_pin == NULL) {
		if ((pin = calloc(1, sizeof(*pin))) == NULL || (pin->buf = malloc(PIN_BUF)) == NULL ||
		    secret_pin_generate(pin->buf, PIN_BUF,
					(size_t)(e->pin_length > 0 ? e->pin_length : 8),
					NULL) < 0) {
			free(pin != NULL ? pin->buf : NULL);
			free(pin);
			snprintf(why, whylen, "cannot generate a PIN (out of memory or no "
					      "randomness): the card is untouched");
			return -1;
		}
		pin->len = strlen(pin->buf);
		user_pin = pin;
	}
	if (tok_watch_suspend(w) != TOK_OK) {
		secret_free(pin);
		snprintf(why, whylen, "cannot pause the card watcher: the card is untouched");
		return -1;
	}
	rv = tok_init_token(e->module, ev->uri, so_pin->buf, label, user_pin->buf, &ti, err,
			    sizeof(err));
	/* what changed meanwhile is the watcher's next events */
	if (tok_watch_resume(w) != TOK_OK)
		log_msg(LOG_WARNING, "looking for cards: %s", tok_watch_errmsg(w));
	if (rv != TOK_OK) {
		secret_free(pin);
		snprintf(why, whylen, "initializing the blank card failed: %s", err);
		return -1;
	}
	/* From now on the card is the initialised token: its removal is
	 * waited for, and its enrollment opens it by all four names. */
	ev->info = ti;
	ev->initialized = 1;
	o = uri_attr(ev->uri, 0, sizeof(ev->uri), "pkcs11:model", ti.model, 0);
	o = uri_attr(ev->uri, o, sizeof(ev->uri), "manufacturer", ti.manufacturer, 0);
	o = uri_attr(ev->uri, o, sizeof(ev->uri), "serial", ti.serial, 0);
	(void)uri_attr(ev->uri, o, sizeof(ev->uri), "token", ti.label, 1);
	if (pin == NULL)
		rc = 0;
	else if (e->pin_mailer != NULL)
		rc = mail_pin(e->pin_mailer, &ti, subject, pin, mail_why, sizeof(mail_why));
	else
		rc = show_pin(&ti, pin, mail_why, sizeof(mail_why));
	if (rc < 0) {
		secret_free(pin);
		snprintf(why, whylen, "%s: the card is initialised but empty and nobody has its "
				      "user PIN: initialise it again with the SO PIN (or insert "
				      "another blank card) once the PIN can be handed on",
			 mail_why);
		return -1;
	}
	*ret_pin = pin;
	return 0;
}
