/*
 * backend-libvirt: runs VMs as transient libvirt domains through the libvirt
 * C API, at the URI of plugin.backend-libvirt.uri (qemu:///system by
 * default; any URI libvirt reaches: qemu+ssh://, qemu+tls://, ...).
 *
 * Identity. A VM's domain is named <name_prefix><VM name> ("cvmm-web1", so
 * that `virsh list` says which is which) and has the VM's id as its UUID;
 * its XML carries <cvmm:vm id='UUID'/> in the https://cvmm.dev/xmlns/1
 * metadata namespace. cvmm acts only on a domain whose UUID, name and
 * metadata all match a VM of its own: any other domain, even one named
 * cvmm-*, is never stopped, destroyed or adopted.
 *
 * Transient domains (virDomainCreateXML): a stopped VM leaves no definition
 * behind in libvirt, and re-adoption after a daemon restart is a lookup by
 * UUID of a running domain; libvirt itself keeps transient domains across
 * its own restarts.
 *
 * Exit detection is libvirt's lifecycle events, delivered on the daemon's
 * loop (event_impl.c): a STOPPED event for a domain of ours that nobody
 * asked to stop becomes host->vm_exited(). Stop and kill wait for that same
 * event, so no event of an old boot can reach the next one. A lost
 * connection is reopened by a keeper thread while VMs run (and by the next
 * operation otherwise), and then what ended meanwhile is reported.
 */
#include "event_impl.h"
#include "render_xml.h"

#include <cvmm/plugin.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DESTROY_WAIT_S 15 /* libvirt's destroy: SIGTERM, then SIGKILL after 10 s */
#define EVENT_GRACE_S 2   /* after a domain is seen inactive, for its event */
#define KEEPALIVE_INTERVAL 5
#define KEEPALIVE_COUNT 3
#define RECONNECT_EVERY_S 2

static const struct cvmm_host_api *host;
static cvmm_plugin *self;

static struct {
	char uri[512];
	char type[8];
	char emulator[256];
	char name_prefix[32];
	char dac_label[64];
	int vsock;
	int adopt_wait_s;
} conf;

/* ---- small helpers ---- */

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *lv_msg(void)
{
	const char *m = virGetLastErrorMessage();
	return m && *m ? m : "unknown libvirt error";
}

/* libvirt prints every error to stderr unless told otherwise; cvmm reports
 * them itself, once, where they happen. */
static void quiet_errors(void *data, virErrorPtr e)
{
}

static void domain_name(cvmm_vm *vm, char *out, size_t len)
{
	lv_domain_name(conf.name_prefix, host->vm_name(vm), out, len);
}

static void render_opts(struct lv_opts *o)
{
	*o = (struct lv_opts){.type = conf.type,
	                      .emulator = conf.emulator,
	                      .name_prefix = conf.name_prefix,
	                      .dac_label = conf.dac_label,
	                      .vsock = conf.vsock};
}

/* ---- the domains of our running VMs: UUID -> VM ---- */

struct dom {
	char uuid[VIR_UUID_STRING_BUFLEN];
	cvmm_vm *vm;
	int running;  /* a STOPPED event now is an exit nobody asked for */
	int stopping; /* stop or kill is under way */
	int gone;     /* a STOPPED event came since the entry was (re)armed */
	int id;       /* libvirt's domain id of this boot, 0 if unknown */
	struct dom *next;
};

static pthread_mutex_t tbl_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tbl_cond = PTHREAD_COND_INITIALIZER;
static struct dom *table;

/* Caller holds tbl_mu. libvirt writes UUIDs in lower case. */
static struct dom *dom_find(const char *uuid)
{
	for (struct dom *e = table; e; e = e->next)
		if (!strcasecmp(e->uuid, uuid))
			return e;
	return NULL;
}

/* Caller holds tbl_mu. The entry of vm, created if missing. */
static struct dom *dom_get(cvmm_vm *vm)
{
	struct dom *e = dom_find(host->vm_id(vm));
	if (e)
		return e;
	e = calloc(1, sizeof(*e));
	if (!e)
		abort();
	snprintf(e->uuid, sizeof(e->uuid), "%s", host->vm_id(vm));
	e->vm = vm;
	e->next = table;
	table = e;
	return e;
}

static void dom_drop(const char *uuid)
{
	pthread_mutex_lock(&tbl_mu);
	for (struct dom **pp = &table; *pp; pp = &(*pp)->next)
		if (!strcasecmp((*pp)->uuid, uuid)) {
			struct dom *e = *pp;
			*pp = e->next;
			free(e);
			break;
		}
	pthread_cond_broadcast(&tbl_cond);
	pthread_mutex_unlock(&tbl_mu);
}

static int running_count(void)
{
	int n = 0;
	pthread_mutex_lock(&tbl_mu);
	for (struct dom *e = table; e; e = e->next)
		n += e->running;
	pthread_mutex_unlock(&tbl_mu);
	return n;
}

static const char *stopped_reason(int detail)
{
	switch (detail) {
	case VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN:
		return "libvirt: the guest shut down";
	case VIR_DOMAIN_EVENT_STOPPED_DESTROYED:
		return "libvirt: the domain was destroyed";
	case VIR_DOMAIN_EVENT_STOPPED_CRASHED:
		return "libvirt: the guest crashed";
	case VIR_DOMAIN_EVENT_STOPPED_MIGRATED:
		return "libvirt: the domain migrated away";
	case VIR_DOMAIN_EVENT_STOPPED_SAVED:
		return "libvirt: the domain was saved";
	case VIR_DOMAIN_EVENT_STOPPED_FAILED:
		return "libvirt: the emulator failed or was killed";
	}
	return "libvirt: the domain stopped";
}

