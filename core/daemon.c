/*
 * daemon: see daemon.h. The loop thread owns watchers and the API; worker
 * threads own lifecycle jobs; d->lock guards what both read.
 */
#include "daemon.h"
#include "channel.h"
#include "api.h"
#include "events.h"
#include "job.h"
#include "loopapi.h"
#include "metrics.h"
#include "registry.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* ---- loop calls from other threads ---- */

static void wake_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	struct cvmm_daemon *d = w->data;
	pthread_mutex_lock(&d->call_lock);
	struct loop_call *c = d->calls;
	d->calls = d->calls_tail = NULL;
	pthread_mutex_unlock(&d->call_lock);
	while (c) {
		struct loop_call *n = c->next;
		c->fn(d, c->arg);
		free(c);
		c = n;
	}
}

void daemon_call_on_loop(struct cvmm_daemon *d, void (*fn)(struct cvmm_daemon *, void *), void *arg)
{
	struct loop_call *c = xzalloc(sizeof(*c));
	c->fn = fn;
	c->arg = arg;
	pthread_mutex_lock(&d->call_lock);
	if (d->calls_tail)
		d->calls_tail->next = c;
	else
		d->calls = c;
	d->calls_tail = c;
	pthread_mutex_unlock(&d->call_lock);
	ev_async_send(d->loop, &d->wake);
}

/* ---- VM table ---- */

struct cvmm_vm *daemon_find_vm(struct cvmm_daemon *d, const char *key)
{
	for (int i = 0; i < d->n_vms; i++)
		if (!strcmp(d->vms[i]->id, key) || !strcmp(d->vms[i]->name, key))
			return d->vms[i];
	/* A unique id prefix of at least 8 characters, as `cvmm list` shows. */
	struct cvmm_vm *found = NULL;
	size_t l = strlen(key);
	if (l < 8)
		return NULL;
	for (int i = 0; i < d->n_vms; i++)
		if (!strncmp(d->vms[i]->id, key, l)) {
			if (found)
				return NULL;
			found = d->vms[i];
		}
	return found;
}

void daemon_add_vm(struct cvmm_daemon *d, struct cvmm_vm *vm)
{
	if (d->n_vms == d->cap_vms) {
		d->cap_vms = d->cap_vms ? d->cap_vms * 2 : 64;
		d->vms = realloc(d->vms, sizeof(*d->vms) * (size_t)d->cap_vms);
		if (!d->vms)
			abort();
	}
	d->vms[d->n_vms++] = vm;
}

bool daemon_remove_vm(struct cvmm_daemon *d, struct cvmm_vm *vm)
{
	for (int i = 0; i < d->n_vms; i++)
		if (d->vms[i] == vm) {
			memmove(&d->vms[i], &d->vms[i + 1], sizeof(*d->vms) * (size_t)(d->n_vms - i - 1));
			d->n_vms--;
			return true;
		}
	return false;
}

struct cvmm_vm *daemon_get_vm(struct cvmm_daemon *d, const char *key)
{
	pthread_mutex_lock(&d->lock);
	struct cvmm_vm *vm = daemon_find_vm(d, key);
	if (vm)
		vm_ref(vm);
	pthread_mutex_unlock(&d->lock);
	return vm;
}

struct cvmm_vm **daemon_get_vms(struct cvmm_daemon *d, int *n)
{
	pthread_mutex_lock(&d->lock);
	struct cvmm_vm **a = xzalloc(sizeof(*a) * (size_t)(d->n_vms ? d->n_vms : 1));
	for (int i = 0; i < d->n_vms; i++)
		a[i] = vm_ref(d->vms[i]);
	*n = d->n_vms;
	pthread_mutex_unlock(&d->lock);
	return a;
}

void daemon_put_vms(struct cvmm_vm **vms, int n)
{
	for (int i = 0; i < n; i++)
		vm_unref(vms[i]);
	free(vms);
}

/* ---- accounting ---- */

