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
#include <string.h>

#include "mcu_nnfunctions.h"

#if defined(ARM_MATH_MVEI)
#include <arm_mve.h>
#elif defined(ARM_MATH_DSP)
#include <arm_acle.h>
#endif

#define MCU_INT32_MAX ((int32_t)0x7FFFFFFF)
#define MCU_INT32_MIN (-MCU_INT32_MAX - 1)

static inline int32_t mcu_clamp(int32_t x, int32_t lo, int32_t hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

/* a * b / 2^31 rounded to nearest, ties toward +infinity (gemmlowp: the nudge, then a
 * division truncating toward zero); only INT32_MIN * INT32_MIN saturates. */
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
#if defined(ARM_MATH_DSP) && !defined(ARM_MATH_MVEI)
    /* The same results in 32-bit steps with one SMULL: the saturating left shift compares
     * against the limits instead of shifting in 64 bits, and the rounding of the doubling
     * high multiply is round half up (towards +infinity) for either sign, as gemmlowp's
     * nudge and truncating division give, i.e. floor((a * b + 2^30) / 2^31). */
    const int32_t hi_lim = MCU_INT32_MAX >> left;
    const int32_t lo_lim = MCU_INT32_MIN >> left;
    const int32_t a = x > hi_lim ? MCU_INT32_MAX : (x < lo_lim ? MCU_INT32_MIN : (int32_t)((uint32_t)x << left));
    const int32_t high = (a == MCU_INT32_MIN && multiplier == MCU_INT32_MIN)
                             ? MCU_INT32_MAX
                             : (int32_t)(((int64_t)a * multiplier + (1 << 30)) >> 31);
    return mcu_divide_by_power_of_two(high, right);
#else
    int64_t scaled = (int64_t)x * ((int64_t)1 << left);
    scaled = scaled > MCU_INT32_MAX ? MCU_INT32_MAX : (scaled < MCU_INT32_MIN ? MCU_INT32_MIN : scaled);
    return mcu_divide_by_power_of_two(mcu_doubling_high_mult((int32_t)scaled, multiplier), right);
#endif
}

/* Requantize a 32-bit accumulator to the int8 output domain. */
static inline int8_t mcu_requantize_s8(int32_t acc, int32_t multiplier, int32_t shift, int32_t out_offset,
                                       int32_t act_min, int32_t act_max)
{
    return (int8_t)mcu_clamp(mcu_requantize(acc, multiplier, shift) + out_offset, act_min, act_max);
}

#if defined(ARM_MATH_MVEI)
/* mcu_requantize on four lanes, each with its own multiplier and shift; bit-exact with the
 * scalar code for every input. The left shift saturates (VQSHL), VQRDMULH is
 * SaturatingRoundingDoublingHighMul, and the rounding right shift VRSHL (which rounds
 * half up) is turned into round half away from zero by first stepping negative values
 * down by one where the exponent is non-zero (saturating, so INT32_MIN stays put, which
 * gives the same quotient because INT32_MIN is a multiple of every 2^exponent). */
static inline int32x4_t mcu_requantize_mve(int32x4_t x, int32x4_t multiplier, int32x4_t shift)
{
    const int32x4_t zero = vdupq_n_s32(0);
    const int32x4_t left = vmaxq_s32(shift, zero);
    const int32x4_t right = vminq_s32(shift, zero); /* -exponent */
    int32x4_t r = vqrdmulhq_s32(vqshlq_s32(x, left), multiplier);
    /* -1 where r < 0 and exponent > 0 (both sign bits set), else 0. */
    const int32x4_t fixup = vshrq_n_s32(vandq_s32(r, right), 31);
    r = vqaddq_s32(r, fixup);
    return vrshlq_s32(r, right);
}

/* mcu_requantize_s8 on four lanes; the results (in [act_min, act_max]) stay int32. */
static inline int32x4_t mcu_requantize_s8_mve(int32x4_t acc, int32x4_t multiplier, int32x4_t shift,
                                              int32_t out_offset, int32_t act_min, int32_t act_max)
{
    int32x4_t r = vaddq_n_s32(mcu_requantize_mve(acc, multiplier, shift), out_offset);
    r = vmaxq_s32(r, vdupq_n_s32(act_min));
    return vminq_s32(r, vdupq_n_s32(act_max));
}
#endif

#if defined(ARM_MATH_MVEI)
/* mcu_requantize on four values that share one multiplier and one shift <= -1 (a layer
 * with no left shift): VQRDMULH by the scalar, round half away from zero as in
 * mcu_requantize_mve, VRSHL by the scalar shift. Four instructions, bit-exact. */
static inline int32x4_t mcu_requantize_mve_right_n(int32x4_t x, int32_t multiplier, int32_t shift)
{
    int32x4_t r = vqrdmulhq_n_s32(x, multiplier);
    r = vqaddq_s32(r, vshrq_n_s32(r, 31));
    return vrshlq_n_s32(r, shift);
}

/* mcu_requantize on four values that share one multiplier and shift (any shift). */
static inline int32x4_t mcu_requantize_mve_n(int32x4_t x, int32_t multiplier, int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : shift; /* -exponent */
    int32x4_t r = vqrdmulhq_n_s32(vqshlq_r_s32(x, left), multiplier);
    if (right < 0)
    {
        r = vqaddq_s32(r, vshrq_n_s32(r, 31));
    }
    return vrshlq_n_s32(r, right);
}
#endif

