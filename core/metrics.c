/*
 * metrics: see metrics.h. Histograms and counters live in small tables of
 * labelled series under one mutex: an observation is a lookup among at most
 * a few hundred series and a few additions, and a table that is full folds
 * new label sets into an "overflow" series rather than growing. The VM
 * gauges are not stored at all: a scrape reads them from the VM table, each
 * VM under its own lock, before it takes the metrics' lock, so the two
 * never nest.
 */
#include "metrics.h"
#include "daemon.h"
#include "events.h"
#include "registry.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define MAX_SERIES 256
#define LABELS_LEN 256
#define MAX_BUCKETS 20

/* Lifecycle work: a hook is milliseconds, a TCG boot tens of seconds. */
static const double job_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                    2.5,   5,    10,    30,   60,  120,  300};
/* Requests: a VM's info is tens of microseconds, a create waits for its job. */
static const double req_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                    0.25,   0.5,   1,      2.5,   5,    10,    30,   60};

struct series {
	char labels[LABELS_LEN];           /* name="value",... */
	uint64_t buckets[MAX_BUCKETS + 1]; /* per bucket, not cumulative; last: +Inf */
	uint64_t count;
	double sum;
};

struct table {
	const double *bounds;
	int n_bounds;
	struct series *s;
	int n;
};

struct metrics {
	pthread_mutex_t mu;
	struct table jobs, job_failures, steps, plugin_errors, requests;
};

static void table_init(struct table *t, const double *bounds, int n_bounds)
{
	t->bounds = bounds;
	t->n_bounds = n_bounds;
	t->s = xzalloc(sizeof(*t->s) * MAX_SERIES);
}

