/*
 * vm: one VM as the daemon knows it (struct cvmm_vm, opaque to plugins):
 * its definition, run state, plugin state and recent events; validation of a
 * create request, and the JSON forms (manifest on disk, object in the API).
 */
#ifndef CVMM_VM_H
#define CVMM_VM_H

#include "image.h"

#include <cvmm/plugin.h>
#include <ev.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

struct cvmm_daemon;

enum vm_state {
	VM_DEFINED,
	VM_STARTING,
	VM_RUNNING,
	VM_STOPPING,
	VM_STOPPED,
	VM_EXITED,
	VM_REMOVING,
	VM_FAILED,
	VM_PAUSED, /* runs, vCPUs frozen (POST .../pause); an active state */
};
const char *vm_state_name(enum vm_state s);
int vm_state_from_name(const char *n);

#define VM_MAX_NICS 8
#define VM_MAX_NIC_PARAMS 16
#define VM_MAX_PORTS 32
#define VM_EVENTS_KEPT 200        /* events.log keeps at least this many */
#define VM_EVENTS_LOG_MAX (256 * 1024) /* ... and is cut back past this size */

struct vm_nic {
	int n;
	char **keys; /* keys[0] is "mode" */
	char **vals;
};

#define VM_ERRBUF_LEN 1024

/* An extra disk of the VM (create's "volumes"): made by cvmm in the VM's
 * folder (size_gb), or a host file or block device (source). */
#define VM_MAX_VOLUMES 16
struct vm_volume {
	char name[33];
	uint32_t size_gb; /* made by cvmm; 0 for a source */
	char *source;     /* host path (resolved), NULL when made by cvmm */
	bool readonly;
	bool keep;       /* survives the VM's removal (moved to <data_dir>/volumes) */
	bool raw;        /* a source that is not qcow2 */
};

struct vm_kv {
	char *plugin, *key, *value;
};

/*
 * A VM is reference-counted, as libvirt's domain objects are: the table
 * holds one reference, and anything that uses a VM across a thread or a wait
 * (an API request, a job, a loop callback) holds its own, never a bare
 * pointer. The last vm_unref() frees it.
 *
 * Locks: vm->lock guards the run state below (short, never across I/O or a
 * plugin call); vm->io_lock serialises the VM's file writes (manifest,
 * events.log), each of which snapshots the run state under vm->lock. Order:
 * d->lock, then vm->io_lock, then vm->lock; never d->lock inside a VM lock.
 */
struct cvmm_vm {
	struct cvmm_daemon *d;
	int refs; /* atomic */
	pthread_mutex_t lock, io_lock;

	/* Definition: fixed after create. */
	char id[37];
	char name[64];
	char image[64];
	char backend[32];
	uint32_t vcpu;
	uint64_t memory_mb;
	uint32_t disk_gb; /* the one exception: a resize job grows it, under vm->lock */
	uint32_t cid;
	int n_nics;
	struct vm_nic *nics; /* n_nics */
	int n_ports;
	struct cvmm_port_map *ports; /* n_ports */
	double created;
	int n_fields;
	struct vm_field { char *name, *json; } *fields; /* plugin-owned request fields (ABI 1.2) */
	/* The image's disk file the VM's disk overlays (recorded: the image
	 * has one). Set at create; set again at a start that makes the disk
	 * anew, under vm->lock (vm_base_check). */
	struct image_base_id base;
	char *data_dir; /* <data_dir>/vms/<id> */
	char *run_dir;  /* <run_path>/vms/<id> */
	int n_volumes;
	struct vm_volume *volumes; /* n_volumes */

	/* Run state: guarded by vm->lock. */
	enum vm_state state;
	enum vm_state saved_state; /* the state the manifest on disk says */
	bool want_running; /* desired state */
	char *reason; /* never NULL; vm_set_reason() */
	int pid;
	double started;
	int restarts;       /* automatic restarts since the last reset */
	double next_restart; /* wall time of a scheduled automatic restart, 0 none */
	int n_kv;
	struct vm_kv *kv;
	bool creating;     /* the create is not answered yet: requests get 409 */
	bool removing;     /* DELETE accepted: every later request gets 409 */
	bool gone;         /* out of the table: nothing may be queued for it */
	bool proc_gone;    /* the watched process ended */
	bool stop_requested; /* the current exit was asked for */
	bool defined_ok;   /* DEFINE completed (so UNDEFINE must run on remove) */
	char *exit_reason; /* what the backend said of an exit, for the EXITED job */
	char *errbuf; /* the running job's message buffer (VM_ERRBUF_LEN), else NULL */

	/* Accounting: guarded by d->lock. */
	bool reserved;     /* holds vCPU, memory and a CID in the accounting */

	/* The VM's serial job queue: guarded by the pool's lock (job.c). */
	struct job *jq_head, *jq_tail;
	bool job_running, on_ready;
	struct cvmm_vm *ready_next;
	/* What the API shows of the queue (like virsh domjobinfo), written under
	 * the pool's lock and read without it: the running job's op name (a
	 * static string) or NULL, and how many wait behind it. */
	const char *_Atomic job_op;
	_Atomic int jobs_waiting;

	/* Loop-owned watchers. */
	ev_io pidfd_watch;
	int pidfd;
	int watched_pid;
	ev_timer restart_timer;

