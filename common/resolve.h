/* Host name resolution that never blocks an event loop: getaddrinfo on a short-lived thread. */
#ifndef SL_COMMON_RESOLVE_H
#define SL_COMMON_RESOLVE_H

#include <ev.h>
#include <netdb.h>
#include <stdint.h>

/*
 * getaddrinfo may wait for DNS for many seconds (resolv.conf's timeout times attempts times
 * servers); an agent whose loop waited that long would stop tailing and miss its watchdog. A
 * numeric address (IPv4 or IPv6) is converted on the spot; a name is resolved on a detached
 * thread that reports back through an ev_async on the loop.
 */

/* The outcome: rc is 0 and ai a list the callee owns (freeaddrinfo), or rc a getaddrinfo
 * EAI_* code (ai NULL; gai_strerror names it). Called on the loop thread. */
typedef void (*sl_resolve_cb)(void *arg, struct addrinfo *ai, int rc);

struct sl_resolve;

/*
 * Looks up host:port for a TCP stream socket (IPv4 and IPv6). A numeric host calls cb before
 * returning and returns 0 with *out NULL. A name starts a lookup and returns 0 with *out set:
 * cb runs later from the loop, once, unless sl_resolve_cancel comes first. Returns -ENOMEM or
 * -errno from pthread_create (cb not called). loop is borrowed and must outlive the lookup (a
 * cancelled lookup no longer touches it).
 */
int sl_resolve_start(struct ev_loop *loop, const char *host, uint16_t port, sl_resolve_cb cb,
                     void *arg, struct sl_resolve **out);

/* Abandons a started lookup: cb will not be called and the lookup's memory is released by
 * whichever side finishes last. From the loop thread only; r may be NULL. */
void sl_resolve_cancel(struct sl_resolve *r);

#endif
