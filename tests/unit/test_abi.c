/*
 * Unit tests of the plugin ABI as core/registry.c enforces it: a plugin built
 * against the frozen 1.0 header loads and its 1.0 layout is a prefix of the
 * current one; a plugin of another major, a .so without the entry point and
 * a missing file are refused with one line naming the file and leave nothing
 * registered; every plugin exports exactly its entry point; and test-fail,
 * which the integration tests rely on, fails exactly where configured.
 */
#include "config.h"
#include "daemon.h"
#include "registry.h"
#include "vm.h"

#include <cvmm/plugin.h>

#include "abi10_probe.h"
#include "unit.h"

#include <CUnit/Basic.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef CVMM_PLUGIN_BUILD_DIR
#define CVMM_PLUGIN_BUILD_DIR CVMM_BINARY_DIR "/plugins"
#endif
#ifndef CVMM_TEST_PLUGIN_BUILD_DIR
#define CVMM_TEST_PLUGIN_BUILD_DIR CVMM_BINARY_DIR "/tests/plugins"
#endif
#ifndef CVMM_TEST_PLUGIN_SOURCE_DIR
#define CVMM_TEST_PLUGIN_SOURCE_DIR CVMM_SOURCE_DIR "/tests/plugins"
#endif

#define TEST_PLUGIN(name) CVMM_TEST_PLUGIN_BUILD_DIR "/" name ".so"

/* FNV-1a 64 and length of tests/plugins/abi-1.0/cvmm/plugin.h as frozen.
 * If this test fails, revert that file: never update these numbers. */
#define FROZEN_HEADER_FNV1A64 0xad7813d56537b692ull
#define FROZEN_HEADER_LENGTH 15512

/* ---- helpers ------------------------------------------------------------- */

static void check_at(int ok, int line, const char *what)
{
	CU_assertImplementation(ok ? CU_TRUE : CU_FALSE, (unsigned)line, what, __FILE__, "",
	                        CU_FALSE);
}

/* A daemon context with a loaded config and an empty registry: what
 * registry_load needs, without a loop running or an API socket. */
struct ctx {
	struct cvmm_config cfg;
	struct cvmm_daemon *d;
	struct registry *reg;
};

static int ctx_open(struct ctx *c, const char *config_text)
{
	char err[1024] = "";
	memset(c, 0, sizeof(*c));
	if (config_load_string(&c->cfg, config_text, err, sizeof(err)) < 0) {
		printf("\n    config: %s\n", err);
		return -1;
	}
	c->d = daemon_new(&c->cfg, err, sizeof(err));
	if (!c->d) {
		printf("\n    daemon_new: %s\n", err);
		config_free(&c->cfg);
		return -1;
	}
	c->reg = c->d->reg;
	return 0;
}

static void ctx_close(struct ctx *c)
{
	daemon_free(c->d);
	config_free(&c->cfg);
}

struct counts {
	int plugins, backends, netmodes, hooks;
};

static struct counts counts_of(const struct registry *r)
{
	return (struct counts){r->n_plugins, r->n_backends, r->n_netmodes, r->n_hooks};
}

static int counts_equal(struct counts a, struct counts b)
{
	return a.plugins == b.plugins && a.backends == b.backends && a.netmodes == b.netmodes &&
	       a.hooks == b.hooks;
}

static struct cvmm_plugin *find_plugin(struct registry *r, const char *name)
{
	for (int i = 0; i < r->n_plugins; i++)
		if (!strcmp(r->plugins[i]->name, name))
			return r->plugins[i];
	return NULL;
}

/* A refusal message a user can act on: one line, naming the file. */
static void expect_one_line_naming(const char *err, const char *path, int line)
{
	if (strchr(err, '\n') || !strstr(err, path))
		printf("\n    line %d: message: %s\n", line, err);
	check_at(err[0] != '\0', line, "an error message is set");
	check_at(strchr(err, '\n') == NULL, line, "the message is one line");
	check_at(strstr(err, path) != NULL, line, "the message names the .so");
}

/* ---- the frozen 1.0 plugin --------------------------------------------- */

