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
#include "golden.h"
#include "unit.h"

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

static int regenerate;
static char **fixtures; /* names, without ".json" */
static size_t n_fixtures;

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
			golden_cat(why,
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
	if (read_file(spec_path, &text, NULL, GOLDEN_MAX_BYTES) < 0) {
		golden_cat(why, "%s: unreadable\n", spec_path);
		return NULL;
	}
	enum json_tokener_error jerr;
	json_object *j = json_tokener_parse_verbose(text, &jerr);
	free(text);
	text = NULL;
	if (!j) {
		golden_cat(why, "%s: not valid JSON: %s\n", spec_path, json_tokener_error_desc(jerr));
		return NULL;
	}
	struct cvmm_spec *s = NULL;
	if (spec_from_json(j, &s, err, sizeof(err)) < 0) {
		*is_err = 1;
		golden_cat(&text, "%s\n", err[0] ? err : "(spec_from_json failed without a message)");
	} else if (lv_render(&s->pub, &o, &text, err, sizeof(err)) < 0) {
		*is_err = 1;
		golden_cat(&text, "%s\n", err[0] ? err : "(lv_render failed without a message)");
	} else {
		*is_err = 0;
	}
	spec_free(s);
	json_object_put(j);
	return text;
}

/* The first differing line, with its neighbours, as a short report. */
static void first_difference(const char *path, const char *want, const char *got, char **report)
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
	(void)path; /* the caller names it */
	golden_cat(report, "  first difference at line %d:\n  - %.*s\n  + %.*s\n", line,
	           (int)strcspn(la, "\n"), la, (int)strcspn(lb, "\n"), lb);
}

/* Compares (or, when regen, rewrites) the expected output of fixture name. */
static int run_case(const char *spec_dir, const char *xml_dir, const char *name, int regen,
                    char **report)
{
	_cleanup_free_ char *spec_path = xasprintf("%s/%s.json", spec_dir, name);
	int is_err = 0;
	_cleanup_free_ char *got = render_fixture(spec_path, name, &is_err, report);
	if (!got)
		return -1;
	return golden_check(xml_dir, "xml", "XML", name, got, is_err, regen, first_difference,
	                    report);
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

UNIT_CASE_THUNKS(fixture_test)

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
		golden_cat(report, "cannot run %s\n", tool);
		return -1;
	}
	char line[512], *out = NULL;
	while (fgets(line, sizeof(line), p))
		golden_cat(&out, "    %s", line);
	int st = pclose(p);
	int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
	if (!ok)
		golden_cat(report, "  %s does not validate:\n%s", path, out ? out : "    (no output)\n");
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
	golden_no_orphans(SPEC_DIR, XML_DIR, "xml");
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

int main(void)
{
	regenerate = golden_regenerate();
	if (!(fixtures = golden_fixtures(SPEC_DIR, &n_fixtures)))
		return 1;
	if (!golden_suite("libvirt_xml", fixtures, n_fixtures, unit_thunks,
	                  ARRAY_SIZE(unit_thunks)))
		return 1;
	CU_pSuite more = CU_add_suite("libvirt_xml_rules", NULL, NULL);
	int ok = more != NULL;
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
	int failed = unit_run();
	golden_free(fixtures, n_fixtures);
	return failed ? 1 : 0;
}
