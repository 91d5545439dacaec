/*
 * int8 fully connected layer (TFLite FULLY_CONNECTED), per-tensor requantization.
 *
 * acc_init holds one int32 per output channel, written by the code generator beside the
 * weights: input_offset * sum_i (filter[oc][i] + filter_offset), the input offset's part of
 * every accumulator. Only bias[oc] + sum_i x[i] * filter[oc][i] (and, for a nonzero
 * filter_offset, filter_offset * sum_i x[i] once per batch) is left for run time. Helium:
 * four filter rows per input load and the four outputs requantized as one vector; DSP: the
 * input widened to int16 pairs once, two rows per widened word, a 32-bit requantization
 * where it is exact (mcu_fc_folded_s8 in mcu_nn_support.h). Bit-exact with TFLite's
 * reference: only the order of the integer sums changes.
 */
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
    /* One multiplier and shift for every output channel: quant_step 0. */
    mcu_fc_folded_s8(fc_params, &quant_params->multiplier, &quant_params->shift, 0, input_dims->n, input_data,
                     filter_dims->n, filter_data, bias_data, acc_init, output_dims->c, output_data);
    return MCU_NN_SUCCESS;
}
