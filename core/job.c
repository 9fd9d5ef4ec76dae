/*
 * job: see job.h. Jobs run plugin code, which blocks, so they never run on
 * the loop thread. What they change in a VM is changed under vm->lock and
 * written to disk outside it; what must happen on the loop afterwards (arm a
 * restart timer, watch a pid, let go of a removed VM's watchers) is handed
 * over with daemon_call_on_loop(), each call holding its own VM reference.
 *
 * Persistence: the desired state is written before the work that moves
 * towards it (by the API request, or by the job itself), and the outcome
 * after it, so a start writes its manifest twice: its intent, and running
 * (with the pid). A daemon killed anywhere in between finds the intent at
 * its next start and resumes (daemon.c, op_adopt).
 */
#include "job.h"
#include "channel.h"
#include "daemon.h"
#include "image.h"
#include "metrics.h"
#include "registry.h"
#include "spec.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

struct jobs {
	struct cvmm_daemon *d;
	pthread_mutex_t mu;
	pthread_cond_t work; /* a VM became ready, or quit */
	pthread_cond_t done; /* a job finished */
	struct cvmm_vm *ready_head, *ready_tail; /* VMs whose head job may run */
	int running, queued;
	bool quit;
	int n_threads;
	pthread_t *threads;
};

struct job *job_new(enum job_op op, struct cvmm_vm *vm)
{
	struct job *j = xzalloc(sizeof(*j));
	j->op = op;
	j->vm = vm_ref(vm);
	j->refs = 1;
	j->timeout = 30;
	return j;
}

struct job *job_ref(struct job *j)
{
	__atomic_add_fetch(&j->refs, 1, __ATOMIC_RELAXED);
	return j;
}

