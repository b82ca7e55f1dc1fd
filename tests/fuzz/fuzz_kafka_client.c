/* Fuzz target: the producer's response decoders (plugins/out_kafka_proto.c) and the agent's
 * checkpoint loader must refuse any bytes cleanly. The first byte picks the decoder and its
 * version; the rest is the response body. */
#include "plugins/in_tail_ckpt.h"
#include "plugins/out_kafka_proto.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    struct sl_err err = {{0}};
    switch (sel % 4) {
    case 0: {
        struct kafka_meta m;
        out_kafka_proto_metadata_parse(p, n, (int16_t)(1 + (sel / 4) % 4), &m, &err);
        out_kafka_proto_meta_fini(&m);
        break;
    }
    case 1: {
        int16_t code;
        int64_t base;
        out_kafka_proto_produce_parse(p, n, (int16_t)(3 + (sel / 4) % 5), "logs", 0, &code, &base,
                                      &err);
        break;
    }
    case 2: {
        struct kafka_api_versions v;
        out_kafka_proto_apiversions_parse(p, n, &v, &err);
        break;
    }
    default: {
        char path[] = "/tmp/sl-fuzz-ckpt-XXXXXX";
        int fd = mkstemp(path);
        if (fd < 0)
            return 0;
        if (write(fd, p, n) == (ssize_t)n) {
            struct in_tail_ckpt c = {0};
            size_t skipped;
            in_tail_ckpt_load(path, &c, &skipped, &err);
            in_tail_ckpt_fini(&c);
        }
        close(fd);
        unlink(path);
        break;
    }
    }
    return 0;
}