struct metrics *metrics_new(void)
{
	struct metrics *m = xzalloc(sizeof(*m));
	pthread_mutex_init(&m->mu, NULL);
	table_init(&m->jobs, job_bounds, (int)ARRAY_SIZE(job_bounds));
	table_init(&m->job_failures, NULL, 0);
	table_init(&m->steps, job_bounds, (int)ARRAY_SIZE(job_bounds));
	table_init(&m->plugin_errors, NULL, 0);
	table_init(&m->requests, req_bounds, (int)ARRAY_SIZE(req_bounds));
	return m;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	free(m->jobs.s);
	free(m->job_failures.s);
	free(m->steps.s);
	free(m->plugin_errors.s);
	free(m->requests.s);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

size_t metrics_label(char *out, size_t len, const char *name, const char *value)
{
	size_t n = 0;
#define PUT(c)                                                                                     \
	do {                                                                                       \
		if (n + 1 >= len)                                                                  \
			return 0;                                                                  \
		out[n++] = (c);                                                                    \
	} while (0)
	for (const char *p = name; *p; p++)
		PUT(*p);
	PUT('=');
	PUT('"');
	for (const char *p = value ? value : ""; *p; p++) {
		if (*p == '\\' || *p == '"') {
			PUT('\\');
			PUT(*p);
		} else if (*p == '\n') {
			PUT('\\');
			PUT('n');
		} else {
			PUT(*p);
		}
	}
	PUT('"');
	out[n] = 0;
	return n;
#undef PUT
}

/* "a=\"x\",b=\"y\"" from NULL-terminated name/value pairs. */
static void labels(char *out, size_t len, ...)
{
	va_list ap;
	size_t n = 0;
	out[0] = 0;
	va_start(ap, len);
	for (const char *k; (k = va_arg(ap, const char *));) {
		const char *v = va_arg(ap, const char *);
		if (n && n + 1 < len)
			out[n++] = ',';
		size_t w = metrics_label(out + n, len - n, k, v);
		if (!w) {
			out[n ? n - 1 : 0] = 0;
			break;
		}
		n += w;
	}
	va_end(ap);
}

/* The series with these labels; a full table hands out its last slot,
 * relabelled as the overflow. Caller holds m->mu. */
static struct series *find(struct table *t, const char *lab)
{
	for (int i = 0; i < t->n; i++)
		if (!strcmp(t->s[i].labels, lab))
			return &t->s[i];
	if (t->n < MAX_SERIES - 1) {
		struct series *s = &t->s[t->n++];
		str_copy(s->labels, sizeof(s->labels), lab);
		return s;
	}
	struct series *s = &t->s[MAX_SERIES - 1];
	if (t->n < MAX_SERIES) {
		t->n = MAX_SERIES;
		str_copy(s->labels, sizeof(s->labels), "overflow=\"true\"");
	}
	return s;
}

static void observe(struct metrics *m, struct table *t, const char *lab, double v)
{
	pthread_mutex_lock(&m->mu);
	struct series *s = find(t, lab);
	int b = 0;
	while (b < t->n_bounds && v > t->bounds[b])
		b++;
	s->buckets[b]++;
	s->count++;
	s->sum += v;
	pthread_mutex_unlock(&m->mu);
}

static void count(struct metrics *m, struct table *t, const char *lab)
{
	pthread_mutex_lock(&m->mu);
	find(t, lab)->count++;
	pthread_mutex_unlock(&m->mu);
}

void metrics_job(struct metrics *m, const char *op, double seconds, bool failed)
{
	if (!m)
		return;
	char lab[LABELS_LEN];
	labels(lab, sizeof(lab), "op", op, NULL);
	observe(m, &m->jobs, lab, seconds);
	if (failed)
		count(m, &m->job_failures, lab);
}

void metrics_plugin_error(struct metrics *m, const char *plugin)
{
	if (!m)
		return;
	char lab[LABELS_LEN];
	labels(lab, sizeof(lab), "plugin", plugin, NULL);
	count(m, &m->plugin_errors, lab);
}

void metrics_step(struct metrics *m, const char *plugin, const char *step, double seconds,
                  bool failed)
{
	if (!m)
		return;
	char lab[LABELS_LEN];
	labels(lab, sizeof(lab), "plugin", plugin, "step", step, NULL);
	observe(m, &m->steps, lab, seconds);
	if (failed)
		metrics_plugin_error(m, plugin);
}

void metrics_request(struct metrics *m, const char *method, const char *route, unsigned status,
                     double seconds)
{
	if (!m)
		return;
	static const char *const methods[] = {"GET",    "POST", "PUT",    "PATCH",
	                                      "DELETE", "HEAD", "OPTIONS"};
	const char *meth = "other";
	for (size_t i = 0; i < ARRAY_SIZE(methods); i++)
		if (method && !strcmp(method, methods[i]))
			meth = methods[i];
	char code[8], lab[LABELS_LEN];
	snprintf(code, sizeof(code), "%u", status);
	labels(lab, sizeof(lab), "method", meth, "route", route, "code", code, NULL);
	observe(m, &m->requests, lab, seconds);
}

/* ---- route templates ---- */

static bool in_list(const char *s, size_t l, const char *const *list)
{
	for (int i = 0; list[i]; i++)
		if (strlen(list[i]) == l && !memcmp(list[i], s, l))
			return true;
	return false;
}

/* A path segment fit for a label: [a-z0-9._-], 1 to 32 bytes. */
static bool plain_segment(const char *s, size_t l)
{
	if (!l || l > 32)
		return false;
	for (size_t i = 0; i < l; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '.' ||
		      s[i] == '_' || s[i] == '-'))
			return false;
	return true;
}

