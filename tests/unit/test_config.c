/*
 * Unit tests of core/config.c: the shipped config files load, host-dependent
 * defaults are computed as dstack's vmm.toml describes, and every validation
 * rule reports the exact "FILE:LINE: KEY: ..." line a user would see from
 * `cvmmd --check-config`.
 */
#include "config.h"
#include "unit.h"

#include <cvmm/plugin.h>

#include <CUnit/Basic.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef CVMM_SOURCE_DIR
#define CVMM_SOURCE_DIR "."
#endif

static char tmpdir[] = "/tmp/cvmm-test-config.XXXXXX";

/* ---- helpers ------------------------------------------------------------- */

static void check_at(int ok, int line, const char *what)
{
	CU_assertImplementation(ok ? CU_TRUE : CU_FALSE, (unsigned)line, what, __FILE__, "",
	                        CU_FALSE);
}

static int is_zeroed(const struct cvmm_config *c)
{
	static const struct cvmm_config zero;

	return !memcmp(c, &zero, sizeof(zero));
}

static void expect_msg(int rc, const struct cvmm_config *c, const char *err, const char *want,
                       int prefix_only, int line)
{
	int same = prefix_only ? !strncmp(err, want, strlen(want)) : !strcmp(err, want);

	if (!same)
		printf("\n    line %d\n      got:  %s\n      want: %s%s\n", line, err, want,
		       prefix_only ? "..." : "");
	check_at(rc == -EINVAL, line, "rc == -EINVAL");
	check_at(same, line, "error message");
	check_at(is_zeroed(c), line, "config zeroed after a failed load");
}

/* Loads text, expecting exactly the error want. */
static void expect_err_(const char *text, const char *want, int prefix_only, int line)
{
	struct cvmm_config c;
	char err[1024] = "";
	int rc;

	memset(&c, 0xa5, sizeof(c)); /* load must not look at what was there */
	rc = config_load_string(&c, text, err, sizeof(err));
	expect_msg(rc, &c, err, want, prefix_only, line);
	config_free(&c);
}
#define EXPECT_ERR(text, want) expect_err_(text, want, 0, __LINE__)
#define EXPECT_ERR_PREFIX(text, want) expect_err_(text, want, 1, __LINE__)

/* Loads text that must be valid; true on success, and then the caller frees c. */
static int load_ok_(struct cvmm_config *c, const char *text, int line)
{
	char err[1024] = "";
	int rc = config_load_string(c, text, err, sizeof(err));

	if (rc)
		printf("\n    line %d: unexpected error: %s\n", line, err);
	check_at(rc == 0, line, "config_load_string succeeds");
	check_at(err[0] == '\0', line, "no error text on success");
	return rc == 0;
}
#define LOAD_OK(c, text) load_ok_(c, text, __LINE__)

static char *write_file(const char *name, const char *text)
{
	char *path;
	FILE *f;

	if (asprintf(&path, "%s/%s", tmpdir, name) < 0)
		return NULL;
	f = fopen(path, "w");
	if (!f) {
		free(path);
		return NULL;
	}
	fputs(text, f);
	fclose(f);
	return path;
}

/* libconfig 1.5 keeps unsuffixed integer literals in 32 bits; later versions widen them. */
static int libconfig_truncates(void)
{
	config_t t;
	config_setting_t *s;
	int r;

	config_init(&t);
	r = config_read_string(&t, "x = 5000000000;") == CONFIG_TRUE &&
	    (s = config_lookup(&t, "x")) && config_setting_type(s) == CONFIG_TYPE_INT;
	config_destroy(&t);
	return r;
}