/* Loads test-abi10 into c; returns its probe (the data of its one hook). */
static struct abi10_probe *load_abi10(struct ctx *c, int line)
{
	char err[1024] = "";
	const char *path = TEST_PLUGIN("test-abi10");
	struct counts before = counts_of(c->reg);
	int rc = registry_load(c->reg, path, "test-abi10", err, sizeof(err));
	if (rc < 0)
		printf("\n    line %d: %s\n", line, err);
	check_at(rc == 0, line, "the 1.0 plugin loads");
	if (rc < 0)
		return NULL;
	struct counts after = counts_of(c->reg);
	check_at(after.plugins == before.plugins + 1, line, "one plugin more");
	check_at(after.hooks == before.hooks + 1, line, "exactly one hook registered");
	check_at(after.backends == before.backends && after.netmodes == before.netmodes, line,
	         "nothing else registered");
	struct reg_hook *hooks[8];
	int n = registry_hooks(c->reg, CVMM_EV_DAEMON_START, hooks, 8);
	for (int i = 0; i < n; i++)
		if (!strcmp(hooks[i]->plugin->name, "test-abi10"))
			return hooks[i]->data;
	check_at(0, line, "test-abi10's DAEMON_START hook is in the registry");
	return NULL;
}

static void test_abi10_loads(void)
{
	struct ctx c;
	if (ctx_open(&c, "plugins = [];") < 0) {
		CU_FAIL("context");
		return;
	}
	struct abi10_probe *probe = load_abi10(&c, __LINE__);
	struct cvmm_plugin *p = find_plugin(c.reg, "test-abi10");
	CU_ASSERT_PTR_NOT_NULL(p);
	if (p) {
		CU_ASSERT_EQUAL(p->abi_major, 1);
		CU_ASSERT_EQUAL(p->abi_minor, 0);
		CU_ASSERT_STRING_EQUAL(p->desc_name, "test-abi10");
		CU_ASSERT_STRING_EQUAL(p->version, "1.0.0");
	}
	/* The hook is callable through the registry, and reaches its data. */
	struct reg_hook *hooks[8];
	int n = registry_hooks(c.reg, CVMM_EV_DAEMON_START, hooks, 8);
	CU_ASSERT_EQUAL(n, 1);
	if (probe && n == 1) {
		uint32_t calls = probe->calls;
		CU_ASSERT_EQUAL(hooks[0]->fn(hooks[0]->data, NULL, CVMM_EV_DAEMON_START, NULL), 0);
		CU_ASSERT_EQUAL(probe->calls, calls + 1);
		CU_ASSERT_EQUAL(probe->host_abi_major, CVMM_ABI_MAJOR);
		CU_ASSERT_EQUAL(probe->host_abi_minor, CVMM_ABI_MINOR);
	}
	/* It shows in GET /v1/plugins with the ABI it was built for. */
	json_object *list = registry_plugins_json(c.reg);
	CU_ASSERT_EQUAL(json_object_array_length(list), 1);
	if (json_object_array_length(list) == 1) {
		json_object *abi = NULL;
		json_object_object_get_ex(json_object_array_get_idx(list, 0), "abi", &abi);
		CU_ASSERT_STRING_EQUAL(json_object_get_string(abi), "1.0");
	}
	json_object_put(list);
	ctx_close(&c);
}

/* The host table a plugin receives is the current one, whole; and the 1.0
 * layout (every struct, member offset and constant, as compiled into the
 * frozen plugin) is a prefix of the current layout. */
