/*
 * gv.h: the pure parts of gpu-vfio, shared by the plugin and its unit tests.
 * Nothing here knows the plugin ABI: discovery reads a sysfs root, the
 * filters and the request resolver are functions of what discovery found,
 * the lease store is one text file, and bind.c performs the sysfs writes.
 */
#ifndef GV_H
#define GV_H

#include <cvmm/plugin.h>

#include <stddef.h>
#include <stdint.h>

#define GV_SLOT_LEN 16 /* "0000:12:00.0" + NUL */
#define GV_MAX_MEMBERS 16
#define GV_MAX_NODES 16
#define GV_MAX_IDS 64
#define GV_MAX_SEL 64 /* devices one VM may hold */

enum gv_kind { GV_OTHER = 0, GV_GPU, GV_NVSWITCH, GV_NIC, GV_BRIDGE };

struct gv_dev {
	char slot[GV_SLOT_LEN];
	uint16_t vendor, device;
	uint32_t class_code; /* 24 bits: 0x030200 */
	enum gv_kind kind;
	int numa_node;   /* -1 when the platform does not say */
	int iommu_group; /* -1: none (no IOMMU) */
	int n_members;   /* every device of the group, this one included */
	char members[GV_MAX_MEMBERS][GV_SLOT_LEN];
	char parent[GV_SLOT_LEN]; /* the PCI device above it, "" under a host bridge */
	char sw[GV_SLOT_LEN];     /* upstream port of the switch above it, "" none */
	char peer_nic[GV_SLOT_LEN];
	char driver[64]; /* "" unbound */
	char product[128];
	char link_speed[32]; /* max_link_speed, "32.0 GT/s PCIe"; "" unknown */
	int link_width;      /* max_link_width; 0 unknown */
};

struct gv_node {
	int id;
	int n_cpus;
	int cpus[512];
};

struct gv_host {
	int n_devs;
	struct gv_dev *devs;
	int n_nodes;
	struct gv_node nodes[GV_MAX_NODES];
};

/* What cvm.gpu says (dstack's keys and meanings). */
struct gv_filter {
	int enabled;
	int allow_attach_all;
	int n_listing, n_include, n_exclude;
	uint32_t listing[GV_MAX_IDS]; /* vendor << 16 | device */
	char include[GV_MAX_IDS][GV_SLOT_LEN];
	char exclude[GV_MAX_IDS][GV_SLOT_LEN];
	/* cvm.host_cpus: CPUs no vCPU gets (count mode counts around them) */
	int n_reserved;
	int reserved[1024];
};

/* ---- discover.c ---- */
/* Reads <root>/sys (PCI devices, IOMMU groups, NUMA nodes). listing names
 * ids that count as GPUs whatever their class. Returns 0 or -errno. */
int gv_discover(const char *root, const struct gv_filter *f, struct gv_host *h);
void gv_host_free(struct gv_host *h);
const struct gv_dev *gv_find(const struct gv_host *h, const char *slot);
int gv_is_endpoint(const struct gv_dev *d); /* not a bridge (class 0x06xx) */
/* "12:00.0" or "0000:12:00.0" (any case) -> "0000:12:00.0"; -EINVAL. */
int gv_slot_normalise(const char *in, char out[GV_SLOT_LEN]);
/* The current driver of slot under root ("" none); -errno. */
int gv_driver_of(const char *root, const char *slot, char *out, size_t len);
/* "0,2,4-6" into cpus (at most max); returns the count, or -EINVAL when
 * the text is not a CPU list. */
int gv_parse_cpulist(const char *s, int *cpus, int max);

/* ---- filters.c ---- */
int gv_parse_id(const char *s, uint32_t *out); /* "10de:2335" */
/* Whether d may be given to a VM: 0, or -EPERM with the reason in why. */
int gv_offered(const struct gv_filter *f, const struct gv_dev *d, char *why, size_t len);

/* ---- store.c: who holds what, and what was bound, across restarts ----
 * <dir>/leases, rewritten atomically:
 *   cvmm-gpu-vfio 1
 *   lease <slot> <vm-id> <vcpus>
 *   bound <slot> <vm-id> <original driver or ->
 *   pins <vm-id> <host CPU list>       (plan.c: CPUs its vCPUs are pinned to)
 */
