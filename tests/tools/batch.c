/* sl-test-batch: encodes record batches from a text description and decodes batches to JSON
 * lines, so tests in other languages can compare our codec with other Kafka clients. */
#include "common/batch.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/mem.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * encode: stdin has one record per line, fields separated by blanks:
 *
 *     TIMESTAMP KEY VALUE [HKEY=HVALUE ...]
 *
 * KEY, VALUE and HVALUE are "-" for null or "x:" followed by hex digits ("x:" alone is empty);
 * HKEY is hex digits (possibly none). Blank lines and lines starting with '#' are skipped.
 * stdout receives the batch bytes.
 *
 * decode: stdin has one or more batches back to back. stdout receives, per batch, a line
 * {"batch": {...header fields...}} and one {"record": {...}} line per record, with bytes as hex
 * strings (null as null). A bad batch prints its error on stderr and exits 1.
 */

#define USAGE                                                                                      \
    "usage: sl-test-batch encode [--codec none|gzip] [--level N] [--base-offset N]\n"              \
    "                            [--leader-epoch N] [--attributes N] [--producer-id N]\n"          \
    "                            [--producer-epoch N] [--base-sequence N]  < records > batch\n"    \
    "       sl-test-batch decode [--strict] [--max-bytes N]  < batches > json-lines\n"

#define MAX_HEADERS 64

static int read_all(FILE *f, struct sl_buf *b)
{
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        sl_buf_append(b, chunk, n);
    if (ferror(f))
        return -EIO;
    return sl_buf_error(b);
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes hex text into a fresh allocation; *out is never NULL on success (empty is fine). */
static int hex_decode(const char *s, uint8_t **out, size_t *len)
{
    size_t n = strlen(s);
    if (n % 2)
        return -EINVAL;
    uint8_t *p = sl_malloc(n / 2 + 1);
    if (!p)
        return -ENOMEM;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hex_val(s[2 * i]), lo = hex_val(s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            sl_free(p);
            return -EINVAL;
        }
        p[i] = (uint8_t)(hi << 4 | lo);
    }
    *out = p;
    *len = n / 2;
    return 0;
}

/* "-" is null, "x:HEX" bytes. The allocation (if any) goes to *owned. */
static int parse_bytes(const char *tok, struct sl_bytes *b, uint8_t **owned)
{
    *owned = NULL;
    if (strcmp(tok, "-") == 0) {
        *b = SL_BYTES_NULL;
        return 0;
    }
    if (strncmp(tok, "x:", 2) != 0)
        return -EINVAL;
    size_t len;
    int rc = hex_decode(tok + 2, owned, &len);
    if (rc)
        return rc;
    *b = (struct sl_bytes){*owned, len};
    return 0;
}

static int parse_i64(const char *s, int64_t *v)
{
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 0);
    if (errno || end == s || *end)
        return -EINVAL;
    *v = x;
    return 0;
}

/* Adds the record described by one line; returns 0 or an error after printing why. */
static int encode_line(struct sl_batch_builder *b, char *line, int lineno)
{
    uint8_t *owned[2 + 2 * MAX_HEADERS] = {0};
    size_t nowned = 0;
    struct sl_batch_kv headers[MAX_HEADERS];
    size_t nh = 0;
    struct sl_bytes key = SL_BYTES_NULL, value = SL_BYTES_NULL;
    int64_t ts = 0;
    int rc = 0;
    char *save = NULL;
    char *tok = strtok_r(line, " \t\r", &save);
    for (int field = 0; tok; field++, tok = strtok_r(NULL, " \t\r", &save)) {
        if (field == 0) {
            rc = parse_i64(tok, &ts);
        } else if (field == 1) {
            rc = parse_bytes(tok, &key, &owned[nowned++]);
        } else if (field == 2) {
            rc = parse_bytes(tok, &value, &owned[nowned++]);
        } else {
            char *eq = strchr(tok, '=');
            if (!eq || nh == MAX_HEADERS) {
                rc = -EINVAL;
                break;
            }
            *eq = '\0';
            size_t klen;
            rc = hex_decode(tok, &owned[nowned], &klen);
            if (rc)
                break;
            headers[nh].key = (struct sl_bytes){owned[nowned++], klen};
            rc = parse_bytes(eq + 1, &headers[nh].value, &owned[nowned++]);
            nh++;
        }
        if (rc)
            break;
    }
    if (!rc)
        rc = sl_batch_builder_add(b, ts, key, value, headers, nh);
    if (rc)
        fprintf(stderr, "sl-test-batch: stdin:%d: %s\n", lineno, sl_strerror(rc));
    for (size_t i = 0; i < nowned; i++)
        sl_free(owned[i]);
    return rc;
}