static void test_host_table_and_layout_prefix(void)
{
	static const struct abi10_fact now[] = {ABI10_FACTS};
	const size_t n_now = sizeof(now) / sizeof(now[0]);
	struct ctx c;

	CU_ASSERT_EQUAL(registry_host_api()->struct_size, sizeof(struct cvmm_host_api));
	CU_ASSERT_EQUAL(registry_host_api()->abi_major, CVMM_ABI_MAJOR);
	CU_ASSERT_EQUAL(registry_host_api()->abi_minor, CVMM_ABI_MINOR);
	/* Every 1.0 slot is set: 1.0 plugins call them without a NULL check
	 * (only slots added later may be NULL, meaning unsupported). */
	for (size_t i = 0; i < n_now; i++) {
		if (now[i].kind != ABI10_KIND_OFFSET ||
		    strncmp(now[i].name, "cvmm_host_api.", 14) ||
		    now[i].value < offsetof(struct cvmm_host_api, log))
			continue;
		void *const *slot =
		    (void *const *)((const char *)registry_host_api() + now[i].value);
		if (!*slot) {
			printf("\n    host table: %s is NULL\n", now[i].name);
			CU_FAIL("every 1.0 host-table slot is set");
		}
	}

	if (ctx_open(&c, "plugins = [];") < 0) {
		CU_FAIL("context");
		return;
	}
	struct abi10_probe *probe = load_abi10(&c, __LINE__);
	if (!probe) {
		ctx_close(&c);
		return;
	}
	CU_ASSERT_EQUAL(probe->struct_size, sizeof(struct abi10_probe));
	CU_ASSERT_EQUAL(probe->host_struct_size, sizeof(struct cvmm_host_api));
	CU_ASSERT_EQUAL(probe->n_facts, n_now);
	for (size_t i = 0; i < n_now && i < probe->n_facts; i++) {
		const struct abi10_fact *old = &probe->facts[i];
		int same_name = old->kind == now[i].kind && !strcmp(old->name, now[i].name);
		int ok = same_name && (old->kind == ABI10_KIND_SIZE ? now[i].value >= old->value
		                                                    : now[i].value == old->value);
		if (!ok) {
			printf("\n    %s: 1.0 has %llu, the current header %s %llu\n", old->name,
			       (unsigned long long)old->value, now[i].name,
			       (unsigned long long)now[i].value);
			CU_FAIL("1.0 layout is a prefix of the current one");
		}
	}
	ctx_close(&c);
}

/* The frozen header is byte-for-byte what was released. */
static void test_frozen_header_unchanged(void)
{
	const char *path = CVMM_TEST_PLUGIN_SOURCE_DIR "/abi-1.0/cvmm/plugin.h";
	FILE *f = fopen(path, "rb");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	uint64_t h = 0xcbf29ce484222325ull;
	long len = 0;
	int ch;
	while ((ch = getc(f)) != EOF) {
		h = (h ^ (unsigned char)ch) * 0x100000001b3ull;
		len++;
	}
	fclose(f);
	if (h != FROZEN_HEADER_FNV1A64 || len != FROZEN_HEADER_LENGTH)
		printf("\n    %s changed (fnv1a64 %#llx, %ld bytes): revert it\n", path,
		       (unsigned long long)h, len);
	CU_ASSERT_EQUAL(len, FROZEN_HEADER_LENGTH);
	CU_ASSERT(h == FROZEN_HEADER_FNV1A64);
}

/* ---- refusals ------------------------------------------------------------ */

static void expect_major2_refused(const char *name, int line)
{
	char path[512], err[1024] = "", daemon_abi[32], wants[32];
	struct ctx c;
	snprintf(path, sizeof(path), "%s/%s.so", CVMM_TEST_PLUGIN_BUILD_DIR, name);
	snprintf(daemon_abi, sizeof(daemon_abi), "%d.%d", CVMM_ABI_MAJOR, CVMM_ABI_MINOR);
	snprintf(wants, sizeof(wants), "%d.%d", 2, 0);
	if (ctx_open(&c, "plugins = [];") < 0) {
		check_at(0, line, "context");
		return;
	}
	/* Something registered already must survive the refusal untouched. */
	load_abi10(&c, line);
	struct counts before = counts_of(c.reg);

	int rc = registry_load(c.reg, path, name, err, sizeof(err));
	printf("\n    refused: %s\n", err);
	check_at(rc == -EPROTO, line, "a major-2 plugin is refused with -EPROTO");
	expect_one_line_naming(err, path, line);
	if (!strstr(err, wants) || !strstr(err, daemon_abi))
		printf("\n    line %d: want ABI %s and %s in: %s\n", line, wants, daemon_abi, err);
	check_at(strstr(err, wants) != NULL, line, "the message names the plugin's ABI 2.0");
	check_at(strstr(err, daemon_abi) != NULL, line, "the message names the daemon's ABI");
	check_at(counts_equal(counts_of(c.reg), before), line, "registry counts unchanged");
	check_at(registry_backend(c.reg, "major2") == NULL, line, "no backend 'major2'");
	check_at(registry_netmode(c.reg, "major2") == NULL, line, "no network mode 'major2'");
	check_at(find_plugin(c.reg, name) == NULL, line, "the plugin is not listed");
	check_at(find_plugin(c.reg, "test-abi10") != NULL, line, "the earlier plugin stays");
	ctx_close(&c);
}

