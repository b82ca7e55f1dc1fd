/* The files sink's compressor thread (see sink_zip.h for the file format and the flow). */
#include "collector/cli/sink_zip.h"

#include "collector/cli/sink_gz.h"

#include "common/base.h"
#include "common/json_read.h"
#include "common/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct zjob {
    struct sink_zfile *f;                         /* borrowed */
    uint64_t seq;                                 /* its place among f's chunks */
    struct sink_zchunk c;                         /* owned */
    struct sink_zreject *rejects, **rejects_tail; /* owned: found in c, for f */
    int64_t first_ok;                             /* the first record of c kept, or -1 */
    bool seal;                                    /* f's last chunk: fsync f once written */
    struct zjob *next;
};

/* Jobs in a FIFO list. */
struct zjobq {
    struct zjob *head, *tail;
    unsigned n;
};

static void jobq_push(struct zjobq *q, struct zjob *job)
{
    job->next = NULL;
    if (q->tail)
        q->tail->next = job;
    else
        q->head = job;
    q->tail = job;
    q->n++;
}

/* The oldest job, or NULL. */
static struct zjob *jobq_pop(struct zjobq *q)
{
    struct zjob *job = q->head;
    if (!job)
        return NULL;
    q->head = job->next;
    if (!q->head)
        q->tail = NULL;
    q->n--;
    return job;
}

/* One worker thread and what only it touches. */
struct zworker {
    struct sink_zip *z; /* borrowed */
    pthread_t thread;
    bool started;
    struct sink_gz *gz; /* owned */
};

struct sink_zip {
    pthread_mutex_t mu;
    pthread_cond_t work; /* a job was queued, or stop */
    pthread_cond_t done; /* a job finished, or a file's turn moved */
    struct zworker w[SINK_ZIP_WORKERS_MAX];
    unsigned nworkers;
    unsigned queue_max;
    /* under mu */
    struct zjobq queue; /* put, not taken yet */
    struct zjobq free;  /* finished, kept for their buffers */
    bool stop;
};

/*
 * A finished job's storage goes back to the driver (swapped into the chunk it fills next) only
 * once REUSE_AFTER other jobs have finished after it. Storage a worker has just read is still
 * in that core's cache, and the driver's writes to it must take each line back from there, a
 * cross-core round trip per 64 bytes: on a 2-core machine that made the driver's thread a fifth
 * slower. 16 chunks of 256 KiB outlast a worker core's L2 cache; the cost is that many chunks
 * of memory kept, beside the queue's.
 */
#define REUSE_AFTER 16

void sink_zfile_init(struct sink_zfile *f, int fd)
{
    memset(f, 0, sizeof(*f));
    f->fd = fd;
    f->first_ok = -1;
    f->rejects_tail = &f->rejects;
}

void sink_zfile_drop_rejects(struct sink_zfile *f)
{
    while (f->rejects) {
        struct sink_zreject *r = f->rejects;
        f->rejects = r->next;
        sl_free(r);
    }
    f->rejects_tail = &f->rejects;
}

void sink_zchunk_init(struct sink_zchunk *c)
{
    sl_buf_init(&c->lines);
    sl_buf_init(&c->recs);
    sl_buf_init(&c->keys);
}

void sink_zchunk_fini(struct sink_zchunk *c)
{
    sl_buf_fini(&c->lines);
    sl_buf_fini(&c->recs);
    sl_buf_fini(&c->keys);
}

static void zchunk_reset(struct sink_zchunk *c)
{
    sl_buf_reset(&c->lines);
    sl_buf_reset(&c->recs);
    sl_buf_reset(&c->keys);
}

/* Keeps the records of job->c whose value is a JSON object, packed at the front of lines, and
 * moves the others to job->rejects. Returns 0 or -ENOMEM. */
