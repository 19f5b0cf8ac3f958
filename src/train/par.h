/* par: the row-wise operations of a training step (RMSNorm, SwiGLU, RoPE,
 * residual adds, token cross-entropy), forward and backward, split over a
 * thread pool by rows. Each wraps the single-threaded kernel (kernels/ops.h,
 * train/backward.h, train/loss.h) on a contiguous share of the rows, so the
 * results per row are those of the kernel; only sums over rows (RMSNorm's
 * weight gradient, the loss) are added in a different order: per thread
 * first, then the threads' parts in thread order. */
#ifndef ALOE_TRAIN_PAR_H
#define ALOE_TRAIN_PAR_H

#include <stdint.h>

#include "kernels/threads.h"
#include "train/lora.h"

void par_rmsnorm_forward(ThreadPool *tp, float *out, const float *x, const float *w, int n, int dim, float eps);
/* dx += ..., dw += ... (dw may be NULL) as rmsnorm_backward. */
void par_rmsnorm_backward(ThreadPool *tp, float *dx, float *dw, const float *dy, const float *x, const float *w,
                          int n, int dim, float eps);
/* The norm of kind TrainNorm (train/backward_arch.h) forward and backward;
 * TNORM_RMS is par_rmsnorm_*. TNORM_LAYER has no weight (dw ignored). */
void par_norm_forward(ThreadPool *tp, int kind, float *out, const float *x, const float *w, int n, int dim,
                      float eps);
void par_norm_backward(ThreadPool *tp, int kind, float *dx, float *dw, const float *dy, const float *x,
                       const float *w, int n, int dim, float eps);
/* The MLP's gated activation: SwiGLU (gelu 0) or GeGLU with tanh-GELU (1). */
void par_act_forward(ThreadPool *tp, int gelu, float *out, const float *gate, const float *up, long n);
void par_act_backward(ThreadPool *tp, int gelu, float *dgate, float *dup, const float *dout, const float *gate,
                      const float *up, long n);
void par_swiglu_forward(ThreadPool *tp, float *out, const float *gate, const float *up, long n);
void par_swiglu_backward(ThreadPool *tp, float *dgate, float *dup, const float *dout, const float *gate,
                         const float *up, long n);
/* x += y */
void par_add(ThreadPool *tp, float *x, const float *y, long n);
/* RoPE (or, with backward set, its transpose) of T rows of `heads` heads,
 * row t at position pos[t]. */
void par_rope_rows(ThreadPool *tp, float *x, int T, int heads, int head_dim, const int *pos, const float *inv_freq,
                   int backward);
/* par_rope_rows with cos and sin times mscale (LongRoPE); mscale 1 is
 * par_rope_rows. */
void par_rope_rows_scaled(ThreadPool *tp, float *x, int T, int heads, int head_dim, const int *pos,
                          const float *inv_freq, int backward, float mscale);
/* token_nll_sum_forward / token_nll_sum_backward (train/loss.h) by rows. */
double par_token_nll_sum_forward(ThreadPool *tp, const float *logits, const int32_t *labels, int T, int V,
                                 int *n_valid);
void par_token_nll_sum_backward(ThreadPool *tp, float *dlogits, const float *logits, const int32_t *labels, int T,
                                int V, float scale);
/* lora_forward / lora_backward (train/lora.h) split over the threads: by
 * rows of x for u, y, du and dx; by rows of B for dB and by columns of A for
 * dA, so each thread's GEMMs write memory no other thread writes. With drop
 * (NULL: none) the adapter's input is dropout(x), rows 0..T of drop's pass,
 * made in xd (T × in floats of scratch); the backward remakes the same mask
 * there and passes dx only the kept elements' gradient. */
void par_lora_forward(ThreadPool *tp, float *y, float *u, const float *x, const float *A, const float *B, int T,
                      int in, int out, int r, float scale, const LoraDropout *drop, float *xd);
void par_lora_backward(ThreadPool *tp, float *dx, float *dA, float *dB, float *du, const float *dy, const float *x,
                       const float *u, const float *A, const float *B, int T, int in, int out, int r, float scale,
                       const LoraDropout *drop, float *xd);

#endif