int daemon_reserve(struct cvmm_daemon *d, struct cvmm_vm *vm, bool fixed_cid, char *err,
		   size_t errlen)
{
	struct cvmm_config *c = d->cfg;
	if (d->used_vcpu + vm->vcpu > (uint32_t)c->max_allocable_vcpu) {
		snprintf(err, errlen,
			 "vcpu: %u requested, %u of %d allocated (cvm.max_allocable_vcpu): %u available",
			 vm->vcpu, d->used_vcpu, c->max_allocable_vcpu,
			 (uint32_t)c->max_allocable_vcpu - d->used_vcpu);
		return -EBUSY;
	}
	if (d->used_memory_mb + vm->memory_mb > c->max_allocable_memory_mb) {
		snprintf(err, errlen,
			 "memory_mb: %llu requested, %llu of %llu allocated (cvm.max_allocable_memory_in_mb): %llu available",
			 (unsigned long long)vm->memory_mb, (unsigned long long)d->used_memory_mb,
			 (unsigned long long)c->max_allocable_memory_mb,
			 (unsigned long long)(c->max_allocable_memory_mb - d->used_memory_mb));
		return -EBUSY;
	}
	uint32_t slot = 0;
	if (fixed_cid) {
		if (vm->cid < c->cid_start || vm->cid >= c->cid_start + c->cid_pool_size ||
		    d->cid_used[vm->cid - c->cid_start]) {
			snprintf(err, errlen, "cid: %u is outside the pool or taken", vm->cid);
			return -EBUSY;
		}
		slot = vm->cid - c->cid_start;
	} else {
		if (d->cids_in_use >= c->cid_pool_size) {
			snprintf(err, errlen,
				 "cid: the pool of %u CIDs from %u (cvm.cid_pool_size) is exhausted: %u in use",
				 c->cid_pool_size, c->cid_start, d->cids_in_use);
			return -EBUSY;
		}
		while (d->cid_used[slot])
			slot++;
		vm->cid = c->cid_start + slot;
	}
	d->cid_used[slot] = 1;
	vm->reserved = true;
	d->cids_in_use++;
	d->used_vcpu += vm->vcpu;
	d->used_memory_mb += vm->memory_mb;
	return 0;
}

void daemon_release(struct cvmm_daemon *d, struct cvmm_vm *vm)
{
	struct cvmm_config *c = d->cfg;
	/* Only what this VM reserved: a VM kept uncounted (limits shrank) must
	 * not free another VM's CID or subtract what it never held. */
	if (!vm->reserved)
		return;
	vm->reserved = false;
	if (vm->cid >= c->cid_start && vm->cid < c->cid_start + c->cid_pool_size &&
	    d->cid_used[vm->cid - c->cid_start]) {
		d->cid_used[vm->cid - c->cid_start] = 0;
		d->cids_in_use--;
		d->used_vcpu -= vm->vcpu;
		d->used_memory_mb -= vm->memory_mb;
	}
}

int daemon_check_ports(struct cvmm_daemon *d, struct cvmm_vm *vm, char *err, size_t errlen)
{
	struct cvmm_config *c = d->cfg;
	if (vm->n_ports && !c->pm_enabled) {
		snprintf(err, errlen, "ports: port mapping is disabled (cvm.port_mapping.enabled = false)");
		return -EINVAL;
	}
	for (int i = 0; i < vm->n_ports; i++) {
		struct cvmm_port_map *p = &vm->ports[i];
		const char *proto = p->protocol == CVMM_PROTO_UDP ? "udp" : "tcp";
		if (strcmp(p->host_address, c->pm_address)) {
			snprintf(err, errlen,
				 "ports[%d].host_address: must be %s (cvm.port_mapping.address), got %s", i,
				 c->pm_address, p->host_address);
			return -EINVAL;
		}
		bool in_range = false;
		for (int r = 0; r < c->n_pm_ranges; r++)
			if (c->pm_ranges[r].protocol == (int)p->protocol &&
			    p->host_port >= c->pm_ranges[r].from && p->host_port <= c->pm_ranges[r].to)
				in_range = true;
		if (!in_range) {
			snprintf(err, errlen,
				 "ports[%d].host_port: %s port %u is outside every cvm.port_mapping.range for %s",
				 i, proto, p->host_port, proto);
			return -EINVAL;
		}
		for (int k = 0; k < i; k++)
			if (vm->ports[k].protocol == p->protocol && vm->ports[k].host_port == p->host_port) {
				snprintf(err, errlen, "ports[%d].host_port: %s port %u is listed twice", i,
					 proto, p->host_port);
				return -EINVAL;
			}
		for (int v = 0; v < d->n_vms; v++) {
			struct cvmm_vm *o = d->vms[v];
			if (o == vm)
				continue;
			for (int k = 0; k < o->n_ports; k++)
				if (o->ports[k].protocol == p->protocol &&
				    o->ports[k].host_port == p->host_port) {
					snprintf(err, errlen,
						 "ports[%d].host_port: %s port %u is already mapped by VM '%s'",
						 i, proto, p->host_port, o->name);
					return -EADDRINUSE;
				}
		}
	}
	return 0;
}

