/*
 * CONV_2D followed by ADD of a residual (a ResNet block's skip connection), in one pass.
 *
 * Each convolution output is requantized exactly as CONV_2D would store it, then added
 * to the residual as TFLite's ADD would: bit-exact with the two ops. The sum may be
 * written over the residual (output_data == residual_data), so the block needs no third
 * feature map; every residual value is read before the output at its index is written.
 *
 * Two ways through, chosen by the shapes alone (the code generator sizes the scratch the
 * same way, mcu_compile/ops/conv.py):
 * - 1x1 filter without padding: no im2col and no scratch. The filter rows are dotted with
 *   the input pixels directly, input_offset * sum(row) + bias taken once per output channel.
 *   Helium: four output channels per vector (four rows per input load, the four values
 *   requantized on the four lanes); DSP: two rows per input load (SXTB16 + SMLAD) and a
 *   32-bit requantization where the accumulators' bounds allow it. Runs of up to 16 pixels
 *   of one output row are convolved into a small stack buffer, then added to the residual.
 * - any other filter: mcu_convolve_s8 writes one output row into the end of the scratch
 *   (ctx->size = mcu_convolve_s8_get_buffer_size() + output width * channels), then the row
 *   is added to the residual's row. Only the input rows that output row reads are passed,
 *   with the top padding adjusted.
 *
 * The ADD: TFLite's int8 ADD is, per input, x' = RoundingDivideByPOT(SRDHM((x + offset) <<
 * left_shift, mult), -shift), then the same on x'_1 + x'_2 with the output multiplier,
 * plus the output offset, clamped. The fast paths take TFLite's ranges (input shifts in
 * [-31, 0], output shift in [-31, -1], left_shift <= 21: its ADD Prepare gives 20);
 * otherwise the scalar reference arithmetic (mcu_add_one_s8) runs.
 * - Helium, four int32 lanes: (x + offset) << left_shift is one VMLAS, SRDHM is VQRDMULH,
 *   RoundingDivideByPOT is VRSHL (which rounds half up) after stepping negative values down
 *   by one, which makes it round half away from zero. An input whose shift is 0 (TFLite: the
 *   one of the larger scale) has no rounding step: the loops are instantiated per case.
 * - DSP, 32-bit only (no int64): the shifted inputs have |a| <= 255 << 21 and the sum of the
 *   rescaled inputs |s| <= 510 << 21, so 2a and 2s fit in int32 and SRDHM(a, m) =
 *   floor((a * m + 2^30) / 2^31) = floor((2a * m + 2^31) / 2^32) is one SMMULR of 2a (the
 *   rounding gemmlowp's nudge and truncating division give, for either sign);
 *   RoundingDivideByPOT by 2^e is (x + 2^(e-1) - (x < 0)) >> e for e > 0.
 */
#include "mcu_nn_support.h"

#if defined(__GNUC__)
#define ALWAYS_INLINE static inline __attribute__((always_inline))
#define NO_INLINE static __attribute__((noinline))
#else
#define ALWAYS_INLINE static inline
#define NO_INLINE static
#endif

/* The ADD's parameters in the form the fast paths take, prepared once per call. */
typedef struct
{
    int32_t fast;             /* the vector / 32-bit path applies */
    int32_t scale;            /* Helium: 1 << left_shift; DSP: 1 << (left_shift + 1) */
    int32_t k_1, k_2;         /* offset_i * scale: (x + offset_i) * scale = x * scale + k_i */
    int32_t mult_1, mult_2, mult_out;
    int32_t exp_1, exp_2, exp_out; /* right shifts: exp_1, exp_2 >= 0, exp_out > 0 (Helium: negated) */
    int32_t out_offset, act_min, act_max;
} add_prep;

/* The fast paths take TFLite's ranges; the output exponent is never 0 there (the output
 * multiplier is about 2^-20), which saves the loops a case. */
static add_prep prepare_add(const mcu_add_quant *q)
{
    add_prep k;
    memset(&k, 0, sizeof(k));
    k.fast = q->left_shift >= 0 && q->left_shift <= 21 && q->input_1_shift <= 0 && q->input_1_shift >= -31 &&
             q->input_2_shift <= 0 && q->input_2_shift >= -31 && q->out_shift < 0 && q->out_shift >= -31 &&
             q->input_1_mult >= 0 && q->input_2_mult >= 0 && q->out_mult >= 0;
    if (!k.fast)
    {
        return k;
    }
#if defined(ARM_MATH_MVEI)
    k.scale = 1 << q->left_shift;
    k.exp_1 = q->input_1_shift; /* Helium: VRSHL takes the negative exponents */
    k.exp_2 = q->input_2_shift;
    k.exp_out = q->out_shift;
#else
    k.scale = 1 << (q->left_shift + 1);
    k.exp_1 = -q->input_1_shift;
    k.exp_2 = -q->input_2_shift;
    k.exp_out = -q->out_shift;
#endif
    k.k_1 = q->input_1_offset * k.scale;
    k.k_2 = q->input_2_offset * k.scale;
    k.mult_1 = q->input_1_mult;
    k.mult_2 = q->input_2_mult;
    k.mult_out = q->out_mult;
    k.out_offset = q->out_offset;
    k.act_min = q->act_min;
    k.act_max = q->act_max;
    return k;
}

