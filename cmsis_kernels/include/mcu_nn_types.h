/*
 * Parameter structs of the int8 kernel API.
 *
 * Type and field names follow CMSIS-NN, so firmware generated against this
 * header also builds against Arm's CMSIS-NN library.
 */
#ifndef MCU_NN_TYPES_H
#define MCU_NN_TYPES_H

#include <stdint.h>

/*
 * Optimised kernel paths, derived from the compiler's target features as CMSIS-NN does,
 * so the build needs no extra -D flags:
 *   ARM_MATH_MVEI  Helium integer (M-profile Vector Extension), e.g. Cortex-M55/M85;
 *   ARM_MATH_DSP   32-bit SIMD / dual 16-bit MAC (SMLAD), e.g. Cortex-M4/M7/M33 and M55.
 * A kernel checks ARM_MATH_MVEI first, then ARM_MATH_DSP, else runs its portable C,
 * which stays the reference. Define MCU_NN_PORTABLE to force the portable C everywhere.
 */
#if !defined(MCU_NN_PORTABLE)
#if defined(__ARM_FEATURE_MVE) && ((__ARM_FEATURE_MVE & 1) == 1) && !defined(ARM_MATH_MVEI)
#define ARM_MATH_MVEI
#endif
#if defined(__ARM_FEATURE_DSP) && (__ARM_FEATURE_DSP == 1) && !defined(ARM_MATH_DSP)
#define ARM_MATH_DSP
#endif
#endif

typedef enum
{
    MCU_NN_SUCCESS = 0,
    MCU_NN_ARG_ERROR = -1,
    MCU_NN_NO_IMPL_ERROR = -2,
    MCU_NN_FAILURE = -3,
} mcu_nn_status;

/** Scratch memory handed to a kernel; size in bytes. */
typedef struct
{
    void *buf;
    int32_t size;
} mcu_nn_context;

/** Tensor shape, NHWC. */
typedef struct
{
    int32_t n;
    int32_t h;
    int32_t w;
    int32_t c;
} mcu_nn_dims;

typedef struct
{
    int32_t w;
    int32_t h;
} mcu_nn_tile;

/** Output clamp range in the int8 domain (fused activation). */
typedef struct
{
    int32_t min;
    int32_t max;
} mcu_nn_activation;

/** Offsets are added to the raw values: input_offset = -input_zero_point, output_offset = +output_zero_point. */
typedef struct
{
    int32_t input_offset;
    int32_t output_offset;
    mcu_nn_tile stride;
    mcu_nn_tile padding;
    mcu_nn_tile dilation;
    mcu_nn_activation activation;
} mcu_nn_conv_params;

typedef struct
{
    int32_t input_offset;
    int32_t output_offset;
    int32_t ch_mult;
    mcu_nn_tile stride;
    mcu_nn_tile padding;
    mcu_nn_tile dilation;
    mcu_nn_activation activation;
} mcu_nn_dw_conv_params;

typedef struct
{
    mcu_nn_tile stride;
    mcu_nn_tile padding;
    mcu_nn_activation activation;
} mcu_nn_pool_params;

typedef struct
{
    int32_t input_offset;
    int32_t filter_offset;
    int32_t output_offset;
    mcu_nn_activation activation;
} mcu_nn_fc_params;

/** Q31 multiplier and shift (positive = left) per output channel. */
typedef struct
{
    int32_t *multiplier;
    int32_t *shift;
} mcu_nn_per_channel_quant_params;

typedef struct
{
    int32_t multiplier;
    int32_t shift;
} mcu_nn_per_tensor_quant_params;

/** Quantization of TFLite int8 ADD (op_params.add_params): both inputs are brought to a
 *  common scale with left_shift bits of headroom, summed, then rescaled and clamped. */
typedef struct
{
    int32_t input_1_offset, input_1_mult, input_1_shift;
    int32_t input_2_offset, input_2_mult, input_2_shift;
    int32_t left_shift;
    int32_t out_offset, out_mult, out_shift;
    int32_t act_min, act_max;
} mcu_add_quant;

#endif /* MCU_NN_TYPES_H */
