/* int8 RELU with requantization (TFLite Micro ReluQuantized). */
#include "mcu_nn_support.h"

mcu_nn_status mcu_relu_s8(const int8_t *input,
                                int8_t *output,
                                const int32_t size,
                                const int32_t input_offset,
                                const int32_t out_offset,
                                const int32_t out_mult,
                                const int32_t out_shift,
                                const int32_t out_activation_min,
                                const int32_t out_activation_max)
{
    for (int32_t i = 0; i < size; i++)
    {
        output[i] = mcu_requantize_s8(input[i] + input_offset, out_mult, out_shift, out_offset, out_activation_min,
                                      out_activation_max);
    }
    return MCU_NN_SUCCESS;
}
