/*
 * tls: GnuTLS through dlopen(). The header gives the types and constants;
 * the functions are looked up at the first https request, so the CLI's
 * process start (every other command) maps no TLS library at all.
 */
#include "tls.h"

#include <dlfcn.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GNUTLS_SONAME "libgnutls.so.30"

static struct {
	int loaded;
	int (*global_init)(void);
	int (*cred_alloc)(gnutls_certificate_credentials_t *);
	void (*cred_free)(gnutls_certificate_credentials_t);
	int (*trust_file)(gnutls_certificate_credentials_t, const char *, gnutls_x509_crt_fmt_t);
	int (*system_trust)(gnutls_certificate_credentials_t);
	int (*init)(gnutls_session_t *, unsigned int);
	void (*deinit)(gnutls_session_t);
	int (*set_default_priority)(gnutls_session_t);
	int (*credentials_set)(gnutls_session_t, gnutls_credentials_type_t, void *);
	int (*server_name_set)(gnutls_session_t, gnutls_server_name_type_t, const void *, size_t);
	void (*set_verify_cert)(gnutls_session_t, const char *, unsigned);
	void (*transport_set_int2)(gnutls_session_t, int, int);
	int (*handshake)(gnutls_session_t);
	ssize_t (*record_send)(gnutls_session_t, const void *, size_t);
	ssize_t (*record_recv)(gnutls_session_t, void *, size_t);
	size_t (*record_check_pending)(gnutls_session_t);
	int (*record_get_direction)(gnutls_session_t);
	int (*error_is_fatal)(int);
	const char *(*strerror)(int);
	unsigned (*verify_status)(gnutls_session_t);
	int (*verify_print)(unsigned, gnutls_certificate_type_t, gnutls_datum_t *, unsigned);
	void (*gfree)(void *);
} g;

struct tls_conn {
	gnutls_session_t session;
	gnutls_certificate_credentials_t cred;
	int fd;
	int last; /* the last GnuTLS error code, for tls_last_error() */
};

