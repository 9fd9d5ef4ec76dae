/*
 * Unit tests of core/util.c: atomic file writes (content, mode, no temp file
 * left behind, readers never see a partial file, failures leave nothing),
 * read_file limits, mkdir_p, rm_rf (never following symlinks), bounded string
 * copies, UUIDs and process start times.
 */
#include "util.h"
#include "unit.h"

#include <CUnit/Basic.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/cvmm-test-util.XXXXXX";

/* ---- helpers ------------------------------------------------------------- */

static char *tpath(const char *rel)
{
	return xasprintf("%s/%s", tmpdir, rel);
}

/* Number of entries (without . and ..) in dir; -1 if it cannot be opened. */
static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* True when some entry of dir has a name starting with prefix. */
static bool has_entry_prefix(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	if (!d)
		return false;
	bool found = false;
	struct dirent *de;
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, prefix, strlen(prefix)))
			found = true;
	closedir(d);
	return found;
}

static int write_plain(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	fputs(text, f);
	return fclose(f);
}

static int write_n(const char *path, size_t n)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	for (size_t i = 0; i < n; i++)
		fputc('a' + (int)(i % 26), f);
	return fclose(f);
}

static int suite_init(void)
{
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int suite_clean(void)
{
	return rm_rf(tmpdir) == 0 && !path_exists(tmpdir) ? 0 : -1;
}

/* ---- write_file_atomic --------------------------------------------------- */

static void test_atomic_content_and_mode(void)
{
	_cleanup_free_ char *dir = tpath("wa1");
	_cleanup_free_ char *p = tpath("wa1/file");
	CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0700), 0);
	static const char data[] = "hello\0binary\nworld";
	CU_ASSERT_EQUAL(write_file_atomic(p, data, sizeof(data), 0640), 0);
	struct stat st;
	CU_ASSERT_EQUAL_FATAL(stat(p, &st), 0);
	CU_ASSERT_TRUE(S_ISREG(st.st_mode));
	CU_ASSERT_EQUAL(st.st_mode & 07777, 0640);
	CU_ASSERT_EQUAL(st.st_size, (off_t)sizeof(data));
	char *back = NULL;
	size_t len = 0;
	CU_ASSERT_EQUAL_FATAL(read_file(p, &back, &len, 1024), 0);
	CU_ASSERT_EQUAL(len, sizeof(data));
	CU_ASSERT_EQUAL(memcmp(back, data, sizeof(data)), 0);
	CU_ASSERT_EQUAL(back[len], 0); /* NUL-terminated */
	free(back);
	/* An empty file is a valid result too. */
	CU_ASSERT_EQUAL(write_file_atomic(p, "", 0, 0600), 0);
	CU_ASSERT_EQUAL_FATAL(stat(p, &st), 0);
	CU_ASSERT_EQUAL(st.st_size, 0);
	CU_ASSERT_EQUAL(st.st_mode & 07777, 0600);
	/* Nothing but the file itself is left in the directory. */
	CU_ASSERT_EQUAL(count_entries(dir), 1);
	CU_ASSERT_FALSE(has_entry_prefix(dir, "file.tmp"));
}

static void test_atomic_replaces_existing(void)
{
	_cleanup_free_ char *dir = tpath("wa2");
	_cleanup_free_ char *p = tpath("wa2/file");
	CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0700), 0);
	CU_ASSERT_EQUAL_FATAL(write_plain(p, "old content that is longer than the new one\n"), 0);
	CU_ASSERT_EQUAL_FATAL(chmod(p, 0600), 0);
	struct stat before, after;
	CU_ASSERT_EQUAL_FATAL(stat(p, &before), 0);
	/* A reader holding the old file keeps reading the old content. */
	int fd = open(p, O_RDONLY);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(write_file_atomic(p, "new\n", 4, 0644), 0);
	CU_ASSERT_EQUAL_FATAL(stat(p, &after), 0);
	CU_ASSERT_NOT_EQUAL(before.st_ino, after.st_ino); /* replaced, not rewritten in place */
	CU_ASSERT_EQUAL(after.st_mode & 07777, 0644);
	char buf[128] = "";
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	CU_ASSERT_TRUE(n > 0 && !strncmp(buf, "old content", 11));
	char *back = NULL;
	CU_ASSERT_EQUAL_FATAL(read_file(p, &back, NULL, 1024), 0);
	CU_ASSERT_STRING_EQUAL(back, "new\n");
	free(back);
	CU_ASSERT_EQUAL(count_entries(dir), 1);
}