static int check_chunk(struct zjob *job)
{
    const struct sink_zrec *recs = (const struct sink_zrec *)job->c.recs.data;
    size_t n = job->c.recs.len / sizeof(*recs);
    uint8_t *lines = job->c.lines.data;
    const uint8_t *keys = job->c.keys.data;
    size_t at = 0, out = 0, kat = 0;
    for (size_t i = 0; i < n; i++) {
        const struct sink_zrec *r = &recs[i];
        uint8_t *v = lines + at;
        enum sl_json_type t = SL_JSON_NONE;
        bool newline;
        bool json = sl_json_check_nl(v, r->vlen, &t, &newline, NULL) == 0;
        bool ok = json && t == SL_JSON_OBJECT;
        size_t klen = r->klen > 0 ? (size_t)r->klen : 0;
        if (ok) {
            if (newline)
                sl_json_one_line(v, r->vlen);
            if (out != at)
                memmove(lines + out, v, (size_t)r->vlen + 1);
            out += (size_t)r->vlen + 1;
            if (job->first_ok < 0)
                job->first_ok = r->offset;
        } else {
            struct sink_zreject *x = sl_malloc(sizeof(*x) + klen + r->vlen);
            if (!x)
                return -ENOMEM;
            x->next = NULL;
            x->offset = r->offset;
            x->timestamp = r->timestamp;
            x->klen = r->klen;
            x->vlen = r->vlen;
            /* Checked again for the message: rare, and most values pass without one. */
            struct sl_err e = {{0}};
            if (!json)
                (void)sl_json_check(v, r->vlen, NULL, &e);
            snprintf(x->why, sizeof(x->why), "%s",
                     !json ? e.msg : "value is JSON but not an object");
            if (klen)
                memcpy(x->data, keys + kat, klen);
            memcpy(x->data + klen, v, r->vlen);
            *job->rejects_tail = x;
            job->rejects_tail = &x->next;
        }
        at += (size_t)r->vlen + 1;
        kat += klen;
    }
    job->c.lines.len = out;
    return 0;
}

#define SYNC_HINT_BYTES (1u << 20)

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Checks and compresses job's chunk. Returns the member's length and *out (0: nothing kept),
 * or -errno. Runs without the lock, on data only this worker touches. */
static int64_t compress_one(struct zworker *w, struct zjob *job, const uint8_t **out)
{
    if (job->c.recs.len && check_chunk(job) != 0)
        return -ENOMEM;
    if (job->c.lines.len == 0)
        return 0; /* every record refused: no member */
    return sink_gz_member(w->gz, job->c.lines.data, job->c.lines.len, out);
}