/* Loop thread (libvirt dispatches events from a timer of event_impl). */
static int lifecycle_cb(virConnectPtr c, virDomainPtr d, int event, int detail, void *opaque)
{
	if (event != VIR_DOMAIN_EVENT_STOPPED)
		return 0;
	char uuid[VIR_UUID_STRING_BUFLEN];
	if (virDomainGetUUIDString(d, uuid) < 0)
		return 0;
	unsigned int id = virDomainGetID(d);
	pthread_mutex_lock(&tbl_mu);
	struct dom *e = dom_find(uuid);
	/* Not one of ours, or (when libvirt says) another boot's domain. */
	if (!e || (e->id > 0 && id != (unsigned int)-1 && id != (unsigned int)e->id)) {
		pthread_mutex_unlock(&tbl_mu);
		return 0;
	}
	e->gone = 1;
	pthread_cond_broadcast(&tbl_cond);
	if (e->running && !e->stopping) {
		e->running = 0;
		host->log(self, CVMM_LOG_INFO, "VM '%s': domain '%s' stopped (%s)",
		          host->vm_name(e->vm), virDomainGetName(d), stopped_reason(detail));
		/* Under tbl_mu: the VM cannot be removed (cleanup drops the
		 * entry first) while the host takes note. */
		host->vm_exited(e->vm, stopped_reason(detail));
	}
	pthread_mutex_unlock(&tbl_mu);
	return 0;
}

/* ---- the connection ---- */

static pthread_mutex_t conn_mu = PTHREAD_MUTEX_INITIALIZER;
static virConnectPtr conn;       /* under conn_mu */
static int conn_cb_id = -1;      /* lifecycle callback on conn */
static volatile int conn_broken; /* set by the close callback */

static pthread_mutex_t info_mu = PTHREAD_MUTEX_INITIALIZER;
static char info[512]; /* what describe() says about the connection */

static pthread_mutex_t keeper_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t keeper_cond = PTHREAD_COND_INITIALIZER;
static int keeper_kick;

static void set_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void set_info(const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&info_mu);
	va_start(ap, fmt);
	vsnprintf(info, sizeof(info), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&info_mu);
}

static void version_str(unsigned long v, char *out, size_t len)
{
	snprintf(out, len, "%lu.%lu.%lu", v / 1000000, v / 1000 % 1000, v % 1000);
}

/* Loop thread, or inside a libvirt call: only flags and leaf locks. */
static void close_cb(virConnectPtr c, int reason, void *opaque)
{
	if (reason == VIR_CONNECT_CLOSE_REASON_CLIENT)
		return;
	__atomic_store_n(&conn_broken, 1, __ATOMIC_SEQ_CST);
	set_info("libvirt at %s, domain type %s: connection lost (%s); reconnecting", conf.uri,
	         conf.type,
	         reason == VIR_CONNECT_CLOSE_REASON_EOF         ? "closed by the daemon"
	         : reason == VIR_CONNECT_CLOSE_REASON_KEEPALIVE ? "keepalive timeout"
	                                                        : "error");
	pthread_mutex_lock(&keeper_mu);
	keeper_kick = 1;
	pthread_cond_signal(&keeper_cond);
	pthread_mutex_unlock(&keeper_mu);
}

/* Caller holds conn_mu. */
static void conn_drop(void)
{
	if (!conn)
		return;
	if (conn_cb_id >= 0)
		virConnectDomainEventDeregisterAny(conn, conn_cb_id);
	virConnectUnregisterCloseCallback(conn, close_cb);
	virConnectClose(conn);
	conn = NULL;
	conn_cb_id = -1;
}

/* Caller holds conn_mu. Opens conn and subscribes to lifecycle events;
 * on failure the reason is in err. */
static int conn_open(char *err, size_t errlen)
{
	virConnectPtr c = virConnectOpen(conf.uri);
	if (!c) {
		snprintf(err, errlen, "cannot connect: %s", lv_msg());
		set_info("libvirt at %s, domain type %s: not connected: %s", conf.uri, conf.type,
		         err);
		return -EIO;
	}
	/* Keepalive needs an event loop: ours. Local drivers refuse it. */
	virConnectSetKeepAlive(c, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT);
	int id =
	    virConnectDomainEventRegisterAny(c, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
	                                     VIR_DOMAIN_EVENT_CALLBACK(lifecycle_cb), NULL, NULL);
	if (id < 0) {
		snprintf(err, errlen, "cannot subscribe to domain events: %s", lv_msg());
		virConnectClose(c);
		set_info("libvirt at %s, domain type %s: not connected: %s", conf.uri, conf.type,
		         err);
		return -EIO;
	}
	virConnectRegisterCloseCallback(c, close_cb, NULL, NULL);
	__atomic_store_n(&conn_broken, 0, __ATOMIC_SEQ_CST);
	conn = c;
	conn_cb_id = id;
	unsigned long lib = 0, daemon = 0, hv = 0;
	char lv[32] = "?", dv[32] = "?", hvv[32] = "?";
	if (virGetVersion(&lib, NULL, NULL) == 0)
		version_str(lib, lv, sizeof(lv));
	if (virConnectGetLibVersion(c, &daemon) == 0)
		version_str(daemon, dv, sizeof(dv));
	if (virConnectGetVersion(c, &hv) == 0)
		version_str(hv, hvv, sizeof(hvv));
	set_info("libvirt %s at %s, domain type %s: connected (daemon %s, hypervisor %s %s)", lv,
	         conf.uri, conf.type, dv, virConnectGetType(c) ? virConnectGetType(c) : "?", hvv);
	host->log(self, CVMM_LOG_INFO, "connected to %s (libvirt %s, %s %s)", conf.uri, dv,
	          virConnectGetType(c) ? virConnectGetType(c) : "?", hvv);
	return 0;
}

/* A live connection, (re)opened if needed, with a reference the caller
 * drops with virConnectClose(). NULL with the reason in err. */
static virConnectPtr conn_get_err(char *err, size_t errlen, int *reopened)
{
	virConnectPtr c = NULL;
	pthread_mutex_lock(&conn_mu);
	if (conn &&
	    (__atomic_load_n(&conn_broken, __ATOMIC_SEQ_CST) || virConnectIsAlive(conn) != 1)) {
		host->log(self, CVMM_LOG_WARN, "the connection to %s was lost; reconnecting",
		          conf.uri);
		conn_drop();
	}
	if (!conn) {
		if (conn_open(err, errlen) < 0)
			goto out;
		if (reopened)
			*reopened = 1;
	}
	virConnectRef(conn);
	c = conn;
out:
	pthread_mutex_unlock(&conn_mu);
	return c;
}

static void reconcile(virConnectPtr c);

