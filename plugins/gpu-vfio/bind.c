/*
 * bind: moving devices to vfio-pci and back, the way the kernel wants it
 * and the way real drivers misbehave (shared/reference/kohakuriver.md,
 * perf-rel.md §3): every write goes through driver_override (so nothing
 * else can grab the device between unbind and probe), is done on a helper
 * thread given up after a deadline (nvidia's unbind can hang for ever), and
 * is judged by reading the driver link afterwards, not by the write's
 * return (writes are known to hang *after* taking effect).
 *
 * The driver a device had is recorded in the store, and the store saved,
 * before the first write to that device: a daemon killed between two binds
 * finds every device it touched in the record, and gv_restore, driven only
 * by the record and the devices' current drivers, can run any number of
 * times.
 */
#include "gv.h"

#include <ctype.h>
#include <signal.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- one write with a deadline ---- */

struct wjob {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int refs; /* the caller and the thread; the last one frees */
	int done, rc;
	char path[PATH_MAX];
	char value[128];
};

static void wjob_unref(struct wjob *j)
{
	pthread_mutex_lock(&j->lock);
	int last = --j->refs == 0;
	pthread_mutex_unlock(&j->lock);
	if (last) {
		pthread_cond_destroy(&j->cond);
		pthread_mutex_destroy(&j->lock);
		free(j);
	}
}

static void *wjob_run(void *arg)
{
	struct wjob *j = arg;
	int rc = 0;
	int fd = open(j->path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
	} else {
		size_t n = strlen(j->value);
		ssize_t w = write(fd, j->value, n);
		rc = w < 0 ? -errno : (size_t)w == n ? 0 : -EIO;
		if (close(fd) < 0 && !rc)
			rc = -errno;
	}
	pthread_mutex_lock(&j->lock);
	j->done = 1;
	j->rc = rc;
	pthread_cond_signal(&j->cond);
	pthread_mutex_unlock(&j->lock);
	wjob_unref(j);
	return NULL;
}

int gv_write_timeout(const char *path, const char *value, int timeout_ms)
{
	struct wjob *j = calloc(1, sizeof(*j));
	pthread_condattr_t ca;
	pthread_attr_t ta;
	pthread_t t;
	if (!j)
		return -ENOMEM;
	pthread_mutex_init(&j->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&j->cond, &ca);
	pthread_condattr_destroy(&ca);
	j->refs = 2;
	snprintf(j->path, sizeof(j->path), "%s", path);
	snprintf(j->value, sizeof(j->value), "%s", value);
	pthread_attr_init(&ta);
	pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
	int rc = pthread_create(&t, &ta, wjob_run, j);
	pthread_attr_destroy(&ta);
	if (rc) {
		j->refs = 1;
		wjob_unref(j);
		return -rc;
	}
	struct timespec dl;
	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&j->lock);
	while (!j->done)
		if (pthread_cond_timedwait(&j->cond, &j->lock, &dl) == ETIMEDOUT)
			break;
	rc = j->done ? j->rc : -ETIMEDOUT;
	pthread_mutex_unlock(&j->lock);
	/* On a timeout the thread stays blocked in the kernel; it frees the
	 * job whenever (if ever) the write returns. */
	wjob_unref(j);
	return rc;
}

/* ---- steps ---- */

static int fail(struct gv_bind_ctx *c, int rc, const char *fmt, ...)
{
	va_list ap;
	if (c->err[0])
		return rc; /* the first failure is the one the user needs */
	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	return rc;
}

static const char *why(int rc, int timeout_ms, char *buf, size_t len)
{
	if (rc == -ETIMEDOUT)
		snprintf(buf, len, "no answer after %d ms", timeout_ms);
	else
		snprintf(buf, len, "%s", strerror(-rc));
	return buf;
}

static int drv_is(const char *root, const char *slot, const char *want)
{
	char cur[64];
	return gv_driver_of(root, slot, cur, sizeof(cur)) == 0 && !strcmp(cur, want);
}

static int override_is(const char *root, const char *slot, const char *want)
{
	char path[PATH_MAX], buf[128] = "";
	snprintf(path, sizeof(path), "%s/sys/bus/pci/devices/%s/driver_override", root, slot);
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	buf[strcspn(buf, "\n")] = 0;
	if (!strcmp(buf, "(null)"))
		buf[0] = 0;
	return !strcmp(buf, want);
}

