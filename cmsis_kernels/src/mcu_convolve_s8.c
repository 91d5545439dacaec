/*
 * int8 2D convolution (TFLite CONV_2D, per-channel requantization).
 *
 * Portable C: the receptive field of two output pixels is gathered into the
 * scratch buffer as int16 (input_offset already added, padding as 0), then
 * every filter row is dotted with both columns, so each weight is loaded
 * once per pixel pair and the inner loop has no bounds checks.
 *
 * ARM_MATH_MVEI (Helium), chosen from the arguments:
 * - 1x1 filter without padding (any stride): no im2col. A pair of output channels at a time
 *   over all output pixels, two pixels per pass read straight from the input (a matrix
 *   multiply over H x W pixels; with stride 1 the pixels are consecutive): each 16 input
 *   bytes loaded once for both channels, the four sums requantized as one vector with
 *   per-lane multipliers and shifts. The pair's constant bias + input_offset * sum(filter
 *   row) is taken once per pair; an odd last channel goes alone, four pixels per pass.
 * - any other filter: the output channels in chunks of 64 whose constant terms are computed
 *   first (on the stack), then the output pixels three or four at a time; their receptive
 *   fields are gathered as raw int8 (padding as -input_offset, so that x + input_offset is 0
 *   there; each in-bounds run of taps of a filter row is one copy, without bounds checks
 *   for pixels wholly inside the input) into the scratch and dotted with the filter rows:
 *   columns over 64 bytes two channels x three pixels per pass, shorter ones one channel x
 *   four pixels (fewer fixed costs per pass).
 *   Both dot the rows in a tail-predicated low-overhead loop (WLSTP/LETP: 16 columns per
 *   step, the last step predicated, no separate tail) and requantize each channel's pixels
 *   as one vector (bit-exact with the scalar code).
 * ARM_MATH_DSP (SMLAD): two output pixels at a time, their columns widened to int16 with
 * input_offset added and interleaved in the (word-aligned) scratch (per four columns: pixel
 * 0's (0, 2) and (1, 3) pairs, then pixel 1's), the order of __sxtb16(w) and __sxtb16(w ROR
 * 8) of the four int8 weights that multiply them; two output channels per step (an
 * unrolled SMLAD loop), so each loaded weight word serves two pixels and each column word
 * two channels. A 1x1 filter without padding widens the input pixels directly (no im2col,
 * no bounds checks); a first layer's few input channels are widened a filter row at a time
 * for pixels wholly inside the input. The requantization is inline: the short exact form
 * mcu_requantize_dsp when the layer's parameters allow it (real layers do), the wide form
 * for a channel pair whose bias is too large for it (a dead channel's), the general one
 * otherwise.
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

/* The output value of channel oc from its accumulator. */
static inline int8_t conv_output(int32_t acc, int32_t oc, const mcu_nn_conv_params *p,
                                 const mcu_nn_per_channel_quant_params *q)
{
    return mcu_requantize_s8(acc, q->multiplier[oc], q->shift[oc], p->output_offset, p->activation.min,
                             p->activation.max);
}

#if !defined(ARM_MATH_DSP) || defined(ARM_MATH_MVEI)
/* Writes all output channels of one or two pixels (out_1 may be NULL) from their im2col
 * columns. */
static void conv_columns(const int16_t *col_0,
                         const int16_t *col_1,
                         int32_t col_len,
                         const int8_t *filter,
                         const int32_t *bias,
                         const mcu_nn_conv_params *p,
                         const mcu_nn_per_channel_quant_params *q,
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
            out_1[oc] = conv_output(acc_1, oc, p, q);
        }
        else
        {
            for (int32_t i = 0; i < col_len; i++)
            {
                acc_0 += col_0[i] * w[i];
            }
        }
        out_0[oc] = conv_output(acc_0, oc, p, q);
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

/* The columns of n_px consecutive pixels of one output row, from (out_y, out_x), whose
 * receptive fields lie wholly inside the input (dilation_w 1): each filter row of each pixel
 * is one run of k_w * channels input bytes, copied without bounds checks. */
static void im2col_inside_mve(const int8_t *input, const mcu_nn_dims *input_dims, const mcu_nn_dims *filter_dims,
                              const mcu_nn_conv_params *p, int32_t out_y, int32_t out_x, int32_t n_px,
                              int32_t col_len, int8_t *col)
{
    const int32_t channels = input_dims->c;
    const int32_t row_bytes = filter_dims->w * channels;
    const int32_t px_step = p->stride.w * channels;
    const int32_t row_step = p->dilation.h * input_dims->w * channels;
    const int8_t *src =
        input + ((out_y * p->stride.h - p->padding.h) * input_dims->w + out_x * p->stride.w - p->padding.w) * channels;
    for (int32_t ky = 0; ky < filter_dims->h; ky++, src += row_step, col += row_bytes)
    {
        for (int32_t k = 0; k < n_px; k++)
        {
            copy_s8_mve(col + k * col_len, src + k * px_step, row_bytes);
        }
    }
}

