/*
 * p11wrap: a PKCS#11 module for tests only.  It loads the real module
 * named by P11WRAP_MODULE and forwards every call of the v2.40 function
 * list to it; on demand it logs each call, adds flags to the token
 * information, makes chosen calls fail and kills its own process at a
 * chosen call (tests/p11wrap/README).
 *
 * Environment: P11WRAP_MODULE (the real module), P11WRAP_LOG (one line per
 * call; with P11WRAP_LOG_CALLER, who made it), P11WRAP_TOKEN_FLAGS (ORed into CK_TOKEN_INFO.flags), P11WRAP_FAIL
 * (C_Name=CKR[@N],...: answer the call without the real module),
 * P11WRAP_LOG_MECHANISM (a "MECHANISM C_SignInit CKM_X" line before each
 * C_SignInit), P11WRAP_LOG_TEMPLATE (a "TEMPLATE C_Name class=... value=..."
 * line before each C_CreateObject and C_UnwrapKey), and
 *
 * P11WRAP_KILL=C_Name:when[:N][,C_Name:when[:N]...]
 *     At the Nth call (counting from 1; the first without :N) of C_Name the
 *     wrapper sends SIGKILL to its own process: when is "before" (the call
 *     never reaches the real module) or "after" (the real module, or a
 *     P11WRAP_FAIL item, has answered: the call's effects are on the token).
 *     Calls are counted over the module's whole life in the process: across
 *     C_Finalize and a new C_Initialize (unlike P11WRAP_FAIL's counts), and
 *     across a dlclose and a new load too, since p11wrap stays mapped until
 *     the process exits.  Just before the kill, "KILL C_Name before|after #N"
 *     is written to P11WRAP_LOG (one write(2): nothing left to flush; to
 *     stderr without P11WRAP_LOG).  Up to 32 items, e.g.
 *     C_GenerateKeyPair:after, C_CreateObject:before, C_DestroyObject:after:2.
 *     For crash-safety tests: the process dies as by a power cut or the OOM
 *     killer, with no chance to clean up; a shell sees exit status 137.
 *
 * P11WRAP_HOLD=C_Name:when[:N][,...], P11WRAP_HOLD_FILE=FILE
 *     At the same points as P11WRAP_KILL the call waits instead: it creates
 *     FILE.held and goes on once FILE exists (checked every 20 ms; signals
 *     do not end the wait).  A slow token, for as long as a test needs.
 *
 * P11WRAP_TIMES=FILE
 *     Counts the calls of each function and the time spent in the real
 *     module; at the process's exit appends "C_Name calls=N us=T" lines,
 *     after a "TIMES pid=P" line, to FILE (for bench/limit.sh: what of a
 *     run the module took, what the caller).
 *
 * P11WRAP_PINPAD=FILE
 *     A PIN pad reader: a C_Login without a PIN logs in with FILE's PIN
 *     (README).
 *
 * P11WRAP_CREATED_VALUE=FILE, P11WRAP_CREATED_FAIL=CKR
 *     For objects that C_CreateObject made through this initialization: a
 *     C_GetAttributeValue asking their CKA_VALUE answers the bytes of FILE
 *     as that value (a token that stores something other than it was
 *     given), or fails with CKR without reaching the real module.
 *
 * P11WRAP_SLOT_EVENTS=1
 *     A module that delivers slot events (as OpenSC with pcscd): see
 *     wrap_wait_for_slot_event.
 *
 * P11WRAP_ONCE=FILE
 *     P11WRAP_FAIL and P11WRAP_KILL items fire in one process only: the
 *     first whose item matches while FILE exists, and unlinks it (only one
 *     unlink(2) succeeds, however many processes load the wrapper).  That
 *     process's items then fire as without P11WRAP_ONCE; no other's do.
 *
 * P11WRAP_SERIAL=VALUE
 *     C_GetTokenInfo reports every token's serialNumber as VALUE (at most 16
 *     bytes, blank-padded): tokens whose serials are not unique, as every
 *     tpm2-pkcs11 token on one TPM ("0000000000000000").  Only the report
 *     changes, but a URI's serial= is matched against the report.
 *
 * P11WRAP_GONE=1
 *     Once a P11WRAP_FAIL item has answered a call, every later call of the
 *     process but C_Initialize, C_Finalize, C_GetInfo and C_GetSlotList
 *     answers the same CKR: the card was pulled out.
 *
 * P11WRAP_FIRST_INIT=1
 *     P11WRAP_FAIL items fire only within the process's first
 *     initialization: a module whose state went wrong and that a new
 *     C_Initialize sets right (SoftHSM2 after reading a token file that
 *     another process was writing).
 *
 * Only C_GetFunctionList is exported: the forwarders are static, so the
 * real module's own calls can never bind to them.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

/* Every entry of CK_FUNCTION_LIST but C_GetFunctionList: name, parameters, arguments. */
#define P11WRAP_FUNCS(X)                                                                           \
	X(C_Initialize, (CK_VOID_PTR a0), (a0))                                                    \
	X(C_Finalize, (CK_VOID_PTR a0), (a0))                                                      \
	X(C_GetInfo, (CK_INFO_PTR a0), (a0))                                                       \
	X(C_GetSlotList, (CK_BBOOL a0, CK_SLOT_ID_PTR a1, CK_ULONG_PTR a2), (a0, a1, a2))          \
	X(C_GetSlotInfo, (CK_SLOT_ID a0, CK_SLOT_INFO_PTR a1), (a0, a1))                           \
	X(C_GetTokenInfo, (CK_SLOT_ID a0, CK_TOKEN_INFO_PTR a1), (a0, a1))                         \
	X(C_GetMechanismList, (CK_SLOT_ID a0, CK_MECHANISM_TYPE_PTR a1, CK_ULONG_PTR a2),          \
	  (a0, a1, a2))                                                                            \
	X(C_GetMechanismInfo, (CK_SLOT_ID a0, CK_MECHANISM_TYPE a1, CK_MECHANISM_INFO_PTR a2),     \
	  (a0, a1, a2))                                                                            \
	X(C_InitToken, (CK_SLOT_ID a0, CK_BYTE_PTR a1, CK_ULONG a2, CK_BYTE_PTR a3),               \
	  (a0, a1, a2, a3))                                                                        \
	X(C_InitPIN, (CK_SESSION_HANDLE a0, CK_BYTE_PTR a1, CK_ULONG a2), (a0, a1, a2))            \
	X(C_SetPIN,                                                                                \
	  (CK_SESSION_HANDLE a0, CK_BYTE_PTR a1, CK_ULONG a2, CK_BYTE_PTR a3, CK_ULONG a4),        \
	  (a0, a1, a2, a3, a4))                                                                    \
	X(C_OpenSession,                                                                           \
	  (CK_SLOT_ID a0, CK_FLAGS a1, CK_VOID_PTR a2, CK_NOTIFY a3, CK_SESSION_HANDLE_PTR a4),    \
	  (a0, a1, a2, a3, a4))                                                                    \
	X(C_CloseSession, (CK_SESSION_HANDLE a0), (a0))                                            \
	X(C_CloseAllSessions, (CK_SLOT_ID a0), (a0))                                               \
	X(C_GetSessionInfo, (CK_SESSION_HANDLE a0, CK_SESSION_INFO_PTR a1), (a0, a1))              \
	X(C_GetOperationState, (CK_SESSION_HANDLE a0, CK_BYTE_PTR a1, CK_ULONG_PTR a2),            \
	  (a0, a1, a2))                                                                            \
	X(C_SetOperationState,                                                                     \
	  (CK_SESSION_HANDLE a0, CK_BYTE_PTR a1, CK_ULONG a2, CK_OBJECT_HANDLE a3,                 \
	   CK_OBJECT_HANDLE a4),                                                                   \
	  (a0, a1, a2, a3, a4))                                                                    \
	X(C_Login, (CK_SESSION_HANDLE a0, CK_USER_TYPE a1, CK_BYTE_PTR a2, CK_ULONG a3),           \
	  (a0, a1, a2, a3))                                                                        \
	X(C_Logout, (CK_SESSION_HANDLE a0), (a0))                                                  \
	X(C_CreateObject,                                                                          \
	  (CK_SESSION_HANDLE a0, CK_ATTRIBUTE_PTR a1, CK_ULONG a2, CK_OBJECT_HANDLE_PTR a3),       \
	  (a0, a1, a2, a3))                                                                        \
	X(C_CopyObject,                                                                            \
	  (CK_SESSION_HANDLE a0, CK_OBJECT_HANDLE a1, CK_ATTRIBUTE_PTR a2, CK_ULONG a3,            \
	   CK_OBJECT_HANDLE_PTR a4),                                                               \
	  (a0, a1, a2, a3, a4))                                                                    \
	X(C_DestroyObject, (CK_SESSION_HANDLE a0, CK_OBJECT_HANDLE a1), (a0, a1))                  \
	X(C_GetObjectSize, (CK_SESSION_HANDLE a0, CK_OBJECT_HANDLE a1, CK_ULONG_PTR a2),           \
	  (a0, a1, a2))                                                                            \
	X(C_GetAttributeValue,                                                                     \
	  (CK_SESSION_HANDLE a0, CK_OBJECT_HANDLE a1, CK_ATTRIBUTE_PTR a2, CK_ULONG a3),           \
	  (a0, a1, a2, a3))                                                                        \
	X(C_SetAttributeValue,                                                                     \
	  (CK_SESSION_HANDLE a0, CK_OBJECT_HANDLE a1, CK_ATTRIBUTE_PTR a2, CK_ULONG a3),           \
	  (a0, a1, a2, a3))                                                                        \
	X(C_FindObjectsInit, (CK_SESSION_HANDLE a0, CK_ATTRIBUTE_PTR a1, CK_ULONG a2),             \
	  (a0, a1, a2))                                                                            \
	X(C_FindObjects,                                                                           \
	  (CK_SESSION_HANDLE a0, CK_OBJECT_HANDLE_PTR a1, CK_ULONG a2, CK_ULONG_PTR a3),           \
	  (a0, a1, a2, a3))                                                                        \
	X(C_FindObjectsFinal, (CK_SESSION_HANDLE a0), (a0))                                        \
	X(C_EncryptInit, (CK_SESSION_HANDLE a0, CK_MECHANISM_PTR a1, CK_OBJECT_HANDLE a2),         \
	  (a0, a1, a2))                                                                            \
	X(C_Encrypt,                                                                               \
	  (CK_SESSION_HANDLE a0, CK_BYTE_PTR a1, CK_ULONG a2, CK_BYTE_PTR a3, CK_ULONG_PTR a4),    \
	  (a0, a1, a2, a3, a4))                                                                    \
	X(C_EncryptUpdate,                                                                         \
	  (CK_SESSION_HANDLE a0, CK_BYTE_PTR a1, CK_ULONG a2, CK_BYTE_PTR a3, CK_ULONG_PTR a4),    \
	  (a0, a1, a2, a3, a4))                                                                    \
	X(C_EncryptFinal, (CK_SESSION_HANDLE a0, CK_BYTE_PTR a1, CK_ULONG_PTR a2), (a0, a1, a2))   \
	X(C_DecryptInit, (CK_SESSION_HANDLE a0, CK_MECHANISM_PTR a1, CK_OBJECT_HANDLE a2),         \
	  (a0, a1, a2))                                                                            \
	X(C_Decrypt,                                                                               \
	  (CK_SESSION_HANDLE a0, CK_BYTE_PTR a1, CK_ULONG a2, CK_BYTE_PTR a3, CK_ULONG_PTR a4),    \
	  (a0, a1, a2, a3, a4))                                                                    \
	X(C_DecryptUpdate,                                                                         \
	  (CK_SESSION_HANDLE a0, CK_BYTE_PTR a1, CK_ULONG a2, CK_BYTE_PTR a3, CK_ULONG_PTR a4),    \
	  (a0, a1, a2, a3, a4))                                                                    \
	X(C_DecryptFinal, (CK_SESSION_HANDLE a0, CK_BYTE_PTR a1, CK_ULONG_PTR a2), (a0, a1, a2))   \
	X(C_DigestInit, (CK_SESSION_HANDLE a0, CK_MECHANISM_PTR a1), (a0, a1))                     \
	X(C_Digest,                                                                                \
	  (CK_SESSION_HANDLE a0, CK_BYTE_PTR a1, CK_ULONG a2, CK_BYTE_PTR a3, CK_ULONG_PTR a4),    \
	  (a0, a1, a2, a3, a4))                                                                    \
	X(C_DigestUpdate, (CK_SESSION_HANDLE a0, CK_BYTE_PTR a1, CK_ULONG a2), (a0, a1, a2))       \
	X(C_DigestKey, (CK_SESSION_HANDLE a0, CK_OBJECT_HANDLE a1), (a0, a1))                      \
	X(C_DigestFinal, (CK_SESSION_HANDLE a0, CK_BYTE_PTR a1, CK_ULONG_PTR a2), (a0, a1, a2))    \
	X(C_SignInit, (CK_SESSION_HANDLE a0, CK_MECHANISM_PTR a1, CK_OBJECT_HANDLE a2),            \
	  (a0, a1, a2))                                                                            \
	X(C_Sign,                                                                                  \
	  (CK_SESSION_HANDLE a0, CK_BYTE_PTR a1, CK_ULONG a2, CK_BYTE_PTR a3, CK_ULONG_PTR a4),    \
	  (a0, a1, a2, a3, a4))                                                                    \
	X(C_SignUpdate, (CK_SESSION_HANDLE a0, CK_BYTE_PTR a1, CK_ULONG a2), (a0, a1, a2))         \
	X(C_SignFinal, (CK_SESSION_HANDLE a0, CK_BYTE_PTR a1, CK_ULONG_PTR a2), (a0, a1, a2))      \
	X(C_SignRecoverInit, (CK_SESSION_HANDLE a0, CK_MECHANISM_PTR a1, CK_OBJECT_HANDLE a2),     \
	  (a0, a1, a2))                                                                            \
	X(C_SignRecover,                                                                           \
	  (CK_SESSION_HANDLE a0, CK_BYTE_PTR a1, CK_ULONG a2, CK_BYTE_PTR a3, CK_ULONG_PTR a4),    \
	  (a0, a1, a2, a3, a4))                                                                    \
	X(C_VerifyInit, (CK_SESSION_HANDLE a0, CK_MECHANISM_PTR a1, CK_OBJECT_HANDLE a2),          \
	  (a0, a1, a2))                                                                            \
	X(C_Verify,                                                                                \
	  (CK_SESSION_HANDLE a0, CK_BYTE_PTR a1, CK_ULONG a2, CK_BYTE_PTR a3, CK_ULONG a4),        \
	  (a0, a1, a2, a3, a4))                                                                    \
	X(C_VerifyUpdate, (CK_SESSION_HANDLE a0, CK_BYTE_PTR a1, CK_ULONG a2), (a0, a1, a2))       \
	X(C_VerifyFinal, (CK_SESSION_HANDLE a0, CK_BYTE_PTR a1, CK_ULONG a2), (a0, a1, a2))        \
	X(C_VerifyRecoverInit, (CK_SESSION_HANDLE a0, CK_MECHANISM_PTR a1, CK_OBJECT_HANDLE a2),   \
	  (a0, a1, a2))                                                                            \
	X(C_VerifyRecover,                                                                         \
	  (CK_SESSION_HANDLE a0, CK_BYTE_PTR a1, CK_ULONG a2, CK_BYTE_PTR a3, CK_ULONG_PTR a4),    \
	  (a0, a1, a2, a3, a4))                                                                    \
	X(C_DigestEncryptUpdate,                                                                   \
	  (CK_SESSION_HANDLE a0, CK_BYTE_PTR a1, CK_ULONG a2, CK_BYTE_PTR a3, CK_ULONG_PTR a4),    \
	  (a0, a1, a2, a3, a4))                                                                    \
	X(C_DecryptDigestUpdate,                                                                   \
	  (CK_SESSION_HANDLE a0, CK_BYTE_PTR a1, CK_ULONG a2, CK_BYTE_PTR a3, CK_ULONG_PTR a4),    \
	  (a0, a1, a2, a3, a4))                                                                    \
	X(C_SignEncryptUpdate,                                                                     \
	  (CK_SESSION_HANDLE a0, CK_BYTE_PTR a1, CK_ULONG a2, CK_BYTE_PTR a3, CK_ULONG_PTR a4),    \
	  (a0, a1, a2, a3, a4))                                                                    \
	X(C_DecryptVerifyUpdate,                                                                   \
	  (CK_SESSION_HANDLE a0, CK_BYTE_PTR a1, CK_ULONG a2, CK_BYTE_PTR a3, CK_ULONG_PTR a4),    \
	  (a0, a1, a2, a3, a4))                                                                    \
	X(C_GenerateKey,                                                                           \
	  (CK_SESSION_HANDLE a0, CK_MECHANISM_PTR a1, CK_ATTRIBUTE_PTR a2, CK_ULONG a3,            \
	   CK_OBJECT_HANDLE_PTR a4),                                                               \
	  (a0, a1, a2, a3, a4))                                                                    \
	X(C_GenerateKeyPair,                                                                       \
	  (CK_SESSION_HANDLE a0, CK_MECHANISM_PTR a1, CK_ATTRIBUTE_PTR a2, CK_ULONG a3,            \
	   CK_ATTRIBUTE_PTR a4, CK_ULONG a5, CK_OBJECT_HANDLE_PTR a6, CK_OBJECT_HANDLE_PTR a7),    \
	  (a0, a1, a2, a3, a4, a5, a6, a7))                                                        \
	X(C_WrapKey,                                                                               \
	  (CK_SESSION_HANDLE a0, CK_MECHANISM_PTR a1, CK_OBJECT_HANDLE a2, CK_OBJECT_HANDLE a3,    \
	   CK_BYTE_PTR a4, CK_ULONG_PTR a5),                                                       \
	  (a0, a1, a2, a3, a4, a5))                                                                \
	X(C_UnwrapKey,                                                                             \
	  (CK_SESSION_HANDLE a0, CK_MECHANISM_PTR a1, CK_OBJECT_HANDLE a2, CK_BYTE_PTR a3,         \
	   CK_ULONG a4, CK_ATTRIBUTE_PTR a5, CK_ULONG a6, CK_OBJECT_HANDLE_PTR a7),                \
	  (a0, a1, a2, a3, a4, a5, a6, a7))                                                        \
	X(C_DeriveKey,                                                                             \
	  (CK_SESSION_HANDLE a0, CK_MECHANISM_PTR a1, CK_OBJECT_HANDLE a2, CK_ATTRIBUTE_PTR a3,    \
	   CK_ULONG a4, CK_OBJECT_HANDLE_PTR a5),                                                  \
	  (a0, a1, a2, a3, a4, a5))                                                                \
	X(C_SeedRandom, (CK_SESSION_HANDLE a0, CK_BYTE_PTR a1, CK_ULONG a2), (a0, a1, a2))         \
	X(C_GenerateRandom, (CK_SESSION_HANDLE a0, CK_BYTE_PTR a1, CK_ULONG a2), (a0, a1, a2))     \
	X(C_GetFunctionStatus, (CK_SESSION_HANDLE a0), (a0))                                       \
	X(C_CancelFunction, (CK_SESSION_HANDLE a0), (a0))                                          \
	X(C_WaitForSlotEvent, (CK_FLAGS a0, CK_SLOT_ID_PTR a1, CK_VOID_PTR a2), (a0, a1, a2))