void job_unref(struct job *j)
{
	if (j && __atomic_sub_fetch(&j->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		vm_unref(j->vm);
		free(j);
	}
}

/* ---- small helpers (worker thread) ---- */

static bool is_active(enum vm_state s)
{
	return s == VM_STARTING || s == VM_RUNNING || s == VM_STOPPING || s == VM_PAUSED;
}

/* Running, frozen or not. */
static bool is_up(enum vm_state s)
{
	return s == VM_RUNNING || s == VM_PAUSED;
}

/* Moves vm to st (reason NULL: keep the reason), records the change as an
 * event, and writes the manifest when save is set. */
static void set_state(struct cvmm_vm *vm, enum vm_state st, const char *reason, bool save)
{
	vm_lock(vm);
	enum vm_state old = vm->state;
	vm->state = st;
	if (reason)
		vm_set_reason(vm, reason);
	vm_unlock(vm);
	if (old != st)
		vm_event(vm, "state", "%s -> %s%s%s", vm_state_name(old), vm_state_name(st),
			 reason && *reason ? ": " : "", reason ? reason : "");
	if (save)
		vm_save(vm);
}

/* The failing step's message, or a generic one naming what failed. */
static void fail_msg(struct cvmm_vm *vm, int rc, const char *what)
{
	vm_lock(vm);
	if (vm->errbuf && !vm->errbuf[0])
		snprintf(vm->errbuf, VM_ERRBUF_LEN, "%s failed: %s", what, strerror(-rc));
	vm_unlock(vm);
}

static void set_err(struct cvmm_vm *vm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(struct cvmm_vm *vm, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vm_lock(vm);
	if (vm->errbuf)
		vsnprintf(vm->errbuf, VM_ERRBUF_LEN, fmt, ap);
	vm_unlock(vm);
	va_end(ap);
}


/* ---- bounded plugin calls ----
 * Every plugin step runs on a thread of its own while the worker waits at
 * most cvm.hook_timeout for it: a plugin that hangs fails its step, which is
 * then undone like any failure, instead of holding the VM (and a worker)
 * forever. The abandoned thread keeps its own VM reference and, when the
 * plugin finally returns, frees what it was given; the spec it was working
 * on becomes its own (the job no longer needs a spec after a failure). */

enum call_kind { CALL_HOOK, CALL_NET_DEFINE, CALL_NET_SETUP, CALL_NET_UNDEFINE, CALL_NET_TEARDOWN };

struct call {
	enum call_kind kind;
	struct reg_hook *hook;
	struct reg_netmode *m;
	uint32_t ev, nic, n_ports;
	const struct cvmm_port_map *ports[VM_MAX_PORTS];
	struct cvmm_vm *vm;
	struct cvmm_spec *spec;
	int rc;
	int state; /* 0 running, 1 returned, 2 abandoned by the job */
	pthread_mutex_t mu;
	pthread_cond_t cond;
};

static int call_run(struct call *c)
{
	switch (c->kind) {
	case CALL_HOOK:
		return c->hook->fn(c->hook->data, c->vm, c->ev, c->spec);
	case CALL_NET_DEFINE:
		return c->m->ops.define ? c->m->ops.define(c->m->data, c->vm, c->nic, c->ports, c->n_ports)
					: 0;
	case CALL_NET_SETUP:
		return c->m->ops.setup ? c->m->ops.setup(c->m->data, c->vm, c->nic, c->spec, c->ports,
							 c->n_ports)
				       : 0;
	case CALL_NET_UNDEFINE:
		return c->m->ops.undefine ? c->m->ops.undefine(c->m->data, c->vm, c->nic) : 0;
	case CALL_NET_TEARDOWN:
		return c->m->ops.teardown ? c->m->ops.teardown(c->m->data, c->vm, c->nic) : 0;
	}
	return -EINVAL;
}

static void call_free(struct call *c)
{
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cond);
	vm_unref(c->vm);
	free(c);
}

/* Abandoned calls still inside a plugin: the daemon waits a little for them
 * before it unloads anything at shutdown. */
static int calls_abandoned;

/* Every op has its name (the metrics' label, the API's "job"): the build
 * fails when one is added without. */
static const char *const op_names[] = {
    [JOB_DEFINE] = "define",   [JOB_START] = "start",   [JOB_STOP] = "stop",
    [JOB_RESTART] = "restart", [JOB_REMOVE] = "remove", [JOB_EXITED] = "exited",
    [JOB_ADOPT] = "adopt",     [JOB_PAUSE] = "pause",   [JOB_RESUME] = "resume",
    [JOB_SNAPSHOT] = "snapshot", [JOB_RESIZE] = "resize"};
_Static_assert(sizeof(op_names) / sizeof(op_names[0]) == JOB_N_OPS, "a job op without a name");

/* What the API shows of vm's queue; under js->mu after any change to it. */
static void show_queue(struct cvmm_vm *vm)
{
	int n = 0;
	for (const struct job *j = vm->jq_head; j; j = j->next)
		n++;
	atomic_store(&vm->jobs_waiting, n);
}

static void *call_thread(void *arg)
{
	struct call *c = arg;
	int rc = call_run(c);
	pthread_mutex_lock(&c->mu);
	c->rc = rc;
	bool abandoned = c->state == 2;
	c->state = 1;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->mu);
	if (abandoned) {
		log_warn("VM '%s': a plugin step that overran cvm.hook_timeout returned (%d) "
			 "after its job gave up on it",
			 c->vm->name, rc);
		spec_free(c->spec);
		call_free(c);
		__atomic_sub_fetch(&calls_abandoned, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

/* Runs c (heap, filled in) bounded by cvm.hook_timeout. On a timeout
 * returns -ETIMEDOUT, and *specp (if the call had the spec) is handed to the
 * abandoned call: the caller's pointer is cleared. */
static const char *event_name(uint32_t ev);

/* The plugin a call runs, for the metrics. */
static const char *call_plugin(const struct call *c)
{
	const struct cvmm_plugin *p = c->kind == CALL_HOOK ? c->hook->plugin : c->m->plugin;
	return p ? p->name : "?";
}

static int call_bounded(struct cvmm_daemon *d, struct call *c, struct cvmm_spec **specp,
			const char *what)
{
	const char *plugin = call_plugin(c), *step = event_name(c->ev);
	double t0 = now_mono();
	pthread_mutex_init(&c->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cond, &ca);
	pthread_condattr_destroy(&ca);
	vm_ref(c->vm);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_t t;
	int e = pthread_create(&t, &attr, call_thread, c);
	pthread_attr_destroy(&attr);
	if (e) { /* no thread to spare: run it here, unbounded */
		int rc = call_run(c);
		call_free(c);
		metrics_step(d->metrics, plugin, step, now_mono() - t0, rc < 0);
		return rc;
	}
	struct timespec dl;
	clock_gettime(CLOCK_MONOTONIC, &dl);
	double to = d->cfg->hook_timeout > 0 ? d->cfg->hook_timeout : 300;
	dl.tv_sec += (time_t)to;
	dl.tv_nsec += (long)((to - (double)(time_t)to) * 1e9);
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&c->mu);
	while (c->state == 0)
		if (pthread_cond_timedwait(&c->cond, &c->mu, &dl) == ETIMEDOUT)
			break;
	if (c->state == 0) {
		c->state = 2;
		__atomic_add_fetch(&calls_abandoned, 1, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&c->mu);
		if (specp && c->spec)
			*specp = NULL;
		else
			c->spec = NULL;
		set_err(c->vm, "%s did not finish within %g s (cvm.hook_timeout)", what, to);
		log_error("VM '%s': %s did not finish within %g s (cvm.hook_timeout); undoing", c->vm->name,
			  what, to);
		metrics_step(d->metrics, plugin, step, now_mono() - t0, true);
		return -ETIMEDOUT;
	}
	int rc = c->rc;
	pthread_mutex_unlock(&c->mu);
	call_free(c);
	metrics_step(d->metrics, plugin, step, now_mono() - t0, rc < 0);
	return rc;
}

static struct call *call_new(enum call_kind kind, struct cvmm_vm *vm, uint32_t ev)
{
	struct call *c = xzalloc(sizeof(*c));
	c->kind = kind;
	c->vm = vm;
	c->ev = ev;
	return c;
}

static const char *event_name(uint32_t ev)
{
	static const char *const names[] = {
	    [CVMM_EV_DEFINE] = "define",     [CVMM_EV_UNDEFINE] = "undefine",
	    [CVMM_EV_PREPARE] = "prepare",   [CVMM_EV_CLEANUP] = "cleanup",
	    [CVMM_EV_PRE_START] = "pre_start", [CVMM_EV_POST_STOP] = "post_stop",
	    [CVMM_EV_STARTED] = "started",   [CVMM_EV_STOPPING] = "stopping",
	};
	return ev < ARRAY_SIZE(names) && names[ev] ? names[ev] : "event";
}

/* ---- stages ---- */

#define MAX_STEPS 64

static int undo_event(uint32_t ev)
{
	switch (ev) {
	case CVMM_EV_DEFINE:
		return CVMM_EV_UNDEFINE;
	case CVMM_EV_PREPARE:
		return CVMM_EV_CLEANUP;
	case CVMM_EV_PRE_START:
		return CVMM_EV_POST_STOP;
	case CVMM_EV_STARTED:
		return CVMM_EV_STOPPING;
	}
	return 0;
}

/* The NIC that carries the VM's port mappings: the first whose mode can. */
static int ports_nic(struct cvmm_daemon *d, struct cvmm_vm *vm)
{
	for (int i = 0; i < vm->n_nics; i++) {
		struct reg_netmode *m = registry_netmode(d->reg, vm_nic_param(vm, i, "mode"));
		if (m && m->ops.can_map_ports)
			return i;
	}
	return -1;
}

static int netmode_do(struct cvmm_daemon *d, struct cvmm_vm *vm, uint32_t ev, int i,
		      struct cvmm_spec **specp)
{
	struct reg_netmode *m = registry_netmode(d->reg, vm_nic_param(vm, i, "mode"));
	if (!m) {
		set_err(vm, "networks[%d]: network mode '%s' is not loaded", i,
			vm_nic_param(vm, i, "mode"));
		return -ENOENT;
	}
	if (ev == CVMM_EV_DEFINE && i == 0 && vm->n_ports && ports_nic(d, vm) < 0) {
		set_err(vm, "ports: none of this VM's networks can carry port mappings (mode '%s' cannot)",
			vm_nic_param(vm, 0, "mode"));
		return -EINVAL;
	}
	struct call *c = call_new(ev == CVMM_EV_DEFINE ? CALL_NET_DEFINE : CALL_NET_SETUP, vm, ev);
	c->m = m;
	c->nic = (uint32_t)i;
	if (ports_nic(d, vm) == i)
		for (int k = 0; k < vm->n_ports; k++)
			c->ports[c->n_ports++] = &vm->ports[k];
	if (ev == CVMM_EV_PRE_START)
		c->spec = *specp;
	char what[96];
	snprintf(what, sizeof(what), "networks[%d] (mode %s) at %s", i, m->name, event_name(ev));
	return call_bounded(d, c, specp, what);
}

static void netmode_undo(struct cvmm_daemon *d, struct cvmm_vm *vm, uint32_t undo, int i)
{
	struct reg_netmode *m = registry_netmode(d->reg, vm_nic_param(vm, i, "mode"));
	if (!m)
		return;
	struct call *c = call_new(undo == CVMM_EV_UNDEFINE ? CALL_NET_UNDEFINE : CALL_NET_TEARDOWN, vm,
				  undo);
	c->m = m;
	c->nic = (uint32_t)i;
	char what[96];
	snprintf(what, sizeof(what), "networks[%d] (mode %s) at %s", i, m->name, event_name(undo));
	int rc = call_bounded(d, c, NULL, what);
	if (rc < 0)
		log_warn("VM '%s': networks[%d] (%s): undo failed: %s", vm->name, i, m->name,
			 strerror(-rc));
}

static bool has_netmode_step(uint32_t ev)
{
	return ev == CVMM_EV_DEFINE || ev == CVMM_EV_PRE_START;
}

/*
 * Undo a stage. ran_plugins: when non-NULL (a partial undo after a failure),
 * only hooks of those plugins run, and only NICs < ran_nics are torn down;
 * when NULL, everything of the stage is undone.
 */
static void stage_undo(struct cvmm_daemon *d, struct cvmm_vm *vm, uint32_t ev,
		       struct cvmm_plugin **ran_plugins, int n_ran, int ran_nics)
{
	uint32_t undo = (uint32_t)undo_event(ev);
	struct reg_hook *hooks[MAX_STEPS];
	int n = registry_hooks(d->reg, undo, hooks, MAX_STEPS);
	/* Undo hooks run in reverse priority order: last set up, first torn down. */
	for (int i = n - 1; i >= 0; i--) {
		if (ran_plugins) {
			bool ran = false;
			for (int k = 0; k < n_ran; k++)
				if (ran_plugins[k] == hooks[i]->plugin)
					ran = true;
			if (!ran)
				continue;
		}
		struct call *c = call_new(CALL_HOOK, vm, undo);
		c->hook = hooks[i];
		char what[96];
		snprintf(what, sizeof(what), "plugin %s at %s", hooks[i]->plugin->name, event_name(undo));
		int rc = call_bounded(d, c, NULL, what);
		if (rc < 0)
			log_warn("VM '%s': plugin %s: undo of %s failed: %s", vm->name,
				 hooks[i]->plugin->name, event_name(ev), strerror(-rc));
	}
	if (has_netmode_step(ev)) {
		int upto = ran_plugins ? ran_nics : vm->n_nics;
		for (int i = upto - 1; i >= 0; i--)
			netmode_undo(d, vm, undo, i);
	}
}

/* Runs a do-stage; on failure undoes what of it ran (plus the failing step). */
static int stage_do(struct cvmm_daemon *d, struct cvmm_vm *vm, uint32_t ev, struct cvmm_spec **specp)
{
	struct cvmm_plugin *ran[MAX_STEPS];
	int n_ran = 0, nics_done = 0, rc = 0;
	if (has_netmode_step(ev))
		for (; nics_done < vm->n_nics; nics_done++) {
			rc = netmode_do(d, vm, ev, nics_done, specp);
			if (rc < 0) {
				fail_msg(vm, rc, "network setup");
				stage_undo(d, vm, ev, ran, 0, nics_done + 1);
				return rc;
			}
		}
	struct reg_hook *hooks[MAX_STEPS];
	int n = registry_hooks(d->reg, ev, hooks, MAX_STEPS);
	for (int i = 0; i < n; i++) {
		ran[n_ran++] = hooks[i]->plugin;
		struct call *c = call_new(CALL_HOOK, vm, ev);
		c->hook = hooks[i];
		c->spec = specp ? *specp : NULL;
		char what[96];
		snprintf(what, sizeof(what), "plugin %s at %s", hooks[i]->plugin->name, event_name(ev));
		rc = call_bounded(d, c, specp, what);
		if (rc < 0) {
			fail_msg(vm, rc, what);
			if (undo_event(ev))
				stage_undo(d, vm, ev, ran, n_ran, nics_done);
			return rc;
		}
	}
	return 0;
}

static void notify(struct cvmm_daemon *d, struct cvmm_vm *vm, uint32_t ev)
{
	struct reg_hook *hooks[MAX_STEPS];
	int n = registry_hooks(d->reg, ev, hooks, MAX_STEPS);
	for (int i = 0; i < n; i++) {
		struct call *c = call_new(CALL_HOOK, vm, ev);
		c->hook = hooks[i];
		call_bounded(d, c, NULL, hooks[i]->plugin->name);
	}
}

/* ---- the built-in PREPARE work: the VM's disk and the spec skeleton ---- */

static int prepare_disk(struct cvmm_daemon *d, struct cvmm_vm *vm, const struct image *img,
			struct cvmm_spec *spec, bool dry)
{
	if (dry) { /* the disk a start would make, made by nobody */
		if (!img->hda[0] && !vm->disk_gb)
			return 0;
		struct cvmm_spec_disk disk = {.struct_size = sizeof(disk), .format = CVMM_DISK_QCOW2};
		str_copy(disk.id, sizeof(disk.id), "hd0");
		snprintf(disk.path, sizeof(disk.path), "%s/disk.qcow2", vm->data_dir);
		return spec_add_disk(spec, &disk);
	}
	/* The disk overlays the image's file by path: refuse a changed one. */
	int brc = vm_base_check(vm, img, vm->errbuf, VM_ERRBUF_LEN);
	if (brc < 0)
		return brc;
	if (!img->hda[0] && !vm->disk_gb)
		return 0;
	char path[600], size[32], backing[700], out[1024];
	snprintf(path, sizeof(path), "%s/disk.qcow2", vm->data_dir);
	if (!path_exists(path)) {
		/* Created once, on first start: the disk is the VM's, not the boot's. */
		char tmp[620];
		snprintf(tmp, sizeof(tmp), "%s.new", path);
		snprintf(size, sizeof(size), "%uG", vm->disk_gb);
		snprintf(backing, sizeof(backing), "%s", img->hda);
		char *argv[12];
		int a = 0;
		argv[a++] = "qemu-img";
		argv[a++] = "create";
		argv[a++] = "-q";
		argv[a++] = "-f";
		argv[a++] = "qcow2";
		if (img->hda[0]) {
			argv[a++] = "-b";
			argv[a++] = backing;
			argv[a++] = "-F";
			argv[a++] = "qcow2";
		}
		argv[a++] = tmp;
		if (vm->disk_gb)
			argv[a++] = size;
		argv[a] = NULL;
		int rc = run_capture(argv, false, out, sizeof(out));
		if (rc != 0) {
			unlink(tmp);
			set_err(vm, "disk: qemu-img create failed: %s",
				 out[0] ? out : strerror(rc < 0 ? -rc : EIO));
			return rc < 0 ? rc : -EIO;
		}
		if (rename(tmp, path) < 0) {
			int e = -errno;
			unlink(tmp);
			set_err(vm, "disk: %s: %s", path, strerror(-e));
			return e;
		}
	}
	struct cvmm_spec_disk disk = {.struct_size = sizeof(disk), .format = CVMM_DISK_QCOW2};
	str_copy(disk.id, sizeof(disk.id), "hd0");
	str_copy(disk.path, sizeof(disk.path), path);
	return spec_add_disk(spec, &disk);
}

/* The VM's volumes, after its root disk: those cvmm makes are made once,
 * at the first start that needs them (like the root disk), and stay. */
static int prepare_volumes(struct cvmm_vm *vm, struct cvmm_spec *spec, bool dry)
{
	for (int i = 0; i < vm->n_volumes; i++) {
		const struct vm_volume *v = &vm->volumes[i];
		struct cvmm_spec_disk disk = {.struct_size = sizeof(disk),
					      .format = v->raw ? CVMM_DISK_RAW : CVMM_DISK_QCOW2,
					      .readonly = v->readonly};
		snprintf(disk.id, sizeof(disk.id), "vol%d", i);
		if (vm_volume_path(vm, v, disk.path, sizeof(disk.path)) < 0) {
			set_err(vm, "volumes[%d] (%s): path too long", i, v->name);
			return -ENAMETOOLONG;
		}
		if (!dry && v->source && !path_exists(v->source)) {
			set_err(vm, "volumes[%d] (%s): source %s: %s", i, v->name, v->source,
				strerror(ENOENT));
			return -ENOENT;
		}
		if (!dry && !v->source && !path_exists(disk.path)) {
			char tmp[300], size[32], out[1024];
			snprintf(tmp, sizeof(tmp), "%s.new", disk.path);
			snprintf(size, sizeof(size), "%uG", v->size_gb);
			char *argv[] = {"qemu-img", "create", "-q", "-f", "qcow2", tmp, size, NULL};
			int rc = run_capture(argv, false, out, sizeof(out));
			if (rc != 0) {
				unlink(tmp);
				set_err(vm, "volumes[%d] (%s): qemu-img create failed: %s", i, v->name,
					out[0] ? out : strerror(rc < 0 ? -rc : EIO));
				return rc < 0 ? rc : -EIO;
			}
			if (rename(tmp, disk.path) < 0) {
				int e = -errno;
				unlink(tmp);
				set_err(vm, "volumes[%d] (%s): %s: %s", i, v->name, disk.path, strerror(-e));
				return e;
			}
			vm_event(vm, "volume", "made volume '%s' (%u GiB): %s", v->name, v->size_gb,
				 disk.path);
		}
		int rc = spec_add_disk(spec, &disk);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int build_spec(struct cvmm_daemon *d, struct cvmm_vm *vm, struct cvmm_spec **out, bool dry)
{
	struct image img;
	char err[512];
	int rc = image_load(d->cfg->image_path, vm->image, &img, err, sizeof(err));
	if (rc < 0) {
		set_err(vm, "%s", err);
		return rc;
	}
	struct cvmm_spec *s = spec_new();
	struct cvmm_launch_spec *p = &s->pub;
	p->vcpus = vm->vcpu;
	p->memory_mb = vm->memory_mb;
	str_copy(p->name, sizeof(p->name), vm->name);
	str_copy(p->uuid, sizeof(p->uuid), vm->id);
	str_copy(p->kernel, sizeof(p->kernel), img.kernel);
	str_copy(p->initrd, sizeof(p->initrd), img.initrd);
	str_copy(p->cmdline, sizeof(p->cmdline), img.cmdline);
	str_copy(p->bios, sizeof(p->bios), img.bios);
	p->firmware = (uint32_t)img.firmware;
	if (img.firmware == CVMM_FW_UEFI) {
		str_copy(p->firmware_code, sizeof(p->firmware_code), IMAGE_OVMF_CODE);
		if (dry)
			snprintf(p->firmware_vars, sizeof(p->firmware_vars), "%s/" IMAGE_UEFI_VARS_NAME,
				 vm->data_dir);
		else if ((rc = image_uefi_vars(vm->data_dir, p->firmware_vars,
					       sizeof(p->firmware_vars), err, sizeof(err))) < 0) {
			/* Made at DEFINE; made here for a VM defined before its
			 * image said uefi. */
			set_err(vm, "%s", err);
			spec_free(s);
			return rc;
		}
	}
	p->cid = vm->cid;
	snprintf(p->serial_log, sizeof(p->serial_log), "%s/console.log", vm->data_dir);
	str_copy(p->run_dir, sizeof(p->run_dir), vm->run_dir);
	p->serial_log_max = d->cfg->serial_log_max;
	char name_arg[128];
	snprintf(name_arg, sizeof(name_arg), "cvmm.name=%s", vm->name);
	spec_append_cmdline(s, name_arg);
	channel_spec(d, vm, s);
	rc = prepare_disk(d, vm, &img, s, dry);
	if (rc == 0)
		rc = prepare_volumes(vm, s, dry);
	if (rc < 0) {
		spec_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

/* ---- dry run ---- */

int job_plan(struct cvmm_daemon *d, struct cvmm_vm *vm, struct cvmm_spec **out, char *missing,
	     size_t missing_len)
{
	struct cvmm_spec *spec = NULL;
	char errbuf[VM_ERRBUF_LEN] = "";
	vm->errbuf = errbuf; /* nobody else knows this VM: no lock needed */
	missing[0] = 0;
	int rc = build_spec(d, vm, &spec, true);
	for (int i = 0; rc == 0 && i < vm->n_nics; i++) {
		struct reg_netmode *m = registry_netmode(d->reg, vm_nic_param(vm, i, "mode"));
		if (!m) {
			set_err(vm, "networks[%d]: network mode '%s' is not loaded", i,
				vm_nic_param(vm, i, "mode"));
			rc = -ENOENT;
			break;
		}
		if (!m->ops.plan) {
			size_t l = strlen(missing);
			snprintf(missing + l, missing_len - l, "%snetworks[%d] (mode %s)", l ? ", " : "",
				 i, m->name);
			continue;
		}
		const struct cvmm_port_map *ports[VM_MAX_PORTS];
		uint32_t n = 0;
		if (ports_nic(d, vm) == i)
			for (int k = 0; k < vm->n_ports; k++)
				ports[n++] = &vm->ports[k];
		rc = m->ops.plan(m->data, vm, (uint32_t)i, spec, ports, n);
	}
	struct reg_hook *hooks[MAX_STEPS];
	int n = rc == 0 ? registry_hooks(d->reg, CVMM_EV_PLAN, hooks, MAX_STEPS) : 0;
	for (int i = 0; i < n && rc == 0; i++)
		rc = hooks[i]->fn(hooks[i]->data, vm, CVMM_EV_PLAN, spec);
	vm->errbuf = NULL;
	if (rc < 0) {
		spec_free(spec);
		snprintf(missing, missing_len, "%s", errbuf[0] ? errbuf : strerror(-rc));
		return rc;
	}
	*out = spec;
	return 0;
}

/* ---- lifecycle operations (worker thread) ---- */

static struct reg_backend *backend_of(struct cvmm_daemon *d, struct cvmm_vm *vm)
{
	struct reg_backend *b = registry_backend(d->reg, vm->backend);
	if (!b)
		set_err(vm, "backend '%s' is not loaded", vm->backend);
	return b;
}

/* Everything after the VM's process is gone: the undo of the boot. */
static void teardown_boot(struct cvmm_daemon *d, struct cvmm_vm *vm)
{
	channel_detach(vm);
	stage_undo(d, vm, CVMM_EV_PRE_START, NULL, 0, 0);
	stage_undo(d, vm, CVMM_EV_PREPARE, NULL, 0, 0);
	struct reg_backend *b = registry_backend(d->reg, vm->backend);
	if (b && b->ops.cleanup)
		b->ops.cleanup(b->data, vm);
	rm_rf(vm->run_dir);
	vm_lock(vm);
	vm->pid = 0;
	vm_unlock(vm);
}

static int op_start(struct cvmm_daemon *d, struct job *j)
{
	struct cvmm_vm *vm = j->vm;
	struct cvmm_spec *spec = NULL;
	struct reg_backend *b = backend_of(d, vm);
	int rc;
	if (!b)
		return -ENOENT;
	vm_lock(vm);
	/* A stop accepted after this start was queued wins; a VM that still
	 * runs (its stop failed) is not launched a second time. */
	bool superseded = !vm->want_running, running = is_up(vm->state) && !vm->proc_gone;
	vm_unlock(vm);
	if (superseded || running) {
		log_info("VM '%s': start skipped: %s", vm->name,
			 superseded ? "a stop came after it" : "it runs already");
		if (running && !superseded)
			vm_save(vm);
		return 0;
	}
	vm_lock(vm);
	vm->pid = 0;
	vm->proc_gone = false;
	vm->stop_requested = false;
	vm_unlock(vm);
	/* Write 1 of 2: the intent, unless the manifest says "starting"
	 * already (the request wrote it). Nothing of the start may run before
	 * the disk says so: a daemon killed from here on must look for this
	 * boot's processes at its next start. */
	vm_lock(vm);
	bool on_disk = vm->saved_state == VM_STARTING;
	vm_unlock(vm);
	set_state(vm, VM_STARTING, "", !on_disk);
	if ((rc = mkdir_p(vm->run_dir, 0750)) < 0) {
		set_err(vm, "run directory %s: %s", vm->run_dir, strerror(-rc));
		goto fail_prepare;
	}
	/* PREPARE: the core's own part (image, disk) runs first. */
	if ((rc = build_spec(d, vm, &spec, false)) < 0)
		goto fail_prepare;
	if ((rc = stage_do(d, vm, CVMM_EV_PREPARE, &spec)) < 0)
		goto fail_prepare;
	if ((rc = stage_do(d, vm, CVMM_EV_PRE_START, &spec)) < 0)
		goto fail_pre_start;
	if (!b->ops.start) {
		rc = -ENOTSUP;
		set_err(vm, "backend '%s' cannot start VMs", b->name);
		goto fail_launch;
	}
	/* What the plugins built together must hold together (cells cover the
	 * vCPUs, devices sit under ports, ...): said here, with the rule. */
	char why[512];
	if ((rc = spec_check(spec, why, sizeof(why))) < 0) {
		set_err(vm, "launch spec: %s", why);
		goto fail_launch;
	}
	double t0 = now_mono();
	rc = b->ops.start(b->data, vm, &spec->pub);
	metrics_step(d->metrics, b->plugin ? b->plugin->name : b->name, "launch", now_mono() - t0,
		     rc < 0);
	if (rc < 0) {
		fail_msg(vm, rc, "launch");
		goto fail_launch;
	}
	vm_lock(vm);
	vm->started = now_real();
	vm_unlock(vm);
	if ((rc = stage_do(d, vm, CVMM_EV_STARTED, NULL)) < 0) {
		if (b->ops.kill)
			b->ops.kill(b->data, vm);
		goto fail_launch;
	}
	spec_free(spec);
	channel_attach(d, vm);
	/* Write 2 of 2: running, with the pid and what plugins saved. */
	set_state(vm, VM_RUNNING, "", true);
	return 0;

fail_launch:
	stage_undo(d, vm, CVMM_EV_PRE_START, NULL, 0, 0);
fail_pre_start:
	stage_undo(d, vm, CVMM_EV_PREPARE, NULL, 0, 0);
fail_prepare:
	if (b->ops.cleanup)
		b->ops.cleanup(b->data, vm);
	rm_rf(vm->run_dir);
	spec_free(spec);
	vm_lock(vm);
	vm->pid = 0;
	vm->want_running = j->automatic; /* an auto-restart keeps trying */
	char reason[VM_ERRBUF_LEN];
	str_copy(reason, sizeof(reason), vm->errbuf ? vm->errbuf : "");
	vm_unlock(vm);
	set_state(vm, VM_FAILED, reason, true);
	return rc;
}

/* keep_want: part of a restart or a resume: the desired state stays. */
static int do_stop(struct cvmm_daemon *d, struct job *j, bool keep_want)
{
	struct cvmm_vm *vm = j->vm;
	vm_lock(vm);
	enum vm_state st = vm->state;
	if (!keep_want)
		vm->want_running = false;
	vm->stop_requested = true;
	vm_unlock(vm);
	if (!is_active(st)) {
		if (st == VM_EXITED)
			set_state(vm, VM_STOPPED, "", true);
		else if (!j->intent_saved && !keep_want)
			vm_save(vm);
		return 0;
	}
	/* A stop the request recorded needs no write of its own; the stop of
	 * a restart does (the request wrote "running, should run"): a daemon
	 * killed during it must know the VM was stopped on purpose and start
	 * it again at once, not take it for a crash and back off. */
	set_state(vm, VM_STOPPING, "", !j->intent_saved || keep_want);
	stage_undo(d, vm, CVMM_EV_STARTED, NULL, 0, 0);
	struct reg_backend *b = backend_of(d, vm);
	int rc = 0;
	/* A frozen guest cannot act on the power button: a graceful stop of a
	 * paused VM lets it run again first (a kill needs no such thing). */
	bool frozen = st == VM_PAUSED; /* what a failed stop leaves it */
	if (b && frozen && !j->force && b->ops.stop && b->ops.resume) {
		if (b->ops.resume(b->data, vm) < 0)
			log_warn("VM '%s': could not resume the paused VM for its graceful stop; "
				 "the stop will escalate",
				 vm->name);
		else
			frozen = false;
	}
	if (b) {
		if (j->force || !b->ops.stop)
			rc = b->ops.kill ? b->ops.kill(b->data, vm) : -ENOTSUP;
		else
			rc = b->ops.stop(b->data, vm, j->timeout);
	}
	if (rc < 0) {
		metrics_plugin_error(d->metrics, b->plugin ? b->plugin->name : b->name);
		fail_msg(vm, rc, "stop");
		/* The VM may still run: keep it as it is, say why. */
		char reason[VM_ERRBUF_LEN];
		vm_lock(vm);
		str_copy(reason, sizeof(reason), vm->errbuf ? vm->errbuf : "");
		vm_unlock(vm);
		set_state(vm, frozen ? VM_PAUSED : VM_RUNNING, reason, true);
		return rc;
	}
	teardown_boot(d, vm);
	set_state(vm, VM_STOPPED, "", true);
	return 0;
}

/* Decides an automatic restart after an exit or a failed automatic start:
 * records it and sets vm->next_restart; the loop arms the timer. */
static bool plan_restart(struct cvmm_daemon *d, struct cvmm_vm *vm)
{
	struct cvmm_config *c = d->cfg;
	vm_lock(vm);
	if (vm->guest.poweroff && vm->want_running && vm->state == VM_EXITED) {
		/* The guest said it was powering off: its exit was meant (dstack's
		 * shutdown.progress "powering off"). */
		vm->want_running = false;
		vm_unlock(vm);
		vm_event(vm, "auto-restart", "not restarted: the guest reported powering off");
		vm_save(vm);
		return true;
	}
	if (!c->ar_enabled || !vm->want_running || vm->removing ||
	    (vm->state != VM_EXITED && vm->state != VM_FAILED)) {
		vm_unlock(vm);
		return false;
	}
	double now = now_real();
	if (vm->state == VM_EXITED && vm->started > 0 && now - vm->started >= c->ar_reset_window)
		vm->restarts = 0;
	if (vm->restarts >= c->ar_max_retries) {
		vm->want_running = false;
		int n = vm->restarts;
		vm_unlock(vm);
		vm_event(vm, "auto-restart",
			 "gave up after %d restarts (cvm.auto_restart.max_retries = %d)", n,
			 c->ar_max_retries);
		vm_save(vm);
		return true;
	}
	double delay = c->ar_initial_backoff * pow(2.0, vm->restarts);
	if (delay > c->ar_max_backoff)
		delay = c->ar_max_backoff;
	vm->restarts++;
	vm->restarts_auto++;
	vm->next_restart = now + delay;
	int n = vm->restarts;
	vm_unlock(vm);
	vm_event(vm, "auto-restart", "restart %d of at most %d in %.1f s", n, c->ar_max_retries,
		 delay);
	vm_save(vm);
	return true;
}

static int op_exited(struct cvmm_daemon *d, struct job *j)
{
	struct cvmm_vm *vm = j->vm;
	vm_lock(vm);
	bool running = is_up(vm->state) && vm->proc_gone;
	char *why = vm->exit_reason;
	vm->exit_reason = NULL;
	vm_unlock(vm);
	if (why)
		vm_event(vm, "exit", "backend reports the VM ended: %s", why);
	free(why);
	if (!running)
		return 0;
	notify(d, vm, CVMM_EV_EXITED);
	/* Make sure: a process judged gone by mistake must not outlive its
	 * network and files. kill() is a no-op for a process that is gone. */
	struct reg_backend *b = registry_backend(d->reg, vm->backend);
	if (b && b->ops.kill)
		b->ops.kill(b->data, vm);
	teardown_boot(d, vm);
	set_state(vm, VM_EXITED, "the VM's process ended without being asked to", false);
	if (!plan_restart(d, vm))
		vm_save(vm);
	return 0;
}

/* Takes the VM out of the table (worker); the loop then lets go of its
 * watchers and drops the table's reference. */
static void detach_on_loop(struct cvmm_daemon *d, void *arg)
{
	struct cvmm_vm *vm = arg;
	ev_timer_stop(d->loop, &vm->restart_timer);
	daemon_unwatch(d, vm);
	vm_unref(vm); /* the table's */
}

static void drop_from_table(struct cvmm_daemon *d, struct cvmm_vm *vm)
{
	pthread_mutex_lock(&d->lock);
	daemon_release(d, vm);
	bool was = daemon_remove_vm(d, vm);
	pthread_mutex_unlock(&d->lock);
	vm_lock(vm);
	vm->gone = true;
	vm_unlock(vm);
	if (was)
		daemon_call_on_loop(d, detach_on_loop, vm);
}

/* Removes a VM folder: renamed first, so a crash never leaves half of one
 * under its own name (the daemon deletes .removed-* at start). */
static int remove_folder(struct cvmm_daemon *d, struct cvmm_vm *vm)
{
	char trash[700];
	snprintf(trash, sizeof(trash), "%s/vms/.removed-%s", d->cfg->data_dir, vm->id);
	pthread_mutex_lock(&vm->io_lock); /* no manifest or event write in between */
	int rc = rename(vm->data_dir, trash) < 0 && errno != ENOENT ? -errno : 0;
	pthread_mutex_unlock(&vm->io_lock);
	if (rc < 0)
		return rc;
	return rm_rf(trash);
}

/* A UEFI image's VM gets its own variable store with its folder (removed
 * with it): what the guest's firmware writes (boot entries) is the VM's. */
static int uefi_vars_define(struct cvmm_daemon *d, struct cvmm_vm *vm)
{
	struct image img;
	char err[512], path[600];
	int rc = image_load(d->cfg->image_path, vm->image, &img, err, sizeof(err));
	if (rc == 0 && img.firmware == CVMM_FW_UEFI)
		rc = image_uefi_vars(vm->data_dir, path, sizeof(path), err, sizeof(err));
	if (rc < 0)
		set_err(vm, "%s", err);
	return rc;
}

static int op_define(struct cvmm_daemon *d, struct job *j)
{
	struct cvmm_vm *vm = j->vm;
	int rc = mkdir_p(vm->data_dir, 0750);
	if (rc < 0) {
		set_err(vm, "data directory %s: %s", vm->data_dir, strerror(-rc));
		goto fail;
	}
	/* Write 1: the VM exists, not yet defined: a crash from here on is
	 * undone at the next start (defined_ok false). */
	if ((rc = vm_save(vm)) < 0) {
		set_err(vm, "cannot write the manifest: %s", strerror(-rc));
		goto fail;
	}
	if ((rc = uefi_vars_define(d, vm)) < 0 || (rc = stage_do(d, vm, CVMM_EV_DEFINE, NULL)) < 0)
		goto fail;
	vm_lock(vm);
	vm->defined_ok = true;
	vm_unlock(vm);
	vm_event(vm, "define", "defined from image '%s' (%u vCPU, %llu MiB)", vm->image, vm->vcpu,
		 (unsigned long long)vm->memory_mb);
	if ((rc = vm_save(vm)) < 0) {
		set_err(vm, "cannot write the manifest: %s", strerror(-rc));
		stage_undo(d, vm, CVMM_EV_DEFINE, NULL, 0, 0);
		goto fail;
	}
	return 0;
fail:
	remove_folder(d, vm);
	drop_from_table(d, vm);
	return rc;
}

/* Volumes marked "keep" leave the VM's folder before it goes: moved to
 * <data_dir>/volumes/<VM name>-<volume>-<id prefix>.qcow2, where a later
 * create may attach one as a source. Their new paths go to the events, the
 * log and the removal's answer (j->out). */
static void keep_volumes(struct cvmm_daemon *d, struct job *j)
{
	struct cvmm_vm *vm = j->vm;
	size_t used = 0;
	for (int i = 0; i < vm->n_volumes; i++) {
		const struct vm_volume *v = &vm->volumes[i];
		char from[300], dir[600], to[800];
		if (!v->keep || v->source || vm_volume_path(vm, v, from, sizeof(from)) < 0 ||
		    !path_exists(from))
			continue;
		snprintf(dir, sizeof(dir), "%s/volumes", d->cfg->data_dir);
		snprintf(to, sizeof(to), "%s/%s-%s-%.8s.qcow2", dir, vm->name, v->name, vm->id);
		int rc = mkdir_p(dir, 0750);
		if (rc == 0 && rename(from, to) < 0)
			rc = -errno;
		if (rc < 0) {
			log_error("VM '%s': volume '%s' should be kept but cannot be moved to %s: %s; "
				  "it goes with the VM",
				  vm->name, v->name, to, strerror(-rc));
			continue;
		}
		vm_event(vm, "volume", "volume '%s' kept: %s", v->name, to);
		if (j->out && used + strlen(to) + 2 < j->out_len)
			used += (size_t)snprintf(j->out + used, j->out_len - used, "%s\n", to);
	}
}

static int op_remove(struct cvmm_daemon *d, struct job *j)
{
	struct cvmm_vm *vm = j->vm;
	vm_lock(vm);
	enum vm_state st = vm->state;
	vm->want_running = false;
	vm->stop_requested = true;
	vm_unlock(vm);
	/* The intent first: a daemon killed from here on completes the
	 * removal at its next start, instead of leaving a VM half removed. */
	if (st != VM_REMOVING)
		set_state(vm, VM_REMOVING, "", true);
	struct reg_backend *b = registry_backend(d->reg, vm->backend);
	/* A resumed removal may find the process its first try did not end. */
	bool live = is_active(st) ||
		    (st == VM_REMOVING && b && b->ops.adopt && b->ops.adopt(b->data, vm) > 0);
	if (live) {
		stage_undo(d, vm, CVMM_EV_STARTED, NULL, 0, 0);
		int rc = b && b->ops.kill ? b->ops.kill(b->data, vm) : -ENOTSUP;
		if (rc < 0) {
			fail_msg(vm, rc, "stop");
			char reason[VM_ERRBUF_LEN];
			vm_lock(vm);
			str_copy(reason, sizeof(reason), vm->errbuf ? vm->errbuf : "");
			vm->removing = false; /* it still runs: a later DELETE may try again */
			vm_unlock(vm);
			set_state(vm, st == VM_PAUSED ? VM_PAUSED : VM_RUNNING, reason, true);
			return rc;
		}
		teardown_boot(d, vm);
	} else if (st == VM_EXITED || st == VM_FAILED || st == VM_REMOVING) {
		teardown_boot(d, vm); /* idempotent: whatever a dead boot left */
	}
	vm_lock(vm);
	bool defined = vm->defined_ok;
	vm_unlock(vm);
	if (defined)
		stage_undo(d, vm, CVMM_EV_DEFINE, NULL, 0, 0);
	rm_rf(vm->run_dir);
	keep_volumes(d, j);
	int rc = remove_folder(d, vm);
	if (rc < 0)
		log_warn("VM '%s': removing %s: %s", vm->name, vm->data_dir, strerror(-rc));
	char name[64];
	snprintf(name, sizeof(name), "%s", vm->name);
	drop_from_table(d, vm);
	log_info("VM '%s': removed", name);
	/* Its folder is gone: this one reaches the live feed only. */
	vm_event(vm, "removed", "removed with its disk and state");
	return 0;
}

/*
 * After a daemon restart: brings the VM to its desired state from whatever
 * the crash left. A live process of a VM that should run is kept when it was
 * running, and replaced when its start was interrupted (what the start had
 * done is unknown, so it is undone and done again); a live process of a VM
 * that should not run is stopped; the leftovers of a dead one are undone and,
 * if it should run, it starts again.
 */
static void adopt_paused(struct cvmm_daemon *d, struct cvmm_vm *vm, enum vm_state st);

static int op_adopt(struct cvmm_daemon *d, struct job *j)
{
	struct cvmm_vm *vm = j->vm;
	vm_lock(vm);
	enum vm_state st = vm->state;
	bool want = vm->want_running, defined = vm->defined_ok;
	vm_unlock(vm);
	if (!defined) { /* an interrupted create: nobody was told it exists */
		log_info("VM '%s': its create was interrupted; removing it", vm->name);
		j->op = JOB_REMOVE;
		vm_lock(vm);
		vm->removing = true;
		vm_unlock(vm);
		/* How much of DEFINE ran is unknown (a plugin may hold an address
		 * for it): undo all of it, as a failed DEFINE undoes its steps. */
		stage_undo(d, vm, CVMM_EV_DEFINE, NULL, 0, 0);
		return op_remove(d, j);
	}
	if (st == VM_REMOVING) {
		j->op = JOB_REMOVE;
		return op_remove(d, j);
	}
	if (is_active(st)) {
		struct reg_backend *b = backend_of(d, vm);
		int alive = b && b->ops.adopt ? b->ops.adopt(b->data, vm) : 0;
		if (alive < 0) {
			fail_msg(vm, alive, "re-adoption");
			alive = 0;
		}
		if (alive) {
			for (int i = 0; i < vm->n_nics; i++) {
				struct reg_netmode *m =
				    registry_netmode(d->reg, vm_nic_param(vm, i, "mode"));
				if (m && m->ops.adopt && m->ops.adopt(m->data, vm, (uint32_t)i) < 0)
					log_warn("VM '%s': networks[%d]: re-adoption failed", vm->name, i);
			}
			vm_lock(vm);
			int pid = vm->pid;
			vm_unlock(vm);
			vm_event(vm, "adopt", "re-adopted after a daemon restart (pid %d)", pid);
			if (is_up(st) && want) {
				adopt_paused(d, vm, st);
				channel_attach(d, vm);
				return 0;
			}
			/* An interrupted stop finishes; an interrupted start is undone. */
			j->force = st == VM_STARTING;
			j->timeout = 30;
			int rc = do_stop(d, j, true);
			if (rc < 0 || !want)
				return rc;
		} else {
			teardown_boot(d, vm);
			if (is_up(st) && want) {
				set_state(vm, VM_EXITED, "the VM ended while the daemon was down", false);
				if (!plan_restart(d, vm))
					vm_save(vm);
				return 0;
			}
			set_state(vm, VM_STOPPED,
				  st == VM_STARTING ? "the daemon stopped during the start" : "", !want);
		}
	} else if (st == VM_EXITED || st == VM_FAILED) {
		plan_restart(d, vm); /* resumes a pending automatic restart */
		return 0;
	}
	if (!want)
		return 0;
	/* Belt and braces: whatever the manifest says, no second QEMU for a
	 * VM whose earlier one still runs (a start killed at a point the disk
	 * did not record): it is ended, and its leftovers undone, first. */
	struct reg_backend *b = registry_backend(d->reg, vm->backend);
	if (b && b->ops.adopt && b->ops.adopt(b->data, vm) > 0) {
		vm_event(vm, "adopt", "a process of an interrupted start still ran: ending it first");
		vm_lock(vm);
		vm->state = VM_STARTING;
		vm_unlock(vm);
		j->force = true;
		int rc = do_stop(d, j, true);
		if (rc < 0)
			return rc;
	}
	vm_event(vm, "resume", "starting again: the VM should run (desired state running)");
	j->op = JOB_START;
	return op_start(d, j);
}

/* ---- pause, snapshots, resize (issue 11) ---- */

/* At re-adoption of a live VM: its state says what the backend says, not
 * what the manifest said (a daemon killed between the backend's pause and
 * its write, or a VM paused from outside). */
static void adopt_paused(struct cvmm_daemon *d, struct cvmm_vm *vm, enum vm_state st)
{
	struct reg_backend *b = registry_backend(d->reg, vm->backend);
	int p = b && b->ops.is_paused ? b->ops.is_paused(b->data, vm) : -ENOTSUP;
	if (p < 0) {
		if (p != -ENOTSUP)
			log_warn("VM '%s': cannot tell whether it is paused: %s; keeping '%s'",
				 vm->name, strerror(-p), vm_state_name(st));
		return;
	}
	if (p && st != VM_PAUSED)
		set_state(vm, VM_PAUSED, "found paused at re-adoption", true);
	else if (!p && st == VM_PAUSED)
		set_state(vm, VM_RUNNING, "found running at re-adoption", true);
}

static int op_pause(struct cvmm_daemon *d, struct job *j)
{
	struct cvmm_vm *vm = j->vm;
	bool pause = j->op == JOB_PAUSE;
	vm_lock(vm);
	enum vm_state st = vm->state;
	bool gone = vm->proc_gone;
	vm_unlock(vm);
	if (!is_up(st) || gone) {
		set_err(vm, "VM '%s' is %s, not %s", vm->name, vm_state_name(st),
			pause ? "running" : "paused");
		return -EBUSY;
	}
	struct reg_backend *b = backend_of(d, vm);
	if (!b)
		return -ENOENT;
	if (st == (pause ? VM_PAUSED : VM_RUNNING)) {
		/* There already, says the state; the backend is asked too, in
		 * case someone paused or resumed it behind cvmm's back. */
		int p = b->ops.is_paused ? b->ops.is_paused(b->data, vm) : pause;
		if (p == pause || p < 0)
			return 0;
		vm_event(vm, pause ? "pause" : "resume", "the VM was %s behind cvmm's back",
			 pause ? "resumed" : "paused");
	}
	int (*fn)(void *, cvmm_vm *) = pause ? b->ops.pause : b->ops.resume;
	if (!fn) {
		set_err(vm, "backend '%s' cannot %s VMs", b->name, pause ? "pause" : "resume");
		return -ENOTSUP;
	}
	int rc = fn(b->data, vm);
	if (rc < 0) {
		fail_msg(vm, rc, pause ? "pause" : "resume");
		return rc;
	}
	set_state(vm, pause ? VM_PAUSED : VM_RUNNING, "", true);
	return 0;
}

/* The VM is stopped, has a disk, and its backend can do it. */
static int stopped_disk(struct cvmm_daemon *d, struct cvmm_vm *vm, const char *what, char *disk,
			size_t len)
{
	vm_lock(vm);
	enum vm_state st = vm->state;
	vm_unlock(vm);
	if (is_active(st)) {
		set_err(vm, "VM '%s' is %s: %s works on a stopped VM's disk only; stop it first",
			vm->name, vm_state_name(st), what);
		return -EBUSY;
	}
	snprintf(disk, len, "%s/disk.qcow2", vm->data_dir);
	if (!path_exists(disk)) {
		set_err(vm, "VM '%s' has no disk yet: it is made at the VM's first start", vm->name);
		return -EBUSY;
	}
	return 0;
}

static int op_snapshot(struct cvmm_daemon *d, struct job *j)
{
	struct cvmm_vm *vm = j->vm;
	static const char *const what[] = {[CVMM_SNAP_CREATE] = "snapshot create",
					   [CVMM_SNAP_LIST] = "snapshot list",
					   [CVMM_SNAP_REVERT] = "snapshot revert",
					   [CVMM_SNAP_DELETE] = "snapshot delete"};
	const char *w = j->snap_op < ARRAY_SIZE(what) && what[j->snap_op] ? what[j->snap_op]
									 : "snapshot";
	char disk[600];
	int rc;
	/* A list reads the disk only: it is refused while the VM runs all the
	 * same, as QEMU holds the image locked for writing. */
	if ((rc = stopped_disk(d, vm, "a snapshot", disk, sizeof(disk))) < 0)
		return rc;
	struct reg_backend *b = backend_of(d, vm);
	if (!b)
		return -ENOENT;
	if (!b->ops.snapshot) {
		set_err(vm, "backend '%s' cannot take snapshots", b->name);
		return -ENOTSUP;
	}
	rc = b->ops.snapshot(b->data, vm, j->snap_op, disk,
			     j->snap_op == CVMM_SNAP_LIST ? NULL : j->snap_name, j->out, j->out_len);
	if (rc < 0) {
		if (rc == -ENOENT)
			set_err(vm, "VM '%s' has no snapshot '%s'", vm->name, j->snap_name);
		else if (rc == -EEXIST)
			set_err(vm, "VM '%s' has a snapshot '%s' already", vm->name, j->snap_name);
		else
			fail_msg(vm, rc, w);
		return rc;
	}
	if (j->snap_op == CVMM_SNAP_CREATE)
		vm_event(vm, "snapshot", "snapshot '%s' taken", j->snap_name);
	else if (j->snap_op == CVMM_SNAP_REVERT)
		vm_event(vm, "snapshot", "disk reverted to snapshot '%s'", j->snap_name);
	else if (j->snap_op == CVMM_SNAP_DELETE)
		vm_event(vm, "snapshot", "snapshot '%s' deleted", j->snap_name);
	return rc;
}

/* Grows the root disk of a stopped VM; never shrinks it (the guest's file
 * system would lose its end). */
static int op_resize(struct cvmm_daemon *d, struct job *j)
{
	struct cvmm_vm *vm = j->vm;
	vm_lock(vm);
	enum vm_state st = vm->state;
	uint32_t now = vm->disk_gb;
	vm_unlock(vm);
	if (is_active(st)) {
		set_err(vm, "VM '%s' is %s: resize works on a stopped VM's disk only; stop it first",
			vm->name, vm_state_name(st));
		return -EBUSY;
	}
	if (j->disk_gb < now) {
		set_err(vm, "disk_gb: VM '%s' has %u GiB; a disk never shrinks (asked for %u GiB)",
			vm->name, now, j->disk_gb);
		return -EINVAL;
	}
	if (j->disk_gb == now)
		return 0;
	char disk[600], size[32], out[1024];
	snprintf(disk, sizeof(disk), "%s/disk.qcow2", vm->data_dir);
	if (path_exists(disk)) {
		snprintf(size, sizeof(size), "%uG", j->disk_gb);
		char *argv[] = {"qemu-img", "resize", "-q", "-f", "qcow2", disk, size, NULL};
		int rc = run_capture(argv, false, out, sizeof(out));
		if (rc != 0) {
			set_err(vm, "disk: qemu-img resize failed: %s",
				out[0] ? out : strerror(rc < 0 ? -rc : EIO));
			return rc < 0 ? rc : -EIO;
		}
	} /* else: the disk is made at the first start, at the new size */
	vm_lock(vm);
	vm->disk_gb = j->disk_gb;
	vm_unlock(vm);
	vm_event(vm, "resize", "disk grown from %u GiB to %u GiB", now, j->disk_gb);
	int rc = vm_save(vm);
	if (rc < 0)
		set_err(vm, "cannot write the manifest: %s", strerror(-rc));
	return rc;
}

static int run_job(struct cvmm_daemon *d, struct job *j)
{
	switch (j->op) {
	case JOB_DEFINE:
		return op_define(d, j);
	case JOB_START:
		return op_start(d, j);
	case JOB_STOP:
		return do_stop(d, j, false);
	case JOB_RESTART: {
		vm_lock(j->vm);
		j->vm->restarts_requested++;
		vm_unlock(j->vm);
		int rc = do_stop(d, j, true);
		return rc < 0 ? rc : op_start(d, j);
	}
	case JOB_REMOVE:
		return op_remove(d, j);
	case JOB_EXITED:
		return op_exited(d, j);
	case JOB_ADOPT:
		return op_adopt(d, j);
	case JOB_PAUSE:
	case JOB_RESUME:
		return op_pause(d, j);
	case JOB_SNAPSHOT:
		return op_snapshot(d, j);
	case JOB_RESIZE:
		return op_resize(d, j);
	case JOB_N_OPS:
		break;
	}
	return -EINVAL;
}

/* ---- auto-restart (loop thread) ---- */

static void restart_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct cvmm_vm *vm = w->data;
	struct cvmm_daemon *d = vm->d;
	vm_lock(vm);
	bool go = vm->next_restart > 0 && vm->want_running && !is_active(vm->state) &&
		  !vm->removing && !vm->gone;
	vm->next_restart = 0;
	vm_unlock(vm);
	if (!go)
		return;
	struct job *j = job_new(JOB_START, vm);
	j->automatic = true;
	jobs_submit(d, j);
}

static void arm_restart_on_loop(struct cvmm_daemon *d, void *arg)
{
	struct cvmm_vm *vm = arg;
	vm_lock(vm);
	double at = vm->gone ? 0 : vm->next_restart;
	vm_unlock(vm);
	if (at > 0) {
		double delay = at - now_real();
		ev_timer_stop(d->loop, &vm->restart_timer);
		ev_timer_init(&vm->restart_timer, restart_timer_cb, delay > 0 ? delay : 0., 0.);
		vm->restart_timer.data = vm;
		ev_timer_start(d->loop, &vm->restart_timer);
	}
	vm_unref(vm);
}

/* ---- the pool ---- */

/* Caller holds js->mu. */
static void make_ready(struct jobs *js, struct cvmm_vm *vm)
{
	if (vm->on_ready || vm->job_running || !vm->jq_head)
		return;
	vm->on_ready = true;
	vm->ready_next = NULL;
	if (js->ready_tail)
		js->ready_tail->ready_next = vm;
	else
		js->ready_head = vm;
	js->ready_tail = vm;
	pthread_cond_signal(&js->work);
}

static void *worker_main(void *arg)
{
	struct jobs *js = arg;
	struct cvmm_daemon *d = js->d;
	pthread_mutex_lock(&js->mu);
	for (;;) {
		while (!js->quit && !js->ready_head)
			pthread_cond_wait(&js->work, &js->mu);
		if (js->quit)
			break;
		struct cvmm_vm *vm = js->ready_head;
		js->ready_head = vm->ready_next;
		if (!js->ready_head)
			js->ready_tail = NULL;
		vm->on_ready = false;
		struct job *j = vm->jq_head;
		vm->jq_head = j->next;
		if (!vm->jq_head)
			vm->jq_tail = NULL;
		vm->job_running = true;
		atomic_store(&vm->job_op, op_names[j->op]);
		show_queue(vm);
		js->queued--;
		js->running++;
		pthread_mutex_unlock(&js->mu);

		/* Plugins' error messages for this VM land in the job. */
		j->err[0] = 0;
		vm_lock(vm);
		vm->errbuf = j->err;
		/* Once a removal is accepted, nothing but the removal (and the
		 * resume of one) runs: a start queued just before it is void. */
		bool void_job = vm->gone || (vm->removing && j->op != JOB_REMOVE && j->op != JOB_ADOPT);
		vm_unlock(vm);
		if (void_job) {
			j->result = -ENOENT;
			str_copy(j->err, sizeof(j->err), "the VM is being removed");
		} else {
			enum job_op op = j->op; /* an adoption may turn into another op */
			double t0 = now_mono();
			j->result = run_job(d, j);
			metrics_job(d->metrics, op_names[op], now_mono() - t0, j->result < 0);
		}
		vm_lock(vm);
		vm->errbuf = NULL;
		bool restart = vm->next_restart > 0 && !vm->gone;
		vm_unlock(vm);
		if (j->result < 0 && !j->err[0])
			str_copy(j->err, sizeof(j->err), strerror(-j->result));
		if (restart)
			daemon_call_on_loop(d, arm_restart_on_loop, vm_ref(vm));

		pthread_mutex_lock(&js->mu);
		vm->job_running = false;
		atomic_store(&vm->job_op, NULL);
		js->running--;
		j->finished = true;
		make_ready(js, vm);
		pthread_cond_broadcast(&js->done);
		pthread_mutex_unlock(&js->mu);
		job_unref(j);
		pthread_mutex_lock(&js->mu);
	}
	pthread_mutex_unlock(&js->mu);
	return NULL;
}

struct jobs *jobs_new(struct cvmm_daemon *d, int workers)
{
	struct jobs *js = xzalloc(sizeof(*js));
	js->d = d;
	pthread_mutex_init(&js->mu, NULL);
	pthread_cond_init(&js->work, NULL);
	pthread_cond_init(&js->done, NULL);
	js->threads = xzalloc(sizeof(pthread_t) * (size_t)workers);
	for (int i = 0; i < workers; i++) {
		if (pthread_create(&js->threads[i], NULL, worker_main, js) != 0)
			break;
		js->n_threads++;
	}
	return js;
}

void jobs_stop(struct jobs *js)
{
	if (!js)
		return;
	pthread_mutex_lock(&js->mu);
	/* Let running jobs finish: killing a half-done start would leak. What
	 * is still queued was persisted as an intent and resumes at the next
	 * start; its waiters are answered now. */
	js->quit = true;
	pthread_cond_broadcast(&js->work);
	pthread_cond_broadcast(&js->done);
	pthread_mutex_unlock(&js->mu);
	for (int i = 0; i < js->n_threads; i++)
		pthread_join(js->threads[i], NULL);
	js->n_threads = 0;
	/* A plugin call that overran cvm.hook_timeout may still run: give it a
	 * moment to return before the registry (and the plugins) go. */
	for (int i = 0; i < 100 && __atomic_load_n(&calls_abandoned, __ATOMIC_ACQUIRE) > 0; i++)
		usleep(100 * 1000);
	if (__atomic_load_n(&calls_abandoned, __ATOMIC_ACQUIRE) > 0)
		log_warn("%d plugin calls that overran cvm.hook_timeout still run at shutdown",
			 __atomic_load_n(&calls_abandoned, __ATOMIC_ACQUIRE));
	pthread_mutex_lock(&js->mu);
	for (struct cvmm_vm *vm = js->ready_head, *nv; vm; vm = nv) {
		nv = vm->ready_next;
		vm->on_ready = false;
	}
	js->ready_head = js->ready_tail = NULL;
	pthread_mutex_unlock(&js->mu);
}

void jobs_free(struct jobs *js)
{
	if (!js)
		return;
	jobs_stop(js);
	pthread_mutex_destroy(&js->mu);
	pthread_cond_destroy(&js->work);
	pthread_cond_destroy(&js->done);
	free(js->threads);
	free(js);
}

int jobs_submit(struct cvmm_daemon *d, struct job *j)
{
	struct jobs *js = d->jobs;
	pthread_mutex_lock(&js->mu);
	vm_lock(j->vm);
	bool gone = j->vm->gone;
	vm_unlock(j->vm);
	if (js->quit || gone) {
		int rc = js->quit ? -ESHUTDOWN : -ENOENT; /* read under the lock */
		j->result = rc;
		str_copy(j->err, sizeof(j->err),
			 rc == -ESHUTDOWN ? "the daemon is stopping" : "the VM was removed");
		j->finished = true;
		pthread_cond_broadcast(&js->done);
		pthread_mutex_unlock(&js->mu);
		job_unref(j);
		return rc;
	}
	struct cvmm_vm *vm = j->vm;
	j->next = NULL;
	if (vm->jq_tail)
		vm->jq_tail->next = j;
	else
		vm->jq_head = j;
	vm->jq_tail = j;
	show_queue(vm);
	js->queued++;
	make_ready(js, vm);
	pthread_mutex_unlock(&js->mu);
	return 0;
}

/* Drops vm's queued jobs (all, or those a removal supersedes), answering
 * their waiters with err and why. */
static int drop_queued(struct jobs *js, struct cvmm_vm *vm, bool all, int err, const char *why)
{
	int n = 0;
	pthread_mutex_lock(&js->mu);
	struct job *j = vm->jq_head, *keep = NULL, *keep_tail = NULL;
	vm->jq_head = vm->jq_tail = NULL;
	struct job *dropped = NULL;
	for (struct job *next; j; j = next) {
		next = j->next;
		j->next = NULL;
		if (all || j->op == JOB_START || j->op == JOB_STOP || j->op == JOB_RESTART ||
		    j->op == JOB_EXITED || j->op == JOB_PAUSE || j->op == JOB_RESUME ||
		    j->op == JOB_SNAPSHOT || j->op == JOB_RESIZE) {
			j->result = err;
			str_copy(j->err, sizeof(j->err), why);
			j->finished = true;
			j->next = dropped;
			dropped = j;
			js->queued--;
			n++;
			continue;
		}
		if (keep_tail)
			keep_tail->next = j;
		else
			keep = j;
		keep_tail = j;
	}
	vm->jq_head = keep;
	vm->jq_tail = keep_tail;
	show_queue(vm);
	if (!keep && vm->on_ready) { /* take it off the ready list */
		struct cvmm_vm **pp = &js->ready_head, *prev = NULL;
		while (*pp && *pp != vm) {
			prev = *pp;
			pp = &(*pp)->ready_next;
		}
		if (*pp) {
			*pp = vm->ready_next;
			if (js->ready_tail == vm)
				js->ready_tail = prev;
		}
		vm->on_ready = false;
	}
	pthread_cond_broadcast(&js->done);
	pthread_mutex_unlock(&js->mu);
	for (struct job *next; dropped; dropped = next) {
		next = dropped->next;
		job_unref(dropped);
	}
	return n;
}

int jobs_cancel_queued(struct cvmm_daemon *d, struct cvmm_vm *vm, const char *why)
{
	return drop_queued(d->jobs, vm, false, -ECANCELED, why);
}

void jobs_drain(struct jobs *js, struct cvmm_vm *vm)
{
	drop_queued(js, vm, true, -ESHUTDOWN,
		    "the daemon is stopping; the request resumes when it starts again");
}

void jobs_wait_idle(struct jobs *js)
{
	if (!js)
		return;
	pthread_mutex_lock(&js->mu);
	while ((js->running > 0 || js->queued > 0) && !js->quit)
		pthread_cond_wait(&js->done, &js->mu);
	pthread_mutex_unlock(&js->mu);
}

void job_wait(struct cvmm_daemon *d, struct job *j)
{
	struct jobs *js = d->jobs;
	pthread_mutex_lock(&js->mu);
	while (!j->finished)
		pthread_cond_wait(&js->done, &js->mu);
	pthread_mutex_unlock(&js->mu);
}

void jobs_process_gone(struct cvmm_daemon *d, struct cvmm_vm *vm)
{
	vm_lock(vm);
	vm->proc_gone = true;
	bool submit = !vm->gone && !vm->removing;
	vm_unlock(vm);
	/* Queued behind whatever runs for the VM; op_exited decides then. */
	if (submit)
		jobs_submit(d, job_new(JOB_EXITED, vm));
}
