#include "aloe/journal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"
#include "formats/jsonl.h"

struct Journal {
    char *path, *key_field;
    Appender out;
    json_t *by_key;  /* object: key -> record */
    json_t *records; /* array in file order */
    pthread_mutex_t lock;
};

static int load_record(void *ctx, json_t *v, const char *path, int line, int nth, Err *e) {
    (void)nth;
    Journal *j = ctx;
    json_t *k = json_is_object(v) ? json_object_get(v, j->key_field) : NULL;
    if (!json_is_string(k))
        return err_set(e, ERR_PARSE, "%s:%d: expected a record with a string field \"%s\"", path, line,
                       j->key_field);
    const char *key = json_string_value(k);
    if (json_object_get(j->by_key, key)) {
        log_warn("%s:%d: duplicate record \"%s\" ignored", path, line, key);
        return 0;
    }
    json_object_set(j->by_key, key, v);
    json_array_append(j->records, v);
    return 0;
}

Journal *journal_open(const char *path, const char *key_field, Err *e) {
    long cut = appender_repair(path, e);
    if (cut < 0) return NULL;
    if (cut > 0) log_warn("%s: dropped a torn last record (%ld bytes) left by an interrupted run", path, cut);
    Journal *j = xcalloc(1, sizeof *j);
    j->path = xstrdup(path);
    j->key_field = xstrdup(key_field);
    j->by_key = json_object();
    j->records = json_array();
    pthread_mutex_init(&j->lock, NULL);
    j->out.fd = -1;
    if (file_exists(path) && jsonl_foreach(path, load_record, j, e) < 0) {
        journal_close(j);
        return NULL;
    }
    if (appender_open(&j->out, path, e)) {
        journal_close(j);
        return NULL;
    }
    return j;
}

void journal_close(Journal *j) {
    if (!j) return;
    appender_close(&j->out);
    json_decref(j->by_key);
    json_decref(j->records);
    pthread_mutex_destroy(&j->lock);
    free(j->path);
    free(j->key_field);
    free(j);
}

json_t *journal_get(Journal *j, const char *key) {
    pthread_mutex_lock(&j->lock);
    json_t *v = json_object_get(j->by_key, key);
    pthread_mutex_unlock(&j->lock);
    return v;
}

long journal_count(Journal *j) {
    pthread_mutex_lock(&j->lock);
    long n = (long)json_array_size(j->records);
    pthread_mutex_unlock(&j->lock);
    return n;
}

json_t *journal_records(Journal *j) { return j->records; }

int journal_append(Journal *j, json_t *record, Err *e) {
    json_t *k = json_object_get(record, j->key_field);
    if (!json_is_string(k))
        return err_set(e, ERR_INTERNAL, "%s: record without a string \"%s\"", j->path, j->key_field);
    char *line = json_dumps(record, JSON_COMPACT);
    size_t n = strlen(line);
    line = xrealloc(line, n + 2);
    line[n] = '\n';
    line[n + 1] = 0;
    pthread_mutex_lock(&j->lock);
    int rc = 0;
    if (json_object_get(j->by_key, json_string_value(k)))
        rc = err_set(e, ERR_INTERNAL, "%s: record \"%s\" written twice", j->path, json_string_value(k));
    else if (!(rc = appender_write(&j->out, line, n + 1, e))) {
        json_object_set(j->by_key, json_string_value(k), record);
        json_array_append(j->records, record);
    }
    pthread_mutex_unlock(&j->lock);
    free(line);
    return rc;
}
