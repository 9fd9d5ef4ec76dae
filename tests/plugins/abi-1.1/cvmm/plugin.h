/*
 * cvmm/plugin.h: the whole plugin ABI of cvmm, version 1.1 (1.0 plus the
 * slots marked "added in 1.1").
 *
 * A plugin is a shared object exporting exactly one symbol, CVMM_PLUGIN_ENTRY.
 * The daemon calls it once with its ABI version and its host-API table; the
 * plugin fills a descriptor (handshake) and, if the versions agree, registers
 * what it provides (backends, network modes, event hooks) through the table.
 *
 * Rules (see README "Writing a plugin"):
 *  - every struct that crosses the boundary starts with uint32_t struct_size;
 *    a field past the reader's struct_size is treated as absent;
 *  - the host table and every ops table only grow at the end; each slot added
 *    after 1.0 names the minor that added it; a NULL slot means unsupported;
 *  - no libev/libconfig/json-c type crosses the boundary: handles are opaque;
 *  - what the host passes in is borrowed for the duration of the call; what a
 *    plugin hands over is copied by the host;
 *  - functions return 0 (or a count) on success and a negative errno on
 *    failure; the human message goes through host->error(), and reaches the
 *    API client;
 *  - hooks and ops run on worker threads and may block; one lifecycle job per
 *    VM runs at a time, so calls for one VM never overlap.
 */
#ifndef CVMM_PLUGIN_H
#define CVMM_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CVMM_ABI_MAJOR 1
#define CVMM_ABI_MINOR 1

#define CVMM_PLUGIN_EXPORT __attribute__((visibility("default")))
#define CVMM_PLUGIN_ENTRY cvmm_plugin_init
#define CVMM_PLUGIN_ENTRY_NAME "cvmm_plugin_init"

#if defined(__GNUC__)
#define CVMM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CVMM_PRINTF(a, b)
#endif

/* Opaque handles. */
typedef struct cvmm_plugin cvmm_plugin; /* this plugin, as the host knows it */
typedef struct cvmm_vm cvmm_vm;         /* one VM */
typedef struct cvmm_spec cvmm_spec;     /* a launch spec being built */

/* Log levels. */
#define CVMM_LOG_ERROR 0
#define CVMM_LOG_WARN 1
#define CVMM_LOG_INFO 2
#define CVMM_LOG_DEBUG 3

/*
 * Lifecycle events. Paired: a "do" event and its "undo". When a do-handler
 * fails, the undo of that stage runs for every hook of the stage that already
 * ran *and* for the failing one (so undo handlers must be idempotent and
 * tolerate partial work), then the undo of every earlier stage, newest first.
 */
#define CVMM_EV_DEFINE 1
#define CVMM_EV_UNDEFINE 2
#define CVMM_EV_PREPARE 3
#define CVMM_EV_CLEANUP 4
#define CVMM_EV_PRE_START 5
#define CVMM_EV_POST_STOP 6
#define CVMM_EV_STARTED 7
#define CVMM_EV_STOPPING 8
/* Notifications, no undo. */
#define CVMM_EV_EXITED 9
#define CVMM_EV_GUEST_EVENT 10
#define CVMM_EV_DAEMON_START 11
#define CVMM_EV_DAEMON_STOP 12

/* ---- The launch spec: what plugins build and backends render. ----------
 * Backends read it through struct cvmm_launch_spec (const); everybody else
 * adds to it through the host's spec_* builders, which copy their input.
 * Arrays are arrays of pointers so that element structs can grow. */

#define CVMM_NIC_USER 1   /* hypervisor-internal user network (slirp) */
#define CVMM_NIC_STREAM 2 /* unix stream socket to a switch (passt) */
#define CVMM_NIC_TAP 3    /* existing TAP device, by name */
#define CVMM_NIC_MACVTAP 4 /* macvtap device, by name (made by the network plugin) */

#define CVMM_PROTO_TCP 1
#define CVMM_PROTO_UDP 2

struct cvmm_port_map {
	uint32_t struct_size;
	uint32_t protocol;     /* CVMM_PROTO_* */
	char host_address[64]; /* numeric address to bind on the host */
	uint32_t host_port;
	uint32_t vm_port;
};

