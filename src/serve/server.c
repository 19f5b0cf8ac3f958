#include "serve/server.h"

#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "base/mem.h"
#include "llm/oai_wire.h"
#include "serve/gen.h"
#include "serve/metrics.h"
#include "serve/models.h"

struct Server {
    ServeOptions o;
    char *host, *key;
    ServeModel *models;
    int n_models;
    ServeLimits lim;
    Metrics metrics;
    struct MHD_Daemon *d;
    int port;
    atomic_int stopping;   /* past the drain time: sequences end at their next token */
    pthread_mutex_t mu;    /* guards in_flight */
    pthread_cond_t idle;
    int in_flight;         /* requests begun and not completed */
    long created;
};

/* One request on a connection. */
typedef struct Conn {
    Server *s;
    double t0;
    StrBuf body;
    int too_big;
    int status;
    char method[8];
    char path[96];
    OaiRequest req;
    int parsed;
    ServeGen *gen; /* a chat or completions request's */
    int refs;      /* the connection's, and a stream reader's; under s->mu */
    long prompt_tokens, completion_tokens;
} Conn;

void serve_options_default(ServeOptions *o) {
    memset(o, 0, sizeof *o);
    o->host = SERVE_DEFAULT_HOST;
    o->port = SERVE_DEFAULT_PORT;
    o->max_active = SERVE_DEFAULT_MAX_ACTIVE;
    o->max_queue = SERVE_DEFAULT_MAX_QUEUE;
    o->max_body = (size_t)SERVE_DEFAULT_MAX_BODY_MIB << 20;
    o->max_tokens = SERVE_DEFAULT_MAX_TOKENS;
    o->prefix_cache_bytes = (size_t)SERVE_DEFAULT_PREFIX_CACHE_MIB << 20;
}

int serve_key_matches(const char *got, const char *key) {
    static const char bearer[] = "Bearer ";
    if (!got || strncmp(got, bearer, sizeof bearer - 1)) return 0;
    got += sizeof bearer - 1;
    size_t gl = strlen(got), kl = strlen(key);
    /* every byte of the key is compared whatever the others hold; only the
     * length (not secret enough to matter, and fixed per server) shows */
    unsigned char diff = gl != kl;
    for (size_t i = 0; i < kl; i++) diff |= (unsigned char)(key[i] ^ (i < gl ? got[i] : 0));
    return diff == 0;
}

/* ---- responses ---- */

static enum MHD_Result send_body(struct MHD_Connection *c, Conn *k, int status, const char *body, const char *ctype,
                                 const char *retry_after) {
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", ctype);
    if (retry_after) MHD_add_response_header(r, "Retry-After", retry_after);
    if (status == 401) MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    k->status = status;
    return ok;
}

static enum MHD_Result send_json(struct MHD_Connection *c, Conn *k, int status, json_t *j) {
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    enum MHD_Result ok = send_body(c, k, status, s ? s : "{}", "application/json", NULL);
    free(s);
    return ok;
}

static const char *error_type(int status) {
    switch (status) {
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 503: return "overloaded_error";
    case 500: return "server_error";
    default: return "invalid_request_error";
    }
}

static enum MHD_Result send_error(struct MHD_Connection *c, Conn *k, int status, const char *msg, const char *param,
                                  const char *code) {
    json_t *j = oai_error(msg, error_type(status), param, code);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    enum MHD_Result ok = send_body(c, k, status, s ? s : "{}", "application/json", status == 503 ? "1" : NULL);
    free(s);
    return ok;
}

/* ---- models ---- */

static ServeModel *find_model(Server *s, const char *name) {
    for (int i = 0; i < s->n_models; i++)
        if (serve_model_named(&s->models[i], name)) return &s->models[i];
    return NULL;
}

static enum MHD_Result unknown_model(struct MHD_Connection *c, Conn *k, const char *name) {
    StrBuf b;
    sb_init(&b);
    sb_printf(&b, "The model '%s' does not exist on this server; it serves:", name);
    for (int i = 0; i < k->s->n_models; i++) sb_printf(&b, "%s '%s'", i ? "," : "", k->s->models[i].id);
    enum MHD_Result ok = send_error(c, k, 404, b.s, "model", "model_not_found");
    sb_free(&b);
    return ok;
}

/* ---- generation ---- */

/* Drops one hold on k: the last frees it, with its generation, and counts
 * the request out of flight. */
static void conn_unref(Conn *k) {
    Server *s = k->s;
    pthread_mutex_lock(&s->mu);
    int last = --k->refs == 0;
    pthread_mutex_unlock(&s->mu);
    if (!last) return;
    if (k->gen) {
        serve_gen_free(k->gen);
        free(k->gen);
    }
    if (k->parsed) oai_request_free(&k->req);
    sb_free(&k->body);
    free(k);
    pthread_mutex_lock(&s->mu);
    s->in_flight--;
    pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->mu);
}

