/* backend_cpu_lora: the CPU backend's LoRA adapters (Hu et al., 2021, as
 * peft computes them; train/lora.h has the configuration and the weights'
 * initialisation): the GEMMs of one adapted linear layer, single-threaded
 * and split over a pool, and the dropout mask rows (kernels/backend.h's
 * LoraDropout). An adapted layer computes y = x·Wᵀ + b + scale·(x·Aᵀ)·Bᵀ
 * with A [r][in], B [out][r]. */
#ifndef ALOE_KERNELS_BACKEND_CPU_LORA_H
#define ALOE_KERNELS_BACKEND_CPU_LORA_H

#include "kernels/backend.h"
#include "kernels/threads.h"

/* One adapted linear layer over T rows. forward: y += scale·(x·Aᵀ)·Bᵀ,
 * keeping u = x·Aᵀ [T][r] for the backward. */
void lora_forward(float *y, float *u, const float *x, const float *A, const float *B, int T, int in, int out, int r,
                  float scale);
/* dA += ∂/∂A, dB += ∂/∂B, dx += the adapter's share of ∂/∂x (dx may be
 * NULL). du is T*r floats of scratch. */
void lora_backward(float *dx, float *dA, float *dB, float *du, const float *dy, const float *x, const float *u,
                   const float *A, const float *B, int T, int in, int out, int r, float scale);
/* xd = dropout(x) for rows [t0, t1) of width in (t counts rows of the whole
 * pass; x and xd point at row t0). */
void lora_dropout_rows(const LoraDropout *d, float *xd, const float *x, long t0, long t1, int in);
/* dx += dropout'(g): g·1/(1-p) where kept, for the same rows. */
void lora_dropout_backward_rows(const LoraDropout *d, float *dx, const float *g, long t0, long t1, int in);

/* lora_forward / lora_backward split over the threads: by rows of x for u,
 * y, du and dx; by rows of B for dB and by columns of A for dA, so each
 * thread's GEMMs write memory no other thread writes. With drop (NULL:
 * none) the adapter's input is dropout(x), rows 0..T of drop's pass, made
 * in xd (T × in floats of scratch); the backward remakes the same mask
 * there and passes dx only the kept elements' gradient. */
void par_lora_forward(ThreadPool *tp, float *y, float *u, const float *x, const float *A, const float *B, int T,
                      int in, int out, int r, float scale, const LoraDropout *drop, float *xd);
void par_lora_backward(ThreadPool *tp, float *dx, float *dA, float *dB, float *du, const float *dy, const float *x,
                       const float *u, const float *A, const float *B, int T, int in, int out, int r, float scale,
                       const LoraDropout *drop, float *xd);
/* The same with bf16 products (training's bf16 matmul mode,
 * kernels/gemm_bf16.h): each GEMM's two operands rounded to bf16, sums in
 * f32. u and du stay f32 and are rounded where the next GEMM reads them
 * (autocast rounds them once as it writes them: the same values). */
void par_lora_forward_bf16(ThreadPool *tp, float *y, float *u, const float *x, const float *A, const float *B, int T,
                           int in, int out, int r, float scale, const LoraDropout *drop, float *xd);
void par_lora_backward_bf16(ThreadPool *tp, float *dx, float *dA, float *dB, float *du, const float *dy,
                            const float *x, const float *u, const float *A, const float *B, int T, int in, int out,
                            int r, float scale, const LoraDropout *drop, float *xd);
/* W[out][in] += scale·B·A. */
void lora_merge_f32(float *W, const float *A, const float *B, int in, int out, int r, float scale);

#endif