	/* Restarts since the daemon started, for the metrics: guarded by
	 * vm->lock. */
	uint64_t restarts_auto, restarts_requested;
	/* The guest channel (channel.c). chan: guarded by vm->lock; the
	 * channel's thread is its only writer of guest, under vm->lock. */
	struct chan *chan;
	struct vm_guest {
		bool connected;       /* the channel's reader runs */
		char agent[16];       /* "" (never heard), "ready", "unresponsive" */
		double hello_at, last_heartbeat;
		uint64_t heartbeats, dropped, refused;
		char boot_progress[256], boot_error[256], shutdown_progress[256];
		char heartbeat[1024]; /* the last heartbeat's payload (JSON) */
		char hello[1024];     /* the agent's phone-home payload (JSON) */
		char instance_info[3200]; /* JSON */
		bool poweroff; /* it said "powering off": its exit is not restarted */
	} guest;
};

#define vm_lock(vm) pthread_mutex_lock(&(vm)->lock)
#define vm_unlock(vm) pthread_mutex_unlock(&(vm)->lock)
struct cvmm_vm *vm_ref(struct cvmm_vm *vm);
void vm_unref(struct cvmm_vm *vm); /* NULL is fine */

/* Validates a create request into a fresh VM (not yet in the table). On
 * error returns -EINVAL with "field: rule" in err. */
int vm_from_request(struct cvmm_daemon *d, json_object *req, struct cvmm_vm **out, bool *start,
		    char *err, size_t errlen);
bool vm_name_valid(const char *name);
/* An empty VM of daemon d with id set: paths and reason filled in. */
struct cvmm_vm *vm_alloc(struct cvmm_daemon *d, const char *id);
void vm_set_reason(struct cvmm_vm *vm, const char *reason); /* caller holds vm->lock */
/* Frees a VM nobody else saw (a refused create, a bad manifest); a VM that
 * was in the table goes with its last vm_unref(). */
void vm_free(struct cvmm_vm *vm);

/* Persisted form. vm_load fills a VM from <dir>/manifest.json. */
json_object *vm_to_manifest(struct cvmm_vm *vm);
int vm_from_manifest(struct cvmm_daemon *d, json_object *o, struct cvmm_vm **out, char *err,
		     size_t errlen);
/* The manifest as JSON text (malloc'd). Caller holds vm->lock. */
char *vm_manifest_text(struct cvmm_vm *vm, size_t *len);
/* API form (caller holds vm->lock): written as text, or as an object. */
struct jw;
/* fields: NULL for every field, else a comma-separated subset of
 * vm_api_fields (check it with vm_check_fields first). */
void vm_write_api(struct cvmm_vm *vm, struct jw *w, const char *fields);
/* The members only, without the braces (plugins' parts go after them). */
void vm_write_api_members(struct cvmm_vm *vm, struct jw *w, const char *fields);
extern const char *const vm_api_fields[];
int vm_check_fields(const char *fields, char *err, size_t errlen);
json_object *vm_to_api(struct cvmm_vm *vm);

/* Events: appended to <data_dir>/events.log (one JSON object a line), which
 * is where they are read from: a VM's history costs no daemon memory. Each
 * is also published on the daemon's live feed (events.c, GET /v1/events).
 * */
void vm_event(struct cvmm_vm *vm, const char *type, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The newest `max` events, oldest first: {"events": [...]}. */
json_object *vm_events_json(const struct cvmm_vm *vm, int max);

/* Plugin key/value state (caller holds vm->lock). */
const char *vm_kv_get(struct cvmm_vm *vm, const char *plugin, const char *key);
void vm_kv_set(struct cvmm_vm *vm, const char *plugin, const char *key, const char *value);

const char *vm_nic_param(struct cvmm_vm *vm, int i, const char *key);

/* A plugin-owned request field's value (JSON text), or NULL. Fixed after create. */
const char *vm_field_get(struct cvmm_vm *vm, const char *name);
void vm_field_set(struct cvmm_vm *vm, const char *name, const char *json);

/* Writes the manifest (atomic, fsync'd) from a snapshot of the VM taken
 * under vm->lock; serialised by vm->io_lock. Any thread but the loop's;
 * no lock held. 0 when the VM's folder is gone (removed). */
int vm_save(struct cvmm_vm *vm);
/* Before a start uses the VM's disk (<data_dir>/disk.qcow2), on a worker:
 * with the disk made, refuses (-ESTALE, err says which image and what
 * changed) when the image's disk file is no longer the one recorded;
 * without it (or with nothing recorded: a VM older than the record),
 * records the file there now, and refuses a disk_gb below its size. */
int vm_base_check(struct cvmm_vm *vm, const struct image *img, char *err, size_t errlen);
/* A snapshot name: 1-64 of [A-Za-z0-9._-], a letter or digit first. */
bool vm_snapshot_name_valid(const char *name);
/* The file of a volume cvmm made: <data_dir>/vol-<name>.qcow2; the path
 * of a source. */
int vm_volume_path(const struct cvmm_vm *vm, const struct vm_volume *v, char *out, size_t len);
/* A MAC as the API accepts it: aa:bb:cc:dd:ee:ff, unicast, not all zero. */
bool vm_mac_valid(const char *mac);

#endif