/* ---- process watching ---- */

static void pidfd_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct cvmm_vm *vm = w->data;
	struct cvmm_daemon *d = vm->d;
	int pid = vm->watched_pid;
	log_debug("VM '%s': pidfd %d of pid %d: revents %#x", vm->name, w->fd, pid, revents);
	daemon_unwatch(d, vm);
	vm_lock(vm);
	/* A late event for an earlier boot's process changes nothing. */
	bool current = vm->pid == pid;
	vm_unlock(vm);
	if (current)
		jobs_process_gone(d, vm);
}

struct watch_req {
	struct cvmm_vm *vm;
	int fd, pid;
};

static void watch_on_loop(struct cvmm_daemon *d, void *arg)
{
	struct watch_req *w = arg;
	vm_lock(w->vm);
	bool gone = w->vm->gone;
	vm_unlock(w->vm);
	if (gone) { /* removed meanwhile: its watchers are let go already */
		close(w->fd);
		vm_unref(w->vm);
		free(w);
		return;
	}
	daemon_unwatch(d, w->vm);
	w->vm->pidfd = w->fd;
	w->vm->watched_pid = w->pid;
	ev_io_init(&w->vm->pidfd_watch, pidfd_cb, w->fd, EV_READ);
	w->vm->pidfd_watch.data = w->vm;
	ev_io_start(d->loop, &w->vm->pidfd_watch);
	vm_unref(w->vm); /* the table's reference keeps it while watched */
	free(w);
}

int daemon_watch_pid(struct cvmm_daemon *d, struct cvmm_vm *vm, int pid)
{
	int fd = pidfd_open_pid(pid);
	if (fd < 0)
		return fd;
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	vm_lock(vm);
	vm->pid = pid;
	vm_unlock(vm);
	struct watch_req *w = xzalloc(sizeof(*w));
	*w = (struct watch_req){vm_ref(vm), fd, pid};
	daemon_call_on_loop(d, watch_on_loop, w);
	return 0;
}

/* Loop thread. */
static void close_later(struct cvmm_daemon *d, int fd)
{
	if (d->n_closing == d->cap_closing) {
		d->cap_closing = d->cap_closing ? d->cap_closing * 2 : 16;
		d->closing = realloc(d->closing, sizeof(*d->closing) * (size_t)d->cap_closing);
		if (!d->closing)
			abort();
	}
	d->closing[d->n_closing++] = (struct deferred_close){fd, ev_iteration(d->loop)};
	ev_check_start(d->loop, &d->close_check);
}

/* After the next iteration's epoll updates the numbers are libev's no more. */
static void close_check_cb(struct ev_loop *loop, ev_check *w, int revents)
{
	struct cvmm_daemon *d = w->data;
	unsigned int now = ev_iteration(loop);
	int j = 0;
	for (int i = 0; i < d->n_closing; i++) {
		if (now > d->closing[i].iteration)
			close(d->closing[i].fd);
		else
			d->closing[j++] = d->closing[i];
	}
	d->n_closing = j;
	if (!j)
		ev_check_stop(loop, w);
}

