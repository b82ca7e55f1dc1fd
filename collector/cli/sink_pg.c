/* The postgres sink: COPY batches into a table through libpq, each batch committed in the same
 * transaction as the partitions' positions, so rows are neither lost nor duplicated. */
#include "collector/cli/sink.h"

#include "common/log.h"
#include "common/mem.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

/*
 * One transaction per batch (all partitions of this process together):
 *
 *   BEGIN
 *   COPY "table" ("time","host",...) FROM STDIN        the batch's rows, text format
 *   UPDATE "sluice_offsets" SET next_offset = E        one per partition in the batch; each
 *     WHERE grp = G AND topic = T AND part = P         must match exactly one row, or another
 *       AND next_offset = S                            process moved it: ROLLBACK (fenced)
 *   COMMIT
 *
 *   sluice_offsets (grp text, topic text, part int, next_offset bigint, updated timestamptz,
 *                   PRIMARY KEY (grp, topic, part))
 *
 * S is what this process read from (or last wrote to) the offsets row when it took the
 * partition; -1 when the sink never loaded it (then reading starts at the group's commit or
 * `start`). A crash anywhere before COMMIT loses the whole batch and the next owner reads the
 * same records again from S; after COMMIT rows and position are there together. The group
 * commit that follows only feeds lag tools. A record whose value cannot fill a typed column
 * (not JSON, a bad timestamp, a NUL in text) goes to the dead-letter file, which is fsynced
 * before COMMIT.
 *
 * A row PostgreSQL itself rejects (SQLSTATE class 22 data exception, 23 integrity constraint
 * violation: out of range for the column, a CHECK, NOT NULL, a unique key) fails the whole COPY.
 * Its error context names the line ("COPY t, line N, ..."): the transaction is rolled back, row
 * N goes to the dead-letter file with PostgreSQL's message, is cut out of the batch, and the
 * batch is sent again, until it loads or is empty; the positions still move past the bad rows in
 * the same transaction, so exactly once holds for the good rows. Each batch row keeps its record
 * (key, value, offset, timestamp) beside the COPY text for that. A data error whose context
 * names no line (a constraint trigger; a deferred constraint, which SET CONSTRAINTS ALL IMMEDIATE
 * brings forward from COMMIT to the end of the COPY) is traced to its row by loading prefixes of
 * the batch in rolled-back transactions (bisect_row: about log2(batch_rows) COPYs). An error of
 * another class (connection 08, resources 53, operator 57, ...) is a destination error: the
 * driver backs off and retries the batch.
 */

enum col_type { T_TEXT, T_JSONB, T_TIMESTAMPTZ, T_BIGINT, T_INTEGER, T_DOUBLE, T_BOOLEAN };

static const struct sl_conf_enum col_types[] = {
    {"text", T_TEXT},
    {"jsonb", T_JSONB},
    {"timestamptz", T_TIMESTAMPTZ},
    {"bigint", T_BIGINT},
    {"integer", T_INTEGER},
    {"double", T_DOUBLE},
    {"boolean", T_BOOLEAN},
    {NULL, 0},
};

static const char *const col_sql[] = {
    "text", "jsonb", "timestamptz", "bigint", "integer", "double precision", "boolean"};

enum col_from { F_VALUE, F_FIELD, F_TOPIC, F_PARTITION, F_OFFSET, F_TIMESTAMP, F_KEY };

struct pg_col {
    char *name;        /* owned: the column */
    char *from;        /* owned: value, value.FIELD, topic, partition, offset, timestamp, key */
    int type;          /* enum col_type */
    int src;           /* derived: enum col_from */
    const char *field; /* derived: FIELD of value.FIELD, inside `from` */
};

struct pg_conf {
    char *conninfo;      /* owned */
    char *table;         /* owned */
    char *offsets_table; /* owned */
    bool create_tables;
    int64_t batch_rows, batch_bytes, batch_age_ms;
    struct sl_conf_map columns; /* of struct pg_col */
};

static void col_check(void *obj, struct sl_conf_check *chk)
{
    struct pg_col *c = obj;
    static const struct {
        const char *name;
        int src;
    } froms[] = {{"value", F_VALUE},   {"topic", F_TOPIC},         {"partition", F_PARTITION},
                 {"offset", F_OFFSET}, {"timestamp", F_TIMESTAMP}, {"key", F_KEY}};
    c->src = -1;
    for (size_t i = 0; i < SL_ARRAY_LEN(froms); i++)
        if (!strcmp(c->from, froms[i].name))
            c->src = froms[i].src;
    if (!strncmp(c->from, "value.", 6) && c->from[6]) {
        c->src = F_FIELD;
        c->field = c->from + 6;
    }
    if (c->src < 0)
        sl_conf_check_error(chk, "from",
                            "from must be value, value.FIELD, topic, partition, offset, "
                            "timestamp or key (got '%s')",
                            c->from);
}

