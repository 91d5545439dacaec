/*
 * int8 depthwise 2D convolution (TFLite DEPTHWISE_CONV_2D), any channel
 * multiplier: output channel c = in_c * ch_mult + m reads input channel in_c.
 *
 * With ch_mult == 1, ARM_MATH_MVEI (Helium) and ARM_MATH_DSP (SMLABB/SMLATT) compute
 * several channels of one output pixel at once (vectorised across channels), over the
 * taps that fall inside the input; the portable per-channel loop stays the reference and
 * handles every other case. The requantization gives the same results in all paths (the
 * Helium one requantizes four channels per vector with mcu_requantize_s8_mve).
 */
#include "mcu_nn_support.h"

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

/* One requantized output channel. */
static inline int8_t dw_output(int32_t acc, int32_t oc, const int32_t *bias, const mcu_nn_dw_conv_params *p,
                               const mcu_nn_per_channel_quant_params *q)
{
    if (bias != NULL)
    {
        acc += bias[oc];
    }
    return mcu_requantize_s8(acc, q->multiplier[oc], q->shift[oc], p->output_offset, p->activation.min,
                             p->activation.max);
}

/* All channels of one output pixel for ch_mult == 1; base_y/base_x as in the portable loop. */
static void dw_pixel_ch1(const int8_t *input,
                         const mcu_nn_dims *input_dims,
                         const int8_t *filter,
                         const mcu_nn_dims *filter_dims,
                         const mcu_nn_dw_conv_params *p,
                         const mcu_nn_per_channel_quant_params *q,
                         const int32_t *bias,
                         int32_t base_y,
                         int32_t base_x,
                         int8_t *out)
{
    const int32_t channels = input_dims->c;
    int32_t ky_start, ky_end, kx_start, kx_end;
    dw_tap_range(base_y, p->dilation.h, filter_dims->h, input_dims->h, &ky_start, &ky_end);
    dw_tap_range(base_x, p->dilation.w, filter_dims->w, input_dims->w, &kx_start, &kx_end);
    const int32_t x_step = p->dilation.w * channels; /* input bytes from one tap to the next */
    const int32_t row_step = input_dims->w * channels;
    /* Input and filter of tap (ky_start, kx_start), channel 0; with no tap inside the input
     * (nothing is read) the input pointer stays at its start. */
    const int32_t any_tap = ky_start < ky_end && kx_start < kx_end;
    const int8_t *in_first =
        any_tap ? input + ((base_y + ky_start * p->dilation.h) * input_dims->w + base_x + kx_start * p->dilation.w) *
                              channels
                : input;
    const int8_t *w_first = filter + (ky_start * filter_dims->w + kx_start) * channels;
    int32_t c = 0;
#if defined(ARM_MATH_MVEI)
    const uint32x4_t idx_even = vidupq_n_u32(0, 2); /* channels c, c + 2, c + 4, c + 6 */
    const uint32x4_t idx_odd = vidupq_n_u32(1, 2);
    /* Eight channels per step: input (with the offset added) and filter widened to int16
     * lanes, their products accumulated as int32 for the even and the odd channels. Lanes
     * past the last channel load as 0 and are not stored. */
    for (; c < channels; c += 8)
    {
        const int32_t left = channels - c;
        const mve_pred16_t lanes = vctp16q((uint32_t)left);
        int32x4_t acc_even = vdupq_n_s32(0);
        int32x4_t acc_odd = vdupq_n_s32(0);
        const int8_t *in_row = in_first + c;
        const int8_t *w_row = w_first + c;
        for (int32_t ky = ky_start; ky < ky_end; ky++)
        {
            const int8_t *x_ptr = in_row;
            const int8_t *w_ptr = w_row;
            for (int32_t kx = kx_start; kx < kx_end; kx++)
            {
                const int16x8_t x = vaddq_n_s16(vldrbq_z_s16(x_ptr, lanes), (int16_t)p->input_offset);
                const int16x8_t w = vldrbq_z_s16(w_ptr, lanes);
                acc_even = vaddq_s32(acc_even, vmullbq_int_s16(x, w));
                acc_odd = vaddq_s32(acc_odd, vmulltq_int_s16(x, w));
                x_ptr += x_step;
                w_ptr += channels;
            }
            in_row += p->dilation.h * row_step;
            w_row += filter_dims->w * channels;
        }
        /* Requantized four channels at a time: the even channels c, c + 2, .. and the odd
         * ones, their bias and quantization gathered (lanes past the last channel read
         * nothing), then narrowed back into channel order and stored as int8. */
        const int32_t n = left < 8 ? left : 8;
        const mve_pred16_t p_even = vctp32q((uint32_t)(n + 1) >> 1);
        const mve_pred16_t p_odd = vctp32q((uint32_t)n >> 1);
        if (bias != NULL)
        {
            acc_even = vaddq_s32(acc_even, vldrwq_gather_shifted_offset_z_s32(bias + c, idx_even, p_even));
            acc_odd = vaddq_s32(acc_odd, vldrwq_gather_shifted_offset_z_s32(bias + c, idx_odd, p_odd));
        }
        const int32x4_t r_even =
            mcu_requantize_s8_mve(acc_even, vldrwq_gather_shifted_offset_z_s32(q->multiplier + c, idx_even, p_even),
                                  vldrwq_gather_shifted_offset_z_s32(q->shift + c, idx_even, p_even),
                                  p->output_offset, p->activation.min, p->activation.max);
        const int32x4_t r_odd =
            mcu_requantize_s8_mve(acc_odd, vldrwq_gather_shifted_offset_z_s32(q->multiplier + c, idx_odd, p_odd),
                                  vldrwq_gather_shifted_offset_z_s32(q->shift + c, idx_odd, p_odd),
                                  p->output_offset, p->activation.min, p->activation.max);
        const int16x8_t r = vmovntq_s32(vmovnbq_s32(vdupq_n_s16(0), r_even), r_odd);
        vstrbq_p_s16(out + c, r, lanes);
    }
#else
    /* Four channels per step: one word of input and of filter, widened to int16 pairs of
     * channels (0, 2) and (1, 3) with the input offset added, one 16x16 MAC per channel. */
    const int32_t in_off = mcu_pack_s16x2(p->input_offset, p->input_offset);
    for (; c + 4 <= channels; c += 4)
    {
        int32_t acc_0 = 0, acc_1 = 0, acc_2 = 0, acc_3 = 0;
        const int8_t *in_row = in_first + c;
        const int8_t *w_row = w_first + c;
        for (int32_t ky = ky_start; ky < ky_end; ky++)
        {
            const int8_t *x_ptr = in_row;
            const int8_t *w_ptr = w_row;
            for (int32_t kx = kx_start; kx < kx_end; kx++)
            {
                const int32_t x = mcu_read_word(x_ptr);
                const int32_t w = mcu_read_word(w_ptr);
                const int32_t x_02 = __sxtab16(in_off, x);
                const int32_t x_13 = mcu_sxtab16_ror8(in_off, x);
                const int32_t w_02 = __sxtb16(w);
                const int32_t w_13 = mcu_sxtb16_ror8(w);
                acc_0 = __smlabb(x_02, w_02, acc_0);
                acc_2 = __smlatt(x_02, w_02, acc_2);
                acc_1 = __smlabb(x_13, w_13, acc_1);
                acc_3 = __smlatt(x_13, w_13, acc_3);
                x_ptr += x_step;
                w_ptr += channels;
            }
            in_row += p->dilation.h * row_step;
            w_row += filter_dims->w * channels;
        }
        out[c] = dw_output(acc_0, c, bias, p, q);
        out[c + 1] = dw_output(acc_1, c + 1, bias, p, q);
        out[c + 2] = dw_output(acc_2, c + 2, bias, p, q);
        out[c + 3] = dw_output(acc_3, c + 3, bias, p, q);
    }
    for (; c < channels; c++)
    {
        int32_t acc = 0;
        const int8_t *in_row = in_first + c;
        const int8_t *w_row = w_first + c;
        for (int32_t ky = ky_start; ky < ky_end; ky++)
        {
            for (int32_t kx = 0; kx < kx_end - kx_start; kx++)
            {
                acc += (in_row[kx * x_step] + p->input_offset) * w_row[kx * channels];
            }
            in_row += p->dilation.h * row_step;
            w_row += filter_dims->w * channels;
        }
        out[c] = dw_output(acc, c, bias, p, q);
    }
#endif
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
    int8_t *out = output_data;
#if defined(ARM_MATH_MVEI) || defined(ARM_MATH_DSP)
    /* The DSP path widens x + input_offset to int16, so the offset is bounded (an int8 zero
     * point always is); past that, and for ch_mult > 1, the portable loop. */
    if (p->ch_mult == 1 && p->dilation.h > 0 && p->dilation.w > 0 &&
        p->input_offset >= -256 && p->input_offset <= 256)
    {
        for (int32_t b = 0; b < input_dims->n; b++)
        {
            const int8_t *input = input_data + b * input_dims->h * input_dims->w * input_dims->c;
            for (int32_t out_y = 0; out_y < output_dims->h; out_y++)
            {
                for (int32_t out_x = 0; out_x < output_dims->w; out_x++)
                {
                    dw_pixel_ch1(input, input_dims, filter_data, filter_dims, p, quant_params, bias_data,
                                 out_y * p->stride.h - p->padding.h, out_x * p->stride.w - p->padding.w, out);
                    out += output_dims->c;
                }
            }
        }
        return MCU_NN_SUCCESS;
    }
#endif
    for (int32_t b = 0; b < input_dims->n; b++)
    {
        const int8_t *input = input_data + b * input_dims->h * input_dims->w * input_dims->c;
        for (int32_t out_y = 0; out_y < output_dims->h; out_y++)
        {
            const int32_t base_y = out_y * p->stride.h - p->padding.h;
            for (int32_t out_x = 0; out_x < output_dims->w; out_x++)
            {
                const int32_t base_x = out_x * p->stride.w - p->padding.w;
                for (int32_t oc = 0; oc < output_dims->c; oc++)
                {
                    int32_t acc = dw_accumulate(input, input_dims, filter_data, filter_dims, p, base_y, base_x,
                                                oc / p->ch_mult, oc);
                    if (bias_data != NULL)
                    {
                        acc += bias_data[oc];
                    }
                    *out++ = mcu_requantize_s8(acc, quant_params->multiplier[oc], quant_params->shift[oc],
                                               p->output_offset, p->activation.min, p->activation.max);
                }
            }
        }
    }
    return MCU_NN_SUCCESS;
}
