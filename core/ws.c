/*
 * ws: see ws.h. SHA-1 comes from GnuTLS, which the core links already
 * (libmicrohttpd's TLS and config.c's certificate checks).
 */
#include "ws.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <string.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void base64(const uint8_t *in, size_t n, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = B64[v >> 18 & 63];
		out[o++] = B64[v >> 12 & 63];
		out[o++] = i + 1 < n ? B64[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? B64[v & 63] : '=';
	}
	out[o] = 0;
}

int ws_accept_key(const char *key, char out[WS_ACCEPT_LEN + 1])
{
	char buf[24 + sizeof(WS_GUID)];
	uint8_t sha[20];

	/* The key is 16 random bytes in base64: 22 characters and "==". */
	if (!key || strlen(key) != 24 || strcmp(key + 22, "==") || strspn(key, B64) != 22)
		return -EINVAL;
	memcpy(buf, key, 24);
	memcpy(buf + 24, WS_GUID, sizeof(WS_GUID));
	if (gnutls_hash_fast(GNUTLS_DIG_SHA1, buf, strlen(buf), sha) < 0)
		return -EIO;
	base64(sha, sizeof(sha), out);
	return 0;
}

size_t ws_frame_header(uint8_t *hdr, int opcode, uint64_t len)
{
	hdr[0] = (uint8_t)(0x80 | (opcode & 0x0f));
	if (len < 126) {
		hdr[1] = (uint8_t)len;
		return 2;
	}
	if (len <= 0xffff) {
		hdr[1] = 126;
		hdr[2] = (uint8_t)(len >> 8);
		hdr[3] = (uint8_t)len;
		return 4;
	}
	hdr[1] = 127;
	for (int i = 0; i < 8; i++)
		hdr[2 + i] = (uint8_t)(len >> (56 - 8 * i));
	return 10;
}

long ws_decode(uint8_t *buf, size_t len, size_t max, struct ws_frame *f)
{
	size_t need = 2;
	uint64_t plen;
	int op;

	if (len < 2)
		return 0;
	op = buf[0] & 0x0f;
	if (buf[0] & 0x70)
		return -WS_CLOSE_PROTOCOL; /* no extension was negotiated */
	if (!(buf[1] & 0x80))
		return -WS_CLOSE_PROTOCOL; /* a client masks every frame */
	if (op != WS_OP_TEXT && op != WS_OP_BINARY && op != WS_OP_CLOSE && op != WS_OP_PING &&
	    op != WS_OP_PONG)
		return op == WS_OP_CONT ? -WS_CLOSE_UNSUPPORTED : -WS_CLOSE_PROTOCOL;
	if (!(buf[0] & 0x80))
		return op >= WS_OP_CLOSE ? -WS_CLOSE_PROTOCOL : -WS_CLOSE_UNSUPPORTED;
	plen = buf[1] & 0x7f;
	if (op >= WS_OP_CLOSE && plen > 125)
		return -WS_CLOSE_PROTOCOL;
	if (plen == 126) {
		need = 4;
		if (len < need)
			return 0;
		plen = (uint64_t)buf[2] << 8 | buf[3];
	} else if (plen == 127) {
		need = 10;
		if (len < need)
			return 0;
		plen = 0;
		for (int i = 0; i < 8; i++)
			plen = plen << 8 | buf[2 + i];
		if (plen >> 63)
			return -WS_CLOSE_PROTOCOL;
	}
	if (op < WS_OP_CLOSE && plen > max)
		return -WS_CLOSE_TOO_BIG;
	need += 4;
	if (len < need || len - need < plen)
		return 0;
	f->opcode = op;
	f->payload = buf + need;
	f->len = (size_t)plen;
	memcpy(f->mask, buf + need - 4, 4);
	return (long)(need + f->len);
}

void ws_unmask(struct ws_frame *f)
{
	for (size_t i = 0; i < f->len; i++)
		f->payload[i] ^= f->mask[i & 3];
}
