/*
 * int8 2D convolution (TFLite CONV_2D, per-channel requantization).
 *
 * Portable C: the receptive field of two output pixels is gathered into the
 * scratch buffer as int16 (input_offset already added, padding as 0), then
 * every filter row is dotted with both columns, so each weight is loaded
 * once per pixel pair and the inner loop has no bounds checks.
 *
 * ARM_MATH_MVEI (Helium), chosen from the arguments:
 * - 1x1 filter without padding (any stride): no im2col. One output channel at a time over
 *   all output pixels, four pixels per step read straight from the input (a matrix multiply
 *   over H x W pixels; with stride 1 the pixels are consecutive). The channel's constant
 *   bias + input_offset * sum(filter row), multiplier and shift are taken once per channel.
 * - any other filter: four output pixels at a time; their receptive fields are gathered as
 *   raw int8 (padding as -input_offset, so that x + input_offset is 0 there; each in-bounds
 *   run of taps of a filter row is one copy) into the scratch, then every filter row is
 *   dotted with the four columns, input_offset * sum(filter row) added afterwards.
 *   Both dot the rows in a tail-predicated low-overhead loop (WLSTP/LETP: 16 columns per
 *   step, the last step predicated, no separate tail) and requantize the four pixels of one
 *   channel as one vector (bit-exact with the scalar code).
 * ARM_MATH_DSP (SMLAD): two output pixels at a time, their columns widened to int16 with
 * input_offset added and interleaved in the (word-aligned) scratch (per four columns: pixel
 * 0's (0, 2) and (1, 3) pairs, then pixel 1's), the order of __sxtb16(w) and __sxtb16(w ROR
 * 8) of the four int8 weights that multiply them; two output channels per step (an
 * unrolled SMLAD loop), so each loaded weight word serves two pixels and each column word
 * two channels. A 1x1 filter without padding widens the input pixels directly (no im2col,
 * no bounds checks). The requantization is inline: the short exact form mcu_requantize_dsp
 * when the layer's parameters allow it (real layers do), the wide form for a channel pair
 * whose bias is too large for it (a dead channel's), the general one otherwise.
 * Only the order of the integer sums changes.
 */
#include <string.h>

#include "mcu_nn_support.h"

#if defined(__GNUC__)
#define CONV_INLINE static inline __attribute__((always_inline))
#else
#define CONV_INLINE static inline
#endif

int32_t mcu_convolve_s8_get_buffer_size(const mcu_nn_dims *input_dims, const mcu_nn_dims *filter_dims)
{
    return 2 * input_dims->c * filter_dims->h * filter_dims->w * (int32_t)sizeof(int16_t);
}

/* A 1x1 filter without padding: output pixel (y, x) reads input pixel (y * stride_h,
 * x * stride_w) alone, always inside the input. */
static int32_t is_1x1_unpadded(const mcu_nn_dims *input_dims, const mcu_nn_dims *filter_dims,
                               const mcu_nn_conv_params *p, const mcu_nn_dims *output_dims)
{
    return filter_dims->h == 1 && filter_dims->w == 1 && p->padding.h == 0 && p->padding.w == 0 &&
           p->stride.h > 0 && p->stride.w > 0 && (output_dims->h - 1) * p->stride.h < input_dims->h &&
           (output_dims->w - 1) * p->stride.w < input_dims->w;
}

#if !defined(ARM_MATH_DSP) || defined(ARM_MATH_MVEI)
/* Gathers the receptive field of output pixel (out_y, out_x) of one batch into col. */
static void im2col_s16(const int8_t *input,
                       const mcu_nn_dims *input_dims,
                       const mcu_nn_dims *filter_dims,
                       const mcu_nn_conv_params *p,
                       int32_t out_y,
                       int32_t out_x,
                       int16_t *col)
{
    const int32_t channels = input_dims->c;
    const int32_t base_y = out_y * p->stride.h - p->padding.h;
    const int32_t base_x = out_x * p->stride.w - p->padding.w;

    for (int32_t ky = 0; ky < filter_dims->h; ky++)
    {
        const int32_t in_y = base_y + ky * p->dilation.h;
        for (int32_t kx = 0; kx < filter_dims->w; kx++)
        {
            const int32_t in_x = base_x + kx * p->dilation.w;
            if (in_y < 0 || in_y >= input_dims->h || in_x < 0 || in_x >= input_dims->w)
            {
                memset(col, 0, (size_t)channels * sizeof(int16_t));
            }
            else
            {
                const int8_t *src = input + (in_y * input_dims->w + in_x) * channels;
                for (int32_t c = 0; c < channels; c++)
                {
                    col[c] = (int16_t)(src[c] + p->input_offset);
                }
            }
            col += channels;
        }
    }
}
#endif

/* The output value of one channel: requantized, then (fused residual ADD) added to the
 * residual value at the same index, which is read before the output overwrites it. */
static inline int8_t conv_output(int32_t acc, int32_t oc, const mcu_nn_conv_params *p,
                                 const mcu_nn_per_channel_quant_params *q, const mcu_add_quant *add,
                                 const int8_t *residual)
{
    const int8_t value = mcu_requantize_s8(acc, q->multiplier[oc], q->shift[oc], p->output_offset,
                                           p->activation.min, p->activation.max);
    return add != NULL ? mcu_add_one_s8(value, residual[oc], add) : value;
}

#if !defined(ARM_MATH_DSP) || defined(ARM_MATH_MVEI)
/* Writes all output channels of one or two pixels (out_1 may be NULL) from their im2col
 * columns; res_0/res_1 are the pixels' residuals when add != NULL. */
static void conv_columns(const int16_t *col_0,
                         const int16_t *col_1,
                         int32_t col_len,
                         const int8_t *filter,
                         const int32_t *bias,
                         const mcu_nn_conv_params *p,
                         const mcu_nn_per_channel_quant_params *q,
                         const mcu_add_quant *add,
                         const int8_t *res_0,
                         const int8_t *res_1,
                         int32_t out_ch,
                         int8_t *out_0,
                         int8_t *out_1)
{
    for (int32_t oc = 0; oc < out_ch; oc++)
    {
        const int8_t *w = filter + oc * col_len;
        int32_t acc_0 = bias != NULL ? bias[oc] : 0;
        int32_t acc_1 = acc_0;
        if (out_1 != NULL)
        {
            for (int32_t i = 0; i < col_len; i++)
            {
                acc_0 += col_0[i] * w[i];
                acc_1 += col_1[i] * w[i];
            }
            out_1[oc] = conv_output(acc_1, oc, p, q, add, res_1);
        }
        else
        {
            for (int32_t i = 0; i < col_len; i++)
            {
                acc_0 += col_0[i] * w[i];
            }
        }
        out_0[oc] = conv_output(acc_0, oc, p, q, add, res_0);
    }
}
#endif

/* ==================================================================== Helium */

#if defined(ARM_MATH_MVEI)
/* n bytes from src to dst, 16 per step of a tail-predicated loop. */
static inline void copy_s8_mve(int8_t *dst, const int8_t *src, int32_t n)
{
    __asm__ volatile("   wlstp.8  lr, %[n], 1f\n"
                     "2: vldrb.8  q0, [%[src]], #16\n"
                     "   vstrb.8  q0, [%[dst]], #16\n"
                     "   letp     lr, 2b\n"
                     "1:\n"
                     : [src] "+r"(src), [dst] "+r"(dst)
                     : [n] "r"(n)
                     : "q0", "lr", "memory");
}