/*
 * Versions are "<len>:<digit repeated len times>\n" of very different sizes;
 * a reader that ever sees a file that is not one whole version saw a partial
 * write.
 */
struct race {
	const char *path;
	atomic_int stop;
	int reads, bad, missing;
	char first_bad[80];
};

static bool version_ok(const char *s, size_t len)
{
	char *end;
	unsigned long n = strtoul(s, &end, 10);
	if (end == s || *end != ':')
		return false;
	size_t hdr = (size_t)(end - s) + 1;
	if (len != hdr + n + 1 || s[len - 1] != '\n')
		return false;
	char c = s[hdr];
	if (c < '0' || c > '9')
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[hdr + i] != c)
			return false;
	return true;
}

static void *reader_main(void *arg)
{
	struct race *r = arg;
	while (!atomic_load(&r->stop)) {
		char *text = NULL;
		size_t len = 0;
		int rc = read_file(r->path, &text, &len, 1 << 20);
		if (rc == -ENOENT) {
			r->missing++;
			continue;
		}
		r->reads++;
		if (rc < 0 || !version_ok(text, len)) {
			if (!r->bad)
				snprintf(r->first_bad, sizeof(r->first_bad), "rc %d len %zu: %.40s",
				         rc, len, text ? text : "");
			r->bad++;
		}
		free(text);
	}
	return NULL;
}

static void test_atomic_reader_never_sees_partial(void)
{
	_cleanup_free_ char *dir = tpath("wa3");
	_cleanup_free_ char *p = tpath("wa3/state.json");
	CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0700), 0);
	static const size_t sizes[] = {1, 70000, 5, 300000, 4096, 123457, 2};
	size_t max = 300000 + 16;
	char *buf = malloc(max);
	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	int n = snprintf(buf, max, "%zu:", sizes[0]);
	memset(buf + n, '0', sizes[0]);
	buf[n + sizes[0]] = '\n';
	CU_ASSERT_EQUAL_FATAL(write_file_atomic(p, buf, (size_t)n + sizes[0] + 1, 0644), 0);

	struct race r = {.path = p};
	pthread_t th;
	CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, reader_main, &r), 0);
	int failed_writes = 0;
	for (int i = 1; i <= 150; i++) {
		size_t len = sizes[i % ARRAY_SIZE(sizes)];
		n = snprintf(buf, max, "%zu:", len);
		memset(buf + n, '0' + i % 10, len);
		buf[n + len] = '\n';
		if (write_file_atomic(p, buf, (size_t)n + len + 1, 0644) != 0)
			failed_writes++;
	}
	atomic_store(&r.stop, 1);
	pthread_join(th, NULL);
	free(buf);
	if (r.bad)
		printf("\n    %d of %d reads saw a partial file, first: %s\n", r.bad, r.reads,
		       r.first_bad);
	CU_ASSERT_EQUAL(failed_writes, 0);
	CU_ASSERT_TRUE(r.reads > 0);
	CU_ASSERT_EQUAL(r.bad, 0);
	CU_ASSERT_EQUAL(r.missing, 0); /* the path never disappears during a replace */
	CU_ASSERT_EQUAL(count_entries(dir), 1);
}

static void test_atomic_missing_dir(void)
{
	_cleanup_free_ char *missing = tpath("no-such-dir");
	_cleanup_free_ char *p = tpath("no-such-dir/file");
	int before = count_entries(tmpdir);
	CU_ASSERT_EQUAL(write_file_atomic(p, "x", 1, 0644), -ENOENT);
	CU_ASSERT_FALSE(path_exists(missing));
	CU_ASSERT_EQUAL(count_entries(tmpdir), before);
}

