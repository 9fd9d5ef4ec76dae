/*
 * registry: loads plugins (dlopen, handshake, ABI check), holds what they
 * registered (backends, network modes, hooks), and implements the host-API
 * table plugins call back into.
 */
#ifndef CVMM_REGISTRY_H
#define CVMM_REGISTRY_H

#include <cvmm/plugin.h>
#include <json-c/json.h>

struct cvmm_daemon;

struct cvmm_plugin {
	struct registry *reg;
	char *file; /* path of the .so */
	char *name; /* section name: the file's base name */
	char *desc_name, *version, *description;
	uint32_t abi_major, abi_minor;
	void *handle;
	char init_err[512]; /* first error it reported while initialising */
	int init_err_is_config; /* init_err is "FILE:LINE: KEY: ..." (a config error) */
};

struct reg_backend {
	char name[32];
	struct cvmm_backend_ops ops; /* copied, zero-extended to our size */
	void *data;
	struct cvmm_plugin *plugin;
};

struct reg_netmode {
	char name[32];
	struct cvmm_netmode_ops ops;
	void *data;
	struct cvmm_plugin *plugin;
};

struct reg_hook {
	uint32_t event;
	int32_t priority;
	cvmm_hook_fn fn;
	void *data;
	struct cvmm_plugin *plugin;
	int order;
};

/* Added in ABI 1.2: parts of the API a plugin owns. */
typedef int (*reg_validate_fn)(void *data, const char *json, char *err, size_t errlen);
typedef int (*reg_host_info_fn)(void *data, char *buf, size_t len);
typedef int (*reg_vm_info_fn)(void *data, cvmm_vm *vm, char *buf, size_t len);
typedef int (*reg_route_fn)(void *data, const char *body, char *buf, size_t len);
typedef int (*reg_vm_route_fn)(void *data, cvmm_vm *vm, const char *body, char *buf, size_t len);

struct reg_field {
	char name[32];
	reg_validate_fn validate;
	void *data;
	struct cvmm_plugin *plugin;
};

struct reg_info {
	char key[32];
	reg_host_info_fn host_info;
	reg_vm_info_fn vm_info;
	void *data;
	struct cvmm_plugin *plugin;
};

struct reg_route {
	char method[8];
	char path[64];
	reg_route_fn fn;
	void *data;
	struct cvmm_plugin *plugin;
	reg_vm_route_fn vmfn; /* 1.2 (trust): a route under one VM; path is its sub-path */
};

typedef int (*reg_check_fn)(void *data, char *buf, size_t len);
struct reg_check {
	reg_check_fn fn;
	void *data;
	struct cvmm_plugin *plugin;
};

/* Added in ABI 1.2: a plugin's answer to a guest channel request. */
typedef int (*reg_chan_fn)(void *data, cvmm_vm *vm, const char *params, char *buf, size_t len);
struct reg_chan_handler {
	char request[32];
	reg_chan_fn fn;
	void *data;
	struct cvmm_plugin *plugin;
};

struct registry {
	struct cvmm_daemon *d;
	struct cvmm_plugin **plugins;
	int n_plugins;
	struct reg_backend *backends;
	int n_backends;
	struct reg_netmode *netmodes;
	int n_netmodes;
	struct reg_hook *hooks;
	int n_hooks;
	struct reg_field *fields;
	int n_fields;
	struct reg_info *infos;
	int n_infos;
	struct reg_route *routes;
	int n_routes;
	struct reg_check *checks;
	int n_checks;
	struct reg_chan_handler *chans;
	int n_chans;
	struct cvmm_plugin *loading; /* the plugin whose entry point runs */
	struct cvmm_plugin *starting; /* the plugin whose DAEMON_START hook runs */
	/* Every key a plugin looked up while its entry point ran, as an
	 * absolute dotted path: a key of a plugin's section (or of a section a
	 * plugin owns) that nobody read is refused as unknown. */
	char **read_keys;
	int n_read_keys;
	/* `cvmmd --check-config`: plugins are loaded and validate their
	 * sections, nothing else; DAEMON_START hooks do not run. */
	int check_only;
};

struct registry *registry_new(struct cvmm_daemon *d);
void registry_free(struct registry *r);
/* Loads one plugin file. On refusal returns a negative errno and one line
 * in err naming the file and both ABI versions, or for a configuration
 * error (-EINVAL) "FILE:LINE: plugin.NAME.KEY: ..." (a key of the plugin's
 * section it did not read during its entry point is such an error). */
int registry_load(struct registry *r, const char *path, const char *name, char *err, size_t errlen);
/*
 * Loads every plugin named in the config from plugin_dir, then checks what
 * only the loaded set can tell: cvm.backend and cvm.networking.mode are
 * provided, every key of cvm.networking but mode and of the plugin-owned
 * sections (cvm.gpu, gateway, ...) was read by a plugin. Unless check_only,
 * it then runs the DAEMON_START hooks (where plugins act on the host, e.g.
 * reconcile what they left behind). Errors are one line; -EINVAL for a
 * configuration error.
 */
int registry_load_all(struct registry *r, char *err, size_t errlen);

struct reg_backend *registry_backend(struct registry *r, const char *name);
struct reg_netmode *registry_netmode(struct registry *r, const char *name);
/* Hooks for event, in priority order; returns the count, fills out[]. */
int registry_hooks(struct registry *r, uint32_t event, struct reg_hook **out, int max);

const struct cvmm_host_api *registry_host_api(void);

struct reg_field *registry_field(struct registry *r, const char *name);
struct reg_route *registry_route(struct registry *r, const char *method, const char *path);
struct reg_route *registry_vm_route(struct registry *r, const char *method, const char *sub);
/* The plugin answering guest channel request type `request`, or NULL. */
struct reg_chan_handler *registry_channel_handler(struct registry *r, const char *request);
/* Runs a plugin's route or info call; a message the plugin reports with
 * host->error(p, NULL, ...) meanwhile lands in err. */
void registry_call_begin(char *err, size_t errlen);
void registry_call_end(void);
/* Dispatches a notification (DAEMON_START, DAEMON_STOP) to its hooks. */
void registry_notify(struct registry *r, uint32_t event);
json_object *registry_plugins_json(struct registry *r);

#endif
