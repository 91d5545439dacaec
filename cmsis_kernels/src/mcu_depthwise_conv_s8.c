/*
 * int8 depthwise 2D convolution (TFLite DEPTHWISE_CONV_2D), any channel
 * multiplier: output channel c = in_c * ch_mult + m reads input channel in_c.
 *
 * The portable per-channel loop is the reference and handles every case. With
 * ch_mult == 1 the optimised paths take four channels at a time, one group of four
 * channels after the other over all output pixels, so a group's weights, bias and
 * quantization are prepared once per group, not per pixel. Padding stays out of the inner
 * loops, chosen from the shapes:
 * - the tile path (most layers): a band of input rows of the group is copied into a stack
 *   tile with the padding materialised (Helium: as -input_offset, one word of four channels
 *   per pixel; DSP: as 0, the four channels widened to two int16 pairs with input_offset
 *   added), then every output pixel reads all its taps from the tile without a check; a
 *   3x3 filter reads the tile and the group's weights at immediate offsets. A band copies at
 *   most two input rows per output row (else the next path); Helium runs the tile by rows
 *   or, for an output narrower than high, by columns, whichever computes fewer pixels;
 * - the direct path: for each output row the filter rows inside the input are known; the
 *   runs of pixels sharing a window (Helium: the inside rows column by column, the others
 *   by their inside columns) go four at a time, the rest tap by tap.
 *
 * ARM_MATH_MVEI (Helium): four output pixels x four channels (int32 lanes) per weight load,
 * the accumulators starting at bias + input_offset * the sum of the window's weights; the
 * four pixels requantized as four vectors (bit-exact with the scalar code). A channel tail
 * or a group with a left shift takes the portable loop.
 * ARM_MATH_DSP (SXTAB16/SMLABB): per tap one pair of input words and one pair of weight
 * words (widened once per group), four 16x16 MACs; the short exact requantization
 * (mcu_requantize_dsp) when the layer's parameters allow it, the general one otherwise.
 * A channel tail takes the portable loop.
 */
#include "mcu_nn_support.h"

#if defined(__GNUC__)
#define DW_INLINE static inline __attribute__((always_inline))
#define DW_NOINLINE static __attribute__((noinline))
#else
#define DW_INLINE static inline
#define DW_NOINLINE static
#endif

/* Accumulates one output channel at one output position over the in-bounds taps. */
static int32_t dw_accumulate(const int8_t *input,
                             const mcu_nn_dims *input_dims,
                             const int8_t *filter,
                             const mcu_nn_dims *filter_dims,
                             const mcu_nn_dw_conv_params *p,
                             int32_t base_y,
                             int32_t base_x,
                             int32_t in_c,
                             int32_t out_c)
{
    int32_t acc = 0;
    for (int32_t ky = 0; ky < filter_dims->h; ky++)
    {
        const int32_t in_y = base_y + ky * p->dilation.h;
        if (in_y < 0 || in_y >= input_dims->h)
        {
            continue;
        }
        for (int32_t kx = 0; kx < filter_dims->w; kx++)
        {
            const int32_t in_x = base_x + kx * p->dilation.w;
            if (in_x < 0 || in_x >= input_dims->w)
            {
                continue;
            }
            const int32_t x = input[(in_y * input_dims->w + in_x) * input_dims->c + in_c] + p->input_offset;
            acc += x * filter[(ky * filter_dims->w + kx) * filter_dims->c + out_c];
        }
    }
    return acc;
}

/* All output values of channels [c_start, c_end) (any ch_mult) the portable way. */
static void dw_portable(const mcu_nn_dw_conv_params *p,
                        const mcu_nn_per_channel_quant_params *q,
                        const mcu_nn_dims *input_dims,
                        const int8_t *input_data,
                        const mcu_nn_dims *filter_dims,
                        const int8_t *filter_data,
                        const int32_t *bias_data,
                        const mcu_nn_dims *output_dims,
                        int8_t *output_data,
                        int32_t c_start,
                        int32_t c_end)
{
    for (int32_t b = 0; b < input_dims->n; b++)
    {
        const int8_t *input = input_data + b * input_dims->h * input_dims->w * input_dims->c;
        int8_t *out = output_data + b * output_dims->h * output_dims->w * output_dims->c;
        for (int32_t out_y = 0; out_y < output_dims->h; out_y++)
        {
            const int32_t base_y = out_y * p->stride.h - p->padding.h;
            for (int32_t out_x = 0; out_x < output_dims->w; out_x++)
            {
                const int32_t base_x = out_x * p->stride.w - p->padding.w;
                for (int32_t oc = c_start; oc < c_end; oc++)
                {
                    int32_t acc = dw_accumulate(input, input_dims, filter_data, filter_dims, p, base_y, base_x,
                                                oc / p->ch_mult, oc);
                    if (bias_data != NULL)
                    {
                        acc += bias_data[oc];
                    }
                    out[oc] = mcu_requantize_s8(acc, q->multiplier[oc], q->shift[oc], p->output_offset,
                                                p->activation.min, p->activation.max);
                }
                out += output_dims->c;
            }
        }
    }
}

#if defined(ARM_MATH_MVEI) || defined(ARM_MATH_DSP)
/* The taps [*start, *end) of a kernel of k taps, dilation dil, starting at input coordinate
 * base, that fall inside [0, size). */
static void dw_tap_range(int32_t base, int32_t dil, int32_t k, int32_t size, int32_t *start, int32_t *end)
{
    int32_t s = base < 0 ? (-base + dil - 1) / dil : 0;
    int32_t e = size - 1 - base < 0 ? 0 : (size - 1 - base) / dil + 1;
    e = e < k ? e : k;
    s = s < e ? s : e;
    *start = s;
    *end = e;
}

/* The output positions [*first, *last) along one axis (stride, padding, dilation, input
 * size, kernel taps, output size) whose taps all lie inside the input (empty: both 0). */
static void dw_interior_columns(int32_t stride, int32_t pad, int32_t dil, int32_t in_size, int32_t k, int32_t out_size,
                                int32_t *first, int32_t *last)
{
    /* out * stride - pad >= 0 and out * stride - pad + (k - 1) * dil <= in_size - 1 */
    int32_t lo = (pad + stride - 1) / stride;
    const int32_t span = in_size - 1 + pad - (k - 1) * dil;
    int32_t hi = span < 0 ? 0 : span / stride + 1;
    hi = hi < out_size ? hi : out_size;
    if (lo >= hi)
    {
        lo = 0;
        hi = 0;
    }
    *first = lo;
    *last = hi;
}
#endif

/* ==================================================================== Helium */

#if defined(ARM_MATH_MVEI)
#define DW_MAX_TAPS_MVE 25 /* the tile path keeps a group's weights for up to 5x5 taps */

/* Four int8 as one word; the address need not be aligned. */
static inline int32_t mcu_read_s8x4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* The requantization of one group of four channels as vectors. */
typedef struct
{
    int32x4_t multiplier;
    int32x4_t shift;
    int32_t out_offset;
    int32x4_t act_min;
    int32x4_t act_max;
} dw_quant_mve;

/* kind: 0 every shift <= -1 and the whole int8 range (the clamp is a saturating shift left
 * by 24 and back, with no constants), 1 every shift <= -1, 2 any shifts. */
DW_INLINE int32x4_t dw_requant_mve(int32x4_t acc, const dw_quant_mve *q, int kind)
{
    int32x4_t r;
    if (kind != 2)
    {
        r = vqrdmulhq_s32(acc, q->multiplier);
        r = vqaddq_s32(r, vshrq_n_s32(r, 31));
        r = vrshlq_s32(r, q->shift);
    }
    else
    {
        r = mcu_requantize_mve(acc, q->multiplier, q->shift);
    }
    r = vaddq_n_s32(r, q->out_offset);
    if (kind == 0)
    {
        return vshrq_n_s32(vqshlq_n_s32(r, 24), 24);
    }
    r = vmaxq_s32(r, q->act_min);
    return vminq_s32(r, q->act_max);
}