/* The scalar reference arithmetic (mcu_add_one_s8), kept out of line: the fallback of the
 * fast paths and the portable code. */
NO_INLINE int8_t add_one_ref(int8_t a, int8_t b, const mcu_add_quant *q)
{
    return mcu_add_one_s8(a, b, q);
}

/* Which inputs have a nonzero exponent (TFLite: the input of the larger scale has 0):
 * the loops are instantiated per case, without the rounding step where there is none. */
static inline int32_t round_case(const add_prep *k)
{
    return (k->exp_1 != 0) * 2 + (k->exp_2 != 0);
}

#if defined(ARM_MATH_MVEI)
/* RoundingDivideByPOT(x, exp) on four lanes, exp > 0: VRSHL rounds half up; stepping the
 * negative values down by one first makes it round half away from zero. */
ALWAYS_INLINE int32x4_t round_pot_mve(int32x4_t x, int32_t neg_exp)
{
    return vrshlq_n_s32(vaddq_s32(x, vshrq_n_s32(x, 31)), neg_exp);
}

/* One input of the ADD on four lanes of int8 values x: rescaled to the common scale. */
ALWAYS_INLINE int32x4_t add_input_mve(int32x4_t x, int32x4_t scale, int32_t k, int32_t mult, int32_t exp,
                                      const int round)
{
    x = vqrdmulhq_n_s32(vmlasq_n_s32(x, scale, k), mult);
    return round ? round_pot_mve(x, exp) : x;
}

/* The ADD of four lanes: a the convolution's outputs, b the residual's values. */
ALWAYS_INLINE int32x4_t add4_mve(int32x4_t a, int32x4_t b, const add_prep *k, int32x4_t scale, int32x4_t lo,
                                 int32x4_t hi, const int round_1, const int round_2)
{
    a = add_input_mve(a, scale, k->k_1, k->mult_1, k->exp_1, round_1);
    b = add_input_mve(b, scale, k->k_2, k->mult_2, k->exp_2, round_2);
    int32x4_t s = round_pot_mve(vqrdmulhq_n_s32(vaddq_s32(a, b), k->mult_out), k->exp_out);
    s = vaddq_n_s32(s, k->out_offset);
    return vminq_s32(vmaxq_s32(s, lo), hi);
}

ALWAYS_INLINE void add_block_mve(const int8_t *conv, const int8_t *residual, int8_t *out, int32_t n,
                                 const add_prep *params, const int round_1, const int round_2)
{
    const add_prep kk = *params; /* a local copy: the int8 stores could alias *params */
    const add_prep *k = &kk;
    const int32x4_t scale = vdupq_n_s32(k->scale);
    const int32x4_t lo = vdupq_n_s32(k->act_min);
    const int32x4_t hi = vdupq_n_s32(k->act_max);
    for (int32_t i = n >> 2; i > 0; i--)
    {
        const int32x4_t a = vldrbq_s32(conv);
        const int32x4_t b = vldrbq_s32(residual);
        vstrbq_s32(out, add4_mve(a, b, k, scale, lo, hi, round_1, round_2));
        conv += 4;
        residual += 4;
        out += 4;
    }
    if (n & 3)
    {
        const mve_pred16_t lanes = vctp32q((uint32_t)(n & 3));
        const int32x4_t a = vldrbq_z_s32(conv, lanes);
        const int32x4_t b = vldrbq_z_s32(residual, lanes);
        vstrbq_p_s32(out, add4_mve(a, b, k, scale, lo, hi, round_1, round_2), lanes);
    }
}
#elif defined(ARM_MATH_DSP)
/* (a * b + 2^31) >> 32, the rounded high word of the product. */
ALWAYS_INLINE int32_t smmulr(int32_t a, int32_t b)
{
#if defined(__GNUC__)
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    return (int32_t)(((int64_t)a * b + ((int64_t)1 << 31)) >> 32);
#endif
}

/* RoundingDivideByPOT(x, exp) for exp > 0 and |x| < 2^30: x + 2^(exp-1) - (x < 0), shifted. */
ALWAYS_INLINE int32_t round_pot_dsp(int32_t x, int32_t exp)
{
    return (x + (x >> 31) + (1 << (exp - 1))) >> exp;
}