/* Tables made by the X macros. */
enum {
#define X(n, p, a) IDX_##n,
	P11WRAP_FUNCS(X)
#undef X
	IDX_COUNT
};

static const char *const fn_names[IDX_COUNT] = {
#define X(n, p, a) #n,
	P11WRAP_FUNCS(X)
#undef X
};

#define CKR(c) {c, #c}
static const struct {
	CK_RV rv;
	const char *name;
} ckr_names[] = {
    CKR(CKR_OK),
    CKR(CKR_CANCEL),
    CKR(CKR_HOST_MEMORY),
    CKR(CKR_SLOT_ID_INVALID),
    CKR(CKR_GENERAL_ERROR),
    CKR(CKR_FUNCTION_FAILED),
    CKR(CKR_ARGUMENTS_BAD),
    CKR(CKR_NO_EVENT),
    CKR(CKR_NEED_TO_CREATE_THREADS),
    CKR(CKR_CANT_LOCK),
    CKR(CKR_ATTRIBUTE_READ_ONLY),
    CKR(CKR_ATTRIBUTE_SENSITIVE),
    CKR(CKR_ATTRIBUTE_TYPE_INVALID),
    CKR(CKR_ATTRIBUTE_VALUE_INVALID),
    CKR(CKR_ACTION_PROHIBITED),
    CKR(CKR_DATA_INVALID),
    CKR(CKR_DATA_LEN_RANGE),
    CKR(CKR_DEVICE_ERROR),
    CKR(CKR_DEVICE_MEMORY),
    CKR(CKR_DEVICE_REMOVED),
    CKR(CKR_ENCRYPTED_DATA_INVALID),
    CKR(CKR_ENCRYPTED_DATA_LEN_RANGE),
    CKR(CKR_FUNCTION_CANCELED),
    CKR(CKR_FUNCTION_NOT_PARALLEL),
    CKR(CKR_FUNCTION_NOT_SUPPORTED),
    CKR(CKR_KEY_HANDLE_INVALID),
    CKR(CKR_KEY_SIZE_RANGE),
    CKR(CKR_KEY_TYPE_INCONSISTENT),
    CKR(CKR_KEY_NOT_NEEDED),
    CKR(CKR_KEY_CHANGED),
    CKR(CKR_KEY_NEEDED),
    CKR(CKR_KEY_INDIGESTIBLE),
    CKR(CKR_KEY_FUNCTION_NOT_PERMITTED),
    CKR(CKR_KEY_NOT_WRAPPABLE),
    CKR(CKR_KEY_UNEXTRACTABLE),
    CKR(CKR_MECHANISM_INVALID),
    CKR(CKR_MECHANISM_PARAM_INVALID),
    CKR(CKR_OBJECT_HANDLE_INVALID),
    CKR(CKR_OPERATION_ACTIVE),
    CKR(CKR_OPERATION_NOT_INITIALIZED),
    CKR(CKR_PIN_INCORRECT),
    CKR(CKR_PIN_INVALID),
    CKR(CKR_PIN_LEN_RANGE),
    CKR(CKR_PIN_EXPIRED),
    CKR(CKR_PIN_LOCKED),
    CKR(CKR_SESSION_CLOSED),
    CKR(CKR_SESSION_COUNT),
    CKR(CKR_SESSION_HANDLE_INVALID),
    CKR(CKR_SESSION_PARALLEL_NOT_SUPPORTED),
    CKR(CKR_SESSION_READ_ONLY),
    CKR(CKR_SESSION_EXISTS),
    CKR(CKR_SESSION_READ_ONLY_EXISTS),
    CKR(CKR_SESSION_READ_WRITE_SO_EXISTS),
    CKR(CKR_SIGNATURE_INVALID),
    CKR(CKR_SIGNATURE_LEN_RANGE),
    CKR(CKR_TEMPLATE_INCOMPLETE),
    CKR(CKR_TEMPLATE_INCONSISTENT),
    CKR(CKR_TOKEN_NOT_PRESENT),
    CKR(CKR_TOKEN_NOT_RECOGNIZED),
    CKR(CKR_TOKEN_WRITE_PROTECTED),
    CKR(CKR_UNWRAPPING_KEY_HANDLE_INVALID),
    CKR(CKR_UNWRAPPING_KEY_SIZE_RANGE),
    CKR(CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT),
    CKR(CKR_USER_ALREADY_LOGGED_IN),
    CKR(CKR_USER_NOT_LOGGED_IN),
    CKR(CKR_USER_PIN_NOT_INITIALIZED),
    CKR(CKR_USER_TYPE_INVALID),
    CKR(CKR_USER_ANOTHER_ALREADY_LOGGED_IN),
    CKR(CKR_USER_TOO_MANY_TYPES),
    CKR(CKR_WRAPPED_KEY_INVALID),
    CKR(CKR_WRAPPED_KEY_LEN_RANGE),
    CKR(CKR_WRAPPING_KEY_HANDLE_INVALID),
    CKR(CKR_WRAPPING_KEY_SIZE_RANGE),
    CKR(CKR_WRAPPING_KEY_TYPE_INCONSISTENT),
    CKR(CKR_RANDOM_SEED_NOT_SUPPORTED),
    CKR(CKR_RANDOM_NO_RNG),
    CKR(CKR_DOMAIN_PARAMS_INVALID),
    CKR(CKR_CURVE_NOT_SUPPORTED),
    CKR(CKR_BUFFER_TOO_SMALL),
    CKR(CKR_SAVED_STATE_INVALID),
    CKR(CKR_INFORMATION_SENSITIVE),
    CKR(CKR_STATE_UNSAVEABLE),
    CKR(CKR_CRYPTOKI_NOT_INITIALIZED),
    CKR(CKR_CRYPTOKI_ALREADY_INITIALIZED),
    CKR(CKR_MUTEX_BAD),
    CKR(CKR_MUTEX_NOT_LOCKED),
    CKR(CKR_NEW_PIN_MODE),
    CKR(CKR_NEXT_OTP),
    CKR(CKR_EXCEEDED_MAX_ITERATIONS),
    CKR(CKR_FIPS_SELF_TEST_FAILED),
    CKR(CKR_LIBRARY_LOAD_FAILED),
    CKR(CKR_PIN_TOO_WEAK),
    CKR(CKR_PUBLIC_KEY_INVALID),
    CKR(CKR_FUNCTION_REJECTED),
};
#undef CKR

