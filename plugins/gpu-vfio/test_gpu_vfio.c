/*
 * Unit tests of gpu-vfio's pure parts, on fake sysfs trees made by
 * tests/gpu/make-fake-sysfs.py (an HGX H200 and a desktop), and of its
 * writes on the FUSE sysfs simulator tests/gpu/sysfs-sim (needs root and
 * /dev/fuse; without them those tests fail, they do not skip).
 *
 * GET /v1/gpus is compared with the files in tests/gpu/golden; GV_REGEN=1
 * rewrites them for review.
 */
#include "gv.h"
#include "unit.h"

#include <cvmm/plugin.h>

#include <CUnit/Basic.h>
#include <json-c/json.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char base[64];
static char hgx[128], desk[128];

static void run(const char *cmd)
{
	int rc = system(cmd);
	if (rc != 0)
		fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
}

static void make_tree(const char *kind, const char *dir)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && '%s' '%s/make-fake-sysfs.py' %s '%s'", dir,
		 GV_PYTHON3, GV_TEST_TOOLS, kind, dir);
	run(cmd);
}

static void filter_open(struct gv_filter *f)
{
	memset(f, 0, sizeof(*f));
	f->enabled = 1;
	f->allow_attach_all = 1;
}

static void store_fresh(struct gv_store *s, const char *name)
{
	char dir[256], cmd[300];
	snprintf(dir, sizeof(dir), "%s/%s", base, name);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	run(cmd);
	CU_ASSERT_EQUAL_FATAL(gv_store_open(s, dir), 0);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return NULL;
	static char buf[1 << 16];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	fclose(f);
	return buf;
}

static void golden(const char *name, const char *text)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/golden/%s", GV_TEST_TOOLS, name);
	if (getenv("GV_REGEN")) {
		FILE *f = fopen(path, "we");
		CU_ASSERT_PTR_NOT_NULL_FATAL(f);
		fprintf(f, "%s\n", text);
		fclose(f);
		return;
	}
	char *want = slurp(path);
	CU_ASSERT_PTR_NOT_NULL_FATAL(want);
	want[strcspn(want, "\n")] = 0;
	if (strcmp(want, text))
		fprintf(stderr, "\n%s differs:\n got: %s\nwant: %s\n", name, text, want);
	CU_ASSERT_STRING_EQUAL(text, want);
}

/* ---- discovery ---- */

static void test_discover_hgx(void)
{
	struct gv_filter f;
	struct gv_host h;
	struct gv_store s;
	static char buf[65536];
	filter_open(&f);
	f.allow_attach_all = 0;
	CU_ASSERT_EQUAL_FATAL(gv_discover(hgx, &f, &h), 0);
	store_fresh(&s, "st-disc");

	int gpus = 0, sw = 0, nics = 0;
	for (int i = 0; i < h.n_devs; i++) {
		gpus += h.devs[i].kind == GV_GPU;
		sw += h.devs[i].kind == GV_NVSWITCH;
		nics += h.devs[i].kind == GV_NIC;
	}
	CU_ASSERT_EQUAL(gpus, 8);
	CU_ASSERT_EQUAL(sw, 4);
	CU_ASSERT_EQUAL(nics, 8);
	const struct gv_dev *g = gv_find(&h, "0000:12:00.0");
	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	CU_ASSERT_STRING_EQUAL(g->sw, "0000:10:00.0");
	CU_ASSERT_STRING_EQUAL(g->peer_nic, "0000:13:00.0");
	CU_ASSERT_STRING_EQUAL(g->driver, "nvidia");
	CU_ASSERT_EQUAL(g->numa_node, 0);
	g = gv_find(&h, "0000:b2:00.0"); /* GPU 5: node 1, audio in its group */
	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	CU_ASSERT_EQUAL(g->numa_node, 1);
	CU_ASSERT_EQUAL(g->n_members, 2);
	CU_ASSERT_STRING_EQUAL(g->members[1], "0000:b2:00.1");
	CU_ASSERT_STRING_EQUAL(g->sw, "0000:b0:00.0");
	CU_ASSERT_STRING_EQUAL(g->peer_nic, "0000:b3:00.0");
	g = gv_find(&h, "0000:07:00.0"); /* an NVSwitch: behind its own switch, no NIC */
	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	CU_ASSERT_EQUAL(g->kind, GV_NVSWITCH);
	CU_ASSERT_STRING_EQUAL(g->sw, "0000:04:00.0");
	CU_ASSERT_STRING_EQUAL(g->peer_nic, "");
	CU_ASSERT_EQUAL(h.n_nodes, 2);
	CU_ASSERT_EQUAL(h.nodes[0].n_cpus, 48);
	CU_ASSERT_EQUAL(h.nodes[0].cpus[1], 2);
	CU_ASSERT_EQUAL(h.nodes[1].cpus[47], 95);

	int n = gv_gpus_json(&h, &f, &s, buf, sizeof(buf));
	CU_ASSERT_TRUE_FATAL(n > 0);
	golden("hgx-gpus.json", buf);
	CU_ASSERT_EQUAL(gv_gpus_json(&h, &f, &s, buf, 64), -ENOSPC);
	gv_store_free(&s);
	gv_host_free(&h);
}

static void test_discover_desktop(void)
{
	struct gv_filter f;
	struct gv_host h;
	struct gv_store s;
	static char buf[8192];
	filter_open(&f);
	CU_ASSERT_EQUAL_FATAL(gv_discover(desk, &f, &h), 0);
	store_fresh(&s, "st-desk");
	const struct gv_dev *g = gv_find(&h, "0000:01:00.0");
	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	CU_ASSERT_EQUAL(g->numa_node, -1);
	CU_ASSERT_STRING_EQUAL(g->sw, ""); /* straight under a root port */
	CU_ASSERT_STRING_EQUAL(g->peer_nic, "");
	CU_ASSERT_EQUAL(g->n_members, 2);
#ifdef GV_HAVE_LIBPCI
	CU_ASSERT_STRING_EQUAL(g->product, "AD102 [GeForce RTX 4090]");
#endif
	CU_ASSERT_TRUE(gv_gpus_json(&h, &f, &s, buf, sizeof(buf)) > 0);
	golden("desktop-gpus.json", buf);
	gv_store_free(&s);
	gv_host_free(&h);
}

static void test_slot_normalise(void)
{
	char out[GV_SLOT_LEN];
	CU_ASSERT_EQUAL(gv_slot_normalise("12:00.0", out), 0);
	CU_ASSERT_STRING_EQUAL(out, "0000:12:00.0");
	CU_ASSERT_EQUAL(gv_slot_normalise("0000:B2:00.1", out), 0);
	CU_ASSERT_STRING_EQUAL(out, "0000:b2:00.1");
	CU_ASSERT_EQUAL(gv_slot_normalise("12:00", out), -EINVAL);
	CU_ASSERT_EQUAL(gv_slot_normalise("12:20.0", out), -EINVAL); /* device > 0x1f */
	CU_ASSERT_EQUAL(gv_slot_normalise("12:00.8", out), -EINVAL);
	CU_ASSERT_EQUAL(gv_slot_normalise("zz:00.0", out), -EINVAL);
	CU_ASSERT_EQUAL(gv_slot_normalise("0000:12:00.0 ", out), -EINVAL);
}

/* ---- request syntax ---- */

static void parse_err(const char *json, const char *want)
{
	struct gv_request r;
	char err[512] = "";
	CU_ASSERT_EQUAL(gv_request_parse(json, &r, err, sizeof(err)), -EINVAL);
	if (strcmp(err, want))
		fprintf(stderr, "\n%s: got \"%s\"\n", json, err);
	CU_ASSERT_STRING_EQUAL(err, want);
}

