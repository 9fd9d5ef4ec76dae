/*
 * loopapi: the host-API slots that let plugins watch fds and run timers on
 * the daemon's libev loop without seeing libev. Callable from any thread:
 * changes are applied on the loop thread.
 */
#ifndef CVMM_LOOPAPI_H
#define CVMM_LOOPAPI_H

#include <cvmm/plugin.h>

struct cvmm_daemon;

int loopapi_io_add(struct cvmm_daemon *d, int fd, uint32_t events, cvmm_io_fn fn, void *data);
int loopapi_io_update(struct cvmm_daemon *d, int id, uint32_t events);
int loopapi_io_remove(struct cvmm_daemon *d, int id);
int loopapi_timer_add(struct cvmm_daemon *d, int64_t period_ms, cvmm_timer_fn fn, void *data);
int loopapi_timer_update(struct cvmm_daemon *d, int id, int64_t period_ms);
int loopapi_timer_remove(struct cvmm_daemon *d, int id);
/* Stops and frees every watch (daemon shutdown, loop thread). */
void loopapi_free_all(struct cvmm_daemon *d);

#endif