/* n bytes of value at dst, 16 per step of a tail-predicated loop. */
static inline void fill_s8_mve(int8_t *dst, int8x16_t value, int32_t n)
{
    __asm__ volatile("   wlstp.8  lr, %[n], 1f\n"
                     "2: vstrb.8  %q[v], [%[dst]], #16\n"
                     "   letp     lr, 2b\n"
                     "1:\n"
                     : [dst] "+r"(dst)
                     : [n] "r"(n), [v] "w"(value)
                     : "lr", "memory");
}

/* Gathers the receptive field of output pixel (out_y, out_x) as raw int8 into col; padded
 * taps hold pad (= -input_offset). With dilation_w == 1 the in-bounds taps of one filter
 * row are consecutive in the input and copied at once. */
static void im2col_s8(const int8_t *input,
                      const mcu_nn_dims *input_dims,
                      const mcu_nn_dims *filter_dims,
                      const mcu_nn_conv_params *p,
                      int8x16_t pad,
                      int32_t out_y,
                      int32_t out_x,
                      int8_t *col)
{
    const int32_t channels = input_dims->c;
    const int32_t k_w = filter_dims->w;
    const int32_t row_bytes = k_w * channels;
    const int32_t base_y = out_y * p->stride.h - p->padding.h;
    const int32_t base_x = out_x * p->stride.w - p->padding.w;
    /* The filter columns [kx_start, kx_end) that fall inside the input (dilation 1). */
    int32_t kx_start = base_x < 0 ? -base_x : 0;
    int32_t kx_end = input_dims->w - base_x < k_w ? input_dims->w - base_x : k_w;
    kx_start = kx_start < k_w ? kx_start : k_w;
    kx_end = kx_end > kx_start ? kx_end : kx_start;

    const int32_t inside = kx_start == 0 && kx_end == k_w;
    for (int32_t ky = 0; ky < filter_dims->h; ky++)
    {
        const int32_t in_y = base_y + ky * p->dilation.h;
        if (in_y < 0 || in_y >= input_dims->h)
        {
            fill_s8_mve(col, pad, row_bytes);
        }
        else if (p->dilation.w == 1)
        {
            const int8_t *src = input + (in_y * input_dims->w + base_x + kx_start) * channels;
            if (inside)
            {
                copy_s8_mve(col, src, row_bytes);
            }
            else
            {
                if (kx_start > 0)
                {
                    fill_s8_mve(col, pad, kx_start * channels);
                }
                copy_s8_mve(col + kx_start * channels, src, (kx_end - kx_start) * channels);
                if (kx_end < k_w)
                {
                    fill_s8_mve(col + kx_end * channels, pad, (k_w - kx_end) * channels);
                }
            }
        }
        else
        {
            for (int32_t kx = 0; kx < k_w; kx++)
            {
                const int32_t in_x = base_x + kx * p->dilation.w;
                if (in_x < 0 || in_x >= input_dims->w)
                {
                    fill_s8_mve(col + kx * channels, pad, channels);
                }
                else
                {
                    copy_s8_mve(col + kx * channels, input + (in_y * input_dims->w + in_x) * channels, channels);
                }
            }
        }
        col += row_bytes;
    }
}

/* a_k += sum of w[i] * x_k[i] over i < n for the four columns x_0..x_3, and sum += sum of
 * w[i]: 16 columns per step of a tail-predicated loop (the last step's lanes past n are
 * inactive), so a column of any length needs no separate tail. */
static inline void dot4_sum_mve(const int8_t *w, const int8_t *x_0, const int8_t *x_1, const int8_t *x_2,
                                const int8_t *x_3, int32_t n, int32_t *a_0, int32_t *a_1, int32_t *a_2,
                                int32_t *a_3, int32_t *sum)
{
    int32_t r_0 = *a_0, r_1 = *a_1, r_2 = *a_2, r_3 = *a_3, s = *sum;
    __asm__ volatile("   wlstp.8      lr, %[n], 1f\n"
                     "2: vldrb.8      q0, [%[w]], #16\n"
                     "   vaddva.s8    %[s], q0\n"
                     "   vldrb.8      q1, [%[x0]], #16\n"
                     "   vmladava.s8  %[r0], q0, q1\n"
                     "   vldrb.8      q1, [%[x1]], #16\n"
                     "   vmladava.s8  %[r1], q0, q1\n"
                     "   vldrb.8      q1, [%[x2]], #16\n"
                     "   vmladava.s8  %[r2], q0, q1\n"
                     "   vldrb.8      q1, [%[x3]], #16\n"
                     "   vmladava.s8  %[r3], q0, q1\n"
                     "   letp         lr, 2b\n"
                     "1:\n"
                     : [r0] "+Te"(r_0), [r1] "+Te"(r_1), [r2] "+Te"(r_2), [r3] "+Te"(r_3), [s] "+Te"(s),
                       [w] "+r"(w), [x0] "+r"(x_0), [x1] "+r"(x_1), [x2] "+r"(x_2), [x3] "+r"(x_3)
                     : [n] "r"(n)
                     : "q0", "q1", "lr", "memory");
    *a_0 = r_0;
    *a_1 = r_1;
    *a_2 = r_2;
    *a_3 = r_3;
    *sum = s;
}

/* dot4_sum_mve without the sum of w. */
static inline void dot4_mve(const int8_t *w, const int8_t *x_0, const int8_t *x_1, const int8_t *x_2,
                            const int8_t *x_3, int32_t n, int32_t *a_0, int32_t *a_1, int32_t *a_2, int32_t *a_3)
{
    int32_t r_0 = *a_0, r_1 = *a_1, r_2 = *a_2, r_3 = *a_3;
    __asm__ volatile("   wlstp.8      lr, %[n], 1f\n"
                     "2: vldrb.8      q0, [%[w]], #16\n"
                     "   vldrb.8      q1, [%[x0]], #16\n"
                     "   vmladava.s8  %[r0], q0, q1\n"
                     "   vldrb.8      q1, [%[x1]], #16\n"
                     "   vmladava.s8  %[r1], q0, q1\n"
                     "   vldrb.8      q1, [%[x2]], #16\n"
                     "   vmladava.s8  %[r2], q0, q1\n"
                     "   vldrb.8      q1, [%[x3]], #16\n"
                     "   vmladava.s8  %[r3], q0, q1\n"
                     "   letp         lr, 2b\n"
                     "1:\n"
                     : [r0] "+Te"(r_0), [r1] "+Te"(r_1), [r2] "+Te"(r_2), [r3] "+Te"(r_3), [w] "+r"(w),
                       [x0] "+r"(x_0), [x1] "+r"(x_1), [x2] "+r"(x_2), [x3] "+r"(x_3)
                     : [n] "r"(n)
                     : "q0", "q1", "lr", "memory");
    *a_0 = r_0;
    *a_1 = r_1;
    *a_2 = r_2;
    *a_3 = r_3;
}