/* The accumulators' start for the taps [0, n_ky) x [0, n_kx) of a window (w at its first
 * tap): bias + input_offset * the sum of those weights. */
DW_INLINE int32x4_t dw_base_mve(const int8_t *w, int32_t n_ky, int32_t n_kx, int32_t w_row, int32_t channels,
                                int32x4_t bias, int32_t input_offset, mve_pred16_t lanes)
{
    int32x4_t sum = vdupq_n_s32(0);
    for (int32_t ky = 0; ky < n_ky; ky++)
    {
        for (int32_t kx = 0; kx < n_kx; kx++)
        {
            sum = vaddq_s32(sum, vldrbq_z_s32(w + kx * channels, lanes));
        }
        w += w_row;
    }
    return vmlaq_n_s32(bias, sum, input_offset);
}

/* One output pixel of one group of four channels (lanes: those present) over a window of
 * n_ky x n_kx taps inside the input; x and w at the window's first tap. */
DW_INLINE void dw_single_mve(const int8_t *x, const int8_t *w, int32_t n_ky, int32_t n_kx, int32_t x_step,
                             int32_t x_row, int32_t w_row, int32_t channels, int32x4_t base, const dw_quant_mve *q,
                             int kind, mve_pred16_t lanes, int8_t *out)
{
    int32x4_t acc = base;
    for (int32_t ky = 0; ky < n_ky; ky++)
    {
        for (int32_t kx = 0; kx < n_kx; kx++)
        {
            acc = vaddq_s32(acc, vmulq_s32(vldrbq_z_s32(x + kx * x_step, lanes), vldrbq_z_s32(w + kx * channels, lanes)));
        }
        x += x_row;
        w += w_row;
    }
    vstrbq_p_s32(out, dw_requant_mve(acc, q, kind), lanes);
}

/* a_k += x_k[0..3] * w[0..3] (int8 widened to int32 lanes) for the four pixels, then
 * x_k += step. */
#define DW_QUAD_TAP                                                                                                    \
    __asm__("   vldrb.s32   q6, [%[w]]\n"                                                                              \
            "   vldrb.s32   q7, [%[x0]]\n"                                                                             \
            "   add         %[x0], %[x0], %[s]\n"                                                                      \
            "   vmul.i32    q7, q7, q6\n"                                                                              \
            "   vadd.i32    %q[a0], %q[a0], q7\n"                                                                      \
            "   vldrb.s32   q7, [%[x1]]\n"                                                                             \
            "   add         %[x1], %[x1], %[s]\n"                                                                      \
            "   vmul.i32    q7, q7, q6\n"                                                                              \
            "   vadd.i32    %q[a1], %q[a1], q7\n"                                                                      \
            "   vldrb.s32   q7, [%[x2]]\n"                                                                             \
            "   add         %[x2], %[x2], %[s]\n"                                                                      \
            "   vmul.i32    q7, q7, q6\n"                                                                              \
            "   vadd.i32    %q[a2], %q[a2], q7\n"                                                                      \
            "   vldrb.s32   q7, [%[x3]]\n"                                                                             \
            "   add         %[x3], %[x3], %[s]\n"                                                                      \
            "   vmul.i32    q7, q7, q6\n"                                                                              \
            "   vadd.i32    %q[a3], %q[a3], q7\n"                                                                      \
            : [a0] "+w"(a0), [a1] "+w"(a1), [a2] "+w"(a2), [a3] "+w"(a3), [x0] "+l"(x0), [x1] "+l"(x1),             \
              [x2] "+l"(x2), [x3] "+l"(x3)                                                                             \
            : [w] "l"(wp), [s] "r"(x_step)                                                                             \
            : "q6", "q7", "memory")

/* Four output pixels (x_k = x + k * px_step, out_k = out + k * out_step) of one group of
 * four channels over the same window of n_ky x n_kx taps inside the input; w: the group's
 * weights of the window's first tap, taps w_row bytes apart per filter row. */
DW_INLINE void dw_quad_mve(const int8_t *x, int32_t px_step, const int8_t *w, int32_t n_ky, int32_t n_kx,
                           int32_t x_step, int32_t x_row, int32_t w_row, int32_t channels, int32x4_t base,
                           const dw_quant_mve *q, int kind, int8_t *out, int32_t out_step)
{
    int32x4_t a0 = base, a1 = base, a2 = base, a3 = base;
    const int8_t *x0 = x;
    const int8_t *x1 = x + px_step;
    const int8_t *x2 = x1 + px_step;
    const int8_t *x3 = x2 + px_step;
    const int32_t row_skip = x_row - n_kx * x_step;
    for (int32_t ky = 0; ky < n_ky; ky++)
    {
        const int8_t *wp = w;
        for (int32_t kx = 0; kx < n_kx; kx++)
        {
            DW_QUAD_TAP;
            wp += channels;
        }
        x0 += row_skip;
        x1 += row_skip;
        x2 += row_skip;
        x3 += row_skip;
        w += w_row;
    }
    vstrbq_s32(out, dw_requant_mve(a0, q, kind));
    vstrbq_s32(out + out_step, dw_requant_mve(a1, q, kind));
    vstrbq_s32(out + 2 * out_step, dw_requant_mve(a2, q, kind));
    vstrbq_s32(out + 3 * out_step, dw_requant_mve(a3, q, kind));
}

/* A run of n output pixels sharing one window (x, out at the first; px_step, out_step
 * apart): four at a time (the last four overlapping the previous ones when n is not a
 * multiple of 4; a pixel computed twice is written twice with the same value), single
 * pixels when n < 4 or the lanes are not all present. */
DW_INLINE void dw_run_mve(int32_t n, const int8_t *x, int32_t px_step, const int8_t *w, int32_t n_ky, int32_t n_kx,
                          int32_t x_step, int32_t x_row, int32_t w_row, int32_t channels, int32x4_t base,
                          const dw_quant_mve *q, int kind, mve_pred16_t lanes, int full_lanes, int8_t *out,
                          int32_t out_step)
{
    if (full_lanes && n >= 4)
    {
        for (int32_t k = 0; k < n; k += 4)
        {
            const int32_t k0 = k + 4 <= n ? k : n - 4;
            if (n_kx == 3)
            {
                dw_quad_mve(x + k0 * px_step, px_step, w, n_ky, 3, x_step, x_row, w_row, channels, base, q, kind,
                            out + k0 * out_step, out_step);
            }
            else
            {
                dw_quad_mve(x + k0 * px_step, px_step, w, n_ky, n_kx, x_step, x_row, w_row, channels, base, q, kind,
                            out + k0 * out_step, out_step);
            }
        }
        return;
    }
    for (int32_t k = 0; k < n; k++)
    {
        dw_single_mve(x + k * px_step, w, n_ky, n_kx, x_step, x_row, w_row, channels, base, q, kind, lanes,
                      out + k * out_step);
    }
}

/* All output pixels of channels [c, c + 4) (lanes: those present) of one batch. The rows
 * whose filter rows all lie inside the input go by columns (each column's pixels share
 * their window), the other rows by rows (the pixels of the inside columns share theirs). */