void metrics_route(const char *path, unsigned status, char *out, size_t len)
{
	/* Routes the core serves, and those other parts of the API are known
	 * to add: the only labels an unmatched request can land on. */
	static const char *const top[] = {"host",   "plugins", "images",       "vms",
	                                  "events", "gpus",    "openapi.json", "routes", NULL};
	static const char *const sub[] = {"events", "logs",    "start",  "stop",      "restart",
	                                  "kill",   "pause",   "resume", "snapshots", "volumes",
	                                  "resize", "console", "stats",  NULL};
	bool unmatched = status == 404 || status == 401;
	if (!path || !*path) {
		str_copy(out, len, "other");
		return;
	}
	if (!strcmp(path, "/metrics")) {
		str_copy(out, len, "/metrics");
		return;
	}
	if (strncmp(path, "/v1/", 4)) {
		str_copy(out, len, unmatched ? "other" : !strcmp(path, "/") ? "/" : "/{file}");
		return;
	}
	const char *p = path + 4, *slash = strchr(p, '/');
	size_t l = slash ? (size_t)(slash - p) : strlen(p);
	if (l == 3 && !memcmp(p, "vms", 3)) {
		if (!slash || !slash[1]) {
			str_copy(out, len, "/v1/vms");
			return;
		}
		const char *s = strchr(slash + 1, '/');
		if (!s || !s[1]) {
			str_copy(out, len, "/v1/vms/{vm}");
			return;
		}
		const char *rest = strchr(s + 1, '/');
		size_t sl = rest ? (size_t)(rest - s - 1) : strlen(s + 1);
		bool known = in_list(s + 1, sl, sub) || (!unmatched && plain_segment(s + 1, sl));
		if (!known)
			snprintf(out, len, "/v1/vms/{vm}/{other}");
		else
			snprintf(out, len, "/v1/vms/{vm}/%.*s%s", (int)sl, s + 1,
			         rest && rest[1] ? "/{arg}" : "");
		return;
	}
	/* DELETE /v1/images/{name}: one label, whatever the image. */
	if (l == 6 && !memcmp(p, "images", 6) && slash && slash[1] && !strchr(slash + 1, '/')) {
		str_copy(out, len, unmatched ? "other" : "/v1/images/{name}");
		return;
	}
	if (in_list(p, l, top) && (!slash || !slash[1])) {
		snprintf(out, len, "/v1/%.*s", (int)l, p);
		return;
	}
	if (unmatched) {
		str_copy(out, len, "other");
		return;
	}
	/* A route that answered (a plugin's): its path, if it reads as one. */
	char buf[128];
	size_t n = 0;
	for (const char *q = p; *q && n + 1 < sizeof(buf);) {
		const char *e = strchr(q, '/');
		size_t sl = e ? (size_t)(e - q) : strlen(q);
		if (!plain_segment(q, sl) || n + sl + 2 >= sizeof(buf)) {
			str_copy(out, len, "other");
			return;
		}
		if (n)
			buf[n++] = '/';
		memcpy(buf + n, q, sl);
		n += sl;
		q += sl + (e ? 1 : 0);
	}
	buf[n] = 0;
	snprintf(out, len, "/v1/%s", buf);
}

/* ---- rendering ---- */

struct text {
	char *buf;
	size_t len, cap;
};

static void tprintf(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tprintf(struct text *t, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if ((size_t)n < t->cap - t->len) {
			t->len += (size_t)n;
			return;
		}
		t->cap = t->cap * 2 + (size_t)n + 1;
		t->buf = realloc(t->buf, t->cap);
		if (!t->buf)
			abort();
	}
}

static void head(struct text *t, const char *name, const char *type, const char *help)
{
	tprintf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render_hist(struct text *t, const char *name, const char *help, struct table *tb)
{
	head(t, name, "histogram", help);
	for (int i = 0; i < tb->n; i++) {
		struct series *s = &tb->s[i];
		uint64_t cum = 0;
		for (int b = 0; b <= tb->n_bounds; b++) {
			cum += s->buckets[b];
			if (b < tb->n_bounds)
				tprintf(t, "%s_bucket{%s,le=\"%g\"} %llu\n", name, s->labels,
				        tb->bounds[b], (unsigned long long)cum);
			else
				tprintf(t, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, s->labels,
				        (unsigned long long)cum);
		}
		tprintf(t, "%s_sum{%s} %.9g\n", name, s->labels, s->sum);
		tprintf(t, "%s_count{%s} %llu\n", name, s->labels, (unsigned long long)s->count);
	}
}

static void render_counter(struct text *t, const char *name, const char *help, struct table *tb)
{
	head(t, name, "counter", help);
	for (int i = 0; i < tb->n; i++)
		tprintf(t, "%s{%s} %llu\n", name, tb->s[i].labels,
		        (unsigned long long)tb->s[i].count);
}

struct vm_row {
	char id[37], name[64], backend[32], image[64];
	enum vm_state state;
	uint32_t vcpu;
	uint64_t memory_mb;
	int pid;
	bool live; /* running or paused, its process not known gone */
	struct cvmm_vm *vm; /* referenced until daemon_put_vms */
	uint64_t restarts_auto, restarts_requested;
	double cpu; /* seconds, < 0 when unknown */
};

/* utime + stime of a process, in seconds; -1 if it cannot be read. */
static double proc_cpu_seconds(int pid)
{
	char path[64], *text = NULL;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (read_file(path, &text, NULL, 4096) < 0)
		return -1;
	/* The command name may hold spaces and parentheses: fields are
	 * counted after its last ')'; utime and stime are fields 14 and 15. */
	const char *p = strrchr(text, ')');
	unsigned long long ut = 0, st = 0;
	int n =
	    p ? sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st)
	      : 0;
	free(text);
	long hz = sysconf(_SC_CLK_TCK);
	return n == 2 && hz > 0 ? (double)(ut + st) / (double)hz : -1;
}