/* The connection as it is, with a reference, or NULL when there is none or
 * it is broken: for callers that must not block on a reconnect (a metrics
 * scrape on an API thread; the next lifecycle call reconnects). */
static virConnectPtr conn_peek(void)
{
	virConnectPtr c = NULL;
	pthread_mutex_lock(&conn_mu);
	if (conn && !__atomic_load_n(&conn_broken, __ATOMIC_SEQ_CST)) {
		virConnectRef(conn);
		c = conn;
	}
	pthread_mutex_unlock(&conn_mu);
	return c;
}

/* The same, with the failure reported on vm. */
static virConnectPtr conn_get(cvmm_vm *vm)
{
	char err[768];
	int reopened = 0;
	virConnectPtr c = conn_get_err(err, sizeof(err), &reopened);
	if (!c) {
		host->error(self, vm, -EIO, "VM '%s': libvirt at %s: %s", host->vm_name(vm),
		            conf.uri, err);
		return NULL;
	}
	if (reopened)
		reconcile(c);
	return c;
}

/*
 * After a reconnection: events of the time without a connection are lost,
 * so each VM we believe running is looked up, and one whose domain is gone
 * is reported as exited.
 */
static void reconcile(virConnectPtr c)
{
	char(*uuids)[VIR_UUID_STRING_BUFLEN] = NULL;
	int n = 0;
	pthread_mutex_lock(&tbl_mu);
	for (struct dom *e = table; e; e = e->next)
		if (e->running && !e->stopping) {
			void *nu = realloc(uuids, sizeof(*uuids) * (size_t)(n + 1));
			if (!nu)
				abort();
			uuids = nu;
			memcpy(uuids[n++], e->uuid, sizeof(*uuids));
		}
	pthread_mutex_unlock(&tbl_mu);
	for (int i = 0; i < n; i++) {
		virDomainPtr d = virDomainLookupByUUIDString(c, uuids[i]);
		int active = d ? virDomainIsActive(d) : 0;
		if (!d && virGetLastErrorCode() != VIR_ERR_NO_DOMAIN)
			active = -1; /* cannot tell: leave it */
		if (d)
			virDomainFree(d);
		if (active != 0)
			continue;
		pthread_mutex_lock(&tbl_mu);
		struct dom *e = dom_find(uuids[i]);
		if (e && e->running && !e->stopping) {
			e->running = 0;
			e->gone = 1;
			host->vm_exited(e->vm,
			                "libvirt: the domain ended while the connection was down");
		}
		pthread_cond_broadcast(&tbl_cond);
		pthread_mutex_unlock(&tbl_mu);
	}
	free(uuids);
}

/* Reopens a lost connection while VMs run, so that their exits are seen
 * without waiting for the next operation. */
static void *keeper_main(void *arg)
{
	pthread_mutex_lock(&keeper_mu);
	for (;;) {
		while (!keeper_kick)
			pthread_cond_wait(&keeper_cond, &keeper_mu);
		keeper_kick = 0;
		pthread_mutex_unlock(&keeper_mu);
		host->log(self, CVMM_LOG_WARN, "the connection to %s closed", conf.uri);
		while (running_count() > 0) {
			char err[768];
			int reopened = 0;
			virConnectPtr c = conn_get_err(err, sizeof(err), &reopened);
			if (c) {
				if (reopened)
					reconcile(c);
				virConnectClose(c);
				break;
			}
			host->log(self, CVMM_LOG_WARN, "libvirt at %s: %s; retrying in %d s",
			          conf.uri, err, RECONNECT_EVERY_S);
			sleep(RECONNECT_EVERY_S);
		}
		pthread_mutex_lock(&keeper_mu);
	}
	return NULL;
}

/* ---- domains ---- */

/*
 * The VM's domain if it exists and is ours. Returns the domain, or NULL
 * with *rc = 0 (no such domain of ours) or a negative errno (reported).
 */
static virDomainPtr lookup_ours(virConnectPtr c, cvmm_vm *vm, int *rc)
{
	*rc = 0;
	virDomainPtr d = virDomainLookupByUUIDString(c, host->vm_id(vm));
	if (!d) {
		if (virGetLastErrorCode() == VIR_ERR_NO_DOMAIN)
			return NULL;
		*rc =
		    host->error(self, vm, -EIO, "VM '%s': libvirt at %s: looking up domain %s: %s",
		                host->vm_name(vm), conf.uri, host->vm_id(vm), lv_msg());
		return NULL;
	}
	char want[128];
	domain_name(vm, want, sizeof(want));
	const char *name = virDomainGetName(d);
	char *md = virDomainGetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, LV_XMLNS,
	                                virDomainIsActive(d) == 1 ? VIR_DOMAIN_AFFECT_LIVE : 0);
	int ours = name && !strcmp(name, want) && lv_metadata_is_ours(md, host->vm_id(vm));
	free(md);
	if (!ours) {
		host->log(self, CVMM_LOG_WARN,
		          "VM '%s': libvirt domain '%s' has the VM's UUID but is not cvmm's (no "
		          "matching name and <cvmm:vm> metadata); leaving it alone",
		          host->vm_name(vm), name ? name : "?");
		virDomainFree(d);
		return NULL;
	}
	return d;
}

/*
 * Waits up to timeout_s for the STOPPED event of the VM's domain. libvirt is
 * asked every second too, in case an event is lost; once the domain is seen
 * inactive the event gets EVENT_GRACE_S more. Returns 1 if gone, 0 if not.
 */
static int wait_gone(cvmm_vm *vm, virDomainPtr d, double timeout_s)
{
	double end = mono() + timeout_s, inactive_at = 0;
	int gone = 0;
	pthread_mutex_lock(&tbl_mu);
	for (;;) {
		struct dom *e = dom_find(host->vm_id(vm));
		if (!e || e->gone) {
			gone = 1;
			break;
		}
		double now = mono();
		if (inactive_at > 0 && now - inactive_at >= EVENT_GRACE_S) {
			gone = 1;
			break;
		}
		if (now >= end && inactive_at == 0)
			break;
		double slice = now + 1.0 < end ? now + 1.0 : end;
		if (inactive_at > 0)
			slice = inactive_at + EVENT_GRACE_S;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		double rel = slice - now;
		if (rel < 0.01)
			rel = 0.01;
		ts.tv_sec += (time_t)rel;
		ts.tv_nsec += (long)((rel - (double)(time_t)rel) * 1e9);
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		int r = pthread_cond_timedwait(&tbl_cond, &tbl_mu, &ts);
		if (r == ETIMEDOUT && inactive_at == 0) {
			pthread_mutex_unlock(&tbl_mu);
			int active = virDomainIsActive(d);
			pthread_mutex_lock(&tbl_mu);
			if (active == 0)
				inactive_at = mono();
		}
	}
	pthread_mutex_unlock(&tbl_mu);
	return gone;
}

