/*
 * golden.h: the golden-file harness of the renderers' tests (test_qemu_argv,
 * test_libvirt_xml). Every tests/fixtures/spec/NAME.json renders to what
 * <dir>/NAME.<ext> holds or, for a spec that must be refused, to the message
 * in <dir>/NAME.err; CVMM_REGENERATE=1 (re)writes those files instead, to be
 * reviewed with git diff. Header only, like unit.h.
 */
#ifndef CVMM_TESTS_GOLDEN_H
#define CVMM_TESTS_GOLDEN_H

#include "util.h"

#include <CUnit/Basic.h>
#include <glob.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define GOLDEN_MAX_BYTES (1 << 20)

/* Appends printf output to a growing string (a report). */
static inline void golden_cat(char **s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void golden_cat(char **s, const char *fmt, ...)
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

static inline int golden_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* How an expected text and the rendered one differ, into the report. */
typedef void (*golden_diff_fn)(const char *path, const char *want, const char *got, char **report);

/*
 * Checks what fixture name rendered (got; is_err: the refusal message) with
 * <dir>/<name>.<ext> or <dir>/<name>.err, what naming the rendering in
 * messages ("argv", "XML"); with regen, writes it there instead (and
 * removes the other file). 0, or -1 with the reason in report.
 */
static inline int golden_check(const char *dir, const char *ext, const char *what, const char *name,
                               const char *got, int is_err, int regen, golden_diff_fn diff,
                               char **report)
{
	_cleanup_free_ char *ok_path = xasprintf("%s/%s.%s", dir, name, ext);
	_cleanup_free_ char *err_path = xasprintf("%s/%s.err", dir, name);
	_cleanup_free_ char *want = NULL;
	const char *out_path = is_err ? err_path : ok_path;
	const char *other_path = is_err ? ok_path : err_path;
	if (regen) {
		_cleanup_free_ char *old = NULL;
		if (read_file(out_path, &old, NULL, GOLDEN_MAX_BYTES) < 0 || strcmp(old, got)) {
			int r = write_file_atomic(out_path, got, strlen(got), 0644);
			if (r < 0) {
				golden_cat(report, "%s: cannot write: %s\n", out_path,
				           strerror(-r));
				return -1;
			}
			golden_cat(report, "regenerated %s\n", out_path);
		}
		if (unlink(other_path) == 0)
			golden_cat(report, "removed stale %s\n", other_path);
		return 0;
	}
	int have_ok = golden_exists(ok_path), have_err = golden_exists(err_path);
	if (have_ok && have_err) {
		golden_cat(report, "%s: both %s.%s and %s.err exist; keep one\n", name, name, ext,
		           name);
		return -1;
	}
	if (!have_ok && !have_err) {
		golden_cat(report,
		           "%s: no expected output: neither %s nor %s exists; run with "
		           "CVMM_REGENERATE=1 and review the new file\n",
		           name, ok_path, err_path);
		return -1;
	}
	if (have_err != is_err) {
		if (is_err)
			golden_cat(report,
			           "%s: expected the %s in %s, but the spec was refused: %s", name,
			           what, ok_path, got);
		else
			golden_cat(report,
			           "%s: expected the error in %s, but the spec rendered:\n%s", name,
			           err_path, got);
		return -1;
	}
	int r = read_file(out_path, &want, NULL, GOLDEN_MAX_BYTES);
	if (r < 0) {
		golden_cat(report, "%s: %s\n", out_path, strerror(-r));
		return -1;
	}
	if (strcmp(want, got)) {
		golden_cat(report,
		           "%s: rendered output differs from %s (CVMM_REGENERATE=1 accepts it)\n",
		           name, out_path);
		diff(out_path, want, got, report);
		return -1;
	}
	return 0;
}

/* The fixtures of spec_dir: names without ".json" (*n of them, each and
 * the array to free), or NULL, saying why, when there is none. */
static inline char **golden_fixtures(const char *spec_dir, size_t *n)
{
	_cleanup_free_ char *pat = xasprintf("%s/*.json", spec_dir);
	glob_t g;
	*n = 0;
	int r = glob(pat, 0, NULL, &g);
	if (r != 0) {
		fprintf(stderr, "%s in %s\n", r == GLOB_NOMATCH ? "no fixtures" : "cannot list",
		        spec_dir);
		return NULL;
	}
	char **names = xzalloc(sizeof(*names) * (g.gl_pathc + 1));
	for (size_t i = 0; i < g.gl_pathc; i++) {
		const char *base = strrchr(g.gl_pathv[i], '/') + 1;
		names[(*n)++] = strndup(base, strlen(base) - strlen(".json"));
	}
	globfree(&g);
	return names;
}

/* Every expected file of dir (.<ext> and .err) has its fixture in spec_dir:
 * one left behind by a renamed or removed fixture would never be checked. */
static inline void golden_no_orphans(const char *spec_dir, const char *dir, const char *ext)
{
	const char *exts[] = {ext, "err"};
	for (size_t p = 0; p < 2; p++) {
		_cleanup_free_ char *pat = xasprintf("%s/*.%s", dir, exts[p]);
		glob_t g;
		if (glob(pat, 0, NULL, &g) != 0)
			continue;
		for (size_t i = 0; i < g.gl_pathc; i++) {
			const char *base = strrchr(g.gl_pathv[i], '/') + 1;
			const char *dot = strrchr(base, '.');
			_cleanup_free_ char *spec =
			    xasprintf("%s/%.*s.json", spec_dir, (int)(dot - base), base);
			if (!golden_exists(spec))
				printf("\n  %s has no fixture %s", g.gl_pathv[i], spec);
			CU_ASSERT(golden_exists(spec));
		}
		globfree(&g);
	}
}

/* CVMM_REGENERATE set, and not to "0": write the expected files. */
static inline int golden_regenerate(void)
{
	const char *rg = getenv("CVMM_REGENERATE");
	return rg && *rg && strcmp(rg, "0");
}

/* A fresh CUnit registry whose first suite, name, has one test per fixture
 * (thunks[k], see unit.h's UNIT_CASE_THUNKS, runs fixture k). NULL, the
 * registry cleaned up, when there are more fixtures than thunks (said) or
 * CUnit fails. */
static inline CU_pSuite golden_suite(const char *name, char *const *fixtures, size_t n,
                                     const CU_TestFunc *thunks, size_t n_thunks)
{
	if (n > n_thunks) {
		fprintf(stderr, "%s: %zu fixtures, but only %zu test slots\n", name, n, n_thunks);
		return NULL;
	}
	if (CU_initialize_registry() != CUE_SUCCESS)
		return NULL;
	CU_pSuite s = CU_add_suite(name, NULL, NULL);
	for (size_t k = 0; s && k < n; k++)
		if (!CU_add_test(s, fixtures[k], thunks[k]))
			s = NULL;
	if (!s)
		CU_cleanup_registry();
	return s;
}

static inline void golden_free(char **fixtures, size_t n)
{
	for (size_t k = 0; k < n; k++)
		free(fixtures[k]);
	free(fixtures);
}

#endif
