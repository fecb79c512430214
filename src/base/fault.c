#include "fault.h"

#include <string.h>

#include "util.h"

static const char *const site_names[FAULT_SITES] = {
    [FAULT_SESSION] = "session", [FAULT_TIMER] = "timer",   [FAULT_EPOLL] = "epoll",
    [FAULT_PIPE] = "pipe",       [FAULT_BUFFER] = "buffer", [FAULT_SOCKET] = "socket",
};

static struct fault_plan armed;
static uint32_t calls[FAULT_SITES];
static bool any;

const char *
fault_site_name(enum fault_site site)
{
    return site < FAULT_SITES ? site_names[site] : "?";
}

int
fault_parse(const char *spec, struct fault_plan *out)
{
    memset(out, 0, sizeof(*out));
    const char *p = spec;
    while (*p != '\0') {
        const char *colon = strchr(p, ':');
        if (colon == NULL)
            return -1;
        size_t len = (size_t)(colon - p);
        int site = -1;
        for (int i = 0; i < FAULT_SITES; i++)
            if (strlen(site_names[i]) == len && memcmp(site_names[i], p, len) == 0)
                site = i;
        if (site < 0)
            return -1;
        char num[12];
        const char *end = strchr(colon + 1, ',');
        size_t nlen = end ? (size_t)(end - colon - 1) : strlen(colon + 1);
        if (nlen == 0 || nlen >= sizeof(num))
            return -1;
        memcpy(num, colon + 1, nlen);
        num[nlen] = '\0';
        uint64_t n;
        if (util_parse_uint(num, UINT32_MAX, &n) == -1 || n == 0)
            return -1;
        out->nth[site] = (uint32_t)n;
        p = end ? end + 1 : colon + 1 + nlen;
        if (end && *p == '\0')
            return -1;
    }
    return 0;
}

void
fault_arm(const struct fault_plan *plan)
{
    armed = *plan;
    memset(calls, 0, sizeof(calls));
    any = false;
    for (int i = 0; i < FAULT_SITES; i++)
        any = any || armed.nth[i] != 0;
}

bool
fault_hit(enum fault_site site)
{
    if (!any || armed.nth[site] == 0)
        return false;
    return ++calls[site] == armed.nth[site];
}
