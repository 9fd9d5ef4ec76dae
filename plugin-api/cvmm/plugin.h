/*
 * cvmm/plugin.h: the whole plugin ABI of cvmm, version 1.2 (1.0 plus the
 * slots marked "added in 1.1" and "added in 1.2").
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
 *    VM runs at a time, so calls for one VM never overlap — except after a
 *    step overran cvm.hook_timeout: the job then gives up on it and runs
 *    the undo while the late call may still be inside the plugin.
 */
#ifndef CVMM_PLUGIN_H
#define CVMM_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CVMM_ABI_MAJOR 1
#define CVMM_ABI_MINOR 2

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
/* Added in 1.2: a dry run (POST /v1/vms?dry_run=1 validates a create and
 * renders what its start would launch). Hooks add to the spec what their
 * PREPARE and PRE_START would add, and must change nothing on the host:
 * reserve, bind, create and persist nothing. The VM is not in the daemon's
 * table and has no folder. spec is non-NULL. */
#define CVMM_EV_PLAN 13

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
	/* Added in 1.2. The id of the PCIe port (struct cvmm_spec_pcie) the
	 * NIC sits under; "" = the backend's default place. */
	char bus[32];
};

/* Added in 1.2: a host PCI device passed through (VFIO). */
#define CVMM_HOSTDEV_ROM_OFF 1 /* no option ROM (rombar=0) */

struct cvmm_spec_hostdev {
	uint32_t struct_size;
	uint32_t flags;     /* CVMM_HOSTDEV_* */
	char id[32];        /* unique within the spec, e.g. "gpu0" */
	char host[16];      /* host address "0000:12:00.0" */
	char rom_file[256]; /* option ROM file instead of the device's own; "" none */
	/* Functions passed together: hostdevs with the same non-empty group
	 * become functions of one guest slot (function 0 multifunction=on). */
	char group[32];
	uint32_t function; /* guest function number within the group */
	uint32_t reserved;
	char bus[32]; /* id of the PCIe port it sits under; "" = default */
};

/* Added in 1.2: a NUMA cell of the guest. */
struct cvmm_spec_numa {
	uint32_t struct_size;
	uint32_t id;           /* cell number, 0.. */
	char cpus[64];         /* guest vCPUs of the cell, e.g. "0-47" */
	uint64_t memory_mb;    /* memory of the cell */
	int32_t host_node;     /* host node whose memory backs the cell; -1 none */
	uint32_t hugepage_kb;  /* 0: normal pages; else the page size, e.g. 2048 */
};

/* Added in 1.2: vCPU pinning (one per vCPU pinned). */
struct cvmm_spec_pin {
	uint32_t struct_size;
	uint32_t vcpu;
	char host_cpus[64]; /* host CPU list, e.g. "3" or "0-3,8" */
};

/* Added in 1.2: an element of the guest's PCIe hierarchy. */
#define CVMM_PCIE_EXPANDER 1   /* a host bridge of its own (pxb-pcie) for a NUMA cell */
#define CVMM_PCIE_ROOT_PORT 2  /* pcie-root-port */
#define CVMM_PCIE_SWITCH_UP 3  /* switch upstream port (x3130-upstream) */
#define CVMM_PCIE_SWITCH_DOWN 4 /* switch downstream port (xio3130-downstream) */

struct cvmm_spec_pcie {
	uint32_t struct_size;
	uint32_t kind;      /* CVMM_PCIE_* */
	char id[32];        /* unique within the spec */
	char parent[32];    /* id of the element above; "" = the root complex */
	int32_t numa_cell;  /* EXPANDER: the guest cell it belongs to; -1 none */
	uint32_t bus_nr;    /* EXPANDER: its first bus number */
	uint32_t chassis;   /* ROOT_PORT / SWITCH_DOWN */
	uint32_t port;      /* ROOT_PORT / SWITCH_DOWN */
};

/* Added in 1.2 (trust): a confidential guest (struct cvmm_launch_spec's
 * confidential). */
#define CVMM_CC_TDX 1     /* Intel TDX trust domain (tdx-guest) */
#define CVMM_CC_SEV_SNP 2 /* AMD SEV-SNP (sev-snp-guest) */
#define CVMM_CC_SEV 3     /* AMD SEV (sev-guest) */