void daemon_unwatch(struct cvmm_daemon *d, struct cvmm_vm *vm)
{
	if (vm->pidfd < 0)
		return;
	ev_io_stop(d->loop, &vm->pidfd_watch);
	close_later(d, vm->pidfd);
	vm->pidfd = -1;
	vm->watched_pid = 0;
}

/* ---- periodic work ---- */

/* A console log over its bound keeps its newest half in console.log.0 and
 * starts over: QEMU writes with O_APPEND, so truncation is safe for it. */
static void rotate_log(struct cvmm_daemon *d, struct cvmm_vm *vm)
{
	char path[600], old[620];
	snprintf(path, sizeof(path), "%s/console.log", vm->data_dir);
	struct stat st;
	uint64_t max = d->cfg->serial_log_max;
	if (stat(path, &st) < 0 || (uint64_t)st.st_size <= max)
		return;
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return;
	size_t keep = (size_t)(max / 2);
	char *buf = malloc(keep ? keep : 1);
	ssize_t n = buf ? pread(fd, buf, keep, st.st_size - (off_t)keep) : -1;
	snprintf(old, sizeof(old), "%s.0", path);
	if (n > 0 && write_file_atomic(old, buf, (size_t)n, 0640) == 0)
		if (ftruncate(fd, 0) < 0)
			log_warn("VM '%s': cannot truncate %s: %s", vm->name, path, strerror(errno));
	free(buf);
	close(fd);
}

/* Belt and braces: a process that vanished without its pidfd firing. */
static void supervise(struct cvmm_daemon *d)
{
	int n;
	struct cvmm_vm **vms = daemon_get_vms(d, &n);
	for (int i = 0; i < n; i++) {
		struct cvmm_vm *vm = vms[i];
		vm_lock(vm);
		int pid = vm->state == VM_RUNNING || vm->state == VM_PAUSED ? vm->pid : 0;
		vm_unlock(vm);
		if (pid > 0 && proc_start_time(pid) == 0) {
			vm_lock(vm);
			bool same = vm->pid == pid;
			vm_unlock(vm);
			if (same)
				jobs_process_gone(d, vm);
		}
	}
	daemon_put_vms(vms, n);
}

static void rotate_logs(struct cvmm_daemon *d)
{
	int n;
	struct cvmm_vm **vms = daemon_get_vms(d, &n);
	for (int i = 0; i < n; i++) {
		vm_lock(vms[i]);
		bool running = vms[i]->state == VM_RUNNING || vms[i]->state == VM_PAUSED;
		vm_unlock(vms[i]);
		if (running)
			rotate_log(d, vms[i]);
	}
	daemon_put_vms(vms, n);
}

static void *house_main(void *arg)
{
	struct cvmm_daemon *d = arg;
	double next_sup = now_mono() + d->cfg->ar_interval, next_rot = now_mono() + 2;
	pthread_mutex_lock(&d->house_lock);
	while (!d->house_quit) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&d->house_cond, &d->house_lock, &ts);
		if (d->house_quit)
			break;
		pthread_mutex_unlock(&d->house_lock);
		double now = now_mono();
		if (now >= next_rot) {
			rotate_logs(d);
			next_rot = now + 2;
		}
		if (now >= next_sup) {
			supervise(d);
			next_sup = now + d->cfg->ar_interval;
		}
		pthread_mutex_lock(&d->house_lock);
	}
	pthread_mutex_unlock(&d->house_lock);
	return NULL;
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct cvmm_daemon *d = w->data;
	if (w->signum == SIGHUP) {
		log_info("SIGHUP: nothing to reload yet; restart the daemon to apply config changes");
		return;
	}
	log_info("signal %d: shutting down (VMs keep running)", w->signum);
	daemon_request_stop(d);
}

/* ---- life cycle of the daemon ---- */

