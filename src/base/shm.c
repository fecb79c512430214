/*
 * shm: the shared region of the workers.
 *
 * Layout: the header (struct shm: the lock, the allocator, the table of
 * names) at the start, then blocks. Every block starts with a 64-byte
 * struct blk; free blocks are on a list sorted by address and merged with
 * free neighbours. Memory a block gives back is returned to the system
 * (MADV_REMOVE), and zeroing a large block removes its pages instead of
 * writing them, so a table is only as big in RAM as the part written.
 */
#include "shm.h"

#include <errno.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define ALIGN 64
#define BLK_MAGIC 0x6d656467u /* "medg" */
#define SPLIT_MIN 256          /* a smaller rest stays part of the block */

struct blk {
    size_t size;       /* whole block, header included; multiple of ALIGN */
    size_t next_free;  /* offset of the next free block; 0: none */
    uint32_t magic;
    uint32_t free;
    char pad[ALIGN - 2 * sizeof(size_t) - 2 * sizeof(uint32_t)];
};
_Static_assert(sizeof(struct blk) == ALIGN, "a block header is one alignment unit");

struct name {
    char key[SHM_NAME_MAX]; /* "kind/name"; "" when the slot is free */
    size_t off;             /* of the block's data */
    size_t size;            /* asked for */
    unsigned holders;
};

struct shm {
    struct shm_mutex lock;
    size_t size;      /* of the mapping */
    size_t top;       /* first byte never allocated */
    size_t used;      /* bytes in allocated blocks, headers included */
    size_t free_head; /* offset of the first free block; 0: none */
    struct name names[SHM_NAMES_MAX];
};

static struct shm *host;
static unsigned host_index, host_n = 1;

static size_t
round_up(size_t n, size_t a)
{
    return (n + a - 1) / a * a;
}

/* Gives the whole pages of <n> bytes at <p> back to the system (they read back as zeros). */
static void
release(void *p, size_t n)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = round_up((uintptr_t)p, pg), e = ((uintptr_t)p + n) / pg * pg;
    if (e > a)
        (void)madvise((void *)a, e - a, MADV_REMOVE);
}

static struct blk *
blk_at(struct shm *s, size_t off)
{
    return (struct blk *)((char *)s + off);
}

static size_t
off_of(const struct shm *s, const void *p)
{
    return (size_t)((const char *)p - (const char *)s);
}

/* Zero <n> bytes at <p>: whole pages are removed (they read back as zeros). */
static void
zero(void *p, size_t n)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)p, e = a + n;
    uintptr_t pa = round_up(a, pg), pe = e / pg * pg;
    if (n < 4 * pg || pe <= pa || madvise((void *)pa, pe - pa, MADV_REMOVE) == -1) {
        memset(p, 0, n);
        return;
    }
    memset(p, 0, pa - a);
    memset((void *)pe, 0, e - pe);
}

struct shm *
shm_create(size_t reserve)
{
    if (reserve == 0)
        reserve = SHM_RESERVE_DEFAULT;
    reserve = round_up(reserve, (size_t)sysconf(_SC_PAGESIZE));
    void *p;
    /* Where memory is strictly accounted (vm.overcommit_memory 2), ask for less. */
    while ((p = mmap(NULL, reserve, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)) == MAP_FAILED &&
           errno == ENOMEM && reserve > SHM_RESERVE_MIN)
        reserve /= 2;
    if (p == MAP_FAILED) {
        log_begin(LOG_ERROR, "workers");
        log_str("error", "cannot map the shared region");
        log_str("reason", strerror(errno));
        log_end();
        return NULL;
    }
    struct shm *s = p;
    if (shm_mutex_init(&s->lock) == -1) {
        munmap(p, reserve);
        log_warn("workers: cannot make a process-shared lock");
        return NULL;
    }
    s->size = reserve;
    s->top = round_up(sizeof(*s), ALIGN);
    return s;
}

void
shm_destroy(struct shm *s)
{
    if (s == NULL)
        return;
    if (host == s)
        host = NULL;
    pthread_mutex_destroy(&s->lock.m);
    munmap(s, s->size);
}

void
shm_attach(struct shm *s, unsigned index, unsigned nworkers)
{
    host = s;
    host_index = index;
    host_n = nworkers > 0 ? nworkers : 1;
}

struct shm *
shm_host(void)
{
    return host;
}

unsigned
shm_worker(void)
{
    return host != NULL ? host_index : 0;
}

unsigned
shm_nworkers(void)
{
    return host != NULL ? host_n : 1;
}

/* Takes a block of <need> bytes (header included) off the free list or the top. */
static struct blk *
take(struct shm *s, size_t need)
{
    size_t *link = &s->free_head;
    while (*link != 0) {
        struct blk *b = blk_at(s, *link);
        if (b->size >= need) {
            size_t off = *link;
            if (b->size - need >= SPLIT_MIN) {
                struct blk *rest = blk_at(s, off + need);
                rest->size = b->size - need;
                rest->next_free = b->next_free;
                rest->magic = BLK_MAGIC;
                rest->free = 1;
                *link = off + need;
                b->size = need;
            } else {
                *link = b->next_free;
            }
            b->free = 0;
            b->next_free = 0;
            return b;
        }
        link = &b->next_free;
    }
    if (need > s->size - s->top)
        return NULL;
    struct blk *b = blk_at(s, s->top);
    b->size = need;
    b->next_free = 0;
    b->magic = BLK_MAGIC;
    b->free = 0;
    s->top += need;
    return b;
}

