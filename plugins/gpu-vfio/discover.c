/*
 * discover: what the host has, read from a sysfs root (the real "/" or a
 * test tree). PCI devices come from sys/bus/pci/devices, IOMMU groups from
 * sys/kernel/iommu_groups, NUMA nodes and their CPUs from
 * sys/devices/system/node/node*\/cpulist.
 *
 * hwloc is not used: with HWLOC_FSROOT it wants a far larger fake tree
 * (cpu topology, caches, meminfo, cpuinfo) than the facts needed here, and
 * the node cpulists are what the kernel itself reports. The switch above a
 * device comes from its sysfs path, which nests every device under the
 * bridges above it: the nearest switch is the one whose downstream port is
 * the device's parent.
 */
#include "gv.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef GV_HAVE_LIBPCI
#include <pci/pci.h>
#endif

int gv_slot_normalise(const char *in, char out[GV_SLOT_LEN])
{
	unsigned dom = 0, bus, dev, fn;
	char tail;
	if (!in)
		return -EINVAL;
	size_t n = strlen(in);
	if (n == 12) {
		if (sscanf(in, "%4x:%2x:%2x.%1x%c", &dom, &bus, &dev, &fn, &tail) != 4)
			return -EINVAL;
	} else if (n == 7) {
		if (sscanf(in, "%2x:%2x.%1x%c", &bus, &dev, &fn, &tail) != 3)
			return -EINVAL;
	} else {
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)in[i]) && in[i] != ':' && in[i] != '.')
			return -EINVAL;
	if (dev > 0x1f || fn > 7)
		return -EINVAL;
	snprintf(out, GV_SLOT_LEN, "%04x:%02x:%02x.%x", dom, bus, dev, fn);
	return 0;
}

static int is_bdf(const char *s)
{
	char tmp[GV_SLOT_LEN];
	return strlen(s) == 12 && gv_slot_normalise(s, tmp) == 0;
}

static int read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	if (!fgets(buf, (int)len, f)) {
		fclose(f);
		buf[0] = 0;
		return -EIO;
	}
	fclose(f);
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

static int read_hex(const char *dir, const char *name, unsigned long *out)
{
	char path[PATH_MAX], buf[64], *end;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int rc = read_line(path, buf, sizeof(buf));
	if (rc < 0)
		return rc;
	errno = 0;
	*out = strtoul(buf, &end, 16);
	return errno || end == buf ? -EINVAL : 0;
}

static int link_base(const char *path, char *out, size_t len)
{
	char buf[PATH_MAX];
	ssize_t n = readlink(path, buf, sizeof(buf) - 1);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	const char *b = strrchr(buf, '/');
	snprintf(out, len, "%s", b ? b + 1 : buf);
	return 0;
}

int gv_driver_of(const char *root, const char *slot, char *out, size_t len)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/sys/bus/pci/devices/%s/driver", root, slot);
	int rc = link_base(path, out, len);
	if (rc == -ENOENT) {
		out[0] = 0;
		return 0;
	}
	return rc;
}

int gv_is_endpoint(const struct gv_dev *d)
{
	/* PCI-to-PCI bridges (0x0604, 0x0609) stay with the host; an NVSwitch
	 * is a "bridge, other" (0x0680) and is an endpoint like a GPU */
	uint32_t c = d->class_code >> 8;
	return c != 0x0604 && c != 0x0609;
}

const struct gv_dev *gv_find(const struct gv_host *h, const char *slot)
{
	for (int i = 0; i < h->n_devs; i++)
		if (!strcmp(h->devs[i].slot, slot))
			return &h->devs[i];
	return NULL;
}

static int cmp_dev(const void *a, const void *b)
{
	return strcmp(((const struct gv_dev *)a)->slot, ((const struct gv_dev *)b)->slot);
}

