/*
 * cvmm/cvmm.h: cvmm's core as a library (libcvmm-core, `pkg-config cvmm`),
 * for appliances that embed the VM manager instead of running cvmmd.
 *
 * A context is what cvmmd is: a config, its plugins, the VM table, the
 * worker pool and an event loop; VMs are the same VMs, on disk under the
 * config's data_dir (a cvmmd started later on that config adopts them).
 * The VM calls are the REST API's operations (README "API (v1)"): the same
 * validation, the same JSON in and out, the same lifecycle jobs.
 *
 *   cvmm_ctx *c;
 *   char err[1024], *vm;
 *   if (cvmm_open(&c, "/etc/cvmm/cvmm.conf", CVMM_OPEN_NO_API, err, sizeof(err)) < 0 ||
 *       cvmm_start(c, err, sizeof(err)) < 0 || cvmm_run_thread(c) < 0)
 *           errx(1, "%s", err);
 *   cvmm_vm_create(c, "{\"name\": \"web1\", \"image\": \"tiny\"}", &vm, err, sizeof(err));
 *   cvmm_vm_wait_state(c, "web1", "running", 60000, err, sizeof(err));
 *   ...
 *   cvmm_close(c); // VMs keep running
 *
 * Rules: every function returns 0 or a negative errno, with a one-line
 * message in err (which may be NULL): -EINVAL a refused request (the field
 * named), -ENOENT no such VM, -EEXIST its name is taken, -EBUSY the VM is
 * being created or removed or already is where it was asked to go (409 in
 * the API), -ESHUTDOWN the context is stopping, -ETIMEDOUT a wait ran out.
 * VM calls may block (a create waits for its DEFINE step, a remove for the
 * VM to be gone) and may be made from any thread except the loop's (never
 * from a plugin hook or loop callback). JSON text handed out is malloc'd:
 * release it with cvmm_free(). The loop must be running (cvmm_run or
 * cvmm_run_thread) for VMs to be watched and restarted.
 */
#ifndef CVMM_CVMM_H
#define CVMM_CVMM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cvmm_ctx cvmm_ctx;

/* cvmm_open flags. */
#define CVMM_OPEN_NO_API 0x1u  /* no API listener: the config's address is not used */
#define CVMM_OPEN_SIGNALS 0x2u /* SIGINT/SIGTERM stop the loop, as in cvmmd */

/* The library's version, e.g. "0.1.0". */
const char *cvmm_version(void);

/* A context from a config file (libconfig, as cvmmd's), or from its text.
 * Validates the config (errors name file, line and key); loads nothing.
 * When SIGPIPE is at its default disposition it is set to ignored: QEMU's
 * and the plugins' sockets must not kill the process. */
int cvmm_open(cvmm_ctx **out, const char *config_path, uint32_t flags, char *err, size_t errlen);
int cvmm_open_string(cvmm_ctx **out, const char *config_text, uint32_t flags, char *err,
                     size_t errlen);
/* Loads the config's plugins from plugin_dir, reads the VMs under data_dir,
 * queues their re-adoption (each is brought to its desired state) and,
 * without CVMM_OPEN_NO_API, opens the API listener. Once per context. */
int cvmm_start(cvmm_ctx *c, char *err, size_t errlen);
/* Blocks until the re-adoption queued by cvmm_start has finished (the loop
 * must run meanwhile). */
void cvmm_wait_adopted(cvmm_ctx *c);

/* The loop: either run it in the calling thread until cvmm_stop (or a
 * signal, with CVMM_OPEN_SIGNALS), or on a thread of the library's own. */
int cvmm_run(cvmm_ctx *c);
int cvmm_run_thread(cvmm_ctx *c, char *err, size_t errlen);
/* Asks the loop to return; any thread, also a signal-free way out. */
void cvmm_stop(cvmm_ctx *c);
/* Stops the loop (joining its thread), lets running jobs finish, unloads
 * the plugins and frees the context. VMs keep running. NULL is fine. */
void cvmm_close(cvmm_ctx *c);

/* POST /v1/vms: request (a JSON object, as the API's create body) in, the
 * new VM out (as the API's 201 answer; out may be NULL). With "start"
 * true (the default) the start is queued: wait for it with
 * cvmm_vm_wait_state. */
int cvmm_vm_create(cvmm_ctx *c, const char *request, char **out, char *err, size_t errlen);
/* POST /v1/vms/{vm}/start, /restart, /kill; vm is an id, a name or an id
 * prefix of at least 8 characters. They return once the intent is on
 * disk and the job queued (the API's 202). */
int cvmm_vm_start(cvmm_ctx *c, const char *vm, char *err, size_t errlen);
int cvmm_vm_restart(cvmm_ctx *c, const char *vm, char *err, size_t errlen);
int cvmm_vm_kill(cvmm_ctx *c, const char *vm, char *err, size_t errlen);
/* POST /v1/vms/{vm}/stop: ACPI power-off, then quit after timeout_s
 * seconds (0..3600); force non-zero: at once. */
int cvmm_vm_stop(cvmm_ctx *c, const char *vm, uint32_t timeout_s, int force, char *err,
                 size_t errlen);
/* DELETE /v1/vms/{vm}: stops it (forced) if running and removes it;
 * returns when it is gone. */
int cvmm_vm_remove(cvmm_ctx *c, const char *vm, char *err, size_t errlen);
/* GET /v1/vms/{vm} and GET /v1/vms[?fields=...] (fields NULL: all). */
int cvmm_vm_get(cvmm_ctx *c, const char *vm, char **out, char *err, size_t errlen);
int cvmm_vm_list(cvmm_ctx *c, const char *fields, char **out, char *err, size_t errlen);
/* Waits until the VM's state is state ("running", "stopped", ...; README
 * "States"), at most timeout_ms (negative: no bound). -EIO when it went
 * to "failed" instead (its reason in err), -ENOENT when it is removed
 * (which is success when state is "removed"). */
int cvmm_vm_wait_state(cvmm_ctx *c, const char *vm, const char *state, int timeout_ms, char *err,
                       size_t errlen);

/* Releases text this library handed out. */
void cvmm_free(void *p);

#ifdef __cplusplus
}
#endif
#endif /* CVMM_CVMM_H */