static void *
alloc_locked(struct shm *s, size_t size)
{
    if (size > s->size)
        return NULL;
    size_t need = round_up(size, ALIGN) + sizeof(struct blk);
    struct blk *b = take(s, need);
    if (b == NULL)
        return NULL;
    s->used += b->size;
    zero(b + 1, b->size - sizeof(*b));
    return b + 1;
}

static void
free_locked(struct shm *s, void *p)
{
    struct blk *b = (struct blk *)p - 1;
    if (b->magic != BLK_MAGIC || b->free)
        fatal("shm_free: not an allocated block");
    size_t off = off_of(s, b);
    s->used -= b->size;
    b->free = 1;
    /* Sorted by address; merge with the free neighbours. */
    size_t prev = 0, *link = &s->free_head;
    while (*link != 0 && *link < off) {
        prev = *link;
        link = &blk_at(s, *link)->next_free;
    }
    b->next_free = *link;
    *link = off;
    if (b->next_free != 0 && off + b->size == b->next_free) {
        struct blk *n = blk_at(s, b->next_free);
        b->size += n->size;
        b->next_free = n->next_free;
        n->magic = 0;
    }
    if (prev != 0 && prev + blk_at(s, prev)->size == off) {
        struct blk *pb = blk_at(s, prev);
        pb->size += b->size;
        pb->next_free = b->next_free;
        b->magic = 0;
        b = pb;
    }
    /* The last block goes back to the top; the pages go back to the system. */
    size_t boff = off_of(s, b);
    if (boff + b->size == s->top) {
        size_t *l = &s->free_head;
        while (*l != boff)
            l = &blk_at(s, *l)->next_free;
        *l = 0;
        s->top = boff;
        b->magic = 0;
        release(b, b->size);
    } else {
        release(b + 1, b->size - sizeof(*b));
    }
}

void *
shm_alloc(struct shm *s, size_t size)
{
    shm_mutex_lock(&s->lock);
    void *p = alloc_locked(s, size);
    shm_mutex_unlock(&s->lock);
    return p;
}

void
shm_free(struct shm *s, void *p)
{
    if (p == NULL)
        return;
    shm_mutex_lock(&s->lock);
    free_locked(s, p);
    shm_mutex_unlock(&s->lock);
}

void *
shm_named(struct shm *s, const char *kind, const char *name, size_t size,
          void (*init)(void *arg, void *block), void *arg)
{
    char key[SHM_NAME_MAX];
    int k = snprintf(key, sizeof(key), "%s/%s", kind, name);
    if (k < 0 || (size_t)k >= sizeof(key))
        return NULL;
    void *p = NULL;
    shm_mutex_lock(&s->lock);
    struct name *slot = NULL;
    for (size_t i = 0; i < SHM_NAMES_MAX; i++) {
        struct name *n = &s->names[i];
        if (n->key[0] == '\0') {
            if (slot == NULL)
                slot = n;
        } else if (strcmp(n->key, key) == 0) {
            if (n->size == size) {
                n->holders++;
                p = (char *)s + n->off;
            }
            goto out;
        }
    }
    if (slot != NULL && (p = alloc_locked(s, size)) != NULL) {
        util_strlcpy(slot->key, key, sizeof(slot->key));
        slot->off = off_of(s, p);
        slot->size = size;
        slot->holders = 1;
        if (init != NULL)
            init(arg, p);
    }
out:
    shm_mutex_unlock(&s->lock);
    return p;
}

void
shm_put(struct shm *s, void *block)
{
    if (block == NULL)
        return;
    size_t off = off_of(s, block);
    shm_mutex_lock(&s->lock);
    for (size_t i = 0; i < SHM_NAMES_MAX; i++) {
        struct name *n = &s->names[i];
        if (n->key[0] != '\0' && n->off == off) {
            if (n->holders > 0 && --n->holders == 0) {
                n->key[0] = '\0';
                free_locked(s, block);
            }
            break;
        }
    }
    shm_mutex_unlock(&s->lock);
}

size_t
shm_used(const struct shm *s)
{
    return s->used;
}

size_t
shm_size(const struct shm *s)
{
    return s->size;
}

int
shm_mutex_init(struct shm_mutex *mu)
{
    pthread_mutexattr_t a;
    if (pthread_mutexattr_init(&a) != 0)
        return -1;
    int rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED) == 0 &&
                     pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST) == 0 &&
                     pthread_mutex_init(&mu->m, &a) == 0
                 ? 0
                 : -1;
    pthread_mutexattr_destroy(&a);
    return rc;
}

void
shm_mutex_lock(struct shm_mutex *mu)
{
    int rc = pthread_mutex_lock(&mu->m);
    if (rc == EOWNERDEAD)
        rc = pthread_mutex_consistent(&mu->m); /* the holder died: take it over */
    if (rc != 0)
        fatal("shm: a shared lock failed");
}

void
shm_mutex_unlock(struct shm_mutex *mu)
{
    pthread_mutex_unlock(&mu->m);
}
