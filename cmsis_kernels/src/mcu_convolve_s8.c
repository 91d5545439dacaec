/*
 * int8 2D convolution (TFLite CONV_2D, per-channel requantization).
 *
 * Portable C: the receptive field of two output pixels is gathered into the
 * scratch buffer as int16 (input_offset already added, padding as 0), then
 * every filter row is dotted with both columns, so each weight is loaded
 * once per pixel pair and the inner loop has no bounds checks.
 *
 * ARM_MATH_MVEI (Helium): four output pixels at a time. Their receptive fields are
 * gathered as raw int8 (padding as -input_offset, so that x + input_offset is 0 there)
 * into the same scratch buffer, and every filter row is dotted with the four columns 16
 * lanes per instruction; input_offset * sum(filter row) is added afterwards.
 * ARM_MATH_DSP (SMLAD): the int16 columns of the portable path, with each group of four
 * values stored as (0, 2, 1, 3) so that they pair with the SXTB16-widened weights; two dual
 * 16-bit MACs per four weights and column.
 * Only the order of the integer sums changes. The Helium path requantizes the four pixels of
 * one channel as one vector (mcu_requantize_s8_mve, bit-exact with the scalar code); the
 * others use the scalar requantization.
 */
#include <string.h>

#include "mcu_nn_support.h"

int32_t mcu_convolve_s8_get_buffer_size(const mcu_nn_dims *input_dims, const mcu_nn_dims *filter_dims)
{
    return 2 * input_dims->c * filter_dims->h * filter_dims->w * (int32_t)sizeof(int16_t);
}

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

#if defined(ARM_MATH_MVEI)
/* Gathers the receptive field of output pixel (out_y, out_x) as raw int8 into col; padded
 * taps hold pad (= -input_offset). */
static void im2col_s8(const int8_t *input,
                      const mcu_nn_dims *input_dims,
                      const mcu_nn_dims *filter_dims,
                      const mcu_nn_conv_params *p,
                      int8_t pad,
                      int32_t out_y,
                      int32_t out_x,
                      int8_t *col)
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
                memset(col, pad, (size_t)channels);
            }
            else
            {
                memcpy(col, input + (in_y * input_dims->w + in_x) * channels, (size_t)channels);
            }
            col += channels;
        }
    }
}
#endif

#if defined(ARM_MATH_DSP) && !defined(ARM_MATH_MVEI)
/* Stores each whole group of four int16 as (0, 2, 1, 3), the order of __sxtb16(w) and
 * __sxtb16(w ROR 8) of the four int8 weights that multiply it; the tail stays in order. */
static void reorder_col_s16(int16_t *col, int32_t col_len)
{
    for (int32_t i = 0; i + 4 <= col_len; i += 4)
    {
        const int16_t x1 = col[i + 1];
        col[i + 1] = col[i + 2];
        col[i + 2] = x1;
    }
}

/* im2col_s16 followed by reorder_col_s16, in one pass when every tap starts a group of four
 * (channels % 4 == 0): four input bytes at a time, offset added per 16-bit lane (the same
 * wrap to int16 as the portable cast). */
static void im2col_s16_reordered(const int8_t *input,
                                 const mcu_nn_dims *input_dims,
                                 const mcu_nn_dims *filter_dims,
                                 const mcu_nn_conv_params *p,
                                 int32_t out_y,
                                 int32_t out_x,
                                 int16_t *col)
{
    const int32_t channels = input_dims->c;
    if (channels % 4 != 0)
    {
        im2col_s16(input, input_dims, filter_dims, p, out_y, out_x, col);
        reorder_col_s16(col, channels * filter_dims->h * filter_dims->w);
        return;
    }
    const int32_t offset = mcu_pack_s16x2(p->input_offset, p->input_offset);
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
                for (int32_t c = 0; c < channels; c += 4)
                {
                    const int32_t x = mcu_read_word(src + c);
                    const int32_t x_02 = __sxtab16(offset, x);
                    const int32_t x_13 = mcu_sxtab16_ror8(offset, x);
                    memcpy(col + c, &x_02, sizeof(x_02));
                    memcpy(col + c + 2, &x_13, sizeof(x_13));
                }
            }
            col += channels;
        }
    }
}
#endif

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