DW_INLINE void dw_group_mve(const mcu_nn_dw_conv_params *p,
                            const dw_quant_mve *q_in,
                            int kind,
                            int32x4_t bias,
                            const mcu_nn_dims *input_dims,
                            const int8_t *input,
                            const mcu_nn_dims *filter_dims,
                            const int8_t *filter,
                            const mcu_nn_dims *output_dims,
                            int8_t *output,
                            mve_pred16_t lanes,
                            int full_lanes)
{
    const dw_quant_mve q_local = *q_in;
    const dw_quant_mve *q = &q_local;
    const int32_t channels = input_dims->c;
    const int32_t k_w = filter_dims->w;
    const int32_t x_step = p->dilation.w * channels;
    const int32_t in_row = input_dims->w * channels;
    const int32_t x_row = p->dilation.h * in_row;
    const int32_t w_row = k_w * channels;
    const int32_t out_row = output_dims->w * channels;
    /* The output rows [iy_first, iy_last) and columns [ix_first, ix_last) whose taps all lie
     * inside the input (in y, x respectively). */
    int32_t ix_first, ix_last, iy_first, iy_last;
    dw_interior_columns(p->stride.w, p->padding.w, p->dilation.w, input_dims->w, k_w, output_dims->w, &ix_first,
                        &ix_last);
    dw_interior_columns(p->stride.h, p->padding.h, p->dilation.h, input_dims->h, filter_dims->h, output_dims->h,
                        &iy_first, &iy_last);
    const int32_t n_rows = iy_last - iy_first;
    /* The inside rows, column by column. */
    for (int32_t out_x = 0; out_x < output_dims->w && n_rows > 0; out_x++)
    {
        const int32_t base_x = out_x * p->stride.w - p->padding.w;
        int32_t kx0, kx1;
        dw_tap_range(base_x, p->dilation.w, k_w, input_dims->w, &kx0, &kx1);
        if (kx1 <= kx0)
        {
            continue;
        }
        const int8_t *w = filter + kx0 * channels;
        const int32x4_t base = dw_base_mve(w, filter_dims->h, kx1 - kx0, w_row, channels, bias, p->input_offset, lanes);
        const int32_t base_y = iy_first * p->stride.h - p->padding.h;
        dw_run_mve(n_rows, input + base_y * in_row + (base_x + kx0 * p->dilation.w) * channels,
                   p->stride.h * in_row, w, filter_dims->h, kx1 - kx0, x_step, x_row, w_row, channels, base, q, kind,
                   lanes, full_lanes, output + iy_first * out_row + out_x * channels, out_row);
    }
    /* The other rows, the inside columns as runs, the others one by one. */
    for (int32_t out_y = 0; out_y < output_dims->h; out_y++)
    {
        if (out_y == iy_first && n_rows > 0)
        {
            out_y = iy_last - 1;
            continue;
        }
        const int32_t base_y = out_y * p->stride.h - p->padding.h;
        int32_t ky0, ky1;
        dw_tap_range(base_y, p->dilation.h, filter_dims->h, input_dims->h, &ky0, &ky1);
        const int32_t n_ky = ky1 - ky0;
        const int8_t *row = input + (base_y + ky0 * p->dilation.h) * in_row;
        const int8_t *w_top = filter + ky0 * w_row;
        int8_t *out = output + out_y * out_row;
        for (int32_t out_x = 0; out_x < output_dims->w; out_x++)
        {
            const int32_t base_x = out_x * p->stride.w - p->padding.w;
            int32_t kx0, kx1;
            dw_tap_range(base_x, p->dilation.w, k_w, input_dims->w, &kx0, &kx1);
            const int32_t n_kx = n_ky > 0 ? kx1 - kx0 : 0;
            const int8_t *w = w_top + kx0 * channels;
            const int32x4_t base = dw_base_mve(w, n_ky, n_kx, w_row, channels, bias, p->input_offset, lanes);
            /* n_kx == 0: no tap inside; nothing is read. */
            const int8_t *x = n_kx > 0 ? row + (base_x + kx0 * p->dilation.w) * channels : input;
            const int32_t n = out_x == ix_first && ix_last > ix_first ? ix_last - ix_first : 1;
            dw_run_mve(n, x, p->stride.w * channels, w, n_ky, n_kx, x_step, x_row, w_row, channels, base, q, kind,
                       lanes, full_lanes, out + out_x * channels, channels);
            out_x += n - 1;
        }
    }
}

DW_NOINLINE void dw_group_right_mve(const mcu_nn_dw_conv_params *p, const dw_quant_mve *q, int32x4_t bias,
                                    const mcu_nn_dims *input_dims, const int8_t *input, const mcu_nn_dims *filter_dims,
                                    const int8_t *filter, const mcu_nn_dims *output_dims, int8_t *output)
{
    dw_group_mve(p, q, 1, bias, input_dims, input, filter_dims, filter, output_dims, output, vctp32q(4), 1);
}

/*
 * The tile path: for one group of four channels, a band of input rows is copied into a
 * stack tile, one 32-bit word (the group's four channels) per pixel, the padding
 * materialised as -input_offset (so x + input_offset is 0 there and the accumulators may
 * start at bias + input_offset * the sum of all the weights). Then every output pixel is
 * inside the tile: four pixels of a row at a time, all taps, no checks; a 3x3 filter with
 * stride 1 or 2 reads the tile and the group's weights (also copied, four bytes per tap) at
 * immediate offsets.
 */
#define DW_TILE_WORDS 256 /* 1024 bytes of stack */
#define DW_TILE_SLACK 8   /* the last quad of a row may read 3 * stride words past its end */

/* a_k += x[off] * w (int8 lanes widened to int32), off the immediate byte offset of pixel k. */
#define DW_MAC(r, off, a) "   vldrb.s32   q7, [%[" #r "], #" #off "]\n   vmul.i32    q7, q7, q6\n   vadd.i32    %q[" #a "], %q[" #a "], q7\n"
/* The four pixels of one tap: weights at w + wo, pixel k's input at r + o_k. */
#define DW_TAP(wo, r, o0, o1, o2, o3)                                                                                  \
    "   vldrb.s32   q6, [%[w], #" #wo "]\n" DW_MAC(r, o0, a0) DW_MAC(r, o1, a1) DW_MAC(r, o2, a2) DW_MAC(r, o3, a3)

/* A 3x3 filter over four output pixels of a tile (rows r0, r1, r2 of the tile; pixel k's
 * taps at +4 * (k * stride + kx)), weights w[9] words. VLDRB.S32 takes a low base register. */
#define DW_3X3_QUAD_ASM(taps_r0, taps_r1, taps_r2)                                                                     \
    __asm__(taps_r0 taps_r1 taps_r2                                                                                    \
            : [a0] "+w"(a0), [a1] "+w"(a1), [a2] "+w"(a2), [a3] "+w"(a3)                                               \
            : [r0] "l"(r0), [r1] "l"(r1), [r2] "l"(r2), [w] "l"(w)                                                     \
            : "q6", "q7", "memory")
#define DW_ROW_S1(wo, r) DW_TAP(wo, r, 0, 4, 8, 12) DW_TAP(wo + 4, r, 4, 8, 12, 16) DW_TAP(wo + 8, r, 8, 12, 16, 20)
#define DW_ROW_S2(wo, r) DW_TAP(wo, r, 0, 8, 16, 24) DW_TAP(wo + 4, r, 4, 12, 20, 28) DW_TAP(wo + 8, r, 8, 16, 24, 32)

/* The geometry of one group's tile pass, in the orientation the pass runs (transposed: the
 * input's columns are the tile's rows, for an output narrower than it is high). */
typedef struct
{
    int32_t k_h, k_w, s_h, s_w, d_h, d_w, pad_h, pad_w;
    int32_t in_h, in_w, in_row, in_px;    /* input rows and pixels of a row, bytes apart */
    int32_t out_h, out_w, out_row, out_px; /* the same of the output */
    int32_t tap_row, tap_px;               /* filter taps (in units of taps) */
    int32_t tile_w;  /* words per tile row: the input columns the output reads, padding included */
    int32_t band_h;  /* output rows per tile */
    int32_t fast3x3; /* 0, or the stride (1, 2) of a 3x3 filter with dilation 1 */
} dw_tile_shape;

