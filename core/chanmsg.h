/*
 * chanmsg: the guest channel's wire format and the validation of what a
 * guest sends. Shared by the unprivileged reader (cvmm-chanreader), which
 * turns each line a guest wrote into one re-serialized message or a refusal,
 * and by the daemon, which reads only those re-serialized messages.
 *
 * Guest -> host, one JSON object a line (newline-delimited JSON):
 *   {"method":"Info","id":1}
 *   {"method":"Notify","params":{"event":"boot.progress","payload":"..."}}
 *   {"method":"GetSealingKey","id":2,"params":{"quote":"<hex>"}}
 *   {"method":"GetKmsConfig","id":3}       (kms plugin)
 *   {"method":"GetGatewayConfig","id":4}   (gateway plugin)
 * A line is at most CHAN_NOTIFY_MAX bytes, or CHAN_QUOTE_MAX for
 * GetSealingKey. Host -> guest: {"id":N,"result":{...}} or
 * {"id":N,"error":"..."}, one a line.
 */
#ifndef CVMM_CHANMSG_H
#define CVMM_CHANMSG_H

#include <stddef.h>

#define CHAN_NOTIFY_MAX 4096       /* a line other than GetSealingKey */
#define CHAN_QUOTE_MAX (1u << 20)  /* a GetSealingKey line */
#define CHAN_PAYLOAD_MAX 3072      /* a Notify payload, re-serialized */
/* What the reader hands the daemon for one line: the re-serialized message
 * is never longer than the line plus a little escaping room. */
#define CHAN_OUT_MAX (2 * CHAN_QUOTE_MAX + 256)

/* The Notify events a guest may send (dstack's host API, plus the agent's). */
extern const char *const chanmsg_events[];
/* The requests without parameters a plugin answers (GetKmsConfig,
 * GetGatewayConfig): dstack's VMM hands these URLs to the guest in its
 * .sys-config.json only; cvmm also answers them over the channel. */
extern const char *const chanmsg_plugin_calls[];

/*
 * Validates one line (without its newline) a guest sent. On success writes
 * the re-serialized message, one JSON object without a newline:
 *   {"m":"Info","id":N}
 *   {"m":"Notify","event":E,"payload":P}   P a string or an object
 *   {"m":"GetSealingKey","id":N,"quote":"hex"}
 *   {"m":"GetKmsConfig","id":N}, {"m":"GetGatewayConfig","id":N}
 * into out and returns its length. Anything else in the line (a VM id or
 * name the guest claims, unknown keys) is dropped. Returns -EINVAL (bad),
 * -EMSGSIZE (over its bound) or -ENOSPC (out too small), with why.
 */
int chanmsg_validate(const char *line, size_t len, char *out, size_t outlen, char *why,
		     size_t whylen);

#endif