/* One input of the ADD, x an int8 value: rescaled to the common scale. */
ALWAYS_INLINE int32_t add_input_dsp(int32_t x, int32_t scale, int32_t k, int32_t mult, int32_t exp, const int round)
{
    x = smmulr(x * scale + k, mult);
    return round ? round_pot_dsp(x, exp) : x;
}

/* The ADD of one convolution output a and one residual value b. */
ALWAYS_INLINE int8_t add1_dsp(int32_t a, int32_t b, const add_prep *k, const int round_1, const int round_2)
{
    const int32_t x = add_input_dsp(a, k->scale, k->k_1, k->mult_1, k->exp_1, round_1);
    const int32_t y = add_input_dsp(b, k->scale, k->k_2, k->mult_2, k->exp_2, round_2);
    const int32_t s = round_pot_dsp(smmulr((x + y) * 2, k->mult_out), k->exp_out) + k->out_offset;
    return (int8_t)mcu_clamp(s, k->act_min, k->act_max);
}

ALWAYS_INLINE void add_block_dsp(const int8_t *conv, const int8_t *residual, int8_t *out, int32_t n,
                                 const add_prep *params, const int round_1, const int round_2)
{
    const add_prep k = *params; /* a local copy: the int8 stores could alias *params */
    for (int32_t i = n; i > 0; i--)
    {
        *out++ = add1_dsp(*conv++, *residual++, &k, round_1, round_2);
    }
}
#endif

/* out[i] = ADD(conv[i], residual[i]) for n values; out may be residual. */
NO_INLINE void add_block(const int8_t *conv, const int8_t *residual, int8_t *out, int32_t n, const add_prep *k,
                         const mcu_add_quant *q)
{
    if (k->fast)
    {
#if defined(ARM_MATH_MVEI)
        switch (round_case(k))
        {
        case 0: add_block_mve(conv, residual, out, n, k, 0, 0); return;
        case 1: add_block_mve(conv, residual, out, n, k, 0, 1); return;
        case 2: add_block_mve(conv, residual, out, n, k, 1, 0); return;
        default: add_block_mve(conv, residual, out, n, k, 1, 1); return;
        }
#elif defined(ARM_MATH_DSP)
        switch (round_case(k))
        {
        case 0: add_block_dsp(conv, residual, out, n, k, 0, 0); return;
        case 1: add_block_dsp(conv, residual, out, n, k, 0, 1); return;
        case 2: add_block_dsp(conv, residual, out, n, k, 1, 0); return;
        default: add_block_dsp(conv, residual, out, n, k, 1, 1); return;
        }
#endif
    }
    for (int32_t i = 0; i < n; i++)
    {
        out[i] = add_one_ref(conv[i], residual[i], q);
    }
}

/* The geometry of a 1x1 convolution without padding: output pixel (y, x) reads input pixel
 * (y * stride_h, x * stride_w), always in bounds. */
typedef struct
{
    int32_t batches, out_h, out_w, in_ch, out_ch;
    int32_t step_x, step_y; /* input bytes per output column and per output row */
    int32_t in_plane, out_plane;
} geometry_1x1;

#if defined(ARM_MATH_MVEI)
/* The constants of one group of four output channels. */
typedef struct
{
    const int8_t *w_0, *w_1, *w_2, *w_3; /* the filter rows (a missing channel's: row 0 again) */
    int32x4_t base;                       /* bias + input_offset * sum(row) */
    int32x4_t mult, shift;
    int32_t out_offset, act_min, act_max;
} group_mve;

#define RUN_PIXELS 16 /* pixels per run of conv_1x1_add_mve: 256 bytes of stack */