/* Whether output pixels (out_y, out_x .. out_x + n_px - 1) read only inside the input with
 * dilation_w 1 (im2col_inside_mve). */
static inline int group_inside(const mcu_nn_dims *input_dims, const mcu_nn_dims *filter_dims,
                               const mcu_nn_conv_params *p, int32_t out_y, int32_t out_x, int32_t n_px)
{
    const int32_t base_y = out_y * p->stride.h - p->padding.h;
    const int32_t base_x = out_x * p->stride.w - p->padding.w;
    return p->dilation.w == 1 && base_y >= 0 && base_y + (filter_dims->h - 1) * p->dilation.h < input_dims->h &&
           base_x >= 0 && base_x + (n_px - 1) * p->stride.w + filter_dims->w <= input_dims->w;
}

/* The sums of the filter row w with the four columns x, x + step, x + 2 step and x + 3 step
 * over n bytes, each starting from base, as the lanes of one vector: 16 columns per step of
 * a tail-predicated loop (the last step's lanes past n are inactive), so a column of any
 * length needs no separate tail. The column pointers are formed inside, which keeps the
 * caller's registers free. */
static inline int32x4_t dot4_step_mve(const int8_t *w, const int8_t *x, int32_t step, int32_t n, int32_t base)
{
    int32_t r_0 = base, r_1 = base, r_2 = base, r_3 = base;
    const int8_t *x_1, *x_2, *x_3;
    __asm__ volatile("   add          %[x1], %[x0], %[st]\n"
                     "   add          %[x2], %[x1], %[st]\n"
                     "   add          %[x3], %[x2], %[st]\n"
                     "   wlstp.8      lr, %[n], 1f\n"
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
                     : [r0] "+Te"(r_0), [r1] "+Te"(r_1), [r2] "+Te"(r_2), [r3] "+Te"(r_3), [w] "+r"(w), [x0] "+r"(x),
                       [x1] "=&r"(x_1), [x2] "=&r"(x_2), [x3] "=&r"(x_3)
                     : [st] "r"(step), [n] "r"(n)
                     : "q0", "q1", "lr", "memory");
    int32x4_t v;
    __asm__("vmov %q0[2], %q0[0], %1, %3\n\t"
            "vmov %q0[3], %q0[1], %2, %4"
            : "=w"(v)
            : "r"(r_0), "r"(r_1), "r"(r_2), "r"(r_3));
    return v;
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
} conv_out_mve;

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

/* The shape of a 1x1 unpadded convolution's pixels: segments of seg_len output pixels
 * px_step input bytes apart (the whole image with stride 1, else one output row), the
 * segments seg_step input bytes apart. */
typedef struct
{
    int32_t channels, out_ch, n_seg, seg_len, px_step, seg_step;
} conv_1x1_shape;

/* All output pixels of one channel of a 1x1 unpadded convolution: four per step, each
 * dotted with the filter row w straight from the input; base = bias + input_offset *
 * sum(w). right: a constant of each copy (shift <= -1). */
CONV_INLINE void conv_1x1_channel_body(const int8_t *input, const conv_1x1_shape *sh, const int8_t *w, int32_t base,
                                       int32_t multiplier, int32_t shift, int right, const conv_out_mve *o, int8_t *out)
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
            const int32x4_t r = requant4_mve(dot4_step_mve(w, x, px_step, channels, base), multiplier, shift, right, o);
            vstrbq_scatter_offset_s32(out, px_offsets, r);
            out += 4 * out_ch;
        }
        const int32_t n_px = sh->seg_len & 3;
        if (n_px > 1 && sh->seg_len >= 4)
        {
            /* Two or three pixels left: the last four of the segment are read (the new ones
             * in the top lanes) and only the new ones stored. */
            const int32_t back = 4 - n_px;
            const int32x4_t acc = dot4_step_mve(w, x - back * px_step, px_step, channels, base);
            const mve_pred16_t top = (mve_pred16_t)(0xFFFFu << (4 * back));
            vstrbq_scatter_offset_p_s32(out - back * out_ch, px_offsets, requant4_mve(acc, multiplier, shift, right, o),
                                        top);
            out += n_px * out_ch;
        }
        else
        {
            /* Else one pixel at a time (step 0: the four lanes are the same pixel). */
            for (int32_t k = 0; k < n_px; k++, x += px_step, out += out_ch)
            {
                const int32x4_t r = requant4_mve(dot4_step_mve(w, x, 0, channels, base), multiplier, shift, right, o);
                vstrbq_scatter_offset_p_s32(out, px_offsets, r, vctp32q(1));
            }
        }
    }
}

static void __attribute__((noinline)) conv_1x1_channel_right(const int8_t *input, const conv_1x1_shape *sh,
                                                             const int8_t *w, int32_t base, int32_t multiplier,
                                                             int32_t shift, const conv_out_mve *out_params, int8_t *out)
{
    const conv_out_mve o = *out_params;
    conv_1x1_channel_body(input, sh, w, base, multiplier, shift, 1, &o, out);
}

