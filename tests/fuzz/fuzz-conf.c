/*
 * Fuzz target: the configuration file (NCONF + our key table, whole and
 * as a client of the agent reads its head) and the subject /
 * subjectAltName and requested-extension parsers.  The input is written to a file and
 * loaded as the configuration; its subject and san values, if any, are
 * parsed as well.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/x509v3.h>

#include "agent/agent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[] = "/tmp/p11enroll-fuzz.XXXXXX", err[512];
	conf_enrollment e;
	int fd = mkstemp(path);

	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		unlink(path);
		return 0;
	}
	close(fd);
	log_init("fuzz", -1, 0);
	conf_enrollment_init(&e);
	if (conf_load(path, NULL, &e, err, sizeof(err)) == 0) {
		X509_NAME_free(conf_parse_subject(e.subject != NULL ? e.subject : "/CN=x", err,
						  sizeof(err)));
		if (e.san != NULL)
			GENERAL_NAMES_free(conf_parse_sans(e.san, err, sizeof(err)));
		{
			STACK_OF(X509_EXTENSION) *exts = NULL;

			if (conf_request_extensions(&e, &exts, err, sizeof(err)) == 0)
				sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
		}
		if (e.key_type != NULL) {
			int alg, bits;

			conf_parse_key_type(e.key_type, &alg, &bits);
		}
	}
	conf_enrollment_clear(&e);
	/* as a client of the agent reads it: the head, or the whole file */
	{
		conf_diag d = { 0 };
		conf_file *cf = NULL;

		conf_enrollment_init(&e);
		if (conf_file_load_head(path, &cf, &d) == 0 && conf_file_count(cf) > 0)
			(void)conf_file_get(cf, conf_file_name(cf, 0), &e, err, sizeof(err));
		conf_enrollment_clear(&e);
		conf_file_free(cf);
		conf_diag_clear(&d);
	}
	unlink(path);
	return 0;
}
