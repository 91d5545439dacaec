/*
 * int8 LOG_SOFTMAX over rows, bit-exact with TFLite Micro's int8 LogSoftmax (output
 * scale 16/256, zero point 127). "Qi" is an int32 raw value with i integer bits. The exp
 * of each difference to the row maximum comes from a table the compiler fills (Q12, 0
 * where the difference is below diff_min); the log of the row's sum is TFLite's
 * log_x_for_x_greater_than_or_equal_to_1 in gemmlowp fixed point.
 */
#include "mcu_nn_support.h"

#define INPUT_INTEGER_BITS 5  /* differences to the row maximum, rescaled */
#define ACCUM_INTEGER_BITS 12 /* the sum of exps */
#define LOG_ACCUM_BITS 6      /* the log's accumulator: one bit above its Q5 result */
#define OUTPUT_INTEGER_BITS 4 /* scale 16/256 */

/* x * 2^exponent, exponent >= 0, saturating to int32. */
static int32_t saturating_left_shift(int32_t x, int32_t exponent)
{
    const int64_t shifted = (int64_t)x * ((int64_t)1 << exponent);
    return shifted > MCU_INT32_MAX ? MCU_INT32_MAX : (shifted < MCU_INT32_MIN ? MCU_INT32_MIN : (int32_t)shifted);
}

static int32_t saturating_add(int32_t a, int32_t b)
{
    const int64_t sum = (int64_t)a + b;
    return sum > MCU_INT32_MAX ? MCU_INT32_MAX : (sum < MCU_INT32_MIN ? MCU_INT32_MIN : (int32_t)sum);
}

/* 1 / (1 + a) for Q0 a in [0, 1): Newton-Raphson on the half denominator (a + 1) / 2 in Q2. */
static int32_t reciprocal_of_one_plus(int32_t a)
{
    const int64_t total = (int64_t)a + MCU_INT32_MAX;
    const int32_t half = (int32_t)((total + 1) / 2); /* total >= 0: rounds half up */
    int32_t x = 1515870810 + mcu_doubling_high_mult(half, -1010580540); /* 48/17 - 32/17 half */
    for (int32_t i = 0; i < 3; i++)
    {
        x += saturating_left_shift(mcu_doubling_high_mult(x, (1 << 29) - mcu_doubling_high_mult(half, x)), 2);
    }
    return saturating_left_shift(x, 1);
}

/* log(x) in Q5 for x >= 1 in Q12: x = 2^k * r with r in [sqrt(1/2), 1), a rational approximation of log(r). */
static int32_t log_q5(int32_t x)
{
    const int32_t log_2 = 1488522236, sqrt_sqrt_half = 1805811301, sqrt_half = 1518500250;
    const int32_t alpha_n = 117049297, alpha_d = 127690142, alpha_i = 1057819769, alpha_f = 638450708;
    const int32_t quarter = 1 << (29 - LOG_ACCUM_BITS);
    const int32_t shift = 31 - LOG_ACCUM_BITS;
    const int32_t za_headroom_plus_1 = __builtin_clz((uint32_t)x);
    const int32_t r_a = saturating_left_shift(
        mcu_doubling_high_mult(saturating_left_shift(x, za_headroom_plus_1 - 1), sqrt_half), 1);
    const int32_t za_pow_2 =
        saturating_add(saturating_left_shift(ACCUM_INTEGER_BITS - za_headroom_plus_1, shift), quarter);
    const int32_t zb_headroom = __builtin_clz((uint32_t)mcu_doubling_high_mult(x, sqrt_half)) - 1;
    const int32_t r_b = saturating_left_shift(x, zb_headroom);
    const int32_t zb_pow_2 = saturating_add(saturating_left_shift(ACCUM_INTEGER_BITS - zb_headroom, shift), -quarter);
    const int32_t r = r_a < r_b ? r_a : r_b;
    const int32_t pow_2 = za_pow_2 > zb_pow_2 ? za_pow_2 : zb_pow_2;
    const int32_t p = (int32_t)(((int64_t)r + sqrt_sqrt_half + 1) / 2);
    const int32_t q = 2 * (r - sqrt_sqrt_half);
    const int32_t q_sq = mcu_doubling_high_mult(q, q);
    const int32_t num = mcu_doubling_high_mult(q, r) + mcu_doubling_high_mult(mcu_doubling_high_mult(q, q_sq), alpha_n);
    const int32_t denominator_minus_one =
        mcu_doubling_high_mult(p, alpha_i + q + mcu_doubling_high_mult(alpha_d, q_sq)) +
        mcu_doubling_high_mult(alpha_f, q);
    const int32_t log = mcu_doubling_high_mult(pow_2, log_2) +
                        mcu_doubling_high_mult(mcu_divide_by_power_of_two(num, LOG_ACCUM_BITS),
                                               reciprocal_of_one_plus(denominator_minus_one));
    return saturating_left_shift(log, 1);
}

mcu_nn_status mcu_log_softmax_s8(const int8_t *input,
                                       const int32_t rows,
                                       const int32_t depth,
                                       const int32_t input_mult,
                                       const int32_t input_shift,
                                       const int32_t reverse_mult,
                                       const int32_t reverse_shift,
                                       const int32_t diff_min,
                                       const int32_t exps[256],
                                       int8_t *output)
{
    for (int32_t row = 0; row < rows; row++, input += depth, output += depth)
    {
        int32_t max = INT8_MIN;
        for (int32_t i = 0; i < depth; i++)
        {
            max = input[i] > max ? input[i] : max;
        }
        int32_t sum = 0;
        for (int32_t i = 0; i < depth; i++)
        {
            sum += exps[max - input[i]];
        }
        const int32_t log_sum = log_q5(sum);
        const int32_t lowest = mcu_requantize(log_sum + MCU_INT32_MIN, reverse_mult, reverse_shift);
        const int32_t threshold = lowest > diff_min - 1 ? lowest : diff_min - 1;
        for (int32_t i = 0; i < depth; i++)
        {
            const int32_t diff = input[i] - max;
            int32_t out = INT8_MIN;
            if (diff > threshold)
            {
                const int32_t diff_q5 = mcu_requantize(diff, input_mult, input_shift);
                out = mcu_divide_by_power_of_two(diff_q5 - log_sum, 31 - INPUT_INTEGER_BITS - OUTPUT_INTEGER_BITS) +
                      INT8_MAX;
                out = mcu_clamp(out, INT8_MIN, INT8_MAX);
            }
            output[i] = (int8_t)out;
        }
    }
    return MCU_NN_SUCCESS;
}