static int load(char *err, size_t errlen)
{
	void *h;

	if (g.loaded)
		return 0;
#ifdef CVMM_CLI_STATIC
	/* The static cvmm runs cvmm-full for any --url (cvmm.c): not reached. */
	(void)h;
	snprintf(err, errlen, "https needs cvmm-full (this cvmm is static)");
	return -ENOTSUP;
#else
	h = dlopen(GNUTLS_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(err, errlen, "https needs GnuTLS (%s): %s", GNUTLS_SONAME, dlerror());
		return -ENOENT;
	}
#define SYM(field, name)                                                                          \
	if (!(*(void **)&g.field = dlsym(h, name))) {                                            \
		snprintf(err, errlen, "https: %s lacks %s", GNUTLS_SONAME, name);                \
		return -ENOENT;                                                                   \
	}
	SYM(global_init, "gnutls_global_init")
	SYM(cred_alloc, "gnutls_certificate_allocate_credentials")
	SYM(cred_free, "gnutls_certificate_free_credentials")
	SYM(trust_file, "gnutls_certificate_set_x509_trust_file")
	SYM(system_trust, "gnutls_certificate_set_x509_system_trust")
	SYM(init, "gnutls_init")
	SYM(deinit, "gnutls_deinit")
	SYM(set_default_priority, "gnutls_set_default_priority")
	SYM(credentials_set, "gnutls_credentials_set")
	SYM(server_name_set, "gnutls_server_name_set")
	SYM(set_verify_cert, "gnutls_session_set_verify_cert")
	SYM(transport_set_int2, "gnutls_transport_set_int2")
	SYM(handshake, "gnutls_handshake")
	SYM(record_send, "gnutls_record_send")
	SYM(record_recv, "gnutls_record_recv")
	SYM(record_check_pending, "gnutls_record_check_pending")
	SYM(record_get_direction, "gnutls_record_get_direction")
	SYM(error_is_fatal, "gnutls_error_is_fatal")
	SYM(strerror, "gnutls_strerror")
	SYM(verify_status, "gnutls_session_get_verify_cert_status")
	SYM(verify_print, "gnutls_certificate_verification_status_print")
	SYM(gfree, "gnutls_free")
#undef SYM
	/* gnutls_free is a variable (a function pointer) in GnuTLS 3.7. */
	g.gfree = *(void (**)(void *))g.gfree;
	if (g.global_init() < 0) {
		snprintf(err, errlen, "https: GnuTLS did not initialise");
		return -EIO;
	}
	g.loaded = 1;
	return 0;
#endif
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int tls_connect(int fd, const char *host, const char *cafile, long long deadline_ms,
                struct tls_conn **out, char *err, size_t errlen)
{
	struct tls_conn *t = NULL;
	int r;

	*out = NULL;
	if ((r = load(err, errlen)) < 0)
		return r;
	if (!(t = calloc(1, sizeof(*t))))
		return -ENOMEM;
	t->fd = fd;
	if (g.cred_alloc(&t->cred) < 0 || g.init(&t->session, GNUTLS_CLIENT | GNUTLS_NONBLOCK) < 0) {
		snprintf(err, errlen, "https: GnuTLS cannot make a session");
		r = -ENOMEM;
		goto fail;
	}
	if (cafile) {
		r = g.trust_file(t->cred, cafile, GNUTLS_X509_FMT_PEM);
		if (r <= 0) {
			/* 0 certificates read is a wrong file as much as an error is. */
			snprintf(err, errlen, "CA certificate file %s: %s", cafile,
			         r < 0 ? g.strerror(r) : "no PEM certificate in it");
			r = -EINVAL;
			goto fail;
		}
	} else if (g.system_trust(t->cred) < 0) {
		snprintf(err, errlen, "https: the system's trusted CAs cannot be read (--cacert FILE "
		                      "names one)");
		r = -EINVAL;
		goto fail;
	}
	g.set_default_priority(t->session);
	g.credentials_set(t->session, GNUTLS_CRD_CERTIFICATE, t->cred);
	g.server_name_set(t->session, GNUTLS_NAME_DNS, host, strlen(host));
	g.set_verify_cert(t->session, host, 0);
	g.transport_set_int2(t->session, fd, fd);

	for (;;) {
		struct pollfd p = {.fd = fd};
		long long left;

		r = g.handshake(t->session);
		if (r == 0)
			break;
		if (r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
			gnutls_datum_t why = {0};
			unsigned status = g.verify_status(t->session);

			if (g.verify_print(status, GNUTLS_CRT_X509, &why, 0) == 0) {
				snprintf(err, errlen, "the server's certificate is not trusted: %s",
				         (char *)why.data);
				g.gfree(why.data);
			} else {
				snprintf(err, errlen, "the server's certificate is not trusted");
			}
			r = -EPERM;
			goto fail;
		}
		if (g.error_is_fatal(r)) {
			snprintf(err, errlen, "TLS handshake failed: %s", g.strerror(r));
			r = -EPROTO;
			goto fail;
		}
		p.events = g.record_get_direction(t->session) ? POLLOUT : POLLIN;
		left = deadline_ms ? deadline_ms - now_ms() : -1;
		if (deadline_ms && left <= 0) {
			r = -ETIMEDOUT;
			goto fail;
		}
		if (poll(&p, 1, left > 0 ? (int)left : -1) < 0 && errno != EINTR) {
			r = -errno;
			goto fail;
		}
	}
	*out = t;
	return 0;

fail:
	tls_close(t);
	return r;
}

static ssize_t result(struct tls_conn *t, ssize_t r)
{
	if (r >= 0)
		return r;
	t->last = (int)r;
	if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
		errno = EAGAIN;
	else if (r == GNUTLS_E_PREMATURE_TERMINATION)
		return 0; /* the peer closed without close_notify: an EOF all the same */
	else
		errno = EPROTO;
	return -1;
}

ssize_t tls_read(struct tls_conn *t, void *buf, size_t n)
{
	return result(t, g.record_recv(t->session, buf, n));
}

ssize_t tls_write(struct tls_conn *t, const void *buf, size_t n)
{
	return result(t, g.record_send(t->session, buf, n));
}

int tls_want_write(const struct tls_conn *t)
{
	return g.record_get_direction(t->session);
}

size_t tls_pending(const struct tls_conn *t)
{
	return g.record_check_pending(t->session);
}

const char *tls_last_error(const struct tls_conn *t)
{
	return t->last ? g.strerror(t->last) : "TLS error";
}

void tls_close(struct tls_conn *t)
{
	if (!t)
		return;
	/* No gnutls_bye: the socket is closed next, and a daemon gone away
	 * must not make the CLI wait for its close_notify. */
	if (t->session)
		g.deinit(t->session);
	if (t->cred)
		g.cred_free(t->cred);
	free(t);
}
