/*
 * trust: what the trust plugins (confidential, key-provider, kms, gateway)
 * each wrote again: the opening of cvmm_plugin_init on the 1.2 host table,
 * settings of plugin.<name> that fall back to a top-level section of the
 * same meaning (dstack's key_provider { } and gateway { }), integers held to
 * a range, an answer copied into the host's buffer, and a guest call
 * (guest_call.h) served behind a route or a channel handler.
 */
#ifndef CVMM_PLUGIN_COMMON_TRUST_H
#define CVMM_PLUGIN_COMMON_TRUST_H

#include "guest_call.h"

#include <cvmm/plugin.h>
#include <stddef.h>
#include <stdint.h>

struct cp_plugin {
	const struct cvmm_host_api *host;
	cvmm_plugin *self;
	const char *name;     /* "key-provider": messages say plugin.<name>.<key> */
	const char *fallback; /* ".key_provider": where a key plugin.<name> lacks is
	                       * looked up next; NULL: nowhere */
};

/* The opening of cvmm_plugin_init: the ABI's major checked and pl filled
 * in. has: CVMM_HOST_HAS(h, <the newest slot the plugin needs>), what:
 * that slot's name for the message. 0, or -EPROTO (said through
 * host->error when the table is too old). */
int cp_plugin_open(struct cp_plugin *pl, uint32_t major, const struct cvmm_host_api *h,
                   cvmm_plugin *p, const char *name, int has, const char *what);

/* A setting of plugin.<name>, else of the fallback section: 0, -ENOENT
 * when neither has it, or another negative errno (wrong type). */
int cp_cfg_string(const struct cp_plugin *pl, const char *key, const char **v);
int cp_cfg_bool(const struct cp_plugin *pl, const char *key, int32_t *v);
int cp_cfg_int(const struct cp_plugin *pl, const char *key, int64_t *v);
/* cp_cfg_int held to lo..hi: 0 set, 1 absent (v untouched), or a negative
 * errno (-EINVAL out of range, said through host->error). */
int cp_cfg_range(const struct cp_plugin *pl, const char *key, int64_t lo, int64_t hi, int64_t *v);

/* text into buf (an info or route answer): its length, or -ENOSPC. */
int cp_answer(char *buf, size_t len, const char *text);

/* fn on the VM the route or channel names (a guest only ever asks for
 * itself): its answer's length, or a negative errno with fn's reason said
 * through host->error. */
int cp_guest_call_serve(const struct cp_plugin *pl, guest_call_fn fn, cvmm_vm *vm, const char *body,
                        char *buf, size_t len);

#endif