ALWAYS_INLINE void conv_1x1_run_body(const int8_t *x, int32_t step_x, int32_t n, int32_t in_ch,
                                     const group_mve *grp, int32_t *buf, const int chunks, const int simple)
{
    const group_mve c = *grp;
    for (; n > 0; n--)
    {
        int32x4_t v;
        if (chunks == 1)
        {
            /* in_ch = 16: straight-line, the rows' addresses fixed */
            const int8x16_t xv = vldrbq_s8(x);
            const int32_t a_0 = vmladavq_s8(xv, vldrbq_s8(c.w_0));
            const int32_t a_1 = vmladavq_s8(xv, vldrbq_s8(c.w_1));
            const int32_t a_2 = vmladavq_s8(xv, vldrbq_s8(c.w_2));
            const int32_t a_3 = vmladavq_s8(xv, vldrbq_s8(c.w_3));
            v = vsetq_lane_s32(a_3, vsetq_lane_s32(a_2, vsetq_lane_s32(a_1, vdupq_n_s32(a_0), 1), 2), 3);
        }
        else if (chunks == 2)
        {
            /* in_ch = 32: straight-line, the rows' addresses fixed */
            const int8x16_t x_0 = vldrbq_s8(x);
            const int8x16_t x_1 = vldrbq_s8(x + 16);
            const int32_t a_0 = vmladavaq_s8(vmladavq_s8(x_0, vldrbq_s8(c.w_0)), x_1, vldrbq_s8(c.w_0 + 16));
            const int32_t a_1 = vmladavaq_s8(vmladavq_s8(x_0, vldrbq_s8(c.w_1)), x_1, vldrbq_s8(c.w_1 + 16));
            const int32_t a_2 = vmladavaq_s8(vmladavq_s8(x_0, vldrbq_s8(c.w_2)), x_1, vldrbq_s8(c.w_2 + 16));
            const int32_t a_3 = vmladavaq_s8(vmladavq_s8(x_0, vldrbq_s8(c.w_3)), x_1, vldrbq_s8(c.w_3 + 16));
            v = vsetq_lane_s32(a_3, vsetq_lane_s32(a_2, vsetq_lane_s32(a_1, vdupq_n_s32(a_0), 1), 2), 3);
        }
        else
        {
            v = mcu_dot4_s8_mve_inline(x, c.w_0, c.w_1, c.w_2, c.w_3, in_ch);
        }
        v = vaddq_s32(v, c.base);
        if (simple)
        {
            /* right shifts only; the whole int8 range, saturated by a shift pair */
            v = vqrdmulhq_s32(v, c.mult);
            v = vrshlq_s32(vaddq_s32(v, vshrq_n_s32(v, 31)), c.shift);
            v = vshrq_n_s32(vqshlq_n_s32(vaddq_n_s32(v, c.out_offset), 24), 24);
        }
        else
        {
            v = mcu_requantize_s8_mve(v, c.mult, c.shift, c.out_offset, c.act_min, c.act_max);
        }
        vstrwq_s32(buf, v);
        buf += 4;
        x += step_x;
    }
}

/* The convolution's outputs of four channels for n (<= RUN_PIXELS) pixels step_x input
 * bytes apart, as int32 lanes in buf. simple: each channel requantized by a right shift
 * only (shift in [-31, -1]) and clamped to the whole int8 range. */
NO_INLINE void conv_1x1_run_mve(const int8_t *x, int32_t step_x, int32_t n, int32_t in_ch, const group_mve *grp,
                                int32_t *buf, int32_t simple)
{
    if (simple)
    {
        switch (in_ch)
        {
        case 16: conv_1x1_run_body(x, step_x, n, in_ch, grp, buf, 1, 1); return;
        case 32: conv_1x1_run_body(x, step_x, n, in_ch, grp, buf, 2, 1); return;
        default: conv_1x1_run_body(x, step_x, n, in_ch, grp, buf, 0, 1); return;
        }
    }
    conv_1x1_run_body(x, step_x, n, in_ch, grp, buf, 0, 0);
}

ALWAYS_INLINE void add_run_body(const int32_t *buf, const int8_t *res, int8_t *out, int32_t n, int32_t stride,
                                const add_prep *params, const int round_1, const int round_2)
{
    const add_prep kk = *params; /* a local copy: the int8 stores could alias *params */
    const add_prep *k = &kk;
    const int32x4_t scale = vdupq_n_s32(k->scale);
    const int32x4_t lo = vdupq_n_s32(k->act_min);
    const int32x4_t hi = vdupq_n_s32(k->act_max);
    for (; n > 0; n--)
    {
        const int32x4_t a = vldrwq_s32(buf);
        const int32x4_t b = vldrbq_s32(res);
        vstrbq_s32(out, add4_mve(a, b, k, scale, lo, hi, round_1, round_2));
        buf += 4;
        res += stride;
        out += stride;
    }
}

/* The ADD of n pixels' four channels (lanes: those that exist): the convolution's values
 * from buf (int32 lanes), the residual's at res, the sums to out, both stride bytes per
 * pixel. A partial group takes the one instance with both rounding steps, each scaled by
 * a multiplier of 1 or 0 (x + (x >> 31) * fix), so that an exponent 0 leaves x as it is. */
