/*
 * `cvmmd --check-config` end to end: the built daemon loads the built plugins
 * exactly as it would at start, each plugin checks its section, and what no
 * loaded plugin reads is refused. Every case asserts the exit code and the
 * one line a user would see; the shipped example configs must pass.
 */
#include "unit.h"

#include <CUnit/Basic.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CVMM_BINARY_DIR
#define CVMM_BINARY_DIR "."
#endif
#ifndef CVMM_SOURCE_DIR
#define CVMM_SOURCE_DIR "."
#endif
#ifndef CVMM_PLUGIN_BUILD_DIR
#define CVMM_PLUGIN_BUILD_DIR CVMM_BINARY_DIR "/plugins"
#endif

#define CVMMD CVMM_BINARY_DIR "/core/cvmmd"
/* Line 1 of every test config: the plugins of this build. */
#define PDIR "plugin_dir = \"" CVMM_PLUGIN_BUILD_DIR "\";\n"

static char tmpdir[] = "/tmp/cvmm-test-check-config.XXXXXX";
static char conf_path[256];

static void check_at(int ok, int line, const char *what)
{
	CU_assertImplementation(ok ? CU_TRUE : CU_FALSE, (unsigned)line, what, __FILE__, "",
	                        CU_FALSE);
}

/* Runs cvmmd --check-config on path; its exit code, output in out. */
static int run_check(const char *path, char *out, size_t len)
{
	char cmd[1024];
	size_t n = 0;
	snprintf(cmd, sizeof(cmd), "'%s' --check-config '%s' 2>&1", CVMMD, path);
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	out[0] = '\0';
	while (n + 1 < len && fgets(out + n, (int)(len - n), p))
		n += strlen(out + n);
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs(text, f);
	fclose(f);
}

/* text must be refused with exactly "cvmmd: <file>:" + want (+ newline);
 * want_prefix: the message may go on after want. */
static void expect_refused_(const char *text, const char *want, int want_prefix, int line)
{
	char out[4096], full[2048];
	write_file(conf_path, text);
	int rc = run_check(conf_path, out, sizeof(out));
	snprintf(full, sizeof(full), "cvmmd: %s%s%s", conf_path, want, want_prefix ? "" : "\n");
	int same = want_prefix ? !strncmp(out, full, strlen(full)) : !strcmp(out, full);
	if (rc != 2 || !same)
		printf("\n    line %d: exit %d\n      got:  %s      want: %s%s\n", line, rc, out, full,
		       want_prefix ? "..." : "");
	check_at(rc == 2, line, "exit code 2");
	check_at(same, line, "the error line");
	check_at(strchr(out, '\n') == out + strlen(out) - 1, line, "exactly one line");
}
#define EXPECT_REFUSED(text, want) expect_refused_(text, want, 0, __LINE__)
#define EXPECT_REFUSED_PREFIX(text, want) expect_refused_(text, want, 1, __LINE__)

static void expect_ok_(const char *path, int line)
{
	char out[4096];
	int rc = run_check(path, out, sizeof(out));
	if (rc != 0)
		printf("\n    line %d: %s: exit %d: %s\n", line, path, rc, out);
	check_at(rc == 0, line, "exit code 0");
	check_at(strstr(out, ": OK (") != NULL, line, "says OK");
}
#define EXPECT_OK_TEXT(text) (write_file(conf_path, text), expect_ok_(conf_path, __LINE__))

/* ---- plugins validate their sections ----------------------------------- */

static void test_plugin_types(void)
{
	EXPECT_REFUSED(PDIR "plugin = { backend-qemu = {\n  sandbox = \"maybe\"; }; };\n",
	               ":3: plugin.backend-qemu.sandbox: must be true or false");
	EXPECT_REFUSED(PDIR "plugin = { backend-qemu = {\n accel = 1; }; };\n",
	               ":3: plugin.backend-qemu.accel: must be a string");
	/* A plugin's own check, about a value, is located the same way. */
	EXPECT_REFUSED(PDIR "plugin = { backend-qemu = {\n accel = \"fast\"; }; };\n",
	               ":3: plugin.backend-qemu.accel: must be \"auto\", \"kvm\" or \"tcg\", got "
	               "\"fast\"");
	/* A required key that is missing: the file, no line. */
	EXPECT_REFUSED(PDIR "plugins = [ \"backend-qemu\", \"net-overlay\" ];\n",
	               ": plugin.net-overlay.vni: required (1..16777215)");
}

