/*
 * guest_call: the calls a guest makes over the guest channel, as plain C
 * functions, so that a plugin's guest-facing entry points can be tested
 * (and reached through a test route) before the channel is wired in.
 *
 * The VM is the channel's VM, never one named in the request: a guest can
 * only ever ask for itself. req is the call's JSON argument object ("{}"
 * when none); the function writes a JSON answer into buf and returns its
 * length, or a negative errno with a one-line reason in err.
 *
 * With the channel's ABI (1.2, register_channel_handler), a plugin's init
 * registers each entry of its table:
 *
 *     for (size_t i = 0; i < n_calls; i++)
 *             host->register_channel_handler(self, calls[i].name, calls[i].fn_adapter, NULL);
 *
 * where fn_adapter has the channel's handler signature and calls fn.
 */
#ifndef CVMM_GUEST_CALL_H
#define CVMM_GUEST_CALL_H

#include <cvmm/plugin.h>
#include <stddef.h>

typedef int (*guest_call_fn)(cvmm_vm *vm, const char *req, char *buf, size_t len, char *err,
			     size_t errlen);

struct guest_call {
	const char *name; /* the channel method, e.g. "GetSealingKey" */
	guest_call_fn fn;
};

#endif