static void test_atomic_failed_rename_leaves_nothing(void)
{
	/* The target is a non-empty directory: the temp file gets written, the
	 * rename fails, and the temp file must be gone afterwards. */
	_cleanup_free_ char *dir = tpath("wa4");
	_cleanup_free_ char *target = tpath("wa4/target");
	_cleanup_free_ char *inner = tpath("wa4/target/keep");
	CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0700), 0);
	CU_ASSERT_EQUAL_FATAL(mkdir(target, 0700), 0);
	CU_ASSERT_EQUAL_FATAL(write_plain(inner, "keep"), 0);
	int r = write_file_atomic(target, "data", 4, 0644);
	CU_ASSERT_TRUE(r == -EISDIR || r == -ENOTEMPTY || r == -EEXIST);
	CU_ASSERT_EQUAL(count_entries(dir), 1);
	CU_ASSERT_FALSE(has_entry_prefix(dir, "target.tmp"));
	CU_ASSERT_TRUE(path_exists(inner));
}

/* ---- read_file ----------------------------------------------------------- */

static void test_read_file_limits(void)
{
	_cleanup_free_ char *small = tpath("rf-small");
	_cleanup_free_ char *big = tpath("rf-big");
	_cleanup_free_ char *missing = tpath("rf-missing");
	char *text = NULL;
	size_t len = 0;

	/* Below the initial buffer size (4 KiB). */
	CU_ASSERT_EQUAL_FATAL(write_n(small, 10), 0);
	CU_ASSERT_EQUAL(read_file(small, &text, &len, 10), 0); /* exactly max */
	CU_ASSERT_EQUAL(len, 10);
	free(text);
	text = NULL;
	CU_ASSERT_EQUAL(read_file(small, &text, &len, 100), 0);
	CU_ASSERT_EQUAL(len, 10);
	CU_ASSERT_EQUAL(strlen(text), 10);
	free(text);
	text = NULL;
	CU_ASSERT_EQUAL(read_file(small, &text, &len, 9), -EFBIG); /* max + 1 */
	free(text);
	text = NULL;

	/* Above it: the buffer has to grow. */
	CU_ASSERT_EQUAL_FATAL(write_n(big, 20000), 0);
	CU_ASSERT_EQUAL(read_file(big, &text, &len, 1 << 20), 0);
	CU_ASSERT_EQUAL(len, 20000);
	CU_ASSERT_TRUE(text && text[19999] == 'a' + 19999 % 26 && text[20000] == 0);
	free(text);
	text = NULL;
	CU_ASSERT_EQUAL(read_file(big, &text, &len, 20000), 0); /* exactly max */
	CU_ASSERT_EQUAL(len, 20000);
	free(text);
	text = NULL;
	CU_ASSERT_EQUAL(read_file(big, &text, &len, 19999), -EFBIG);
	free(text);
	text = NULL;
	CU_ASSERT_EQUAL(read_file(big, &text, &len, 5000), -EFBIG);
	free(text);
	text = NULL;

	/* len is optional; errors come back as -errno. */
	CU_ASSERT_EQUAL(read_file(small, &text, NULL, 100), 0);
	free(text);
	text = NULL;
	CU_ASSERT_EQUAL(read_file(missing, &text, &len, 100), -ENOENT);
	CU_ASSERT_EQUAL(read_file(tmpdir, &text, &len, 100), -EISDIR);
}

/* ---- mkdir_p ------------------------------------------------------------- */