static const struct sl_conf_opt col_opts[] = {
    {.name = "from",
     .type = SL_CONF_STRING,
     .offset = offsetof(struct pg_col, from),
     .flags = SL_CONF_REQUIRED,
     .min = 1,
     .max = 200,
     .help = "value (the whole JSON value), value.FIELD (a top-level member), topic, partition, "
             "offset, timestamp (the record's) or key"},
    {.name = "type",
     .type = SL_CONF_ENUM,
     .offset = offsetof(struct pg_col, type),
     .def = "text",
     .enums = col_types,
     .help = "the column's type; a value that does not fit sends the record to the dead-letter "
             "file"},
    {.name = NULL},
};

static const struct sl_conf_section col_section = {
    .name = "column",
    .help = "one column of the table and where its value comes from",
    .opts = col_opts,
    .size = sizeof(struct pg_col),
    .name_offset = offsetof(struct pg_col, name),
    .check = col_check,
};

static const struct sl_conf_opt pg_opts[] = {
    {.name = "conninfo",
     .type = SL_CONF_STRING,
     .offset = offsetof(struct pg_conf, conninfo),
     .flags = SL_CONF_REQUIRED,
     .min = 1,
     .max = 4096,
     .help = "libpq connection string or URI ('host=db dbname=logs user=sink', "
             "postgresql://...); PG* variables and ~/.pgpass apply"},
    {.name = "table",
     .type = SL_CONF_STRING,
     .offset = offsetof(struct pg_conf, table),
     .flags = SL_CONF_REQUIRED,
     .min = 1,
     .max = 127,
     .help = "the table rows go to (schema.table allowed); a row it rejects (SQLSTATE class 22 "
             "or 23: out of range, a CHECK, NOT NULL, unique) goes to the dead-letter file and "
             "the rest of its batch loads"},
    {.name = "offsets_table",
     .type = SL_CONF_STRING,
     .offset = offsetof(struct pg_conf, offsets_table),
     .def = "sluice_offsets",
     .min = 1,
     .max = 127,
     .help = "the table holding each partition's next offset, written with the rows"},
    {.name = "create_tables",
     .type = SL_CONF_BOOL,
     .offset = offsetof(struct pg_conf, create_tables),
     .def = "true",
     .help = "create both tables when missing (the data table from `columns`)"},
    {.name = "batch_rows",
     .type = SL_CONF_INT,
     .offset = offsetof(struct pg_conf, batch_rows),
     .def = "50000",
     .min = 1,
     .max = 10000000,
     .help = "rows per transaction at most"},
    {.name = "batch_bytes",
     .type = SL_CONF_SIZE,
     .offset = offsetof(struct pg_conf, batch_bytes),
     .def = "32MiB",
     .min = 4096,
     .max = 1LL << 30,
     .help = "COPY bytes per transaction at most (memory held)"},
    {.name = "batch_age",
     .type = SL_CONF_DURATION,
     .offset = offsetof(struct pg_conf, batch_age_ms),
     .def = "1s",
     .min = 1,
     .max = 3600000,
     .help = "a batch commits this long after its first row at the latest"},
    {.name = "columns",
     .type = SL_CONF_MAP,
     .offset = offsetof(struct pg_conf, columns),
     .sub = &col_section,
     .help = "column name -> {from, type}; default: time timestamptz, host, source, message "
             "text from the value's members, value jsonb, topic, partition, offset"},
    {.name = NULL},
};

static void pg_conf_check(void *obj, struct sl_conf_check *chk)
{
    struct pg_conf *c = obj;
    for (const char *p = c->table; p && *p; p++)
        if (*p == '"' || (unsigned char)*p < 0x20)
            sl_conf_check_error(chk, "table", "table: '\"' and control characters not allowed");
}

const struct sl_conf_section sink_pg_section = {
    .name = "postgres",
    .help = "COPY into a PostgreSQL table; positions in the same transaction",
    .opts = pg_opts,
    .size = sizeof(struct pg_conf),
    .check = pg_conf_check,
};

/* A column as the loader uses it: the configuration's, or the defaults below. */
struct col_spec {
    const char *name;  /* borrowed */
    int type;          /* enum col_type */
    int src;           /* enum col_from */
    const char *field; /* borrowed: FIELD of value.FIELD */
};

/* The columns when the configuration names none. */
static const struct col_spec default_cols[] = {
    {"time", T_TIMESTAMPTZ, F_FIELD, "time"},    {"host", T_TEXT, F_FIELD, "host"},
    {"source", T_TEXT, F_FIELD, "source"},       {"message", T_TEXT, F_FIELD, "message"},
    {"value", T_JSONB, F_VALUE, NULL},           {"topic", T_TEXT, F_TOPIC, NULL},
    {"partition", T_INTEGER, F_PARTITION, NULL}, {"offset", T_BIGINT, F_OFFSET, NULL},
};

/* ---- State -------------------------------------------------------------------------------- */

struct ppart {
    int64_t table_pos; /* next_offset as the table has it (-1: none yet) */
    int64_t next;      /* after the last record taken into the batch */
    bool in_batch;     /* the batch holds rows or dead letters of it */
};

