/*
 * int8 fully connected layer (TFLite FULLY_CONNECTED), per-channel requantization.
 *
 * acc_init: one int32 per output channel folded by the code generator, as for
 * mcu_fully_connected_s8: input_offset * sum_i (filter[oc][i] + filter_offset).
 */
#include "mcu_nn_support.h"

mcu_nn_status mcu_fully_connected_per_channel_s8(const mcu_nn_context *ctx,
                                                       const mcu_nn_fc_params *fc_params,
                                                       const mcu_nn_per_channel_quant_params *quant_params,
                                                       const mcu_nn_dims *input_dims,
                                                       const int8_t *input_data,
                                                       const mcu_nn_dims *filter_dims,
                                                       const int8_t *filter_data,
                                                       const mcu_nn_dims *bias_dims,
                                                       const int32_t *bias_data,
                                                       const int32_t *acc_init,
                                                       const mcu_nn_dims *output_dims,
                                                       int8_t *output_data)
{
    (void)ctx;
    (void)bias_dims;
    if (acc_init == NULL)
    {
        return MCU_NN_ARG_ERROR;
    }
    /* One multiplier and shift per output channel: quant_step 1. */
    mcu_fc_folded_s8(fc_params, quant_params->multiplier, quant_params->shift, 1, input_dims->n, input_data,
                     filter_dims->n, filter_data, bias_data, acc_init, output_dims->c, output_data);
    return MCU_NN_SUCCESS;
}
