/* byname: long-lived state found by name (byname.h). */
#include "byname.h"

#include <stdlib.h>
#include <string.h>

struct byname_entry *
byname_find(const struct byname *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->v[i]->name, name) == 0)
            return t->v[i];
    return NULL;
}

struct byname_entry *
byname_get(struct byname *t, const char *name, void *(*make)(void *arg, const char *name),
           void *arg)
{
    struct byname_entry *e = byname_find(t, name);
    if (e != NULL)
        return e;
    /* Room first, so that nothing can fail once the value is made. */
    struct byname_entry **v = realloc(t->v, (t->n + 1) * sizeof(struct byname_entry *));
    if (v == NULL)
        return NULL;
    t->v = v;
    size_t len = strlen(name) + 1;
    if ((e = malloc(sizeof(*e) + len)) == NULL)
        return NULL;
    memcpy(e->name, name, len);
    e->value = NULL;
    if (make != NULL && (e->value = make(arg, e->name)) == NULL) {
        free(e);
        return NULL;
    }
    t->v[t->n++] = e;
    return e;
}

void
byname_free(struct byname *t, void (*free_value)(void *value))
{
    for (size_t i = 0; i < t->n; i++) {
        if (free_value != NULL && t->v[i]->value != NULL)
            free_value(t->v[i]->value);
        free(t->v[i]);
    }
    free(t->v);
    t->v = NULL;
    t->n = 0;
}
