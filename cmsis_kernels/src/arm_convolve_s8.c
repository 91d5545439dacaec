/*
 * int8 2D convolution (TFLite CONV_2D, per-channel requantization).
 *
 * Portable C: the receptive field of two output pixels is gathered into the
 * scratch buffer as int16 (input_offset already added, padding as 0), then
 * every filter row is dotted with both columns, so each weight is loaded
 * once per pixel pair and the inner loop has no bounds checks.
 */
#include <string.h>

#include "mcu_nn_support.h"

int32_t arm_convolve_s8_get_buffer_size(const cmsis_nn_dims *input_dims, const cmsis_nn_dims *filter_dims)
{
    return 2 * input_dims->c * filter_dims->h * filter_dims->w * (int32_t)sizeof(int16_t);
}

/* Gathers the receptive field of output pixel (out_y, out_x) of one batch into col. */
static void im2col_s16(const int8_t *input,
                       const cmsis_nn_dims *input_dims,
                       const cmsis_nn_dims *filter_dims,
                       const cmsis_nn_conv_params *p,
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
static inline int8_t conv_output(int32_t acc, int32_t oc, const cmsis_nn_conv_params *p,
                                 const cmsis_nn_per_channel_quant_params *q, const mcu_add_quant *add,
                                 const int8_t *residual)
{
    const int8_t value = mcu_requantize_s8(acc, q->multiplier[oc], q->shift[oc], p->output_offset,
                                           p->activation.min, p->activation.max);
    return add != NULL ? mcu_add_one_s8(value, residual[oc], add) : value;
}

/* Writes all output channels of one or two pixels (out_1 may be NULL) from their im2col
 * columns; res_0/res_1 are the pixels' residuals when add != NULL. */
static void conv_columns(const int16_t *col_0,
                         const int16_t *col_1,
                         int32_t col_len,
                         const int8_t *filter,
                         const int32_t *bias,
                         const cmsis_nn_conv_params *p,
                         const cmsis_nn_per_channel_quant_params *q,
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

arm_cmsis_nn_status mcu_convolve_core_s8(const cmsis_nn_context *ctx,
                                         const cmsis_nn_conv_params *conv_params,
                                         const cmsis_nn_per_channel_quant_params *quant_params,
                                         const cmsis_nn_dims *input_dims,
                                         const int8_t *input_data,
                                         const cmsis_nn_dims *filter_dims,
                                         const int8_t *filter_data,
                                         const int32_t *bias_data,
                                         const mcu_add_quant *add,
                                         const int8_t *residual,
                                         const cmsis_nn_dims *output_dims,
                                         int8_t *output_data)
{
    if (ctx->buf == NULL || filter_dims->c != input_dims->c || (add != NULL && residual == NULL))
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    const int32_t col_len = input_dims->c * filter_dims->h * filter_dims->w;
    const int32_t out_ch = output_dims->c;
    const int32_t pixels = output_dims->h * output_dims->w;
    int16_t *col_0 = (int16_t *)ctx->buf;
    int16_t *col_1 = col_0 + col_len;

    for (int32_t b = 0; b < input_dims->n; b++)
    {
        const int8_t *input = input_data + b * input_dims->h * input_dims->w * input_dims->c;
        int8_t *output = output_data + b * pixels * out_ch;
        const int8_t *res = residual != NULL ? residual + b * pixels * out_ch : NULL;
        for (int32_t px = 0; px < pixels; px += 2)
        {
            const int32_t has_pair = px + 1 < pixels;
            im2col_s16(input, input_dims, filter_dims, conv_params, px / output_dims->w, px % output_dims->w, col_0);
            if (has_pair)
            {
                im2col_s16(input, input_dims, filter_dims, conv_params, (px + 1) / output_dims->w,
                           (px + 1) % output_dims->w, col_1);
            }
            conv_columns(col_0, col_1, col_len, filter_data, bias_data, conv_params, quant_params, add,
                         res != NULL ? res + px * out_ch : NULL,
                         res != NULL && has_pair ? res + (px + 1) * out_ch : NULL, out_ch,
                         output + px * out_ch, has_pair ? output + (px + 1) * out_ch : NULL);
        }
    }
    return ARM_CMSIS_NN_SUCCESS;
}

arm_cmsis_nn_status arm_convolve_s8(const cmsis_nn_context *ctx,
                                    const cmsis_nn_conv_params *conv_params,
                                    const cmsis_nn_per_channel_quant_params *quant_params,
                                    const cmsis_nn_dims *input_dims,
                                    const int8_t *input_data,
                                    const cmsis_nn_dims *filter_dims,
                                    const int8_t *filter_data,
                                    const cmsis_nn_dims *bias_dims,
                                    const int32_t *bias_data,
                                    const cmsis_nn_dims *output_dims,
                                    int8_t *output_data)
{
    (void)bias_dims;
    return mcu_convolve_core_s8(ctx, conv_params, quant_params, input_dims, input_data, filter_dims, filter_data,
                                bias_data, NULL, NULL, output_dims, output_data);
}
