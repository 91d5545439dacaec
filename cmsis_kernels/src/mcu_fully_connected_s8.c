/* int8 fully connected layer (TFLite FULLY_CONNECTED), per-tensor requantization. */
#include "mcu_nn_support.h"

mcu_nn_status mcu_fully_connected_s8(const mcu_nn_context *ctx,
                                           const mcu_nn_fc_params *fc_params,
                                           const mcu_nn_per_tensor_quant_params *quant_params,
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
    /* One multiplier and shift for every output channel: quant_step 0. */
    mcu_fc_batches_s8(fc_params, &quant_params->multiplier, &quant_params->shift, 0, input_dims, input_data,
                      filter_dims, filter_data, bias_data, output_dims, output_data);
    return MCU_NN_SUCCESS;
}
