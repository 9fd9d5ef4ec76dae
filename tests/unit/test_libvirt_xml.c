/*
 * Golden-file tests of the libvirt domain XML renderer
 * (plugins/backend-libvirt/render_xml.c), the twin of test_qemu_argv: every
 * tests/fixtures/spec/NAME.json is read with spec_from_json, rendered with
 * lv_render, and compared with tests/fixtures/libvirt-xml/NAME.xml or, for
 * a spec that must be refused, NAME.err (the message and a newline). Render
 * options come from the name (+vsock, +kvm; see tests/fixtures/libvirt-xml/README.md).
 * CVMM_REGENERATE=1 rewrites the expected files instead; review with git diff.
 *
 * Every golden .xml must also pass `virt-xml-validate FILE domain` (libvirt's
 * own RelaxNG schema); that test is skipped, saying so, without the tool.
 * Also: escaping of hostile values, the metadata ownership rule, the domain
 * name rule, and a NIC with 200 forwards.
 */
#include "render_xml.h"
#include "spec.h"
#include "util.h"

#include <CUnit/Basic.h>
#include <errno.h>
#include <glob.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CVMM_SOURCE_DIR
#define CVMM_SOURCE_DIR "."
#endif
#define SPEC_DIR CVMM_SOURCE_DIR "/tests/fixtures/spec"
#define XML_DIR CVMM_SOURCE_DIR "/tests/fixtures/libvirt-xml"
#define MAX_FIXTURE_BYTES (1 << 20)

static int regenerate;
static char **fixtures; /* names, without ".json" */
static size_t n_fixtures;

static void cat(char **s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cat(char **s, const char *fmt, ...)
{
	char *add;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&add, fmt, ap) < 0)
		abort();
	va_end(ap);
	char *n = xasprintf("%s%s", *s ? *s : "", add);
	free(add);
	free(*s);
	*s = n;
}

static int exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static int contains(const char *hay, const char *needle)
{
	return hay && strstr(hay, needle) != NULL;
}

static const struct lv_opts base_opts = {
    .type = "qemu", .emulator = "", .name_prefix = "cvmm-", .dac_label = "+0:+0", .vsock = 0};

/* The render options a fixture name asks for: NAME[+TOKEN...]. */
static int opts_for(const char *name, struct lv_opts *o, char **why)
{
	*o = base_opts;
	const char *p = strchr(name, '+');
	while (p) {
		const char *tok = p + 1, *next = strchr(tok, '+');
		size_t len = next ? (size_t)(next - tok) : strlen(tok);
		if (len == 5 && !strncmp(tok, "vsock", len))
			o->vsock = 1;
		else if (len == 3 && !strncmp(tok, "kvm", len))
			o->type = "kvm";
		else {
			cat(why,
			    "%s: unknown option '+%.*s' in the fixture name (known: +vsock, "
			    "+kvm)\n",
			    name, (int)len, tok);
			return -1;
		}
		p = next;
	}
	return 0;
}

/* The text a fixture renders to (*is_err: the refusal message instead).
 * NULL, with why, when the fixture itself is broken. */
static char *render_fixture(const char *spec_path, const char *name, int *is_err, char **why)
{
	struct lv_opts o;
	if (opts_for(name, &o, why) < 0)
		return NULL;
	char *text = NULL, err[1024] = "";
	if (read_file(spec_path, &text, NULL, MAX_FIXTURE_BYTES) < 0) {
		cat(why, "%s: unreadable\n", spec_path);
		return NULL;
	}
	enum json_tokener_error jerr;
	json_object *j = json_tokener_parse_verbose(text, &jerr);
	free(text);
	text = NULL;
	if (!j) {
		cat(why, "%s: not valid JSON: %s\n", spec_path, json_tokener_error_desc(jerr));
		return NULL;
	}
	struct cvmm_spec *s = NULL;
	if (spec_from_json(j, &s, err, sizeof(err)) < 0) {
		*is_err = 1;
		cat(&text, "%s\n", err[0] ? err : "(spec_from_json failed without a message)");
	} else if (lv_render(&s->pub, &o, &text, err, sizeof(err)) < 0) {
		*is_err = 1;
		cat(&text, "%s\n", err[0] ? err : "(lv_render failed without a message)");
	} else {
		*is_err = 0;
	}
	spec_free(s);
	json_object_put(j);
	return text;
}