/* The sum of the n int8 values at w. */
static inline int32_t sum_s8_mve(const int8_t *w, int32_t n)
{
    int32_t s = 0;
    __asm__ volatile("   wlstp.8      lr, %[n], 1f\n"
                     "2: vldrb.8      q0, [%[w]], #16\n"
                     "   vaddva.s8    %[s], q0\n"
                     "   letp         lr, 2b\n"
                     "1:\n"
                     : [s] "+Te"(s), [w] "+r"(w)
                     : [n] "r"(n)
                     : "q0", "lr", "memory");
    return s;
}

/* The requantization and clamp of one layer on the Helium paths. */
typedef struct
{
    const int32_t *multiplier;
    const int32_t *shift;
    int32x4_t out_offset;
    int32x4_t act_min;
    int32x4_t act_max;
    const mcu_add_quant *add;
} conv_out_mve;

/* Four int32 as one vector: two VMOVs of a pair of GPRs into two lanes each. */
static inline int32x4_t vec4(int32_t a_0, int32_t a_1, int32_t a_2, int32_t a_3)
{
    int32x4_t v;
    __asm__("vmov %q0[2], %q0[0], %1, %3\n\t"
            "vmov %q0[3], %q0[1], %2, %4"
            : "=w"(v)
            : "r"(a_0), "r"(a_1), "r"(a_2), "r"(a_3));
    return v;
}

/* The four pixels' sums of one channel (bias and offset terms included) requantized with
 * the channel's multiplier and shift (right: shift <= -1, the common case), offset and
 * clamped; four int32 lanes. */
CONV_INLINE int32x4_t requant4_mve(int32x4_t acc, int32_t multiplier, int32_t shift, int right, const conv_out_mve *o)
{
    int32x4_t r = right ? mcu_requantize_mve_right_n(acc, multiplier, shift) : mcu_requantize_mve_n(acc, multiplier, shift);
    r = vaddq_s32(r, o->out_offset);
    r = vmaxq_s32(r, o->act_min);
    return vminq_s32(r, o->act_max);
}

/* Stores the n_px values of r at out[k * px_stride] (k < n_px); with a fused ADD each is
 * added to the residual at the same index first, read before the output overwrites it. */
static void __attribute__((noinline)) store4_add_mve(int32x4_t r, int32_t n_px, int32_t px_stride,
                                                     const mcu_add_quant *add, const int8_t *res, int8_t *out)
{
    int32_t v[4];
    vstrwq_s32(v, r);
    for (int32_t k = 0; k < n_px; k++)
    {
        out[k * px_stride] = add != NULL ? mcu_add_one_s8((int8_t)v[k], res[k * px_stride], add) : (int8_t)v[k];
    }
}

/* All output channels of n_px (1..4) consecutive pixels from their int8 columns
 * cols[0..n_px-1]; out and res (when add != NULL) point at the first pixel. */
static void __attribute__((noinline)) conv_columns_mve(const int8_t *const cols[4],
                                                       int32_t n_px,
                                                       int32_t col_len,
                                                       const int8_t *filter,
                                                       const int32_t *bias,
                                                       int32_t input_offset,
                                                       const conv_out_mve *out_params,
                                                       const int8_t *res,
                                                       int32_t out_ch,
                                                       int8_t *out)
{
    const conv_out_mve o = *out_params;
    /* Missing pixels reuse the first column; their sums are dropped. */
    const int8_t *c0 = cols[0];
    const int8_t *c1 = n_px > 1 ? cols[1] : c0;
    const int8_t *c2 = n_px > 2 ? cols[2] : c0;
    const int8_t *c3 = n_px > 3 ? cols[3] : c0;
    /* Byte offsets of the n_px pixels' outputs of one channel, and the lanes that exist. */
    const uint32x4_t px_offsets = vmulq_n_u32(vidupq_n_u32(0, 1), (uint32_t)out_ch);
    const mve_pred16_t px_lanes = vctp32q((uint32_t)n_px);
    const int8_t *w = filter;

    for (int32_t oc = 0; oc < out_ch; oc++)
    {
        const int32_t b = bias != NULL ? bias[oc] : 0;
        int32_t a0 = b, a1 = b, a2 = b, a3 = b, sum_w = 0;
        dot4_sum_mve(w, c0, c1, c2, c3, col_len, &a0, &a1, &a2, &a3, &sum_w);
        w += col_len;
        const int32_t shift = o.shift[oc];
        const int32x4_t acc = vaddq_n_s32(vec4(a0, a1, a2, a3), input_offset * sum_w);
        const int32x4_t r = shift < 0 ? requant4_mve(acc, o.multiplier[oc], shift, 1, &o)
                                      : requant4_mve(acc, o.multiplier[oc], shift, 0, &o);
        if (o.add == NULL)
        {
            vstrbq_scatter_offset_p_s32(out + oc, px_offsets, r, px_lanes);
        }
        else
        {
            store4_add_mve(r, n_px, out_ch, o.add, res + oc, out + oc);
        }
    }
}

/* The shape of a 1x1 unpadded convolution's pixels: segments of seg_len output pixels
 * px_step input bytes apart (the whole image with stride 1, else one output row), the
 * segments seg_step input bytes apart. */
typedef struct
{
    int32_t channels, out_ch, n_seg, seg_len, px_step, seg_step;
} conv_1x1_shape;

/* All output pixels of one channel of a 1x1 unpadded convolution: four per step, each
 * dotted with the filter row w straight from the input; base = bias + input_offset *
 * sum(w). right, add_free: constants of each copy (shift <= -1; no fused ADD). */
CONV_INLINE void conv_1x1_channel_body(const int8_t *input, const conv_1x1_shape *sh, const int8_t *w, int32_t base,
                                       int32_t multiplier, int32_t shift, int right, int add_free,
                                       const conv_out_mve *o, const int8_t *res, int8_t *out)
{
    const int32_t channels = sh->channels;
    const int32_t out_ch = sh->out_ch;
    const int32_t px_step = sh->px_step;
    const uint32x4_t px_offsets = vmulq_n_u32(vidupq_n_u32(0, 1), (uint32_t)out_ch);
    for (int32_t s = 0; s < sh->n_seg; s++)
    {
        const int8_t *x = input + s * sh->seg_step;
        const int8_t *x_end = x + (sh->seg_len & ~3) * px_step;
        for (; x != x_end; x += 4 * px_step)
        {
            int32_t a0 = base, a1 = base, a2 = base, a3 = base;
            dot4_mve(w, x, x + px_step, x + 2 * px_step, x + 3 * px_step, channels, &a0, &a1, &a2, &a3);
            const int32x4_t r = requant4_mve(vec4(a0, a1, a2, a3), multiplier, shift, right, o);
            if (add_free)
            {
                vstrbq_scatter_offset_s32(out, px_offsets, r);
            }
            else
            {
                store4_add_mve(r, 4, out_ch, o->add, res, out);
                res += 4 * out_ch;
            }
            out += 4 * out_ch;
        }
        const int32_t n_px = sh->seg_len & 3;
        if (n_px != 0)
        {
            /* One to three pixels left: the missing ones repeat the first, their sums dropped. */
            const int8_t *x1 = n_px > 1 ? x + px_step : x;
            const int8_t *x2 = n_px > 2 ? x + 2 * px_step : x;
            int32_t a0 = base, a1 = base, a2 = base, a3 = base;
            dot4_mve(w, x, x1, x2, x, channels, &a0, &a1, &a2, &a3);
            const int32x4_t r = requant4_mve(vec4(a0, a1, a2, a3), multiplier, shift, right, o);
            if (add_free)
            {
                vstrbq_scatter_offset_p_s32(out, px_offsets, r, vctp32q((uint32_t)n_px));
            }
            else
            {
                store4_add_mve(r, n_px, out_ch, o->add, res, out);
                res += n_px * out_ch;
            }
            out += n_px * out_ch;
        }
    }
}