#if defined(ARM_MATH_DSP) && !defined(ARM_MATH_MVEI)
/* SMMULR: (a * b + 2^31) >> 32, the rounded high word of the 64-bit product. */
static inline int32_t mcu_smmulr(int32_t a, int32_t b)
{
#if defined(__GNUC__)
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    return (int32_t)(((int64_t)a * b + 0x80000000LL) >> 32);
#endif
}

/*
 * The short requantization of the DSP paths: mcu_requantize(acc, multiplier, shift) +
 * out_offset before the clamp, in six instructions, for a layer where mcu_requant_dsp_ok
 * holds (then |acc| < 2^30, and shift is in [-31, -1], or 0 with a zero multiplier):
 *   - SaturatingRoundingDoublingHighMul(acc, m) = floor((acc * m + 2^30) / 2^31)
 *     = SMMULR(2 * acc, m), as 2 * acc fits in int32 (and acc != INT32_MIN); |h| <= 2^30;
 *   - rounding half away from zero by 2^e (e = -shift >= 1) is, with h' = h - (h < 0),
 *     floor((h' + 2^(e-1)) / 2^e) = ((h' >> (e - 1)) + 1) >> 1, and adding out_offset after
 *     it is adding 2 * out_offset before the last shift: (y + k2) >> 1 with y = h' >> ~shift
 *     and k2 = 2 * out_offset + 1 (mcu_requant_dsp_k2), a constant of the layer;
 *   - a zero multiplier gives h = 0, and 0 >> ~0 is 0 whatever the shift amount.
 * The caller clamps, usually with the SSAT that also takes the last shift.
 */
static inline int32_t mcu_requant_dsp_k2(int32_t out_offset)
{
    return 2 * out_offset + 1;
}

static inline int32_t mcu_requantize_dsp(int32_t acc, int32_t multiplier, int32_t shift, int32_t k2)
{
    const int32_t high = mcu_smmulr((int32_t)((uint32_t)acc << 1), multiplier);
    int32_t y;
#if defined(__GNUC__)
    /* ASR by a register takes its low byte: ~0 = -1 shifts by 255 (sign fill), which is 0
     * for the zero high word of a zero multiplier. */
    __asm__("asr %0, %1, %2" : "=r"(y) : "r"(high + (high >> 31)), "r"(~shift));
#else
    y = ~shift < 0 ? 0 : (high + (high >> 31)) >> ~shift;
#endif
    return (y + k2) >> 1;
}

/*
 * The wide form, exact for any accumulator, for a channel with multiplier >= 0 and shift in
 * [-31, -2] (mcu_requant_dsp_wide_prepare): with P = acc * m, SRDHM is floor((P + 2^30) /
 * 2^31) and rounding half away from zero by 2^e after it folds into one division:
 *   r = floor((P + 2^30 + 2^(30+e) - [P < 0] * 2^31) / 2^(31+e)),
 * and [P < 0] may be read as [acc < 0] (where they differ, P is in (-2^30, 0] and r is 0
 * either way). One SMLAL adds P to that 64-bit constant; r is its high word >> (e - 1).
 * out_offset is folded into the constant as 2 * out_offset * 2^(30+e) when e <= 23 (no
 * overflow: |high word| < 2^31); for a larger e it is added after (*add).
 */
static inline int mcu_requant_dsp_wide_prepare(int32_t multiplier, int32_t shift, int32_t out_offset, int32_t *high,
                                               int32_t *add)
{
    if (multiplier < 0 || shift < -31 || shift > -2)
    {
        return 0;
    }
    const int32_t e = -shift;
    *high = (e <= 23 ? 2 * out_offset + 1 : 1) * (1 << (e - 2));
    *add = e <= 23 ? 0 : out_offset;
    return 1;
}

static inline int32_t mcu_requantize_dsp_wide(int32_t acc, int32_t multiplier, int32_t shift, int32_t high,
                                              int32_t add)
{
    const int32_t sign = acc >> 31;
    uint32_t lo = 0x40000000u - ((uint32_t)sign << 31);
    int32_t hi = high + sign;
#if defined(__GNUC__)
    __asm__("smlal %0, %1, %2, %3" : "+r"(lo), "+r"(hi) : "r"(acc), "r"(multiplier));
#else
    const int64_t n = (int64_t)(((uint64_t)(uint32_t)hi << 32) | lo) + (int64_t)acc * multiplier;
    hi = (int32_t)(n >> 32);
#endif
    return (hi >> ~shift) + add;
}

/* Whether mcu_requantize_dsp is exact for channel c given that its accumulator is bias[c]
 * plus at most max_terms products of (x + input_offset) and an int8 weight, with
 * mcu_requant_dsp_layer_ok: shift in [-31, -1] or 0 with a zero multiplier, |bias| < 2^29
 * (then |acc| < 2^29 + 2^14 * 256 * 128 = 2^30). */
static inline int mcu_requant_dsp_bias_ok(int32_t bias)
{
    return (uint32_t)bias + (1u << 29) < (1u << 30);
}

static inline int mcu_requant_dsp_channel_ok(int32_t multiplier, int32_t shift)
{
    return (shift >= -31 && shift <= -1) || (shift == 0 && multiplier == 0);
}

/* The layer-wide conditions of mcu_requantize_dsp: max_terms <= 2^14, input_offset in
 * [-128, 128], output_offset in [-128, 127]. */
static inline int mcu_requant_dsp_layer_ok(int32_t max_terms, int32_t input_offset, int32_t output_offset)
{
    return max_terms <= (1 << 14) && input_offset >= -128 && input_offset <= 128 && output_offset >= -128 &&
           output_offset <= 127;
}