/* Marks the VM's entry as being stopped by us; returns it armed. */
static void arm_stop(cvmm_vm *vm)
{
	pthread_mutex_lock(&tbl_mu);
	struct dom *e = dom_get(vm);
	e->stopping = 1;
	e->gone = 0;
	pthread_mutex_unlock(&tbl_mu);
}

static void disarm(cvmm_vm *vm)
{
	pthread_mutex_lock(&tbl_mu);
	struct dom *e = dom_find(host->vm_id(vm));
	if (e) {
		e->running = 0;
		e->stopping = 0;
	}
	pthread_mutex_unlock(&tbl_mu);
}

static int destroy_and_wait(cvmm_vm *vm, virDomainPtr d)
{
	if (virDomainDestroy(d) < 0 && virDomainIsActive(d) == 1) {
		return host->error(self, vm, -EIO,
		                   "VM '%s': libvirt at %s: cannot destroy domain '%s': %s",
		                   host->vm_name(vm), conf.uri, virDomainGetName(d), lv_msg());
	}
	if (!wait_gone(vm, d, DESTROY_WAIT_S))
		return host->error(
		    self, vm, -ETIMEDOUT,
		    "VM '%s': libvirt at %s: domain '%s' still runs %d s after destroy",
		    host->vm_name(vm), conf.uri, virDomainGetName(d), DESTROY_WAIT_S);
	return 0;
}

/* ---- backend ops ---- */

static void xml_copy_path(cvmm_vm *vm, char *out, size_t len)
{
	snprintf(out, len, "%s/domain.xml", host->vm_run_dir(vm));
}

/* Whether libvirt at c can launch confidential type `type` as our domain
 * type: 1, or 0 with the reason (libvirt's own words when it cannot even
 * say) in why. */
static int domcaps_allow(virConnectPtr c, const char *type, char *why, size_t len)
{
	const char *emu = conf.emulator[0] ? conf.emulator : NULL;
	char *caps = virConnectGetDomainCapabilities(c, emu, "x86_64", NULL, conf.type, 0);
	if (!caps) {
		snprintf(why, len, "its domain capabilities for domain type %s cannot be read: %s",
		         conf.type, lv_msg());
		return 0;
	}
	int ok = lv_domcaps_cc(caps, type, why, len);
	free(caps);
	return ok;
}

/* The libvirt version at c, "?" when it does not say. */
static void daemon_version(virConnectPtr c, char *out, size_t len)
{
	unsigned long v = 0;
	if (virConnectGetLibVersion(c, &v) == 0)
		version_str(v, out, len);
	else
		snprintf(out, len, "?");
}

/* A confidential guest on a host whose libvirt says it cannot run one is
 * refused before anything is made, with libvirt's reason. */
static int check_confidential(cvmm_vm *vm, const struct cvmm_launch_spec *spec)
{
	const struct cvmm_spec_confidential *cc = lv_confidential(spec);
	if (!cc)
		return 0;
	virConnectPtr c = conn_get(vm);
	if (!c)
		return -EIO;
	char why[768], ver[32];
	int ok = domcaps_allow(c, lv_cc_type(cc), why, sizeof(why));
	daemon_version(c, ver, sizeof(ver));
	virConnectClose(c);
	if (ok)
		return 0;
	return host->error(self, vm, -ENOTSUP,
	                   "VM '%s': confidential.type '%s': libvirt %s at %s cannot launch it "
	                   "(domain type %s): %s",
	                   host->vm_name(vm), lv_cc_type(cc), ver, conf.uri, conf.type, why);
}

static int lv_start(void *data, cvmm_vm *vm, const struct cvmm_launch_spec *spec)
{
	struct lv_opts o;
	char err[1024], name[128];
	char *xml = NULL;
	int r = check_confidential(vm, spec);
	if (r < 0)
		return r;
	render_opts(&o);
	r = lv_render(spec, &o, &xml, err, sizeof(err));
	if (r < 0)
		return host->error(self, vm, r, "VM '%s': cannot render the domain XML: %s",
		                   host->vm_name(vm), err);
	domain_name(vm, name, sizeof(name));
	/* What cvmm handed libvirt, for the operator (and the benchmark). */
	char path[600];
	xml_copy_path(vm, path, sizeof(path));
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd >= 0) {
		size_t left = strlen(xml);
		const char *p = xml;
		while (left) {
			ssize_t w = write(fd, p, left);
			if (w <= 0)
				break;
			p += w;
			left -= (size_t)w;
		}
		close(fd);
	}
	virConnectPtr c = conn_get(vm);
	if (!c) {
		free(xml);
		return -EIO;
	}
	pthread_mutex_lock(&tbl_mu);
	struct dom *e = dom_get(vm);
	e->vm = vm;
	e->running = e->stopping = e->gone = 0;
	e->id = 0;
	pthread_mutex_unlock(&tbl_mu);
	virDomainPtr d = virDomainCreateXML(c, xml, VIR_DOMAIN_NONE);
	free(xml);
	if (!d) {
		r = host->error(self, vm, -EIO,
		                "VM '%s': libvirt at %s: cannot start domain '%s': %s",
		                host->vm_name(vm), conf.uri, name, lv_msg());
		dom_drop(host->vm_id(vm));
		virConnectClose(c);
		return r;
	}
	pthread_mutex_lock(&tbl_mu);
	e = dom_get(vm);
	e->id = (int)virDomainGetID(d);
	e->running = 1;
	pthread_mutex_unlock(&tbl_mu);
	/* It may have ended before it was marked running, unseen. */
	if (virDomainIsActive(d) != 1) {
		r = host->error(
		    self, vm, -EIO,
		    "VM '%s': libvirt at %s: domain '%s' stopped right after it started",
		    host->vm_name(vm), conf.uri, name);
		dom_drop(host->vm_id(vm));
		virDomainFree(d);
		virConnectClose(c);
		return r;
	}
	host->log(self, CVMM_LOG_INFO, "VM '%s': domain '%s' (id %d) running at %s",
	          host->vm_name(vm), name, e->id, conf.uri);
	virDomainFree(d);
	virConnectClose(c);
	return 0;
}