/* Write value to root/rel, then judge by the device's state. */
static void note_late(struct gv_bind_ctx *c, const char *slot)
{
	for (int i = 0; i < c->n_late; i++)
		if (!strcmp(c->late[i], slot))
			return;
	if (c->n_late < 8)
		snprintf(c->late[c->n_late++], GV_SLOT_LEN, "%s", slot);
}

static int is_late(const struct gv_bind_ctx *c, const char *slot)
{
	for (int i = 0; i < c->n_late; i++)
		if (!strcmp(c->late[i], slot))
			return 1;
	return 0;
}

static int do_write(struct gv_bind_ctx *c, const char *slot, const char *rel, const char *value)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", c->root, rel);
	int rc = gv_write_timeout(path, value, c->timeout_ms);
	if (rc == -ETIMEDOUT)
		note_late(c, slot);
	return rc;
}

static int set_override(struct gv_bind_ctx *c, const char *slot, const char *drv)
{
	char rel[128], b[96];
	snprintf(rel, sizeof(rel), "sys/bus/pci/devices/%s/driver_override", slot);
	int rc = do_write(c, slot, rel, drv[0] ? drv : "\n");
	if (override_is(c->root, slot, drv))
		return 0;
	return fail(c, rc ? rc : -EIO, "%s: setting driver_override to \"%s\": %s", slot, drv,
		    rc ? why(rc, c->timeout_ms, b, sizeof(b)) : "the value did not stick");
}

static int unbind(struct gv_bind_ctx *c, const char *slot)
{
	char cur[64], rel[160], b[96];
	if (gv_driver_of(c->root, slot, cur, sizeof(cur)) < 0 || !cur[0])
		return 0;
	snprintf(rel, sizeof(rel), "sys/bus/pci/drivers/%s/unbind", cur);
	int rc = do_write(c, slot, rel, slot);
	if (drv_is(c->root, slot, ""))
		return 0;
	return fail(c, rc ? rc : -EIO, "%s: unbinding from %s: %s", slot, cur,
		    rc ? why(rc, c->timeout_ms, b, sizeof(b)) : "the driver still holds it");
}

/* drivers_probe, then an explicit bind if probing chose another driver. */
static int attach(struct gv_bind_ctx *c, const char *slot, const char *drv)
{
	char rel[160], b[96], cur[64] = "";
	int rc = do_write(c, slot, "sys/bus/pci/drivers_probe", slot);
	if (drv_is(c->root, slot, drv))
		return 0;
	gv_driver_of(c->root, slot, cur, sizeof(cur));
	if (!cur[0]) {
		snprintf(rel, sizeof(rel), "sys/bus/pci/drivers/%s/bind", drv);
		rc = do_write(c, slot, rel, slot);
		if (drv_is(c->root, slot, drv))
			return 0;
		gv_driver_of(c->root, slot, cur, sizeof(cur));
	}
	if (cur[0] && strcmp(cur, drv))
		return fail(c, -EIO, "%s: binding to %s: %s took it", slot, drv, cur);
	return fail(c, rc ? rc : -EIO, "%s: binding to %s: %s", slot, drv,
		    rc ? why(rc, c->timeout_ms, b, sizeof(b)) : "no driver took it");
}

static int bind_one(struct gv_bind_ctx *c, const char *slot)
{
	char cur[64];
	int rc = gv_driver_of(c->root, slot, cur, sizeof(cur));
	if (rc < 0)
		return fail(c, rc, "%s: reading its driver: %s", slot, strerror(-rc));
	const struct gv_bound *b = gv_store_bound(c->store, slot);
	if (b && strcmp(b->vm, c->vm))
		return fail(c, -EBUSY, "%s: bound for VM %s", slot, b->vm);
	if (!b) {
		if ((rc = gv_store_add_bound(c->store, slot, c->vm, cur)) < 0 ||
		    (rc = gv_store_save(c->store)) < 0)
			return fail(c, rc, "%s: recording its driver: %s", slot, strerror(-rc));
	}
	if (!strcmp(cur, "vfio-pci"))
		return 0;
	if ((rc = set_override(c, slot, "vfio-pci")) < 0 || (rc = unbind(c, slot)) < 0 ||
	    (rc = attach(c, slot, "vfio-pci")) < 0)
		return rc;
	return 0;
}

static void pause_helpers(struct gv_bind_ctx *c, int on)
{
	if (c->pause)
		c->pause(c->pause_data, on);
}

