/* encoder_ops: the CPU operations a BERT-family encoder needs beyond a
 * matrix product: LayerNorm with bias, the exact (erf) GELU, linear layers
 * (on the kernel thread pool), and bidirectional attention over packed
 * sequences.
 *
 * Activations are row-major [tokens, features]. Several texts are packed
 * one after another with no padding; `seq_start[s] .. seq_start[s+1]` are
 * the rows of text s. Attention lets a token see every token of its own
 * text and none of the others, which is exactly what a padded batch with
 * an attention mask computes for the real tokens, without the wasted work
 * on padding. */
#ifndef ALOE_KERNELS_ENCODER_OPS_H
#define ALOE_KERNELS_ENCODER_OPS_H

#include <stddef.h>

#include "kernels/threads.h"

/* out[r] = (x[r] - mean) / sqrt(var + eps) * w + b for each of rows rows of
 * dim features (biased variance, as torch.nn.LayerNorm). out may be x. */
void enc_layernorm(float *out, const float *x, const float *w, const float *b, int rows, int dim,
                   float eps);

/* x = 0.5 x (1 + erf(x / sqrt 2)) in place: BERT's "gelu" (not the tanh
 * approximation, which is "gelu_new"/"gelu_pytorch_tanh"), on up to
 * `threads` threads. */
void enc_gelu(float *x, size_t n, int threads);

/* out[rows, n_out] = x[rows, n_in] W^T + b, W stored [n_out, n_in] as
 * PyTorch's nn.Linear keeps it; b may be NULL. out must not alias x.
 * Split by rows of x over tp's threads (NULL: the calling thread only),
 * each share one single-threaded sgemm: the pool owns the parallelism,
 * never OpenBLAS's own threads, which tp_create sets to one for the whole
 * process. */
void enc_linear(ThreadPool *tp, float *out, const float *x, const float *w, const float *b, int rows, int n_in,
                int n_out);

/* Multi-head self-attention without a causal mask. q, k, v, out are
 * [tokens, n_heads * head_dim] (head h in columns h*head_dim ..); text s
 * owns rows seq_start[s] .. seq_start[s+1]-1 (seq_start has n_seqs + 1
 * entries). out must not alias q, k or v. Runs the (text, head) pairs on
 * up to `threads` threads. */
void enc_attention(float *out, const float *q, const float *k, const float *v, const int *seq_start,
                   int n_seqs, int n_heads, int head_dim, int threads);

#endif
