/*
 * Allocation failure injection for p11enroll-allocfail, a second link of
 * p11enroll (agent/main.c and the layer libraries) with
 * -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,--wrap=strndup.
 *
 * Counted, and so failable, are the allocations p11enroll's own code makes:
 *   - its direct malloc/calloc/realloc/strdup/strndup calls (the link-time
 *     wrap reaches only the program's own objects, never a shared library);
 *   - OpenSSL allocations (CRYPTO_set_mem_functions) whose first caller
 *     outside libcrypto is p11enroll's code: a stack walk decides, so
 *     OpenSSL work done for libp11, SoftHSM2 or libcurl is not counted.
 * P11E_ALLOC_SCOPE=own narrows the second kind to OPENSSL_malloc(),
 * OPENSSL_zalloc(), OPENSSL_strdup() ... called by p11enroll itself, as
 * opposed to what OpenSSL allocates inside the functions p11enroll calls:
 * an enroll makes some 600 allocations of the first kind and some 40000 in
 * all (parsing and encoding certificates and CMP messages).
 * P11E_ALLOC_SCOPE=call counts, of what scope all counts, the first
 * allocation of each call p11enroll makes into libcrypto (one whose caller
 * address differs from the last counted one's): some 500 points per
 * command instead of 40000, each making one OpenSSL call fail as it would
 * without memory (most allocate their result first), so a sweep reaches
 * the error branch after every such call.
 * Not counted: libcurl's, libp11's, p11-kit's, SoftHSM2's and libc's own
 * allocations (they may abort or misbehave on failure; not our code).
 *
 * P11E_FAIL_ALLOC=n makes the n-th counted allocation return NULL (only
 * that one).  At exit the count is written to $P11E_ALLOC_REPORT (or
 * stderr): "count N", "crypto_hooks 0|1", and "failed n" plus the stack of
 * the failed call when it was reached.  A run whose count is below n made
 * no failure: the sweep is over.
 */
#include "config.h"

#define _GNU_SOURCE 1
#include <dlfcn.h>
#include <execinfo.h>
#include <fcntl.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);

#define MAX_RANGES 16
struct range {
	uintptr_t lo, hi;
};

static unsigned long target;    /* 0: never fail */
static unsigned long count;     /* counted allocations so far */
static int failed;              /* the target was reached */
static int crypto_hooks;        /* CRYPTO_set_mem_functions took effect */
static int own_only;            /* P11E_ALLOC_SCOPE=own */
static int per_call;            /* P11E_ALLOC_SCOPE=call */
static uintptr_t last_site;     /* per_call: the last counted caller */
static int counting;            /* after the warm-up */
static struct range exe[MAX_RANGES], crypto[MAX_RANGES];
static size_t n_exe, n_crypto;

static int in(const struct range *r, size_t n, uintptr_t a)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (a >= r[i].lo && a < r[i].hi)
			return 1;
	return 0;
}

/* The executable's and libcrypto's loaded segments, for the stack walk. */
static int phdr_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	uintptr_t mine = (uintptr_t)arg;
	struct range seg[MAX_RANGES];
	size_t n = 0, i;
	/* By name: the address of CRYPTO_malloc taken here may be the
	 * executable's own PLT entry (it is in the sanitizer build). */
	int has_mine = 0, has_lib = info->dlpi_name != NULL && strstr(info->dlpi_name, "/libcrypto.so") != NULL;

	(void)size;
	for (i = 0; i < info->dlpi_phnum && n < MAX_RANGES; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type != PT_LOAD)
			continue;
		seg[n].lo = info->dlpi_addr + ph->p_vaddr;
		seg[n].hi = seg[n].lo + ph->p_memsz;
		if (mine >= seg[n].lo && mine < seg[n].hi)
			has_mine = 1;
		n++;
	}
	if (has_mine) {
		memcpy(exe, seg, n * sizeof(seg[0]));
		n_exe = n;
	}
	if (has_lib) {
		memcpy(crypto, seg, n * sizeof(seg[0]));
		n_crypto = n;
	}
	return 0;
}

static void report_stack(int fd)
{
	void *frames[32];
	int n = backtrace(frames, 32);

	backtrace_symbols_fd(frames, n, fd);
}