static void __attribute__((noinline)) conv_1x1_channel_right(const int8_t *input, const conv_1x1_shape *sh,
                                                             const int8_t *w, int32_t base, int32_t multiplier,
                                                             int32_t shift, const conv_out_mve *out_params, int8_t *out)
{
    const conv_out_mve o = *out_params;
    conv_1x1_channel_body(input, sh, w, base, multiplier, shift, 1, 1, &o, NULL, out);
}

static void __attribute__((noinline)) conv_1x1_channel_any(const int8_t *input, const conv_1x1_shape *sh,
                                                           const int8_t *w, int32_t base, int32_t multiplier,
                                                           int32_t shift, const conv_out_mve *out_params,
                                                           const int8_t *res, int8_t *out)
{
    const conv_out_mve o = *out_params;
    conv_1x1_channel_body(input, sh, w, base, multiplier, shift, 0, 0, &o, res, out);
}

/* 1x1 convolution without padding of one batch, one output channel at a time over all
 * output pixels (a matrix multiply without im2col). */
static void conv_1x1_mve(const int8_t *input,
                         const mcu_nn_dims *input_dims,
                         const mcu_nn_conv_params *p,
                         const int8_t *filter,
                         const int32_t *bias,
                         const conv_out_mve *o,
                         const int8_t *res,
                         const mcu_nn_dims *output_dims,
                         int8_t *output)
{
    const int32_t channels = input_dims->c;
    /* With stride 1 both ways the output pixels read consecutive input pixels. */
    const int32_t contiguous = p->stride.w == 1 && p->stride.h == 1 && output_dims->w == input_dims->w;
    const conv_1x1_shape sh = {channels, output_dims->c, contiguous ? 1 : output_dims->h,
                               contiguous ? output_dims->h * output_dims->w : output_dims->w, p->stride.w * channels,
                               p->stride.h * input_dims->w * channels};
    const int8_t *w = filter;
    for (int32_t oc = 0; oc < sh.out_ch; oc++)
    {
        const int32_t base = (bias != NULL ? bias[oc] : 0) + p->input_offset * sum_s8_mve(w, channels);
        const int32_t shift = o->shift[oc];
        if (shift < 0 && o->add == NULL)
        {
            conv_1x1_channel_right(input, &sh, w, base, o->multiplier[oc], shift, o, output + oc);
        }
        else
        {
            conv_1x1_channel_any(input, &sh, w, base, o->multiplier[oc], shift, o, res != NULL ? res + oc : NULL,
                                 output + oc);
        }
        w += channels;
    }
}
#endif

/* ==================================================================== DSP */

#if defined(ARM_MATH_DSP) && !defined(ARM_MATH_MVEI)
/*
 * Column layout for a pair of output pixels, as 32-bit words of two int16 (input_offset
 * added, padding 0) in the word-aligned scratch: each whole group of four columns is four
 * words, pixel 0's columns (0, 2) and (1, 3), then pixel 1's; each of the last col_len % 4
 * columns is one word (pixel 0, pixel 1).
 */

/* One pixel's columns of n4 whole groups from the int8 values at src (NULL: padding),
 * into every other pair of words from dst. */
static void widen_groups_dsp(int32_t *dst, const int8_t *src, int32_t n4, int32_t offset_s16x2)
{
    if (src == NULL)
    {
        for (; n4 > 0; n4--)
        {
            dst[0] = 0;
            dst[1] = 0;
            dst += 4;
        }
        return;
    }
    for (; n4 > 0; n4--)
    {
        const int32_t x = mcu_read_word(src);
        dst[0] = __sxtab16(offset_s16x2, x);
        dst[1] = mcu_sxtab16_ror8(offset_s16x2, x);
        src += 4;
        dst += 4;
    }
}

/* The columns [i, i + n) of both pixels one by one (any alignment to the groups): src_k
 * (NULL: padding) holds pixel k's values of those columns. */
static void widen_elements_dsp(int32_t *col, int32_t col_len, int32_t i, int32_t n, const int8_t *src_0,
                               const int8_t *src_1, int32_t input_offset)
{
    const int32_t main_len = col_len & ~3;
    for (int32_t j = 0; j < n; j++, i++)
    {
        const int32_t v0 = src_0 != NULL ? src_0[j] + input_offset : 0;
        const int32_t v1 = src_1 != NULL ? src_1[j] + input_offset : 0;
        if (i < main_len)
        {
            /* Column i is the low (i & 2 == 0) or high half of word (i & 1) of its pixel's two. */
            int32_t *g = col + (i & ~3) + (i & 1);
            const int32_t high = (i & 2) ? 16 : 0;
            const uint32_t keep = 0xFFFF0000u >> high;
            g[0] = (int32_t)(((uint32_t)g[0] & keep) | (((uint32_t)v0 & 0xFFFFu) << high));
            g[2] = (int32_t)(((uint32_t)g[2] & keep) | (((uint32_t)v1 & 0xFFFFu) << high));
        }
        else
        {
            col[i] = mcu_pack_s16x2(v0, v1);
        }
    }
}

#define DSP_PLAIN_COLUMN 128 /* the longest column staged on the stack as plain int16 */

/* im2col_s16 for few channels (1 to 3, a first layer's): a filter row outside the input is
 * zeros at once, each tap's channels unrolled. */
static void im2col_small_dsp(const int8_t *input, const mcu_nn_dims *input_dims, const mcu_nn_dims *filter_dims,
                             const mcu_nn_conv_params *p, int32_t out_y, int32_t out_x, int16_t *col)
{
    const int32_t channels = input_dims->c;
    const int32_t offset = p->input_offset;
    const int32_t in_w = input_dims->w;
    const int32_t k_w = filter_dims->w;
    const int32_t base_y = out_y * p->stride.h - p->padding.h;
    const int32_t base_x = out_x * p->stride.w - p->padding.w;
    for (int32_t ky = 0; ky < filter_dims->h; ky++)
    {
        const int32_t in_y = base_y + ky * p->dilation.h;
        if (in_y < 0 || in_y >= input_dims->h)
        {
            memset(col, 0, (size_t)(k_w * channels) * sizeof(int16_t));
            col += k_w * channels;
            continue;
        }
        const int8_t *row = input + in_y * in_w * channels;
        for (int32_t kx = 0; kx < k_w; kx++, col += channels)
        {
            const int32_t in_x = base_x + kx * p->dilation.w;
            if (in_x < 0 || in_x >= in_w)
            {
                for (int32_t c = 0; c < channels; c++)
                {
                    col[c] = 0;
                }
                continue;
            }
            const int8_t *src = row + in_x * channels;
            switch (channels)
            {
            case 3:
                col[2] = (int16_t)(src[2] + offset);
                /* fall through */
            case 2:
                col[1] = (int16_t)(src[1] + offset);
                /* fall through */
            case 1:
                col[0] = (int16_t)(src[0] + offset);
                break;
            default:
                for (int32_t c = 0; c < channels; c++)
                {
                    col[c] = (int16_t)(src[c] + offset);
                }
            }
        }
    }
}

