/*
 * int8 softmax with TFLite's fixed-point algorithm (gemmlowp exp and
 * reciprocal), bit-exact with TFLite Micro's reference SOFTMAX.
 *
 * Fixed-point values are int32 raw values with a stated number of integer
 * bits: "Qi" below means i integer bits and 31 - i fractional bits.
 */
#include "mcu_nn_support.h"

#define SCALED_DIFF_INTEGER_BITS 5 /* input differences, after the beta rescale */
#define ACCUM_INTEGER_BITS 12      /* sum of exps: up to 4096 terms of at most 1 */

/* x * 2^exponent for exponent > 0 saturating, rounding when exponent < 0. */
static int32_t saturating_rounding_mul_by_pot(int32_t x, int32_t exponent)
{
    if (exponent <= 0)
    {
        return mcu_divide_by_power_of_two(x, -exponent);
    }
    const int32_t threshold = (int32_t)((1u << (31 - exponent)) - 1u);
    if (x > threshold)
    {
        return MCU_INT32_MAX;
    }
    if (x < -threshold)
    {
        return MCU_INT32_MIN;
    }
    return (int32_t)((uint32_t)x << exponent);
}

/* exp(x) for x in [-1/4, 0), Q0 in and out: Taylor series around -1/8. */
static int32_t exp_on_interval_between_negative_one_quarter_and_0_excl(int32_t a)
{
    const int32_t exp_minus_one_eighth = 1895147668;
    const int32_t one_third = 715827883;
    const int32_t x = a + (1 << 28);
    const int32_t x2 = mcu_doubling_high_mult(x, x);
    const int32_t x3 = mcu_doubling_high_mult(x2, x);
    const int32_t x4 = mcu_doubling_high_mult(x2, x2);
    const int32_t x4_over_4 = saturating_rounding_mul_by_pot(x4, -2);
    const int32_t poly =
        saturating_rounding_mul_by_pot(mcu_doubling_high_mult(x4_over_4 + x3, one_third) + x2, -1);
    return exp_minus_one_eighth + mcu_doubling_high_mult(exp_minus_one_eighth, x + poly);
}

/* exp(a) for a <= 0 given in Q5; result in Q0. */
static int32_t exp_on_negative_values(int32_t a)
{
    /* exp(a) = exp(a mod 1/4 - 1/4) * product of exp(-2^k) over the bits k of the remainder. */
    static const int32_t exp_of_minus_pot[7] = {1672461947, 1302514674, 790015084, 290630308,
                                                39332535,   720401,     242};
    const int32_t frac_bits = 31 - SCALED_DIFF_INTEGER_BITS;
    const int32_t one_quarter = 1 << (frac_bits - 2);
    const int32_t mod_minus_quarter = (a & (one_quarter - 1)) - one_quarter;
    int32_t result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        saturating_rounding_mul_by_pot(mod_minus_quarter, SCALED_DIFF_INTEGER_BITS));
    const int32_t remainder = mod_minus_quarter - a;
    for (int32_t k = -2; k <= 4; k++)
    {
        if (remainder & (1 << (frac_bits + k)))
        {
            result = mcu_doubling_high_mult(result, exp_of_minus_pot[k + 2]);
        }
    }
    return a == 0 ? MCU_INT32_MAX : result;
}

/* (a + b) / 2 rounded half away from zero, without overflow. */
static int32_t rounding_half_sum(int32_t a, int32_t b)
{
    const int64_t sum = (int64_t)a + b;
    return (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
}

/* 1 / (1 + x) for x in [0, 1), Q0 in and out: three Newton-Raphson steps on half the denominator. */
static int32_t one_over_one_plus_x_for_x_in_0_1(int32_t a)
{
    const int32_t half_denominator = rounding_half_sum(a, MCU_INT32_MAX);
    const int32_t q2_one = 1 << 29;
    int32_t x = 1515870810 + mcu_doubling_high_mult(half_denominator, -1010580540); /* Q2: 48/17 - 32/17 d */
    for (int32_t i = 0; i < 3; i++)
    {
        const int32_t one_minus_dx = q2_one - mcu_doubling_high_mult(half_denominator, x);
        x += saturating_rounding_mul_by_pot(mcu_doubling_high_mult(x, one_minus_dx), 2);
    }
    return saturating_rounding_mul_by_pot(x, 1); /* x / 2, read as Q1, rescaled to Q0 */
}

static int32_t count_leading_zeros(uint32_t x)
{
    int32_t n = 0;
    while (n < 32 && !(x & 0x80000000u))
    {
        x <<= 1;
        n++;
    }
    return n;
}

static void softmax_row(const int8_t *input, int32_t size, int32_t mult, int32_t shift, int32_t diff_min, int8_t *output)
{
    int32_t max = input[0];
    for (int32_t i = 1; i < size; i++)
    {
        max = input[i] > max ? input[i] : max;
    }

    int32_t sum_of_exps = 0; /* Q12 */
    for (int32_t i = 0; i < size; i++)
    {
        const int32_t diff = input[i] - max;
        if (diff >= diff_min)
        {
            const int32_t exp = exp_on_negative_values(mcu_requantize(diff, mult, shift));
            sum_of_exps += saturating_rounding_mul_by_pot(exp, -ACCUM_INTEGER_BITS);
        }
    }

    /* 1 / sum as a Q0 reciprocal of sum normalised into [1, 2), and the normalising shift. */
    const int32_t headroom_plus_one = count_leading_zeros((uint32_t)sum_of_exps);
    const int32_t num_bits_over_unit = ACCUM_INTEGER_BITS - headroom_plus_one;
    const int32_t shifted_sum_minus_one = (int32_t)(((uint32_t)sum_of_exps << headroom_plus_one) - 0x80000000u);
    const int32_t shifted_scale = one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one);

    for (int32_t i = 0; i < size; i++)
    {
        const int32_t diff = input[i] - max;
        int32_t out = -128;
        if (diff >= diff_min)
        {
            const int32_t exp = exp_on_negative_values(mcu_requantize(diff, mult, shift));
            const int32_t prob = mcu_divide_by_power_of_two(mcu_doubling_high_mult(shifted_scale, exp),
                                                            num_bits_over_unit + 31 - 8);
            out = mcu_clamp(prob - 128, -128, 127);
        }
        output[i] = (int8_t)out;
    }
}

void mcu_softmax_s8(const int8_t *input,
                    const int32_t num_rows,
                    const int32_t row_size,
                    const int32_t mult,
                    const int32_t shift,
                    const int32_t diff_min,
                    int8_t *output)
{
    for (int32_t r = 0; r < num_rows; r++)
    {
        softmax_row(input + r * row_size, row_size, mult, shift, diff_min, output + r * row_size);
    }
}