struct cvmm_spec_nic {
	uint32_t struct_size;
	uint32_t kind;      /* CVMM_NIC_* */
	char id[32];        /* unique within the spec, e.g. "net0" */
	char mac[18];       /* "52:54:00:xx:xx:xx" */
	char model[32];     /* "virtio-net-pci" if empty */
	char ifname[64];    /* TAP / macvtap device (TAP, MACVTAP) */
	char socket[256];   /* unix socket path (STREAM) */
	/* CVMM_NIC_USER */
	char user_net[64];        /* "10.0.2.0/24" */
	char user_dhcp_start[64]; /* "10.0.2.10" */
	uint32_t user_restrict;   /* 1: guest cannot reach the host's network */
	uint32_t n_ports;
	const struct cvmm_port_map *const *ports; /* carried by this NIC */
	/* Added in 1.1. The MTU the guest must use on this NIC (the host side
	 * was set up for it, e.g. an overlay's underlay MTU minus the
	 * encapsulation); 0 = the backend's default. A backend that can tell
	 * the guest (virtio-net's host_mtu) does so. */
	uint32_t mtu;
	uint32_t reserved1;
};

#define CVMM_DISK_QCOW2 1
#define CVMM_DISK_RAW 2

struct cvmm_spec_disk {
	uint32_t struct_size;
	uint32_t format;   /* CVMM_DISK_* */
	char id[32];       /* "hd0" */
	char path[256];
	uint32_t readonly;
	uint32_t reserved;
};

struct cvmm_spec_arg {
	uint32_t struct_size;
	uint32_t reserved;
	char backend[32]; /* which backend renders it ("qemu", "libvirt") */
	char value[480];
};

struct cvmm_launch_spec {
	uint32_t struct_size;
	uint32_t vcpus;
	uint64_t memory_mb;
	char name[64]; /* the VM's name */
	char uuid[37]; /* the VM's id as a UUID string */
	char machine[32]; /* "q35" if empty */
	char kernel[256];
	char initrd[256];
	char cmdline[1024];
	char bios[256];
	uint32_t cid; /* vsock guest CID, 0 = none */
	uint32_t n_disks;
	const struct cvmm_spec_disk *const *disks;
	uint32_t n_nics;
	const struct cvmm_spec_nic *const *nics;
	uint32_t n_args;
	const struct cvmm_spec_arg *const *args;
	/* Runtime placement, decided by the host for this boot. */
	char serial_log[256]; /* where the serial console must be captured */
	char run_dir[256];    /* the VM's run directory (sockets, pid file) */
	uint64_t serial_log_max; /* bytes kept of the console log */
};

/* ---- Ops tables a plugin registers. ---------------------------------- */

struct cvmm_host_api;

/* An execution backend (e.g. "qemu", "libvirt"). */
struct cvmm_backend_ops {
	uint32_t struct_size;
	uint32_t reserved;
	/* Launch the VM described by spec and return once it runs, after
	 * arranging for exit notification (host->vm_watch_pid() or
	 * host->vm_exited()). On failure nothing of the launch may remain. */
	int (*start)(void *data, cvmm_vm *vm, const struct cvmm_launch_spec *spec);
	/* Ask the guest to power off; after timeout_s seconds escalate
	 * (quit, then kill). Returns once the VM is gone. */
	int (*stop)(void *data, cvmm_vm *vm, uint32_t timeout_s);
	/* Kill at once. Returns once the VM is gone. */
	int (*kill)(void *data, cvmm_vm *vm);
	/* After a daemon restart: find the VM if it still runs and resume
	 * watching it. Returns 1 if running (and watched), 0 if not. */
	int (*adopt)(void *data, cvmm_vm *vm);
	/* After the VM is gone: remove per-boot runtime files. Idempotent. */
	int (*cleanup)(void *data, cvmm_vm *vm);
	/* One line for GET /v1/host (e.g. the accelerator and why). */
	int (*describe)(void *data, char *buf, size_t len);
	/* Render spec the way start() would, for tests and `cvmm info`:
	 * writes NUL-separated arguments or a document into buf; returns
	 * its length or -ENOSPC. */
	int (*render)(void *data, const struct cvmm_launch_spec *spec, char *buf, size_t len);
};

/* A network mode (e.g. "user", "passt"). Called once per NIC of that mode;
 * nic_index is the NIC's position in the VM's "networks" list. */
