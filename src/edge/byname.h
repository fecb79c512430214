/*
 * byname: state that outlives a configuration generation, found by the
 * name it has in the configuration. A reload makes a new generation; what
 * must survive it is looked up here by name and made the first time the
 * name appears: the label strings of the counters (listener, backend and
 * server names, src/edge/reload.c) and each listener's abuse table
 * (src/edge/worker.c). Entries are allocated one by one and stay until
 * byname_free(): their addresses, names and values never move, so
 * counters and listeners may point at them.
 */
#ifndef MAILEDGE_BYNAME_H
#define MAILEDGE_BYNAME_H

#include <stddef.h>

struct byname_entry {
    void *value; /* what its owner keeps under the name; NULL: the name alone */
    char name[];
};

struct byname {
    struct byname_entry **v;
    size_t n;
};

/* The entry called <name>, or NULL. */
struct byname_entry *byname_find(const struct byname *t, const char *name);

/*
 * The entry called <name>, made when there is none, with the value
 * <make>(<arg>, the entry's name) (no value when <make> is NULL). NULL when
 * out of memory or <make> returned NULL: then nothing was added.
 */
struct byname_entry *byname_get(struct byname *t, const char *name,
                                void *(*make)(void *arg, const char *name), void *arg);

/* Frees every entry, handing each value to <free_value> unless it is NULL. */
void byname_free(struct byname *t, void (*free_value)(void *value));

#endif
