/*
 * Fixed-point helpers shared by the kernels (private to this library).
 *
 * These are TFLite Micro's integer primitives: gemmlowp's
 * SaturatingRoundingDoublingHighMul and RoundingDivideByPOT, combined into
 * MultiplyByQuantizedMultiplier. Each kernel .c file holds the portable C
 * implementation; DSP/MVE variants would sit beside it under
 * #if defined(ARM_MATH_DSP) / defined(ARM_MATH_MVEI).
 */
#ifndef MCU_NN_SUPPORT_H
#define MCU_NN_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

#include "arm_nnfunctions.h"

#define MCU_INT32_MAX ((int32_t)0x7FFFFFFF)
#define MCU_INT32_MIN (-MCU_INT32_MAX - 1)

static inline int32_t mcu_clamp(int32_t x, int32_t lo, int32_t hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

/* round(a * b / 2^31), half away from zero; only INT32_MIN * INT32_MIN saturates. */
static inline int32_t mcu_doubling_high_mult(int32_t a, int32_t b)
{
    if (a == MCU_INT32_MIN && b == MCU_INT32_MIN)
    {
        return MCU_INT32_MAX;
    }
    const int64_t ab = (int64_t)a * b;
    const int64_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
    /* Division, not a shift: gemmlowp truncates toward zero here. */
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/* x / 2^exponent rounded half away from zero; exponent in [0, 31]. */
static inline int32_t mcu_divide_by_power_of_two(int32_t x, int32_t exponent)
{
    const int32_t mask = (int32_t)((1u << exponent) - 1u);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0);
    return (x >> exponent) + (remainder > threshold);
}

/* MultiplyByQuantizedMultiplier: x * multiplier * 2^(shift - 31), shift > 0 is a left shift.
 * The left-shifted value saturates to int32 instead of wrapping. */
static inline int32_t mcu_requantize(int32_t x, int32_t multiplier, int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    int64_t scaled = (int64_t)x * ((int64_t)1 << left);
    scaled = scaled > MCU_INT32_MAX ? MCU_INT32_MAX : (scaled < MCU_INT32_MIN ? MCU_INT32_MIN : scaled);
    return mcu_divide_by_power_of_two(mcu_doubling_high_mult((int32_t)scaled, multiplier), right);
}

/* Requantize a 32-bit accumulator to the int8 output domain. */
static inline int8_t mcu_requantize_s8(int32_t acc, int32_t multiplier, int32_t shift, int32_t out_offset,
                                       int32_t act_min, int32_t act_max)
{
    return (int8_t)mcu_clamp(mcu_requantize(acc, multiplier, shift) + out_offset, act_min, act_max);
}

/* Quantization of TFLite int8 ADD. */
typedef struct
{
    int32_t input_1_offset, input_1_mult, input_1_shift;
    int32_t input_2_offset, input_2_mult, input_2_shift;
    int32_t left_shift;
    int32_t out_offset, out_mult, out_shift;
    int32_t act_min, act_max;
} mcu_add_quant;

/* Both inputs are brought to a common scale with left_shift bits of headroom, summed, then rescaled. */
static inline int8_t mcu_add_one_s8(int8_t a, int8_t b, const mcu_add_quant *q)
{
    const int32_t a_shifted = (a + q->input_1_offset) * (1 << q->left_shift);
    const int32_t b_shifted = (b + q->input_2_offset) * (1 << q->left_shift);
    const int32_t sum = mcu_requantize(a_shifted, q->input_1_mult, q->input_1_shift) +
                        mcu_requantize(b_shifted, q->input_2_mult, q->input_2_shift);
    return mcu_requantize_s8(sum, q->out_mult, q->out_shift, q->out_offset, q->act_min, q->act_max);
}

/* Quantization of TFLite int8 MUL. */
typedef struct
{
    int32_t input_1_offset, input_2_offset;
    int32_t out_offset, out_mult, out_shift;
    int32_t act_min, act_max;
} mcu_mul_quant;

static inline int8_t mcu_mul_one_s8(int8_t a, int8_t b, const mcu_mul_quant *q)
{
    const int32_t product = (a + q->input_1_offset) * (b + q->input_2_offset);
    return mcu_requantize_s8(product, q->out_mult, q->out_shift, q->out_offset, q->act_min, q->act_max);
}

#endif /* MCU_NN_SUPPORT_H */
