/*
 * unit.h: what the CUnit executables (tests/unit and the plugins' own unit
 * tests, through the cvmm-unit target) each wrote again. Header only: every
 * test is one executable of its own. Files for tests: fake_image.h.
 */
#ifndef CVMM_TESTS_UNIT_H
#define CVMM_TESTS_UNIT_H

#include <CUnit/Basic.h>
#include <stddef.h>

/* Runs the registered suites, verbose, and cleans up. The exit status: 1
 * when an assertion, a test or a suite's init failed (a suite whose init
 * fails runs no test, so it must count by itself). */
static inline int unit_run(void)
{
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed() +
	                  CU_get_number_of_suites_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}

struct unit_test {
	const char *name;
	CU_TestFunc fn;
};

/* The registry with one suite of the n tests (init and clean may be NULL):
 * 0, or -1 (the registry cleaned up) when CUnit could not register them. */
static inline int unit_suite(const char *name, CU_InitializeFunc init, CU_CleanupFunc clean,
                             const struct unit_test *tests, size_t n)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return -1;
	CU_pSuite s = CU_add_suite(name, init, clean);
	for (size_t i = 0; s && i < n; i++)
		if (!CU_add_test(s, tests[i].name, tests[i].fn))
			s = NULL;
	if (!s) {
		CU_cleanup_registry();
		return -1;
	}
	return 0;
}

/* main() of a test of one suite: its exit status (2: not registered). */
static inline int unit_main(const char *name, CU_InitializeFunc init, CU_CleanupFunc clean,
                            const struct unit_test *tests, size_t n)
{
	return unit_suite(name, init, clean, tests, n) < 0 ? 2 : unit_run();
}

/* One CUnit test per case of a table (golden fixtures): CUnit passes tests
 * no argument, so UNIT_CASE_THUNKS(fn) defines unit_thunks[], 100 tests
 * where unit_thunks[k] calls fn(k). */
#define UNIT_THUNK_(fn, a, b)                                                                      \
	static void unit_thunk_##a##b(void)                                                        \
	{                                                                                          \
		fn(a * 10 + b);                                                                    \
	}
#define UNIT_THUNK_ROW_(fn, a)                                                                     \
	UNIT_THUNK_(fn, a, 0)                                                                      \
	UNIT_THUNK_(fn, a, 1)                                                                      \
	UNIT_THUNK_(fn, a, 2)                                                                      \
	UNIT_THUNK_(fn, a, 3)                                                                      \
	UNIT_THUNK_(fn, a, 4)                                                                      \
	UNIT_THUNK_(fn, a, 5)                                                                      \
	UNIT_THUNK_(fn, a, 6)                                                                      \
	UNIT_THUNK_(fn, a, 7)                                                                      \
	UNIT_THUNK_(fn, a, 8)                                                                      \
	UNIT_THUNK_(fn, a, 9)
#define UNIT_THUNK_ENTRIES_(a)                                                                     \
	unit_thunk_##a##0, unit_thunk_##a##1, unit_thunk_##a##2, unit_thunk_##a##3,                \
	    unit_thunk_##a##4, unit_thunk_##a##5, unit_thunk_##a##6, unit_thunk_##a##7,            \
	    unit_thunk_##a##8, unit_thunk_##a##9
#define UNIT_CASE_THUNKS(fn)                                                                       \
	UNIT_THUNK_ROW_(fn, 0)                                                                     \
	UNIT_THUNK_ROW_(fn, 1)                                                                     \
	UNIT_THUNK_ROW_(fn, 2)                                                                     \
	UNIT_THUNK_ROW_(fn, 3)                                                                     \
	UNIT_THUNK_ROW_(fn, 4)                                                                     \
	UNIT_THUNK_ROW_(fn, 5)                                                                     \
	UNIT_THUNK_ROW_(fn, 6)                                                                     \
	UNIT_THUNK_ROW_(fn, 7)                                                                     \
	UNIT_THUNK_ROW_(fn, 8)                                                                     \
	UNIT_THUNK_ROW_(fn, 9)                                                                     \
	static const CU_TestFunc unit_thunks[] = {UNIT_THUNK_ENTRIES_(0), UNIT_THUNK_ENTRIES_(1),  \
	                                          UNIT_THUNK_ENTRIES_(2), UNIT_THUNK_ENTRIES_(3),  \
	                                          UNIT_THUNK_ENTRIES_(4), UNIT_THUNK_ENTRIES_(5),  \
	                                          UNIT_THUNK_ENTRIES_(6), UNIT_THUNK_ENTRIES_(7),  \
	                                          UNIT_THUNK_ENTRIES_(8), UNIT_THUNK_ENTRIES_(9)};

#endif
