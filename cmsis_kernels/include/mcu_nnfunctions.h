/*
 * int8 neural-network kernels for Arm Cortex-M, portable C99.
 *
 * The arm_* functions have CMSIS-NN's names, signatures and parameter
 * conventions, so generated firmware can link against Arm's CMSIS-NN instead
 * of this library. The mcu_* functions cover TFLite ops CMSIS-NN lacks.
 *
 * Arithmetic is bit-exact with TensorFlow Lite Micro's reference kernels:
 * requantization is MultiplyByQuantizedMultiplier (gemmlowp double rounding),
 * multipliers are Q31 and shifts are positive-left. Offsets are added to raw
 * values: input offsets are -zero_point, output offsets +zero_point.
 * Tensors are NHWC.
 */
#ifndef MCU_NNFUNCTIONS_H
#define MCU_NNFUNCTIONS_H

#include "mcu_nn_types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Convolution ------------------------------------------------------ */

/**
 * 2D convolution, per-channel requantization.
 * filter_dims: [C_OUT, KH, KW, C_IN]; bias_data may be NULL.
 * Padding is the top/left padding; output_dims sets the output size, so
 * TFLite SAME padding with an odd total is expressed exactly.
 * ctx->buf must hold mcu_convolve_s8_get_buffer_size() bytes.
 */
mcu_nn_status mcu_convolve_s8(const mcu_nn_context *ctx,
                                    const mcu_nn_conv_params *conv_params,
                                    const mcu_nn_per_channel_quant_params *quant_params,
                                    const mcu_nn_dims *input_dims,
                                    const int8_t *input_data,
                                    const mcu_nn_dims *filter_dims,
                                    const int8_t *filter_data,
                                    const mcu_nn_dims *bias_dims,
                                    const int32_t *bias_data,
                                    const mcu_nn_dims *output_dims,
                                    int8_t *output_data);

int32_t mcu_convolve_s8_get_buffer_size(const mcu_nn_dims *input_dims, const mcu_nn_dims *filter_dims);

/**
 * Depthwise 2D convolution; output channel c reads input channel c / ch_mult.
 * filter_dims: [1, KH, KW, C_OUT]; bias_data may be NULL. Needs no scratch.
 */
mcu_nn_status mcu_depthwise_conv_s8(const mcu_nn_context *ctx,
                                          const mcu_nn_dw_conv_params *dw_conv_params,
                                          const mcu_nn_per_channel_quant_params *quant_params,
                                          const mcu_nn_dims *input_dims,
                                          const int8_t *input_data,
                                          const mcu_nn_dims *filter_dims,
                                          const int8_t *filter_data,
                                          const mcu_nn_dims *bias_dims,
                                          const int32_t *bias_data,
                                          const mcu_nn_dims *output_dims,
                                          int8_t *output_data);

/** The tallest filter mcu_depthwise_conv_in_place_s8 takes. */
#define MCU_DW_IN_PLACE_MAX_KH 16

/**
 * Depthwise 2D convolution in place: stride 1, ch_mult 1, the output (dims) over the
 * input. ctx->buf: mcu_depthwise_conv_in_place_s8_get_buffer_size() bytes, a ring of
 * padding.h + 1 input rows.
 */
mcu_nn_status mcu_depthwise_conv_in_place_s8(const mcu_nn_context *ctx,
                                             const mcu_nn_dw_conv_params *dw_conv_params,
                                             const mcu_nn_per_channel_quant_params *quant_params,
                                             const mcu_nn_dims *dims,
                                             const mcu_nn_dims *filter_dims,
                                             const int8_t *filter_data,
                                             const int32_t *bias_data,
                                             int8_t *data);

int32_t mcu_depthwise_conv_in_place_s8_get_buffer_size(const mcu_nn_dw_conv_params *dw_conv_params,
                                                       const mcu_nn_dims *input_dims);

/* ---- Fully connected ---------------------------------------------------- */

/**
 * Fully connected, per-tensor requantization.
 * input_dims->n: batches; filter_dims->n: accumulation depth; output_dims->c:
 * output depth. Filter is [C_OUT][depth] row-major; bias_data may be NULL.
 * acc_init: one int32 per output channel (never NULL), the input offset's part of the
 * accumulator, folded by the code generator beside the weights:
 *     acc_init[oc] = input_offset * sum_i (filter[oc][i] + filter_offset)
 * (int32 arithmetic, wrapping as the kernel's sums do). The bias stays the layer's own
 * constant, added at run time.
 */
