/*
 * job: see job.h. Jobs run plugin code, which blocks, so they never run on
 * the loop; what they change in a VM is changed under d->lock, and what must
 * happen on the loop afterwards (answer an API client, arm a restart timer,
 * notice an exit that happened meanwhile) is handed back through
 * daemon_call_on_loop().
 */
#include "job.h"
#include "daemon.h"
#include "image.h"
#include "registry.h"
#include "spec.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

struct jobs {
	struct cvmm_daemon *d;
	pthread_cond_t cond; /* with d->lock */
	struct job *head, *tail;
	int running;
	bool quit;
	int n_threads;
	pthread_t *threads;
};

struct job *job_new(enum job_op op, struct cvmm_vm *vm)
{
	struct job *j = xzalloc(sizeof(*j));
	j->op = op;
	j->vm = vm;
	return j;
}

/* ---- small helpers (worker thread) ---- */

static void set_state(struct cvmm_vm *vm, enum vm_state st, const char *reason)
{
	struct cvmm_daemon *d = vm->d;
	pthread_mutex_lock(&d->lock);
	enum vm_state old = vm->state;
	vm->state = st;
	if (reason)
		vm_set_reason(vm, reason);
	if (old != st)
		vm_event(vm, "state", "%s -> %s%s%s", vm_state_name(old), vm_state_name(st),
			 reason && *reason ? ": " : "", reason ? reason : "");
	pthread_mutex_unlock(&d->lock);
	daemon_save_vm(d, vm);
}

/* The failing step's message, or a generic one naming what failed. */
static void fail_msg(struct cvmm_vm *vm, int rc, const char *what)
{
	if (!vm->errbuf[0])
		snprintf(vm->errbuf, VM_ERRBUF_LEN, "%s failed: %s", what, strerror(-rc));
}

/* Runs argv, collecting stderr into out. Returns the exit status or -errno. */
static int run_cmd(char *const argv[], char *out, size_t outlen)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return -errno;
	}
	if (pid == 0) {
		dup2(pfd[1], 2);
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(null, 1);
		execvp(argv[0], argv);
		dprintf(2, "cannot run %s: %s", argv[0], strerror(errno));
		_exit(127);
	}
	close(pfd[1]);
	size_t len = 0;
	char buf[512];
	ssize_t n;
	while ((n = read(pfd[0], buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		if (out && len + 1 < outlen) {
			size_t c = (size_t)n < outlen - 1 - len ? (size_t)n : outlen - 1 - len;
			memcpy(out + len, buf, c);
			len += c;
		}
	}
	if (out && outlen)
		out[len] = 0;
	close(pfd[0]);
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
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
		      struct cvmm_spec *spec)
{
	struct reg_netmode *m = registry_netmode(d->reg, vm_nic_param(vm, i, "mode"));
	if (!m) {
		snprintf(vm->errbuf, VM_ERRBUF_LEN, "networks[%d]: network mode '%s' is not loaded",
			 i, vm_nic_param(vm, i, "mode"));
		return -ENOENT;
	}
	const struct cvmm_port_map *ports[VM_MAX_PORTS];
	uint32_t n = 0;
	if (ports_nic(d, vm) == i)
		for (int k = 0; k < vm->n_ports; k++)
			ports[n++] = &vm->ports[k];
	if (ev == CVMM_EV_DEFINE) {
		if (i == 0 && vm->n_ports && ports_nic(d, vm) < 0) {
			snprintf(vm->errbuf, VM_ERRBUF_LEN,
				 "ports: none of this VM's networks can carry port mappings (mode '%s' cannot)",
				 vm_nic_param(vm, 0, "mode"));
			return -EINVAL;
		}
		return m->ops.define ? m->ops.define(m->data, vm, (uint32_t)i, ports, n) : 0;
	}
	if (ev == CVMM_EV_PRE_START)
		return m->ops.setup ? m->ops.setup(m->data, vm, (uint32_t)i, spec, ports, n) : 0;
	return 0;
}

static void netmode_undo(struct cvmm_daemon *d, struct cvmm_vm *vm, uint32_t undo, int i)
{
	struct reg_netmode *m = registry_netmode(d->reg, vm_nic_param(vm, i, "mode"));
	if (!m)
		return;
	int rc = 0;
	if (undo == CVMM_EV_UNDEFINE && m->ops.undefine)
		rc = m->ops.undefine(m->data, vm, (uint32_t)i);
	else if (undo == CVMM_EV_POST_STOP && m->ops.teardown)
		rc = m->ops.teardown(m->data, vm, (uint32_t)i);
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
		int rc = hooks[i]->fn(hooks[i]->data, vm, undo, NULL);
		if (rc < 0)
			log_warn("VM '%s': plugin %s: undo of event %u failed: %s", vm->name,
				 hooks[i]->plugin->name, ev, strerror(-rc));
	}
	if (has_netmode_step(ev)) {
		int upto = ran_plugins ? ran_nics : vm->n_nics;
		for (int i = upto - 1; i >= 0; i--)
			netmode_undo(d, vm, undo, i);
	}
}

