/*
 * metrics: the daemon's Prometheus metrics (GET /metrics): the counters and
 * histograms that jobs and the API feed as they work, and the per-VM gauges
 * read from the VM table when scraped, in the text exposition format.
 */
#ifndef CVMM_METRICS_H
#define CVMM_METRICS_H

#include <stdbool.h>
#include <stddef.h>

struct cvmm_daemon;
struct metrics;

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m); /* NULL is fine */

/*
 * Observations: any thread, with any lock held but the metrics' own (they
 * take only that, briefly, and never a VM's or the daemon's). m may be
 * NULL (a daemon without metrics: --check-config, unit tests).
 */
/* A lifecycle job (op: define, start, stop, ...) took seconds. */
void metrics_job(struct metrics *m, const char *op, double seconds, bool failed);
/* A plugin's step of a job (step: the event, "launch", ...) took seconds;
 * failed counts a plugin error too. */
void metrics_step(struct metrics *m, const char *plugin, const char *step, double seconds,
                  bool failed);
void metrics_plugin_error(struct metrics *m, const char *plugin);
/* An API request answered status after seconds; route from metrics_route. */
void metrics_request(struct metrics *m, const char *method, const char *route, unsigned status,
                     double seconds);

/*
 * The route template of a request path, for the request histogram's label:
 * "/v1/vms/web1/start" -> "/v1/vms/{vm}/start". Paths that matched no
 * route (404, or 401 before routing) fold into a few fixed labels, so that
 * a client cannot grow the label set by asking for made-up paths.
 */
void metrics_route(const char *path, unsigned status, char *out, size_t len);

/* The whole exposition text (malloc'd, *len set). Takes the VM locks one
 * at a time, then the metrics' lock, never both. */
char *metrics_render(struct cvmm_daemon *d, size_t *len);

/* Writes name="value" with the value escaped as the format requires
 * (\\, \", \n); exposed for tests. Returns the length, or 0 if cut. */
size_t metrics_label(char *out, size_t len, const char *name, const char *value);

#endif
