/*
 * Helpers shared by the parser unit tests: inputs placed so that their last
 * byte sits just before a PROT_NONE page (picohttpparser's trick: an
 * over-read faults even without ASan), and byte vectors from tests/vectors.
 * Include after <cmocka.h>.
 */
#ifndef MAILEDGE_TESTUTIL_H
#define MAILEDGE_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef VECTORS_DIR
#define VECTORS_DIR "tests/vectors"
#endif

static uint8_t *guard_end;  /* first byte of the PROT_NONE page */
static size_t guard_room;   /* readable bytes before it */

/* Maps at least <room> readable bytes followed by one PROT_NONE page. */
static inline int
guard_map(size_t room)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    guard_room = (room + page - 1) / page * page;
    uint8_t *p =
        mmap(NULL, guard_room + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -1;
    if (mprotect(p + guard_room, page, PROT_NONE) != 0)
        return -1;
    guard_end = p + guard_room;
    return 0;
}

static inline int
guard_unmap(void **state)
{
    (void)state;
    munmap(guard_end - guard_room, guard_room + (size_t)sysconf(_SC_PAGESIZE));
    return 0;
}

/* Copies <len> bytes so that the last one sits just before the guard page. */
static inline const uint8_t *
at_guard(const uint8_t *data, size_t len)
{
    assert_true(len <= guard_room);
    uint8_t *dst = guard_end - len;
    if (len > 0)
        memmove(dst, data, len);
    return dst;
}

/* Reads tests/vectors/<name> (run from the source root) into <buf>. */
static inline size_t
read_vector(const char *name, uint8_t *buf, size_t cap)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", VECTORS_DIR, name);
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        fail_msg("cannot open %s (run from the source root)", path);
    size_t n = fread(buf, 1, cap, fp);
    fclose(fp);
    return n;
}

#endif
