/*
 * Unit tests of sdnotify (core/sdnotify.c): the datagram reaches a socket
 * bound at a path and in the abstract namespace, as systemd binds it; no
 * NOTIFY_SOCKET is a no-op; a path systemd would never give is refused.
 */
#include "sdnotify.h"
#include "unit.h"

#include <CUnit/Basic.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int bind_at(const char *path, socklen_t *len)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t l = strlen(path);
	memcpy(sa.sun_path, path, l);
	if (path[0] == '@')
		sa.sun_path[0] = 0;
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + l + (path[0] == '/'));
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, *len) < 0)
		return -1;
	return fd;
}

static void expect(const char *path)
{
	socklen_t len;
	int fd = bind_at(path, &len);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(sdnotify(path, "READY=1\nSTATUS=x"), 0);
	char buf[64] = "";
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	CU_ASSERT_EQUAL(n, 16);
	CU_ASSERT_STRING_EQUAL(buf, "READY=1\nSTATUS=x");
	close(fd);
}

static void test_path(void)
{
	char path[64];
	snprintf(path, sizeof(path), "/tmp/cvmm-unit-notify-%d", (int)getpid());
	unlink(path);
	expect(path);
	unlink(path);
	/* Nobody listening any more: the error is the caller's to log. */
	CU_ASSERT_EQUAL(sdnotify(path, "STOPPING=1"), -ENOENT);
}

static void test_abstract(void)
{
	char path[64];
	snprintf(path, sizeof(path), "@cvmm-unit-notify-%d", (int)getpid());
	expect(path);
}

static void test_unset_and_bad(void)
{
	CU_ASSERT_EQUAL(sdnotify(NULL, "READY=1"), 0);
	CU_ASSERT_EQUAL(sdnotify("", "READY=1"), 0);
	CU_ASSERT_EQUAL(sdnotify("relative/sock", "READY=1"), -EINVAL);
	char longp[200];
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = 0;
	CU_ASSERT_EQUAL(sdnotify(longp, "READY=1"), -EINVAL);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("sdnotify", NULL, NULL);
	if (!s || !CU_add_test(s, "socket at a path", test_path) ||
	    !CU_add_test(s, "abstract socket", test_abstract) ||
	    !CU_add_test(s, "unset, relative, too long", test_unset_and_bad)) {
		CU_cleanup_registry();
		return 1;
	}
	return unit_run();
}
