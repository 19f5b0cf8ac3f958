/* gen_defaults: the generation settings a checkpoint implies, shared by
 * every caller that generates (aloe complete, the local role backend). */
#include <string.h>

#include "base/fileio.h"
#include "formats/hfdir.h"
#include "infer/generate.h"

void gen_sampling_from_checkpoint(const char *path, SamplerParams *sp) {
    sampler_params_default(sp);
    GenConfig g;
    gen_config_init(&g);
    Err ignored;
    /* As transformers: sample only where generation_config.json asks to. */
    if (!file_is_dir(path) || hf_genconfig_load(path, &g, &ignored) || !g.do_sample) return;
    sp->temperature = g.has_temperature ? g.temperature : 1.0f;
    if (g.has_top_k) sp->top_k = g.top_k;
    if (g.has_top_p) sp->top_p = g.top_p;
    if (g.has_min_p) sp->min_p = g.min_p;
    if (g.has_repetition_penalty) sp->repetition_penalty = g.repetition_penalty;
}

void gen_params_add_stop_id(GenParams *p, int32_t id) {
    if (id < 0) return;
    for (int i = 0; i < p->n_stop_ids; i++)
        if (p->stop_ids[i] == id) return;
    if (p->n_stop_ids < GEN_MAX_STOP_IDS) p->stop_ids[p->n_stop_ids++] = id;
}

void gen_params_add_model_stops(GenParams *p, const Model *m, const Tokenizer *tok) {
    for (int i = 0; i < m->cfg.n_eos; i++) gen_params_add_stop_id(p, m->cfg.eos_ids[i]);
    int n_eot = 0;
    const int32_t *eot = tok ? tok_eot(tok, &n_eot) : NULL;
    for (int i = 0; i < n_eot; i++) gen_params_add_stop_id(p, eot[i]);
}