static void __attribute__((noinline)) conv_1x1_channel_any(const int8_t *input, const conv_1x1_shape *sh,
                                                           const int8_t *w, int32_t base, int32_t multiplier,
                                                           int32_t shift, const conv_out_mve *out_params, int8_t *out)
{
    const conv_out_mve o = *out_params;
    conv_1x1_channel_body(input, sh, w, base, multiplier, shift, 0, &o, out);
}

/* The sums of two filter rows (w and w + w_step) with three columns (x, x + step, x + 2 step)
 * over n bytes, from base_0 (first row) and base_1, as two vectors of the three pixels' sums
 * (lane 3 repeats lane 2): each 16 bytes of a column are loaded once for both rows, 12
 * instructions per 96 MACs. The step registers become the third pointers inside (early
 * clobbers: n may hold the same value). */
static inline void dot3x2_mve(const int8_t *w, int32_t w_step, const int8_t *x, int32_t step, int32_t n,
                              int32_t base_0, int32_t base_1, int32x4_t *sums_0, int32x4_t *sums_1)
{
    int32_t a_0 = base_0, a_1 = base_0, a_2 = base_0, b_0 = base_1, b_1 = base_1, b_2 = base_1;
    const int8_t *x_1;
    __asm__ volatile("   add          %[x1], %[x0], %[st]\n"
                     "   add          %[st], %[x1], %[st]\n"
                     "   add          %[wst], %[w], %[wst]\n"
                     "   wlstp.8      lr, %[n], 1f\n"
                     "2: vldrb.8      q0, [%[w]], #16\n"
                     "   vldrb.8      q1, [%[wst]], #16\n"
                     "   vldrb.8      q2, [%[x0]], #16\n"
                     "   vmladava.s8  %[a0], q0, q2\n"
                     "   vmladava.s8  %[b0], q1, q2\n"
                     "   vldrb.8      q2, [%[x1]], #16\n"
                     "   vmladava.s8  %[a1], q0, q2\n"
                     "   vmladava.s8  %[b1], q1, q2\n"
                     "   vldrb.8      q2, [%[st]], #16\n"
                     "   vmladava.s8  %[a2], q0, q2\n"
                     "   vmladava.s8  %[b2], q1, q2\n"
                     "   letp         lr, 2b\n"
                     "1:\n"
                     : [a0] "+Te"(a_0), [a1] "+Te"(a_1), [a2] "+Te"(a_2), [b0] "+Te"(b_0), [b1] "+Te"(b_1),
                       [b2] "+Te"(b_2), [w] "+r"(w), [wst] "+&r"(w_step), [x0] "+r"(x), [st] "+&r"(step),
                       [x1] "=&r"(x_1)
                     : [n] "r"(n)
                     : "q0", "q1", "q2", "lr", "memory");
    /* VMOV Qd[2], Qd[0], Rt, Rt2 as GCC spells it: lane 0 = Rt, lane 2 = Rt2 (as in dot4_step_mve) */
    int32x4_t v_0, v_1;
    __asm__("vmov %q0[2], %q0[0], %1, %3\n\t"
            "vmov %q0[3], %q0[1], %2, %3"
            : "=w"(v_0)
            : "r"(a_0), "r"(a_1), "r"(a_2));
    __asm__("vmov %q0[2], %q0[0], %1, %3\n\t"
            "vmov %q0[3], %q0[1], %2, %3"
            : "=w"(v_1)
            : "r"(b_0), "r"(b_1), "r"(b_2));
    *sums_0 = v_0;
    *sums_1 = v_1;
}

/* The sums of two filter rows (w and w + w_step) with two columns (x and x + step) over n
 * bytes, from the rows' bases, as one vector (row 0 pixel 0, row 1 pixel 0, row 0 pixel 1,
 * row 1 pixel 1): 9 instructions per 64 MACs, four accumulators (few registers: the
 * caller's loop keeps its own). The step registers become the second pointers inside
 * (early clobbers: n may hold the same value). */
static inline int32x4_t dot2x2_mve(const int8_t *w, int32_t w_step, const int8_t *x, int32_t step, int32_t n,
                                   int32_t base_0, int32_t base_1)
{
    int32_t a_0 = base_0, a_1 = base_0, b_0 = base_1, b_1 = base_1;
    __asm__ volatile("   add          %[st], %[x0], %[st]\n"
                     "   add          %[wst], %[w], %[wst]\n"
                     "   wlstp.8      lr, %[n], 1f\n"
                     "2: vldrb.8      q0, [%[w]], #16\n"
                     "   vldrb.8      q1, [%[wst]], #16\n"
                     "   vldrb.8      q2, [%[x0]], #16\n"
                     "   vmladava.s8  %[a0], q0, q2\n"
                     "   vmladava.s8  %[b0], q1, q2\n"
                     "   vldrb.8      q2, [%[st]], #16\n"
                     "   vmladava.s8  %[a1], q0, q2\n"
                     "   vmladava.s8  %[b1], q1, q2\n"
                     "   letp         lr, 2b\n"
                     "1:\n"
                     : [a0] "+Te"(a_0), [a1] "+Te"(a_1), [b0] "+Te"(b_0), [b1] "+Te"(b_1), [w] "+r"(w),
                       [wst] "+&r"(w_step), [x0] "+r"(x), [st] "+&r"(step)
                     : [n] "r"(n)
                     : "q0", "q1", "q2", "lr", "memory");
    int32x4_t v; /* lanes (a_0, b_0, a_1, b_1); VMOV as in dot3x2_mve */
    __asm__("vmov %q0[2], %q0[0], %1, %2\n\t"
            "vmov %q0[3], %q0[1], %3, %4"
            : "=w"(v)
            : "r"(a_0), "r"(a_1), "r"(b_0), "r"(b_1));
    return v;
}