/* The interleaved columns of output pixels (y_0, x_0) and (y_1, x_1) of one batch. */
static void im2col_pair_dsp(const int8_t *input,
                            const mcu_nn_dims *input_dims,
                            const mcu_nn_dims *filter_dims,
                            const mcu_nn_conv_params *p,
                            int32_t y_0,
                            int32_t x_0,
                            int32_t y_1,
                            int32_t x_1,
                            int32_t *col)
{
    const int32_t channels = input_dims->c;
    const int32_t col_len = channels * filter_dims->h * filter_dims->w;
    const int32_t offset_s16x2 = mcu_pack_s16x2(p->input_offset, p->input_offset);
    const int32_t by_groups = (channels & 3) == 0;
    if (!by_groups && col_len <= DSP_PLAIN_COLUMN)
    {
        /* Taps not aligned to the groups of four (1 or 3 channels, a first layer's): each
         * pixel's plain int16 column first, then the groups interleaved two words at a time. */
        int32_t plain_0[DSP_PLAIN_COLUMN / 2 + 2], plain_1[DSP_PLAIN_COLUMN / 2 + 2];
        int16_t *p_0 = (int16_t *)(void *)plain_0, *p_1 = (int16_t *)(void *)plain_1;
        im2col_small_dsp(input, input_dims, filter_dims, p, y_0, x_0, p_0);
        im2col_small_dsp(input, input_dims, filter_dims, p, y_1, x_1, p_1);
        const int32_t n4 = col_len >> 2;
        for (int32_t g = 0; g < n4; g++)
        {
            const int32_t a_01 = mcu_read_word(p_0 + 4 * g), a_23 = mcu_read_word(p_0 + 4 * g + 2);
            const int32_t b_01 = mcu_read_word(p_1 + 4 * g), b_23 = mcu_read_word(p_1 + 4 * g + 2);
            /* (0, 2) and (1, 3) of each pixel: PKHBT and PKHTB. */
            col[4 * g] = (int32_t)(((uint32_t)a_01 & 0xFFFFu) | ((uint32_t)a_23 << 16));
            col[4 * g + 1] = (int32_t)(((uint32_t)a_01 >> 16) | ((uint32_t)a_23 & 0xFFFF0000u));
            col[4 * g + 2] = (int32_t)(((uint32_t)b_01 & 0xFFFFu) | ((uint32_t)b_23 << 16));
            col[4 * g + 3] = (int32_t)(((uint32_t)b_01 >> 16) | ((uint32_t)b_23 & 0xFFFF0000u));
        }
        for (int32_t j = n4 * 4; j < col_len; j++)
        {
            col[j] = mcu_pack_s16x2(p_0[j], p_1[j]);
        }
        return;
    }
    const int32_t base_y[2] = {y_0 * p->stride.h - p->padding.h, y_1 * p->stride.h - p->padding.h};
    const int32_t base_x[2] = {x_0 * p->stride.w - p->padding.w, x_1 * p->stride.w - p->padding.w};
    int32_t i = 0;
    for (int32_t ky = 0; ky < filter_dims->h; ky++)
    {
        for (int32_t kx = 0; kx < filter_dims->w; kx++)
        {
            const int8_t *src[2];
            for (int32_t k = 0; k < 2; k++)
            {
                const int32_t in_y = base_y[k] + ky * p->dilation.h;
                const int32_t in_x = base_x[k] + kx * p->dilation.w;
                src[k] = in_y < 0 || in_y >= input_dims->h || in_x < 0 || in_x >= input_dims->w
                             ? NULL
                             : input + (in_y * input_dims->w + in_x) * channels;
            }
            if (by_groups)
            {
                widen_groups_dsp(col + i, src[0], channels >> 2, offset_s16x2);
                widen_groups_dsp(col + i + 2, src[1], channels >> 2, offset_s16x2);
            }
            else
            {
                widen_elements_dsp(col, col_len, i, channels, src[0], src[1], p->input_offset);
            }
            i += channels;
        }
    }
}

/* The requantization of one layer on the DSP path. */
typedef struct
{
    const int32_t *multiplier;
    const int32_t *shift;
    int32_t out_offset, act_min, act_max;
    const mcu_add_quant *add;
    int32_t fast;      /* mcu_requant_dsp_ok, and no fused ADD */
    int32_t biases_ok; /* every bias fits the short form (else checked per channel pair) */
} conv_out_dsp;

/* The output values of channels oc, oc + 1 (pair: else oc alone) of one or two pixels
 * (out_1 NULL: one) the general way: mcu_requantize_s8, then the fused ADD if any. */
static void __attribute__((noinline)) out_values_dsp(const int32_t acc[4], int32_t oc, int32_t pair,
                                                     const conv_out_dsp *o, const int8_t *res_0,
                                                     const int8_t *res_1, int8_t *out_0, int8_t *out_1)
{
    for (int32_t k = 0; k < 2; k++)
    {
        int8_t *out = k == 0 ? out_0 : out_1;
        const int8_t *res = k == 0 ? res_0 : res_1;
        for (int32_t j = 0; j < 1 + pair && out != NULL; j++)
        {
            const int8_t v = mcu_requantize_s8(acc[2 * k + j], o->multiplier[oc + j], o->shift[oc + j], o->out_offset,
                                               o->act_min, o->act_max);
            out[oc + j] = o->add != NULL ? mcu_add_one_s8(v, res[oc + j], o->add) : v;
        }
    }
}

/* One group of four columns of two channels (weights at *w_a, *w_b) and two pixels (the
 * four words at *x): SXTB16 splits each weight word into the (0, 2) and (1, 3) pairs that
 * SMLAD pairs with the pixels' words. */
#define MAC_2X2_GROUP                                                                                                  \
    "   ldr     %[t0], [%[wa]], #4\n"                                                                                  \
    "   ldrd    %[x00], %[x01], [%[x]], #16\n"                                                                         \
    "   ldrd    %[x10], %[x11], [%[x], #-8]\n"                                                                         \
    "   sxtb16  %[t1], %[t0]\n"                                                                                        \
    "   sxtb16  %[t0], %[t0], ror #8\n"                                                                                \
    "   smlad   %[a0], %[t1], %[x00], %[a0]\n"                                                                         \
    "   smlad   %[a0], %[t0], %[x01], %[a0]\n"                                                                         \
    "   smlad   %[a1], %[t1], %[x10], %[a1]\n"                                                                         \
    "   smlad   %[a1], %[t0], %[x11], %[a1]\n"                                                                         \
    "   ldr     %[t0], [%[wb]], #4\n"                                                                                  \
    "   sxtb16  %[t1], %[t0]\n"                                                                                        \
    "   sxtb16  %[t0], %[t0], ror #8\n"                                                                                \
    "   smlad   %[b0], %[t1], %[x00], %[b0]\n"                                                                         \
    "   smlad   %[b0], %[t0], %[x01], %[b0]\n"                                                                         \
    "   smlad   %[b1], %[t1], %[x10], %[b1]\n"                                                                         \
    "   smlad   %[b1], %[t0], %[x11], %[b1]\n"

