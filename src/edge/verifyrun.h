/*
 * verifyrun: `verify on-start` (docs/verify.md): the verify command run in
 * a child process at start and after each reload, never blocking the loop.
 * The child's stdout (`verify -f tsv`) is a non-blocking pipe read by the
 * loop; each result becomes an event=verify line and the last run's
 * results are kept for /status. One run at a time: a reload during a run
 * kills it and starts another; a run longer than its timeout is killed.
 * With workers N only the checking worker (worker 0) runs it.
 */
#ifndef MAILEDGE_VERIFYRUN_H
#define MAILEDGE_VERIFYRUN_H

#include <stdbool.h>

struct worker;
struct strbuf;

/* After a generation is committed: starts a run when the config asks for one. */
void verifyrun_configure(struct worker *w);

/* Appends ,"verify":{...} to /status when verify on-start is or was configured. */
void verifyrun_status(struct strbuf *out);

/* Kills a run in progress and frees the results (at exit). */
void verifyrun_free(struct worker *w);

#endif