#if defined(ARM_MATH_MVEI)
/* Writes all output channels of n_px (1..4) consecutive pixels from their int8 columns
 * cols[0..n_px-1]; out and res (when add != NULL) point at the first pixel. */
static void conv_columns_mve(const int8_t *const cols[4],
                             int32_t n_px,
                             int32_t col_len,
                             const int8_t *filter,
                             const int32_t *bias,
                             const mcu_nn_conv_params *p,
                             const mcu_nn_per_channel_quant_params *q,
                             const mcu_add_quant *add,
                             const int8_t *res,
                             int32_t out_ch,
                             int8_t *out)
{
    /* Missing pixels reuse the first column; their sums are dropped. */
    const int8_t *c0 = cols[0];
    const int8_t *c1 = n_px > 1 ? cols[1] : c0;
    const int8_t *c2 = n_px > 2 ? cols[2] : c0;
    const int8_t *c3 = n_px > 3 ? cols[3] : c0;
    const int32_t main_len = col_len & ~15;
    const mve_pred16_t tail = vctp8q((uint32_t)(col_len - main_len));
    /* Byte offsets of the n_px pixels' outputs of one channel, and the lanes that exist. */
    const uint32x4_t px_offsets = vmulq_n_u32(vidupq_n_u32(0, 1), (uint32_t)out_ch);
    const mve_pred16_t px_lanes = vctp32q((uint32_t)n_px);

    for (int32_t oc = 0; oc < out_ch; oc++)
    {
        const int8_t *w = filter + oc * col_len;
        int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        int32_t sum_w = 0;
        const int8_t *w_ptr = w;
        const int8_t *p0 = c0;
        const int8_t *p1 = c1;
        const int8_t *p2 = c2;
        const int8_t *p3 = c3;
        for (int32_t i = 0; i < main_len; i += 16)
        {
            const int8x16_t wv = vldrbq_s8(w_ptr);
            sum_w = vaddvaq_s8(sum_w, wv);
            a0 = vmladavaq_s8(a0, vldrbq_s8(p0), wv);
            a1 = vmladavaq_s8(a1, vldrbq_s8(p1), wv);
            a2 = vmladavaq_s8(a2, vldrbq_s8(p2), wv);
            a3 = vmladavaq_s8(a3, vldrbq_s8(p3), wv);
            w_ptr += 16;
            p0 += 16;
            p1 += 16;
            p2 += 16;
            p3 += 16;
        }
        if (main_len < col_len)
        {
            /* Lanes past col_len load as 0 and add nothing. */
            const int8x16_t wv = vldrbq_z_s8(w + main_len, tail);
            sum_w = vaddvaq_s8(sum_w, wv);
            a0 = vmladavaq_s8(a0, vldrbq_z_s8(c0 + main_len, tail), wv);
            a1 = vmladavaq_s8(a1, vldrbq_z_s8(c1 + main_len, tail), wv);
            a2 = vmladavaq_s8(a2, vldrbq_z_s8(c2 + main_len, tail), wv);
            a3 = vmladavaq_s8(a3, vldrbq_z_s8(c3 + main_len, tail), wv);
        }
        const int32_t base = (bias != NULL ? bias[oc] : 0) + p->input_offset * sum_w;
        int32x4_t accv = vdupq_n_s32(a0);
        accv = vsetq_lane_s32(a1, accv, 1);
        accv = vsetq_lane_s32(a2, accv, 2);
        accv = vsetq_lane_s32(a3, accv, 3);
        accv = vaddq_n_s32(accv, base);
        /* The four pixels share the channel's multiplier and shift. */
        const int32x4_t value = mcu_requantize_s8_mve(accv, vdupq_n_s32(q->multiplier[oc]), vdupq_n_s32(q->shift[oc]),
                                                      p->output_offset, p->activation.min, p->activation.max);
        if (add == NULL)
        {
            vstrbq_scatter_offset_p_s32(out + oc, px_offsets, value, px_lanes);
        }
        else
        {
            /* Each residual value is read before the output at the same index overwrites it. */
            int32_t v[4];
            vstrwq_s32(v, value);
            for (int32_t k = 0; k < n_px; k++)
            {
                out[k * out_ch + oc] = mcu_add_one_s8((int8_t)v[k], res[k * out_ch + oc], add);
            }
        }
    }
}
#endif