/* The first differing line, with its neighbours, as a short report. */
static void first_difference(const char *want, const char *got, char **report)
{
	int line = 1;
	const char *a = want, *b = got;
	while (*a && *a == *b) {
		if (*a == '\n')
			line++;
		a++, b++;
	}
	const char *la = a, *lb = b;
	while (la > want && la[-1] != '\n')
		la--;
	while (lb > got && lb[-1] != '\n')
		lb--;
	cat(report, "  first difference at line %d:\n  - %.*s\n  + %.*s\n", line,
	    (int)strcspn(la, "\n"), la, (int)strcspn(lb, "\n"), lb);
}

/* Compares (or, when regen, rewrites) the expected output of fixture name. */
static int run_case(const char *spec_dir, const char *xml_dir, const char *name, int regen,
                    char **report)
{
	_cleanup_free_ char *spec_path = xasprintf("%s/%s.json", spec_dir, name);
	_cleanup_free_ char *xml_path = xasprintf("%s/%s.xml", xml_dir, name);
	_cleanup_free_ char *err_path = xasprintf("%s/%s.err", xml_dir, name);
	int is_err = 0, rc = -1;
	char *want = NULL, *got = render_fixture(spec_path, name, &is_err, report);
	if (!got)
		return -1;
	const char *out_path = is_err ? err_path : xml_path;
	const char *other_path = is_err ? xml_path : err_path;
	if (regen) {
		char *old = NULL;
		if (read_file(out_path, &old, NULL, MAX_FIXTURE_BYTES) < 0 || strcmp(old, got)) {
			int r = write_file_atomic(out_path, got, strlen(got), 0644);
			if (r < 0) {
				cat(report, "%s: cannot write: %s\n", out_path, strerror(-r));
				free(old);
				goto out;
			}
			cat(report, "regenerated %s\n", out_path);
		}
		free(old);
		if (unlink(other_path) == 0)
			cat(report, "removed stale %s\n", other_path);
		rc = 0;
		goto out;
	}
	int have_xml = exists(xml_path), have_err = exists(err_path);
	if (have_xml && have_err) {
		cat(report, "%s: both %s.xml and %s.err exist; keep one\n", name, name, name);
		goto out;
	}
	if (!have_xml && !have_err) {
		cat(report,
		    "%s: no expected output: neither %s nor %s exists; run with CVMM_REGENERATE=1 "
		    "and review the new file\n",
		    name, xml_path, err_path);
		goto out;
	}
	if (have_err != is_err) {
		cat(report,
		    is_err ? "%s: expected the XML in %s, but the spec was refused: %s"
		           : "%s: expected the error in %s, but the spec rendered:\n%s",
		    name, is_err ? xml_path : err_path, got);
		goto out;
	}
	if (read_file(out_path, &want, NULL, MAX_FIXTURE_BYTES) < 0) {
		cat(report, "%s: unreadable\n", out_path);
		goto out;
	}
	if (strcmp(want, got)) {
		cat(report, "%s: rendered output differs from %s (CVMM_REGENERATE=1 accepts it)\n",
		    name, out_path);
		first_difference(want, got, report);
		goto out;
	}
	rc = 0;
out:
	free(got);
	free(want);
	return rc;
}

static void fixture_test(size_t k)
{
	CU_ASSERT_FATAL(k < n_fixtures);
	char *report = NULL;
	int r = run_case(SPEC_DIR, XML_DIR, fixtures[k], regenerate, &report);
	if (r < 0 || report)
		printf("\n%s", report ? report : "(no report)\n");
	CU_ASSERT_EQUAL(r, 0);
	free(report);
}

#define THUNK(a, b)                                                                                \
	static void fixture_##a##b(void)                                                           \
	{                                                                                          \
		fixture_test(a * 10 + b);                                                          \
	}
#define THUNK_ROW(a)                                                                               \
	THUNK(a, 0)                                                                                \
	THUNK(a, 1)                                                                                \
	THUNK(a, 2)                                                                                \
	THUNK(a, 3) THUNK(a, 4) THUNK(a, 5) THUNK(a, 6) THUNK(a, 7) THUNK(a, 8) THUNK(a, 9)