/* Four output pixels of the tile (x_k: pixel k's first tap, out_k: its output), consecutive
 * in the row; only the first n_store are stored (the others may read past the row's end,
 * into the tile's slack). */
DW_INLINE void dw_tile_quad_mve(const int8_t *x0, const int8_t *x1, const int8_t *x2, const int8_t *x3,
                                const int32_t *wq, const dw_tile_shape *t, int32x4_t base, const dw_quant_mve *q,
                                int kind, int32_t n_store, int8_t *o0, int8_t *o1, int8_t *o2, int8_t *o3)
{
    int32x4_t a0 = base, a1 = base, a2 = base, a3 = base;
    if (t->fast3x3 != 0)
    {
        const int8_t *r0 = x0;
        const int8_t *r1 = r0 + 4 * t->tile_w * t->d_h;
        const int8_t *r2 = r1 + 4 * t->tile_w * t->d_h;
        const int32_t *w = wq;
        if (t->fast3x3 == 1)
        {
            DW_3X3_QUAD_ASM(DW_ROW_S1(0, r0), DW_ROW_S1(12, r1), DW_ROW_S1(24, r2));
        }
        else
        {
            DW_3X3_QUAD_ASM(DW_ROW_S2(0, r0), DW_ROW_S2(12, r1), DW_ROW_S2(24, r2));
        }
    }
    else
    {
        const int32_t x_step = 4 * t->d_w;
        const int32_t row_skip = 4 * t->tile_w * t->d_h - t->k_w * x_step;
        const int8_t *wp = (const int8_t *)wq;
        for (int32_t ky = 0; ky < t->k_h; ky++)
        {
            for (int32_t kx = 0; kx < t->k_w; kx++)
            {
                DW_QUAD_TAP;
                wp += 4;
            }
            x0 += row_skip;
            x1 += row_skip;
            x2 += row_skip;
            x3 += row_skip;
        }
    }
    vstrbq_s32(o0, dw_requant_mve(a0, q, kind));
    if (n_store > 1)
    {
        vstrbq_s32(o1, dw_requant_mve(a1, q, kind));
    }
    if (n_store > 2)
    {
        vstrbq_s32(o2, dw_requant_mve(a2, q, kind));
    }
    if (n_store > 3)
    {
        vstrbq_s32(o3, dw_requant_mve(a3, q, kind));
    }
}

/* All output pixels of channels [c, c + 4) (four present) of one batch, band by band. */
DW_INLINE void dw_tile_group_mve(const mcu_nn_dw_conv_params *p, const dw_quant_mve *q_in, int kind, int32x4_t bias,
                                 int32_t channels, const int8_t *input, const int8_t *filter,
                                 const dw_tile_shape *shape, int8_t *output)
{
    const dw_quant_mve q_local = *q_in;
    const dw_quant_mve *q = &q_local;
    const dw_tile_shape t = *shape;
    int32_t tile[DW_TILE_WORDS + DW_TILE_SLACK];
    int32_t wq[DW_MAX_TAPS_MVE];
    int32x4_t w_sum = vdupq_n_s32(0);
    for (int32_t ky = 0; ky < t.k_h; ky++)
    {
        for (int32_t kx = 0; kx < t.k_w; kx++)
        {
            const int8_t *w = filter + (ky * t.tap_row + kx * t.tap_px) * channels;
            wq[ky * t.k_w + kx] = mcu_read_s8x4(w);
            w_sum = vaddq_s32(w_sum, vldrbq_s32(w));
        }
    }
    const int32x4_t base = vmlaq_n_s32(bias, w_sum, p->input_offset);
    const uint8_t pad_byte = (uint8_t)(-p->input_offset);
    const int32_t pad = (int32_t)(pad_byte * 0x01010101u);
    const int32_t px_step = 4 * t.s_w;
    const int gather = (t.in_px & 3) == 0;
    const uint32x4_t offsets = vmulq_n_u32(vidupq_n_u32(0, 1), (uint32_t)t.in_px);
    for (int32_t oy0 = 0; oy0 < t.out_h; oy0 += t.band_h)
    {
        const int32_t band = t.out_h - oy0 < t.band_h ? t.out_h - oy0 : t.band_h;
        const int32_t rows = (band - 1) * t.s_h + (t.k_h - 1) * t.d_h + 1;
        const int32_t y0 = oy0 * t.s_h - t.pad_h;
        for (int32_t ty = 0; ty < rows; ty++)
        {
            int32_t *dst = tile + ty * t.tile_w;
            const int32_t iy = y0 + ty;
            int32_t tx = 0;
            if (iy >= 0 && iy < t.in_h)
            {
                const int32_t x_last = t.pad_w + t.in_w < t.tile_w ? t.pad_w + t.in_w : t.tile_w;
                for (; tx < t.pad_w; tx++)
                {
                    dst[tx] = pad;
                }
                const int8_t *src = input + iy * t.in_row + (tx - t.pad_w) * t.in_px;
                if (gather && ((uintptr_t)src & 3) == 0)
                {
                    /* Four pixels' words per gather (all word-aligned). */
                    for (; tx + 4 <= x_last; tx += 4)
                    {
                        vstrwq_s32(dst + tx, vldrwq_gather_offset_s32((const int32_t *)(const void *)src, offsets));
                        src += 4 * t.in_px;
                    }
                }
                for (; tx < x_last; tx++)
                {
                    dst[tx] = mcu_read_s8x4(src);
                    src += t.in_px;
                }
            }
            for (; tx < t.tile_w; tx++)
            {
                dst[tx] = pad;
            }
        }
        for (int32_t r = 0; r < band; r++)
        {
            const int8_t *x = (const int8_t *)(tile + r * t.s_h * t.tile_w);
            int8_t *o = output + (oy0 + r) * t.out_row;
            for (int32_t ox = 0; ox < t.out_w; ox += 4)
            {
                dw_tile_quad_mve(x, x + px_step, x + 2 * px_step, x + 3 * px_step, wq, &t, base, q, kind,
                                 t.out_w - ox, o, o + t.out_px, o + 2 * t.out_px, o + 3 * t.out_px);
                x += 4 * px_step;
                o += 4 * t.out_px;
            }
        }
    }
}

DW_NOINLINE void dw_tile_full_mve(const mcu_nn_dw_conv_params *p, const dw_quant_mve *q, int32x4_t bias,
                                  int32_t channels, const int8_t *input, const int8_t *filter,
                                  const dw_tile_shape *t, int8_t *output)
{
    dw_tile_group_mve(p, q, 0, bias, channels, input, filter, t, output);
}

DW_NOINLINE void dw_tile_right_mve(const mcu_nn_dw_conv_params *p, const dw_quant_mve *q, int32x4_t bias,
                                   int32_t channels, const int8_t *input, const int8_t *filter,
                                   const dw_tile_shape *t, int8_t *output)
{
    dw_tile_group_mve(p, q, 1, bias, channels, input, filter, t, output);
}

/* The tile geometry of a layer in one orientation; its cost estimate (instructions per
 * channel group, about), or 0 when the tile path does not apply there (padding not
 * representable as int8, too many taps, not one output row per tile, or too many input
 * rows copied per output row). */
