/* int8 TRANSPOSE_CONV (TFLite Micro's reference integer TransposeConv arithmetic): every input
   pixel scatters (input + input_offset) * filter into the int32 accumulators of the output
   pixels its window covers (taps falling outside the output are dropped), then each
   accumulator gets its channel's bias and is requantized per output channel. The filter
   is OHWI; the filter zero point is 0 (symmetric weights). */
#include "mcu_nn_support.h"

mcu_nn_status mcu_transpose_conv_s8(const mcu_nn_context *ctx,
                                          const mcu_nn_conv_params *conv_params,
                                          const mcu_nn_per_channel_quant_params *quant_params,
                                          const mcu_nn_dims *input_dims,
                                          const int8_t *input,
                                          const mcu_nn_dims *filter_dims,
                                          const int8_t *filter,
                                          const mcu_nn_dims *bias_dims,
                                          const int32_t *bias,
                                          const mcu_nn_dims *output_dims,
                                          int8_t *output)
{
    (void)bias_dims;
    int32_t *acc = (int32_t *)ctx->buf;
    const int32_t in_ch = input_dims->c, out_ch = output_dims->c;
    const int32_t out_h = output_dims->h, out_w = output_dims->w;
    const int32_t pixels = output_dims->n * out_h * out_w;
    memset(acc, 0, (size_t)pixels * (size_t)out_ch * sizeof(int32_t));
    for (int32_t n = 0; n < input_dims->n; n++)
    {
        for (int32_t in_y = 0; in_y < input_dims->h; in_y++)
        {
            for (int32_t in_x = 0; in_x < input_dims->w; in_x++)
            {
                const int8_t *in = input + ((n * input_dims->h + in_y) * input_dims->w + in_x) * in_ch;
                const int32_t y0 = in_y * conv_params->stride.h - conv_params->padding.h;
                const int32_t x0 = in_x * conv_params->stride.w - conv_params->padding.w;
                for (int32_t ky = 0; ky < filter_dims->h; ky++)
                {
                    const int32_t out_y = y0 + ky;
                    if (out_y < 0 || out_y >= out_h)
                    {
                        continue;
                    }
                    for (int32_t kx = 0; kx < filter_dims->w; kx++)
                    {
                        const int32_t out_x = x0 + kx;
                        if (out_x < 0 || out_x >= out_w)
                        {
                            continue;
                        }
                        int32_t *out_acc = acc + ((n * out_h + out_y) * out_w + out_x) * out_ch;
                        for (int32_t oc = 0; oc < out_ch; oc++)
                        {
                            const int8_t *w = filter + ((oc * filter_dims->h + ky) * filter_dims->w + kx) * in_ch;
                            int32_t sum = 0;
                            for (int32_t ic = 0; ic < in_ch; ic++)
                            {
                                sum += (in[ic] + conv_params->input_offset) * w[ic];
                            }
                            out_acc[oc] += sum;
                        }
                    }
                }
            }
        }
    }
    for (int32_t p = 0; p < pixels; p++)
    {
        for (int32_t oc = 0; oc < out_ch; oc++)
        {
            const int32_t value = acc[p * out_ch + oc] + (bias != NULL ? bias[oc] : 0);
            output[p * out_ch + oc] = mcu_requantize_s8(value, quant_params->multiplier[oc], quant_params->shift[oc],
                                                        conv_params->output_offset, conv_params->activation.min,
                                                        conv_params->activation.max);
        }
    }
    return MCU_NN_SUCCESS;
}
