#include "agent/encoder.h"

#include "common/base.h"
#include "common/mem.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>

struct agent_encoder {
    struct ev_loop *loop; /* borrowed */
    ev_async async;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* under mu */
    struct agent_encode_job *q_head, *q_tail; /* to encode, oldest first */
    struct agent_encode_job *d_head, *d_tail; /* encoded, not yet handed back */
    bool stop;
    /* loop thread only */
    size_t pending;
};

static void push(struct agent_encode_job **head, struct agent_encode_job **tail,
                 struct agent_encode_job *job)
{
    job->next = NULL;
    if (*tail)
        (*tail)->next = job;
    else
        *head = job;
    *tail = job;
}

static void *encoder_main(void *arg)
{
    struct agent_encoder *e = arg;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        while (!e->stop && !e->q_head)
            pthread_cond_wait(&e->cv, &e->mu);
        if (e->stop)
            break;
        struct agent_encode_job *job = e->q_head;
        e->q_head = job->next;
        if (!e->q_head)
            e->q_tail = NULL;
        pthread_mutex_unlock(&e->mu);
        job->rc = sl_batch_builder_finish(job->builder, job->out);
        pthread_mutex_lock(&e->mu);
        push(&e->d_head, &e->d_tail, job);
        ev_async_send(e->loop, &e->async);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

static void encoder_on_async(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop;
    (void)revents;
    struct agent_encoder *e = sl_container_of(w, struct agent_encoder, async);
    pthread_mutex_lock(&e->mu);
    struct agent_encode_job *list = e->d_head;
    e->d_head = e->d_tail = NULL;
    pthread_mutex_unlock(&e->mu);
    while (list) {
        struct agent_encode_job *job = list;
        list = job->next;
        job->next = NULL;
        e->pending--;
        job->done(job); /* may submit more: they queue behind, on the worker's list */
    }
}

int agent_encoder_new(struct ev_loop *loop, struct agent_encoder **out)
{
    *out = NULL;
    struct agent_encoder *e = sl_calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    e->loop = loop;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    ev_async_init(&e->async, encoder_on_async);
    ev_async_start(loop, &e->async);
    /* An idle encoder must not keep ev_run alive; pending work is others' watchers' concern. */
    ev_unref(loop);
    int rc = pthread_create(&e->thread, NULL, encoder_main, e);
    if (rc != 0) {
        ev_ref(loop);
        ev_async_stop(loop, &e->async);
        pthread_cond_destroy(&e->cv);
        pthread_mutex_destroy(&e->mu);
        sl_free(e);
        return -rc;
    }
    *out = e;
    return 0;
}

void agent_encoder_submit(struct agent_encoder *e, struct agent_encode_job *job)
{
    e->pending++;
    pthread_mutex_lock(&e->mu);
    push(&e->q_head, &e->q_tail, job);
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

size_t agent_encoder_pending(const struct agent_encoder *e)
{
    return e->pending;
}

void agent_encoder_free(struct agent_encoder *e, void (*abandon)(struct agent_encode_job *job))
{
    if (!e)
        return;
    pthread_mutex_lock(&e->mu);
    e->stop = true;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    ev_ref(e->loop);
    ev_async_stop(e->loop, &e->async);
    /* Encoded ones were submitted before those still queued: abandon in submission order. */
    struct agent_encode_job *lists[2] = {e->d_head, e->q_head};
    for (int i = 0; i < 2; i++) {
        while (lists[i]) {
            struct agent_encode_job *job = lists[i];
            lists[i] = job->next;
            job->next = NULL;
            abandon(job);
        }
    }
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    sl_free(e);
}