#if defined(ARM_MATH_DSP) && !defined(ARM_MATH_MVEI)
/* conv_columns on columns reordered by reorder_col_s16: two output channels at a time, each
 * word of four int8 weights widened by SXTB16 into (w0, w2) and (w1, w3), which SMLAD pairs
 * with the column words (x0, x2) and (x1, x3). */
static void conv_columns_dsp(const int16_t *col_0,
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
    /* A missing second pixel reuses the first column; its sums are dropped. */
    const int16_t *col_b = out_1 != NULL ? col_1 : col_0;
    const int32_t main_len = col_len & ~3;
    int32_t oc = 0;
    for (; oc + 2 <= out_ch; oc += 2)
    {
        const int8_t *w_a = filter + oc * col_len;
        const int8_t *w_b = w_a + col_len;
        const int16_t *x_0 = col_0;
        const int16_t *x_1 = col_b;
        int32_t a_0 = bias != NULL ? bias[oc] : 0;
        int32_t b_0 = bias != NULL ? bias[oc + 1] : 0;
        int32_t a_1 = a_0;
        int32_t b_1 = b_0;
        for (int32_t i = 0; i < main_len; i += 4)
        {
            const int32_t wv_a = mcu_read_word(w_a);
            const int32_t wv_b = mcu_read_word(w_b);
            w_a += 4;
            w_b += 4;
            const int32_t wa_02 = __sxtb16(wv_a);
            const int32_t wa_13 = mcu_sxtb16_ror8(wv_a);
            const int32_t wb_02 = __sxtb16(wv_b);
            const int32_t wb_13 = mcu_sxtb16_ror8(wv_b);
            const int32_t x0_02 = mcu_read_word(x_0);
            const int32_t x0_13 = mcu_read_word(x_0 + 2);
            const int32_t x1_02 = mcu_read_word(x_1);
            const int32_t x1_13 = mcu_read_word(x_1 + 2);
            x_0 += 4;
            x_1 += 4;
            a_0 = __smlad(wa_02, x0_02, a_0);
            a_0 = __smlad(wa_13, x0_13, a_0);
            b_0 = __smlad(wb_02, x0_02, b_0);
            b_0 = __smlad(wb_13, x0_13, b_0);
            a_1 = __smlad(wa_02, x1_02, a_1);
            a_1 = __smlad(wa_13, x1_13, a_1);
            b_1 = __smlad(wb_02, x1_02, b_1);
            b_1 = __smlad(wb_13, x1_13, b_1);
        }
        for (int32_t i = main_len; i < col_len; i++)
        {
            a_0 += col_0[i] * w_a[i - main_len];
            b_0 += col_0[i] * w_b[i - main_len];
            a_1 += col_b[i] * w_a[i - main_len];
            b_1 += col_b[i] * w_b[i - main_len];
        }
        out_0[oc] = conv_output(a_0, oc, p, q, add, res_0);
        out_0[oc + 1] = conv_output(b_0, oc + 1, p, q, add, res_0);
        if (out_1 != NULL)
        {
            out_1[oc] = conv_output(a_1, oc, p, q, add, res_1);
            out_1[oc + 1] = conv_output(b_1, oc + 1, p, q, add, res_1);
        }
    }
    if (oc < out_ch)
    {
        const int8_t *w = filter + oc * col_len;
        int32_t a_0 = bias != NULL ? bias[oc] : 0;
        int32_t a_1 = a_0;
        for (int32_t i = 0; i < main_len; i += 4)
        {
            const int32_t wv = mcu_read_word(w + i);
            const int32_t w_02 = __sxtb16(wv);
            const int32_t w_13 = mcu_sxtb16_ror8(wv);
            a_0 = __smlad(w_02, mcu_read_word(col_0 + i), a_0);
            a_0 = __smlad(w_13, mcu_read_word(col_0 + i + 2), a_0);
            a_1 = __smlad(w_02, mcu_read_word(col_b + i), a_1);
            a_1 = __smlad(w_13, mcu_read_word(col_b + i + 2), a_1);
        }
        for (int32_t i = main_len; i < col_len; i++)
        {
            a_0 += col_0[i] * w[i];
            a_1 += col_b[i] * w[i];
        }
        out_0[oc] = conv_output(a_0, oc, p, q, add, res_0);
        if (out_1 != NULL)
        {
            out_1[oc] = conv_output(a_1, oc, p, q, add, res_1);
        }
    }
}
#endif

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
    const int32_t col_len = input_dims->c * filter_dims->h * filter_dims->w;
    const int32_t out_ch = output_dims->c;
    const int32_t pixels = output_dims->h * output_dims->w;
    int16_t *col_0 = (int16_t *)ctx->buf;
    int16_t *col_1 = col_0 + col_len;