mcu_nn_status mcu_fully_connected_s8(const mcu_nn_context *ctx,
                                           const mcu_nn_fc_params *fc_params,
                                           const mcu_nn_per_tensor_quant_params *quant_params,
                                           const mcu_nn_dims *input_dims,
                                           const int8_t *input_data,
                                           const mcu_nn_dims *filter_dims,
                                           const int8_t *filter_data,
                                           const mcu_nn_dims *bias_dims,
                                           const int32_t *bias_data,
                                           const int32_t *acc_init,
                                           const mcu_nn_dims *output_dims,
                                           int8_t *output_data);

/** As mcu_fully_connected_s8 (same acc_init), with one multiplier/shift per output channel. */
mcu_nn_status mcu_fully_connected_per_channel_s8(const mcu_nn_context *ctx,
                                                       const mcu_nn_fc_params *fc_params,
                                                       const mcu_nn_per_channel_quant_params *quant_params,
                                                       const mcu_nn_dims *input_dims,
                                                       const int8_t *input_data,
                                                       const mcu_nn_dims *filter_dims,
                                                       const int8_t *filter_data,
                                                       const mcu_nn_dims *bias_dims,
                                                       const int32_t *bias_data,
                                                       const int32_t *acc_init,
                                                       const mcu_nn_dims *output_dims,
                                                       int8_t *output_data);

/* ---- Elementwise -------------------------------------------------------- */

/** TFLite int8 ADD of two same-shaped vectors (inputs pre-shifted by left_shift, i.e. 20). */
mcu_nn_status mcu_elementwise_add_s8(const int8_t *input_1_vect,
                                           const int8_t *input_2_vect,
                                           const int32_t input_1_offset,
                                           const int32_t input_1_mult,
                                           const int32_t input_1_shift,
                                           const int32_t input_2_offset,
                                           const int32_t input_2_mult,
                                           const int32_t input_2_shift,
                                           const int32_t left_shift,
                                           int8_t *output,
                                           const int32_t out_offset,
                                           const int32_t out_mult,
                                           const int32_t out_shift,
                                           const int32_t out_activation_min,
                                           const int32_t out_activation_max,
                                           const int32_t block_size);

/** TFLite int8 MUL of two same-shaped vectors. */
mcu_nn_status mcu_elementwise_mul_s8(const int8_t *input_1_vect,
                                           const int8_t *input_2_vect,
                                           const int32_t input_1_offset,
                                           const int32_t input_2_offset,
                                           int8_t *output,
                                           const int32_t out_offset,
                                           const int32_t out_mult,
                                           const int32_t out_shift,
                                           const int32_t out_activation_min,
                                           const int32_t out_activation_max,
                                           const int32_t block_size);

/**
 * ADD with NumPy/TFLite broadcasting over 4D NHWC shapes: every dimension of
 * an input is either 1 or the output's. Same arithmetic as mcu_elementwise_add_s8.
 */
mcu_nn_status mcu_broadcast_add_s8(const int8_t *input_1_vect,
                                         const mcu_nn_dims *input_1_dims,
                                         const int8_t *input_2_vect,
                                         const mcu_nn_dims *input_2_dims,
                                         const int32_t input_1_offset,
                                         const int32_t input_1_mult,
                                         const int32_t input_1_shift,
                                         const int32_t input_2_offset,
                                         const int32_t input_2_mult,
                                         const int32_t input_2_shift,
                                         const int32_t left_shift,
                                         int8_t *output,
                                         const mcu_nn_dims *output_dims,
                                         const int32_t out_offset,
                                         const int32_t out_mult,
                                         const int32_t out_shift,
                                         const int32_t out_activation_min,
                                         const int32_t out_activation_max);

/** MUL with broadcasting, as mcu_broadcast_add_s8. */
mcu_nn_status mcu_broadcast_mul_s8(const int8_t *input_1_vect,
                                         const mcu_nn_dims *input_1_dims,
                                         const int8_t *input_2_vect,
                                         const mcu_nn_dims *input_2_dims,
                                         const int32_t input_1_offset,
                                         const int32_t input_2_offset,
                                         int8_t *output,
                                         const mcu_nn_dims *output_dims,
                                         const int32_t out_offset,
                                         const int32_t out_mult,
                                         const int32_t out_shift,
                                         const int32_t out_activation_min,
                                         const int32_t out_activation_max);

/**
 * MAXIMUM (maximum != 0) or MINIMUM of two int8 tensors with broadcasting over 4D NHWC
 * shapes, as mcu_broadcast_add_s8; inputs and output share one quantization.
 */