NO_INLINE void add_run_mve(const int32_t *buf, const int8_t *res, int8_t *out, int32_t n, int32_t stride,
                           const add_prep *params, mve_pred16_t lanes, int32_t full)
{
    if (full)
    {
        switch (round_case(params))
        {
        case 0: add_run_body(buf, res, out, n, stride, params, 0, 0); return;
        case 1: add_run_body(buf, res, out, n, stride, params, 0, 1); return;
        case 2: add_run_body(buf, res, out, n, stride, params, 1, 0); return;
        default: add_run_body(buf, res, out, n, stride, params, 1, 1); return;
        }
    }
    const add_prep k = *params;
    const int32_t fix_1 = k.exp_1 != 0, fix_2 = k.exp_2 != 0;
    const int32x4_t scale = vdupq_n_s32(k.scale);
    for (; n > 0; n--)
    {
        int32x4_t a = vqrdmulhq_n_s32(vmlasq_n_s32(vldrwq_s32(buf), scale, k.k_1), k.mult_1);
        int32x4_t b = vqrdmulhq_n_s32(vmlasq_n_s32(vldrbq_z_s32(res, lanes), scale, k.k_2), k.mult_2);
        a = vrshlq_n_s32(vmlaq_n_s32(a, vshrq_n_s32(a, 31), fix_1), k.exp_1);
        b = vrshlq_n_s32(vmlaq_n_s32(b, vshrq_n_s32(b, 31), fix_2), k.exp_2);
        int32x4_t s = vaddq_n_s32(round_pot_mve(vqrdmulhq_n_s32(vaddq_s32(a, b), k.mult_out), k.exp_out),
                                  k.out_offset);
        s = vminq_s32(vmaxq_s32(s, vdupq_n_s32(k.act_min)), vdupq_n_s32(k.act_max));
        vstrbq_p_s32(out, s, lanes);
        buf += 4;
        res += stride;
        out += stride;
    }
}

/* Four output channels per vector, four filter rows per input load (k->fast): runs of up
 * to RUN_PIXELS pixels of one output row are convolved into a stack buffer, then added to
 * the residual, each loop with its values in registers. */
static void conv_1x1_add_mve(const geometry_1x1 *g, const mcu_nn_conv_params *p,
                             const mcu_nn_per_channel_quant_params *quant, const int8_t *input, const int8_t *filter,
                             const int32_t *bias, const add_prep *k, const int8_t *residual, int8_t *output)
{
    const int32_t in_ch = g->in_ch;
    const int32_t out_ch = g->out_ch;
    int32_t buf[4 * RUN_PIXELS];
    for (int32_t oc = 0; oc < out_ch; oc += 4)
    {
        const int32_t rows = out_ch - oc < 4 ? out_ch - oc : 4;
        const mve_pred16_t lanes = vctp32q((uint32_t)rows);
        group_mve c;
        c.w_0 = filter + oc * in_ch;
        c.w_1 = rows > 1 ? c.w_0 + in_ch : c.w_0;
        c.w_2 = rows > 2 ? c.w_0 + 2 * in_ch : c.w_0;
        c.w_3 = rows > 3 ? c.w_0 + 3 * in_ch : c.w_0;
        int32x4_t sums = vdupq_n_s32(mcu_sum_s8_mve(c.w_0, in_ch));
        sums = vsetq_lane_s32(mcu_sum_s8_mve(c.w_1, in_ch), sums, 1);
        sums = vsetq_lane_s32(mcu_sum_s8_mve(c.w_2, in_ch), sums, 2);
        sums = vsetq_lane_s32(mcu_sum_s8_mve(c.w_3, in_ch), sums, 3);
        c.base = vmulq_n_s32(sums, p->input_offset);
        if (bias != NULL)
        {
            c.base = vaddq_s32(c.base, vldrwq_z_s32(bias + oc, lanes));
        }
        c.mult = vldrwq_z_s32(quant->multiplier + oc, lanes);
        c.shift = vldrwq_z_s32(quant->shift + oc, lanes);
        c.out_offset = p->output_offset;
        c.act_min = p->activation.min;
        c.act_max = p->activation.max;
        const int32_t simple = c.act_min == -128 && c.act_max == 127 && vmaxvq_s32(INT32_MIN, c.shift) <= -1 &&
                               vminvq_s32(INT32_MAX, c.shift) >= -31;
        for (int32_t b = 0; b < g->batches; b++)
        {
            const int8_t *in_row = input + b * g->in_plane;
            const int8_t *res = residual + b * g->out_plane + oc;
            int8_t *out = output + b * g->out_plane + oc;
            for (int32_t y = 0; y < g->out_h; y++)
            {
                const int8_t *x = in_row;
                for (int32_t left = g->out_w; left > 0; left -= RUN_PIXELS)
                {
                    const int32_t n = left < RUN_PIXELS ? left : RUN_PIXELS;
                    conv_1x1_run_mve(x, g->step_x, n, in_ch, &c, buf, simple);
                    add_run_mve(buf, res, out, n, out_ch, k, lanes, rows == 4);
                    x += n * g->step_x;
                    res += n * out_ch;
                    out += n * out_ch;
                }
                in_row += g->step_y;
            }
        }
    }
}
#elif defined(ARM_MATH_DSP)
/* The constants of one pair of output channels. */
typedef struct
{
    const int8_t *w_0, *w_1; /* the filter rows */
    int32_t base_0, base_1;  /* bias + input_offset * sum(row) */
    int32_t mult_0, mult_1, shift_0, shift_1;
    int32_t out_offset, act_min, act_max;
} pair_dsp;