struct cvmm_spec_confidential {
	uint32_t struct_size;
	uint32_t type;              /* CVMM_CC_* */
	char firmware[256];         /* the OVMF build the type needs; replaces bios */
	uint64_t policy;            /* SEV / SEV-SNP guest policy; 0 = the backend's default */
	uint32_t cbitpos;           /* SEV*: C-bit position (51 on EPYC) */
	uint32_t reduced_phys_bits; /* SEV*: 1 on EPYC */
	char mrconfigid[72];        /* TDX: base64 of 48 bytes (64 characters); "" none */
	char host_data[48];         /* SEV-SNP: base64 of 32 bytes (44 characters); "" none */
	uint32_t kernel_hashes;     /* SEV*: 1 = measure -kernel/-initrd/-append */
	uint32_t reserved;
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
	/* Added in 1.2: topology and passthrough. sockets/cores/threads 0 =
	 * the backend's default (one socket, vcpus cores). */
	uint32_t sockets, cores, threads;
	uint32_t n_numa;
	const struct cvmm_spec_numa *const *numa;
	uint32_t n_pins;
	const struct cvmm_spec_pin *const *pins;
	char emulator_cpus[64]; /* host CPUs for the emulator threads; "" any */
	uint32_t n_hostdevs;
	const struct cvmm_spec_hostdev *const *hostdevs;
	uint32_t n_pcie;
	const struct cvmm_spec_pcie *const *pcie; /* parents before children */
	/* Added in 1.2 (trust): the VM runs as a confidential guest; NULL =
	 * an ordinary VM. A backend that cannot launch the type refuses the
	 * start with the reason (host->error). */
	const struct cvmm_spec_confidential *confidential;
	/* Added in 1.2: firmware of an image whose disk boots by itself
	 * (kernel[] then usually empty). CVMM_FW_NONE: bios[] if set, else the
	 * backend's default (SeaBIOS); CVMM_FW_BIOS: SeaBIOS; CVMM_FW_UEFI:
	 * firmware_code (read-only) and the VM's own variable store
	 * firmware_vars (writable, kept with the VM), as two pflash devices. */
	uint32_t firmware;
	uint32_t reserved2;
	char firmware_code[256];
	char firmware_vars[256];
	/* Added in 1.2: the guest channel (README "Guest channel"), set by the
	 * core. A virtio-serial port named channel_name whose host end is a
	 * unix stream socket at channel_path that the hypervisor listens on
	 * (the daemon connects to it); "" = no channel. The vsock side needs
	 * no device of its own: it is the vhost-vsock device of cid. */
	char channel_name[64];
	char channel_path[256];
};

#define CVMM_FW_NONE 0
#define CVMM_FW_BIOS 1
#define CVMM_FW_UEFI 2

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
	/* Added in 1.2: pause and resume (POST /v1/vms/{id}/pause, /resume).
	 * pause freezes the running VM's vCPUs, its process and devices stay
	 * (QMP "stop", virDomainSuspend); resume lets them run again. Both
	 * return once done. NULL: the backend cannot pause, the API says so. */
	int (*pause)(void *data, cvmm_vm *vm);
	int (*resume)(void *data, cvmm_vm *vm);
	/* Added in 1.2: whether the running VM is paused: 1, 0, or a negative
	 * errno. Asked at re-adoption, so that a VM paused while the daemon
	 * was down (or before it wrote so) is reported as it is. */
	int (*is_paused)(void *data, cvmm_vm *vm);
	/* Added in 1.2: disk snapshots of a stopped VM (never called while
	 * it runs). disk: the VM's root disk (qcow2). op CVMM_SNAP_*; name
	 * is NULL for LIST, which writes a JSON array into buf, e.g.
	 * [{"name": "s1", "created": 1700000000}] and returns its length.
	 * The others return 0; -EEXIST: CREATE of a name in use; -ENOENT: no
	 * snapshot of that name. */
	int (*snapshot)(void *data, cvmm_vm *vm, uint32_t op, const char *disk, const char *name,
			char *buf, size_t len);
	/* Added in 1.2: CPU time the running VM has used so far (all its
	 * vCPUs and the hypervisor's own threads), in nanoseconds, into *ns:
	 * 0, or a negative errno (-ESRCH: not running). Called from API
	 * threads (GET /metrics) with no lock held; it should report nothing
	 * on the VM (no host->error) and not block for long. NULL: the host
	 * reads the CPU time of the process it watches (vm_watch_pid). */
	int (*cpu_time)(void *data, cvmm_vm *vm, uint64_t *ns);
};

