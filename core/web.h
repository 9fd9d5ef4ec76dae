/*
 * web: the browser console served at / (the files under web/, embedded into the daemon at
 * build time by core/web_embed.cmake: nothing is read from disk or the
 * network at run time).
 *
 * Auth: the page and its scripts are public (they hold no data); every API
 * call they make carries the token in an Authorization header. A browser
 * cannot set that header on an EventSource or a WebSocket, so those two
 * routes, and only them, also take it as ?access_token= (RFC 6750 2.3). No
 * cookies: nothing a page of another origin can make a browser send.
 */
#ifndef CVMM_WEB_H
#define CVMM_WEB_H

#include <stdbool.h>
#include <stddef.h>

#include <microhttpd.h>

struct cvmm_daemon;

struct web_asset {
	const char *path; /* as served: "/ui/app.js" */
	const char *type; /* its Content-Type */
	const unsigned char *data;
	size_t len;
};

/* Generated from web/ (web_assets.c); ends with a NULL path. */
extern const struct web_asset web_assets[];

/* The asset a GET of url serves ("/" is /ui/index.html), or NULL. */
const struct web_asset *web_find(const char *url);
/* Needs no token: a GET or HEAD of an asset. */
bool web_public(const char *url, const char *method);
/* GET /v1/events or GET /v1/vms/ID/console with a valid ?access_token=. */
bool web_query_token_ok(struct cvmm_daemon *d, struct MHD_Connection *c, const char *url,
			const char *method);
/* Answers a request for an asset (url as web_find takes it). */
enum MHD_Result web_serve(struct MHD_Connection *c, const char *url, const char *method);

#endif
