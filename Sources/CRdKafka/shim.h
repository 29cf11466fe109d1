#ifndef SEGMENTER_CRDKAFKA_SHIM_H
#define SEGMENTER_CRDKAFKA_SHIM_H
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

/* Wrappers for what Swift cannot import: macros and variadic calls. */

static inline int64_t segmenter_offset_beginning(void) { return RD_KAFKA_OFFSET_BEGINNING; }
static inline int64_t segmenter_offset_end(void) { return RD_KAFKA_OFFSET_END; }
static inline int64_t segmenter_offset_invalid(void) { return RD_KAFKA_OFFSET_INVALID; }
static inline int32_t segmenter_partition_ua(void) { return RD_KAFKA_PARTITION_UA; }

/* Produce one message by copying key and value; returns the error code. */
static inline rd_kafka_resp_err_t segmenter_produce(rd_kafka_t *rk, const char *topic,
                                                   int32_t partition,
                                                   const void *key, size_t key_len,
                                                   const void *value, size_t value_len,
                                                   void *opaque) {
    rd_kafka_vu_t vus[6];
    int n = 0;
    vus[n].vtype = RD_KAFKA_VTYPE_TOPIC; vus[n].u.cstr = topic; n++;
    vus[n].vtype = RD_KAFKA_VTYPE_PARTITION; vus[n].u.i32 = partition; n++;
    vus[n].vtype = RD_KAFKA_VTYPE_MSGFLAGS; vus[n].u.i = RD_KAFKA_MSG_F_COPY; n++;
    if (key != NULL) {
        vus[n].vtype = RD_KAFKA_VTYPE_KEY; vus[n].u.mem.ptr = (void *)key; vus[n].u.mem.size = key_len; n++;
    }
    vus[n].vtype = RD_KAFKA_VTYPE_VALUE; vus[n].u.mem.ptr = (void *)value; vus[n].u.mem.size = value_len; n++;
    vus[n].vtype = RD_KAFKA_VTYPE_OPAQUE; vus[n].u.ptr = opaque; n++;
    rd_kafka_error_t *error = rd_kafka_produceva(rk, vus, n);
    if (error == NULL) return RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_resp_err_t code = rd_kafka_error_code(error);
    rd_kafka_error_destroy(error);
    return code;
}
#endif
