/*
 * Unit tests of core/metrics.c: the route templates the request histogram
 * is labelled with (and that made-up paths cannot grow), label escaping,
 * and the exposition text of a daemon with VMs and observations against a
 * golden file (tests/fixtures/metrics/render.prom; CVMM_REGENERATE=1
 * rewrites it for review), plus the format's own rules checked line by
 * line: every sample under its family's TYPE, histogram buckets cumulative
 * up to +Inf = _count, counters named _total.
 */
#include "config.h"
#include "daemon.h"
#include "events.h"
#include "metrics.h"
#include "registry.h"
#include "util.h"
#include "unit.h"

#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GOLDEN CVMM_SOURCE_DIR "/tests/fixtures/metrics/render.prom"

static bool regenerate;

static void test_routes(void)
{
	struct {
		const char *path;
		unsigned status;
		const char *want;
	} cases[] = {
	    {"/metrics", 200, "/metrics"},
	    {"/v1/host", 200, "/v1/host"},
	    {"/v1/host", 401, "/v1/host"},
	    {"/v1/events", 200, "/v1/events"},
	    {"/v1/vms", 201, "/v1/vms"},
	    {"/v1/vms/", 200, "/v1/vms"},
	    {"/v1/vms/web1", 200, "/v1/vms/{vm}"},
	    {"/v1/vms/nope", 404, "/v1/vms/{vm}"},
	    {"/v1/vms/web1/", 200, "/v1/vms/{vm}"},
	    {"/v1/vms/web1/start", 202, "/v1/vms/{vm}/start"},
	    {"/v1/vms/web1/logs", 404, "/v1/vms/{vm}/logs"},
	    {"/v1/vms/web1/made-up", 404, "/v1/vms/{vm}/{other}"},
	    {"/v1/vms/web1/made-up", 401, "/v1/vms/{vm}/{other}"},
	    {"/v1/vms/web1/snapshots/s1", 200, "/v1/vms/{vm}/snapshots/{arg}"},
	    {"/v1/vms/web1/newroute", 200, "/v1/vms/{vm}/newroute"},
	    {"/v1/nope", 404, "other"},
	    {"/v1/nope/deeper", 401, "other"},
	    {"/v1/gpus", 200, "/v1/gpus"},
	    {"/v1/kms/keys", 200, "/v1/kms/keys"}, /* a plugin's route that answered */
	    {"/v1/KMS/keys", 200, "other"},        /* not a plain path: no label of its own */
	    {"/v1/a\"b", 200, "other"},
	    {"/", 200, "/"},
	    {"/app.js", 200, "/{file}"},
	    {"/app.js", 404, "other"},
	    {"", 400, "other"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[128];
		metrics_route(cases[i].path, cases[i].status, out, sizeof(out));
		if (strcmp(out, cases[i].want))
			fprintf(stderr, "\n%s %u: got %s, want %s\n", cases[i].path,
			        cases[i].status, out, cases[i].want);
		CU_ASSERT_STRING_EQUAL(out, cases[i].want);
	}
}

static void test_labels(void)
{
	char out[64];
	CU_ASSERT_EQUAL(metrics_label(out, sizeof(out), "vm", "web1"), 9);
	CU_ASSERT_STRING_EQUAL(out, "vm=\"web1\"");
	metrics_label(out, sizeof(out), "plugin", "a\"b\\c\nd");
	CU_ASSERT_STRING_EQUAL(out, "plugin=\"a\\\"b\\\\c\\nd\"");
	CU_ASSERT_EQUAL(metrics_label(out, 8, "vm", "longer than eight"), 0);
}

/* ---- the exposition text ---- */

static struct cvmm_daemon *new_daemon(struct cvmm_config *c)
{
	char err[1024] = "";
	if (config_load_string(c, "auth = { enabled = false; };", err, sizeof(err)) < 0) {
		fprintf(stderr, "config: %s\n", err);
		return NULL;
	}
	struct cvmm_daemon *d = daemon_new(c, err, sizeof(err));
	if (d) {
		registry_free(d->reg);
		d->reg = NULL;
	}
	return d;
}

static struct cvmm_vm *add_vm(struct cvmm_daemon *d, const char *id, const char *name,
                              enum vm_state st, uint32_t vcpu, uint64_t mb)
{
	struct cvmm_vm *vm = vm_alloc(d, id);
	str_copy(vm->name, sizeof(vm->name), name);
	str_copy(vm->backend, sizeof(vm->backend), "qemu");
	str_copy(vm->image, sizeof(vm->image), "tiny");
	vm->state = st;
	vm->vcpu = vcpu;
	vm->memory_mb = mb;
	pthread_mutex_lock(&d->lock);
	daemon_add_vm(d, vm);
	pthread_mutex_unlock(&d->lock);
	return vm;
}

/* Checks the text against the format's rules; returns the number of
 * problems (each printed). */
static int check_format(const char *text)
{
	int problems = 0;
	char family[128] = "", type[16] = "";
	double bucket_prev = -1;
	char series_prev[512] = "";
	char *copy = strdup(text), *save = NULL;
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, "# HELP ", 7))
			continue;
		if (!strncmp(line, "# TYPE ", 7)) {
			if (sscanf(line + 7, "%127s %15s", family, type) != 2)
				problems++;
			if (!strcmp(type, "counter") && !strstr(family, "_total"))
				fprintf(stderr, "\ncounter %s not named _total\n", family),
				    problems++;
			continue;
		}
		size_t fl = strlen(family);
		if (!fl || strncmp(line, family, fl) ||
		    !(line[fl] == '{' || line[fl] == ' ' || line[fl] == '_')) {
			fprintf(stderr, "\nsample outside its family (%s): %s\n", family, line);
			problems++;
			continue;
		}
		const char *suffix = line + fl;
		if (!strcmp(type, "histogram") && !strncmp(suffix, "_bucket{", 8)) {
			/* Cumulative within one series: the labels before le= agree. */
			const char *le = strstr(line, ",le=\"");
			double v = strtod(strrchr(line, ' ') + 1, NULL);
			char series[512];
			snprintf(series, sizeof(series), "%.*s", (int)(le - line), line);
			if (!strcmp(series, series_prev) && v < bucket_prev)
				fprintf(stderr, "\nbucket not cumulative: %s\n", line), problems++;
			str_copy(series_prev, sizeof(series_prev), series);
			bucket_prev = v;
		} else if (!strcmp(type, "histogram") && !strncmp(suffix, "_count{", 7)) {
			double v = strtod(strrchr(line, ' ') + 1, NULL);
			if (v != bucket_prev)
				fprintf(stderr, "\n_count %g but +Inf bucket %g: %s\n", v,
				        bucket_prev, line),
				    problems++;
		} else if (strcmp(type, "histogram") && *suffix == '_') {
			fprintf(stderr, "\nsample of another family: %s\n", line);
			problems++;
		}
	}
	free(copy);
	return problems;
}