static void test_unknown_keys(void)
{
	EXPECT_REFUSED(PDIR "plugin = { backend-qemu = { accel = \"tcg\";\n  acel = \"kvm\"; }; };\n",
	               ":3: plugin.backend-qemu.acel: unknown key (backend-qemu reads: qemu, vsock, "
	               "sandbox, probe_kernel, accel)");
	/* Nested groups: each key is judged, not the group. */
	EXPECT_REFUSED_PREFIX(PDIR "plugins = [ \"backend-qemu\", \"net-bridge\" ];\n"
	                           "plugin = { net-bridge = { managed = { name = \"cvmmbr9\";\n"
	                           "  bogus = 1; }; }; };\n",
	                      ":4: plugin.net-bridge.managed.bogus: unknown key (net-bridge reads: ");
	/* A plugin that reads nothing knows no key. */
	EXPECT_REFUSED(PDIR "plugin = { net-user = {\n x = 1; }; };\n",
	               ":3: plugin.net-user.x: unknown key (net-user reads: no settings)");
	EXPECT_REFUSED(PDIR "plugins = [ \"backend-qemu\" ];\nplugin = {\n net-user = { };\n};\n",
	               ":4: plugin.net-user: no plugin \"net-user\" in plugins (add it there, or "
	               "remove this section)");
}

/* ---- what only the loaded set can tell --------------------------------- */

static void test_backend_and_plugin_dir(void)
{
	char text[512];
	struct stat st;

	EXPECT_REFUSED(PDIR "cvm = {\n backend = \"nonexistent\"; };\n",
	               ":3: cvm.backend: no loaded plugin provides backend \"nonexistent\" (loaded "
	               "backends: qemu; add its plugin to plugins)");
	EXPECT_REFUSED(PDIR "plugins = [ \"net-user\" ];\n",
	               ": cvm.backend: not set, and no loaded plugin provides the default backend "
	               "\"qemu\" (loaded backends: none)");
	EXPECT_REFUSED("plugin_dir = \"/nonexistent/cvmm-plugins\";\n",
	               ":1: plugin_dir: \"/nonexistent/cvmm-plugins\" is not a directory of "
	               "plugins: No such file or directory");
	snprintf(text, sizeof(text), "plugin_dir = \"%s\";\n", tmpdir);
	EXPECT_REFUSED_PREFIX(text, ": plugins: not set, and the default plugin \"backend-qemu\" "
	                            "is not in plugin_dir");
	EXPECT_REFUSED_PREFIX(PDIR "plugins = [ \"backend-qemu\",\n \"net-usr\" ];\n",
	                      ":3: plugins[1]: no plugin \"net-usr\" in plugin_dir ");
	/* Unset, plugin_dir is the install location: refused where it is absent. */
	if (stat("/usr/local/lib/cvmm/plugins", &st) < 0)
		EXPECT_REFUSED_PREFIX("log_level = \"info\";\n",
		                      ": plugin_dir: not set, and the default \"");
}

static void test_plugin_owned_sections(void)
{
	EXPECT_REFUSED(PDIR "cvm = {\n  gpu = { enabled = false; listing = [ \"10de:2335\" ]; };\n};\n",
	               ":3: cvm.gpu: no loaded plugin handles cvm.gpu (add \"gpu-vfio\" to plugins, "
	               "if this host has it)");
	EXPECT_REFUSED(PDIR "kms = { urls = [ \"http://127.0.0.1:8081\" ]; };\n",
	               ":2: kms: no loaded plugin handles kms (add \"kms\" to plugins, if this "
	               "host has it)");
}

/* ---- cvm.networking: mode is the core's, the rest net-user's ------------ */

