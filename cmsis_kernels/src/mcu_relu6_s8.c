/* int8 RELU6 (TFLite Micro Relu6Quantized: clamp without rescaling). */
#include "mcu_nn_support.h"

mcu_nn_status mcu_relu6_s8(const int8_t *input,
                                 int8_t *output,
                                 const int32_t size,
                                 const int32_t out_activation_min,
                                 const int32_t out_activation_max)
{
    for (int32_t i = 0; i < size; i++)
    {
        output[i] = (int8_t)mcu_clamp(input[i], out_activation_min, out_activation_max);
    }
    return MCU_NN_SUCCESS;
}