static int32_t dw_tile_plan(const mcu_nn_dw_conv_params *p, const mcu_nn_dims *input_dims,
                            const mcu_nn_dims *filter_dims, const mcu_nn_dims *output_dims, int transposed,
                            dw_tile_shape *t)
{
    const int32_t c = input_dims->c;
    if (!transposed)
    {
        *t = (dw_tile_shape){filter_dims->h, filter_dims->w, p->stride.h, p->stride.w, p->dilation.h, p->dilation.w,
                             p->padding.h, p->padding.w, input_dims->h, input_dims->w, input_dims->w * c, c,
                             output_dims->h, output_dims->w, output_dims->w * c, c, filter_dims->w, 1, 0, 0, 0};
    }
    else
    {
        *t = (dw_tile_shape){filter_dims->w, filter_dims->h, p->stride.w, p->stride.h, p->dilation.w, p->dilation.h,
                             p->padding.w, p->padding.h, input_dims->w, input_dims->h, c, input_dims->w * c,
                             output_dims->w, output_dims->h, c, output_dims->w * c, 1, filter_dims->w, 0, 0, 0};
    }
    if (p->input_offset < -127 || p->input_offset > 128 || t->k_h * t->k_w > DW_MAX_TAPS_MVE || t->pad_h < 0 ||
        t->pad_w < 0 || 3 * t->s_w > DW_TILE_SLACK)
    {
        return 0;
    }
    t->tile_w = (t->out_w - 1) * t->s_w + (t->k_w - 1) * t->d_w + 1;
    const int32_t fit = DW_TILE_WORDS / t->tile_w - ((t->k_h - 1) * t->d_h + 1);
    if (fit < 0)
    {
        return 0;
    }
    t->band_h = fit / t->s_h + 1;
    t->fast3x3 = t->k_h == 3 && t->k_w == 3 && t->d_w == 1 && (t->s_w == 1 || t->s_w == 2) ? t->s_w : 0;
    /* Worth it when a band copies at most two input rows per output row. */
    const int32_t rows = (t->band_h - 1) * t->s_h + (t->k_h - 1) * t->d_h + 1;
    if (rows > 2 * t->band_h)
    {
        return 0;
    }
    /* Quads computed (the last of a row may hold fewer pixels) and words copied. */
    const int32_t bands = (t->out_h + t->band_h - 1) / t->band_h;
    const int32_t quads = t->out_h * ((t->out_w + 3) / 4);
    const int32_t copied = bands * ((t->band_h - 1) * t->s_h + (t->k_h - 1) * t->d_h + 1) * t->tile_w;
    return 1 + quads * (13 * t->k_h * t->k_w + 50) + 2 * copied;
}

/* The cheaper orientation of the tile path, if any applies. */
static int dw_tile_shape_of(const mcu_nn_dw_conv_params *p, const mcu_nn_dims *input_dims,
                            const mcu_nn_dims *filter_dims, const mcu_nn_dims *output_dims, dw_tile_shape *t)
{
    dw_tile_shape across;
    const int32_t cost_rows = dw_tile_plan(p, input_dims, filter_dims, output_dims, 0, t);
    const int32_t cost_cols = dw_tile_plan(p, input_dims, filter_dims, output_dims, 1, &across);
    if (cost_cols != 0 && (cost_rows == 0 || cost_cols < cost_rows))
    {
        *t = across;
        return 1;
    }
    return cost_rows != 0;
}

/* A small output (at most DW_SMALL_OUTPUT pixels, where a group's tile or windows would cost
 * more than its pixels): pixel by pixel, the whole groups of four channels of each pixel
 * over its taps inside the input (x + input_offset per tap), the requantization's vectors
 * loaded contiguously. Returns the channels done (the rest go the portable way). */
#define DW_SMALL_OUTPUT 16

static int32_t __attribute__((noinline)) dw_small_mve(const mcu_nn_dw_conv_params *p,
                                                      const mcu_nn_per_channel_quant_params *quant,
                                                      const mcu_nn_dims *input_dims, const int8_t *input_data,
                                                      const mcu_nn_dims *filter_dims, const int8_t *filter,
                                                      const int32_t *bias, const mcu_nn_dims *output_dims,
                                                      int8_t *output)
{
    const int32_t channels = input_dims->c;
    const int32_t groups_end = channels & ~3;
    const int32_t x_step = p->dilation.w * channels;
    const int32_t x_row = p->dilation.h * input_dims->w * channels;
    const int32_t w_row = filter_dims->w * channels;
    const int32x4_t act_min = vdupq_n_s32(p->activation.min), act_max = vdupq_n_s32(p->activation.max);
    for (int32_t b = 0; b < input_dims->n; b++)
    {
        const int8_t *input = input_data + b * input_dims->h * input_dims->w * channels;
        for (int32_t out_y = 0; out_y < output_dims->h; out_y++)
        {
            const int32_t base_y = out_y * p->stride.h - p->padding.h;
            int32_t ky0, ky1;
            dw_tap_range(base_y, p->dilation.h, filter_dims->h, input_dims->h, &ky0, &ky1);
            for (int32_t out_x = 0; out_x < output_dims->w; out_x++)
            {
                const int32_t base_x = out_x * p->stride.w - p->padding.w;
                int32_t kx0, kx1;
                dw_tap_range(base_x, p->dilation.w, filter_dims->w, input_dims->w, &kx0, &kx1);
                const int32_t n_kx = ky1 > ky0 ? kx1 - kx0 : 0;
                const int8_t *x_first =
                    n_kx > 0 ? input + ((base_y + ky0 * p->dilation.h) * input_dims->w + base_x +
                                        kx0 * p->dilation.w) * channels
                             : input;
                const int8_t *w_first = filter + (ky0 * filter_dims->w + kx0) * channels;
                for (int32_t c = 0; c < groups_end; c += 4)
                {
                    int32x4_t acc = bias != NULL ? vldrwq_s32(bias + c) : vdupq_n_s32(0);
                    const int8_t *x_r = x_first + c;
                    const int8_t *w_r = w_first + c;
                    for (int32_t ky = ky0; ky < ky1; ky++)
                    {
                        for (int32_t kx = 0; kx < n_kx; kx++)
                        {
                            const int32x4_t xv = vaddq_n_s32(vldrbq_s32(x_r + kx * x_step), p->input_offset);
                            acc = vaddq_s32(acc, vmulq_s32(xv, vldrbq_s32(w_r + kx * channels)));
                        }
                        x_r += x_row;
                        w_r += w_row;
                    }
                    int32x4_t r = mcu_requantize_mve(acc, vldrwq_s32(quant->multiplier + c), vldrwq_s32(quant->shift + c));
                    r = vminq_s32(vmaxq_s32(vaddq_n_s32(r, p->output_offset), act_min), act_max);
                    vstrbq_s32(output + c, r);
                }
                output += channels;
            }
        }
    }
    return groups_end;
}

/* The groups of four channels with every shift <= -1 (all of them, in a real layer); returns
 * nothing, the other groups (a channel tail, a left shift) go the portable way. */
