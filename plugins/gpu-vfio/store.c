/*
 * store: the plugin's own record of which VM holds which device and which
 * devices it moved to vfio-pci (with the driver each had), in one small
 * file under <data_dir>/gpu-vfio, rewritten atomically (temp file, fsync,
 * rename) on every change. It is what a restarted daemon learns the
 * holders from: the per-VM state keys are written with the manifest at the
 * job's next write, too late for a daemon killed between two binds, and a
 * lease must be checked against every VM, which no per-VM key gives.
 */
#include "gv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "cvmm-gpu-vfio 1"

int gv_store_open(struct gv_store *s, const char *dir)
{
	char line[512];
	memset(s, 0, sizeof(*s));
	if (mkdir(dir, 0750) < 0 && errno != EEXIST)
		return -errno;
	snprintf(s->path, sizeof(s->path), "%s/leases", dir);
	FILE *f = fopen(s->path, "re");
	if (!f)
		return errno == ENOENT ? 0 : -errno;
	int rc = 0, first = 1;
	while (fgets(line, sizeof(line), f)) {
		char a[64], b[64], c[64];
		line[strcspn(line, "\n")] = 0;
		if (first) {
			first = 0;
			if (strcmp(line, MAGIC)) {
				rc = -EINVAL;
				break;
			}
			continue;
		}
		if (sscanf(line, "lease %63s %63s %63s", a, b, c) == 3 && strlen(a) < GV_SLOT_LEN)
			rc = gv_store_lease(s, a, b, (uint32_t)strtoul(c, NULL, 10));
		else if (sscanf(line, "bound %63s %63s %63s", a, b, c) == 3 && strlen(a) < GV_SLOT_LEN)
			rc = gv_store_add_bound(s, a, b, strcmp(c, "-") ? c : "");
		else if (sscanf(line, "pins %63s %63s", b, c) == 2) {
			int cpus[GV_MAX_VCPUS];
			const char *list = line + 5 + strlen(b) + 1;
			int n = gv_parse_cpulist(list, cpus, GV_MAX_VCPUS);
			rc = n > 0 ? gv_store_set_pins(s, b, cpus, n) : -EINVAL;
		} else if (line[0])
			rc = -EINVAL;
		if (rc < 0)
			break;
	}
	fclose(f);
	return rc;
}

void gv_store_free(struct gv_store *s)
{
	if (!s)
		return;
	free(s->leases);
	free(s->bound);
	free(s->pins);
	s->leases = NULL;
	s->bound = NULL;
	s->pins = NULL;
	s->n_leases = s->n_bound = s->n_pins = 0;
}

