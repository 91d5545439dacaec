/* int8 elementwise ADD of two same-shaped tensors (TFLite ADD without broadcast). */
#include "mcu_nn_support.h"

mcu_nn_status mcu_elementwise_add_s8(const int8_t *input_1_vect,
                                           const int8_t *input_2_vect,
                                           const int32_t input_1_offset,
                                           const int32_t input_1_mult,
                                           const int32_t input_1_shift,
                                           const int32_t input_2_offset,
                                           const int32_t input_2_mult,
                                           const int32_t input_2_shift,
                                           const int32_t left_shift,
                                           int8_t *output,
                                           const int32_t out_offset,
                                           const int32_t out_mult,
                                           const int32_t out_shift,
                                           const int32_t out_activation_min,
                                           const int32_t out_activation_max,
                                           const int32_t block_size)
{
    const mcu_add_quant q = {input_1_offset, input_1_mult, input_1_shift, input_2_offset, input_2_mult,
                             input_2_shift,  left_shift,   out_offset,    out_mult,       out_shift,
                             out_activation_min, out_activation_max};
    for (int32_t i = 0; i < block_size; i++)
    {
        output[i] = mcu_add_one_s8(input_1_vect[i], input_2_vect[i], &q);
    }
    return MCU_NN_SUCCESS;
}
