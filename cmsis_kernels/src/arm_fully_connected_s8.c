/* int8 fully connected layer (TFLite FULLY_CONNECTED), per-tensor requantization. */
#include "mcu_nn_support.h"

arm_cmsis_nn_status arm_fully_connected_s8(const cmsis_nn_context *ctx,
                                           const cmsis_nn_fc_params *fc_params,
                                           const cmsis_nn_per_tensor_quant_params *quant_params,
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
    const int32_t depth = filter_dims->n;
    const int32_t out_ch = output_dims->c;
    for (int32_t b = 0; b < input_dims->n; b++)
    {
        const int8_t *input = input_data + b * depth;
        for (int32_t oc = 0; oc < out_ch; oc++)
        {
            int32_t acc = mcu_fc_dot(input, filter_data + oc * depth, depth, fc_params->input_offset,
                                     fc_params->filter_offset);
            if (bias_data != NULL)
            {
                acc += bias_data[oc];
            }
            *output_data++ = mcu_requantize_s8(acc, quant_params->multiplier, quant_params->shift,
                                               fc_params->output_offset, fc_params->activation.min,
                                               fc_params->activation.max);
        }
    }
    return ARM_CMSIS_NN_SUCCESS;
}