static void test_mkdir_p(void)
{
	_cleanup_free_ char *deep = tpath("mk/a/b/c");
	_cleanup_free_ char *slash = tpath("mk/x/y/");
	_cleanup_free_ char *file = tpath("mk/file");
	_cleanup_free_ char *under_file = tpath("mk/file/sub");
	struct stat st;

	CU_ASSERT_EQUAL(mkdir_p(deep, 0750), 0);
	CU_ASSERT_TRUE(stat(deep, &st) == 0 && S_ISDIR(st.st_mode));
	CU_ASSERT_EQUAL(st.st_mode & 0777, 0750); /* umask 022, set in main */
	/* Existing is fine, and a trailing slash too. */
	CU_ASSERT_EQUAL(mkdir_p(deep, 0750), 0);
	CU_ASSERT_EQUAL(mkdir_p(slash, 0755), 0);
	CU_ASSERT_TRUE(stat(slash, &st) == 0 && S_ISDIR(st.st_mode));
	/* A file in the way is an error, not a directory. */
	CU_ASSERT_EQUAL_FATAL(write_plain(file, "x"), 0);
	CU_ASSERT_EQUAL(mkdir_p(under_file, 0755), -ENOTDIR);
	int r = mkdir_p(file, 0755);
	if (r == 0)
		printf("\n    mkdir_p(existing regular file) returned 0\n");
	CU_ASSERT_TRUE(r == -EEXIST || r == -ENOTDIR);
	CU_ASSERT_TRUE(stat(file, &st) == 0 && S_ISREG(st.st_mode));
}

/* ---- rm_rf --------------------------------------------------------------- */

static void test_rm_rf_nested(void)
{
	_cleanup_free_ char *top = tpath("rm1");
	_cleanup_free_ char *deep = tpath("rm1/a/b/c");
	_cleanup_free_ char *f1 = tpath("rm1/f");
	_cleanup_free_ char *f2 = tpath("rm1/a/b/c/g");
	_cleanup_free_ char *empty = tpath("rm1/a/empty");
	_cleanup_free_ char *ro = tpath("rm1/a/ro");
	_cleanup_free_ char *rof = tpath("rm1/a/ro/h");
	_cleanup_free_ char *fifo = tpath("rm1/a/fifo");
	CU_ASSERT_EQUAL_FATAL(mkdir_p(deep, 0755), 0);
	CU_ASSERT_EQUAL_FATAL(mkdir_p(empty, 0755), 0);
	CU_ASSERT_EQUAL_FATAL(mkdir_p(ro, 0755), 0);
	CU_ASSERT_EQUAL_FATAL(write_plain(f1, "1"), 0);
	CU_ASSERT_EQUAL_FATAL(write_plain(f2, "2"), 0);
	CU_ASSERT_EQUAL_FATAL(write_plain(rof, "3"), 0);
	CU_ASSERT_EQUAL_FATAL(mkfifo(fifo, 0600), 0);
	CU_ASSERT_EQUAL(rm_rf(top), 0);
	CU_ASSERT_FALSE(path_exists(top));
	/* Missing is fine; a plain file is removed too. */
	CU_ASSERT_EQUAL(rm_rf(top), 0);
	_cleanup_free_ char *plain = tpath("rm-plain");
	CU_ASSERT_EQUAL_FATAL(write_plain(plain, "p"), 0);
	CU_ASSERT_EQUAL(rm_rf(plain), 0);
	CU_ASSERT_FALSE(path_exists(plain));
}

static void test_rm_rf_does_not_follow_symlinks(void)
{
	_cleanup_free_ char *outside = tpath("rm-outside");
	_cleanup_free_ char *victim = tpath("rm-outside/precious");
	_cleanup_free_ char *outside_sub = tpath("rm-outside/sub");
	_cleanup_free_ char *victim2 = tpath("rm-outside/sub/precious2");
	_cleanup_free_ char *top = tpath("rm2");
	_cleanup_free_ char *inner = tpath("rm2/inner");
	_cleanup_free_ char *link_dir = tpath("rm2/inner/link-to-dir");
	_cleanup_free_ char *link_file = tpath("rm2/link-to-file");
	_cleanup_free_ char *link_dangling = tpath("rm2/dangling");
	CU_ASSERT_EQUAL_FATAL(mkdir_p(outside_sub, 0755), 0);
	CU_ASSERT_EQUAL_FATAL(write_plain(victim, "keep me"), 0);
	CU_ASSERT_EQUAL_FATAL(write_plain(victim2, "keep me too"), 0);
	CU_ASSERT_EQUAL_FATAL(mkdir_p(inner, 0755), 0);
	CU_ASSERT_EQUAL_FATAL(symlink(outside, link_dir), 0);
	CU_ASSERT_EQUAL_FATAL(symlink(victim, link_file), 0);
	CU_ASSERT_EQUAL_FATAL(symlink("/nonexistent/target", link_dangling), 0);

	CU_ASSERT_EQUAL(rm_rf(top), 0);
	struct stat st;
	CU_ASSERT_FALSE(lstat(top, &st) == 0);
	CU_ASSERT_TRUE(path_exists(victim));
	CU_ASSERT_TRUE(path_exists(victim2));
	CU_ASSERT_TRUE(stat(outside_sub, &st) == 0 && S_ISDIR(st.st_mode));

	/* rm_rf on the symlink itself removes the link, not the target. */
	_cleanup_free_ char *top_link = tpath("rm-top-link");
	CU_ASSERT_EQUAL_FATAL(symlink(outside, top_link), 0);
	CU_ASSERT_EQUAL(rm_rf(top_link), 0);
	CU_ASSERT_FALSE(lstat(top_link, &st) == 0);
	CU_ASSERT_TRUE(path_exists(victim));
	CU_ASSERT_TRUE(path_exists(victim2));
	rm_rf(outside);
}