/* The backend's count where it keeps one (libvirt: the domain's cpuTime;
 * its QEMU is no process of ours), else /proc for the watched process. */
static double vm_cpu_seconds(struct cvmm_daemon *d, const struct vm_row *r)
{
	if (!r->live)
		return -1;
	struct reg_backend *b = d->reg ? registry_backend(d->reg, r->backend) : NULL;
	if (b && b->ops.cpu_time) {
		uint64_t ns = 0;
		return b->ops.cpu_time(b->data, r->vm, &ns) == 0 ? (double)ns / 1e9 : -1;
	}
	return r->pid > 0 ? proc_cpu_seconds(r->pid) : -1;
}

static void render_vms(struct text *t, struct cvmm_daemon *d)
{
	int n;
	struct cvmm_vm **vms = daemon_get_vms(d, &n);
	struct vm_row *rows = xzalloc(sizeof(*rows) * (size_t)(n ? n : 1));
	int k = 0;
	for (int i = 0; i < n; i++) {
		struct cvmm_vm *vm = vms[i];
		struct vm_row *r = &rows[k];
		vm_lock(vm);
		bool gone = vm->gone;
		str_copy(r->id, sizeof(r->id), vm->id);
		str_copy(r->name, sizeof(r->name), vm->name);
		str_copy(r->backend, sizeof(r->backend), vm->backend);
		str_copy(r->image, sizeof(r->image), vm->image);
		r->state = vm->state;
		r->vcpu = vm->vcpu;
		r->memory_mb = vm->memory_mb;
		r->live = (vm->state == VM_RUNNING || vm->state == VM_PAUSED) && !vm->proc_gone;
		r->pid = r->live ? vm->pid : 0;
		r->vm = vm;
		r->restarts_auto = vm->restarts_auto;
		r->restarts_requested = vm->restarts_requested;
		vm_unlock(vm);
		if (!gone)
			k++;
	}
	/* CPU time with no lock held (a backend may ask its daemon), each VM
	 * kept by the reference daemon_get_vms took. */
	for (int i = 0; i < k; i++)
		rows[i].cpu = vm_cpu_seconds(d, &rows[i]);
	daemon_put_vms(vms, n);

	head(t, "cvmm_vms", "gauge", "VMs by state.");
	for (int s = VM_DEFINED; s <= VM_PAUSED; s++) { /* VM_PAUSED: the last state */
		int c = 0;
		for (int i = 0; i < k; i++)
			c += rows[i].state == (enum vm_state)s;
		tprintf(t, "cvmm_vms{state=\"%s\"} %d\n", vm_state_name((enum vm_state)s), c);
	}
	char lab[LABELS_LEN], extra[LABELS_LEN];
	head(t, "cvmm_vm_info", "gauge",
	     "One series per VM, always 1: its state, backend and image as labels.");
	for (int i = 0; i < k; i++) {
		labels(lab, sizeof(lab), "vm", rows[i].name, "id", rows[i].id, "state",
		       vm_state_name(rows[i].state), "backend", rows[i].backend, "image",
		       rows[i].image, NULL);
		tprintf(t, "cvmm_vm_info{%s} 1\n", lab);
	}
	head(t, "cvmm_vm_vcpus", "gauge", "vCPUs the VM is defined with.");
	for (int i = 0; i < k; i++) {
		labels(lab, sizeof(lab), "vm", rows[i].name, "id", rows[i].id, NULL);
		tprintf(t, "cvmm_vm_vcpus{%s} %u\n", lab, rows[i].vcpu);
	}
	head(t, "cvmm_vm_memory_bytes", "gauge", "Memory the VM is defined with, in bytes.");
	for (int i = 0; i < k; i++) {
		labels(lab, sizeof(lab), "vm", rows[i].name, "id", rows[i].id, NULL);
		tprintf(t, "cvmm_vm_memory_bytes{%s} %llu\n", lab,
		        (unsigned long long)rows[i].memory_mb * 1048576ull);
	}
	head(t, "cvmm_vm_cpu_seconds_total", "counter",
	     "CPU time of the running VM, in seconds: its process's user + system time, or "
	     "what its backend counts (libvirt: the domain's cpuTime).");
	for (int i = 0; i < k; i++) {
		if (rows[i].cpu < 0)
			continue;
		labels(lab, sizeof(lab), "vm", rows[i].name, "id", rows[i].id, NULL);
		tprintf(t, "cvmm_vm_cpu_seconds_total{%s} %.2f\n", lab, rows[i].cpu);
	}
	head(
	    t, "cvmm_vm_restarts_total", "counter",
	    "Restarts of the VM since the daemon started: automatic (after an exit) or requested.");
	for (int i = 0; i < k; i++) {
		labels(lab, sizeof(lab), "vm", rows[i].name, "id", rows[i].id, NULL);
		labels(extra, sizeof(extra), "cause", "automatic", NULL);
		tprintf(t, "cvmm_vm_restarts_total{%s,%s} %llu\n", lab, extra,
		        (unsigned long long)rows[i].restarts_auto);
		labels(extra, sizeof(extra), "cause", "requested", NULL);
		tprintf(t, "cvmm_vm_restarts_total{%s,%s} %llu\n", lab, extra,
		        (unsigned long long)rows[i].restarts_requested);
	}
	free(rows);
}