int gv_bind(struct gv_bind_ctx *c, const struct gv_host *h, char (*slots)[GV_SLOT_LEN], int n)
{
	int rc = 0;
	c->err[0] = 0;
	c->n_late = 0;
	pause_helpers(c, 1);
	for (int i = 0; i < n && !rc; i++) {
		const struct gv_dev *d = gv_find(h, slots[i]);
		if (!d) {
			rc = fail(c, -ENODEV, "%s: no such PCI device", slots[i]);
			break;
		}
		/* vfio needs the whole group: its endpoints, not the bridges */
		for (int k = 0; k < d->n_members && !rc; k++) {
			const struct gv_dev *m = gv_find(h, d->members[k]);
			if (m && gv_is_endpoint(m))
				rc = bind_one(c, m->slot);
		}
	}
	pause_helpers(c, 0);
	if (rc < 0) {
		char keep[sizeof(c->err)];
		snprintf(keep, sizeof(keep), "%s", c->err);
		gv_restore(c);
		snprintf(c->err, sizeof(c->err), "%s", keep);
	}
	return rc;
}

static int restore_one(struct gv_bind_ctx *c, const struct gv_bound *b)
{
	char cur[64];
	int rc = gv_driver_of(c->root, b->slot, cur, sizeof(cur));
	if (rc < 0)
		return fail(c, rc, "%s: reading its driver: %s", b->slot, strerror(-rc));
	if (!strcmp(b->orig, "vfio-pci"))
		return 0; /* it was there before us: left as found */
	if ((rc = set_override(c, b->slot, "")) < 0)
		return rc;
	if (strcmp(cur, b->orig) && (rc = unbind(c, b->slot)) < 0)
		return rc;
	if (b->orig[0] && !drv_is(c->root, b->slot, b->orig))
		return attach(c, b->slot, b->orig);
	return 0;
}

int gv_restore(struct gv_bind_ctx *c)
{
	int first = 0;
	pause_helpers(c, 1);
	for (int i = 0; i < c->store->n_bound;) {
		struct gv_bound b = c->store->bound[i];
		if (c->vm && strcmp(b.vm, c->vm)) {
			i++;
			continue;
		}
		int rc = restore_one(c, &b);
		if (rc == 0 && is_late(c, b.slot)) {
			/* looks restored, but a write to it may still land */
			i++;
			continue;
		}
		if (rc < 0) {
			/* kept: a later restore (POST_STOP again, a restart) retries */
			if (!first)
				first = rc;
			i++;
			continue;
		}
		gv_store_del_bound(c->store, b.slot);
		if ((rc = gv_store_save(c->store)) < 0 && !first)
			first = fail(c, rc, "saving %s: %s", c->store->path, strerror(-rc));
	}
	pause_helpers(c, 0);
	return first;
}

static int is_persistenced(const char *comm);

static int find_persistenced(const char *root, int *pids, int max)
{
	char dir[PATH_MAX];
	int n = 0;
	snprintf(dir, sizeof(dir), "%s/proc", root);
	DIR *d = opendir(dir);
	struct dirent *e;
	if (!d)
		return 0;
	while ((e = readdir(d)) && n < max) {
		char path[PATH_MAX + 300], comm[64] = "";
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "%s/%s/comm", dir, e->d_name);
		FILE *f = fopen(path, "re");
		if (!f)
			continue;
		if (!fgets(comm, sizeof(comm), f))
			comm[0] = 0;
		fclose(f);
		comm[strcspn(comm, "\n")] = 0;
		if (is_persistenced(comm))
			pids[n++] = atoi(e->d_name);
	}
	closedir(d);
	return n;
}

static int is_persistenced(const char *comm)
{
	/* comm is cut at 15 characters */
	return !strcmp(comm, "nvidia-persiste") || !strcmp(comm, "nvidia-persistenced");
}

void gv_pause_persistenced(void *data, int on)
{
	struct gv_pause *p = data;
	if (on)
		p->n = find_persistenced(p->root, p->pids, 8);
	for (int i = 0; i < p->n; i++) {
		char path[64], comm[32] = "";
		snprintf(path, sizeof(path), "/proc/%d/comm", p->pids[i]);
		FILE *f = fopen(path, "re");
		if (f) {
			if (!fgets(comm, sizeof(comm), f))
				comm[0] = 0;
			fclose(f);
		}
		comm[strcspn(comm, "\n")] = 0;
		if (is_persistenced(comm))
			kill(p->pids[i], on ? SIGSTOP : SIGCONT);
	}
	if (!on)
		p->n = 0;
}
