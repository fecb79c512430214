/* fdbudget: sharing out RLIMIT_NOFILE (fdbudget.h). */
#include "fdbudget.h"

#include <string.h>

void
fdbudget_plan(const struct fdbudget_in *in, struct fdbudget *out)
{
    size_t reserve = FDB_PROCESS + FDB_PER_BIND * in->binds + FDB_PER_CHECK * in->checks +
                     (in->admin ? FDB_ADMIN : 0) + (in->resolver ? FDB_RESOLVER : 0) + (in->bouncer ? FDB_BOUNCER : 0);
    uint64_t avail = in->nofile > reserve ? in->nofile - reserve : 0;
    uint64_t headroom = avail / FDB_HEADROOM_DIV;

    if (headroom < FDB_HEADROOM_MIN)
        headroom = FDB_HEADROOM_MIN;
    memset(out, 0, sizeof(*out));
    out->nofile = in->nofile;
    out->reserve = reserve;
    out->maxconn_fit = avail > headroom ? (size_t)((avail - headroom) / FDB_SESSION) : 0;
    out->maxconn = out->maxconn_fit;
    if (in->maxconn != 0 && in->maxconn < out->maxconn_fit) {
        out->maxconn = in->maxconn;
        /* What the smaller maxconn leaves goes to the headroom. */
        headroom = avail - (uint64_t)out->maxconn * FDB_SESSION;
    }
    if (avail < headroom)
        headroom = avail;
    /* Half of the headroom for pipes (two descriptors each), half for connects. */
    out->pipes = (size_t)(headroom / 4);
    out->connects = (size_t)(headroom - 2 * out->pipes);
}