struct pg {
    struct sink *s;             /* borrowed */
    const struct pg_conf *conf; /* borrowed */
    struct col_spec *cols;      /* owned */
    size_t ncols;
    PGconn *conn; /* owned */
    bool tables_ready;
    char *qtable, *qoffsets; /* owned: quoted identifiers */
    char *copy_sql;          /* owned */
    struct sl_buf batch;     /* owned: COPY text rows */
    int64_t rows;
    int64_t batch_ms;   /* kc_now_ms() of the batch's first record; 0: empty */
    struct sl_buf row;  /* owned: the row being built */
    struct sl_buf meta; /* owned: struct row_meta per batch row, in batch order */
    struct sl_buf kv;   /* owned: the rows' keys and values, for dead letters */
    struct sl_buf tmp;  /* owned */
};

/* Where a batch row came from: enough to dead-letter it when PostgreSQL rejects it. */
struct row_meta {
    const struct sink_part *p; /* borrowed: only compared against flush's parts (never read) */
    size_t row_off;            /* its COPY line in batch */
    size_t kv_off;             /* key then value in kv */
    int64_t klen, vlen;        /* -1: null */
    int64_t offset, timestamp;
};

/* "a.b" -> "\"a\".\"b\"" (names were checked for quotes). */
static char *quote_ident(const char *name)
{
    struct sl_buf b;
    sl_buf_init(&b);
    sl_buf_append(&b, "\"", 1);
    for (const char *p = name; *p; p++)
        sl_buf_append_str(&b, *p == '.' ? "\".\"" : (char[]){*p, 0});
    sl_buf_append(&b, "\"", 2); /* with the NUL */
    if (sl_buf_error(&b)) {
        sl_buf_fini(&b);
        return NULL;
    }
    return (char *)b.data;
}

static int pg_fail(struct pg *g, struct sl_err *err, const char *what)
{
    int rc = sl_err_set(err, -EIO, "postgres: %s: %s", what,
                        g->conn ? PQerrorMessage(g->conn) : "no connection");
    /* libpq messages end in a newline */
    size_t n = strlen(err ? err->msg : "");
    if (err && n && err->msg[n - 1] == '\n')
        err->msg[n - 1] = 0;
    return rc;
}

/* Runs one command; returns 0 or an error. ntuples/value: the first cell when wanted. */
static int exec(struct pg *g, const char *sql, int nparams, const char *const *params,
                int64_t *affected, char *cell, size_t cellsize, struct sl_err *err)
{
    /* Without parameters, the simple protocol, which also takes several statements. */
    PGresult *res = nparams == 0 ? PQexec(g->conn, sql)
                                 : PQexecParams(g->conn, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        int rc = sl_err_set(err, -EIO, "postgres: %.80s...: %s", sql, PQresultErrorMessage(res));
        PQclear(res);
        size_t n = err ? strlen(err->msg) : 0;
        if (n && err->msg[n - 1] == '\n')
            err->msg[n - 1] = 0;
        return rc;
    }
    if (affected)
        *affected = strtoll(PQcmdTuples(res), NULL, 10);
    if (cell) {
        cell[0] = 0;
        if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
            snprintf(cell, cellsize, "%s", PQgetvalue(res, 0, 0));
    }
    PQclear(res);
    return 0;
}

/* Connects (again) when there is no healthy connection, and creates the tables once. */
static int ensure_conn(struct pg *g, struct sl_err *err)
{
    if (g->conn && PQstatus(g->conn) == CONNECTION_OK)
        return 0;
    if (g->conn)
        PQfinish(g->conn);
    g->conn = PQconnectdb(g->conf->conninfo);
    if (!g->conn)
        return sl_err_set(err, -ENOMEM, "postgres: out of memory");
    if (PQstatus(g->conn) != CONNECTION_OK)
        return pg_fail(g, err, "connecting");
    PQsetClientEncoding(g->conn, "UTF8");
    if (g->tables_ready || !g->conf->create_tables)
        return 0;
    struct sl_buf *b = &g->tmp;
    sl_buf_reset(b);
    sl_buf_printf(b,
                  "CREATE TABLE IF NOT EXISTS %s (grp text NOT NULL, topic text NOT NULL, "
                  "part integer NOT NULL, next_offset bigint NOT NULL, updated timestamptz NOT "
                  "NULL DEFAULT now(), PRIMARY KEY (grp, topic, part))",
                  g->qoffsets);
    sl_buf_append(b, "", 1);
    int rc = sl_buf_error(b) ? sl_err_set(err, -ENOMEM, "out of memory")
                             : exec(g, (const char *)b->data, 0, NULL, NULL, NULL, 0, err);
    if (rc != 0)
        return rc;
    sl_buf_reset(b);
    sl_buf_printf(b, "CREATE TABLE IF NOT EXISTS %s (", g->qtable);
    for (size_t i = 0; i < g->ncols; i++)
        sl_buf_printf(b, "%s\"%s\" %s", i ? ", " : "", g->cols[i].name, col_sql[g->cols[i].type]);
    sl_buf_append(b, ")", 2);
    rc = sl_buf_error(b) ? sl_err_set(err, -ENOMEM, "out of memory")
                         : exec(g, (const char *)b->data, 0, NULL, NULL, NULL, 0, err);
    if (rc == 0)
        g->tables_ready = true;
    return rc;
}

/* ---- Rows --------------------------------------------------------------------------------- */