/* One channel pair's constants of a 1x1 convolution, per lane of dot2x2_mve's vector. */
typedef struct
{
    int32_t base_0, base_1;
    int32x4_t multiplier, shift;
} conv_pair_mve;

/* Two pixels (x and x + step; step 0: the same one) of two channels (rows w and w +
 * channels), stored at out + offsets. right: both shifts <= -1, a constant of each copy. */
CONV_INLINE void conv_1x1_pair2(const int8_t *w, const int8_t *x, int32_t step, int32_t channels,
                                const conv_pair_mve *c, int right, const conv_out_mve *o, uint32x4_t offsets,
                                int8_t *out)
{
    const int32x4_t acc = dot2x2_mve(w, channels, x, step, channels, c->base_0, c->base_1);
    int32x4_t r;
    if (right)
    {
        r = vqrdmulhq_s32(acc, c->multiplier);
        r = vrshlq_s32(vqaddq_s32(r, vshrq_n_s32(r, 31)), c->shift);
    }
    else
    {
        r = mcu_requantize_mve(acc, c->multiplier, c->shift);
    }
    r = vminq_s32(vmaxq_s32(vaddq_s32(r, o->out_offset), o->act_min), o->act_max);
    vstrbq_scatter_offset_s32(out, offsets, r);
}

/* All output pixels of a channel pair of a 1x1 unpadded convolution, two per step; a
 * segment's odd last pixel is the top of its last two (the other computed and stored again,
 * with the same values), a segment of one pixel is read as two (step 0). */
CONV_INLINE void conv_1x1_pair_body(const int8_t *input, const conv_1x1_shape *sh, const int8_t *w,
                                    const conv_pair_mve *pair, int right, const conv_out_mve *o, int8_t *out)
{
    const conv_pair_mve c = *pair; /* local copies: the int8 stores could alias *pair, *sh */
    const int32_t channels = sh->channels;
    const int32_t px_step = sh->px_step;
    const int32_t out_ch = sh->out_ch;
    const int32_t seg_len = sh->seg_len;
    const int32_t n_seg = sh->n_seg;
    const int32_t seg_step = sh->seg_step;
    /* lanes: (row 0, row 1) of pixel 0, then of pixel 1 */
    const uint32x4_t offsets = vaddq_u32(vmulq_n_u32(vshrq_n_u32(vidupq_n_u32(0, 1), 1), (uint32_t)out_ch),
                                         vandq_u32(vidupq_n_u32(0, 1), vdupq_n_u32(1)));
    for (int32_t s = 0; s < n_seg; s++)
    {
        const int8_t *x = input + s * seg_step;
        if (seg_len == 1)
        {
            /* lanes (0, 1, 0, 1): the pixel's two channels, each written twice */
            conv_1x1_pair2(w, x, 0, channels, &c, right, o, vandq_u32(vidupq_n_u32(0, 1), vdupq_n_u32(1)), out);
            out += out_ch;
            continue;
        }
        const int8_t *x_end = x + (seg_len & ~1) * px_step;
        for (; x != x_end; x += 2 * px_step, out += 2 * out_ch)
        {
            conv_1x1_pair2(w, x, px_step, channels, &c, right, o, offsets, out);
        }
        if (seg_len & 1)
        {
            conv_1x1_pair2(w, x - px_step, px_step, channels, &c, right, o, offsets, out - out_ch);
            out += out_ch;
        }
    }
}

static void __attribute__((noinline)) conv_1x1_pair_right(const int8_t *input, const conv_1x1_shape *sh,
                                                          const int8_t *w, const conv_pair_mve *c,
                                                          const conv_out_mve *out_params, int8_t *out)
{
    const conv_out_mve o = *out_params;
    conv_1x1_pair_body(input, sh, w, c, 1, &o, out);
}

static void __attribute__((noinline)) conv_1x1_pair_any(const int8_t *input, const conv_1x1_shape *sh,
                                                        const int8_t *w, const conv_pair_mve *c,
                                                        const conv_out_mve *out_params, int8_t *out)
{
    const conv_out_mve o = *out_params;
    conv_1x1_pair_body(input, sh, w, c, 0, &o, out);
}

/* 1x1 convolution without padding of one batch, a pair of output channels at a time over all
 * output pixels (a matrix multiply without im2col); an odd last channel alone. */