mcu_nn_status mcu_maximum_minimum_s8(const int8_t *input_1_vect,
                                           const mcu_nn_dims *input_1_dims,
                                           const int8_t *input_2_vect,
                                           const mcu_nn_dims *input_2_dims,
                                           int8_t *output,
                                           const mcu_nn_dims *output_dims,
                                           const int32_t maximum);

/**
 * SUB (squared == 0) or SQUARED_DIFFERENCE (squared != 0) of two int8 tensors with
 * broadcasting over 4D NHWC shapes, as mcu_broadcast_add_s8. quant holds ADD's rescaling
 * (SUB: left_shift 20; SQUARED_DIFFERENCE: left_shift 7, the output multiplier applied
 * to the squared difference); the second input's rescaled value is subtracted.
 */
mcu_nn_status mcu_sub_s8(const int8_t *input_1_vect,
                               const mcu_nn_dims *input_1_dims,
                               const int8_t *input_2_vect,
                               const mcu_nn_dims *input_2_dims,
                               const mcu_add_quant *quant,
                               int8_t *output,
                               const mcu_nn_dims *output_dims,
                               const int32_t squared);

/* ---- Pooling ------------------------------------------------------------ */

/** Max pooling; filter_dims->h/w is the window. Padded taps are skipped. */
mcu_nn_status mcu_max_pool_s8(const mcu_nn_context *ctx,
                                    const mcu_nn_pool_params *pool_params,
                                    const mcu_nn_dims *input_dims,
                                    const int8_t *input_data,
                                    const mcu_nn_dims *filter_dims,
                                    const mcu_nn_dims *output_dims,
                                    int8_t *output_data);

/**
 * Average pooling; the mean is over in-bounds taps only, rounded half away
 * from zero. ctx->buf must hold mcu_avgpool_s8_get_buffer_size() bytes.
 */
mcu_nn_status mcu_avgpool_s8(const mcu_nn_context *ctx,
                                   const mcu_nn_pool_params *pool_params,
                                   const mcu_nn_dims *input_dims,
                                   const int8_t *input_data,
                                   const mcu_nn_dims *filter_dims,
                                   const mcu_nn_dims *output_dims,
                                   int8_t *output_data);

int32_t mcu_avgpool_s8_get_buffer_size(const int dim_dst_width, const int ch_src);

/* ---- Softmax -------------------------------------------------------------- */

/**
 * Softmax over each row, TFLite's int8 fixed-point algorithm. mult/shift are
 * the input beta multiplier and left shift, diff_min the cut-off below which
 * exp() is taken as 0. Output scale is 1/256 with zero point -128.
 */
void mcu_softmax_s8(const int8_t *input,
                    const int32_t num_rows,
                    const int32_t row_size,
                    const int32_t mult,
                    const int32_t shift,
                    const int32_t diff_min,
                    int8_t *output);

/* ---- Data movement and activations (not in CMSIS-NN) ---------------------- */

/**
 * CONV_2D (as mcu_convolve_s8) whose int8 output is added to residual_data with TFLite
 * ADD arithmetic (add_quant: input 1 = the convolution's output, input 2 = the residual);
 * output_data may be residual_data (in place). Shapes: residual = output.
 * Scratch: none (ctx may be {NULL, 0}) for a 1x1 filter without padding whose every output
 * pixel reads an input pixel; otherwise ctx->size = mcu_convolve_s8_get_buffer_size() +
 * output_dims->w * output_dims->c (one output row, kept at the end of ctx->buf).
 */
mcu_nn_status mcu_convolve_add_s8(const mcu_nn_context *ctx,
                                        const mcu_nn_conv_params *conv_params,
                                        const mcu_nn_per_channel_quant_params *quant_params,
                                        const mcu_nn_dims *input_dims,
                                        const int8_t *input_data,
                                        const mcu_nn_dims *filter_dims,
                                        const int8_t *filter_data,
                                        const mcu_nn_dims *bias_dims,
                                        const int32_t *bias_data,
                                        const mcu_add_quant *add_quant,
                                        const int8_t *residual_data,
                                        const mcu_nn_dims *output_dims,
                                        int8_t *output_data);

/**
 * Concatenation along any axis. Seen as [outer_size][row] arrays, input i has
 * rows of input_row_sizes[i] bytes (the product of its dimensions from the
 * axis inward); output row r is the inputs' rows r side by side.
 */