/* The sums of two channels x two pixels over the whole groups of the columns [x, x_end):
 * one group first when their number is odd, then two per loop step. Advances *w_a, *w_b. */
CONV_INLINE void mac_2x2_dsp(const int8_t **w_a, const int8_t **w_b, const int32_t *x, const int32_t *x_end,
                             int32_t *a_0, int32_t *b_0, int32_t *a_1, int32_t *b_1)
{
    const int8_t *wa = *w_a, *wb = *w_b;
    int32_t r_a0 = *a_0, r_b0 = *b_0, r_a1 = *a_1, r_b1 = *b_1;
    int32_t t0, t1, x00, x01, x10, x11;
    if (((x_end - x) & 4) != 0)
    {
        __asm__(MAC_2X2_GROUP
                : [a0] "+r"(r_a0), [b0] "+r"(r_b0), [a1] "+r"(r_a1), [b1] "+r"(r_b1), [wa] "+r"(wa), [wb] "+r"(wb),
                  [x] "+r"(x), [t0] "=&r"(t0), [t1] "=&r"(t1), [x00] "=&r"(x00), [x01] "=&r"(x01), [x10] "=&r"(x10),
                  [x11] "=&r"(x11)
                : "m"(*(const int32_t(*)[4])x), "m"(*(const int8_t(*)[4])wa), "m"(*(const int8_t(*)[4])wb));
    }
    if (x != x_end)
    {
        __asm__("1:\n" MAC_2X2_GROUP MAC_2X2_GROUP
                "   cmp     %[x], %[end]\n"
                "   bne     1b\n"
                : [a0] "+r"(r_a0), [b0] "+r"(r_b0), [a1] "+r"(r_a1), [b1] "+r"(r_b1), [wa] "+r"(wa), [wb] "+r"(wb),
                  [x] "+r"(x), [t0] "=&r"(t0), [t1] "=&r"(t1), [x00] "=&r"(x00), [x01] "=&r"(x01), [x10] "=&r"(x10),
                  [x11] "=&r"(x11)
                : [end] "r"(x_end)
                : "cc", "memory");
    }
    *w_a = wa;
    *w_b = wb;
    *a_0 = r_a0;
    *b_0 = r_b0;
    *a_1 = r_a1;
    *b_1 = r_b1;
}

/* One output value the short way (conv_out_dsp.fast); full: the activation range is the
 * whole int8 range, so the clamp is the SSAT that also does the last shift. */
CONV_INLINE int8_t out_value_dsp(int32_t acc, int32_t multiplier, int32_t shift, int32_t k2, int full,
                                 int32_t act_min, int32_t act_max)
{
    const int32_t v = __ssat(mcu_requantize_dsp(acc, multiplier, shift, k2), 8);
    return (int8_t)(full ? v : mcu_clamp(v, act_min, act_max));
}

/* All output channels of one or two pixels (out_1 NULL: one; its columns are then a copy of
 * the first's and its sums are dropped) from their interleaved columns. kind: 0 the short
 * requantization with the whole int8 range, 1 the short one with a clamp, 2 the general
 * one (and the fused ADD). check_bias: a channel pair with a bias outside the short form's
 * range takes the wide form (or, failing that, the general one). */
CONV_INLINE void conv_pair_body(const int32_t *col, int32_t col_len, const int8_t *filter, const int32_t *bias,
                                const conv_out_dsp *o, int kind, int check_bias, const int8_t *res_0, const int8_t *res_1,
                                int32_t out_ch, int8_t *out_0, int8_t *out_1)
{
    const int32_t n4 = col_len >> 2;
    const int32_t tail = col_len & 3;
    const int32_t *col_end = col + n4 * 4;
    const int32_t k2 = mcu_requant_dsp_k2(o->out_offset);
    const int32_t *mult = o->multiplier;
    const int32_t *shift = o->shift;
    const int8_t *w_row = filter;
    int32_t oc = 0;
    for (; oc + 2 <= out_ch; oc += 2)
    {
        const int8_t *w_a = w_row;
        const int8_t *w_b = w_row + col_len;
        w_row += 2 * col_len;
        int32_t a_0 = 0, b_0 = 0;
        if (bias != NULL)
        {
            a_0 = bias[0];
            b_0 = bias[1];
            bias += 2;
        }
        /* The short requantization needs |acc| < 2^30, which |bias| < 2^29 ensures (a dead
         * channel's bias may be about 2^30: that pair takes the general way). */
        const int short_ok = kind != 2 && (!check_bias || (mcu_requant_dsp_bias_ok(a_0) && mcu_requant_dsp_bias_ok(b_0)));
        int32_t a_1 = a_0, b_1 = b_0;
        mac_2x2_dsp(&w_a, &w_b, col, col_end, &a_0, &b_0, &a_1, &b_1);
        for (int32_t i = 0; i < tail; i++)
        {
            const int32_t xx = col_end[i];
            a_0 = __smlabb(xx, w_a[i], a_0);
            a_1 = __smlatb(xx, w_a[i], a_1);
            b_0 = __smlabb(xx, w_b[i], b_0);
            b_1 = __smlatb(xx, w_b[i], b_1);
        }
        if (!short_ok)
        {
            const int32_t acc[4] = {a_0, b_0, a_1, b_1};
            if (kind == 2)
            {
                out_values_dsp(acc, oc, 1, o, res_0, res_1, out_0, out_1);
            }
            else
            {
                int32_t h_a, h_b, add_a, add_b;
                if (mcu_requant_dsp_wide_prepare(mult[0], shift[0], o->out_offset, &h_a, &add_a) &&
                    mcu_requant_dsp_wide_prepare(mult[1], shift[1], o->out_offset, &h_b, &add_b))
                {
                    /* A bias too large for the short form (a dead channel's): the wide one. */
                    for (int32_t k = 0; k < 1 + (out_1 != NULL); k++)
                    {
                        int8_t *out = k == 0 ? out_0 : out_1;
                        const int32_t v_a = __ssat(mcu_requantize_dsp_wide(acc[2 * k], mult[0], shift[0], h_a, add_a), 8);
                        const int32_t v_b =
                            __ssat(mcu_requantize_dsp_wide(acc[2 * k + 1], mult[1], shift[1], h_b, add_b), 8);
                        out[0] = (int8_t)(kind == 0 ? v_a : mcu_clamp(v_a, o->act_min, o->act_max));
                        out[1] = (int8_t)(kind == 0 ? v_b : mcu_clamp(v_b, o->act_min, o->act_max));
                    }
                }
                else
                {
                    /* The pointers have moved with the pairs: this pair is at index 0. */
                    const conv_out_dsp here = {mult, shift, o->out_offset, o->act_min, o->act_max, NULL, 0, 0};
                    out_values_dsp(acc, 0, 1, &here, NULL, NULL, out_0, out_1);
                }
                out_0 += 2;
                out_1 = out_1 != NULL ? out_1 + 2 : NULL;
                mult += 2;
                shift += 2;
            }
        }
        else
        {
            const int32_t m_a = mult[0], s_a = shift[0], m_b = mult[1], s_b = shift[1];
            out_0[0] = out_value_dsp(a_0, m_a, s_a, k2, kind == 0, o->act_min, o->act_max);
            out_0[1] = out_value_dsp(b_0, m_b, s_b, k2, kind == 0, o->act_min, o->act_max);
            if (out_1 != NULL)
            {
                out_1[0] = out_value_dsp(a_1, m_a, s_a, k2, kind == 0, o->act_min, o->act_max);
                out_1[1] = out_value_dsp(b_1, m_b, s_b, k2, kind == 0, o->act_min, o->act_max);
                out_1 += 2;
            }
            out_0 += 2;
            mult += 2;
            shift += 2;
        }
    }
    if (oc < out_ch)
    {
        const int8_t *w_a = w_row;
        const int32_t *x = col;
        int32_t a_0 = bias != NULL ? bias[0] : 0;
        int32_t a_1 = a_0;
        while (x != col_end)
        {
            const int32_t wv = mcu_read_word(w_a);
            const int32_t w_02 = __sxtb16(wv);
            const int32_t w_13 = mcu_sxtb16_ror8(wv);
            a_0 = __smlad(w_02, x[0], a_0);
            a_0 = __smlad(w_13, x[1], a_0);
            a_1 = __smlad(w_02, x[2], a_1);
            a_1 = __smlad(w_13, x[3], a_1);
            w_a += 4;
            x += 4;
        }
        for (int32_t i = 0; i < tail; i++)
        {
            a_0 = __smlabb(col_end[i], w_a[i], a_0);
            a_1 = __smlatb(col_end[i], w_a[i], a_1);
        }
        const int32_t acc[4] = {a_0, 0, a_1, 0};
        if (kind == 2)
        {
            out_values_dsp(acc, oc, 0, o, res_0, res_1, out_0, out_1);
        }
        else
        {
            /* The pointers have moved with the pairs: the last channel is at index 0. */
            const conv_out_dsp last = {mult, shift, o->out_offset, o->act_min, o->act_max, NULL, 0, 0};
            out_values_dsp(acc, 0, 0, &last, NULL, NULL, out_0, out_1);
        }
    }
}

