/*
 * Golden-file tests of the QEMU argv renderer (plugins/backend-qemu/render.c),
 * in the style of libvirt's qemuxml2argvtest: every tests/fixtures/spec/NAME.json
 * is read with spec_from_json, rendered with qemu_render, and compared with
 * tests/fixtures/qemu-argv/NAME.args (one argument per line) or, for a spec
 * that must be refused, NAME.err (the error message). The render options come
 * from NAME (see tests/fixtures/README.md). With CVMM_REGENERATE=1 the expected
 * files are (re)written instead; review them with `git diff`.
 * Also: the harness itself (a missing or stale expected file fails), expected
 * files without a fixture, fixture keys spec_from_json does not read, and the
 * JSON round trip spec_from_json -> spec_to_json -> spec_from_json.
 */
#include "render.h"
#include "spec.h"
#include "util.h"
#include "golden.h"
#include "unit.h"

#include <CUnit/Basic.h>
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef CVMM_SOURCE_DIR
#define CVMM_SOURCE_DIR "."
#endif
#define SPEC_DIR CVMM_SOURCE_DIR "/tests/fixtures/spec"
#define ARGV_DIR CVMM_SOURCE_DIR "/tests/fixtures/qemu-argv"

static int regenerate;
static char **fixtures; /* names, without ".json" */
static size_t n_fixtures;

/* ---- small helpers ------------------------------------------------------ */

/* ---- rendering a fixture ------------------------------------------------ */

