/* The badge station's blank cards (station_init.c). */
#ifndef P11ENROLL_STATION_INIT_H
#define P11ENROLL_STATION_INIT_H

#include "agent/agent-cmd.h"

/*
 * At the station's start: with init_token, the settings blank cards need
 * (so_pin_source; pin_mailer unless pin_source gives the user PIN or tty,
 * standard output a terminal, is to show generated PINs) and
 * the SO PIN, read once into *ret_so_pin (NULL without init_token).
 * EXIT_OK, or the exit code with the reason logged.
 */
int station_init_check(const conf_enrollment *e, int tty, secret **ret_so_pin);

/*
 * Initializes the blank card ev (w suspended meanwhile): the label from
 * label_tmpl (a queue row's; NULL: token_label), user_pin or (NULL) a generated PIN that the PIN mailer gets
 * (subject: for its environment), or without a mailer the terminal on
 * standard output.  0: ev is now the initialised token (its
 * info and a URI that selects it), *ret_pin the generated PIN (NULL when
 * user_pin was given; secret_free it).  -1: why says what failed and what
 * to do; ev->initialized tells whether the card was initialised all the
 * same (the mailer failed).
 */
int station_init_card(const conf_enrollment *e, const secret *so_pin, const secret *user_pin,
		      tok_watch *w, tok_watch_event *ev, const char *label_tmpl, const char *subject,
		      secret **ret_pin, char *why, size_t whylen);

#endif
