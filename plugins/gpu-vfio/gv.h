/*
 * gv.h: the pure parts of gpu-vfio, shared by the plugin and its unit tests.
 * Nothing here knows the plugin ABI: discovery reads a sysfs root, the
 * filters and the request resolver are functions of what discovery found,
 * the lease store is one text file, and bind.c performs the sysfs writes.
 */
#ifndef GV_H
#define GV_H

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

/* ---- filters.c ---- */
int gv_parse_id(const char *s, uint32_t *out); /* "10de:2335" */
/* Whether d may be given to a VM: 0, or -EPERM with the reason in why. */
int gv_offered(const struct gv_filter *f, const struct gv_dev *d, char *why, size_t len);

/* ---- store.c: who holds what, and what was bound, across restarts ----
 * <dir>/leases, rewritten atomically:
 *   cvmm-gpu-vfio 1
 *   lease <slot> <vm-id> <vcpus>
 *   bound <slot> <vm-id> <original driver or ->
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
struct gv_store {
	char path[512];
	int n_leases, n_bound;
	struct gv_lease *leases;
	struct gv_bound *bound;
};
int gv_store_open(struct gv_store *s, const char *dir); /* loads it if present */
void gv_store_free(struct gv_store *s);
int gv_store_save(const struct gv_store *s);
const char *gv_store_holder(const struct gv_store *s, const char *slot); /* NULL free */
int gv_store_lease(struct gv_store *s, const char *slot, const char *vm, uint32_t vcpus);
int gv_store_release_vm(struct gv_store *s, const char *vm); /* leases of vm */
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
/* A VM's held slots as a JSON array. */
int gv_vm_json(const struct gv_store *s, const char *vm, char *buf, size_t len);

/* ---- hostdev.c ---- */
struct cvmm_spec_hostdev;
/* Spec entries for slots (sorted, as gv_resolve gives them) into out[n]. */
int gv_hostdevs(char (*slots)[GV_SLOT_LEN], int n, struct cvmm_spec_hostdev *out);

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
