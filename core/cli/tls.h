/*
 * tls: the CLI's TLS client, GnuTLS loaded with dlopen() only when a URL is
 * https, so that every other invocation pays nothing for it (GnuTLS and its
 * dependencies are about a dozen shared objects; README "A fast CLI").
 */
#ifndef CVMM_CLI_TLS_H
#define CVMM_CLI_TLS_H

#include <stddef.h>
#include <sys/types.h>

struct tls_conn;

/* Handshake over the connected non-blocking socket fd, verifying the
 * server's certificate against cafile (NULL: the system's trust store) and
 * host. deadline_ms is a CLOCK_MONOTONIC time in ms (0: none). On failure
 * returns a negative errno (-ETIMEDOUT when the deadline passed) with a
 * message in err. */
int tls_connect(int fd, const char *host, const char *cafile, long long deadline_ms,
                struct tls_conn **out, char *err, size_t errlen);
/* As read()/write(): bytes moved, 0 at EOF (read), or -1 with errno (EAGAIN
 * when the socket has to be polled; tls_want_write() says in which way). */
ssize_t tls_read(struct tls_conn *t, void *buf, size_t n);
ssize_t tls_write(struct tls_conn *t, const void *buf, size_t n);
int tls_want_write(const struct tls_conn *t);
/* Bytes already decrypted and waiting: poll() would not see them. */
size_t tls_pending(const struct tls_conn *t);
const char *tls_last_error(const struct tls_conn *t);
void tls_close(struct tls_conn *t);

#endif
