#include "common/resolve.h"

#include "common/base.h"
#include "common/mem.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Guards every lookup's refs and cancelled flag. A global lock is enough: lookups are rare
 * (a connection attempt to a named collector), and it lets a finished thread learn, safely,
 * that the loop it would wake is no longer its to touch. */
static pthread_mutex_t resolve_lock = PTHREAD_MUTEX_INITIALIZER;

struct sl_resolve {
    struct ev_loop *loop; /* borrowed; not touched once cancelled */
    ev_async done;
    int refs;       /* the loop side and the thread, under resolve_lock */
    bool cancelled; /* under resolve_lock */
    char *host;     /* owned */
    char port[8];
    struct addrinfo *ai; /* written by the thread before it reports */
    int rc;
    sl_resolve_cb cb;
    void *arg;
};

static void resolve_free(struct sl_resolve *r)
{
    if (r->ai)
        freeaddrinfo(r->ai);
    sl_free(r->host);
    sl_free(r);
}

/* Drops one side's reference; called with resolve_lock held. Returns r when it was the last,
 * for the caller to free after unlocking. */
static struct sl_resolve *resolve_unref(struct sl_resolve *r)
{
    return --r->refs == 0 ? r : NULL;
}

static int lookup(const char *host, const char *port, int flags, struct addrinfo **ai)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | flags};
    *ai = NULL;
    int rc = getaddrinfo(host, port, &hints, ai);
    if (rc == 0 && !*ai)
        rc = EAI_NONAME;
    return rc;
}

static void *resolve_thread(void *p)
{
    struct sl_resolve *r = p;
    r->rc = lookup(r->host, r->port, 0, &r->ai);
    pthread_mutex_lock(&resolve_lock);
    if (!r->cancelled)
        ev_async_send(r->loop, &r->done);
    struct sl_resolve *dead = resolve_unref(r);
    pthread_mutex_unlock(&resolve_lock);
    if (dead)
        resolve_free(dead);
    return NULL;
}

static void on_done(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)revents;
    struct sl_resolve *r = sl_container_of(w, struct sl_resolve, done);
    ev_async_stop(loop, w);
    pthread_mutex_lock(&resolve_lock);
    struct addrinfo *ai = r->ai;
    r->ai = NULL;
    sl_resolve_cb cb = r->cb;
    void *arg = r->arg;
    int rc = r->rc;
    struct sl_resolve *dead = resolve_unref(r);
    pthread_mutex_unlock(&resolve_lock);
    if (dead)
        resolve_free(dead);
    cb(arg, ai, rc);
}

int sl_resolve_start(struct ev_loop *loop, const char *host, uint16_t port, sl_resolve_cb cb,
                     void *arg, struct sl_resolve **out)
{
    *out = NULL;
    char ports[8];
    snprintf(ports, sizeof(ports), "%u", (unsigned)port);
    struct addrinfo *ai;
    int rc = lookup(host, ports, AI_NUMERICHOST, &ai);
    if (rc != EAI_NONAME) { /* a numeric address, good or bad: no DNS involved */
        cb(arg, ai, rc);
        return 0;
    }
    struct sl_resolve *r = sl_calloc(1, sizeof(*r));
    if (!r || !(r->host = sl_strdup(host))) {
        sl_free(r);
        return -ENOMEM;
    }
    r->loop = loop;
    memcpy(r->port, ports, sizeof(ports));
    r->cb = cb;
    r->arg = arg;
    r->refs = 2;
    ev_async_init(&r->done, on_done);
    ev_async_start(loop, &r->done);

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int e = pthread_create(&t, &attr, resolve_thread, r);
    pthread_attr_destroy(&attr);
    if (e != 0) {
        ev_async_stop(loop, &r->done);
        resolve_free(r);
        return -e;
    }
    *out = r;
    return 0;
}

void sl_resolve_cancel(struct sl_resolve *r)
{
    if (!r)
        return;
    ev_async_stop(r->loop, &r->done);
    pthread_mutex_lock(&resolve_lock);
    r->cancelled = true;
    struct sl_resolve *dead = resolve_unref(r);
    pthread_mutex_unlock(&resolve_lock);
    if (dead)
        resolve_free(dead);
}