/* ---- strings ------------------------------------------------------------- */

static void test_str_copy(void)
{
	char buf[4];
	memset(buf, 'z', sizeof(buf));
	CU_ASSERT_EQUAL(str_copy(buf, sizeof(buf), "abc"), 0); /* fits exactly */
	CU_ASSERT_STRING_EQUAL(buf, "abc");
	CU_ASSERT_EQUAL(str_copy(buf, sizeof(buf), "abcd"), -ENAMETOOLONG);
	CU_ASSERT_STRING_EQUAL(buf, "abc");
	CU_ASSERT_EQUAL(str_copy(buf, sizeof(buf), "abcdefgh"), -ENAMETOOLONG);
	CU_ASSERT_STRING_EQUAL(buf, "abc");
	CU_ASSERT_EQUAL(str_copy(buf, sizeof(buf), ""), 0);
	CU_ASSERT_STRING_EQUAL(buf, "");
	CU_ASSERT_EQUAL(str_copy(buf, sizeof(buf), NULL), 0);
	CU_ASSERT_STRING_EQUAL(buf, "");
	CU_ASSERT_EQUAL(str_copy(buf, 1, "x"), -ENAMETOOLONG);
	CU_ASSERT_EQUAL(buf[0], 0);
	buf[0] = 'q';
	CU_ASSERT_EQUAL(str_copy(buf, 0, "x"), -ENAMETOOLONG);
	CU_ASSERT_EQUAL(buf[0], 'q'); /* n = 0: nothing written */

	char p[8];
	CU_ASSERT_EQUAL(str_printf(p, sizeof(p), "%d-%s", 12, "abcd"), 0); /* 7 chars */
	CU_ASSERT_STRING_EQUAL(p, "12-abcd");
	CU_ASSERT_EQUAL(str_printf(p, sizeof(p), "%d-%s", 123, "abcd"), -ENAMETOOLONG);
	CU_ASSERT_STRING_EQUAL(p, "123-abc");
}

/* ---- uuid ---------------------------------------------------------------- */

static void test_uuid(void)
{
	char u[37], v[37];
	uuid_generate_str(u);
	uuid_generate_str(v);
	CU_ASSERT_TRUE(uuid_valid(u));
	CU_ASSERT_TRUE(uuid_valid(v));
	CU_ASSERT_STRING_NOT_EQUAL(u, v);
	CU_ASSERT_EQUAL(u[14], '4');                   /* version 4 */
	CU_ASSERT_PTR_NOT_NULL(strchr("89ab", u[19])); /* RFC 4122 variant */

	CU_ASSERT_TRUE(uuid_valid("5f0c3e2a-1b2c-4d5e-8f90-0123456789ab"));
	CU_ASSERT_FALSE(uuid_valid(NULL));
	CU_ASSERT_FALSE(uuid_valid(""));
	CU_ASSERT_FALSE(uuid_valid("5F0C3E2A-1B2C-4D5E-8F90-0123456789AB"));  /* lower case only */
	CU_ASSERT_FALSE(uuid_valid("5f0c3e2a-1b2c-4d5e-8f90-0123456789a"));   /* 35 */
	CU_ASSERT_FALSE(uuid_valid("5f0c3e2a-1b2c-4d5e-8f90-0123456789abc")); /* 37 */
	CU_ASSERT_FALSE(uuid_valid("5f0c3e2a1-b2c-4d5e-8f90-0123456789ab"));  /* dash moved */
	CU_ASSERT_FALSE(uuid_valid("5f0c3e2a-1b2c-4d5e-8f90-0123456789ag"));
	CU_ASSERT_FALSE(uuid_valid("../../../../etc/passwd-0123456789ab"));
	CU_ASSERT_FALSE(uuid_valid("5f0c3e2a-1b2c-4d5e-8f90-01234567/9ab"));
}