/* Appends s[0..n) escaped for COPY's text format. */
static void copy_text(struct sl_buf *b, const uint8_t *s, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *esc = NULL;
        switch (s[i]) {
        case '\\':
            esc = "\\\\";
            break;
        case '\t':
            esc = "\\t";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        }
        if (!esc)
            continue;
        sl_buf_append(b, s + run, i - run);
        sl_buf_append_str(b, esc);
        run = i + 1;
    }
    sl_buf_append(b, s + run, n - run);
}

static bool is_integer(const struct sl_json_val *v)
{
    for (size_t i = 0; i < v->len; i++)
        if (v->p[i] == '.' || v->p[i] == 'e' || v->p[i] == 'E')
            return false;
    return true;
}

/* Appends one cell from a JSON value (member or whole value). Returns 0, or 1 with why set. */
static int cell_json(struct pg *g, const struct col_spec *c, const struct sl_json_val *v, char *why,
                     size_t size)
{
    struct sl_buf *b = &g->row;
    if (v->type == SL_JSON_NONE || v->type == SL_JSON_NULL) {
        sl_buf_append_str(b, "\\N");
        return 0;
    }
    switch (c->type) {
    case T_JSONB:
        if (sl_json_has_nul(v)) {
            snprintf(why, size, "column %s: jsonb cannot hold \\u0000", c->name);
            return 1;
        }
        copy_text(b, v->p, v->len);
        return 0;
    case T_TEXT:
    case T_TIMESTAMPTZ:
        if (v->type == SL_JSON_STRING) {
            if (sl_json_has_nul(v)) {
                snprintf(why, size, "column %s: text cannot hold a NUL character", c->name);
                return 1;
            }
            sl_buf_reset(&g->tmp);
            sl_json_unescape(v, &g->tmp);
            if (c->type == T_TIMESTAMPTZ) {
                int64_t ms;
                struct sl_err e = {{0}};
                sl_buf_append(&g->tmp, "", 1);
                if (sl_buf_error(&g->tmp) || cli_parse_time((const char *)g->tmp.data, &ms, &e)) {
                    snprintf(why, size, "column %s: not a timestamp: %.120s", c->name,
                             (const char *)g->tmp.data);
                    return 1;
                }
                g->tmp.len--;
            }
            copy_text(b, g->tmp.data, g->tmp.len);
            return 0;
        }
        if (c->type == T_TIMESTAMPTZ) {
            if (v->type != SL_JSON_NUMBER || !is_integer(v)) {
                snprintf(why, size, "column %s: not a timestamp (a string, or ms since 1970)",
                         c->name);
                return 1;
            }
            char t[40];
            cli_format_time(strtoll((const char *)v->p, NULL, 10), t, sizeof(t));
            sl_buf_append_str(b, t);
            return 0;
        }
        copy_text(b, v->p, v->len); /* numbers, booleans, objects as their JSON text */
        return 0;
    case T_BIGINT:
    case T_INTEGER:
    case T_DOUBLE:
        if (v->type != SL_JSON_NUMBER || (c->type != T_DOUBLE && !is_integer(v)) ||
            (c->type == T_INTEGER && v->len > 11) || (c->type == T_BIGINT && v->len > 20)) {
            snprintf(why, size, "column %s: not %s", c->name,
                     c->type == T_DOUBLE ? "a number" : "an integer in range");
            return 1;
        }
        if (c->type == T_INTEGER) {
            long long n = strtoll((const char *)v->p, NULL, 10);
            if (n < INT32_MIN || n > INT32_MAX) {
                snprintf(why, size, "column %s: not an integer in range", c->name);
                return 1;
            }
        }
        sl_buf_append(b, v->p, v->len);
        return 0;
    case T_BOOLEAN:
        if (v->type != SL_JSON_BOOL) {
            snprintf(why, size, "column %s: not a boolean", c->name);
            return 1;
        }
        sl_buf_append(b, v->p, v->len);
        return 0;
    }
    return 0;
}