static void dw_mve(const mcu_nn_dw_conv_params *p,
                   const mcu_nn_per_channel_quant_params *quant,
                   const mcu_nn_dims *input_dims,
                   const int8_t *input_data,
                   const mcu_nn_dims *filter_dims,
                   const int8_t *filter_data,
                   const int32_t *bias_data,
                   const mcu_nn_dims *output_dims,
                   int8_t *output_data)
{
    const int32_t channels = input_dims->c;
    const int32_t in_size = input_dims->h * input_dims->w * channels;
    const int32_t out_size = output_dims->h * output_dims->w * channels;
    const int full = p->activation.min == -128 && p->activation.max == 127;
    dw_tile_shape tile;
    const int tiled = dw_tile_shape_of(p, input_dims, filter_dims, output_dims, &tile);
    for (int32_t c = 0; c < channels; c += 4)
    {
        const int32_t n = channels - c < 4 ? channels - c : 4;
        const mve_pred16_t lanes = vctp32q((uint32_t)n);
        const int32x4_t mult = vldrwq_z_s32(quant->multiplier + c, lanes);
        /* A zero multiplier gives 0 whatever the shift: such a lane counts as shift -1. */
        const int32x4_t nonzero = vreinterpretq_s32_u32(vminq_u32(vreinterpretq_u32_s32(mult), vdupq_n_u32(1)));
        const int32x4_t shift =
            vsubq_s32(vmulq_s32(vaddq_n_s32(vldrwq_z_s32(quant->shift + c, lanes), 1), nonzero), vdupq_n_s32(1));
        if (n < 4 || vmaxvq_s32(-1, shift) >= 0)
        {
            dw_portable(p, quant, input_dims, input_data, filter_dims, filter_data, bias_data, output_dims,
                        output_data, c, c + n);
            continue;
        }
        const dw_quant_mve q = {mult, shift, p->output_offset, vdupq_n_s32(p->activation.min),
                                vdupq_n_s32(p->activation.max)};
        const int32x4_t bias = bias_data != NULL ? vldrwq_s32(bias_data + c) : vdupq_n_s32(0);
        for (int32_t b = 0; b < input_dims->n; b++)
        {
            const int8_t *input = input_data + b * in_size + c;
            int8_t *output = output_data + b * out_size + c;
            if (tiled && full)
            {
                dw_tile_full_mve(p, &q, bias, channels, input, filter_data + c, &tile, output);
            }
            else if (tiled)
            {
                dw_tile_right_mve(p, &q, bias, channels, input, filter_data + c, &tile, output);
            }
            else
            {
                dw_group_right_mve(p, &q, bias, input_dims, input, filter_dims, filter_data + c, output_dims,
                                   output);
            }
        }
    }
}
#endif

/* ==================================================================== DSP */

#if defined(ARM_MATH_DSP) && !defined(ARM_MATH_MVEI)
#define DW_MAX_TAPS 25 /* filters up to 5x5 take the grouped path; larger ones the portable one */

/* The requantization of one layer on the DSP path. */
typedef struct
{
    const int32_t *multiplier;
    const int32_t *shift;
    int32_t out_offset, act_min, act_max;
} dw_quant_dsp;

/* Output value of one channel. kind: 0 the short requantization with the whole int8 range,
 * 1 the short one with a clamp, 2 the general one (any bias and shift). */
DW_INLINE int8_t dw_out_dsp(int32_t acc, int32_t multiplier, int32_t shift, const dw_quant_dsp *q, int kind)
{
    if (kind == 2)
    {
        return mcu_requantize_s8(acc, multiplier, shift, q->out_offset, q->act_min, q->act_max);
    }
    const int32_t v = __ssat(mcu_requantize_dsp(acc, multiplier, shift, mcu_requant_dsp_k2(q->out_offset)), 8);
    return (int8_t)(kind == 0 ? v : mcu_clamp(v, q->act_min, q->act_max));
}

/* acc[0..3] += (x + offset) * w for the four channels of one tap: the input word x widened
 * to the (0, 2) and (1, 3) pairs with the offset added, w: the tap's widened weight pairs. */
#define DW_TAP4(x_word, w_pair)                                                                                        \
    do                                                                                                                 \
    {                                                                                                                  \
        const int32_t x_02_ = __sxtab16(offset_s16x2, (x_word));                                                       \
        const int32_t x_13_ = mcu_sxtab16_ror8(offset_s16x2, (x_word));                                                \
        a_0 = __smlabb(x_02_, (w_pair)[0], a_0);                                                                       \
        a_2 = __smlatt(x_02_, (w_pair)[0], a_2);                                                                       \
        a_1 = __smlabb(x_13_, (w_pair)[1], a_1);                                                                       \
        a_3 = __smlatt(x_13_, (w_pair)[1], a_3);                                                                       \
    } while (0)

/*
 * The DSP tile path: a band of input rows of one group of four channels is widened into a
 * stack tile once, two words per pixel (the (0, 2) and (1, 3) int16 pairs with
 * input_offset added, padding 0), so every tap of every output pixel is two LDRDs (input
 * pair, weight pair) and four 16x16 MACs, with no bounds checks; a 3x3 filter with dilation
 * 1 reads the tile and the weights at immediate offsets.
 */
#define DW_TILE_WORDS_DSP 512 /* 2048 bytes of stack */

typedef struct
{
    int32_t k_h, k_w, s_h, s_w, d_h, d_w;
    int32_t tile_w; /* pixels per tile row */
    int32_t band_h; /* output rows per tile */
} dw_tile_dsp_shape;

/* One tap: x0, x1 the tile pixel's pairs at r + xo, w0, w1 the weight pairs at wp + wo. */
#define DW_DSP_TAP(r, xo, wo)                                                                                          \
    "   ldrd    %[x0], %[x1], [%[" #r "], #" #xo "]\n"                                                                 \
    "   ldrd    %[w0], %[w1], [%[wp], #" #wo "]\n"                                                                     \
    "   smlabb  %[a0], %[x0], %[w0], %[a0]\n"                                                                          \
    "   smlatt  %[a2], %[x0], %[w0], %[a2]\n"                                                                          \
    "   smlabb  %[a1], %[x1], %[w1], %[a1]\n"                                                                          \
    "   smlatt  %[a3], %[x1], %[w1], %[a3]\n"
#define DW_DSP_ROW(r, wo) DW_DSP_TAP(r, 0, wo) DW_DSP_TAP(r, 8, wo + 8) DW_DSP_TAP(r, 16, wo + 16)

/* The tile geometry, or 0 when the tile path does not apply (too many taps, not one output
 * row per tile, or more than two input rows copied per output row). */
static int dw_tile_dsp_shape_of(const mcu_nn_dw_conv_params *p, const mcu_nn_dims *filter_dims,
                                const mcu_nn_dims *output_dims, dw_tile_dsp_shape *t)
{
    *t = (dw_tile_dsp_shape){filter_dims->h, filter_dims->w, p->stride.h, p->stride.w, p->dilation.h, p->dilation.w,
                             0, 0};
    if (t->k_h * t->k_w > DW_MAX_TAPS || p->padding.h < 0 || p->padding.w < 0)
    {
        return 0;
    }
    t->tile_w = (output_dims->w - 1) * t->s_w + (t->k_w - 1) * t->d_w + 1;
    const int32_t fit = DW_TILE_WORDS_DSP / (2 * t->tile_w) - ((t->k_h - 1) * t->d_h + 1);
    if (fit < 0)
    {
        return 0;
    }
    t->band_h = fit / t->s_h + 1;
    return (t->band_h - 1) * t->s_h + (t->k_h - 1) * t->d_h + 1 <= 2 * t->band_h;
}

/* All output pixels of channels [c, c + 4) of one batch through the tile; wq: the group's
 * widened weights, b_k, m_k, s_k, h_k, d_k: the channels' bias and requantization. */