struct cvmm_daemon *daemon_new(struct cvmm_config *cfg, char *err, size_t errlen)
{
	struct cvmm_daemon *d = xzalloc(sizeof(*d));
	d->cfg = cfg;
	/* Not the default loop: libev would then reap every child itself, and
	 * plugins wait for their own helpers (qemu-img, qemu -daemonize). */
	d->loop = ev_loop_new(EVFLAG_AUTO);
	if (!d->loop) {
		snprintf(err, errlen, "cannot create the event loop");
		free(d);
		return NULL;
	}
	pthread_mutex_init(&d->lock, NULL);
	pthread_mutex_init(&d->call_lock, NULL);
	pthread_mutex_init(&d->watch_lock, NULL);
	pthread_mutex_init(&d->house_lock, NULL);
	pthread_mutex_init(&d->adopt_lock, NULL);
	pthread_cond_init(&d->house_cond, NULL);
	d->cid_used = xzalloc(cfg->cid_pool_size);
	d->reg = registry_new(d);
	ev_async_init(&d->wake, wake_cb);
	d->wake.data = d;
	ev_check_init(&d->close_check, close_check_cb);
	d->close_check.data = d;
	ev_async_start(d->loop, &d->wake);
	d->started_at = now_real();
	d->events = events_new(EVENTS_RING, events_first_id(d->started_at));
	d->metrics = metrics_new();
	return d;
}

static int by_created(const void *a, const void *b)
{
	double x = (*(struct cvmm_vm *const *)a)->created, y = (*(struct cvmm_vm *const *)b)->created;
	return x < y ? -1 : x > y;
}

/* What interrupted creates and removes leave behind: a VM folder without
 * a manifest (a create killed before its first write; nobody was told of
 * it), a folder renamed for removal, temp files of interrupted atomic
 * writes. Runtime folders of VMs that do not exist go in daemon_start. */
static void clean_leftovers(const char *dir)
{
	DIR *dh = opendir(dir);
	if (!dh)
		return;
	struct dirent *de;
	while ((de = readdir(dh))) {
		char path[700];
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (!strncmp(de->d_name, ".removed-", 9)) {
			log_info("%s: finishing an interrupted removal", path);
			rm_rf(path);
			continue;
		}
		if (!uuid_valid(de->d_name))
			continue;
		char mpath[800];
		snprintf(mpath, sizeof(mpath), "%s/manifest.json", path);
		if (!path_exists(mpath)) {
			log_info("%s: no manifest (an interrupted create); removed", path);
			rm_rf(path);
			continue;
		}
		DIR *vh = opendir(path);
		struct dirent *ve;
		while (vh && (ve = readdir(vh)))
			if (strstr(ve->d_name, ".tmp.")) {
				char tpath[1000];
				snprintf(tpath, sizeof(tpath), "%s/%s", path, ve->d_name);
				unlink(tpath);
			}
		if (vh)
			closedir(vh);
	}
	closedir(dh);
}

static int load_vms(struct cvmm_daemon *d)
{
	char dir[600];
	snprintf(dir, sizeof(dir), "%s/vms", d->cfg->data_dir);
	clean_leftovers(dir);
	DIR *dh = opendir(dir);
	if (!dh)
		return errno == ENOENT ? 0 : -errno;
	struct dirent *de;
	int n = 0;
	while ((de = readdir(dh))) {
		if (!uuid_valid(de->d_name))
			continue;
		char path[700], *text = NULL, err[256];
		snprintf(path, sizeof(path), "%s/%s/manifest.json", dir, de->d_name);
		if (read_file(path, &text, NULL, 1 << 20) < 0) {
			log_warn("%s: unreadable, skipped", path);
			continue;
		}
		json_object *o = json_tokener_parse(text);
		free(text);
		struct cvmm_vm *vm = NULL;
		if (!o || vm_from_manifest(d, o, &vm, err, sizeof(err)) < 0) {
			log_error("%s: not a valid manifest (%s); skipped, left in place", path,
				  o ? err : "not JSON");
			json_object_put(o);
			continue;
		}
		json_object_put(o);
		/* Its removal (or the undo of its create) resumes in op_adopt: until
		 * then it is being removed, and requests for it get 409. */
		vm->removing = vm->state == VM_REMOVING || !vm->defined_ok;
		pthread_mutex_lock(&d->lock);
		if (strcmp(vm->id, de->d_name) || daemon_find_vm(d, vm->name)) {
			pthread_mutex_unlock(&d->lock);
			log_error("%s: id or name clashes with another VM; skipped", path);
			vm_free(vm);
			continue;
		}
		char err2[512];
		if (daemon_reserve(d, vm, true, err2, sizeof(err2)) < 0)
			log_warn("VM '%s': %s (limits changed?); kept, but not counted", vm->name, err2);
		daemon_add_vm(d, vm);
		pthread_mutex_unlock(&d->lock);
		n++;
	}
	closedir(dh);
	/* Listed in creation order, as before the restart. */
	pthread_mutex_lock(&d->lock);
	if (d->n_vms > 1)
		qsort(d->vms, (size_t)d->n_vms, sizeof(*d->vms), by_created);
	pthread_mutex_unlock(&d->lock);
	return n;
}