static void test_major2_refused(void)
{
	expect_major2_refused("test-abi-major2", __LINE__);
}

/* A plugin that registers before checking the major, and returns 0. */
static void test_major2_eager_refused_and_dropped(void)
{
	expect_major2_refused("test-abi-major2-eager", __LINE__);
}

static void test_noentry_refused(void)
{
	const char *path = TEST_PLUGIN("test-noentry");
	char err[1024] = "";
	struct ctx c;
	if (ctx_open(&c, "plugins = [];") < 0) {
		CU_FAIL("context");
		return;
	}
	struct counts before = counts_of(c.reg);
	int rc = registry_load(c.reg, path, "test-noentry", err, sizeof(err));
	printf("\n    refused: %s\n", err);
	CU_ASSERT_EQUAL(rc, -ENOEXEC);
	expect_one_line_naming(err, path, __LINE__);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, CVMM_PLUGIN_ENTRY_NAME));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a cvmm plugin"));
	CU_ASSERT(counts_equal(counts_of(c.reg), before));
	ctx_close(&c);
}

static void test_missing_file_refused(void)
{
	const char *path = CVMM_TEST_PLUGIN_BUILD_DIR "/no-such-plugin.so";
	char err[1024] = "";
	struct ctx c;
	if (ctx_open(&c, "plugins = [];") < 0) {
		CU_FAIL("context");
		return;
	}
	struct counts before = counts_of(c.reg);
	int rc = registry_load(c.reg, path, "no-such-plugin", err, sizeof(err));
	printf("\n    refused: %s\n", err);
	CU_ASSERT(rc < 0);
	expect_one_line_naming(err, path, __LINE__);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "No such file"));
	CU_ASSERT(counts_equal(counts_of(c.reg), before));
	ctx_close(&c);
}

/* ---- exported symbols ---------------------------------------------------- */

/*
 * The dynamic symbols a .so defines, as `nm -D --defined-only` lists them,
 * written as "T name" lines into out. Returns the count, or -1 if nm failed.
 *
 * No linker-defined symbol is tolerated: with this toolchain (Debian 12,
 * binutils 2.40) _init, _fini, __bss_start, _edata and _end do not appear in
 * the dynamic symbol table of a -fvisibility=hidden module, in plain or
 * sanitizer builds. Should a toolchain ever add them, allow those exact
 * names here, with the reason.
 */
static int dynamic_symbols(const char *path, char *out, size_t outlen)
{
	char cmd[1200], line[512];
	int n = 0;
	snprintf(cmd, sizeof(cmd), "nm -D --defined-only '%s' 2>&1", path);
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	out[0] = '\0';
	while (fgets(line, sizeof(line), p)) {
		char type, name[400];
		if (sscanf(line, "%*s %c %399s", &type, name) != 2) {
			printf("\n    nm: %s", line);
			n = -1000;
			continue;
		}
		size_t used = strlen(out);
		snprintf(out + used, outlen - used, "      %c %s\n", type, name);
		n++;
	}
	int st = pclose(p);
	return st == 0 && n >= 0 ? n : -1;
}

/* Checks every .so in dir; returns how many were checked. */
static int check_exports_in(const char *dir, int *seen_noentry)
{
	DIR *dp = opendir(dir);
	struct dirent *e;
	int checked = 0;
	if (!dp) {
		printf("\n    cannot open %s\n", dir);
		return 0;
	}
	while ((e = readdir(dp))) {
		size_t len = strlen(e->d_name);
		if (len < 4 || strcmp(e->d_name + len - 3, ".so"))
			continue;
		char path[1024], syms[4096];
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		int n = dynamic_symbols(path, syms, sizeof(syms));
		/* test-noentry is the one .so that must have no entry point. */
		const char *want = strcmp(e->d_name, "test-noentry.so")
		                       ? "      T " CVMM_PLUGIN_ENTRY_NAME "\n"
		                       : "";
		if (!strcmp(e->d_name, "test-noentry.so"))
			*seen_noentry = 1;
		if (n < 0 || strcmp(syms, want)) {
			printf("\n    %s exports:\n%s    want:\n%s", path, syms, want);
			CU_FAIL("a plugin exports exactly its entry point");
		}
		checked++;
	}
	closedir(dp);
	return checked;
}