#define RUN_PIXELS 16 /* pixels per run of conv_1x1_add_dsp: 32 bytes of stack */

/* mcu_requantize_s8 in 32-bit steps for |acc| < 2^30 and shift in [-31, -1]: SRDHM(acc, m)
 * is one SMMULR of 2 * acc (as for the ADD), then the rounding division by 2^-shift. */
ALWAYS_INLINE int32_t requantize_short_dsp(int32_t acc, int32_t mult, int32_t shift, int32_t out_offset,
                                          int32_t act_min, int32_t act_max)
{
    const int32_t h = smmulr(acc * 2, mult);
    return mcu_clamp(round_pot_dsp(h, -shift) + out_offset, act_min, act_max);
}

ALWAYS_INLINE void conv_1x1_run_body(const int8_t *x, int32_t step_x, int32_t n, int32_t in_ch,
                                     const pair_dsp *pair, int8_t *buf, const int short_requant)
{
    const pair_dsp c = *pair; /* a local copy: the int8 stores could alias *pair */
    for (; n > 0; n--)
    {
        int32_t acc_0, acc_1;
        mcu_dot2_s8_dsp_inline(x, c.w_0, c.w_1, in_ch, &acc_0, &acc_1);
        acc_0 += c.base_0;
        acc_1 += c.base_1;
        if (short_requant)
        {
            buf[0] = (int8_t)requantize_short_dsp(acc_0, c.mult_0, c.shift_0, c.out_offset, c.act_min, c.act_max);
            buf[1] = (int8_t)requantize_short_dsp(acc_1, c.mult_1, c.shift_1, c.out_offset, c.act_min, c.act_max);
        }
        else
        {
            buf[0] = mcu_requantize_s8(acc_0, c.mult_0, c.shift_0, c.out_offset, c.act_min, c.act_max);
            buf[1] = mcu_requantize_s8(acc_1, c.mult_1, c.shift_1, c.out_offset, c.act_min, c.act_max);
        }
        buf += 2;
        x += step_x;
    }
}

/* The convolution's outputs of two channels for n (<= RUN_PIXELS) pixels step_x input
 * bytes apart, into buf (two bytes per pixel). */
NO_INLINE void conv_1x1_run_dsp(const int8_t *x, int32_t step_x, int32_t n, int32_t in_ch, const pair_dsp *pair,
                                int8_t *buf, int32_t short_requant)
{
    if (short_requant)
    {
        conv_1x1_run_body(x, step_x, n, in_ch, pair, buf, 1);
    }
    else
    {
        conv_1x1_run_body(x, step_x, n, in_ch, pair, buf, 0);
    }
}

ALWAYS_INLINE void add_run_body(const int8_t *buf, const int8_t *res, int8_t *out, int32_t n, int32_t stride,
                                const add_prep *params, const int round_1, const int round_2)
{
    const add_prep k = *params; /* a local copy: the int8 stores could alias *params */
    for (; n > 0; n--)
    {
        const int32_t r_0 = res[0];
        const int32_t r_1 = res[1];
        out[0] = add1_dsp(buf[0], r_0, &k, round_1, round_2);
        out[1] = add1_dsp(buf[1], r_1, &k, round_1, round_2);
        buf += 2;
        res += stride;
        out += stride;
    }
}

/* The ADD of n pixels' two channels: the convolution's values from buf, the residual's at
 * res, the sums to out, both stride bytes per pixel. */
NO_INLINE void add_run_dsp(const int8_t *buf, const int8_t *res, int8_t *out, int32_t n, int32_t stride,
                           const add_prep *k)
{
    switch (round_case(k))
    {
    case 0: add_run_body(buf, res, out, n, stride, k, 0, 0); return;
    case 1: add_run_body(buf, res, out, n, stride, k, 0, 1); return;
    case 2: add_run_body(buf, res, out, n, stride, k, 1, 0); return;
    default: add_run_body(buf, res, out, n, stride, k, 1, 1); return;
    }
}

/* Two output channels per pass over the pixels (each input word loaded and widened once for
 * both filter rows, mcu_dot2_s8_dsp_inline): runs of up to RUN_PIXELS pixels of one output
 * row are convolved into a stack buffer, then added to the residual (k->fast), each loop
 * with its values in registers. Returns the channels done. */
