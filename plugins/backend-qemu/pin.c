/*
 * pin: see pin.h.
 */
#include "pin.h"
#include "qmp.h"
#include "spec_check.h"

#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PIN_QMP_TIMEOUT_MS 5000

int pin_parse_cpus(const char *json, int *vcpu_tids, size_t max, size_t *n_vcpus, char *err,
		   size_t errlen)
{
	json_object *a = json_tokener_parse(json);
	int r = 0;
	*n_vcpus = 0;
	for (size_t i = 0; i < max; i++)
		vcpu_tids[i] = 0;
	if (!a || !json_object_is_type(a, json_type_array)) {
		snprintf(err, errlen, "query-cpus-fast: not an array");
		r = -EPROTO;
		goto out;
	}
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		json_object *c = json_object_array_get_idx(a, i), *idx, *tid;
		if (!json_object_object_get_ex(c, "cpu-index", &idx) ||
		    !json_object_object_get_ex(c, "thread-id", &tid) ||
		    !json_object_is_type(idx, json_type_int) ||
		    !json_object_is_type(tid, json_type_int) || json_object_get_int64(tid) <= 0) {
			snprintf(err, errlen, "query-cpus-fast: entry %zu lacks cpu-index/thread-id", i);
			r = -EPROTO;
			goto out;
		}
		int64_t v = json_object_get_int64(idx);
		if (v < 0 || (size_t)v >= max) {
			snprintf(err, errlen, "query-cpus-fast: cpu-index %lld out of range",
				 (long long)v);
			r = -EPROTO;
			goto out;
		}
		vcpu_tids[v] = (int)json_object_get_int64(tid);
		if ((size_t)v + 1 > *n_vcpus)
			*n_vcpus = (size_t)v + 1;
	}
out:
	json_object_put(a);
	return r;
}

static void add_step(struct pin_plan *p, int tid, int vcpu, const cpu_set_t *cpus)
{
	struct pin_step *n = realloc(p->steps, sizeof(*n) * (p->n + 1));
	if (!n)
		abort();
	p->steps = n;
	n[p->n].tid = tid;
	n[p->n].vcpu = vcpu;
	n[p->n].cpus = *cpus;
	p->n++;
}

int pin_plan_make(const struct cvmm_launch_spec *s, const int *vcpu_tids, size_t n_vcpus,
		  const int *all_tids, size_t n_all, struct pin_plan *out, char *err,
		  size_t errlen)
{
	cpu_set_t set;
	out->steps = NULL;
	out->n = 0;
	if (!cp_spec_has_12(s))
		return 0;
	/* Emulator threads first: should a vCPU thread be listed among them,
	 * its own pin, applied later, wins. */
	if (s->emulator_cpus[0]) {
		if (cp_cpulist_parse(s->emulator_cpus, &set) <= 0) {
			snprintf(err, errlen, "emulator_cpus '%s' is not a CPU list", s->emulator_cpus);
			return -EINVAL;
		}
		for (size_t i = 0; i < n_all; i++) {
			int is_vcpu = 0;
			for (size_t v = 0; v < n_vcpus && !is_vcpu; v++)
				is_vcpu = vcpu_tids[v] == all_tids[i];
			if (!is_vcpu)
				add_step(out, all_tids[i], -1, &set);
		}
	}
	for (uint32_t i = 0; i < s->n_pins; i++) {
		const struct cvmm_spec_pin *p = s->pins[i];
		if (p->vcpu >= n_vcpus || !vcpu_tids[p->vcpu]) {
			snprintf(err, errlen, "vCPU %u has no thread in QEMU (%zu vCPU threads)",
				 p->vcpu, n_vcpus);
			pin_plan_free(out);
			return -ENOENT;
		}
		if (cp_cpulist_parse(p->host_cpus, &set) <= 0) {
			snprintf(err, errlen, "vCPU %u: host_cpus '%s' is not a CPU list", p->vcpu,
				 p->host_cpus);
			pin_plan_free(out);
			return -EINVAL;
		}
		add_step(out, vcpu_tids[p->vcpu], (int)p->vcpu, &set);
	}
	return 0;
}

void pin_plan_free(struct pin_plan *p)
{
	free(p->steps);
	p->steps = NULL;
	p->n = 0;
}

int pin_list_threads(int pid, int **tids, size_t *n)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	DIR *d = opendir(path);
	*tids = NULL;
	*n = 0;
	if (!d)
		return -errno;
	struct dirent *e;
	while ((e = readdir(d))) {
		int t = atoi(e->d_name);
		if (t <= 0)
			continue;
		int *m = realloc(*tids, sizeof(*m) * (*n + 1));
		if (!m)
			abort();
		*tids = m;
		m[(*n)++] = t;
	}
	closedir(d);
	return 0;
}

int pin_apply(const struct pin_plan *p, char *err, size_t errlen)
{
	for (size_t i = 0; i < p->n; i++) {
		if (sched_setaffinity(p->steps[i].tid, sizeof(cpu_set_t), &p->steps[i].cpus) == 0)
			continue;
		int e = -errno;
		char list[256];
		cp_cpulist_format(&p->steps[i].cpus, list, sizeof(list));
		if (p->steps[i].vcpu >= 0)
			snprintf(err, errlen, "pinning vCPU %d (thread %d) to host CPUs %s: %s",
				 p->steps[i].vcpu, p->steps[i].tid, list, strerror(-e));
		else
			snprintf(err, errlen, "pinning emulator thread %d to host CPUs %s: %s",
				 p->steps[i].tid, list, strerror(-e));
		return e;
	}
	return 0;
}

int pin_qemu(struct qmp *q, int pid, const struct cvmm_launch_spec *s, char *err, size_t errlen)
{
	char *ret = NULL;
	int *all = NULL, *vcpus = NULL;
	size_t n_all = 0, n_vcpus = 0, max = (s->vcpus ? s->vcpus : 1) + 1;
	struct pin_plan plan = {0};
	int r = qmp_command(q, "query-cpus-fast", NULL, PIN_QMP_TIMEOUT_MS, &ret, err, errlen);
	if (r < 0)
		goto out;
	vcpus = calloc(max, sizeof(*vcpus));
	if (!vcpus)
		abort();
	if ((r = pin_parse_cpus(ret, vcpus, max, &n_vcpus, err, errlen)) < 0)
		goto out;
	if ((r = pin_list_threads(pid, &all, &n_all)) < 0) {
		snprintf(err, errlen, "threads of QEMU (pid %d): %s", pid, strerror(-r));
		goto out;
	}
	if ((r = pin_plan_make(s, vcpus, n_vcpus, all, n_all, &plan, err, errlen)) < 0)
		goto out;
	r = pin_apply(&plan, err, errlen);
out:
	pin_plan_free(&plan);
	free(ret);
	free(all);
	free(vcpus);
	return r;
}