static void test_render_golden(void)
{
	struct cvmm_config c = {0};
	struct cvmm_daemon *d = new_daemon(&c);
	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	d->started_at = 1700000000.25;
	struct cvmm_vm *a =
	    add_vm(d, "11111111-1111-1111-1111-111111111111", "web1", VM_STOPPED, 2, 512);
	add_vm(d, "22222222-2222-2222-2222-222222222222", "db", VM_DEFINED, 4, 4096);
	a->restarts_auto = 3;
	a->restarts_requested = 1;
	events_publish(d->events, a->id, a->name, "state", "x");
	metrics_job(d->metrics, "start", 12.5, false);
	metrics_job(d->metrics, "start", 0.3, true);
	metrics_job(d->metrics, "define", 0.004, false);
	metrics_step(d->metrics, "net-user", "pre_start", 0.02, false);
	metrics_step(d->metrics, "net-user", "pre_start", 400, true);
	metrics_plugin_error(d->metrics, "backend-qemu");
	metrics_request(d->metrics, "GET", "/v1/vms", 200, 0.0007);
	metrics_request(d->metrics, "BREW", "other", 404, 0.0001);
	size_t len;
	char *text = metrics_render(d, &len);
	CU_ASSERT_EQUAL(strlen(text), len);
	CU_ASSERT_EQUAL(check_format(text), 0);
	/* The version changes with every release: the file says @VERSION@. */
	char *ver = strstr(text, "version=\"" CVMM_VERSION "\"");
	CU_ASSERT_PTR_NOT_NULL_FATAL(ver);
	char *norm = xasprintf("%.*sversion=\"@VERSION@\"%s", (int)(ver - text), text,
	                       ver + strlen("version=\"" CVMM_VERSION "\""));
	if (regenerate) {
		mkdir_p(CVMM_SOURCE_DIR "/tests/fixtures/metrics", 0755);
		CU_ASSERT_EQUAL(write_file_atomic(GOLDEN, norm, strlen(norm), 0644), 0);
	} else {
		char *want = NULL;
		CU_ASSERT_EQUAL_FATAL(read_file(GOLDEN, &want, NULL, 1 << 20), 0);
		if (strcmp(want, norm))
			fprintf(stderr,
			        "\n%s differs from the rendered text:\n%s\n"
			        "(CVMM_REGENERATE=1 rewrites it; review the diff)\n",
			        GOLDEN, norm);
		CU_ASSERT_STRING_EQUAL(want, norm);
		free(want);
	}
	free(norm);
	free(text);
	daemon_free(d);
	config_free(&c);
}