static int32_t conv_1x1_add_dsp(const geometry_1x1 *g, const mcu_nn_conv_params *p,
                                const mcu_nn_per_channel_quant_params *quant, const int8_t *input,
                                const int8_t *filter, const int32_t *bias, const add_prep *k,
                                const int8_t *residual, int8_t *output)
{
    const int32_t in_ch = g->in_ch;
    const int32_t out_ch = g->out_ch;
    int8_t buf[2 * RUN_PIXELS];
    int32_t oc = 0;
    for (; oc + 2 <= out_ch; oc += 2)
    {
        pair_dsp c;
        c.w_0 = filter + oc * in_ch;
        c.w_1 = c.w_0 + in_ch;
        int32_t sum_0 = 0, sum_1 = 0;
        for (int32_t i = 0; i < in_ch; i++)
        {
            sum_0 += c.w_0[i];
            sum_1 += c.w_1[i];
        }
        const int32_t bias_0 = bias != NULL ? bias[oc] : 0;
        const int32_t bias_1 = bias != NULL ? bias[oc + 1] : 0;
        c.base_0 = sum_0 * p->input_offset + bias_0;
        c.base_1 = sum_1 * p->input_offset + bias_1;
        c.mult_0 = quant->multiplier[oc];
        c.mult_1 = quant->multiplier[oc + 1];
        c.shift_0 = quant->shift[oc];
        c.shift_1 = quant->shift[oc + 1];
        c.out_offset = p->output_offset;
        c.act_min = p->activation.min;
        c.act_max = p->activation.max;
        /* |acc| <= |bias| + in_ch * 255 * 128 < 2^29 + 2^29 for the 32-bit requantization */
        const int32_t short_requant = in_ch <= (1 << 14) && p->input_offset >= -128 && p->input_offset <= 128 &&
                                      bias_0 > -(1 << 29) && bias_0 < (1 << 29) && bias_1 > -(1 << 29) &&
                                      bias_1 < (1 << 29) && c.shift_0 <= -1 && c.shift_0 >= -31 &&
                                      c.shift_1 <= -1 && c.shift_1 >= -31;
        for (int32_t b = 0; b < g->batches; b++)
        {
            const int8_t *in_row = input + b * g->in_plane;
            const int8_t *res = residual + b * g->out_plane + oc;
            int8_t *out = output + b * g->out_plane + oc;
            for (int32_t y = 0; y < g->out_h; y++)
            {
                const int8_t *x = in_row;
                for (int32_t left = g->out_w; left > 0; left -= RUN_PIXELS)
                {
                    const int32_t n = left < RUN_PIXELS ? left : RUN_PIXELS;
                    conv_1x1_run_dsp(x, g->step_x, n, in_ch, &c, buf, short_requant);
                    add_run_dsp(buf, res, out, n, out_ch, k);
                    x += n * g->step_x;
                    res += n * out_ch;
                    out += n * out_ch;
                }
                in_row += g->step_y;
            }
        }
    }
    return oc;
}
#endif

/* 1x1 filter, no padding: the rows dotted with the input pixels directly, each output
 * added to the residual as soon as it is requantized. */
static mcu_nn_status conv_1x1_add(const mcu_nn_conv_params *p,
                                  const mcu_nn_per_channel_quant_params *quant,
                                  const mcu_nn_dims *input_dims,
                                  const int8_t *input,
                                  const int8_t *filter,
                                  const int32_t *bias,
                                  const mcu_add_quant *add,
                                  const add_prep *k,
                                  const int8_t *residual,
                                  const mcu_nn_dims *output_dims,
                                  int8_t *output)
{
    geometry_1x1 g;
    g.batches = input_dims->n;
    g.out_h = output_dims->h;
    g.out_w = output_dims->w;
    g.in_ch = input_dims->c;
    g.out_ch = output_dims->c;
    g.step_x = p->stride.w * g.in_ch;
    g.step_y = p->stride.h * input_dims->w * g.in_ch;
    g.in_plane = input_dims->h * input_dims->w * g.in_ch;
    g.out_plane = g.out_h * g.out_w * g.out_ch;
    int32_t oc = 0;
    if (k->fast)
    {
#if defined(ARM_MATH_MVEI)
        conv_1x1_add_mve(&g, p, quant, input, filter, bias, k, residual, output);
        return MCU_NN_SUCCESS;
#elif defined(ARM_MATH_DSP)
        oc = conv_1x1_add_dsp(&g, p, quant, input, filter, bias, k, residual, output);
#endif
    }
    /* The remaining channels (all of them in portable C or off the fast path), one at a time. */
    for (; oc < g.out_ch; oc++)
    {
        const int8_t *w = filter + oc * g.in_ch;
        for (int32_t b = 0; b < g.batches; b++)
        {
            const int8_t *in_row = input + b * g.in_plane;
            const int8_t *res = residual + b * g.out_plane + oc;
            int8_t *out = output + b * g.out_plane + oc;
            for (int32_t y = 0; y < g.out_h; y++)
            {
                const int8_t *x = in_row;
                for (int32_t n = g.out_w; n > 0; n--)
                {
                    int32_t acc = bias != NULL ? bias[oc] : 0;
                    for (int32_t i = 0; i < g.in_ch; i++)
                    {
                        acc += (x[i] + p->input_offset) * w[i];
                    }
                    const int8_t value = mcu_requantize_s8(acc, quant->multiplier[oc], quant->shift[oc],
                                                           p->output_offset, p->activation.min, p->activation.max);
                    *out = add_one_ref(value, *res, add);
                    x += g.step_x;
                    res += g.out_ch;
                    out += g.out_ch;
                }
                in_row += g.step_y;
            }
        }
    }
    return MCU_NN_SUCCESS;
}

