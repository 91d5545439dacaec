/*
 * CONV_2D followed by ADD of a residual (a ResNet block's skip connection), in one pass.
 *
 * Each convolution output is requantized exactly as CONV_2D would store it, then added
 * to the residual as TFLite's ADD would: bit-exact with the two ops. The sum may be
 * written over the residual, so the block needs no third feature map.
 */
#include "mcu_nn_support.h"

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
    (void)bias_dims;
    if (add_quant == NULL)
    {
        return MCU_NN_ARG_ERROR;
    }
    return mcu_convolve_core_s8(ctx, conv_params, quant_params, input_dims, input_data, filter_dims, filter_data,
                                bias_data, add_quant, residual_data, output_dims, output_data);
}