/* Added in 1.2: cvmm_backend_ops.snapshot's operations. */
#define CVMM_SNAP_CREATE 1
#define CVMM_SNAP_LIST 2
#define CVMM_SNAP_REVERT 3
#define CVMM_SNAP_DELETE 4

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
	/* Added in 1.2. Dry run (CVMM_EV_PLAN): add the NIC setup() would
	 * add, changing nothing on the host. NULL: the dry run says this
	 * NIC is missing from what it renders. */
	int (*plan)(void *data, cvmm_vm *vm, uint32_t nic_index, cvmm_spec *spec,
		    const struct cvmm_port_map *const *ports, uint32_t n_ports);
};

/* An event hook. spec is non-NULL only for PREPARE, PRE_START and PLAN. */
typedef int (*cvmm_hook_fn)(void *data, cvmm_vm *vm, uint32_t event, cvmm_spec *spec);

/* Event-loop access (io_* and timer_* in the host table). */
#define CVMM_IO_READ 1
#define CVMM_IO_WRITE 2
#define CVMM_IO_ERROR 4
#define CVMM_IO_HANGUP 8
typedef void (*cvmm_io_fn)(void *data, int watch, int fd, uint32_t events);
typedef void (*cvmm_timer_fn)(void *data, int timer);

/* Added in 1.2: a NIC as the host knows it (vm_nic_info). */
struct cvmm_nic_info {
	uint32_t struct_size;
	uint32_t reserved;
	char mac[18];
	char mode[32];
	char addr[64];    /* "10.0.0.5/24", or "" when the mode chose none */
	char gateway[64];
	char dns[128];    /* comma-separated */
};

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

	/* Per-VM plugin state: small string key/values, kept across daemon
	 * restarts. Since 1.2 written with the VM's manifest at the job's next
	 * write (a start writes it once the VM runs, a define once defined)
	 * rather than at every set: after a daemon killed in the middle of a
	 * job, a plugin finds what it made by name, not only by its state.
	 * value NULL deletes. get copies into buf; returns the length, or
	 * -ENOENT. */
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

	/* Added in 1.2: the launch spec's topology and passthrough parts. */
	int (*spec_add_hostdev)(cvmm_spec *s, const struct cvmm_spec_hostdev *dev);
	int (*spec_set_topology)(cvmm_spec *s, uint32_t sockets, uint32_t cores, uint32_t threads);
	int (*spec_add_numa)(cvmm_spec *s, const struct cvmm_spec_numa *cell);
	int (*spec_add_pin)(cvmm_spec *s, const struct cvmm_spec_pin *pin);
	int (*spec_set_emulator_cpus)(cvmm_spec *s, const char *host_cpus);
	int (*spec_add_pcie)(cvmm_spec *s, const struct cvmm_spec_pcie *elem);

	/* Added in 1.2: parts of the API a plugin owns. From the entry point
	 * only. A top-level field of the create body ("gpus"): validate gets
	 * the field's value as JSON text on a request thread, before anything
	 * is reserved, and returns 0 or a negative errno with the reason in
	 * err ("gpus.count: must be ..."); the value is stored with the VM and
	 * read back with vm_request_field (JSON text, NULL if absent). */
	int (*register_request_field)(cvmm_plugin *p, const char *field,
				      int (*validate)(void *data, const char *json, char *err,
						      size_t errlen),
				      void *data);
	const char *(*vm_request_field)(cvmm_vm *vm, const char *field);
	/* JSON text the plugin adds under key to GET /v1/host (host_info) and
	 * to every VM's object (vm_info); either may be NULL. Write into buf,
	 * return the length or a negative errno. Called on request threads. */
	int (*register_info)(cvmm_plugin *p, const char *key,
			     int (*host_info)(void *data, char *buf, size_t len),
			     int (*vm_info)(void *data, cvmm_vm *vm, char *buf, size_t len), void *data);
	/* A route of the plugin's own under /v1 ("GET", "gpus" serves GET
	 * /v1/gpus), authenticated like every other. fn writes a JSON answer
	 * into buf and returns its length (status 200), or a negative errno
	 * with the reason through host->error (status from the errno). */
	int (*register_route)(cvmm_plugin *p, const char *method, const char *path,
			      int (*fn)(void *data, const char *body, char *buf, size_t len),
			      void *data);

	/* Added in 1.2 (trust). One line in the VM's events (GET
	 * /v1/vms/{id}/events), type a short word ("key-provider"); any
	 * thread. */
	void (*vm_event)(cvmm_plugin *p, cvmm_vm *vm, const char *type, const char *fmt, ...)
		CVMM_PRINTF(4, 5);
	/* Added in 1.2 (trust). A route under one VM: ("GET", "env-pubkey")
	 * serves GET /v1/vms/{id-or-name}/env-pubkey, with the VM held for
	 * the call; answers as register_route's fn. From the entry point
	 * only. */
	int (*register_vm_route)(cvmm_plugin *p, const char *method, const char *sub,
				 int (*fn)(void *data, cvmm_vm *vm, const char *body, char *buf,
					   size_t len),
				 void *data);
	/* Added in 1.2 (trust). Makes the VM a confidential guest (copied). */
	int (*spec_set_confidential)(cvmm_spec *s, const struct cvmm_spec_confidential *cc);
	/* Added in 1.2 (appended after register_route): items the plugin adds
	 * to the host readiness report (GET /v1/host/check, `cvmm check`).
	 * From the entry point only. fn writes a JSON array of
	 * {"name": "...", "status": "ok" | "warn" | "fail", "detail": "...",
	 *  "fix": "..."} into buf and returns its length or a negative errno.
	 * Called on request threads; it may read the host, and changes
	 * nothing. */
	int (*register_check)(cvmm_plugin *p, int (*fn)(void *data, char *buf, size_t len),
			      void *data);
	/* Added in 1.2: what the network plugins published about NIC i, for
	 * plugins that tell the guest about its NICs (cloud-init's
	 * network-config). A network plugin publishes through its own state
	 * under the keys "nic<i>.mac", "nic<i>.address" ("10.0.0.5/24"),
	 * "nic<i>.gateway" and "nic<i>.dns" (comma-separated); each field is ""
	 * when unpublished (mac then falls back to the one asked for). Copies
	 * into info (set info->struct_size first); -ENOENT past the last NIC. */
	int (*vm_nic_info)(cvmm_vm *vm, uint32_t i, struct cvmm_nic_info *info);
	/* Added in 1.2: answers a request type of the guest channel
	 * ("GetSealingKey", "GetKmsConfig" or "GetGatewayConfig"; another
	 * gets -ENOTSUP; the last two carry no parameters: "{}"). From the entry point only; one plugin per type.
	 * fn runs on a thread of its own, bounded by cvm.hook_timeout, with
	 * the request's parameters as JSON text that the channel's reader
	 * validated (GetSealingKey: {"quote": "<hex>"}, at most 1 MiB); the
	 * VM is the one whose channel the request came on, never one the
	 * guest named. It writes a JSON answer into buf and returns its
	 * length, or a negative errno with the reason through host->error,
	 * which the guest receives as the request's error. */
	int (*register_channel_handler)(cvmm_plugin *p, const char *request,
					int (*fn)(void *data, cvmm_vm *vm, const char *params,
						  char *buf, size_t len),
					void *data);
};

/* Added in 1.2: whether the host's table has a slot (it is as large as the
 * plugin needs and the slot is set), e.g. CVMM_HOST_HAS(host, spec_add_pin). */
#define CVMM_HOST_HAS(host, slot)                                                                  \
	((host)->struct_size >= offsetof(struct cvmm_host_api, slot) + sizeof((host)->slot) &&      \
	 (host)->slot != NULL)

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
