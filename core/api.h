/*
 * api: the REST/JSON API (v1) over HTTP/1.1 with libmicrohttpd, a thread per
 * connection (never on the daemon's loop). Auth, size limits, connection
 * classes, routing, and the streams (logs -f, /v1/events; GET /metrics).
 */
#ifndef CVMM_API_H
#define CVMM_API_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cvmm_daemon;
struct cvmm_vm;

#define API_MAX_BODY (64 * 1024)
#define API_MAX_CONNECTIONS 2048 /* in all */
#define API_MAX_WAITING 256      /* connections whose request headers are not in yet */
#define API_MAX_FOLLOWERS 512    /* log streams that follow (logs -f) */
#define API_HEADER_DEADLINE 10.0 /* seconds a connection may take to send its headers */

int api_open(struct cvmm_daemon *d, char *err, size_t errlen);
void api_close(struct cvmm_daemon *d);
/* Constant-time token check against auth.tokens (exposed for tests). */
int api_token_ok(struct cvmm_daemon *d, const char *authorization_header);
/* 0 when a body json-c accepted has no key twice in an object, no NUL in a
 * string and only UTF-8; else -1 and "field: rule" in err (exposed for
 * tests and the fuzzer). */
int api_json_strict(const char *text, size_t len, char *err, size_t errlen);

/* A request body as the API reads it: one strict JSON object (api_json_
 * strict's rules too); empty text is {}. NULL with the reason in err. */
json_object *api_parse_body(const char *text, size_t len, char *err, size_t errlen);

/* The VM operations behind the routes, without HTTP, shared with the
 * embedding API (cvmm.c). Each returns 0 or a negative errno with the
 * message in err: -EBUSY when the VM is being created or removed, or is
 * already where it was asked to go (409), -ESHUTDOWN when the daemon is
 * stopping (503). The caller holds a reference to vm.
 * define: admits vm (from vm_from_request; taken over, freed on failure),
 * runs its DEFINE and queues its start; *out is the VM as POST answers it. */
int api_vm_define(struct cvmm_daemon *d, struct cvmm_vm *vm, bool start, json_object **out,
		  char *err, size_t errlen);
/* action: "start", "stop", "restart" or "kill"; *out as the 202 answers. */
int api_vm_action(struct cvmm_daemon *d, struct cvmm_vm *vm, const char *action, uint32_t timeout,
		  bool force, json_object **out, char *err, size_t errlen);
/* Stops (forced) and removes vm; returns when it is gone. */
/* kept_volumes (may be NULL): set to an array of the paths of the volumes
 * the removal kept (marked "keep"), or NULL when none. */
int api_vm_remove(struct cvmm_daemon *d, struct cvmm_vm *vm, json_object **kept_volumes, char *err,
		  size_t errlen);
/* The VM as GET answers it (plugins' parts included). */
json_object *api_vm_json(struct cvmm_vm *vm);
/* {"vms": [...]} as text (malloc'd); fields as ?fields= (NULL: all). */
char *api_vm_list_text(struct cvmm_daemon *d, const char *fields, size_t *len, char *err,
		       size_t errlen);

#endif
