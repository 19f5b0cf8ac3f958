/* klevel: included first by every SIMD kernel source (Makefile:
 * KLEVEL_SRC). Those sources are compiled once per kernel level (cpu.h),
 * each time with that level's target flags and -DKLEVEL=<level name>, so
 * the #ifdef __AVX2__ / __AVX512F__ paths inside them select that level's
 * code. The defines below give every function they export a per-level
 * name (vec_dot -> vec_dot_avx2), headers' declarations included; calls
 * between them stay direct within a level. dispatch.c defines the public
 * names, which jump through the table of the chosen level
 * (kernel_funcs.h lists them).
 *
 * A function added to a KLEVEL_SRC file and called from outside it gets a
 * line here and one in kernel_funcs.h; a missing line shows up as a
 * "multiple definition" at link time. */
#ifndef ALOE_KERNELS_KLEVEL_H
#define ALOE_KERNELS_KLEVEL_H

#ifndef KLEVEL
#error "a kernel level source: compiled once per level by the Makefile (KLEVEL_SRC), with -DKLEVEL=<level>"
#endif

#define KL_CAT2(a, b) a##_##b
#define KL_CAT(a, b) KL_CAT2(a, b)
#define KL_NAME(f) KL_CAT(f, KLEVEL)

/* quant.h */
#define kernel_type_ok KL_NAME(kernel_type_ok)
#define kernel_row_ok KL_NAME(kernel_row_ok)
#define kernel_vec_type KL_NAME(kernel_vec_type)
#define kernel_act_bytes KL_NAME(kernel_act_bytes)
#define kernel_quantize_act KL_NAME(kernel_quantize_act)
#define kernel_act_to_f32 KL_NAME(kernel_act_to_f32)
#define vec_dot KL_NAME(vec_dot)
#define vec_dot_ref KL_NAME(vec_dot_ref)
#define kernel_use_avx512 KL_NAME(kernel_use_avx512)
#define kernel_weight_type KL_NAME(kernel_weight_type)
#define vec_dot_rows KL_NAME(vec_dot_rows)
#define vec_dot_multi KL_NAME(vec_dot_multi)
#define vec_dot_multi_rows KL_NAME(vec_dot_multi_rows)
#define kernel_dequantize_row KL_NAME(kernel_dequantize_row)
#define dot_f32 KL_NAME(dot_f32)
#define axpy_f32 KL_NAME(axpy_f32)
/* quant_internal.h */
#define kquant_is KL_NAME(kquant_is)
#define kquant_dot_ref KL_NAME(kquant_dot_ref)
#define kquant_dot_n KL_NAME(kquant_dot_n)
#define kquant512_dot_n KL_NAME(kquant512_dot_n)
#define quant512_dot4 KL_NAME(quant512_dot4)
#define quant512_rows KL_NAME(quant512_rows)
#define quant512_rows_n KL_NAME(quant512_rows_n)
#define legacy_dot_ref KL_NAME(legacy_dot_ref)
#define legacy_dot_n KL_NAME(legacy_dot_n)
#define legacy_dequantize_row KL_NAME(legacy_dequantize_row)
#define legacy512_dot_n KL_NAME(legacy512_dot_n)
/* gemm_q.h */
#define gemm_q_act_type KL_NAME(gemm_q_act_type)
#define gemm_q_tile KL_NAME(gemm_q_tile)
#define gemm_grp_type KL_NAME(gemm_grp_type)
#define gemm_grp_tile KL_NAME(gemm_grp_tile)
#define gemm_amx_type KL_NAME(gemm_amx_type)
#define gemm_amx_tile KL_NAME(gemm_amx_tile)
/* ops.h */
#define rmsnorm_forward KL_NAME(rmsnorm_forward)
#define rmsnorm_offset_forward KL_NAME(rmsnorm_offset_forward)
#define layernorm_noparam_forward KL_NAME(layernorm_noparam_forward)
#define clamp_forward KL_NAME(clamp_forward)
#define softcap_forward KL_NAME(softcap_forward)
#define scale_forward KL_NAME(scale_forward)
#define add_forward KL_NAME(add_forward)
#define add_bias_forward KL_NAME(add_bias_forward)
#define swiglu_forward KL_NAME(swiglu_forward)
#define gelu_tanh KL_NAME(gelu_tanh)
#define geglu_tanh_forward KL_NAME(geglu_tanh_forward)
#define softmax_forward KL_NAME(softmax_forward)
#define rope_inv_freq KL_NAME(rope_inv_freq)
#define rope_forward KL_NAME(rope_forward)
#define rope_forward_scaled KL_NAME(rope_forward_scaled)
/* attention.h */
#define attention_forward KL_NAME(attention_forward)
#define attention_forward_ref KL_NAME(attention_forward_ref)
/* stream.h */
#define stream_read_seconds KL_NAME(stream_read_seconds)
/* gemm_bf16.h */
#define gemm_bf16_level KL_NAME(gemm_bf16_level)
#define gemm_bf16_round KL_NAME(gemm_bf16_round)
#define gemm_bf16_xwt_level KL_NAME(gemm_bf16_xwt_level)
#define gemm_bf16_amx_rows KL_NAME(gemm_bf16_amx_rows)
#define gemm_bf16_amx_begin KL_NAME(gemm_bf16_amx_begin)
#define gemm_bf16_amx_end KL_NAME(gemm_bf16_amx_end)
#define gemm_bf16_amx_tile32 KL_NAME(gemm_bf16_amx_tile32)
#define gemm_bf16_rows KL_NAME(gemm_bf16_rows)

#endif