static int cmd_encode(int argc, char **argv)
{
    struct sl_batch_opts o = SL_BATCH_OPTS_DEFAULT;
    for (int i = 2; i < argc; i++) {
        int64_t v = 0;
        if (strcmp(argv[i], "--codec") == 0 && i + 1 < argc) {
            i++;
            if (strcmp(argv[i], "none") == 0)
                o.codec = SL_BATCH_CODEC_NONE;
            else if (strcmp(argv[i], "gzip") == 0)
                o.codec = SL_BATCH_CODEC_GZIP;
            else
                goto usage;
            continue;
        }
        if (i + 1 >= argc || parse_i64(argv[i + 1], &v))
            goto usage;
        if (strcmp(argv[i], "--level") == 0)
            o.level = (int)v;
        else if (strcmp(argv[i], "--base-offset") == 0)
            o.base_offset = v;
        else if (strcmp(argv[i], "--leader-epoch") == 0)
            o.partition_leader_epoch = (int32_t)v;
        else if (strcmp(argv[i], "--attributes") == 0)
            o.attributes = (int16_t)v;
        else if (strcmp(argv[i], "--producer-id") == 0)
            o.producer_id = v;
        else if (strcmp(argv[i], "--producer-epoch") == 0)
            o.producer_epoch = (int16_t)v;
        else if (strcmp(argv[i], "--base-sequence") == 0)
            o.base_sequence = (int32_t)v;
        else
            goto usage;
        i++;
    }

    struct sl_buf in, out;
    sl_buf_init(&in);
    sl_buf_init(&out);
    struct sl_batch_builder b;
    int rc = sl_batch_builder_init(&b, &o);
    if (rc) {
        fprintf(stderr, "sl-test-batch: bad options: %s\n", sl_strerror(rc));
        goto done;
    }
    rc = read_all(stdin, &in);
    if (!rc)
        rc = sl_buf_put_i8(&in, 0); /* NUL-terminate for the line splitter */
    if (rc) {
        fprintf(stderr, "sl-test-batch: reading stdin: %s\n", sl_strerror(rc));
        goto done;
    }
    int lineno = 0;
    /* Count lines by hand: strtok_r would skip empty ones and misnumber the rest. */
    char *text = (char *)in.data;
    while (text && *text && !rc) {
        lineno++;
        char *nl = strchr(text, '\n');
        if (nl)
            *nl = '\0';
        char *line = text;
        text = nl ? nl + 1 : NULL;
        line += strspn(line, " \t\r");
        if (*line == '\0' || *line == '#')
            continue;
        rc = encode_line(&b, line, lineno);
    }
    if (!rc)
        rc = sl_batch_builder_finish(&b, &out);
    if (!rc && fwrite(out.data, 1, out.len, stdout) != out.len)
        rc = -EIO;
    if (rc)
        fprintf(stderr, "sl-test-batch: encode failed: %s\n", sl_strerror(rc));
done:
    sl_batch_builder_fini(&b);
    sl_buf_fini(&in);
    sl_buf_fini(&out);
    return rc ? 1 : 0;
usage:
    fputs(USAGE, stderr);
    return 2;
}