struct cvmm_netmode_ops {
	uint32_t struct_size;
	uint32_t can_map_ports; /* 1 if the mode carries port mappings */
	/* DEFINE: check the NIC's parameters (and the port mappings it will
	 * carry), reserve what lives with the VM. */
	int (*define)(void *data, cvmm_vm *vm, uint32_t nic_index,
		      const struct cvmm_port_map *const *ports, uint32_t n_ports);
	/* UNDEFINE: release what define() reserved. Idempotent. */
	int (*undefine)(void *data, cvmm_vm *vm, uint32_t nic_index);
	/* PRE_START: create host resources and add the NIC to the spec. The
	 * ports given are the VM's port mappings this NIC must carry. */
	int (*setup)(void *data, cvmm_vm *vm, uint32_t nic_index, cvmm_spec *spec,
		     const struct cvmm_port_map *const *ports, uint32_t n_ports);
	/* POST_STOP: remove what setup() made. Idempotent. */
	int (*teardown)(void *data, cvmm_vm *vm, uint32_t nic_index);
	/* After a daemon restart, for a VM found running: take back what
	 * setup() made (e.g. re-watch a helper process). */
	int (*adopt)(void *data, cvmm_vm *vm, uint32_t nic_index);
};

/* An event hook. spec is non-NULL only for PREPARE and PRE_START. */
typedef int (*cvmm_hook_fn)(void *data, cvmm_vm *vm, uint32_t event, cvmm_spec *spec);

/* Event-loop access (io_* and timer_* in the host table). */
#define CVMM_IO_READ 1
#define CVMM_IO_WRITE 2
#define CVMM_IO_ERROR 4
#define CVMM_IO_HANGUP 8
typedef void (*cvmm_io_fn)(void *data, int watch, int fd, uint32_t events);
typedef void (*cvmm_timer_fn)(void *data, int timer);

/* ---- The host table: what the daemon offers plugins. ------------------ */

struct cvmm_host_api {
	uint32_t struct_size;
	uint32_t abi_major;
	uint32_t abi_minor;
	uint32_t reserved;

	/* Logging and errors. error() records the message for the current
	 * operation on vm (may be NULL), which reaches the API client, and
	 * returns err (a negative errno) for convenience. */
	void (*log)(cvmm_plugin *p, int level, const char *fmt, ...) CVMM_PRINTF(3, 4);
	int (*error)(cvmm_plugin *p, cvmm_vm *vm, int err, const char *fmt, ...) CVMM_PRINTF(4, 5);

	/* Registration, from the entry point only. name is copied. */
	int (*register_backend)(cvmm_plugin *p, const char *name, const struct cvmm_backend_ops *ops,
				void *data);
	int (*register_netmode)(cvmm_plugin *p, const char *mode, const struct cvmm_netmode_ops *ops,
				void *data);
	/* Lower priority runs first for do-events (and last for undo). */
	int (*register_hook)(cvmm_plugin *p, uint32_t event, int32_t priority, cvmm_hook_fn fn,
			     void *data);

	/* Configuration lookups. A path without a leading '.' is relative to
	 * the plugin's own section ("plugin.<name>"); ".cvm.networking.net"
	 * is absolute. Return 0, -ENOENT if unset, -EINVAL on a type mismatch
	 * (reported with file, line and key). Strings live until shutdown. */
	int (*cfg_string)(cvmm_plugin *p, const char *path, const char **out);
	int (*cfg_int)(cvmm_plugin *p, const char *path, int64_t *out);
	int (*cfg_bool)(cvmm_plugin *p, const char *path, int32_t *out);
	/* Number of elements in a list/array setting, then the i-th string. */
	int (*cfg_count)(cvmm_plugin *p, const char *path);
	int (*cfg_string_at)(cvmm_plugin *p, const char *path, uint32_t i, const char **out);

	/* VM fields. Strings are borrowed while the call into the plugin lasts. */
	const char *(*vm_id)(cvmm_vm *vm);   /* UUID */
	const char *(*vm_name)(cvmm_vm *vm);
	uint32_t (*vm_vcpus)(cvmm_vm *vm);
	uint64_t (*vm_memory_mb)(cvmm_vm *vm);
	uint32_t (*vm_cid)(cvmm_vm *vm);
	const char *(*vm_run_dir)(cvmm_vm *vm);  /* exists while a job runs */
	const char *(*vm_data_dir)(cvmm_vm *vm); /* <data_dir>/vms/<id> */
	uint32_t (*vm_nic_count)(cvmm_vm *vm);
	/* A parameter of the i-th entry of the VM's "networks" list
	 * ("mode", or any mode-specific key); NULL if absent. */
	const char *(*vm_nic_param)(cvmm_vm *vm, uint32_t i, const char *key);
	/* The k-th parameter of NIC i (k = 0 is "mode"), to refuse unknown
	 * keys; returns the key, or NULL past the last one. */
	const char *(*vm_nic_param_at)(cvmm_vm *vm, uint32_t i, uint32_t k, const char **value);

