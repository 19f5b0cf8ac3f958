/* backend_cpu_par: the backwards of the CPU backend's row-wise operations
 * (the norms, SwiGLU/GeGLU), split over a thread pool by rows (their
 * forwards, and RoPE both ways, are backend_cpu.c's row ops). Each wraps
 * the single-threaded backward (backend_cpu_backward*.h) on a contiguous
 * share of the rows, so the results per row are those of the kernel; only
 * the sum over rows of a norm's weight gradient is added in a different
 * order: per thread first, then the threads' parts in thread order. */
#ifndef ALOE_KERNELS_BACKEND_CPU_PAR_H
#define ALOE_KERNELS_BACKEND_CPU_PAR_H

#include <stdint.h>

#include "kernels/threads.h"

/* dx += ..., dw += ... (dw may be NULL) as rmsnorm_backward. */
void par_rmsnorm_backward(ThreadPool *tp, float *dx, float *dw, const float *dy, const float *x, const float *w,
                          int n, int dim, float eps);
/* The norm of kind TrainNorm (backend_cpu_backward_arch.h); TNORM_RMS is
 * par_rmsnorm_backward. TNORM_LAYER has no weight (dw ignored). */
void par_norm_backward(ThreadPool *tp, int kind, float *dx, float *dw, const float *dy, const float *x,
                       const float *w, int n, int dim, float eps);
/* The MLP's gated activation: SwiGLU (gelu 0) or GeGLU with tanh-GELU (1). */
void par_act_backward(ThreadPool *tp, int gelu, float *dgate, float *dup, const float *dout, const float *gate,
                      const float *up, long n);
void par_swiglu_backward(ThreadPool *tp, float *dgate, float *dup, const float *dout, const float *gate,
                         const float *up, long n);

#endif