/* Builds rec's row in g->row. Returns 0, 1 (why set: dead letter), or -ENOMEM. */
static int build_row(struct pg *g, const struct sink_part *p, const struct sl_batch_record *rec,
                     char *why, size_t size)
{
    struct sl_buf *b = &g->row;
    sl_buf_reset(b);
    int json = -1; /* unchecked */
    enum sl_json_type vt = SL_JSON_NONE;
    struct sl_err e = {{0}};
    for (size_t i = 0; i < g->ncols; i++) {
        const struct col_spec *c = &g->cols[i];
        if (i)
            sl_buf_append(b, "\t", 1);
        char num[48];
        switch (c->src) {
        case F_TOPIC:
            copy_text(b, (const uint8_t *)p->topic, strlen(p->topic));
            continue;
        case F_PARTITION:
            snprintf(num, sizeof(num), "%d", p->partition);
            sl_buf_append_str(b, num);
            continue;
        case F_OFFSET:
            snprintf(num, sizeof(num), "%" PRId64, rec->offset);
            sl_buf_append_str(b, num);
            continue;
        case F_TIMESTAMP:
            if (c->type == T_TIMESTAMPTZ)
                cli_format_time(rec->timestamp, num, sizeof(num));
            else
                snprintf(num, sizeof(num), "%" PRId64, rec->timestamp);
            sl_buf_append_str(b, num);
            continue;
        case F_KEY:
            if (!rec->key.p)
                sl_buf_append_str(b, "\\N");
            else
                copy_text(b, rec->key.p, rec->key.len);
            continue;
        }
        /* From the value. */
        if (c->src == F_VALUE && c->type == T_TEXT) {
            if (!rec->value.p) {
                sl_buf_append_str(b, "\\N");
                continue;
            }
            if (memchr(rec->value.p, 0, rec->value.len)) {
                snprintf(why, size, "column %s: text cannot hold a NUL byte", c->name);
                return 1;
            }
            copy_text(b, rec->value.p, rec->value.len);
            continue;
        }
        if (json < 0)
            json = rec->value.p && sl_json_check(rec->value.p, rec->value.len, &vt, &e) == 0;
        if (!json) {
            snprintf(why, size, "column %s: value %s", c->name, rec->value.p ? e.msg : "is null");
            return 1;
        }
        struct sl_json_val v = {vt, rec->value.p, rec->value.len};
        if (c->src == F_FIELD) {
            if (vt != SL_JSON_OBJECT) {
                snprintf(why, size, "column %s: value is not a JSON object", c->name);
                return 1;
            }
            sl_json_get(rec->value.p, rec->value.len, c->field, &v);
        }
        int rc = cell_json(g, c, &v, why, size);
        if (rc != 0)
            return rc;
    }
    sl_buf_append(b, "\n", 1);
    return sl_buf_error(b) ? -ENOMEM : 0;
}

static int pg_write(void *state, struct sink_part *p, const struct sl_batch_record *rec,
                    struct sl_err *err)
{
    struct pg *g = state;
    struct ppart *pp = p->priv;
    char why[600];
    int rc = build_row(g, p, rec, why, sizeof(why));
    if (rc < 0)
        return sl_err_set(err, rc, "out of memory");
    if (rc == 1) {
        if ((rc = sink_dead_letter(g->s, p->topic, p->partition, rec, why, err)) != 0)
            return rc;
    } else {
        struct row_meta m = {p,
                             g->batch.len,
                             g->kv.len,
                             rec->key.p ? (int64_t)rec->key.len : -1,
                             rec->value.p ? (int64_t)rec->value.len : -1,
                             rec->offset,
                             rec->timestamp};
        if (rec->key.p)
            sl_buf_append(&g->kv, rec->key.p, rec->key.len);
        if (rec->value.p)
            sl_buf_append(&g->kv, rec->value.p, rec->value.len);
        sl_buf_append(&g->meta, &m, sizeof(m));
        if (sl_buf_append(&g->batch, g->row.data, g->row.len) != 0 || sl_buf_error(&g->kv) ||
            sl_buf_error(&g->meta))
            return sl_err_set(err, -ENOMEM, "out of memory");
        g->rows++;
        sl_metric_add(g->s->m.bytes, g->row.len);
    }
    if (g->batch_ms == 0)
        g->batch_ms = kc_now_ms();
    pp->in_batch = true;
    pp->next = rec->offset + 1;
    return 0;
}

static void batch_reset(struct pg *g)
{
    sl_buf_reset(&g->batch);
    sl_buf_reset(&g->kv);
    sl_buf_reset(&g->meta);
    if (g->batch.cap > (size_t)g->conf->batch_bytes * 2) {
        sl_buf_fini(&g->batch); /* one huge row made it grow: give the memory back */
        sl_buf_fini(&g->kv);
    }
    g->rows = 0;
    g->batch_ms = 0;
}

/* The batch row a rejected COPY names: the N of "COPY t, line N" in the error context, as an
 * index into the batch; -1 when there is none (or it is out of the batch). */
static int64_t rejected_row(const struct pg *g, const PGresult *res)
{
    const char *ctx = PQresultErrorField(res, PG_DIAG_CONTEXT);
    const char *l = ctx ? strstr(ctx, ", line ") : NULL;
    if (!l)
        return -1;
    char *end;
    long long n = strtoll(l + 7, &end, 10);
    if (end == l + 7 || n < 1 || n > g->rows)
        return -1;
    return n - 1;
}

/* True for an error that is the data's fault (SQLSTATE class 22 or 23), not the destination's. */
static bool is_data_error(const PGresult *res)
{
    const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    return st && (!strncmp(st, "22", 2) || !strncmp(st, "23", 2));
}

/* Sends batch row i to the dead-letter file with PostgreSQL's reason and cuts it out of the
 * batch (its partition's position still moves past it). Returns 0 or the file's error. */