/* ---- processes ----------------------------------------------------------- */

static void test_proc_start_time(void)
{
	uint64_t self = proc_start_time(getpid());
	CU_ASSERT_NOT_EQUAL(self, 0);
	CU_ASSERT_EQUAL(proc_start_time(getpid()), self); /* stable */
	CU_ASSERT_EQUAL(proc_start_time(0), 0);
	CU_ASSERT_EQUAL(proc_start_time(-1), 0);

	/* A running child: started after us. */
	int pfd[2];
	CU_ASSERT_EQUAL_FATAL(pipe(pfd), 0);
	pid_t pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		char c;
		close(pfd[1]);
		ssize_t n = read(pfd[0], &c, 1); /* until the parent closes */
		_exit(n < 0 ? 1 : 0);
	}
	close(pfd[0]);
	uint64_t child = proc_start_time(pid);
	CU_ASSERT_TRUE(child >= self && child != 0);
	/* Its command line is ours (fork without exec). */
	CU_ASSERT_TRUE(proc_cmdline_has(pid, "test_util"));
	CU_ASSERT_FALSE(proc_cmdline_has(pid, "no-such-argument-anywhere"));

	/* Exited but not reaped (a zombie): no longer a running process. */
	close(pfd[1]);
	siginfo_t si;
	CU_ASSERT_EQUAL(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
	CU_ASSERT_EQUAL(proc_start_time(pid), 0);
	/* Reaped: gone. */
	CU_ASSERT_EQUAL(waitpid(pid, NULL, 0), pid);
	CU_ASSERT_EQUAL(proc_start_time(pid), 0);
	CU_ASSERT_FALSE(proc_cmdline_has(pid, "test_util"));
}

int main(void)
{
	umask(022);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("util", suite_init, suite_clean);
	if (!s ||
	    !CU_add_test(s, "write_file_atomic: content and mode", test_atomic_content_and_mode) ||
	    !CU_add_test(s, "write_file_atomic: replaces an existing file",
	                 test_atomic_replaces_existing) ||
	    !CU_add_test(s, "write_file_atomic: a reader never sees a partial file",
	                 test_atomic_reader_never_sees_partial) ||
	    !CU_add_test(s, "write_file_atomic: missing directory", test_atomic_missing_dir) ||
	    !CU_add_test(s, "write_file_atomic: failed rename leaves nothing",
	                 test_atomic_failed_rename_leaves_nothing) ||
	    !CU_add_test(s, "read_file: limits", test_read_file_limits) ||
	    !CU_add_test(s, "mkdir_p", test_mkdir_p) ||
	    !CU_add_test(s, "rm_rf: nested tree", test_rm_rf_nested) ||
	    !CU_add_test(s, "rm_rf: symlinks are not followed",
	                 test_rm_rf_does_not_follow_symlinks) ||
	    !CU_add_test(s, "str_copy and str_printf truncation", test_str_copy) ||
	    !CU_add_test(s, "uuid_generate_str and uuid_valid", test_uuid) ||
	    !CU_add_test(s, "proc_start_time: self, zombie, reaped child", test_proc_start_time)) {
		CU_cleanup_registry();
		return 1;
	}
	return unit_run();
}
