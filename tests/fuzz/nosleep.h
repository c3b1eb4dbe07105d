/*
 * The fuzz harnesses' sleep: polling waits cost nothing, because the
 * input decides what comes next, except while recording against a real
 * CA (which counts the seconds).  Only on the thread that runs the input:
 * libFuzzer's own threads (the RSS watchdog) sleep as usual.
 */
#ifndef P11E_FUZZ_NOSLEEP_H
#define P11E_FUZZ_NOSLEEP_H

/* Set on the thread that runs the input. */
extern __thread int fuzz_client_thread;
/* Set while recording seeds: sleeps are real. */
extern int fuzz_recording;

#endif