static int cmp_slot(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

#ifdef GV_HAVE_LIBPCI
static pthread_mutex_t pci_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pci_access *pacc;

/* A missing or broken pci.ids only warns (names stay ""); libpci's
 * default warning prints to stderr. Its error handler (out of memory) is
 * left as it is: it must not return. */
static void pci_quiet(char *msg, ...)
{
	(void)msg;
}
#endif

static void product_name(uint16_t vendor, uint16_t device, char *out, size_t len)
{
	out[0] = 0;
#ifdef GV_HAVE_LIBPCI
	pthread_mutex_lock(&pci_lock);
	if (!pacc && (pacc = pci_alloc())) {
		pacc->warning = pci_quiet;
		pacc->debug = pci_quiet; /* set by pci_init, which is not needed for names */
	}
	if (pacc) {
		char buf[256];
		/* pci.ids only: udev's hwdb differs between hosts (and libpci
		 * leaks a udev context on each hwdb lookup) */
		const char *n = pci_lookup_name(pacc, buf, sizeof(buf),
						PCI_LOOKUP_DEVICE | PCI_LOOKUP_NO_NUMBERS |
							PCI_LOOKUP_NO_HWDB,
						vendor,
						device);
		if (n)
			snprintf(out, len, "%s", n);
	}
	pthread_mutex_unlock(&pci_lock);
#else
	(void)vendor;
	(void)device;
	(void)len;
#endif
}

int gv_parse_cpulist(const char *s, int *cpus, int max)
{
	int n = 0;
	while (*s && *s != '\n') {
		char *end;
		if (!isdigit((unsigned char)*s))
			return -EINVAL;
		long a = strtol(s, &end, 10), b = a;
		s = end;
		if (*s == '-') {
			if (!isdigit((unsigned char)s[1]))
				return -EINVAL;
			b = strtol(s + 1, &end, 10);
			s = end;
		}
		if (b < a || b > 65535)
			return -EINVAL;
		for (long c = a; c <= b && n < max; c++)
			cpus[n++] = (int)c;
		if (*s == ',')
			s++;
		else if (*s && *s != '\n')
			return -EINVAL;
	}
	return n;
}

static void read_nodes(const char *root, struct gv_host *h)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/sys/devices/system/node", root);
	DIR *d = opendir(dir);
	struct dirent *e;
	if (!d)
		return;
	while ((e = readdir(d)) && h->n_nodes < GV_MAX_NODES) {
		char path[PATH_MAX + 300], buf[4096], *end;
		if (strncmp(e->d_name, "node", 4) || !isdigit((unsigned char)e->d_name[4]))
			continue;
		long id = strtol(e->d_name + 4, &end, 10);
		if (*end)
			continue;
		snprintf(path, sizeof(path), "%s/%s/cpulist", dir, e->d_name);
		if (read_line(path, buf, sizeof(buf)) < 0)
			continue;
		struct gv_node *nd = &h->nodes[h->n_nodes++];
		nd->id = (int)id;
		int n = gv_parse_cpulist(buf, nd->cpus, (int)(sizeof(nd->cpus) / sizeof(int)));
		nd->n_cpus = n > 0 ? n : 0; /* a node without CPUs (memory only) */
	}
	closedir(d);
	/* readdir order is the filesystem's: sort by id for stable output */
	for (int i = 1; i < h->n_nodes; i++)
		for (int j = i; j > 0 && h->nodes[j - 1].id > h->nodes[j].id; j--) {
			struct gv_node t = h->nodes[j];
			h->nodes[j] = h->nodes[j - 1];
			h->nodes[j - 1] = t;
		}
}

/* Fills the fields that need only the device's own directory. */
static int read_dev(const char *root, const char *slot, struct gv_dev *d)
{
	char dir[PATH_MAX], path[PATH_MAX + 32], real[PATH_MAX], buf[64];
	unsigned long v;
	memset(d, 0, sizeof(*d));
	snprintf(d->slot, sizeof(d->slot), "%s", slot);
	snprintf(dir, sizeof(dir), "%s/sys/bus/pci/devices/%s", root, slot);
	if (read_hex(dir, "vendor", &v) < 0)
		return -ENOENT;
	d->vendor = (uint16_t)v;
	if (read_hex(dir, "device", &v) < 0)
		return -ENOENT;
	d->device = (uint16_t)v;
	if (read_hex(dir, "class", &v) < 0)
		return -ENOENT;
	d->class_code = (uint32_t)v & 0xffffff;
	snprintf(path, sizeof(path), "%s/numa_node", dir);
	d->numa_node = read_line(path, buf, sizeof(buf)) == 0 ? atoi(buf) : -1;
	snprintf(path, sizeof(path), "%s/iommu_group", dir);
	d->iommu_group = link_base(path, buf, sizeof(buf)) == 0 ? atoi(buf) : -1;
	gv_driver_of(root, slot, d->driver, sizeof(d->driver));
	/* What NCCL's topology file says of each link (NCCL reads the same two) */
	snprintf(path, sizeof(path), "%s/max_link_speed", dir);
	if (read_line(path, buf, sizeof(buf)) == 0)
		snprintf(d->link_speed, sizeof(d->link_speed), "%s", buf);
	snprintf(path, sizeof(path), "%s/max_link_width", dir);
	if (read_line(path, buf, sizeof(buf)) == 0)
		d->link_width = atoi(buf);
	/* The parent: the path component before the device's own, if a BDF. */
	if (realpath(dir, real)) {
		char *last = strrchr(real, '/');
		if (last) {
			*last = 0;
			char *prev = strrchr(real, '/');
			if (prev && is_bdf(prev + 1))
				snprintf(d->parent, sizeof(d->parent), "%s", prev + 1);
		}
	}
	return 0;
}