mcu_nn_status mcu_concat_s8(const int8_t *const *inputs,
                                  const int32_t *input_row_sizes,
                                  const int32_t num_inputs,
                                  const int32_t outer_size,
                                  int8_t *output);

/** 4D transpose: output dimension i is input dimension perm[i] (0=n, 1=h, 2=w, 3=c). */
mcu_nn_status mcu_transpose_s8(const int8_t *input,
                                     const mcu_nn_dims *input_dims,
                                     const int32_t *perm,
                                     int8_t *output);

/** Constant padding of a 4D tensor; pad_before holds the leading padding per dimension. */
mcu_nn_status mcu_pad_s8(const int8_t *input,
                               const mcu_nn_dims *input_dims,
                               const mcu_nn_dims *pad_before,
                               const int8_t pad_value,
                               const mcu_nn_dims *output_dims,
                               int8_t *output);

/**
 * Requantizing RELU as TFLite Micro's ReluQuantized:
 * out = clamp(out_offset + requantize(x + input_offset, out_mult, out_shift), act_min, act_max).
 */
mcu_nn_status mcu_relu_s8(const int8_t *input,
                                int8_t *output,
                                const int32_t size,
                                const int32_t input_offset,
                                const int32_t out_offset,
                                const int32_t out_mult,
                                const int32_t out_shift,
                                const int32_t out_activation_min,
                                const int32_t out_activation_max);

/**
 * RELU6 as TFLite Micro's Relu6Quantized: a clamp to [act_min, act_max] in the
 * input's domain (output quantization equals the input's).
 */
mcu_nn_status mcu_relu6_s8(const int8_t *input,
                                 int8_t *output,
                                 const int32_t size,
                                 const int32_t out_activation_min,
                                 const int32_t out_activation_max);

/**
 * A table activation: output[i] = table[input[i] + 128]. The table holds the
 * activation's int8 result for every int8 input (computed by the compiler with the
 * TFLite integer definition, e.g. LOGISTIC's). May run in place.
 */
mcu_nn_status mcu_lut_s8(const int8_t *input, int8_t *output, const int32_t size, const int8_t table[256]);

/* ---- Gathers, reductions, resizing (not in CMSIS-NN) ------------------------ */

/**
 * Copies input[i_n][i_h][i_w][i_c] to output[n][h][w][c] where, per axis, the input index
 * i is index[k][position] or, when index[k] is NULL, begin.k + position (k = 0..3 for
 * n, h, w, c; an innermost NULL axis is one memcpy per row). Strided and plain slices,
 * split outputs, mirror padding and nearest-neighbour resizing are such gathers.
 */
mcu_nn_status mcu_gather_axes_s8(const int8_t *input,
                                       const mcu_nn_dims *input_dims,
                                       const mcu_nn_dims *begin,
                                       const int32_t *const index[4],
                                       const mcu_nn_dims *output_dims,
                                       int8_t *output);

/** What mcu_reduce_s8 computes per output value. */
typedef enum
{
    MCU_REDUCE_SUM, /* the sum, rescaled by mcu_reduce_quant (TFLite MEAN and SUM) */
    MCU_REDUCE_MAX,
    MCU_REDUCE_MIN
} mcu_reduce_op;

/** MEAN/SUM: output = clamp(output_offset + requantize(sum + sum_offset, multiplier, shift)). */
typedef struct
{
    int32_t sum_offset; /* -input zero point * values summed per output */
    int32_t multiplier;
    int32_t shift;
    int32_t output_offset;
} mcu_reduce_quant;

/**
 * Reduction over any axes. The input has num_axes (at most 8) axes of the given sizes,
 * outermost first; out_strides[k] is axis k's stride in the output, 0 along the reduced
 * axes (the innermost axis: 1 or 0). ctx->buf holds one int32 per output value.
 * quant: MCU_REDUCE_SUM only (NULL otherwise); MAX and MIN keep the input's quantization.
 */
mcu_nn_status mcu_reduce_s8(const mcu_nn_context *ctx,
                                  const int8_t *input,
                                  const int32_t *sizes,
                                  const int32_t *out_strides,
                                  const int32_t num_axes,
                                  const mcu_reduce_op op,
                                  const mcu_reduce_quant *quant,
                                  const int32_t output_size,
                                  int8_t *output);

/**
 * Bilinear resize of an NHWC tensor, TFLite's integer algorithm: scale_h and scale_w are
 * the input/output size ratios in 1/1024 (ResizeBilinearInteger's), half_pixel_centers
 * 0 or 1. The output shares the input's quantization.
 */