/* Runs a do-stage; on failure undoes what of it ran (plus the failing step). */
static int stage_do(struct cvmm_daemon *d, struct cvmm_vm *vm, uint32_t ev, struct cvmm_spec *spec)
{
	struct cvmm_plugin *ran[MAX_STEPS];
	int n_ran = 0, nics_done = 0, rc = 0;
	if (has_netmode_step(ev))
		for (; nics_done < vm->n_nics; nics_done++) {
			rc = netmode_do(d, vm, ev, nics_done, spec);
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
		rc = hooks[i]->fn(hooks[i]->data, vm, ev, spec);
		if (rc < 0) {
			char what[96];
			snprintf(what, sizeof(what), "plugin %s", hooks[i]->plugin->name);
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
	for (int i = 0; i < n; i++)
		hooks[i]->fn(hooks[i]->data, vm, ev, NULL);
}

/* ---- the built-in PREPARE work: the VM's disk and the spec skeleton ---- */

static int prepare_disk(struct cvmm_daemon *d, struct cvmm_vm *vm, const struct image *img,
			struct cvmm_spec *spec)
{
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
		int rc = run_cmd(argv, out, sizeof(out));
		if (rc != 0) {
			unlink(tmp);
			snprintf(vm->errbuf, VM_ERRBUF_LEN, "disk: qemu-img create failed: %s",
				 out[0] ? out : strerror(rc < 0 ? -rc : EIO));
			return rc < 0 ? rc : -EIO;
		}
		if (rename(tmp, path) < 0) {
			int e = -errno;
			unlink(tmp);
			snprintf(vm->errbuf, VM_ERRBUF_LEN, "disk: %s: %s", path, strerror(-e));
			return e;
		}
	}
	struct cvmm_spec_disk disk = {.struct_size = sizeof(disk), .format = CVMM_DISK_QCOW2};
	str_copy(disk.id, sizeof(disk.id), "hd0");
	str_copy(disk.path, sizeof(disk.path), path);
	return spec_add_disk(spec, &disk);
}

static int build_spec(struct cvmm_daemon *d, struct cvmm_vm *vm, struct cvmm_spec **out)
{
	struct image img;
	char err[512];
	int rc = image_load(d->cfg->image_path, vm->image, &img, err, sizeof(err));
	if (rc < 0) {
		str_copy(vm->errbuf, VM_ERRBUF_LEN, err);
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
	p->cid = vm->cid;
	snprintf(p->serial_log, sizeof(p->serial_log), "%s/console.log", vm->data_dir);
	str_copy(p->run_dir, sizeof(p->run_dir), vm->run_dir);
	p->serial_log_max = d->cfg->serial_log_max;
	char name_arg[128];
	snprintf(name_arg, sizeof(name_arg), "cvmm.name=%s", vm->name);
	spec_append_cmdline(s, name_arg);
	rc = prepare_disk(d, vm, &img, s);
	if (rc < 0) {
		spec_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

/* ---- lifecycle operations (worker thread) ---- */

static struct reg_backend *backend_of(struct cvmm_daemon *d, struct cvmm_vm *vm)
{
	struct reg_backend *b = registry_backend(d->reg, vm->backend);
	if (!b)
		snprintf(vm->errbuf, VM_ERRBUF_LEN, "backend '%s' is not loaded", vm->backend);
	return b;
}

/* Everything after the VM's process is gone: the undo of the boot. */
static void teardown_boot(struct cvmm_daemon *d, struct cvmm_vm *vm)
{
	stage_undo(d, vm, CVMM_EV_PRE_START, NULL, 0, 0);
	stage_undo(d, vm, CVMM_EV_PREPARE, NULL, 0, 0);
	struct reg_backend *b = registry_backend(d->reg, vm->backend);
	if (b && b->ops.cleanup)
		b->ops.cleanup(b->data, vm);
	rm_rf(vm->run_dir);
	pthread_mutex_lock(&d->lock);
	vm->pid = 0;
	pthread_mutex_unlock(&d->lock);
}

static int op_start(struct cvmm_daemon *d, struct job *j)
{
	struct cvmm_vm *vm = j->vm;
	struct cvmm_spec *spec = NULL;
	struct reg_backend *b = backend_of(d, vm);
	int rc;
	if (!b)
		return -ENOENT;
	pthread_mutex_lock(&d->lock);
	vm->pid = 0;
	vm->proc_gone = false;
	vm->stop_requested = false;
	vm->want_running = true;
	pthread_mutex_unlock(&d->lock);
	set_state(vm, VM_STARTING, "");
	if ((rc = mkdir_p(vm->run_dir, 0750)) < 0) {
		snprintf(vm->errbuf, VM_ERRBUF_LEN, "run directory %s: %s", vm->run_dir,
			 strerror(-rc));
		return rc;
	}
	/* PREPARE: the core's own part (image, disk) runs first. */
	if ((rc = build_spec(d, vm, &spec)) < 0)
		goto fail_prepare;
	if ((rc = stage_do(d, vm, CVMM_EV_PREPARE, spec)) < 0)
		goto fail_prepare;
	if ((rc = stage_do(d, vm, CVMM_EV_PRE_START, spec)) < 0)
		goto fail_pre_start;
	if (!b->ops.start) {
		rc = -ENOTSUP;
		snprintf(vm->errbuf, VM_ERRBUF_LEN, "backend '%s' cannot start VMs", b->name);
		goto fail_launch;
	}
	if ((rc = b->ops.start(b->data, vm, &spec->pub)) < 0) {
		fail_msg(vm, rc, "launch");
		goto fail_launch;
	}
	pthread_mutex_lock(&d->lock);
	vm->started = now_real();
	pthread_mutex_unlock(&d->lock);
	if ((rc = stage_do(d, vm, CVMM_EV_STARTED, NULL)) < 0) {
		if (b->ops.kill)
			b->ops.kill(b->data, vm);
		goto fail_launch;
	}
	spec_free(spec);
	set_state(vm, VM_RUNNING, "");
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
	pthread_mutex_lock(&d->lock);
	vm->pid = 0;
	vm->want_running = j->automatic; /* an auto-restart keeps trying */
	pthread_mutex_unlock(&d->lock);
	set_state(vm, VM_FAILED, vm->errbuf);
	return rc;
}

static bool is_active(enum vm_state s)
{
	return s == VM_STARTING || s == VM_RUNNING || s == VM_STOPPING;
}

static int op_stop(struct cvmm_daemon *d, struct job *j)
{
	struct cvmm_vm *vm = j->vm;
	pthread_mutex_lock(&d->lock);
	enum vm_state st = vm->state;
	vm->want_running = false;
	vm->stop_requested = true;
	pthread_mutex_unlock(&d->lock);
	if (!is_active(st)) {
		if (st == VM_EXITED)
			set_state(vm, VM_STOPPED, "");
		return 0;
	}
	set_state(vm, VM_STOPPING, "");
	stage_undo(d, vm, CVMM_EV_STARTED, NULL, 0, 0);
	struct reg_backend *b = backend_of(d, vm);
	int rc = 0;
	if (b) {
		if (j->force || !b->ops.stop)
			rc = b->ops.kill ? b->ops.kill(b->data, vm) : -ENOTSUP;
		else
			rc = b->ops.stop(b->data, vm, j->timeout);
	}
	if (rc < 0) {
		fail_msg(vm, rc, "stop");
		/* The VM may still run: keep it as it is, say why. */
		set_state(vm, VM_RUNNING, vm->errbuf);
		return rc;
	}
	teardown_boot(d, vm);
	set_state(vm, VM_STOPPED, "");
	return 0;
}

static int op_exited(struct cvmm_daemon *d, struct job *j)
{
	struct cvmm_vm *vm = j->vm;
	pthread_mutex_lock(&d->lock);
	bool running = vm->state == VM_RUNNING;
	pthread_mutex_unlock(&d->lock);
	if (!running)
		return 0;
	notify(d, vm, CVMM_EV_EXITED);
	/* Make sure: a process judged gone by mistake must not outlive its
	 * network and files. kill() is a no-op for a process that is gone. */
	struct reg_backend *b = registry_backend(d->reg, vm->backend);
	if (b && b->ops.kill)
		b->ops.kill(b->data, vm);
	teardown_boot(d, vm);
	set_state(vm, VM_EXITED, "the VM's process ended without being asked to");
	return 0;
}

static int op_define(struct cvmm_daemon *d, struct job *j)
{
	struct cvmm_vm *vm = j->vm;
	int rc = mkdir_p(vm->data_dir, 0750);
	if (rc < 0) {
		snprintf(vm->errbuf, VM_ERRBUF_LEN, "data directory %s: %s", vm->data_dir,
			 strerror(-rc));
		return rc;
	}
	if ((rc = daemon_save_vm(d, vm)) < 0) {
		snprintf(vm->errbuf, VM_ERRBUF_LEN, "cannot write the manifest: %s", strerror(-rc));
		rm_rf(vm->data_dir);
		return rc;
	}
	if ((rc = stage_do(d, vm, CVMM_EV_DEFINE, NULL)) < 0) {
		rm_rf(vm->data_dir);
		return rc;
	}
	pthread_mutex_lock(&d->lock);
	vm->defined_ok = true;
	vm_event(vm, "define", "defined from image '%s' (%u vCPU, %llu MiB)", vm->image, vm->vcpu,
		 (unsigned long long)vm->memory_mb);
	pthread_mutex_unlock(&d->lock);
	return daemon_save_vm(d, vm);
}

static int op_remove(struct cvmm_daemon *d, struct job *j)
{
	struct cvmm_vm *vm = j->vm;
	j->force = true;
	int rc = op_stop(d, j);
	if (rc < 0)
		return rc;
	set_state(vm, VM_REMOVING, "");
	stage_undo(d, vm, CVMM_EV_DEFINE, NULL, 0, 0);
	rm_rf(vm->run_dir);
	rc = rm_rf(vm->data_dir);
	if (rc < 0)
		log_warn("VM '%s': removing %s: %s", vm->name, vm->data_dir, strerror(-rc));
	return 0;
}

static int op_adopt(struct cvmm_daemon *d, struct job *j)
{
	struct cvmm_vm *vm = j->vm;
	pthread_mutex_lock(&d->lock);
	enum vm_state st = vm->state;
	pthread_mutex_unlock(&d->lock);
	if (!is_active(st))
		return 0;
	struct reg_backend *b = backend_of(d, vm);
	int alive = b && b->ops.adopt ? b->ops.adopt(b->data, vm) : 0;
	if (alive < 0) {
		fail_msg(vm, alive, "re-adoption");
		alive = 0;
	}
	if (alive) {
		for (int i = 0; i < vm->n_nics; i++) {
			struct reg_netmode *m = registry_netmode(d->reg, vm_nic_param(vm, i, "mode"));
			if (m && m->ops.adopt && m->ops.adopt(m->data, vm, (uint32_t)i) < 0)
				log_warn("VM '%s': networks[%d]: re-adoption failed", vm->name, i);
		}
		pthread_mutex_lock(&d->lock);
		vm_event(vm, "adopt", "re-adopted after a daemon restart (pid %d)", vm->pid);
		pthread_mutex_unlock(&d->lock);
		if (st == VM_RUNNING)
			return 0;
		/* An interrupted stop finishes; an interrupted start is undone and,
		 * if the VM should run, started again (on the loop, afterwards). */
		j->force = st == VM_STARTING;
		j->timeout = 30;
		return op_stop(d, j);
	}
	teardown_boot(d, vm);
	if (st == VM_RUNNING && vm->want_running) {
		set_state(vm, VM_EXITED, "the VM ended while the daemon was down");
		return 0;
	}
	set_state(vm, st == VM_STARTING ? VM_FAILED : VM_STOPPED,
		  st == VM_STARTING ? "the daemon stopped during the start" : "");
	return 0;
}

static int run_job(struct cvmm_daemon *d, struct job *j)
{
	switch (j->op) {
	case JOB_DEFINE:
		return op_define(d, j);
	case JOB_START:
		return op_start(d, j);
	case JOB_STOP:
		return op_stop(d, j);
	case JOB_RESTART: {
		int rc = op_stop(d, j);
		return rc < 0 ? rc : op_start(d, j);
	}
	case JOB_REMOVE:
		return op_remove(d, j);
	case JOB_EXITED:
		return op_exited(d, j);
	case JOB_ADOPT:
		return op_adopt(d, j);
	}
	return -EINVAL;
}

/* ---- auto-restart (loop thread) ---- */

static void restart_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct cvmm_vm *vm = w->data;
	struct cvmm_daemon *d = vm->d;
	pthread_mutex_lock(&d->lock);
	vm->next_restart = 0;
	bool go = vm->want_running && !is_active(vm->state) && vm->state != VM_REMOVING;
	pthread_mutex_unlock(&d->lock);
	if (!go)
		return;
	struct job *j = job_new(JOB_START, vm);
	j->automatic = true;
	jobs_submit(d, j);
}

static void maybe_restart(struct cvmm_daemon *d, struct cvmm_vm *vm)
{
	struct cvmm_config *c = d->cfg;
	pthread_mutex_lock(&d->lock);
	if (!c->ar_enabled || !vm->want_running || (vm->state != VM_EXITED && vm->state != VM_FAILED)) {
		pthread_mutex_unlock(&d->lock);
		return;
	}
	double now = now_real();
	if (vm->state == VM_EXITED && vm->started > 0 && now - vm->started >= c->ar_reset_window)
		vm->restarts = 0;
	if (vm->restarts >= c->ar_max_retries) {
		vm->want_running = false;
		vm_event(vm, "auto-restart",
			 "gave up after %d restarts (cvm.auto_restart.max_retries = %d)", vm->restarts,
			 c->ar_max_retries);
		pthread_mutex_unlock(&d->lock);
		daemon_save_vm(d, vm);
		return;
	}
	double delay = c->ar_initial_backoff * pow(2.0, vm->restarts);
	if (delay > c->ar_max_backoff)
		delay = c->ar_max_backoff;
	vm->restarts++;
	vm->next_restart = now + delay;
	vm_event(vm, "auto-restart", "restart %d of at most %d in %.1f s", vm->restarts,
		 c->ar_max_retries, delay);
	pthread_mutex_unlock(&d->lock);
	daemon_save_vm(d, vm);
	ev_timer_stop(d->loop, &vm->restart_timer);
	ev_timer_init(&vm->restart_timer, restart_timer_cb, delay, 0.);
	vm->restart_timer.data = vm;
	ev_timer_start(d->loop, &vm->restart_timer);
}

/* ---- the pool ---- */

static void job_finished_on_loop(struct cvmm_daemon *d, void *arg)
{
	struct job *j = arg;
	struct cvmm_vm *vm = j->vm;
	if (j->done)
		j->done(d, j);
	if (j->op == JOB_REMOVE && j->result == 0) {
		ev_timer_stop(d->loop, &vm->restart_timer);
		daemon_unwatch(d, vm);
		pthread_mutex_lock(&d->lock);
		daemon_release(d, vm);
		daemon_remove_vm(d, vm);
		pthread_mutex_unlock(&d->lock);
		vm_free(vm);
	} else if (j->op == JOB_DEFINE && j->result < 0) {
		pthread_mutex_lock(&d->lock);
		daemon_release(d, vm);
		daemon_remove_vm(d, vm);
		pthread_mutex_unlock(&d->lock);
		vm_free(vm);
	} else {
		pthread_mutex_lock(&d->lock);
		bool gone = vm->state == VM_RUNNING && vm->proc_gone && !vm->busy;
		pthread_mutex_unlock(&d->lock);
		if (gone)
			jobs_submit(d, job_new(JOB_EXITED, vm));
		else if (j->op == JOB_EXITED || j->op == JOB_ADOPT ||
			 (j->op == JOB_START && j->automatic))
			maybe_restart(d, vm);
		if (j->op == JOB_ADOPT && j->result == 0) {
			pthread_mutex_lock(&d->lock);
			bool again = vm->want_running && vm->state == VM_STOPPED;
			pthread_mutex_unlock(&d->lock);
			if (again)
				jobs_submit(d, job_new(JOB_START, vm));
		}
	}
	free(j);
}

static void *worker_main(void *arg)
{
	struct jobs *js = arg;
	struct cvmm_daemon *d = js->d;
	pthread_mutex_lock(&d->lock);
	for (;;) {
		struct job *j = NULL, *prev = NULL;
		while (!js->quit) {
			prev = NULL;
			for (j = js->head; j; prev = j, j = j->next)
				if (!j->vm->busy)
					break;
			if (j)
				break;
			pthread_cond_wait(&js->cond, &d->lock);
		}
		if (js->quit)
			break;
		if (prev)
			prev->next = j->next;
		else
			js->head = j->next;
		if (js->tail == j)
			js->tail = prev;
		j->vm->busy = true;
		/* Plugins' error messages for this VM land in the job. */
		j->err[0] = 0;
		j->vm->errbuf = j->err;
		js->running++;
		pthread_mutex_unlock(&d->lock);

		j->result = run_job(d, j);
		if (j->result < 0 && !j->err[0])
			str_copy(j->err, sizeof(j->err), strerror(-j->result));

		pthread_mutex_lock(&d->lock);
		j->vm->errbuf = NULL;
		j->vm->busy = false;
		js->running--;
		pthread_cond_broadcast(&js->cond);
		pthread_mutex_unlock(&d->lock);
		daemon_call_on_loop(d, job_finished_on_loop, j);
		pthread_mutex_lock(&d->lock);
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

struct jobs *jobs_new(struct cvmm_daemon *d, int workers)
{
	struct jobs *js = xzalloc(sizeof(*js));
	js->d = d;
	pthread_cond_init(&js->cond, NULL);
	js->threads = xzalloc(sizeof(pthread_t) * (size_t)workers);
	for (int i = 0; i < workers; i++) {
		if (pthread_create(&js->threads[i], NULL, worker_main, js) != 0)
			break;
		js->n_threads++;
	}
	return js;
}

void jobs_free(struct jobs *js)
{
	if (!js)
		return;
	struct cvmm_daemon *d = js->d;
	pthread_mutex_lock(&d->lock);
	/* Let running jobs finish: killing a half-done start would leak. */
	while (js->running)
		pthread_cond_wait(&js->cond, &d->lock);
	js->quit = true;
	pthread_cond_broadcast(&js->cond);
	pthread_mutex_unlock(&d->lock);
	for (int i = 0; i < js->n_threads; i++)
		pthread_join(js->threads[i], NULL);
	for (struct job *j = js->head, *n; j; j = n) {
		n = j->next;
		free(j);
	}
	pthread_cond_destroy(&js->cond);
	free(js->threads);
	free(js);
}

void jobs_submit(struct cvmm_daemon *d, struct job *j)
{
	struct jobs *js = d->jobs;
	if (!js) { /* shutting down: the next start re-adopts and resumes */
		free(j);
		return;
	}
	pthread_mutex_lock(&d->lock);
	j->next = NULL;
	if (js->tail)
		js->tail->next = j;
	else
		js->head = j;
	js->tail = j;
	pthread_cond_signal(&js->cond);
	pthread_mutex_unlock(&d->lock);
}

int jobs_pending(struct cvmm_daemon *d)
{
	pthread_mutex_lock(&d->lock);
	int n = d->jobs->running;
	for (struct job *j = d->jobs->head; j; j = j->next)
		n++;
	pthread_mutex_unlock(&d->lock);
	return n;
}

void jobs_process_gone(struct cvmm_daemon *d, struct cvmm_vm *vm)
{
	pthread_mutex_lock(&d->lock);
	vm->proc_gone = true;
	bool submit = vm->state == VM_RUNNING && !vm->busy;
	pthread_mutex_unlock(&d->lock);
	if (submit)
		jobs_submit(d, job_new(JOB_EXITED, vm));
}