THUNK_ROW(0)
THUNK_ROW(1)
THUNK_ROW(2)
THUNK_ROW(3)
THUNK_ROW(4)
THUNK_ROW(5)
THUNK_ROW(6)
THUNK_ROW(7)
THUNK_ROW(8)
THUNK_ROW(9)
#define THUNK_ENTRIES(a)                                                                           \
	fixture_##a##0, fixture_##a##1, fixture_##a##2, fixture_##a##3, fixture_##a##4,            \
	    fixture_##a##5, fixture_##a##6, fixture_##a##7, fixture_##a##8, fixture_##a##9
static const CU_TestFunc thunks[] = {
    THUNK_ENTRIES(0), THUNK_ENTRIES(1), THUNK_ENTRIES(2), THUNK_ENTRIES(3), THUNK_ENTRIES(4),
    THUNK_ENTRIES(5), THUNK_ENTRIES(6), THUNK_ENTRIES(7), THUNK_ENTRIES(8), THUNK_ENTRIES(9)};

/* ---- virt-xml-validate -------------------------------------------------- */

static int in_dirs(const char *tool, char *path, size_t len)
{
	static const char *const dirs[] = {"/usr/bin", "/usr/local/bin", "/bin"};
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		snprintf(path, len, "%s/%s", dirs[i], tool);
		if (access(path, X_OK) == 0)
			return 1;
	}
	return 0;
}

/* virt-xml-validate (libvirt-clients), which runs xmllint (libxml2-utils). */
static const char *validator(void)
{
	static char path[64];
	char xmllint[64];
	return in_dirs("virt-xml-validate", path, sizeof(path)) &&
	               in_dirs("xmllint", xmllint, sizeof(xmllint))
	           ? path
	           : NULL;
}

/* Runs virt-xml-validate on path as a domain; 0 if valid, else its output. */
static int validate(const char *tool, const char *path, char **report)
{
	_cleanup_free_ char *cmd = xasprintf("'%s' '%s' domain 2>&1", tool, path);
	FILE *p = popen(cmd, "r");
	if (!p) {
		cat(report, "cannot run %s\n", tool);
		return -1;
	}
	char line[512], *out = NULL;
	while (fgets(line, sizeof(line), p))
		cat(&out, "    %s", line);
	int st = pclose(p);
	int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
	if (!ok)
		cat(report, "  %s does not validate:\n%s", path, out ? out : "    (no output)\n");
	free(out);
	return ok ? 0 : -1;
}

/* The <launchSecurity type='...'> of a golden file, or NULL. */
static const char *launch_security_type(const char *path)
{
	static char t[32];
	char line[512];
	FILE *f = fopen(path, "r");
	const char *found = NULL;
	while (f && !found && fgets(line, sizeof(line), f))
		if (sscanf(line, " <launchSecurity type='%31[^']'", t) == 1)
			found = t;
	if (f)
		fclose(f);
	return found;
}

/* Whether the installed libvirt's domain schema lists a launchSecurity
 * type (<value>sev</value>, ...). */
static int schema_knows(const char *type)
{
	char line[512], want[64];
	int known = 0;
	snprintf(want, sizeof(want), "<value>%s</value>", type);
	FILE *f = fopen("/usr/share/libvirt/schemas/domaincommon.rng", "r");
	while (f && !known && fgets(line, sizeof(line), f))
		known = strstr(line, want) != NULL;
	if (f)
		fclose(f);
	return known;
}