/* mcu_requant_dsp_layer_ok and every channel's multiplier and shift fit (*biases_ok: and
 * every bias, NULL meaning 0). */
static inline int mcu_requant_dsp_ok(const int32_t *multiplier, const int32_t *shift, const int32_t *bias,
                                     int32_t channels, int32_t max_terms, int32_t input_offset, int32_t output_offset,
                                     int *biases_ok)
{
    *biases_ok = 1;
    if (!mcu_requant_dsp_layer_ok(max_terms, input_offset, output_offset))
    {
        return 0;
    }
    for (int32_t c = 0; c < channels; c++)
    {
        if (!mcu_requant_dsp_channel_ok(multiplier[c], shift[c]))
        {
            return 0;
        }
        if (bias != NULL && !mcu_requant_dsp_bias_ok(bias[c]))
        {
            *biases_ok = 0;
        }
    }
    return 1;
}
#endif

/* Input coordinates [*start, *end) covered by a pooling window of `kernel` taps starting at base. */
static inline void mcu_window_range(int32_t base, int32_t kernel, int32_t size, int32_t *start, int32_t *end)
{
    *start = base > 0 ? base : 0;
    *end = base + kernel < size ? base + kernel : size;
}

/* The in-bounds input rows [y_start, y_end) and columns [x_start, x_end) of one pooling window. */
typedef struct
{
    int32_t y_start, y_end;
    int32_t x_start, x_end;
} mcu_pool_window;

/* The window of output pixel (out_y, out_x); padded taps are left out. */
static inline mcu_pool_window mcu_pool_window_at(const mcu_nn_pool_params *p,
                                                 const mcu_nn_dims *input_dims,
                                                 const mcu_nn_dims *filter_dims,
                                                 int32_t out_y,
                                                 int32_t out_x)
{
    mcu_pool_window win;
    mcu_window_range(out_y * p->stride.h - p->padding.h, filter_dims->h, input_dims->h, &win.y_start, &win.y_end);
    mcu_window_range(out_x * p->stride.w - p->padding.w, filter_dims->w, input_dims->w, &win.x_start, &win.x_end);
    return win;
}

