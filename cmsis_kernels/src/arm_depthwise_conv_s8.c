/*
 * int8 depthwise 2D convolution (TFLite DEPTHWISE_CONV_2D), any channel
 * multiplier: output channel c = in_c * ch_mult + m reads input channel in_c.
 */
#include "mcu_nn_support.h"

/* Accumulates one output channel at one output position over the in-bounds taps. */
static int32_t dw_accumulate(const int8_t *input,
                             const cmsis_nn_dims *input_dims,
                             const int8_t *filter,
                             const cmsis_nn_dims *filter_dims,
                             const cmsis_nn_dw_conv_params *p,
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

arm_cmsis_nn_status arm_depthwise_conv_s8(const cmsis_nn_context *ctx,
                                          const cmsis_nn_dw_conv_params *dw_conv_params,
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
    (void)ctx;
    (void)bias_dims;
    const cmsis_nn_dw_conv_params *p = dw_conv_params;
    if (output_dims->c != input_dims->c * p->ch_mult || filter_dims->c != output_dims->c)
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    int8_t *out = output_data;
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
    return ARM_CMSIS_NN_SUCCESS;
}