/* Appends the member; returns 0 or -errno. Only the worker whose turn it is in f writes. */
static int write_member(struct sink_zfile *f, const uint8_t *member, size_t len)
{
    int rc = write_all(f->fd, member, len);
    if (rc < 0)
        return rc;
    /* Start the disk write now, so the fsync after the file's last chunk has little left to
     * wait for (this worker compresses nothing while it waits); once per SYNC_HINT_BYTES, as
     * each call submits its own small writes. Only a hint: errors show at the fsync. */
    f->unhinted += len;
    if (f->unhinted >= SYNC_HINT_BYTES) {
        (void)sync_file_range(f->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
        f->unhinted = 0;
    }
    return 0;
}

/*
 * Workers take chunks in queue order and compress them side by side; a file's members are
 * written in its chunks' order: a worker done early waits for the chunk before its own, which
 * another worker holds (it was queued, so taken, earlier), so waiting always ends.
 */
static void *zip_main(void *arg)
{
    struct zworker *w = arg;
    struct sink_zip *z = w->z;
    pthread_setname_np(pthread_self(), "sluice-gzip"); /* for top -H and perf */
    pthread_mutex_lock(&z->mu);
    for (;;) {
        while (!z->stop && !z->queue.head)
            pthread_cond_wait(&z->work, &z->mu);
        struct zjob *job = jobq_pop(&z->queue);
        if (!job)
            break; /* stop, and nothing left */
        struct sink_zfile *f = job->f;
        bool skip = f->err != 0;
        pthread_mutex_unlock(&z->mu);
        const uint8_t *member = NULL;
        int64_t rc = skip ? 0 : compress_one(w, job, &member);
        pthread_mutex_lock(&z->mu);
        while (f->done_seq != job->seq)
            pthread_cond_wait(&z->done, &z->mu);
        if ((rc > 0 || job->seal) && !f->err) {
            pthread_mutex_unlock(&z->mu);
            int wr = rc > 0 ? write_member(f, member, (size_t)rc) : 0;
            /* Here rather than on the driver's thread, which would fetch nothing meanwhile. */
            bool sync_failed = wr == 0 && job->seal && fsync(f->fd) != 0;
            if (sync_failed)
                wr = -errno;
            pthread_mutex_lock(&z->mu);
            if (wr < 0) {
                rc = wr;
                f->sync_failed = sync_failed;
            }
            f->synced = wr == 0 && job->seal;
        }
        if (rc < 0 && !f->err)
            f->err = (int)rc;
        if (rc >= 0 && !f->err) {
            f->out_bytes += (uint64_t)rc;
            if (f->first_ok < 0)
                f->first_ok = job->first_ok;
            if (job->rejects) {
                *f->rejects_tail = job->rejects;
                f->rejects_tail = job->rejects_tail;
                job->rejects = NULL;
            }
        }
        while (job->rejects) {
            struct sink_zreject *x = job->rejects;
            job->rejects = x->next;
            sl_free(x);
        }
        job->rejects_tail = &job->rejects;
        job->first_ok = -1;
        job->seal = false;
        f->done_seq++;
        f->pending--;
        job->f = NULL;
        zchunk_reset(&job->c);
        jobq_push(&z->free, job);
        pthread_cond_broadcast(&z->done);
    }
    pthread_mutex_unlock(&z->mu);
    return NULL;
}

int sink_zip_new(int level, unsigned workers, unsigned queue_max, struct sink_zip **out,
                 struct sl_err *err)
{
    struct sink_zip *z = sl_calloc(1, sizeof(*z));
    if (!z)
        return sl_err_set(err, -ENOMEM, "out of memory");
    z->queue_max = queue_max ? queue_max : 1;
    pthread_mutex_init(&z->mu, NULL);
    pthread_cond_init(&z->work, NULL);
    pthread_cond_init(&z->done, NULL);
    z->nworkers = SL_MAX(1u, SL_MIN(workers, (unsigned)SINK_ZIP_WORKERS_MAX));
    for (unsigned i = 0; i < z->nworkers; i++) {
        struct zworker *w = &z->w[i];
        w->z = z;
        int rc = sink_gz_new(level, &w->gz, err);
        if (rc != 0) {
            sink_zip_free(z);
            return rc;
        }
        rc = pthread_create(&w->thread, NULL, zip_main, w);
        if (rc != 0) {
            sink_zip_free(z);
            return sl_err_set(err, -rc, "cannot start a compressor thread: %s", sl_strerror(-rc));
        }
        w->started = true;
    }
    *out = z;
    return 0;
}

void sink_zip_free(struct sink_zip *z)
{
    if (!z)
        return;
    pthread_mutex_lock(&z->mu);
    z->stop = true;
    pthread_cond_broadcast(&z->work);
    pthread_mutex_unlock(&z->mu);
    for (unsigned i = 0; i < z->nworkers; i++) {
        struct zworker *w = &z->w[i];
        if (w->started)
            pthread_join(w->thread, NULL);
        sink_gz_free(w->gz);
    }
    for (struct zjob *j; (j = jobq_pop(&z->free)) != NULL;) {
        sink_zchunk_fini(&j->c);
        sl_free(j);
    }
    pthread_cond_destroy(&z->done);
    pthread_cond_destroy(&z->work);
    pthread_mutex_destroy(&z->mu);
    sl_free(z);
}

static int put(struct sink_zip *z, struct sink_zfile *f, struct sink_zchunk *c, bool seal)
{
    if (c->lines.len == 0 && !seal)
        return 0;
    pthread_mutex_lock(&z->mu);
    while (z->queue.n >= z->queue_max && f->err == 0)
        pthread_cond_wait(&z->done, &z->mu);
    int rc = f->err;
    struct zjob *job = NULL;
    if (rc == 0 && z->free.n > REUSE_AFTER)
        job = jobq_pop(&z->free);
    pthread_mutex_unlock(&z->mu);
    if (rc != 0)
        return rc;
    if (!job) {
        if (!(job = sl_calloc(1, sizeof(*job))))
            return -ENOMEM;
        sink_zchunk_init(&job->c);
        job->rejects_tail = &job->rejects;
        job->first_ok = -1;
    }
    /* The chunk's storage goes to the worker; the caller carries on with the job's old one. */
    struct sink_zchunk t = job->c;
    job->c = *c;
    *c = t;
    job->f = f;
    job->seal = seal;
    pthread_mutex_lock(&z->mu);
    job->seq = f->put_seq++;
    f->pending++;
    jobq_push(&z->queue, job);
    pthread_cond_signal(&z->work);
    pthread_mutex_unlock(&z->mu);
    return 0;
}

int sink_zip_put(struct sink_zip *z, struct sink_zfile *f, struct sink_zchunk *c)
{
    return put(z, f, c, false);
}

int sink_zip_seal(struct sink_zip *z, struct sink_zfile *f, struct sink_zchunk *c)
{
    return put(z, f, c, true);
}

int sink_zip_wait(struct sink_zip *z, struct sink_zfile *f)
{
    pthread_mutex_lock(&z->mu);
    while (f->pending > 0)
        pthread_cond_wait(&z->done, &z->mu);
    int rc = f->err;
    pthread_mutex_unlock(&z->mu);
    return rc;
}

bool sink_zip_idle(struct sink_zip *z, const struct sink_zfile *f)
{
    pthread_mutex_lock(&z->mu);
    bool idle = f->pending == 0;
    pthread_mutex_unlock(&z->mu);
    return idle;
}

uint64_t sink_zip_out_bytes(struct sink_zip *z, const struct sink_zfile *f)
{
    pthread_mutex_lock(&z->mu);
    uint64_t n = f->out_bytes;
    pthread_mutex_unlock(&z->mu);
    return n;
}