static int reject_row(struct pg *g, struct sink_part *parts, size_t n, int64_t i, const char *why,
                      struct sl_err *err)
{
    struct row_meta *meta = (struct row_meta *)g->meta.data;
    struct row_meta m = meta[i];
    struct sink_part *p = NULL;
    for (size_t k = 0; k < n && !p; k++)
        if (&parts[k] == m.p)
            p = &parts[k];
    if (!p) /* cannot happen: a revoked partition aborts the batch */
        return sl_err_set(err, -EINVAL, "postgres: rejected row %lld has no partition",
                          (long long)i);
    /* kv.data is NULL while only empty keys and values were kept */
    const uint8_t *kv = g->kv.data ? g->kv.data + m.kv_off : (const uint8_t *)"";
    struct sl_batch_record rec = {0};
    rec.offset = m.offset;
    rec.timestamp = m.timestamp;
    if (m.klen >= 0)
        rec.key = (struct sl_bytes){kv, (size_t)m.klen};
    if (m.vlen >= 0)
        rec.value = (struct sl_bytes){kv + (m.klen > 0 ? m.klen : 0), (size_t)m.vlen};
    int rc = sink_dead_letter(g->s, p->topic, p->partition, &rec, why, err);
    if (rc != 0)
        return rc;
    /* Cut the COPY line out; kv keeps the bytes (offsets into it stay valid). */
    size_t from = m.row_off;
    size_t to = i + 1 < g->rows ? meta[i + 1].row_off : g->batch.len;
    memmove(g->batch.data + from, g->batch.data + to, g->batch.len - to);
    sl_buf_truncate(&g->batch, g->batch.len - (to - from));
    memmove(&meta[i], &meta[i + 1], (size_t)(g->rows - i - 1) * sizeof(*meta));
    g->rows--;
    for (int64_t k = i; k < g->rows; k++)
        meta[k].row_off -= to - from;
    sl_buf_truncate(&g->meta, (size_t)g->rows * sizeof(*meta));
    return 0;
}

/* Sends the batch's first len bytes of COPY text in the open transaction. Returns NULL when
 * they loaded, else PostgreSQL's answer (the caller clears it); the connection is ready for the
 * next command either way (or broken, which the caller's next exec reports). */
static PGresult *copy_rows(struct pg *g, size_t len)
{
    PGresult *res = PQexec(g->conn, g->copy_sql);
    if (PQresultStatus(res) != PGRES_COPY_IN)
        return res;
    PQclear(res);
    const size_t chunk = 1 << 20;
    bool ok = true;
    for (size_t off = 0; off < len && ok; off += chunk)
        ok = PQputCopyData(g->conn, (const char *)g->batch.data + off,
                           (int)SL_MIN(chunk, len - off)) == 1;
    PQputCopyEnd(g->conn, ok ? NULL : "sluice: sending the rows failed");
    res = PQgetResult(g->conn);
    PGresult *more;
    while ((more = PQgetResult(g->conn)) != NULL)
        PQclear(more);
    if (PQresultStatus(res) == PGRES_COMMAND_OK) {
        PQclear(res);
        return NULL;
    }
    return res;
}

/* Statement-time checks: a deferred constraint fails the COPY it belongs to, where the row can be
 * found, instead of the COMMIT, whose failure would only be retried. */
#define BEGIN_SQL "BEGIN; SET CONSTRAINTS ALL IMMEDIATE"

/* Loads the batch's first k rows in a transaction that is rolled back; *loads says whether
 * they went in. Returns 0, or a destination error (a failure that is not the data's). */
static int probe_rows(struct pg *g, int64_t k, bool *loads, struct sl_err *err)
{
    const struct row_meta *meta = (const struct row_meta *)g->meta.data;
    int rc = exec(g, BEGIN_SQL, 0, NULL, NULL, NULL, 0, err);
    if (rc != 0)
        return rc;
    PGresult *res = copy_rows(g, k < g->rows ? meta[k].row_off : g->batch.len);
    *loads = res == NULL;
    if (res && !(PQresultStatus(res) == PGRES_FATAL_ERROR && is_data_error(res)))
        rc = sl_err_set(err, -EIO, "postgres: COPY %s: %s", g->conf->table,
                        PQresultErrorMessage(res));
    PQclear(res);
    if (PQstatus(g->conn) == CONNECTION_OK)
        PQclear(PQexec(g->conn, "ROLLBACK"));
    return rc;
}

/*
 * For a data error whose context names no line (a constraint trigger, a deferred constraint
 * checked at the end of the COPY): the smallest prefix of the batch that fails to load, found
 * by bisection, each probe a rolled-back transaction; its last row is the bad one. Returns the
 * row, -1 when the whole batch now loads (the failure was not the rows'), or a destination
 * error (< -1 never collides: errors are -errno or SL_E* below -1).
 */
static int64_t bisect_row(struct pg *g, struct sl_err *err)
{
    bool loads;
    int rc = probe_rows(g, g->rows, &loads, err);
    if (rc != 0)
        return rc;
    if (loads)
        return -1;
    int64_t lo = 0, hi = g->rows; /* [0, lo) loads; [0, hi) does not */
    while (hi - lo > 1) {
        int64_t k = lo + (hi - lo) / 2;
        if ((rc = probe_rows(g, k, &loads, err)) != 0)
            return rc;
        if (loads)
            lo = k;
        else
            hi = k;
    }
    return hi - 1;
}

/* The batch's transaction. Returns 0 (positions moved), -ESTALE when another process moved a
 * position (fenced), or an error. */