static void __attribute__((noinline)) conv_pair_full_dsp(const int32_t *col, int32_t col_len, const int8_t *filter,
                                                         const int32_t *bias, const conv_out_dsp *o, int32_t out_ch,
                                                         int8_t *out_0, int8_t *out_1)
{
    conv_pair_body(col, col_len, filter, bias, o, 0, 0, NULL, NULL, out_ch, out_0, out_1);
}

static void __attribute__((noinline)) conv_pair_full_checked_dsp(const int32_t *col, int32_t col_len,
                                                                 const int8_t *filter, const int32_t *bias,
                                                                 const conv_out_dsp *o, int32_t out_ch, int8_t *out_0,
                                                                 int8_t *out_1)
{
    conv_pair_body(col, col_len, filter, bias, o, 0, 1, NULL, NULL, out_ch, out_0, out_1);
}

static void __attribute__((noinline)) conv_pair_clamp_dsp(const int32_t *col, int32_t col_len, const int8_t *filter,
                                                          const int32_t *bias, const conv_out_dsp *o, int32_t out_ch,
                                                          int8_t *out_0, int8_t *out_1)
{
    conv_pair_body(col, col_len, filter, bias, o, 1, 1, NULL, NULL, out_ch, out_0, out_1);
}

static void __attribute__((noinline)) conv_pair_general_dsp(const int32_t *col, int32_t col_len,
                                                            const int8_t *filter, const int32_t *bias,
                                                            const conv_out_dsp *o, const int8_t *res_0,
                                                            const int8_t *res_1, int32_t out_ch, int8_t *out_0,
                                                            int8_t *out_1)
{
    conv_pair_body(col, col_len, filter, bias, o, 2, 0, res_0, res_1, out_ch, out_0, out_1);
}

/* All output channels of one or two pixels from their interleaved columns, the way the
 * layer's requantization allows. */
static void conv_pair_dsp(const int32_t *col, int32_t col_len, const int8_t *filter, const int32_t *bias,
                          const conv_out_dsp *o, const int8_t *res_0, const int8_t *res_1, int32_t out_ch,
                          int8_t *out_0, int8_t *out_1)
{
    if (!o->fast)
    {
        conv_pair_general_dsp(col, col_len, filter, bias, o, res_0, res_1, out_ch, out_0, out_1);
    }
    else if (o->act_min == -128 && o->act_max == 127 && o->biases_ok)
    {
        conv_pair_full_dsp(col, col_len, filter, bias, o, out_ch, out_0, out_1);
    }
    else if (o->act_min == -128 && o->act_max == 127)
    {
        conv_pair_full_checked_dsp(col, col_len, filter, bias, o, out_ch, out_0, out_1);
    }
    else
    {
        conv_pair_clamp_dsp(col, col_len, filter, bias, o, out_ch, out_0, out_1);
    }
}

/* 1x1 convolution without padding of one batch: output pixels in pairs, each pair's two
 * input pixels widened straight into the interleaved columns (no im2col, no bounds
 * checks). Pixels come in segments of seg_len output pixels px_step input bytes apart (the
 * whole image with stride 1, else one output row), segments seg_step input bytes apart. */
static void conv_1x1_dsp(const int8_t *input,
                         const mcu_nn_dims *input_dims,
                         const mcu_nn_conv_params *p,
                         const int8_t *filter,
                         const int32_t *bias,
                         const conv_out_dsp *o,
                         const int8_t *res,
                         const mcu_nn_dims *output_dims,
                         int32_t *col,
                         int8_t *output)
{
    const int32_t channels = input_dims->c;
    const int32_t out_ch = output_dims->c;
    const int32_t contiguous = p->stride.w == 1 && p->stride.h == 1 && output_dims->w == input_dims->w;
    const int32_t n_seg = contiguous ? 1 : output_dims->h;
    const int32_t seg_len = contiguous ? output_dims->h * output_dims->w : output_dims->w;
    const int32_t px_step = p->stride.w * channels;
    const int32_t seg_step = p->stride.h * input_dims->w * channels;
    const int32_t n4 = channels >> 2;
    const int32_t offset_s16x2 = mcu_pack_s16x2(p->input_offset, p->input_offset);
    for (int32_t s = 0; s < n_seg; s++)
    {
        const int8_t *x = input + s * seg_step;
        for (int32_t k = 0; k < seg_len; k += 2)
        {
            const int32_t has_pair = k + 1 < seg_len;
            const int8_t *x_0 = x;
            const int8_t *x_1 = has_pair ? x + px_step : x;
            int32_t *c = col;
            for (int32_t g = n4; g > 0; g--)
            {
                const int32_t v0 = mcu_read_word(x_0);
                const int32_t v1 = mcu_read_word(x_1);
                x_0 += 4;
                x_1 += 4;
                c[0] = __sxtab16(offset_s16x2, v0);
                c[1] = mcu_sxtab16_ror8(offset_s16x2, v0);
                c[2] = __sxtab16(offset_s16x2, v1);
                c[3] = mcu_sxtab16_ror8(offset_s16x2, v1);
                c += 4;
            }
            for (int32_t i = n4 * 4; i < channels; i++)
            {
                *c++ = mcu_pack_s16x2(*x_0++ + p->input_offset, *x_1++ + p->input_offset);
            }
            conv_pair_dsp(col, channels, filter, bias, o, res, has_pair && res != NULL ? res + out_ch : NULL, out_ch,
                          output, has_pair ? output + out_ch : NULL);
            x += 2 * px_step;
            output += (1 + has_pair) * out_ch;
            res = res != NULL ? res + (1 + has_pair) * out_ch : NULL;
        }
    }
}
#endif