static int lv_stop(void *data, cvmm_vm *vm, uint32_t timeout_s)
{
	virConnectPtr c = conn_get(vm);
	if (!c)
		return -EIO;
	int r;
	virDomainPtr d = lookup_ours(c, vm, &r);
	if (!d) {
		disarm(vm);
		virConnectClose(c);
		return r; /* 0: already gone */
	}
	arm_stop(vm);
	if (virDomainShutdownFlags(d, VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN) == 0) {
		if (wait_gone(vm, d, timeout_s)) {
			host->log(self, CVMM_LOG_INFO, "VM '%s': powered off", host->vm_name(vm));
			goto done;
		}
		host->log(self, CVMM_LOG_WARN,
		          "VM '%s': guest did not power off within %u s; destroying the domain",
		          host->vm_name(vm), timeout_s);
	} else if (virDomainIsActive(d) == 0) {
		goto done;
	} else {
		host->log(self, CVMM_LOG_WARN, "VM '%s': ACPI shutdown refused (%s); destroying",
		          host->vm_name(vm), lv_msg());
	}
	r = destroy_and_wait(vm, d);
done:
	if (r == 0)
		disarm(vm);
	virDomainFree(d);
	virConnectClose(c);
	return r;
}

static int lv_kill(void *data, cvmm_vm *vm)
{
	virConnectPtr c = conn_get(vm);
	if (!c)
		return -EIO;
	int r;
	virDomainPtr d = lookup_ours(c, vm, &r);
	if (!d) {
		disarm(vm);
		virConnectClose(c);
		return r;
	}
	arm_stop(vm);
	r = destroy_and_wait(vm, d);
	if (r == 0)
		disarm(vm);
	virDomainFree(d);
	virConnectClose(c);
	return r;
}

static int lv_adopt(void *data, cvmm_vm *vm)
{
	/* libvirtd may still be coming up with the host: wait a while rather
	 * than declare running VMs gone (their networks would be torn down). */
	char err[768];
	int reopened = 0;
	double end = mono() + conf.adopt_wait_s;
	virConnectPtr c;
	while (!(c = conn_get_err(err, sizeof(err), &reopened)) && mono() < end)
		sleep(1);
	if (!c)
		return host->error(self, vm, -EIO, "VM '%s': libvirt at %s: %s (waited %d s)",
		                   host->vm_name(vm), conf.uri, err, conf.adopt_wait_s);
	int r;
	virDomainPtr d = lookup_ours(c, vm, &r);
	if (!d) {
		virConnectClose(c);
		return r;
	}
	pthread_mutex_lock(&tbl_mu);
	struct dom *e = dom_get(vm);
	e->vm = vm;
	e->id = (int)virDomainGetID(d);
	e->running = 1;
	e->stopping = e->gone = 0;
	pthread_mutex_unlock(&tbl_mu);
	/* Checked after the entry exists, so that an exit right now is seen
	 * either here or as an event. */
	int active = virDomainIsActive(d);
	if (active != 1) {
		dom_drop(host->vm_id(vm));
		virDomainFree(d);
		virConnectClose(c);
		return 0;
	}
	host->log(self, CVMM_LOG_INFO, "VM '%s': re-adopted domain '%s' (id %d) at %s",
	          host->vm_name(vm), virDomainGetName(d), e->id, conf.uri);
	virDomainFree(d);
	if (reopened)
		reconcile(c);
	virConnectClose(c);
	return 1;
}

static int lv_cleanup(void *data, cvmm_vm *vm)
{
	dom_drop(host->vm_id(vm));
	char path[600];
	xml_copy_path(vm, path, sizeof(path));
	unlink(path);
	return 0;
}

static int lv_describe(void *data, char *buf, size_t len)
{
	pthread_mutex_lock(&info_mu);
	snprintf(buf, len, "%s", info);
	pthread_mutex_unlock(&info_mu);
	return 0;
}

static int lv_render_op(void *data, const struct cvmm_launch_spec *spec, char *buf, size_t len)
{
	struct lv_opts o;
	char err[512], *xml = NULL;
	render_opts(&o);
	int r = lv_render(spec, &o, &xml, err, sizeof(err));
	if (r < 0)
		return host->error(self, NULL, r, "%s", err);
	size_t n = strlen(xml);
	if (n + 1 > len) {
		free(xml);
		return -ENOSPC;
	}
	memcpy(buf, xml, n + 1);
	free(xml);
	return (int)n;
}


/* ---- pause, resume, snapshots (ABI 1.2, issue 11) ---- */

static int lv_pause_op(cvmm_vm *vm, int pause)
{
	virConnectPtr c = conn_get(vm);
	if (!c)
		return -EIO;
	int r;
	virDomainPtr d = lookup_ours(c, vm, &r);
	if (!d) {
		virConnectClose(c);
		return r < 0 ? r
			     : host->error(self, vm, -ESRCH, "VM '%s': libvirt at %s: no domain of it runs",
					   host->vm_name(vm), conf.uri);
	}
	if ((pause ? virDomainSuspend(d) : virDomainResume(d)) < 0)
		r = host->error(self, vm, -EIO, "VM '%s': libvirt at %s: cannot %s domain '%s': %s",
				host->vm_name(vm), conf.uri, pause ? "suspend" : "resume",
				virDomainGetName(d), lv_msg());
	else
		host->log(self, CVMM_LOG_INFO, "VM '%s': domain %s", host->vm_name(vm),
			  pause ? "suspended" : "resumed");
	virDomainFree(d);
	virConnectClose(c);
	return r;
}

static int lv_pause(void *data, cvmm_vm *vm)
{
	return lv_pause_op(vm, 1);
}

static int lv_resume(void *data, cvmm_vm *vm)
{
	return lv_pause_op(vm, 0);
}