char *metrics_render(struct cvmm_daemon *d, size_t *len)
{
	struct text t = {.cap = 16384};
	t.buf = xzalloc(t.cap);
	char lab[LABELS_LEN];
	head(&t, "cvmm_build_info", "gauge", "Always 1: the daemon's version as a label.");
	labels(lab, sizeof(lab), "version", CVMM_VERSION, NULL);
	tprintf(&t, "cvmm_build_info{%s} 1\n", lab);
	head(&t, "cvmm_start_time_seconds", "gauge",
	     "When the daemon started, in seconds since the epoch.");
	tprintf(&t, "cvmm_start_time_seconds %.3f\n", d->started_at);
	render_vms(&t, d);
	head(&t, "cvmm_events_total", "counter",
	     "Events published on /v1/events since the daemon started.");
	tprintf(&t, "cvmm_events_total %llu\n",
	        (unsigned long long)(d->events ? events_published(d->events) : 0));

	struct metrics *m = d->metrics;
	if (!m) {
		*len = t.len;
		return t.buf;
	}
	/* The loaded plugins are fixed once the daemon runs: read without a lock. */
	int np = d->reg ? d->reg->n_plugins : 0;
	pthread_mutex_lock(&m->mu);
	render_hist(&t, "cvmm_lifecycle_duration_seconds",
	            "How long lifecycle jobs took, by operation (failed ones included).", &m->jobs);
	render_counter(&t, "cvmm_lifecycle_failures_total",
	               "Lifecycle jobs that failed, by operation.", &m->job_failures);
	render_hist(&t, "cvmm_plugin_step_duration_seconds",
	            "How long each plugin's step of a lifecycle job took, by plugin and step.",
	            &m->steps);
	head(&t, "cvmm_plugin_errors_total", "counter",
	     "Plugin steps that failed or overran cvm.hook_timeout, by plugin.");
	for (int i = 0; i < np; i++) {
		labels(lab, sizeof(lab), "plugin", d->reg->plugins[i]->name, NULL);
		bool seen = false;
		for (int k = 0; k < m->plugin_errors.n; k++)
			seen |= !strcmp(m->plugin_errors.s[k].labels, lab);
		if (!seen)
			tprintf(&t, "cvmm_plugin_errors_total{%s} 0\n", lab);
	}
	for (int k = 0; k < m->plugin_errors.n; k++)
		tprintf(&t, "cvmm_plugin_errors_total{%s} %llu\n", m->plugin_errors.s[k].labels,
		        (unsigned long long)m->plugin_errors.s[k].count);
	render_hist(&t, "cvmm_api_request_duration_seconds",
	            "How long API requests took, by method, route and status code.", &m->requests);
	pthread_mutex_unlock(&m->mu);
	*len = t.len;
	return t.buf;
}