typedef struct StreamCtx {
    Conn *k;
    int fd;
} StreamCtx;

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    StreamCtx *sc = cls;
    long n = serve_gen_read(sc->k->gen, buf, max, sc->fd);
    if (n < 0) return MHD_CONTENT_READER_END_WITH_ERROR;
    return n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : (ssize_t)n;
}

/* The response is done with (sent, or the client went away). */
static void stream_free(void *cls) {
    StreamCtx *sc = cls;
    ServeGen *g = sc->k->gen;
    pthread_mutex_lock(&g->mu);
    int unfinished = !g->done;
    pthread_mutex_unlock(&g->mu);
    if (unfinished) atomic_store(&g->cancel, 1);
    serve_gen_wait(g);
    conn_unref(sc->k);
    free(sc);
}

static int connection_fd(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

static enum MHD_Result handle_generate(struct MHD_Connection *c, Conn *k, ServeModel *sm) {
    Server *s = k->s;
    if (!sm->m)
        return send_error(c, k, 400, "this model is a sentence-embedding model: use /v1/embeddings", "model",
                          "model_not_supported");
    ServeGen *g = xcalloc(1, sizeof *g);
    int status = 0;
    const char *param = NULL;
    Err e;
    err_clear(&e);
    if (serve_gen_prepare(g, sm, &k->req, &s->lim, &s->metrics, &s->stopping, &status, &param, &e)) {
        enum MHD_Result ok = send_error(c, k, status, e.msg, param, status == 413 ? "context_length_exceeded" : NULL);
        k->prompt_tokens = g->n_prompt;
        serve_gen_free(g);
        free(g);
        return ok;
    }
    k->gen = g;
    k->prompt_tokens = g->n_prompt;
    if (!k->req.stream) {
        /* the connection's own thread waits, so its socket stays open to
         * be watched for a hang-up */
        g->watch_fd = connection_fd(c);
        serve_gen_launch(g);
        serve_gen_wait(g);
        k->completion_tokens = g->completion_tokens;
        if (atomic_load(&g->cancel)) {
            k->status = 499;
            return MHD_NO; /* nobody to answer */
        }
        json_t *j = serve_gen_response(g, &e);
        if (!j) return send_error(c, k, 500, e.msg, NULL, NULL);
        return send_json(c, k, 200, j);
    }
    StreamCtx *sc = xcalloc(1, sizeof *sc);
    sc->k = k;
    sc->fd = connection_fd(c);
    pthread_mutex_lock(&s->mu);
    k->refs++;
    pthread_mutex_unlock(&s->mu);
    serve_gen_launch(g);
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, sc, stream_free);
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    enum MHD_Result ok = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    k->status = 200;
    return ok;
}

/* ---- embeddings ---- */

static enum MHD_Result handle_embeddings(struct MHD_Connection *c, Conn *k, ServeModel *sm) {
    if (!sm->enc)
        return send_error(c, k, 400, "this model is not a sentence-embedding model: use /v1/chat/completions",
                          "model", "model_not_supported");
    const OaiRequest *r = &k->req;
    Err e;
    err_clear(&e);
    long tokens = 0;
    for (int i = 0; i < r->n_input; i++) {
        int32_t *ids = NULL;
        int n = 0;
        if (!encoder_tokenize(sm->enc, r->input[i], &ids, &n, &e)) tokens += n;
        free(ids);
    }
    float *vecs = NULL;
    int dim = 0;
    pthread_mutex_lock(&sm->enc_mu);
    int rc = encoder_embed(sm->enc, (const char *const *)r->input, r->n_input, &vecs, &dim, &e);
    pthread_mutex_unlock(&sm->enc_mu);
    if (rc) return send_error(c, k, 500, e.msg, NULL, NULL);
    k->prompt_tokens = tokens;
    metrics_tokens(&k->s->metrics, tokens, 0, 0);
    json_t *j = oai_embeddings(r->model, vecs, r->n_input, dim, r->base64, tokens);
    free(vecs);
    return send_json(c, k, 200, j);
}

/* ---- routing ---- */