static int lv_is_paused(void *data, cvmm_vm *vm)
{
	virConnectPtr c = conn_get(vm);
	if (!c)
		return -EIO;
	int r, state = 0, reason = 0;
	virDomainPtr d = lookup_ours(c, vm, &r);
	if (d) {
		if (virDomainGetState(d, &state, &reason, 0) < 0)
			r = host->error(self, vm, -EIO, "VM '%s': libvirt at %s: domain state: %s",
					host->vm_name(vm), conf.uri, lv_msg());
		else
			r = state == VIR_DOMAIN_PAUSED;
		virDomainFree(d);
	} else if (r == 0) {
		r = -ESRCH;
	}
	virConnectClose(c);
	return r;
}

/* For GET /metrics, so quiet: no error on the VM, no log line per scrape.
 * cpuTime is libvirt's sum over the domain's QEMU threads (its cgroup, or
 * /proc where there is none). The lookup wants the VM's UUID and name, as
 * every operation here does; the metadata check, one more round trip per
 * VM and scrape, is left to the operations that change something. */
static int lv_cpu_time(void *data, cvmm_vm *vm, uint64_t *ns)
{
	(void)data;
	/* Only on a live connection: a scrape never reconnects (nor runs the
	 * reconcile of one) on the API's thread. */
	virConnectPtr c = conn_peek();
	if (!c)
		return -EIO;
	int r = -ESRCH;
	virDomainPtr d = virDomainLookupByUUIDString(c, host->vm_id(vm));
	if (d) {
		char want[128];
		virDomainInfo di;
		domain_name(vm, want, sizeof(want));
		const char *name = virDomainGetName(d);
		if (!name || strcmp(name, want))
			r = -ESRCH;
		else if (virDomainGetInfo(d, &di) < 0)
			r = -EIO;
		else if (di.state != VIR_DOMAIN_SHUTOFF) {
			*ns = di.cpuTime;
			r = 0;
		}
		virDomainFree(d);
	}
	virConnectClose(c);
	return r;
}

/*
 * Snapshots through libvirt's snapshot API. A stopped VM has no domain
 * (ours are transient), so each operation defines a stand-in domain that
 * holds only the VM's disk, under a name and UUID of its own (so that it can
 * never be taken for the VM: <prefix>snapshots-<VM id>, the UUID derived
 * from the VM's), does the work on it and undefines it again. libvirt keeps
 * snapshot metadata (<domainsnapshot> XML) beside the domain; with the
 * domain gone, the backend keeps that XML in <VM folder>/snapshots/NAME.xml
 * and redefines it before a revert or a delete, as libvirt itself does at
 * its start. The snapshots are internal to the qcow2 disk.
 */
static void snap_domain_ids(cvmm_vm *vm, char *name, size_t nlen, char *uuid, size_t ulen)
{
	snprintf(name, nlen, "%ssnapshots-%s", conf.name_prefix, host->vm_id(vm));
	snprintf(uuid, ulen, "c5c5c5c5%s", host->vm_id(vm) + 8);
}

static void snap_meta_path(cvmm_vm *vm, const char *name, char *out, size_t len)
{
	if (name)
		snprintf(out, len, "%s/snapshots/%s.xml", host->vm_data_dir(vm), name);
	else
		snprintf(out, len, "%s/snapshots", host->vm_data_dir(vm));
}

/* A stand-in left by a daemon killed mid-operation goes first. */
static void snap_undefine(virConnectPtr c, const char *dname)
{
	virDomainPtr d = virDomainLookupByName(c, dname);
	if (d) {
		virDomainUndefineFlags(d, VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA);
		virDomainFree(d);
	}
}

static int read_text(const char *path, char **out)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	char *buf = NULL;
	size_t cap = 0, n = 0, got;
	char chunk[4096];
	while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (n + got + 1 > cap) {
			cap = (n + got + 1) * 2;
			char *nb = realloc(buf, cap);
			if (!nb)
				abort();
			buf = nb;
		}
		memcpy(buf + n, chunk, got);
		n += got;
	}
	fclose(f);
	if (!buf && !(buf = calloc(1, 1)))
		abort();
	buf[n] = 0;
	*out = buf;
	return 0;
}

static int write_text(const char *path, const char *text)
{
	char tmp[700];
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	size_t left = strlen(text);
	while (left) {
		ssize_t w = write(fd, text, left);
		if (w <= 0) {
			int e = w < 0 ? -errno : -EIO;
			close(fd);
			unlink(tmp);
			return e;
		}
		text += w;
		left -= (size_t)w;
	}
	if (fsync(fd) < 0 || close(fd) < 0 || rename(tmp, path) < 0) {
		int e = -errno;
		unlink(tmp);
		return e;
	}
	return 0;
}

/* LIST: from the kept metadata, newest last as libvirt lists them. */
static int snap_list(cvmm_vm *vm, char *buf, size_t len)
{
	char dir[600];
	snap_meta_path(vm, NULL, dir, sizeof(dir));
	size_t off = 0;
	int r = 0;
	off += (size_t)snprintf(buf + off, len - off, "[");
	DIR *dh = opendir(dir);
	struct dirent *de;
	int first = 1;
	while (dh && (de = readdir(dh))) {
		size_t l = strlen(de->d_name);
		if (l < 5 || strcmp(de->d_name + l - 4, ".xml"))
			continue;
		char path[900], *xml = NULL;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (read_text(path, &xml) < 0)
			continue;
		long long created = 0;
		const char *ct = strstr(xml, "<creationTime>");
		if (ct)
			created = atoll(ct + strlen("<creationTime>"));
		free(xml);
		/* Names are [A-Za-z0-9._-] (the core checks them): no escaping. */
		int n = snprintf(buf + off, len - off, "%s{\"name\": \"%.*s\", \"created\": %lld}",
				 first ? "" : ", ", (int)(l - 4), de->d_name, created);
		if (n < 0 || (size_t)n >= len - off) {
			r = -ENOSPC;
			break;
		}
		off += (size_t)n;
		first = 0;
	}
	if (dh)
		closedir(dh);
	if (r == 0 && off + 2 > len)
		r = -ENOSPC;
	if (r < 0)
		return r;
	buf[off++] = ']';
	buf[off] = 0;
	return (int)off;
}