/* <run_path>/vms/<id> of a VM that does not exist: left by a removal or a
 * stop the daemon did not live to finish. */
static void clean_run_dirs(struct cvmm_daemon *d)
{
	char dir[600];
	snprintf(dir, sizeof(dir), "%s/vms", d->cfg->run_path);
	DIR *dh = opendir(dir);
	if (!dh)
		return;
	struct dirent *de;
	while ((de = readdir(dh))) {
		if (!uuid_valid(de->d_name))
			continue;
		struct cvmm_vm *vm = daemon_get_vm(d, de->d_name);
		if (!vm) {
			char path[700];
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			log_info("%s: runtime folder of no VM; removed", path);
			rm_rf(path);
		}
		vm_unref(vm);
	}
	closedir(dh);
}

int daemon_start(struct cvmm_daemon *d, char *err, size_t errlen)
{
	struct cvmm_config *c = d->cfg;
	int r;
	if ((r = mkdir_p(c->run_path, 0755)) < 0 || (r = mkdir_p(c->data_dir, 0750)) < 0) {
		snprintf(err, errlen, "cannot create %s or %s: %s", c->run_path, c->data_dir,
			 strerror(-r));
		return r;
	}
	char vmdir[600];
	snprintf(vmdir, sizeof(vmdir), "%s/vms", c->data_dir);
	mkdir_p(vmdir, 0750);
	if ((r = registry_load_all(d->reg, err, errlen)) < 0)
		return r;
	if (!registry_backend(d->reg, c->default_backend)) {
		snprintf(err, errlen,
			 "%s: cvm.backend: no loaded plugin provides backend '%s' (add it to plugins)",
			 c->path, c->default_backend);
		return -ENOENT;
	}
	r = load_vms(d);
	if (r < 0) {
		snprintf(err, errlen, "cannot read %s: %s", vmdir, strerror(-r));
		return r;
	}
	log_info("%d VMs in %s", r, vmdir);
	clean_run_dirs(d);
	d->jobs = jobs_new(d, c->workers);
	if (!d->no_api && (r = api_open(d, err, errlen)) < 0)
		return r;
	/* Re-adopt what was running; resume what was interrupted, towards each
	 * VM's desired state (op_adopt). */
	int n;
	struct cvmm_vm **vms = daemon_get_vms(d, &n);
	pthread_mutex_lock(&d->adopt_lock);
	d->adopting = xzalloc(sizeof(*d->adopting) * (size_t)(n ? n : 1));
	for (int i = 0; i < n; i++) {
		struct cvmm_vm *vm = vms[i];
		vm_lock(vm);
		enum vm_state st = vm->state;
		bool todo = st == VM_STARTING || st == VM_RUNNING || st == VM_STOPPING || st == VM_PAUSED ||
			    st == VM_REMOVING || !vm->defined_ok || vm->want_running;
		vm_unlock(vm);
		if (todo) {
			struct job *j = job_new(JOB_ADOPT, vm);
			d->adopting[d->n_adopting++] = job_ref(j);
			jobs_submit(d, j);
		}
	}
	pthread_mutex_unlock(&d->adopt_lock);
	daemon_put_vms(vms, n);
	if (!d->no_signals) { /* an embedder's process: its signals are its own */
		ev_signal_init(&d->sig_int, signal_cb, SIGINT);
		ev_signal_init(&d->sig_term, signal_cb, SIGTERM);
		ev_signal_init(&d->sig_hup, signal_cb, SIGHUP);
		d->sig_int.data = d->sig_term.data = d->sig_hup.data = d;
		ev_signal_start(d->loop, &d->sig_int);
		ev_signal_start(d->loop, &d->sig_term);
		ev_signal_start(d->loop, &d->sig_hup);
	}
	if (pthread_create(&d->house, NULL, house_main, d) == 0)
		d->house_running = true;
	return 0;
}