static int commit_batch(struct pg *g, struct sink_part *parts, size_t n, struct sl_err *err)
{
    int rc = ensure_conn(g, err);
    if (rc != 0)
        return rc;
again:
    if ((rc = exec(g, BEGIN_SQL, 0, NULL, NULL, NULL, 0, err)) != 0)
        return rc;
    if (g->rows > 0) {
        PGresult *res = copy_rows(g, g->batch.len);
        if (res) {
            int64_t bad = -1;
            char why[600];
            rc = sl_err_set(err, -EIO, "postgres: COPY %s: %s", g->conf->table,
                            PQresultErrorMessage(res));
            size_t l = strlen(err ? err->msg : "");
            if (err && l && err->msg[l - 1] == '\n')
                err->msg[l - 1] = 0;
            bool data_error = is_data_error(res);
            if (data_error) {
                const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
                const char *det = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
                snprintf(why, sizeof(why), "postgres rejected the row (SQLSTATE %s): %s%s%s",
                         PQresultErrorField(res, PG_DIAG_SQLSTATE), msg ? msg : "?",
                         det ? ": " : "", det ? det : "");
                bad = rejected_row(g, res);
            }
            PQclear(res);
            if (!data_error || PQstatus(g->conn) != CONNECTION_OK)
                goto rollback;
            PQclear(PQexec(g->conn, "ROLLBACK"));
            if (bad < 0) {
                SL_WARN(g->s->name, "%s: no line named; looking for the row", err ? err->msg : why);
                bad = bisect_row(g, err);
                if (bad < -1)
                    return (int)bad;
                if (bad == -1) {
                    SL_WARN(g->s->name, "the batch loads now: trying it again");
                    goto again;
                }
            }
            SL_WARN(g->s->name, "%s: dead-lettering row %lld of the batch and loading the rest",
                    why, (long long)bad + 1);
            if ((rc = reject_row(g, parts, n, bad, why, err)) != 0)
                return rc;
            goto again; /* each round removes one row: bounded by the batch */
        }
    }
    char sql[512];
    snprintf(sql, sizeof(sql),
             "UPDATE %s SET next_offset = $1, updated = now() WHERE grp = $2 AND topic = $3 "
             "AND part = $4 AND next_offset = $5",
             g->qoffsets);
    for (size_t i = 0; i < n; i++) {
        struct sink_part *p = &parts[i];
        struct ppart *pp = p->priv;
        if (!pp->in_batch)
            continue;
        char e[24], part[16], s[24];
        snprintf(e, sizeof(e), "%" PRId64, pp->next);
        snprintf(part, sizeof(part), "%d", p->partition);
        snprintf(s, sizeof(s), "%" PRId64, pp->table_pos);
        const char *params[] = {e, g->s->conf->group, p->topic, part, s};
        int64_t affected = 0;
        if ((rc = exec(g, sql, 5, params, &affected, NULL, 0, err)) != 0)
            goto rollback;
        if (affected != 1) {
            rc = sl_err_set(err, -ESTALE,
                            "postgres: %s-%d: another process moved its position past %" PRId64
                            " (fenced): loading from the table's position",
                            p->topic, p->partition, pp->table_pos);
            goto rollback;
        }
    }
    /* Dead letters of this batch are on disk before its positions are. */
    if ((rc = sink_dead_sync(g->s->dead, err)) != 0)
        goto rollback;
    if ((rc = exec(g, "COMMIT", 0, NULL, NULL, NULL, 0, err)) != 0)
        return rc; /* unknown outcome: the driver reads the positions again */
    for (size_t i = 0; i < n; i++) {
        struct ppart *pp = parts[i].priv;
        if (!pp->in_batch)
            continue;
        pp->table_pos = pp->next;
        parts[i].durable = pp->next;
        pp->in_batch = false;
    }
    batch_reset(g);
    return 0;
rollback:
    if (PQstatus(g->conn) == CONNECTION_OK) {
        PGresult *res = PQexec(g->conn, "ROLLBACK");
        PQclear(res);
    }
    return rc;
}

/* Reads (creating it at -1) the partition's row: its next_offset. */
static int read_pos(struct pg *g, struct sink_part *p, int64_t *pos, struct sl_err *err)
{
    int rc = ensure_conn(g, err);
    if (rc != 0)
        return rc;
    char sql[512], part[16], cell[32];
    snprintf(part, sizeof(part), "%d", p->partition);
    const char *params[] = {g->s->conf->group, p->topic, part};
    snprintf(sql, sizeof(sql),
             "INSERT INTO %s (grp, topic, part, next_offset) VALUES ($1, $2, $3, -1) "
             "ON CONFLICT DO NOTHING",
             g->qoffsets);
    if ((rc = exec(g, sql, 3, params, NULL, NULL, 0, err)) != 0)
        return rc;
    snprintf(sql, sizeof(sql),
             "SELECT next_offset FROM %s WHERE grp = $1 AND topic = $2 AND part = $3", g->qoffsets);
    if ((rc = exec(g, sql, 3, params, NULL, cell, sizeof(cell), err)) != 0)
        return rc;
    *pos = strtoll(cell, NULL, 10);
    return 0;
}