static void conv_1x1_mve(const int8_t *input,
                         const mcu_nn_dims *input_dims,
                         const mcu_nn_conv_params *p,
                         const int8_t *filter,
                         const int32_t *bias,
                         const conv_out_mve *o,
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
    int32_t oc = 0;
    for (; oc + 2 <= sh.out_ch; oc += 2, w += 2 * channels)
    {
        /* lanes (oc, oc + 1, oc, oc + 1): the channels of dot2x2_mve's lanes */
        const uint32x4_t lane_oc = vandq_u32(vidupq_n_u32(0, 1), vdupq_n_u32(1));
        const conv_pair_mve c = {(bias != NULL ? bias[oc] : 0) + p->input_offset * sum_s8_mve(w, channels),
                                 (bias != NULL ? bias[oc + 1] : 0) + p->input_offset * sum_s8_mve(w + channels, channels),
                                 vldrwq_gather_shifted_offset_s32(o->multiplier + oc, lane_oc),
                                 vldrwq_gather_shifted_offset_s32(o->shift + oc, lane_oc)};
        if (o->shift[oc] < 0 && o->shift[oc + 1] < 0)
        {
            conv_1x1_pair_right(input, &sh, w, &c, o, output + oc);
        }
        else
        {
            conv_1x1_pair_any(input, &sh, w, &c, o, output + oc);
        }
    }
    for (; oc < sh.out_ch; oc++)
    {
        const int32_t base = (bias != NULL ? bias[oc] : 0) + p->input_offset * sum_s8_mve(w, channels);
        const int32_t shift = o->shift[oc];
        if (shift < 0)
        {
            conv_1x1_channel_right(input, &sh, w, base, o->multiplier[oc], shift, o, output + oc);
        }
        else
        {
            conv_1x1_channel_any(input, &sh, w, base, o->multiplier[oc], shift, o, output + oc);
        }
        w += channels;
    }
}

/* One channel's pixels' sums requantized, stored at out + offsets (predicate px: the
 * pixels that exist; full: all four lanes; right: every shift of the chunk is <= -1; both
 * constants of each copy). */
CONV_INLINE void conv_store_px(int32x4_t acc, int32_t multiplier, int32_t shift, const conv_out_mve *o,
                               uint32x4_t offsets, mve_pred16_t px, int full, int right, int8_t *out)
{
    const int32x4_t r = right || shift < 0 ? requant4_mve(acc, multiplier, shift, 1, o)
                                           : requant4_mve(acc, multiplier, shift, 0, o);
    if (full)
    {
        vstrbq_scatter_offset_s32(out, offsets, r);
    }
    else
    {
        vstrbq_scatter_offset_p_s32(out, offsets, r, px);
    }
}

/* Output channels [0, n_oc) of a chunk (filter rows, bases, multipliers and shifts from the
 * chunk's first channel) for n_px consecutive pixels from their int8 columns, col_len apart
 * from col (the scratch holds four: the sums of missing pixels read stale columns and are
 * not stored); out points at the first pixel's chunk, pixels out_ch apart. pairs (a
 * constant of each copy): n_px <= 3, two channels per pass over the columns (dot3x2_mve),
 * for long columns; else n_px <= 4, one channel per pass (fewer passes' fixed costs). full:
 * n_px is the group's size (3 with pairs, else 4), no predicate; right: every shift of the
 * chunk is <= -1; also constants. */
CONV_INLINE void conv_group_body(const int8_t *col, int32_t n_px, int32_t col_len, const int8_t *filter,
                                 const int32_t *base, const conv_out_mve *o, int32_t n_oc, int32_t out_ch,
                                 int8_t *out, int pairs, int full, int right)
{
    /* lanes 0..3: pixels 0, 1, 2, 2 with pairs (dot3x2_mve repeats pixel 2 in lane 3), else
     * pixels 0..3 */
    const uint32x4_t lanes = pairs ? vminq_u32(vidupq_n_u32(0, 1), vdupq_n_u32(2)) : vidupq_n_u32(0, 1);
    const uint32x4_t offsets = vmulq_n_u32(lanes, (uint32_t)out_ch);
    const mve_pred16_t px = vctp32q((uint32_t)(pairs && n_px == 3 ? 4 : n_px));
    const int8_t *w = filter;
    int32_t oc = 0;
    for (; pairs && oc + 2 <= n_oc; oc += 2, w += 2 * col_len)
    {
        int32x4_t acc_0, acc_1;
        dot3x2_mve(w, col_len, col, col_len, col_len, base[oc], base[oc + 1], &acc_0, &acc_1);
        conv_store_px(acc_0, o->multiplier[oc], o->shift[oc], o, offsets, px, full, right, out + oc);
        conv_store_px(acc_1, o->multiplier[oc + 1], o->shift[oc + 1], o, offsets, px, full, right, out + oc + 1);
    }
    for (; oc < n_oc; oc++, w += col_len)
    {
        const int32x4_t acc = dot4_step_mve(w, col, col_len, col_len, base[oc]);
        /* (with pairs, lane 3 is a fourth, stale column's) */
        conv_store_px(acc, o->multiplier[oc], o->shift[oc], o, offsets, vctp32q((uint32_t)n_px), full && !pairs,
                      right, out + oc);
    }
}