#if defined(ARM_MATH_DSP) && !defined(ARM_MATH_MVEI)
/* Four int8 (or two int16) values as one 32-bit word; the address need not be aligned. */
static inline int32_t mcu_read_word(const void *p)
{
    int32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* The int16 pair (lo, hi) as one word, for the dual 16-bit instructions. */
static inline int32_t mcu_pack_s16x2(int32_t lo, int32_t hi)
{
    return (int32_t)(((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16));
}

/* __sxtb16(v ROR 8): bytes 1 and 3 of v as an int16 pair. GCC does not fold the rotation
 * into SXTB16 by itself, so it is spelled out there (one instruction instead of two). */
static inline int32_t mcu_sxtb16_ror8(int32_t v)
{
#if defined(__GNUC__)
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
#else
    return __sxtb16((int32_t)(((uint32_t)v >> 8) | ((uint32_t)v << 24)));
#endif
}

/* __sxtab16(a, v ROR 8): a plus bytes 1 and 3 of v, per 16-bit lane. */
static inline int32_t mcu_sxtab16_ror8(int32_t a, int32_t v)
{
#if defined(__GNUC__)
    int32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(v));
    return r;
#else
    return __sxtab16(a, (int32_t)(((uint32_t)v >> 8) | ((uint32_t)v << 24)));
#endif
}
#endif

/* ---- Dot products of raw int8 rows (no offsets), for kernels that fold the offsets'
 * terms into per-row constants. Sums are int32 and wrap like the reference's. Each comes
 * inline (*_inline) and out of line: inlined into a large kernel, gcc 12 may spill the
 * loop's pointers. */

#if defined(__GNUC__)
#define MCU_NOINLINE __attribute__((noinline, unused))
#else
#define MCU_NOINLINE
#endif

#if defined(ARM_MATH_MVEI)
/* The sums of x[i] * w_k[i] over depth for four rows w_0..w_3 as the lanes of one vector:
 * each 16 input bytes are loaded once for the four rows; the tail is one predicated step. */
static inline int32x4_t mcu_dot4_s8_mve_inline(const int8_t *x, const int8_t *w_0, const int8_t *w_1,
                                               const int8_t *w_2, const int8_t *w_3, int32_t depth)
{
    int32_t a_0 = 0, a_1 = 0, a_2 = 0, a_3 = 0;
    for (int32_t n = depth >> 4; n > 0; n--)
    {
        const int8x16_t xv = vldrbq_s8(x);
        a_0 = vmladavaq_s8(a_0, xv, vldrbq_s8(w_0));
        a_1 = vmladavaq_s8(a_1, xv, vldrbq_s8(w_1));
        a_2 = vmladavaq_s8(a_2, xv, vldrbq_s8(w_2));
        a_3 = vmladavaq_s8(a_3, xv, vldrbq_s8(w_3));
        x += 16;
        w_0 += 16;
        w_1 += 16;
        w_2 += 16;
        w_3 += 16;
    }
    if (depth & 15)
    {
        /* Lanes past depth load as 0 and add nothing. */
        const mve_pred16_t tail = vctp8q((uint32_t)(depth & 15));
        const int8x16_t xv = vldrbq_z_s8(x, tail);
        a_0 = vmladavaq_s8(a_0, xv, vldrbq_z_s8(w_0, tail));
        a_1 = vmladavaq_s8(a_1, xv, vldrbq_z_s8(w_1, tail));
        a_2 = vmladavaq_s8(a_2, xv, vldrbq_z_s8(w_2, tail));
        a_3 = vmladavaq_s8(a_3, xv, vldrbq_z_s8(w_3, tail));
    }
    int32x4_t acc = vdupq_n_s32(a_0);
    acc = vsetq_lane_s32(a_1, acc, 1);
    acc = vsetq_lane_s32(a_2, acc, 2);
    return vsetq_lane_s32(a_3, acc, 3);
}

static MCU_NOINLINE int32x4_t mcu_dot4_s8_mve(const int8_t *x, const int8_t *w_0, const int8_t *w_1,
                                             const int8_t *w_2, const int8_t *w_3, int32_t depth)
{
    return mcu_dot4_s8_mve_inline(x, w_0, w_1, w_2, w_3, depth);
}

/* The sum of the depth int8 values at x. */
static inline int32_t mcu_sum_s8_mve(const int8_t *x, int32_t depth)
{
    int32_t sum = 0;
    for (int32_t i = 0; i < depth; i += 16)
    {
        sum = vaddvaq_s8(sum, vldrbq_z_s8(x + i, vctp8q((uint32_t)(depth - i))));
    }
    return sum;
}
#elif defined(ARM_MATH_DSP)
/* The sums of x[i] * w_0[i] and x[i] * w_1[i] over depth: each word of four input bytes is
 * loaded and widened (SXTB16: bytes 0,2 and bytes 1,3) once for both rows, then two SMLADs
 * per row pair the halves with the rows' widened words. */
static inline void mcu_dot2_s8_dsp_inline(const int8_t *x, const int8_t *w_0, const int8_t *w_1, int32_t depth,
                                          int32_t *sum_0, int32_t *sum_1)
{
    int32_t a_0 = 0, a_1 = 0;
    for (int32_t n = depth >> 3; n > 0; n--)
    {
        /* eight bytes per step: fewer loop instructions */
        const int32_t xv = mcu_read_word(x);
        const int32_t xw = mcu_read_word(x + 4);
        const int32_t x_02 = __sxtb16(xv);
        const int32_t x_13 = mcu_sxtb16_ror8(xv);
        const int32_t x_46 = __sxtb16(xw);
        const int32_t x_57 = mcu_sxtb16_ror8(xw);
        const int32_t wv_0 = mcu_read_word(w_0);
        const int32_t wv_1 = mcu_read_word(w_1);
        const int32_t ww_0 = mcu_read_word(w_0 + 4);
        const int32_t ww_1 = mcu_read_word(w_1 + 4);
        x += 8;
        w_0 += 8;
        w_1 += 8;
        a_0 = __smlad(__sxtb16(wv_0), x_02, a_0);
        a_0 = __smlad(mcu_sxtb16_ror8(wv_0), x_13, a_0);
        a_1 = __smlad(__sxtb16(wv_1), x_02, a_1);
        a_1 = __smlad(mcu_sxtb16_ror8(wv_1), x_13, a_1);
        a_0 = __smlad(__sxtb16(ww_0), x_46, a_0);
        a_0 = __smlad(mcu_sxtb16_ror8(ww_0), x_57, a_0);
        a_1 = __smlad(__sxtb16(ww_1), x_46, a_1);
        a_1 = __smlad(mcu_sxtb16_ror8(ww_1), x_57, a_1);
    }
    if (depth & 4)
    {
        const int32_t xv = mcu_read_word(x);
        const int32_t x_02 = __sxtb16(xv);
        const int32_t x_13 = mcu_sxtb16_ror8(xv);
        const int32_t wv_0 = mcu_read_word(w_0);
        const int32_t wv_1 = mcu_read_word(w_1);
        x += 4;
        w_0 += 4;
        w_1 += 4;
        a_0 = __smlad(__sxtb16(wv_0), x_02, a_0);
        a_0 = __smlad(mcu_sxtb16_ror8(wv_0), x_13, a_0);
        a_1 = __smlad(__sxtb16(wv_1), x_02, a_1);
        a_1 = __smlad(mcu_sxtb16_ror8(wv_1), x_13, a_1);
    }
    for (int32_t n = depth & 3; n > 0; n--)
    {
        a_0 += *x * *w_0++;
        a_1 += *x++ * *w_1++;
    }
    *sum_0 = a_0;
    *sum_1 = a_1;
}

static MCU_NOINLINE void mcu_dot2_s8_dsp(const int8_t *x, const int8_t *w_0, const int8_t *w_1, int32_t depth,
                                        int32_t *sum_0, int32_t *sum_1)
{
    mcu_dot2_s8_dsp_inline(x, w_0, w_1, depth, sum_0, sum_1);
}

/* The fully connected DSP path widens the input once (per chunk of MCU_FC_CHUNK columns,
 * on the stack) instead of once per row pair, and keeps the raw sums of MCU_FC_BLOCK rows
 * on the stack across the chunks of a long row: 768 B in all. */
#define MCU_FC_CHUNK 256
#define MCU_FC_BLOCK 64

/* n columns of x (n % 4 == 0) as int16 pairs, per four columns the (0, 2) and (1, 3) pairs
 * (SXTB16 and SXTB16 ROR 8): the order in which the weight words split. */
static inline void mcu_fc_widen_dsp(const int8_t *x, int32_t n, int32_t *xw)
{
    for (int32_t g = n >> 2; g > 0; g--)
    {
        const int32_t v = mcu_read_word(x);
        xw[0] = __sxtb16(v);
        xw[1] = mcu_sxtb16_ror8(v);
        x += 4;
        xw += 2;
    }
}

/* Eight columns of two rows: one LDM of the four widened input words (r8-r11: LDM takes
 * its registers in ascending order, so they are named), one LDRD of eight weights per row
 * split by SXTB16, four SMLADs per row. */
#define MCU_FC_DSP_8COLS                                                                                               \
    "   ldm     %[x]!, {r8, r9, r10, r11}\n"                                                                           \
    "   ldrd    %[u], %[v], [%[w0]], #8\n"                                                                             \
    "   sxtb16  %[t], %[u]\n"                                                                                          \
    "   sxtb16  %[u], %[u], ror #8\n"                                                                                  \
    "   smlad   %[a0], %[t], r8, %[a0]\n"                                                                              \
    "   smlad   %[a0], %[u], r9, %[a0]\n"                                                                              \
    "   sxtb16  %[t], %[v]\n"                                                                                          \
    "   sxtb16  %[v], %[v], ror #8\n"                                                                                  \
    "   smlad   %[a0], %[t], r10, %[a0]\n"                                                                             \
    "   smlad   %[a0], %[v], r11, %[a0]\n"                                                                             \
    "   ldrd    %[u], %[v], [%[w1]], #8\n"                                                                             \
    "   sxtb16  %[t], %[u]\n"                                                                                          \
    "   sxtb16  %[u], %[u], ror #8\n"                                                                                  \
    "   smlad   %[a1], %[t], r8, %[a1]\n"                                                                              \
    "   smlad   %[a1], %[u], r9, %[a1]\n"                                                                              \
    "   sxtb16  %[t], %[v]\n"                                                                                          \
    "   sxtb16  %[v], %[v], ror #8\n"                                                                                  \
    "   smlad   %[a1], %[t], r10, %[a1]\n"                                                                             \
    "   smlad   %[a1], %[v], r11, %[a1]\n"

/* *a_0 += x . w_0 and *a_1 += x . w_1 over n columns (n % 4 == 0) of the widened input xw;
 * w_0 and w_1 word-aligned (LDRD): 32 columns per loop step, then 16, 8 and 4. */
static inline __attribute__((always_inline)) void mcu_fc_dot2_wide_dsp(const int32_t *xw, const int8_t *w_0,
                                                                      const int8_t *w_1, int32_t n, int32_t *a_0,
                                                                      int32_t *a_1)
{
    int32_t r_0 = *a_0, r_1 = *a_1, t, u, v;
    const int32_t *x = xw;
    if (n >= 32)
    {
        const int32_t *end = xw + (n >> 5) * 16;
        __asm__ volatile("1:\n" MCU_FC_DSP_8COLS MCU_FC_DSP_8COLS MCU_FC_DSP_8COLS MCU_FC_DSP_8COLS
                         "   cmp     %[x], %[end]\n"
                         "   bne     1b\n"
                         : [a0] "+r"(r_0), [a1] "+r"(r_1), [x] "+r"(x), [w0] "+r"(w_0), [w1] "+r"(w_1), [t] "=&r"(t),
                           [u] "=&r"(u), [v] "=&r"(v)
                         : [end] "r"(end)
                         : "r8", "r9", "r10", "r11", "cc", "memory");
    }
    if (n & 16)
    {
        __asm__ volatile(MCU_FC_DSP_8COLS MCU_FC_DSP_8COLS
                         : [a0] "+r"(r_0), [a1] "+r"(r_1), [x] "+r"(x), [w0] "+r"(w_0), [w1] "+r"(w_1), [t] "=&r"(t),
                           [u] "=&r"(u), [v] "=&r"(v)
                         :
                         : "r8", "r9", "r10", "r11", "memory");
    }
    if (n & 8)
    {
        __asm__ volatile(MCU_FC_DSP_8COLS
                         : [a0] "+r"(r_0), [a1] "+r"(r_1), [x] "+r"(x), [w0] "+r"(w_0), [w1] "+r"(w_1), [t] "=&r"(t),
                           [u] "=&r"(u), [v] "=&r"(v)
                         :
                         : "r8", "r9", "r10", "r11", "memory");
    }
    if (n & 4)
    {
        const int32_t u_0 = mcu_read_word(w_0), u_1 = mcu_read_word(w_1);
        r_0 = __smlad(__sxtb16(u_0), x[0], r_0);
        r_0 = __smlad(mcu_sxtb16_ror8(u_0), x[1], r_0);
        r_1 = __smlad(__sxtb16(u_1), x[0], r_1);
        r_1 = __smlad(mcu_sxtb16_ror8(u_1), x[1], r_1);
    }
    *a_0 = r_0;
    *a_1 = r_1;
}

/* sums[r] += x . row r over n columns of the widened input xw for the rows r < rows (at w,
 * stride apart, word-aligned), two rows at a time; an odd last row is dotted twice, the
 * second sum dropped. whole: n % 32 == 0 (no tail steps), a constant of each copy. */
static inline __attribute__((always_inline)) void mcu_fc_rows_wide_body(const int32_t *xw, int32_t n,
                                                                       const int8_t *w, int32_t stride,
                                                                       int32_t rows, int32_t *sums, int whole)
{
    const int32_t m = whole ? n & ~31 : n;
    int32_t r = 0;
    for (; r + 2 <= rows; r += 2, w += 2 * stride)
    {
        mcu_fc_dot2_wide_dsp(xw, w, w + stride, m, &sums[r], &sums[r + 1]);
    }
    if (r < rows)
    {
        int32_t unused = 0;
        mcu_fc_dot2_wide_dsp(xw, w, w, m, &sums[r], &unused);
    }
}

static MCU_NOINLINE void mcu_fc_rows_wide_dsp(const int32_t *xw, int32_t n, const int8_t *w, int32_t stride,
                                             int32_t rows, int32_t *sums)
{
    if ((n & 31) == 0)
    {
        mcu_fc_rows_wide_body(xw, n, w, stride, rows, sums, 1);
    }
    else
    {
        mcu_fc_rows_wide_body(xw, n, w, stride, rows, sums, 0);
    }
}

/* The accumulators of the rows r < rows of one block (rows at filter, depth apart; depth %
 * 4 == 0, rows word-aligned): sums[r] = init[r] + x . row r, the input widened into xw
 * chunk by chunk; widened: xw already holds the single chunk (depth <= MCU_FC_CHUNK). */
static inline void mcu_fc_block_sums_dsp(const int8_t *x, int32_t depth, const int8_t *filter, int32_t rows,
                                         int32_t *xw, int widened, int32_t *sums)
{
    for (int32_t c = 0; c < depth; c += MCU_FC_CHUNK)
    {
        const int32_t n = depth - c < MCU_FC_CHUNK ? depth - c : MCU_FC_CHUNK;
        if (!widened)
        {
            mcu_fc_widen_dsp(x + c, n, xw);
        }
        mcu_fc_rows_wide_dsp(xw, n, filter + c, depth, rows, sums);
    }
}

/* One output of a fully connected row from its accumulator: the short form
 * (mcu_requantize_dsp, the clamp to int8 in its SSAT, then the activation's) where it is
 * exact, |acc| < 2^30 given a multiplier, shift and out_offset that the caller checked;
 * else mcu_requantize_s8. */
static inline __attribute__((always_inline)) int8_t mcu_fc_out_dsp(int32_t acc, int32_t m, int32_t s, int32_t k2,
                                                                   const mcu_nn_fc_params *p)
{
    if ((uint32_t)acc + (1u << 30) < (1u << 31))
    {
        const int32_t v = __ssat(mcu_requantize_dsp(acc, m, s, k2), 8);
        return (int8_t)mcu_clamp(v, p->activation.min, p->activation.max);
    }
    return mcu_requantize_s8(acc, m, s, p->output_offset, p->activation.min, p->activation.max);
}

/* The outputs of a run of n >= 1 accumulators the short way (mcu_requantize_dsp, SSAT to
 * int8: a layer with the whole int8 activation range) until one is outside |acc| < 2^30;
 * returns how many were stored. */
static inline int32_t mcu_fc_out_run_dsp(const int32_t *sums, int32_t n, int32_t multiplier, int32_t shift, int32_t k2,
                                         int8_t *out)
{
    const int32_t *s = sums;
    const int32_t *end = sums + n;
    int32_t acc, t;
    __asm__ volatile("1: ldr     %[acc], [%[s]], #4\n"
                     "   adds    %[t], %[acc], #0x40000000\n"
                     "   bmi     2f\n"
                     "   lsls    %[acc], %[acc], #1\n"
                     "   smmulr  %[acc], %[acc], %[m]\n"
                     "   add     %[acc], %[acc], %[acc], asr #31\n"
                     "   asr     %[acc], %[acc], %[ns]\n"
                     "   add     %[acc], %[acc], %[k2]\n"
                     "   ssat    %[acc], #8, %[acc], asr #1\n"
                     "   strb    %[acc], [%[o]], #1\n"
                     "   cmp     %[s], %[end]\n"
                     "   bne     1b\n"
                     "   b       3f\n"
                     "2: subs    %[s], %[s], #4\n"
                     "3:\n"
                     : [s] "+r"(s), [o] "+r"(out), [acc] "=&r"(acc), [t] "=&r"(t)
                     : [end] "r"(end), [m] "r"(multiplier), [ns] "r"(~shift), [k2] "r"(k2)
                     : "cc", "memory");
    return (int32_t)(s - sums);
}

/* output[r] = the accumulator sums[r] of row r < rows of one block requantized with
 * multiplier[r * step], shift[r * step]: the short form where mcu_fc_out_dsp allows it
 * (out_offset an int8 value, each channel's multiplier and shift in range), else
 * mcu_requantize_s8. */
static MCU_NOINLINE void mcu_fc_outputs_dsp(const int32_t *sums, int32_t rows, const int32_t *multiplier,
                                           const int32_t *shift, int32_t step, const mcu_nn_fc_params *p,
                                           int8_t *output)
{
    const int32_t out_offset = p->output_offset;
    const int32_t k2 = mcu_requant_dsp_k2(out_offset);
    const int offset_ok = out_offset >= -128 && out_offset <= 127;
    if (step == 0 && offset_ok && mcu_requant_dsp_channel_ok(multiplier[0], shift[0]))
    {
        /* Per tensor, the usual case: one multiplier and shift checked once. */
        const int32_t m = multiplier[0], s = shift[0];
        if (p->activation.min == -128 && p->activation.max == 127)
        {
            int32_t r = 0;
            while (r < rows)
            {
                /* Runs of the short way, each accumulator that stops one the general way. */
                r += mcu_fc_out_run_dsp(sums + r, rows - r, m, s, k2, output + r);
                if (r < rows)
                {
                    output[r] = mcu_requantize_s8(sums[r], m, s, out_offset, -128, 127);
                    r++;
                }
            }
        }
        else
        {
            for (int32_t r = 0; r < rows; r++)
            {
                output[r] = mcu_fc_out_dsp(sums[r], m, s, k2, p);
            }
        }
        return;
    }
    for (int32_t r = 0; r < rows; r++)
    {
        const int32_t acc = sums[r];
        const int32_t m = multiplier[r * step], s = shift[r * step];
        output[r] = offset_ok && mcu_requant_dsp_channel_ok(m, s)
                        ? mcu_fc_out_dsp(acc, m, s, k2, p)
                        : mcu_requantize_s8(acc, m, s, out_offset, p->activation.min, p->activation.max);
    }
}
#endif

/* The sum of x[i] * w[i] over depth (portable). */
static inline int32_t mcu_dot_s8(const int8_t *x, const int8_t *w, int32_t depth)
{
    int32_t acc = 0;
    for (int32_t i = 0; i < depth; i++)
    {
        acc += x[i] * w[i];
    }
    return acc;
}

/*
 * Fully connected over `batches` rows of depth inputs with the input offset's part of every
 * accumulator folded in advance (at compile time by the code generator):
 *     acc_init[oc] = input_offset * sum_i (filter[oc][i] + filter_offset)
 * so that sum_i (x[i] + input_offset) * (filter[oc][i] + filter_offset) + bias[oc] is
 *     acc_init[oc] + bias[oc] + sum_i x[i] * filter[oc][i] + filter_offset * sum_i x[i],
 * the last term once per batch and only for a nonzero filter_offset; bias may be NULL.
 * Output channel oc is
 * requantized with multiplier[oc * quant_step], shift[oc * quant_step] (quant_step 1:
 * per channel, 0: per tensor). Helium: four rows per input load, the four outputs
 * requantized as one vector. DSP, for word-aligned rows (depth % 4 == 0): the input widened
 * once (per 256-column chunk) into int16 pairs on the stack, two rows per widened word (LDM
 * + LDRD, SXTB16, SMLAD: 1.25 instructions per MAC), the sums of up to 64 rows kept on the
 * stack and requantized in 32 bits where exact; other rows two per input load.
 */
static inline void mcu_fc_folded_s8(const mcu_nn_fc_params *p,
                                    const int32_t *multiplier,
                                    const int32_t *shift,
                                    int32_t quant_step,
                                    int32_t batches,
                                    const int8_t *input,
                                    int32_t depth,
                                    const int8_t *filter,
                                    const int32_t *bias,
                                    const int32_t *acc_init,
                                    int32_t out_ch,
                                    int8_t *output)
{
    const int32_t out_offset = p->output_offset;
    const int32_t act_min = p->activation.min;
    const int32_t act_max = p->activation.max;
    for (int32_t b = 0; b < batches; b++)
    {
        const int8_t *x = input + b * depth;
        int32_t x_term = 0;
        if (p->filter_offset != 0)
        {
#if defined(ARM_MATH_MVEI)
            x_term = p->filter_offset * mcu_sum_s8_mve(x, depth);
#else
            int32_t sum_x = 0;
            for (int32_t i = 0; i < depth; i++)
            {
                sum_x += x[i];
            }
            x_term = p->filter_offset * sum_x;
#endif
        }
        int32_t oc = 0;
#if defined(ARM_MATH_MVEI)
        const int32x4_t mult_all = vdupq_n_s32(multiplier[0]);
        const int32x4_t shift_all = vdupq_n_s32(shift[0]);
        /* Whole groups of four rows: no predicate. */
        for (; oc + 4 <= out_ch; oc += 4)
        {
            const int8_t *w_0 = filter + oc * depth;
            int32x4_t acc = mcu_dot4_s8_mve(x, w_0, w_0 + depth, w_0 + 2 * depth, w_0 + 3 * depth, depth);
            acc = vaddq_s32(acc, vldrwq_s32(acc_init + oc));
            if (bias != NULL)
            {
                acc = vaddq_s32(acc, vldrwq_s32(bias + oc));
            }
            acc = vaddq_n_s32(acc, x_term);
            const int32x4_t mult = quant_step ? vldrwq_s32(multiplier + oc) : mult_all;
            const int32x4_t sh = quant_step ? vldrwq_s32(shift + oc) : shift_all;
            vstrbq_s32(output + oc, mcu_requantize_s8_mve(acc, mult, sh, out_offset, act_min, act_max));
        }
        if (oc < out_ch)
        {
            /* The last 1..3 rows; missing rows read row oc again, their lanes are not stored. */
            const int32_t rows = out_ch - oc;
            const mve_pred16_t lanes = vctp32q((uint32_t)rows);
            const int8_t *w_0 = filter + oc * depth;
            const int8_t *w_1 = rows > 1 ? w_0 + depth : w_0;
            const int8_t *w_2 = rows > 2 ? w_0 + 2 * depth : w_0;
            int32x4_t acc = mcu_dot4_s8_mve(x, w_0, w_1, w_2, w_0, depth);
            acc = vaddq_s32(acc, vldrwq_z_s32(acc_init + oc, lanes));
            if (bias != NULL)
            {
                acc = vaddq_s32(acc, vldrwq_z_s32(bias + oc, lanes));
            }
            acc = vaddq_n_s32(acc, x_term);
            const int32x4_t mult = quant_step ? vldrwq_z_s32(multiplier + oc, lanes) : mult_all;
            const int32x4_t sh = quant_step ? vldrwq_z_s32(shift + oc, lanes) : shift_all;
            vstrbq_p_s32(output + oc, mcu_requantize_s8_mve(acc, mult, sh, out_offset, act_min, act_max), lanes);
            oc = out_ch;
        }
#elif defined(ARM_MATH_DSP)
        if ((depth & 3) == 0 && ((uintptr_t)filter & 3) == 0)
        {
            /* Word-aligned rows: the input widened once, two rows per widened word. */
            int32_t xw[MCU_FC_CHUNK / 2], sums[MCU_FC_BLOCK];
            for (; oc < out_ch; oc += MCU_FC_BLOCK)
            {
                const int32_t rows = out_ch - oc < MCU_FC_BLOCK ? out_ch - oc : MCU_FC_BLOCK;
                if (bias != NULL)
                {
                    for (int32_t r = 0; r < rows; r++)
                    {
                        sums[r] = acc_init[oc + r] + bias[oc + r] + x_term;
                    }
                }
                else
                {
                    for (int32_t r = 0; r < rows; r++)
                    {
                        sums[r] = acc_init[oc + r] + x_term;
                    }
                }
                mcu_fc_block_sums_dsp(x, depth, filter + oc * depth, rows, xw, oc > 0 && depth <= MCU_FC_CHUNK, sums);
                mcu_fc_outputs_dsp(sums, rows, multiplier + oc * quant_step, shift + oc * quant_step, quant_step, p,
                                   output + oc);
            }
        }
        for (; oc + 2 <= out_ch; oc += 2)
        {
            int32_t acc_0, acc_1;
            mcu_dot2_s8_dsp(x, filter + oc * depth, filter + (oc + 1) * depth, depth, &acc_0, &acc_1);
            acc_0 += acc_init[oc] + x_term + (bias != NULL ? bias[oc] : 0);
            acc_1 += acc_init[oc + 1] + x_term + (bias != NULL ? bias[oc + 1] : 0);
            output[oc] = mcu_requantize_s8(acc_0, multiplier[oc * quant_step], shift[oc * quant_step], out_offset,
                                           act_min, act_max);
            output[oc + 1] = mcu_requantize_s8(acc_1, multiplier[(oc + 1) * quant_step],
                                               shift[(oc + 1) * quant_step], out_offset, act_min, act_max);
        }
#endif
        for (; oc < out_ch; oc++)
        {
            const int32_t acc = acc_init[oc] + x_term + (bias != NULL ? bias[oc] : 0) +
                                mcu_dot_s8(x, filter + oc * depth, depth);
            output[oc] = mcu_requantize_s8(acc, multiplier[oc * quant_step], shift[oc * quant_step], out_offset,
                                           act_min, act_max);
        }
        output += out_ch;
    }
}

/* Quantization of TFLite int8 ADD. */
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

/* Element strides of an NHWC tensor read under broadcasting: 0 along the size-1 dimensions. */
typedef struct
{
    int32_t n, h, w, c;
} mcu_strides;

static inline mcu_strides mcu_broadcast_strides(const mcu_nn_dims *d)
{
    const mcu_strides s = {d->n == 1 ? 0 : d->h * d->w * d->c, d->h == 1 ? 0 : d->w * d->c, d->w == 1 ? 0 : d->c,
                           d->c == 1 ? 0 : 1};
    return s;
}

/* True when every dimension of in is 1 or equal to out's. */
static inline int mcu_broadcastable(const mcu_nn_dims *in, const mcu_nn_dims *out)
{
    return (in->n == 1 || in->n == out->n) && (in->h == 1 || in->h == out->h) && (in->w == 1 || in->w == out->w) &&
           (in->c == 1 || in->c == out->c);
}

/* One output element of an elementwise op from one element of each input; q is the op's quantization. */
typedef int8_t (*mcu_binary_op_s8)(int8_t a, int8_t b, const void *q);

/* op over an NHWC output, each input read with broadcasting (every dimension 1 or the output's). */
static inline mcu_nn_status mcu_broadcast_for_each_s8(const int8_t *input_1_vect,
                                                            const mcu_nn_dims *input_1_dims,
                                                            const int8_t *input_2_vect,
                                                            const mcu_nn_dims *input_2_dims,
                                                            int8_t *output,
                                                            const mcu_nn_dims *output_dims,
                                                            mcu_binary_op_s8 op,
                                                            const void *q)
{
    if (!mcu_broadcastable(input_1_dims, output_dims) || !mcu_broadcastable(input_2_dims, output_dims))
    {
        return MCU_NN_ARG_ERROR;
    }
    const mcu_strides s1 = mcu_broadcast_strides(input_1_dims);
    const mcu_strides s2 = mcu_broadcast_strides(input_2_dims);
    for (int32_t n = 0; n < output_dims->n; n++)
    {
        for (int32_t h = 0; h < output_dims->h; h++)
        {
            for (int32_t w = 0; w < output_dims->w; w++)
            {
                const int8_t *a = input_1_vect + n * s1.n + h * s1.h + w * s1.w;
                const int8_t *b = input_2_vect + n * s2.n + h * s2.h + w * s2.w;
                for (int32_t c = 0; c < output_dims->c; c++)
                {
                    *output++ = op(a[c * s1.c], b[c * s2.c], q);
                }
            }
        }
    }
    return MCU_NN_SUCCESS;
}

#endif /* MCU_NN_SUPPORT_H */