/* ==================================================================== entry */

mcu_nn_status mcu_convolve_core_s8(const mcu_nn_context *ctx,
                                   const mcu_nn_conv_params *conv_params,
                                   const mcu_nn_per_channel_quant_params *quant_params,
                                   const mcu_nn_dims *input_dims,
                                   const int8_t *input_data,
                                   const mcu_nn_dims *filter_dims,
                                   const int8_t *filter_data,
                                   const int32_t *bias_data,
                                   const mcu_add_quant *add,
                                   const int8_t *residual,
                                   const mcu_nn_dims *output_dims,
                                   int8_t *output_data)
{
    if (ctx->buf == NULL || filter_dims->c != input_dims->c || (add != NULL && residual == NULL))
    {
        return MCU_NN_ARG_ERROR;
    }
    const mcu_nn_conv_params *p = conv_params;
    const int32_t col_len = input_dims->c * filter_dims->h * filter_dims->w;
    const int32_t out_ch = output_dims->c;
    const int32_t out_w = output_dims->w;
    const int32_t pixels = output_dims->h * out_w;
    const int32_t in_size = input_dims->h * input_dims->w * input_dims->c;
    const int32_t one_by_one = is_1x1_unpadded(input_dims, filter_dims, p, output_dims);

#if defined(ARM_MATH_MVEI)
    /* Padding must be representable as int8, i.e. input_offset = -zero_point with an int8
     * zero point; else the portable path. */
    if (p->input_offset >= -127 && p->input_offset <= 128)
    {
        const conv_out_mve o = {quant_params->multiplier, quant_params->shift, vdupq_n_s32(p->output_offset),
                                vdupq_n_s32(p->activation.min), vdupq_n_s32(p->activation.max), add};
        const int8x16_t pad = vdupq_n_s8((int8_t)(-p->input_offset));
        int8_t *col = (int8_t *)ctx->buf; /* four int8 columns fit the scratch of two int16 ones */
        for (int32_t b = 0; b < input_dims->n; b++)
        {
            const int8_t *input = input_data + b * in_size;
            int8_t *output = output_data + b * pixels * out_ch;
            const int8_t *res = residual != NULL ? residual + b * pixels * out_ch : NULL;
            if (one_by_one)
            {
                conv_1x1_mve(input, input_dims, p, filter_data, bias_data, &o, res, output_dims, output);
                continue;
            }
            int32_t out_y = 0, out_x = 0;
            for (int32_t px = 0; px < pixels; px += 4)
            {
                const int32_t n_px = pixels - px < 4 ? pixels - px : 4;
                const int8_t *cols[4];
                for (int32_t k = 0; k < n_px; k++)
                {
                    im2col_s8(input, input_dims, filter_dims, p, pad, out_y, out_x, col + k * col_len);
                    cols[k] = col + k * col_len;
                    if (++out_x == out_w)
                    {
                        out_x = 0;
                        out_y++;
                    }
                }
                conv_columns_mve(cols, n_px, col_len, filter_data, bias_data, p->input_offset, &o,
                                 res != NULL ? res + px * out_ch : NULL, out_ch, output + px * out_ch);
            }
        }
        return MCU_NN_SUCCESS;
    }
#elif defined(ARM_MATH_DSP)
    {
        /* The columns are read as words (LDRD): the scratch must be word-aligned, as the
         * code generator's always is. */
        if (((uintptr_t)ctx->buf & 3) != 0)
        {
            return MCU_NN_ARG_ERROR;
        }
        int biases_ok = 0;
        const int fast = add == NULL && mcu_requant_dsp_ok(quant_params->multiplier, quant_params->shift, bias_data,
                                                           out_ch, col_len, p->input_offset, p->output_offset,
                                                           &biases_ok);
        const conv_out_dsp o = {quant_params->multiplier, quant_params->shift, p->output_offset, p->activation.min,
                                p->activation.max, add, fast, biases_ok};
        int32_t *col = (int32_t *)ctx->buf;
        for (int32_t b = 0; b < input_dims->n; b++)
        {
            const int8_t *input = input_data + b * in_size;
            int8_t *output = output_data + b * pixels * out_ch;
            const int8_t *res = residual != NULL ? residual + b * pixels * out_ch : NULL;
            if (one_by_one)
            {
                conv_1x1_dsp(input, input_dims, p, filter_data, bias_data, &o, res, output_dims, col, output);
                continue;
            }
            int32_t out_y = 0, out_x = 0;
            for (int32_t px = 0; px < pixels; px += 2)
            {
                const int32_t has_pair = px + 1 < pixels;
                const int32_t y_0 = out_y, x_0 = out_x;
                if (++out_x == out_w)
                {
                    out_x = 0;
                    out_y++;
                }
                const int32_t y_1 = has_pair ? out_y : y_0, x_1 = has_pair ? out_x : x_0;
                if (has_pair && ++out_x == out_w)
                {
                    out_x = 0;
                    out_y++;
                }
                im2col_pair_dsp(input, input_dims, filter_dims, p, y_0, x_0, y_1, x_1, col);
                conv_pair_dsp(col, col_len, filter_data, bias_data, &o, res != NULL ? res + px * out_ch : NULL,
                              res != NULL && has_pair ? res + (px + 1) * out_ch : NULL, out_ch,
                              output + px * out_ch, has_pair ? output + (px + 1) * out_ch : NULL);
            }
        }
        return MCU_NN_SUCCESS;
    }
#endif
#if !defined(ARM_MATH_DSP) || defined(ARM_MATH_MVEI)
    (void)one_by_one;
    int16_t *col_0 = (int16_t *)ctx->buf;
    int16_t *col_1 = col_0 + col_len;
    for (int32_t b = 0; b < input_dims->n; b++)
    {
        const int8_t *input = input_data + b * in_size;
        int8_t *output = output_data + b * pixels * out_ch;
        const int8_t *res = residual != NULL ? residual + b * pixels * out_ch : NULL;
        for (int32_t px = 0; px < pixels; px += 2)
        {
            const int32_t has_pair = px + 1 < pixels;
            im2col_s16(input, input_dims, filter_dims, p, px / out_w, px % out_w, col_0);
            if (has_pair)
            {
                im2col_s16(input, input_dims, filter_dims, p, (px + 1) / out_w, (px + 1) % out_w, col_1);
            }
            conv_columns(col_0, col_1, col_len, filter_data, bias_data, p, quant_params, add,
                         res != NULL ? res + px * out_ch : NULL,
                         res != NULL && has_pair ? res + (px + 1) * out_ch : NULL, out_ch, output + px * out_ch,
                         has_pair ? output + (px + 1) * out_ch : NULL);
        }
    }
    return MCU_NN_SUCCESS;
#endif
}

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
                              int8_t *output_data)
{
    (void)bias_dims;
    return mcu_convolve_core_s8(ctx, conv_params, quant_params, input_dims, input_data, filter_dims, filter_data,
                                bias_data, NULL, NULL, output_dims, output_data);
}
