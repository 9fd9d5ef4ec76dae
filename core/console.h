/*
 * console: interactive serial consoles (GET /v1/vms/{id}/console, upgraded).
 * Owns one hub per VM with clients attached: the one connection to the
 * VM's console socket, fanned out to every client, one of which may type.
 */
#ifndef CVMM_CONSOLE_H
#define CVMM_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>

struct console_set;
struct console_client;

struct console_set *console_set_new(void);
/* Ends every session (their clients see the stream end), waits for the
 * hubs' threads and refuses new reservations. Before the HTTP server stops. */
void console_set_close(struct console_set *s);
/* After the HTTP server stopped (its requests released their clients). */
void console_set_free(struct console_set *s);

/* Reserves a place on the console of VM id (socket sock_path), connecting
 * to it if no one is attached yet; writer asks for the one write slot.
 * Runs on a connection thread (it may connect). Returns 0 and the client,
 * or -EBUSY (the write slot is taken), -ENOENT (no console socket: the VM
 * does not run, or runs without one), another negative errno, with err. */
int console_reserve(struct console_set *s, const char *id, const char *sock_path, bool writer,
                    struct console_client **out, char *err, size_t errlen);
/* The upgraded connection of a reserved client: fd (non-blocking from here)
 * and close_fn(close_arg), called once when the session ends, so that the
 * HTTP server can close the connection. */
void console_attach(struct console_client *c, int fd, void (*close_fn)(void *), void *close_arg);
/* Before console_attach: c speaks WebSocket frames (RFC 6455, ws.h), not
 * raw bytes: a browser's console pane. 0 or -ENOMEM. */
int console_websocket(struct console_client *c);
/* The request that reserved c is over: frees the place if it never got
 * attached, else only drops the request's hold on c. */
void console_release(struct console_client *c);

#endif