/* Any other filter: the convolution one output row at a time into the scratch's last
 * row_bytes, each row then added to the residual's. */
static mcu_nn_status conv_rows_add(const mcu_nn_context *ctx,
                                   const mcu_nn_conv_params *conv_params,
                                   const mcu_nn_per_channel_quant_params *quant_params,
                                   const mcu_nn_dims *input_dims,
                                   const int8_t *input_data,
                                   const mcu_nn_dims *filter_dims,
                                   const int8_t *filter_data,
                                   const mcu_nn_dims *bias_dims,
                                   const int32_t *bias_data,
                                   const mcu_add_quant *add,
                                   const add_prep *k,
                                   const int8_t *residual,
                                   const mcu_nn_dims *output_dims,
                                   int8_t *output_data)
{
    const int32_t row_bytes = output_dims->w * output_dims->c;
    const int32_t conv_bytes = mcu_convolve_s8_get_buffer_size(input_dims, filter_dims);
    if (ctx->buf == NULL || ctx->size < conv_bytes + row_bytes)
    {
        return MCU_NN_ARG_ERROR;
    }
    int8_t *row = (int8_t *)ctx->buf + ctx->size - row_bytes;
    const mcu_nn_context conv_ctx = {ctx->buf, ctx->size - row_bytes};
    const int32_t in_row = input_dims->w * input_dims->c;
    const int32_t span = (filter_dims->h - 1) * conv_params->dilation.h + 1; /* input rows one output row reads */
    mcu_nn_conv_params p = *conv_params;
    mcu_nn_dims in_band = *input_dims;
    mcu_nn_dims out_row = *output_dims;
    in_band.n = 1;
    out_row.n = 1;
    out_row.h = 1;
    for (int32_t b = 0; b < input_dims->n; b++)
    {
        const int8_t *input = input_data + b * input_dims->h * in_row;
        for (int32_t y = 0; y < output_dims->h; y++)
        {
            const int32_t first = y * conv_params->stride.h - conv_params->padding.h;
            int32_t lo = first > 0 ? first : 0;
            int32_t hi = first + span < input_dims->h ? first + span : input_dims->h;
            if (hi < lo)
            {
                lo = hi = 0; /* only padding: no input row at all */
            }
            p.padding.h = lo - first;
            in_band.h = hi - lo;
            const mcu_nn_status status = mcu_convolve_s8(&conv_ctx, &p, quant_params, &in_band, input + lo * in_row,
                                                         filter_dims, filter_data, bias_dims, bias_data, &out_row, row);
            if (status != MCU_NN_SUCCESS)
            {
                return status;
            }
            const int32_t at = (b * output_dims->h + y) * row_bytes;
            add_block(row, residual + at, output_data + at, row_bytes, k, add);
        }
    }
    return MCU_NN_SUCCESS;
}

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
                                        int8_t *output_data)
{
    if (add_quant == NULL || residual_data == NULL || filter_dims->c != input_dims->c)
    {
        return MCU_NN_ARG_ERROR;
    }
    const add_prep k = prepare_add(add_quant);
    if (filter_dims->h == 1 && filter_dims->w == 1 && conv_params->padding.h == 0 && conv_params->padding.w == 0 &&
        (output_dims->h - 1) * conv_params->stride.h < input_dims->h &&
        (output_dims->w - 1) * conv_params->stride.w < input_dims->w)
    {
        return conv_1x1_add(conv_params, quant_params, input_dims, input_data, filter_data, bias_data, add_quant, &k,
                            residual_data, output_dims, output_data);
    }
    return conv_rows_add(ctx, conv_params, quant_params, input_dims, input_data, filter_dims, filter_data, bias_dims,
                         bias_data, add_quant, &k, residual_data, output_dims, output_data);
}