#if defined(ARM_MATH_MVEI)
    /* Four int8 columns fit the scratch of two int16 ones. Padding must be representable as
     * int8, i.e. input_offset = -zero_point with an int8 zero point; else the portable path. */
    if (conv_params->input_offset >= -127 && conv_params->input_offset <= 128)
    {
        const int8_t pad = (int8_t)(-conv_params->input_offset);
        int8_t *col = (int8_t *)ctx->buf;
        const int32_t one_by_one = filter_dims->h == 1 && filter_dims->w == 1;
        for (int32_t b = 0; b < input_dims->n; b++)
        {
            const int8_t *input = input_data + b * input_dims->h * input_dims->w * input_dims->c;
            int8_t *output = output_data + b * pixels * out_ch;
            const int8_t *res = residual != NULL ? residual + b * pixels * out_ch : NULL;
            for (int32_t px = 0; px < pixels; px += 4)
            {
                const int32_t n_px = pixels - px < 4 ? pixels - px : 4;
                const int8_t *cols[4];
                for (int32_t k = 0; k < n_px; k++)
                {
                    const int32_t out_y = (px + k) / output_dims->w;
                    const int32_t out_x = (px + k) % output_dims->w;
                    const int32_t in_y = out_y * conv_params->stride.h - conv_params->padding.h;
                    const int32_t in_x = out_x * conv_params->stride.w - conv_params->padding.w;
                    if (one_by_one && in_y >= 0 && in_y < input_dims->h && in_x >= 0 && in_x < input_dims->w)
                    {
                        /* The column of a 1x1 filter is the input pixel itself. */
                        cols[k] = input + (in_y * input_dims->w + in_x) * input_dims->c;
                    }
                    else
                    {
                        im2col_s8(input, input_dims, filter_dims, conv_params, pad, out_y, out_x, col + k * col_len);
                        cols[k] = col + k * col_len;
                    }
                }
                conv_columns_mve(cols, n_px, col_len, filter_data, bias_data, conv_params, quant_params, add,
                                 res != NULL ? res + px * out_ch : NULL, out_ch, output + px * out_ch);
            }
        }
        return MCU_NN_SUCCESS;
    }
#endif
    for (int32_t b = 0; b < input_dims->n; b++)
    {
        const int8_t *input = input_data + b * input_dims->h * input_dims->w * input_dims->c;
        int8_t *output = output_data + b * pixels * out_ch;
        const int8_t *res = residual != NULL ? residual + b * pixels * out_ch : NULL;
        for (int32_t px = 0; px < pixels; px += 2)
        {
            const int32_t has_pair = px + 1 < pixels;
#if defined(ARM_MATH_DSP) && !defined(ARM_MATH_MVEI)
            im2col_s16_reordered(input, input_dims, filter_dims, conv_params, px / output_dims->w,
                                 px % output_dims->w, col_0);
            if (has_pair)
            {
                im2col_s16_reordered(input, input_dims, filter_dims, conv_params, (px + 1) / output_dims->w,
                                     (px + 1) % output_dims->w, col_1);
            }
#else
            im2col_s16(input, input_dims, filter_dims, conv_params, px / output_dims->w, px % output_dims->w, col_0);
            if (has_pair)
            {
                im2col_s16(input, input_dims, filter_dims, conv_params, (px + 1) / output_dims->w,
                           (px + 1) % output_dims->w, col_1);
            }
#endif
#if defined(ARM_MATH_DSP) && !defined(ARM_MATH_MVEI)
            conv_columns_dsp(col_0, col_1, col_len, filter_data, bias_data, conv_params, quant_params, add,
#else
            conv_columns(col_0, col_1, col_len, filter_data, bias_data, conv_params, quant_params, add,
#endif
                         res != NULL ? res + px * out_ch : NULL,
                         res != NULL && has_pair ? res + (px + 1) * out_ch : NULL, out_ch,
                         output + px * out_ch, has_pair ? output + (px + 1) * out_ch : NULL);
        }
    }
    return MCU_NN_SUCCESS;
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