static void test_exported_symbols(void)
{
	int noentry = 0;
	int real = check_exports_in(CVMM_PLUGIN_BUILD_DIR, &noentry);
	int test = check_exports_in(CVMM_TEST_PLUGIN_BUILD_DIR, &noentry);
	/* Not vacuous: the real plugins and all five test plugins were seen. */
	CU_ASSERT(real >= 1);
	CU_ASSERT(test >= 5);
	CU_ASSERT(noentry);
}

/* ---- test-fail ----------------------------------------------------------- */

/* Runs test-fail's do-hook for event on a VM named name; returns its rc. */
static int run_test_fail(struct ctx *c, uint32_t event, const char *name, struct cvmm_vm *vm)
{
	struct reg_hook *hooks[8];
	int n = registry_hooks(c->reg, event, hooks, 8);
	static char errbuf[VM_ERRBUF_LEN];
	memset(vm, 0, sizeof(*vm));
	errbuf[0] = 0;
	vm->d = c->d;
	vm->errbuf = errbuf; /* as a running job provides */
	snprintf(vm->name, sizeof(vm->name), "%s", name);
	for (int i = 0; i < n; i++)
		if (!strcmp(hooks[i]->plugin->name, "test-fail"))
			return hooks[i]->fn(hooks[i]->data, vm, event, NULL);
	return -ENOENT;
}

static void test_fail_plugin(void)
{
	static const uint32_t all[] = {CVMM_EV_DEFINE,  CVMM_EV_UNDEFINE,  CVMM_EV_PREPARE,
	                               CVMM_EV_CLEANUP, CVMM_EV_PRE_START, CVMM_EV_POST_STOP,
	                               CVMM_EV_STARTED, CVMM_EV_STOPPING};
	struct cvmm_vm *vm = calloc(1, sizeof(*vm));
	char err[1024] = "";
	struct ctx c;
	CU_ASSERT_PTR_NOT_NULL_FATAL(vm);

	/* Configured: fails "define" for VMs named bad*, with its message. */
	if (ctx_open(&c, "plugins = [\"test-fail\"];\nplugin = { test-fail = { event = \"define\"; "
	                 "name_prefix = \"bad\"; message = \"no define for you\"; }; };") < 0) {
		CU_FAIL("context");
		free(vm);
		return;
	}
	int rc = registry_load(c.reg, TEST_PLUGIN("test-fail"), "test-fail", err, sizeof(err));
	if (rc < 0)
		printf("\n    %s\n", err);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	/* A do and an undo hook for each of the four stages, at priority 100. */
	CU_ASSERT_EQUAL(c.reg->n_hooks, 8);
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		struct reg_hook *h[4];
		int n = registry_hooks(c.reg, all[i], h, 4);
		CU_ASSERT_EQUAL(n, 1);
		if (n == 1)
			CU_ASSERT_EQUAL(h[0]->priority, 100);
	}
	CU_ASSERT_EQUAL(run_test_fail(&c, CVMM_EV_DEFINE, "bad1", vm), -EIO);
	CU_ASSERT_STRING_EQUAL(vm->errbuf, "no define for you");
	CU_ASSERT_EQUAL(run_test_fail(&c, CVMM_EV_DEFINE, "good1", vm), 0);
	CU_ASSERT_STRING_EQUAL(vm->errbuf, "");
	CU_ASSERT_EQUAL(run_test_fail(&c, CVMM_EV_PRE_START, "bad1", vm), 0);
	CU_ASSERT_EQUAL(run_test_fail(&c, CVMM_EV_UNDEFINE, "bad1", vm), 0);
	ctx_close(&c);

	/* Defaults: every VM, the default message naming the event. */
	if (ctx_open(&c, "plugins = [\"test-fail\"];\nplugin = { test-fail = { event = \"started\"; }; };") <
	    0) {
		CU_FAIL("context");
		free(vm);
		return;
	}
	rc = registry_load(c.reg, TEST_PLUGIN("test-fail"), "test-fail", err, sizeof(err));
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	CU_ASSERT_EQUAL(run_test_fail(&c, CVMM_EV_PREPARE, "web1", vm), 0);
	CU_ASSERT_EQUAL(run_test_fail(&c, CVMM_EV_STARTED, "web1", vm), -EIO);
	CU_ASSERT_STRING_EQUAL(vm->errbuf, "test-fail: failing on purpose at started");
	ctx_close(&c);

	/* An event it does not know refuses the plugin, registering nothing. */
	if (ctx_open(&c, "plugins = [\"test-fail\"];\nplugin = { test-fail = { event = \"boot\"; }; };") < 0) {
		CU_FAIL("context");
		free(vm);
		return;
	}
	rc = registry_load(c.reg, TEST_PLUGIN("test-fail"), "test-fail", err, sizeof(err));
	CU_ASSERT_EQUAL(rc, -EINVAL);
	CU_ASSERT_EQUAL(c.reg->n_hooks, 0);
	CU_ASSERT_EQUAL(c.reg->n_plugins, 0);
	ctx_close(&c);
	free(vm);
}