static void print_hex_or_null(struct sl_bytes b)
{
    if (!b.p) {
        fputs("null", stdout);
        return;
    }
    putchar('"');
    for (size_t i = 0; i < b.len; i++)
        printf("%02x", b.p[i]);
    putchar('"');
}

static void print_header(const struct sl_batch_header *h)
{
    printf("{\"batch\": {\"base_offset\": %" PRId64 ", \"batch_length\": %" PRId32
           ", \"partition_leader_epoch\": %" PRId32 ", \"magic\": %d, \"crc\": %" PRIu32
           ", \"attributes\": %d, \"last_offset_delta\": %" PRId32 ", \"first_timestamp\": %" PRId64
           ", \"max_timestamp\": %" PRId64 ", \"producer_id\": %" PRId64
           ", \"producer_epoch\": %d, \"base_sequence\": %" PRId32 ", \"record_count\": %" PRId32
           ", \"size\": %zu}}\n",
           h->base_offset, h->batch_length, h->partition_leader_epoch, h->magic, h->crc,
           h->attributes, h->last_offset_delta, h->first_timestamp, h->max_timestamp,
           h->producer_id, h->producer_epoch, h->base_sequence, h->record_count, h->size);
}

static void print_record(const struct sl_batch_record *r)
{
    printf("{\"record\": {\"offset\": %" PRId64 ", \"timestamp\": %" PRId64
           ", \"attributes\": %d, \"key\": ",
           r->offset, r->timestamp, r->attributes);
    print_hex_or_null(r->key);
    fputs(", \"value\": ", stdout);
    print_hex_or_null(r->value);
    fputs(", \"headers\": [", stdout);
    struct sl_batch_hiter hi;
    struct sl_bytes k, v;
    sl_batch_hiter_init(&hi, r);
    for (int i = 0; sl_batch_hiter_next(&hi, &k, &v); i++) {
        fputs(i ? ", [" : "[", stdout);
        print_hex_or_null(k);
        fputs(", ", stdout);
        print_hex_or_null(v);
        putchar(']');
    }
    fputs("]}}\n", stdout);
}

static int cmd_decode(int argc, char **argv)
{
    unsigned flags = 0;
    int64_t max = 64 << 20;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--strict") == 0) {
            flags |= SL_BATCH_STRICT;
        } else if (strcmp(argv[i], "--max-bytes") == 0 && i + 1 < argc &&
                   parse_i64(argv[i + 1], &max) == 0 && max >= 0) {
            i++;
        } else {
            fputs(USAGE, stderr);
            return 2;
        }
    }
    struct sl_buf in, scratch;
    sl_buf_init(&in);
    sl_buf_init(&scratch);
    struct sl_err err = {{0}};
    int rc = read_all(stdin, &in);
    if (rc)
        sl_err_set(&err, rc, "reading stdin: %s", sl_strerror(rc));
    size_t pos = 0;
    while (!rc && pos < in.len) {
        struct sl_batch_header h;
        rc = sl_batch_parse_header(&h, in.data + pos, in.len - pos, flags, &err);
        if (rc)
            break;
        print_header(&h);
        struct sl_batch_iter it;
        rc = sl_batch_iter_init(&it, &h, in.data + pos, &scratch, (size_t)max, flags, &err);
        struct sl_batch_record r;
        while (!rc && (rc = sl_batch_iter_next(&it, &r, &err)) == 1) {
            print_record(&r);
            rc = 0;
        }
        if (rc)
            break;
        pos += h.size;
    }
    if (rc)
        fprintf(stderr, "sl-test-batch: batch at byte %zu: %s (%s)\n", pos, err.msg,
                sl_strerror(rc));
    sl_buf_fini(&in);
    sl_buf_fini(&scratch);
    fflush(stdout);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "encode") == 0)
        return cmd_encode(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "decode") == 0)
        return cmd_decode(argc, argv);
    fputs(USAGE, stderr);
    return 2;
}