static void test_networking(void)
{
	/* net alone: net-user derives the DHCP start inside it (.15). */
	EXPECT_OK_TEXT(PDIR "cvm = { networking = { net = \"192.168.50.0/24\"; }; };\n");
	EXPECT_REFUSED(PDIR "cvm = { networking = {\n net = \"192.168.50.0/24\";\n"
	                    " dhcp_start = \"10.0.2.15\"; }; };\n",
	               ":4: cvm.networking.dhcp_start: must be a host address inside "
	               "cvm.networking.net 192.168.50.0/24, got \"10.0.2.15\"");
	EXPECT_REFUSED(PDIR "cvm = { networking = {\n dhcp_start = \"10.0.2\"; }; };\n",
	               ":3: cvm.networking.dhcp_start: must be an IPv4 address, got \"10.0.2\"");
	EXPECT_REFUSED(PDIR "cvm = { networking = {\n net = \"10.0.2.1/24\"; }; };\n",
	               ":3: cvm.networking.net: must be an IPv4 network a.b.c.d/n with n from 8 to "
	               "30 and no host bits, got \"10.0.2.1/24\"");
	EXPECT_REFUSED(PDIR "cvm = { networking = {\n net = \"10.9.0.0/29\"; }; };\n",
	               ":3: cvm.networking.net: 10.9.0.0/29 is too small for the default dhcp_start "
	               "(network + 15); set cvm.networking.dhcp_start");
	EXPECT_OK_TEXT(PDIR "cvm = { networking = { net = \"10.9.0.0/29\"; dhcp_start = "
	                    "\"10.9.0.5\"; restrict = true; }; };\n");
	EXPECT_REFUSED(PDIR "cvm = { networking = {\n restrict = 0; }; };\n",
	               ":3: cvm.networking.restrict: must be true or false");
	EXPECT_REFUSED(PDIR "cvm = { networking = {\n dhcp = \"10.0.2.15\"; }; };\n",
	               ":3: cvm.networking.dhcp: unknown key (the loaded plugins read: net, "
	               "dhcp_start, restrict, mode)");
	/* Without net-user nobody would read them. */
	EXPECT_REFUSED(PDIR "plugins = [ \"backend-qemu\" ];\ncvm = { networking = {\n"
	                    " net = \"192.168.50.0/24\"; }; };\n",
	               ":4: cvm.networking.net: belongs to network mode \"user\", whose plugin "
	               "net-user is not in plugins");
	EXPECT_REFUSED(PDIR "cvm = { networking = {\n mode = \"passt\"; }; };\n",
	               ":3: cvm.networking.mode: no loaded plugin provides network mode \"passt\" "
	               "(loaded modes: user; add its plugin to plugins)");
}

/* ---- nothing on the host is touched; the shipped configs pass ----------- */

static void test_reads_only(void)
{
	char text[1024], run[300], data[300];
	struct stat st;

	snprintf(run, sizeof(run), "%s/run", tmpdir);
	snprintf(data, sizeof(data), "%s/data", tmpdir);
	snprintf(text, sizeof(text),
	         PDIR "run_path = \"%s\";\ndata_dir = \"%s\";\n"
	              "plugins = [ \"backend-qemu\", \"net-user\", \"net-bridge\" ];\n"
	              "plugin = { net-bridge = { managed = { name = \"cvmmbrchk\"; }; }; };\n",
	         run, data);
	EXPECT_OK_TEXT(text);
	CU_ASSERT(stat(run, &st) < 0 && errno == ENOENT);
	CU_ASSERT(stat(data, &st) < 0 && errno == ENOENT);
	/* net-bridge's daemon-start work (the bridge) did not run either. */
	CU_ASSERT(stat("/sys/class/net/cvmmbrchk", &st) < 0);
}

/* The example with its plugin_dir pointed at this build's plugins. */
static void check_example(const char *name, int line)
{
	char src[512], dst[512], buf[512];
	snprintf(src, sizeof(src), CVMM_SOURCE_DIR "/conf/%s", name);
	snprintf(dst, sizeof(dst), "%s/%s", tmpdir, name);
	FILE *in = fopen(src, "r"), *out = fopen(dst, "w");
	check_at(in && out, line, "copy the example");
	if (!in || !out) {
		if (in)
			fclose(in);
		if (out)
			fclose(out);
		return;
	}
	while (fgets(buf, sizeof(buf), in)) {
		const char *p = buf + strspn(buf, "# ");
		if (!strncmp(p, "plugin_dir", 10))
			fputs(PDIR, out);
		else
			fputs(buf, out);
	}
	fclose(in);
	fclose(out);
	expect_ok_(dst, line);
}

static void test_examples(void)
{
	check_example("cvmm.conf", __LINE__);
	check_example("cvmm-production.conf", __LINE__);
}

int main(void)
{
	static const struct unit_test tests[] = {
	    {"plugins check their types and values", test_plugin_types},
	    {"keys no plugin reads are refused", test_unknown_keys},
	    {"backend, plugin_dir and plugin files", test_backend_and_plugin_dir},
	    {"plugin-owned sections need their plugin", test_plugin_owned_sections},
	    {"cvm.networking belongs to net-user", test_networking},
	    {"check-config creates nothing", test_reads_only},
	    {"the shipped examples pass", test_examples},
	};
	int failed;

	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(conf_path, sizeof(conf_path), "%s/c.conf", tmpdir);
	if (unit_suite("check_config", NULL, NULL, tests, sizeof(tests) / sizeof(tests[0])) < 0)
		return 1;
	failed = unit_run();
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
	return failed ? 1 : 0;
}