void daemon_run(struct cvmm_daemon *d)
{
	ev_run(d->loop, 0);
}

void daemon_wait_adopted(struct cvmm_daemon *d)
{
	pthread_mutex_lock(&d->adopt_lock);
	for (int i = 0; i < d->n_adopting; i++) {
		job_wait(d, d->adopting[i]);
		job_unref(d->adopting[i]);
	}
	d->n_adopting = 0;
	pthread_mutex_unlock(&d->adopt_lock);
}

void daemon_request_stop(struct cvmm_daemon *d)
{
	d->stopping = true;
	ev_break(d->loop, EVBREAK_ALL);
}

void daemon_free(struct cvmm_daemon *d)
{
	if (!d)
		return;
	if (d->house_running) {
		pthread_mutex_lock(&d->house_lock);
		d->house_quit = true;
		pthread_cond_signal(&d->house_cond);
		pthread_mutex_unlock(&d->house_lock);
		pthread_join(d->house, NULL);
	}
	/* Jobs in flight finish (their undo must not be cut short); queued ones
	 * were persisted as intents and resume at the next start: their waiting
	 * requests are answered now, before the API goes. */
	int n = 0;
	struct cvmm_vm **vms = NULL;
	if (d->jobs) {
		jobs_stop(d->jobs);
		vms = daemon_get_vms(d, &n);
		for (int i = 0; i < n; i++) {
			jobs_drain(d->jobs, vms[i]);
			/* The VMs keep running; their channels resume at the next
			 * start's adoption. */
			channel_detach(vms[i]);
		}
		daemon_put_vms(vms, n);
	}
	api_close(d);
	if (d->jobs) /* it started: plugins hear that it stops (not after --check-config) */
		registry_notify(d->reg, CVMM_EV_DAEMON_STOP);
	wake_cb(d->loop, &d->wake, 0); /* loop calls still queued hold references */
	loopapi_free_all(d);
	/* Signals belong to one loop at a time: an embedder that starts a new
	 * daemon in the same process needs them free. */
	ev_signal_stop(d->loop, &d->sig_int);
	ev_signal_stop(d->loop, &d->sig_term);
	ev_signal_stop(d->loop, &d->sig_hup);
	for (int i = 0; i < d->n_vms; i++) {
		daemon_unwatch(d, d->vms[i]);
		ev_timer_stop(d->loop, &d->vms[i]->restart_timer);
		vm_unref(d->vms[i]);
	}
	for (int i = 0; i < d->n_adopting; i++)
		job_unref(d->adopting[i]);
	free(d->adopting);
	jobs_free(d->jobs);
	d->jobs = NULL;
	ev_check_stop(d->loop, &d->close_check);
	for (int i = 0; i < d->n_closing; i++)
		close(d->closing[i].fd);
	free(d->closing);
	free(d->vms);
	free(d->cid_used);
	registry_free(d->reg);
	ev_loop_destroy(d->loop);
	pthread_mutex_destroy(&d->lock);
	pthread_mutex_destroy(&d->call_lock);
	pthread_mutex_destroy(&d->watch_lock);
	pthread_mutex_destroy(&d->house_lock);
	pthread_mutex_destroy(&d->adopt_lock);
	pthread_cond_destroy(&d->house_cond);
	events_free(d->events); /* the API, its only reader, is closed */
	metrics_free(d->metrics);
	free(d);
}