static int report_fd(void)
{
	const char *path = getenv("P11E_ALLOC_REPORT");

	if (path == NULL)
		return dup(2);
	return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

/* One more counted allocation: 1 when it is the one to fail. */
static int fail_now(void)
{
	int fd;
	char line[64];

	if (!counting || ++count != target)
		return 0;
	failed = 1;
	if ((fd = report_fd()) >= 0) {
		int len = snprintf(line, sizeof(line), "failed %lu\n", count);

		if (write(fd, line, (size_t)len) < 0) {
			/* the report is best effort */
		}
		report_stack(fd);
		close(fd);
	}
	return 1;
}

void *__wrap_malloc(size_t n)
{
	return fail_now() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
	return fail_now() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
	return fail_now() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
	return fail_now() ? NULL : __real_strdup(s);
}

char *__wrap_strndup(const char *s, size_t n)
{
	return fail_now() ? NULL : __real_strndup(s, n);
}

/* A libcrypto frame inside one of the allocation functions themselves. */
static int crypto_alloc_frame(void *addr)
{
	Dl_info info;

	return dladdr(addr, &info) != 0 && info.dli_sname != NULL &&
	       strncmp(info.dli_sname, "CRYPTO_", 7) == 0 &&
	       (strstr(info.dli_sname, "alloc") != NULL || strstr(info.dli_sname, "dup") != NULL);
}

/* per_call: a new call, not the one the last counted allocation was
 * made for (that call going on). */
static int new_site(uintptr_t a)
{
	if (!per_call)
		return 1;
	if (a == last_site)
		return 0;
	last_site = a;
	return 1;
}

/* Is the first caller outside libcrypto p11enroll's own code?  With
 * own_only, only when it called an allocation function itself; with
 * per_call, only when it is not the caller the last counted allocation
 * had (the same call going on).  ra is where the hook returns to.
 * libcrypto 3.0's CRYPTO_malloc and CRYPTO_realloc end in a tail call to
 * the hook, so for p11enroll's own OPENSSL_malloc() and OPENSSL_realloc()
 * ra is p11enroll's code and no libcrypto frame is on the stack: such a
 * call counts in every scope.  Otherwise the stack is: this file's hook
 * (and under ASan its backtrace interceptor), then libcrypto frames, then
 * the caller. */
static __attribute__((noinline)) int ours(uintptr_t ra)
{
	void *frames[48];
	int n, i = 0;

	if (in(exe, n_exe, ra))
		return new_site(ra);
	if (!in(crypto, n_crypto, ra))
		return 0;
	n = backtrace(frames, 48);
	while (i < n && !in(crypto, n_crypto, (uintptr_t)frames[i]))
		i++;
	for (; i < n; i++) {
		uintptr_t a = (uintptr_t)frames[i];

		if (in(crypto, n_crypto, a)) {
			if (own_only && !crypto_alloc_frame(frames[i]))
				return 0;
			continue;
		}
		return in(exe, n_exe, a) && new_site(a);
	}
	return 0;
}

static void *c_malloc(size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	return ours((uintptr_t)__builtin_return_address(0)) && fail_now() ? NULL : __real_malloc(n);
}

static void *c_realloc(void *p, size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	return ours((uintptr_t)__builtin_return_address(0)) && fail_now() ? NULL
									     : __real_realloc(p, n);
}

static void c_free(void *p, const char *file, int line)
{
	(void)file;
	(void)line;
	free(p);
}

static void at_exit(void)
{
	int fd = report_fd();
	char buf[128];
	int len;

	if (fd < 0)
		return;
	len = snprintf(buf, sizeof(buf), "count %lu\ncrypto_hooks %d\nhit %d\n", count,
		       crypto_hooks, failed);
	if (write(fd, buf, (size_t)len) < 0) {
		/* the report is best effort */
	}
	close(fd);
}

/* OpenSSL 3.0 fills process-wide registries once: the name map on the
 * first fetch, the encoder and decoder lists on their first use.  An
 * allocation failing in there leaks (LeakSanitizer) and leaves them half
 * filled for every later user in the process, SoftHSM2 included, whose
 * C_CreateObject then fails with CKR_GENERAL_ERROR and leaves an object
 * behind (sweep points 999, 1498, 5490 and 1555 of an enroll before this).
 * That is OpenSSL's to fix, not p11enroll's: they are filled here, before
 * counting starts. */
static void warm_up(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	unsigned char *der = NULL;
	const unsigned char *p;
	int n;

	EVP_MD_free(EVP_MD_fetch(NULL, "SHA256", NULL));
	if (k != NULL && (n = i2d_PUBKEY(k, &der)) > 0) {
		p = der;
		EVP_PKEY_free(d2i_PUBKEY(NULL, &p, n));
	}
	OPENSSL_free(der);
	EVP_PKEY_free(k);
}

#ifdef P11E_COVERAGE
/* A coverage build writes its gcov counters along the way (P11E_COV_FLUSH
 * in config.h); gcov's allocation there is not p11enroll's, and gcov
 * crashes when it fails: not counted (linked -Wl,--wrap=__gcov_dump). */
void __real___gcov_dump(void);
void __wrap___gcov_dump(void);
void __wrap___gcov_dump(void)
{
	int was = counting;

	counting = 0;
	__real___gcov_dump();
	counting = was;
}
#endif

__attribute__((constructor)) static void allocfail_init(void)
{
	const char *v = getenv("P11E_FAIL_ALLOC");
	void *warm[2];

	if (v != NULL)
		target = strtoul(v, NULL, 10);
	v = getenv("P11E_ALLOC_SCOPE");
	own_only = v != NULL && strcmp(v, "own") == 0;
	per_call = v != NULL && strcmp(v, "call") == 0;
	/* backtrace() loads libgcc_s on first use: before any counted call. */
	(void)backtrace(warm, 2);
	dl_iterate_phdr(phdr_cb, (void *)(uintptr_t)(void *)allocfail_init);
	crypto_hooks = CRYPTO_set_mem_functions(c_malloc, c_realloc, c_free);
	warm_up();
	counting = 1;
	atexit(at_exit);
}