static void test_request_parse(void)
{
	struct gv_request r;
	char err[512];
	CU_ASSERT_EQUAL(gv_request_parse("{\"attach_mode\":\"listed\",\"gpus\":[{\"slot\":"
					 "\"12:00.0\"},{\"slot\":\"0000:32:00.0\"}]}",
					 &r, err, sizeof(err)),
			0);
	CU_ASSERT_EQUAL(r.mode, GV_LISTED);
	CU_ASSERT_EQUAL(r.n_slots, 2);
	CU_ASSERT_STRING_EQUAL(r.slots[0], "0000:12:00.0");
	CU_ASSERT_EQUAL(gv_request_parse("{\"attach_mode\":\"all\",\"peer_nics\":true}", &r, err,
					 sizeof(err)),
			0);
	CU_ASSERT_EQUAL(r.mode, GV_ALL);
	CU_ASSERT_TRUE(r.peer_nics);
	CU_ASSERT_EQUAL(gv_request_parse("{\"count\":2}", &r, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(r.mode, GV_COUNT);
	CU_ASSERT_EQUAL(r.count, 2);

	parse_err("[1]", "gpus: must be an object (attach_mode, gpus, count, peer_nics)");
	parse_err("{\"mode\":\"all\"}",
		  "gpus.mode: unknown key (known: attach_mode, gpus, count, peer_nics)");
	parse_err("{}", "gpus: attach_mode (\"listed\" or \"all\") or count is needed");
	parse_err("{\"attach_mode\":\"some\"}", "gpus.attach_mode: must be \"listed\" or \"all\"");
	parse_err("{\"attach_mode\":\"all\",\"gpus\":[]}",
		  "gpus.gpus: goes with attach_mode \"listed\" only");
	parse_err("{\"attach_mode\":\"listed\",\"gpus\":[]}",
		  "gpus.gpus: attach_mode \"listed\" needs a non-empty list of {\"slot\": "
		  "\"0000:12:00.0\"}");
	parse_err("{\"attach_mode\":\"listed\",\"gpus\":[{\"slot\":\"12:00.0\"},{\"slot\":"
		  "\"nope\"}]}",
		  "gpus.gpus[1].slot: \"nope\" is not a PCI address (0000:12:00.0 or 12:00.0)");
	parse_err("{\"attach_mode\":\"listed\",\"gpus\":[{\"slot\":\"12:00.0\"},{\"slot\":"
		  "\"0000:12:00.0\"}]}",
		  "gpus.gpus[1].slot: 0000:12:00.0 is listed twice");
	parse_err("{\"attach_mode\":\"listed\",\"gpus\":[{\"slot\":\"12:00.0\",\"x\":1}]}",
		  "gpus.gpus[0]: must be {\"slot\": \"0000:12:00.0\"}");
	parse_err("{\"count\":0}", "gpus.count: must be an integer from 1 to 64");
	parse_err("{\"count\":2,\"attach_mode\":\"all\"}",
		  "gpus.count: goes without attach_mode and gpus (cvmm chooses the GPUs)");
	parse_err("{\"count\":1,\"peer_nics\":1}", "gpus.peer_nics: must be true or false");
}

/* ---- resolution: filters, modes, exclusivity, placement ---- */

static struct gv_host H;

static int resolve(const struct gv_filter *f, const struct gv_store *s, const char *vm,
		   uint32_t vcpus, const char *json, char (*out)[GV_SLOT_LEN], char *err)
{
	struct gv_request r;
	int rc = gv_request_parse(json, &r, err, 512);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	return gv_resolve(&H, f, s, vm, vcpus, &r, out, GV_MAX_SEL, err, 512);
}

static void list_str(char (*slots)[GV_SLOT_LEN], int n, char *buf, size_t len)
{
	size_t l = 0;
	buf[0] = 0;
	for (int i = 0; i < n; i++)
		l += (size_t)snprintf(buf + l, len - l, "%s%s", i ? " " : "", slots[i] + 5);
}

#define EXPECT_SEL(rc_, out_, want_)                                                               \
	do {                                                                                       \
		char got_[2048];                                                                   \
		CU_ASSERT_TRUE_FATAL((rc_) >= 0);                                                  \
		list_str(out_, rc_, got_, sizeof(got_));                                           \
		if (strcmp(got_, want_))                                                           \
			fprintf(stderr, "\nline %d: got \"%s\"\n", __LINE__, got_);               \
		CU_ASSERT_STRING_EQUAL(got_, want_);                                               \
	} while (0)

#define EXPECT_ERR(rc_, want_rc_, err_, want_)                                                     \
	do {                                                                                       \
		CU_ASSERT_EQUAL(rc_, want_rc_);                                                    \
		if (strcmp(err_, want_))                                                           \
			fprintf(stderr, "\nline %d: got \"%s\"\n", __LINE__, err_);               \
		CU_ASSERT_STRING_EQUAL(err_, want_);                                               \
	} while (0)

static void test_modes_and_filters(void)
{
	struct gv_filter f;
	struct gv_store s;
	char out[GV_MAX_SEL][GV_SLOT_LEN], err[512];
	int n;
	store_fresh(&s, "st-modes");
	filter_open(&f);

	n = resolve(&f, &s, "a", 4, "{\"attach_mode\":\"listed\",\"gpus\":[{\"slot\":\"b2:00.0\"}]}",
		    out, err);
	EXPECT_SEL(n, out, "b2:00.0 b2:00.1"); /* with its audio function */
	n = resolve(&f, &s, "a", 4,
		    "{\"attach_mode\":\"listed\",\"gpus\":[{\"slot\":\"12:00.0\"}],"
		    "\"peer_nics\":true}",
		    out, err);
	EXPECT_SEL(n, out, "12:00.0 13:00.0");
	n = resolve(&f, &s, "a", 4, "{\"attach_mode\":\"all\"}", out, err);
	EXPECT_SEL(n, out,
		   "06:00.0 07:00.0 08:00.0 09:00.0 12:00.0 32:00.0 52:00.0 72:00.0 92:00.0 "
		   "b2:00.0 b2:00.1 d2:00.0 f2:00.0");
	n = resolve(&f, &s, "a", 4, "{\"attach_mode\":\"all\",\"peer_nics\":true}", out, err);
	CU_ASSERT_EQUAL(n, 21); /* 8 GPUs + audio + 4 NVSwitches + 8 NICs */
	n = resolve(&f, &s, "a", 4,
		    "{\"attach_mode\":\"listed\",\"gpus\":[{\"slot\":\"99:00.0\"}]}", out, err);
	EXPECT_ERR(n, -EINVAL, err,
		   "gpus.gpus[0].slot: 0000:99:00.0 is not a GPU this host offers (not found)");
	n = resolve(&f, &s, "a", 4,
		    "{\"attach_mode\":\"listed\",\"gpus\":[{\"slot\":\"13:00.0\"}]}", out, err);
	EXPECT_ERR(n, -EINVAL, err,
		   "gpus.gpus[0].slot: 0000:13:00.0 is not a GPU this host offers (not a GPU or "
		   "NVSwitch (class 020000))");

	/* exclude holds in every mode, "all" included (dstack's "all" ignores it) */
	snprintf(f.exclude[f.n_exclude++], GV_SLOT_LEN, "0000:12:00.0");
	snprintf(f.exclude[f.n_exclude++], GV_SLOT_LEN, "0000:07:00.0");
	n = resolve(&f, &s, "a", 4, "{\"attach_mode\":\"listed\",\"gpus\":[{\"slot\":\"12:00.0\"}]}",
		    out, err);
	EXPECT_ERR(n, -EINVAL, err,
		   "gpus.gpus[0].slot: 0000:12:00.0 is not a GPU this host offers (excluded by "
		   "cvm.gpu.exclude)");
	n = resolve(&f, &s, "a", 4, "{\"attach_mode\":\"all\"}", out, err);
	EXPECT_SEL(n, out,
		   "06:00.0 08:00.0 09:00.0 32:00.0 52:00.0 72:00.0 92:00.0 b2:00.0 b2:00.1 "
		   "d2:00.0 f2:00.0");
	n = resolve(&f, &s, "a", 4, "{\"count\":4}", out, err);
	EXPECT_SEL(n, out, "92:00.0 b2:00.0 b2:00.1 d2:00.0 f2:00.0"); /* node 0 has 3 left */
	/* an excluded peer NIC */
	snprintf(f.exclude[f.n_exclude++], GV_SLOT_LEN, "0000:33:00.0");
	n = resolve(&f, &s, "a", 4,
		    "{\"attach_mode\":\"listed\",\"gpus\":[{\"slot\":\"32:00.0\"}],"
		    "\"peer_nics\":true}",
		    out, err);
	EXPECT_ERR(n, -EINVAL, err,
		   "gpus.peer_nics: 0000:33:00.0 (GPUDirect peer of 0000:32:00.0) is excluded by "
		   "cvm.gpu.exclude");

	/* include: only those slots, in every mode */
	filter_open(&f);
	snprintf(f.include[f.n_include++], GV_SLOT_LEN, "0000:32:00.0");
	snprintf(f.include[f.n_include++], GV_SLOT_LEN, "0000:d2:00.0");
	n = resolve(&f, &s, "a", 4, "{\"attach_mode\":\"all\"}", out, err);
	EXPECT_SEL(n, out, "32:00.0 d2:00.0");
	n = resolve(&f, &s, "a", 4, "{\"attach_mode\":\"listed\",\"gpus\":[{\"slot\":\"12:00.0\"}]}",
		    out, err);
	EXPECT_ERR(n, -EINVAL, err,
		   "gpus.gpus[0].slot: 0000:12:00.0 is not a GPU this host offers (not in "
		   "cvm.gpu.include)");
	n = resolve(&f, &s, "a", 4, "{\"count\":2}", out, err);
	EXPECT_ERR(n, -EBUSY, err, "gpus.count: no NUMA node has 2 free GPUs (free: node 0: 1, node 1: 1)");

	/* listing: ids offered as GPUs; NVSwitches are not GPUs and stay offered */
	filter_open(&f);
	gv_parse_id("10de:2336", &f.listing[f.n_listing++]);
	n = resolve(&f, &s, "a", 4, "{\"attach_mode\":\"all\"}", out, err);
	EXPECT_SEL(n, out, "06:00.0 07:00.0 08:00.0 09:00.0");
	n = resolve(&f, &s, "a", 4, "{\"attach_mode\":\"listed\",\"gpus\":[{\"slot\":\"12:00.0\"}]}",
		    out, err);
	EXPECT_ERR(n, -EINVAL, err,
		   "gpus.gpus[0].slot: 0000:12:00.0 is not a GPU this host offers (10de:2335 is "
		   "not in cvm.gpu.listing)");
	n = resolve(&f, &s, "a", 4, "{\"count\":1}", out, err);
	EXPECT_ERR(n, -EINVAL, err, "gpus.count: 1 GPUs asked, this host offers 0");
	/* listing names a non-NVIDIA device: it becomes a GPU */
	gv_parse_id("15b3:1021", &f.listing[f.n_listing++]);
	struct gv_host h2;
	CU_ASSERT_EQUAL_FATAL(gv_discover(hgx, &f, &h2), 0);
	CU_ASSERT_EQUAL(gv_find(&h2, "0000:13:00.0")->kind, GV_GPU);
	gv_host_free(&h2);

	/* the switches */
	filter_open(&f);
	f.allow_attach_all = 0;
	n = resolve(&f, &s, "a", 4, "{\"attach_mode\":\"all\"}", out, err);
	EXPECT_ERR(n, -EPERM, err,
		   "gpus.attach_mode: \"all\" is refused on this host (cvm.gpu.allow_attach_all "
		   "is false)");
	f.enabled = 0;
	n = resolve(&f, &s, "a", 4, "{\"count\":1}", out, err);
	EXPECT_ERR(n, -EPERM, err,
		   "gpus: GPU passthrough is disabled on this host (cvm.gpu.enabled is false)");
	gv_store_free(&s);
}

static void lease_all(struct gv_store *s, char (*out)[GV_SLOT_LEN], int n, const char *vm,
		      uint32_t vcpus)
{
	CU_ASSERT_TRUE_FATAL(n > 0);
	for (int i = 0; i < n; i++)
		CU_ASSERT_EQUAL(gv_store_lease(s, out[i], vm, vcpus), 0);
	CU_ASSERT_EQUAL(gv_store_save(s), 0);
}

static void test_exclusivity(void)
{
	struct gv_filter f;
	struct gv_store s;
	char out[GV_MAX_SEL][GV_SLOT_LEN], err[512], dir[256];
	int n;
	store_fresh(&s, "st-excl");
	filter_open(&f);
	n = resolve(&f, &s, "vm-a", 4,
		    "{\"attach_mode\":\"listed\",\"gpus\":[{\"slot\":\"b2:00.0\"},{\"slot\":"
		    "\"12:00.0\"}],\"peer_nics\":true}",
		    out, err);
	EXPECT_SEL(n, out, "12:00.0 13:00.0 b2:00.0 b2:00.1 b3:00.0");
	lease_all(&s, out, n, "vm-a", 4);

	/* a restarted daemon reads the holders back */
	snprintf(dir, sizeof(dir), "%s/st-excl", base);
	gv_store_free(&s);
	CU_ASSERT_EQUAL_FATAL(gv_store_open(&s, dir), 0);
	CU_ASSERT_STRING_EQUAL(gv_store_holder(&s, "0000:b2:00.1"), "vm-a");

	n = resolve(&f, &s, "vm-b", 4,
		    "{\"attach_mode\":\"listed\",\"gpus\":[{\"slot\":\"32:00.0\"},{\"slot\":"
		    "\"12:00.0\"}]}",
		    out, err);
	EXPECT_ERR(n, -EBUSY, err, "gpus.gpus[1].slot: 0000:12:00.0 is held by VM vm-a");
	n = resolve(&f, &s, "vm-b", 4,
		    "{\"attach_mode\":\"listed\",\"gpus\":[{\"slot\":\"32:00.0\"}],\"peer_nics\":true}",
		    out, err);
	EXPECT_SEL(n, out, "32:00.0 33:00.0");
	n = resolve(&f, &s, "vm-b", 4, "{\"attach_mode\":\"all\"}", out, err);
	EXPECT_ERR(n, -EBUSY, err, "gpus.attach_mode: 0000:12:00.0 is held by VM vm-a");
	/* a define that runs again for the holder (restart mid-define) gets the same */
	n = resolve(&f, &s, "vm-a", 4,
		    "{\"attach_mode\":\"listed\",\"gpus\":[{\"slot\":\"12:00.0\"}]}", out, err);
	EXPECT_SEL(n, out, "12:00.0");
	/* the group: the audio function held alone makes the GPU unavailable */
	gv_store_release_vm(&s, "vm-a");
	CU_ASSERT_EQUAL(gv_store_lease(&s, "0000:b2:00.1", "vm-c", 2), 0);
	n = resolve(&f, &s, "vm-b", 4, "{\"attach_mode\":\"listed\",\"gpus\":[{\"slot\":\"b2:00.0\"}]}",
		    out, err);
	EXPECT_ERR(n, -EBUSY, err,
		   "gpus.gpus[0].slot: 0000:b2:00.0 shares IOMMU group 34 with 0000:b2:00.1, held "
		   "by VM vm-c");
	CU_ASSERT_EQUAL(gv_store_lease(&s, "0000:b2:00.1", "vm-b", 2), -EBUSY);
	CU_ASSERT_EQUAL(gv_store_release_vm(&s, "vm-c"), 1);
	CU_ASSERT_PTR_NULL(gv_store_holder(&s, "0000:b2:00.1"));

	/* GET /v1/gpus names the holder */
	static char buf[65536];
	CU_ASSERT_EQUAL(gv_store_lease(&s, "0000:92:00.0", "vm-d", 2), 0);
	CU_ASSERT_TRUE(gv_gpus_json(&H, &f, &s, buf, sizeof(buf)) > 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "\"slot\":\"0000:92:00.0\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "\"driver\":\"nvidia\",\"vm\":\"vm-d\"}"));
	CU_ASSERT_TRUE(gv_vm_json(&s, "vm-d", buf, sizeof(buf)) > 0);
	CU_ASSERT_STRING_EQUAL(buf, "[\"0000:92:00.0\"]");
	gv_store_free(&s);
}

static void test_count_placement(void)
{
	struct gv_filter f;
	struct gv_store s;
	char out[GV_MAX_SEL][GV_SLOT_LEN], err[512];
	int n;
	store_fresh(&s, "st-count");
	filter_open(&f);
	n = resolve(&f, &s, "v1", 8, "{\"count\":2}", out, err);
	EXPECT_SEL(n, out, "12:00.0 32:00.0"); /* node 0 first */
	n = resolve(&f, &s, "v1", 8, "{\"count\":4,\"peer_nics\":true}", out, err);
	EXPECT_SEL(n, out, "12:00.0 13:00.0 32:00.0 33:00.0 52:00.0 53:00.0 72:00.0 73:00.0");
	n = resolve(&f, &s, "v1", 8, "{\"count\":5}", out, err);
	EXPECT_ERR(n, -EBUSY, err,
		   "gpus.count: no NUMA node has 5 free GPUs (free: node 0: 4, node 1: 4)");
	n = resolve(&f, &s, "v1", 8, "{\"count\":9}", out, err);
	EXPECT_ERR(n, -EINVAL, err, "gpus.count: 9 GPUs asked, this host offers 8");

	/* VM a takes one GPU of node 0 and 44 of its 48 CPUs */
	n = resolve(&f, &s, "a", 44, "{\"count\":1}", out, err);
	EXPECT_SEL(n, out, "12:00.0");
	lease_all(&s, out, n, "a", 44);
	/* 3 GPUs left on node 0 but only 4 CPUs: node 1 is preferred for 8 vCPUs */
	n = resolve(&f, &s, "b", 8, "{\"count\":2}", out, err);
	EXPECT_SEL(n, out, "92:00.0 b2:00.0 b2:00.1");
	/* ...but a VM that fits in 4 CPUs still goes to node 0 */
	n = resolve(&f, &s, "b", 4, "{\"count\":2}", out, err);
	EXPECT_SEL(n, out, "32:00.0 52:00.0");
	/* node 1 full: no node with enough CPUs has the GPUs, node 0 still does */
	n = resolve(&f, &s, "c", 48, "{\"count\":4}", out, err);
	EXPECT_SEL(n, out, "92:00.0 b2:00.0 b2:00.1 d2:00.0 f2:00.0");
	lease_all(&s, out, n, "c", 48);
	n = resolve(&f, &s, "b", 8, "{\"count\":3}", out, err);
	EXPECT_SEL(n, out, "32:00.0 52:00.0 72:00.0");
	n = resolve(&f, &s, "b", 8, "{\"count\":4}", out, err);
	EXPECT_ERR(n, -EBUSY, err,
		   "gpus.count: no NUMA node has 4 free GPUs (free: node 0: 3, node 1: 0)");
	gv_store_free(&s);

	/* CPUs kept for the host (cvm.host_cpus) and pinned to other VMs
	 * (the planner's pin leases) are not free either */
	store_fresh(&s, "st-count2");
	for (int c = 0; c < 96; c += 2)
		if (c < 80)
			f.reserved[f.n_reserved++] = c; /* node 0: 8 CPUs left */
	n = resolve(&f, &s, "d", 16, "{\"count\":1}", out, err);
	EXPECT_SEL(n, out, "92:00.0");
	int pins[40];
	for (int k = 0; k < 40; k++)
		pins[k] = 95 - 2 * k; /* node 1: 8 CPUs left */
	CU_ASSERT_EQUAL(gv_store_set_pins(&s, "e", pins, 40), 0);
	n = resolve(&f, &s, "d", 16, "{\"count\":1}", out, err);
	EXPECT_SEL(n, out, "12:00.0"); /* neither fits: the first node with the GPUs */
	n = resolve(&f, &s, "d", 8, "{\"count\":1}", out, err);
	EXPECT_SEL(n, out, "12:00.0");
	gv_store_free(&s);
}

static void test_hostdevs(void)
{
	char slots[4][GV_SLOT_LEN] = {"0000:12:00.0", "0000:13:00.0", "0000:b2:00.0",
				      "0000:b2:00.1"};
	struct cvmm_spec_hostdev d[4];
	CU_ASSERT_EQUAL(gv_hostdevs(slots, 4, d), 4);
	CU_ASSERT_STRING_EQUAL(d[0].host, "0000:12:00.0");
	CU_ASSERT_STRING_EQUAL(d[0].group, ""); /* a slot of its own */
	CU_ASSERT_STRING_EQUAL(d[1].group, "");
	CU_ASSERT_STRING_EQUAL(d[2].id, "hostdev2");
	CU_ASSERT_STRING_EQUAL(d[2].group, "hostdev-fn1"); /* GPU and audio: one guest slot */
	CU_ASSERT_STRING_EQUAL(d[3].group, "hostdev-fn1");
	CU_ASSERT_EQUAL(d[2].function, 0);
	CU_ASSERT_EQUAL(d[3].function, 1);
	CU_ASSERT_EQUAL(d[3].struct_size, sizeof(d[3]));
	CU_ASSERT_STRING_EQUAL(d[3].bus, "");
}

/* ---- the simulator ---- */

static pid_t sim_pid;
static char tree[256], mnt[256], simdir[300];

static void sim_start(void)
{
	char p[600];
	snprintf(tree, sizeof(tree), "%s/sim-tree", base);
	snprintf(mnt, sizeof(mnt), "%s/sim-mnt", base);
	snprintf(simdir, sizeof(simdir), "%s/sim", tree);
	make_tree("hgx", tree);
	mkdir(mnt, 0755);
	sim_pid = fork();
	CU_ASSERT_TRUE_FATAL(sim_pid >= 0);
	if (sim_pid == 0) {
		char sim[512];
		snprintf(sim, sizeof(sim), "%s/sysfs-sim", GV_TEST_TOOLS);
		execl(GV_PYTHON3, GV_PYTHON3, sim, tree, mnt, (char *)NULL);
		_exit(127);
	}
	snprintf(p, sizeof(p), "%s/sys/bus/pci/drivers_probe", mnt);
	for (int i = 0; i < 250 && access(p, F_OK) < 0; i++)
		usleep(20000);
	if (access(p, F_OK) < 0)
		fprintf(stderr, "\nsysfs-sim did not mount %s (root and /dev/fuse needed)\n", mnt);
	CU_ASSERT_EQUAL_FATAL(access(p, F_OK), 0);
}

static void sim_stop(void)
{
	/* a plain unmount ends libfuse's loop at once; lazily detached, it
	 * would wait for a request that never comes */
	if (umount2(mnt, 0) < 0)
		umount2(mnt, MNT_DETACH);
	if (sim_pid > 0) {
		for (int i = 0; i < 100 && waitpid(sim_pid, NULL, WNOHANG) == 0; i++)
			usleep(20000);
		if (kill(sim_pid, SIGKILL) == 0)
			waitpid(sim_pid, NULL, 0);
	}
	sim_pid = 0;
}

static void sim_ctl(const char *name, const char *text)
{
	char p[400];
	snprintf(p, sizeof(p), "%s/%s", simdir, name);
	FILE *f = fopen(p, "we");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs(text, f);
	fclose(f);
}

static char *sim_log(void)
{
	char p[400];
	snprintf(p, sizeof(p), "%s/log", simdir);
	char *t = slurp(p);
	return t ? t : "";
}

static const char *drv(const char *slot)
{
	static char d[8][64];
	static int k;
	char *o = d[k++ % 8];
	CU_ASSERT_EQUAL(gv_driver_of(mnt, slot, o, 64), 0);
	return o;
}

/* Discovery in the simulator tests reads the tree under the mount (the
 * same files: the simulator writes through), since every lookup through
 * the Python FUSE server costs a round trip; the writes and the driver
 * checks go through the mount. */
static void ctx_init(struct gv_bind_ctx *c, struct gv_store *s, const char *vm, int timeout)
{
	memset(c, 0, sizeof(*c));
	c->root = mnt;
	c->timeout_ms = timeout;
	c->store = s;
	c->vm = vm;
}

#define D "sys/bus/pci/devices/"
#define P "sys/bus/pci/"

static void test_sim_bind_restore(void)
{
	struct gv_store s;
	struct gv_bind_ctx c;
	struct gv_host h;
	struct gv_pause pause = {0};
	char slots[1][GV_SLOT_LEN] = {"0000:b2:00.0"}, p[400], cmd[700];
	sim_start();
	store_fresh(&s, "st-sim1");
	CU_ASSERT_EQUAL_FATAL(gv_discover(tree, NULL, &h), 0);

	/* an "nvidia-persistenced": a copy of sleep under that name, found
	 * through the tree's proc/ and the real /proc */
	snprintf(cmd, sizeof(cmd), "cp /bin/sleep %s/nvidia-persistenced", base);
	run(cmd);
	pid_t pp = fork();
	if (pp == 0) {
		snprintf(p, sizeof(p), "%s/nvidia-persistenced", base);
		execl(p, "nvidia-persistenced", "60", (char *)NULL);
		_exit(127);
	}
	usleep(100000);
	snprintf(cmd, sizeof(cmd), "mkdir -p %s/proc/%d && echo nvidia-persiste > %s/proc/%d/comm",
		 tree, pp, tree, pp);
	run(cmd);
	snprintf(p, sizeof(p), "%d\n", pp);
	sim_ctl("watch_pid", p);

	ctx_init(&c, &s, "vm-1", 2000);
	pause.root = mnt;
	c.pause = gv_pause_persistenced;
	c.pause_data = &pause;
	CU_ASSERT_EQUAL(gv_bind(&c, &h, slots, 1), 0);
	CU_ASSERT_STRING_EQUAL(c.err, "");
	CU_ASSERT_STRING_EQUAL(drv("0000:b2:00.0"), "vfio-pci");
	CU_ASSERT_STRING_EQUAL(drv("0000:b2:00.1"), "vfio-pci");
	/* every write made while persistenced was stopped (T) */
	CU_ASSERT_STRING_EQUAL(sim_log(),
			       D "0000:b2:00.0/driver_override vfio-pci 0 persist=T\n"
			       P "drivers/nvidia/unbind 0000:b2:00.0 0 persist=T\n"
			       P "drivers_probe 0000:b2:00.0 0 persist=T\n"
			       D "0000:b2:00.1/driver_override vfio-pci 0 persist=T\n"
			       P "drivers/snd_hda_intel/unbind 0000:b2:00.1 0 persist=T\n"
			       P "drivers_probe 0000:b2:00.1 0 persist=T\n");
	/* and resumed after */
	snprintf(p, sizeof(p), "/proc/%d/stat", pp);
	char *st = slurp(p);
	CU_ASSERT_PTR_NOT_NULL(st);
	if (st)
		CU_ASSERT_PTR_NOT_NULL(strstr(st, ") S "));
	CU_ASSERT_STRING_EQUAL(gv_store_bound(&s, "0000:b2:00.1")->orig, "snd_hda_intel");
	/* binding again (a retried start) changes nothing */
	sim_ctl("log", "");
	CU_ASSERT_EQUAL(gv_bind(&c, &h, slots, 1), 0);
	CU_ASSERT_STRING_EQUAL(sim_log(), "");

	CU_ASSERT_EQUAL(gv_restore(&c), 0);
	CU_ASSERT_STRING_EQUAL(drv("0000:b2:00.0"), "nvidia");
	CU_ASSERT_STRING_EQUAL(drv("0000:b2:00.1"), "snd_hda_intel");
	CU_ASSERT_STRING_EQUAL(sim_log(),
			       D "0000:b2:00.0/driver_override - 0 persist=T\n"
			       P "drivers/vfio-pci/unbind 0000:b2:00.0 0 persist=T\n"
			       P "drivers_probe 0000:b2:00.0 0 persist=T\n"
			       D "0000:b2:00.1/driver_override - 0 persist=T\n"
			       P "drivers/vfio-pci/unbind 0000:b2:00.1 0 persist=T\n"
			       P "drivers_probe 0000:b2:00.1 0 persist=T\n");
	CU_ASSERT_EQUAL(s.n_bound, 0);
	/* restoring again (POST_STOP after a restart) writes nothing */
	sim_ctl("log", "");
	CU_ASSERT_EQUAL(gv_restore(&c), 0);
	CU_ASSERT_STRING_EQUAL(sim_log(), "");

	kill(pp, SIGKILL);
	waitpid(pp, NULL, 0);
	gv_host_free(&h);
	gv_store_free(&s);
	sim_stop();
}

static void test_sim_later_step_fails(void)
{
	struct gv_store s;
	struct gv_bind_ctx c;
	struct gv_host h;
	char slots[3][GV_SLOT_LEN] = {"0000:12:00.0", "0000:32:00.0", "0000:52:00.0"};
	sim_start();
	store_fresh(&s, "st-sim2");
	CU_ASSERT_EQUAL_FATAL(gv_discover(tree, NULL, &h), 0);
	/* the third GPU: probing and binding to vfio-pci both fail */
	sim_ctl("fail", P "drivers_probe 0000:52:00.0 EIO\n" P
			  "drivers/vfio-pci/bind 0000:52:00.0 EIO\n");
	ctx_init(&c, &s, "vm-2", 2000);
	CU_ASSERT_EQUAL(gv_bind(&c, &h, slots, 3), -EIO);
	CU_ASSERT_STRING_EQUAL(c.err, "0000:52:00.0: binding to vfio-pci: Input/output error");
	sim_ctl("fail", "");
	/* all three are back where they were, the record is empty */
	CU_ASSERT_STRING_EQUAL(drv("0000:12:00.0"), "nvidia");
	CU_ASSERT_STRING_EQUAL(drv("0000:32:00.0"), "nvidia");
	CU_ASSERT_STRING_EQUAL(drv("0000:52:00.0"), "nvidia");
	CU_ASSERT_EQUAL(s.n_bound, 0);
	char *log = sim_log();
	CU_ASSERT_PTR_NOT_NULL(strstr(log, P "drivers/vfio-pci/bind 0000:52:00.0 EIO\n" D
					      "0000:12:00.0/driver_override - 0\n"));
	/* 52 was left unbound; its probe still fails, the explicit bind does it */
	CU_ASSERT_PTR_NOT_NULL(strstr(log, D "0000:52:00.0/driver_override - 0\n" P
					      "drivers_probe 0000:52:00.0 EIO\n" P
					      "drivers/nvidia/bind 0000:52:00.0 0\n"));
	gv_host_free(&h);
	gv_store_free(&s);
	sim_stop();
}

static void test_sim_hang(void)
{
	struct gv_store s;
	struct gv_bind_ctx c;
	struct gv_host h;
	char slots[2][GV_SLOT_LEN] = {"0000:12:00.0", "0000:32:00.0"};
	sim_start();
	store_fresh(&s, "st-sim3");
	CU_ASSERT_EQUAL_FATAL(gv_discover(tree, NULL, &h), 0);
	sim_ctl("hang", P "drivers/nvidia/unbind 0000:32:00.0\n");
	ctx_init(&c, &s, "vm-3", 300);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CU_ASSERT_EQUAL(gv_bind(&c, &h, slots, 2), -ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	CU_ASSERT_TRUE(secs < 2.0); /* bounded: one timeout, not a hang */
	CU_ASSERT_STRING_EQUAL(c.err, "0000:32:00.0: unbinding from nvidia: no answer after 300 ms");
	CU_ASSERT_STRING_EQUAL(drv("0000:12:00.0"), "nvidia"); /* undone */
	CU_ASSERT_STRING_EQUAL(drv("0000:32:00.0"), "nvidia");
	/* 32's record stays: its unbind may still land */
	CU_ASSERT_EQUAL(s.n_bound, 1);
	CU_ASSERT_PTR_NULL(gv_store_bound(&s, "0000:12:00.0"));
	CU_ASSERT_PTR_NOT_NULL(gv_store_bound(&s, "0000:32:00.0"));
	/* the kernel finishes the write late: the device is left unbound */
	sim_ctl("hang", "");
	for (int i = 0; i < 100 && drv("0000:32:00.0")[0]; i++)
		usleep(20000);
	CU_ASSERT_STRING_EQUAL(drv("0000:32:00.0"), "");
	/* the next restore (POST_STOP) gives it back */
	struct gv_bind_ctx c2;
	ctx_init(&c2, &s, "vm-3", 300);
	CU_ASSERT_EQUAL(gv_restore(&c2), 0);
	CU_ASSERT_STRING_EQUAL(drv("0000:32:00.0"), "nvidia");
	CU_ASSERT_EQUAL(s.n_bound, 0);
	gv_host_free(&h);
	gv_store_free(&s);
	sim_stop();
}

static void test_sim_killed_between_binds(void)
{
	struct gv_store s;
	struct gv_host h;
	char slots[2][GV_SLOT_LEN] = {"0000:12:00.0", "0000:32:00.0"}, dir[256];
	sim_start();
	store_fresh(&s, "st-sim4");
	snprintf(dir, sizeof(dir), "%s/st-sim4", base);
	CU_ASSERT_EQUAL_FATAL(gv_discover(tree, NULL, &h), 0);
	CU_ASSERT_EQUAL(gv_store_lease(&s, "0000:12:00.0", "vm-4", 2), 0);
	CU_ASSERT_EQUAL(gv_store_lease(&s, "0000:32:00.0", "vm-4", 2), 0);
	CU_ASSERT_EQUAL(gv_store_save(&s), 0);
	sim_ctl("hang", P "drivers_probe 0000:32:00.0\n");
	/* the "daemon": binds, and is killed -9 in the middle of the second GPU */
	pid_t d = fork();
	if (d == 0) {
		struct gv_bind_ctx c;
		ctx_init(&c, &s, "vm-4", 60000);
		gv_bind(&c, &h, slots, 2);
		_exit(0);
	}
	for (int i = 0; i < 250 && !strstr(sim_log(), "nvidia/unbind 0000:32:00.0"); i++)
		usleep(20000);
	usleep(100000); /* now blocked in drivers_probe */
	kill(d, SIGKILL);
	CU_ASSERT_STRING_EQUAL(drv("0000:12:00.0"), "vfio-pci");
	/* the write was under way: the kernel (here FUSE) finishes it before
	 * the killed process can go, and the probe lands after all */
	sim_ctl("hang", "");
	waitpid(d, NULL, 0);
	for (int i = 0; i < 100 && !drv("0000:32:00.0")[0]; i++)
		usleep(20000);

	/* the restarted daemon: the record names both, with their drivers */
	gv_store_free(&s);
	CU_ASSERT_EQUAL_FATAL(gv_store_open(&s, dir), 0);
	CU_ASSERT_EQUAL(s.n_bound, 2);
	CU_ASSERT_STRING_EQUAL(gv_store_holder(&s, "0000:32:00.0"), "vm-4");
	static char buf[65536];
	struct gv_filter f;
	filter_open(&f);
	struct gv_host now;
	CU_ASSERT_EQUAL_FATAL(gv_discover(tree, &f, &now), 0);
	CU_ASSERT_TRUE(gv_gpus_json(&now, &f, &s, buf, sizeof(buf)) > 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "\"slot\":\"0000:12:00.0\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "\"driver\":\"vfio-pci\",\"vm\":\"vm-4\""));
	gv_host_free(&now);
	/* the core's POST_STOP for the interrupted start */
	struct gv_bind_ctx c;
	ctx_init(&c, &s, "vm-4", 2000);
	CU_ASSERT_EQUAL(gv_restore(&c), 0);
	CU_ASSERT_STRING_EQUAL(drv("0000:12:00.0"), "nvidia");
	CU_ASSERT_STRING_EQUAL(drv("0000:32:00.0"), "nvidia");
	CU_ASSERT_EQUAL(s.n_bound, 0);
	CU_ASSERT_STRING_EQUAL(gv_store_holder(&s, "0000:32:00.0"), "vm-4"); /* still defined */
	gv_host_free(&h);
	gv_store_free(&s);
	sim_stop();
}

static void test_write_timeout(void)
{
	char fifo[256];
	snprintf(fifo, sizeof(fifo), "%s/fifo", base);
	CU_ASSERT_EQUAL_FATAL(mkfifo(fifo, 0600), 0);
	/* nobody reads: open() blocks, the write is given up */
	CU_ASSERT_EQUAL(gv_write_timeout(fifo, "x", 100), -ETIMEDOUT);
	int fd = open(fifo, O_RDONLY | O_NONBLOCK); /* lets the stuck thread finish */
	usleep(50000);
	close(fd);
	CU_ASSERT_EQUAL(gv_write_timeout("/nonexistent/x", "x", 100), -ENOENT);
}

/* ---- plan.c: the guest topology ---- */

static int plan(const char *json, uint32_t vcpus, uint64_t mem, enum gv_topo mode,
		const int *reserved, int n_reserved, const int *taken, int n_taken,
		struct gv_plan *p, char (*slots)[GV_SLOT_LEN], int *n, char *err)
{
	struct gv_filter f;
	struct gv_store s;
	filter_open(&f);
	store_fresh(&s, "plan");
	*n = json ? resolve(&f, &s, "vm", vcpus, json, slots, err) : 0;
	gv_store_free(&s);
	CU_ASSERT_TRUE_FATAL(*n >= 0);
	struct gv_plan_in in = {.h = &H, .slots = slots, .n = *n, .vcpus = vcpus,
				.memory_mb = mem, .mode = mode, .reserved = reserved,
				.n_reserved = n_reserved, .taken = taken, .n_taken = n_taken};
	return gv_plan(&in, p, err, 512);
}

static void test_plan_cpulists(void)
{
	int c[8];
	char buf[64];
	CU_ASSERT_EQUAL(gv_parse_cpulist("0-3,8\n", c, 8), 5);
	CU_ASSERT_EQUAL(c[4], 8);
	CU_ASSERT_EQUAL(gv_parse_cpulist("", c, 8), 0);
	CU_ASSERT_EQUAL(gv_parse_cpulist("0-", c, 8), -EINVAL);
	CU_ASSERT_EQUAL(gv_parse_cpulist("3-1", c, 8), -EINVAL);
	CU_ASSERT_EQUAL(gv_parse_cpulist("a", c, 8), -EINVAL);
	int l[] = {9, 3, 1, 2, 7};
	gv_format_cpulist(l, 5, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "1-3,7,9");
	enum gv_topo m;
	char err[128];
	CU_ASSERT_EQUAL(gv_topo_parse("\"nccl\"", &m, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(m, GV_TOPO_NCCL);
	CU_ASSERT_EQUAL(gv_topo_parse("\"flat\"", &m, err, sizeof(err)), -EINVAL);
	CU_ASSERT_EQUAL(gv_topo_parse("1", &m, err, sizeof(err)), -EINVAL);
}

static void test_plan_pins(void)
{
	static struct gv_plan p;
	char slots[GV_MAX_SEL][GV_SLOT_LEN], err[512];
	int n, reserved[16], taken[4] = {95, 93, 91, 12};
	for (int i = 0; i < 16; i++)
		reserved[i] = i;
	/* GPU 4 is on node 1: one cell; the pins skip the reserved and taken
	 * CPUs, from the top down; the emulator goes to node 1's reserved */
	int rc = plan("{\"attach_mode\": \"listed\", \"gpus\": [{\"slot\": \"92:00.0\"}]}", 4,
		      1024, GV_TOPO_MIRROR, reserved, 16, taken, 4, &p, slots, &n, err);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	CU_ASSERT_EQUAL(p.n_cells, 1);
	CU_ASSERT_EQUAL(p.cells[0].host_node, 1);
	CU_ASSERT_EQUAL(p.pins[0], 89);
	CU_ASSERT_EQUAL(p.pins[3], 83);
	CU_ASSERT_STRING_EQUAL(p.emulator_cpus, "1,3,5,7,9,11,13,15");
	/* 48 on node 1, 8 reserved, 3 taken: 37 free */
	rc = plan("{\"attach_mode\": \"listed\", \"gpus\": [{\"slot\": \"92:00.0\"}]}", 38, 1024,
		  GV_TOPO_MIRROR, reserved, 16, taken, 4, &p, slots, &n, err);
	EXPECT_ERR(rc, -EBUSY, err,
		   "topology: host node 1 has 37 free CPUs for the 38 vCPUs of cell 0 (48 CPUs, 8 "
		   "kept for the host by cvm.host_cpus, 3 pinned to other VMs)");
	/* memory that huge pages cannot hold per cell */
	struct gv_plan_in in = {.h = &H, .vcpus = 2, .memory_mb = 1025, .mode = GV_TOPO_MIRROR,
				.hugepage_kb = 2048};
	CU_ASSERT_EQUAL(gv_plan(&in, &p, err, sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "huge pages"));
	/* none: nothing planned */
	in.mode = GV_TOPO_NONE;
	CU_ASSERT_EQUAL(gv_plan(&in, &p, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(p.n_cells + p.n_pins + p.n_pcie, 0);
}

static void test_plan_pins_leased(void)
{
	struct gv_store s;
	int cpus[] = {95, 93, 91}, out[16];
	store_fresh(&s, "pins");
	CU_ASSERT_EQUAL(gv_store_set_pins(&s, "a", cpus, 3), 0);
	CU_ASSERT_EQUAL(gv_store_set_pins(&s, "b", cpus, 1), 0);
	CU_ASSERT_EQUAL(gv_store_save(&s), 0);
	gv_store_free(&s);
	char dir[256];
	snprintf(dir, sizeof(dir), "%s/pins", base);
	CU_ASSERT_EQUAL_FATAL(gv_store_open(&s, dir), 0);
	CU_ASSERT_EQUAL(gv_store_taken(&s, "b", out, 16), 3);
	CU_ASSERT_EQUAL(gv_store_taken(&s, NULL, out, 16), 4);
	CU_ASSERT_EQUAL(gv_store_release_vm(&s, "a"), 1);
	CU_ASSERT_EQUAL(gv_store_taken(&s, "b", out, 16), 0);
	gv_store_free(&s);
}

static void test_plan_nccl(void)
{
	static struct gv_plan p;
	static char xml[1 << 14];
	char slots[GV_MAX_SEL][GV_SLOT_LEN], err[512];
	int n;
	int rc = plan("{\"attach_mode\": \"listed\", \"peer_nics\": true, \"gpus\": [{\"slot\": "
		      "\"12:00.0\"}, {\"slot\": \"b2:00.0\"}]}",
		      4, 2048, GV_TOPO_NCCL, NULL, 0, NULL, 0, &p, slots, &n, err);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	CU_ASSERT_EQUAL(p.n_cells, 2);
	for (int i = 0; i < p.n_pcie; i++) { /* flat: root ports on the root complex */
		CU_ASSERT_EQUAL(p.pcie[i].kind, CVMM_PCIE_ROOT_PORT);
		CU_ASSERT_STRING_EQUAL(p.pcie[i].parent, "");
	}
	struct gv_plan_in in = {.h = &H, .slots = slots, .n = n};
	CU_ASSERT_TRUE_FATAL(gv_nccl_xml(&in, &p, xml, sizeof(xml)) > 0);
	char path[512];
	snprintf(path, sizeof(path), "%s/golden/nccl-topo.xml", GV_TEST_TOOLS);
	if (getenv("GV_REGEN")) {
		FILE *f = fopen(path, "we");
		CU_ASSERT_PTR_NOT_NULL_FATAL(f);
		fputs(xml, f);
		fclose(f);
		return;
	}
	char *want = slurp(path);
	CU_ASSERT_PTR_NOT_NULL_FATAL(want);
	if (strcmp(want, xml))
		fprintf(stderr, "\nnccl-topo.xml differs, got:\n%s", xml);
	CU_ASSERT_STRING_EQUAL(xml, want);
	CU_ASSERT_EQUAL(gv_nccl_xml(&in, &p, xml, 64), -ENOSPC);
}

static void test_plan_desktop(void)
{
	/* numa_node -1 on a one-node host: the node is that one */
	struct gv_host d;
	struct gv_filter f;
	static struct gv_plan p;
	char slots[2][GV_SLOT_LEN] = {"0000:01:00.0", "0000:01:00.1"}, err[512];
	filter_open(&f);
	CU_ASSERT_EQUAL_FATAL(gv_discover(desk, &f, &d), 0);
	struct gv_plan_in in = {.h = &d, .slots = slots, .n = 2, .vcpus = 4, .memory_mb = 1024,
				.mode = GV_TOPO_MIRROR};
	CU_ASSERT_EQUAL(gv_plan(&in, &p, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(p.n_cells, 1);
	CU_ASSERT_EQUAL(p.cells[0].host_node, 0);
	CU_ASSERT_EQUAL(p.pins[0], 15);
	/* GPU and audio: one slot under one root port (no switch above) */
	CU_ASSERT_STRING_EQUAL(p.devs[0].bus, p.devs[1].bus);
	CU_ASSERT_EQUAL(p.devs[1].function, 1);
	CU_ASSERT_STRING_EQUAL(p.devs[0].group, p.devs[1].group);
	gv_host_free(&d);
}

/* ---- the readiness report's GPU items ---- */

static const char *item_status(const char *json, const char *name, char *detail, size_t len)
{
	static char st[16];
	struct json_object *a = json_tokener_parse(json), *v;
	snprintf(st, sizeof(st), "(missing)");
	for (size_t i = 0; a && i < json_object_array_length(a); i++) {
		struct json_object *it = json_object_array_get_idx(a, i);
		json_object_object_get_ex(it, "name", &v);
		if (strcmp(json_object_get_string(v), name))
			continue;
		json_object_object_get_ex(it, "status", &v);
		snprintf(st, sizeof(st), "%s", json_object_get_string(v));
		json_object_object_get_ex(it, "detail", &v);
		snprintf(detail, len, "%s", json_object_get_string(v));
	}
	json_object_put(a);
	return st;
}

static void test_check_items(void)
{
	static char buf[1 << 16];
	char detail[1024], cmd[1024], tree2[300];
	struct gv_filter f;
	struct gv_store s;
	struct gv_host h;
	filter_open(&f);
	store_fresh(&s, "check");
	CU_ASSERT_TRUE_FATAL(gv_check_json(hgx, &H, &f, &s, buf, sizeof(buf)) > 0);
	CU_ASSERT_STRING_EQUAL(item_status(buf, "gpu passthrough", detail, sizeof(detail)), "ok");
	CU_ASSERT_PTR_NOT_NULL(strstr(detail, "8 GPUs and 4 NVSwitches"));
	CU_ASSERT_STRING_EQUAL(item_status(buf, "gpu 0000:12:00.0", detail, sizeof(detail)), "ok");
	CU_ASSERT_PTR_NOT_NULL(strstr(detail, "IOMMU group"));
	/* the audio function in GPU b2's group is its own: still ok */
	CU_ASSERT_STRING_EQUAL(item_status(buf, "gpu 0000:b2:00.0", detail, sizeof(detail)), "ok");
	CU_ASSERT_STRING_EQUAL(item_status(buf, "nvswitch 0000:06:00.0", detail, sizeof(detail)), "ok");
	/* a filtered GPU is a warning saying why */
	snprintf(f.exclude[f.n_exclude++], GV_SLOT_LEN, "0000:32:00.0");
	CU_ASSERT_TRUE_FATAL(gv_check_json(hgx, &H, &f, &s, buf, sizeof(buf)) > 0);
	CU_ASSERT_STRING_EQUAL(item_status(buf, "gpu 0000:32:00.0", detail, sizeof(detail)), "warn");
	CU_ASSERT_PTR_NOT_NULL(strstr(detail, "not offered"));
	filter_open(&f);
	f.enabled = 0;
	CU_ASSERT_TRUE_FATAL(gv_check_json(hgx, &H, &f, &s, buf, sizeof(buf)) > 0);
	CU_ASSERT_STRING_EQUAL(item_status(buf, "gpu passthrough", detail, sizeof(detail)), "warn");
	filter_open(&f);

	/* the desktop's only GPU is the boot display */
	CU_ASSERT_EQUAL_FATAL(gv_discover(desk, &f, &h), 0);
	CU_ASSERT_TRUE_FATAL(gv_check_json(desk, &h, &f, &s, buf, sizeof(buf)) > 0);
	CU_ASSERT_STRING_EQUAL(item_status(buf, "gpu 0000:01:00.0", detail, sizeof(detail)), "fail");
	CU_ASSERT_PTR_NOT_NULL(strstr(detail, "boot display"));
	gv_host_free(&h);

	/* a NIC in a GPU's IOMMU group (no ACS) would leave the host with it;
	 * nvidia_drm with modeset=Y makes unbinding hang */
	snprintf(tree2, sizeof(tree2), "%s/hgx-noacs", base);
	snprintf(cmd, sizeof(cmd),
		 "rm -rf '%s' && cp -a '%s' '%s' && cd '%s/sys/kernel/iommu_groups' && "
		 "g=$(basename \"$(readlink ../../bus/pci/devices/0000:52:00.0/iommu_group)\") && "
		 "ln -s ../../../../bus/pci/devices/0000:53:00.0 $g/devices/0000:53:00.0 && "
		 "mkdir -p '%s/sys/module/nvidia_drm/parameters' && "
		 "echo Y > '%s/sys/module/nvidia_drm/parameters/modeset'",
		 tree2, hgx, tree2, tree2, tree2, tree2);
	run(cmd);
	CU_ASSERT_EQUAL_FATAL(gv_discover(tree2, &f, &h), 0);
	CU_ASSERT_TRUE_FATAL(gv_check_json(tree2, &h, &f, &s, buf, sizeof(buf)) > 0);
	CU_ASSERT_STRING_EQUAL(item_status(buf, "gpu 0000:52:00.0", detail, sizeof(detail)), "warn");
	CU_ASSERT_PTR_NOT_NULL(strstr(detail, "0000:53:00.0 (mlx5_core), which would leave the host"));
	CU_ASSERT_STRING_EQUAL(item_status(buf, "gpu 0000:12:00.0", detail, sizeof(detail)), "warn");
	CU_ASSERT_PTR_NOT_NULL(strstr(detail, "modeset=Y"));
	gv_host_free(&h);
	gv_store_free(&s);
}

static int suite_init(void)
{
	snprintf(base, sizeof(base), "/tmp/gpu-vfio-test.XXXXXX");
	if (!mkdtemp(base))
		return -1;
	snprintf(hgx, sizeof(hgx), "%s/hgx", base);
	snprintf(desk, sizeof(desk), "%s/desktop", base);
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "'%s' '%s/make-fake-sysfs.py' hgx '%s' && '%s' "
				   "'%s/make-fake-sysfs.py' desktop '%s'",
		 GV_PYTHON3, GV_TEST_TOOLS, hgx, GV_PYTHON3, GV_TEST_TOOLS, desk);
	if (system(cmd) != 0)
		return -1;
	struct gv_filter f;
	filter_open(&f);
	return gv_discover(hgx, &f, &H) == 0 ? 0 : -1;
}

static int suite_clean(void)
{
	char cmd[128];
	gv_host_free(&H);
	if (getenv("GV_KEEP"))
		return 0;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite d = CU_add_suite("gpu_vfio", suite_init, suite_clean);
	CU_add_test(d, "slot_normalise", test_slot_normalise);
	CU_add_test(d, "discover_hgx", test_discover_hgx);
	CU_add_test(d, "discover_desktop", test_discover_desktop);
	CU_add_test(d, "request_parse", test_request_parse);
	CU_add_test(d, "modes_and_filters", test_modes_and_filters);
	CU_add_test(d, "exclusivity", test_exclusivity);
	CU_add_test(d, "count_placement", test_count_placement);
	CU_add_test(d, "hostdevs", test_hostdevs);
	CU_add_test(d, "write_timeout", test_write_timeout);
	CU_pSuite pl = CU_add_suite("gpu_vfio_plan", suite_init, suite_clean);
	CU_add_test(pl, "cpulists", test_plan_cpulists);
	CU_add_test(pl, "pins", test_plan_pins);
	CU_add_test(pl, "pins_leased", test_plan_pins_leased);
	CU_add_test(pl, "nccl", test_plan_nccl);
	CU_add_test(pl, "desktop", test_plan_desktop);
	CU_add_test(pl, "check_items", test_check_items);
	CU_add_test(d, "sim_bind_restore", test_sim_bind_restore);
	CU_add_test(d, "sim_later_step_fails", test_sim_later_step_fails);
	CU_add_test(d, "sim_hang", test_sim_hang);
	CU_add_test(d, "sim_killed_between_binds", test_sim_killed_between_binds);
	return unit_run();
}
