/*
 * ws: RFC 6455 WebSocket framing for the console route (a browser cannot
 * use cvmm's own upgraded byte stream). Pure functions: the handshake's
 * accept key, a server frame's header, and the decoding of one client frame
 * in place. The console hub (console.c) does the I/O.
 */
#ifndef CVMM_WS_H
#define CVMM_WS_H

#include <stddef.h>
#include <stdint.h>

enum {
	WS_OP_CONT = 0x0,
	WS_OP_TEXT = 0x1,
	WS_OP_BINARY = 0x2,
	WS_OP_CLOSE = 0x8,
	WS_OP_PING = 0x9,
	WS_OP_PONG = 0xa,
};

/* Close codes sent back when a client breaks the rules (RFC 6455 7.4.1). */
enum {
	WS_CLOSE_NORMAL = 1000,
	WS_CLOSE_GOING_AWAY = 1001,
	WS_CLOSE_PROTOCOL = 1002,
	WS_CLOSE_UNSUPPORTED = 1003,
	WS_CLOSE_TOO_BIG = 1009,
};

#define WS_HEADER_MAX 14 /* 2 + 8 (length) + 4 (mask) */
#define WS_ACCEPT_LEN 28 /* base64 of a SHA-1 */

/* Sec-WebSocket-Accept for the client's Sec-WebSocket-Key (base64 of 16
 * bytes, else -EINVAL): out gets WS_ACCEPT_LEN characters and a NUL. */
int ws_accept_key(const char *key, char out[WS_ACCEPT_LEN + 1]);

/* Writes the header of an unmasked, final server frame of opcode carrying
 * len bytes into hdr (WS_HEADER_MAX bytes of room); returns its length. */
size_t ws_frame_header(uint8_t *hdr, int opcode, uint64_t len);

struct ws_frame {
	int opcode;
	uint8_t *payload; /* inside the buffer given, masked until ws_unmask */
	size_t len;
	uint8_t mask[4];
};

/* Decodes the client frame at the start of buf[0..len): returns the bytes
 * it takes (the frame is complete: ws_unmask gives its payload), 0
 * when more bytes are needed, or -close code when the frame breaks the
 * protocol or this server's rules: unmasked, reserved bits, an unknown
 * opcode, fragments (not supported: the console's keystrokes are small),
 * a control frame longer than 125 bytes, or a data frame longer than max. */
long ws_decode(uint8_t *buf, size_t len, size_t max, struct ws_frame *f);
/* Unmasks f's payload in place (once: the caller may first check that it
 * has room for it). */
void ws_unmask(struct ws_frame *f);

#endif
