/*
 * test-noentry: a shared object that is not a cvmm plugin: it has no
 * cvmm_plugin_init (and, built with hidden visibility, exports nothing at
 * all). The daemon must say so, naming the file.
 */
int test_noentry_unused(void);

int test_noentry_unused(void)
{
	return 0;
}
