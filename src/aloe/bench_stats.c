#include "aloe/bench_stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

/* A finished persona's record: not skipped, and with the run's turns. */
static int finished(const BenchConfig *c, const json_t *rec) {
    json_t *sk = json_object_get(rec, "skipped");
    if (sk && !json_is_false(sk) && !json_is_null(sk)) return 0;
    json_t *turns = json_object_get(rec, "turns");
    return json_is_array(turns) && (int)json_array_size(turns) == c->turns;
}

void bench_scores_read(const BenchConfig *c, Journal *j, BenchScores *out) {
    memset(out, 0, sizeof *out);
    long total = bench_persona_count(c);
    int T = c->turns > 0 ? c->turns : 0;
    size_t cap = total > 0 ? (size_t)total : 1;
    out->turns = T;
    out->score = xmalloc(cap * (size_t)(T ? T : 1) * sizeof *out->score);
    out->cluster = xmalloc(cap * sizeof *out->cluster);
    out->profile = xmalloc(cap * sizeof *out->profile);
    out->personality = xmalloc(cap * sizeof *out->personality);
    out->id = xcalloc(cap, sizeof *out->id);
    long last_profile = -1;
    for (long i = 0; i < total; i++) {
        char id[64];
        bench_persona_id(c, i, id, sizeof id);
        json_t *rec = journal_get(j, id);
        if (!rec || !finished(c, rec)) continue;
        int r = out->n++;
        long profile = i / c->per_profile;
        /* Personas come in profile order, so a new profile is a new cluster;
         * profiles with no finished persona get no cluster (an empty one
         * would be drawn like the others and add nothing). */
        if (profile != last_profile) out->n_clusters++;
        last_profile = profile;
        out->cluster[r] = out->n_clusters - 1;
        out->profile[r] = profile;
        out->personality[r] = i % c->per_profile;
        out->id[r] = xstrdup(id);
        json_t *turns = json_object_get(rec, "turns");
        for (int k = 0; k < T; k++) {
            json_t *s = json_object_get(json_array_get(turns, (size_t)k), "score");
            out->score[(size_t)r * (size_t)T + (size_t)k] = json_is_integer(s) ? (double)json_integer_value(s) : NAN;
        }
    }
}

void bench_scores_free(BenchScores *s) {
    for (int i = 0; i < s->n; i++) free(s->id[i]);
    free(s->id);
    free(s->score);
    free(s->cluster);
    free(s->profile);
    free(s->personality);
    memset(s, 0, sizeof *s);
}

StatsMatrix bench_scores_matrix(const BenchScores *s) {
    return (StatsMatrix){s->n, s->turns, s->score, s->cluster, s->n_clusters};
}

static json_t *num_or_null(double v) { return isnan(v) || isinf(v) ? json_null() : json_real(v); }

static json_t *personas_json(const BenchScores *s) {
    json_t *a = json_array();
    for (int i = 0; i < s->n; i++) {
        json_t *sc = json_array();
        for (int k = 0; k < s->turns; k++) {
            double v = s->score[(size_t)i * (size_t)s->turns + (size_t)k];
            json_array_append_new(sc, isnan(v) ? json_null() : json_integer((json_int_t)v));
        }
        json_array_append_new(a, json_pack("{s:s, s:I, s:I, s:o}", "id", s->id[i], "profile_index",
                                           (json_int_t)s->profile[i], "personality_index",
                                           (json_int_t)s->personality[i], "scores", sc));
    }
    return a;
}

static json_t *intervals_json(const BenchScores *s) {
    StatsOptions o = stats_options_default();
    StatsInterval iv[STATS__SUMMARY];
    StatsMethod how = {0, 0};
    Err e = {0};
    int ok = s->n > 0 && stats_bootstrap_run(&(StatsMatrix){s->n, s->turns, s->score, s->cluster, s->n_clusters},
                                             &o, iv, &how, &e) == 0;
    if (!ok)
        for (int j = 0; j < STATS__SUMMARY; j++) iv[j] = (StatsInterval){NAN, NAN, 0};
    static const char *const names[STATS__SUMMARY] = {"avg", "ir", "n_ir"};
    json_t *out = json_object();
    for (int j = 0; j < STATS__SUMMARY; j++)
        json_object_set_new(out, names[j],
                            json_pack("{s:o, s:o, s:I}", "lo", num_or_null(iv[j].lo), "hi", num_or_null(iv[j].hi),
                                      "defined", (json_int_t)iv[j].defined));
    char *method = xasprintf("cluster bootstrap, percentile: the %d profiles resampled with replacement (their "
                             "personas with them), %s",
                             s->n_clusters,
                             !ok ? "not computed (no finished persona)"
                             : how.exact ? "every one of the C^C equally likely draws enumerated (exact)"
                                         : "Monte Carlo draws from a fixed seed");
    json_object_set_new(out, "method", json_string(method));
    free(method);
    json_object_set_new(out, "exact", json_boolean(ok && how.exact));
    json_object_set_new(out, "replicates", json_integer(how.draws));
    json_object_set_new(out, "seed", json_integer((json_int_t)o.seed));
    json_object_set_new(out, "level", json_real(o.level));
    json_object_set_new(out, "clusters", json_integer(s->n_clusters));
    return out;
}

void bench_stats_attach(json_t *results, const BenchConfig *c, Journal *j) {
    BenchScores s;
    bench_scores_read(c, j, &s);
    json_object_set_new(results, "personas", personas_json(&s));
    json_object_set_new(results, "intervals", intervals_json(&s));
    json_t *defs = json_object_get(results, "definitions");
    if (json_is_object(defs)) {
        json_object_set_new(
            defs, "intervals",
            json_string("95% percentile intervals of AVG, IR and N-IR from a bootstrap clustered by profile: the "
                        "profiles (persona i has profile i / K) are drawn with replacement, as many as there are, "
                        "each bringing all its personas; AL(k) is recomputed over the drawn personas' valid scores, "
                        "then AVG, IR and N-IR as above; lo and hi are the ceil(R*0.025)-th and ceil(R*0.975)-th "
                        "smallest of the R replicates that define the statistic (`defined`); exact when C^C <= "
                        "replicates, else Monte Carlo with the stated seed"));
        json_object_set_new(defs, "personas",
                            json_string("each finished persona's judge scores by turn (null = no valid score), "
                                        "for pairing runs over the same personas (aloe report A B)"));
    }
    bench_scores_free(&s);
}