static int lv_snapshot(void *data, cvmm_vm *vm, uint32_t op, const char *disk, const char *name,
		       char *buf, size_t len)
{
	if (op == CVMM_SNAP_LIST)
		return snap_list(vm, buf, len);
	if (op != CVMM_SNAP_CREATE && op != CVMM_SNAP_REVERT && op != CVMM_SNAP_DELETE)
		return -EINVAL;
	char meta[700], dir[600], dname[128], uuid[VIR_UUID_STRING_BUFLEN];
	snap_meta_path(vm, name, meta, sizeof(meta));
	snap_meta_path(vm, NULL, dir, sizeof(dir));
	snap_domain_ids(vm, dname, sizeof(dname), uuid, sizeof(uuid));
	int exists = access(meta, F_OK) == 0;
	if (op == CVMM_SNAP_CREATE && exists)
		return -EEXIST;
	if (op != CVMM_SNAP_CREATE && !exists)
		return -ENOENT;
	char *saved = NULL;
	int r;
	if (op != CVMM_SNAP_CREATE && (r = read_text(meta, &saved)) < 0)
		return host->error(self, vm, r, "VM '%s': snapshot '%s': %s: %s", host->vm_name(vm),
				   name, meta, strerror(-r));
	virConnectPtr c = conn_get(vm);
	if (!c) {
		free(saved);
		return -EIO;
	}
	snap_undefine(c, dname);
	/* The stand-in: the VM's disk and what libvirt needs to accept it. */
	char *xml = NULL;
	FILE *f = open_memstream(&xml, &(size_t){0});
	if (!f)
		abort();
	fprintf(f, "<domain type='%s'><name>%s</name><uuid>%s</uuid>"
		   "<memory unit='MiB'>16</memory><os><type arch='x86_64'>hvm</type></os><devices>",
		conf.type, dname, uuid);
	if (conf.emulator[0])
		fprintf(f, "<emulator>%s</emulator>", conf.emulator);
	fprintf(f, "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
		   "<source file='%s'/><target dev='vda' bus='virtio'/></disk></devices></domain>",
		disk); /* <data_dir>/vms/<uuid>/disk.qcow2: nothing to escape */
	fclose(f);
	virDomainPtr d = virDomainDefineXML(c, xml);
	free(xml);
	virDomainSnapshotPtr sn = NULL;
	if (!d) {
		r = host->error(self, vm, -EIO, "VM '%s': libvirt at %s: cannot define stand-in "
				"domain '%s' for the snapshot: %s",
				host->vm_name(vm), conf.uri, dname, lv_msg());
		goto out;
	}
	if (op == CVMM_SNAP_CREATE) {
		char sx[256];
		snprintf(sx, sizeof(sx),
			 "<domainsnapshot><name>%s</name><disks><disk name='vda' "
			 "snapshot='internal'/></disks></domainsnapshot>",
			 name);
		sn = virDomainSnapshotCreateXML(d, sx, 0);
	} else {
		sn = virDomainSnapshotCreateXML(d, saved, VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE);
	}
	if (!sn) {
		r = host->error(self, vm, -EIO, "VM '%s': libvirt at %s: snapshot '%s': %s",
				host->vm_name(vm), conf.uri, name, lv_msg());
		goto out;
	}
	r = 0;
	if (op == CVMM_SNAP_CREATE) {
		char *desc = virDomainSnapshotGetXMLDesc(sn, VIR_DOMAIN_SNAPSHOT_XML_SECURE);
		if (mkdir(dir, 0750) < 0 && errno != EEXIST)
			r = -errno;
		if (!desc)
			r = -EIO;
		if (r == 0)
			r = write_text(meta, desc);
		free(desc);
		if (r < 0) { /* no record, no snapshot: take it back */
			virDomainSnapshotDelete(sn, 0);
			r = host->error(self, vm, r, "VM '%s': snapshot '%s': cannot keep its metadata in %s: %s",
					host->vm_name(vm), name, meta, strerror(-r));
		}
	} else if (op == CVMM_SNAP_REVERT) {
		if (virDomainRevertToSnapshot(sn, 0) < 0)
			r = host->error(self, vm, -EIO, "VM '%s': libvirt at %s: revert to '%s': %s",
					host->vm_name(vm), conf.uri, name, lv_msg());
	} else {
		if (virDomainSnapshotDelete(sn, 0) < 0)
			r = host->error(self, vm, -EIO, "VM '%s': libvirt at %s: delete '%s': %s",
					host->vm_name(vm), conf.uri, name, lv_msg());
		else
			unlink(meta);
	}
out:
	if (sn)
		virDomainSnapshotFree(sn);
	if (d) {
		virDomainUndefineFlags(d, VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA);
		virDomainFree(d);
	}
	virConnectClose(c);
	free(saved);
	return r;
}

static const struct cvmm_backend_ops ops = {
    .struct_size = sizeof(struct cvmm_backend_ops),
    .start = lv_start,
    .stop = lv_stop,
    .kill = lv_kill,
    .adopt = lv_adopt,
    .cleanup = lv_cleanup,
    .describe = lv_describe,
    .render = lv_render_op,
    .pause = lv_pause,
    .resume = lv_resume,
    .is_paused = lv_is_paused,
    .snapshot = lv_snapshot,
    .cpu_time = lv_cpu_time,
};

/* ---- configuration ---- */

static int cfg_str(const char *key, char *out, size_t len, const char *def)
{
	const char *v = def;
	int r = host->cfg_string(self, key, &v);
	if (r == -EINVAL)
		return r;
	if (strlen(v) >= len)
		return host->error(self, NULL, -EINVAL,
		                   "plugin.backend-libvirt.%s: longer than %zu characters", key,
		                   len - 1);
	snprintf(out, len, "%s", v);
	return 0;
}