static enum MHD_Result handle_post(struct MHD_Connection *c, Conn *k, const char *path) {
    OaiKind kind;
    if (!strcmp(path, "/chat/completions")) kind = OAI_CHAT;
    else if (!strcmp(path, "/completions")) kind = OAI_COMPLETION;
    else if (!strcmp(path, "/embeddings")) kind = OAI_EMBEDDINGS;
    else return send_error(c, k, 404, "no such endpoint", NULL, "not_found");
    if (k->too_big) {
        char msg[160];
        snprintf(msg, sizeof msg, "the request body is larger than this server takes (%zu bytes, --max-body-mib)",
                 k->s->o.max_body);
        return send_error(c, k, 413, msg, NULL, "request_too_large");
    }
    Err e;
    err_clear(&e);
    k->parsed = 1;
    if (oai_request_parse(kind, k->body.s, k->body.len, &k->req, &e))
        return send_error(c, k, 400, e.msg, k->req.param, "invalid_request");
    ServeModel *sm = find_model(k->s, k->req.model);
    if (!sm) return unknown_model(c, k, k->req.model);
    return kind == OAI_EMBEDDINGS ? handle_embeddings(c, k, sm) : handle_generate(c, k, sm);
}

static enum MHD_Result handle_get(struct MHD_Connection *c, Conn *k, const char *path) {
    Server *s = k->s;
    if (!strcmp(path, "/models")) {
        const char **ids = xcalloc((size_t)s->n_models, sizeof *ids);
        for (int i = 0; i < s->n_models; i++) ids[i] = s->models[i].id;
        json_t *j = oai_models(ids, s->n_models, s->created);
        free(ids);
        return send_json(c, k, 200, j);
    }
    if (!strcmp(path, "/metrics")) {
        StrBuf b;
        sb_init(&b);
        metrics_render(&s->metrics, &b);
        enum MHD_Result ok = send_body(c, k, 200, b.s, "text/plain; version=0.0.4", NULL);
        sb_free(&b);
        return ok;
    }
    return send_error(c, k, 404, "no such endpoint", NULL, "not_found");
}

static enum MHD_Result route(struct MHD_Connection *c, Conn *k, const char *url, const char *method) {
    Server *s = k->s;
    const char *path = strncmp(url, "/v1/", 4) ? url : url + 3;
    int is_get = !strcmp(method, "GET"), is_post = !strcmp(method, "POST");
    if (!strcmp(path, "/health")) {
        if (!is_get) return send_error(c, k, 405, "use GET", NULL, "method_not_allowed");
        return send_body(c, k, 200, "{\"status\":\"ok\"}", "application/json", NULL);
    }
    if (s->key && !serve_key_matches(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"), s->key))
        return send_error(c, k, 401,
                          "missing or wrong API key: send the header Authorization: Bearer KEY (the server's "
                          "--api-key or $ALOE_API_KEY)", NULL, "invalid_api_key");
    int post_path = !strcmp(path, "/chat/completions") || !strcmp(path, "/completions") || !strcmp(path, "/embeddings");
    int get_path = !strcmp(path, "/models") || !strcmp(path, "/metrics");
    if (post_path && !is_post) return send_error(c, k, 405, "use POST", NULL, "method_not_allowed");
    if (get_path && !is_get) return send_error(c, k, 405, "use GET", NULL, "method_not_allowed");
    return is_post ? handle_post(c, k, path) : handle_get(c, k, path);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    Server *s = cls;
    Conn *k = *con_cls;
    if (!k) {
        k = xcalloc(1, sizeof *k);
        k->s = s;
        k->t0 = serve_now();
        sb_init(&k->body);
        k->refs = 1;
        snprintf(k->method, sizeof k->method, "%s", method);
        /* the path only, as sent (MHD has already cut the query string) */
        snprintf(k->path, sizeof k->path, "%s", url);
        *con_cls = k;
        pthread_mutex_lock(&s->mu);
        s->in_flight++;
        pthread_mutex_unlock(&s->mu);
        return MHD_YES;
    }
    if (*upload_size) {
        /* past the limit the rest is read and dropped, then 413 */
        if (k->too_big || *upload_size > s->o.max_body - k->body.len) {
            k->too_big = 1;
            sb_free(&k->body);
            sb_init(&k->body);
        } else {
            sb_appendn(&k->body, upload, *upload_size);
        }
        *upload_size = 0;
        return MHD_YES;
    }
    return route(c, k, url, method);
}

static void log_request(Server *s, Conn *k) {
    if (!s->o.log_line) return;
    char line[320];
    snprintf(line, sizeof line, "%s %s %d tokens=%ld+%ld %.3fs", k->method, k->path, k->status ? k->status : 499,
             k->prompt_tokens, k->completion_tokens, serve_now() - k->t0);
    s->o.log_line(s->o.log_ctx, line);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t) {
    (void)c;
    Server *s = cls;
    Conn *k = *con_cls;
    if (!k) return;
    *con_cls = NULL;
    if (t != MHD_REQUEST_TERMINATED_COMPLETED_OK && k->status == 200) k->status = 499; /* nginx's "client closed" */
    if (k->gen) {
        /* a stream cut short ends its sequences; the line counts their tokens */
        if (k->status != 200) atomic_store(&k->gen->cancel, 1);
        serve_gen_wait(k->gen);
        k->completion_tokens = k->gen->completion_tokens;
    }
    metrics_request(&s->metrics, k->status ? k->status : 499);
    log_request(s, k);
    conn_unref(k);
}

/* ---- lifetime ---- */

static int resolve_host(const char *host, int port, struct sockaddr_storage *addr, socklen_t *len, int *v6, Err *e) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc || !res) return err_set(e, ERR_ARG, "--host %s: cannot resolve it (%s)", host, gai_strerror(rc));
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    *v6 = res->ai_family == AF_INET6;
    freeaddrinfo(res);
    return 0;
}