struct gv_lease {
	char slot[GV_SLOT_LEN];
	char vm[64];
	uint32_t vcpus;
};
struct gv_bound {
	char slot[GV_SLOT_LEN];
	char vm[64];
	char orig[64]; /* "" the device had no driver */
};
struct gv_pinrec {
	char vm[64];
	char cpus[2600];
};
struct gv_store {
	char path[512];
	int n_leases, n_bound, n_pins;
	struct gv_lease *leases;
	struct gv_bound *bound;
	struct gv_pinrec *pins;
};
int gv_store_open(struct gv_store *s, const char *dir); /* loads it if present */
void gv_store_free(struct gv_store *s);
int gv_store_save(const struct gv_store *s);
const char *gv_store_holder(const struct gv_store *s, const char *slot); /* NULL free */
int gv_store_lease(struct gv_store *s, const char *slot, const char *vm, uint32_t vcpus);
int gv_store_release_vm(struct gv_store *s, const char *vm); /* leases and pins of vm */
/* The host CPUs vm's vCPUs are pinned to (n = 0: none). */
int gv_store_set_pins(struct gv_store *s, const char *vm, const int *cpus, int n);
/* Every CPU pinned to a VM other than except (NULL: any VM); the count. */
int gv_store_taken(const struct gv_store *s, const char *except, int *out, int max);
int gv_store_vm_slots(const struct gv_store *s, const char *vm, char (*out)[GV_SLOT_LEN], int max);
const struct gv_bound *gv_store_bound(const struct gv_store *s, const char *slot);
int gv_store_add_bound(struct gv_store *s, const char *slot, const char *vm, const char *orig);
int gv_store_del_bound(struct gv_store *s, const char *slot);

/* ---- request.c ---- */
enum gv_mode { GV_LISTED = 1, GV_ALL, GV_COUNT };
struct gv_request {
	enum gv_mode mode;
	int n_slots;
	char slots[GV_MAX_SEL][GV_SLOT_LEN];
	int count;
	int peer_nics;
};
/* Syntax of the "gpus" value. 0 or -EINVAL with "gpus....: ..." in err. */
int gv_request_parse(const char *json, struct gv_request *r, char *err, size_t errlen);
/* Which devices a VM asking r gets: checks the filters and exclusivity
 * (vm may already hold some, e.g. a second DEFINE after a crash). Fills
 * out (sorted, group members and peer NICs included) and returns their
 * number; -EINVAL (unknown, filtered, refused), -EBUSY (held elsewhere,
 * not enough free) with the reason in err. */
int gv_resolve(const struct gv_host *h, const struct gv_filter *f, const struct gv_store *s,
	       const char *vm, uint32_t vcpus, const struct gv_request *r,
	       char (*out)[GV_SLOT_LEN], int max, char *err, size_t errlen);

/* ---- json.c ---- */
/* GET /v1/gpus. Returns the length or -ENOSPC. */
int gv_gpus_json(const struct gv_host *h, const struct gv_filter *f, const struct gv_store *s,
		 char *buf, size_t len);
/* The readiness report's items for the GPUs and NVSwitches under root
 * (a JSON array: plugin.h, register_check). Returns the length or -ENOSPC. */
int gv_check_json(const char *root, const struct gv_host *h, const struct gv_filter *f,
		  const struct gv_store *s, char *buf, size_t len);
/* A VM's held slots as a JSON array. */
int gv_vm_json(const struct gv_store *s, const char *vm, char *buf, size_t len);

/* ---- hostdev.c ---- */
struct cvmm_spec_hostdev;
/* Spec entries for slots (sorted, as gv_resolve gives them) into out[n]. */
int gv_hostdevs(char (*slots)[GV_SLOT_LEN], int n, struct cvmm_spec_hostdev *out);

/* ---- plan.c: the guest topology a VM's devices call for ----
 * "mirror": sockets and NUMA cells for the host nodes of the VM's devices
 * (every host node for a VM without devices), each vCPU pinned to its own
 * host CPU of its cell's node (the highest free ones first, as NVIDIA's HGX
 * guide pins: the low CPUs stay with the host), the cell's memory bound to
 * that node, one expander bus per cell and under it a root port per host
 * switch (or per device without one) with a switch whose downstream ports
 * hold the devices that share that switch on the host. "nccl": the same
 * cells and pins, a flat tree (a root port per device on the root
 * complex), and NCCL's topology file describing the host's switches in
 * guest bus ids instead. */