mcu_nn_status mcu_resize_bilinear_s8(const int8_t *input,
                                           const mcu_nn_dims *input_dims,
                                           const int32_t scale_h,
                                           const int32_t scale_w,
                                           const int32_t half_pixel_centers,
                                           const mcu_nn_dims *output_dims,
                                           int8_t *output);

/** BATCH_MATMUL quantization: offsets are -zero points (lhs, rhs) and +zero point (output). */
typedef struct
{
    int32_t lhs_offset;
    int32_t rhs_offset;
    int32_t output_offset;
    int32_t multiplier;
    int32_t shift;
    int32_t act_min;
    int32_t act_max;
} mcu_batch_matmul_quant;

/** BATCH_MATMUL geometry: up to three batch axes of the output (outermost first, 1 where
 * absent), each operand's stride along them (0: broadcast), the matrix sizes, and the
 * strides that read lhs[i, k] and rhs[k, j] (adj_x / adj_y swap them). */
typedef struct
{
    int32_t batches[3];
    int32_t lhs_batch_strides[3];
    int32_t rhs_batch_strides[3];
    int32_t rows;
    int32_t cols;
    int32_t depth;
    int32_t lhs_row_stride;
    int32_t lhs_depth_stride;
    int32_t rhs_depth_stride;
    int32_t rhs_col_stride;
} mcu_batch_matmul_dims;

/**
 * int8 batched matrix product, TFLite's integer BATCH_MATMUL: output [batches..., rows, cols],
 * row-major, per-tensor requantization.
 */
mcu_nn_status mcu_batch_matmul_s8(const int8_t *lhs,
                                        const int8_t *rhs,
                                        const mcu_batch_matmul_dims *dims,
                                        const mcu_batch_matmul_quant *quant,
                                        int8_t *output);

/**
 * int8 TRANSPOSE_CONV, NHWC input and output, OHWI filter with zero point 0, per output
 * channel requantization; conv_params->padding is the leading padding of the output
 * (dilation unused). ctx->buf holds one int32 accumulator per output value.
 */
mcu_nn_status mcu_transpose_conv_s8(const mcu_nn_context *ctx,
                                          const mcu_nn_conv_params *conv_params,
                                          const mcu_nn_per_channel_quant_params *quant_params,
                                          const mcu_nn_dims *input_dims,
                                          const int8_t *input,
                                          const mcu_nn_dims *filter_dims,
                                          const int8_t *filter,
                                          const mcu_nn_dims *bias_dims,
                                          const int32_t *bias,
                                          const mcu_nn_dims *output_dims,
                                          int8_t *output);

/* ---- PRELU, LOG_SOFTMAX (not in CMSIS-NN) ----------------------------------- */

/** PRELU's requantization: offsets, and (multiplier, shift) for x >= 0 and for alpha * x. */
typedef struct
{
    int32_t input_offset;  /* minus the input's zero point */
    int32_t alpha_offset;  /* minus alpha's zero point */
    int32_t output_offset; /* the output's zero point */
    int32_t positive_mult;
    int32_t positive_shift;
    int32_t negative_mult;
    int32_t negative_shift;
} mcu_prelu_quant;

/**
 * int8 PRELU: x >= 0 ? x : alpha * x, alpha broadcast against the input (each of its
 * axes 1 or the output's), TFLite Micro's two requantizations.
 */
mcu_nn_status mcu_prelu_s8(const int8_t *input,
                                 const mcu_nn_dims *input_dims,
                                 const int8_t *alpha,
                                 const mcu_nn_dims *alpha_dims,
                                 const mcu_prelu_quant *quant,
                                 int8_t *output,
                                 const mcu_nn_dims *output_dims);

/**
 * int8 LOG_SOFTMAX of `rows` rows of `depth` values (output scale 16/256, zero point 127):
 * differences to the row maximum rescaled to Q5 by input_mult, input_shift; exps[k] is the
 * Q12 exp of the difference -k (0 below diff_min); reverse_mult, reverse_shift map Q5 back
 * to input steps (TFLite's reverse scaling).
 */
mcu_nn_status mcu_log_softmax_s8(const int8_t *input,
                                       const int32_t rows,
                                       const int32_t depth,
                                       const int32_t input_mult,
                                       const int32_t input_shift,
                                       const int32_t reverse_mult,
                                       const int32_t reverse_shift,
                                       const int32_t diff_min,
                                       const int32_t exps[256],
                                       int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* MCU_NNFUNCTIONS_H */