/* ---- the frozen 1.1 plugin --------------------------------------------- */

struct abi11_probe { /* as in tests/plugins/test_abi11.c */
	uint32_t struct_size, minor, mtu_offset, nic_size, host_size, calls;
};

static void test_abi11_loads(void)
{
	struct ctx c;
	if (ctx_open(&c, "plugins = [];") < 0) {
		CU_FAIL("context");
		return;
	}
	char err[1024] = "";
	int rc = registry_load(c.reg, TEST_PLUGIN("test-abi11"), "test-abi11", err, sizeof(err));
	if (rc < 0)
		printf("\n    %s\n", err);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	struct cvmm_plugin *p = find_plugin(c.reg, "test-abi11");
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT_EQUAL(p->abi_major, 1);
	CU_ASSERT_EQUAL(p->abi_minor, 1);
	struct reg_hook *hooks[8];
	int n = registry_hooks(c.reg, CVMM_EV_DAEMON_START, hooks, 8);
	struct abi11_probe *probe = NULL;
	for (int i = 0; i < n; i++)
		if (!strcmp(hooks[i]->plugin->name, "test-abi11"))
			probe = hooks[i]->data;
	CU_ASSERT_PTR_NOT_NULL_FATAL(probe);
	CU_ASSERT_EQUAL(probe->minor, 1);
	/* What 1.1 added stays where 1.1 put it; later minors only append. */
	CU_ASSERT_EQUAL(probe->mtu_offset, offsetof(struct cvmm_spec_nic, mtu));
	CU_ASSERT_TRUE(probe->nic_size <= sizeof(struct cvmm_spec_nic));
	CU_ASSERT_TRUE(probe->host_size < sizeof(struct cvmm_host_api));
	CU_ASSERT_EQUAL(CVMM_ABI_MINOR, 2);
	ctx_close(&c);
}

int main(void)
{
	static const struct unit_test tests[] = {
	    {"1.0-frozen plugin loads, its hook registered", test_abi10_loads},
	    {"1.1-frozen plugin loads, its additions in place", test_abi11_loads},
	    {"host table whole, 1.0 layout a prefix", test_host_table_and_layout_prefix},
	    {"frozen 1.0 header unchanged", test_frozen_header_unchanged},
	    {"major 2 refused", test_major2_refused},
	    {"major 2 registering anyway: refused, dropped", test_major2_eager_refused_and_dropped},
	    {"no entry point: not a cvmm plugin", test_noentry_refused},
	    {"missing file", test_missing_file_refused},
	    {"plugins export only the entry point", test_exported_symbols},
	    {"test-fail fails where configured", test_fail_plugin},
	};
	return unit_main("abi", NULL, NULL, tests, sizeof(tests) / sizeof(tests[0]));
}