int gv_store_save(const struct gv_store *s)
{
	char tmp[600];
	snprintf(tmp, sizeof(tmp), "%s.tmp", s->path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	FILE *f = fdopen(fd, "w");
	if (!f) {
		int e = -errno;
		close(fd);
		return e;
	}
	fprintf(f, "%s\n", MAGIC);
	for (int i = 0; i < s->n_leases; i++)
		fprintf(f, "lease %s %s %u\n", s->leases[i].slot, s->leases[i].vm,
			s->leases[i].vcpus);
	for (int i = 0; i < s->n_bound; i++)
		fprintf(f, "bound %s %s %s\n", s->bound[i].slot, s->bound[i].vm,
			s->bound[i].orig[0] ? s->bound[i].orig : "-");
	for (int i = 0; i < s->n_pins; i++)
		fprintf(f, "pins %s %s\n", s->pins[i].vm, s->pins[i].cpus);
	int rc = fflush(f) == 0 && fsync(fd) == 0 ? 0 : -errno;
	if (fclose(f) != 0 && !rc)
		rc = -errno;
	if (!rc && rename(tmp, s->path) < 0)
		rc = -errno;
	if (rc)
		unlink(tmp);
	return rc;
}

const char *gv_store_holder(const struct gv_store *s, const char *slot)
{
	for (int i = 0; i < s->n_leases; i++)
		if (!strcmp(s->leases[i].slot, slot))
			return s->leases[i].vm;
	return NULL;
}

int gv_store_lease(struct gv_store *s, const char *slot, const char *vm, uint32_t vcpus)
{
	const char *h = gv_store_holder(s, slot);
	if (h)
		return strcmp(h, vm) ? -EBUSY : 0;
	if (strlen(slot) >= GV_SLOT_LEN || strlen(vm) >= sizeof(s->leases->vm) || strchr(vm, ' '))
		return -EINVAL;
	struct gv_lease *n = realloc(s->leases, sizeof(*n) * (size_t)(s->n_leases + 1));
	if (!n)
		return -ENOMEM;
	s->leases = n;
	struct gv_lease *l = &n[s->n_leases++];
	memset(l, 0, sizeof(*l));
	snprintf(l->slot, sizeof(l->slot), "%s", slot);
	snprintf(l->vm, sizeof(l->vm), "%s", vm);
	l->vcpus = vcpus;
	return 0;
}

int gv_store_release_vm(struct gv_store *s, const char *vm)
{
	int k = 0, n = 0;
	for (int i = 0; i < s->n_leases; i++) {
		if (!strcmp(s->leases[i].vm, vm)) {
			n++;
			continue;
		}
		s->leases[k++] = s->leases[i];
	}
	s->n_leases = k;
	if (gv_store_set_pins(s, vm, NULL, 0) > 0)
		n++;
	return n;
}

/* Returns 1 when a record was removed, else 0; -errno. */
int gv_store_set_pins(struct gv_store *s, const char *vm, const int *cpus, int n)
{
	int at = -1;
	for (int i = 0; i < s->n_pins; i++)
		if (!strcmp(s->pins[i].vm, vm))
			at = i;
	if (!n) {
		if (at < 0)
			return 0;
		memmove(&s->pins[at], &s->pins[at + 1], sizeof(*s->pins) * (size_t)(s->n_pins - at - 1));
		s->n_pins--;
		return 1;
	}
	if (strlen(vm) >= sizeof(s->pins->vm) || strchr(vm, ' '))
		return -EINVAL;
	if (at < 0) {
		struct gv_pinrec *p = realloc(s->pins, sizeof(*p) * (size_t)(s->n_pins + 1));
		if (!p)
			return -ENOMEM;
		s->pins = p;
		at = s->n_pins++;
		memset(&p[at], 0, sizeof(*p));
		snprintf(p[at].vm, sizeof(p[at].vm), "%s", vm);
	}
	gv_format_cpulist(cpus, n, s->pins[at].cpus, sizeof(s->pins[at].cpus));
	return 0;
}

int gv_store_taken(const struct gv_store *s, const char *except, int *out, int max)
{
	int n = 0;
	for (int i = 0; i < s->n_pins; i++)
		if (!except || strcmp(s->pins[i].vm, except)) {
			int k = gv_parse_cpulist(s->pins[i].cpus, out + n, max - n);
			if (k > 0)
				n += k;
		}
	return n;
}

int gv_store_vm_slots(const struct gv_store *s, const char *vm, char (*out)[GV_SLOT_LEN], int max)
{
	int n = 0;
	for (int i = 0; i < s->n_leases && n < max; i++)
		if (!strcmp(s->leases[i].vm, vm))
			snprintf(out[n++], GV_SLOT_LEN, "%s", s->leases[i].slot);
	return n;
}

const struct gv_bound *gv_store_bound(const struct gv_store *s, const char *slot)
{
	for (int i = 0; i < s->n_bound; i++)
		if (!strcmp(s->bound[i].slot, slot))
			return &s->bound[i];
	return NULL;
}

int gv_store_add_bound(struct gv_store *s, const char *slot, const char *vm, const char *orig)
{
	if (gv_store_bound(s, slot))
		return 0; /* the first record holds the driver it had before us */
	if (strlen(slot) >= GV_SLOT_LEN || strlen(vm) >= sizeof(s->bound->vm) ||
	    strlen(orig) >= sizeof(s->bound->orig) || strchr(vm, ' ') || strchr(orig, ' '))
		return -EINVAL;
	struct gv_bound *n = realloc(s->bound, sizeof(*n) * (size_t)(s->n_bound + 1));
	if (!n)
		return -ENOMEM;
	s->bound = n;
	struct gv_bound *b = &n[s->n_bound++];
	memset(b, 0, sizeof(*b));
	snprintf(b->slot, sizeof(b->slot), "%s", slot);
	snprintf(b->vm, sizeof(b->vm), "%s", vm);
	snprintf(b->orig, sizeof(b->orig), "%s", orig);
	return 0;
}

int gv_store_del_bound(struct gv_store *s, const char *slot)
{
	for (int i = 0; i < s->n_bound; i++)
		if (!strcmp(s->bound[i].slot, slot)) {
			memmove(&s->bound[i], &s->bound[i + 1],
				sizeof(*s->bound) * (size_t)(s->n_bound - i - 1));
			s->n_bound--;
			return 1;
		}
	return 0;
}
