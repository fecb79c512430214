/*
 * procstat: the process metrics every Prometheus client library exports
 * (start time, open and maximum descriptors, resident memory), read from
 * /proc/self for /metrics. The parser of /proc/self/stat is pure.
 */
#ifndef MAILEDGE_PROCSTAT_H
#define MAILEDGE_PROCSTAT_H

#include <stddef.h>
#include <stdint.h>

#include "metrics.h"

/*
 * Parses the text of /proc/PID/stat: <start_ticks> (field 22, clock ticks
 * after boot) and <rss_pages> (field 24). The command name may hold spaces
 * and parentheses; fields count from after its last ')'. Returns 0, or -1
 * when the text is not of that form.
 */
int procstat_parse_stat(const char *text, size_t len, uint64_t *start_ticks, uint64_t *rss_pages);

/* Fills <p> from /proc/self. Returns 0, or -1 when /proc cannot be read. */
int procstat_read(struct metrics_process *p);

/*
 * The start time and resident memory of process <pid> (its stat file, which
 * anyone may read; its descriptors may not be). Returns 0, or -1.
 */
int procstat_read_pid(int pid, struct metrics_process *p);

#endif