#define MAX_RULES 32

/* P11WRAP_FAIL: call number nth (every call when 0) of function fn answers rv. */
struct rule {
	int fn;
	unsigned long nth;
	CK_RV rv;
};

/* P11WRAP_KILL: SIGKILL before or after call number nth (from 1) of function fn. */
enum { KILL_BEFORE, KILL_AFTER };
struct kill_rule {
	int fn;
	int when; /* KILL_BEFORE or KILL_AFTER */
	unsigned long nth;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static void *real_dl;
static CK_FUNCTION_LIST *real;
static int initialized; /* by a C_Initialize through us that answered CKR_OK */
/* such initializations over the process's life; P11WRAP_FIRST_INIT */
static unsigned long ninit;
static int first_init_only;
static char *log_path;
static int log_caller; /* P11WRAP_LOG_CALLER set */
static int log_mech;   /* P11WRAP_LOG_MECHANISM set */
static int log_tmpl;   /* P11WRAP_LOG_TEMPLATE set */
/* wrap_initialize and wrap_finalize call a forwarder themselves: their own
 * caller is the one to log.  Not thread-local: dynamic TLS in a dlopen()ed
 * module crashed LeakSanitizer's tracer at exit (two runs of an ASan make
 * check), and PKCS#11 callers do not initialize or finalize concurrently
 * with other calls. */
static const void *outer_caller;
static CK_FLAGS add_flags;
/* P11WRAP_SERIAL, blank-padded as CK_TOKEN_INFO.serialNumber */
static CK_CHAR serial[16];
static int have_serial;
static char *pinpad_path; /* P11WRAP_PINPAD */
static int slot_events;	  /* P11WRAP_SLOT_EVENTS */
static int have_slot_sum;
static unsigned long long slot_sum; /* of the tokens present at the last look */
/* P11WRAP_TIMES: read when the module is loaded, kept for the exit */
static char *times_path;
static unsigned long time_calls[IDX_COUNT];
static unsigned long long time_us[IDX_COUNT];
static struct rule rules[MAX_RULES];
static size_t nrules;
static unsigned long calls[IDX_COUNT];
static struct kill_rule kill_rules[MAX_RULES];
static size_t nkill_rules;
/* P11WRAP_HOLD: the same points, where the call waits for a file. */
static struct kill_rule hold_rules[MAX_RULES];
static size_t nhold_rules;
static char *hold_path;
/* Calls since the module was loaded, never reset: P11WRAP_KILL's counts. */
static unsigned long life_calls[IDX_COUNT];
/* P11WRAP_CREATED_VALUE / P11WRAP_CREATED_FAIL and the objects they concern. */
#define MAX_CREATED 256
#define MAX_VALUE (1024 * 1024)
static CK_OBJECT_HANDLE created[MAX_CREATED];
static size_t ncreated;
static unsigned char *created_value;
static size_t created_value_len;
static int have_created_value, have_created_fail;
static CK_RV created_fail;
/* P11WRAP_ONCE: the file whose unlink fires; this process unlinked it. */
static char *once_path;
static int once_taken;
/* P11WRAP_GONE: set, and the CKR of the item that fired (kept across a new
 * C_Initialize: the card stays out for the process). */
static int gone_mode, gone_fired;
static CK_RV gone_rv;

static void complain(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void complain(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "p11wrap: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static const char *ckr_name(CK_RV rv, char *buf, size_t size)
{
	size_t i;

	for (i = 0; i < sizeof(ckr_names) / sizeof(ckr_names[0]); i++)
		if (ckr_names[i].rv == rv)
			return ckr_names[i].name;
	snprintf(buf, size, "0x%lx", (unsigned long)rv);
	return buf;
}

/* A CKR_* name or a number (0x... hex, else decimal). */
static int parse_rv(const char *s, size_t len, CK_RV *ret_rv)
{
	char num[32], *end;
	unsigned long v;
	size_t i;

	for (i = 0; i < sizeof(ckr_names) / sizeof(ckr_names[0]); i++)
		if (strlen(ckr_names[i].name) == len && strncmp(ckr_names[i].name, s, len) == 0) {
			*ret_rv = ckr_names[i].rv;
			return 0;
		}
	if (len == 0 || len >= sizeof(num) || s[0] < '0' || s[0] > '9')
		return -1;
	memcpy(num, s, len);
	num[len] = '\0';
	errno = 0;
	v = strtoul(num, &end, 0);
	if (errno != 0 || *end != '\0')
		return -1;
	*ret_rv = (CK_RV)v;
	return 0;
}

/* One "C_Name=CKR_NAME[@N]" item of P11WRAP_FAIL. */
static int parse_rule(const char *s, size_t len, struct rule *ret)
{
	const char *eq = memchr(s, '=', len), *at, *end = s + len;
	char num[24], *nend;
	size_t i;

	if (eq == NULL)
		return -1;
	ret->fn = -1;
	for (i = 0; i < IDX_COUNT; i++)
		if (strlen(fn_names[i]) == (size_t)(eq - s) && strncmp(fn_names[i], s, eq - s) == 0)
			ret->fn = (int)i;
	if (ret->fn < 0)
		return -1;
	at = memchr(eq + 1, '@', end - eq - 1);
	if (parse_rv(eq + 1, (at != NULL ? at : end) - eq - 1, &ret->rv) < 0)
		return -1;
	ret->nth = 0;
	if (at != NULL) {
		if (end - at - 1 <= 0 || (size_t)(end - at - 1) >= sizeof(num) || at[1] < '1' ||
		    at[1] > '9')
			return -1;
		memcpy(num, at + 1, end - at - 1);
		num[end - at - 1] = '\0';
		errno = 0;
		ret->nth = strtoul(num, &nend, 10);
		if (errno != 0 || *nend != '\0')
			return -1;
	}
	return 0;
}

/* The index of the function named by s[0..len), or -1. */
static int fn_index(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < IDX_COUNT; i++)
		if (strlen(fn_names[i]) == len && strncmp(fn_names[i], s, len) == 0)
			return (int)i;
	return -1;
}

/* One "C_Name:before|after[:N]" item of P11WRAP_KILL. */
static int parse_kill_rule(const char *s, size_t len, struct kill_rule *ret)
{
	const char *end = s + len, *c1 = memchr(s, ':', len), *c2, *when;
	char num[24], *nend;
	size_t wlen;

	if (c1 == NULL || (ret->fn = fn_index(s, (size_t)(c1 - s))) < 0)
		return -1;
	when = c1 + 1;
	c2 = memchr(when, ':', (size_t)(end - when));
	wlen = (size_t)((c2 != NULL ? c2 : end) - when);
	if (wlen == 6 && strncmp(when, "before", 6) == 0)
		ret->when = KILL_BEFORE;
	else if (wlen == 5 && strncmp(when, "after", 5) == 0)
		ret->when = KILL_AFTER;
	else
		return -1;
	ret->nth = 1;
	if (c2 != NULL) {
		if (end - c2 - 1 <= 0 || (size_t)(end - c2 - 1) >= sizeof(num) || c2[1] < '1' ||
		    c2[1] > '9')
			return -1;
		memcpy(num, c2 + 1, (size_t)(end - c2 - 1));
		num[end - c2 - 1] = '\0';
		errno = 0;
		ret->nth = strtoul(num, &nend, 10);
		if (errno != 0 || *nend != '\0')
			return -1;
	}
	return 0;
}

/* The environment variable name's list of C_Name:before|after[:N] items,
 * comma-separated, added to into; -1 (said) when an item does not parse or
 * there are more than MAX_RULES. */
static int parse_kill_rules(const char *name, struct kill_rule *into, size_t *n)
{
	const char *v = getenv(name), *p, *comma;

	if (v == NULL)
		return 0;
	for (p = v; *p != '\0'; p = *comma != '\0' ? comma + 1 : comma) {
		comma = strchr(p, ',');
		if (comma == NULL)
			comma = p + strlen(p);
		if (comma == p)
			continue;
		if (*n == MAX_RULES || parse_kill_rule(p, (size_t)(comma - p), &into[*n]) < 0) {
			complain("%s='%s': each item is C_Name:before|after[:N] (N from 1), at "
				 "most 32 items",
				 name, v);
			return -1;
		}
		(*n)++;
	}
	return 0;
}

/* P11WRAP_CREATED_VALUE: the whole file, at most MAX_VALUE bytes. Locked. */
static CK_RV read_value(const char *path)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	if (f == NULL) {
		complain("P11WRAP_CREATED_VALUE=%s: %s", path, strerror(errno));
		return CKR_ARGUMENTS_BAD;
	}
	if ((created_value = malloc(MAX_VALUE + 1)) == NULL) {
		fclose(f);
		return CKR_HOST_MEMORY;
	}
	n = fread(created_value, 1, MAX_VALUE + 1, f);
	if (ferror(f) || n > MAX_VALUE) {
		complain("P11WRAP_CREATED_VALUE=%s: unreadable or larger than %d bytes", path,
			 MAX_VALUE);
		fclose(f);
		return CKR_ARGUMENTS_BAD;
	}
	fclose(f);
	created_value_len = n;
	have_created_value = 1;
	return CKR_OK;
}

/*
 * Reads P11WRAP_LOG, P11WRAP_TOKEN_FLAGS, P11WRAP_FAIL, P11WRAP_KILL,
 * P11WRAP_ONCE, P11WRAP_GONE, P11WRAP_SERIAL and P11WRAP_CREATED_*;
 * P11WRAP_FAIL's counting and the created objects start
 * again (P11WRAP_KILL's counting does not). Locked.
 */
static CK_RV configure(void)
{
	const char *v, *p, *comma;
	char *end;
	CK_RV rv;

	free(log_path);
	log_path = NULL;
	add_flags = 0;
	nrules = 0;
	nkill_rules = 0;
	nhold_rules = 0;
	memset(calls, 0, sizeof(calls));
	ncreated = 0;
	free(created_value);
	created_value = NULL;
	created_value_len = 0;
	have_created_value = have_created_fail = 0;

	if ((v = getenv("P11WRAP_LOG")) != NULL && v[0] != '\0' && (log_path = strdup(v)) == NULL)
		return CKR_HOST_MEMORY;
	log_caller = (v = getenv("P11WRAP_LOG_CALLER")) != NULL && v[0] != '\0';
	log_mech = (v = getenv("P11WRAP_LOG_MECHANISM")) != NULL && v[0] != '\0';
	log_tmpl = (v = getenv("P11WRAP_LOG_TEMPLATE")) != NULL && v[0] != '\0';
	slot_events = (v = getenv("P11WRAP_SLOT_EVENTS")) != NULL && strcmp(v, "1") == 0;
	have_slot_sum = 0;
	free(pinpad_path);
	pinpad_path = NULL;
	if ((v = getenv("P11WRAP_PINPAD")) != NULL && v[0] != '\0' &&
	    (pinpad_path = strdup(v)) == NULL)
		return CKR_HOST_MEMORY;
	have_serial = 0;
	if ((v = getenv("P11WRAP_SERIAL")) != NULL && v[0] != '\0') {
		if (strlen(v) > sizeof(serial)) {
			complain("P11WRAP_SERIAL='%s' is longer than 16 bytes", v);
			return CKR_ARGUMENTS_BAD;
		}
		memset(serial, ' ', sizeof(serial));
		memcpy(serial, v, strlen(v));
		have_serial = 1;
	}
	if ((v = getenv("P11WRAP_TOKEN_FLAGS")) != NULL && v[0] != '\0') {
		errno = 0;
		add_flags = (CK_FLAGS)strtoul(v, &end, 16);
		if (errno != 0 || *end != '\0') {
			complain("P11WRAP_TOKEN_FLAGS='%s' is not a hex number", v);
			return CKR_ARGUMENTS_BAD;
		}
	}
	if ((v = getenv("P11WRAP_FAIL")) != NULL) {
		for (p = v; *p != '\0'; p = *comma != '\0' ? comma + 1 : comma) {
			comma = strchr(p, ',');
			if (comma == NULL)
				comma = p + strlen(p);
			if (comma == p)
				continue;
			if (nrules == MAX_RULES || parse_rule(p, comma - p, &rules[nrules]) < 0) {
				complain("P11WRAP_FAIL='%s': each item is C_Name=CKR_NAME[@N] "
					 "(or a number for the CKR), at most 32 items",
					 v);
				return CKR_ARGUMENTS_BAD;
			}
			nrules++;
		}
	}
	if (parse_kill_rules("P11WRAP_KILL", kill_rules, &nkill_rules) < 0 ||
	    parse_kill_rules("P11WRAP_HOLD", hold_rules, &nhold_rules) < 0)
		return CKR_ARGUMENTS_BAD;
	free(hold_path);
	hold_path = NULL;
	if (nhold_rules > 0 &&
	    ((v = getenv("P11WRAP_HOLD_FILE")) == NULL || v[0] == '\0' ||
	     (hold_path = strdup(v)) == NULL)) {
		complain("P11WRAP_HOLD needs P11WRAP_HOLD_FILE");
		return CKR_ARGUMENTS_BAD;
	}
	free(once_path);
	once_path = NULL;
	if ((v = getenv("P11WRAP_ONCE")) != NULL && v[0] != '\0' &&
	    (once_path = strdup(v)) == NULL)
		return CKR_HOST_MEMORY;
	gone_mode = (v = getenv("P11WRAP_GONE")) != NULL && strcmp(v, "1") == 0;
	first_init_only = (v = getenv("P11WRAP_FIRST_INIT")) != NULL && strcmp(v, "1") == 0;
	if ((v = getenv("P11WRAP_CREATED_VALUE")) != NULL && v[0] != '\0' &&
	    (rv = read_value(v)) != CKR_OK)
		return rv;
	if ((v = getenv("P11WRAP_CREATED_FAIL")) != NULL && v[0] != '\0') {
		if (parse_rv(v, strlen(v), &created_fail) < 0) {
			complain("P11WRAP_CREATED_FAIL='%s' is not a CKR_* name or a number", v);
			return CKR_ARGUMENTS_BAD;
		}
		have_created_fail = 1;
	}
	return CKR_OK;
}

/*
 * Keeps p11wrap (and so its P11WRAP_KILL counts) mapped until the process
 * exits, even when the program unloads the module and loads it again.
 */
static void pin_self(void)
{
	Dl_info info;

	if (dladdr((void *)pin_self, &info) != 0 && info.dli_fname != NULL)
		(void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

/* Loads the real module once per process. Locked. */
static CK_RV load_real(void)
{
	CK_C_GetFunctionList getfl;
	const char *path = getenv("P11WRAP_MODULE");
	CK_RV rv;

	if (real != NULL)
		return CKR_OK;
	pin_self();
	if (path == NULL || path[0] == '\0') {
		complain("%s", "P11WRAP_MODULE is not set: name the real PKCS#11 module");
		return CKR_GENERAL_ERROR;
	}
	real_dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (real_dl == NULL) {
		complain("cannot load P11WRAP_MODULE: %s", dlerror());
		return CKR_GENERAL_ERROR;
	}
	*(void **)&getfl = dlsym(real_dl, "C_GetFunctionList");
	if (getfl == NULL || getfl == C_GetFunctionList) {
		complain("P11WRAP_MODULE=%s has no C_GetFunctionList, or is p11wrap itself", path);
		dlclose(real_dl);
		real_dl = NULL;
		return CKR_GENERAL_ERROR;
	}
	if ((rv = getfl(&real)) != CKR_OK || real == NULL) {
		complain("C_GetFunctionList of P11WRAP_MODULE=%s failed", path);
		real = NULL;
		dlclose(real_dl);
		real_dl = NULL;
		return rv != CKR_OK ? rv : CKR_GENERAL_ERROR;
	}
	return CKR_OK;
}

/* P11WRAP_ONCE: whether an item that matches may fire in this process:
 * always without it; else only in the process that unlinks FILE. Locked. */
static int once_fires(void)
{
	if (once_path == NULL || once_taken)
		return 1;
	once_taken = unlink(once_path) == 0;
	return once_taken;
}

/* P11WRAP_GONE: the calls a program makes to the module itself, not to a
 * token, which still work with the card out. */
static int gone_spares(int fn)
{
	return fn == IDX_C_Initialize || fn == IDX_C_Finalize || fn == IDX_C_GetInfo ||
	       fn == IDX_C_GetSlotList;
}

/*
 * Counts the call; 1 and *ret_rv when a P11WRAP_FAIL rule (or
 * P11WRAP_GONE after one) answers it instead.  *ret_life is the call's
 * number over the module's life.
 */
static int inject(int fn, CK_RV *ret_rv, unsigned long *ret_life)
{
	unsigned long n;
	size_t i;
	int hit = 0;

	pthread_mutex_lock(&lock);
	*ret_life = ++life_calls[fn];
	n = ++calls[fn];
	if (gone_fired && !gone_spares(fn)) {
		*ret_rv = gone_rv;
		hit = 1;
	}
	for (i = 0; i < nrules && !hit && !(first_init_only && ninit > 1); i++)
		if (rules[i].fn == fn && (rules[i].nth == 0 || rules[i].nth == n)) {
			if (!once_fires())
				break;
			*ret_rv = rules[i].rv;
			hit = 1;
			if (gone_mode) {
				gone_fired = 1;
				gone_rv = rules[i].rv;
			}
		}
	pthread_mutex_unlock(&lock);
	return hit;
}

static unsigned long long now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000;
}

static void time_add(int fn, unsigned long long t0)
{
	__atomic_add_fetch(&time_calls[fn], 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&time_us[fn], now_us() - t0, __ATOMIC_RELAXED);
}

/* The totals, once, when the process exits (a kill leaves none). */
__attribute__((destructor)) static void times_write(void)
{
	char buf[128 * (IDX_COUNT + 1)];
	size_t len = 0;
	int fd, n, i;

	if (times_path == NULL)
		return;
	n = snprintf(buf, sizeof(buf), "TIMES pid=%ld\n", (long)getpid());
	len = n > 0 ? (size_t)n : 0;
	for (i = 0; i < IDX_COUNT; i++) {
		if (time_calls[i] == 0)
			continue;
		n = snprintf(buf + len, sizeof(buf) - len, "%s calls=%lu us=%llu\n", fn_names[i],
			     time_calls[i], time_us[i]);
		if (n > 0 && (size_t)n < sizeof(buf) - len)
			len += (size_t)n;
	}
	fd = open(times_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, buf, len) != (ssize_t)len)
		complain("cannot write to P11WRAP_TIMES=%s", times_path);
	if (fd >= 0)
		close(fd);
	free(times_path);
	times_path = NULL;
}

/* One line of n bytes to P11WRAP_LOG, if set. */
static void log_text(const char *line, int n)
{
	int fd;

	if (log_path == NULL || n <= 0)
		return;
	fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	/* One write with O_APPEND: lines from several processes do not mix. */
	if (write(fd, line, (size_t)n) != n)
		complain("cannot write to P11WRAP_LOG=%s", log_path);
	close(fd);
}

/* P11WRAP_LOG_CALLER: " by FILE", the base name of the object that made
 * the call (p11enroll, libp11.so.3), from its return address. */
static const char *caller_of(const void *ra)
{
	Dl_info info;
	const char *base;

	if (!log_caller || ra == NULL || dladdr(ra, &info) == 0 || info.dli_fname == NULL)
		return NULL;
	base = strrchr(info.dli_fname, '/');
	return base != NULL ? base + 1 : info.dli_fname;
}

/* "C_Name rv=CKR_X[ injected][ by FILE]": the name and the result only,
 * never arguments. */
static void log_call(int fn, CK_RV rv, int injected, const void *ra)
{
	char line[256], buf[32];
	const char *by = caller_of(ra);
	int n;

	n = snprintf(line, sizeof(line), "%s rv=%s%s%s%s\n", fn_names[fn],
		     ckr_name(rv, buf, sizeof(buf)), injected ? " injected" : "",
		     by != NULL ? " by " : "", by != NULL ? by : "");
	if (n > 0 && (size_t)n < sizeof(line))
		log_text(line, n);
}

/*
 * P11WRAP_KILL: when an item names call number life of fn at this point
 * (KILL_BEFORE, KILL_AFTER), logs "KILL C_Name when #N" and dies by SIGKILL.
 */
/* A hold point: FILE.held says the call was reached; the call goes on
 * once FILE exists (a test's stand-in for a slow token). */
static void hold_point(int fn, unsigned long life, int when)
{
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	char held[4096];
	size_t i;
	int hit = 0, fd;

	pthread_mutex_lock(&lock);
	for (i = 0; i < nhold_rules && !hit; i++)
		hit = hold_rules[i].fn == fn && hold_rules[i].when == when &&
		      hold_rules[i].nth == life;
	pthread_mutex_unlock(&lock);
	if (!hit || hold_path == NULL ||
	    snprintf(held, sizeof(held), "%s.held", hold_path) >= (int)sizeof(held))
		return;
	if ((fd = open(held, O_WRONLY | O_CREAT | O_TRUNC, 0600)) >= 0)
		close(fd);
	while (access(hold_path, F_OK) != 0)
		(void)nanosleep(&ts, NULL);
}

static void kill_point(int fn, unsigned long life, int when)
{
	char line[160];
	size_t i;
	int hit = 0, n;
	void (*dump)(void);

	hold_point(fn, life, when);
	pthread_mutex_lock(&lock);
	for (i = 0; i < nkill_rules && !hit; i++)
		hit = kill_rules[i].fn == fn && kill_rules[i].when == when &&
		      kill_rules[i].nth == life;
	if (hit)
		hit = once_fires();
	pthread_mutex_unlock(&lock);
	if (!hit)
		return;
	n = snprintf(line, sizeof(line), "KILL %s %s #%lu\n", fn_names[fn],
		     when == KILL_BEFORE ? "before" : "after", life);
	/* write(2) needs no flushing: the line is in the file before the kill */
	if (n > 0 && (size_t)n < sizeof(line)) {
		if (log_path != NULL)
			log_text(line, n);
		else
			complain("%.*s", n - 1, line);
	}
	/* A program built with --enable-coverage exports __gcov_dump: its gcov
	 * counters are written now, as no exit handler runs after a SIGKILL. */
	dump = (void (*)(void))dlsym(RTLD_DEFAULT, "__gcov_dump");
	if (dump != NULL)
		dump();
	kill(getpid(), SIGKILL);
	/* not reached: SIGKILL to oneself cannot be blocked, caught or ignored */
	_exit(128 + SIGKILL);
}

#define X(n, params, args)                                                                         \
	static CK_RV fwd_##n params                                                                \
	{                                                                                          \
		CK_RV rv = CKR_OK;                                                                 \
		unsigned long life;                                                                \
		int injected = inject(IDX_##n, &rv, &life);                                        \
                                                                                                   \
		kill_point(IDX_##n, life, KILL_BEFORE);                                            \
		if (!injected) {                                                                   \
			unsigned long long t0 = times_path != NULL ? now_us() : 0;                 \
                                                                                                   \
			rv = real != NULL ? real->n args : CKR_CRYPTOKI_NOT_INITIALIZED;           \
			if (times_path != NULL)                                                    \
				time_add(IDX_##n, t0);                                             \
		}                                                                                  \
		log_call(IDX_##n, rv, injected,                                                    \
			 outer_caller != NULL ? outer_caller : __builtin_return_address(0));       \
		kill_point(IDX_##n, life, KILL_AFTER);                                             \
		return rv;                                                                         \
	}
P11WRAP_FUNCS(X)
#undef X

static CK_FUNCTION_LIST wrap_list = {
	.version = {2, 40},
#define X(n, p, a) .n = fwd_##n,
	P11WRAP_FUNCS(X)
#undef X
	.C_GetFunctionList = C_GetFunctionList,
};

/* A fresh initialization reads the environment again and starts counting anew. */
static CK_RV wrap_initialize(CK_VOID_PTR args)
{
	CK_RV rv = CKR_OK;

	pthread_mutex_lock(&lock);
	if (!initialized)
		rv = configure();
	pthread_mutex_unlock(&lock);
	if (rv != CKR_OK)
		return rv;
	outer_caller = __builtin_return_address(0);
	rv = fwd_C_Initialize(args);
	outer_caller = NULL;
	if (rv == CKR_OK) {
		pthread_mutex_lock(&lock);
		initialized = 1;
		ninit++;
		pthread_mutex_unlock(&lock);
	}
	return rv;
}

static CK_RV wrap_finalize(CK_VOID_PTR reserved)
{
	CK_RV rv;

	outer_caller = __builtin_return_address(0);
	rv = fwd_C_Finalize(reserved);
	outer_caller = NULL;

	if (rv == CKR_OK) {
		pthread_mutex_lock(&lock);
		initialized = 0;
		pthread_mutex_unlock(&lock);
	}
	return rv;
}

/* P11WRAP_TOKEN_FLAGS: what the token says about its PIN, without touching
 * the PIN; P11WRAP_SERIAL: the serial it reports. */
static CK_RV wrap_get_token_info(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info)
{
	CK_RV rv = fwd_C_GetTokenInfo(slot, info);

	if (rv == CKR_OK && info != NULL) {
		info->flags |= add_flags;
		if (have_serial)
			memcpy(info->serialNumber, serial, sizeof(info->serialNumber));
	}
	return rv;
}

/*
 * P11WRAP_PINPAD=FILE: a PIN pad reader.  A C_Login without a PIN (the
 * protected authentication path) logs in with the PIN in FILE, as if the
 * user had typed it on the pad.  Before each C_Login a line "PINPAD pad"
 * or "PINPAD host-pin" says which it was: whether a PIN came from the
 * program, never the PIN.
 */
static CK_RV wrap_login(CK_SESSION_HANDLE s, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin, CK_ULONG len)
{
	char typed[256];
	CK_RV rv;
	FILE *f;
	size_t n;

	if (pinpad_path == NULL)
		return fwd_C_Login(s, user, pin, len);
	if (pin != NULL) {
		log_text("PINPAD host-pin\n", 16);
		return fwd_C_Login(s, user, pin, len);
	}
	log_text("PINPAD pad\n", 11);
	if ((f = fopen(pinpad_path, "re")) == NULL) {
		complain("P11WRAP_PINPAD=%s: %s", pinpad_path, strerror(errno));
		return CKR_FUNCTION_CANCELED; /* as a pad on which nothing was typed */
	}
	n = fread(typed, 1, sizeof(typed) - 1, f);
	fclose(f);
	while (n > 0 && (typed[n - 1] == '\n' || typed[n - 1] == '\r'))
		n--;
	typed[n] = '\0';
	rv = fwd_C_Login(s, user, (CK_UTF8CHAR_PTR)typed, (CK_ULONG)n);
	explicit_bzero(typed, sizeof(typed));
	return rv;
}

/* P11WRAP_LOG_MECHANISM: "MECHANISM C_SignInit CKM_X" before the call
 * (the mechanisms a signer may use by name, others in hex). */
static CK_RV wrap_sign_init(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE key)
{
#define CKM(c) {c, #c}
	static const struct {
		CK_MECHANISM_TYPE mech;
		const char *name;
	} names[] = {
	    CKM(CKM_RSA_PKCS),	      CKM(CKM_RSA_X_509),	 CKM(CKM_RSA_PKCS_PSS),
	    CKM(CKM_SHA1_RSA_PKCS),   CKM(CKM_SHA224_RSA_PKCS), CKM(CKM_SHA256_RSA_PKCS),
	    CKM(CKM_SHA384_RSA_PKCS), CKM(CKM_SHA512_RSA_PKCS), CKM(CKM_ECDSA),
	};
#undef CKM
	char line[96], hex[24];
	const char *name = NULL;
	size_t i;
	int n;

	if (log_mech && m != NULL) {
		for (i = 0; i < sizeof(names) / sizeof(names[0]) && name == NULL; i++)
			if (names[i].mech == m->mechanism)
				name = names[i].name;
		if (name == NULL) {
			snprintf(hex, sizeof(hex), "0x%lx", (unsigned long)m->mechanism);
			name = hex;
		}
		n = snprintf(line, sizeof(line), "MECHANISM C_SignInit %s\n", name);
		if (n > 0 && (size_t)n < sizeof(line))
			log_text(line, n);
	}
	return fwd_C_SignInit(s, m, key);
}

/*
 * P11WRAP_LOG_TEMPLATE: "TEMPLATE C_Name class=CKO_X value=yes|no" (and
 * " mechanism=0x..." for C_UnwrapKey): which class of object a call makes
 * and whether its template carries a CKA_VALUE (key material in clear).
 * Never the value itself.
 */
static void log_template(const char *fn, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n, CK_MECHANISM_PTR m)
{
	static const char *const classes[] = {"CKO_DATA",	 "CKO_CERTIFICATE",
					      "CKO_PUBLIC_KEY",	 "CKO_PRIVATE_KEY",
					      "CKO_SECRET_KEY"};
	const char *cls = "none";
	char line[160], mech[32] = "", other[24];
	int value = 0, len;
	CK_ULONG i, c;

	if (!log_tmpl)
		return;
	for (i = 0; tmpl != NULL && i < n; i++) {
		if (tmpl[i].type == CKA_VALUE)
			value = 1;
		if (tmpl[i].type == CKA_CLASS && tmpl[i].pValue != NULL &&
		    tmpl[i].ulValueLen == sizeof(CK_OBJECT_CLASS)) {
			memcpy(&c, tmpl[i].pValue, sizeof(c));
			if (c < sizeof(classes) / sizeof(classes[0])) {
				cls = classes[c];
			} else {
				snprintf(other, sizeof(other), "0x%lx", (unsigned long)c);
				cls = other;
			}
		}
	}
	if (m != NULL)
		snprintf(mech, sizeof(mech), " mechanism=0x%lx", (unsigned long)m->mechanism);
	len = snprintf(line, sizeof(line), "TEMPLATE %s class=%s value=%s%s\n", fn, cls,
		       value ? "yes" : "no", mech);
	if (len > 0 && (size_t)len < sizeof(line))
		log_text(line, len);
}

static CK_RV wrap_unwrap_key(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE key,
			     CK_BYTE_PTR wrapped, CK_ULONG wlen, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n,
			     CK_OBJECT_HANDLE_PTR ret_h)
{
	log_template("C_UnwrapKey", tmpl, n, m);
	return fwd_C_UnwrapKey(s, m, key, wrapped, wlen, tmpl, n, ret_h);
}

/* P11WRAP_CREATED_*: remembers what C_CreateObject made. */
static CK_RV wrap_create_object(CK_SESSION_HANDLE s, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n,
				CK_OBJECT_HANDLE_PTR ret_h)
{
	CK_RV rv;

	log_template("C_CreateObject", tmpl, n, NULL);
	rv = fwd_C_CreateObject(s, tmpl, n, ret_h);

	if (rv == CKR_OK && ret_h != NULL) {
		pthread_mutex_lock(&lock);
		if (ncreated < MAX_CREATED)
			created[ncreated++] = *ret_h;
		pthread_mutex_unlock(&lock);
	}
	return rv;
}

/* 1 when P11WRAP_CREATED_* concerns this call: an object C_CreateObject
 * made, and CKA_VALUE asked. */
static int created_value_asked(CK_OBJECT_HANDLE h, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n)
{
	CK_ULONG i;
	size_t j;
	int mine = 0;

	pthread_mutex_lock(&lock);
	for (j = 0; j < ncreated && !mine; j++)
		mine = created[j] == h;
	mine = mine && (have_created_value || have_created_fail);
	pthread_mutex_unlock(&lock);
	for (i = 0; mine && tmpl != NULL && i < n; i++)
		if (tmpl[i].type == CKA_VALUE)
			return 1;
	return 0;
}

/* A line that is no call's: "REPLACED C_GetAttributeValue CKA_VALUE". */
static void log_note(const char *line)
{
	int fd;
	size_t n = strlen(line);

	if (log_path == NULL)
		return;
	fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (write(fd, line, n) != (ssize_t)n)
		complain("cannot write to P11WRAP_LOG=%s", log_path);
	close(fd);
}

static CK_RV wrap_get_attribute_value(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
				      CK_ATTRIBUTE_PTR tmpl, CK_ULONG n)
{
	CK_ULONG i, room[32];
	CK_RV rv;
	int small = 0;

	if (n > 32 || !created_value_asked(h, tmpl, n))
		return fwd_C_GetAttributeValue(s, h, tmpl, n);
	if (have_created_fail) {
		log_call(IDX_C_GetAttributeValue, created_fail, 1, NULL);
		return created_fail;
	}
	/* The buffers' sizes: the real module overwrites them with its lengths. */
	for (i = 0; i < n; i++)
		room[i] = tmpl[i].ulValueLen;
	rv = fwd_C_GetAttributeValue(s, h, tmpl, n);
	if (rv != CKR_OK && rv != CKR_BUFFER_TOO_SMALL)
		return rv;
	/* The real value's size does not matter: only the file's does. */
	for (i = 0; i < n; i++) {
		if (tmpl[i].type != CKA_VALUE) {
			small |= tmpl[i].pValue != NULL &&
				 tmpl[i].ulValueLen == CK_UNAVAILABLE_INFORMATION;
		} else if (tmpl[i].pValue == NULL) {
			tmpl[i].ulValueLen = created_value_len;
		} else if (room[i] >= created_value_len) {
			memcpy(tmpl[i].pValue, created_value, created_value_len);
			tmpl[i].ulValueLen = created_value_len;
		} else {
			tmpl[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
			small = 1;
		}
	}
	log_note("REPLACED C_GetAttributeValue CKA_VALUE\n");
	return small ? CKR_BUFFER_TOO_SMALL : CKR_OK;
}

/* FNV-1a over the slot IDs, serials and labels of the tokens present. */
static CK_RV tokens_sum(unsigned long long *ret)
{
	CK_SLOT_ID ids[256];
	CK_ULONG n = 256, i;
	CK_TOKEN_INFO ti;
	unsigned long long h = 14695981039346656037ULL;
	size_t j;
	CK_RV rv;

	if ((rv = real->C_GetSlotList(CK_TRUE, ids, &n)) != CKR_OK)
		return rv;
	for (i = 0; i < n; i++) {
		memset(&ti, 0, sizeof(ti));
		if (real->C_GetTokenInfo(ids[i], &ti) != CKR_OK)
			continue;
		for (j = 0; j < sizeof(ids[i]); j++)
			h = (h ^ ((ids[i] >> (8 * j)) & 0xff)) * 1099511628211ULL;
		for (j = 0; j < sizeof(ti.serialNumber); j++)
			h = (h ^ ti.serialNumber[j]) * 1099511628211ULL;
		for (j = 0; j < sizeof(ti.label); j++)
			h = (h ^ ti.label[j]) * 1099511628211ULL;
	}
	*ret = h;
	return CKR_OK;
}

/*
 * P11WRAP_SLOT_EVENTS=1: a module that delivers slot events, made of one
 * (SoftHSM2) that does not.  C_WaitForSlotEvent with CKF_DONT_BLOCK
 * re-initializes the real module itself (which ends every session the
 * program has on it: for watchers only), compares the tokens present
 * with the last look and answers CKR_OK (slot: the first one) when they
 * changed, CKR_NO_EVENT when not; the first call only looks.  Without
 * CKF_DONT_BLOCK: CKR_FUNCTION_NOT_SUPPORTED.  The program's own calls
 * then show the tokens as they are now, with no C_Finalize of its own.
 * C_GetInfo says "p11wrap slot events" as the manufacturer, so that a
 * program does not take it for SoftHSM2, which has no events.
 */
static CK_RV wrap_wait_for_slot_event(CK_FLAGS flags, CK_SLOT_ID_PTR slot, CK_VOID_PTR reserved)
{
	CK_C_INITIALIZE_ARGS args;
	unsigned long long sum;
	CK_RV rv;

	if (!slot_events)
		return fwd_C_WaitForSlotEvent(flags, slot, reserved);
	if (!(flags & CKF_DONT_BLOCK)) {
		rv = CKR_FUNCTION_NOT_SUPPORTED;
	} else {
		memset(&args, 0, sizeof(args));
		args.flags = CKF_OS_LOCKING_OK;
		real->C_Finalize(NULL);
		if ((rv = real->C_Initialize(&args)) == CKR_OK && (rv = tokens_sum(&sum)) == CKR_OK) {
			rv = have_slot_sum && sum != slot_sum ? CKR_OK : CKR_NO_EVENT;
			slot_sum = sum;
			have_slot_sum = 1;
			if (rv == CKR_OK && slot != NULL)
				*slot = 0;
		}
	}
	log_call(IDX_C_WaitForSlotEvent, rv, 1, NULL);
	return rv;
}

static CK_RV wrap_get_info(CK_INFO_PTR info)
{
	static const char who[] = "p11wrap slot events";
	CK_RV rv = fwd_C_GetInfo(info);

	if (rv == CKR_OK && info != NULL && slot_events) {
		memset(info->manufacturerID, ' ', sizeof(info->manufacturerID));
		memcpy(info->manufacturerID, who, sizeof(who) - 1);
	}
	return rv;
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ret_list)
{
	const char *v;
	CK_RV rv;

	if (ret_list == NULL)
		return CKR_ARGUMENTS_BAD;
	pthread_mutex_lock(&lock);
	rv = load_real();
	if (rv == CKR_OK && times_path == NULL && (v = getenv("P11WRAP_TIMES")) != NULL &&
	    v[0] != '\0' && (times_path = strdup(v)) == NULL)
		rv = CKR_HOST_MEMORY;
	if (rv == CKR_OK && !initialized)
		rv = configure();
	pthread_mutex_unlock(&lock);
	if (rv != CKR_OK)
		return rv;
	wrap_list.C_Initialize = wrap_initialize;
	wrap_list.C_Finalize = wrap_finalize;
	wrap_list.C_GetTokenInfo = wrap_get_token_info;
	wrap_list.C_Login = wrap_login;
	wrap_list.C_SignInit = wrap_sign_init;
	wrap_list.C_CreateObject = wrap_create_object;
	wrap_list.C_UnwrapKey = wrap_unwrap_key;
	wrap_list.C_GetAttributeValue = wrap_get_attribute_value;
	wrap_list.C_WaitForSlotEvent = wrap_wait_for_slot_event;
	wrap_list.C_GetInfo = wrap_get_info;
	*ret_list = &wrap_list;
	return CKR_OK;
}

__attribute__((destructor)) static void unload(void)
{
	if (real_dl != NULL)
		dlclose(real_dl);
	real_dl = NULL;
	real = NULL;
	free(log_path);
	log_path = NULL;
	free(created_value);
	created_value = NULL;
	free(once_path);
	once_path = NULL;
}