Server *serve_start(const ServeOptions *o, Err *e) {
    if (o->n_models < 1) return err_set(e, ERR_ARG, "aloe serve: give at least one --model"), NULL;
    if (o->n_aliases > o->n_models)
        return err_set(e, ERR_ARG, "--alias: %d aliases for %d models (each names the --model given in the same "
                       "position)", o->n_aliases, o->n_models), NULL;
    if (o->port < 0 || o->port > 65535) return err_set(e, ERR_ARG, "--port: expected 0 to 65535, got %d", o->port), NULL;
    if (o->max_active < 1) return err_set(e, ERR_ARG, "-j: expected at least 1, got %d", o->max_active), NULL;
    if (o->max_tokens < 1) return err_set(e, ERR_ARG, "--max-tokens: expected at least 1"), NULL;
    if (o->max_queue < 0) return err_set(e, ERR_ARG, "--max-queue: expected 0 or more"), NULL;
    Server *s = xcalloc(1, sizeof *s);
    s->o = *o;
    s->host = xstrdup(o->host ? o->host : SERVE_DEFAULT_HOST);
    s->key = o->api_key && *o->api_key ? xstrdup(o->api_key) : NULL;
    s->created = (long)time(NULL);
    s->lim = (ServeLimits){o->max_prompt_tokens, o->max_tokens, o->max_queue, o->max_active};
    metrics_init(&s->metrics);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->idle, NULL);
    s->models = xcalloc((size_t)o->n_models, sizeof *s->models);
    ServeModelOptions mo = {o->max_active, o->n_ctx, o->chat_template, o->n_threads, o->prefix_cache_bytes, o->quiet};
    for (int i = 0; i < o->n_models; i++) {
        if (serve_model_open(&s->models[i], o->models[i], i < o->n_aliases ? o->aliases[i] : NULL, &mo, e)) goto fail;
        s->n_models = i + 1;
        for (int j = 0; j < i; j++)
            if (!strcmp(s->models[j].id, s->models[i].id)) {
                err_set(e, ERR_ARG, "two models are both named %s: give one an --alias", s->models[i].id);
                goto fail;
            }
    }
    struct sockaddr_storage addr;
    socklen_t alen;
    int v6 = 0;
    if (resolve_host(s->host, o->port, &addr, &alen, &v6, e)) goto fail;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ITC |
                     (v6 ? MHD_USE_IPv6 : 0);
    s->d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR,
                            (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT, (unsigned)1000,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600, MHD_OPTION_LISTEN_BACKLOG_SIZE,
                            (unsigned)1024, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
    if (!s->d) {
        err_set(e, ERR_IO, "cannot listen on %s port %d (in use, or not an address of this machine?)", s->host,
                o->port);
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : o->port;
    return s;
fail:
    serve_stop(s, 0);
    return NULL;
}

int serve_port(const Server *s) { return s->port; }
const char *serve_host(const Server *s) { return s->host; }

/* Waits until no request is in flight or the deadline (monotonic) passes. */
static void wait_idle(Server *s, double deadline) {
    pthread_mutex_lock(&s->mu);
    while (s->in_flight > 0 && serve_now() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&s->idle, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
}

void serve_stop(Server *s, double drain_s) {
    if (!s) return;
    if (s->d) {
        /* MHD's threads may use the listening socket until the daemon stops */
        int lfd = MHD_quiesce_daemon(s->d);
        wait_idle(s, serve_now() + drain_s);
        /* what is still running ends at its next token, and is answered */
        atomic_store(&s->stopping, 1);
        wait_idle(s, serve_now() + 10);
        MHD_stop_daemon(s->d);
        if (lfd >= 0) close(lfd);
    }
    for (int i = 0; i < s->n_models; i++) serve_model_close(&s->models[i]);
    free(s->models);
    metrics_free(&s->metrics);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->idle);
    if (s->key) memset(s->key, 0, strlen(s->key));
    free(s->key);
    free(s->host);
    free(s);
}