static void __attribute__((noinline)) conv_group_mve(const int8_t *col, int32_t n_px, int32_t col_len,
                                                     const int8_t *filter, const int32_t *base,
                                                     const conv_out_mve *out_params, int32_t n_oc, int32_t out_ch,
                                                     int8_t *out, int pairs, int right)
{
    const conv_out_mve o = *out_params;
    /* Whole groups get copies of their own (of four pixels, with every shift <= -1, the usual
     * case, too: the pairs' copy has no registers to spare for it). */
    if (pairs && n_px == 3)
    {
        conv_group_body(col, 3, col_len, filter, base, &o, n_oc, out_ch, out, 1, 1, 0);
    }
    else if (!pairs && n_px == 4)
    {
        if (right)
        {
            conv_group_body(col, 4, col_len, filter, base, &o, n_oc, out_ch, out, 0, 1, 1);
        }
        else
        {
            conv_group_body(col, 4, col_len, filter, base, &o, n_oc, out_ch, out, 0, 1, 0);
        }
    }
    else if (pairs)
    {
        conv_group_body(col, n_px, col_len, filter, base, &o, n_oc, out_ch, out, 1, 0, 0);
    }
    else
    {
        conv_group_body(col, n_px, col_len, filter, base, &o, n_oc, out_ch, out, 0, 0, 0);
    }
}

#define CONV_OC_CHUNK 64     /* output channels whose bias + input_offset * sum(filter row) sit on the stack */
#define CONV_PAIR_COLUMN 64  /* the longest column dotted one channel at a time */

/* Any other filter, one batch: the output channels in chunks of up to CONV_OC_CHUNK (their
 * constant terms computed once), for each chunk the output pixels three or four at a time,
 * their receptive fields gathered as int8 columns into col. */