static int suite_init(void)
{
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int suite_clean(void)
{
	char cmd[256];

	config_set_host_override(NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- shipped files ---------------------------------------------------------- */

static void test_dev_conf_loads(void)
{
	struct cvmm_config c;
	char err[1024] = "", conf_dir[PATH_MAX], plug_parent[PATH_MAX], real_parent[PATH_MAX], *cut;
	const char *tail = "/../build/plugins";
	int rc;

	rc = config_load(&c, CVMM_SOURCE_DIR "/conf/cvmm.conf", err, sizeof(err));
	if (rc)
		printf("\n    %s\n", err);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	CU_ASSERT_STRING_EQUAL(c.path, CVMM_SOURCE_DIR "/conf/cvmm.conf");
	CU_ASSERT_STRING_EQUAL(c.address, "unix:/run/cvmm/cvmm.sock");
	CU_ASSERT_STRING_EQUAL(c.run_path, "/run/cvmm");
	CU_ASSERT_STRING_EQUAL(c.data_dir, "/var/lib/cvmm");
	CU_ASSERT_STRING_EQUAL(c.image_path, "/var/lib/cvmm/images");
	CU_ASSERT_STRING_EQUAL(c.log_level, "info");
	CU_ASSERT_STRING_EQUAL(c.node_name, "");
	CU_ASSERT_EQUAL(c.workers, 4);
	CU_ASSERT_FALSE(c.workers_computed);
	CU_ASSERT_EQUAL(c.serial_log_max, 1048576);
	CU_ASSERT_STRING_EQUAL(c.default_backend, "qemu");
	CU_ASSERT_EQUAL(c.max_allocable_vcpu, 8);
	CU_ASSERT_EQUAL(c.max_allocable_memory_mb, 8192);
	CU_ASSERT_FALSE(c.vcpu_computed || c.memory_computed);
	CU_ASSERT_EQUAL(c.cid_start, 1000);
	CU_ASSERT_EQUAL(c.cid_pool_size, 1000);
	CU_ASSERT_STRING_EQUAL(c.net_mode, "user");
	CU_ASSERT_TRUE(c.pm_enabled);
	CU_ASSERT_STRING_EQUAL(c.pm_address, "127.0.0.1");
	CU_ASSERT_EQUAL_FATAL(c.n_pm_ranges, 2);
	CU_ASSERT_EQUAL(c.pm_ranges[0].protocol, CVMM_PROTO_TCP);
	CU_ASSERT_EQUAL(c.pm_ranges[1].protocol, CVMM_PROTO_UDP);
	CU_ASSERT_EQUAL(c.pm_ranges[1].from, 1024);
	CU_ASSERT_EQUAL(c.pm_ranges[1].to, 65535);
	CU_ASSERT_TRUE(c.ar_enabled);
	CU_ASSERT_DOUBLE_EQUAL(c.ar_interval, 20, 1e-9);
	CU_ASSERT_EQUAL(c.ar_max_retries, 5);
	CU_ASSERT_DOUBLE_EQUAL(c.ar_reset_window, 300, 1e-9);
	CU_ASSERT_FALSE(c.auth_enabled);
	CU_ASSERT_EQUAL(c.n_tokens, 0);
	CU_ASSERT_EQUAL_FATAL(c.n_plugins, 2);
	CU_ASSERT_STRING_EQUAL(c.plugins[0], "backend-qemu");
	CU_ASSERT_STRING_EQUAL(c.plugins[1], "net-user");
	CU_ASSERT_PTR_NOT_NULL(config_plugin_section(&c, "backend-qemu"));
	CU_ASSERT_PTR_NULL(config_plugin_section(&c, "net-user"));

	/* plugin_dir = "../build/plugins" is relative to the conf directory. */
	CU_ASSERT_EQUAL(c.plugin_dir[0], '/');
	cut = strstr(c.plugin_dir, tail);
	CU_ASSERT_FATAL(cut && !strcmp(cut, tail));
	snprintf(plug_parent, sizeof(plug_parent), "%.*s", (int)(cut - c.plugin_dir), c.plugin_dir);
	CU_ASSERT_PTR_NOT_NULL_FATAL(realpath(CVMM_SOURCE_DIR "/conf", conf_dir));
	CU_ASSERT_PTR_NOT_NULL_FATAL(realpath(plug_parent, real_parent));
	CU_ASSERT_STRING_EQUAL(real_parent, conf_dir);
	config_free(&c);
}

static void test_production_conf_loads(void)
{
	struct cvmm_config c;
	char err[1024] = "";
	const struct config_host h = {.ncpus = 128, .mem_mb = 1007000};
	int rc;

	config_set_host_override(&h);
	rc = config_load(&c, CVMM_SOURCE_DIR "/conf/cvmm-production.conf", err, sizeof(err));
	config_set_host_override(NULL);
	if (rc)
		printf("\n    %s\n", err);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	CU_ASSERT_STRING_EQUAL(c.net_mode, "passt");
	CU_ASSERT_TRUE(c.auth_enabled);
	CU_ASSERT_TRUE(c.n_tokens >= 1);
	CU_ASSERT_TRUE(c.pm_enabled);
	CU_ASSERT_EQUAL(c.n_pm_ranges, 1);
	/* Limits and workers are left to the host figures. */
	CU_ASSERT_TRUE(c.vcpu_computed && c.memory_computed && c.workers_computed);
	CU_ASSERT_EQUAL(c.max_allocable_vcpu, 124);
	CU_ASSERT_EQUAL(c.max_allocable_memory_mb, 990616);
	CU_ASSERT_EQUAL(c.workers, 16);
	CU_ASSERT_TRUE(c.n_plugins >= 2);
	/* No loaded plugin handles these yet: the example keeps them commented out. */
	CU_ASSERT_PTR_NULL(config_lookup(&c.cfg, "gateway"));
	CU_ASSERT_PTR_NULL(config_lookup(&c.cfg, "cvm.gpu"));
	config_free(&c);
}

static void test_service_unit(void)
{
	/* The template: the binary's directory is the install's (dist/). */
	FILE *f = fopen(CVMM_SOURCE_DIR "/conf/cvmmd.service.in", "r");
	char line[512];
	int killmode = 0, pre = 0, restart = 0, preserve = 0, notify = 0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	while (fgets(line, sizeof(line), f)) {
		killmode |= !strcmp(line, "KillMode=process\n");
		pre |= !strcmp(line, "ExecStartPre=@CMAKE_INSTALL_FULL_BINDIR@/cvmmd --check-config\n");
		notify |= !strcmp(line, "Type=notify\n");
		restart |= !strcmp(line, "Restart=on-failure\n");
		preserve |= !strcmp(line, "RuntimeDirectoryPreserve=yes\n");
	}
	fclose(f);
	CU_ASSERT_TRUE(killmode);
	CU_ASSERT_TRUE(pre);
	CU_ASSERT_TRUE(restart);
	CU_ASSERT_TRUE(preserve);
	CU_ASSERT_TRUE(notify);
}

/* ---- defaults ------------------------------------------------------------------ */

static void test_defaults_empty(void)
{
	struct cvmm_config c;

	if (!LOAD_OK(&c, ""))
		return;
	CU_ASSERT_STRING_EQUAL(c.path, "<string>");
	CU_ASSERT_STRING_EQUAL(c.address, "unix:/run/cvmm/cvmm.sock");
	CU_ASSERT_STRING_EQUAL(c.run_path, "/run/cvmm");
	CU_ASSERT_STRING_EQUAL(c.data_dir, "/var/lib/cvmm");
	CU_ASSERT_STRING_EQUAL(c.image_path, "/var/lib/cvmm/images");
	CU_ASSERT_EQUAL(c.plugin_dir[0], '/');
	CU_ASSERT_STRING_EQUAL(c.log_level, "info");
	CU_ASSERT_STRING_EQUAL(c.node_name, "");
	CU_ASSERT_EQUAL(c.serial_log_max, 1u << 20);
	CU_ASSERT_STRING_EQUAL(c.default_backend, "qemu");
	CU_ASSERT_EQUAL(c.cid_start, 1000);
	CU_ASSERT_EQUAL(c.cid_pool_size, 1000);
	CU_ASSERT_STRING_EQUAL(c.net_mode, "user");
	CU_ASSERT_FALSE(c.pm_enabled);
	CU_ASSERT_STRING_EQUAL(c.pm_address, "127.0.0.1");
	CU_ASSERT_EQUAL(c.n_pm_ranges, 2);
	CU_ASSERT_TRUE(c.ar_enabled);
	CU_ASSERT_DOUBLE_EQUAL(c.ar_interval, 20, 1e-9);
	CU_ASSERT_EQUAL(c.ar_max_retries, 5);
	CU_ASSERT_DOUBLE_EQUAL(c.ar_initial_backoff, 1, 1e-9);
	CU_ASSERT_DOUBLE_EQUAL(c.ar_max_backoff, 60, 1e-9);
	CU_ASSERT_DOUBLE_EQUAL(c.ar_reset_window, 300, 1e-9);
	CU_ASSERT_FALSE(c.auth_enabled);
	CU_ASSERT_EQUAL(c.n_plugins, 2);
	CU_ASSERT_TRUE(c.vcpu_computed && c.memory_computed && c.workers_computed);
	config_free(&c);
}

static void test_defaults_derived(void)
{
	struct cvmm_config c;

	/* address follows run_path, image.path follows data_dir. */
	if (!LOAD_OK(&c, "run_path = \"/srv/run\";\ndata_dir = \"/srv/data\";\n"))
		return;
	CU_ASSERT_STRING_EQUAL(c.address, "unix:/srv/run/cvmm.sock");
	CU_ASSERT_STRING_EQUAL(c.image_path, "/srv/data/images");
	config_free(&c);

	/* The keys of a mode are its plugin's (net-user derives dhcp_start
	 * from net): the core keeps them in the tree, unread. */
	if (!LOAD_OK(&c, "cvm = { networking = { net = \"192.168.50.0/24\"; }; };"))
		return;
	CU_ASSERT_PTR_NOT_NULL(config_lookup(&c.cfg, "cvm.networking.net"));
	config_free(&c);

	/* "range = ();" means no port may be mapped. */
	if (!LOAD_OK(&c, "cvm = { port_mapping = { enabled = true; range = (); }; };"))
		return;
	CU_ASSERT_EQUAL(c.n_pm_ranges, 0);
	config_free(&c);

	/* "plugins = [];" loads none. */
	if (!LOAD_OK(&c, "plugins = [];"))
		return;
	CU_ASSERT_EQUAL(c.n_plugins, 0);
	config_free(&c);
}

static void test_computed_big_host(void)
{
	const struct config_host h = {.ncpus = 128, .mem_mb = 1007000};
	struct cvmm_config c;

	config_set_host_override(&h);
	if (LOAD_OK(&c, "")) {
		CU_ASSERT_EQUAL(c.max_allocable_vcpu, 124);
		CU_ASSERT_EQUAL(c.max_allocable_memory_mb, 990616);
		CU_ASSERT_EQUAL(c.workers, 16);
		CU_ASSERT_TRUE(c.vcpu_computed);
		CU_ASSERT_TRUE(c.memory_computed);
		CU_ASSERT_TRUE(c.workers_computed);
		config_free(&c);
	}
	config_set_host_override(NULL);
}

static void test_computed_small_and_huge_hosts(void)
{
	const struct config_host small = {.ncpus = 2, .mem_mb = 4096};
	const struct config_host huge = {.ncpus = 300, .mem_mb = 16384 + 100};
	const struct config_host mid = {.ncpus = 40, .mem_mb = 65536};
	struct cvmm_config c;

	config_set_host_override(&small);
	if (LOAD_OK(&c, "")) {
		CU_ASSERT_EQUAL(c.max_allocable_vcpu, 1);
		CU_ASSERT_EQUAL(c.max_allocable_memory_mb, 512);
		CU_ASSERT_EQUAL(c.workers, 4);
		config_free(&c);
	}
	config_set_host_override(&huge);
	if (LOAD_OK(&c, "")) {
		CU_ASSERT_EQUAL(c.max_allocable_vcpu, 296);
		CU_ASSERT_EQUAL(c.max_allocable_memory_mb, 512);
		CU_ASSERT_EQUAL(c.workers, 32);
		config_free(&c);
	}
	config_set_host_override(&mid);
	if (LOAD_OK(&c, "")) {
		CU_ASSERT_EQUAL(c.max_allocable_vcpu, 36);
		CU_ASSERT_EQUAL(c.max_allocable_memory_mb, 65536 - 16384);
		CU_ASSERT_EQUAL(c.workers, 5);
		config_free(&c);
	}
	config_set_host_override(NULL);
}

static void test_explicit_values_not_computed(void)
{
	const struct config_host h = {.ncpus = 128, .mem_mb = 1007000};
	struct cvmm_config c;

	config_set_host_override(&h);
	if (LOAD_OK(&c, "workers = 7;\ncvm = { max_allocable_vcpu = 3; "
	                "max_allocable_memory_in_mb = 6000000000L; };")) {
		CU_ASSERT_EQUAL(c.workers, 7);
		CU_ASSERT_EQUAL(c.max_allocable_vcpu, 3);
		CU_ASSERT_EQUAL(c.max_allocable_memory_mb, 6000000000ULL);
		CU_ASSERT_FALSE(c.workers_computed || c.vcpu_computed || c.memory_computed);
		config_free(&c);
	}
	config_set_host_override(NULL);
}

static void test_real_host_figures(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	struct cvmm_config c;

	config_set_host_override(NULL);
	if (!LOAD_OK(&c, ""))
		return;
	CU_ASSERT_EQUAL(c.max_allocable_vcpu, n > 5 ? n - 4 : 1);
	CU_ASSERT_TRUE(c.max_allocable_memory_mb >= 512);
	CU_ASSERT_TRUE(c.workers >= 4 && c.workers <= 32);
	config_free(&c);
}

/* ---- parse and file errors --------------------------------------------------- */

static void test_syntax_error_line(void)
{
	struct cvmm_config c;
	char err[1024] = "", *path, want[PATH_MAX + 64];
	int rc;

	EXPECT_ERR("workers = 4;\n\nlog_level = ;\n", "<string>:3: syntax error");
	EXPECT_ERR("cvm = {\n  cid_start = 1000;\n", "<string>:3: syntax error");

	path =
	    write_file("syntax.conf", "# a comment\nworkers = 4;\ncvm = {\n  backend = \"qemu\"\n"
	                              "  cid_start = 1000\n  networking = { mode = user; };\n};\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(path);
	memset(&c, 0xa5, sizeof(c));
	rc = config_load(&c, path, err, sizeof(err));
	snprintf(want, sizeof(want), "%s:6: syntax error", path);
	expect_msg(rc, &c, err, want, 0, __LINE__);
	free(path);
}

static void test_missing_file(void)
{
	struct cvmm_config c;
	char err[1024] = "", want[PATH_MAX + 64];
	int rc;

	memset(&c, 0xa5, sizeof(c));
	rc = config_load(&c, "/nonexistent/cvmm.conf", err, sizeof(err));
	CU_ASSERT_EQUAL(rc, -ENOENT);
	CU_ASSERT_STRING_EQUAL(err,
	                       "/nonexistent/cvmm.conf: cannot read: No such file or directory");
	CU_ASSERT_TRUE(is_zeroed(&c));
	config_free(&c);

	rc = config_load(&c, tmpdir, err, sizeof(err));
	CU_ASSERT_EQUAL(rc, -EISDIR);
	snprintf(want, sizeof(want), "%s: cannot read: Is a directory", tmpdir);
	CU_ASSERT_STRING_EQUAL(err, want);
	CU_ASSERT_TRUE(is_zeroed(&c));
	config_free(&c);
}

static void test_file_error_names_file_and_line(void)
{
	struct cvmm_config c;
	char err[1024] = "", *path, want[PATH_MAX + 128];
	int rc;

	path = write_file("cid.conf", "# cvmm\n\ncvm = {\n  cid_start = 1000;\n\n"
	                              "  cid_pool_size = 0;\n};\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(path);
	rc = config_load(&c, path, err, sizeof(err));
	snprintf(want, sizeof(want),
	         "%s:6: cvm.cid_pool_size: must be between 1 and 1000000, got 0", path);
	expect_msg(rc, &c, err, want, 0, __LINE__);
	free(path);
}

static void test_include_relative_to_conf_dir(void)
{
	struct cvmm_config c;
	char err[1024] = "", *main_path, *inc, want[PATH_MAX + 128];
	int rc;

	inc = write_file("limits.inc", "\nworkers = 0;\n");
	main_path = write_file("inc.conf", "log_level = \"debug\";\n@include \"limits.inc\"\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(inc);
	CU_ASSERT_PTR_NOT_NULL_FATAL(main_path);
	rc = config_load(&c, main_path, err, sizeof(err));
	snprintf(want, sizeof(want), "%s:2: workers: must be between 1 and 256, got 0", inc);
	expect_msg(rc, &c, err, want, 0, __LINE__);
	free(inc);
	free(main_path);

	/* A syntax error inside the included file names that file. */
	inc = write_file("bad.inc", "workers = 4;\n\nnode_name = ;\n");
	main_path = write_file("inc2.conf", "\n@include \"bad.inc\"\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(inc);
	CU_ASSERT_PTR_NOT_NULL_FATAL(main_path);
	rc = config_load(&c, main_path, err, sizeof(err));
	snprintf(want, sizeof(want), "%s:3: syntax error", inc);
	expect_msg(rc, &c, err, want, 0, __LINE__);
	free(inc);
	free(main_path);
}

static void test_wide_integer_literal(void)
{
	struct cvmm_config c;

	if (libconfig_truncates()) {
		EXPECT_ERR("log_level = \"info\";\nserial_log_max = 5000000000;\n",
		           "<string>:2: serial_log_max: 5000000000 does not fit in a 32-bit "
		           "integer and this libconfig would silently truncate it; write "
		           "5000000000L");
		EXPECT_ERR("cvm = {\n  cid_start = 0xfffffff0;\n};\n",
		           "<string>:2: cvm.cid_start: 0xfffffff0 does not fit in a 32-bit integer "
		           "and this libconfig would silently truncate it; write 0xfffffff0L");
		/* Plugin sections are read through libconfig too. */
		EXPECT_ERR("plugin = { x = { big = [ 1, 2,\n 99999999999 ]; }; };",
		           "<string>:2: plugin.x.big[2]: 99999999999 does not fit in a 32-bit "
		           "integer and this libconfig would silently truncate it; write "
		           "99999999999L");
	}
	/* Literals in strings and comments, and suffixed ones, are fine. */
	if (LOAD_OK(&c, "# 5000000000\nnode_name = \"5000000000\"; /* 99999999999 */\n"
	                "serial_log_max = 5000000000L;\n")) {
		CU_ASSERT_EQUAL(c.serial_log_max, 5000000000ULL);
		config_free(&c);
	}
}

/* ---- keys and types ------------------------------------------------------------ */

static void test_unknown_keys(void)
{
	EXPECT_ERR_PREFIX("worker = 4;", "<string>:1: worker: unknown key (expected one of: "
	                                 "address, run_path, data_dir,");
	EXPECT_ERR("image = {\n  paht = \"/x\";\n};",
	           "<string>:2: image.paht: unknown key (expected one of: path)");
	EXPECT_ERR_PREFIX("cvm = {\n\n  max_vcpu = 4;\n};",
	                  "<string>:3: cvm.max_vcpu: unknown key (expected one of: backend, ");
	EXPECT_ERR("cvm = { port_mapping = { enable = true; }; };",
	           "<string>:1: cvm.port_mapping.enable: unknown key (expected one of: enabled, "
	           "address, range)");
	EXPECT_ERR("cvm = { port_mapping = { range = (\n { protocol = \"tcp\"; from = 1; to = 2; },"
	           "\n { proto = \"udp\"; from = 1; to = 2; }); }; };",
	           "<string>:3: cvm.port_mapping.range[1].proto: unknown key (expected one of: "
	           "protocol, from, to)");
	EXPECT_ERR_PREFIX("cvm = { auto_restart = { retries = 3; }; };",
	                  "<string>:1: cvm.auto_restart.retries: unknown key");
	EXPECT_ERR("auth = { enabled = false; token = [\"x\"]; };",
	           "<string>:1: auth.token: unknown key (expected one of: enabled, tokens)");
}

static void test_plugin_owned_sections_accepted(void)
{
	struct cvmm_config c;

	if (!LOAD_OK(&c,
	             "cvm = { gpu = { enabled = true; listing = [\"10de:2335\"]; foo = 1; }; };\n"
	             "gateway = { base_domain = \"x\"; anything = 1; };\n"
	             "host_api = { address = \"vsock:2\"; port = 10000; };\n"
	             "key_provider = { enabled = true; };\nsupervisor = { exe = \"/x\"; };\n"
	             "kms = { urls = [\"http://127.0.0.1:8081\"]; };\n"
	             "plugin = { net-user = { whatever = \"yes\"; nested = { a = 1; }; }; };\n"))
		return;
	CU_ASSERT_PTR_NOT_NULL(config_plugin_section(&c, "net-user"));
	CU_ASSERT_PTR_NOT_NULL(config_lookup(&c.cfg, "plugin.net-user.nested.a"));
	config_free(&c);

	EXPECT_ERR("gateway = 5;", "<string>:1: gateway: must be a group { ... }, got an integer");
	EXPECT_ERR("cvm = { gpu = true; };",
	           "<string>:1: cvm.gpu: must be a group { ... }, got a boolean");
	EXPECT_ERR("plugin = {\n  net-user = \"x\";\n};",
	           "<string>:2: plugin.net-user: must be a group { ... } of the plugin's settings, "
	           "got a string");
	/* Nobody would read a section of a plugin that is not loaded. */
	EXPECT_ERR("plugins = [ \"backend-qemu\" ];\nplugin = {\n  net-user = { x = 1; };\n};",
	           "<string>:3: plugin.net-user: no plugin \"net-user\" in plugins (add it there, "
	           "or remove this section)");
	EXPECT_ERR("plugin = { backend-qemu = { }; net-usr = { };\n};",
	           "<string>:1: plugin.net-usr: no plugin \"net-usr\" in plugins (add it there, "
	           "or remove this section)");
}

static void test_wrong_types(void)
{
	struct cvmm_config c;

	EXPECT_ERR("workers = \"4\";", "<string>:1: workers: must be an integer, got a string");
	EXPECT_ERR("log_level = 3;", "<string>:1: log_level: must be a string, got an integer");
	EXPECT_ERR("cvm = 5;", "<string>:1: cvm: must be a group { ... }, got an integer");
	EXPECT_ERR("image = \"/x\";", "<string>:1: image: must be a group { ... }, got a string");
	EXPECT_ERR("cvm = { cid_start = 1000.0; };",
	           "<string>:1: cvm.cid_start: must be an integer, got a float");
	EXPECT_ERR(
	    "cvm = { auto_restart = { interval = \"20\"; }; };",
	    "<string>:1: cvm.auto_restart.interval: must be a number of seconds, got a string");
	EXPECT_ERR("cvm = { auto_restart = { max_retries = 5.0; }; };",
	           "<string>:1: cvm.auto_restart.max_retries: must be an integer, got a float");
	EXPECT_ERR("auth = { enabled = \"yes\"; };",
	           "<string>:1: auth.enabled: must be a boolean (true or false), got a string");
	EXPECT_ERR(
	    "auth = { tokens = \"0123456789abcdef\"; };",
	    "<string>:1: auth.tokens: must be a list ( ... ) or an array [ ... ], got a string");
	EXPECT_ERR("plugins = \"net-user\";",
	           "<string>:1: plugins: must be a list ( ... ) or an array [ ... ], got a string");
	EXPECT_ERR(
	    "cvm = { port_mapping = { range = (\n { protocol = \"tcp\"; from = \"1\"; to = 2; }"
	    " ); }; };",
	    "<string>:2: cvm.port_mapping.range[0].from: must be an integer, got a string");
	EXPECT_ERR(
	    "cvm = { port_mapping = { range = [ 1, 2 ]; }; };",
	    "<string>:1: cvm.port_mapping.range[0]: must be a group { protocol = \"tcp\"; from "
	    "= N; to = N; }, got an integer");

	/* int64 literals are integers; integers are fine for the time values. */
	if (LOAD_OK(&c, "workers = 8L;\ncvm = { cid_pool_size = 10L; auto_restart = { interval = 5;"
	                " initial_backoff = 2; max_backoff = 90.5; reset_window = 600L; }; };")) {
		CU_ASSERT_EQUAL(c.workers, 8);
		CU_ASSERT_EQUAL(c.cid_pool_size, 10);
		CU_ASSERT_DOUBLE_EQUAL(c.ar_interval, 5, 1e-9);
		CU_ASSERT_DOUBLE_EQUAL(c.ar_initial_backoff, 2, 1e-9);
		CU_ASSERT_DOUBLE_EQUAL(c.ar_max_backoff, 90.5, 1e-9);
		CU_ASSERT_DOUBLE_EQUAL(c.ar_reset_window, 600, 1e-9);
		config_free(&c);
	}
}

/* ---- value rules --------------------------------------------------------------- */

static void test_log_level(void)
{
	struct cvmm_config c;

	EXPECT_ERR(
	    "\nlog_level = \"verbose\";",
	    "<string>:2: log_level: must be one of debug, info, warn, error, got \"verbose\"");
	EXPECT_ERR("log_level = \"\";", "<string>:1: log_level: must not be empty");
	if (LOAD_OK(&c, "log_level = \"debug\";")) {
		CU_ASSERT_STRING_EQUAL(c.log_level, "debug");
		config_free(&c);
	}
}

static void test_address(void)
{
	struct cvmm_config c;
	char cwd[PATH_MAX], want[PATH_MAX + 64], text[512];

	EXPECT_ERR("address = \"/run/cvmm.sock\";",
	           "<string>:1: address: must be \"unix:PATH\" or \"tcp:HOST:PORT\", got "
	           "\"/run/cvmm.sock\"");
	EXPECT_ERR("address = \"unix:\";",
	           "<string>:1: address: unix socket path is empty, got \"unix:\"");
	EXPECT_ERR("address = \"tcp:127.0.0.1\";",
	           "<string>:1: address: must be \"unix:PATH\" or \"tcp:HOST:PORT\", got "
	           "\"tcp:127.0.0.1\"");
	EXPECT_ERR(
	    "address = \"tcp:127.0.0.1:0\";",
	    "<string>:1: address: PORT must be between 1 and 65535, got \"tcp:127.0.0.1:0\"");
	EXPECT_ERR("address = \"tcp:127.0.0.1:65536\";",
	           "<string>:1: address: PORT must be between 1 and 65535, got "
	           "\"tcp:127.0.0.1:65536\"");
	EXPECT_ERR("address = \"tcp:localhost:8080\";",
	           "<string>:1: address: HOST must be a numeric IPv4 address or a bracketed IPv6 "
	           "address, got \"tcp:localhost:8080\"");
	EXPECT_ERR("address = \"tcp:::1:8080\";",
	           "<string>:1: address: an IPv6 host must be in brackets, as tcp:[::1]:8080, got "
	           "\"tcp:::1:8080\"");
	EXPECT_ERR("address = \"tcp::8080\";",
	           "<string>:1: address: HOST must be a numeric IPv4 address or a bracketed IPv6 "
	           "address, got \"tcp::8080\"");
	snprintf(text, sizeof(text), "address = \"unix:/%0120d\";", 0);
	EXPECT_ERR_PREFIX(text, "<string>:1: address: unix socket path must be at most 107 bytes, "
	                        "got 121");

	if (LOAD_OK(&c, "address = \"tcp:127.0.0.1:8080\";")) {
		CU_ASSERT_STRING_EQUAL(c.address, "tcp:127.0.0.1:8080");
		config_free(&c);
	}
	if (LOAD_OK(&c, "address = \"tcp:[::1]:8080\";")) {
		CU_ASSERT_STRING_EQUAL(c.address, "tcp:[::1]:8080");
		config_free(&c);
	}
	/* A relative socket path is made absolute like every other path. */
	CU_ASSERT_PTR_NOT_NULL_FATAL(getcwd(cwd, sizeof(cwd)));
	if (LOAD_OK(&c, "address = \"unix:run/cvmm.sock\";")) {
		snprintf(want, sizeof(want), "unix:%s/run/cvmm.sock", cwd);
		CU_ASSERT_STRING_EQUAL(c.address, want);
		config_free(&c);
	}
}

/* Plain HTTP only where the token cannot be seen on a network; the socket's
 * group and mode. (Certificates are read and checked in integration.tls.) */
static void test_listener(void)
{
	struct cvmm_config c;

	EXPECT_ERR_PREFIX("address = \"tcp:0.0.0.0:8080\";",
	                  "<string>:1: address: plain HTTP is accepted only on a loopback address "
	                  "(127.0.0.0/8, [::1])");
	EXPECT_ERR_PREFIX("address = \"tcp:[::]:8080\";",
	                  "<string>:1: address: plain HTTP is accepted only on a loopback");
	EXPECT_ERR_PREFIX("address = \"tcp:128.0.0.1:8080\";",
	                  "<string>:1: address: plain HTTP is accepted only on a loopback");
	if (LOAD_OK(&c, "address = \"tcp:127.255.0.9:8080\";"))
		config_free(&c);
	if (LOAD_OK(&c, "address = \"tcp:[::ffff:127.0.0.1]:8080\";"))
		config_free(&c);
	EXPECT_ERR("address = \"tcp:127.0.0.1:8080\";\ncvm = { tls_key = \"k.pem\"; };",
	           "<string>:2: cvm.tls_cert: missing: cvm.tls_cert and cvm.tls_key go together");
	EXPECT_ERR("cvm = {\n tls_cert = \"c.pem\"; tls_key = \"k.pem\"; };",
	           "<string>:2: cvm.tls_cert: TLS is for a tcp: address, but address is "
	           "\"unix:/run/cvmm/cvmm.sock\"");
	EXPECT_ERR("cvm = {\n unix_sock_mode = \"0800\"; };",
	           "<string>:2: cvm.unix_sock_mode: must be an octal mode from \"0000\" to \"0777\", "
	           "got \"0800\"");
	EXPECT_ERR("cvm = {\n unix_sock_group = \"no-such-group-xyz\"; };",
	           "<string>:2: cvm.unix_sock_group: no such group \"no-such-group-xyz\"");
	EXPECT_ERR("address = \"tcp:127.0.0.1:8080\";\ncvm = { unix_sock_mode = \"0600\"; };",
	           "<string>:2: cvm.unix_sock_mode: applies to a unix socket, but address is "
	           "\"tcp:127.0.0.1:8080\"");
	if (LOAD_OK(&c, "")) {
		CU_ASSERT_EQUAL(c.unix_sock_gid, -1);
		CU_ASSERT_EQUAL(c.unix_sock_mode, 0660);
		CU_ASSERT_PTR_NULL(c.tls_cert_pem);
		config_free(&c);
	}
	if (LOAD_OK(&c, "cvm = { unix_sock_group = \"root\"; unix_sock_mode = \"0640\"; };")) {
		CU_ASSERT_EQUAL(c.unix_sock_gid, 0);
		CU_ASSERT_EQUAL(c.unix_sock_mode, 0640);
		config_free(&c);
	}
	if (LOAD_OK(&c, "cvm = { unix_sock_group = \"4242\"; };")) {
		CU_ASSERT_EQUAL(c.unix_sock_gid, 4242);
		config_free(&c);
	}
}

static void test_workers_and_sizes(void)
{
	EXPECT_ERR("workers = 0;", "<string>:1: workers: must be between 1 and 256, got 0");
	EXPECT_ERR("\n\nworkers = 257;", "<string>:3: workers: must be between 1 and 256, got 257");
	EXPECT_ERR("serial_log_max = 0;",
	           "<string>:1: serial_log_max: must be between 1 and 1099511627776, got 0");
	EXPECT_ERR("cvm = { max_allocable_vcpu = 0; };",
	           "<string>:1: cvm.max_allocable_vcpu: must be between 1 and 65536, got 0");
	EXPECT_ERR(
	    "cvm = { max_allocable_memory_in_mb = -5; };",
	    "<string>:1: cvm.max_allocable_memory_in_mb: must be between 1 and 1099511627776, "
	    "got -5");
	EXPECT_ERR("cvm = { backend = \"\"; };", "<string>:1: cvm.backend: must not be empty");
	EXPECT_ERR("run_path = \"\";", "<string>:1: run_path: must not be empty");
	EXPECT_ERR("image = { path = \"\"; };", "<string>:1: image.path: must not be empty");
}

static void test_cid_pool(void)
{
	struct cvmm_config c;

	EXPECT_ERR("cvm = {\n  cid_start = 2;\n};",
	           "<string>:2: cvm.cid_start: must be between 3 and 4294967294, got 2");
	EXPECT_ERR("cvm = {\n  cid_start = 1000;\n  cid_pool_size = 0;\n};",
	           "<string>:3: cvm.cid_pool_size: must be between 1 and 1000000, got 0");
	EXPECT_ERR("cvm = { cid_pool_size = 1000001; };",
	           "<string>:1: cvm.cid_pool_size: must be between 1 and 1000000, got 1000001");
	EXPECT_ERR("cvm = {\n  cid_start = 4294967000L;\n  cid_pool_size = 1000;\n};",
	           "<string>:3: cvm.cid_pool_size: cid_start + cid_pool_size must not exceed "
	           "4294967295, got 4294967000 + 1000");
	/* Only cid_start set: the default pool size overflows, reported at cid_start. */
	EXPECT_ERR(
	    "cvm = {\n  cid_start = 4294967000L;\n};",
	    "<string>:2: cvm.cid_start: cid_start + cid_pool_size must not exceed 4294967295, "
	    "got 4294967000 + 1000");
	if (LOAD_OK(&c, "cvm = { cid_start = 4294966295L; cid_pool_size = 1000; };")) {
		CU_ASSERT_EQUAL(c.cid_start, 4294966295u);
		config_free(&c);
	}
}

static void test_port_mapping(void)
{
	struct cvmm_config c;
	char text[4096];
	size_t n;
	int i;

	EXPECT_ERR(
	    "cvm = { port_mapping = { range = (\n"
	    "  { protocol = \"sctp\"; from = 1; to = 2; }); }; };",
	    "<string>:2: cvm.port_mapping.range[0].protocol: must be \"tcp\" or \"udp\", got "
	    "\"sctp\"");
	EXPECT_ERR(
	    "cvm = { port_mapping = { range = (\n  { protocol = \"tcp\"; from = 1; to = 2; },\n"
	    "  { protocol = \"udp\"; from = 0; to = 2; }); }; };",
	    "<string>:3: cvm.port_mapping.range[1].from: must be between 1 and 65535, got 0");
	EXPECT_ERR(
	    "cvm = { port_mapping = { range = (\n"
	    "  { protocol = \"tcp\"; from = 1; to = 65536; }); }; };",
	    "<string>:2: cvm.port_mapping.range[0].to: must be between 1 and 65535, got 65536");
	EXPECT_ERR(
	    "cvm = { port_mapping = { range = (\n"
	    "  { protocol = \"tcp\"; from = 3000; to = 2000; }); }; };",
	    "<string>:2: cvm.port_mapping.range[0].from: must not be greater than to (2000), "
	    "got 3000");
	EXPECT_ERR("cvm = { port_mapping = { range = (\n"
	           "  { protocol = \"tcp\"; from = 1; }); }; };",
	           "<string>:2: cvm.port_mapping.range[0].to: required (a port from 1 to 65535)");
	EXPECT_ERR("cvm = { port_mapping = { range = (\n  { from = 1; to = 2; }); }; };",
	           "<string>:2: cvm.port_mapping.range[0].protocol: required (\"tcp\" or \"udp\")");
	EXPECT_ERR(
	    "cvm = { port_mapping = {\n  address = \"localhost\"; }; };",
	    "<string>:2: cvm.port_mapping.address: must be a numeric IPv4 or IPv6 address, got "
	    "\"localhost\"");
	EXPECT_ERR(
	    "cvm = { port_mapping = { address = \"127.0.0.256\"; }; };",
	    "<string>:1: cvm.port_mapping.address: must be a numeric IPv4 or IPv6 address, got "
	    "\"127.0.0.256\"");

	n = (size_t)snprintf(text, sizeof(text), "cvm = { port_mapping = { range = (");
	for (i = 0; i < CVMM_MAX_PORT_RANGES + 1; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n,
		                      "%s{ protocol = \"tcp\"; from = %d; to = %d; }",
		                      i ? ", " : "", i + 1, i + 1);
	snprintf(text + n, sizeof(text) - n, "); }; };");
	EXPECT_ERR(text, "<string>:1: cvm.port_mapping.range: must hold at most 32 ranges, got 33");

	if (!LOAD_OK(&c, "cvm = { port_mapping = { enabled = true; address = \"::1\"; range = (\n"
	                 "  { protocol = \"udp\"; from = 53; to = 53; }); }; };"))
		return;
	CU_ASSERT_TRUE(c.pm_enabled);
	CU_ASSERT_STRING_EQUAL(c.pm_address, "::1");
	CU_ASSERT_EQUAL_FATAL(c.n_pm_ranges, 1);
	CU_ASSERT_EQUAL(c.pm_ranges[0].protocol, CVMM_PROTO_UDP);
	CU_ASSERT_EQUAL(c.pm_ranges[0].from, 53);
	CU_ASSERT_EQUAL(c.pm_ranges[0].to, 53);
	config_free(&c);
}

static void test_networking(void)
{
	struct cvmm_config c;

	EXPECT_ERR("cvm = { networking = {\n mode = \"\"; }; };",
	           "<string>:2: cvm.networking.mode: must not be empty");
	EXPECT_ERR("cvm = { networking = 1; };",
	           "<string>:1: cvm.networking: must be a group { ... }, got an integer");

	/* The set of modes, and the keys of each, are the plugins' business:
	 * net, dhcp_start and restrict are read and checked by net-user (see
	 * test_check_config), so the core passes them through untouched. */
	if (!LOAD_OK(&c,
	             "cvm = { networking = { mode = \"some-vendor-mode\"; net = \"172.16.0.0/12\";"
	             " dhcp_start = \"x\"; restrict = 0; }; };"))
		return;
	CU_ASSERT_STRING_EQUAL(c.net_mode, "some-vendor-mode");
	CU_ASSERT_PTR_NOT_NULL(config_lookup(&c.cfg, "cvm.networking.restrict"));
	config_free(&c);
}

static void test_auto_restart(void)
{
	struct cvmm_config c;

	EXPECT_ERR("cvm = { auto_restart = {\n interval = 0; }; };",
	           "<string>:2: cvm.auto_restart.interval: must be positive, got 0");
	EXPECT_ERR("cvm = { auto_restart = { initial_backoff = -1.5; }; };",
	           "<string>:1: cvm.auto_restart.initial_backoff: must be positive, got -1.5");
	EXPECT_ERR("cvm = { auto_restart = { reset_window = 0.0; }; };",
	           "<string>:1: cvm.auto_restart.reset_window: must be positive, got 0");
	EXPECT_ERR("cvm = { auto_restart = {\n initial_backoff = 10;\n max_backoff = 5; }; };",
	           "<string>:2: cvm.auto_restart.initial_backoff: must not exceed "
	           "cvm.auto_restart.max_backoff (5), got 10");
	EXPECT_ERR("cvm = { auto_restart = {\n max_backoff = 0.5; }; };",
	           "<string>:2: cvm.auto_restart.max_backoff: must not be less than "
	           "cvm.auto_restart.initial_backoff (1), got 0.5");
	EXPECT_ERR(
	    "cvm = { auto_restart = { max_retries = 1001; }; };",
	    "<string>:1: cvm.auto_restart.max_retries: must be between 0 and 1000, got 1001");
	EXPECT_ERR("cvm = { auto_restart = { max_retries = -1; }; };",
	           "<string>:1: cvm.auto_restart.max_retries: must be between 0 and 1000, got -1");
	if (!LOAD_OK(&c, "cvm = { auto_restart = { enabled = false; max_retries = 0; }; };"))
		return;
	CU_ASSERT_FALSE(c.ar_enabled);
	CU_ASSERT_EQUAL(c.ar_max_retries, 0);
	config_free(&c);
}

static void test_tokens(void)
{
	struct cvmm_config c;

	EXPECT_ERR(
	    "auth = {\n  enabled = true;\n};",
	    "<string>:2: auth.enabled: is true but auth.tokens is not set (at least one token "
	    "is required)");
	EXPECT_ERR(
	    "auth = {\n  enabled = true;\n  tokens = [];\n};",
	    "<string>:3: auth.tokens: must hold at least one token when auth.enabled is true");
	EXPECT_ERR(
	    "auth = {\n  enabled = true;\n  tokens = [ \"0123456789abcdef\",\n \"short\" ];\n};",
	    "<string>:4: auth.tokens[1]: must be at least 16 characters when auth.enabled is "
	    "true, got 5");
	EXPECT_ERR("auth = { enabled = false; tokens = [ \"\" ]; };",
	           "<string>:1: auth.tokens[0]: must not be empty");
	EXPECT_ERR("auth = { enabled = true; tokens = ( \"0123456789abcdef\", 42 ); };",
	           "<string>:1: auth.tokens[1]: must be a string, got an integer");

	if (!LOAD_OK(&c, "auth = { enabled = true; tokens = [ \"0123456789abcdef\", "
	                 "\"fedcba9876543210fedcba\" ]; };"))
		return;
	CU_ASSERT_TRUE(c.auth_enabled);
	CU_ASSERT_EQUAL_FATAL(c.n_tokens, 2);
	CU_ASSERT_STRING_EQUAL(c.tokens[0], "0123456789abcdef");
	CU_ASSERT_STRING_EQUAL(c.tokens[1], "fedcba9876543210fedcba");
	config_free(&c);

	/* Length is enforced only when auth is on. */
	if (LOAD_OK(&c, "auth = { enabled = false; tokens = [ \"dev\" ]; };")) {
		CU_ASSERT_FALSE(c.auth_enabled);
		CU_ASSERT_EQUAL(c.n_tokens, 1);
		config_free(&c);
	}
}

static void test_plugins_list(void)
{
	struct cvmm_config c;
	char text[4096];
	size_t n;
	int i;

	EXPECT_ERR(
	    "plugins = [ \"backend-qemu\",\n \"net/user\" ];",
	    "<string>:2: plugins[1]: must be a plugin file name of letters, digits, '.', '_' "
	    "and '-', got \"net/user\"");
	EXPECT_ERR(
	    "plugins = [ \"..\" ];",
	    "<string>:1: plugins[0]: must be a plugin file name of letters, digits, '.', '_' "
	    "and '-', got \"..\"");
	EXPECT_ERR("plugins = [ \"\" ];", "<string>:1: plugins[0]: must not be empty");
	EXPECT_ERR(
	    "plugins = [ \"net-user.so\" ];",
	    "<string>:1: plugins[0]: must be given without the .so suffix, got \"net-user.so\"");
	EXPECT_ERR("plugins = [ \"net-user\", \"backend-qemu\",\n\n \"net-user\" ];",
	           "<string>:3: plugins[2]: \"net-user\" is listed twice");
	EXPECT_ERR("plugins = ( \"net-user\", 1 );",
	           "<string>:1: plugins[1]: must be a string, got an integer");

	n = (size_t)snprintf(text, sizeof(text), "plugins = [");
	for (i = 0; i < CVMM_MAX_PLUGINS + 1; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%s\"p%d\"", i ? ", " : "", i);
	snprintf(text + n, sizeof(text) - n, "];");
	EXPECT_ERR(text, "<string>:1: plugins: must hold at most 64 plugins, got 65");

	if (!LOAD_OK(&c, "plugins = ( \"vendor_x.gpu-2\", \"backend-qemu\" );"))
		return;
	CU_ASSERT_EQUAL_FATAL(c.n_plugins, 2);
	CU_ASSERT_STRING_EQUAL(c.plugins[0], "vendor_x.gpu-2");
	CU_ASSERT_STRING_EQUAL(c.plugins[1], "backend-qemu");
	config_free(&c);
}

/* ---- paths ------------------------------------------------------------------- */

static void test_relative_paths_file(void)
{
	struct cvmm_config c;
	char err[1024] = "", want[PATH_MAX + 64], *path, *sub;
	int rc;

	if (asprintf(&sub, "%s/etc", tmpdir) < 0)
		return;
	CU_ASSERT_EQUAL_FATAL(mkdir(sub, 0755), 0);
	free(sub);
	path = write_file("etc/cvmm.conf",
	                  "run_path = \"run\";\ndata_dir = \"./data\";\n"
	                  "plugin_dir = \"../plugins\";\nimage = { path = \"/abs/img\"; };\n"
	                  "address = \"unix:./sock/cvmm.sock\";\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(path);
	rc = config_load(&c, path, err, sizeof(err));
	free(path);
	if (rc)
		printf("\n    %s\n", err);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	snprintf(want, sizeof(want), "%s/etc/run", tmpdir);
	CU_ASSERT_STRING_EQUAL(c.run_path, want);
	snprintf(want, sizeof(want), "%s/etc/data", tmpdir);
	CU_ASSERT_STRING_EQUAL(c.data_dir, want);
	snprintf(want, sizeof(want), "%s/etc/../plugins", tmpdir);
	CU_ASSERT_STRING_EQUAL(c.plugin_dir, want);
	CU_ASSERT_STRING_EQUAL(c.image_path, "/abs/img");
	snprintf(want, sizeof(want), "unix:%s/etc/sock/cvmm.sock", tmpdir);
	CU_ASSERT_STRING_EQUAL(c.address, want);
	config_free(&c);
}

static void test_relative_paths_cwd(void)
{
	struct cvmm_config c;
	char err[1024] = "", want[PATH_MAX + 64], old[PATH_MAX], *sub, *path;
	int rc;

	/* A relative config path: its directory is taken relative to the cwd. */
	if (asprintf(&sub, "%s/cwd", tmpdir) < 0)
		return;
	CU_ASSERT_EQUAL_FATAL(mkdir(sub, 0755), 0);
	free(sub);
	path = write_file("cwd/cvmm.conf", "run_path = \"run\";\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(path);
	free(path);
	CU_ASSERT_PTR_NOT_NULL_FATAL(getcwd(old, sizeof(old)));
	CU_ASSERT_EQUAL_FATAL(chdir(tmpdir), 0);
	rc = config_load(&c, "cwd/cvmm.conf", err, sizeof(err));
	if (rc)
		printf("\n    %s\n", err);
	CU_ASSERT_EQUAL(rc, 0);
	if (!rc) {
		snprintf(want, sizeof(want), "%s/cwd/run", tmpdir);
		CU_ASSERT_STRING_EQUAL(c.run_path, want);
		CU_ASSERT_STRING_EQUAL(c.path, "cwd/cvmm.conf");
		config_free(&c);
	}
	/* From a string, paths are relative to the cwd. */
	if (LOAD_OK(&c, "data_dir = \"state\";\nimage = { path = \".\"; };")) {
		snprintf(want, sizeof(want), "%s/state", tmpdir);
		CU_ASSERT_STRING_EQUAL(c.data_dir, want);
		CU_ASSERT_STRING_EQUAL(c.image_path, tmpdir);
		config_free(&c);
	}
	CU_ASSERT_EQUAL(chdir(old), 0);
}

static void test_free_zeroed_and_twice(void)
{
	struct cvmm_config c;

	memset(&c, 0, sizeof(c));
	config_free(&c);
	config_free(&c);
	config_free(NULL);
	CU_ASSERT_TRUE(is_zeroed(&c));
	if (!LOAD_OK(&c, "auth = { tokens = [ \"0123456789abcdef\" ]; };"))
		return;
	config_free(&c);
	CU_ASSERT_TRUE(is_zeroed(&c));
	config_free(&c);
	/* A NULL error buffer is allowed. */
	CU_ASSERT_EQUAL(config_load_string(&c, "workers = 0;", NULL, 0), -EINVAL);
	CU_ASSERT_TRUE(is_zeroed(&c));
}

int main(void)
{
	static const struct unit_test tests[] = {
	    {"dev conf/cvmm.conf loads", test_dev_conf_loads},
	    {"production conf/cvmm-production.conf loads", test_production_conf_loads},
	    {"cvmmd.service keeps VMs on restart", test_service_unit},
	    {"defaults of an empty file", test_defaults_empty},
	    {"defaults derived from other keys", test_defaults_derived},
	    {"computed defaults: 128 cpus, 1007000 MB", test_computed_big_host},
	    {"computed defaults: small and huge hosts", test_computed_small_and_huge_hosts},
	    {"explicit values are not computed", test_explicit_values_not_computed},
	    {"computed defaults from the real host", test_real_host_figures},
	    {"syntax error names its line", test_syntax_error_line},
	    {"missing file", test_missing_file},
	    {"file errors name file and line", test_file_error_names_file_and_line},
	    {"@include relative to the conf dir", test_include_relative_to_conf_dir},
	    {"32-bit truncation of literals", test_wide_integer_literal},
	    {"unknown keys", test_unknown_keys},
	    {"plugin-owned sections accepted", test_plugin_owned_sections_accepted},
	    {"wrong types", test_wrong_types},
	    {"log_level", test_log_level},
	    {"address", test_address},
	    {"listener: TLS, loopback, socket group and mode", test_listener},
	    {"workers and sizes", test_workers_and_sizes},
	    {"cid pool", test_cid_pool},
	    {"port mapping", test_port_mapping},
	    {"networking", test_networking},
	    {"auto_restart", test_auto_restart},
	    {"auth tokens", test_tokens},
	    {"plugins list", test_plugins_list},
	    {"relative paths against the conf file", test_relative_paths_file},
	    {"relative paths against the cwd", test_relative_paths_cwd},
	    {"config_free", test_free_zeroed_and_twice},
	};
	return unit_main("config", suite_init, suite_clean, tests,
	                 sizeof(tests) / sizeof(tests[0]));
}