static int pg_flush(void *state, struct sink_part *parts, size_t n, bool force, struct sl_err *err)
{
    struct pg *g = state;
    if (g->batch_ms == 0)
        return 0;
    if (!force && g->rows < g->conf->batch_rows && (int64_t)g->batch.len < g->conf->batch_bytes &&
        kc_now_ms() - g->batch_ms < g->conf->batch_age_ms)
        return 0;
    int rc = commit_batch(g, parts, n, err);
    if (rc == 0)
        return 0;
    /* Fenced, or COMMIT's outcome unknown: trust the table, not our memory. */
    for (size_t i = 0; i < n; i++) {
        struct ppart *pp = parts[i].priv;
        int64_t pos;
        struct sl_err e2 = {{0}};
        if (read_pos(g, &parts[i], &pos, &e2) == 0 && pos >= 0) {
            pp->table_pos = pos;
            parts[i].durable = pos;
        }
    }
    return rc;
}

static int64_t pg_due_in(void *state, const struct sink_part *parts, size_t n, int64_t now)
{
    (void)parts;
    (void)n;
    const struct pg *g = state;
    if (g->batch_ms == 0)
        return -1;
    return SL_MAX(g->batch_ms + g->conf->batch_age_ms - now, 0);
}

static void pg_abort(void *state, struct sink_part *p)
{
    struct pg *g = state;
    struct ppart *pp = p->priv;
    if (!pp)
        return;
    /* The batch is shared: dropping one partition's part drops it all (the driver aborts every
     * partition after an error anyway). */
    batch_reset(g);
    pp->in_batch = false;
    pp->next = p->durable;
}

static void pg_revoke(void *state, struct sink_part *p)
{
    pg_abort(state, p);
    SL_FREE(p->priv);
}

static int pg_assign(void *state, struct sink_part *p, int64_t *start, struct sl_err *err)
{
    struct pg *g = state;
    struct ppart *pp = p->priv;
    if (!pp) {
        if (!(pp = sl_calloc(1, sizeof(*pp))))
            return sl_err_set(err, -ENOMEM, "out of memory");
        p->priv = pp;
    }
    int rc = read_pos(g, p, &pp->table_pos, err);
    if (rc != 0)
        return rc;
    *start = pp->table_pos; /* -1: never loaded, the group's commit or `start` decides */
    return 0;
}

static int pg_open(struct sink *s, void *conf, void **state, struct sl_err *err)
{
    struct pg *g = sl_calloc(1, sizeof(*g));
    if (!g)
        return sl_err_set(err, -ENOMEM, "out of memory");
    g->s = s;
    g->conf = conf;
    sl_buf_init(&g->batch);
    sl_buf_init(&g->row);
    sl_buf_init(&g->tmp);
    sl_buf_init(&g->meta);
    sl_buf_init(&g->kv);
    g->ncols = g->conf->columns.len ? g->conf->columns.len : SL_ARRAY_LEN(default_cols);
    if (!(g->cols = sl_calloc(g->ncols, sizeof(*g->cols)))) {
        *state = g;
        return sl_err_set(err, -ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < g->ncols; i++) {
        if (!g->conf->columns.len) {
            g->cols[i] = default_cols[i];
            continue;
        }
        const struct pg_col *c = SL_CONF_MAP_AT(&g->conf->columns, struct pg_col, i);
        g->cols[i] = (struct col_spec){c->name, c->type, c->src, c->field};
    }
    struct sl_buf b;
    sl_buf_init(&b);
    if (!(g->qtable = quote_ident(g->conf->table)) ||
        !(g->qoffsets = quote_ident(g->conf->offsets_table))) {
        sl_buf_fini(&b);
        *state = g;
        return sl_err_set(err, -ENOMEM, "out of memory");
    }
    sl_buf_printf(&b, "COPY %s (", g->qtable);
    for (size_t i = 0; i < g->ncols; i++)
        sl_buf_printf(&b, "%s\"%s\"", i ? ", " : "", g->cols[i].name);
    sl_buf_append(&b, ") FROM STDIN", 13);
    if (sl_buf_error(&b)) {
        sl_buf_fini(&b);
        *state = g;
        return sl_err_set(err, -ENOMEM, "out of memory");
    }
    g->copy_sql = (char *)b.data;
    *state = g;
    /* Connecting now reports a wrong conninfo at once; a database that is down is retried. */
    int rc = ensure_conn(g, err);
    if (rc != 0)
        SL_WARN(s->name, "%s; retrying when partitions are assigned", err->msg);
    return 0;
}

static void pg_close(void *state)
{
    struct pg *g = state;
    if (!g)
        return;
    if (g->conn)
        PQfinish(g->conn);
    sl_buf_fini(&g->batch);
    sl_buf_fini(&g->row);
    sl_buf_fini(&g->tmp);
    sl_buf_fini(&g->meta);
    sl_buf_fini(&g->kv);
    sl_free(g->qtable);
    sl_free(g->qoffsets);
    sl_free(g->copy_sql);
    sl_free(g->cols);
    sl_free(g);
}

const struct sink_backend sink_pg_backend = {
    .name = "postgres",
    .section = &sink_pg_section,
    .open = pg_open,
    .close = pg_close,
    .assign = pg_assign,
    .abort = pg_abort,
    .revoke = pg_revoke,
    .write = pg_write,
    .flush = pg_flush,
    .due_in = pg_due_in,
    .commit_gates_flush = false,
};
