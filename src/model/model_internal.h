/* Helpers shared by the model loaders (not part of the public API). */
#ifndef ALOE_MODEL_INTERNAL_H
#define ALOE_MODEL_INTERNAL_H

#include "model/decoder.h"

Model *model_new(const ModelConfig *cfg, int n_threads);
/* Records p to be freed with the model; returns p. */
void *model_own(Model *m, void *p);
/* The architecture and dimensions are ones this engine runs (positive,
 * heads divide, even head_dim). */
int model_check_dims(const ModelConfig *c, const char *src, Err *e);
/* model_check_dims, and every size derived from the dimensions fits
 * (overflow-checked): call before allocating from them. */
int model_check_config(const ModelConfig *c, const char *src, Err *e);
void model_init_rope(Model *m, const float *freq_factors);
/* Every loader calls it last. The matrices the running kernels read
 * faster in another layout (kernel_weight_type: Q4_0 regrouped under
 * AVX-512) copied into it once, and, as ALOE_WEIGHTS says (auto: when they
 * fit in the available memory), the others out of the file's map: into
 * huge-page memory the model owns; the originals are no longer read, their
 * pages released. m->weight_type stays the stored type; m->mapped_bytes
 * says what stayed in the map. An invalid ALOE_WEIGHTS is an error. */
int model_place_weights(Model *m, Err *e);
void model_alloc_params(Model *m, const size_t sizes[PARAM_COUNT]);
void model_views_from_params(Model *m);
/* A decoder from an open GGUF (a file or gguf_open_mem: the fuzzer), which
 * the model takes over (closed by model_free, or here on failure). */
Model *model_from_gguf(Gguf *g, int n_threads, Err *e);

#endif