/* The render options a fixture name asks for: NAME[+TOKEN...]. */
static int opts_for(const char *name, struct qemu_opts *o, char **why)
{
	*o = (struct qemu_opts){
	    .binary = "qemu-system-x86_64", .accel = "tcg", .vsock = 0, .sandbox = 1};
	const char *p = strchr(name, '+');
	while (p) {
		const char *tok = p + 1, *next = strchr(tok, '+');
		size_t len = next ? (size_t)(next - tok) : strlen(tok);
		if (len == 5 && !strncmp(tok, "vsock", len))
			o->vsock = 1;
		else if (len == 3 && !strncmp(tok, "kvm", len))
			o->accel = "kvm";
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

/* Reads a fixture file as JSON; NULL (and why) if it is not. */
static json_object *load_json(const char *path, char **why)
{
	char *text = NULL;
	int r = read_file(path, &text, NULL, GOLDEN_MAX_BYTES);
	if (r < 0) {
		golden_cat(why, "%s: %s\n", path, strerror(-r));
		return NULL;
	}
	enum json_tokener_error jerr;
	json_object *o = json_tokener_parse_verbose(text, &jerr);
	free(text);
	if (!o)
		golden_cat(why, "%s: not valid JSON: %s\n", path, json_tokener_error_desc(jerr));
	return o;
}

/* The text a spec renders to: one argument per line, or the error message
 * (then *is_err = 1). Returns NULL (and why) if the fixture itself is broken. */
static char *render_text(const struct cvmm_launch_spec *spec, const struct qemu_opts *o,
                         int *is_err, char **why)
{
	struct argv a = {0};
	char err[1024] = "";
	char *text = NULL;
	if (qemu_render(spec, o, &a, err, sizeof(err)) < 0) {
		*is_err = 1;
		golden_cat(&text, "%s\n", err[0] ? err : "(qemu_render failed without a message)");
		argv_free(&a);
		return text;
	}
	*is_err = 0;
	text = xzalloc(1);
	for (int i = 0; i < a.n; i++) {
		if (strchr(a.v[i], '\n')) {
			golden_cat(why, "argument %d contains a newline: a .args file cannot hold it\n",
			    i);
			free(text);
			text = NULL;
			break;
		}
		golden_cat(&text, "%s\n", a.v[i]);
	}
	argv_free(&a);
	return text;
}

/* Renders fixture file spec_path under the options of name. */
static char *render_fixture(const char *spec_path, const char *name, int *is_err, char **why)
{
	struct qemu_opts o;
	if (opts_for(name, &o, why) < 0)
		return NULL;
	json_object *j = load_json(spec_path, why);
	if (!j)
		return NULL;
	struct cvmm_spec *s = NULL;
	char err[1024] = "";
	char *text = NULL;
	if (spec_from_json(j, &s, err, sizeof(err)) < 0) {
		*is_err = 1;
		golden_cat(&text, "%s\n", err[0] ? err : "(spec_from_json failed without a message)");
	} else {
		text = render_text(&s->pub, &o, is_err, why);
	}
	spec_free(s);
	json_object_put(j);
	return text;
}

/* ---- a unified-diff-like report ----------------------------------------- */

struct lines {
	char **v;
	int n;
};

static struct lines split_lines(const char *text)
{
	struct lines l = {0};
	const char *p = text;
	while (*p) {
		const char *e = strchr(p, '\n');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		l.v = realloc(l.v, sizeof(*l.v) * (size_t)(l.n + 1));
		if (!l.v)
			abort();
		l.v[l.n++] = strndup(p, len);
		p += len + (e ? 1 : 0);
	}
	return l;
}

static void free_lines(struct lines *l)
{
	for (int i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

struct op {
	char t; /* ' ', '-' or '+' */
	int ai; /* line index in a at this op */
	int bi; /* line index in b at this op */
	const char *s;
};

/* Appends to *out a diff from exp to got (LCS, 3 lines of context). */
static void diff_text(const char *exp_name, const char *exp, const char *got, char **out)
{
	struct lines a = split_lines(exp), b = split_lines(got);
	int n = a.n, m = b.n;
	int *L = xzalloc(sizeof(int) * (size_t)(n + 1) * (size_t)(m + 1));
#define LCS(i, j) L[(size_t)(i) * (size_t)(m + 1) + (size_t)(j)]
	for (int i = n - 1; i >= 0; i--)
		for (int j = m - 1; j >= 0; j--)
			LCS(i, j) = !strcmp(a.v[i], b.v[j])          ? LCS(i + 1, j + 1) + 1
			            : LCS(i + 1, j) >= LCS(i, j + 1) ? LCS(i + 1, j)
			                                             : LCS(i, j + 1);
	struct op *ops = xzalloc(sizeof(*ops) * (size_t)(n + m + 1));
	int k = 0, i = 0, j = 0;
	while (i < n || j < m) {
		struct op *o = &ops[k++];
		o->ai = i;
		o->bi = j;
		if (i < n && j < m && !strcmp(a.v[i], b.v[j])) {
			o->t = ' ';
			o->s = a.v[i++];
			j++;
		} else if (j >= m || (i < n && LCS(i + 1, j) >= LCS(i, j + 1))) {
			o->t = '-';
			o->s = a.v[i++];
		} else {
			o->t = '+';
			o->s = b.v[j++];
		}
	}
#undef LCS
	golden_cat(out, "--- %s (expected)\n+++ rendered\n", exp_name);
	int shown = 0;
	for (int c = 0; c < k;) {
		if (ops[c].t == ' ') {
			c++;
			continue;
		}
		int start = c - 3 < 0 ? 0 : c - 3, end = c + 1;
		/* Merge changes closer than two contexts into one hunk. */
		for (int d = end; d < k && d <= end + 6; d++)
			if (ops[d].t != ' ')
				end = d + 1;
		end = end + 3 > k ? k : end + 3;
		int ac = 0, bc = 0;
		for (int d = start; d < end; d++) {
			ac += ops[d].t != '+';
			bc += ops[d].t != '-';
		}
		golden_cat(out, "@@ -%d,%d +%d,%d @@\n", ops[start].ai + 1, ac, ops[start].bi + 1, bc);
		for (int d = start; d < end; d++)
			golden_cat(out, "%c%s\n", ops[d].t, ops[d].s);
		shown = 1;
		c = end;
	}
	if (!shown)
		golden_cat(out, "(the texts differ only in a final newline)\n");
	free(ops);
	free(L);
	free_lines(&a);
	free_lines(&b);
}

/* ---- one golden-file case ----------------------------------------------- */

/* Compares (or, when regen, rewrites) the expected output of fixture name.
 * Returns 0 on success, -1 with a report appended to *report. */
static int run_case(const char *spec_dir, const char *argv_dir, const char *name, int regen,
                    char **report)
{
	_cleanup_free_ char *spec_path = xasprintf("%s/%s.json", spec_dir, name);
	int is_err = 0;
	_cleanup_free_ char *got = render_fixture(spec_path, name, &is_err, report);
	if (!got)
		return -1;
	return golden_check(argv_dir, "args", "argv", name, got, is_err, regen, diff_text, report);
}

/* One CUnit test per fixture. CUnit passes tests no argument, so a table
 * of thunks maps test k to fixture k. */
static void fixture_test(size_t k)
{
	CU_ASSERT_FATAL(k < n_fixtures);
	char *report = NULL;
	int r = run_case(SPEC_DIR, ARGV_DIR, fixtures[k], regenerate, &report);
	if (r < 0 || report)
		printf("\n%s", report ? report : "(no report)\n");
	CU_ASSERT_EQUAL(r, 0);
	free(report);
}

UNIT_CASE_THUNKS(fixture_test)

/* ---- the harness itself ------------------------------------------------- */

static char tmp_root[] = "/tmp/cvmm-test-argv.XXXXXX";

static char *tmp_file(const char *rel)
{
	return xasprintf("%s/%s", tmp_root, rel);
}

static void put(const char *rel, const char *text)
{
	_cleanup_free_ char *p = tmp_file(rel);
	CU_ASSERT_EQUAL(write_file_atomic(p, text, strlen(text), 0644), 0);
}

static int contains(const char *hay, const char *needle)
{
	return hay && strstr(hay, needle) != NULL;
}

static void test_harness(void)
{
	CU_ASSERT_FATAL(mkdtemp(tmp_root) != NULL);
	_cleanup_free_ char *sd = tmp_file("spec"), *ad = tmp_file("argv");
	CU_ASSERT_FATAL(mkdir(sd, 0755) == 0 && mkdir(ad, 0755) == 0);
	put("spec/t.json", "{\"name\": \"t\", \"kernel\": \"/k\"}");
	char *rep = NULL;

	/* No expected file: fails and says how to make one. */
	CU_ASSERT_EQUAL(run_case(sd, ad, "t", 0, &rep), -1);
	CU_ASSERT(contains(rep, "no expected output") && contains(rep, "CVMM_REGENERATE=1"));
	free(rep), rep = NULL;

	/* Regenerating writes it and passes; then a normal run passes. */
	CU_ASSERT_EQUAL(run_case(sd, ad, "t", 1, &rep), 0);
	CU_ASSERT(contains(rep, "regenerated"));
	free(rep), rep = NULL;
	_cleanup_free_ char *args = tmp_file("argv/t.args"), *errf = tmp_file("argv/t.err");
	char *text = NULL;
	CU_ASSERT_EQUAL(read_file(args, &text, NULL, 1 << 16), 0);
	CU_ASSERT(contains(text, "qemu-system-x86_64\n-name\nguest=t,debug-threads=on\n"));
	CU_ASSERT(contains(text, "\n-kernel\n/k\n"));
	CU_ASSERT_EQUAL(run_case(sd, ad, "t", 0, &rep), 0);
	CU_ASSERT_PTR_NULL(rep);

	/* A stale expected file fails with a diff naming the changed line. */
	char *stale = NULL;
	golden_cat(&stale, "%s", text);
	char *m = strstr(stale, "\n256M\n");
	CU_ASSERT_FATAL(m != NULL);
	memcpy(m, "\n512M\n", 6);
	put("argv/t.args", stale);
	CU_ASSERT_EQUAL(run_case(sd, ad, "t", 0, &rep), -1);
	CU_ASSERT(contains(rep, "differs") && contains(rep, "\n-512M\n+256M\n") &&
	          contains(rep, "@@ -"));
	free(rep), rep = NULL;
	free(stale);
	free(text);

	/* Both files present: refused. */
	put("argv/t.err", "x\n");
	CU_ASSERT_EQUAL(run_case(sd, ad, "t", 0, &rep), -1);
	CU_ASSERT(contains(rep, "both"));
	free(rep), rep = NULL;

	/* A spec turning into an error: regenerating swaps .args for .err. */
	put("spec/t.json", "{\"name\": \"t,1\", \"kernel\": \"/k\"}");
	CU_ASSERT_EQUAL(run_case(sd, ad, "t", 1, &rep), 0);
	CU_ASSERT(contains(rep, "removed stale"));
	free(rep), rep = NULL;
	CU_ASSERT_FALSE(golden_exists(args));
	CU_ASSERT_EQUAL(read_file(errf, &text, NULL, 1 << 16), 0);
	CU_ASSERT(contains(text, "VM name 't,1'"));
	free(text);
	CU_ASSERT_EQUAL(run_case(sd, ad, "t", 0, &rep), 0);
	/* ... and an error where an argv is expected says so. */
	CU_ASSERT_EQUAL(rename(errf, args), 0);
	CU_ASSERT_EQUAL(run_case(sd, ad, "t", 0, &rep), -1);
	CU_ASSERT(contains(rep, "but the spec was refused"));
	free(rep), rep = NULL;

	/* Broken fixtures fail rather than pass as "expected errors". */
	put("spec/bad.json", "{\"name\": ");
	put("argv/bad.err", "x\n");
	CU_ASSERT_EQUAL(run_case(sd, ad, "bad", 0, &rep), -1);
	CU_ASSERT(contains(rep, "not valid JSON"));
	free(rep), rep = NULL;
	put("spec/t+bogus.json", "{}");
	CU_ASSERT_EQUAL(run_case(sd, ad, "t+bogus", 1, &rep), -1);
	CU_ASSERT(contains(rep, "unknown option '+bogus'"));
	free(rep), rep = NULL;

	rm_rf(tmp_root);
}

/* Every expected file belongs to a fixture (no leftovers after a rename). */
static void test_no_orphans(void)
{
	golden_no_orphans(SPEC_DIR, ARGV_DIR, "args");
}

/* ---- fixtures vs spec_from_json ------------------------------------------ */

static int falsy(json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_null:
		return 1;
	case json_type_boolean:
		return !json_object_get_boolean(v);
	case json_type_int:
		return json_object_get_int64(v) == 0;
	case json_type_string:
		return json_object_get_string_len(v) == 0;
	default:
		return 0;
	}
}

/* Keys of fixture object f with a non-empty value that spec_to_json did not
 * write back: spec_from_json ignored them (a typo, or a field it lacks). */
static void unread_keys(json_object *f, json_object *back, const char *where, char **report)
{
	json_object_object_foreach(f, k, v)
	{
		json_object *b = NULL;
		if (!json_object_object_get_ex(back, k, &b)) {
			if (!falsy(v))
				golden_cat(report, "%s%s: not read by spec_from_json\n", where, k);
			continue;
		}
		if (json_object_is_type(v, json_type_array) &&
		    json_object_is_type(b, json_type_array)) {
			size_t n = json_object_array_length(v);
			for (size_t i = 0; i < n && i < json_object_array_length(b); i++) {
				json_object *fe = json_object_array_get_idx(v, i);
				json_object *be = json_object_array_get_idx(b, i);
				if (json_object_is_type(fe, json_type_object)) {
					_cleanup_free_ char *w =
					    xasprintf("%s%s[%zu].", where, k, i);
					unread_keys(fe, be, w, report);
				}
			}
		}
	}
}

static void test_fixture_keys(void)
{
	for (size_t k = 0; k < n_fixtures; k++) {
		_cleanup_free_ char *path = xasprintf(SPEC_DIR "/%s.json", fixtures[k]);
		char *report = NULL, err[1024];
		json_object *j = load_json(path, &report);
		struct cvmm_spec *s = NULL;
		if (j && spec_from_json(j, &s, err, sizeof(err)) == 0) {
			json_object *back = spec_to_json(&s->pub);
			unread_keys(j, back, "", &report);
			json_object_put(back);
		}
		if (report)
			printf("\n  %s: %s", fixtures[k], report);
		CU_ASSERT_PTR_NULL(report);
		free(report);
		spec_free(s);
		json_object_put(j);
	}
}

/* spec_from_json -> spec_to_json -> spec_from_json renders the same text,
 * and the second spec_to_json is the first one. */
static void test_json_round_trip(void)
{
	size_t checked = 0;
	for (size_t k = 0; k < n_fixtures; k++) {
		_cleanup_free_ char *path = xasprintf(SPEC_DIR "/%s.json", fixtures[k]);
		char *report = NULL, err[1024] = "";
		struct qemu_opts o;
		json_object *j = load_json(path, &report);
		struct cvmm_spec *s1 = NULL, *s2 = NULL;
		json_object *j1 = NULL, *j2 = NULL;
		char *t1 = NULL, *t2 = NULL;
		int e1 = 0, e2 = 0;
		if (!j || opts_for(fixtures[k], &o, &report) < 0 ||
		    spec_from_json(j, &s1, err, sizeof(err)) < 0)
			goto next; /* refused on input: nothing to round-trip */
		j1 = spec_to_json(&s1->pub);
		if (spec_from_json(j1, &s2, err, sizeof(err)) < 0) {
			golden_cat(&report, "spec_to_json output refused by spec_from_json: %s\n", err);
			goto next;
		}
		j2 = spec_to_json(&s2->pub);
		const char *a = json_object_to_json_string_ext(j1, JSON_C_TO_STRING_PLAIN);
		const char *b = json_object_to_json_string_ext(j2, JSON_C_TO_STRING_PLAIN);
		if (strcmp(a, b))
			golden_cat(&report, "spec_to_json not stable:\n  %s\n  %s\n", a, b);
		t1 = render_text(&s1->pub, &o, &e1, &report);
		t2 = render_text(&s2->pub, &o, &e2, &report);
		if (t1 && t2 && (e1 != e2 || strcmp(t1, t2))) {
			golden_cat(&report, "renders differently after the round trip:\n");
			diff_text("first spec", t1, t2, &report);
		}
		checked++;
	next:
		if (report)
			printf("\n  %s: %s", fixtures[k], report);
		CU_ASSERT_PTR_NULL(report);
		free(report);
		free(t1);
		free(t2);
		json_object_put(j);
		json_object_put(j1);
		json_object_put(j2);
		spec_free(s1);
		spec_free(s2);
	}
	CU_ASSERT(checked > 0);
}

/* Far more forwards than any fixture: the -netdev value has no fixed-size
 * limit (it was a 2048-byte stack buffer that snprintf could run past). */
static void test_many_forwards(void)
{
	struct cvmm_spec *s = spec_new();
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
	struct qemu_opts o = {"qemu-system-x86_64", "tcg", 0, 1};
	struct argv a = {0};
	char err[256] = "";
	CU_ASSERT_EQUAL(qemu_render(&s->pub, &o, &a, err, sizeof(err)), 0);
	const char *netdev = NULL;
	for (int i = 0; i + 1 < a.n; i++)
		if (!strcmp(a.v[i], "-netdev"))
			netdev = a.v[i + 1];
	CU_ASSERT_PTR_NOT_NULL_FATAL(netdev);
	CU_ASSERT(strlen(netdev) > 8000);
	CU_ASSERT(contains(netdev, ",hostfwd=tcp:255.255.255.255:60000-:60000,"));
	CU_ASSERT(contains(netdev, ",hostfwd=udp:255.255.255.255:60199-:60199"));
	argv_free(&a);
	spec_free(s);
}

int main(void)
{
	regenerate = golden_regenerate();
	if (!(fixtures = golden_fixtures(SPEC_DIR, &n_fixtures)))
		return 1;
	if (!golden_suite("qemu_argv", fixtures, n_fixtures, unit_thunks, ARRAY_SIZE(unit_thunks)))
		return 1;
	CU_pSuite harness = CU_add_suite("qemu_argv_harness", NULL, NULL);
	int ok = harness != NULL;
	ok = ok && CU_add_test(harness, "missing or stale expected file fails", test_harness) &&
	     CU_add_test(harness, "every expected file has a fixture", test_no_orphans) &&
	     CU_add_test(harness, "fixture keys are all read", test_fixture_keys) &&
	     CU_add_test(harness, "spec JSON round trip renders the same", test_json_round_trip) &&
	     CU_add_test(harness, "200 port forwards on one NIC", test_many_forwards);
	if (!ok) {
		CU_cleanup_registry();
		return 1;
	}
	int failed = unit_run();
	golden_free(fixtures, n_fixtures);
	return failed ? 1 : 0;
}