static void conv_general_mve(const int8_t *input, const mcu_nn_dims *input_dims, const mcu_nn_dims *filter_dims,
                             const mcu_nn_conv_params *p, const int8_t *filter, const int32_t *bias,
                             const conv_out_mve *o, const mcu_nn_dims *output_dims, int8_t *col, int8_t *output)
{
    const int32_t col_len = input_dims->c * filter_dims->h * filter_dims->w;
    const int32_t out_ch = output_dims->c;
    const int32_t out_w = output_dims->w;
    const int32_t pixels = output_dims->h * out_w;
    const int8x16_t pad = vdupq_n_s8((int8_t)(-p->input_offset));
    /* Columns longer than CONV_PAIR_COLUMN: two channels per pass over three pixels' columns;
     * shorter ones: one channel over four (the passes' fixed costs weigh more there). */
    const int pairs = col_len > CONV_PAIR_COLUMN;
    const int32_t group = pairs ? 3 : 4;
    int32_t base[CONV_OC_CHUNK];
    for (int32_t oc_0 = 0; oc_0 < out_ch; oc_0 += CONV_OC_CHUNK)
    {
        const int32_t n_oc = out_ch - oc_0 < CONV_OC_CHUNK ? out_ch - oc_0 : CONV_OC_CHUNK;
        const int8_t *w = filter + oc_0 * col_len;
        int right = 1;
        for (int32_t k = 0; k < n_oc; k++)
        {
            base[k] = (bias != NULL ? bias[oc_0 + k] : 0) + p->input_offset * sum_s8_mve(w + k * col_len, col_len);
            right &= o->shift[oc_0 + k] < 0;
        }
        const conv_out_mve oo = {o->multiplier + oc_0, o->shift + oc_0, o->out_offset, o->act_min, o->act_max};
        int32_t out_y = 0, out_x = 0;
        for (int32_t px = 0; px < pixels; px += group)
        {
            const int32_t n_px = pixels - px < group ? pixels - px : group;
            if (n_px == group && out_x + group <= out_w && group_inside(input_dims, filter_dims, p, out_y, out_x, group))
            {
                im2col_inside_mve(input, input_dims, filter_dims, p, out_y, out_x, group, col_len, col);
                out_x += group;
                if (out_x == out_w)
                {
                    out_x = 0;
                    out_y++;
                }
            }
            else
            {
                for (int32_t k = 0; k < n_px; k++)
                {
                    if (group_inside(input_dims, filter_dims, p, out_y, out_x, 1))
                    {
                        im2col_inside_mve(input, input_dims, filter_dims, p, out_y, out_x, 1, col_len, col + k * col_len);
                    }
                    else
                    {
                        im2col_s8(input, input_dims, filter_dims, p, pad, out_y, out_x, col + k * col_len);
                    }
                    if (++out_x == out_w)
                    {
                        out_x = 0;
                        out_y++;
                    }
                }
            }
            conv_group_mve(col, n_px, col_len, w, base, &oo, n_oc, out_ch, output + px * out_ch + oc_0, pairs, right);
        }
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

/* The low halves of a and b as one word (PKHBT, b shifted left by 16). */
static inline int32_t pack_lo_dsp(int32_t a, int32_t b)
{
#if defined(__GNUC__)
    int32_t r;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    return (int32_t)(((uint32_t)a & 0xFFFFu) | ((uint32_t)b << 16));
#endif
}

/* The high halves of a and b as one word (PKHTB, a shifted right by 16). */
static inline int32_t pack_hi_dsp(int32_t a, int32_t b)
{
#if defined(__GNUC__)
    int32_t r;
    __asm__("pkhtb %0, %2, %1, asr #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    return (int32_t)(((uint32_t)a >> 16) | ((uint32_t)b & 0xFFFF0000u));
#endif
}

/* The n int8 values at src plus offset as int16 at col: four per step (one word read,
 * SXTAB16 twice, the halves put back in order with PKHBT/PKHTB), the rest one by one. */
static void widen_run_dsp(const int8_t *src, int32_t n, int32_t offset, int16_t *col)
{
    const int32_t offset_s16x2 = mcu_pack_s16x2(offset, offset);
    for (; n >= 4; n -= 4)
    {
        const int32_t v = mcu_read_word(src);
        const int32_t even = __sxtab16(offset_s16x2, v);         /* values 0, 2 */
        const int32_t odd = mcu_sxtab16_ror8(offset_s16x2, v);   /* values 1, 3 */
        const int32_t lo = pack_lo_dsp(even, odd);
        const int32_t hi = pack_hi_dsp(even, odd);
        memcpy(col, &lo, sizeof(lo));
        memcpy(col + 2, &hi, sizeof(hi));
        src += 4;
        col += 4;
    }
    for (; n > 0; n--)
    {
        *col++ = (int16_t)(*src++ + offset);
    }
}

/* im2col_s16 for few channels (1 to 3, a first layer's): a receptive field wholly inside
 * the input (dilation_w 1) is one run of k_w * channels values per filter row, widened
 * without bounds checks; else a filter row outside the input is zeros at once, each tap's
 * channels unrolled. */
static void im2col_small_dsp(const int8_t *input, const mcu_nn_dims *input_dims, const mcu_nn_dims *filter_dims,
                             const mcu_nn_conv_params *p, int32_t out_y, int32_t out_x, int16_t *col)
{
    const int32_t channels = input_dims->c;
    const int32_t offset = p->input_offset;
    const int32_t in_w = input_dims->w;
    const int32_t k_w = filter_dims->w;
    const int32_t base_y = out_y * p->stride.h - p->padding.h;
    const int32_t base_x = out_x * p->stride.w - p->padding.w;
    if (p->dilation.w == 1 && base_y >= 0 && base_y + (filter_dims->h - 1) * p->dilation.h < input_dims->h &&
        base_x >= 0 && base_x + k_w <= in_w)
    {
        /* (locals: the int16 stores could alias *p and *filter_dims) */
        const int32_t k_h = filter_dims->h;
        const int32_t run = k_w * channels;
        const int32_t row_step = p->dilation.h * in_w * channels;
        const int8_t *src = input + (base_y * in_w + base_x) * channels;
        for (int32_t ky = 0; ky < k_h; ky++, src += row_step, col += run)
        {
            widen_run_dsp(src, run, offset, col);
        }
        return;
    }
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
            col[4 * g] = pack_lo_dsp(a_01, a_23);
            col[4 * g + 1] = pack_hi_dsp(a_01, a_23);
            col[4 * g + 2] = pack_lo_dsp(b_01, b_23);
            col[4 * g + 3] = pack_hi_dsp(b_01, b_23);
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
    int32_t fast;      /* mcu_requant_dsp_ok */
    int32_t biases_ok; /* every bias fits the short form (else checked per channel pair) */
} conv_out_dsp;

/* The output values of channels oc, oc + 1 (pair: else oc alone) of one or two pixels
 * (out_1 NULL: one) the general way, mcu_requantize_s8. */
static void __attribute__((noinline)) out_values_dsp(const int32_t acc[4], int32_t oc, int32_t pair,
                                                     const conv_out_dsp *o, int8_t *out_0, int8_t *out_1)
{
    for (int32_t k = 0; k < 2; k++)
    {
        int8_t *out = k == 0 ? out_0 : out_1;
        for (int32_t j = 0; j < 1 + pair && out != NULL; j++)
        {
            out[oc + j] = mcu_requantize_s8(acc[2 * k + j], o->multiplier[oc + j], o->shift[oc + j], o->out_offset,
                                            o->act_min, o->act_max);
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
 * one. check_bias: a channel pair with a bias outside the short form's
 * range takes the wide form (or, failing that, the general one). */
CONV_INLINE void conv_pair_body(const int32_t *col, int32_t col_len, const int8_t *filter, const int32_t *bias,
                                const conv_out_dsp *o, int kind, int check_bias, int32_t out_ch, int8_t *out_0,
                                int8_t *out_1)
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
                out_values_dsp(acc, oc, 1, o, out_0, out_1);
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
                    const conv_out_dsp here = {mult, shift, o->out_offset, o->act_min, o->act_max, 0, 0};
                    out_values_dsp(acc, 0, 1, &here, out_0, out_1);
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
            out_values_dsp(acc, oc, 0, o, out_0, out_1);
        }
        else
        {
            /* The pointers have moved with the pairs: the last channel is at index 0. */
            const conv_out_dsp last = {mult, shift, o->out_offset, o->act_min, o->act_max, 0, 0};
            out_values_dsp(acc, 0, 0, &last, out_0, out_1);
        }
    }
}

static void __attribute__((noinline)) conv_pair_full_dsp(const int32_t *col, int32_t col_len, const int8_t *filter,
                                                         const int32_t *bias, const conv_out_dsp *o, int32_t out_ch,
                                                         int8_t *out_0, int8_t *out_1)
{
    conv_pair_body(col, col_len, filter, bias, o, 0, 0, out_ch, out_0, out_1);
}

static void __attribute__((noinline)) conv_pair_full_checked_dsp(const int32_t *col, int32_t col_len,
                                                                 const int8_t *filter, const int32_t *bias,
                                                                 const conv_out_dsp *o, int32_t out_ch, int8_t *out_0,
                                                                 int8_t *out_1)
{
    conv_pair_body(col, col_len, filter, bias, o, 0, 1, out_ch, out_0, out_1);
}

static void __attribute__((noinline)) conv_pair_clamp_dsp(const int32_t *col, int32_t col_len, const int8_t *filter,
                                                          const int32_t *bias, const conv_out_dsp *o, int32_t out_ch,
                                                          int8_t *out_0, int8_t *out_1)
{
    conv_pair_body(col, col_len, filter, bias, o, 1, 1, out_ch, out_0, out_1);
}

static void __attribute__((noinline)) conv_pair_general_dsp(const int32_t *col, int32_t col_len,
                                                            const int8_t *filter, const int32_t *bias,
                                                            const conv_out_dsp *o, int32_t out_ch, int8_t *out_0,
                                                            int8_t *out_1)
{
    conv_pair_body(col, col_len, filter, bias, o, 2, 0, out_ch, out_0, out_1);
}

/* All output channels of one or two pixels from their interleaved columns, the way the
 * layer's requantization allows. */
static void conv_pair_dsp(const int32_t *col, int32_t col_len, const int8_t *filter, const int32_t *bias,
                          const conv_out_dsp *o, int32_t out_ch, int8_t *out_0, int8_t *out_1)
{
    if (!o->fast)
    {
        conv_pair_general_dsp(col, col_len, filter, bias, o, out_ch, out_0, out_1);
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
            conv_pair_dsp(col, channels, filter, bias, o, out_ch, output, has_pair ? output + out_ch : NULL);
            x += 2 * px_step;
            output += (1 + has_pair) * out_ch;
        }
    }
}
#endif

/* ==================================================================== entry */

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
    if (ctx->buf == NULL || filter_dims->c != input_dims->c)
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
                                vdupq_n_s32(p->activation.min), vdupq_n_s32(p->activation.max)};
        int8_t *col = (int8_t *)ctx->buf; /* four int8 columns fit the scratch of two int16 ones */
        for (int32_t b = 0; b < input_dims->n; b++)
        {
            const int8_t *input = input_data + b * in_size;
            int8_t *output = output_data + b * pixels * out_ch;
            if (one_by_one)
            {
                conv_1x1_mve(input, input_dims, p, filter_data, bias_data, &o, output_dims, output);
            }
            else
            {
                conv_general_mve(input, input_dims, filter_dims, p, filter_data, bias_data, &o, output_dims, col,
                                 output);
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
        const int fast = mcu_requant_dsp_ok(quant_params->multiplier, quant_params->shift, bias_data, out_ch, col_len,
                                            p->input_offset, p->output_offset, &biases_ok);
        const conv_out_dsp o = {quant_params->multiplier, quant_params->shift, p->output_offset, p->activation.min,
                                p->activation.max, fast, biases_ok};
        int32_t *col = (int32_t *)ctx->buf;
        for (int32_t b = 0; b < input_dims->n; b++)
        {
            const int8_t *input = input_data + b * in_size;
            int8_t *output = output_data + b * pixels * out_ch;
            if (one_by_one)
            {
                conv_1x1_dsp(input, input_dims, p, filter_data, bias_data, &o, output_dims, col, output);
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
                conv_pair_dsp(col, col_len, filter_data, bias_data, &o, out_ch, output + px * out_ch,
                              has_pair ? output + (px + 1) * out_ch : NULL);
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
        for (int32_t px = 0; px < pixels; px += 2)
        {
            const int32_t has_pair = px + 1 < pixels;
            im2col_s16(input, input_dims, filter_dims, p, px / out_w, px % out_w, col_0);
            if (has_pair)
            {
                im2col_s16(input, input_dims, filter_dims, p, (px + 1) / out_w, (px + 1) % out_w, col_1);
            }
            conv_columns(col_0, col_1, col_len, filter_data, bias_data, p, quant_params, out_ch, output + px * out_ch,
                         has_pair ? output + (px + 1) * out_ch : NULL);
        }
    }
    return MCU_NN_SUCCESS;
#endif
}