	/* Per-VM plugin state: small string key/values, persisted atomically
	 * with the VM's manifest before the next stage runs, and kept across
	 * daemon restarts. value NULL deletes. get copies into buf; returns
	 * the length, or -ENOENT. */
	int (*state_set)(cvmm_plugin *p, cvmm_vm *vm, const char *key, const char *value);
	int (*state_get)(cvmm_plugin *p, cvmm_vm *vm, const char *key, char *buf, size_t len);

	/* Launch-spec builders; the spec copies what it is given. */
	int (*spec_add_nic)(cvmm_spec *s, const struct cvmm_spec_nic *nic);
	int (*spec_add_disk)(cvmm_spec *s, const struct cvmm_spec_disk *disk);
	int (*spec_add_arg)(cvmm_spec *s, const char *backend, const char *value);
	int (*spec_append_cmdline)(cvmm_spec *s, const char *text);

	/* Exit notification. vm_watch_pid: the host watches pid (with a
	 * pidfd) and runs the exit path when it ends; the pid need not be its
	 * child. vm_exited: the backend saw the VM end; any thread. */
	int (*vm_watch_pid)(cvmm_vm *vm, int32_t pid);
	void (*vm_exited)(cvmm_vm *vm, const char *reason);

	/* Host memory, for anything a plugin hands over to be freed by the host. */
	void *(*alloc)(size_t size);
	void (*free)(void *ptr);

	/* Daemon-wide paths. */
	const char *(*run_dir)(cvmm_plugin *p);
	const char *(*data_dir)(cvmm_plugin *p);

	/* The daemon's event loop, for plugins that bring another library's
	 * events into it (libvirt's domain events, say). Any thread may add,
	 * update or remove; callbacks run on the loop thread and must not
	 * block. A callback never runs after remove() returned on the loop
	 * thread, nor after the next loop iteration when called elsewhere.
	 * Returns a watch/timer id > 0, or a negative errno. Timers repeat
	 * every period_ms; -1 disables, 0 fires on every loop iteration. */
	int (*io_add)(cvmm_plugin *p, int fd, uint32_t events, cvmm_io_fn fn, void *data);
	int (*io_update)(cvmm_plugin *p, int watch, uint32_t events);
	int (*io_remove)(cvmm_plugin *p, int watch);
	int (*timer_add)(cvmm_plugin *p, int64_t period_ms, cvmm_timer_fn fn, void *data);
	int (*timer_update)(cvmm_plugin *p, int timer, int64_t period_ms);
	int (*timer_remove)(cvmm_plugin *p, int timer);
};

/* ---- Handshake. ------------------------------------------------------- */

struct cvmm_plugin_desc {
	uint32_t struct_size;
	uint32_t abi_major; /* CVMM_ABI_MAJOR the plugin was built against */
	uint32_t abi_minor;
	uint32_t reserved;
	const char *name; /* static strings */
	const char *version;
	const char *description;
};

/*
 * The entry point. The host passes its ABI version, its table and a zeroed
 * descriptor whose struct_size is the host's. The plugin must first fill desc
 * (always, even if it will refuse), then register and return 0, or return a
 * negative errno. A plugin should only register when host_abi_major matches
 * its own; the host refuses a plugin whose desc->abi_major differs from its
 * own and drops whatever it registered. Registration is only possible from
 * within this call.
 */
typedef int (*cvmm_plugin_init_fn)(uint32_t host_abi_major, uint32_t host_abi_minor,
				   const struct cvmm_host_api *host, cvmm_plugin *self,
				   struct cvmm_plugin_desc *desc);

/* Convenience for plugins: fill desc. The host sets desc->struct_size to
 * the size of its descriptor; a plugin writes no field past it. */
#define CVMM_PLUGIN_DESCRIBE(desc, pname, pversion, pdescription)                                  \
	do {                                                                                       \
		uint32_t cvmm_host_size_ = (desc)->struct_size;                                    \
		(desc)->struct_size = cvmm_host_size_ && cvmm_host_size_ < sizeof(*(desc))         \
					      ? cvmm_host_size_                                    \
					      : (uint32_t)sizeof(*(desc));                         \
		(desc)->abi_major = CVMM_ABI_MAJOR;                                                \
		(desc)->abi_minor = CVMM_ABI_MINOR;                                                \
		(desc)->name = (pname);                                                            \
		(desc)->version = (pversion);                                                      \
		(desc)->description = (pdescription);                                              \
	} while (0)

#ifdef __cplusplus
}
#endif
#endif /* CVMM_PLUGIN_H */