#define DW_TILE_DSP_BODY                                                                                               \
    do                                                                                                                 \
    {                                                                                                                  \
        const int32_t in_w = input_dims->w;                                                                           \
        const int32_t out_w = output_dims->w;                                                                         \
        const int32_t row_words = 2 * tt.tile_w;                                                                      \
        for (int32_t oy0 = 0; oy0 < output_dims->h; oy0 += tt.band_h)                                                 \
        {                                                                                                              \
            const int32_t band = output_dims->h - oy0 < tt.band_h ? output_dims->h - oy0 : tt.band_h;                 \
            const int32_t rows = (band - 1) * tt.s_h + (tt.k_h - 1) * tt.d_h + 1;                                     \
            const int32_t y0 = oy0 * tt.s_h - p->padding.h;                                                           \
            for (int32_t ty = 0; ty < rows; ty++)                                                                     \
            {                                                                                                          \
                int32_t *dst = tile + ty * row_words;                                                                 \
                const int32_t iy = y0 + ty;                                                                           \
                int32_t tx = 0;                                                                                        \
                if (iy >= 0 && iy < input_dims->h)                                                                    \
                {                                                                                                      \
                    const int32_t x_last = p->padding.w + in_w < tt.tile_w ? p->padding.w + in_w : tt.tile_w;        \
                    for (; tx < p->padding.w; tx++)                                                                   \
                    {                                                                                                  \
                        dst[2 * tx] = 0;                                                                               \
                        dst[2 * tx + 1] = 0;                                                                           \
                    }                                                                                                  \
                    const int8_t *src = input + (iy * in_w + tx - p->padding.w) * channels;                           \
                    for (; tx < x_last; tx++)                                                                         \
                    {                                                                                                  \
                        const int32_t v = mcu_read_word(src);                                                         \
                        dst[2 * tx] = __sxtab16(offset_s16x2, v);                                                     \
                        dst[2 * tx + 1] = mcu_sxtab16_ror8(offset_s16x2, v);                                          \
                        src += channels;                                                                               \
                    }                                                                                                  \
                }                                                                                                      \
                for (; tx < tt.tile_w; tx++)                                                                          \
                {                                                                                                      \
                    dst[2 * tx] = 0;                                                                                   \
                    dst[2 * tx + 1] = 0;                                                                               \
                }                                                                                                      \
            }                                                                                                          \
            for (int32_t r = 0; r < band; r++)                                                                        \
            {                                                                                                          \
                const int32_t *x = tile + r * tt.s_h * row_words;                                                     \
                int8_t *out = output + (oy0 + r) * out_w * channels;                                                  \
                for (int32_t ox = 0; ox < out_w; ox++)                                                                \
                {                                                                                                      \
                    int32_t a_0 = b_0, a_1 = b_1, a_2 = b_2, a_3 = b_3;                                                \
                    if (fast3x3)                                                                                       \
                    {                                                                                                  \
                        const int32_t *r0 = x;                                                                         \
                        const int32_t *r1 = r0 + tt.d_h * row_words;                                                   \
                        const int32_t *r2 = r1 + tt.d_h * row_words;                                                   \
                        const int32_t *wp = &wq[0][0];                                                                 \
                        int32_t x0, x1, w0, w1;                                                                        \
                        __asm__(DW_DSP_ROW(r0, 0) DW_DSP_ROW(r1, 24) DW_DSP_ROW(r2, 48)                                \
                                : [a0] "+r"(a_0), [a1] "+r"(a_1), [a2] "+r"(a_2), [a3] "+r"(a_3), [x0] "=&r"(x0),     \
                                  [x1] "=&r"(x1), [w0] "=&r"(w0), [w1] "=&r"(w1)                                       \
                                : [r0] "r"(r0), [r1] "r"(r1), [r2] "r"(r2), [wp] "r"(wp)                               \
                                : "memory");                                                                           \
                    }                                                                                                  \
                    else                                                                                               \
                    {                                                                                                  \
                        const int32_t(*wr)[2] = wq;                                                                    \
                        for (int32_t ky = 0; ky < tt.k_h; ky++)                                                        \
                        {                                                                                              \
                            const int32_t *xr = x + ky * tt.d_h * row_words;                                           \
                            for (int32_t kx = 0; kx < tt.k_w; kx++)                                                    \
                            {                                                                                          \
                                const int32_t *xp = xr + 2 * kx * tt.d_w;                                              \
                                a_0 = __smlabb(xp[0], wr[kx][0], a_0);                                                 \
                                a_2 = __smlatt(xp[0], wr[kx][0], a_2);                                                 \
                                a_1 = __smlabb(xp[1], wr[kx][1], a_1);                                                 \
                                a_3 = __smlatt(xp[1], wr[kx][1], a_3);                                                 \
                            }                                                                                          \
                            wr += tt.k_w;                                                                              \
                        }                                                                                              \
                    }                                                                                                  \
                    out[0] = dw_out_dsp(a_0, m_0, s_0, q, kind);                                             \
                    out[1] = dw_out_dsp(a_1, m_1, s_1, q, kind);                                             \
                    out[2] = dw_out_dsp(a_2, m_2, s_2, q, kind);                                             \
                    out[3] = dw_out_dsp(a_3, m_3, s_3, q, kind);                                             \
                    out += channels;                                                                                   \
                    x += 2 * tt.s_w;                                                                                   \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
    } while (0)

/* All output pixels of channels [c, c + 4) of one batch. */
DW_INLINE void dw_group_dsp(const mcu_nn_dw_conv_params *p,
                            const dw_quant_dsp *q_in,
                            int kind,
                            const int32_t *bias,
                            const mcu_nn_dims *input_dims,
                            const int8_t *input,
                            const mcu_nn_dims *filter_dims,
                            const int8_t *filter,
                            const mcu_nn_dims *output_dims,
                            int8_t *output,
                            const dw_tile_dsp_shape *tile_shape)
{
    const dw_quant_dsp q_local = *q_in;
    const dw_quant_dsp *q = &q_local;
    const int32_t channels = input_dims->c;
    const int32_t k_w = filter_dims->w;
    const int32_t n_taps = filter_dims->h * k_w;
    const int32_t x_step = p->dilation.w * channels;
    const int32_t x_step2 = 2 * x_step;
    const int32_t x_row = p->dilation.h * input_dims->w * channels;
    const int32_t offset_s16x2 = mcu_pack_s16x2(p->input_offset, p->input_offset);
    const int32_t b_0 = bias != NULL ? bias[0] : 0, b_1 = bias != NULL ? bias[1] : 0;
    const int32_t b_2 = bias != NULL ? bias[2] : 0, b_3 = bias != NULL ? bias[3] : 0;
    const int32_t m_0 = q->multiplier[0], m_1 = q->multiplier[1], m_2 = q->multiplier[2], m_3 = q->multiplier[3];
    const int32_t s_0 = q->shift[0], s_1 = q->shift[1], s_2 = q->shift[2], s_3 = q->shift[3];
    /* The group's weights per tap as the int16 pairs of channels (0, 2) and (1, 3). */
    int32_t wq[DW_MAX_TAPS][2];
    for (int32_t t = 0; t < n_taps; t++)
    {
        const int32_t w = mcu_read_word(filter + t * channels);
        wq[t][0] = __sxtb16(w);
        wq[t][1] = mcu_sxtb16_ror8(w);
    }
    if (tile_shape != NULL)
    {
        const dw_tile_dsp_shape tt = *tile_shape;
        const int fast3x3 = tt.k_h == 3 && tt.k_w == 3 && tt.d_w == 1;
        int32_t tile[DW_TILE_WORDS_DSP];
        DW_TILE_DSP_BODY;
        return;
    }
    int32_t ix_first, ix_last;
    dw_interior_columns(p->stride.w, p->padding.w, p->dilation.w, input_dims->w, k_w, output_dims->w, &ix_first,
                        &ix_last);
    for (int32_t out_y = 0; out_y < output_dims->h; out_y++)
    {
        const int32_t base_y = out_y * p->stride.h - p->padding.h;
        int32_t ky0, ky1;
        dw_tap_range(base_y, p->dilation.h, filter_dims->h, input_dims->h, &ky0, &ky1);
        const int32_t n_ky = ky1 - ky0;
        const int8_t *row = n_ky > 0 ? input + (base_y + ky0 * p->dilation.h) * input_dims->w * channels : input;
        const int32_t(*w_rows)[2] = wq + ky0 * k_w;
        int8_t *out = output + out_y * output_dims->w * channels;
        for (int32_t out_x = 0; out_x < output_dims->w; out_x++)
        {
            const int32_t base_x = out_x * p->stride.w - p->padding.w;
            int32_t a_0 = b_0, a_1 = b_1, a_2 = b_2, a_3 = b_3;
            if (k_w == 3 && out_x >= ix_first && out_x < ix_last)
            {
                /* A 3-wide filter, every column inside: the three taps of a row unrolled. */
                const int8_t *x = row + base_x * channels;
                const int32_t(*wr)[2] = w_rows;
                for (int32_t ky = 0; ky < n_ky; ky++)
                {
                    const int32_t x0 = mcu_read_word(x);
                    const int32_t x1 = mcu_read_word(x + x_step);
                    const int32_t x2 = mcu_read_word(x + x_step2);
                    DW_TAP4(x0, wr[0]);
                    DW_TAP4(x1, wr[1]);
                    DW_TAP4(x2, wr[2]);
                    x += x_row;
                    wr += 3;
                }
            }
            else
            {
                int32_t kx0, kx1;
                dw_tap_range(base_x, p->dilation.w, k_w, input_dims->w, &kx0, &kx1);
                const int8_t *x = row + (base_x + kx0 * p->dilation.w) * channels;
                const int32_t(*wr)[2] = w_rows + kx0;
                for (int32_t ky = 0; ky < n_ky && kx1 > kx0; ky++)
                {
                    for (int32_t kx = 0; kx < kx1 - kx0; kx++)
                    {
                        DW_TAP4(mcu_read_word(x + kx * x_step), wr[kx]);
                    }
                    x += x_row;
                    wr += k_w;
                }
            }
            out[0] = dw_out_dsp(a_0, m_0, s_0, q, kind);
            out[1] = dw_out_dsp(a_1, m_1, s_1, q, kind);
            out[2] = dw_out_dsp(a_2, m_2, s_2, q, kind);
            out[3] = dw_out_dsp(a_3, m_3, s_3, q, kind);
            out += channels;
        }
    }
}

DW_NOINLINE void dw_group_full_dsp(const mcu_nn_dw_conv_params *p, const dw_quant_dsp *q, const int32_t *bias,
                                   const mcu_nn_dims *input_dims, const int8_t *input, const mcu_nn_dims *filter_dims,
                                   const int8_t *filter, const mcu_nn_dims *output_dims, int8_t *output,
                                   const dw_tile_dsp_shape *tile)
{
    dw_group_dsp(p, q, 0, bias, input_dims, input, filter_dims, filter, output_dims, output, tile);
}

DW_NOINLINE void dw_group_clamp_dsp(const mcu_nn_dw_conv_params *p, const dw_quant_dsp *q, const int32_t *bias,
                                    const mcu_nn_dims *input_dims, const int8_t *input, const mcu_nn_dims *filter_dims,
                                    const int8_t *filter, const mcu_nn_dims *output_dims, int8_t *output,
                                    const dw_tile_dsp_shape *tile)
{
    dw_group_dsp(p, q, 1, bias, input_dims, input, filter_dims, filter, output_dims, output, tile);
}

DW_NOINLINE void dw_group_general_dsp(const mcu_nn_dw_conv_params *p, const dw_quant_dsp *q, const int32_t *bias,
                                      const mcu_nn_dims *input_dims, const int8_t *input, const mcu_nn_dims *filter_dims,
                                      const int8_t *filter, const mcu_nn_dims *output_dims, int8_t *output,
                                      const dw_tile_dsp_shape *tile)
{
    dw_group_dsp(p, q, 2, bias, input_dims, input, filter_dims, filter, output_dims, output, tile);
}

/* The groups of four channels; returns the number of channels done (a multiple of 4). */
static int32_t dw_dsp(const mcu_nn_dw_conv_params *p,
                      const mcu_nn_per_channel_quant_params *quant,
                      const mcu_nn_dims *input_dims,
                      const int8_t *input_data,
                      const mcu_nn_dims *filter_dims,
                      const int8_t *filter_data,
                      const int32_t *bias_data,
                      const mcu_nn_dims *output_dims,
                      int8_t *output_data)
{
    const int32_t channels = input_dims->c;
    const int32_t groups_end = channels & ~3;
    const int32_t in_size = input_dims->h * input_dims->w * channels;
    const int32_t out_size = output_dims->h * output_dims->w * channels;
    int biases_ok = 0;
    const int fast = mcu_requant_dsp_ok(quant->multiplier, quant->shift, NULL, groups_end,
                                        filter_dims->h * filter_dims->w, p->input_offset, p->output_offset,
                                        &biases_ok);
    const int full = p->activation.min == -128 && p->activation.max == 127;
    dw_tile_dsp_shape tile_shape;
    const dw_tile_dsp_shape *tile =
        dw_tile_dsp_shape_of(p, filter_dims, output_dims, &tile_shape) ? &tile_shape : NULL;
    for (int32_t b = 0; b < input_dims->n; b++)
    {
        const int8_t *input = input_data + b * in_size;
        int8_t *output = output_data + b * out_size;
        for (int32_t c = 0; c < groups_end; c += 4)
        {
            const dw_quant_dsp q = {quant->multiplier + c, quant->shift + c, p->output_offset, p->activation.min,
                                    p->activation.max};
            const int32_t *bias = bias_data != NULL ? bias_data + c : NULL;
            /* The short requantization needs |bias| < 2^29 (a dead channel's may be 2^30). */
            const int group_fast = fast && (bias == NULL || (mcu_requant_dsp_bias_ok(bias[0]) &&
                                                             mcu_requant_dsp_bias_ok(bias[1]) &&
                                                             mcu_requant_dsp_bias_ok(bias[2]) &&
                                                             mcu_requant_dsp_bias_ok(bias[3])));
            if (group_fast && full)
            {
                dw_group_full_dsp(p, &q, bias, input_dims, input + c, filter_dims, filter_data + c, output_dims,
                                  output + c, tile);
            }
            else if (group_fast)
            {
                dw_group_clamp_dsp(p, &q, bias, input_dims, input + c, filter_dims, filter_data + c, output_dims,
                                   output + c, tile);
            }
            else
            {
                dw_group_general_dsp(p, &q, bias, input_dims, input + c, filter_dims, filter_data + c, output_dims,
                                     output + c, tile);
            }
        }
    }
    return groups_end;
}
#endif

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
                                    int8_t *output_data)
{
    (void)ctx;
    (void)bias_dims;
    const mcu_nn_dw_conv_params *p = dw_conv_params;
    if (output_dims->c != input_dims->c * p->ch_mult || filter_dims->c != output_dims->c)
    {
        return MCU_NN_ARG_ERROR;
    }
    int32_t done = 0;
#if defined(ARM_MATH_MVEI) || defined(ARM_MATH_DSP)
    /* The optimised paths: ch_mult 1, positive strides and dilations; the DSP path widens
     * x + input_offset to int16 (an int8 zero point's offset always fits) and keeps a group's
     * weights for up to DW_MAX_TAPS taps. */
    if (p->ch_mult == 1 && p->dilation.h > 0 && p->dilation.w > 0 && p->stride.h > 0 && p->stride.w > 0 &&
        p->input_offset >= -256 && p->input_offset <= 256)
    {
#if defined(ARM_MATH_MVEI)
        if (output_dims->h * output_dims->w <= DW_SMALL_OUTPUT)
        {
            done = dw_small_mve(p, quant_params, input_dims, input_data, filter_dims, filter_data, bias_data,
                                output_dims, output_data);
        }
        else
        {
            dw_mve(p, quant_params, input_dims, input_data, filter_dims, filter_data, bias_data, output_dims,
                   output_data);
            done = output_dims->c;
        }
#else
        if (filter_dims->h * filter_dims->w <= DW_MAX_TAPS)
        {
            done = dw_dsp(p, quant_params, input_dims, input_data, filter_dims, filter_data, bias_data, output_dims,
                          output_data);
        }
#endif
    }
#endif
    if (done < output_dims->c)
    {
        dw_portable(p, quant_params, input_dims, input_data, filter_dims, filter_data, bias_data, output_dims,
                    output_data, done, output_dims->c);
    }
    return MCU_NN_SUCCESS;
}
