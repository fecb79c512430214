/*
 * reload: switching the worker to a new configuration generation, at start
 * and on SIGHUP, inside the single-threaded loop. A new config is loaded
 * and checked whole first; then every bind is prepared (kept from the
 * running generation when the address is the same, else bound now); only
 * when all of that worked does the switch happen, with no step that can
 * fail half-way. docs/operations.md, "Reload", is the user-facing contract.
 */
#ifndef MAILEDGE_RELOAD_H
#define MAILEDGE_RELOAD_H

#include <stddef.h>

struct worker;
struct conf;
struct diag_list;

/*
 * The first generation, for <conf> (owned from now on, also on failure):
 * binds every listener (or takes the inherited socket of its address),
 * starts checks and DNS. Returns 0, or -1 after logging.
 */
int reload_first(struct worker *w, struct conf *conf);

/*
 * Asks for a reload of w->conf_path: it runs after the current batch of
 * events (several requests before then make one reload). Success or
 * failure is logged (event=reload), counted in the metrics and told to the
 * service manager (RELOADING=1, then READY=1).
 */
void reload_request(struct worker *w);

/*
 * Logs each diagnostic of a load: config_error or config_warning (at start
 * too). Returns the number of errors.
 */
size_t reload_log_diags(const struct diag_list *diags);

#endif