static void test_validate_goldens(void)
{
	const char *tool = validator();
	/* A test that cannot run fails: install-deps.sh installs both. */
	if (!tool)
		fprintf(stderr, "\n  virt-xml-validate or xmllint not found (packages "
		                "libvirt-clients, libxml2-utils)\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(tool);
	glob_t g;
	int r = glob(XML_DIR "/*.xml", 0, NULL, &g);
	CU_ASSERT_EQUAL_FATAL(r, 0);
	CU_ASSERT(g.gl_pathc > 0);
	for (size_t i = 0; i < g.gl_pathc; i++) {
		char *report = NULL;
		const char *lt = launch_security_type(g.gl_pathv[i]);
		if (lt && !schema_knows(lt)) {
			/* A type newer than this libvirt (9.0 knows sev only):
			 * its schema must refuse it, as its daemon would. */
			CU_ASSERT_NOT_EQUAL(validate(tool, g.gl_pathv[i], &report), 0);
			printf("\n  %s: launchSecurity type '%s' unknown to this libvirt's schema, "
			       "refused as expected",
			       g.gl_pathv[i], lt);
			free(report);
			continue;
		}
		CU_ASSERT_EQUAL(validate(tool, g.gl_pathv[i], &report), 0);
		if (report)
			printf("\n%s", report);
		free(report);
	}
	globfree(&g);
}

/* Every expected file belongs to a fixture (no leftovers after a rename). */
static void test_no_orphans(void)
{
	static const char *const pats[] = {XML_DIR "/*.xml", XML_DIR "/*.err"};
	for (size_t p = 0; p < ARRAY_SIZE(pats); p++) {
		glob_t g;
		if (glob(pats[p], 0, NULL, &g) != 0)
			continue;
		for (size_t i = 0; i < g.gl_pathc; i++) {
			const char *base = strrchr(g.gl_pathv[i], '/') + 1;
			const char *dot = strrchr(base, '.');
			_cleanup_free_ char *spec =
			    xasprintf(SPEC_DIR "/%.*s.json", (int)(dot - base), base);
			if (!exists(spec))
				printf("\n  %s has no fixture %s", g.gl_pathv[i], spec);
			CU_ASSERT(exists(spec));
		}
		globfree(&g);
	}
}

/* ---- targeted cases ----------------------------------------------------- */

static struct cvmm_spec *kernel_spec(const char *name)
{
	struct cvmm_spec *s = spec_new();
	str_copy(s->pub.name, sizeof(s->pub.name), name);
	str_copy(s->pub.uuid, sizeof(s->pub.uuid), "5f0c2a1e-8d3b-4c6e-9a7f-1b2c3d4e5f60");
	str_copy(s->pub.kernel, sizeof(s->pub.kernel), "/k");
	return s;
}

/* What XML gives special meaning to is escaped, wherever it comes from,
 * and the result is still a valid domain. */
static void test_escaping(void)
{
	struct cvmm_spec *s = kernel_spec("a<b>&'c\"d");
	str_copy(s->pub.cmdline, sizeof(s->pub.cmdline), "x='1' y=\"<2>\" & z");
	str_copy(s->pub.serial_log, sizeof(s->pub.serial_log), "/tmp/it's <here>&.log");
	struct cvmm_spec_disk disk = {.struct_size = sizeof(disk),
	                              .format = CVMM_DISK_RAW,
	                              .id = "hd0",
	                              .path = "/d/a'b&c.img"};
	CU_ASSERT_EQUAL_FATAL(spec_add_disk(s, &disk), 0);
	struct cvmm_spec_nic nic = {.struct_size = sizeof(nic),
	                            .kind = CVMM_NIC_STREAM,
	                            .id = "net0",
	                            .socket = "/run/x,y'z&<w>.sock"};
	CU_ASSERT_EQUAL_FATAL(spec_add_nic(s, &nic), 0);
	CU_ASSERT_EQUAL_FATAL(spec_add_arg(s, "libvirt", "-set'<&>"), 0);
	char *xml = NULL, err[512] = "";
	CU_ASSERT_EQUAL_FATAL(lv_render(&s->pub, &base_opts, &xml, err, sizeof(err)), 0);
	CU_ASSERT(contains(xml, "<name>cvmm-a&lt;b&gt;&amp;&apos;c\"d</name>"));
	CU_ASSERT(contains(xml, "name='a&lt;b&gt;&amp;&apos;c\"d'"));
	CU_ASSERT(contains(xml, "<cmdline>x=&apos;1&apos; y=\"&lt;2&gt;\" &amp; z</cmdline>"));
	CU_ASSERT(
	    contains(xml, "<source path='/tmp/it&apos;s &lt;here&gt;&amp;.log' append='on'/>"));
	CU_ASSERT(contains(xml, "<source file='/d/a&apos;b&amp;c.img'/>"));
	/* QEMU escaping first (',' doubled), then XML escaping. */
	CU_ASSERT(contains(xml, "addr.path=/run/x,,y&apos;z&amp;&lt;w&gt;.sock'/>"));
	CU_ASSERT(contains(xml, "<qemu:arg value='-set&apos;&lt;&amp;&gt;'/>"));
	const char *tool = validator();
	if (tool) {
		char path[] = "/tmp/cvmm-test-lvxml.XXXXXX";
		int fd = mkstemp(path);
		CU_ASSERT_FATAL(fd >= 0);
		CU_ASSERT_EQUAL(write(fd, xml, strlen(xml)), (ssize_t)strlen(xml));
		close(fd);
		char *report = NULL;
		CU_ASSERT_EQUAL(validate(tool, path, &report), 0);
		if (report)
			printf("\n%s", report);
		free(report);
		unlink(path);
	}
	free(xml);
	spec_free(s);
}

/* What libvirt's domain capabilities allow: this host's libvirt 9.0 (no
 * KVM: <sev supported='no'/>, nothing of TDX or SEV-SNP), a SEV host, and a
 * newer libvirt listing launchSecurity sectypes. */
static void test_domcaps_cc(void)
{
	static const char lv90[] =
	    "<domainCapabilities><path>/usr/bin/qemu-system-x86_64</path><domain>qemu</domain>"
	    "<features>\n    <gic supported='no'/>\n    <vmcoreinfo supported='yes'/>\n"
	    "    <sev supported='no'/>\n    <sgx supported='no'/>\n"
	    "    <hyperv supported='yes'>\n      <enum name='features'>\n"
	    "        <value>spinlocks</value>\n      </enum>\n    </hyperv>\n  </features>"
	    "</domainCapabilities>";
	static const char sev[] = "<domainCapabilities><features><sev supported='yes'>"
				  "<cbitpos>47</cbitpos></sev><sgx supported='no'/></features>"
				  "</domainCapabilities>";
	static const char newer[] =
	    "<domainCapabilities><features><sev supported='yes'/>"
	    "<launchSecurity supported='yes'><enum name='sectype'><value>sev</value>"
	    "<value>sev-snp</value></enum></launchSecurity><tdx supported=\"no\"/>"
	    "</features></domainCapabilities>";
	char why[512];
	CU_ASSERT_EQUAL(lv_domcaps_cc(lv90, "sev", why, sizeof(why)), 0);
	CU_ASSERT(contains(why, "<sev supported='no'/>"));
	CU_ASSERT_EQUAL(lv_domcaps_cc(lv90, "sev-snp", why, sizeof(why)), 0);
	CU_ASSERT(contains(why, "no <sev-snp> feature"));
	CU_ASSERT_EQUAL(lv_domcaps_cc(lv90, "tdx", why, sizeof(why)), 0);
	CU_ASSERT(contains(why, "does not know tdx guests"));
	CU_ASSERT_EQUAL(lv_domcaps_cc(sev, "sev", why, sizeof(why)), 1);
	CU_ASSERT_EQUAL(lv_domcaps_cc(sev, "sev-snp", why, sizeof(why)), 0);
	CU_ASSERT_EQUAL(lv_domcaps_cc(newer, "sev-snp", why, sizeof(why)), 1);
	CU_ASSERT_EQUAL(lv_domcaps_cc(newer, "sev", why, sizeof(why)), 1);
	CU_ASSERT_EQUAL(lv_domcaps_cc(newer, "tdx", why, sizeof(why)), 0);
	CU_ASSERT(contains(why, "<tdx supported='no'/>"));
	CU_ASSERT_EQUAL(lv_domcaps_cc("<domainCapabilities/>", "sev", why, sizeof(why)), 0);
	CU_ASSERT(contains(why, "no <features>"));
	CU_ASSERT_EQUAL(lv_domcaps_cc(NULL, "sev", why, sizeof(why)), 0);
}

static void test_refusals(void)
{
	char *xml = NULL, err[512] = "";
	struct cvmm_spec *s = kernel_spec("a/b");
	CU_ASSERT_EQUAL(lv_render(&s->pub, &base_opts, &xml, err, sizeof(err)), -EINVAL);
	CU_ASSERT(contains(err, "may not contain '/'"));
	CU_ASSERT_PTR_NULL(xml);
	spec_free(s);
	s = kernel_spec("ok");
	str_copy(s->pub.cmdline, sizeof(s->pub.cmdline), "a\001b");
	CU_ASSERT_EQUAL(lv_render(&s->pub, &base_opts, &xml, err, sizeof(err)), -EINVAL);
	CU_ASSERT(contains(err, "cmdline") && contains(err, "control character"));
	spec_free(s);
	s = kernel_spec("ok");
	struct cvmm_spec_nic nic = {.struct_size = sizeof(nic), .kind = CVMM_NIC_TAP, .id = "net0"};
	CU_ASSERT_EQUAL_FATAL(spec_add_nic(s, &nic), 0);
	CU_ASSERT_EQUAL(lv_render(&s->pub, &base_opts, &xml, err, sizeof(err)), -EINVAL);
	CU_ASSERT(contains(err, "needs its device name"));
	spec_free(s);
	s = kernel_spec("ok");
	struct lv_opts o = base_opts;
	o.type = "xen";
	CU_ASSERT_EQUAL(lv_render(&s->pub, &o, &xml, err, sizeof(err)), -EINVAL);
	CU_ASSERT(contains(err, "domain type 'xen'"));
	spec_free(s);
}

static void test_metadata_rule(void)
{
	const char *u = "5f0c2a1e-8d3b-4c6e-9a7f-1b2c3d4e5f60";
	/* What virDomainGetMetadata returns (libvirt 9.0), and variants. */
	CU_ASSERT_EQUAL(lv_metadata_is_ours(
	                    "<vm id=\"5f0c2a1e-8d3b-4c6e-9a7f-1b2c3d4e5f60\" name=\"web1\"/>\n", u),
	                1);
	CU_ASSERT_EQUAL(lv_metadata_is_ours("<cvmm:vm xmlns:cvmm='https://cvmm.dev/xmlns/1' "
	                                    "id='5f0c2a1e-8d3b-4c6e-9a7f-1b2c3d4e5f60'/>",
	                                    u),
	                1);
	CU_ASSERT_EQUAL(lv_metadata_is_ours("<vm id=\"00000000-8d3b-4c6e-9a7f-1b2c3d4e5f60\"/>", u),
	                0);
	CU_ASSERT_EQUAL(
	    lv_metadata_is_ours("<vmx id=\"5f0c2a1e-8d3b-4c6e-9a7f-1b2c3d4e5f60\"/>", u), 0);
	CU_ASSERT_EQUAL(
	    lv_metadata_is_ours("<vm><x id=\"5f0c2a1e-8d3b-4c6e-9a7f-1b2c3d4e5f60\"/></vm>", u), 0);
	CU_ASSERT_EQUAL(
	    lv_metadata_is_ours("<vm uuid=\"5f0c2a1e-8d3b-4c6e-9a7f-1b2c3d4e5f60\"/>", u), 0);
	CU_ASSERT_EQUAL(lv_metadata_is_ours(NULL, u), 0);
	CU_ASSERT_EQUAL(lv_metadata_is_ours("<vm id=\"\"/>", ""), 0);
	/* What lv_render writes is ours by that rule. */
	struct cvmm_spec *s = kernel_spec("web1");
	char *xml = NULL, err[256];
	CU_ASSERT_EQUAL_FATAL(lv_render(&s->pub, &base_opts, &xml, err, sizeof(err)), 0);
	char *md = strstr(xml, "<cvmm:vm ");
	CU_ASSERT_PTR_NOT_NULL_FATAL(md);
	CU_ASSERT_EQUAL(lv_metadata_is_ours(md, u), 1);
	free(xml);
	spec_free(s);
}

static void test_domain_name(void)
{
	char out[128];
	lv_domain_name(NULL, "web1", out, sizeof(out));
	CU_ASSERT_STRING_EQUAL(out, "cvmm-web1");
	lv_domain_name("lab-", "web1", out, sizeof(out));
	CU_ASSERT_STRING_EQUAL(out, "lab-web1");
	struct cvmm_spec *s = kernel_spec("web1");
	struct lv_opts o = base_opts;
	o.name_prefix = "lab-";
	char *xml = NULL, err[256];
	CU_ASSERT_EQUAL_FATAL(lv_render(&s->pub, &o, &xml, err, sizeof(err)), 0);
	CU_ASSERT(contains(xml, "<name>lab-web1</name>"));
	CU_ASSERT(contains(xml, "<uuid>5f0c2a1e-8d3b-4c6e-9a7f-1b2c3d4e5f60</uuid>"));
	free(xml);
	spec_free(s);
}

static void test_many_forwards(void)
{
	struct cvmm_spec *s = kernel_spec("many");
	struct cvmm_port_map pm[200];
	const struct cvmm_port_map *pp[200];
	for (int i = 0; i < 200; i++) {
		pm[i] = (struct cvmm_port_map){.struct_size = sizeof(pm[i]),
		                               .protocol = i % 2 ? CVMM_PROTO_UDP : CVMM_PROTO_TCP,
		                               .host_address = "255.255.255.255",
		                               .host_port = 60000 + (uint32_t)i,
		                               .vm_port = 60000 + (uint32_t)i};
		pp[i] = &pm[i];
	}
	struct cvmm_spec_nic nic = {.struct_size = sizeof(nic),
	                            .kind = CVMM_NIC_USER,
	                            .id = "net0",
	                            .n_ports = 200,
	                            .ports = pp};
	CU_ASSERT_EQUAL_FATAL(spec_add_nic(s, &nic), 0);
	char *xml = NULL, err[256] = "";
	CU_ASSERT_EQUAL_FATAL(lv_render(&s->pub, &base_opts, &xml, err, sizeof(err)), 0);
	CU_ASSERT(strlen(xml) > 8000);
	CU_ASSERT(contains(xml, ",hostfwd=tcp:255.255.255.255:60000-:60000,"));
	CU_ASSERT(contains(xml, ",hostfwd=udp:255.255.255.255:60199-:60199'/>"));
	free(xml);
	spec_free(s);
}

static int find_fixtures(void)
{
	glob_t g;
	if (glob(SPEC_DIR "/*.json", 0, NULL, &g) != 0) {
		fprintf(stderr, "no fixtures in %s\n", SPEC_DIR);
		return -1;
	}
	fixtures = xzalloc(sizeof(*fixtures) * (g.gl_pathc + 1));
	for (size_t i = 0; i < g.gl_pathc; i++) {
		const char *base = strrchr(g.gl_pathv[i], '/') + 1;
		fixtures[n_fixtures++] = strndup(base, strlen(base) - strlen(".json"));
	}
	globfree(&g);
	return 0;
}

int main(void)
{
	const char *rg = getenv("CVMM_REGENERATE");
	regenerate = rg && *rg && strcmp(rg, "0");
	if (find_fixtures() < 0)
		return 1;
	if (n_fixtures > ARRAY_SIZE(thunks)) {
		fprintf(stderr, "%zu fixtures, but test_libvirt_xml.c has only %zu test slots\n",
		        n_fixtures, ARRAY_SIZE(thunks));
		return 1;
	}
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite golden = CU_add_suite("libvirt_xml", NULL, NULL);
	CU_pSuite more = CU_add_suite("libvirt_xml_rules", NULL, NULL);
	int ok = golden && more;
	for (size_t k = 0; ok && k < n_fixtures; k++)
		ok = CU_add_test(golden, fixtures[k], thunks[k]) != NULL;
	/* After the golden cases, so that a regenerating run validates the new files. */
	ok =
	    ok &&
	    CU_add_test(more, "every golden XML passes virt-xml-validate", test_validate_goldens) &&
	    CU_add_test(more, "every expected file has a fixture", test_no_orphans) &&
	    CU_add_test(more, "XML and QEMU escaping of hostile values", test_escaping) &&
	    CU_add_test(more, "what cannot be rendered is refused", test_refusals) &&
	    CU_add_test(more, "confidential types libvirt's domain capabilities allow",
			test_domcaps_cc) &&
	    CU_add_test(more, "metadata ownership rule", test_metadata_rule) &&
	    CU_add_test(more, "domain name rule", test_domain_name) &&
	    CU_add_test(more, "200 port forwards on one NIC", test_many_forwards);
	if (!ok) {
		CU_cleanup_registry();
		return 1;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	for (size_t k = 0; k < n_fixtures; k++)
		free(fixtures[k]);
	free(fixtures);
	return failed ? 1 : 0;
}