static void test_cpu_of_a_running_vm(void)
{
	/* A running VM's CPU time is its process's (this test process
	 * stands in: some CPU burnt first); other VMs have none. */
	struct cvmm_config c = {0};
	struct cvmm_daemon *d = new_daemon(&c);
	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	struct cvmm_vm *vm =
	    add_vm(d, "33333333-3333-3333-3333-333333333333", "run1", VM_RUNNING, 1, 256);
	vm->pid = getpid();
	add_vm(d, "44444444-4444-4444-4444-444444444444", "off1", VM_STOPPED, 1, 256);
	/* Burnt until the process has 0.1 s of CPU, however loaded the host. */
	volatile unsigned long x = 0;
	struct timespec ts;
	do {
		for (int i = 0; i < 100000; i++)
			x++;
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	} while (ts.tv_sec == 0 && ts.tv_nsec < 100000000L);
	size_t len;
	char *text = metrics_render(d, &len);
	const char *l = strstr(text, "cvmm_vm_cpu_seconds_total{vm=\"run1\"");
	CU_ASSERT_PTR_NOT_NULL_FATAL(l);
	CU_ASSERT(strtod(strchr(l, '}') + 2, NULL) >= 0.05);
	CU_ASSERT_PTR_NULL(strstr(text, "cvmm_vm_cpu_seconds_total{vm=\"off1\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "cvmm_vms{state=\"running\"} 1\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "cvmm_vms{state=\"stopped\"} 1\n"));
	CU_ASSERT_EQUAL(check_format(text), 0);
	free(text);
	daemon_free(d);
	config_free(&c);
}

static void test_full_tables_do_not_grow(void)
{
	/* More label sets than a table holds fold into one overflow series. */
	struct metrics *m = metrics_new();
	struct cvmm_config c = {0};
	struct cvmm_daemon *d = new_daemon(&c);
	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	metrics_free(d->metrics);
	d->metrics = m;
	for (int i = 0; i < 1000; i++) {
		char p[32];
		snprintf(p, sizeof(p), "p%d", i);
		metrics_plugin_error(m, p);
	}
	size_t len;
	char *text = metrics_render(d, &len);
	int lines = 0;
	for (const char *p = text; (p = strstr(p, "\ncvmm_plugin_errors_total{")); p++)
		lines++;
	CU_ASSERT_EQUAL(lines, 256);
	const char *o = strstr(text, "cvmm_plugin_errors_total{overflow=\"true\"} ");
	CU_ASSERT_PTR_NOT_NULL_FATAL(o);
	CU_ASSERT_EQUAL(strtol(strchr(o, '}') + 2, NULL, 10), 1000 - 255);
	free(text);
	daemon_free(d);
	config_free(&c);
}

int main(void)
{
	const char *rg = getenv("CVMM_REGENERATE");
	regenerate = rg && *rg && strcmp(rg, "0");
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	log_set_level(0);
	CU_pSuite s = CU_add_suite("metrics", NULL, NULL);
	if (!s || !CU_add_test(s, "route templates", test_routes) ||
	    !CU_add_test(s, "label escaping", test_labels) ||
	    !CU_add_test(s, "exposition text (golden file)", test_render_golden) ||
	    !CU_add_test(s, "CPU time of a running VM", test_cpu_of_a_running_vm) ||
	    !CU_add_test(s, "full tables do not grow", test_full_tables_do_not_grow)) {
		CU_cleanup_registry();
		return 1;
	}
	return unit_run();
}