#define GV_MAX_VCPUS 512
#define GV_MAX_PCIE (GV_MAX_NODES + 3 * GV_MAX_SEL)
enum gv_topo { GV_TOPO_NONE = 0, GV_TOPO_MIRROR, GV_TOPO_NCCL };
/* "mirror", "nccl", "none" (JSON text of the request field) -> mode; -EINVAL. */
int gv_topo_parse(const char *json, enum gv_topo *out, char *err, size_t errlen);

struct gv_plan_in {
	const struct gv_host *h;
	char (*slots)[GV_SLOT_LEN]; /* the VM's devices, sorted (gv_resolve) */
	int n;
	uint32_t vcpus;
	uint64_t memory_mb;
	enum gv_topo mode;
	const int *reserved; /* cvm.host_cpus: never given to a vCPU */
	int n_reserved;
	const int *taken; /* pinned by other VMs */
	int n_taken;
	uint32_t hugepage_kb; /* 0: normal pages */
};
struct gv_plan_cell {
	int host_node; /* -1: the host names no node */
	uint32_t first_vcpu, n_vcpus;
	uint64_t memory_mb;
};
struct gv_plan {
	enum gv_topo mode;
	uint32_t sockets, cores, threads;
	int n_cells;
	struct gv_plan_cell cells[GV_MAX_NODES];
	int n_pins; /* = vcpus when pinned */
	int pins[GV_MAX_VCPUS]; /* host CPU of vCPU i */
	char emulator_cpus[64];
	uint32_t hugepage_kb;
	int n_pcie;
	struct cvmm_spec_pcie pcie[GV_MAX_PCIE];
	int n_devs;
	struct cvmm_spec_hostdev devs[GV_MAX_SEL];
	/* nccl: the guest bus of each root port, rp<k> -> k + 1 */
};
/* 0, or -EINVAL (the VM cannot take this shape) / -EBUSY (not enough free
 * CPUs on a node) with the reason in err. */
int gv_plan(const struct gv_plan_in *in, struct gv_plan *p, char *err, size_t errlen);
/* NCCL's topology file (NCCL_TOPO_FILE) for a "nccl" plan, in guest bus
 * ids. Returns the length, or -ENOSPC. */
int gv_nccl_xml(const struct gv_plan_in *in, const struct gv_plan *p, char *buf, size_t len);
/* "0-3,8" from a sorted-or-not list of CPUs. */
void gv_format_cpulist(const int *cpus, int n, char *buf, size_t len);

/* ---- bind.c ---- */
struct gv_bind_ctx {
	const char *root;
	int timeout_ms;           /* per sysfs write */
	struct gv_store *store;   /* records the original driver before a bind */
	const char *vm;
	char err[512];
	/* Devices a write to timed out in this call: their record stays, so
	 * that a later restore looks again once the write may have landed. */
	int n_late;
	char late[8][GV_SLOT_LEN];
	/* Called around the writes (pause/resume nvidia-persistenced); may be NULL. */
	void (*pause)(void *data, int on);
	void *pause_data;
};
/* One sysfs write, on a helper thread, given up after timeout_ms. 0,
 * -errno of the write, or -ETIMEDOUT (the thread is left to finish). */
int gv_write_timeout(const char *path, const char *value, int timeout_ms);
/* Every endpoint member of each slot's IOMMU group to vfio-pci. On any
 * failure, what this call moved goes back, and -errno with c->err. */
int gv_bind(struct gv_bind_ctx *c, const struct gv_host *h, char (*slots)[GV_SLOT_LEN], int n);
/* Back to their original drivers: every device recorded bound for c->vm
 * (vm NULL: every record). Idempotent; the record goes once restored. */
int gv_restore(struct gv_bind_ctx *c);
/* nvidia-persistenced, stopped (SIGSTOP) while devices move and resumed
 * after: data is a struct gv_pause. A pid found under root/proc is only
 * signalled if the real /proc names the same program, so a test tree can
 * never make the plugin stop an unrelated process. */
struct gv_pause {
	const char *root;
	int n;
	int pids[8];
};
void gv_pause_persistenced(void *data, int on);

#endif
