/*
 * daemon: the core context (struct cvmm_daemon): config, loop, VM table and
 * resource accounting, plugin registry, job pool and API. This is also the
 * embedding interface of libcvmm-core: new, run, stop, free.
 */
#ifndef CVMM_DAEMON_H
#define CVMM_DAEMON_H

#include "config.h"
#include "vm.h"

#include <ev.h>
#include <pthread.h>
#include <stdbool.h>

struct registry;
struct jobs;
struct api;

struct loop_call {
	void (*fn)(struct cvmm_daemon *d, void *arg);
	void *arg;
	struct loop_call *next;
};

struct cvmm_daemon {
	struct cvmm_config *cfg;
	struct ev_loop *loop;

	pthread_mutex_t lock; /* the VM table and the accounting only: no I/O under it */
	struct cvmm_vm **vms;
	int n_vms, cap_vms;
	uint32_t used_vcpu;
	uint64_t used_memory_mb;
	uint8_t *cid_used; /* cid_pool_size bytes */
	uint32_t cids_in_use;

	struct registry *reg;
	struct jobs *jobs;
	struct api *api;

	/* Work handed to the loop from other threads. */
	pthread_mutex_t call_lock;
	struct loop_call *calls, *calls_tail;
	ev_async wake;

	/* Descriptors of stopped watchers, closed one loop iteration later:
	 * libev may still name the number in its next epoll update, and
	 * another thread may have been given the same number by then. */
	struct deferred_close {
		int fd;
		unsigned int iteration;
	} *closing;
	int n_closing, cap_closing;
	ev_check close_check;

	/* Plugin fd watches and timers (loopapi.c). */
	pthread_mutex_t watch_lock;
	struct lwatch *watches;
	int next_watch_id;

	ev_signal sig_int, sig_term, sig_hup;
	/* Housekeeping off the loop: console-log bounds every 2 s, missed exits
	 * every cvm.auto_restart.interval (both read files). */
	pthread_t house;
	bool house_running, house_quit;
	pthread_mutex_t house_lock;
	pthread_cond_t house_cond;
	bool stopping;
	double started_at;

	/* Set before daemon_start by an embedder (cvmm.h): no API listener,
	 * no SIGINT/SIGTERM/SIGHUP watchers (the process is the embedder's). */
	bool no_api, no_signals;
	/* The re-adoption jobs daemon_start queued, until daemon_wait_adopted. */
	pthread_mutex_t adopt_lock;
	struct job **adopting;
	int n_adopting;
	/* The live event feed (events.c) and the metrics (metrics.c). */
	struct events *events;
	struct metrics *metrics;
};

struct cvmm_daemon *daemon_new(struct cvmm_config *cfg, char *err, size_t errlen);
/* Loads plugins, re-adopts VMs, opens the API. */
int daemon_start(struct cvmm_daemon *d, char *err, size_t errlen);
void daemon_run(struct cvmm_daemon *d);
/* Blocks until the re-adoption jobs daemon_start queued have finished
 * (every VM brought to its desired state: adopted, resumed or undone); any
 * thread but the loop's, which must run meanwhile (a backend may wait for
 * its events). systemd's READY=1 is sent after it (cvmmd.c). */
void daemon_wait_adopted(struct cvmm_daemon *d);
void daemon_request_stop(struct cvmm_daemon *d);
void daemon_free(struct cvmm_daemon *d);

/* Runs fn(d, arg) on the loop thread soon; any thread. */
void daemon_call_on_loop(struct cvmm_daemon *d, void (*fn)(struct cvmm_daemon *, void *), void *arg);

/* VM table; caller holds d->lock. The table holds one reference to each
 * VM: add passes the caller's reference to the table; remove hands the
 * table's reference back (true when vm was there). */
struct cvmm_vm *daemon_find_vm(struct cvmm_daemon *d, const char *id_or_name);
void daemon_add_vm(struct cvmm_daemon *d, struct cvmm_vm *vm);
bool daemon_remove_vm(struct cvmm_daemon *d, struct cvmm_vm *vm);
/* Looks a VM up and returns a reference to it (vm_unref), or NULL. */
struct cvmm_vm *daemon_get_vm(struct cvmm_daemon *d, const char *id_or_name);
/* References to every VM in table order; *n set. Free with daemon_put_vms. */
struct cvmm_vm **daemon_get_vms(struct cvmm_daemon *d, int *n);
void daemon_put_vms(struct cvmm_vm **vms, int n);

/* Accounting; caller holds d->lock. reserve checks limits and the pool,
 * writing the numbers into err; -EBUSY when over a limit. */
int daemon_reserve(struct cvmm_daemon *d, struct cvmm_vm *vm, bool fixed_cid, char *err,
		   size_t errlen);
void daemon_release(struct cvmm_daemon *d, struct cvmm_vm *vm);
/* Port conflicts and port_mapping rules against every other VM. */
int daemon_check_ports(struct cvmm_daemon *d, struct cvmm_vm *vm, char *err, size_t errlen);

/* Watches pid for vm on the loop; any thread. */
int daemon_watch_pid(struct cvmm_daemon *d, struct cvmm_vm *vm, int pid);
void daemon_unwatch(struct cvmm_daemon *d, struct cvmm_vm *vm); /* loop thread */

#endif
