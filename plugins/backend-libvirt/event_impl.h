/*
 * event_impl: libvirt's event-loop interface (virEventRegisterImpl) served by
 * the daemon's own loop through the host's io_* and timer_* slots, so that
 * libvirt's connection I/O, keepalives and domain events run there rather
 * than on a thread of their own.
 */
#ifndef CVMM_LIBVIRT_EVENT_IMPL_H
#define CVMM_LIBVIRT_EVENT_IMPL_H

#include <cvmm/plugin.h>

/* Registers the implementation with libvirt; once per process, before the
 * first virConnectOpen. Returns 0 or -ENOTSUP when the host has no loop
 * slots. */
int lv_event_register(const struct cvmm_host_api *host, cvmm_plugin *self);

#endif