static int read_config(void)
{
	int r;
	if ((r = cfg_str("uri", conf.uri, sizeof(conf.uri), "qemu:///system")) < 0 ||
	    (r = cfg_str("type", conf.type, sizeof(conf.type), "qemu")) < 0 ||
	    (r = cfg_str("emulator", conf.emulator, sizeof(conf.emulator), "")) < 0 ||
	    (r = cfg_str("name_prefix", conf.name_prefix, sizeof(conf.name_prefix),
	                 LV_DEFAULT_PREFIX)) < 0 ||
	    (r = cfg_str("dac_label", conf.dac_label, sizeof(conf.dac_label), "+0:+0")) < 0)
		return r;
	if (strcmp(conf.type, "qemu") && strcmp(conf.type, "kvm"))
		return host->error(
		    self, NULL, -EINVAL,
		    "plugin.backend-libvirt.type: must be \"qemu\" (TCG) or \"kvm\", got \"%s\"",
		    conf.type);
	for (const char *p = conf.name_prefix; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
			return host->error(self, NULL, -EINVAL,
			                   "plugin.backend-libvirt.name_prefix: must be letters, "
			                   "digits, '.', '_' or '-', got \"%s\"",
			                   conf.name_prefix);
	int32_t b = access("/dev/vhost-vsock", R_OK | W_OK) == 0;
	if (host->cfg_bool(self, "vsock", &b) == -EINVAL)
		return -EINVAL;
	conf.vsock = b;
	int64_t w = 30;
	if (host->cfg_int(self, "adopt_wait", &w) == -EINVAL)
		return -EINVAL;
	if (w < 0 || w > 3600)
		return host->error(self, NULL, -EINVAL,
		                   "plugin.backend-libvirt.adopt_wait: must be between 0 and 3600 "
		                   "(seconds), got %lld",
		                   (long long)w);
	conf.adopt_wait_s = (int)w;
	return 0;
}

/* At daemon start, not at load (`cvmmd --check-config` loads plugins too). */
static int on_daemon_start(void *data, cvmm_vm *vm, uint32_t event, cvmm_spec *spec)
{
	pthread_t t;
	if (pthread_create(&t, NULL, keeper_main, NULL) != 0)
		return host->error(self, NULL, -EAGAIN, "cannot start the reconnect thread");
	pthread_detach(t);
	/* Connect now so GET /v1/host tells; a libvirtd that is not there yet
	 * is not an error of the daemon's: the first operation retries. */
	char err[768];
	pthread_mutex_lock(&conn_mu);
	if (conn_open(err, sizeof(err)) < 0)
		host->log(self, CVMM_LOG_WARN, "libvirt at %s: %s (will retry on first use)",
		          conf.uri, err);
	pthread_mutex_unlock(&conn_mu);
	return 0;
}

/* The readiness report (cvmm check): per confidential type, whether this
 * libvirt can launch it as our domain type ("warn" where not: optional). */
static int check_items(void *data, char *buf, size_t len)
{
	(void)data;
	static const char *const types[] = {"tdx", "sev-snp", "sev"};
	char err[768] = "", ver[32] = "?";
	int reopened = 0;
	virConnectPtr c = conn_get_err(err, sizeof(err), &reopened);
	if (c && reopened)
		reconcile(c);
	if (c)
		daemon_version(c, ver, sizeof(ver));
	size_t w = 0;
	w += (size_t)snprintf(buf, len, "[");
	for (int t = 0; t < 3 && w < len; t++) {
		char why[768] = "", detail[1400];
		int ok = c && domcaps_allow(c, types[t], why, sizeof(why));
		if (!c)
			snprintf(why, sizeof(why), "not connected: %s", err);
		if (ok)
			snprintf(detail, sizeof(detail),
			         "libvirt %s at %s (domain type %s) can launch %s guests", ver,
			         conf.uri, conf.type, types[t]);
		else
			snprintf(detail, sizeof(detail),
			         "libvirt %s at %s (domain type %s) cannot launch %s guests: %s", ver,
			         conf.uri, conf.type, types[t], why);
		/* libvirt's words are plain text; only quotes, backslashes and
		 * control characters need escaping in JSON. */
		char esc[2900];
		size_t k = 0;
		for (const char *p = detail; *p && k + 7 < sizeof(esc); p++) {
			if (*p == '"' || *p == '\\')
				esc[k++] = '\\';
			if ((unsigned char)*p < 0x20)
				continue;
			esc[k++] = *p;
		}
		esc[k] = 0;
		w += (size_t)snprintf(buf + w, len > w ? len - w : 0,
		                      "%s{\"name\":\"libvirt_confidential_%s\",\"status\":\"%s\","
		                      "\"detail\":\"%s\",\"fix\":\"%s\"}",
		                      t ? "," : "", types[t], ok ? "ok" : "warn", esc,
		                      ok ? ""
		                         : "a libvirt whose domain capabilities list the type (and "
		                           "domain type kvm on a host whose CPU and firmware have it)");
	}
	if (w < len)
		w += (size_t)snprintf(buf + w, len - w, "]");
	if (c)
		virConnectClose(c);
	return w < len ? (int)w : -ENOSPC;
}

CVMM_PLUGIN_EXPORT int cvmm_plugin_init(uint32_t abi_major, uint32_t abi_minor,
                                        const struct cvmm_host_api *h, cvmm_plugin *p,
                                        struct cvmm_plugin_desc *desc)
{
	CVMM_PLUGIN_DESCRIBE(desc, "backend-libvirt", "0.1.0",
	                     "runs VMs as transient libvirt domains (domain XML renderer, libvirt "
	                     "events on the daemon's loop)");
	if (abi_major != CVMM_ABI_MAJOR)
		return -EPROTO;
	host = h;
	self = p;
	int r = read_config();
	if (r < 0)
		return r;
	virSetErrorFunc(NULL, quiet_errors);
	/* Before any connection: libvirt's I/O and events run on our loop. */
	if (lv_event_register(host, self) < 0)
		return host->error(self, NULL, -ENOTSUP,
		                   "the daemon offers no event-loop slots (io_add, timer_add)");
	if (virInitialize() < 0)
		return host->error(self, NULL, -EIO, "virInitialize: %s", lv_msg());
	set_info("libvirt at %s, domain type %s: not connected yet", conf.uri, conf.type);
	if ((r = host->register_hook(self, CVMM_EV_DAEMON_START, 0, on_daemon_start, NULL)) < 0)
		return r;
	if (CVMM_HOST_HAS(h, register_check) &&
	    (r = host->register_check(self, check_items, NULL)) < 0)
		return r;
	return host->register_backend(self, "libvirt", &ops, NULL);
}