static void read_group(const char *root, struct gv_dev *d)
{
	char dir[PATH_MAX];
	if (d->iommu_group < 0) {
		snprintf(d->members[0], GV_SLOT_LEN, "%s", d->slot);
		d->n_members = 1;
		return;
	}
	snprintf(dir, sizeof(dir), "%s/sys/kernel/iommu_groups/%d/devices", root, d->iommu_group);
	DIR *g = opendir(dir);
	struct dirent *e;
	while (g && (e = readdir(g)))
		if (is_bdf(e->d_name) && d->n_members < GV_MAX_MEMBERS)
			snprintf(d->members[d->n_members++], GV_SLOT_LEN, "%s", e->d_name);
	if (g)
		closedir(g);
	if (!d->n_members)
		snprintf(d->members[d->n_members++], GV_SLOT_LEN, "%s", d->slot);
	qsort(d->members, (size_t)d->n_members, GV_SLOT_LEN, cmp_slot);
}

static int is_bridge(const struct gv_host *h, const char *slot)
{
	const struct gv_dev *d = slot[0] ? gv_find(h, slot) : NULL;
	return d && (d->class_code >> 8) == 0x0604;
}

/* The upstream port of the switch whose downstream port is d's parent. */
static void find_switch(const struct gv_host *h, struct gv_dev *d)
{
	const struct gv_dev *down = d->parent[0] ? gv_find(h, d->parent) : NULL;
	if (!down || !is_bridge(h, down->slot) || !is_bridge(h, down->parent))
		return;
	const struct gv_dev *up = gv_find(h, down->parent);
	/* up's own parent is a root port (or another switch's downstream port) */
	if (up && is_bridge(h, up->parent))
		snprintf(d->sw, sizeof(d->sw), "%s", up->slot);
}

static enum gv_kind classify(const struct gv_filter *f, const struct gv_dev *d)
{
	uint32_t id = (uint32_t)d->vendor << 16 | d->device;
	uint32_t cls = d->class_code >> 8;
	for (int i = 0; f && i < f->n_listing; i++)
		if (f->listing[i] == id)
			return GV_GPU;
	if (d->vendor == 0x10de && (id == 0x10de22a4 || cls == 0x0680))
		return GV_NVSWITCH;
	if (d->vendor == 0x10de && (cls == 0x0302 || cls == 0x0300))
		return GV_GPU;
	if (cls == 0x0200)
		return GV_NIC;
	if ((cls >> 8) == 0x06)
		return GV_BRIDGE;
	return GV_OTHER;
}

int gv_discover(const char *root, const struct gv_filter *f, struct gv_host *h)
{
	char dir[PATH_MAX];
	int cap = 0, rc = 0;
	memset(h, 0, sizeof(*h));
	snprintf(dir, sizeof(dir), "%s/sys/bus/pci/devices", root);
	DIR *d = opendir(dir);
	struct dirent *e;
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		if (!is_bdf(e->d_name))
			continue;
		if (h->n_devs == cap) {
			cap = cap ? cap * 2 : 64;
			struct gv_dev *n = realloc(h->devs, sizeof(*n) * (size_t)cap);
			if (!n) {
				rc = -ENOMEM;
				break;
			}
			h->devs = n;
		}
		if (read_dev(root, e->d_name, &h->devs[h->n_devs]) == 0)
			h->n_devs++;
	}
	closedir(d);
	if (rc < 0) {
		gv_host_free(h);
		return rc;
	}
	qsort(h->devs, (size_t)h->n_devs, sizeof(*h->devs), cmp_dev);
	for (int i = 0; i < h->n_devs; i++) {
		struct gv_dev *v = &h->devs[i];
		v->kind = classify(f, v);
		read_group(root, v);
		find_switch(h, v);
	}
	/* The GPUDirect peer: the first NIC under the same switch. */
	for (int i = 0; i < h->n_devs; i++) {
		struct gv_dev *v = &h->devs[i];
		if ((v->kind != GV_GPU && v->kind != GV_NVSWITCH) || !v->sw[0])
			continue;
		for (int j = 0; j < h->n_devs; j++)
			if (h->devs[j].kind == GV_NIC && !strcmp(h->devs[j].sw, v->sw)) {
				snprintf(v->peer_nic, sizeof(v->peer_nic), "%s", h->devs[j].slot);
				break;
			}
	}
	for (int i = 0; i < h->n_devs; i++)
		if (h->devs[i].kind == GV_GPU || h->devs[i].kind == GV_NVSWITCH)
			product_name(h->devs[i].vendor, h->devs[i].device, h->devs[i].product,
				     sizeof(h->devs[i].product));
	read_nodes(root, h);
	return 0;
}

void gv_host_free(struct gv_host *h)
{
	if (!h)
		return;
	free(h->devs);
	h->devs = NULL;
	h->n_devs = 0;
}
